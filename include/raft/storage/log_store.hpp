// The segmented on-disk log (DESIGN 6). The format and recovery rules are
// described in prose at the top of src/storage/log_store.cpp.
//
// Threading: append, read, term_at, truncate_suffix, compact and reset are
// called from one thread at a time (the Log's). sync(), seal() and reclaim()
// may run concurrently with them on another thread (the storage executor);
// concurrent sync() callers share one fsync (group commit).
//
// Failure: a failed write or fsync makes the store fail-stop: every later
// mutating call returns errc::store_failed (DESIGN 6: never retry an fsync).
#pragma once

#include "raft/log_entry.hpp"
#include "raft/storage/filesystem.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace raft::storage {

struct LogStoreOptions {
  // The in-memory index keeps 32-bit offsets into a segment, so open()
  // returns errc::invalid_argument (with a warning saying why) unless
  // segment_size_bytes_max + entry_size_bytes_max + 57 <= 2^32 - 1 (57: the
  // segment and record headers; a segment's first record may pass the limit).
  std::uint64_t segment_size_bytes_max = 64ull << 20;  // roll to a new segment past this
  std::uint64_t entry_size_bytes_max = kDefaultMaxEntryBytes;
  // Keep the last segment's file preallocated up to 4 MiB past its end
  // (File::preallocate, Linux fallocate), so the fdatasync after an append
  // has no change of file size to commit: on ext4 that is a journal commit
  // saved per sync (docs/performance.md, session 6). Sealed segments are
  // trimmed to their records.
  bool preallocate = true;
  // Receives recovery warnings (e.g. "truncated torn tail of X at offset N").
  std::function<void(const std::string&)> warn;
};

class LogStore {
 public:
  // Opens or creates the log in `dir` (created if missing) and rebuilds the
  // in-memory index. errc::log_corrupt (message names file and offset) when
  // recovery finds anything but a torn tail; nothing is deleted then.
  static result<std::unique_ptr<LogStore>> open(Filesystem& fs, std::string dir, LogStoreOptions opts = {});
  ~LogStore();

  // The entry before first_index(): (0, 0) for a log that starts at 1, else
  // what reset() or compaction recorded.
  std::uint64_t prev_index() const;
  std::uint64_t prev_term() const;
  std::uint64_t first_index() const;  // prev_index() + 1
  std::uint64_t last_index() const;   // prev_index() if empty
  std::uint64_t last_term() const;    // prev_term() if empty
  // Highest index made durable by sync().
  std::uint64_t durable_index() const;
  // Term of entry `index` for index in [prev_index(), last_index()];
  // errc::invalid_argument otherwise (term_at(0) == 0).
  result<std::uint64_t> term_at(std::uint64_t index) const;

  // Appends entries whose indexes continue last_index() contiguously
  // (RAFT_ASSERT). Written to the OS, not yet durable: call sync(). Makes no
  // call that waits for the disk but the write itself: a full segment is
  // sealed without an fdatasync, and space reservation and writeback hints
  // are queued too, all for the next sync() or run_deferred() (so a thread
  // that only appends, like the Log's strand, is not held up by a flush when
  // a segment fills, or by a busy filesystem journal).
  result<void> append(std::span<const LogEntry> entries);
  // Makes every entry appended before the call durable (fdatasync of the
  // segments written since the last sync, and the directory when a segment
  // was created). Returns the durable last index. Safe to call from another
  // thread than append() (one thread appends; sync() may run concurrently).
  result<std::uint64_t> sync();
  // For a caller that never calls sync() (LogOptions::sync = false): runs
  // the work append() queued (log_store.cpp, WRITING and PREALLOCATION):
  // makes the segments it sealed durable and gives their successors their
  // final names, so that recovery keeps them; reserves space ahead of the
  // last segment's records; starts writeback of what is behind them. Cheap
  // when deferred_pending() is false. Same threading as sync().
  result<void> run_deferred();
  bool deferred_pending() const;
  // Waits for a sync(), run_deferred() or reclaim() under way, then makes every later one
  // return errc::closed without touching a file: work still queued for a
  // store its owner has given up (the Log after close, which may already
  // have opened the directory again) must not rename the new store's files.
  // Reads keep working.
  void close();

  result<LogEntry> entry(std::uint64_t index) const;
  // Entries [from, to] in order, stopping early once `max_bytes` of data are
  // collected (always at least one entry if from <= to).
  result<std::vector<LogEntry>> read(std::uint64_t from, std::uint64_t to, std::size_t max_bytes) const;

  // Removes every entry after `index`. `commit_index` is the caller's commit
  // index: truncating a committed entry is a bug (RAFT_ASSERT index >= commit).
  result<void> truncate_suffix(std::uint64_t index, std::uint64_t commit_index);
  // Drops whole segments whose entries are all < `index` (never the segment
  // holding last_index()). Afterwards first_index() <= index. Never waits
  // for the disk: the files stay until reclaim() deletes them (until then,
  // and after a crash before it, a reopened store starts at the oldest).
  result<void> compact(std::uint64_t index);
  // Deletes the files of the segments compact() dropped, oldest first and
  // at most `max_files` of them, each deletion durable before the next (so a
  // crash never leaves a hole). For the storage thread; same threading as
  // sync(), whose rounds it lets run between two files. Cheap when
  // reclaim_pending() is false.
  result<void> reclaim(std::size_t max_files = SIZE_MAX);
  bool reclaim_pending() const;
  // Discards every entry and restarts the log after (index, term), e.g. after
  // installing a snapshot that covers more than the log holds. Durable on
  // return.
  result<void> reset(std::uint64_t index, std::uint64_t term);

  // Bytes on disk across all segments.
  std::uint64_t size_bytes() const;
  std::size_t segment_count() const;
  // Heap bytes held by the in-memory index (offsets, term runs, per-segment
  // bookkeeping), counted by capacity; malloc's own overhead is not.
  std::size_t index_bytes() const;

 private:
  LogStore();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace raft::storage
