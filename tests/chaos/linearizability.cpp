#include "linearizability.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <istream>
#include <map>
#include <ostream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

// The checker's own invariants (always on).
#define RAFT_LINCHECK_ASSERT(expr)                                                    \
  do {                                                                                \
    if (!(expr)) {                                                                    \
      std::fprintf(stderr, "%s:%d: lincheck invariant failed: %s\n", __FILE__, __LINE__, #expr); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

namespace lincheck {

Operation Operation::make_put(std::uint64_t c, std::int64_t t0, std::int64_t t1, std::string k, std::string v,
                              Outcome o) {
  Operation op;
  op.client = c, op.invoke = t0, op.complete = t1, op.kind = Kind::put;
  op.key = std::move(k), op.value = std::move(v), op.outcome = o;
  return op;
}
Operation Operation::make_get(std::uint64_t c, std::int64_t t0, std::int64_t t1, std::string k,
                              std::optional<std::string> r, Outcome o) {
  Operation op;
  op.client = c, op.invoke = t0, op.complete = t1, op.kind = Kind::get;
  op.key = std::move(k), op.read = std::move(r), op.outcome = o;
  return op;
}
Operation Operation::make_cas(std::uint64_t c, std::int64_t t0, std::int64_t t1, std::string k,
                              std::optional<std::string> p, std::string v, Outcome o) {
  Operation op;
  op.client = c, op.invoke = t0, op.complete = t1, op.kind = Kind::cas;
  op.key = std::move(k), op.prev = std::move(p), op.value = std::move(v), op.outcome = o;
  return op;
}
Operation Operation::make_del(std::uint64_t c, std::int64_t t0, std::int64_t t1, std::string k, Outcome o) {
  Operation op;
  op.client = c, op.invoke = t0, op.complete = t1, op.kind = Kind::del;
  op.key = std::move(k), op.outcome = o;
  return op;
}

std::string_view to_string(Verdict v) noexcept {
  switch (v) {
    case Verdict::linearizable: return "linearizable";
    case Verdict::not_linearizable: return "not linearizable";
    case Verdict::inconclusive: return "inconclusive";
    case Verdict::invalid_history: return "invalid history";
  }
  return "?";
}

namespace {

std::string_view kind_name(Kind k) {
  switch (k) {
    case Kind::put: return "put";
    case Kind::get: return "get";
    case Kind::cas: return "cas";
    case Kind::del: return "del";
  }
  return "?";
}

bool plain_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("_.,:/+=@").find(static_cast<char>(c)) != std::string_view::npos;
}

std::string encode_string(std::string_view s) {
  if (s.empty()) return "\"\"";
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (plain_byte(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}
std::string encode_opt(const std::optional<std::string>& s) { return s ? encode_string(*s) : std::string("-"); }

std::string time_str(std::int64_t t) { return t == kInfinity ? std::string("inf") : std::to_string(t); }

// Human-readable form of one operation for explanations.
std::string describe(const Operation& op, std::size_t index) {
  std::ostringstream o;
  o << '#' << index << " client " << op.client << " [" << time_str(op.invoke) << ", "
    << time_str(op.outcome == Outcome::unknown ? kInfinity : op.complete) << "] ";
  std::string s = o.str();
  const std::string line = format_operation(op);
  s += line.substr(line.find(std::string(kind_name(op.kind)) + " "));
  return s;
}

// ---------------------------------------------------------------- the model
//
// A register holding "absent" (-1) or the interned id of a value.
using State = std::int32_t;
constexpr State kAbsent = -1;

struct ModelOp {
  Kind kind;
  Outcome outcome;
  State arg = kAbsent;   // put/cas: value written; get: value read
  State prev = kAbsent;  // cas: expected
};

// The register's sequential specification. Returns false if `op` with its
// recorded outcome cannot happen in state `s`; else sets `next`.
bool step(State s, const ModelOp& op, State& next) {
  switch (op.kind) {
    case Kind::put:
      next = op.arg;
      return true;
    case Kind::del:
      next = kAbsent;
      return true;
    case Kind::get:
      next = s;
      return op.outcome == Outcome::unknown || s == op.arg;
    case Kind::cas:
      if (op.outcome == Outcome::ok) {
        next = op.arg;
        return s == op.prev;
      }
      if (op.outcome == Outcome::fail) {
        next = s;
        return s != op.prev;
      }
      next = s == op.prev ? op.arg : s;  // unknown: a CAS swaps iff it can
      return true;
  }
  return false;
}

// ---------------------------------------------------------------- the search

struct Bitset {
  std::vector<std::uint64_t> w;
  explicit Bitset(std::size_t n) : w((n + 63) / 64, 0) {}
  void set(std::size_t i) { w[i / 64] |= 1ull << (i % 64); }
  void clear(std::size_t i) { w[i / 64] &= ~(1ull << (i % 64)); }
  std::size_t hash() const {
    std::uint64_t h = 0x9e3779b97f4a7c15ull;
    for (auto x : w) h = (h ^ x) * 0x100000001b3ull + (h >> 29);
    return static_cast<std::size_t>(h);
  }
};

// Memoization (Lowe): a configuration is the set of linearized operations
// plus the model state; a configuration seen before is not explored again.
//
// Subsumption, for indeterminate operations: a configuration (D, I2, x) --
// D the linearized definite operations, I2 the linearized indeterminate
// ones, x the state -- is also pruned if (D, I1, x) with I1 a subset of I2
// was explored completely without success. Any completion from (D, I2, x)
// would give one from (D, I1, x): append the operations of I2 \ I1 at the
// end, where they are legal in every state (their outcome is unknown) and
// no operation has to follow them (their return is at +infinity). By
// induction over the order in which explorations finish, no finished
// configuration has a completion, so the pruning loses nothing. Pruning
// against configurations still being explored (ancestors) would be unsound.
// Without subsumption every pending indeterminate write doubles the number
// of configurations; the brute-force comparison in the tests covers it.
struct CacheKey {
  std::vector<std::uint64_t> def, ind;
  State state;
  std::size_t hash;
  friend bool operator==(const CacheKey& a, const CacheKey& b) {
    return a.state == b.state && a.def == b.def && a.ind == b.ind;
  }
};
struct CacheHash {
  std::size_t operator()(const CacheKey& e) const { return e.hash; }
};
bool is_subset(const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] & ~b[i]) return false;
  return true;
}

class Cache {
 public:
  // False if the configuration was seen, or is subsumed by a finished one;
  // else records it as seen and returns true.
  bool visit(const Bitset& def, const Bitset& ind, State model_state, bool after_ind) {
    const State state = model_state * 2 + (after_ind ? 1 : 0);
    const std::size_t h = def.hash() ^ (static_cast<std::size_t>(state + 1) * 0x9e3779b1u);
    if (!ind.w.empty()) {
      auto it = finished_.find(CacheKey{def.w, {}, state, h});
      if (it != finished_.end())
        for (const auto& f : it->second)
          if (is_subset(f, ind.w)) return false;
    }
    return seen_.insert(CacheKey{def.w, ind.w, state, h ^ (ind.hash() * 31)}).second;
  }
  // The exploration of (def, ind, state) ended without success.
  void finish(const Bitset& def, const Bitset& ind, State model_state, bool after_ind) {
    const State state = model_state * 2 + (after_ind ? 1 : 0);
    if (ind.w.empty()) return;  // exact matches are pruned by seen_ already
    const std::size_t h = def.hash() ^ (static_cast<std::size_t>(state + 1) * 0x9e3779b1u);
    auto& list = finished_[CacheKey{def.w, {}, state, h}];
    for (const auto& f : list)
      if (is_subset(f, ind.w)) return;
    std::erase_if(list, [&](const auto& f) { return is_subset(ind.w, f); });  // keep an antichain
    list.push_back(ind.w);
  }

 private:
  std::unordered_set<CacheKey, CacheHash> seen_;
  std::unordered_map<CacheKey, std::vector<std::vector<std::uint64_t>>, CacheHash> finished_;
};

struct Node {
  bool is_call;
  std::size_t op;      // index into the key's op list
  std::size_t match;   // call: its return node; return: its call node
  std::size_t prev, next;
};
constexpr std::size_t kNil = static_cast<std::size_t>(-1);

enum class KeyResult { ok, violation, out_of_budget };

struct Searcher {
  Searcher(const std::vector<ModelOp>& o, std::uint64_t& st, const Budget& b, std::chrono::steady_clock::time_point t)
      : ops(o), steps(st), budget(b), start(t) {}
  // Inputs.
  const std::vector<ModelOp>& ops;
  std::uint64_t& steps;
  const Budget& budget;
  std::chrono::steady_clock::time_point start;

  // Outputs for explanations: the deepest dead end seen.
  std::size_t best_depth = 0;
  std::size_t best_blocked = kNil;
  std::vector<std::size_t> best_prefix;
  State best_state = kAbsent;

  bool out_of_budget() const {
    if (steps > budget.max_steps) return true;
    if (budget.max_time.count() > 0 && (steps & 0xfff) == 0)
      return std::chrono::steady_clock::now() - start > budget.max_time;
    return false;
  }

  KeyResult run(const std::vector<std::int64_t>& invoke, const std::vector<std::int64_t>& complete) {
    const std::size_t n = ops.size();
    // Events: calls before returns at equal times (touching intervals are
    // treated as concurrent, as Porcupine does); ties broken by op index.
    struct Ev {
      std::int64_t t;
      int ret;
      std::size_t op;
    };
    std::vector<Ev> evs;
    evs.reserve(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
      evs.push_back({invoke[i], 0, i});
      evs.push_back({complete[i], 1, i});
    }
    std::sort(evs.begin(), evs.end(), [](const Ev& a, const Ev& b) {
      if (a.t != b.t) return a.t < b.t;
      if (a.ret != b.ret) return a.ret < b.ret;
      return a.op < b.op;
    });
    // Node 0 is the head sentinel.
    std::vector<Node> nodes(2 * n + 1);
    std::vector<std::size_t> call_node(n), ret_node(n);
    nodes[0] = {false, kNil, kNil, kNil, 2 * n >= 1 ? 1 : kNil};
    for (std::size_t k = 0; k < evs.size(); ++k) {
      const std::size_t id = k + 1;
      nodes[id] = {evs[k].ret == 0, evs[k].op, kNil, id - 1, k + 1 < evs.size() ? id + 1 : kNil};
      (evs[k].ret == 0 ? call_node : ret_node)[evs[k].op] = id;
    }
    if (n == 0) nodes[0].next = kNil;
    for (std::size_t i = 0; i < n; ++i) {
      nodes[call_node[i]].match = ret_node[i];
      nodes[ret_node[i]].match = call_node[i];
    }
    auto lift = [&](std::size_t call) {
      Node& c = nodes[call];
      nodes[c.prev].next = c.next;
      if (c.next != kNil) nodes[c.next].prev = c.prev;
      Node& r = nodes[c.match];
      nodes[r.prev].next = r.next;
      if (r.next != kNil) nodes[r.next].prev = r.prev;
    };
    auto unlift = [&](std::size_t call) {
      Node& c = nodes[call];
      Node& r = nodes[c.match];
      nodes[r.prev].next = c.match;
      if (r.next != kNil) nodes[r.next].prev = c.match;
      nodes[c.prev].next = call;
      if (c.next != kNil) nodes[c.next].prev = call;
    };

    // Separate bit spaces for definite and indeterminate operations.
    std::vector<std::size_t> bit(n);
    std::vector<bool> indeterminate(n);
    std::size_t n_def = 0, n_ind = 0;
    for (std::size_t i = 0; i < n; ++i) {
      indeterminate[i] = complete[i] == kInfinity;
      bit[i] = indeterminate[i] ? n_ind++ : n_def++;
    }
    Bitset lin_def(n_def), lin_ind(n_ind);
    auto set_bit = [&](std::size_t op) { (indeterminate[op] ? lin_ind : lin_def).set(bit[op]); };
    auto clear_bit = [&](std::size_t op) { (indeterminate[op] ? lin_ind : lin_def).clear(bit[op]); };
    Cache cache;
    struct Frame {
      std::size_t call;
      State state_before;
    };
    std::vector<Frame> stack;
    State state = kAbsent;
    std::size_t entry = nodes[0].next;
    // Done when every definite operation is linearized: the indeterminate
    // ones left can all go last, in any order.
    std::size_t def_done = 0;
    // Definite calls are tried before indeterminate ones (phase 1, then 2,
    // at each configuration): the search then explores "it has not happened
    // (yet)" first, and subsumption prunes the "it happened here" branches
    // as soon as a definite write makes them indistinguishable.
    int phase = 1;
    while (def_done < n_def) {
      ++steps;
      if (out_of_budget()) return KeyResult::out_of_budget;
      RAFT_LINCHECK_ASSERT(entry != kNil);
      const Node& e = nodes[entry];
      if (e.is_call) {
        if (indeterminate[e.op] != (phase == 2)) {
          entry = e.next;
          continue;
        }
        // An indeterminate put or delete right after another indeterminate
        // operation would erase that one's effect; the same completion with
        // the earlier one moved to the very end (where indeterminate
        // operations are harmless) is explored instead. The flag "last
        // linearized op was indeterminate" is part of the configuration.
        const bool after_ind = !stack.empty() && indeterminate[nodes[stack.back().call].op];
        if (phase == 2 && after_ind && ops[e.op].kind != Kind::cas) {
          entry = e.next;
          continue;
        }
        State next;
        if (step(state, ops[e.op], next)) {
          set_bit(e.op);
          if (cache.visit(lin_def, lin_ind, next, indeterminate[e.op])) {
            stack.push_back({entry, state});
            def_done += !indeterminate[e.op];
            state = next;
            lift(entry);
            entry = nodes[0].next;
            phase = 1;
            continue;
          }
          clear_bit(e.op);
        }
        entry = e.next;
        continue;
      }
      // A return whose call is not linearized: every candidate of this
      // phase was tried.
      if (phase == 1 && n_ind > 0) {
        phase = 2;
        entry = nodes[0].next;
        continue;
      }
      if (stack.size() >= best_depth) {
        best_depth = stack.size();
        best_blocked = e.op;
        best_state = state;
        best_prefix.clear();
        for (const auto& f : stack) best_prefix.push_back(nodes[f.call].op);
      }
      if (stack.empty()) return KeyResult::violation;
      const Frame f = stack.back();
      stack.pop_back();
      cache.finish(lin_def, lin_ind, state, indeterminate[nodes[f.call].op]);
      const std::size_t op = nodes[f.call].op;
      def_done -= !indeterminate[op];
      state = f.state_before;
      clear_bit(op);
      unlift(f.call);
      entry = nodes[f.call].next;
      phase = indeterminate[op] ? 2 : 1;
    }
    return KeyResult::ok;
  }
};

std::string validate(const Operation& op) {
  if (op.outcome == Outcome::unknown) return {};
  if (op.complete == kInfinity) return "a definite outcome needs a finite complete time";
  if (op.complete < op.invoke) return "complete before invoke";
  if (op.outcome == Outcome::fail && op.kind != Kind::cas) return "only a cas can fail";
  return {};
}

}  // namespace

CheckResult check(std::span<const Operation> history, const Budget& budget) {
  CheckResult res;
  for (std::size_t i = 0; i < history.size(); ++i) {
    if (auto why = validate(history[i]); !why.empty()) {
      res.verdict = Verdict::invalid_history;
      res.key = history[i].key;
      res.explanation = why + ": " + describe(history[i], i);
      res.ops = {i};
      return res;
    }
  }
  std::map<std::string_view, std::vector<std::size_t>> by_key;
  for (std::size_t i = 0; i < history.size(); ++i) by_key[history[i].key].push_back(i);

  const auto start = std::chrono::steady_clock::now();
  std::optional<CheckResult> inconclusive;
  for (const auto& [key, all] : by_key) {
    ++res.keys_checked;
    // Drop what cannot matter (see the header): unanswered gets, and
    // unanswered ops invoked after every definite op of the key completed.
    std::int64_t last_definite = std::numeric_limits<std::int64_t>::min();
    for (auto i : all)
      if (history[i].outcome != Outcome::unknown) last_definite = std::max(last_definite, history[i].complete);
    std::vector<std::size_t> idx;  // key-local op -> history index
    for (auto i : all) {
      const auto& op = history[i];
      if (op.outcome == Outcome::unknown && (op.kind == Kind::get || op.invoke > last_definite)) continue;
      idx.push_back(i);
    }
    std::unordered_map<std::string_view, State> interned;
    std::vector<std::string_view> names;
    // Views into `history`, which outlives the search.
    auto intern = [&](std::string_view v) -> State {
      auto [it, fresh] = interned.emplace(v, static_cast<State>(names.size()));
      if (fresh) names.push_back(v);
      return it->second;
    };
    auto intern_opt = [&](const std::optional<std::string>& v) { return v ? intern(*v) : kAbsent; };
    std::vector<ModelOp> ops;
    std::vector<std::int64_t> invoke, complete;
    for (auto i : idx) {
      const auto& op = history[i];
      ModelOp m{op.kind, op.outcome, kAbsent, kAbsent};
      if (op.kind == Kind::put || op.kind == Kind::cas) m.arg = intern(op.value);
      if (op.kind == Kind::get) m.arg = intern_opt(op.read);
      if (op.kind == Kind::cas) m.prev = intern_opt(op.prev);
      ops.push_back(m);
      invoke.push_back(op.invoke);
      complete.push_back(op.outcome == Outcome::unknown ? kInfinity : op.complete);
    }
    Searcher s(ops, res.steps, budget, start);
    const KeyResult kr = s.run(invoke, complete);
    if (kr == KeyResult::ok) continue;
    if (kr == KeyResult::out_of_budget) {
      // Keep looking at other keys: a definite violation elsewhere is the
      // more useful answer.
      if (!inconclusive) {
        inconclusive.emplace();
        inconclusive->verdict = Verdict::inconclusive;
        inconclusive->key = std::string(key);
        std::ostringstream why;
        why << "search budget exhausted on key " << encode_string(key) << " (" << idx.size()
            << " operations) after " << res.steps << " steps";
        inconclusive->explanation = why.str();
      }
      res.steps = std::min(res.steps, budget.max_steps + 1);
      if (res.steps > budget.max_steps) break;  // nothing left for other keys
      continue;
    }
    res.verdict = Verdict::not_linearizable;
    res.key = std::string(key);
    const std::size_t blocked = idx[s.best_blocked];
    std::ostringstream why;
    why << "key " << encode_string(key) << ": operation " << describe(history[blocked], blocked)
        << " cannot take effect. Longest linearizable prefix: " << s.best_depth << " of " << idx.size()
        << " operations, leaving the value "
        << (s.best_state == kAbsent ? std::string("absent") : encode_string(names[s.best_state]))
        << ". Last linearized:";
    res.ops.push_back(blocked);
    const std::size_t tail = std::min<std::size_t>(s.best_prefix.size(), 4);
    for (std::size_t k = s.best_prefix.size() - tail; k < s.best_prefix.size(); ++k) {
      const std::size_t h = idx[s.best_prefix[k]];
      why << "\n    " << describe(history[h], h);
      res.ops.push_back(h);
    }
    if (tail == 0) why << " (none)";
    // Operations overlapping the blocked one that the prefix did not include.
    std::vector<bool> in_prefix(idx.size(), false);
    for (auto p : s.best_prefix) in_prefix[p] = true;
    why << "\n  Concurrent with it, not linearized:";
    int shown = 0;
    const std::int64_t b0 = invoke[s.best_blocked], b1 = complete[s.best_blocked];
    for (std::size_t k = 0; k < idx.size() && shown < 6; ++k) {
      if (k == s.best_blocked || in_prefix[k]) continue;
      if (invoke[k] <= b1 && b0 <= complete[k]) {
        why << "\n    " << describe(history[idx[k]], idx[k]);
        res.ops.push_back(idx[k]);
        ++shown;
      }
    }
    if (shown == 0) why << " (none)";
    res.explanation = why.str();
    return res;
  }
  if (inconclusive) {
    inconclusive->steps = res.steps;
    inconclusive->keys_checked = res.keys_checked;
    return *inconclusive;
  }
  return res;
}

// ---------------------------------------------------------------- text format

std::string format_operation(const Operation& op) {
  std::string s = std::to_string(op.client);
  auto field = [&s](std::string_view f) {
    s += ' ';
    s += f;
  };
  field(time_str(op.invoke));
  field(time_str(op.complete));
  field(kind_name(op.kind));
  field(encode_string(op.key));
  const bool unknown = op.outcome == Outcome::unknown;
  switch (op.kind) {
    case Kind::put:
      field(encode_string(op.value));
      field(unknown ? "?" : "ok");
      break;
    case Kind::get:
      field(unknown ? std::string("?") : encode_opt(op.read));
      break;
    case Kind::cas:
      field(encode_opt(op.prev));
      field(encode_string(op.value));
      field(unknown ? "?" : op.outcome == Outcome::ok ? "ok" : "fail");
      break;
    case Kind::del:
      field(unknown ? "?" : "ok");
      break;
  }
  return s;
}

void write_history(std::ostream& out, std::span<const Operation> history) {
  out << "# raft-lincheck history v1\n# client invoke complete op key [args] result\n";
  for (const auto& op : history) out << format_operation(op) << '\n';
}

namespace {

bool decode_string(std::string_view tok, std::string& out) {
  out.clear();
  if (tok == "\"\"") return true;
  if (tok.empty() || tok == "-") return false;
  for (std::size_t i = 0; i < tok.size(); ++i) {
    const auto c = static_cast<unsigned char>(tok[i]);
    if (c == '%') {
      if (i + 2 >= tok.size()) return false;
      unsigned v = 0;
      auto r = std::from_chars(tok.data() + i + 1, tok.data() + i + 3, v, 16);
      if (r.ec != std::errc() || r.ptr != tok.data() + i + 3) return false;
      out += static_cast<char>(v);
      i += 2;
    } else if (plain_byte(c)) {
      out += static_cast<char>(c);
    } else {
      return false;
    }
  }
  return true;
}
bool decode_opt(std::string_view tok, std::optional<std::string>& out) {
  if (tok == "-") {
    out.reset();
    return true;
  }
  out.emplace();
  return decode_string(tok, *out);
}
template <class T>
bool decode_int(std::string_view tok, T& v) {
  auto r = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  return r.ec == std::errc() && r.ptr == tok.data() + tok.size();
}
bool decode_time(std::string_view tok, std::int64_t& t) {
  if (tok == "inf") {
    t = kInfinity;
    return true;
  }
  return decode_int(tok, t);
}

// Parses one non-comment line; returns an error reason or "".
std::string parse_line(std::string_view line, Operation& op) {
  std::vector<std::string_view> f;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) f.push_back(line.substr(i, j - i));
    i = j;
  }
  if (f.size() < 6) return "too few fields";
  if (!decode_int(f[0], op.client)) return "bad client";
  if (!decode_time(f[1], op.invoke) || op.invoke == kInfinity) return "bad invoke time";
  if (!decode_time(f[2], op.complete)) return "bad complete time";
  if (!decode_string(f[4], op.key)) return "bad key";
  const std::string_view kind = f[3], result = f.back();
  auto outcome = [&](bool allow_fail) -> bool {
    if (result == "ok") op.outcome = Outcome::ok;
    else if (result == "?") op.outcome = Outcome::unknown;
    else if (allow_fail && result == "fail") op.outcome = Outcome::fail;
    else return false;
    return true;
  };
  if (kind == "put") {
    op.kind = Kind::put;
    if (f.size() != 7) return "put needs: key value result";
    if (!decode_string(f[5], op.value)) return "bad value";
    if (!outcome(false)) return "bad put result";
  } else if (kind == "get") {
    op.kind = Kind::get;
    if (f.size() != 6) return "get needs: key result";
    if (result == "?") {
      op.outcome = Outcome::unknown;
    } else {
      op.outcome = Outcome::ok;
      if (!decode_opt(result, op.read)) return "bad get result";
    }
  } else if (kind == "cas") {
    op.kind = Kind::cas;
    if (f.size() != 8) return "cas needs: key prev value result";
    if (!decode_opt(f[5], op.prev)) return "bad prev";
    if (!decode_string(f[6], op.value)) return "bad value";
    if (!outcome(true)) return "bad cas result";
  } else if (kind == "del") {
    op.kind = Kind::del;
    if (f.size() != 6) return "del needs: key result";
    if (!outcome(false)) return "bad del result";
  } else {
    return "unknown operation";
  }
  if (op.outcome != Outcome::unknown) {
    if (op.complete == kInfinity) return "a definite result needs a finite complete time";
    if (op.complete < op.invoke) return "complete before invoke";
  }
  return {};
}

}  // namespace

ParseResult parse_history(std::istream& in) {
  ParseResult res;
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::string_view v(line);
    const auto first = v.find_first_not_of(" \t\r");
    if (first == std::string_view::npos || v[first] == '#') continue;
    Operation op;
    if (auto why = parse_line(v, op); !why.empty()) {
      std::ostringstream e;
      e << "line " << n << ": " << why;
      res.error = e.str();
      res.ops.clear();
      return res;
    }
    res.ops.push_back(std::move(op));
  }
  return res;
}

ParseResult parse_history(std::string_view text) {
  std::istringstream in{std::string(text)};
  return parse_history(in);
}

}  // namespace lincheck
