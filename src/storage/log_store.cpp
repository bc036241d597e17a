// The segmented log (DESIGN 6).
//
// FILES. The log lives in one directory as a sequence of segment files named
// by the index of their first entry, `%020llu.seg`, so that name order is
// index order. Besides segments the directory may hold `reset.tmp` (below)
// and segments not yet given their final name, `%020llu.seg.pending`
// (WRITING); any other name is ignored.
//
// SEGMENT HEADER (32 bytes, big-endian):
//   u64 magic "RAFTSEG1" | u32 format version (1) | u64 first index |
//   u64 prev term | u32 masked crc32c of the 28 bytes before it
// `prev term` is the term of the entry just before `first index`. DESIGN 6
// lists only magic, version and first index; the term is added because after
// compaction deleted the segments before it, or after reset(), nothing else
// on disk records the term of the entry at prev_index(), and Raft needs it
// for the consistency check of the next AppendEntries (§5.3).
//
// RECORDS follow the header back to back, one per entry:
//   u32 masked crc32c | u32 length | u8 type | u64 index | u64 term | data
// `length` is the size of `data`; the CRC covers type..data (as in LevelDB,
// the length is not covered, but a wrong length makes the CRC fail). CRCs
// are masked (crc_mask) because a CRC over data that holds CRCs is weak.
// Indexes are consecutive across the whole log, terms never decrease, and
// each segment's header continues the previous segment's last entry.
//
// WRITING. append() encodes a batch into one reusable buffer and issues one
// write per segment touched (pwritev: data of 1 KiB or more is not copied
// into the buffer but written from the caller's entry; a batch of more than
// about 500 such entries takes one pwritev per IOV_MAX pieces). A new segment starts when the next record would
// take the current one past segment_size_bytes_max (a record never spans
// segments, so one large entry may exceed the limit).
//
// SEALING. append() never waits for the disk (but for the write itself),
// because the Log calls it on its strand, where a flush would hold up
// heartbeats and votes (a roll that fdatasynced the full segment there
// stalled the strand for 20-500 ms on a busy disk, long enough to lose
// leadership; docs/performance.md, session 13). So the next segment is
// created as `<first>.seg.pending`, and the full one's seal (a trim to its
// records, then its fdatasync) waits for the next sync() or run_deferred(),
// on the storage thread, which then renames the successor to its final name
// and fsyncs the directory, one segment at a time in index order. A segment
// with its final name that is not the last is therefore always complete on
// disk, which is what lets recovery treat any damage in it as corruption
// rather than as a torn write. sync() runs the waiting seals first, then
// fdatasyncs the segments written since the last sync, oldest first, and
// fsyncs the directory if a segment was created; concurrent callers share
// one round of syncs (group commit). So an entry sync() confirmed is always
// in a segment with its final name. run_deferred() is for callers that
// never sync() (LogOptions::sync = false): it runs the seals (and the hints
// below) alone. truncate_suffix() and reset() first wait for a running
// round and finish (or, reset, discard) the waiting seals.
//
// PREALLOCATION (opts.preallocate, the default). The last segment's file is
// kept reserved (File::preallocate: fallocate, which sets the file size) up
// to 4 MiB past its records, renewed after every 2 MiB written, never past
// segment_size_bytes_max. A write inside the file's size changes no size,
// so the fdatasync after it has no metadata to commit: on ext4 that saves a
// journal commit per sync (measured: docs/performance.md, session 6). A
// segment's seal first truncates its file to its records, so only the last
// segment ever ends in zeros. Every 4 MiB written, writeback of them is
// started (File::start_writeback, sync_file_range), so that no seal or
// sync finds a whole segment of dirty pages. append() only queues both
// calls (hints): on a busy disk a fallocate took up to 34 ms and a
// sync_file_range up to 9 ms on the strand (session 14). The storage thread
// runs them before the seals of the same round and skips a reservation for
// a segment that round seals, so a reservation never outlives the trim of
// its segment; a sync() round drops the writeback hints, as it fdatasyncs
// those files anyway.
//
// truncate_suffix() deletes the later segments newest first (a crash midway
// leaves a shorter log, never a hole), ftruncates the segment holding the new
// last entry, fdatasyncs it and fsyncs the directory, all before returning:
// otherwise new records appended at the same offsets could become durable
// while the truncation did not, and a crash could resurrect truncated entries
// next to new ones. reset() writes the
// new segment's header to `reset.tmp`, fsyncs it and the directory (from then
// on the reset is decided), unlinks every segment, fsyncs the directory,
// renames `reset.tmp` to its segment name and fsyncs the directory again.
//
// COMPACTION. compact() drops whole leading segments from the log at once
// (the Log calls it on its strand after a snapshot) but leaves their files:
// reclaim(), on the storage thread, deletes them oldest first with a
// directory fsync after each, so a crash midway leaves a log that starts
// earlier, never one with a hole (recovery, and the Log, accept a log that
// starts before the snapshot). Deleting a few segments costs an unlink and
// a directory fsync each, milliseconds apiece on a busy disk, which the
// strand would otherwise spend not sending heartbeats. reclaim() runs the
// waiting seals first, so no segment kept is pending once its predecessor
// is gone, and fdatasyncs the last segment before deleting the one before
// it when nothing else will be left (its header's prev_term is then the only
// record of the term at prev_index()). A store closed or crashed before
// reclaim() ran keeps the files; the next compaction after open drops them.
//
// INDEX (in memory). Per segment, the offset of each record as a u32 (open()
// refuses options that would let a segment reach 4 GiB), in blocks of 4096;
// for the whole log, the terms as runs (first index, term), since a term
// covers many entries. About 4 bytes per entry: a leader appending 60k
// entries/s for 10 minutes holds ~140 MiB of index at 16 bytes per entry,
// ~35 MiB at 4.
//
// RECOVERY (open). A valid `reset.tmp` means a reset was decided but maybe
// not finished: recovery finishes it. An invalid one never took effect and is
// removed. Then every segment is read in full and checked:
// * A segment may end in zeros: space reserved by preallocation (only the
//   last, unless a sealing trim was lost), or blocks allocated for a write
//   that never reached them. They are cut without a warning (appends
//   preallocate again).
// * The last segment may end in a torn write. A record that is short, has an
//   impossible length, or fails its CRC, with no valid record anywhere after
//   it, is such a tail: the file is truncated there, with a warning through
//   opts.warn ("assumes it's a partially written entry", as LogCabin says).
// * The kernel writes a file's dirty pages back in no particular order, so a
//   crash can leave a later unsynced page on disk and an earlier one never
//   written (zeros; with preallocation this is common, without it possible
//   too). So a bad record followed by valid ones is also a torn tail when a
//   page between them reads as never written: zeros from the bad record (or
//   the page's start, if later) to the end of the page. Nothing from such a
//   page on was synced, because an fdatasync writes back every dirty page
//   before it returns; the file is truncated at the bad record, with a
//   warning. (A synced page that later reads as zeros, i.e. a disk losing a
//   write it acknowledged, is outside what recovery can tell apart; a
//   damaged last record is already truncated the same way.)
// * A last segment shorter than its header, or whose header reads as zeros,
//   is a torn segment creation and is removed the same way (the previous
//   segment was synced before it got its name; a datasync of anything in it
//   would have written its header too). With preallocation the journal can
//   make the file's size durable before its first page.
// * Pending segments come after the final ones. Each in index order is
//   adopted (the predecessor trimmed and fdatasynced, then the rename and a
//   directory fsync, with a warning) if it continues the log exactly: its
//   header is valid and names the index after the last entry recovered so
//   far, and that entry's term. That is the case after a crash of the
//   process alone (the kernel still had every write), and after a power cut
//   that happened to keep the whole predecessor. Its records are checked
//   under the pending name by the rules for a last segment first. Otherwise
//   (no exact continuation, or records those rules call corruption) it and
//   every later pending segment are removed, with a warning: nothing in them
//   was ever confirmed by sync() (above), so that loses nothing promised.
// * Anything else is corruption, reported as errc::log_corrupt after a
//   warning naming the file and offset, and nothing is deleted or rewritten:
//   a bad record followed by a valid one with no never-written page between
//   them, a bad record in an earlier segment,
//   a bad header (also one naming index 0: indexes start at 1 and never wrap
//   past 2^64-1), a valid record with an unexpected index or a decreasing
//   term, or a segment that does not continue the previous one (a gap, e.g.
//   a missing segment in the middle).
// Then the last segment is fdatasynced and the directory fsynced, since a
// previous process may have exited with written but unsynced entries, which
// from now on count as durable.
#include "raft/storage/log_store.hpp"

#include "raft/assert.hpp"
#include "raft/detail/crc32c.hpp"
#include "raft/detail/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace raft::storage {
namespace {

constexpr std::uint64_t kSegMagic = 0x5241465453454731ull;  // "RAFTSEG1"
constexpr std::uint32_t kSegVersion = 1;
constexpr std::size_t kSegHeaderSize = 32;
constexpr std::size_t kRecHeaderSize = 25;
// Dirty bytes of a segment after which writeback is started (see flush()).
constexpr std::uint64_t kWritebackChunk = 4u << 20;
// The last segment's file is kept preallocated this far past its end (see
// WRITING), in steps of this size, never past segment_size_bytes_max.
constexpr std::uint64_t kPreallocStep = 4u << 20;
// The crash model's unit of writeback: the kernel writes a file's dirty
// pages back in no particular order, a whole page at a time. Linux pages
// are at least this size.
constexpr std::uint64_t kPageBytes = 4096;
constexpr const char* kResetTmp = "reset.tmp";

std::string seg_name(std::uint64_t first) {
  return fmt::format("{:020}.seg", first);
}

bool parse_seg_name(std::string_view name, std::uint64_t& first) {
  if (name.size() != 24 || name.compare(20, 4, ".seg") != 0) return false;
  std::uint64_t v = 0;
  for (int i = 0; i < 20; ++i) {
    const char c = name[static_cast<std::size_t>(i)];
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  first = v;
  return true;
}

// A segment roll() created, until its predecessor is durable (WRITING).
constexpr std::string_view kPendingSuffix = ".pending";
std::string pending_name(std::uint64_t first) { return seg_name(first) + std::string(kPendingSuffix); }
bool parse_pending_name(std::string_view name, std::uint64_t& first) {
  if (name.size() != 24 + kPendingSuffix.size() || name.substr(24) != kPendingSuffix) return false;
  return parse_seg_name(name.substr(0, 24), first);
}

std::array<std::byte, kSegHeaderSize> encode_seg_header(std::uint64_t first, std::uint64_t prev_term) {
  std::array<std::byte, kSegHeaderSize> h{};
  detail::put_be64(h.data(), kSegMagic);
  detail::put_be32(h.data() + 8, kSegVersion);
  detail::put_be64(h.data() + 12, first);
  detail::put_be64(h.data() + 20, prev_term);
  detail::put_be32(h.data() + 28, detail::crc_mask(detail::crc32c(0, h.data(), 28)));
  return h;
}

bool decode_seg_header(const std::byte* h, std::uint64_t& first, std::uint64_t& prev_term) {
  if (detail::get_be64(h) != kSegMagic || detail::get_be32(h + 8) != kSegVersion) return false;
  if (detail::crc_unmask(detail::get_be32(h + 28)) != detail::crc32c(0, h, 28)) return false;
  first = detail::get_be64(h + 12);
  prev_term = detail::get_be64(h + 20);
  return true;
}

struct Record {
  std::uint8_t type;
  std::uint32_t length;
  std::uint64_t index;
  std::uint64_t term;
};

// A record at `p` (with `avail` bytes from p to the end of the buffer) whose
// framing and CRC are intact. Does not judge index or term.
bool parse_record(const std::byte* p, std::uint64_t avail, std::uint64_t max_len, Record& r) {
  if (avail < kRecHeaderSize) return false;
  r.length = detail::get_be32(p + 4);
  r.type = static_cast<std::uint8_t>(p[8]);
  if (r.length > max_len || r.length > avail - kRecHeaderSize || !is_valid_entry_type(r.type)) return false;
  if (detail::crc_unmask(detail::get_be32(p)) != detail::crc32c(0, p + 8, 17 + std::size_t{r.length})) return false;
  r.index = detail::get_be64(p + 9);
  r.term = detail::get_be64(p + 17);
  return true;
}

bool all_zero(const std::byte* p, std::uint64_t n) {
  return std::all_of(p, p + n, [](std::byte c) { return c == std::byte{0}; });
}

// Recovery of a last segment found a bad record at `bad` and a valid one at
// `valid` > bad. Returns where a never-written page starts between them:
// the first offset x >= bad such that [x, end of x's page) is all zeros and
// that page ends at or before `valid`. 0 if there is none. A never-written
// page reads as zeros from the synced data on (`bad` is past all of it); a
// page the valid record starts in was written, so only earlier pages count.
std::uint64_t unwritten_page(const std::byte* b, std::uint64_t bad, std::uint64_t valid) {
  for (std::uint64_t page = bad / kPageBytes * kPageBytes; page + kPageBytes <= valid; page += kPageBytes) {
    const std::uint64_t from = std::max(bad, page);
    if (all_zero(b + from, page + kPageBytes - from)) return from;
  }
  return 0;
}

// The offsets of a segment's records, 4 bytes each: open() refuses options
// that would let a segment reach 4 GiB. Stored in blocks of kBlock entries
// rather than one vector so that growing never copies the whole index (a
// stall in append, and twice the memory for a moment) and the slack is at
// most one block per segment, not up to the vector's doubling.
class OffsetIndex {
 public:
  static constexpr std::size_t kBlockBits = 12;  // 4096 entries, 16 KiB
  static constexpr std::size_t kBlock = std::size_t{1} << kBlockBits;
  static constexpr std::size_t kMask = kBlock - 1;

  OffsetIndex() = default;
  OffsetIndex(OffsetIndex&& o) noexcept
      : blocks_(std::move(o.blocks_)), size_(std::exchange(o.size_, 0)), cap_(std::exchange(o.cap_, 0)) {}
  OffsetIndex& operator=(OffsetIndex&& o) noexcept {
    blocks_ = std::move(o.blocks_);
    size_ = std::exchange(o.size_, 0);
    cap_ = std::exchange(o.cap_, 0);
    return *this;
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::uint32_t operator[](std::size_t i) const { return blocks_[i >> kBlockBits][i & kMask]; }

  void push_back(std::uint32_t off) {
    if (size_ == cap_) grow();
    blocks_[size_ >> kBlockBits][size_ & kMask] = off;
    ++size_;
  }
  // Keeps the first n offsets.
  void truncate(std::size_t n) {
    if (n >= size_) return;
    const std::size_t blocks = (n + kMask) >> kBlockBits;
    if (blocks < blocks_.size()) {
      blocks_.resize(blocks);
      cap_ = blocks * kBlock;  // every block but the last is full-sized
    }
    size_ = n;
  }
  // For a segment that is sealed: drops the last block's slack.
  void shrink_to_fit() {
    if (cap_ > size_) resize_last(size_ - ((blocks_.size() - 1) << kBlockBits));
    blocks_.shrink_to_fit();
  }
  std::size_t capacity_bytes() const { return blocks_.capacity() * sizeof(blocks_[0]) + cap_ * sizeof(std::uint32_t); }

 private:
  // Only the last block may be smaller than kBlock.
  std::size_t last_cap() const { return cap_ - ((blocks_.size() - 1) << kBlockBits); }
  void resize_last(std::size_t n) {
    const std::size_t used = size_ - ((blocks_.size() - 1) << kBlockBits);
    cap_ -= last_cap();
    if (n == 0) {
      blocks_.pop_back();
      return;
    }
    auto b = std::make_unique_for_overwrite<std::uint32_t[]>(n);
    std::copy_n(blocks_.back().get(), std::min(used, n), b.get());
    blocks_.back() = std::move(b);
    cap_ += n;
  }
  // A last block below kBlock (a segment's first, or one trimmed by
  // shrink_to_fit and grown again after a truncation) doubles up to kBlock,
  // so a segment of a few entries (tiny segment_size_bytes_max) does not pay
  // for a whole block; later blocks are allocated whole.
  void grow() {
    if (!blocks_.empty() && last_cap() < kBlock) {
      resize_last(std::min(kBlock, 2 * last_cap()));
      return;
    }
    const std::size_t n = blocks_.empty() ? 16 : kBlock;
    blocks_.push_back(std::make_unique_for_overwrite<std::uint32_t[]>(n));
    cap_ += n;
  }

  std::vector<std::unique_ptr<std::uint32_t[]>> blocks_;
  std::size_t size_ = 0;
  std::size_t cap_ = 0;  // slots allocated across blocks_
};

struct Segment {
  std::uint64_t first_index = 0;
  std::uint64_t prev_term = 0;
  std::string path;
  std::shared_ptr<File> file;
  std::uint64_t end = 0;   // bytes of valid header + records
  std::uint64_t allocated = 0;  // file size reserved by preallocate() (>= end when set)
  std::uint64_t writeback_from = 0;  // start of the range not yet handed to writeback
  std::size_t count = 0;   // entries in the segment
  // offsets[i]: the record of index first_index + i, while `loaded`. The
  // last segment's are always loaded; a sealed segment's are dropped when
  // it is not among the kLoadedSealed most recently used (Impl::evict) and
  // rebuilt from the file when it is read again (Impl::ensure_loaded), so
  // the index of a long log does not stay in memory (4 bytes per entry).
  OffsetIndex offsets;
  bool loaded = true;
  std::uint64_t used = 0;  // Impl::tick at the last use of offsets

  std::uint64_t last_index() const { return first_index + count - 1; }
  std::uint64_t record_end(std::size_t i) const { return i + 1 < count ? offsets[i + 1] : end; }
};

// Sealed segments whose offsets stay in memory (besides the last segment):
// about 1 MiB each for full 64 MiB segments of 256-byte entries.
constexpr std::size_t kLoadedSealed = 4;

// Entries [first, next run's first) have `term`. Terms change only with
// elections, so a few runs describe millions of entries.
struct TermRun {
  std::uint64_t first;
  std::uint64_t term;
};

}  // namespace

struct LogStore::Impl {
  Filesystem* fs = nullptr;
  std::string dir;
  LogStoreOptions opts;

  // Owned by the Log's thread (append/read/truncate/compact/reset); the sync
  // thread never looks at them.
  std::vector<Segment> segs;  // never empty once open
  // The terms of entries [first_index, last_index], for the whole log rather
  // than per segment: term_at then needs no segment lookup. Empty iff the
  // log is; otherwise runs.front().first == first_index, and both fields
  // strictly increase.
  std::vector<TermRun> runs;
  // append's batch, reused: the bytes staged for the current segment are
  // `pieces` in order, each either a range of `buf` or a caller's data.
  struct Piece {
    const std::byte* ext;  // nullptr: bytes [off, off + len) of buf
    std::size_t off, len;
  };
  std::string buf;
  std::vector<Piece> pieces;
  std::vector<std::span<const std::byte>> iov;
  std::uint64_t staged = 0;

  void stage_copy(const void* p, std::size_t n) {
    if (!pieces.empty() && !pieces.back().ext)
      pieces.back().len += n;
    else
      pieces.push_back(Piece{nullptr, buf.size(), n});
    buf.append(static_cast<const char*>(p), n);
    staged += n;
  }
  void stage_ref(const void* p, std::size_t n) {
    pieces.push_back(Piece{static_cast<const std::byte*>(p), 0, n});
    staged += n;
  }
  void clear_stage() {
    buf.clear();
    pieces.clear();
    staged = 0;
  }

  // Shared with sync(), guarded by mu.
  mutable std::mutex mu;
  std::condition_variable cv;
  // True while one thread runs a round of syncs, or truncate/reset runs;
  // others wait on cv. Keeps durable consistent with what was truncated.
  bool busy = false;
  bool failed = false;           // fail-stop: never cleared
  bool closed = false;           // close(): sync(), run_deferred() and reclaim() touch no file again
  std::uint64_t written = 0;     // last index handed to the OS
  std::uint64_t durable = 0;     // last index known durable; <= written
  std::vector<std::shared_ptr<File>> dirty;  // written since the last sync, oldest first
  bool dir_dirty = false;        // a segment was created since the last directory fsync
  // Segments roll() sealed that are not yet known durable, oldest first, each
  // with its successor, which keeps its pending name until then (WRITING).
  struct Seal {
    std::shared_ptr<File> sealed;
    std::string from, to;  // the successor's pending and final paths
    std::uint64_t trim_to;  // cut the sealed file here first (its preallocated tail), or UINT64_MAX
  };
  std::vector<Seal> seals;
  // Calls append() leaves to the storage thread, in the order asked
  // (PREALLOCATION): File::preallocate(a) when `reserve`, else
  // File::start_writeback(a, b). Neither changes what the log holds, only
  // how fast later writes and syncs are, and both can wait for the disk.
  struct Hint {
    std::shared_ptr<File> file;
    bool reserve;
    std::uint64_t a, b;
  };
  std::vector<Hint> hints;
  // Files of segments compact() dropped from the log that reclaim() has not
  // deleted yet, oldest first. `sync_first`: set on the newest of them when
  // compact() left only the last segment, whose header must be durable
  // before this file, its predecessor, is deleted (compact()).
  struct Doomed {
    std::string path;  // final name; reclaim() runs the seals first
    std::shared_ptr<File> sync_first;
  };
  std::deque<Doomed> doomed;

  void warn(const std::string& msg) const {
    if (opts.warn) opts.warn(msg);
  }
  std::string path_of(const std::string& name) const { return dir + "/" + name; }

  bool is_failed() const {
    std::lock_guard lk(mu);
    return failed;
  }
  // Records a fatal error and passes it on.
  std::error_code fail(std::error_code e) {
    std::lock_guard lk(mu);
    failed = true;
    return e;
  }

  // Waits for any round of syncs to finish and keeps others out until the
  // returned guard ends: truncate and reset change what "durable" means.
  struct Exclusive {
    Impl* impl;
    ~Exclusive() {
      std::lock_guard lk(impl->mu);
      impl->busy = false;
      impl->cv.notify_all();
    }
  };
  Exclusive exclusive() {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return !busy; });
    busy = true;
    return Exclusive{this};
  }

  // Starts a round (of sync(), run_deferred() or reclaim()): waits, with lk
  // holding mu, until no round runs and claims `busy`. Returns false instead
  // when the caller should return at once: nothing to do (`idle()`), or an
  // error (the store failed or was closed).
  template <class Idle>
  result<bool> claim_round(std::unique_lock<std::mutex>& lk, Idle idle) {
    for (;;) {
      if (failed) return errc::store_failed;
      if (closed) return errc::closed;
      if (idle()) return false;
      if (!busy) break;
      cv.wait(lk);
    }
    busy = true;
    return true;
  }
  // Ends the round claim_round() started, lk held again: a failure stops
  // the store.
  std::error_code end_round(std::error_code err) {
    busy = false;
    if (err) failed = true;
    cv.notify_all();
    return err;
  }

  result<void> recover();
  // Decodes the segment header of the file at `path`: false if the file is
  // shorter than a header or the header is invalid.
  result<bool> read_seg_header(const std::string& path, std::uint64_t& first, std::uint64_t& prev_term) {
    auto f = fs->open(path, OpenFlags{});
    if (!f) return result<bool>(boost::system::in_place_error, f.error());
    std::array<std::byte, kSegHeaderSize> h{};
    auto n = (*f)->read_at(0, h);
    if (!n) return result<bool>(boost::system::in_place_error, n.error());
    return *n == h.size() && decode_seg_header(h.data(), first, prev_term);
  }
  result<void> adopt_pending(std::vector<std::pair<std::uint64_t, std::string>> pending, std::vector<std::byte>& data);
  result<void> finish_reset(const std::vector<std::string>& names);
  // Makes each sealed segment durable, then gives its successor its final
  // name and makes that durable, in order. Only while holding `busy`.
  std::error_code run_seals(const std::vector<Seal>& v);
  // Takes the waiting hints and seals (under mu), for a round holding `busy`.
  void take_deferred(std::vector<Hint>& h, std::vector<Seal>& v) {
    h = std::exchange(hints, {});
    v = std::exchange(seals, {});
  }
  // Runs them; the caller runs `v`, the seals of the same round, next. A
  // reservation for a file `v` seals is skipped: the seal's trim would take
  // it back (a reservation run in an earlier round it does take back).
  // `writeback`: false drops the writeback hints, for a round that
  // fdatasyncs those files anyway.
  static void run_hints(const std::vector<Hint>& h, bool writeback, const std::vector<Seal>& v) {
    for (const auto& x : h) {
      const bool sealed_now = std::any_of(v.begin(), v.end(), [&](const Seal& s) { return s.sealed == x.file; });
      if (x.reserve && !sealed_now)
        x.file->preallocate(x.a);
      else if (!x.reserve && writeback)
        x.file->start_writeback(x.a, x.b);
    }
  }
  // run_hints(), then run_seals(): what take_deferred() took.
  std::error_code run_taken(const std::vector<Hint>& h, const std::vector<Seal>& v, bool writeback) {
    run_hints(h, writeback, v);
    return run_seals(v);
  }
  // run_taken() of everything waiting, for the holder of exclusive().
  std::error_code finish_seals() {
    std::vector<Hint> h;
    std::vector<Seal> v;
    {
      std::lock_guard lk(mu);
      take_deferred(h, v);
    }
    return run_taken(h, v, false);
  }
  // Where the segment whose final name is `path` is now: its pending name
  // while its seal waits.
  std::string current_path(const std::string& path) const {
    std::lock_guard lk(mu);
    for (const auto& x : seals)
      if (x.to == path) return x.from;
    return path;
  }
  result<void> load_segment(std::size_t i, bool last, std::vector<std::byte>& data);
  // The new last segment; `pending`: created under its pending name.
  result<void> create_segment(std::uint64_t first, std::uint64_t prev_term, bool pending = false);
  result<void> flush(Segment& seg, std::size_t entries_before);
  result<void> roll();
  std::size_t segment_of(std::uint64_t index) const;
  // Segment i's offsets, rebuilt from its file if they were dropped.
  result<void> ensure_loaded(std::size_t i);
  // Drops the offsets of sealed segments beyond the kLoadedSealed most
  // recently used.
  void evict();
  std::uint64_t tick = 0;

  std::uint64_t last_term() const { return runs.empty() ? segs.front().prev_term : runs.back().term; }
  void add_term(std::uint64_t index, std::uint64_t term) {
    if (runs.empty() || runs.back().term != term) runs.push_back(TermRun{index, term});
  }
  // The run holding `index` (in [first_index, last_index]).
  std::size_t run_of(std::uint64_t index) const {
    // Most lookups are of recent entries: try the last run first.
    if (index >= runs.back().first) return runs.size() - 1;
    auto it = std::upper_bound(runs.begin(), runs.end(), index,
                               [](std::uint64_t i, const TermRun& r) { return i < r.first; });
    return static_cast<std::size_t>(it - runs.begin() - 1);
  }
  std::uint64_t term_of(std::uint64_t index) const { return runs[run_of(index)].term; }
  // Forgets the terms of entries after `last`.
  void trim_runs(std::uint64_t last) {
    while (!runs.empty() && runs.back().first > last) runs.pop_back();
  }
};

// ---------------------------------------------------------------- recovery

result<void> LogStore::Impl::finish_reset(const std::vector<std::string>& names) {
  const std::string tmp = path_of(kResetTmp);
  std::uint64_t first = 0, prev_term = 0;
  auto valid = read_seg_header(tmp, first, prev_term);
  if (!valid) return valid.error();
  if (!*valid) {
    // reset() fsyncs reset.tmp before fsyncing the directory that makes it
    // visible after a crash, so an invalid one never decided anything.
    warn(fmt::format("removing incomplete {}", tmp));
    if (auto r = fs->unlink(tmp); !r) return r.error();
    return fs->sync_dir(dir);
  }
  warn(fmt::format("finishing interrupted reset to index {} (term {})", first - 1, prev_term));
  for (const auto& name : names) {
    std::uint64_t ignored;
    if (parse_seg_name(name, ignored) || parse_pending_name(name, ignored))
      if (auto r = fs->unlink(path_of(name)); !r) return r.error();
  }
  if (auto r = fs->sync_dir(dir); !r) return r.error();
  if (auto r = fs->rename(tmp, path_of(seg_name(first))); !r) return r.error();
  return fs->sync_dir(dir);
}

result<void> LogStore::Impl::adopt_pending(std::vector<std::pair<std::uint64_t, std::string>> pending,
                                           std::vector<std::byte>& data) {
  std::size_t k = 0;
  for (; k < pending.size() && !segs.empty(); ++k) {
    const auto& [first, name] = pending[k];
    // It continues the log only if its predecessor holds every entry before
    // it: nothing was cut from it as a torn tail above. (A predecessor left
    // with no entry at all has the same first index, and its final name.)
    if (first != segs.back().last_index() + 1 || first == segs.back().first_index) break;
    const std::string from = path_of(name);
    std::uint64_t hf = 0, hterm = 0;
    auto valid = read_seg_header(from, hf, hterm);
    if (!valid) return valid.error();
    if (!*valid || hf != first || hterm != last_term()) break;
    // Its records are checked under the pending name, by the rules for a
    // last segment (it holds nothing ever synced, like a last segment's
    // tail); anything those rules call corruption is dropped with it.
    Segment s;
    s.first_index = first;
    s.path = from;
    segs.push_back(std::move(s));
    if (auto r = load_segment(segs.size() - 1, true, data); !r) {
      if (r.error() != errc::log_corrupt) return r.error();
      segs.pop_back();
      trim_runs(segs.back().last_index());
      break;
    }
    // The predecessor becomes a sealed segment: its records only, durable,
    // before its successor's final name can be.
    Segment& prev = segs[segs.size() - 2];
    auto size = prev.file->size();
    if (!size) return size.error();
    if (*size > prev.end)
      if (auto r = prev.file->truncate(prev.end); !r) return r.error();
    if (auto r = prev.file->datasync(); !r) return r.error();
    const std::string to = path_of(seg_name(first));
    warn(fmt::format("finishing the seal of {} interrupted by a crash: {} becomes {}", prev.path, from, to));
    if (auto r = fs->rename(from, to); !r) return r.error();
    if (auto r = fs->sync_dir(dir); !r) return r.error();
    segs.back().path = to;
  }
  // The rest never held an entry sync() confirmed: a segment is pending only
  // until its predecessor is durable, and sync() gives it its final name
  // before it reports anything in it.
  if (k == pending.size()) return {};
  for (std::size_t i = k; i < pending.size(); ++i) {
    warn(fmt::format("removing {}: it does not continue the log (its predecessor lost its end, or it was "
                     "damaged, in a crash; it never held an entry confirmed durable)",
                     path_of(pending[i].second)));
    if (auto r = fs->unlink(path_of(pending[i].second)); !r) return r.error();
  }
  return fs->sync_dir(dir);
}

result<void> LogStore::Impl::load_segment(std::size_t i, bool last, std::vector<std::byte>& data) {
  Segment& s = segs[i];
  auto f = fs->open(s.path, OpenFlags{});
  if (!f) return f.error();
  s.file = std::move(*f);
  auto size = s.file->size();
  if (!size) return size.error();
  // Offsets are 4 bytes; open() keeps this store's own segments far below.
  if (*size > UINT32_MAX) {
    warn(fmt::format("log corrupt: {} is {} bytes, more than the 4 GiB a segment may hold", s.path, *size));
    return errc::log_corrupt;
  }
  if (data.size() < *size) data.resize(*size);
  auto got = s.file->read_at(0, std::span(data.data(), *size));
  if (!got) return got.error();
  if (*got != *size) return errc::io_error;
  const std::byte* b = data.data();
  const std::uint64_t n = *size;

  std::uint64_t first = 0, prev_term = 0;
  // Indexes start at 1 (an empty log's prev_index() is 0): a header naming
  // index 0 was not written by this store.
  if (n < kSegHeaderSize || !decode_seg_header(b, first, prev_term) || first != s.first_index || first == 0) {
    warn(fmt::format("log corrupt: bad segment header in {} at offset 0 ({} bytes)", s.path, n));
    return errc::log_corrupt;
  }
  s.prev_term = prev_term;
  if (i > 0) {
    // runs hold segments [0, i) so far.
    const Segment& p = segs[i - 1];
    if (p.last_index() + 1 != first || last_term() != prev_term) {
      warn(fmt::format("log corrupt: {} starts at index {} (prev term {}) but {} ends at index {} (term {})", s.path,
                       first, prev_term, p.path, p.last_index(), last_term()));
      return errc::log_corrupt;
    }
  }

  const std::uint64_t max_len = std::min<std::uint64_t>(opts.entry_size_bytes_max, UINT32_MAX);
  std::uint64_t off = kSegHeaderSize;
  std::uint64_t next_index = first, min_term = prev_term;
  s.offsets = {};
  while (off < n) {
    Record r;
    if (parse_record(b + off, n - off, max_len, r)) {
      // Index 0 can only be next_index wrapped past 2^64-1.
      if (r.index != next_index || r.index == 0 || r.term < min_term) {
        warn(fmt::format("log corrupt: {} at offset {}: entry index {} term {} where index {} (term >= {}) belongs",
                         s.path, off, r.index, r.term, next_index, min_term));
        return errc::log_corrupt;
      }
      s.offsets.push_back(static_cast<std::uint32_t>(off));
      add_term(r.index, r.term);
      off += kRecHeaderSize + r.length;
      ++next_index;
      min_term = r.term;
      continue;
    }
    // No record here. Zeros up to the end of the file are space never
    // written: preallocated, or a crash before data reached it. They are cut
    // (the next append preallocates again). A sealed segment was trimmed to
    // its records before it was sealed; should that trim not have reached
    // the disk, its zeros hold nothing either.
    if (all_zero(b + off, n - off)) {
      // A sealed segment's are cut once the whole log has loaded (recover):
      // an open() that fails changes nothing.
      if (last)
        if (auto t = s.file->truncate(off); !t) return t.error();
      break;
    }
    // A bad record. It is a torn tail if nothing valid follows it; look for
    // a valid record that continues the log at every later offset. The
    // index check makes the CRC (the expensive part) run almost never.
    std::uint64_t valid_at = 0;
    for (std::uint64_t p = off + 1; p + kRecHeaderSize <= n && valid_at == 0; ++p) {
      const std::uint64_t idx = detail::get_be64(b + p + 9);
      if (idx < next_index || idx - next_index > (n - off) / kRecHeaderSize) continue;
      Record q;
      if (parse_record(b + p, n - p, max_len, q)) valid_at = p;
    }
    // It is also one if a page between it and the valid records reads as
    // never written (zeros from the bad record or the page start to the
    // page end): the kernel wrote the unsynced pages back out of order
    // before a crash. Nothing from that page on was synced (a datasync
    // writes every dirty page before it returns), so it is all dropped.
    const std::uint64_t hole = valid_at == 0 ? 0 : unwritten_page(b, off, valid_at);
    if (!last || (valid_at != 0 && hole == 0)) {
      warn(fmt::format("log corrupt: bad record in {} at offset {}{}", s.path, off,
                       valid_at != 0 ? " followed by valid records" : " in a segment that is not the last"));
      return errc::log_corrupt;
    }
    if (valid_at == 0)
      warn(fmt::format("truncating torn tail of {} at offset {} ({} bytes dropped)", s.path, off, n - off));
    else
      warn(fmt::format("truncating torn tail of {} at offset {} ({} bytes dropped): the page at offset {} was never "
                       "written but valid records follow at offset {} (unsynced writes reached the disk out of "
                       "order before a crash)",
                       s.path, off, n - off, hole, valid_at));
    if (auto t = s.file->truncate(off); !t) return t.error();
    if (auto t = s.file->datasync(); !t) return t.error();
    break;
  }
  s.end = off;
  s.count = s.offsets.size();
  s.loaded = true;
  s.used = ++tick;
  if (!last) s.offsets.shrink_to_fit();
  return {};
}

result<void> LogStore::Impl::ensure_loaded(std::size_t i) {
  Segment& s = segs[i];
  s.used = ++tick;
  if (s.loaded) return {};
  // The records were checked at open (or written by us since). Only their
  // headers are needed here, read in pieces (no copy of a whole segment in
  // memory); each header must still name the index expected at its place.
  // read() checks every record it returns, CRC included.
  constexpr std::uint64_t kPiece = 1u << 20;
  std::vector<std::byte> buf;
  std::uint64_t buf_at = 0;  // file offset of buf[0]
  OffsetIndex offsets;
  std::uint64_t off = kSegHeaderSize;
  for (std::size_t k = 0; k < s.count; ++k) {
    if (off + kRecHeaderSize > s.end) break;  // reported below
    if (off < buf_at || off + kRecHeaderSize > buf_at + buf.size()) {
      buf.resize(std::min(kPiece, s.end - off));
      auto got = s.file->read_at(off, std::span(buf.data(), buf.size()));
      if (!got) return got.error();
      if (*got != buf.size()) break;
      buf_at = off;
    }
    const std::byte* p = buf.data() + (off - buf_at);
    const std::uint64_t len = detail::get_be32(p + 4);
    if (detail::get_be64(p + 9) != s.first_index + k || len > s.end - off - kRecHeaderSize) break;
    offsets.push_back(static_cast<std::uint32_t>(off));
    off += kRecHeaderSize + len;
  }
  if (offsets.size() != s.count || off != s.end) {
    warn(fmt::format("log corrupt: {} no longer holds the {} records it held at open (record {} at offset {})",
                     s.path, s.count, offsets.size(), off));
    return errc::log_corrupt;
  }
  offsets.shrink_to_fit();
  s.offsets = std::move(offsets);
  s.loaded = true;
  evict();
  return {};
}

void LogStore::Impl::evict() {
  if (segs.size() <= kLoadedSealed + 1) return;
  std::vector<std::uint64_t> ticks;
  for (std::size_t i = 0; i + 1 < segs.size(); ++i)
    if (segs[i].loaded) ticks.push_back(segs[i].used);
  if (ticks.size() <= kLoadedSealed) return;
  std::nth_element(ticks.begin(), ticks.end() - kLoadedSealed, ticks.end());
  const std::uint64_t keep_from = *(ticks.end() - kLoadedSealed);  // the kLoadedSealed newest stay
  for (std::size_t i = 0; i + 1 < segs.size(); ++i) {
    Segment& g = segs[i];
    if (g.loaded && g.used < keep_from) {
      g.offsets = {};
      g.loaded = false;
    }
  }
}

result<void> LogStore::Impl::create_segment(std::uint64_t first, std::uint64_t prev_term, bool pending) {
  Segment s;
  s.first_index = first;
  s.prev_term = prev_term;
  s.path = path_of(seg_name(first));
  auto f = fs->open(pending ? path_of(pending_name(first)) : s.path, OpenFlags{.create = true, .truncate = true});
  if (!f) return f.error();
  s.file = std::move(*f);
  const auto h = encode_seg_header(first, prev_term);
  if (auto r = s.file->append(h); !r) return r.error();
  s.end = kSegHeaderSize;
  s.used = ++tick;
  {
    std::lock_guard lk(mu);
    dirty.push_back(s.file);
    dir_dirty = true;
  }
  segs.push_back(std::move(s));
  return {};
}

result<void> LogStore::Impl::recover() {
  if (auto r = fs->mkdir(dir); !r) return r.error();
  auto names = fs->list(dir);
  if (!names) return names.error();
  if (std::find(names->begin(), names->end(), kResetTmp) != names->end()) {
    if (auto r = finish_reset(*names); !r) return r.error();
    names = fs->list(dir);
    if (!names) return names.error();
  }
  std::vector<std::pair<std::uint64_t, std::string>> pending;
  for (const auto& name : *names) {
    std::uint64_t first;
    if (parse_pending_name(name, first)) pending.emplace_back(first, name);
    if (!parse_seg_name(name, first)) continue;
    Segment s;
    s.first_index = first;
    s.path = path_of(name);
    segs.push_back(std::move(s));
  }
  std::sort(pending.begin(), pending.end());
  // A last segment shorter than its header, or whose header reads as zeros
  // (its page never written, though the file grew), is a torn creation:
  // its predecessor was synced before it got its name, and nothing in it
  // was synced (a datasync would have written the header's page too). For
  // the very first segment of a log it can only be the one open() creates
  // for index 1.
  if (!segs.empty()) {
    Segment& s = segs.back();
    auto f = fs->open(s.path, OpenFlags{});
    if (!f) return f.error();
    auto size = (*f)->size();
    if (!size) return size.error();
    std::array<std::byte, kSegHeaderSize> head{};
    bool zero_head = false;
    if (*size >= kSegHeaderSize) {
      auto got = (*f)->read_at(0, head);
      if (!got) return got.error();
      zero_head = *got == head.size() && all_zero(head.data(), head.size());
    }
    if ((*size < kSegHeaderSize || zero_head) && (segs.size() > 1 || s.first_index == 1)) {
      warn(fmt::format("removing torn segment {} ({} bytes, {})", s.path, *size,
                       zero_head ? "its header never written" : "shorter than its header"));
      f->reset();
      if (auto r = fs->unlink(s.path); !r) return r.error();
      if (auto r = fs->sync_dir(dir); !r) return r.error();
      segs.pop_back();
    }
  }
  std::vector<std::byte> data;
  if (segs.empty()) {
    // Without a segment to continue, a pending one is removed.
    if (auto r = adopt_pending(std::move(pending), data); !r) return r.error();
    if (auto r = create_segment(1, 0); !r) return r.error();
  } else {
    for (std::size_t i = 0; i < segs.size(); ++i)
      if (auto r = load_segment(i, i + 1 == segs.size(), data); !r) return r.error();
    if (auto r = adopt_pending(std::move(pending), data); !r) return r.error();
    for (std::size_t i = 0; i + 1 < segs.size(); ++i) {  // zeros after a sealed segment's records
      auto size = segs[i].file->size();
      if (!size) return size.error();
      if (*size > segs[i].end)
        if (auto r = segs[i].file->truncate(segs[i].end); !r) return r.error();
    }
    evict();
  }
  if (auto r = segs.back().file->datasync(); !r) return r.error();
  if (auto r = fs->sync_dir(dir); !r) return r.error();
  std::lock_guard lk(mu);
  dirty.clear();
  dir_dirty = false;
  written = durable = segs.back().last_index();
  return {};
}

// ----------------------------------------------------------------- writing

result<void> LogStore::Impl::flush(Segment& seg, std::size_t entries_before) {
  if (staged == 0) return {};
  iov.clear();
  for (const auto& p : pieces)
    iov.emplace_back(p.ext ? p.ext : reinterpret_cast<const std::byte*>(buf.data()) + p.off, p.len);
  if (auto r = seg.file->append_gather(iov); !r) {
    seg.offsets.truncate(entries_before);
    seg.count = entries_before;
    trim_runs(seg.last_index());
    clear_stage();
    return fail(r.error());
  }
  seg.end += staged;
  clear_stage();
  std::lock_guard lk(mu);
  // Both calls are left to the storage thread (PREALLOCATION): on a busy
  // disk a fallocate took up to 34 ms and a sync_file_range up to 9 ms
  // here, on the Log's strand (perf trace, session 14).
  if (opts.preallocate && seg.end + kPreallocStep / 2 > seg.allocated) {
    seg.allocated = std::max(seg.end, std::min(seg.end + kPreallocStep, opts.segment_size_bytes_max));
    hints.push_back(Hint{seg.file, true, seg.allocated, 0});
  }
  // Without this, sealing a segment or a sync after a long unsynced stretch
  // (sync=false) found up to a whole segment of dirty pages to write at
  // once: a stall of 100+ ms every 64 MiB.
  if (seg.end >= seg.writeback_from + kWritebackChunk) {
    hints.push_back(Hint{seg.file, false, seg.writeback_from, seg.end - seg.writeback_from});
    seg.writeback_from = seg.end;
  }
  if (dirty.empty() || dirty.back() != seg.file) dirty.push_back(seg.file);
  written = seg.last_index();
  return {};
}

std::error_code LogStore::Impl::run_seals(const std::vector<Seal>& v) {
  for (const auto& x : v) {
    if (x.trim_to != UINT64_MAX)
      if (auto r = x.sealed->truncate(x.trim_to); !r) return r.error();
    if (auto r = x.sealed->datasync(); !r) return r.error();
    // The directory is synced after each rename so that the final names
    // become durable in index order whatever the filesystem.
    if (auto r = fs->rename(x.from, x.to); !r) return r.error();
    if (auto r = fs->sync_dir(dir); !r) return r.error();
  }
  return {};
}

result<void> LogStore::Impl::roll() {
  Segment& old = segs.back();
  // Its seal cuts the file at its last record (the preallocated zeros go;
  // the datasync after it makes the new size durable): recovery relies on
  // every segment but the last being complete on disk and ending there.
  const std::uint64_t trim_to = old.allocated > old.end ? old.end : UINT64_MAX;
  old.allocated = 0;
  old.offsets.shrink_to_fit();  // sealed: never grows again (unless truncated back to)
  old.used = ++tick;            // just written: among the most recently used
  // Its fdatasync is left to the next sync() or seal() (the storage thread):
  // until then its successor keeps its pending name (WRITING).
  auto sealed = old.file;
  const std::uint64_t next = old.last_index() + 1;
  if (auto r = create_segment(next, last_term(), /*pending=*/true); !r) return fail(r.error());
  {
    std::lock_guard lk(mu);
    seals.push_back(Seal{std::move(sealed), path_of(pending_name(next)), path_of(seg_name(next)), trim_to});
  }
  evict();
  return {};
}

std::size_t LogStore::Impl::segment_of(std::uint64_t index) const {
  auto it = std::upper_bound(segs.begin(), segs.end(), index,
                             [](std::uint64_t i, const Segment& s) { return i < s.first_index; });
  RAFT_ASSERT(it != segs.begin(), "index before the first segment");
  return static_cast<std::size_t>(it - segs.begin() - 1);
}

// ------------------------------------------------------------------ public

LogStore::LogStore() : impl_(std::make_unique<Impl>()) {}
LogStore::~LogStore() = default;

result<std::unique_ptr<LogStore>> LogStore::open(Filesystem& fs, std::string dir, LogStoreOptions opts) {
  std::unique_ptr<LogStore> s(new LogStore());
  s->impl_->fs = &fs;
  s->impl_->dir = std::move(dir);
  s->impl_->opts = std::move(opts);
  // A record starts below segment_size_bytes_max, or right after the header
  // when it is a segment's first (one entry may exceed the limit), so every
  // offset fits the index's 32 bits when this sum does.
  const LogStoreOptions& o = s->impl_->opts;
  if (o.segment_size_bytes_max > UINT32_MAX || o.entry_size_bytes_max > UINT32_MAX ||
      o.segment_size_bytes_max + o.entry_size_bytes_max + kSegHeaderSize + kRecHeaderSize > UINT32_MAX) {
    s->impl_->warn(fmt::format("log store options rejected: segment_size_bytes_max ({}) + entry_size_bytes_max ({}) "
                               "+ {} bytes of headers must not exceed {} (segment offsets are 32-bit)",
                               o.segment_size_bytes_max, o.entry_size_bytes_max, kSegHeaderSize + kRecHeaderSize,
                               UINT32_MAX));
    return errc::invalid_argument;
  }
  if (auto r = s->impl_->recover(); !r) return r.error();
  return s;
}

std::uint64_t LogStore::prev_index() const { return impl_->segs.front().first_index - 1; }
std::uint64_t LogStore::prev_term() const { return impl_->segs.front().prev_term; }
std::uint64_t LogStore::first_index() const { return impl_->segs.front().first_index; }
std::uint64_t LogStore::last_index() const { return impl_->segs.back().last_index(); }
std::uint64_t LogStore::last_term() const { return impl_->last_term(); }

std::uint64_t LogStore::durable_index() const {
  std::lock_guard lk(impl_->mu);
  return impl_->durable;
}

result<std::uint64_t> LogStore::term_at(std::uint64_t index) const {
  if (index == prev_index()) return prev_term();
  if (index < prev_index() || index > last_index()) return errc::invalid_argument;
  return impl_->term_of(index);
}

result<void> LogStore::append(std::span<const LogEntry> entries) {
  Impl& m = *impl_;
  if (m.is_failed()) return errc::store_failed;
  if (entries.empty()) return {};
  std::uint64_t expect = last_index() + 1, term = last_term();
  for (const auto& e : entries) {
    RAFT_ASSERT(e.index == expect, "appended entries must continue the log contiguously");
    RAFT_ASSERT(e.term >= term, "terms in the log never decrease");
    if (e.data.size() > std::min<std::uint64_t>(m.opts.entry_size_bytes_max, UINT32_MAX)) return errc::entry_too_large;
    ++expect;
    term = e.term;
  }
  Segment* seg = &m.segs.back();
  RAFT_ASSERT(seg->loaded, "the last segment's offsets are always loaded");
  std::size_t before = seg->count;
  for (const auto& e : entries) {
    const std::uint64_t rec = kRecHeaderSize + e.data.size();
    if ((seg->count > 0 || m.staged) && seg->end + m.staged + rec > m.opts.segment_size_bytes_max) {
      if (auto r = m.flush(*seg, before); !r) return r;
      if (auto r = m.roll(); !r) return r;
      seg = &m.segs.back();
      before = seg->count;
    }
    const std::uint64_t off = seg->end + m.staged;
    RAFT_ASSERT(off <= UINT32_MAX, "segment offset beyond 4 GiB (open() checks the limits)");
    seg->offsets.push_back(static_cast<std::uint32_t>(off));
    ++seg->count;
    m.add_term(e.index, e.term);
    std::byte h[kRecHeaderSize];
    detail::put_be32(h + 4, static_cast<std::uint32_t>(e.data.size()));
    h[8] = static_cast<std::byte>(e.type);
    detail::put_be64(h + 9, e.index);
    detail::put_be64(h + 17, e.term);
    const std::uint32_t crc = detail::crc32c(detail::crc32c(0, h + 8, 17), e.data.data(), e.data.size());
    detail::put_be32(h, detail::crc_mask(crc));
    m.stage_copy(h, kRecHeaderSize);
    if (e.data.size() >= 1024)
      m.stage_ref(e.data.data(), e.data.size());
    else
      m.stage_copy(e.data.data(), e.data.size());
  }
  return m.flush(*seg, before);
}

result<std::uint64_t> LogStore::sync() {
  Impl& m = *impl_;
  std::unique_lock lk(m.mu);
  const std::uint64_t target = m.written;
  // This caller runs the next round for everyone who arrives meanwhile.
  auto claimed = m.claim_round(lk, [&] { return m.durable >= target && !m.dir_dirty; });
  if (!claimed) return claimed.error();
  if (!*claimed) return m.durable;
  std::vector<Impl::Hint> hints;
  std::vector<Impl::Seal> seals;
  m.take_deferred(hints, seals);
  auto files = std::move(m.dirty);
  m.dirty.clear();
  const bool dir = m.dir_dirty;
  m.dir_dirty = false;
  const std::uint64_t goal = m.written;
  lk.unlock();
  // Seals first: an entry in a pending segment is durable only once the
  // segment has its final name. Writeback hints are moot: every file
  // written is fdatasynced below.
  std::error_code err = m.run_taken(hints, seals, false);
  for (const auto& f : files) {
    if (err) break;
    if (std::any_of(seals.begin(), seals.end(), [&](const Impl::Seal& x) { return x.sealed == f; })) continue;
    if (auto r = f->datasync(); !r) err = r.error();
  }
  // A seal's directory sync came after every creation this round covers.
  if (!err && dir && seals.empty())
    if (auto r = m.fs->sync_dir(m.dir); !r) err = r.error();
  lk.lock();
  if (!err) m.durable = std::max(m.durable, goal);
  if (m.end_round(err)) return err;
  return m.durable;
}

result<void> LogStore::run_deferred() {
  Impl& m = *impl_;
  std::unique_lock lk(m.mu);
  auto claimed = m.claim_round(lk, [&] { return m.seals.empty() && m.hints.empty(); });
  if (!claimed) return claimed.error();
  if (!*claimed) return {};
  std::vector<Impl::Hint> hints;
  std::vector<Impl::Seal> seals;
  m.take_deferred(hints, seals);
  lk.unlock();
  const std::error_code err = m.run_taken(hints, seals, true);
  lk.lock();
  if (m.end_round(err)) return err;
  return {};
}

void LogStore::close() {
  Impl& m = *impl_;
  std::unique_lock lk(m.mu);
  m.cv.wait(lk, [&] { return !m.busy; });
  m.closed = true;
}

bool LogStore::deferred_pending() const {
  std::lock_guard lk(impl_->mu);
  return !impl_->seals.empty() || !impl_->hints.empty();
}

result<LogEntry> LogStore::entry(std::uint64_t index) const {
  auto r = read(index, index, 0);
  if (!r) return r.error();
  return std::move(r->front());
}

result<std::vector<LogEntry>> LogStore::read(std::uint64_t from, std::uint64_t to, std::size_t max_bytes) const {
  // Logically const; the offsets of a sealed segment may be rebuilt (cached).
  Impl& m = *impl_;
  std::vector<LogEntry> out;
  if (from > to) return out;
  if (from < first_index() || to > last_index()) return errc::invalid_argument;
  std::uint64_t bytes = 0;
  std::string chunk;
  std::size_t si = m.segment_of(from);
  // The run of the entry being checked, and where the next one starts.
  std::size_t ri = m.run_of(from);
  std::uint64_t next_run = ri + 1 < m.runs.size() ? m.runs[ri + 1].first : UINT64_MAX;
  std::uint64_t index = from;
  // Counted rather than `index <= to`: after entry 2^64-1 the next index
  // wraps to 0, which would pass that test and run past the last segment.
  std::uint64_t left = to - from + 1;  // from >= first_index() >= 1: no wrap
  while (left > 0) {
    if (auto r = m.ensure_loaded(si); !r) return r.error();
    const Segment& s = m.segs[si];
    // Choose how many entries of this segment to take, then read them with
    // one pread. Each offset is looked up once: record i ends where i + 1
    // starts.
    const std::size_t a = index - s.first_index;
    const std::size_t n = s.count;
    std::size_t b = a;  // one past the last taken
    const std::uint64_t start = a < n ? s.offsets[a] : s.end;
    std::uint64_t end = start;
    bool stop = false;
    while (b < n && b - a < left) {
      const std::uint64_t next = s.record_end(b);
      const std::uint64_t len = next - end - kRecHeaderSize;
      if (!out.empty() || b > a) {
        if (bytes + len > max_bytes) {
          stop = true;
          break;
        }
      }
      bytes += len;
      end = next;
      ++b;
    }
    if (b > a) {
      chunk.resize(end - start);
      auto got = s.file->read_at(start, std::as_writable_bytes(std::span(chunk.data(), chunk.size())));
      if (!got) return got.error();
      if (*got != chunk.size()) return errc::log_corrupt;
      std::uint64_t off = start;
      for (std::size_t i = a; i < b; ++i) {
        const std::uint64_t rec_end = i + 1 < b ? s.offsets[i + 1] : end;
        const auto* p = reinterpret_cast<const std::byte*>(chunk.data() + (off - start));
        if (s.first_index + i >= next_run) {
          while (ri + 1 < m.runs.size() && m.runs[ri + 1].first <= s.first_index + i) ++ri;
          next_run = ri + 1 < m.runs.size() ? m.runs[ri + 1].first : UINT64_MAX;
        }
        Record r;
        // Checked again after reading: the disk may have changed under us.
        if (!parse_record(p, rec_end - off, UINT32_MAX, r) || r.index != s.first_index + i ||
            r.term != m.runs[ri].term) {
          m.warn(fmt::format("log corrupt: record of index {} in {} at offset {} changed since open",
                             s.first_index + i, s.path, off));
          return errc::log_corrupt;
        }
        LogEntry e;
        e.type = static_cast<LogEntryType>(r.type);
        e.index = r.index;
        e.term = r.term;
        e.data.assign(reinterpret_cast<const char*>(p) + kRecHeaderSize, r.length);
        out.push_back(std::move(e));
        off = rec_end;
      }
      index = s.first_index + b;
      left -= b - a;
    }
    if (stop) break;
    ++si;
  }
  return out;
}

result<void> LogStore::truncate_suffix(std::uint64_t index, std::uint64_t commit_index) {
  RAFT_ASSERT(index >= commit_index, "truncate_suffix would remove a committed entry");
  Impl& m = *impl_;
  if (m.is_failed()) return errc::store_failed;
  if (index >= last_index()) return {};
  if (index < prev_index()) return errc::invalid_argument;
  auto guard = m.exclusive();
  // Every segment at its final name, and every sealed one durable, before
  // any is cut (rare: a follower's log conflicting with the leader's).
  if (auto e = m.finish_seals()) return m.fail(e);
  bool dir_dirty;
  {
    std::lock_guard lk(m.mu);
    dir_dirty = m.dir_dirty;
  }
  while (m.segs.size() > 1 && m.segs.back().first_index > index) {
    if (auto r = m.fs->unlink(m.segs.back().path); !r) return m.fail(r.error());
    if (auto r = m.fs->sync_dir(m.dir); !r) return m.fail(r.error());
    m.segs.pop_back();
    m.trim_runs(m.segs.back().last_index());
    dir_dirty = false;
  }
  if (dir_dirty)
    if (auto r = m.fs->sync_dir(m.dir); !r) return m.fail(r.error());
  // The new last segment may be a sealed one whose offsets were dropped.
  if (auto r = m.ensure_loaded(m.segs.size() - 1); !r) return m.fail(r.error());
  Segment& s = m.segs.back();
  const std::size_t keep = index + 1 - s.first_index;
  const std::uint64_t new_end = keep < s.count ? s.offsets[keep] : s.end;
  if (auto r = s.file->truncate(new_end); !r) return m.fail(r.error());
  if (auto r = s.file->datasync(); !r) return m.fail(r.error());
  s.offsets.truncate(keep);
  s.count = std::min(s.count, keep);
  s.end = new_end;
  s.allocated = 0;  // the ftruncate dropped the preallocation; the next append renews it
  s.writeback_from = std::min(s.writeback_from, new_end);  // rewritten bytes get hinted again
  m.trim_runs(index);
  // Every earlier segment was synced when it was sealed, and this one just
  // was, so the whole remaining log is durable.
  std::lock_guard lk(m.mu);
  m.dirty.clear();
  m.dir_dirty = false;
  m.written = m.durable = index;
  return {};
}

result<void> LogStore::compact(std::uint64_t index) {
  Impl& m = *impl_;
  if (m.is_failed()) return errc::store_failed;
  if (m.segs.size() < 2 || m.segs[1].first_index > index) return {};  // no segment to delete
  // The segments leave the log now; their files wait for reclaim() on the
  // storage thread (COMPACTION in the comment at the top).
  std::vector<Impl::Doomed> v;
  while (m.segs.size() > 1 && m.segs[1].first_index <= index) {
    v.push_back(Impl::Doomed{m.segs.front().path, nullptr});
    m.segs.erase(m.segs.begin());
    // Drop the runs before the new first index; the one holding it now
    // starts there. The front may be an empty last segment (recovery cut
    // all its records as a torn tail): then the log is empty.
    const Segment& front = m.segs.front();
    if (front.count == 0) {
      m.runs.clear();
      continue;
    }
    const std::size_t r = m.run_of(front.first_index);
    m.runs.erase(m.runs.begin(), m.runs.begin() + static_cast<std::ptrdiff_t>(r));
    m.runs.front().first = front.first_index;
  }
  // Only the last segment is left: once its predecessor is gone nothing else
  // on disk records its prev_term, so its header must be durable first.
  // (Other segments were fdatasynced by their seal, which reclaim() runs
  // before deleting anything.)
  if (m.segs.size() == 1) v.back().sync_first = m.segs.back().file;
  std::lock_guard lk(m.mu);
  for (auto& d : v) m.doomed.push_back(std::move(d));
  return {};
}

result<void> LogStore::reclaim(std::size_t max_files) {
  Impl& m = *impl_;
  // One file per turn of `busy`, so a sync() round waits for at most one
  // unlink and one directory fsync.
  for (std::size_t n = 0; n < max_files; ++n) {
    std::unique_lock lk(m.mu);
    auto claimed = m.claim_round(lk, [&] { return m.doomed.empty(); });
    if (!claimed) return claimed.error();
    if (!*claimed) return {};
    // Seals first: every segment kept must have its final name (recovery
    // drops a pending segment that does not continue a final one), and the
    // doomed file itself may still have its pending name.
    std::vector<Impl::Hint> hints;
    std::vector<Impl::Seal> seals;
    m.take_deferred(hints, seals);
    const Impl::Doomed d = std::move(m.doomed.front());
    m.doomed.pop_front();
    lk.unlock();
    std::error_code err = m.run_taken(hints, seals, true);
    if (!err && d.sync_first)
      if (auto r = d.sync_first->datasync(); !r) err = r.error();
    // Oldest first, each unlink durable before the next: a crash midway
    // leaves a shorter prefix missing, never a hole.
    if (!err)
      if (auto r = m.fs->unlink(d.path); !r) err = r.error();
    if (!err)
      if (auto r = m.fs->sync_dir(m.dir); !r) err = r.error();
    lk.lock();
    if (m.end_round(err)) return err;
  }
  return {};
}

bool LogStore::reclaim_pending() const {
  std::lock_guard lk(impl_->mu);
  return !impl_->doomed.empty();
}

result<void> LogStore::reset(std::uint64_t index, std::uint64_t term) {
  Impl& m = *impl_;
  if (m.is_failed()) return errc::store_failed;
  auto guard = m.exclusive();
  const std::string tmp = m.path_of(kResetTmp);
  auto f = m.fs->open(tmp, OpenFlags{.create = true, .truncate = true});
  if (!f) return m.fail(f.error());
  std::shared_ptr<File> file = std::move(*f);
  if (auto r = file->append(encode_seg_header(index + 1, term)); !r) return m.fail(r.error());
  if (auto r = file->sync(); !r) return m.fail(r.error());
  if (auto r = m.fs->sync_dir(m.dir); !r) return m.fail(r.error());
  // Decided: from here a crash ends in the reset log (recovery finishes it).
  for (auto it = m.segs.rbegin(); it != m.segs.rend(); ++it)
    if (auto r = m.fs->unlink(m.current_path(it->path)); !r) return m.fail(r.error());
  std::deque<Impl::Doomed> doomed;
  {
    std::lock_guard lk(m.mu);
    doomed.swap(m.doomed);
  }
  for (auto it = doomed.rbegin(); it != doomed.rend(); ++it)
    if (auto r = m.fs->unlink(m.current_path(it->path)); !r) return m.fail(r.error());
  if (auto r = m.fs->sync_dir(m.dir); !r) return m.fail(r.error());
  {
    std::lock_guard lk(m.mu);
    m.seals.clear();
    m.hints.clear();  // for files just deleted
  }
  m.segs.clear();
  m.runs.clear();
  Segment s;
  s.first_index = index + 1;
  s.prev_term = term;
  s.path = m.path_of(seg_name(index + 1));
  s.file = std::move(file);
  s.end = kSegHeaderSize;
  m.segs.push_back(std::move(s));
  if (auto r = m.fs->rename(tmp, m.segs.back().path); !r) return m.fail(r.error());
  if (auto r = m.fs->sync_dir(m.dir); !r) return m.fail(r.error());
  std::lock_guard lk(m.mu);
  m.dirty.clear();
  m.dir_dirty = false;
  m.written = m.durable = index;
  return {};
}

std::uint64_t LogStore::size_bytes() const {
  std::uint64_t n = 0;
  for (const auto& s : impl_->segs) n += s.end;
  return n;
}

std::size_t LogStore::segment_count() const { return impl_->segs.size(); }

std::size_t LogStore::index_bytes() const {
  const Impl& m = *impl_;
  std::size_t n = m.segs.capacity() * sizeof(Segment) + m.runs.capacity() * sizeof(TermRun);
  for (const auto& s : m.segs) n += s.offsets.capacity_bytes() + s.path.capacity();
  return n;
}

}  // namespace raft::storage
