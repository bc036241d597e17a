// The linearizability checker classifies known histories correctly, agrees
// with brute force on small random ones, accepts histories generated from a
// real linearizable register, rejects constructed violations, and is fast
// enough for the chaos runs.
#include "linearizability.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

namespace lincheck {
namespace {

using O = Operation;
constexpr auto kOk = Outcome::ok;
constexpr auto kFail = Outcome::fail;
constexpr auto kUnknown = Outcome::unknown;
constexpr auto kNone = std::nullopt;

// `"literal" + std::to_string(n)` trips a g++ 12 -Wrestrict false positive.
std::string name(std::string_view prefix, long long n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

Verdict verdict(const std::vector<Operation>& h, Budget b = {}) { return check(h, b).verdict; }

// ------------------------------------------------------------ violations

TEST(LinearizabilityViolation, StaleRead) {
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "k", "v1"),
      O::make_put(1, 20, 30, "k", "v2"),
      O::make_get(2, 40, 50, "k", "v1"),  // v2 was acknowledged before the read began
  };
  auto r = check(h);
  EXPECT_EQ(r.verdict, Verdict::not_linearizable);
  EXPECT_EQ(r.key, "k");
  EXPECT_NE(r.explanation.find("get k v1"), std::string::npos) << r.explanation;
  ASSERT_FALSE(r.ops.empty());
  EXPECT_EQ(r.ops[0], 2u);  // the read is the operation that cannot take effect
}

TEST(LinearizabilityViolation, LostWrite) {
  // put(v2) is acknowledged, but later reads keep returning the older v1.
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "k", "v1"),
      O::make_put(2, 20, 30, "k", "v2"),
      O::make_get(3, 40, 50, "k", "v1"),
      O::make_get(1, 60, 70, "k", "v1"),
  };
  EXPECT_EQ(verdict(h), Verdict::not_linearizable);
}

TEST(LinearizabilityViolation, CasSucceededTwiceFromTheSamePrev) {
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "k", "a"),
      O::make_cas(2, 20, 40, "k", "a", "b", kOk),
      O::make_cas(3, 25, 45, "k", "a", "c", kOk),  // concurrent, but only one can see "a"
  };
  EXPECT_EQ(verdict(h), Verdict::not_linearizable);
  // Also "only if absent" twice.
  std::vector<Operation> h2 = {
      O::make_cas(2, 0, 40, "k", kNone, "b", kOk),
      O::make_cas(3, 5, 45, "k", kNone, "c", kOk),
  };
  EXPECT_EQ(verdict(h2), Verdict::not_linearizable);
}

TEST(LinearizabilityViolation, ReadOfAValueNeverWritten) {
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "k", "a"),
      O::make_get(2, 5, 15, "k", "zzz"),
  };
  EXPECT_EQ(verdict(h), Verdict::not_linearizable);
}

TEST(LinearizabilityViolation, ReadOfADeletedValue) {
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "k", "a"),
      O::make_del(1, 20, 30, "k"),
      O::make_get(2, 40, 50, "k", "a"),
  };
  EXPECT_EQ(verdict(h), Verdict::not_linearizable);
}

TEST(LinearizabilityViolation, CasFailedAlthoughTheValueMatched) {
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "k", "a"),
      O::make_cas(2, 20, 30, "k", "a", "b", kFail),
  };
  EXPECT_EQ(verdict(h), Verdict::not_linearizable);
}

TEST(LinearizabilityViolation, ReadsDisagreeOnOrderOfConcurrentWrites) {
  // Two concurrent writes; one reader sees a then b, another b then a.
  std::vector<Operation> h = {
      O::make_put(1, 0, 100, "k", "a"),     O::make_put(2, 0, 100, "k", "b"),
      O::make_get(3, 10, 20, "k", "a"),     O::make_get(3, 30, 40, "k", "b"),
      O::make_get(4, 10, 20, "k", "b"),     O::make_get(4, 30, 40, "k", "a"),
  };
  EXPECT_EQ(verdict(h), Verdict::not_linearizable);
}

TEST(LinearizabilityViolation, FoundOnOneKeyAmongMany) {
  std::vector<Operation> h;
  for (int k = 0; k < 5; ++k) h.push_back(O::make_put(1, 10 * k, 10 * k + 5, name("k", k), "x"));
  h.push_back(O::make_get(2, 100, 110, "k3", "y"));
  auto r = check(h);
  EXPECT_EQ(r.verdict, Verdict::not_linearizable);
  EXPECT_EQ(r.key, "k3");
}

// ------------------------------------------------------------ linearizable

TEST(Linearizable, EmptyAndSequentialHistories) {
  EXPECT_EQ(verdict({}), Verdict::linearizable);
  std::vector<Operation> h = {
      O::make_get(1, 0, 1, "k", kNone),
      O::make_put(1, 2, 3, "k", "a"),
      O::make_get(1, 4, 5, "k", "a"),
      O::make_cas(1, 6, 7, "k", "a", "b", kOk),
      O::make_cas(1, 8, 9, "k", "a", "c", kFail),
      O::make_cas(1, 10, 11, "k", kNone, "c", kFail),
      O::make_del(1, 12, 13, "k"),
      O::make_cas(1, 14, 15, "k", kNone, "d", kOk),
      O::make_get(1, 16, 17, "k", "d"),
  };
  EXPECT_EQ(verdict(h), Verdict::linearizable);
}

TEST(Linearizable, ConcurrentOverlappingOps) {
  // A read overlapping a write may see either value; two overlapping reads
  // may see old then new but, being concurrent, also new then old.
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "k", "a"),
      O::make_put(2, 20, 60, "k", "b"),
      O::make_get(3, 25, 35, "k", "b"),
      O::make_get(4, 30, 70, "k", "a"),  // overlaps both the write and the read of b
      O::make_get(5, 15, 80, "k", "a"),
  };
  // get(4) -> a must precede get(3) -> b? No: get(4) overlaps get(3), so it
  // may linearize before it (a, then put b, then get(3) b). Linearizable.
  EXPECT_EQ(verdict(h), Verdict::linearizable);
}

TEST(Linearizable, TouchingIntervalsCountAsConcurrent) {
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "k", "a"),
      O::make_get(2, 10, 20, "k", kNone),  // starts exactly when the put returns
  };
  EXPECT_EQ(verdict(h), Verdict::linearizable);
}

TEST(Linearizable, IndeterminateWriteThatTookEffect) {
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "k", "a"),
      O::make_put(2, 20, kInfinity, "k", "b", kUnknown),  // timed out
      O::make_get(3, 1000, 1010, "k", "b"),               // long after: it did happen
      O::make_get(3, 1020, 1030, "k", "b"),
  };
  EXPECT_EQ(verdict(h), Verdict::linearizable);
}

TEST(Linearizable, IndeterminateWriteThatDidNotTakeEffect) {
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "k", "a"),
      O::make_put(2, 20, 25, "k", "b", kUnknown),  // gave up at 25: complete is ignored
      O::make_get(3, 1000, 1010, "k", "a"),
  };
  EXPECT_EQ(verdict(h), Verdict::linearizable);
}

TEST(Linearizable, IndeterminateWriteTakesEffectLateButNotBeforeItsInvoke) {
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "k", "a"),
      O::make_get(3, 20, 30, "k", "a"),
      O::make_put(2, 40, kInfinity, "k", "b", kUnknown),
      O::make_get(3, 50, 60, "k", "b"),
      O::make_get(3, 70, 80, "k", "b"),
  };
  EXPECT_EQ(verdict(h), Verdict::linearizable);
  // But a read of b that completed before the put was invoked is a violation.
  h.push_back(O::make_get(4, 11, 15, "k", "b"));
  EXPECT_EQ(verdict(h), Verdict::not_linearizable);
}

TEST(Linearizable, IndeterminateCasAndDelete) {
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "k", "a"),
      O::make_cas(2, 20, kInfinity, "k", "a", "b", kUnknown),
      O::make_del(3, 30, kInfinity, "k", kUnknown),
      O::make_get(4, 100, 110, "k", "b"),
      O::make_get(4, 120, 130, "k", kNone),
      O::make_get(5, 140, kInfinity, "k", "whatever", kUnknown),  // unanswered read: ignored
  };
  EXPECT_EQ(verdict(h), Verdict::linearizable);
}

TEST(Linearizable, KeysAreIndependent) {
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "a", "1"),
      O::make_put(1, 20, 30, "b", "2"),
      O::make_get(2, 40, 50, "a", "1"),
      O::make_get(2, 60, 70, "b", "2"),
      O::make_get(2, 80, 90, "c", kNone),
  };
  auto r = check(h);
  EXPECT_EQ(r.verdict, Verdict::linearizable);
  EXPECT_EQ(r.keys_checked, 3u);
}

TEST(LinearizabilityInput, MalformedOperationsAreReportedNotJudged) {
  EXPECT_EQ(verdict({O::make_put(1, 10, 5, "k", "a")}), Verdict::invalid_history);
  EXPECT_EQ(verdict({O::make_put(1, 10, kInfinity, "k", "a")}), Verdict::invalid_history);
  EXPECT_EQ(verdict({O::make_put(1, 0, 5, "k", "a", kFail)}), Verdict::invalid_history);
}

TEST(LinearizabilityBudget, RunningOutIsInconclusiveNotAPass) {
  // Many concurrent indeterminate writes and a late read: a big search.
  std::vector<Operation> h;
  for (int i = 0; i < 40; ++i) h.push_back(O::make_put(i, i, kInfinity, "k", name("v", i), kUnknown));
  for (int i = 0; i < 40; ++i) h.push_back(O::make_get(100, 1000 + 10 * i, 1005 + 10 * i, "k", name("v", i)));
  h.push_back(O::make_get(100, 2000, 2005, "k", "nope"));
  Budget b;
  b.max_steps = 1000;
  auto r = check(h, b);
  EXPECT_EQ(r.verdict, Verdict::inconclusive);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.key, "k");
}

// ------------------------------------------------------------ text format

TEST(HistoryFormat, RoundTripsEveryKindAndAwkwardBytes) {
  std::vector<Operation> h = {
      O::make_put(1, 0, 10, "k", "v"),
      O::make_put(2, -5, 10, std::string("a b\t%-\"\n\0\xff", 10), ""),
      O::make_get(3, 1, 2, "k", kNone),
      O::make_get(3, 1, 2, "k", ""),
      O::make_get(3, 1, 2, "k", "-"),
      O::make_get(3, 1, kInfinity, "k", kNone, kUnknown),
      O::make_cas(4, 5, 6, "k", kNone, "x", kOk),
      O::make_cas(4, 5, 6, "k", "", "x", kFail),
      O::make_cas(4, 5, 77, "k", "p", "x", kUnknown),
      O::make_del(5, 7, 8, "k"),
      O::make_del(5, 7, kInfinity, "k", kUnknown),
  };
  std::ostringstream out;
  write_history(out, h);
  auto parsed = parse_history(out.str());
  ASSERT_TRUE(parsed.ok()) << parsed.error << "\n" << out.str();
  EXPECT_EQ(parsed.ops, h);
}

TEST(HistoryFormat, ParsesTheDocumentedExample) {
  auto p = parse_history(
      "# raft-lincheck history v1\n"
      "1 1000 1520 put k1 v1 ok\n"
      "2 1010 1600 get k1 v1\n"
      "\n"
      "2 1700 inf cas k1 v1 v2 ?\n"
      "3 1800 1900 cas k1 - v3 fail\n"
      "3 2000 2100 del k1 ok\n"
      "3 2200 2300 get k1 -\n");
  ASSERT_TRUE(p.ok()) << p.error;
  ASSERT_EQ(p.ops.size(), 6u);
  EXPECT_EQ(p.ops[2], O::make_cas(2, 1700, kInfinity, "k1", "v1", "v2", kUnknown));
  EXPECT_EQ(p.ops[3], O::make_cas(3, 1800, 1900, "k1", kNone, "v3", kFail));
  EXPECT_EQ(p.ops[5], O::make_get(3, 2200, 2300, "k1", kNone));
  EXPECT_EQ(check(p.ops).verdict, Verdict::linearizable);
}

TEST(HistoryFormat, RejectsMalformedLinesWithTheLineNumber) {
  for (const char* bad : {"1 0 10 put k v",            // no result
                          "1 0 10 put k v fail",       // put cannot fail
                          "x 0 10 put k v ok",         // client
                          "1 0 inf put k v ok",        // definite result, no completion
                          "1 9 3 get k v",             // completes before invoke
                          "1 0 10 get k %4",           // truncated escape
                          "1 0 10 get k %zz",          // bad escape
                          "1 0 10 get k a\"b",         // unencoded byte
                          "1 0 10 frob k ok",          // unknown op
                          "1 0 10 cas k a b maybe"}) {  // cas result
    auto p = parse_history(std::string("# header\n") + bad + "\n");
    EXPECT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.error.rfind("line 2:", 0), 0u) << p.error;
  }
}

// ------------------------------------------------------------ random histories

// Simulates clients against a real (hence linearizable) register per key.
// Every written value is unique, so violations can be constructed exactly.
struct GenOptions {
  int clients = 5;
  int keys = 1;
  int ops = 30;
  double indeterminate = 0.0;
  int latency = 20;
};

std::vector<Operation> generate(std::uint64_t seed, const GenOptions& o) {
  std::mt19937_64 rng(seed);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  struct Pending {
    Operation op;
    std::int64_t lp;  // linearization point, within [invoke, complete]
    bool effect;      // an indeterminate op may not take effect at all
    bool unknown;     // indeterminate: its outcome is not recorded
  };
  std::vector<Pending> ops;
  std::vector<std::int64_t> clock(o.clients, 0);
  std::map<std::string, std::vector<std::string>> written;  // per key, for cas prev choices
  int counter = 0;
  for (int n = 0; n < o.ops; ++n) {
    const int c = static_cast<int>(std::min_element(clock.begin(), clock.end()) - clock.begin());
    const std::int64_t invoke = clock[c] + uni(0, 3);
    const std::int64_t lp = invoke + uni(0, o.latency);
    const std::int64_t complete = lp + uni(0, o.latency);
    clock[c] = complete + 1;
    std::string key = name("k", uni(0, o.keys - 1));
    Operation op;
    op.client = static_cast<std::uint64_t>(c);
    op.invoke = invoke;
    op.complete = complete;
    op.key = key;
    const int r = uni(0, 99);
    if (r < 30) {
      op.kind = Kind::put;
    } else if (r < 65) {
      op.kind = Kind::get;
    } else if (r < 90) {
      op.kind = Kind::cas;
      auto& w = written[key];
      const int pick = uni(-1, static_cast<int>(w.size()) - 1);
      if (pick >= 0 && !w.empty()) op.prev = w[w.size() - 1 - static_cast<std::size_t>(pick) % std::min<std::size_t>(w.size(), 3)];
    } else {
      op.kind = Kind::del;
    }
    if (op.kind == Kind::put || op.kind == Kind::cas) {
      op.value = name("v", counter++);
      written[key].push_back(op.value);
    }
    bool effect = true, unknown = false;
    if (std::uniform_real_distribution<double>(0, 1)(rng) < o.indeterminate) {
      unknown = true;
      effect = uni(0, 1) == 1;
    }
    op.outcome = Outcome::unknown;  // set below for definite ops
    ops.push_back({std::move(op), lp, effect, unknown});
  }
  std::vector<std::size_t> order(ops.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return ops[a].lp < ops[b].lp; });
  std::map<std::string, std::optional<std::string>> reg;
  for (auto i : order) {
    auto& p = ops[i];
    auto& cur = reg[p.op.key];
    const bool unknown = p.unknown;
    if (!p.effect) continue;
    switch (p.op.kind) {
      case Kind::put:
        cur = p.op.value;
        if (!unknown) p.op.outcome = Outcome::ok;
        break;
      case Kind::get:
        if (!unknown) p.op.read = cur, p.op.outcome = Outcome::ok;
        break;
      case Kind::cas: {
        const bool match = cur == p.op.prev;
        if (match) cur = p.op.value;
        if (!unknown) p.op.outcome = match ? Outcome::ok : Outcome::fail;
        break;
      }
      case Kind::del:
        cur.reset();
        if (!unknown) p.op.outcome = Outcome::ok;
        break;
    }
  }
  std::vector<Operation> h;
  for (auto& p : ops) h.push_back(std::move(p.op));
  return h;
}

TEST(LinearizabilityRandom, HistoriesOfARealRegisterPass) {
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    GenOptions o;
    o.clients = 1 + static_cast<int>(seed % 6);
    o.keys = 1 + static_cast<int>(seed % 3);
    o.ops = 60;
    o.indeterminate = seed % 2 ? 0.05 : 0.0;
    auto h = generate(seed, o);
    auto r = check(h);
    ASSERT_EQ(r.verdict, Verdict::linearizable) << "seed " << seed << ": " << r.explanation;
  }
}

// Mutation: pick a read R and a value v written (only, values being unique)
// by a definite write W1, such that a definite overwrite W2 began after W1
// completed and completed before R began. R returning v is then impossible.
TEST(LinearizabilityRandom, ConstructedStaleReadsAreRejected) {
  int constructed = 0;
  for (std::uint64_t seed = 1; seed <= 300 && constructed < 150; ++seed) {
    GenOptions o;
    o.clients = 2 + static_cast<int>(seed % 4);
    o.ops = 50;
    o.indeterminate = seed % 3 == 0 ? 0.05 : 0.0;
    auto h = generate(seed, o);
    auto writes = [](const Operation& op) {
      if (op.outcome != Outcome::ok) return false;
      return op.kind == Kind::put || op.kind == Kind::cas || op.kind == Kind::del;
    };
    bool done = false;
    for (std::size_t r = h.size(); r-- > 0 && !done;) {
      if (h[r].kind != Kind::get || h[r].outcome != Outcome::ok) continue;
      for (std::size_t w2 = 0; w2 < h.size() && !done; ++w2) {
        if (!writes(h[w2]) || h[w2].key != h[r].key || h[w2].complete >= h[r].invoke) continue;
        for (std::size_t w1 = 0; w1 < h.size() && !done; ++w1) {
          if (!writes(h[w1]) || h[w1].kind == Kind::del || h[w1].key != h[r].key) continue;
          if (h[w1].complete >= h[w2].invoke || h[r].read == h[w1].value) continue;
          auto bad = h;
          bad[r].read = h[w1].value;
          auto res = check(bad);
          ASSERT_EQ(res.verdict, Verdict::not_linearizable)
              << "seed " << seed << ": read #" << r << " made to return " << h[w1].value;
          ++constructed;
          done = true;
        }
      }
    }
  }
  EXPECT_GE(constructed, 100);
}

// Brute force: try every order consistent with real time.
bool brute_force_linearizable(const std::vector<Operation>& h) {
  const std::size_t n = h.size();
  auto end = [&](std::size_t i) { return h[i].outcome == Outcome::unknown ? kInfinity : h[i].complete; };
  std::vector<bool> used(n, false);
  std::function<bool(std::optional<std::string>, std::size_t)> rec = [&](std::optional<std::string> s,
                                                                         std::size_t placed) {
    if (placed == n) return true;
    for (std::size_t i = 0; i < n; ++i) {
      if (used[i]) continue;
      bool ready = true;  // every op that ended before i began is placed
      for (std::size_t j = 0; j < n && ready; ++j)
        if (!used[j] && j != i && end(j) < h[i].invoke) ready = false;
      if (!ready) continue;
      const auto& op = h[i];
      std::optional<std::string> next = s;
      bool legal = true;
      switch (op.kind) {
        case Kind::put: next = op.value; break;
        case Kind::del: next.reset(); break;
        case Kind::get: legal = op.outcome == Outcome::unknown || s == op.read; break;
        case Kind::cas:
          if (op.outcome == Outcome::ok) legal = s == op.prev, next = op.value;
          else if (op.outcome == Outcome::fail) legal = s != op.prev;
          else if (s == op.prev) next = op.value;
          break;
      }
      if (!legal) continue;
      used[i] = true;
      if (rec(next, placed + 1)) return true;
      used[i] = false;
    }
    return false;
  };
  return rec(std::nullopt, 0);
}

TEST(LinearizabilityRandom, AgreesWithBruteForceOnSmallArbitraryHistories) {
  std::mt19937_64 rng(99);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const std::vector<std::optional<std::string>> vals = {std::nullopt, "a", "b"};
  int yes = 0, no = 0;
  for (int t = 0; t < 3000; ++t) {
    std::vector<Operation> h;
    const int n = uni(1, 7);
    for (int i = 0; i < n; ++i) {
      Operation op;
      op.client = static_cast<std::uint64_t>(i);
      op.key = "k";
      op.invoke = uni(0, 20);
      op.complete = op.invoke + uni(0, 10);
      op.kind = static_cast<Kind>(uni(0, 3));
      op.outcome = uni(0, 3) == 0 ? Outcome::unknown : Outcome::ok;
      if (op.kind == Kind::put || op.kind == Kind::cas) op.value = *vals[static_cast<std::size_t>(uni(1, 2))];
      if (op.kind == Kind::cas) {
        op.prev = vals[static_cast<std::size_t>(uni(0, 2))];
        if (op.outcome == Outcome::ok && uni(0, 1)) op.outcome = Outcome::fail;
      }
      if (op.kind == Kind::get && op.outcome == Outcome::ok) op.read = vals[static_cast<std::size_t>(uni(0, 2))];
      h.push_back(op);
    }
    const bool expected = brute_force_linearizable(h);
    (expected ? yes : no)++;
    std::ostringstream text;
    write_history(text, h);
    ASSERT_EQ(check(h).verdict, expected ? Verdict::linearizable : Verdict::not_linearizable) << text.str();
  }
  // Both answers occur often enough for the comparison to mean something.
  EXPECT_GT(yes, 300);
  EXPECT_GT(no, 300);
}

// ------------------------------------------------------------ performance

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Turns the last answered read that found a value into a stale/unknown one.
void mutate_last_read(std::vector<Operation>& h) {
  for (std::size_t i = h.size(); i-- > 0;) {
    if (h[i].kind == Kind::get && h[i].outcome == Outcome::ok && h[i].read) {
      h[i].read = "never-written";
      return;
    }
  }
}

TEST(LinearizabilityPerformance, FiveKeysTwoThousandOpsEachFiveClients) {
  GenOptions o;
  o.clients = 5;
  o.keys = 5;
  o.ops = 10000;
  auto h = generate(2024, o);
  auto t0 = std::chrono::steady_clock::now();
  auto r = check(h);
  std::cout << "[ perf     ] " << h.size() << " ops, 5 keys, 5 clients: " << r.steps << " steps, "
            << seconds_since(t0) << " s\n";
  EXPECT_EQ(r.verdict, Verdict::linearizable) << r.explanation;
  EXPECT_EQ(r.keys_checked, 5u);
  EXPECT_LT(seconds_since(t0), 10.0);
  // A violation in the last read forces the search to exhaust everything
  // before it.
  mutate_last_read(h);
  t0 = std::chrono::steady_clock::now();
  auto bad = check(h);
  std::cout << "[ perf     ] mutated: " << bad.steps << " steps, " << seconds_since(t0) << " s\n";
  EXPECT_EQ(bad.verdict, Verdict::not_linearizable);
  EXPECT_LT(seconds_since(t0), 10.0);
}

// Indeterminate writes stay concurrent with everything after them: the
// expensive case. 1% of 10,000 operations is what a short chaos run with
// faults produces.
TEST(LinearizabilityPerformance, WithOnePercentIndeterminate) {
  GenOptions o;
  o.clients = 5;
  o.keys = 5;
  o.ops = 10000;
  o.indeterminate = 0.01;
  auto h = generate(2024, o);
  auto t0 = std::chrono::steady_clock::now();
  auto r = check(h);
  std::cout << "[ perf     ] " << h.size() << " ops, 1% indeterminate: " << r.steps << " steps, "
            << seconds_since(t0) << " s\n";
  EXPECT_EQ(r.verdict, Verdict::linearizable) << r.explanation;
  EXPECT_LT(seconds_since(t0), 20.0);
}

}  // namespace
}  // namespace lincheck
