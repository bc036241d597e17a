// The `meta` file: node id, current term and vote (DESIGN 6).
//
// Raft requires current term and vote to be durable before any reply that
// depends on them (§5.1, Figure 2 "persistent state"). save() replaces the
// file atomically: write `meta.tmp`, fsync it, rename over `meta`, fsync the
// directory; a crash at any point leaves the old or the new value. The file
// is checksummed; a corrupt file is errc::log_corrupt.
#pragma once

#include "raft/storage/filesystem.hpp"

#include <cstdint>
#include <string>

namespace raft::storage {

struct Meta {
  std::uint64_t id = 0;         // this node's id (0 until initialized/joined)
  std::uint64_t term = 0;       // current term
  std::uint64_t voted_for = 0;  // candidate voted for in `term` (0 = none)
  std::uint64_t cluster_id = 0; // cluster this node belongs to (0 = none)
  friend bool operator==(const Meta&, const Meta&) = default;
};

class MetaStore {
 public:
  // Loads `dir`/meta if present (else all zero). Ignores a leftover meta.tmp.
  static result<MetaStore> open(Filesystem& fs, std::string dir);
  const Meta& get() const { return meta_; }
  // Durable on success. On failure the in-memory value is unchanged.
  result<void> save(const Meta& m);

 private:
  MetaStore(Filesystem& fs, std::string dir, Meta m) : fs_(&fs), dir_(std::move(dir)), meta_(m) {}
  Filesystem* fs_;
  std::string dir_;
  Meta meta_;
};

}  // namespace raft::storage
