// Preallocated segments (LogStoreOptions::preallocate) and the recovery rules
// they need: the last segment's file ends in zeros that were never written,
// and after a crash the kernel may have written its unsynced pages back out
// of order (src/storage/log_store.cpp, RECOVERY).
#include "unit/storage_test_util.hpp"

#include <raft/storage/log_store.hpp>
#include <raft/storage/memory_filesystem.hpp>

#include <gtest/gtest.h>

#include <random>

namespace raft::storage {
namespace {

using testing::make_entries;
using testing::read_file;

constexpr const char* kDir = "/n/log";
constexpr std::size_t kHeader = 32, kRecHeader = 25, kPage = 4096;

std::span<const std::byte> bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

struct Fixture {
  MemoryFilesystem fs;
  std::vector<std::string> warnings;
  std::vector<LogEntry> all;  // entries written, all[i] has index i + 1
  std::uint64_t segment_bytes = 1 << 20;

  LogStoreOptions opts() {
    LogStoreOptions o;
    o.segment_size_bytes_max = segment_bytes;
    o.warn = [this](const std::string& m) { warnings.push_back(m); };
    return o;
  }
  std::unique_ptr<LogStore> open() {
    warnings.clear();
    auto log = LogStore::open(fs, kDir, opts());
    EXPECT_TRUE(log) << log.error().message();
    return log ? std::move(*log) : nullptr;
  }
  void append(LogStore& log, std::uint64_t first, std::uint64_t last, std::size_t size) {
    auto v = make_entries(first, last, 1, size);
    ASSERT_TRUE(log.append(v));
    all.resize(first - 1);
    all.insert(all.end(), v.begin(), v.end());
  }
  // Entries 1..last in 8 KiB segments, 10 per append, synced.
  void fill_small_segments(std::uint64_t last) {
    segment_bytes = 8 << 10;
    auto log = open();
    for (std::uint64_t i = 1; i <= last; i += 10) append(*log, i, i + 9, 200);
    ASSERT_TRUE(log->sync());
  }
  static std::uint64_t first_of(const std::string& segment_path) {
    return std::stoull(segment_path.substr(std::string(kDir).size() + 1, 20));
  }
  std::vector<std::string> segments() {
    std::vector<std::string> v;
    for (const auto& n : *fs.list(kDir)) v.push_back(std::string(kDir) + "/" + n);
    return v;
  }
  // Offset of entry `index`'s record in a segment starting at `first`.
  std::uint64_t offset_of(std::uint64_t first, std::uint64_t index) const {
    std::uint64_t off = kHeader;
    for (std::uint64_t i = first; i < index; ++i) off += kRecHeader + all[i - 1].data.size();
    return off;
  }
  void overwrite(const std::string& path, std::uint64_t at, const std::string& data) {
    auto f = *fs.open(path, OpenFlags{});
    ASSERT_TRUE(f->write_at(at, bytes(data)));
    ASSERT_TRUE(f->datasync());
  }
  void expect_holds(LogStore& log, std::uint64_t last, const std::string& what) {
    ASSERT_EQ(log.last_index(), last) << what;
    ASSERT_LE(last, all.size()) << what;
    auto got = log.read(1, last, SIZE_MAX);
    ASSERT_TRUE(got) << what;
    ASSERT_EQ(got->size(), last) << what;
    for (std::uint64_t i = 0; i < last; ++i)
      ASSERT_EQ((*got)[i], all[i]) << what << ": entry " << i + 1 << " of " << last << "; warnings: "
                                   << (warnings.empty() ? "" : warnings.front());
  }
  bool warned(std::string_view text) const {
    for (const auto& w : warnings)
      if (w.find(text) != std::string::npos) return true;
    return false;
  }
};

TEST(StoragePrealloc, ZeroTailIsReservedSpaceAndReopensWithoutWarning) {
  Fixture x;
  {
    auto log = x.open();
    x.append(*log, 1, 50, 300);
    ASSERT_TRUE(log->sync());
    const std::string file = read_file(x.fs, x.segments().back());
    // Reserved past the records (up to 4 MiB, not past the segment limit).
    EXPECT_EQ(file.size(), x.segment_bytes);
    EXPECT_EQ(file.find_first_not_of('\0', log->size_bytes()), std::string::npos);
  }
  auto log = x.open();
  EXPECT_TRUE(x.warnings.empty()) << x.warnings.front();
  x.expect_holds(*log, 50, "reopened");
  x.append(*log, 51, 60, 300);
  ASSERT_TRUE(log->sync());
  log.reset();
  log = x.open();
  EXPECT_TRUE(x.warnings.empty()) << x.warnings.front();
  x.expect_holds(*log, 60, "appended after reopening");
}

TEST(StoragePrealloc, SealedSegmentsEndWithTheirLastRecord) {
  Fixture x;
  x.fill_small_segments(200);
  const auto segs = x.segments();
  ASSERT_GT(segs.size(), 3u);
  for (std::size_t k = 0; k + 1 < segs.size(); ++k)
    EXPECT_EQ(read_file(x.fs, segs[k]).size(), x.offset_of(Fixture::first_of(segs[k]), Fixture::first_of(segs[k + 1])))
        << segs[k];
  EXPECT_EQ(read_file(x.fs, segs.back()).size(), x.segment_bytes);  // the last one stays reserved
}

// Should a sealed segment's trim not reach the disk, its zeros are cut at
// open, silently (they hold nothing).
TEST(StoragePrealloc, ZerosAfterASealedSegmentAreCut) {
  Fixture x;
  x.fill_small_segments(200);
  const auto segs = x.segments();
  ASSERT_GT(segs.size(), 3u);
  const std::string sealed = read_file(x.fs, segs[1]);
  {
    auto f = *x.fs.open(segs[1], OpenFlags{});
    ASSERT_TRUE(f->append(bytes(std::string(5000, '\0'))));
    ASSERT_TRUE(f->datasync());
  }
  auto log = x.open();
  ASSERT_TRUE(log);
  EXPECT_TRUE(x.warnings.empty()) << x.warnings.front();
  x.expect_holds(*log, 200, "zeros after a sealed segment");
  EXPECT_EQ(read_file(x.fs, segs[1]), sealed);
}

// Synced entries 1..10, then 11..60 written but not synced; a crash left a
// page in the middle of the unsynced ones unwritten while later pages made
// it to disk.
TEST(StoragePrealloc, UnwrittenPageBeforeValidRecordsIsATornTail) {
  Fixture x;
  std::uint64_t hole = 0;
  {
    auto log = x.open();
    x.append(*log, 1, 10, 300);
    ASSERT_TRUE(log->sync());
    x.append(*log, 11, 60, 300);
  }
  const std::string seg = x.segments().back();
  hole = (x.offset_of(1, 20) / kPage + 1) * kPage;  // a page that starts inside record 20 or 21
  ASSERT_LT(hole + kPage, x.offset_of(1, 55));      // valid records follow it
  x.overwrite(seg, hole, std::string(kPage, '\0'));
  std::uint64_t last = 10;  // the entries wholly before the hole survive
  while (x.offset_of(1, last + 2) <= hole) ++last;
  auto log = x.open();
  ASSERT_TRUE(log);
  EXPECT_TRUE(x.warned("never written")) << (x.warnings.empty() ? "" : x.warnings.front());
  x.expect_holds(*log, last, "after the torn tail");
  x.append(*log, last + 1, last + 5, 100);
  ASSERT_TRUE(log->sync());
  log.reset();
  log = x.open();
  EXPECT_TRUE(x.warnings.empty()) << x.warnings.front();
  x.expect_holds(*log, last + 5, "appended after the torn tail");
}

// Zeros that do not run to the end of a page are not a page that was never
// written: a bad record followed by valid ones stays corruption.
TEST(StoragePrealloc, ZerosShortOfAPageEndBeforeValidRecordsAreCorruption) {
  Fixture x;
  {
    auto log = x.open();
    x.append(*log, 1, 60, 300);
    ASSERT_TRUE(log->sync());
  }
  const std::string seg = x.segments().back();
  std::uint64_t at = x.offset_of(1, 30);
  // Inside one page, with record bytes after the zeros in the same page.
  if (at % kPage > kPage - 200) at = (at / kPage + 1) * kPage + 10;
  x.overwrite(seg, at, std::string(100, '\0'));
  const std::string before = read_file(x.fs, seg);
  x.warnings.clear();
  auto log = LogStore::open(x.fs, kDir, x.opts());
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error(), errc::log_corrupt);
  EXPECT_TRUE(x.warned("followed by valid records"));
  EXPECT_EQ(read_file(x.fs, seg), before);  // nothing rewritten
}

// The page holding a new segment's header never reached the disk, later
// ones did: nothing in that segment was ever synced.
TEST(StoragePrealloc, LastSegmentWithZeroHeaderIsATornCreation) {
  Fixture x;
  x.fill_small_segments(100);
  const auto segs = x.segments();
  const std::size_t segs_before = segs.size();
  ASSERT_GT(segs_before, 2u);
  const std::uint64_t sealed_last = Fixture::first_of(segs.back()) - 1;
  x.overwrite(segs.back(), 0, std::string(kHeader, '\0'));
  auto log = x.open();
  ASSERT_TRUE(log);
  EXPECT_TRUE(x.warned("header never written"));
  EXPECT_EQ(x.segments().size(), segs_before - 1);
  x.expect_holds(*log, sealed_last, "after removing the torn segment");
}

// Many crashes while appending with and without syncs, files written back
// in order or page by page: open() always succeeds, keeps every synced
// entry and never returns a wrong one.
TEST(StoragePrealloc, CrashesWithOutOfOrderWritebackKeepEverySyncedEntry) {
  int holes = 0;
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    Fixture x;
    x.segment_bytes = 24 << 10;
    std::mt19937_64 rng(seed);
    std::uint64_t durable = 0;
    {
      auto log = x.open();
      ASSERT_TRUE(log);
      x.fs.stop_at(x.fs.ops() + 5 + rng() % 60);
      std::uint64_t next = 1;
      for (int round = 0; round < 40; ++round) {
        const std::uint64_t n = 1 + rng() % 8;
        auto v = make_entries(next, next + n - 1, 1, 100 + rng() % 2500);
        // A failed append may still have written some of them.
        x.all.insert(x.all.end(), v.begin(), v.end());
        if (!log->append(v)) break;
        next += n;
        if (rng() % 3 == 0) {
          auto r = log->sync();
          if (!r) break;
          durable = *r;
        }
      }
    }
    x.fs.crash();
    x.fs.stop_at(std::nullopt);
    auto log = x.open();
    ASSERT_TRUE(log) << "seed " << seed;
    ASSERT_GE(log->last_index(), durable) << "seed " << seed;
    x.expect_holds(*log, log->last_index(), "seed " + std::to_string(seed));
    if (x.warned("never written but valid records follow")) ++holes;
    if (::testing::Test::HasFatalFailure()) return;
    // And the recovered log takes appends again.
    auto more = make_entries(log->last_index() + 1, log->last_index() + 3, 1, 50);
    ASSERT_TRUE(log->append(more)) << "seed " << seed;
    ASSERT_TRUE(log->sync()) << "seed " << seed;
  }
  // The rule under test actually ran. (A zero header does not arise here:
  // the model makes a new file durable only with its directory, which
  // sync() fsyncs after the file; a real journal may commit the directory
  // entry and the preallocated size earlier, hence the test above.)
  EXPECT_GT(holes, 0);
}

}  // namespace
}  // namespace raft::storage
