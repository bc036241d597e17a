// The raft-kv state machine: command codec, apply semantics, snapshots.
#if defined(RAFT_HAVE_KV_FSM)

#include "kvstore/kv_fsm.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>
#include <vector>

namespace kvstore {
namespace {

using raft::LogEntry;
using raft::LogEntryType;

// Concatenation without `"literal" + std::string&&`, which trips a g++ 12
// -Wrestrict false positive.
std::string cat(std::string_view a, std::uint64_t n) {
  std::string s(a);
  s += std::to_string(n);
  return s;
}

LogEntry cmd_entry(std::uint64_t index, const Command& c) {
  auto data = encode_command(c);
  EXPECT_TRUE(data) << to_string(c.op);
  return LogEntry{LogEntryType::command, index, 1, data ? *data : std::string()};
}

std::string snapshot_of(KvFsm& f, std::uint64_t* index = nullptr) {
  std::string out;
  raft::StringWriter w(out);
  auto r = f.snapshot(w);
  EXPECT_TRUE(r);
  if (index && r) *index = *r;
  return out;
}

std::map<std::string, std::string> contents(const KvFsm& f, int keys, const std::string& prefix = "k") {
  std::map<std::string, std::string> m;
  for (int i = 0; i < keys; ++i) {
    auto k = cat(prefix, static_cast<std::uint64_t>(i));
    if (auto v = f.get(k)) m[k] = *v;
  }
  return m;
}

// ------------------------------------------------------------------ codec

TEST(KvCommandCodec, RoundTripsEveryOp) {
  const std::vector<Command> cmds = {
      Command::put("k", "v"),
      Command::put("key", ""),
      Command::put(std::string(kMaxKeyBytes, 'k'), std::string(kMaxValueBytes, 'v')),
      Command::cas("k", std::nullopt, "new"),
      Command::cas("k", std::string(), "new"),
      Command::cas("k", "old", ""),
      Command::del("k"),
      Command::read(std::string("\0\xff", 2)),
  };
  for (const auto& c : cmds) {
    auto bytes = encode_command(c);
    ASSERT_TRUE(bytes);
    auto back = decode_command(*bytes);
    ASSERT_TRUE(back) << to_string(c.op);
    EXPECT_EQ(*back, c);
  }
}

TEST(KvCommandCodec, EncodesTheDocumentedBytes) {
  auto b = encode_command(Command::cas("ab", std::nullopt, "x"));
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, std::string("\x01\x02\x00\x00\x00\x02"
                            "ab"
                            "\x00"
                            "\x00\x00\x00\x01"
                            "x",
                            14));
}

TEST(KvCommandCodec, EncodeRefusesOutOfLimitArguments) {
  EXPECT_FALSE(encode_command(Command::put("", "v")));
  EXPECT_FALSE(encode_command(Command::put(std::string(kMaxKeyBytes + 1, 'k'), "v")));
  EXPECT_FALSE(encode_command(Command::put("k", std::string(kMaxValueBytes + 1, 'v'))));
  EXPECT_FALSE(encode_command(Command::cas("k", std::string(kMaxValueBytes + 1, 'v'), "v")));
  EXPECT_EQ(validate(Command::del("")), "empty key");
  EXPECT_TRUE(validate(Command::del("k")).empty());
}

TEST(KvCommandCodec, RejectsEveryTruncationAndTrailingBytes) {
  for (const auto& c : {Command::put("key", "value"), Command::cas("key", "old", "new"),
                        Command::cas("key", std::nullopt, "new"), Command::del("key"), Command::read("key")}) {
    auto b = *encode_command(c);
    for (std::size_t n = 0; n < b.size(); ++n) EXPECT_FALSE(decode_command(b.substr(0, n))) << n;
    EXPECT_FALSE(decode_command(b + '\0'));
  }
}

TEST(KvCommandCodec, RejectsBadVersionOpFlagAndLengths) {
  auto b = *encode_command(Command::cas("k", "p", "v"));
  auto bad = b;
  bad[0] = 2;  // version
  EXPECT_FALSE(decode_command(bad));
  for (char op : {0, 5, 127}) {
    bad = b;
    bad[1] = op;
    EXPECT_FALSE(decode_command(bad));
  }
  bad = b;
  bad[7] = 2;  // has_prev must be 0 or 1
  EXPECT_FALSE(decode_command(bad));
  // Empty key, and a key length over the limit with enough bytes behind it.
  EXPECT_FALSE(decode_command(std::string("\x01\x03\x00\x00\x00\x00", 6)));
  std::string big("\x01\x03\x00\x00\x04\x01", 6);
  big += std::string(1025, 'k');
  EXPECT_FALSE(decode_command(big));
  // A length that claims more than the input holds.
  EXPECT_FALSE(decode_command(std::string("\x01\x03\xff\xff\xff\xff", 6) + "k"));
}

TEST(KvCommandCodec, RandomBytesNeverDecodeToAnInvalidCommand) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 24, '\0');
    for (auto& ch : s) ch = static_cast<char>(rng() % 6);  // small values hit valid tags
    auto c = decode_command(s);
    if (c) {
      EXPECT_TRUE(validate(*c).empty());
      EXPECT_EQ(*encode_command(*c), s);  // the encoding is canonical
    }
  }
}

// ------------------------------------------------------------------ apply

TEST(KvFsm, PutGetDelete) {
  KvFsm f;
  f.must_apply(cmd_entry(1, Command::put("a", "1")));
  EXPECT_EQ(f.get("a"), "1");
  f.must_apply(cmd_entry(2, Command::put("a", "2")));
  EXPECT_EQ(f.get("a"), "2");
  EXPECT_EQ(f.result_of(2)->previous, "1");
  f.must_apply(cmd_entry(3, Command::del("a")));
  EXPECT_EQ(f.get("a"), std::nullopt);
  EXPECT_EQ(f.result_of(3)->previous, "2");
  f.must_apply(cmd_entry(4, Command::del("a")));  // deleting an absent key is fine
  EXPECT_EQ(f.result_of(4)->status, Outcome::Status::ok);
  EXPECT_EQ(f.result_of(4)->previous, std::nullopt);
  EXPECT_EQ(f.index(), 4u);
  EXPECT_EQ(f.size(), 0u);
}

TEST(KvFsm, CasOnlyIfAbsent) {
  KvFsm f;
  f.must_apply(cmd_entry(1, Command::cas("k", std::nullopt, "first")));
  EXPECT_EQ(f.result_of(1)->status, Outcome::Status::ok);
  EXPECT_EQ(f.get("k"), "first");
  f.must_apply(cmd_entry(2, Command::cas("k", std::nullopt, "second")));
  EXPECT_EQ(f.result_of(2)->status, Outcome::Status::cas_failed);
  EXPECT_EQ(f.result_of(2)->previous, "first");
  EXPECT_EQ(f.get("k"), "first");
}

TEST(KvFsm, CasMatchSwapsMismatchChangesNothing) {
  KvFsm f;
  f.must_apply(cmd_entry(1, Command::put("k", "a")));
  f.must_apply(cmd_entry(2, Command::cas("k", "b", "c")));
  EXPECT_EQ(f.result_of(2)->status, Outcome::Status::cas_failed);
  EXPECT_EQ(f.get("k"), "a");
  f.must_apply(cmd_entry(3, Command::cas("k", "a", "c")));
  EXPECT_EQ(f.result_of(3)->status, Outcome::Status::ok);
  EXPECT_EQ(f.result_of(3)->previous, "a");
  EXPECT_EQ(f.get("k"), "c");
  // The empty string is a value, not absence.
  f.must_apply(cmd_entry(4, Command::put("e", "")));
  f.must_apply(cmd_entry(5, Command::cas("e", std::nullopt, "x")));
  EXPECT_EQ(f.result_of(5)->status, Outcome::Status::cas_failed);
  f.must_apply(cmd_entry(6, Command::cas("e", std::string(), "x")));
  EXPECT_EQ(f.result_of(6)->status, Outcome::Status::ok);
  EXPECT_EQ(f.get("e"), "x");
}

TEST(KvFsm, ReadBarrierReportsTheValueAndChangesNothing) {
  KvFsm f;
  f.must_apply(cmd_entry(1, Command::read("k")));
  EXPECT_EQ(f.result_of(1)->previous, std::nullopt);
  f.must_apply(cmd_entry(2, Command::put("k", "v")));
  f.must_apply(cmd_entry(3, Command::read("k")));
  EXPECT_EQ(f.result_of(3)->op, Op::read);
  EXPECT_EQ(f.result_of(3)->previous, "v");
  EXPECT_EQ(f.get("k"), "v");
}

TEST(KvFsm, NonCommandEntriesOnlyAdvanceTheIndex) {
  KvFsm f;
  int calls = 0;
  f.on_applied([&](std::uint64_t, const Outcome&) { ++calls; });
  f.must_apply(LogEntry{LogEntryType::initialize, 1, 1, {}});
  f.must_apply(LogEntry{LogEntryType::nop, 2, 1, {}});
  // Data that would decode as a PUT must still not be interpreted.
  f.must_apply(LogEntry{LogEntryType::add_peer, 3, 1, *encode_command(Command::put("k", "v"))});
  EXPECT_EQ(f.index(), 3u);
  EXPECT_EQ(f.size(), 0u);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(f.result_of(3), std::nullopt);
}

TEST(KvFsm, UndecodableCommandIsRecordedInvalidAndSkipped) {
  KvFsm f;
  f.must_apply(LogEntry{LogEntryType::command, 1, 1, "garbage"});
  EXPECT_EQ(f.index(), 1u);
  EXPECT_EQ(f.result_of(1)->status, Outcome::Status::invalid);
  EXPECT_EQ(f.size(), 0u);
}

TEST(KvFsm, OnAppliedSeesEveryCommandInOrderAfterItIsVisible) {
  KvFsm f;
  std::vector<std::uint64_t> seen;
  f.on_applied([&](std::uint64_t i, const Outcome& o) {
    seen.push_back(i);
    EXPECT_EQ(o.status, Outcome::Status::ok);
    EXPECT_EQ(f.get("k"), std::to_string(i));
    EXPECT_EQ(f.index(), i);
  });
  f.must_apply(LogEntry{LogEntryType::nop, 1, 1, {}});
  for (std::uint64_t i = 2; i <= 5; ++i) f.must_apply(cmd_entry(i, Command::put("k", std::to_string(i))));
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{2, 3, 4, 5}));
}

TEST(KvFsm, ResultOfForgetsBeyondTheRetention) {
  KvFsm f(3);
  for (std::uint64_t i = 1; i <= 5; ++i) f.must_apply(cmd_entry(i, Command::put("k", "v")));
  EXPECT_EQ(f.result_of(2), std::nullopt);
  EXPECT_TRUE(f.result_of(3));
  EXPECT_TRUE(f.result_of(5));
  EXPECT_EQ(f.result_of(6), std::nullopt);
}

TEST(KvFsm, IndexNeverGoesBackwards) {
  KvFsm f;
  for (std::uint64_t i = 1; i <= 3; ++i) f.must_apply(cmd_entry(i, Command::put("k", std::to_string(i))));
  // A replayed (already applied) entry is ignored: no effect, no new outcome.
  f.must_apply(cmd_entry(2, Command::put("k", "replayed")));
  f.must_apply(cmd_entry(1, Command::del("k")));
  EXPECT_EQ(f.index(), 3u);
  EXPECT_EQ(f.get("k"), "3");
  EXPECT_EQ(f.result_of(2)->previous, "1");
}

TEST(KvFsmDeathTest, AGapInIndexesIsABug) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  KvFsm f;
  f.must_apply(cmd_entry(1, Command::put("k", "v")));
  EXPECT_DEATH(f.must_apply(cmd_entry(3, Command::put("k", "v"))), "skipped committed entries");
}

// ------------------------------------------------------------------ snapshots

TEST(KvFsmSnapshot, RoundTripsTenThousandKeys) {
  KvFsm f;
  std::mt19937_64 rng(42);
  for (std::uint64_t i = 1; i <= 10000; ++i) {
    std::string v(rng() % 64, '\0');
    for (auto& c : v) c = static_cast<char>(rng());
    f.must_apply(cmd_entry(i, Command::put(cat("k", i - 1), v)));
  }
  f.must_apply(LogEntry{LogEntryType::nop, 10001, 2, {}});
  std::uint64_t idx = 0;
  auto snap = snapshot_of(f, &idx);
  EXPECT_EQ(idx, 10001u);

  KvFsm g;
  g.must_apply(cmd_entry(1, Command::put("stale", "x")));
  raft::StringReader r(snap);
  ASSERT_TRUE(g.restore(r));
  EXPECT_EQ(g.index(), 10001u);
  EXPECT_EQ(g.size(), 10000u);
  EXPECT_EQ(g.get("stale"), std::nullopt);
  EXPECT_EQ(contents(g, 10000), contents(f, 10000));
  EXPECT_EQ(snapshot_of(g), snap);  // deterministic bytes
  // Applying continues after the snapshot's index.
  g.must_apply(cmd_entry(10002, Command::put("k0", "after")));
  EXPECT_EQ(g.get("k0"), "after");
}

TEST(KvFsmSnapshot, StreamsInBoundedChunks) {
  struct Recording final : raft::Writer {
    std::size_t largest = 0, writes = 0;
    raft::result<std::size_t> write(std::span<const std::byte> d) override {
      largest = std::max(largest, d.size());
      ++writes;
      return d.size();
    }
  } w;
  KvFsm f;
  for (std::uint64_t i = 1; i <= 2000; ++i)
    f.must_apply(cmd_entry(i, Command::put(cat("k", i), std::string(1000, 'v'))));
  ASSERT_TRUE(f.snapshot(w));
  EXPECT_GT(w.writes, 20u);
  EXPECT_LE(w.largest, kSnapshotChunkBytes + 8 + kMaxKeyBytes + kMaxValueBytes);
  EXPECT_LT(w.largest, kSnapshotChunkBytes + 2000);
}

TEST(KvFsmSnapshot, EmptyStateRoundTrips) {
  KvFsm f, g;
  auto snap = snapshot_of(f);
  raft::StringReader r(snap);
  ASSERT_TRUE(g.restore(r));
  EXPECT_EQ(g.index(), 0u);
  EXPECT_EQ(g.size(), 0u);
}

class KvFsmBadSnapshot : public ::testing::Test {
 protected:
  void SetUp() override {
    KvFsm src;
    src.must_apply(cmd_entry(1, Command::put("a", "alpha")));
    src.must_apply(cmd_entry(2, Command::put("b", "")));
    src.must_apply(cmd_entry(3, Command::put("c", "gamma")));
    good_ = snapshot_of(src);
    target_.must_apply(cmd_entry(1, Command::put("old", "state")));
    target_.must_apply(LogEntry{LogEntryType::nop, 2, 1, {}});
  }
  void expect_rejected_and_intact(const std::string& bytes, const std::string& what) {
    raft::StringReader r(bytes);
    EXPECT_FALSE(target_.restore(r)) << what;
    EXPECT_EQ(target_.index(), 2u) << what;
    EXPECT_EQ(target_.get("old"), "state") << what;
    EXPECT_EQ(target_.size(), 1u) << what;
  }
  std::string good_;
  KvFsm target_;
};

TEST_F(KvFsmBadSnapshot, EveryTruncationFailsAndLeavesStateIntact) {
  for (std::size_t n = 0; n < good_.size(); ++n) expect_rejected_and_intact(good_.substr(0, n), std::to_string(n));
}

TEST_F(KvFsmBadSnapshot, EveryFlippedByteFailsAndLeavesStateIntact) {
  for (std::size_t i = 0; i < good_.size(); ++i) {
    auto bad = good_;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    expect_rejected_and_intact(bad, cat("byte ", i));
  }
}

TEST_F(KvFsmBadSnapshot, TrailingBytesFail) { expect_rejected_and_intact(good_ + "x", "trailing"); }

TEST_F(KvFsmBadSnapshot, HugeDeclaredLengthsFailWithoutAllocating) {
  // A record claiming a 4 GiB key: refused by the limit check, not by OOM.
  auto bad = good_;
  bad[24] = bad[25] = bad[26] = bad[27] = '\xff';
  expect_rejected_and_intact(bad, "huge key length");
  // A count claiming 2^64-1 records: input ends first.
  bad = good_;
  for (int i = 16; i < 24; ++i) bad[i] = '\xff';
  expect_rejected_and_intact(bad, "huge count");
}

TEST_F(KvFsmBadSnapshot, ATruncatedTenThousandKeySnapshotFails) {
  KvFsm big;
  for (std::uint64_t i = 1; i <= 10000; ++i) big.must_apply(cmd_entry(i, Command::put(cat("k", i), "v")));
  auto snap = snapshot_of(big);
  for (std::size_t cut : {snap.size() / 2, snap.size() - 9, snap.size() - 1})
    expect_rejected_and_intact(snap.substr(0, cut), cat("cut at ", cut));
}

// A snapshot taken on another thread while applies continue is a consistent
// cut: restoring it gives exactly the state after applying 1..index.
TEST(KvFsmSnapshot, TakenWhileApplyingIsAConsistentCut) {
  constexpr int kKeys = 50;
  constexpr std::uint64_t kEntries = 20000;
  // Entry i: put k(i % kKeys) = i; every 7th entry deletes instead; every
  // 11th is a nop. The expected state after n entries is computed by replay.
  auto entry = [](std::uint64_t i) {
    if (i % 11 == 0) return LogEntry{LogEntryType::nop, i, 1, {}};
    std::string k = cat("k", i % kKeys);
    return i % 7 == 0 ? cmd_entry(i, Command::del(k)) : cmd_entry(i, Command::put(k, std::to_string(i)));
  };
  std::vector<LogEntry> entries;
  for (std::uint64_t i = 1; i <= kEntries; ++i) entries.push_back(entry(i));

  KvFsm f;
  // The applier waits for a snapshot after every 2,000 entries, so snapshots
  // are taken while it runs however the two threads are scheduled (without
  // the handshake it could finish before the first snapshot: the test failed
  // about once in 20 runs on a loaded machine).
  std::atomic<int> taken{0};
  std::thread applier([&] {
    for (std::size_t i = 0; i < entries.size(); ++i) {
      f.must_apply(entries[i]);
      const int want = static_cast<int>((i + 1) / 2000);
      while (taken.load() < want) std::this_thread::yield();
    }
  });
  std::vector<std::pair<std::uint64_t, std::string>> snaps;
  do {
    std::uint64_t idx = 0;
    auto s = snapshot_of(f, &idx);
    snaps.emplace_back(idx, std::move(s));
    ++taken;
    // Reads concurrent with applies see some value of the right shape.
    if (auto v = f.get("k1")) {
      EXPECT_EQ(std::stoull(*v) % kKeys, 1u);
    }
  } while (f.index() < kEntries);
  applier.join();
  ASSERT_GE(snaps.size(), kEntries / 2000);

  // Replay once, checking each snapshot at its index.
  std::sort(snaps.begin(), snaps.end(), [](auto& a, auto& b) { return a.first < b.first; });
  KvFsm replay;
  std::size_t next = 0;
  std::uint64_t applied = 0;
  int checked = 0;
  while (next < snaps.size()) {
    while (applied < snaps[next].first) replay.must_apply(entries[applied++]);
    KvFsm restored;
    raft::StringReader r(snaps[next].second);
    ASSERT_TRUE(restored.restore(r));
    ASSERT_EQ(restored.index(), snaps[next].first);
    ASSERT_EQ(contents(restored, kKeys), contents(replay, kKeys)) << "snapshot at " << snaps[next].first;
    ++checked;
    ++next;
  }
  EXPECT_EQ(checked, static_cast<int>(snaps.size()));
  EXPECT_EQ(f.index(), kEntries);
}

}  // namespace
}  // namespace kvstore

#endif  // RAFT_HAVE_KV_FSM
