#include "raft/io.hpp"

namespace raft {

result<void> write_all(Writer& w, std::span<const std::byte> data) {
  while (!data.empty()) {
    auto n = w.write(data);
    if (!n) return n.error();
    if (*n == 0) return errc::short_write;
    if (*n > data.size()) return errc::invalid_argument;
    data = data.subspan(*n);
  }
  return {};
}

result<std::size_t> read_full(Reader& r, std::span<std::byte> out) {
  std::size_t got = 0;
  while (got < out.size()) {
    auto n = r.read(out.subspan(got));
    if (!n) return n.error();
    if (*n == 0) break;
    got += *n;
  }
  return got;
}

}  // namespace raft
