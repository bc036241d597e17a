// MemoryFilesystem helpers for the storage fuzz targets.
#pragma once

#include "fuzz_util.hpp"
#include "raft/storage/memory_filesystem.hpp"

#include <map>
#include <string>

namespace raft::fuzz {

// Creates `path` holding `bytes`, durable (synced, directory synced).
inline void put_file(storage::MemoryFilesystem& fs, const std::string& dir, const std::string& name,
                     std::string_view bytes) {
  FUZZ_CHECK(fs.mkdir(dir).has_value(), "mkdir");
  auto f = fs.open(dir + "/" + name, storage::OpenFlags{.create = true, .truncate = true});
  FUZZ_CHECK(f.has_value(), "create %s", name.c_str());
  if (!bytes.empty()) FUZZ_CHECK((*f)->append(std::as_bytes(std::span(bytes.data(), bytes.size()))).has_value(), "append");
  FUZZ_CHECK((*f)->sync().has_value(), "sync");
  FUZZ_CHECK(fs.sync_dir(dir).has_value(), "sync_dir");
}

inline std::string get_file(storage::MemoryFilesystem& fs, const std::string& path) {
  auto f = fs.open(path, storage::OpenFlags{.read_only = true});
  FUZZ_CHECK(f.has_value(), "open %s", path.c_str());
  auto n = (*f)->size();
  FUZZ_CHECK(n.has_value(), "size");
  std::string out(*n, '\0');
  auto got = (*f)->read_at(0, std::as_writable_bytes(std::span(out.data(), out.size())));
  FUZZ_CHECK(got && *got == out.size(), "read %s", path.c_str());
  return out;
}

// name -> contents of every file in `dir`.
inline std::map<std::string, std::string> get_dir(storage::MemoryFilesystem& fs, const std::string& dir) {
  std::map<std::string, std::string> out;
  auto names = fs.list(dir);
  FUZZ_CHECK(names.has_value(), "list %s", dir.c_str());
  for (const auto& n : *names) out[n] = get_file(fs, dir + "/" + n);
  return out;
}

}  // namespace raft::fuzz
