// The two Filesystems, the meta store and the snapshot store.
#include "unit/storage_test_util.hpp"

#include <raft/storage/log_store.hpp>
#include <raft/storage/memory_filesystem.hpp>
#include <raft/storage/meta_store.hpp>
#include <raft/storage/snapshot_store.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>

namespace raft::storage {
namespace {

using testing::make_entries;
using testing::read_file;
using testing::write_file;

std::span<const std::byte> bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

TEST(StorageMemoryFs, UnsyncedDataIsLostOnCrash) {
  MemoryFilesystem fs(3);
  ASSERT_TRUE(fs.mkdir("/d"));
  {
    auto f = *fs.open("/d/a", OpenFlags{.create = true});
    ASSERT_TRUE(f->append(bytes("synced")));
    ASSERT_TRUE(f->datasync());
    ASSERT_TRUE(fs.sync_dir("/d"));
    ASSERT_TRUE(f->append(bytes("-lost")));
    fs.crash();
    EXPECT_EQ(f->append(bytes("x")).error(), errc::io_error);  // handles die with the machine
    EXPECT_EQ(f->size().error(), errc::io_error);
  }
  const std::string got = read_file(fs, "/d/a");
  // Some prefix of the unsynced write may survive; never anything else.
  EXPECT_EQ(got.substr(0, 6), "synced");
  EXPECT_EQ(got, std::string("synced-lost").substr(0, got.size()));
}

TEST(StorageMemoryFs, TearDrawsEveryCutFromTheSeed) {
  std::set<std::size_t> sizes;
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    MemoryFilesystem fs(seed);
    ASSERT_TRUE(fs.mkdir("/d"));
    auto f = *fs.open("/d/a", OpenFlags{.create = true});
    ASSERT_TRUE(fs.sync_dir("/d"));
    ASSERT_TRUE(f->append(bytes("0123456789")));
    fs.crash();
    sizes.insert(read_file(fs, "/d/a").size());
  }
  EXPECT_EQ(sizes.size(), 11u);  // every cut from 0 to 10 bytes happens
  // Deterministic per seed.
  auto run = [](std::uint64_t seed) {
    MemoryFilesystem fs(seed);
    (void)fs.mkdir("/d");
    auto f = *fs.open("/d/a", OpenFlags{.create = true});
    (void)fs.sync_dir("/d");
    (void)f->append(bytes("0123456789"));
    (void)f->append(bytes("abcdef"));
    fs.crash();
    return read_file(fs, "/d/a");
  };
  EXPECT_EQ(run(42), run(42));
}

// Writeback in page order: a crash can keep a later page's write and lose
// an earlier page's, leaving zeros (never written) before data. Each page
// holds a prefix of the writes to it, never a later write without an
// earlier one to the same page.
TEST(StorageMemoryFs, CrashCanKeepLaterPagesWithoutEarlierOnes) {
  const std::string a(4096 + 100, 'a'), b(4096, 'b');  // a: page 0 and 100 bytes of page 1; b: the rest
  int hole_before_data = 0;
  for (std::uint64_t seed = 1; seed <= 100; ++seed) {
    MemoryFilesystem fs(seed);
    ASSERT_TRUE(fs.mkdir("/d"));
    auto f = *fs.open("/d/a", OpenFlags{.create = true});
    ASSERT_TRUE(fs.sync_dir("/d"));
    ASSERT_TRUE(f->append(bytes(a)));
    ASSERT_TRUE(f->append(bytes(b)));
    fs.crash();
    const std::string got = read_file(fs, "/d/a");
    const std::string want = a + b;
    ASSERT_LE(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i)
      ASSERT_TRUE(got[i] == want[i] || got[i] == '\0') << "seed " << seed << " byte " << i;
    if (got.size() > 4096 && got[0] == '\0' && got[4096] == 'a') ++hole_before_data;
    if (got.size() > 4096 + 100 && got[4096 + 100] == 'b') {
      EXPECT_EQ(got[4096], 'a') << "seed " << seed << ": page 1 holds write b without write a";
    }
  }
  EXPECT_GT(hole_before_data, 0);
}

TEST(StorageMemoryFs, PreallocationReadsAsZerosAndIsLostUnlessSynced) {
  int lost = 0, kept = 0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    MemoryFilesystem fs(seed);
    ASSERT_TRUE(fs.mkdir("/d"));
    auto f = *fs.open("/d/a", OpenFlags{.create = true});
    ASSERT_TRUE(fs.sync_dir("/d"));
    ASSERT_TRUE(f->append(bytes("head")));
    ASSERT_TRUE(f->datasync());
    f->preallocate(100);
    EXPECT_EQ(*f->size(), 4u);  // this handle's appends still go at the end of the data
    ASSERT_TRUE(f->append(bytes("more")));
    EXPECT_EQ(*f->size(), 8u);
    // A new handle sees the reserved size, zeros after the data.
    EXPECT_EQ(read_file(fs, "/d/a"), "headmore" + std::string(92, '\0'));
    fs.crash();
    const std::string got = read_file(fs, "/d/a");
    if (got.size() == 100) {
      ++kept;
      EXPECT_EQ(got.substr(8), std::string(92, '\0'));
    } else {
      ++lost;
    }
    EXPECT_EQ(got.substr(0, 4), "head");
  }
  EXPECT_GT(lost, 0);
  EXPECT_GT(kept, 0);
}

TEST(StorageMemoryFs, DirectoryOpsNeedSyncDir) {
  MemoryFilesystem fs;
  ASSERT_TRUE(fs.mkdir("/d"));
  write_file(fs, "/d/kept", "k");
  write_file(fs, "/d/gone", "g");
  ASSERT_TRUE(fs.sync_dir("/d"));
  write_file(fs, "/d/new", "n");  // created, data synced, directory not
  ASSERT_TRUE(fs.rename("/d/kept", "/d/renamed"));
  ASSERT_TRUE(fs.unlink("/d/gone"));
  EXPECT_EQ(*fs.list("/d"), (std::vector<std::string>{"new", "renamed"}));
  fs.crash();
  EXPECT_EQ(*fs.list("/d"), (std::vector<std::string>{"gone", "kept"}));
  ASSERT_TRUE(fs.rename("/d/kept", "/d/renamed"));
  ASSERT_TRUE(fs.sync_dir("/d"));
  fs.crash();
  EXPECT_EQ(*fs.list("/d"), (std::vector<std::string>{"gone", "renamed"}));
  EXPECT_EQ(read_file(fs, "/d/renamed"), "k");
}

TEST(StorageMemoryFs, StopAtAndFailNext) {
  MemoryFilesystem fs;
  ASSERT_TRUE(fs.mkdir("/d"));
  auto f = *fs.open("/d/a", OpenFlags{.create = true});
  EXPECT_EQ(fs.ops(), 1u);  // the create
  fs.fail_next("sync", errc::no_space);
  ASSERT_TRUE(f->append(bytes("a")));
  EXPECT_EQ(f->datasync().error(), errc::no_space);
  ASSERT_TRUE(f->datasync());
  fs.fail_next("any", errc::io_error);
  EXPECT_EQ(f->truncate(0).error(), errc::io_error);
  EXPECT_EQ(*f->size(), 1u);  // without effect
  fs.stop_at(fs.ops());
  EXPECT_EQ(f->append(bytes("b")).error(), errc::io_error);
  EXPECT_EQ(fs.rename("/d/a", "/d/b").error(), errc::io_error);
  EXPECT_EQ(fs.sync_dir("/d").error(), errc::io_error);
  EXPECT_EQ(*f->size(), 1u);
  fs.stop_at(std::nullopt);
  ASSERT_TRUE(f->append(bytes("b")));
  EXPECT_EQ(fs.total_bytes(), 2u);
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/raft-storage-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(StoragePosixFs, FileAndDirectoryBasics) {
  TempDir tmp;
  auto fs = make_posix_filesystem();
  const std::string d = tmp.path() + "/sub";
  ASSERT_TRUE(fs->mkdir(d));
  ASSERT_TRUE(fs->mkdir(d));  // ok if it exists
  EXPECT_EQ(fs->open(d + "/missing", OpenFlags{}).error(), errc::io_error);
  {
    auto f = *fs->open(d + "/a", OpenFlags{.create = true, .exclusive = true});
    ASSERT_TRUE(f->append(bytes("hello ")));
    ASSERT_TRUE(f->append(bytes("world")));
    ASSERT_TRUE(f->write_at(0, bytes("J")));
    ASSERT_TRUE(f->datasync());
    ASSERT_TRUE(f->sync());
    EXPECT_EQ(*f->size(), 11u);
    ASSERT_TRUE(f->truncate(5));
    ASSERT_TRUE(f->append(bytes("!")));
    EXPECT_EQ(*f->size(), 6u);
  }
  EXPECT_FALSE(fs->open(d + "/a", OpenFlags{.create = true, .exclusive = true}));
  EXPECT_EQ(read_file(*fs, d + "/a"), "Jello!");
  ASSERT_TRUE(fs->rename(d + "/a", d + "/b"));
  ASSERT_TRUE(fs->sync_dir(d));
  EXPECT_FALSE(*fs->exists(d + "/a"));
  EXPECT_TRUE(*fs->exists(d + "/b"));
  write_file(*fs, d + "/c", "x");
  EXPECT_EQ(*fs->list(d), (std::vector<std::string>{"b", "c"}));
  ASSERT_TRUE(fs->unlink(d + "/b"));
  EXPECT_EQ(fs->unlink(d + "/b").error(), errc::io_error);
  EXPECT_EQ(*fs->list(d), (std::vector<std::string>{"c"}));
  auto ro = *fs->open(d + "/c", OpenFlags{.read_only = true});
  EXPECT_FALSE(ro->append(bytes("y")));
}

TEST(StoragePosixFs, PreallocateReservesSpaceWithoutMovingTheEnd) {
  TempDir tmp;
  auto fs = make_posix_filesystem();
  const std::string p = tmp.path() + "/f";
  auto f = *fs->open(p, OpenFlags{.create = true});
  ASSERT_TRUE(f->append(bytes("abc")));
  f->preallocate(1 << 20);
  EXPECT_EQ(*f->size(), 3u);
  ASSERT_TRUE(f->append(bytes("de")));
  ASSERT_TRUE(f->datasync());
  EXPECT_EQ(*f->size(), 5u);
  // The file is 1 MiB where the filesystem can preallocate (tmpfs and ext4
  // can), zeros after the data.
  const std::uint64_t physical = std::filesystem::file_size(p);
  EXPECT_TRUE(physical == 5u || physical == (1u << 20)) << physical;
  const std::string got = read_file(*fs, p);
  EXPECT_EQ(got.substr(0, 5), "abcde");
  EXPECT_EQ(got.find_first_not_of('\0', 5), std::string::npos);
}

TEST(StoragePosixFs, LogMetaAndSnapshotOnRealFiles) {
  TempDir tmp;
  auto fs = make_posix_filesystem();
  auto all = make_entries(1, 300, 2, 100);
  {
    LogStoreOptions o;
    o.segment_size_bytes_max = 8 << 10;
    auto log = *LogStore::open(*fs, tmp.path() + "/log", o);
    ASSERT_TRUE(log->append(all));
    ASSERT_EQ(*log->sync(), 300u);
    ASSERT_TRUE(log->truncate_suffix(250, 0));
    ASSERT_TRUE(log->compact(100));
    ASSERT_TRUE(log->reclaim());
    auto meta = *MetaStore::open(*fs, tmp.path());
    ASSERT_TRUE(meta.save({1, 5, 2, 3}));
    auto snaps = *SnapshotStore::open(*fs, tmp.path() + "/snapshots");
    auto sink = *snaps->create(100, 2, Config{});
    ASSERT_TRUE(write_all(*sink, "state"));
    ASSERT_TRUE(sink->commit());
  }
  auto log = *LogStore::open(*fs, tmp.path() + "/log");
  EXPECT_EQ(log->last_index(), 250u);
  EXPECT_GT(log->first_index(), 1u);
  EXPECT_EQ(*log->entry(250), all[249]);
  EXPECT_EQ((*MetaStore::open(*fs, tmp.path())).get(), (Meta{1, 5, 2, 3}));
  auto snaps = *SnapshotStore::open(*fs, tmp.path() + "/snapshots");
  ASSERT_TRUE(snaps->latest());
  EXPECT_EQ(snaps->latest()->index, 100u);
  EXPECT_EQ(snaps->latest()->size_bytes, 5u);
}

// Sealing on real files: segments filled without a sync are left pending
// (renames of open files), run_deferred() names them, and a store dropped with some
// still pending (a process crash) is adopted whole on reopen.
TEST(StoragePosixFs, PendingSegmentsSealedAndAdoptedOnRealFiles) {
  TempDir tmp;
  auto fs = make_posix_filesystem();
  const std::string dir = tmp.path() + "/log";
  auto pending = [&] {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.path().extension() == ".pending";
    return n;
  };
  auto all = make_entries(1, 600, 1, 100);
  LogStoreOptions o;
  o.segment_size_bytes_max = 8 << 10;
  {
    auto log = *LogStore::open(*fs, dir, o);
    ASSERT_TRUE(log->append(std::span(all).first(300)));
    EXPECT_GT(pending(), 1u);
    ASSERT_TRUE(log->run_deferred());
    EXPECT_EQ(pending(), 0u);
    ASSERT_TRUE(log->append(std::span(all).subspan(300)));  // fills more; dropped unsealed
    EXPECT_GT(pending(), 1u);
  }
  std::vector<std::string> warnings;
  o.warn = [&](const std::string& w) { warnings.push_back(w); };
  auto log = *LogStore::open(*fs, dir, o);
  EXPECT_EQ(pending(), 0u);
  ASSERT_EQ(log->last_index(), 600u);
  for (std::uint64_t i = 1; i <= 600; i += 37) EXPECT_EQ(*log->entry(i), all[i - 1]) << i;
  EXPECT_EQ(*log->entry(600), all[599]);
  ASSERT_FALSE(warnings.empty());
  EXPECT_NE(warnings.front().find("finishing the seal"), std::string::npos) << warnings.front();
}

TEST(StoragePosixFs, LargeAndSmallEntriesGatherWrite) {
  // Entries of 1 KiB and more are written from the caller's memory with
  // pwritev; check framing and CRCs of mixed batches on real files.
  TempDir tmp;
  auto fs = make_posix_filesystem();
  std::vector<LogEntry> all;
  const std::size_t sizes[] = {0, 5000, 10, 70000, 1023, 1024, 200000, 3};
  for (std::uint64_t i = 1; i <= 1200; ++i) all.push_back(testing::make_entry(i, 1, sizes[i % 8]));
  {
    auto log = *LogStore::open(*fs, tmp.path() + "/log");
    ASSERT_TRUE(log->append(std::span(all).first(10)));
    ASSERT_TRUE(log->append(std::span(all).subspan(10)));  // more pieces than IOV_MAX
    ASSERT_EQ(*log->sync(), 1200u);
  }
  auto log = *LogStore::open(*fs, tmp.path() + "/log");
  auto got = log->read(1, 1200, SIZE_MAX);
  ASSERT_TRUE(got);
  EXPECT_TRUE(*got == all);
}

TEST(StorageMeta, SaveIsAtomicAndChecksummed) {
  MemoryFilesystem fs;
  auto m = MetaStore::open(fs, "/n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->get(), Meta{});
  ASSERT_TRUE(m->save({7, 3, 2, 11}));
  EXPECT_EQ(m->get(), (Meta{7, 3, 2, 11}));
  fs.fail_next("rename", errc::io_error);
  EXPECT_FALSE(m->save({7, 4, 0, 11}));
  EXPECT_EQ(m->get(), (Meta{7, 3, 2, 11}));  // unchanged on failure
  fs.crash();
  EXPECT_EQ(MetaStore::open(fs, "/n")->get(), (Meta{7, 3, 2, 11}));
  // Every single-bit flip is detected.
  const std::string good = read_file(fs, "/n/meta");
  for (std::size_t i = 0; i < good.size() * 8; ++i) {
    std::string bad = good;
    bad[i / 8] = static_cast<char>(bad[i / 8] ^ (1 << (i % 8)));
    write_file(fs, "/n/meta", bad);
    auto r = MetaStore::open(fs, "/n");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::log_corrupt);
  }
  write_file(fs, "/n/meta", good.substr(0, 47));
  EXPECT_EQ(MetaStore::open(fs, "/n").error(), errc::log_corrupt);
  write_file(fs, "/n/meta", good);
  write_file(fs, "/n/meta.tmp", "garbage");  // a save that did not finish
  EXPECT_EQ(MetaStore::open(fs, "/n")->get(), (Meta{7, 3, 2, 11}));
}

Config test_config() {
  Config c;
  c.cluster_id = 5;
  c.index = 9;
  (void)c.add_node(1, "http://127.0.0.1:8001");
  (void)c.add_node(2, "http://127.0.0.1:8002");
  return c;
}

std::string read_all(Reader& r, std::error_code& ec) {
  std::string out;
  std::byte buf[4096];
  for (;;) {
    auto n = r.read(buf);
    if (!n) {
      ec = n.error();
      return out;
    }
    if (*n == 0) return out;
    out.append(reinterpret_cast<const char*>(buf), *n);
  }
}

TEST(StorageSnapshot, WriteListReadAndRemove) {
  MemoryFilesystem fs;
  std::vector<std::string> warnings;
  auto warn = [&](const std::string& m) { warnings.push_back(m); };
  std::string big(3 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + i / 4099);
  {
    auto s = *SnapshotStore::open(fs, "/n/snapshots", warn);
    EXPECT_FALSE(s->latest());
    auto a = *s->create(9, 2, test_config());
    ASSERT_TRUE(write_all(*a, "old"));
    ASSERT_TRUE(a->commit());
    auto b = *s->create(20, 3, test_config());
    for (std::size_t i = 0; i < big.size(); i += 100000)  // streamed in pieces
      ASSERT_TRUE(write_all(*b, std::string_view(big).substr(i, 100000)));
    EXPECT_EQ(s->latest()->index, 9u);  // nothing visible before commit
    auto meta = b->commit();
    ASSERT_TRUE(meta);
    EXPECT_EQ(meta->size_bytes, big.size());
  }
  // What a crash in the middle of a sink leaves behind.
  write_file(fs, "/n/snapshots/00000000000000000003-00000000000000000030.snap.tmp", "partial");
  ASSERT_TRUE(fs.sync_dir("/n/snapshots"));
  fs.crash();
  auto s = *SnapshotStore::open(fs, "/n/snapshots", warn);
  auto latest = s->latest();
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->index, 20u);
  EXPECT_EQ(latest->term, 3u);
  EXPECT_EQ(latest->config, test_config());
  std::error_code ec;
  EXPECT_EQ(read_all(**s->open_reader(*latest), ec), big);
  EXPECT_FALSE(ec);
  ASSERT_TRUE(s->remove_older_than(20));
  EXPECT_EQ(*fs.list("/n/snapshots"), (std::vector<std::string>{
                                          "00000000000000000003-00000000000000000020.snap"}));
}

TEST(StorageSnapshot, CorruptSnapshotsAreIgnoredOrFailOnRead) {
  MemoryFilesystem fs;
  std::vector<std::string> warnings;
  auto warn = [&](const std::string& m) { warnings.push_back(m); };
  std::string path_old, path_new;
  {
    auto s = *SnapshotStore::open(fs, "/n/snapshots", warn);
    auto a = *s->create(5, 1, test_config());
    ASSERT_TRUE(write_all(*a, "five"));
    path_old = a->commit()->path;
    auto b = *s->create(8, 1, test_config());
    ASSERT_TRUE(write_all(*b, std::string(10000, 'e')));
    path_new = b->commit()->path;
  }
  const std::string good = read_file(fs, path_new);
  // Header damage: ignored on listing with a warning; the older one wins.
  std::string bad = good;
  bad[30] ^= 1;
  write_file(fs, path_new, bad);
  auto s = *SnapshotStore::open(fs, "/n/snapshots", warn);
  EXPECT_EQ(s->latest()->index, 5u);
  ASSERT_FALSE(warnings.empty());
  EXPECT_NE(warnings.back().find(path_new), std::string::npos);
  // Cut short: ignored too.
  write_file(fs, path_new, good.substr(0, good.size() - 5));
  EXPECT_EQ((*SnapshotStore::open(fs, "/n/snapshots", warn))->latest()->index, 5u);
  // Data damage: listed (header fine), but the reader fails at the end.
  bad = good;
  bad[good.size() - 100] ^= 4;
  write_file(fs, path_new, bad);
  s = *SnapshotStore::open(fs, "/n/snapshots", warn);
  ASSERT_EQ(s->latest()->index, 8u);
  std::error_code ec;
  read_all(**s->open_reader(*s->latest()), ec);
  EXPECT_EQ(ec, errc::snapshot_corrupt);
}

}  // namespace
}  // namespace raft::storage
