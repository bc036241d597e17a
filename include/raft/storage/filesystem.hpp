// The small filesystem interface under all of raft's storage, so that tests
// and the simulator can run on an in-memory filesystem that models crashes.
#pragma once

#include "raft/error.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace raft::storage {

class File {
 public:
  virtual ~File() = default;
  // Reads up to out.size() bytes at `offset`; fewer only at end of file.
  virtual result<std::size_t> read_at(std::uint64_t offset, std::span<std::byte> out) = 0;
  // Appends at the end of the file.
  virtual result<void> append(std::span<const std::byte> data) = 0;
  // Appends the concatenation of `parts` as one write where the platform
  // allows (pwritev), so a batch of large entries needs no copy into one
  // buffer. This default concatenates and calls append().
  virtual result<void> append_gather(std::span<const std::span<const std::byte>> parts) {
    std::string joined;
    for (const auto& p : parts) joined.append(reinterpret_cast<const char*>(p.data()), p.size());
    return append(std::as_bytes(std::span(joined.data(), joined.size())));
  }
  virtual result<void> write_at(std::uint64_t offset, std::span<const std::byte> data) = 0;
  virtual result<void> sync() = 0;      // fsync: data and metadata
  virtual result<void> datasync() = 0;  // fdatasync
  // A hint, not a durability point: start writing this range's dirty pages
  // to disk without waiting (Linux sync_file_range), so a later datasync()
  // has little left to do. The default does nothing.
  virtual void start_writeback(std::uint64_t /*offset*/, std::uint64_t /*len*/) {}
  virtual result<void> truncate(std::uint64_t size) = 0;
  // This handle's size: where append() writes.
  virtual result<std::uint64_t> size() = 0;
  // A hint, best effort (errors are ignored): reserve the file's disk space
  // up to `len` bytes now, so that later writes below `len` overwrite
  // allocated blocks and an fdatasync of them needs no journal commit
  // (Linux fallocate). The bytes between size() and `len` read as zeros; this
  // handle's size() and append() are unchanged, but a handle opened later,
  // or the file after a crash, may be that much longer. The default does
  // nothing.
  virtual void preallocate(std::uint64_t /*len*/) {}
};

struct OpenFlags {
  bool create = false;     // create if missing
  bool exclusive = false;  // fail if it exists (with create)
  bool truncate = false;   // truncate to 0 on open
  bool read_only = false;
};

class Filesystem {
 public:
  virtual ~Filesystem() = default;
  virtual result<std::unique_ptr<File>> open(const std::string& path, OpenFlags flags) = 0;
  virtual result<void> rename(const std::string& from, const std::string& to) = 0;
  virtual result<void> unlink(const std::string& path) = 0;
  // Names (not paths) of the entries in `dir`, sorted.
  virtual result<std::vector<std::string>> list(const std::string& dir) = 0;
  virtual result<void> mkdir(const std::string& path) = 0;  // ok if it exists
  virtual result<void> sync_dir(const std::string& dir) = 0;
  virtual result<bool> exists(const std::string& path) = 0;
};

// Real files (open/pwrite/fdatasync/rename...). Errors map to errc::io_error,
// ENOSPC to errc::no_space.
std::unique_ptr<Filesystem> make_posix_filesystem();

}  // namespace raft::storage
