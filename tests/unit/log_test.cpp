// raft::Log, one rule per test (etcd's raft_paper_test.go style), plus the Go
// package's own test facts. Time is virtual; the cluster is in memory.
#include "unit/cluster_helpers.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>

namespace raft::test {
namespace {

using namespace std::chrono_literals;

// Node `n` crashes and starts again at its URL on a new, empty disk (its
// data directory wiped): a fresh node with no id, answering as one.
void wipe_and_restart(LocalCluster& c, LocalNode& n) {
  c.crash(n);
  std::destroy_at(&n.fs);
  std::construct_at(&n.fs, 7);
  c.start(n);
}

// Go: TestLog_Open_ErrOpen.
TEST(Log, OpenTwiceIsLogAlreadyOpen) {
  LocalCluster c;
  auto& a = c.add();
  auto r = a.log->open("/data");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::open);
  EXPECT_EQ(r.error().message(), "log already open");
}

TEST(Log, CallsOnAClosedLogFailWithLogClosed) {
  LocalCluster c;
  auto& a = c.add();
  ASSERT_TRUE(c.call<void>([&](auto h) { a.log->start_close(std::move(h)); }));
  EXPECT_FALSE(a.log->opened());
  EXPECT_EQ(c.initialize(a).error(), errc::closed);
  EXPECT_EQ(c.apply(a, "x").error(), errc::closed);
}

// Closing and reopening one Log while work of the first opening is still
// queued. The storage and apply executors are io_contexts the test runs only
// when it says, so the work can be caught in the queue.
struct ReopenRig {
  boost::asio::io_context disk, apply;
  LocalCluster c;
  LocalNode* a = nullptr;
  // The Log's diagnostics, one line each.
  std::shared_ptr<std::vector<std::string>> lines = std::make_shared<std::vector<std::string>>();
  explicit ReopenRig(std::function<void(LogOptions&)> more = {}) {
    c.tweak = [this, more](LogOptions& o) {
      o.storage_executor = disk.get_executor();
      o.apply_executor = apply.get_executor();
      o.logger = [l = lines](std::string_view line) { l->emplace_back(line); };
      if (more) more(o);
    };
    a = &c.add();
    std::optional<result<void>> init;
    a->log->start_initialize([&](result<void> r) { init = r; });
    EXPECT_TRUE(run_all([&] { return init.has_value(); }));
    EXPECT_TRUE(init && *init);
    // Nothing of the first opening's start-up left in flight.
    EXPECT_TRUE(run_all([&] { return a->fsm.applied_index > 0 && a->fsm.applied_index >= a->log->commit_index(); }));
    poll_net();
  }
  // Work still queued on the disk or apply executor holds the Log's Impl,
  // and those io_contexts outlive `c`: destroyed with it, the Impl would
  // destroy its strand after the network's io_context (ASan:
  // heap-use-after-free). So the queues run dry first.
  ~ReopenRig() {
    for (int i = 0; i < 1000; ++i) {
      std::size_t ran = 0;
      for (auto* io : {&disk, &apply, &c.net.io}) {
        ran += io->poll();
        io->restart();
      }
      if (ran == 0) break;
    }
  }
  ReopenRig(const ReopenRig&) = delete;
  ReopenRig& operator=(const ReopenRig&) = delete;
  // Runs the network and both executors until done() (virtual time).
  bool run_all(const std::function<bool()>& done) {
    return c.net.run_until([&] {
      for (auto* io : {&disk, &apply}) {
        io->poll();
        io->restart();
      }
      return done();
    });
  }
  void poll_net() {
    c.net.io.poll();
    c.net.io.restart();
  }
  // Starts close(); `closed` is set when it completes.
  void close(std::optional<result<void>>& closed) {
    a->log->start_close([&closed](result<void> r) { closed = r; });
    poll_net();
  }
  // Closes, running the network and the apply executor (close() waits for
  // the FSM's batch in flight) but never the disk executor.
  void close_without_disk(std::optional<result<void>>& closed) {
    close(closed);
    for (int i = 0; i < 100 && !closed; ++i) {
      apply.poll();
      apply.restart();
      poll_net();
    }
  }
  bool exists(const std::string& path) {
    auto e = a->fs.exists(path);
    EXPECT_TRUE(e);
    return e && *e;
  }
  // Snapshots taken so far: each compaction logs where the log now starts.
  std::ptrdiff_t snapshots_logged() const {
    return std::count_if(lines->begin(), lines->end(),
                         [](const std::string& l) { return l.find("log now starts at ") != std::string::npos; });
  }
  // The command "x", whose answer lands in `first`.
  std::optional<result<std::uint64_t>> first;
  void apply_x() {
    a->log->start_apply("x", {}, [this](result<std::uint64_t> v) { first = v; });
  }
  // Closes at once (nothing of the apply executor's is queued) and expects
  // "x" to have failed with errc::closed, uncommitted.
  void close_now_failing_x() {
    std::optional<result<void>> closed;
    close(closed);
    ASSERT_TRUE(closed && *closed);
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->error(), errc::closed);
  }
  // After reopening, the Log elects itself, and a new command commits and
  // reaches the FSM exactly once.
  void expect_reopened_log_works() {
    ASSERT_TRUE(a->log->open("/data"));
    expect_open_log_works();
  }
  void expect_open_log_works() {
    ASSERT_TRUE(run_all([&] { return a->log->state() == State::leader; }));
    std::optional<result<std::uint64_t>> idx;
    a->log->start_apply("after", {}, [&](result<std::uint64_t> r) { idx = r; });
    ASSERT_TRUE(run_all([&] { return idx.has_value(); }));
    ASSERT_TRUE(*idx) << idx->error().message();
    ASSERT_TRUE(run_all([&] { return a->fsm.applied_index >= **idx; }));
    EXPECT_FALSE(a->fsm.duplicate);
    ASSERT_FALSE(a->fsm.commands.empty());
    EXPECT_EQ(a->fsm.commands.back().data, "after");
  }
};

// Without fsync, closed with a seal queued on the disk: close() seals anyway
// (the next open finds no pending segment), the queued seal then finds its
// store closed and touches no file, and the reopened Log, which must not
// think a seal is still running, seals the segments it fills.
TEST(Log, WithoutSyncCloseSealsAndTheReopenedLogSealsAgain) {
  ReopenRig r([](LogOptions& o) {
    o.sync = false;
    o.segment_size_bytes_max = 1024;
  });
  auto pending = [&] {
    auto names = r.a->fs.list("/data/log");
    EXPECT_TRUE(names);
    return std::count_if(names->begin(), names->end(), [](const std::string& n) { return n.ends_with(".pending"); });
  };
  auto fill = [&] {
    for (int i = 0; i < 30; ++i) r.a->log->start_apply(std::string(100, 'y'), {}, [](result<std::uint64_t>) {});
    r.poll_net();  // appended, segments filled; the seal waits on the disk executor
  };
  fill();
  ASSERT_GT(pending(), 0);
  std::optional<result<void>> closed;
  r.close_without_disk(closed);  // the disk executor, with the seal, does not run
  ASSERT_TRUE(closed && *closed);
  EXPECT_EQ(pending(), 0);
  r.expect_reopened_log_works();
  fill();
  ASSERT_GT(pending(), 0);
  EXPECT_TRUE(r.run_all([&] { return pending() == 0; }));
}

// After a snapshot the strand drops the compacted segments from the log but
// leaves their files to LogStore::reclaim() on the storage executor: an
// unlink and a directory fsync each, which would hold up heartbeats.
TEST(Log, CompactedSegmentsAreDeletedOnTheStorageExecutor) {
  ReopenRig r([](LogOptions& o) {
    o.sync = false;  // commits need no disk executor
    o.segment_size_bytes_max = 1024;
    o.snapshot_threshold_entries = 20;
    o.snapshot_tail_entries = 5;
  });
  // The Log has compacted once it logs a start past the first segment.
  auto compacted = [&] {
    return std::any_of(r.lines->begin(), r.lines->end(), [](const std::string& l) {
      const auto at = l.find("log now starts at ");
      return at != std::string::npos && std::stoull(l.substr(at + 18)) > 1;
    });
  };
  auto exists = [&](const std::string& path) { return r.exists(path); };
  const std::string first_segment = "/data/log/00000000000000000001.seg";
  ASSERT_TRUE(exists(first_segment));
  std::uint64_t last = 0;
  for (int i = 0; i < 60; ++i)
    r.a->log->start_apply(std::string(100, 'z'), {}, [&](result<std::uint64_t> v) {
      if (v) last = std::max(last, *v);
    });
  // The network and the apply executor (which takes the snapshots) run; the
  // disk executor does not.
  auto snapshots = [&] {
    auto names = r.a->fs.list("/data/snapshots");
    return names ? names->size() : 0u;
  };
  ASSERT_TRUE(r.c.net.run_until([&] {
    r.apply.poll();
    r.apply.restart();
    return last > 0 && r.a->log->applied_index() >= last && snapshots() > 0 && compacted();
  }));
  EXPECT_TRUE(exists(first_segment)) << "the strand deleted a compacted segment";
  ASSERT_TRUE(r.run_all([&] { return !exists(first_segment); }));
  // The reopened log starts where the compaction left it, and works.
  std::optional<result<void>> closed;
  r.close(closed);
  ASSERT_TRUE(r.run_all([&] { return closed.has_value(); }));
  ASSERT_TRUE(*closed);
  r.expect_reopened_log_works();
  EXPECT_FALSE(exists(first_segment));
  EXPECT_GT(r.a->log->last_index(), last);
}

// Closed after a snapshot but before the storage executor deleted the
// compacted segments (close() does not wait for that; a crash would not
// either): the reopened Log compacts at once and deletes them, instead of
// keeping them until its next snapshot.
TEST(Log, ReopenedLogDeletesCompactedSegmentsLeftByTheFirstOpening) {
  ReopenRig r([](LogOptions& o) {
    o.sync = false;
    o.segment_size_bytes_max = 1024;
    o.snapshot_threshold_entries = 20;
    o.snapshot_tail_entries = 5;
  });
  auto exists = [&](const std::string& path) { return r.exists(path); };
  const std::string first_segment = "/data/log/00000000000000000001.seg";
  std::uint64_t last = 0;
  for (int i = 0; i < 30; ++i)
    r.a->log->start_apply(std::string(100, 'z'), {}, [&](result<std::uint64_t> v) {
      if (v) last = std::max(last, *v);
    });
  // One snapshot and its compaction; the disk executor never runs.
  ASSERT_TRUE(r.c.net.run_until([&] {
    r.apply.poll();
    r.apply.restart();
    return last > 0 && r.a->log->applied_index() >= last && r.snapshots_logged() > 0;
  }));
  std::optional<result<void>> closed;
  r.close_without_disk(closed);
  ASSERT_TRUE(closed && *closed);
  ASSERT_TRUE(exists(first_segment)) << "the test needs the file left behind";
  ASSERT_TRUE(r.a->log->open("/data"));
  // Only the disk executor runs: the reopened Log queued the deletion.
  for (int i = 0; i < 100 && exists(first_segment); ++i) {
    r.disk.poll();
    r.disk.restart();
    r.poll_net();
  }
  EXPECT_FALSE(exists(first_segment));
  r.expect_open_log_works();
}

// A slow FSM under steady load: every batch it finishes finds more entries
// committed meanwhile, so the FSM never catches up with the commit index.
// Snapshots used to wait until it did, so they never came and the log grew
// without bound; a snapshot that is due now goes before the next batch.
TEST(Log, SnapshotsAreTakenWhileTheFsmLagsBehindCommits) {
  ReopenRig r([](LogOptions& o) {
    o.sync = false;  // commits need no disk executor
    o.snapshot_threshold_entries = 20;
    o.snapshot_tail_entries = 5;
  });
  auto submit = [&](int n) {
    for (int i = 0; i < n; ++i) r.a->log->start_apply(std::string(10, 'w'), {}, [](result<std::uint64_t>) {});
    r.poll_net();  // appended and committed (one node, no fsync); a batch waits on the apply executor
  };
  submit(15);
  for (int round = 0; round < 12; ++round) {
    submit(15);  // committed while the FSM works on the previous batch
    ASSERT_LT(r.a->log->applied_index(), r.a->log->commit_index());
    ASSERT_EQ(r.apply.run_one(), 1u);  // the FSM finishes one batch (or one snapshot)
    r.apply.restart();
    r.poll_net();
  }
  EXPECT_LT(r.a->log->applied_index(), r.a->log->commit_index()) << "the FSM caught up: the test did not hold it back";
  EXPECT_GE(r.snapshots_logged(), 2) << "applied " << r.a->log->applied_index() << " entries, threshold 20";
}

// snapshot_threshold_bytes counts the log written since the last snapshot.
// It used to compare the whole log on disk, which a snapshot cannot shrink
// below the segment being written (nor the tail it keeps): once that held
// the threshold, every batch the FSM applied was followed by a snapshot.
TEST(Log, SnapshotByBytesCountsTheLogSinceTheLastSnapshot) {
  ReopenRig r([](LogOptions& o) {
    o.sync = false;
    o.snapshot_threshold_bytes = 2000;  // far below a segment (64 MiB)
    o.snapshot_tail_entries = 5;
  });
  // 100 entries of 100 bytes (125 with the record header), applied one by one.
  for (int i = 0; i < 100; ++i) {
    std::optional<result<std::uint64_t>> idx;
    r.a->log->start_apply(std::string(100, 'b'), {}, [&](result<std::uint64_t> v) { idx = v; });
    ASSERT_TRUE(r.run_all([&] { return idx && *idx && r.a->log->applied_index() >= **idx; }));
  }
  // 12,500 bytes in steps of 2,000: six snapshots, give or take one.
  EXPECT_GE(r.snapshots_logged(), 5);
  EXPECT_LE(r.snapshots_logged(), 7);
}

// An FSM whose snapshot() keeps failing (its disk is full, say) must not stop
// the Log from applying, nor make it try again at once, over and over: the
// next attempt waits for another threshold's worth of entries.
TEST(Log, AFailedSnapshotIsTriedAgainAfterAnotherThresholdOfEntries) {
  ReopenRig r([](LogOptions& o) {
    o.sync = false;
    o.snapshot_threshold_entries = 20;
  });
  r.a->fsm.fail_snapshots = true;
  const std::uint64_t start = r.a->log->applied_index();
  for (int i = 0; i < 100; ++i) {
    std::optional<result<std::uint64_t>> idx;
    r.a->log->start_apply("c", {}, [&](result<std::uint64_t> v) { idx = v; });
    ASSERT_TRUE(r.run_all([&] { return idx && *idx && r.a->log->applied_index() >= **idx; }));
  }
  // And while the FSM lags behind the commits (see SnapshotsAreTakenWhileTheFsmLagsBehindCommits).
  for (int i = 0; i < 100; ++i) r.a->log->start_apply("d", {}, [](result<std::uint64_t>) {});
  r.poll_net();
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 10; ++i) r.a->log->start_apply("e", {}, [](result<std::uint64_t>) {});
    r.poll_net();
    r.apply.run_one();
    r.apply.restart();
    r.poll_net();
  }
  ASSERT_TRUE(r.run_all([&] { return r.a->log->applied_index() >= r.a->log->commit_index(); }));
  const auto applied = r.a->log->applied_index() - start;
  EXPECT_GE(applied, 300u);
  EXPECT_GE(r.a->fsm.snapshot_attempts, 10);
  EXPECT_LE(r.a->fsm.snapshot_attempts, static_cast<int>(applied / 20) + 2);
}

// Log::snapshot(): now, whatever the thresholds (here none), compacting the
// log behind it; again with nothing applied since, the same snapshot.
TEST(Log, SnapshotOnDemandTakesOneAndCompactsTheLog) {
  ReopenRig r([](LogOptions& o) {
    o.sync = false;
    o.segment_size_bytes_max = 1024;
    o.snapshot_tail_entries = 5;
  });
  auto exists = [&](const std::string& path) { return r.exists(path); };
  auto snapshot = [&] {
    std::optional<result<std::uint64_t>> got;
    r.a->log->start_snapshot([&](result<std::uint64_t> v) { got = v; });
    EXPECT_TRUE(r.run_all([&] { return got.has_value(); }));
    return got.value_or(errc::timeout);
  };
  std::optional<result<std::uint64_t>> last;
  for (int i = 0; i < 30; ++i) r.a->log->start_apply(std::string(100, 's'), {}, [&](result<std::uint64_t> v) { last = v; });
  ASSERT_TRUE(r.run_all([&] { return last && *last && r.a->log->applied_index() >= **last; }));
  EXPECT_EQ(r.a->fsm.snapshot_attempts, 0);  // no threshold: none by itself
  ASSERT_TRUE(exists("/data/log/00000000000000000001.seg"));

  auto s = snapshot();
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(*s, r.a->log->applied_index());
  EXPECT_EQ(r.a->fsm.snapshot_attempts, 1);
  EXPECT_TRUE(r.run_all([&] { return !exists("/data/log/00000000000000000001.seg"); }));

  auto again = snapshot();
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *s);
  EXPECT_EQ(r.a->fsm.snapshot_attempts, 1) << "nothing applied since: no new snapshot";
}

// The FSM's error reaches the caller; the next call tries again.
TEST(Log, SnapshotOnDemandReportsTheFsmError) {
  ReopenRig r([](LogOptions& o) { o.sync = false; });
  std::optional<result<std::uint64_t>> idx;
  r.a->log->start_apply("x", {}, [&](result<std::uint64_t> v) { idx = v; });
  ASSERT_TRUE(r.run_all([&] { return idx && *idx && r.a->log->applied_index() >= **idx; }));
  r.a->fsm.fail_snapshots = true;
  std::optional<result<std::uint64_t>> got;
  r.a->log->start_snapshot([&](result<std::uint64_t> v) { got = v; });
  ASSERT_TRUE(r.run_all([&] { return got.has_value(); }));
  ASSERT_FALSE(*got);
  EXPECT_EQ(got->error(), errc::io_error);
  r.a->fsm.fail_snapshots = false;
  got.reset();
  r.a->log->start_snapshot([&](result<std::uint64_t> v) { got = v; });
  ASSERT_TRUE(r.run_all([&] { return got.has_value(); }));
  ASSERT_TRUE(*got) << got->error().message();
  EXPECT_EQ(**got, r.a->log->applied_index());
  EXPECT_EQ(r.a->fsm.snapshot_attempts, 2);
}

// Asked while a batch is on its way to the FSM: the batch is applied first
// and the snapshot covers it. Asked again before the Log is closed: the
// call fails with errc::closed rather than waiting forever.
TEST(Log, SnapshotOnDemandWaitsForTheBatchInFlightAndFailsOnClose) {
  ReopenRig r([](LogOptions& o) { o.sync = false; });
  std::uint64_t last = 0;
  for (int i = 0; i < 10; ++i)
    r.a->log->start_apply("b", {}, [&](result<std::uint64_t> v) {
      if (v) last = std::max(last, *v);
    });
  r.poll_net();  // committed; the batch waits on the apply executor
  ASSERT_GT(last, 0u);
  ASSERT_LT(r.a->log->applied_index(), last);
  std::optional<result<std::uint64_t>> got;
  r.a->log->start_snapshot([&](result<std::uint64_t> v) { got = v; });
  r.poll_net();
  EXPECT_FALSE(got.has_value());
  EXPECT_EQ(r.a->fsm.snapshot_attempts, 0) << "snapshot taken with a batch in flight";
  ASSERT_TRUE(r.run_all([&] { return got.has_value(); }));
  ASSERT_TRUE(*got) << got->error().message();
  EXPECT_EQ(**got, last);

  for (int i = 0; i < 3; ++i) r.a->log->start_apply("c", {}, [](result<std::uint64_t>) {});
  r.poll_net();  // another batch in flight
  got.reset();
  r.a->log->start_snapshot([&](result<std::uint64_t> v) { got = v; });
  std::optional<result<void>> closed;
  r.close_without_disk(closed);
  ASSERT_TRUE(closed && *closed);
  ASSERT_TRUE(got.has_value());
  ASSERT_FALSE(*got);
  EXPECT_EQ(got->error(), errc::closed);
}

// The queued sync reports to the first opening and is dropped; the reopened
// Log thought a sync was still running and never synced (or committed) again.
TEST(Log, ReopenedLogSyncsAfterClosingWithASyncQueued) {
  ReopenRig r;
  r.apply_x();
  r.poll_net();  // appended; its sync is queued on the disk, which does not run
  ASSERT_FALSE(r.first.has_value());
  r.close_now_failing_x();
  r.expect_reopened_log_works();
}

// Closed with the append's flush posted but not run: the reopened Log thought
// a flush was on its way and never wrote another entry.
TEST(Log, ReopenedLogAppendsAfterClosingWithAFlushPosted) {
  ReopenRig r;
  r.apply_x();
  r.close_now_failing_x();  // the apply and the close run in one poll: the flush is still queued
  r.expect_reopened_log_works();
}

// Closed with a committed batch on the apply executor: close() completes only
// once the FSM has finished it (no FSM call after close returns), and the
// reopened Log neither applies it again nor stops applying.
TEST(Log, CloseWaitsForTheFsmBatchInFlightAndReopenDoesNotReapplyIt) {
  ReopenRig r;
  r.apply_x();
  auto& first = r.first;
  ASSERT_TRUE(r.c.net.run_until([&] {
    r.disk.poll();
    r.disk.restart();
    return first.has_value();
  }));
  ASSERT_TRUE(*first) << first->error().message();
  const auto applied_before = r.a->fsm.applied_index;
  ASSERT_LT(applied_before, **first);  // the batch waits on the apply executor
  std::optional<result<void>> closed;
  r.close(closed);
  EXPECT_FALSE(closed.has_value()) << "close() completed with an FSM batch still to run";
  EXPECT_LT(r.a->fsm.applied_index, **first);
  r.apply.poll();  // the batch runs, reports back, and the close completes
  r.apply.restart();
  r.poll_net();
  ASSERT_TRUE(closed.has_value());
  ASSERT_TRUE(*closed);
  EXPECT_EQ(r.a->fsm.applied_index, **first);
  r.expect_reopened_log_works();
  ASSERT_EQ(r.a->fsm.commands.size(), 2u);
  EXPECT_EQ(r.a->fsm.commands[0].data, "x");
}

// Go: TestLog_Apply (a single node applies at index 2 after Initialize).
TEST(Log, SingleNodeApplyGetsIndex2AfterInitialize) {
  LocalCluster c;
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  EXPECT_EQ(a.log->state(), State::leader);
  EXPECT_EQ(a.log->id(), 1u);
  EXPECT_EQ(a.log->term(), 1u);
  auto idx = c.apply(a, "foo");
  ASSERT_TRUE(idx) << idx.error().message();
  EXPECT_EQ(*idx, 2u);
  ASSERT_TRUE(c.net.run_until([&] { return a.fsm.applied_index >= 2; }));
  ASSERT_EQ(a.fsm.commands.size(), 1u);
  EXPECT_EQ(a.fsm.commands[0].data, "foo");
}

TEST(Log, InitializeErrors) {
  LocalCluster c;
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  EXPECT_EQ(c.initialize(a).error(), errc::initialized);
}

// Go: TestCluster_Open (3 nodes by initialize + join: ids 1..3, one leader).
TEST(Log, ThreeNodeClusterHasIds1To3AndOneLeader) {
  auto c = three_node_cluster();
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(c->nodes[i]->log->id(), i + 1);
  EXPECT_EQ(c->leaders(), 1u);
  const auto cfg = c->nodes[2]->log->config();
  ASSERT_EQ(cfg.nodes.size(), 3u);
  EXPECT_EQ(cfg.cluster_id, c->nodes[0]->log->config().cluster_id);
}

TEST(Log, AppliesReachEveryFsmInOrderExactlyOnce) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_NE(l, nullptr);
  std::uint64_t last = 0;
  for (int i = 0; i < 50; ++i) {
    auto idx = c->apply(*l, "cmd" + std::to_string(i));
    ASSERT_TRUE(idx);
    EXPECT_GT(*idx, last);
    last = *idx;
  }
  ASSERT_TRUE(c->net.run_until([&] {
    for (auto& n : c->nodes)
      if (n->fsm.applied_index < last) return false;
    return true;
  }));
  for (auto& n : c->nodes) {
    ASSERT_EQ(n->fsm.commands.size(), 50u);
    EXPECT_FALSE(n->fsm.duplicate);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(n->fsm.commands[i].data, "cmd" + std::to_string(i));
  }
}

// Go: TestCluster_Elect. A new leader is elected after the leader stops.
TEST(Log, ElectsANewLeaderAfterLeaderLoss) {
  auto c = three_node_cluster();
  auto* old = c->leader();
  ASSERT_NE(old, nullptr);
  const auto old_term = old->log->term();
  c->crash(*old);
  ASSERT_TRUE(c->net.run_until([&] { return c->leader() != nullptr; }));
  EXPECT_GT(c->leader()->log->term(), old_term);
  auto idx = c->apply(*c->leader(), "after");
  ASSERT_TRUE(idx) << idx.error().message();
}

// §5.1: a request with a stale term is refused.
TEST(Log, VoteWithStaleTermIsRefused) {
  auto c = three_node_cluster();
  auto* f = c->nodes[1].get();
  auto r = c->call<VoteResponse>([&](auto h) { f->log->handle_vote({0, 3, 100, 100}, std::move(h)); });
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, errc::stale_term);
  EXPECT_EQ(r->term, f->log->term());
}

// §5.2: at most one vote per term, first come first served.
TEST(Log, AtMostOneVotePerTerm) {
  LocalCluster c;
  auto& a = c.add();
  const auto t = a.log->term() + 5;
  auto r1 = c.call<VoteResponse>([&](auto h) { a.log->handle_vote({t, 2, 10, 10}, std::move(h)); });
  ASSERT_TRUE(r1);
  EXPECT_TRUE(r1->granted());
  auto r2 = c.call<VoteResponse>([&](auto h) { a.log->handle_vote({t, 3, 10, 10}, std::move(h)); });
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->error, errc::already_voted);
  auto r3 = c.call<VoteResponse>([&](auto h) { a.log->handle_vote({t, 2, 10, 10}, std::move(h)); });
  EXPECT_TRUE(r3->granted());  // a repeated request from the same candidate
}

// §5.4.1: a vote goes only to a candidate whose log is at least as up to date.
TEST(Log, VoteRequiresAnUpToDateLog) {
  LocalCluster c;
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  ASSERT_TRUE(c.apply(a, "x"));  // log: (1,1) (2,1)
  const auto t = a.log->term() + 1;
  auto older_term = c.call<VoteResponse>([&](auto h) { a.log->handle_vote({t, 2, 10, 0}, std::move(h)); });
  EXPECT_EQ(older_term->error, errc::out_of_date_log);
  auto shorter = c.call<VoteResponse>([&](auto h) { a.log->handle_vote({t, 2, 1, 1}, std::move(h)); });
  EXPECT_EQ(shorter->error, errc::out_of_date_log);
  auto ok = c.call<VoteResponse>([&](auto h) { a.log->handle_vote({t, 2, 2, 1}, std::move(h)); });
  EXPECT_TRUE(ok->granted());
}

// §5.1 / Figure 2: votedFor is persistent; a restart cannot vote twice.
TEST(Log, VoteIsDurableBeforeTheReply) {
  LocalCluster c;
  auto& a = c.add();
  const auto t = a.log->term() + 3;
  auto r1 = c.call<VoteResponse>([&](auto h) { a.log->handle_vote({t, 2, 10, 10}, std::move(h)); });
  ASSERT_TRUE(r1->granted());
  c.crash(a);  // loses everything unsynced
  c.start(a);
  EXPECT_EQ(a.log->term(), t);
  auto r2 = c.call<VoteResponse>([&](auto h) { a.log->handle_vote({t, 3, 10, 10}, std::move(h)); });
  EXPECT_EQ(r2->error, errc::already_voted);
}

// Pre-vote (thesis §9.6): answering one changes nothing on the voter (no
// term, no vote); it is answered by the rules of a real vote.
TEST(Log, PreVoteChangesNoTermAndNoVote) {
  LocalCluster c;
  auto& a = c.add();
  const auto t0 = a.log->term();
  const auto t = t0 + 5;
  auto pre = c.call<VoteResponse>([&](auto h) { a.log->handle_vote({t, 2, 10, 10, true}, std::move(h)); });
  ASSERT_TRUE(pre);
  EXPECT_TRUE(pre->granted());
  EXPECT_EQ(pre->term, t0);
  EXPECT_EQ(a.log->term(), t0);
  // The vote of term t is still free: another candidate gets it.
  auto real = c.call<VoteResponse>([&](auto h) { a.log->handle_vote({t, 3, 10, 10}, std::move(h)); });
  EXPECT_TRUE(real->granted());
  // Now a pre-vote for another candidate in t is refused as the vote would be.
  auto again = c.call<VoteResponse>([&](auto h) { a.log->handle_vote({t, 2, 10, 10, true}, std::move(h)); });
  EXPECT_EQ(again->error, errc::already_voted);
  auto same = c.call<VoteResponse>([&](auto h) { a.log->handle_vote({t, 3, 10, 10, true}, std::move(h)); });
  EXPECT_TRUE(same->granted());
  auto stale = c.call<VoteResponse>([&](auto h) { a.log->handle_vote({t - 1, 2, 10, 10, true}, std::move(h)); });
  EXPECT_EQ(stale->error, errc::stale_term);
  EXPECT_EQ(stale->term, t);
}

// Leader stickiness (thesis §4.2.3) holds for pre-votes; the leader refuses
// too (check-quorum makes it step down once it lost its majority).
TEST(Log, PreVoteIsRefusedWhileALeaderIsAlive) {
  auto c = three_node_cluster();
  c->net.run_for(4 * kDefaultHeartbeatInterval);  // every follower has heard the leader
  for (auto& n : c->nodes) {
    const auto t = n->log->term();
    auto r = c->call<VoteResponse>([&](auto h) { n->log->handle_vote({t + 1, 9, 1000, 1000, true}, std::move(h)); });
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error, errc::already_voted) << n->url;
    EXPECT_EQ(n->log->term(), t);
  }
}

// Check-quorum counts only the members themselves: a node started afresh at
// a member's URL answers heartbeats (with no id) but is not that member, so
// a leader left with such nodes steps down like one cut off (and stops
// taking writes it cannot commit).
TEST(Log, CheckQuorumCountsOnlyRepliesFromTheAddressedMember) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  const auto others = c->others(l);
  c->net.down[others[0]->url] = true;
  auto* wiped = others[1];
  wipe_and_restart(*c, *wiped);
  ASSERT_EQ(wiped->log->id(), 0u);
  const auto hb_before = c->net.heartbeats_sent;
  EXPECT_TRUE(c->net.run_until([&] { return l->log->state() != State::leader; }, 10 * kDefaultElectionTimeout))
      << "still leader with one member away and the other wiped";
  EXPECT_GT(c->net.heartbeats_sent, hb_before);  // the wiped node was asked, and answered
}

// Thesis §9.6: a member that cannot win an election does not raise its term,
// so it does not disrupt the cluster. Without pre-vote an isolated follower
// raised its term every election timeout and, back, deposed the leader. The
// simulator found the same disruption deadlock a cluster: a member with a
// stale configuration, refused by the only voter it knew, kept voting for
// itself in every term just before the one electable node asked it
// (membership_add_remove_under_faults seed 4311); a joiner whose AddPeer was
// lost deposed every new leader (seed 9007).
TEST(Log, IsolatedMemberDoesNotRaiseItsTermOrDeposeTheLeaderOnReturn) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_NE(l, nullptr);
  const auto term = l->log->term();
  LocalNode* f = c->nodes[0].get() == l ? c->nodes[1].get() : c->nodes[0].get();
  c->net.down[f->url] = true;
  bool campaigned = false;
  c->net.run_until([&] {
    campaigned = campaigned || f->log->state() == State::candidate;
    return false;
  }, 10 * kDefaultElectionTimeout);
  EXPECT_FALSE(campaigned);
  EXPECT_EQ(f->log->term(), term);
  c->net.down[f->url] = false;
  c->net.run_for(4 * kDefaultElectionTimeout);
  EXPECT_EQ(c->leader(), l);
  EXPECT_EQ(l->log->term(), term);
  EXPECT_EQ(f->log->term(), term);
  EXPECT_EQ(f->log->leader().first, l->log->id());
}

// A member whose log is behind cannot win; it does not campaign either, so
// the member that can win is elected in the very next term. The one behind
// heard the leader last, so its election timer fires first: without
// pre-vote it took term + 1 for itself and the other needed term + 2.
TEST(Log, MemberWithAnOlderLogDoesNotCampaign) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_NE(l, nullptr);
  const auto term = l->log->term();
  std::vector<LocalNode*> fs;
  for (auto& n : c->nodes)
    if (n.get() != l) fs.push_back(n.get());
  auto* behind = fs[0];
  auto* ahead = fs[1];
  c->net.down[behind->url] = true;
  ASSERT_TRUE(c->apply(*l, "x"));
  ASSERT_TRUE(c->net.run_until([&] { return ahead->log->last_index() == l->log->last_index(); }));
  c->net.run_for(kDefaultElectionTimeout * 9 / 10);  // less than any election timeout
  c->crash(*l);
  c->net.down[behind->url] = false;
  bool campaigned = false;
  ASSERT_TRUE(c->net.run_until([&] {
    campaigned = campaigned || behind->log->state() == State::candidate;
    return c->leader() != nullptr;
  }));
  EXPECT_FALSE(campaigned);
  EXPECT_EQ(c->leader(), ahead);
  EXPECT_EQ(ahead->log->term(), term + 1);
}

// §5.4.2, §8: a new leader appends a Nop of its term.
TEST(Log, NewLeaderAppendsANopOfItsTerm) {
  auto c = three_node_cluster();
  auto* old = c->leader();
  c->crash(*old);
  ASSERT_TRUE(c->net.run_until([&] { return c->leader() != nullptr; }));
  auto* l = c->leader();
  ASSERT_TRUE(c->net.run_until([&] { return l->log->commit_index() == l->log->last_index(); }));
  // The Nop committed, so the FSM saw it at the leader's last index.
  ASSERT_TRUE(c->net.run_until([&] { return l->fsm.applied_index == l->log->last_index(); }));
  EXPECT_TRUE(l->fsm.commands.empty() || l->fsm.commands.back().index < l->log->last_index());
}

// Heartbeats with a stale term are refused with the follower's term.
TEST(Log, HeartbeatWithStaleTermIsRefused) {
  auto c = three_node_cluster();
  auto* f = c->nodes[1].get();
  auto r = c->call<HeartbeatResponse>([&](auto h) { f->log->handle_heartbeat({0, 0, 9, {}}, std::move(h)); });
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, errc::stale_term);
  EXPECT_EQ(r->term, f->log->term());
}

TEST(Log, ApplyOnAFollowerIsNotLeader) {
  auto c = three_node_cluster();
  for (auto& n : c->nodes)
    if (n->log->state() != State::leader) {
      EXPECT_EQ(c->apply(*n, "x").error(), errc::not_leader);
    }
}

// Restart: open() restores id, term, config and log, and the node rejoins.
TEST(Log, RestartOfEveryNodeKeepsCommittedEntries) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  std::uint64_t last = 0;
  for (int i = 0; i < 20; ++i) last = *c->apply(*l, "v" + std::to_string(i));
  for (auto& n : c->nodes) c->crash(*n);
  for (auto& n : c->nodes) c->start(*n);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(c->nodes[i]->log->id(), i + 1);
  ASSERT_TRUE(c->net.run_until([&] { return c->leader() != nullptr; }));
  auto idx = c->apply(*c->leader(), "after-restart");
  ASSERT_TRUE(idx);
  EXPECT_GT(*idx, last);
  ASSERT_TRUE(c->net.run_until([&] {
    for (auto& n : c->nodes)
      if (n->fsm.applied_index < *idx) return false;
    return true;
  }));
  for (auto& n : c->nodes) {
    ASSERT_EQ(n->fsm.commands.size(), 21u);
    EXPECT_EQ(n->fsm.commands[0].data, "v0");
    EXPECT_EQ(n->fsm.commands[20].data, "after-restart");
  }
}

TEST(Log, MembershipErrors) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  auto dup = c->call<std::pair<std::uint64_t, Config>>([&](auto h) { l->log->start_add_peer(c->nodes[1]->url, std::move(h)); });
  EXPECT_EQ(dup.error(), errc::duplicate_node_url);
  auto nf = c->call<void>([&](auto h) { l->log->start_remove_peer(42, std::move(h)); });
  EXPECT_EQ(nf.error(), errc::node_not_found);
  auto zero = c->call<void>([&](auto h) { l->log->start_remove_peer(0, std::move(h)); });
  EXPECT_EQ(zero.error(), errc::invalid_node_id);
  for (auto& n : c->nodes)
    if (n.get() != l) {
      auto r = c->call<void>([&](auto h) { n->log->start_remove_peer(1, std::move(h)); });
      EXPECT_EQ(r.error(), errc::not_leader);
    }
}

// Thesis §4.1: remove a follower through leave(); the rest keep committing.
TEST(Log, LeaveRemovesTheNode) {
  auto c = three_node_cluster();
  LocalNode* f = nullptr;
  for (auto& n : c->nodes)
    if (n->log->state() != State::leader) f = n.get();
  const auto id = f->log->id();
  auto r = c->call<void>([&](auto h) { f->log->start_leave(std::move(h)); });
  ASSERT_TRUE(r) << r.error().message();
  auto* l = c->leader();
  EXPECT_EQ(l->log->config().nodes.size(), 2u);
  EXPECT_EQ(l->log->config().node_by_id(id), nullptr);
  EXPECT_TRUE(c->apply(*l, "after-leave"));
}

// Thesis §4.2.2: a leader removed from the configuration steps down once the
// change commits, and the others elect a new leader (at once: it hands over).
TEST(Log, RemovingTheLeaderMakesItStepDown) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  const auto id = l->log->id();
  auto r = c->call<void>([&](auto h) { l->log->start_remove_peer(id, std::move(h)); });
  ASSERT_TRUE(r) << r.error().message();
  // Handed over: a caught-up voter is told to campaign at once, so a new
  // leader comes well within an election timeout.
  ASSERT_TRUE(c->net.run_until([&] {
    auto* nl = c->leader();
    return nl && nl != l;
  }, kDefaultElectionTimeout / 2)) << "no hand-over: the others waited for their election timeouts";
  EXPECT_NE(l->log->state(), State::leader);
  EXPECT_TRUE(c->apply(*c->leader(), "after"));
}

TEST(Log, WaitReturnsOnceApplied) {
  LocalCluster c;
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  auto idx = c.apply(a, "w");
  ASSERT_TRUE(idx);
  auto w = c.call<void>([&](auto h) { a.log->start_wait(*idx, {}, std::move(h)); });
  ASSERT_TRUE(w);
  EXPECT_GE(a.fsm.applied_index, *idx);
  auto t = c.call<void>([&](auto h) { a.log->start_wait(*idx + 100, 1s, std::move(h)); });
  EXPECT_EQ(t.error(), errc::timeout);
}


}  // namespace
}  // namespace raft::test

namespace raft::test {
namespace {

// DESIGN 5: entries are durable before they are acknowledged. A follower
// whose fsync fails never acknowledges, so a two-node cluster cannot commit.
TEST(Log, EntriesAreDurableBeforeTheyAreAcknowledged) {
  LocalCluster c;
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  auto& b = c.add();
  ASSERT_TRUE(c.join(b, a.url));
  ASSERT_TRUE(c.net.run_until([&] { return a.log->commit_index() >= 2 && b.log->commit_index() >= 2; }));
  const auto before = a.log->commit_index();
  b.fs.fail_next("sync", errc::io_error);
  std::optional<result<std::uint64_t>> r;
  a.log->start_apply("x", {}, [&](result<std::uint64_t> x) { r = x; });
  c.net.run_for(std::chrono::seconds(3));
  EXPECT_FALSE(r.has_value()) << "committed without the follower's durable copy";
  EXPECT_EQ(a.log->commit_index(), before);
  EXPECT_EQ(b.log->state(), State::stopped) << "a failed fsync is fatal (fail-stop)";
}

// apply() timeouts share one timer armed at the earliest deadline: each call
// still fails with errc::timeout at its own deadline, in deadline order
// whatever the call order, and a call without a timeout keeps waiting.
TEST(Log, ApplyTimeoutsFireAtEachCallsDeadline) {
  LocalCluster c;
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  auto& b = c.add();
  ASSERT_TRUE(c.join(b, a.url));
  ASSERT_TRUE(c.net.run_until([&] { return b.log->commit_index() >= 2; }));
  c.crash(b);  // no quorum: nothing commits from here on
  const auto t0 = c.net.clock.now();
  std::map<int, std::pair<result<std::uint64_t>, Clock::time_point>> done;
  auto start = [&](int k, Clock::duration timeout) {
    a.log->start_apply("t" + std::to_string(k), timeout, [&, k](result<std::uint64_t> r) {
      done.emplace(k, std::make_pair(r, c.net.clock.now()));
    });
  };
  start(3, 3s);
  start(1, 1s);
  start(0, {});
  start(2, 2s);
  ASSERT_TRUE(c.net.run_until([&] { return done.size() == 3; }, 10s));
  for (int k = 1; k <= 3; ++k) {
    ASSERT_TRUE(done.count(k)) << k;
    EXPECT_EQ(done.at(k).first.error(), errc::timeout) << k;
    const auto at = done.at(k).second - t0;
    EXPECT_GE(at, std::chrono::seconds(k)) << k;
    EXPECT_LT(at, std::chrono::seconds(k) + 100ms) << k;
  }
  c.net.run_for(5s);
  EXPECT_EQ(done.count(0), 0u) << "a call without a timeout waits for its outcome";
}

// Thesis §4.1: one membership change at a time.
TEST(Log, OneMembershipChangeAtATime) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  std::optional<result<std::pair<std::uint64_t, Config>>> first, second;
  l->log->start_add_peer("http://x1", [&](auto r) { first = r; });
  l->log->start_add_peer("http://x2", [&](auto r) { second = r; });
  c->net.run_until([&] { return second.has_value(); });
  ASSERT_TRUE(second.has_value());
  ASSERT_FALSE(*second);
  EXPECT_EQ(second->error(), errc::change_in_progress);
}


// ---- Node identity: a leader credits a node id only to the URL its
// configuration gives it (tests/sim/README.md, "a lost join").

struct RecordingWriter final : StreamWriter {
  std::vector<std::string> writes;
  std::optional<std::error_code> finished;
  void write(std::string_view bytes, std::function<void(std::error_code)> done) override {
    writes.emplace_back(bytes);
    done({});
  }
  void finish(std::error_code ec) override { finished = ec; }
};

std::shared_ptr<RecordingWriter> open_stream(LocalCluster& c, LocalNode& leader, StreamRequest req) {
  auto w = std::make_shared<RecordingWriter>();
  leader.log->handle_stream(req, w);
  c.net.run_until([&] { return w->finished.has_value() || !w->writes.empty(); }, 1s);
  return w;
}

LocalNode* a_follower(LocalCluster& c) {
  for (auto& n : c.nodes)
    if (n->log && n->log->state() != State::leader) return n.get();
  return nullptr;
}

TEST(Log, StreamForAMemberIdFromAnotherUrlIsRefused) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  auto* f = a_follower(*c);
  ASSERT_TRUE(l && f);
  const std::uint64_t term = l->log->term(), id = f->log->id();

  auto impostor = open_stream(*c, *l, StreamRequest{id, term, 0, 0, "http://impostor"});
  ASSERT_TRUE(impostor->finished.has_value());
  EXPECT_EQ(*impostor->finished, errc::node_url_mismatch);
  EXPECT_TRUE(impostor->writes.empty());

  auto no_url = open_stream(*c, *l, StreamRequest{id, term, 0, 0, ""});
  ASSERT_TRUE(no_url->finished.has_value());
  EXPECT_EQ(*no_url->finished, errc::node_url_required);

  // An id this leader never handed out: a joiner whose AddPeer was lost.
  auto unknown = open_stream(*c, *l, StreamRequest{42, term, 0, 0, "http://impostor"});
  ASSERT_TRUE(unknown->finished.has_value());
  EXPECT_EQ(*unknown->finished, errc::node_url_mismatch);

  // A member's URL under an id that is not its own (it was added again under
  // a new id and the answer was lost): refused, so that it asks again.
  auto other_id = open_stream(*c, *l, StreamRequest{42, term, 0, 0, f->url});
  ASSERT_TRUE(other_id->finished.has_value());
  EXPECT_EQ(*other_id->finished, errc::node_url_mismatch);

  // The member itself is served.
  auto real = open_stream(*c, *l, StreamRequest{id, term, 0, 0, f->url});
  EXPECT_FALSE(real->writes.empty());
  EXPECT_FALSE(real->finished.has_value());
}

// A removed member is told so (node_not_found), not taken for a lost joiner:
// it must not join again on its own.
TEST(Log, StreamFromARemovedMemberIsNodeNotFound) {
  auto c = three_node_cluster();
  auto* f = a_follower(*c);
  ASSERT_TRUE(f);
  const std::uint64_t id = f->log->id();
  auto r = c->call<void>([&](auto h) { f->log->start_leave(std::move(h)); });
  ASSERT_TRUE(r) << r.error().message();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  auto w = open_stream(*c, *l, StreamRequest{id, l->log->term(), 0, 0, f->url});
  ASSERT_TRUE(w->finished.has_value());
  EXPECT_EQ(*w->finished, errc::node_not_found);
  c->net.run_for(2s);
  EXPECT_EQ(l->log->config().node_by_url(f->url), nullptr);
}

TEST(Log, AckForAMemberIdFromAnotherUrlDoesNotCountTowardCommit) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  const auto followers = c->others(l);
  // Both followers unreachable: the next entry cannot commit.
  for (auto* f : followers) c->net.down[f->url] = true;
  std::optional<result<std::uint64_t>> applied;
  l->log->start_apply("x", {}, [&](result<std::uint64_t> r) { applied = r; });
  c->net.run_for(5ms);
  const std::uint64_t x = l->log->last_index();
  ASSERT_LT(l->log->commit_index(), x);

  auto ack = [&](AckRequest req) { return c->call<void>([&](auto h) { l->log->handle_ack(req, std::move(h)); }); };
  const std::uint64_t term = l->log->term(), id = followers[0]->log->id();
  auto impostor = ack(AckRequest{id, term, x, "http://impostor"});
  ASSERT_FALSE(impostor);
  EXPECT_EQ(impostor.error(), errc::node_url_mismatch);
  auto no_url = ack(AckRequest{id, term, x, ""});
  ASSERT_FALSE(no_url);
  EXPECT_EQ(no_url.error(), errc::node_url_required);
  c->net.run_for(5ms);
  EXPECT_LT(l->log->commit_index(), x);
  EXPECT_FALSE(applied.has_value());

  // The same ack from the member's own URL is what would commit it.
  ASSERT_TRUE(ack(AckRequest{id, term, x, followers[0]->url}));
  EXPECT_TRUE(c->net.run_until([&] { return applied.has_value(); }, 1s));
  EXPECT_EQ(l->log->commit_index(), x);
}

// An ack the transport took but the leader never read (HTTPTransport's ack
// channel: the bytes were written, then the connection died, taking the
// stream with it) is reported again on the follower's next stream, so the
// entry commits without any further write. Before the Log re-acked on each
// new stream, the follower counted it as reported and the entry waited for
// the next one.
TEST(Log, AckLostWithItsStreamIsReportedAgainOnTheNextStream) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  const auto followers = c->others(l);
  c->net.down[followers[1]->url] = true;  // the entry needs followers[0]'s ack
  int vanished = 0;
  c->net.vanish_ack = [&](const std::string& from, const AckRequest&) {
    if (from != followers[0]->url || vanished > 0) return false;
    ++vanished;
    return true;
  };
  std::optional<result<std::uint64_t>> applied;
  l->log->start_apply("x", {}, [&](result<std::uint64_t> r) { applied = r; });
  EXPECT_TRUE(c->net.run_until([&] { return applied.has_value(); }, 5s));
  EXPECT_EQ(vanished, 1);
  ASSERT_TRUE(applied.has_value());
  EXPECT_TRUE(*applied);
}

// ---- read_index (ReadIndex, Raft thesis §6.4) ----

result<std::uint64_t> read_index(LocalCluster& c, LocalNode& n, Clock::duration timeout = {}) {
  return c.call<std::uint64_t>([&](auto h) { n.log->start_read_index(timeout, std::move(h)); });
}

// Three nodes; the first follower, `away`, is cut off (and stays so) while
// the leader commits `writes` writes; `last` is the last one's index (0 if
// one failed).
struct OneAway {
  std::unique_ptr<LocalCluster> c;
  LocalNode* l = nullptr;
  LocalNode* away = nullptr;
  LocalNode* other = nullptr;
  std::uint64_t last = 0;
};
OneAway one_follower_away(int writes) {
  OneAway s;
  s.c = three_node_cluster();
  s.l = s.c->leader();
  if (!s.l) return s;
  s.away = s.c->others(s.l)[0];
  s.other = s.c->others(s.l)[1];
  s.c->net.down[s.away->url] = true;
  s.last = apply_writes(*s.c, *s.l, writes);
  return s;
}

// Three nodes whose leader, n1, has a 600 s election timeout: cut off, it
// keeps believing it leads (check-quorum would end it after one timeout).
std::unique_ptr<LocalCluster> cluster_with_a_stubborn_leader() {
  return three_node_cluster([](LogOptions& o) {
    if (o.url == "http://n1") o.election_timeout = 600s;
  });
}

// Cuts `old` off; the others elect a leader, which commits a write. Its
// index, or 0 if that failed or `old` stopped believing it leads.
std::uint64_t depose(LocalCluster& c, LocalNode& old) {
  c.net.down[old.url] = true;
  LocalNode* fresh = leader_among(c, c.others(&old));
  if (!fresh) return 0;
  auto w = c.apply(*fresh, "after");
  if (!w || old.log->state() != State::leader) return 0;
  return *w;
}

// `old` reachable again: its pending read `r` must fail with not_leader
// (the first heartbeat answer names the new term), never answer stale.
void expect_not_leader_once_back(LocalCluster& c, LocalNode& old, std::optional<result<std::uint64_t>>& r,
                                 std::uint64_t committed) {
  c.net.down[old.url] = false;
  ASSERT_TRUE(c.net.run_until([&] { return r.has_value(); }, 30s));
  ASSERT_FALSE(*r) << "stale read at " << **r << ", a write committed at " << committed;
  EXPECT_EQ(r->error(), errc::not_leader);
}

// The index covers every write committed before the call; once the FSM has
// applied it, the FSM holds them all.
TEST(ReadIndex, CoversEveryWriteCommittedBeforeTheCall) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  const std::uint64_t last = apply_writes(*c, *l, 20);
  ASSERT_NE(last, 0u);
  auto r = read_index(*c, *l);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_GE(*r, last);
  EXPECT_LE(*r, l->log->commit_index());
  EXPECT_EQ(l->log->status().reads_as_leader, 1u);  // /raft/metrics' raft_reads_total
  auto w = c->call<void>([&](auto h) { l->log->start_wait(*r, {}, std::move(h)); });
  ASSERT_TRUE(w) << w.error().message();
  ASSERT_GE(l->fsm.commands.size(), 20u);
  EXPECT_EQ(l->fsm.commands.back().data, "w19");
}

// A follower asks its leader for the index (thesis §6.4): the answer covers
// the writes the leader committed before the call even if the follower has
// not heard of them yet, and read_barrier() answers once the follower's own
// FSM has applied them.
TEST(ReadIndex, FollowerReadCoversWritesItHasNotHeardOf) {
  auto s = one_follower_away(5);  // f misses the writes
  ASSERT_NE(s.last, 0u);
  auto& c = s.c;
  auto* f = s.away;
  const std::uint64_t last = s.last;
  c->net.down[f->url] = false;
  ASSERT_EQ(f->log->state(), State::follower);
  ASSERT_LT(f->log->commit_index(), last);  // the premise: f's own commit index is stale
  std::optional<result<std::uint64_t>> r;
  std::uint64_t applied_then = 0;
  f->log->start_read_barrier({}, [&](result<std::uint64_t> x) {
    r = x;
    applied_then = f->fsm.applied_index;
  });
  ASSERT_TRUE(c->net.run_until([&] { return r.has_value(); }, 5s));
  ASSERT_TRUE(*r) << r->error().message();
  EXPECT_GE(**r, last) << "a follower read missed writes committed before it";
  EXPECT_GE(applied_then, **r);
  ASSERT_FALSE(f->fsm.commands.empty());
  EXPECT_EQ(f->fsm.commands.back().data, "w4");
  // read_index() on a follower: the index, for the caller to wait() on.
  auto i = read_index(*c, *f);
  ASSERT_TRUE(i) << i.error().message();
  EXPECT_GE(*i, last);
  EXPECT_EQ(f->log->status().reads_as_follower, 2u);  // /raft/metrics' raft_reads_total
  EXPECT_EQ(f->log->status().reads_as_leader, 0u);
}

// The follower's timeout bounds the leader's part too; close() ends a
// forwarded read that is still waiting. Heartbeat replies are held, so the
// (stubborn) leader can never confirm.
TEST(ReadIndex, FollowerReadTimesOutOrFailsWithClosed) {
  auto c = cluster_with_a_stubborn_leader();
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  auto* f = c->others(l)[0];
  c->net.hold_heartbeat_replies = true;
  std::optional<result<std::uint64_t>> timed, waiting;
  f->log->start_read_index(300ms, [&](result<std::uint64_t> x) { timed = x; });
  f->log->start_read_barrier({}, [&](result<std::uint64_t> x) { waiting = x; });
  ASSERT_TRUE(c->net.run_until([&] { return timed.has_value(); }, 5s));
  ASSERT_FALSE(*timed) << "answered " << **timed << " without a confirmed round";
  EXPECT_EQ(timed->error(), errc::timeout);
  EXPECT_FALSE(waiting.has_value());
  std::optional<result<void>> closed;
  f->log->start_close([&](result<void> x) { closed = x; });
  ASSERT_TRUE(c->net.run_until([&] { return closed.has_value() && waiting.has_value(); }, 5s));
  ASSERT_FALSE(*waiting);
  EXPECT_EQ(waiting->error(), errc::closed);
}

// A follower's reads share its requests to the leader, but only those asked
// before a request was sent: a read asked while one is out waits for the
// next, or it could get an index the leader took before it was asked. Here
// the leader's answer to read A is held back while a write commits and read
// B is asked; B must see the write.
TEST(ReadIndex, FollowerReadAskedWhileARequestIsOutWaitsForTheNext) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  auto* f = c->others(l)[0];
  c->net.hold_read_index_replies = true;
  std::optional<result<std::uint64_t>> a, b;
  f->log->start_read_index({}, [&](result<std::uint64_t> x) { a = x; });
  c->net.run_for(10ms);  // A's request reaches the leader, which answers (held)
  ASSERT_EQ(c->net.held_read_index_replies.size(), 1u);
  auto w = c->apply(*l, "written after A, before B");
  ASSERT_TRUE(w) << w.error().message();
  f->log->start_read_index({}, [&](result<std::uint64_t> x) { b = x; });
  c->net.release_read_index_replies();
  ASSERT_TRUE(c->net.run_until([&] { return a.has_value() && b.has_value(); }, 5s));
  ASSERT_TRUE(*a) << a->error().message();
  ASSERT_TRUE(*b) << b->error().message();
  EXPECT_LT(**a, *w);  // the premise: A's answer predates the write
  EXPECT_GE(**b, *w) << "read B answered with an index taken before it was asked";
  EXPECT_EQ(c->net.read_index_requests, 2u);
}

TEST(ReadIndex, ConcurrentFollowerReadsShareRequests) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  auto* f = c->others(l)[0];
  std::vector<std::optional<result<std::uint64_t>>> rs(100);
  for (auto& r : rs) f->log->start_read_barrier({}, [&r](result<std::uint64_t> x) { r = x; });
  ASSERT_TRUE(c->net.run_until([&] {
    return std::all_of(rs.begin(), rs.end(), [](const auto& r) { return r.has_value(); });
  }, 5s));
  for (auto& r : rs) ASSERT_TRUE(*r) << r->error().message();
  EXPECT_LE(c->net.read_index_requests, 2u) << "100 follower reads took " << c->net.read_index_requests << " requests";
}

// A follower that knows no leader refuses at once: there is nobody to ask.
TEST(ReadIndex, FollowerWithoutALeaderRefusesWithNotLeader) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  auto* f = c->others(l)[0];
  // f restarts while cut off: it knows the members, not who leads.
  c->net.down[f->url] = true;
  c->crash(*f);
  c->start(*f);
  ASSERT_EQ(f->log->leader().first, 0u);
  auto r = read_index(*c, *f, 5s);
  ASSERT_FALSE(r) << "answered " << *r << " with no leader";
  EXPECT_EQ(r.error(), errc::not_leader);
}

// A majority must answer a heartbeat sent after the call: one follower
// away is fine, both away is not (and the leader's own commit index, which
// it still has, is never handed out unconfirmed).
TEST(ReadIndex, NeedsAHeartbeatRoundAnsweredByAMajority) {
  // Check-quorum would end the leader after one election timeout; a long
  // one keeps it leader for the whole test, so only the round decides.
  auto c = cluster_with_a_stubborn_leader();
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  const auto followers = c->others(l);
  c->net.down[followers[0]->url] = true;
  auto one = read_index(*c, *l, 5s);
  ASSERT_TRUE(one) << one.error().message();
  c->net.down[followers[1]->url] = true;
  auto none = read_index(*c, *l, 5s);
  ASSERT_FALSE(none) << "answered " << *none << " with no follower reachable";
  EXPECT_EQ(none.error(), errc::timeout);
  EXPECT_EQ(l->log->state(), State::leader);
  // The followers come back: a read asked now is confirmed by the next round.
  c->net.down[followers[0]->url] = false;
  c->net.down[followers[1]->url] = false;
  auto back = read_index(*c, *l, 5s);
  ASSERT_TRUE(back) << back.error().message();
}

// The case ReadIndex exists for: a leader cut off from the others still
// believes it leads (its check-quorum timeout is long here), while the
// others elect a new leader and commit a write. A read asked of the old
// leader must not return its stale commit index: it times out while cut
// off, and fails with not_leader once it hears of the new term.
TEST(ReadIndex, DeposedLeaderNeverAnswersWithAStaleIndex) {
  auto c = cluster_with_a_stubborn_leader();
  auto* old = c->nodes[0].get();
  ASSERT_EQ(old->log->state(), State::leader);
  ASSERT_TRUE(c->apply(*old, "before"));
  const std::uint64_t w = depose(*c, *old);
  ASSERT_NE(w, 0u);  // the premise: a write committed, and the old leader still believes it leads
  ASSERT_LT(old->log->commit_index(), w);
  auto cut_off = read_index(*c, *old, 5s);
  ASSERT_FALSE(cut_off) << "stale read at " << *cut_off << ", a write committed at " << w;
  EXPECT_EQ(cut_off.error(), errc::timeout);
  std::optional<result<std::uint64_t>> r;
  old->log->start_read_index({}, [&](result<std::uint64_t> x) { r = x; });
  expect_not_leader_once_back(*c, *old, r, w);
}

// Only a heartbeat sent after the read was asked confirms it: a reply the
// followers wrote before they moved to a new term (and a new leader
// committed), delivered late, must not. The old leader's heartbeats are all
// in flight (their replies held), so it sends none meanwhile.
TEST(ReadIndex, ReplyToAHeartbeatSentBeforeTheReadDoesNotConfirmIt) {
  auto c = cluster_with_a_stubborn_leader();
  auto* old = c->nodes[0].get();
  ASSERT_EQ(old->log->state(), State::leader);
  c->net.hold_heartbeat_replies = true;
  c->net.run_for(500ms);  // a heartbeat round: both replies written, held
  ASSERT_GE(c->net.held_heartbeat_replies.size(), 2u);
  c->net.hold_heartbeat_replies = false;
  const std::uint64_t w = depose(*c, *old);
  ASSERT_NE(w, 0u);  // the premise: a write committed, and the old leader still believes it leads
  ASSERT_LT(old->log->commit_index(), w);
  std::optional<result<std::uint64_t>> r;
  old->log->start_read_index({}, [&](result<std::uint64_t> x) { r = x; });
  c->net.run_for(1ms);
  c->net.release_heartbeat_replies();  // term-T "yes" answers, written before the read
  c->net.run_for(100ms);
  if (r) {
    ASSERT_FALSE(*r) << "stale read at " << **r << " confirmed by old replies; " << w << " was committed";
  }
  expect_not_leader_once_back(*c, *old, r, w);
}

// Only the member itself confirms a read: a node started afresh at a
// member's URL (its directory wiped) answers heartbeats in the leader's
// term, but with no id, and counts for nothing (it may have been part of a
// later term's majority before it lost its state).
TEST(ReadIndex, OnlyTheAddressedMemberConfirmsARead) {
  auto c = cluster_with_a_stubborn_leader();
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  auto* away = c->nodes[1].get();
  auto* wiped = c->nodes[2].get();
  c->net.down[away->url] = true;
  wipe_and_restart(*c, *wiped);
  ASSERT_EQ(wiped->log->id(), 0u);
  const auto hb_before = c->net.heartbeats_sent;
  auto r = read_index(*c, *l, 2s);
  ASSERT_GT(c->net.heartbeats_sent, hb_before);  // the wiped node was asked, and answered
  ASSERT_FALSE(r) << "confirmed by a node with no id: " << *r;
  EXPECT_EQ(r.error(), errc::timeout);
  c->net.down[away->url] = false;
  auto ok = read_index(*c, *l, 2s);
  ASSERT_TRUE(ok) << ok.error().message();
}

// §6.4 step 1: a new leader may not know the commit index of the terms
// before it until an entry of its own term commits. Here its Nop cannot
// commit (the old leader is gone, the other follower's acks are held back),
// while heartbeats are answered: no read is answered until the Nop commits.
TEST(ReadIndex, NewLeaderAnswersOnlyOnceAnEntryOfItsTermCommits) {
  auto c = three_node_cluster();
  auto* l1 = c->leader();
  ASSERT_TRUE(l1);
  const std::uint64_t last = apply_writes(*c, *l1, 5);
  ASSERT_NE(last, 0u);
  c->net.down[l1->url] = true;
  c->net.hold_acks = true;
  LocalNode* nl = leader_among(*c, c->others(l1));
  ASSERT_TRUE(nl);
  const std::uint64_t nop = nl->log->last_index();
  ASSERT_LT(nl->log->commit_index(), nop);  // the premise: its Nop is not committed
  auto early = read_index(*c, *nl, 2s);
  ASSERT_FALSE(early) << "answered " << *early << " before an entry of its term committed (commit "
                      << nl->log->commit_index() << ", Nop at " << nop << ")";
  EXPECT_EQ(early.error(), errc::timeout);
  c->net.release_acks();
  auto later = read_index(*c, *nl, 10s);
  ASSERT_TRUE(later) << later.error().message();
  EXPECT_GE(*later, nop);
  EXPECT_GE(*later, last);
}

// read_barrier() answers only once the FSM has applied the read index, so
// the caller can read the FSM at once. The leader's FSM runs on an executor
// the test drives: the read is confirmed while the write is committed but
// not yet applied, and must wait for the apply.
TEST(ReadIndex, ReadBarrierAnswersOnceTheFsmAppliedTheIndex) {
  boost::asio::io_context fsm_io;
  auto c = three_node_cluster([&](LogOptions& o) {
    if (o.url == "http://n1") o.apply_executor = fsm_io.get_executor();
  });
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  auto drain_fsm = [&] {
    fsm_io.poll();
    fsm_io.restart();
  };
  drain_fsm();
  c->net.run_for(10ms);
  std::optional<result<std::uint64_t>> w, r;
  l->log->start_apply("w", {}, [&](result<std::uint64_t> x) { w = x; });
  ASSERT_TRUE(c->net.run_until([&] { return w.has_value(); }, 5s));
  ASSERT_TRUE(*w);
  ASSERT_LT(l->fsm.applied_index, **w);  // the premise: committed, not applied
  std::uint64_t applied_then = 0;
  l->log->start_read_barrier({}, [&](result<std::uint64_t> x) {
    r = x;
    applied_then = l->fsm.applied_index;
  });
  c->net.run_for(1s);  // many heartbeat rounds: the read is confirmed
  EXPECT_FALSE(r.has_value()) << "answered " << (r && *r ? **r : 0) << " before the FSM applied it";
  ASSERT_TRUE(c->net.run_until([&] {
    drain_fsm();
    return r.has_value();
  }, 5s));
  ASSERT_TRUE(*r) << r->error().message();
  EXPECT_GE(**r, **w);
  EXPECT_GE(applied_then, **r);
}

// Reads asked together share heartbeat rounds: many calls, few rounds.
TEST(ReadIndex, ConcurrentReadsShareRounds) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  std::vector<std::optional<result<std::uint64_t>>> rs(100);
  const auto before = c->net.heartbeats_sent;
  for (auto& r : rs) l->log->start_read_index({}, [&r](result<std::uint64_t> x) { r = x; });
  ASSERT_TRUE(c->net.run_until([&] {
    return std::all_of(rs.begin(), rs.end(), [](const auto& r) { return r.has_value(); });
  }, 5s));
  for (auto& r : rs) ASSERT_TRUE(*r) << r->error().message();
  const auto heartbeats = c->net.heartbeats_sent - before;
  EXPECT_LE(heartbeats, 8) << "100 reads took " << heartbeats << " heartbeats";
}

// ---- leadership transfer (thesis §3.10) ----

result<void> transfer(LocalCluster& c, LocalNode& l, std::uint64_t to, Clock::duration timeout = {}) {
  return c.call<void>([&](auto h) { l.log->start_transfer_leadership(to, timeout, std::move(h)); });
}

// The target leads within one round trip, not after an election timeout,
// with every entry; in five nodes it needs the votes of followers that hear
// from a live leader, so they must grant a transfer's election anyway.
TEST(Transfer, HandsLeadershipToTheTargetWithoutAnElectionTimeout) {
  auto c = cluster_of(5);
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  const std::uint64_t last = apply_writes(*c, *l, 10);
  ASSERT_NE(last, 0u);
  c->net.run_for(kDefaultHeartbeatInterval);  // every follower has heard the leader lately
  auto* t = c->nodes[3].get();
  const auto t0 = c->net.clock.now();
  auto r = transfer(*c, *l, t->log->id());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_LT(c->net.clock.now() - t0, kDefaultElectionTimeout);
  EXPECT_EQ(l->log->status().transfers_completed, 1u);
  ASSERT_TRUE(c->net.run_until([&] { return t->log->state() == State::leader; }, kDefaultElectionTimeout));
  EXPECT_NE(l->log->state(), State::leader);
  EXPECT_GT(t->log->term(), 1u);
  EXPECT_EQ(t->log->status().elections_started, 1u);  // the transfer's, at once
  auto w = c->apply(*t, "after");
  ASSERT_TRUE(w) << w.error().message();
  EXPECT_GT(*w, last);
  ASSERT_TRUE(c->net.run_until([&] { return l->fsm.applied_index >= *w; }, 5s));
  EXPECT_EQ(l->fsm.commands.back().data, "after");
}

// The target is told to campaign only once it holds the whole log; new
// entries are refused meanwhile, and taken again by the new leader.
TEST(Transfer, WaitsForTheTargetToHoldTheWholeLogAndRefusesNewEntries) {
  auto s = one_follower_away(10);
  ASSERT_NE(s.last, 0u);
  auto& c = s.c;
  auto* l = s.l;
  auto* t = s.away;
  const std::uint64_t last = s.last;
  ASSERT_LT(t->log->last_index(), last);
  std::optional<result<void>> r;
  l->log->start_transfer_leadership(t->log->id(), 30s, [&](result<void> x) { r = x; });
  c->net.run_for(2 * kDefaultElectionTimeout);
  EXPECT_FALSE(r.has_value());  // the target is away: no transfer yet
  EXPECT_EQ(l->log->state(), State::leader);
  auto refused = c->apply(*l, "during");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), errc::transfer_in_progress);
  // Back, t catches up, but the leader learns so only from its acks: held
  // here, so the leader must still wait (its match for t is behind).
  c->net.hold_acks = true;
  c->net.down[t->url] = false;
  c->net.run_for(10 * kDefaultHeartbeatInterval);
  EXPECT_FALSE(r.has_value()) << "transfer before the leader knew the target held its log";
  EXPECT_NE(t->log->state(), State::leader);
  c->net.release_acks();
  ASSERT_TRUE(c->net.run_until([&] { return r.has_value(); }, 30s));
  ASSERT_TRUE(*r) << r->error().message();
  ASSERT_TRUE(c->net.run_until([&] { return t->log->state() == State::leader; }, kDefaultElectionTimeout));
  EXPECT_GE(t->log->last_index(), last);
  auto w = c->apply(*t, "after");
  ASSERT_TRUE(w) << w.error().message();
}

// A target that never catches up: the transfer times out, and the leader
// leads on and takes entries again.
TEST(Transfer, TimesOutAndTheLeaderLeadsOn) {
  auto c = cluster_with_a_stubborn_leader();
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  auto* t = c->others(l)[0];
  c->net.down[t->url] = true;
  ASSERT_TRUE(c->apply(*l, "x"));
  auto r = transfer(*c, *l, t->log->id(), 300ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::timeout);
  EXPECT_EQ(l->log->state(), State::leader);
  auto w = c->apply(*l, "again");
  ASSERT_TRUE(w) << w.error().message();
}

TEST(Transfer, RefusesUnknownTargetsFollowersAndASecondTransfer) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  auto* f = c->others(l)[0];
  auto unknown = transfer(*c, *l, 99);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error(), errc::node_not_found);
  auto follower = transfer(*c, *f, l->log->id());
  ASSERT_FALSE(follower);
  EXPECT_EQ(follower.error(), errc::not_leader);
  auto self = transfer(*c, *l, l->log->id());
  EXPECT_TRUE(self) << self.error().message();
  EXPECT_EQ(l->log->state(), State::leader);
  c->net.down[f->url] = true;  // the first transfer waits for f
  std::optional<result<void>> first;
  l->log->start_transfer_leadership(f->log->id(), 5s, [&](result<void> x) { first = x; });
  auto second = transfer(*c, *l, 0);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), errc::transfer_in_progress);
  auto change = c->call<void>([&](auto h) { l->log->start_remove_peer(f->log->id(), std::move(h)); });
  ASSERT_FALSE(change);
  EXPECT_EQ(change.error(), errc::transfer_in_progress);
  c->net.down[f->url] = false;
  ASSERT_TRUE(c->net.run_until([&] { return first.has_value(); }, 10s));
  ASSERT_TRUE(*first) << first->error().message();
}

// Id 0: the other voter furthest along (here the only one reachable).
TEST(Transfer, ToIdZeroPicksTheVoterFurthestAlong) {
  auto s = one_follower_away(5);
  ASSERT_NE(s.last, 0u);
  auto& c = s.c;
  auto* near = s.other;
  auto r = transfer(*c, *s.l, 0);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(c->net.run_until([&] { return near->log->state() == State::leader; }, kDefaultElectionTimeout));
}

// The lost join's setup: leader `l` answers x's join while cut off from
// `others`, so only l and x hold the AddPeer entry; then l and x go away and
// the others elect a leader whose log lacks it (and commits its Nop).
struct LostAddPeer {
  LocalNode* x = nullptr;
  std::uint64_t lost_id = 0;
  LocalNode* new_leader = nullptr;
};
std::optional<LostAddPeer> lose_an_add_peer(LocalCluster& c, LocalNode* l, const std::vector<LocalNode*>& others,
                                            JoinOptions opts = {}) {
  for (auto* o : others) c.net.down[o->url] = true;
  auto& x = c.add();
  auto jx = c.join(x, l->url, opts);
  EXPECT_TRUE(jx) << jx.error().message();
  if (!jx) return std::nullopt;
  LostAddPeer out{&x, x.log->id(), nullptr};
  c.net.down[l->url] = true;
  c.net.down[x.url] = true;
  for (auto* o : others) c.net.down[o->url] = false;
  const bool elected = c.net.run_until([&] {
    for (auto* o : others)
      if (o->log->state() == State::leader && o->log->commit_index() == o->log->last_index()) out.new_leader = o;
    return out.new_leader != nullptr;
  });
  EXPECT_TRUE(elected);
  if (!elected) return std::nullopt;
  return out;
}

// The lost join itself: the leader answers a join right after appending the
// AddPeer entry; a later leader truncates it and gives the same id to the
// next joiner. The first joiner must not stay "that member": it is refused
// as such and joins again under a new id.
TEST(Log, JoinerWhoseAddPeerWasLostJoinsAgainUnderANewId) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  std::vector<LocalNode*> others;
  for (auto& n : c->nodes)
    if (n.get() != l) others.push_back(n.get());
  auto lost = lose_an_add_peer(*c, l, others);
  ASSERT_TRUE(lost);
  auto& x = *lost->x;
  const std::uint64_t lost_id = lost->lost_id;
  EXPECT_EQ(lost_id, 4u);
  LocalNode* nl = lost->new_leader;
  ASSERT_EQ(nl->log->config().node_by_url(x.url), nullptr);
  // The next joiner gets the same id.
  auto& y = c->add();
  auto jy = c->join(y, nl->url);
  ASSERT_TRUE(jy) << jy.error().message();
  EXPECT_EQ(y.log->id(), lost_id);
  // x comes back believing it is node 4.
  c->net.down[x.url] = false;
  ASSERT_TRUE(c->net.run_until([&] {
    const Config cfg = nl->log->config();
    return x.log->id() != lost_id && cfg.node_by_url(x.url) && cfg.node_by_url(x.url)->id == x.log->id() &&
           x.log->commit_index() >= cfg.index;
  }, 30s)) << "x id " << x.log->id();
  const Config cfg = nl->log->config();
  ASSERT_NE(cfg.node_by_id(lost_id), nullptr);
  EXPECT_EQ(cfg.node_by_id(lost_id)->url, y.url);
  EXPECT_EQ(x.log->config().node_by_id(x.log->id())->url, x.url);
  EXPECT_TRUE(c->apply(*nl, "after"));
}

// A lost joiner asks every member it knows in one pass, one after another,
// rather than one member per election timeout: while it waits, the members
// it knows may all be replaced (simulator, membership_add_remove_under_faults
// seed 50806). Here the first member it asks (n1) is down: it must reach
// the leader in the same pass, within the election timeout that starts it
// (at most 2x the setting, with jitter), not at the next one (at least 2x).
TEST(Log, LostJoinerAsksTheNextMemberAtOnceWhenOneDoesNotAnswer) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  auto lost = lose_an_add_peer(*c, l, c->others(l));
  ASSERT_TRUE(lost);
  auto& x = *lost->x;
  LocalNode* first = c->nodes[0].get();  // first in x's configuration: asked first
  ASSERT_NE(lost->new_leader, first) << "the setup needs the leader elsewhere than the first member";
  c->net.down[first->url] = true;
  // Restarted (provisional, from join.json), so that its first pass starts
  // at the first member; then back: added again (under the lost id if
  // nobody took it meanwhile).
  c->crash(x);
  c->start(x);
  c->net.down[x.url] = false;
  const auto back = c->net.clock.now();
  auto added = [&] {
    const Config cfg = lost->new_leader->log->config();  // a copy: n points into it
    const auto* n = cfg.node_by_url(x.url);
    return n && n->id == x.log->id();
  };
  ASSERT_TRUE(c->net.run_until(added, 2 * kDefaultElectionTimeout))
      << "x not added again after "
      << std::chrono::duration_cast<std::chrono::milliseconds>(c->net.clock.now() - back).count() << " ms";
  ASSERT_TRUE(c->net.run_until([&] { return x.log->commit_index() >= lost->new_leader->log->config().index; }));
}

// The role survives a lost join: a learner whose AddPeer entry was lost, and
// that restarted meanwhile, joins again as a learner (the role read back
// from join.json), not as a voter nobody asked for.
TEST(Learner, WhoseAddPeerWasLostJoinsAgainAsALearnerAfterARestart) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  auto lost = lose_an_add_peer(*c, l, c->others(l), {.learner = true});
  ASSERT_TRUE(lost);
  auto& x = *lost->x;
  LocalNode* nl = lost->new_leader;
  ASSERT_EQ(nl->log->config().node_by_url(x.url), nullptr);
  c->crash(x);  // still cut off
  c->start(x);
  EXPECT_EQ(x.log->id(), lost->lost_id);
  c->net.down[x.url] = false;
  ASSERT_TRUE(c->net.run_until([&] {
    const Config cfg = nl->log->config();
    const auto* n = cfg.node_by_url(x.url);
    return n && n->id == x.log->id() && x.log->commit_index() >= cfg.index;
  }, 30s)) << "x id " << x.log->id();
  const Config cfg = nl->log->config();
  EXPECT_TRUE(cfg.node_by_url(x.url)->learner) << "rejoined as a voter";
  EXPECT_EQ(cfg.voter_count(), 3u);
}

// A member that led when it answered a join, then lost its majority, keeps
// the AddPeer entry in its log after a later leader (without it) gave the
// same id to the next joiner. When that joiner leads, the member must open
// its stream to the URL the leader's heartbeats name: its own configuration,
// built from the stale entry, gives the id to the lost joiner's URL, which
// refuses the stream (or is gone) forever, so the member never receives the
// entries that would truncate the stale one (simulator, reopen_in_place seed
// 1452: a follower streamed from the wrong node for 10 s and never caught up).
TEST(Log, MemberWithALostAddPeerStreamsFromTheUrlItsLeaderNames) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  const auto others = c->others(l);
  auto lost = lose_an_add_peer(*c, l, others);
  ASSERT_TRUE(lost);
  auto& x = *lost->x;
  const std::uint64_t lost_id = lost->lost_id;
  LocalNode* nl = lost->new_leader;
  LocalNode* rest = others[0] == nl ? others[1] : others[0];
  // The next joiner y is given the same id.
  auto& y = c->add();
  ASSERT_TRUE(c->join(y, nl->url));
  ASSERT_EQ(y.log->id(), lost_id);
  ASSERT_TRUE(c->net.run_until([&] { return y.log->commit_index() >= nl->log->config().index; }));
  // Leave {l, nl, y}, then take nl away too: y is elected with l's vote.
  auto rm = c->call<void>([&](auto h) { nl->log->start_remove_peer(rest->log->id(), std::move(h)); });
  ASSERT_TRUE(rm) << rm.error().message();
  ASSERT_TRUE(c->net.run_until([&] { return y.log->commit_index() >= nl->log->config().index; }));
  // The premise: l's configuration gives y's id to x.
  ASSERT_NE(l->log->config().node_by_id(lost_id), nullptr);
  ASSERT_EQ(l->log->config().node_by_id(lost_id)->url, x.url);
  c->net.down[rest->url] = true;
  c->net.down[nl->url] = true;
  c->net.down[l->url] = false;
  ASSERT_TRUE(c->net.run_until([&] { return y.log->state() == State::leader; }));
  // A new entry commits only with l's ack: l must stream from y.
  std::optional<result<std::uint64_t>> applied;
  y.log->start_apply("after", {}, [&](result<std::uint64_t> r) { applied = r; });
  EXPECT_TRUE(c->net.run_until([&] { return applied.has_value(); }, 10s)) << "l last " << l->log->last_index();
  ASSERT_TRUE(applied.has_value());
  ASSERT_TRUE(*applied) << applied->error().message();
  EXPECT_TRUE(c->net.run_until([&] { return l->log->applied_index() >= **applied; }, 10s));
  EXPECT_EQ(l->log->config().node_by_id(lost_id)->url, y.url);
}

// A leader counts acks over the configuration after a member is removed: the
// quorum's match index may then be an entry already compacted away (two
// members lag behind the snapshot; the removed one was up to date). That is
// no commit to make (it is not above the commit index), but the leader
// looked its term up first and hit "term_at outside the log" (simulator,
// reopen_in_place seed 4335: an assertion failure killed the process).
TEST(Log, RemovingAMemberWhileTheQuorumMatchIsCompactedAwayDoesNotLookItUp) {
  LocalCluster c;
  c.tweak = [](LogOptions& o) {
    o.snapshot_threshold_entries = 8;
    o.snapshot_tail_entries = 0;
    o.segment_size_bytes_max = 256;  // compaction drops whole segments
  };
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  for (int i = 0; i < 4; ++i) {
    auto& n = c.add();
    ASSERT_TRUE(c.join(n, a.url));
  }
  ASSERT_TRUE(c.net.run_until([&] {
    for (auto& n : c.nodes)
      if (n->log->config().nodes.size() != 5 || n->log->applied_index() < a.log->commit_index()) return false;
    return a.log->state() == State::leader;
  }));
  // Two members fall behind (they acked the configuration, nothing more).
  auto others = c.others(&a);
  c.net.down[others[2]->url] = true;
  c.net.down[others[3]->url] = true;
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(c.apply(a, "x" + std::to_string(i)));
  std::vector<std::string> lines;
  a.log->set_log_output([&](std::string_view l) { lines.emplace_back(l); });
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(c.apply(a, "y" + std::to_string(i)));
  c.net.run_for(100ms);
  // The premise: the leader's log starts past what the laggards acked.
  ASSERT_TRUE(std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
    return l.find("log now starts at") != std::string::npos;
  }));
  // Remove an up-to-date member: of {a, others[1], others[2], others[3]}, the
  // third highest match is a laggard's.
  std::optional<result<void>> rm;
  a.log->start_remove_peer(others[0]->log->id(), [&](result<void> r) { rm = r; });
  c.net.run_for(10ms);
  ASSERT_EQ(a.log->state(), State::leader);
  // The laggards come back (by snapshot) and the removal commits.
  c.net.down[others[2]->url] = false;
  c.net.down[others[3]->url] = false;
  ASSERT_TRUE(c.net.run_until([&] { return rm.has_value(); }));
  ASSERT_TRUE(*rm) << rm->error().message();
  EXPECT_TRUE(c.apply(a, "after"));
}

// A follower installs a snapshot from the leader while the FSM restore of the
// one it installed before still waits on its apply executor (a slow FSM
// thread). The restore opens its snapshot file when it runs: the newer
// install's compaction deleted that file, the restore failed with an i/o
// error and the node stopped (simulator, reopen_in_place seed 4128).
TEST(Log, SnapshotInstalledWhileTheLastRestoreIsQueuedKeepsThatSnapshot) {
  boost::asio::io_context f_apply;  // the follower's apply executor, run by hand
  LocalCluster c;
  c.tweak = [&](LogOptions& o) {
    o.snapshot_threshold_entries = 8;
    o.snapshot_tail_entries = 0;
    o.segment_size_bytes_max = 256;  // compaction drops whole segments
    if (o.url == "http://n3") o.apply_executor = f_apply.get_executor();
  };
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  auto& b = c.add();
  ASSERT_TRUE(c.join(b, a.url));
  auto& f = c.add();
  ASSERT_EQ(f.url, "http://n3");
  ASSERT_TRUE(c.join(f, a.url));
  ASSERT_TRUE(c.net.run_until([&] {
    f_apply.poll();
    f_apply.restart();
    return f.log->commit_index() >= 3 && f.fsm.applied_index >= f.log->commit_index() &&
           a.log->state() == State::leader;
  }));
  // Twice: f is away while the leader compacts past it, then comes back and
  // installs the leader's snapshot; its FSM thread does not run meanwhile.
  for (int round = 0; round < 2; ++round) {
    c.net.down[f.url] = true;
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(c.apply(a, "r" + std::to_string(round) + "-" + std::to_string(i)));
    c.net.down[f.url] = false;
    const auto target = a.log->commit_index();
    ASSERT_TRUE(c.net.run_until([&] { return f.log->commit_index() >= target; }))
        << "round " << round << ": f commit " << f.log->commit_index() << ", leader " << target;
  }
  ASSERT_LT(f.fsm.applied_index, 20u);  // the premise: the first restore has not run
  // The FSM thread runs again: f restores and catches up, and keeps running.
  ASSERT_TRUE(c.net.run_until([&] {
    f_apply.poll();
    f_apply.restart();
    return f.log->state() == State::stopped || f.fsm.applied_index >= a.log->commit_index();
  }));
  EXPECT_NE(f.log->state(), State::stopped);
  EXPECT_GE(f.fsm.applied_index, a.log->commit_index());
  EXPECT_TRUE(c.apply(a, "after"));
  // Nothing left queued for the io_context destroyed after the cluster.
  c.net.run_until([&] {
    f_apply.poll();
    f_apply.restart();
    return f.fsm.applied_index >= a.log->commit_index();
  });
}

// A joiner that never learned that its membership committed (cut off right
// after the leader answered its join) and was then removed by the operator
// asks to join again when it hears no leader. It must not be added back: the
// leader's configuration remembers the removed (id, url), and the rejoin
// carries the id the node was given, so the leader refuses it (errc::removed)
// and the node stops asking.
// Three members and a fourth, x, that joined through the leader l.
struct ClusterWithJoiner {
  std::unique_ptr<LocalCluster> c;
  LocalNode* l = nullptr;
  LocalNode* x = nullptr;
  std::uint64_t xid = 0;
};
std::optional<ClusterWithJoiner> cluster_with_a_joiner() {
  ClusterWithJoiner w{three_node_cluster()};
  w.l = w.c->leader();
  if (!w.l) return std::nullopt;
  w.x = &w.c->add();
  if (!w.c->join(*w.x, w.l->url)) return std::nullopt;
  w.xid = w.x->log->id();
  return w;
}

TEST(Log, RemovedJoinerThatNeverSawItsMembershipCommitIsNotAddedBack) {
  auto w = cluster_with_a_joiner();
  ASSERT_TRUE(w);
  auto& [c, l, xp, xid] = *w;
  auto& x = *xp;
  c->net.down[x.url] = true;
  ASSERT_TRUE(c->net.run_until([&] {
    const Config cfg = l->log->config();
    return cfg.node_by_id(xid) && l->log->commit_index() >= cfg.index;
  }));
  // The premise: x has not seen its membership commit.
  ASSERT_LT(x.log->commit_index(), l->log->config().index);
  auto rm = c->call<void>([&](auto h) { l->log->start_remove_peer(xid, std::move(h)); });
  ASSERT_TRUE(rm) << rm.error().message();
  ASSERT_TRUE(l->log->config().was_removed(xid, x.url));
  c->net.down[x.url] = false;
  // Long enough for many election timeouts of x, each of which used to end
  // in a rejoin that added x back under a new id.
  c->net.run_until([] { return false; }, 20s);
  auto* now = c->leader();
  ASSERT_TRUE(now);
  const Config cfg = now->log->config();
  EXPECT_EQ(cfg.node_by_url(x.url), nullptr) << "x was added back as node " << cfg.node_by_url(x.url)->id;
  EXPECT_EQ(cfg.nodes.size(), 3u);
  EXPECT_TRUE(cfg.was_removed(xid, x.url));
  EXPECT_EQ(x.log->id(), xid);  // x did not take a new id either
  EXPECT_TRUE(c->apply(*now, "after"));
  // The operator adds x's URL again while x still runs: x, told that its
  // old id is not its URL's, asks once more and takes the new id.
  auto added = c->call<std::pair<std::uint64_t, Config>>([&](auto h) { now->log->start_add_peer(x.url, std::move(h)); });
  ASSERT_TRUE(added) << added.error().message();
  const std::uint64_t new_id = added->first;
  EXPECT_NE(new_id, xid);
  ASSERT_TRUE(c->net.run_until([&] {
    const Config cur = now->log->config();
    return x.log->id() == new_id && x.log->commit_index() >= cur.index && x.log->last_index() == now->log->last_index();
  }, 30s)) << "x id " << x.log->id();
}

// The same rule for a first join (no previous id) that arrives late: the
// network delayed or duplicated the request that added x, and delivers it
// after x was removed (simulator, reopen_in_place seed 587). It carries the
// join token recorded with x, so the leader refuses it as it would x's own
// rejoin, while a node started afresh at x's URL (a new token) may join.
TEST(Log, LateCopyOfARemovedNodesJoinRequestIsNotAddedBack) {
  auto w = cluster_with_a_joiner();
  ASSERT_TRUE(w);
  auto& [c, l, xp, xid] = *w;
  auto& x = *xp;
  const Config joined = l->log->config();  // config() returns a copy
  const ConfigNode* xn = joined.node_by_id(xid);
  ASSERT_TRUE(xn);
  const std::uint64_t token = xn->join_token;
  ASSERT_NE(token, 0u) << "the join sent no token";
  ASSERT_TRUE(c->net.run_until([&] { return l->log->commit_index() >= l->log->config().index; }));
  auto rm = c->call<void>([&](auto h) { l->log->start_remove_peer(xid, std::move(h)); });
  ASSERT_TRUE(rm) << rm.error().message();
  ASSERT_TRUE(l->log->config().join_was_removed(x.url, token));
  auto late = c->call<JoinResponse>([&](auto h) { l->log->handle_join(JoinRequest{x.url, 0, token}, std::move(h)); });
  ASSERT_FALSE(late) << "x was added back as node " << late->id;
  EXPECT_EQ(late.error(), errc::removed);
  EXPECT_EQ(l->log->config().node_by_url(x.url), nullptr);
  EXPECT_EQ(l->log->config().nodes.size(), 3u);
  // A node started afresh at the URL draws another token and is a new member.
  auto fresh = c->call<JoinResponse>([&](auto h) { l->log->handle_join(JoinRequest{x.url, 0, token + 1}, std::move(h)); });
  ASSERT_TRUE(fresh) << fresh.error().message();
  EXPECT_GT(fresh->id, xid);
  EXPECT_EQ(fresh->config.node_by_url(x.url)->join_token, token + 1);
}

// A leader cut off with an entry not yet committed is removed by the new
// leader. No leader streams to a removed node, so nothing would ever tell it
// whether that entry committed: its caller waited forever (simulator,
// reopen_in_place seed 588). The live leader that refuses the old one's
// pre-votes says why (node_not_found), and the caller learns errc::removed
// ("outcome unknown here").
TEST(Log, RemovedLeaderFailsTheCallsWaitingOnItsUncommittedEntries) {
  auto c = three_node_cluster();
  auto* old = c->leader();
  ASSERT_TRUE(old);
  const std::uint64_t old_id = old->log->id();
  c->net.down[old->url] = true;
  std::optional<result<std::uint64_t>> waiting;
  old->log->start_apply("lost?", {}, [&](result<std::uint64_t> r) { waiting = r; });
  LocalNode* now = nullptr;
  ASSERT_TRUE(c->net.run_until([&] {
    for (auto* n : c->others(old))
      if (n->log->state() == State::leader) now = n;
    return now != nullptr;
  }));
  auto rm = c->call<void>([&](auto h) { now->log->start_remove_peer(old_id, std::move(h)); });
  ASSERT_TRUE(rm) << rm.error().message();
  EXPECT_FALSE(waiting.has_value()) << "answered while cut off";
  c->net.down[old->url] = false;
  ASSERT_TRUE(c->net.run_until([&] { return waiting.has_value(); }, 30s)) << "the call still waits";
  ASSERT_FALSE(*waiting);
  EXPECT_EQ(waiting->error(), errc::removed);
  EXPECT_EQ(now->log->state(), State::leader);  // the removed node disturbed nobody
  EXPECT_TRUE(c->apply(*now, "after"));
}

// A member that a joiner asks, forwards the join to the leader, then loses
// the answer (the joiner hears a transport error) and is gone.
// A peer that answers joins only (the tests' own way); everything else is
// refused.
class JoinOnlyService : public Service {
 public:
  Status status() const override { return {}; }
  void handle_leave(std::uint64_t, Handler_fn<void> h) override { h(make_error_code(errc::invalid_argument)); }
  void handle_heartbeat(const HeartbeatRequest&, Handler_fn<HeartbeatResponse> h) override {
    h(make_error_code(errc::invalid_argument));
  }
  void handle_vote(const VoteRequest&, Handler_fn<VoteResponse> h) override { h(make_error_code(errc::invalid_argument)); }
  void handle_read_index(const ReadIndexRequest&, Handler_fn<std::uint64_t> h) override {
    h(make_error_code(errc::invalid_argument));
  }
  void handle_ack(const AckRequest&, Handler_fn<void> h) override { h(make_error_code(errc::invalid_argument)); }
  void handle_stream(const StreamRequest&, std::shared_ptr<StreamWriter> w) override {
    w->finish(make_error_code(errc::invalid_argument));
  }
};

class LostJoinReplyProxy final : public JoinOnlyService {
 public:
  explicit LostJoinReplyProxy(Log& leader) : leader_(leader) {}
  int forwarded = 0;
  std::uint64_t cluster_id() const override { return leader_.cluster_id(); }
  void handle_join(const JoinRequest& req, Handler_fn<JoinResponse> h) override {
    ++forwarded;
    leader_.handle_join(req, [h = std::move(h)](result<JoinResponse>) mutable { h(make_error_code(errc::transport_error)); });
  }

 private:
  Log& leader_;
};

// The joiner retried the member it first asked, 100 times, and gave up,
// although the leader that had added it was heartbeating it all along
// (simulator, replace_every_member seed 424: the member asked was removed
// and stopped). It now retries the leader its heartbeats name.
// Three members with leader l, and a fourth node x whose join went through
// a LostJoinReplyProxy in front of l: start() returns once the proxy has
// forwarded it (l has added x; x has heard a transport error). Not movable
// once started (x's join handler holds `this`).
struct ProxiedJoin {
  std::unique_ptr<LocalCluster> c = three_node_cluster();
  LocalNode* l = c->leader();
  std::unique_ptr<LostJoinReplyProxy> proxy;
  LocalNode* x = nullptr;
  std::optional<result<void>> joined;
  bool start() {
    if (!l) return false;
    proxy = std::make_unique<LostJoinReplyProxy>(*l->log);
    c->net.services["http://proxy"] = proxy.get();
    x = &c->add();
    x->log->start_join("http://proxy", [this](result<void> r) { joined = r; });
    return c->net.run_until([&] { return proxy->forwarded > 0; });
  }
};

TEST(Log, JoinerAsksTheLeaderItHearsFromWhenTheMemberItAskedIsGone) {
  ProxiedJoin p;
  ASSERT_TRUE(p.start());
  auto& [c, l, proxy_ptr, xp, joined] = p;
  auto& proxy = *proxy_ptr;
  auto& x = *xp;
  c->net.down["http://proxy"] = true;
  ASSERT_TRUE(c->net.run_until([&] { return joined.has_value(); }, 60s)) << "no answer";
  ASSERT_TRUE(*joined) << joined->error().message();
  EXPECT_EQ(proxy.forwarded, 1);
  const Config cfg = l->log->config();
  ASSERT_NE(cfg.node_by_url(x.url), nullptr);
  EXPECT_EQ(x.log->id(), cfg.node_by_url(x.url)->id);  // the id the leader gave, not a second one
  EXPECT_EQ(cfg.nodes.size(), 4u);
}

// A join from a member's URL with another join token comes from another
// data directory: a wiped node, which would otherwise become that member
// with an empty log and no vote record. It is refused until the member is
// removed; the member's own token (a retry after a lost answer) still gets
// the id back.
TEST(Log, WipedMemberJoiningAgainWithoutBeingRemovedIsRefused) {
  auto w = cluster_with_a_joiner();
  ASSERT_TRUE(w);
  auto& [c, l, xp, xid] = *w;
  auto& x = *xp;
  const Config joined = l->log->config();
  const std::uint64_t token = joined.node_by_id(xid)->join_token;
  ASSERT_NE(token, 0u);
  auto join = [&](std::uint64_t t) {
    return c->call<JoinResponse>([&](auto h) { l->log->handle_join(JoinRequest{x.url, 0, t}, std::move(h)); });
  };
  auto wiped = join(token + 1);
  ASSERT_FALSE(wiped) << "given id " << wiped->id;
  EXPECT_EQ(wiped.error(), errc::duplicate_node_url);
  auto retry = join(token);
  ASSERT_TRUE(retry) << retry.error().message();
  EXPECT_EQ(retry->id, xid);
  auto untokened = join(0);  // a joiner from before join tokens: as before
  ASSERT_TRUE(untokened) << untokened.error().message();
  EXPECT_EQ(untokened->id, xid);
  // Removed first, the wiped node joins as a new member.
  auto rm = c->call<void>([&](auto h) { l->log->start_remove_peer(xid, std::move(h)); });
  ASSERT_TRUE(rm) << rm.error().message();
  auto again = join(token + 1);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_GT(again->id, xid);
}

// A member added by add_peer (no token) is bound to the first data
// directory that joins as it (a bind_token entry): that directory gets its
// id back, a wiped one is refused like any member's.
TEST(Log, AddedPeerIsBoundToTheFirstDirectoryThatJoinsAsIt) {
  auto c = three_node_cluster();  // commits the AddPeer without x
  auto* l = c->nodes[0].get();
  auto& x = c->add();
  auto added = c->call<std::pair<std::uint64_t, Config>>([&](auto h) { l->log->start_add_peer(x.url, std::move(h)); });
  ASSERT_TRUE(added) << added.error().message();
  const std::uint64_t xid = added->first;
  EXPECT_EQ(added->second.node_by_id(xid)->join_token, 0u);
  auto j = c->join(x, l->url);
  ASSERT_TRUE(j) << j.error().message();
  EXPECT_EQ(x.log->id(), xid);
  ASSERT_TRUE(c->net.run_until([&] { return l->log->commit_index() == l->log->last_index(); }, 5s));
  const std::uint64_t token = l->log->config().node_by_id(xid)->join_token;
  ASSERT_NE(token, 0u) << "the joiner's token was not recorded";
  auto join = [&](std::uint64_t t) {
    return c->call<JoinResponse>([&](auto h) { l->log->handle_join(JoinRequest{x.url, 0, t}, std::move(h)); });
  };
  auto same = join(token);
  ASSERT_TRUE(same) << same.error().message();
  EXPECT_EQ(same->id, xid);
  auto wiped = join(token + 1);
  ASSERT_FALSE(wiped) << "given id " << wiped->id;
  EXPECT_EQ(wiped.error(), errc::duplicate_node_url);
  // The binding is in the log: it survives a restart of the leader.
  c->crash(*l);
  c->start(*l);
  EXPECT_EQ(l->log->config().node_by_id(xid)->join_token, token);
}

// The node that initialized the cluster is guarded the same way: member 1
// carries its directory's token, so node 1 wiped and sent to join again
// while still a member is refused (it used to take id 1 back, empty).
TEST(Log, WipedInitializerJoiningAgainWithoutBeingRemovedIsRefused) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_NE(l, nullptr);
  auto& first = *c->nodes[0];
  const Config cfg = l->log->config();
  ASSERT_NE(cfg.node_by_id(1), nullptr);
  const std::uint64_t token = cfg.node_by_id(1)->join_token;
  ASSERT_NE(token, 0u) << "initialize recorded no join token for member 1";
  // The token in the configuration is the one saved in node 1's directory.
  auto f = first.fs.open("/data/join-token", {.read_only = true});
  ASSERT_TRUE(f);
  char buf[17] = {};
  ASSERT_TRUE((*f)->read_at(0, std::as_writable_bytes(std::span(buf, sizeof buf))));
  EXPECT_EQ(std::string(buf, 16), fmt::format("{:016x}", token));
  auto join = [&](std::uint64_t t) {
    return c->call<JoinResponse>([&](auto h) { l->log->handle_join(JoinRequest{first.url, 0, t}, std::move(h)); });
  };
  auto wiped = join(token + 1);
  ASSERT_FALSE(wiped) << "given id " << wiped->id;
  EXPECT_EQ(wiped.error(), errc::duplicate_node_url);
  auto same = join(token);  // its own directory: still member 1
  ASSERT_TRUE(same) << same.error().message();
  EXPECT_EQ(same->id, 1u);
}

// The token belongs to the data directory, not to one process: a joiner
// whose answer was lost and that crashed before it learned its id asks again
// after the restart with the same token, and gets the id its AddPeer gave it
// (a new token would now be refused as a wiped node's).
TEST(Log, JoinTokenSurvivesARestartOfTheJoiner) {
  ProxiedJoin p;
  ASSERT_TRUE(p.start());
  auto& [c, l, proxy_ptr, xp, joined] = p;
  auto& x = *xp;
  c->crash(x);
  const Config added = l->log->config();
  ASSERT_NE(added.node_by_url(x.url), nullptr);
  const std::uint64_t given = added.node_by_url(x.url)->id;
  c->start(x);
  EXPECT_EQ(x.log->id(), 0u);  // it never heard its answer
  auto r = c->join(x, l->url);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(x.log->id(), given);
  EXPECT_EQ(l->log->config().nodes.size(), 4u);
}

// A damaged join-token file stops the open with log_corrupt instead of a new
// token being drawn (which would make this node's joins look like a wiped
// node's).
TEST(Log, DamagedJoinTokenFileRefusesToOpen) {
  for (const std::string& bad : {std::string("xyz\n"), std::string("0000000000000000\n"), std::string("00000000000000012"),
                                std::string("")}) {
    LocalCluster c;
    auto& n = c.add();
    c.crash(n);
    auto f = n.fs.open("/data/join-token", {.create = true, .truncate = true});
    ASSERT_TRUE(f);
    ASSERT_TRUE((*f)->append(std::as_bytes(std::span(bad.data(), bad.size()))));
    ASSERT_TRUE((*f)->sync());
    try {
      c.start(n);
      ADD_FAILURE() << "opened with join-token '" << bad << "'";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(make_error_code(errc::log_corrupt).message()), std::string::npos) << e.what();
    }
  }
}

// A URL with a 0 byte would not survive the AddPeer entry's encoding (the
// URL, a 0 byte, the join token): add_peer and joins refuse it.
TEST(Log, AddPeerRefusesAUrlWithANulByte) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  const std::string bad("http://x:1\0http://y:2", 21);
  auto added = c->call<std::pair<std::uint64_t, Config>>([&](auto h) { l->log->start_add_peer(bad, std::move(h)); });
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error(), errc::invalid_argument);
  auto joined = c->call<JoinResponse>([&](auto h) { l->log->handle_join(JoinRequest{bad, 0, 7}, std::move(h)); });
  ASSERT_FALSE(joined);
  EXPECT_EQ(joined.error(), errc::invalid_argument);
  EXPECT_EQ(l->log->config().nodes.size(), 3u);
}

// The other side of the same rule: a node starting afresh at a removed URL
// (its data wiped, no previous id) may join again, and a rejoin under an id
// the URL never had removed is a lost join, answered as before.
// A join answer that does not give the assigned id to the joiner's URL (a
// buggy or foreign peer) is a protocol error, not a membership: the node
// stays unjoined instead of following a configuration without itself.
class FixedJoinService final : public JoinOnlyService {
 public:
  JoinResponse answer;
  std::uint64_t cluster_id() const override { return answer.config.cluster_id; }
  void handle_join(const JoinRequest&, Handler_fn<JoinResponse> h) override { h(answer); }
};

TEST(Log, JoinAnswerThatDoesNotAddUsIsAProtocolError) {
  LocalCluster c;
  FixedJoinService peer;
  c.net.services["http://peer"] = &peer;
  auto& n = c.add();
  peer.answer.id = 2;
  peer.answer.leader_id = 1;
  peer.answer.config.cluster_id = 9;
  ASSERT_TRUE(peer.answer.config.add_node(1, "http://peer"));
  ASSERT_TRUE(peer.answer.config.add_node(2, "http://somebody-else"));  // id 2 is not ours
  auto r = c.join(n, "http://peer");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::protocol_error);
  EXPECT_EQ(n.log->id(), 0u);
  // The same answer naming our URL is a join.
  peer.answer.config = Config{};
  peer.answer.config.cluster_id = 9;
  ASSERT_TRUE(peer.answer.config.add_node(1, "http://peer"));
  ASSERT_TRUE(peer.answer.config.add_node(2, n.url));
  auto ok = c.join(n, "http://peer");
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(n.log->id(), 2u);
  EXPECT_EQ(n.log->cluster_id(), 9u);
}

TEST(Log, RemovedUrlMayJoinAgainAsANewNode) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  auto* victim = c->nodes[0].get() == l ? c->nodes[1].get() : c->nodes[0].get();
  const std::uint64_t vid = victim->log->id();
  auto rm = c->call<void>([&](auto h) { l->log->start_remove_peer(vid, std::move(h)); });
  ASSERT_TRUE(rm) << rm.error().message();
  auto join = [&](JoinRequest req) {
    return c->call<JoinResponse>([&](auto h) { l->log->handle_join(req, std::move(h)); });
  };
  auto refused = join(JoinRequest{victim->url, vid});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), errc::removed);
  auto other_id = join(JoinRequest{victim->url, vid + 100});  // not what was removed
  ASSERT_TRUE(other_id) << other_id.error().message();
  EXPECT_NE(other_id->id, vid);
  EXPECT_EQ(l->log->config().node_by_url(victim->url)->id, other_id->id);
}

}  // namespace
}  // namespace raft::test

namespace raft::test {
namespace {

// LogOptions::apply_inline: the FSM is fed on the Log's strand. The apply
// executor here is an io_context nobody runs, so an entry that still went
// through it would never reach the FSM.
TEST(Log, ApplyInlineFeedsTheFsmWithoutTheApplyExecutor) {
  boost::asio::io_context never_run;
  auto c = three_node_cluster([&](LogOptions& o) {
    o.apply_inline = true;
    o.apply_executor = never_run.get_executor();
  });
  auto* l = c->leader();
  ASSERT_NE(l, nullptr);
  std::uint64_t last = 0;
  for (int i = 0; i < 50; ++i) last = *c->apply(*l, "cmd" + std::to_string(i));
  ASSERT_TRUE(c->net.run_until([&] {
    for (auto& n : c->nodes)
      if (n->fsm.applied_index < last || n->log->applied_index() < last) return false;
    return true;
  }));
  for (auto& n : c->nodes) {
    ASSERT_EQ(n->fsm.commands.size(), 50u);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(n->fsm.commands[i].data, "cmd" + std::to_string(i));
  }
}

// One commit that covers more than one apply batch (4096 entries): the rest
// is applied in later strand turns, in order, and wait() sees the end.
TEST(Log, ApplyInlineAppliesABacklogLargerThanOneBatchInOrder) {
  LocalCluster c;
  c.tweak = [](LogOptions& o) { o.apply_inline = true; };
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  constexpr int n = 10000;
  int answered = 0;
  std::uint64_t last = 0;
  for (int i = 0; i < n; ++i)
    a.log->start_apply("b" + std::to_string(i), {}, [&](result<std::uint64_t> r) {
      ASSERT_TRUE(r) << r.error().message();
      last = std::max(last, *r);
      ++answered;
    });
  ASSERT_TRUE(c.net.run_until([&] { return answered == n; }));
  auto w = c.call<void>([&](auto h) { a.log->start_wait(last, 5s, std::move(h)); });
  ASSERT_TRUE(w) << w.error().message();
  ASSERT_EQ(a.fsm.commands.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ASSERT_EQ(a.fsm.commands[static_cast<std::size_t>(i)].data, "b" + std::to_string(i));
  EXPECT_FALSE(a.fsm.duplicate);
}

// Snapshots still run on the apply executor, never during an inline
// must_apply; after a restart the snapshot is restored and the log after it
// replayed inline.
TEST(Log, ApplyInlineWithSnapshotsAndRestart) {
  LocalCluster c;
  c.tweak = [](LogOptions& o) {
    o.apply_inline = true;
    o.snapshot_threshold_entries = 50;
    o.snapshot_tail_entries = 10;
    o.segment_size_bytes_max = 2048;
  };
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  std::uint64_t last = 0;
  for (int i = 0; i < 333; ++i) last = *c.apply(a, "v" + std::to_string(i));
  ASSERT_TRUE(c.net.run_until([&] { return a.log->applied_index() >= last; }));
  auto snaps = a.fs.list("/data/snapshots");
  ASSERT_TRUE(snaps);
  ASSERT_EQ(snaps->size(), 1u);
  c.crash(a);
  c.start(a);  // the in-memory FSM starts empty
  ASSERT_TRUE(c.net.run_until([&] { return a.log->applied_index() >= last && a.fsm.commands.size() == 333; }));
  for (int i = 0; i < 333; ++i) EXPECT_EQ(a.fsm.commands[static_cast<std::size_t>(i)].data, "v" + std::to_string(i));
}

// Without fsync (LogOptions::sync = false) full segments are still sealed,
// by LogStore::run_deferred() on the storage executor: their successors get their
// final names, so a power cut afterwards keeps every sealed segment.
TEST(Log, WithoutSyncFullSegmentsAreSealedInTheBackground) {
  LocalCluster c;
  c.tweak = [](LogOptions& o) {
    o.sync = false;
    o.segment_size_bytes_max = 1024;
  };
  auto& a = c.add();
  ASSERT_TRUE(c.initialize(a));
  std::uint64_t last = 0;
  for (int i = 0; i < 60; ++i) last = *c.apply(a, std::string(100, 'x') + std::to_string(i));
  auto names_ending = [&](const std::string& suffix) {
    auto names = a.fs.list("/data/log");
    EXPECT_TRUE(names);
    std::vector<std::string> v;
    for (const auto& n : *names)
      if (n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) v.push_back(n);
    std::sort(v.begin(), v.end());
    return v;
  };
  ASSERT_TRUE(c.net.run_until([&] { return names_ending(".pending").empty(); }));
  const auto segs = names_ending(".seg");
  ASSERT_GE(segs.size(), 5u);
  const std::uint64_t last_segment_first = std::stoull(segs.back().substr(0, 20));
  c.crash(a);
  c.start(a);
  // Everything before the last segment was sealed (durable); the last one's
  // unsynced entries may be gone.
  EXPECT_GE(a.log->last_index(), last_segment_first - 1);
  EXPECT_LE(a.log->last_index(), last);
}

// A member of a build that speaks another protocol version (every exchange
// with it refused as unsupported_protocol, LocalNetwork::other_protocol):
// the others go on committing without it, its campaigns reach no one, the
// leader says so once, and once it speaks the same version again (it was
// upgraded too) it catches up.
TEST(Log, AMemberOfAnotherProtocolVersionFallsBehindWithoutDisruptingTheOthers) {
  auto lines = std::make_shared<std::vector<std::string>>();
  auto c = three_node_cluster([lines](LogOptions& o) {
    o.logger = [lines](std::string_view line) { lines->emplace_back(line); };
  });
  auto& a = *c->nodes[0];
  auto& n3 = *c->nodes[2];
  ASSERT_EQ(a.log->state(), State::leader);
  const auto term = a.log->term();
  c->net.other_protocol.insert(n3.url);
  const auto last = apply_writes(*c, a, 20);
  ASSERT_NE(last, 0u);
  c->net.run_for(std::chrono::seconds(10));  // heartbeat rounds, and n3's election timeouts
  EXPECT_EQ(a.log->state(), State::leader);
  EXPECT_EQ(a.log->term(), term);
  EXPECT_LT(n3.log->commit_index(), last);
  EXPECT_EQ(std::count_if(lines->begin(), lines->end(),
                          [](const std::string& l) {
                            return l.find("answers in a protocol version this build does not speak") !=
                                   std::string::npos;
                          }),
            1);
  c->net.other_protocol.clear();
  EXPECT_TRUE(c->net.run_until([&] { return n3.fsm.applied_index >= last; }));
  EXPECT_TRUE(c->net.run_until([&] {
    const auto l = leader_among(*c, {&a, c->nodes[1].get(), &n3});
    return l && c->apply(*l, "after").has_value();
  }));
}

}  // namespace
}  // namespace raft::test
