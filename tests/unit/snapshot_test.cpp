// Snapshots and log compaction in raft::Log (issue 5): bounded disk, restart
// from a snapshot, and lagging or new followers caught up by a snapshot
// streamed from the leader.
#include "unit/local_cluster.hpp"

#include <raft/detail/stream.hpp>

#include <gtest/gtest.h>

namespace raft::test {
namespace {

using namespace std::chrono_literals;

void small_snapshots(LocalCluster& c, std::uint64_t every = 50, std::uint64_t tail = 10) {
  c.tweak = [every, tail](LogOptions& o) {
    o.snapshot_threshold_entries = every;
    o.snapshot_tail_entries = tail;
    o.segment_size_bytes_max = 2048;  // many small segments, so compaction shows
  };
}

bool all_applied(LocalCluster& c, std::uint64_t index) {
  return c.net.run_until([&] {
    for (auto& n : c.nodes)
      if (n->log && n->log->applied_index() < index) return false;
    return true;
  });
}

TEST(Snapshot, CompactsTheLogUnderNormalOperation) {
  LocalCluster c;
  small_snapshots(c);
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  std::uint64_t last = 0;
  for (int i = 0; i < 1000; ++i) last = *c.apply(a, "cmd" + std::to_string(i));
  ASSERT_TRUE(all_applied(c, last));
  // The log now starts near the latest snapshot (minus the tail), not at 1.
  auto files = a.fs.list("/data/log");
  ASSERT_TRUE(files);
  EXPECT_LT(files->size(), 20u);
  auto snaps = a.fs.list("/data/snapshots");
  ASSERT_TRUE(snaps);
  EXPECT_EQ(snaps->size(), 1u) << "older snapshots are deleted";
  ASSERT_EQ(a.fsm.commands.size(), 1000u);
}

TEST(Snapshot, RestartRestoresTheFsmFromTheSnapshotThenReplays) {
  LocalCluster c;
  small_snapshots(c);
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  std::uint64_t last = 0;
  for (int i = 0; i < 333; ++i) last = *c.apply(a, "v" + std::to_string(i));
  ASSERT_TRUE(all_applied(c, last));
  c.crash(a);
  c.start(a);  // the in-memory FSM starts empty: index() == 0
  ASSERT_TRUE(c.net.run_until([&] { return a.log->state() == State::leader; }));
  ASSERT_TRUE(c.net.run_until([&] { return a.fsm.commands.size() == 333; }));
  for (int i = 0; i < 333; ++i) ASSERT_EQ(a.fsm.commands[i].data, "v" + std::to_string(i));
}

TEST(Snapshot, PartitionedFollowerCatchesUpThroughASnapshot) {
  LocalCluster c;
  small_snapshots(c);
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  auto& b = c.add();
  ASSERT_TRUE(c.join(b, a.url));
  auto& d = c.add();
  ASSERT_TRUE(c.join(d, a.url));
  ASSERT_TRUE(c.net.run_until([&] { return d.log->commit_index() >= 3 && b.log->commit_index() >= 3; }));
  auto* l = c.leader();
  LocalNode* lag = (l == &d) ? &b : &d;
  c.net.down[lag->url] = true;
  std::uint64_t last = 0;
  for (int i = 0; i < 500; ++i) {
    auto r = c.apply(*c.leader(), "p" + std::to_string(i));
    ASSERT_TRUE(r) << r.error().message();
    last = *r;
  }
  // The leader compacted past what the lagging follower has.
  ASSERT_TRUE(c.net.run_until([&] { return c.leader()->log->applied_index() >= last; }));
  c.net.down[lag->url] = false;
  ASSERT_TRUE(all_applied(c, last));
  ASSERT_EQ(lag->fsm.commands.size(), 500u);
  EXPECT_EQ(lag->fsm.commands.back().data, "p499");
}

TEST(Snapshot, NewNodeAddedAfterManyCompactionsGetsTheSnapshot) {
  LocalCluster c;
  small_snapshots(c, 20, 5);
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  std::uint64_t last = 0;
  for (int i = 0; i < 400; ++i) last = *c.apply(a, "n" + std::to_string(i));
  ASSERT_TRUE(all_applied(c, last));
  auto& b = c.add();
  ASSERT_TRUE(c.join(b, a.url));
  ASSERT_TRUE(all_applied(c, last));
  ASSERT_EQ(b.fsm.commands.size(), 400u);
  EXPECT_EQ(b.fsm.commands.front().data, "n0");
  // And it keeps following: a new entry reaches it.
  auto idx = c.apply(a, "after-join");
  ASSERT_TRUE(idx);
  ASSERT_TRUE(all_applied(c, *idx));
  EXPECT_EQ(b.fsm.commands.back().data, "after-join");
}

TEST(Snapshot, CrashOfEveryNodeAfterASnapshot) {
  LocalCluster c;
  small_snapshots(c);
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  auto& b = c.add();
  ASSERT_TRUE(c.join(b, a.url));
  auto& d = c.add();
  ASSERT_TRUE(c.join(d, a.url));
  std::uint64_t last = 0;
  for (int i = 0; i < 300; ++i) last = *c.apply(*c.leader(), "s" + std::to_string(i));
  ASSERT_TRUE(all_applied(c, last));
  for (auto& n : c.nodes) c.crash(*n);
  for (auto& n : c.nodes) c.start(*n);
  ASSERT_TRUE(c.net.run_until([&] { return c.leader() != nullptr; }));
  auto idx = c.apply(*c.leader(), "after");
  ASSERT_TRUE(idx);
  ASSERT_TRUE(all_applied(c, *idx));
  for (auto& n : c.nodes) {
    ASSERT_EQ(n->fsm.commands.size(), 301u);
    EXPECT_EQ(n->fsm.commands[0].data, "s0");
  }
}

TEST(Snapshot, FsmIndexNeverGoesBackwards) {
  LocalCluster c;
  small_snapshots(c, 10, 2);
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  std::uint64_t prev = 0;
  for (int i = 0; i < 200; ++i) {
    auto idx = c.apply(a, "x");
    ASSERT_TRUE(idx);
    c.net.run_until([&] { return a.fsm.applied_index >= *idx; });
    EXPECT_GE(a.fsm.applied_index, prev);
    prev = a.fsm.applied_index;
  }
}

// Disk stays bounded over a long run with a small threshold.
TEST(Snapshot, DiskFootprintStaysBounded) {
  LocalCluster c;
  c.tweak = [](LogOptions& o) {
    o.snapshot_threshold_entries = 5000;
    o.snapshot_tail_entries = 100;
    o.segment_size_bytes_max = 64 * 1024;
  };
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  std::uint64_t max_bytes = 0;
  // Many applies per round trip through the loop keep this fast.
  for (int round = 0; round < 200; ++round) {
    std::uint64_t last = 0;
    int done = 0;
    for (int i = 0; i < 1000; ++i)
      a.log->start_apply(std::string(32, 'k'), {}, [&](result<std::uint64_t> r) {
        ASSERT_TRUE(r);
        last = std::max(last, *r);
        ++done;
      });
    ASSERT_TRUE(c.net.run_until([&] { return done == 1000; }));
    max_bytes = std::max(max_bytes, a.fs.total_bytes() - a.fsm.commands.size() * 0);
    a.fsm.commands.clear();  // the recording FSM itself is not under test here
  }
  auto files = a.fs.list("/data/log");
  ASSERT_TRUE(files);
  EXPECT_LE(files->size(), 8u);
  // 200,000 entries of ~70 bytes on disk would be ~14 MB without compaction.
  EXPECT_LT(max_bytes, 3u << 20);
}

TEST(SnapshotFrames, ChunkFramingRoundTrip) {
  std::string wire;
  detail::encode_frame(wire, detail::kFrameSnapshot, 77, 5, R"({"clusterID":1,"index":3,"maxNodeID":1,"nodes":[{"id":1,"url":"u"}]})");
  std::string payload;
  for (int i = 0; i < 100; ++i) payload += std::string(1000 + i, static_cast<char>('a' + i % 26));
  for (std::size_t off = 0; off < payload.size(); off += 4096)
    detail::encode_snapshot_chunk(wire, std::string_view(payload).substr(off, 4096));
  detail::encode_snapshot_chunk(wire, {});
  LogEntry after{LogEntryType::command, 78, 5, "next"};
  encode_entry(wire, after);
  // Feed in awkward pieces.
  for (std::size_t step : {1u, 7u, 4096u, 100000u}) {
    detail::StreamParser p(1 << 20);
    std::string got;
    int begins = 0, ends = 0;
    LogEntry e2;
    for (std::size_t off = 0; off < wire.size(); off += step) {
      auto r = p.feed(std::string_view(wire).substr(off, step), [&](const detail::StreamEvent& ev) -> result<void> {
        using K = detail::StreamEvent::Kind;
        if (ev.kind == K::snapshot_begin) {
          ++begins;
          EXPECT_EQ(ev.index, 77u);
          EXPECT_EQ(ev.term, 5u);
        }
        if (ev.kind == K::snapshot_data) got.append(ev.data);
        if (ev.kind == K::snapshot_end) ++ends;
        if (ev.kind == K::entry) e2 = LogEntry{ev.type, ev.index, ev.term, std::string(ev.data)};
        return {};
      });
      ASSERT_TRUE(r);
    }
    EXPECT_EQ(begins, 1);
    EXPECT_EQ(ends, 1);
    EXPECT_EQ(got, payload);
    EXPECT_EQ(e2, after);
    EXPECT_TRUE(p.idle());
  }
}

TEST(SnapshotFrames, TruncatedOrGarbledFramesAreRejected) {
  std::string wire;
  detail::encode_frame(wire, detail::kFrameSnapshot, 9, 1, "{}");
  detail::encode_snapshot_chunk(wire, "abc");
  // Truncated: the parser waits for more and never reports an end.
  {
    detail::StreamParser p(1 << 20);
    int ends = 0;
    ASSERT_TRUE(p.feed(wire, [&](const detail::StreamEvent& ev) -> result<void> {
      if (ev.kind == detail::StreamEvent::Kind::snapshot_end) ++ends;
      return {};
    }));
    EXPECT_EQ(ends, 0);
    EXPECT_FALSE(p.idle());
  }
  // Garbled type byte.
  {
    std::string bad = wire;
    bad[0] = '\x99';
    detail::StreamParser p(1 << 20);
    auto r = p.feed(bad, [](const detail::StreamEvent&) -> result<void> { return {}; });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::protocol_error);
  }
  // An oversized frame is refused before it is buffered.
  {
    std::string big;
    detail::encode_frame(big, 0, 1, 1, std::string(100, 'x'));
    detail::StreamParser p(50);
    auto r = p.feed(std::string_view(big).substr(0, 24), [](const detail::StreamEvent&) -> result<void> { return {}; });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::entry_too_large);
  }
}

}  // namespace
}  // namespace raft::test
