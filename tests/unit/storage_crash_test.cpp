// Crash at every persistence point of a workload that exercises every
// storage operation, then reboot and check what DESIGN 5/6 promise: every
// entry sync() confirmed is present and intact, nothing truncated comes back
// next to newer entries, meta is the old or the new value, the latest
// snapshot is a complete one, and open() succeeds.
#include "unit/storage_test_util.hpp"

#include <raft/storage/log_store.hpp>
#include <raft/storage/memory_filesystem.hpp>
#include <raft/storage/meta_store.hpp>
#include <raft/storage/snapshot_store.hpp>

#include <gtest/gtest.h>

#include <map>

namespace raft::storage {
namespace {

using testing::make_entries;

// What the workload has been told so far.
struct LogModel {
  std::map<std::uint64_t, LogEntry> latest;  // the newest version written at each index
  std::map<std::uint64_t, LogEntry> maybe;   // removed by a truncation still in flight
  std::uint64_t durable = 0;                 // confirmed by sync(), not since truncated
  std::uint64_t compacted = 0;               // highest compact() argument issued
};

struct Model {
  LogModel log, before_reset;
  bool reset_issued = false, reset_done = false;
  std::uint64_t reset_index = 0;
  Meta meta, meta_next;
  std::uint64_t snap = 0, snap_next = 0;  // index of committed / in-flight snapshot
};

std::string snap_data(std::uint64_t index) { return std::string(3000 + index, static_cast<char>('a' + index % 26)); }

LogStoreOptions opts() {
  LogStoreOptions o;
  o.segment_size_bytes_max = 600;
  return o;
}

// Runs until the first failure (the machine "stops" at stop_at).
void workload(Filesystem& fs, Model& m) {
  auto meta = MetaStore::open(fs, "/n");
  if (!meta) return;
  auto log_r = LogStore::open(fs, "/n/log", opts());
  if (!log_r) return;
  auto& log = **log_r;
  auto snaps_r = SnapshotStore::open(fs, "/n/snapshots");
  if (!snaps_r) return;
  auto& snaps = **snaps_r;

  auto save_meta = [&](Meta v) {
    m.meta_next = v;
    if (!meta->save(v)) return false;
    m.meta = v;
    return true;
  };
  auto append = [&](std::uint64_t a, std::uint64_t b, std::uint64_t term) {
    auto v = make_entries(a, b, term, 60);
    for (const auto& e : v) m.log.latest[e.index] = e;
    return bool(log.append(v));
  };
  auto sync = [&] {
    const std::uint64_t want = log.last_index();
    auto r = log.sync();
    if (!r) return false;
    EXPECT_EQ(*r, want);
    m.log.durable = want;
    return true;
  };
  auto truncate = [&](std::uint64_t index, std::uint64_t commit) {
    m.log.durable = std::min(m.log.durable, index);
    m.log.maybe.clear();
    for (auto it = m.log.latest.upper_bound(index); it != m.log.latest.end();) {
      m.log.maybe.insert(*it);
      it = m.log.latest.erase(it);
    }
    if (!log.truncate_suffix(index, commit)) return false;
    m.log.maybe.clear();
    return true;
  };
  auto snapshot = [&](std::uint64_t index, std::uint64_t term) {
    m.snap_next = index;
    Config c;
    c.cluster_id = 9;
    c.index = index;
    (void)c.add_node(1, "http://a");
    auto sink = snaps.create(index, term, c);
    if (!sink) return false;
    if (!write_all(**sink, snap_data(index))) return false;
    if (!(*sink)->commit()) return false;
    m.snap = index;
    return true;
  };

  if (!save_meta({1, 1, 0, 9})) return;
  if (!append(1, 5, 1) || !sync()) return;
  if (!append(6, 9, 1) || !truncate(6, 5)) return;
  if (!append(7, 20, 2) || !sync()) return;  // rolls segments
  if (!save_meta({1, 2, 1, 9})) return;
  if (!snapshot(10, 2)) return;
  m.log.compacted = 10;
  if (!log.compact(10)) return;
  if (!append(21, 30, 2)) return;
  if (!log.reclaim()) return;      // deletes the compacted files
  if (!truncate(24, 20)) return;  // crosses segment boundaries
  if (!append(25, 28, 3) || !sync()) return;
  if (!snaps.remove_older_than(10)) return;
  m.before_reset = m.log;
  m.reset_issued = true;
  m.reset_index = 40;
  m.log = LogModel{};
  m.log.durable = 40;
  m.log.compacted = 41;  // the reset log starts at 41
  if (!log.reset(40, 3)) return;
  m.reset_done = true;
  if (!snapshot(40, 3)) return;
  if (!append(41, 46, 4) || !sync()) return;
  (void)save_meta({1, 4, 0, 9});
}

void check_log(const LogStore& log, const LogModel& m, const std::string& what) {
  EXPECT_LE(log.first_index(), std::max<std::uint64_t>(m.compacted, 1)) << what;
  EXPECT_GE(log.last_index(), m.durable) << what;
  for (std::uint64_t i = log.first_index(); i <= log.last_index(); ++i) {
    auto e = log.entry(i);
    ASSERT_TRUE(e) << what << " index " << i;
    auto it = m.latest.find(i);
    const bool is_latest = it != m.latest.end() && it->second == *e;
    auto mt = m.maybe.find(i);
    const bool is_maybe = mt != m.maybe.end() && mt->second == *e;
    ASSERT_TRUE(is_latest || is_maybe) << what << ": unexpected entry at " << i;
  }
}

void check(Filesystem& fs, const Model& m, const std::string& what) {
  auto meta = MetaStore::open(fs, "/n");
  ASSERT_TRUE(meta) << what;
  EXPECT_TRUE(meta->get() == m.meta || meta->get() == m.meta_next) << what;

  auto log = LogStore::open(fs, "/n/log", opts());
  ASSERT_TRUE(log) << what << ": " << log.error().message();
  if (m.reset_done || (m.reset_issued && (*log)->prev_index() == m.reset_index)) {
    EXPECT_EQ((*log)->prev_index(), m.reset_index) << what;
    EXPECT_EQ((*log)->prev_term(), 3u) << what;
    check_log(**log, m.log, what + " (after reset)");
  } else {
    check_log(**log, m.reset_issued ? m.before_reset : m.log, what);
  }
  // Recovery left a log that takes appends and syncs again.
  auto next = make_entries((*log)->last_index() + 1, (*log)->last_index() + 1, 10, 3);
  ASSERT_TRUE((*log)->append(next)) << what;
  ASSERT_TRUE((*log)->sync()) << what;

  auto snaps = SnapshotStore::open(fs, "/n/snapshots");
  ASSERT_TRUE(snaps) << what;
  auto latest = (*snaps)->latest();
  if (!latest) {
    EXPECT_EQ(m.snap, 0u) << what;
    return;
  }
  EXPECT_TRUE(latest->index == m.snap || latest->index == m.snap_next) << what;
  EXPECT_EQ(latest->config.cluster_id, 9u);
  auto r = (*snaps)->open_reader(*latest);
  ASSERT_TRUE(r) << what;
  std::string data;
  StringWriter w(data);
  std::byte buf[1000];
  for (;;) {
    auto n = (*r)->read(buf);
    ASSERT_TRUE(n) << what;
    if (*n == 0) break;
    ASSERT_TRUE(w.write(std::span(buf, *n)));
  }
  EXPECT_EQ(data, snap_data(latest->index)) << what;
}

TEST(StorageCrash, EveryPersistencePointKeepsWhatWasConfirmed) {
  std::uint64_t total = 0;
  {
    MemoryFilesystem fs;
    Model m;
    workload(fs, m);
    ASSERT_TRUE(m.reset_done);
    ASSERT_EQ(m.meta.term, 4u);  // the workload ran to its end
    total = fs.ops();
    fs.crash();
    check(fs, m, "no crash");
  }
  ASSERT_GT(total, 60u);
  // Crashing at point n = after n persistence points; two seeds per point so
  // torn tails land in different places.
  for (std::uint64_t n = 0; n <= total; ++n) {
    for (std::uint64_t seed : {n + 1, n + 7777}) {
      MemoryFilesystem fs(seed);
      fs.stop_at(n);
      Model m;
      workload(fs, m);
      fs.crash();
      fs.stop_at(std::nullopt);
      check(fs, m, "crash at point " + std::to_string(n) + " seed " + std::to_string(seed));
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

}  // namespace
}  // namespace raft::storage
