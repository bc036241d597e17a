// LevelDB-style recovery tests (log_test.cc's ShrinkSize/IncrementByte): damage
// a segment at every byte offset and assert exactly what recovery keeps.
#include "unit/storage_test_util.hpp"

#include <raft/detail/crc32c.hpp>
#include <raft/detail/endian.hpp>
#include <raft/storage/log_store.hpp>
#include <raft/storage/memory_filesystem.hpp>

#include <gtest/gtest.h>

namespace raft::storage {
namespace {

using testing::make_entries;
using testing::read_file;
using testing::write_file;

constexpr const char* kDir = "/n/log";
constexpr std::uint64_t kSegBytes = 16 << 10;
constexpr std::size_t kHeader = 32, kRecHeader = 25;

struct Fixture {
  MemoryFilesystem fs;
  std::vector<LogEntry> all;
  std::vector<std::string> warnings;
  std::vector<std::string> seg_paths;
  // Record start offsets (and sizes) in the last segment, and its first index.
  std::vector<std::pair<std::size_t, std::size_t>> recs;
  std::uint64_t last_first = 0;

  LogStoreOptions opts() {
    LogStoreOptions o;
    o.segment_size_bytes_max = kSegBytes;
    // The files hold exactly the records, so that every offset below is one
    // of them; a preallocated tail of zeros has its own tests
    // (StoragePrealloc.* in storage_prealloc_test.cpp).
    o.preallocate = false;
    o.warn = [this](const std::string& m) { warnings.push_back(m); };
    return o;
  }

  // Two segments: a full first one and a last one of ~6 KiB, so the last
  // 4 KiB of the last segment hold only records.
  Fixture() {
    auto log = *LogStore::open(fs, kDir, opts());
    std::uint64_t i = 1;
    while (log->segment_count() < 2 || log->size_bytes() < kSegBytes + 6 * 1024) {
      auto batch = make_entries(i, i + 3, 1 + i / 200, (i * 37) % 300);
      EXPECT_TRUE(log->append(batch));
      all.insert(all.end(), batch.begin(), batch.end());
      i += 4;
    }
    EXPECT_TRUE(log->sync());
    EXPECT_EQ(log->segment_count(), 2u);
    for (const auto& n : *fs.list(kDir)) seg_paths.push_back(std::string(kDir) + "/" + n);
    last_first = std::stoull(seg_paths.back().substr(std::string(kDir).size() + 1, 20));
    std::size_t off = kHeader;
    for (std::uint64_t idx = last_first; idx <= all.size(); ++idx) {
      const std::size_t size = kRecHeader + all[idx - 1].data.size();
      recs.emplace_back(off, size);
      off += size;
    }
    EXPECT_EQ(off, read_file(fs, seg_paths.back()).size());
  }

  // Number of complete records in the last segment before byte offset `o`,
  // and whether `o` lies inside the segment's last record.
  std::size_t complete_before(std::size_t o) const {
    std::size_t n = 0;
    while (n < recs.size() && recs[n].first + recs[n].second <= o) ++n;
    return n;
  }

  // Opens, and checks the log holds exactly entries 1..last (never a wrong one).
  void expect_recovered(std::uint64_t last, bool expect_warning, const std::string& what) {
    warnings.clear();
    auto log = LogStore::open(fs, kDir, opts());
    ASSERT_TRUE(log) << what << ": " << log.error().message();
    ASSERT_EQ((*log)->last_index(), last) << what;
    auto got = (*log)->read(1, last, SIZE_MAX);
    ASSERT_TRUE(got) << what;
    ASSERT_TRUE(std::equal(got->begin(), got->end(), all.begin())) << what;
    EXPECT_EQ(!warnings.empty(), expect_warning) << what;
    // The torn tail is gone for good: the store appends after it cleanly.
    auto next = make_entries(last + 1, last + 1, all[last - 1].term, 5);
    ASSERT_TRUE((*log)->append(next)) << what;
    ASSERT_TRUE((*log)->sync()) << what;
  }

  void expect_corrupt(const std::string& path, const std::string& bytes, const std::string& what) {
    warnings.clear();
    auto log = LogStore::open(fs, kDir, opts());
    ASSERT_FALSE(log) << what;
    ASSERT_EQ(log.error(), errc::log_corrupt) << what;
    ASSERT_FALSE(warnings.empty()) << what;
    EXPECT_NE(warnings.back().find(path), std::string::npos) << warnings.back();
    EXPECT_NE(warnings.back().find("offset"), std::string::npos) << warnings.back();
    // Nothing deleted or rewritten.
    EXPECT_EQ(read_file(fs, path), bytes) << what;
    EXPECT_EQ(fs.list(kDir)->size(), seg_paths.size()) << what;
  }
};

// A segment written by hand, CRCs and all: header (first index, prev term)
// then one record per (index, term), so the checks behind the checksums are
// what is tested.
std::string forged_segment(std::uint64_t first, std::vector<std::pair<std::uint64_t, std::uint64_t>> recs) {
  std::string s(kHeader, '\0');
  auto* h = reinterpret_cast<std::byte*>(s.data());
  detail::put_be64(h, 0x5241465453454731ull);  // "RAFTSEG1"
  detail::put_be32(h + 8, 1);
  detail::put_be64(h + 12, first);
  detail::put_be64(h + 20, 0);
  detail::put_be32(h + 28, detail::crc_mask(detail::crc32c(0, h, 28)));
  for (auto [index, term] : recs) {
    std::byte r[kRecHeader + 1] = {};
    detail::put_be32(r + 4, 1);
    r[8] = static_cast<std::byte>(LogEntryType::command);
    detail::put_be64(r + 9, index);
    detail::put_be64(r + 17, term);
    r[kRecHeader] = std::byte{'x'};
    detail::put_be32(r, detail::crc_mask(detail::crc32c(0, r + 8, 18)));
    s.append(reinterpret_cast<const char*>(r), sizeof r);
  }
  return s;
}

void expect_forged_corrupt(const std::string& name, const std::string& bytes) {
  MemoryFilesystem fs;
  ASSERT_TRUE(fs.mkdir("/n"));
  ASSERT_TRUE(fs.mkdir(kDir));
  write_file(fs, std::string(kDir) + "/" + name, bytes);
  auto log = LogStore::open(fs, kDir);
  ASSERT_FALSE(log) << name << " opened: first " << (*log)->first_index() << ", last " << (*log)->last_index();
  EXPECT_EQ(log.error(), errc::log_corrupt);
  EXPECT_EQ(read_file(fs, std::string(kDir) + "/" + name), bytes);
}

TEST(StorageCorruption, SegmentStartingAtIndexZeroIsCorruption) {
  // Found by tests/fuzz/log_store_fuzz.cpp: indexes start at 1, but a
  // checksummed header naming index 0 was accepted, giving a log whose
  // prev_index() is 2^64-1.
  expect_forged_corrupt("00000000000000000000.seg", forged_segment(0, {}));
  expect_forged_corrupt("00000000000000000000.seg", forged_segment(0, {{0, 1}, {1, 1}}));
}

TEST(StorageCorruption, IndexWrappingPast2To64IsCorruption) {
  // Same fuzz finding: after a record of index 2^64-1 the expected next
  // index wrapped to 0, so a record of index 0 was accepted as its successor
  // and last_index() fell below first_index().
  const std::uint64_t max = UINT64_MAX;
  expect_forged_corrupt("18446744073709551615.seg", forged_segment(max, {{max, 1}, {0, 1}}));
  expect_forged_corrupt("18446744073709551614.seg", forged_segment(max - 1, {{max - 1, 1}, {max, 1}, {0, 1}}));
}

TEST(StorageCorruption, TruncateLastSegmentAtEveryOffsetOfLast4KiB) {
  Fixture f;
  const std::string& path = f.seg_paths.back();
  const std::string orig = read_file(f.fs, path);
  for (std::size_t o = orig.size() - 4096; o < orig.size(); ++o) {
    write_file(f.fs, path, orig.substr(0, o));
    const std::size_t n = f.complete_before(o);
    const bool at_boundary = n < f.recs.size() ? f.recs[n].first == o : true;
    f.expect_recovered(f.last_first + n - 1, !at_boundary, "truncated at " + std::to_string(o));
    if (::testing::Test::HasFatalFailure()) return;
  }
  write_file(f.fs, path, orig);
}

TEST(StorageCorruption, FlipBitInLastSegmentAtEveryOffsetOfLast4KiB) {
  Fixture f;
  const std::string& path = f.seg_paths.back();
  const std::string orig = read_file(f.fs, path);
  for (std::size_t o = orig.size() - 4096; o < orig.size(); ++o) {
    std::string bad = orig;
    bad[o] = static_cast<char>(bad[o] ^ (1 << (o % 8)));
    write_file(f.fs, path, bad);
    const std::size_t rec = f.complete_before(o);  // the damaged record
    const std::string what = "bit flipped at " + std::to_string(o);
    if (rec + 1 == f.recs.size()) {
      // Damage in the last record is indistinguishable from a torn write.
      f.expect_recovered(f.last_first + rec - 1, true, what);
    } else {
      f.expect_corrupt(path, bad, what);
    }
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(StorageCorruption, DamageInEarlierSegmentIsAlwaysCorruption) {
  Fixture f;
  const std::string& path = f.seg_paths.front();
  const std::string orig = read_file(f.fs, path);
  for (std::size_t o = orig.size() - 1024; o < orig.size(); o += 7) {
    std::string bad = orig;
    bad[o] = static_cast<char>(bad[o] ^ 0x10);
    write_file(f.fs, path, bad);
    f.expect_corrupt(path, bad, "flip at " + std::to_string(o));
    // Truncation of a sealed segment leaves a gap before the next one.
    write_file(f.fs, path, orig.substr(0, o));
    f.warnings.clear();
    auto log = LogStore::open(f.fs, kDir, f.opts());
    ASSERT_FALSE(log);
    EXPECT_EQ(log.error(), errc::log_corrupt);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(StorageCorruption, BadHeaderIsCorruption) {
  Fixture f;
  for (const auto& path : f.seg_paths) {
    const std::string orig = read_file(f.fs, path);
    for (std::size_t o = 0; o < kHeader; ++o) {
      std::string bad = orig;
      bad[o] = static_cast<char>(bad[o] ^ 1);
      write_file(f.fs, path, bad);
      f.expect_corrupt(path, bad, "header byte " + std::to_string(o));
      if (::testing::Test::HasFatalFailure()) return;
    }
    write_file(f.fs, path, orig);
  }
}

TEST(StorageCorruption, ValidRecordWithUnexpectedIndexIsCorruption) {
  // A replayed record (intact CRC, wrong index) is a gap or a repeat, not a
  // torn write, even at the very end of the last segment.
  Fixture f;
  const std::string& path = f.seg_paths.back();
  const std::string orig = read_file(f.fs, path);
  const std::string dup = orig + orig.substr(f.recs[0].first, f.recs[0].second);
  write_file(f.fs, path, dup);
  f.expect_corrupt(path, dup, "duplicated record");
}

TEST(StorageCorruption, MissingMiddleSegmentIsCorruption) {
  MemoryFilesystem fs;
  LogStoreOptions o;
  o.segment_size_bytes_max = 1000;
  std::vector<std::string> warnings;
  o.warn = [&](const std::string& m) { warnings.push_back(m); };
  {
    auto log = *LogStore::open(fs, kDir, o);
    ASSERT_TRUE(log->append(make_entries(1, 40, 1, 100)));
    ASSERT_TRUE(log->sync());
    ASSERT_GE(log->segment_count(), 4u);
  }
  auto names = *fs.list(kDir);
  ASSERT_TRUE(fs.unlink(std::string(kDir) + "/" + names[2]));
  const auto before = fs.total_bytes();
  auto log = LogStore::open(fs, kDir, o);
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error(), errc::log_corrupt);
  ASSERT_FALSE(warnings.empty());
  EXPECT_NE(warnings.back().find(names[3]), std::string::npos) << warnings.back();
  EXPECT_EQ(fs.total_bytes(), before);
}

TEST(StorageCorruption, TornSegmentCreationIsRemoved) {
  MemoryFilesystem fs;
  LogStoreOptions o;
  o.segment_size_bytes_max = 1000;
  auto all = make_entries(1, 40, 1, 100);
  std::string last;
  {
    auto log = *LogStore::open(fs, kDir, o);
    ASSERT_TRUE(log->append(all));
    ASSERT_TRUE(log->sync());
    last = std::string(kDir) + "/" + fs.list(kDir)->back();
  }
  write_file(fs, last, read_file(fs, last).substr(0, 17));
  int warned = 0;
  o.warn = [&](const std::string&) { ++warned; };
  auto log = LogStore::open(fs, kDir, o);
  ASSERT_TRUE(log);
  EXPECT_EQ(warned, 1);
  EXPECT_EQ(*(*log)->entry((*log)->last_index()), all[(*log)->last_index() - 1]);
  EXPECT_FALSE(*fs.exists(last));
}

}  // namespace
}  // namespace raft::storage
