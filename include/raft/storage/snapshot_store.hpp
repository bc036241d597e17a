// Snapshot files (DESIGN 6): `snapshots/%020llu-%020llu.snap` named by
// (term, index), with a checksummed header holding index, term and the
// configuration at that index, then the FSM's bytes. Written to a temp name,
// fsynced, renamed, directory fsynced. A half-written or corrupt snapshot is
// ignored (with a warning) when listing.
#pragma once

#include "raft/config.hpp"
#include "raft/io.hpp"
#include "raft/storage/filesystem.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace raft::storage {

struct SnapshotMeta {
  std::uint64_t index = 0;
  std::uint64_t term = 0;
  Config config;
  std::string path;
  std::uint64_t size_bytes = 0;  // of the FSM data
};

// Receives a snapshot's FSM bytes. Nothing is visible until commit().
class SnapshotSink : public Writer {
 public:
  // Durable on success; the snapshot is then the latest.
  virtual result<SnapshotMeta> commit() = 0;
  // Discards the partial snapshot (also done by the destructor if neither
  // commit nor abort was called).
  virtual void abort() = 0;
};

class SnapshotStore {
 public:
  static result<std::unique_ptr<SnapshotStore>> open(Filesystem& fs, std::string dir,
                                                     std::function<void(const std::string&)> warn = {});
  ~SnapshotStore();
  result<std::unique_ptr<SnapshotSink>> create(std::uint64_t index, std::uint64_t term, const Config& config);
  // The newest valid snapshot, if any (header checksum verified).
  std::optional<SnapshotMeta> latest() const;
  // Reads the FSM bytes of a snapshot; verifies a checksum of the data at
  // the end (errc::snapshot_corrupt from read() if it does not match).
  result<std::unique_ptr<Reader>> open_reader(const SnapshotMeta& meta) const;
  // Deletes every snapshot older than `index` and leftover temp files.
  result<void> remove_older_than(std::uint64_t index);

 private:
  SnapshotStore();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace raft::storage
