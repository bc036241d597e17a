// Disk work the Log's strand never waits for.
// Sealing a full segment (log_store.cpp, WRITING): append() never
// fdatasyncs, the successor keeps its pending name until sync() or run_deferred()
// has made the sealed segment durable, and recovery adopts a pending segment
// only when it continues the log exactly.
// Deleting compacted segments (COMPACTION): compact() touches no file, and
// reclaim() deletes them later, oldest first, after the seals.
#include "unit/storage_test_util.hpp"

#include <raft/storage/log_store.hpp>
#include <raft/storage/memory_filesystem.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

namespace raft::storage {
namespace {

using testing::GateFs;
using testing::make_entries;

constexpr const char* kDir = "/n/log";

struct Rig {
  std::vector<std::string> warnings;
  LogStoreOptions opts() {
    LogStoreOptions o;
    o.segment_size_bytes_max = 1000;  // ~4 records of 200 bytes per segment
    o.warn = [this](const std::string& m) { warnings.push_back(m); };
    return o;
  }
  std::unique_ptr<LogStore> open(Filesystem& fs) {
    auto r = LogStore::open(fs, kDir, opts());
    EXPECT_TRUE(r) << r.error().message();
    return r ? std::move(*r) : nullptr;
  }
  // A store holding entries 1-30 of ~200 bytes in `all`: full segments,
  // their successors pending, nothing synced.
  std::unique_ptr<LogStore> filled(Filesystem& fs, std::vector<LogEntry>& all) {
    auto log = open(fs);
    all = make_entries(1, 30, 1, 200);
    EXPECT_TRUE(log && log->append(all));
    return log;
  }
  // filled(), synced, and compacted up to 20: some segments dropped from
  // the log whose files reclaim() has not deleted yet.
  std::unique_ptr<LogStore> compacted(Filesystem& fs, std::vector<LogEntry>& all) {
    auto log = filled(fs, all);
    EXPECT_TRUE(log && log->sync() && log->compact(20));
    return log;
  }
  bool warned(const std::string& what) const {
    return std::any_of(warnings.begin(), warnings.end(), [&](const std::string& w) { return w.find(what) != std::string::npos; });
  }
};

std::size_t count_names(Filesystem& fs, const std::string& suffix) {
  auto names = fs.list(kDir);
  EXPECT_TRUE(names);
  return static_cast<std::size_t>(std::count_if(names->begin(), names->end(), [&](const std::string& n) {
    return n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
  }));
}

void expect_entries(const LogStore& log, const std::vector<LogEntry>& all, std::uint64_t last) {
  ASSERT_EQ(log.last_index(), last);
  for (std::uint64_t i = log.first_index(); i <= last; ++i) {
    auto e = log.entry(i);
    ASSERT_TRUE(e) << i;
    ASSERT_EQ(*e, all[i - 1]) << i;
  }
}

TEST(StorageSeal, AppendThatFillsSegmentsDoesNotWaitForTheDisk) {
  MemoryFilesystem mem;
  GateFs fs(mem);
  Rig rig;
  auto log = rig.open(fs);
  const int opened = fs.datasyncs;
  auto all = make_entries(1, 30, 1, 200);
  ASSERT_TRUE(log->append(all));
  ASSERT_GE(log->segment_count(), 6u);
  EXPECT_EQ(fs.datasyncs, opened) << "append() waited for the disk";
  EXPECT_TRUE(log->deferred_pending());
  EXPECT_EQ(count_names(fs, ".pending"), log->segment_count() - 1);
  // sync() seals first: every segment has its final name once it returns.
  ASSERT_EQ(*log->sync(), 30u);
  EXPECT_FALSE(log->deferred_pending());
  EXPECT_EQ(count_names(fs, ".pending"), 0u);
  EXPECT_EQ(count_names(fs, ".seg"), log->segment_count());
  log.reset();
  mem.crash();
  log = rig.open(mem);
  expect_entries(*log, all, 30);
  EXPECT_TRUE(rig.warnings.empty()) << rig.warnings.front();
}

TEST(StorageSeal, SealNamesSegmentsWithoutSyncingTheLastOne) {
  MemoryFilesystem mem;
  GateFs fs(mem);
  Rig rig;
  std::vector<LogEntry> all;
  auto log = rig.filled(fs, all);
  const int before = fs.datasyncs;
  ASSERT_TRUE(log->run_deferred());
  EXPECT_FALSE(log->deferred_pending());
  EXPECT_EQ(count_names(fs, ".pending"), 0u);
  // One datasync per sealed segment; the last one, still being written, is
  // left to sync(), and nothing is reported durable.
  EXPECT_EQ(fs.datasyncs - before, static_cast<int>(log->segment_count() - 1));
  EXPECT_EQ(log->durable_index(), 0u);
  ASSERT_TRUE(log->run_deferred());  // nothing pending: no disk work
  EXPECT_EQ(fs.datasyncs - before, static_cast<int>(log->segment_count() - 1));
}

// A process that dies with segments pending (the machine keeps running, so
// everything written is still there) loses nothing: with LogOptions::sync
// off, what was written counts as durable.
TEST(StorageSeal, ReopenAfterAProcessCrashAdoptsPendingSegments) {
  MemoryFilesystem fs;
  Rig rig;
  std::vector<LogEntry> all;
  auto log = rig.filled(fs, all);
  const std::size_t segments = log->segment_count();
  ASSERT_GT(count_names(fs, ".pending"), 1u);
  log.reset();
  log = rig.open(fs);
  expect_entries(*log, all, 30);
  EXPECT_EQ(log->segment_count(), segments);
  EXPECT_EQ(count_names(fs, ".pending"), 0u);
  EXPECT_TRUE(rig.warned("finishing the seal"));
  // And the adopted log goes on.
  auto more = make_entries(31, 40, 2, 200);
  ASSERT_TRUE(log->append(more));
  ASSERT_EQ(*log->sync(), 40u);
}

// If the sealed segment lost its end (a power cut before its fdatasync), the
// pending segment after it does not continue the log and is removed; none of
// its entries was ever confirmed by sync().
TEST(StorageSeal, PendingSegmentAfterATornPredecessorIsRemoved) {
  MemoryFilesystem fs;
  Rig rig;
  auto log = rig.open(fs);
  auto all = make_entries(1, 30, 1, 200);
  ASSERT_TRUE(log->append(std::span(all).first(2)));
  ASSERT_EQ(*log->sync(), 2u);
  ASSERT_TRUE(log->append(std::span(all).subspan(2)));
  log.reset();
  // Tear the first segment's last record: cut it 10 bytes short. (Its file
  // still ends in the space reserved for it: its seal, which trims that,
  // never ran.)
  const std::string first = std::string(kDir) + "/00000000000000000001.seg";
  {
    const std::size_t records_end = testing::read_file(fs, first).find_last_not_of('\0') + 1;
    auto f = fs.open(first, OpenFlags{});
    ASSERT_TRUE(f);
    ASSERT_TRUE((*f)->truncate(records_end - 10));
  }
  log = rig.open(fs);
  ASSERT_TRUE(log);
  EXPECT_GE(log->last_index(), 2u);
  EXPECT_LT(log->last_index(), 30u);
  expect_entries(*log, all, log->last_index());
  EXPECT_EQ(log->segment_count(), 1u);
  EXPECT_EQ(count_names(fs, ".pending"), 0u);
  EXPECT_TRUE(rig.warned("torn tail"));
  EXPECT_TRUE(rig.warned("does not continue the log"));
  auto next = make_entries(log->last_index() + 1, log->last_index() + 1, 3, 50);
  ASSERT_TRUE(log->append(next));
  ASSERT_TRUE(log->sync());
}

// Power cuts at every persistence point of appends that roll segments,
// interleaved with run_deferred(), sync(), compaction, reclaim() and truncation: every entry
// sync() confirmed survives, and every reopen succeeds.
TEST(StorageSeal, CrashAtEveryPointKeepsEverySyncedEntry) {
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    for (std::uint64_t stop = 0;; ++stop) {
      MemoryFilesystem fs(seed * 1000 + stop);
      Rig rig;
      std::map<std::uint64_t, LogEntry> written;  // newest version at each index
      std::uint64_t durable = 0, compacted = 0;
      bool finished = false;
      {
        auto r = LogStore::open(fs, kDir, rig.opts());
        ASSERT_TRUE(r);
        auto& log = **r;
        fs.stop_at(fs.ops() + stop);
        auto append = [&](std::uint64_t a, std::uint64_t b, std::uint64_t term) {
          auto v = make_entries(a, b, term, 150);
          for (const auto& e : v) written[e.index] = e;
          return bool(log.append(v));
        };
        auto sync = [&] {
          const std::uint64_t want = log.last_index();
          if (!log.sync()) return false;
          durable = want;
          return true;
        };
        finished = [&] {
          if (!append(1, 12, 1) || !log.run_deferred() || !append(13, 20, 1) || !sync()) return false;
          if (!append(21, 40, 2)) return false;  // rolls; nothing synced
          compacted = 15;
          if (!log.compact(15)) return false;
          if (!append(41, 50, 2) || !log.reclaim(1) || !log.run_deferred()) return false;
          durable = std::min<std::uint64_t>(durable, 44);
          for (std::uint64_t i = 45; i <= 50; ++i) written.erase(i);
          if (!log.truncate_suffix(44, 20)) return false;
          if (!append(45, 60, 3) || !log.reclaim() || !sync()) return false;
          return true;
        }();
      }
      fs.stop_at(std::nullopt);
      fs.crash();
      const std::string what = "seed " + std::to_string(seed) + " stop " + std::to_string(stop);
      auto r = LogStore::open(fs, kDir, rig.opts());
      ASSERT_TRUE(r) << what << ": " << r.error().message();
      auto& log = **r;
      EXPECT_GE(log.last_index(), durable) << what;
      EXPECT_LE(log.first_index(), std::max<std::uint64_t>(compacted, 1)) << what;
      for (std::uint64_t i = log.first_index(); i <= log.last_index(); ++i) {
        auto e = log.entry(i);
        ASSERT_TRUE(e) << what << " index " << i;
        // Indexes 45-50 may hold the truncated version if the crash came
        // before the truncation was durable; everything else is the newest.
        if (written.count(i) == 0 || !(*e == written[i])) {
          ASSERT_TRUE(i >= 45 && i <= 50 && e->term == 2) << what << ": unexpected entry at " << i;
        }
      }
      EXPECT_EQ(count_names(fs, ".pending"), 0u) << what;
      auto next = make_entries(log.last_index() + 1, log.last_index() + 1, 9, 10);
      ASSERT_TRUE(log.append(next)) << what;
      ASSERT_TRUE(log.sync()) << what;
      if (finished) break;
    }
  }
}

// A pending segment never held a confirmed entry, so damage in it that the
// last-segment rules call corruption drops it (and what follows) instead of
// refusing to open.
TEST(StorageSeal, DamagedPendingSegmentIsRemovedNotCorruption) {
  MemoryFilesystem fs;
  Rig rig;
  std::vector<LogEntry> all;
  auto log = rig.filled(fs, all);
  ASSERT_TRUE(log->run_deferred());  // every full segment final; the last one stays
  auto more = make_entries(31, 40, 1, 200);
  ASSERT_TRUE(log->append(more));  // rolls again: pending segments
  all.insert(all.end(), more.begin(), more.end());
  ASSERT_TRUE(log->deferred_pending());
  log.reset();
  auto names = fs.list(kDir);
  ASSERT_TRUE(names);
  std::vector<std::string> pending;
  for (const auto& n : *names)
    if (n.size() > 8 && n.substr(n.size() - 8) == ".pending") pending.push_back(n);
  ASSERT_GE(pending.size(), 2u);
  std::sort(pending.begin(), pending.end());
  const std::uint64_t first_pending = std::stoull(pending.front().substr(0, 20));
  // Flip a byte inside the first pending segment's first record's data:
  // valid records follow it on the same page, so by itself it is corruption.
  {
    auto f = fs.open(std::string(kDir) + "/" + pending.front(), OpenFlags{});
    ASSERT_TRUE(f);
    std::byte b[1];
    ASSERT_TRUE((*f)->read_at(32 + 25 + 5, b));
    b[0] = static_cast<std::byte>(~static_cast<unsigned char>(b[0]));
    ASSERT_TRUE((*f)->write_at(32 + 25 + 5, b));
  }
  log = rig.open(fs);
  ASSERT_TRUE(log);
  expect_entries(*log, all, first_pending - 1);
  EXPECT_EQ(count_names(fs, ".pending"), 0u);
  EXPECT_TRUE(rig.warned("does not continue the log"));
}

// Work queued for a store its owner has closed (the Log reopens the same
// directory meanwhile) must not rename or sync anything.
TEST(StorageSeal, ClosedStoreTouchesNoFile) {
  MemoryFilesystem mem;
  GateFs fs(mem);
  Rig rig;
  std::vector<LogEntry> all;
  auto log = rig.filled(fs, all);
  const std::size_t pending = count_names(fs, ".pending");
  ASSERT_GT(pending, 0u);
  log->close();
  const int before = fs.datasyncs;
  EXPECT_EQ(log->run_deferred().error(), errc::closed);
  EXPECT_EQ(log->sync().error(), errc::closed);
  EXPECT_EQ(fs.datasyncs, before);
  EXPECT_EQ(count_names(fs, ".pending"), pending);
  EXPECT_EQ(log->entry(3)->index, 3u);  // reads still work
}

// ---------------------------------------------------------------- hints
// append() queues its space reservations and writeback hints, and leaves
// the trim of a full segment to its seal (log_store.cpp, PREALLOCATION).

// The name the last segment was created with: its pending name (it rolled).
std::string last_segment_created_as(Filesystem& fs) {
  auto names = fs.list(kDir);
  EXPECT_TRUE(names);
  std::vector<std::string> v(names->begin(), names->end());
  std::sort(v.begin(), v.end());
  return v.empty() ? std::string() : v.back().substr(0, 20) + ".seg.pending";
}

std::vector<std::string> calls_starting(const std::vector<std::string>& calls, const std::string& prefix) {
  std::vector<std::string> v;
  for (const auto& c : calls)
    if (c.rfind(prefix, 0) == 0) v.push_back(c);
  return v;
}

TEST(StorageHints, AppendLeavesReservationsAndTrimsToTheStorageThread) {
  MemoryFilesystem mem;
  GateFs fs(mem);
  Rig rig;
  auto log = rig.open(fs);
  fs.calls.clear();
  auto all = make_entries(1, 30, 1, 200);
  ASSERT_TRUE(log->append(all));
  ASSERT_GE(log->segment_count(), 6u);
  EXPECT_TRUE(calls_starting(fs.calls, "preallocate").empty()) << "append() reserved space itself";
  EXPECT_TRUE(calls_starting(fs.calls, "truncate").empty()) << "append() trimmed a full segment itself";
  ASSERT_TRUE(log->deferred_pending());
  ASSERT_TRUE(log->run_deferred());
  EXPECT_FALSE(log->deferred_pending());
  // Every full segment was trimmed by its seal and never reserved after its
  // trim (that would leave zeros at its end); the last one is reserved.
  const auto trims = calls_starting(fs.calls, "truncate");
  EXPECT_EQ(trims.size(), log->segment_count() - 1);
  for (const auto& t : trims) {
    const std::string path = t.substr(9);
    const auto at = std::find(fs.calls.begin(), fs.calls.end(), t);
    EXPECT_EQ(std::find(at, fs.calls.end(), "preallocate " + path), fs.calls.end()) << path << " reserved after its trim";
  }
  const auto last = std::string(kDir) + "/" + last_segment_created_as(fs);
  EXPECT_NE(std::find(fs.calls.begin(), fs.calls.end(), "preallocate " + last), fs.calls.end()) << last;
  // So a reopened store finds no zeros after the records of a full segment:
  // it opens without a warning and holds everything.
  log.reset();
  rig.warnings.clear();
  log = rig.open(fs);
  ASSERT_TRUE(log);
  expect_entries(*log, all, 30);
  EXPECT_TRUE(rig.warnings.empty()) << rig.warnings.front();
}

TEST(StorageHints, WritebackHintsRunOnlyWithoutSync) {
  for (const bool with_sync : {false, true}) {
    MemoryFilesystem mem;
    GateFs fs(mem);
    Rig rig;
    auto o = rig.opts();
    o.segment_size_bytes_max = 64u << 20;
    auto r = LogStore::open(fs, kDir, o);
    ASSERT_TRUE(r);
    auto& log = **r;
    fs.calls.clear();
    // 5 MiB in one segment: past the 4 MiB after which writeback starts.
    for (std::uint64_t i = 1; i <= 50; ++i) ASSERT_TRUE(log.append(make_entries(i * 100 - 99, i * 100, 1, 1000)));
    EXPECT_TRUE(calls_starting(fs.calls, "writeback").empty()) << "append() hinted writeback itself";
    ASSERT_TRUE(log.deferred_pending());
    if (with_sync) {
      ASSERT_TRUE(log.sync());
      // fdatasync writes everything back anyway.
      EXPECT_TRUE(calls_starting(fs.calls, "writeback").empty());
    } else {
      ASSERT_TRUE(log.run_deferred());
      EXPECT_EQ(calls_starting(fs.calls, "writeback").size(), 1u);
    }
    EXPECT_FALSE(calls_starting(fs.calls, "preallocate").empty()) << with_sync;
    EXPECT_FALSE(log.deferred_pending());
  }
}

// ---------------------------------------------------------------- reclaim
// compact() drops segments from the log without touching a file; reclaim()
// deletes them later, on the storage thread (log_store.cpp, COMPACTION).

std::vector<std::string> segment_names(Filesystem& fs) {
  auto names = fs.list(kDir);
  EXPECT_TRUE(names);
  std::vector<std::string> v;
  for (const auto& n : *names)
    if (n.size() > 4 && n.substr(n.size() - 4) == ".seg") v.push_back(n);
  std::sort(v.begin(), v.end());
  return v;
}

// The calls reclaim() makes to delete `names`: each unlink made durable
// before the next.
std::vector<std::string> unlinks_in_order(const std::vector<std::string>& names) {
  std::vector<std::string> v;
  for (const auto& n : names) {
    v.push_back(std::string("unlink ") + kDir + "/" + n);
    v.push_back("sync_dir");
  }
  return v;
}

TEST(StorageReclaim, CompactTouchesNoFileAndReclaimDeletesOldestFirst) {
  MemoryFilesystem mem;
  GateFs fs(mem);
  Rig rig;
  std::vector<LogEntry> all;
  auto log = rig.filled(fs, all);
  ASSERT_EQ(*log->sync(), 30u);
  const auto before = segment_names(fs);
  ASSERT_GE(before.size(), 6u);
  const int datasyncs = fs.datasyncs;
  fs.calls.clear();
  EXPECT_FALSE(log->reclaim_pending());
  ASSERT_TRUE(log->compact(20));
  EXPECT_TRUE(fs.calls.empty()) << "compact() changed the directory";
  EXPECT_EQ(fs.datasyncs, datasyncs) << "compact() waited for the disk";
  EXPECT_GT(log->first_index(), 1u);
  EXPECT_LE(log->first_index(), 20u);
  EXPECT_EQ(segment_names(fs), before);
  const std::size_t dropped = before.size() - log->segment_count();
  ASSERT_GE(dropped, 3u);
  EXPECT_TRUE(log->reclaim_pending());

  ASSERT_TRUE(log->reclaim(1));
  EXPECT_EQ(fs.calls, unlinks_in_order({before[0]}));
  EXPECT_TRUE(log->reclaim_pending());
  ASSERT_TRUE(log->reclaim());
  EXPECT_EQ(fs.calls, unlinks_in_order(std::vector<std::string>(before.begin(), before.begin() + dropped)));
  EXPECT_FALSE(log->reclaim_pending());
  EXPECT_EQ(segment_names(fs), std::vector<std::string>(before.begin() + dropped, before.end()));
  expect_entries(*log, all, 30);
  // Nothing left to do: no call at all.
  fs.calls.clear();
  ASSERT_TRUE(log->reclaim());
  EXPECT_TRUE(fs.calls.empty());
}

// Until reclaim() ran, a reopened store starts at the oldest file left: a
// longer log, never a hole. The next compaction drops those segments again.
TEST(StorageReclaim, CrashBeforeReclaimReopensAtTheOldestSegment) {
  MemoryFilesystem fs;
  Rig rig;
  std::vector<LogEntry> all;
  auto log = rig.compacted(fs, all);
  const std::uint64_t compacted_first = log->first_index();
  ASSERT_GT(compacted_first, 1u);
  log.reset();
  fs.crash();
  log = rig.open(fs);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->first_index(), 1u);
  expect_entries(*log, all, 30);
  ASSERT_TRUE(log->compact(20));
  EXPECT_EQ(log->first_index(), compacted_first);
  ASSERT_TRUE(log->reclaim());
  log.reset();
  fs.crash();
  log = rig.open(fs);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->first_index(), compacted_first);
  expect_entries(*log, all, 30);
}

// Compacting segments whose seals still wait (nothing synced): reclaim()
// seals first, so it deletes each file under the name it has then, and no
// segment kept is pending once its predecessor is gone.
TEST(StorageReclaim, SealsRunBeforeAnyFileIsDeleted) {
  MemoryFilesystem mem;
  GateFs fs(mem);
  Rig rig;
  std::vector<LogEntry> all;
  auto log = rig.filled(fs, all);
  ASSERT_TRUE(log->deferred_pending());
  ASSERT_TRUE(log->compact(20));
  const std::uint64_t first = log->first_index();
  fs.calls.clear();
  ASSERT_TRUE(log->reclaim());
  EXPECT_FALSE(log->deferred_pending());
  EXPECT_EQ(count_names(fs, ".pending"), 0u);
  const auto first_unlink = std::find_if(fs.calls.begin(), fs.calls.end(), [](const std::string& c) { return c.rfind("unlink", 0) == 0; });
  ASSERT_NE(first_unlink, fs.calls.end());
  EXPECT_TRUE(std::none_of(first_unlink, fs.calls.end(), [](const std::string& c) { return c.rfind("rename", 0) == 0; }));
  // A power cut now keeps every segment from `first` on but the last one's
  // unsynced records, and none before it.
  log.reset();
  mem.crash();
  log = rig.open(fs);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->first_index(), first);
  EXPECT_GE(log->last_index(), segment_names(fs).size() > 1 ? first : first - 1);
  expect_entries(*log, all, log->last_index());
}

// reset() discards the whole log, files still waiting for reclaim()
// included, also those whose seal still waits (under their pending name).
TEST(StorageReclaim, ResetDeletesTheFilesCompactionLeft) {
  MemoryFilesystem fs;
  Rig rig;
  std::vector<LogEntry> all;
  auto log = rig.filled(fs, all);
  ASSERT_TRUE(log->compact(20));
  ASSERT_TRUE(log->reclaim_pending());
  ASSERT_TRUE(log->reset(100, 5));
  EXPECT_FALSE(log->reclaim_pending());
  EXPECT_EQ(segment_names(fs), std::vector<std::string>{"00000000000000000101.seg"});
  EXPECT_EQ(count_names(fs, ".pending"), 0u);
  ASSERT_TRUE(log->reclaim());
  auto next = make_entries(101, 105, 5, 200);
  ASSERT_TRUE(log->append(next));
  ASSERT_EQ(*log->sync(), 105u);
  log.reset();
  fs.crash();
  log = rig.open(fs);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->prev_index(), 100u);
  EXPECT_EQ(log->prev_term(), 5u);
  EXPECT_EQ(log->last_index(), 105u);
}

// A store closed before its queued reclaim() ran deletes nothing: its owner
// may already have opened the directory again.
TEST(StorageReclaim, ClosedStoreDeletesNothing) {
  MemoryFilesystem fs;
  Rig rig;
  std::vector<LogEntry> all;
  auto log = rig.compacted(fs, all);
  const auto before = segment_names(fs);
  log->close();
  EXPECT_EQ(log->reclaim().error(), errc::closed);
  EXPECT_EQ(segment_names(fs), before);
}

// A failed unlink or directory fsync stops the store, as any write does
// (DESIGN 6: fail-stop).
TEST(StorageReclaim, FailureStopsTheStore) {
  for (const char* kind : {"unlink", "sync_dir"}) {
    MemoryFilesystem fs;
    Rig rig;
    std::vector<LogEntry> all;
    auto log = rig.compacted(fs, all);
    fs.fail_next(kind, errc::io_error);
    EXPECT_EQ(log->reclaim().error(), errc::io_error) << kind;
    EXPECT_EQ(log->reclaim().error(), errc::store_failed) << kind;
    EXPECT_EQ(log->sync().error(), errc::store_failed) << kind;
    EXPECT_EQ(log->append(make_entries(31, 31, 1, 10)).error(), errc::store_failed) << kind;
  }
}

}  // namespace
}  // namespace raft::storage
