// An in-memory Filesystem for tests and the simulator that models what a
// crash leaves behind:
// * file data written but not yet fsynced/fdatasynced is lost on crash();
// * the last unsynced write of a file can be torn at any byte on crash()
//   (the cut is drawn from the seed given to the constructor); precisely, a
//   seed-chosen prefix of the unsynced writes survives, the last one cut at
//   a seed-chosen byte (a prefix of zero writes: everything unsynced lost);
// * or (seed-chosen, per file) the unsynced writes reach the disk page by
//   page in no particular order: each 4 KiB page keeps a seed-chosen prefix
//   of the writes to it, so a later page may hold data while an earlier one
//   still reads as it was synced (zeros past the synced data);
// * an unsynced truncate or preallocation may be lost, or survive, even when
//   later writes do the opposite;
// * create, rename and unlink are durable only after sync_dir() of their
//   directory (a crash before that undoes them);
// * a chosen operation can fail with EIO or ENOSPC;
// * every mutating call (append, write_at, sync, datasync, truncate, rename,
//   unlink, sync_dir, create) counts as one "persistence point", so a test can
//   crash before or after each one of a workload.
// Deterministic for a given seed and call sequence. Thread-safe (one mutex).
#pragma once

#include "raft/storage/filesystem.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace raft::storage {

class MemoryFilesystem final : public Filesystem {
 public:
  explicit MemoryFilesystem(std::uint64_t seed = 1);
  ~MemoryFilesystem() override;

  result<std::unique_ptr<File>> open(const std::string& path, OpenFlags flags) override;
  result<void> rename(const std::string& from, const std::string& to) override;
  result<void> unlink(const std::string& path) override;
  result<std::vector<std::string>> list(const std::string& dir) override;
  result<void> mkdir(const std::string& path) override;
  result<void> sync_dir(const std::string& dir) override;
  result<bool> exists(const std::string& path) override;

  // Simulates power loss: every open File handle becomes dead (all calls fail
  // with errc::io_error), unsynced data and undurable directory operations
  // are dropped, and unsynced tails may be torn. The filesystem is usable
  // again at once (as after a reboot).
  void crash();

  // Number of persistence points so far.
  std::uint64_t ops() const;
  // From persistence point number `n` on (counting from 0), every mutating
  // call fails with errc::io_error without effect, as if the machine had
  // stopped there; call crash() afterwards to reboot. nullopt disables.
  void stop_at(std::optional<std::uint64_t> n);
  // The next mutating call whose kind matches fails with `e` (errc::io_error
  // or errc::no_space) without effect. kind: "append", "write", "sync"
  // (fsync and fdatasync), "truncate", "rename", "unlink", "sync_dir", "any".
  void fail_next(const std::string& kind, errc e);
  // Bytes held (durable and not) by all files, for footprint tests.
  std::uint64_t total_bytes() const;
  // File::start_writeback() hints so far: bytes covered, and calls whose
  // range went past the end of the file.
  std::pair<std::uint64_t, std::uint64_t> writeback_hints() const;
  // Adds `n` virtual time units of latency per sync; the simulator reads it.
  // (Purely informational; the filesystem itself never sleeps.)

 private:
  struct State;
  std::shared_ptr<State> s_;
};

}  // namespace raft::storage
