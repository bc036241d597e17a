// Helpers shared by the storage tests.
#pragma once

#include <raft/log_entry.hpp>
#include <raft/storage/filesystem.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace raft::storage::testing {

// Deterministic payload of `size` bytes that differs per index and term, so
// an entry read back from the wrong place never compares equal.
inline LogEntry make_entry(std::uint64_t index, std::uint64_t term, std::size_t size) {
  LogEntry e;
  e.type = index % 7 == 0 ? LogEntryType::nop : LogEntryType::command;
  e.index = index;
  e.term = term;
  e.data.resize(size);
  std::uint64_t x = index * 0x9e3779b97f4a7c15ull + term;
  for (auto& c : e.data) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return e;
}

inline std::vector<LogEntry> make_entries(std::uint64_t first, std::uint64_t last, std::uint64_t term, std::size_t size) {
  std::vector<LogEntry> v;
  for (std::uint64_t i = first; i <= last; ++i) v.push_back(make_entry(i, term, size + i % 13));
  return v;
}

inline std::string read_file(Filesystem& fs, const std::string& path) {
  auto f = fs.open(path, OpenFlags{.read_only = true});
  if (!f) return {};
  auto size = (*f)->size();
  std::string s(*size, '\0');
  (void)(*f)->read_at(0, std::as_writable_bytes(std::span(s.data(), s.size())));
  return s;
}

inline void write_file(Filesystem& fs, const std::string& path, const std::string& data) {
  auto f = fs.open(path, OpenFlags{.create = true, .truncate = true});
  (void)(*f)->append(std::as_bytes(std::span(data.data(), data.size())));
  (void)(*f)->sync();
}

}  // namespace raft::storage::testing
