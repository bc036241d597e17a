// LogStore behaviour on the in-memory filesystem: the API contract, segment
// roll-over, compaction and reset across reopen, failure handling and group
// commit.
#include "unit/storage_test_util.hpp"

#include <raft/storage/log_store.hpp>
#include <raft/storage/memory_filesystem.hpp>

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace raft::storage {
namespace {

using testing::make_entries;
using testing::make_entry;

constexpr const char* kDir = "/n/log";

struct Warnings {
  std::vector<std::string> msgs;
  LogStoreOptions opts(std::uint64_t seg = 64ull << 20) {
    LogStoreOptions o;
    o.segment_size_bytes_max = seg;
    o.warn = [this](const std::string& m) { msgs.push_back(m); };
    return o;
  }
};

std::unique_ptr<LogStore> open_ok(Filesystem& fs, LogStoreOptions o = {}) {
  auto r = LogStore::open(fs, kDir, std::move(o));
  EXPECT_TRUE(r) << r.error().message();
  return r ? std::move(*r) : nullptr;
}

void expect_entries(const LogStore& log, std::uint64_t first, std::uint64_t last, const std::vector<LogEntry>& all) {
  for (std::uint64_t i = first; i <= last; ++i) {
    auto e = log.entry(i);
    ASSERT_TRUE(e) << i;
    ASSERT_EQ(*e, all[i - 1]) << i;
  }
}

TEST(StorageLog, FreshLogIsEmptyAtIndexOne) {
  MemoryFilesystem fs;
  auto log = open_ok(fs);
  EXPECT_EQ(log->prev_index(), 0u);
  EXPECT_EQ(log->prev_term(), 0u);
  EXPECT_EQ(log->first_index(), 1u);
  EXPECT_EQ(log->last_index(), 0u);
  EXPECT_EQ(log->last_term(), 0u);
  EXPECT_EQ(*log->term_at(0), 0u);
  EXPECT_EQ(log->term_at(1).error(), errc::invalid_argument);
  EXPECT_EQ(log->entry(1).error(), errc::invalid_argument);
  EXPECT_EQ(log->segment_count(), 1u);
}

TEST(StorageLog, AppendSyncReopenReadsBack) {
  MemoryFilesystem fs;
  auto all = make_entries(1, 50, 3, 40);
  {
    auto log = open_ok(fs);
    ASSERT_TRUE(log->append(std::span(all).first(20)));
    ASSERT_TRUE(log->append(std::span(all).subspan(20)));
    EXPECT_EQ(log->durable_index(), 0u);
    EXPECT_EQ(*log->sync(), 50u);
    EXPECT_EQ(log->durable_index(), 50u);
  }
  fs.crash();
  auto log = open_ok(fs);
  EXPECT_EQ(log->last_index(), 50u);
  EXPECT_EQ(log->last_term(), 3u);
  EXPECT_EQ(log->durable_index(), 50u);
  expect_entries(*log, 1, 50, all);
}

TEST(StorageLog, EmptyEntriesAndSixteenMiBEntry) {
  MemoryFilesystem fs;
  std::vector<LogEntry> all = {make_entry(1, 1, 0), make_entry(2, 1, 16u << 20), make_entry(3, 1, 0),
                               make_entry(4, 2, 1)};
  {
    auto log = open_ok(fs);
    ASSERT_TRUE(log->append(all));
    ASSERT_TRUE(log->sync());
  }
  fs.crash();
  auto log = open_ok(fs);
  ASSERT_EQ(log->last_index(), 4u);
  expect_entries(*log, 1, 4, all);
}

TEST(StorageLog, EntryAboveLimitIsRefusedBeforeWriting) {
  MemoryFilesystem fs;
  LogStoreOptions o;
  o.entry_size_bytes_max = 100;
  auto log = open_ok(fs, o);
  std::vector<LogEntry> v = {make_entry(1, 1, 10), make_entry(2, 1, 101)};
  EXPECT_EQ(log->append(v).error(), errc::entry_too_large);
  EXPECT_EQ(log->last_index(), 0u);
  EXPECT_TRUE(log->append(std::span(v).first(1)));  // not fail-stop: nothing was written
}

TEST(StorageLog, HundredThousandSmallEntriesRollSegments) {
  MemoryFilesystem fs;
  Warnings w;
  std::vector<LogEntry> all;
  all.reserve(100000);
  {
    auto log = open_ok(fs, w.opts(256 << 10));
    for (std::uint64_t i = 1; i <= 100000; i += 100) {
      auto batch = make_entries(i, i + 99, 1 + i / 30000, 8);
      ASSERT_TRUE(log->append(batch));
      all.insert(all.end(), batch.begin(), batch.end());
    }
    ASSERT_EQ(*log->sync(), 100000u);
    EXPECT_GT(log->segment_count(), 10u);
  }
  fs.crash();
  auto log = open_ok(fs, w.opts(256 << 10));
  EXPECT_TRUE(w.msgs.empty());
  ASSERT_EQ(log->last_index(), 100000u);
  auto got = log->read(1, 100000, SIZE_MAX);
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 100000u);
  EXPECT_TRUE(*got == all);
  for (std::uint64_t i : {1ull, 29999ull, 30000ull, 99999ull, 100000ull}) EXPECT_EQ(*log->term_at(i), all[i - 1].term);
}

TEST(StorageLog, SegmentRollKeepsRecordsWhole) {
  MemoryFilesystem fs;
  auto log = open_ok(fs, Warnings{}.opts(1000));
  auto all = make_entries(1, 30, 1, 200);  // ~4 records per segment
  for (const auto& e : all) ASSERT_TRUE(log->append(std::span(&e, 1)));
  ASSERT_TRUE(log->sync());
  EXPECT_GE(log->segment_count(), 6u);
  // A single record bigger than the limit still fits: it gets a segment.
  auto big = make_entry(31, 1, 5000);
  ASSERT_TRUE(log->append(std::span(&big, 1)));
  all.push_back(big);
  ASSERT_TRUE(log->sync());
  log.reset();
  fs.crash();
  log = open_ok(fs, Warnings{}.opts(1000));
  expect_entries(*log, 1, 31, all);
}

TEST(StorageLog, ReadRangeHonoursMaxBytesButReturnsAtLeastOne) {
  MemoryFilesystem fs;
  auto log = open_ok(fs, Warnings{}.opts(700));
  std::vector<LogEntry> all;
  for (std::uint64_t i = 1; i <= 20; ++i) all.push_back(make_entry(i, 1, 100));
  ASSERT_TRUE(log->append(all));
  auto r = log->read(1, 20, 250);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1], all[1]);
  r = log->read(3, 20, 0);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0], all[2]);
  r = log->read(4, 18, 1000);  // crosses segments (about 5 records each)
  ASSERT_EQ(r->size(), 10u);
  for (std::size_t i = 0; i < r->size(); ++i) EXPECT_EQ((*r)[i], all[3 + i]);
  r = log->read(4, 18, SIZE_MAX);
  ASSERT_EQ(r->size(), 15u);
  EXPECT_EQ(r->back(), all[17]);
  EXPECT_TRUE(log->read(5, 4, 10)->empty());
  EXPECT_EQ(log->read(0, 3, 10).error(), errc::invalid_argument);
  EXPECT_EQ(log->read(19, 21, 10).error(), errc::invalid_argument);
}

TEST(StorageLog, TermAtBounds) {
  MemoryFilesystem fs;
  auto log = open_ok(fs, Warnings{}.opts(600));
  std::vector<LogEntry> all;
  for (std::uint64_t i = 1; i <= 30; ++i) all.push_back(make_entry(i, (i + 9) / 10, 100));
  ASSERT_TRUE(log->append(all));
  ASSERT_TRUE(log->sync());
  EXPECT_EQ(*log->term_at(0), 0u);
  EXPECT_EQ(*log->term_at(10), 1u);
  EXPECT_EQ(*log->term_at(11), 2u);
  EXPECT_EQ(*log->term_at(30), 3u);
  EXPECT_EQ(log->term_at(31).error(), errc::invalid_argument);
  ASSERT_TRUE(log->compact(15));
  EXPECT_GT(log->first_index(), 1u);
  EXPECT_LE(log->first_index(), 15u);
  EXPECT_EQ(*log->term_at(log->prev_index()), all[log->prev_index() - 1].term);
  EXPECT_EQ(log->term_at(log->prev_index() - 1).error(), errc::invalid_argument);
}

TEST(StorageLog, ReopenAfterCompactionKeepsPrevTerm) {
  MemoryFilesystem fs;
  std::vector<LogEntry> all;
  for (std::uint64_t i = 1; i <= 40; ++i) all.push_back(make_entry(i, i, 100));
  std::uint64_t first = 0;
  {
    auto log = open_ok(fs, Warnings{}.opts(600));
    ASSERT_TRUE(log->append(all));
    ASSERT_TRUE(log->sync());
    const auto segs = log->segment_count();
    ASSERT_TRUE(log->compact(25));
    EXPECT_LT(log->segment_count(), segs);
    first = log->first_index();
    EXPECT_LE(first, 25u);
    EXPECT_GT(first, 15u);
    ASSERT_TRUE(log->compact(1000));  // never deletes the last segment
    EXPECT_GE(log->segment_count(), 1u);
    EXPECT_EQ(log->last_index(), 40u);
    first = log->first_index();
  }
  fs.crash();
  auto log = open_ok(fs, Warnings{}.opts(600));
  EXPECT_EQ(log->first_index(), first);
  EXPECT_EQ(log->prev_term(), first - 1);  // term == index in this log
  EXPECT_EQ(log->last_index(), 40u);
  expect_entries(*log, first, 40, all);
}

TEST(StorageLog, ResetDiscardsEverythingDurably) {
  MemoryFilesystem fs;
  {
    auto log = open_ok(fs, Warnings{}.opts(600));
    ASSERT_TRUE(log->append(make_entries(1, 30, 2, 100)));
    ASSERT_TRUE(log->sync());
    ASSERT_TRUE(log->reset(100, 7));
    EXPECT_EQ(log->prev_index(), 100u);
    EXPECT_EQ(log->last_index(), 100u);
    EXPECT_EQ(log->last_term(), 7u);
    EXPECT_EQ(log->durable_index(), 100u);
    EXPECT_EQ(log->segment_count(), 1u);
  }
  fs.crash();
  std::vector<LogEntry> tail = make_entries(101, 110, 8, 10);
  {
    auto log = open_ok(fs, Warnings{}.opts(600));
    EXPECT_EQ(log->prev_index(), 100u);
    EXPECT_EQ(log->prev_term(), 7u);
    EXPECT_EQ(*log->term_at(100), 7u);
    EXPECT_EQ(log->term_at(99).error(), errc::invalid_argument);
    ASSERT_TRUE(log->append(tail));
    ASSERT_TRUE(log->sync());
    // A reset to a point that collides with an existing segment's name.
    ASSERT_TRUE(log->reset(100, 9));
    EXPECT_EQ(log->last_index(), 100u);
  }
  fs.crash();
  auto log = open_ok(fs);
  EXPECT_EQ(log->prev_index(), 100u);
  EXPECT_EQ(log->prev_term(), 9u);
  EXPECT_EQ(log->last_index(), 100u);
}

TEST(StorageLog, TruncateSuffixIsDurableBeforeNewAppends) {
  // The new entries are shorter than the old ones, so if the truncation
  // could be lost while the new records survive, old records would show up
  // behind them (or recovery would find a bad record followed by valid ones).
  auto old = make_entries(1, 30, 1, 100);
  auto fresh = make_entries(13, 17, 2, 20);
  for (std::uint64_t seed = 1; seed <= 64; ++seed) {
    MemoryFilesystem fs(seed);
    {
      auto log = open_ok(fs, Warnings{}.opts(800));
      ASSERT_TRUE(log->append(old));
      ASSERT_EQ(*log->sync(), 30u);
      ASSERT_TRUE(log->truncate_suffix(12, 5));
      EXPECT_EQ(log->last_index(), 12u);
      EXPECT_EQ(log->durable_index(), 12u);
      ASSERT_TRUE(log->append(fresh));  // not synced
    }
    fs.crash();
    auto log = open_ok(fs, Warnings{}.opts(800));
    ASSERT_TRUE(log) << "seed " << seed;
    ASSERT_GE(log->last_index(), 12u);
    ASSERT_LE(log->last_index(), 17u);
    expect_entries(*log, 1, 12, old);
    for (std::uint64_t i = 13; i <= log->last_index(); ++i) ASSERT_EQ(*log->entry(i), fresh[i - 13]) << "seed " << seed;
  }
}

TEST(StorageLog, TruncateToPrevIndexEmptiesTheLog) {
  MemoryFilesystem fs;
  auto log = open_ok(fs, Warnings{}.opts(800));
  ASSERT_TRUE(log->append(make_entries(1, 30, 1, 100)));
  ASSERT_TRUE(log->truncate_suffix(0, 0));
  EXPECT_EQ(log->last_index(), 0u);
  EXPECT_EQ(log->segment_count(), 1u);
  auto again = make_entries(1, 3, 4, 1);
  ASSERT_TRUE(log->append(again));
  ASSERT_TRUE(log->sync());
  EXPECT_EQ(*log->entry(3), again[2]);
}

TEST(StorageLogDeathTest, TruncatingCommittedEntryIsABug) {
  MemoryFilesystem fs;
  auto log = open_ok(fs);
  ASSERT_TRUE(log->append(make_entries(1, 10, 1, 10)));
  EXPECT_DEATH((void)log->truncate_suffix(4, 5), "committed");
}

TEST(StorageLog, FailedFsyncMakesTheStoreFailStop) {
  MemoryFilesystem fs;
  auto all = make_entries(1, 20, 1, 30);
  {
    auto log = open_ok(fs);
    ASSERT_TRUE(log->append(std::span(all).first(10)));
    ASSERT_TRUE(log->sync());
    ASSERT_TRUE(log->append(std::span(all).subspan(10)));
    fs.fail_next("sync", errc::io_error);
    EXPECT_EQ(log->sync().error(), errc::io_error);
    EXPECT_EQ(log->durable_index(), 10u);
    // Never retried: a second sync must not report success.
    EXPECT_EQ(log->sync().error(), errc::store_failed);
    EXPECT_EQ(log->append(make_entries(21, 21, 1, 1)).error(), errc::store_failed);
    EXPECT_EQ(log->truncate_suffix(15, 0).error(), errc::store_failed);
    EXPECT_EQ(log->compact(5).error(), errc::store_failed);
    EXPECT_EQ(log->reset(50, 1).error(), errc::store_failed);
    EXPECT_EQ(*log->entry(3), all[2]);  // reads still serve what was written
  }
  fs.crash();
  auto log = open_ok(fs);
  ASSERT_GE(log->last_index(), 10u);
  expect_entries(*log, 1, log->last_index(), all);
}

TEST(StorageLog, NoSpaceIsReportedAndSyncedDataSurvives) {
  MemoryFilesystem fs;
  auto all = make_entries(1, 20, 1, 30);
  {
    auto log = open_ok(fs);
    ASSERT_TRUE(log->append(std::span(all).first(10)));
    ASSERT_TRUE(log->sync());
    fs.fail_next("append", errc::no_space);
    EXPECT_EQ(log->append(std::span(all).subspan(10)).error(), errc::no_space);
    EXPECT_EQ(log->last_index(), 10u);
    EXPECT_EQ(log->append(std::span(all).subspan(10)).error(), errc::store_failed);
  }
  fs.crash();
  {
    auto log = open_ok(fs);
    EXPECT_EQ(log->last_index(), 10u);
    expect_entries(*log, 1, 10, all);
    ASSERT_TRUE(log->append(std::span(all).subspan(10)));
    fs.fail_next("sync", errc::no_space);
    EXPECT_EQ(log->sync().error(), errc::no_space);
    EXPECT_EQ(log->sync().error(), errc::store_failed);
  }
  fs.crash();
  auto log = open_ok(fs);
  ASSERT_GE(log->last_index(), 10u);
  expect_entries(*log, 1, log->last_index(), all);
}

// A filesystem whose first datasync blocks until released, to observe group
// commit without sleeping.
class GateFs final : public Filesystem {
 public:
  explicit GateFs(Filesystem& inner) : inner_(inner) {}
  class GateFile final : public File {
   public:
    GateFile(GateFs& fs, std::unique_ptr<File> f) : fs_(fs), f_(std::move(f)) {}
    result<std::size_t> read_at(std::uint64_t o, std::span<std::byte> out) override { return f_->read_at(o, out); }
    result<void> append(std::span<const std::byte> d) override { return f_->append(d); }
    result<void> write_at(std::uint64_t o, std::span<const std::byte> d) override { return f_->write_at(o, d); }
    result<void> sync() override { return f_->sync(); }
    result<void> datasync() override {
      std::unique_lock lk(fs_.mu);
      ++fs_.datasyncs;
      fs_.entered = true;
      fs_.cv.notify_all();
      fs_.cv.wait(lk, [&] { return !fs_.closed; });
      return f_->datasync();
    }
    result<void> truncate(std::uint64_t s) override { return f_->truncate(s); }
    result<std::uint64_t> size() override { return f_->size(); }

   private:
    GateFs& fs_;
    std::unique_ptr<File> f_;
  };
  result<std::unique_ptr<File>> open(const std::string& p, OpenFlags fl) override {
    auto f = inner_.open(p, fl);
    if (!f) return f.error();
    return std::unique_ptr<File>(new GateFile(*this, std::move(*f)));
  }
  result<void> rename(const std::string& a, const std::string& b) override { return inner_.rename(a, b); }
  result<void> unlink(const std::string& p) override { return inner_.unlink(p); }
  result<std::vector<std::string>> list(const std::string& d) override { return inner_.list(d); }
  result<void> mkdir(const std::string& p) override { return inner_.mkdir(p); }
  result<void> sync_dir(const std::string& d) override { return inner_.sync_dir(d); }
  result<bool> exists(const std::string& p) override { return inner_.exists(p); }

  std::mutex mu;
  std::condition_variable cv;
  bool closed = false, entered = false;
  int datasyncs = 0;

 private:
  Filesystem& inner_;
};

TEST(StorageLog, GroupCommitSharesOneFsync) {
  MemoryFilesystem mem;
  GateFs fs(mem);
  auto r = LogStore::open(fs, kDir);
  ASSERT_TRUE(r);
  auto& log = **r;
  ASSERT_TRUE(log.append(make_entries(1, 5, 1, 10)));
  {
    std::lock_guard lk(fs.mu);
    fs.datasyncs = 0;
    fs.closed = true;
  }
  std::thread a([&] { EXPECT_EQ(*log.sync(), 5u); });
  {
    std::unique_lock lk(fs.mu);
    fs.cv.wait(lk, [&] { return fs.entered; });
  }
  // While A's fsync is in flight: three callers with nothing new share it.
  std::vector<std::thread> riders;
  for (int i = 0; i < 3; ++i) riders.emplace_back([&] { EXPECT_GE(*log.sync(), 5u); });
  {
    std::lock_guard lk(fs.mu);
    fs.closed = false;
    fs.cv.notify_all();
  }
  a.join();
  for (auto& t : riders) t.join();
  EXPECT_EQ(fs.datasyncs, 1);
  // A caller with unsynced data gets a new fsync.
  ASSERT_TRUE(log.append(make_entries(6, 6, 1, 10)));
  std::thread b([&] { EXPECT_EQ(*log.sync(), 6u); });
  b.join();
  EXPECT_EQ(fs.datasyncs, 2);
  EXPECT_EQ(*log.sync(), 6u);  // nothing new: no fsync at all
  EXPECT_EQ(fs.datasyncs, 2);
}

TEST(StorageLog, ConcurrentSyncersSeeTheirEntriesDurable) {
  MemoryFilesystem fs;
  auto log = open_ok(fs, Warnings{}.opts(4096));
  std::atomic<std::uint64_t> appended{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> syncers;
  for (int t = 0; t < 3; ++t) {
    syncers.emplace_back([&] {
      while (!done.load()) {
        const std::uint64_t want = appended.load();
        auto d = log->sync();
        ASSERT_TRUE(d);
        ASSERT_GE(*d, want);
      }
    });
  }
  for (std::uint64_t i = 1; i <= 3000; i += 10) {
    ASSERT_TRUE(log->append(make_entries(i, i + 9, 1, 20)));
    appended.store(i + 9);
  }
  done.store(true);
  for (auto& t : syncers) t.join();
  EXPECT_EQ(*log->sync(), 3000u);
}

}  // namespace
}  // namespace raft::storage
