// LogStore behaviour on the in-memory filesystem: the API contract, segment
// roll-over, compaction and reset across reopen, failure handling and group
// commit.
#include "unit/storage_test_util.hpp"

#include <raft/storage/log_store.hpp>
#include <raft/storage/memory_filesystem.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

namespace raft::storage {
namespace {

using testing::make_entries;
using testing::make_entry;
using testing::GateFs;

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

TEST(StorageLog, ReadUpToTheLastRepresentableIndex) {
  // Found by tests/fuzz/log_store_fuzz.cpp (ASan: heap-buffer-overflow in
  // read): a segment holding index 2^64-1 made read()'s next index wrap to
  // 0, which still passed `index <= to`, so it went on to the segment after
  // the last one.
  MemoryFilesystem fs;
  auto log = *LogStore::open(fs, kDir);
  const std::uint64_t max = UINT64_MAX;
  ASSERT_TRUE(log->reset(max - 3, 1));
  const std::vector<LogEntry> es = {make_entry(max - 2, 1, 10), make_entry(max - 1, 1, 11), make_entry(max, 1, 12)};
  ASSERT_TRUE(log->append(es));
  ASSERT_TRUE(log->sync());
  ASSERT_EQ(log->last_index(), max);
  auto all = log->read(max - 2, max, SIZE_MAX);
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, es);
  auto last = log->entry(max);
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, es.back());
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

// Writeback of a segment's dirty pages is started every few MiB while it is
// written (never past the end of the file, also after a truncation), so
// sealing a full segment does not flush it all at once. append() queues the
// hints; run_deferred() gives them to the filesystem.
TEST(StorageLog, WritebackIsStartedAsSegmentsFill) {
  MemoryFilesystem fs;
  Warnings w;
  auto log = open_ok(fs, w.opts());
  std::uint64_t next = 1;
  for (int k = 0; k < 80; ++k, next += 4) ASSERT_TRUE(log->append(make_entries(next, next + 3, 1, 64 << 10)));
  // append() queues the hints for the storage thread.
  EXPECT_EQ(fs.writeback_hints().first, 0u);
  ASSERT_TRUE(log->run_deferred());
  // 80 x 256 KiB = 20 MiB written, no sync: at least 16 MiB handed to writeback.
  auto [bytes, past_end] = fs.writeback_hints();
  EXPECT_GE(bytes, 16u << 20);
  EXPECT_LE(bytes, 21u << 20);
  EXPECT_EQ(past_end, 0u);
  ASSERT_TRUE(log->truncate_suffix(100, 0));  // back below what was handed over
  next = 101;
  for (int k = 0; k < 40; ++k, next += 4) ASSERT_TRUE(log->append(make_entries(next, next + 3, 2, 64 << 10)));
  ASSERT_TRUE(log->run_deferred());
  EXPECT_EQ(fs.writeback_hints().second, 0u) << "a hint past the end of the file after truncation";
  EXPECT_GT(fs.writeback_hints().first, bytes);
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
    ASSERT_TRUE(log->reclaim());
  }
  fs.crash();
  auto log = open_ok(fs, Warnings{}.opts(600));
  EXPECT_EQ(log->first_index(), first);
  EXPECT_EQ(log->prev_term(), first - 1);  // term == index in this log
  EXPECT_EQ(log->last_index(), 40u);
  expect_entries(*log, first, 40, all);
}

// Compaction down to the last segment, created by a roll but not yet
// synced: once reclaim() deleted its predecessors that segment is the whole
// log, so its header must be durable first, or a crash leaves the only
// segment without one (and open() refused the log as corrupt).
TEST(StorageLog, CompactionToAnUnsyncedLastSegmentSurvivesACrash) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    MemoryFilesystem fs(seed);
    std::vector<LogEntry> all;
    for (std::uint64_t i = 1; i <= 40; ++i) all.push_back(make_entry(i, 3, 100));
    std::uint64_t last_first = 0;
    Warnings w0;
    {
      auto log = open_ok(fs, w0.opts(600));
      ASSERT_TRUE(log->append(std::span(all).first(20)));
      ASSERT_TRUE(log->sync());
      ASSERT_TRUE(log->append(std::span(all).subspan(20)));  // rolls; not synced
      ASSERT_GT(log->segment_count(), 1u);
      ASSERT_TRUE(log->compact(40));  // drops all but the last segment
      ASSERT_EQ(log->segment_count(), 1u);
      ASSERT_TRUE(log->reclaim());  // deletes their files
      last_first = log->first_index();
    }
    fs.crash();
    Warnings w;
    auto log = LogStore::open(fs, kDir, w.opts(600));
    ASSERT_TRUE(log) << "seed " << seed << ": " << log.error().message();
    EXPECT_EQ((*log)->first_index(), last_first) << "seed " << seed;
    EXPECT_EQ((*log)->prev_term(), 3u) << "seed " << seed;
    EXPECT_GE((*log)->last_index(), last_first - 1) << "seed " << seed;
    expect_entries(**log, last_first, (*log)->last_index(), all);
  }
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

// term_at of every index in [prev_index, last_index] against `terms`
// (terms[i] is the term of index i; terms[0] == 0), and one past the end.
void expect_terms(const LogStore& log, const std::vector<std::uint64_t>& terms) {
  ASSERT_EQ(log.last_index() + 1, terms.size());
  for (std::uint64_t i = log.prev_index(); i <= log.last_index(); ++i) {
    auto t = log.term_at(i);
    ASSERT_TRUE(t) << i;
    ASSERT_EQ(*t, terms[i]) << "index " << i;
  }
  EXPECT_EQ(log.last_term(), terms.back());
  EXPECT_EQ(log.term_at(log.last_index() + 1).error(), errc::invalid_argument);
  if (log.prev_index() > 0) {
    EXPECT_EQ(log.term_at(log.prev_index() - 1).error(), errc::invalid_argument);
  }
}

// Appends [first, last] with `term` to both the log and the model.
void append_terms(LogStore& log, std::vector<std::uint64_t>& terms, std::uint64_t first, std::uint64_t last,
                  std::uint64_t term) {
  ASSERT_EQ(first, terms.size());
  ASSERT_TRUE(log.append(make_entries(first, last, term, 60)));
  terms.resize(last + 1, term);
}

TEST(StorageLog, TermRunsFollowTruncationInsideAndAtRunBoundaries) {
  MemoryFilesystem fs;
  std::vector<std::uint64_t> terms = {0};
  {
    auto log = open_ok(fs, Warnings{}.opts(1000));  // about 12 records a segment
    append_terms(*log, terms, 1, 10, 1);
    append_terms(*log, terms, 11, 40, 3);  // a run across segments
    append_terms(*log, terms, 41, 45, 4);
    ASSERT_GT(log->segment_count(), 3u);

    // Inside a run (term 3 covers 11..40), in a segment before the last.
    ASSERT_TRUE(log->truncate_suffix(25, 0));
    terms.resize(26);
    expect_terms(*log, terms);
    append_terms(*log, terms, 26, 27, 5);  // splits what was run 3
    append_terms(*log, terms, 28, 28, 6);  // a run of one entry
    expect_terms(*log, terms);

    // At run boundaries: the last entry of a run, so the runs after it go.
    ASSERT_TRUE(log->truncate_suffix(27, 0));  // keeps 26..27 (term 5), drops the term-6 run
    terms.resize(28);
    expect_terms(*log, terms);
    append_terms(*log, terms, 28, 30, 5);  // the same term again: continues the run
    expect_terms(*log, terms);
    ASSERT_TRUE(log->truncate_suffix(10, 0));  // last entry of term 1
    terms.resize(11);
    expect_terms(*log, terms);
    append_terms(*log, terms, 11, 12, 7);
    // Right after a run's first entry, and at the entry before it.
    ASSERT_TRUE(log->truncate_suffix(11, 0));
    terms.resize(12);
    expect_terms(*log, terms);
    append_terms(*log, terms, 12, 20, 8);
    ASSERT_TRUE(log->sync());
    expect_terms(*log, terms);

    // After compaction the first run starts at the new first index; emptying
    // the log leaves prev_term as the last term.
    ASSERT_TRUE(log->compact(15));
    ASSERT_GT(log->prev_index(), 0u);
    expect_terms(*log, terms);
    const std::uint64_t prev = log->prev_index();
    ASSERT_TRUE(log->truncate_suffix(prev, 0));
    terms.resize(prev + 1);
    expect_terms(*log, terms);
    EXPECT_EQ(log->last_term(), log->prev_term());
    append_terms(*log, terms, prev + 1, prev + 30, 9);
    ASSERT_TRUE(log->sync());
    expect_terms(*log, terms);
  }
  fs.crash();
  auto log = open_ok(fs, Warnings{}.opts(1000));
  expect_terms(*log, terms);
  // read() checks each record's term against the index.
  auto all = log->read(log->first_index(), log->last_index(), SIZE_MAX);
  ASSERT_TRUE(all);
  for (const auto& e : *all) EXPECT_EQ(e.term, terms[e.index]);
}

TEST(StorageLog, TermAtEveryIndexAcrossSegmentsAndReopen) {
  MemoryFilesystem fs;
  std::vector<std::uint64_t> terms = {0};
  // Runs of irregular lengths (1 to ~250 entries), so some end inside a
  // segment, some at its end and some span several.
  std::uint64_t term = 1, x = 12345;
  {
    auto log = open_ok(fs, Warnings{}.opts(2000));  // about 23 records a segment
    while (terms.size() <= 3000) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const std::uint64_t len = 1 + (x >> 33) % ((x >> 20) % 4 == 0 ? 250 : 8);
      const std::uint64_t first = terms.size();
      append_terms(*log, terms, first, first + len - 1, term);
      term += 1 + (x >> 40) % 3;
    }
    ASSERT_TRUE(log->sync());
    EXPECT_GT(log->segment_count(), 100u);
    expect_terms(*log, terms);
    ASSERT_TRUE(log->compact(1234));
    expect_terms(*log, terms);
  }
  fs.crash();
  auto log = open_ok(fs, Warnings{}.opts(2000));
  expect_terms(*log, terms);
  auto all = log->read(log->first_index(), log->last_index(), SIZE_MAX);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), log->last_index() - log->prev_index());
  for (const auto& e : *all) ASSERT_EQ(e.term, terms[e.index]);
}

TEST(StorageLog, CompactUpToAnEmptyLastSegmentLeavesAnEmptyLog) {
  // A crash after a roll can leave the new segment with its header and no
  // record (the records' write lost); compacting up to it empties the log.
  MemoryFilesystem fs;
  std::vector<std::uint64_t> terms = {0};
  {
    auto log = open_ok(fs, Warnings{}.opts(1000));
    append_terms(*log, terms, 1, 20, 2);
    append_terms(*log, terms, 21, 30, 3);
    ASSERT_TRUE(log->sync());
    ASSERT_GT(log->segment_count(), 1u);
  }
  auto names = *fs.list(kDir);
  std::sort(names.begin(), names.end());
  const std::string last_path = std::string(kDir) + "/" + names.back();
  const std::uint64_t cut = std::stoull(names.back().substr(0, 20));  // the last segment's first index
  testing::write_file(fs, last_path, testing::read_file(fs, last_path).substr(0, 32));  // its header only
  terms.resize(cut);
  Warnings w;
  auto log = open_ok(fs, w.opts(1000));
  EXPECT_TRUE(w.msgs.empty());
  ASSERT_EQ(log->last_index(), cut - 1);
  expect_terms(*log, terms);
  ASSERT_TRUE(log->compact(cut));
  ASSERT_TRUE(log->reclaim());
  EXPECT_EQ(log->segment_count(), 1u);
  EXPECT_EQ(log->prev_index(), cut - 1);
  EXPECT_EQ(log->prev_term(), terms[cut - 1]);
  expect_terms(*log, terms);
  append_terms(*log, terms, cut, cut + 3, terms[cut - 1]);  // continues prev_term's run
  append_terms(*log, terms, cut + 4, cut + 5, terms[cut - 1] + 1);
  expect_terms(*log, terms);
  ASSERT_TRUE(log->sync());
  log.reset();
  fs.crash();
  log = open_ok(fs, w.opts(1000));
  expect_terms(*log, terms);
}

TEST(StorageLog, TruncateAndRegrowAcrossIndexBlocks) {
  // Offsets are kept in blocks of 4096 per segment, and a sealed segment's
  // last block is trimmed to size: truncate at and around block boundaries,
  // into a sealed segment, and grow again.
  MemoryFilesystem fs;
  std::vector<LogEntry> all;
  auto add = [&](LogStore& log, std::uint64_t last, std::uint64_t term) {
    auto v = make_entries(all.size() + 1, last, term, 8);
    ASSERT_TRUE(log.append(v));
    all.insert(all.end(), v.begin(), v.end());
  };
  auto cut = [&](LogStore& log, std::uint64_t index) {
    ASSERT_TRUE(log.truncate_suffix(index, 0));
    all.resize(index);
  };
  auto check = [&](const LogStore& log) {
    ASSERT_EQ(log.last_index(), all.size());
    auto got = log.read(1, all.size(), SIZE_MAX);
    ASSERT_TRUE(got);
    ASSERT_TRUE(*got == all);
    for (const auto& e : all) ASSERT_EQ(*log.term_at(e.index), e.term) << e.index;
  };
  {
    auto log = open_ok(fs, Warnings{}.opts(400 << 10));  // about 10,000 entries a segment
    add(*log, 25000, 1);
    ASSERT_EQ(log->segment_count(), 3u);
    cut(*log, 15000);  // into the second segment, sealed and trimmed
    ASSERT_EQ(log->segment_count(), 2u);
    add(*log, 26000, 2);
    check(*log);
    cut(*log, 4096);  // exactly one block of the first segment
    add(*log, 5000, 3);
    cut(*log, 4097);
    add(*log, 8192, 3);
    cut(*log, 8191);
    add(*log, 30000, 4);
    check(*log);
    ASSERT_TRUE(log->sync());
  }
  fs.crash();
  auto log = open_ok(fs, Warnings{}.opts(400 << 10));
  check(*log);
  cut(*log, 12000);  // into a segment trimmed at recovery
  add(*log, 20000, 5);
  check(*log);
}

TEST(StorageLog, OptionsBeyondThirtyTwoBitOffsetsAreRefused) {
  MemoryFilesystem fs;
  auto open_with = [&](std::uint64_t seg, std::uint64_t entry, Warnings& w) {
    LogStoreOptions o = w.opts(seg);
    o.entry_size_bytes_max = entry;
    return LogStore::open(fs, kDir, o);
  };
  for (auto [seg, entry] : {std::pair<std::uint64_t, std::uint64_t>{1ull << 40, 1024},
                            {UINT64_MAX, 1024},  // the sum would wrap around
                            {64 << 20, UINT64_MAX},
                            {4ull << 30, 0},
                            {2ull << 30, 2ull << 30},
                            {UINT32_MAX - 57 - 1000, 1001}}) {
    Warnings w;
    auto r = open_with(seg, entry, w);
    ASSERT_FALSE(r) << seg << " + " << entry;
    EXPECT_EQ(r.error(), errc::invalid_argument);
    ASSERT_EQ(w.msgs.size(), 1u);
    EXPECT_NE(w.msgs[0].find("32-bit"), std::string::npos) << w.msgs[0];
  }
  EXPECT_FALSE(*fs.exists(kDir));  // refused before touching the disk
  Warnings w;
  auto r = open_with(UINT32_MAX - 57 - 1000, 1000, w);  // exactly at the limit
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(w.msgs.empty());
}

// The in-memory index costs about 4 bytes per entry (a 32-bit offset; terms
// as runs) in the segment being written, in the few sealed ones still
// loaded and after recovery; less with many segments (see the next test).
TEST(StorageLog, IndexCostsAtMostSixBytesPerEntry) {
  constexpr std::uint64_t kN = 1000000;
  for (std::uint64_t seg : {64ull << 20, 1ull << 20}) {  // one segment; ~40 segments
    MemoryFilesystem fs;
    std::vector<LogEntry> batch(1000);
    for (auto& e : batch) e.data.assign(16, 'x');
    {
      auto log = open_ok(fs, Warnings{}.opts(seg));
      for (std::uint64_t i = 1; i <= kN; i += batch.size()) {
        for (std::size_t k = 0; k < batch.size(); ++k) {
          batch[k].index = i + k;
          batch[k].term = 1 + (i + k) / 300000;
        }
        ASSERT_TRUE(log->append(batch));
      }
      ASSERT_EQ(log->last_index(), kN);
      const double per_entry = static_cast<double>(log->index_bytes()) / kN;
      std::printf("segments of %llu bytes: %zu segments, index %.2f bytes/entry\n",
                  static_cast<unsigned long long>(seg), log->segment_count(), per_entry);
      EXPECT_LE(per_entry, 6.0);
      ASSERT_TRUE(log->sync());
    }
    auto log = open_ok(fs, Warnings{}.opts(seg));
    ASSERT_EQ(log->last_index(), kN);
    const double per_entry = static_cast<double>(log->index_bytes()) / kN;
    std::printf("after reopen: index %.2f bytes/entry\n", per_entry);
    EXPECT_LE(per_entry, 6.0);
    EXPECT_EQ(*log->term_at(299999), 1u);
    EXPECT_EQ(*log->term_at(300000), 2u);
    EXPECT_EQ(*log->term_at(kN), 4u);
  }
}

// Sealed segments keep their offsets in memory only while they are among the
// few most recently used: a long log's index does not stay in memory. Reads
// of old entries rebuild a segment's offsets from its file; truncating back
// into such a segment works too.
TEST(StorageLog, OffsetsOfColdSealedSegmentsAreNotKeptInMemory) {
  constexpr std::uint64_t kN = 1000000;
  MemoryFilesystem fs;
  auto data_of = [](std::uint64_t i) { return std::to_string(i * 7919) + "-entry"; };
  {
    auto log = open_ok(fs, Warnings{}.opts(1 << 20));  // ~45 segments
    std::vector<LogEntry> batch(1000);
    for (std::uint64_t i = 1; i <= kN; i += batch.size()) {
      for (std::size_t k = 0; k < batch.size(); ++k) {
        batch[k].index = i + k;
        batch[k].term = 1;
        batch[k].data = data_of(i + k);
      }
      ASSERT_TRUE(log->append(batch));
    }
    ASSERT_GT(log->segment_count(), 30u);
    const double per_entry = static_cast<double>(log->index_bytes()) / kN;
    std::printf("%zu segments, index %.3f bytes/entry while writing\n", log->segment_count(), per_entry);
    EXPECT_LT(per_entry, 0.8);  // all of them loaded: about 4
    ASSERT_TRUE(log->sync());
  }
  auto log = open_ok(fs, Warnings{}.opts(1 << 20));
  EXPECT_LT(static_cast<double>(log->index_bytes()) / kN, 0.8) << "after reopen";
  // Old entries, every segment, in an order that keeps evicting.
  for (std::uint64_t i : {std::uint64_t{1}, kN / 2, std::uint64_t{2}, kN - 1, std::uint64_t{77777}, kN / 3}) {
    for (std::uint64_t j = i; j < std::min(kN, i + 30000); j += 997) {
      auto e = log->entry(j);
      ASSERT_TRUE(e) << j;
      ASSERT_EQ(e->index, j);
      ASSERT_EQ(e->data, data_of(j)) << j;
    }
  }
  auto range = log->read(1, kN, 64 << 20);  // across every segment at once
  ASSERT_TRUE(range);
  ASSERT_EQ(range->size(), kN);
  EXPECT_EQ(range->back().data, data_of(kN));
  EXPECT_LT(static_cast<double>(log->index_bytes()) / kN, 0.8) << "after reading everything";
  // Back into an old segment whose offsets were dropped, then on from there.
  ASSERT_TRUE(log->truncate_suffix(12345, 12345));
  EXPECT_EQ(log->last_index(), 12345u);
  std::vector<LogEntry> more{LogEntry{LogEntryType::command, 12346, 2, "new"}};
  ASSERT_TRUE(log->append(more));
  ASSERT_TRUE(log->sync());
  EXPECT_EQ(log->entry(12345)->data, data_of(12345));
  EXPECT_EQ(log->entry(12346)->data, "new");
  log.reset();
  auto again = open_ok(fs, Warnings{}.opts(1 << 20));
  ASSERT_EQ(again->last_index(), 12346u);
  EXPECT_EQ(again->entry(12346)->data, "new");
  EXPECT_EQ(again->entry(5)->data, data_of(5));
}

// A sealed segment whose offsets were dropped is checked when they are
// rebuilt: one that changed on disk since open is reported, not misread.
TEST(StorageLog, ColdSegmentChangedSinceOpenIsCorruptWhenRead) {
  MemoryFilesystem fs;
  Warnings w;
  {
    auto log = open_ok(fs, w.opts(4096));
    for (std::uint64_t i = 1; i <= 2000; i += 100) ASSERT_TRUE(log->append(make_entries(i, i + 99, 1, 40)));
    ASSERT_GT(log->segment_count(), 10u);
    ASSERT_TRUE(log->sync());
  }
  auto log = open_ok(fs, w.opts(4096));
  auto f = fs.open(std::string(kDir) + "/00000000000000000001.seg", OpenFlags{});
  ASSERT_TRUE(f);
  ASSERT_TRUE((*f)->truncate(2000));  // the first segment loses its last records
  auto e = log->entry(3);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error(), errc::log_corrupt);
  ASSERT_FALSE(w.msgs.empty());
  EXPECT_NE(w.msgs.back().find("no longer holds"), std::string::npos) << w.msgs.back();
}

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
