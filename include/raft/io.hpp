// Minimal byte-stream interfaces, the C++ shape of Go's io.Reader/io.Writer.
// Used by the entry and config codecs and by FSM::snapshot/restore, so that a
// snapshot of any size streams through a bounded buffer.
#pragma once

#include "raft/error.hpp"

#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace raft {

class Writer {
 public:
  virtual ~Writer() = default;
  // Writes up to data.size() bytes; returns how many were accepted. Fewer
  // than requested without an error is a short write (the codecs report it).
  virtual result<std::size_t> write(std::span<const std::byte> data) = 0;
};

class Reader {
 public:
  virtual ~Reader() = default;
  // Reads up to out.size() bytes; returns 0 only at the end of the input.
  virtual result<std::size_t> read(std::span<std::byte> out) = 0;
};

// Writes all of `data` or fails (errc::short_write if the writer stopped
// accepting bytes without reporting an error).
result<void> write_all(Writer& w, std::span<const std::byte> data);
inline result<void> write_all(Writer& w, std::string_view s) {
  return write_all(w, std::as_bytes(std::span(s.data(), s.size())));
}

// Reads exactly out.size() bytes. Returns the number read, which is less than
// out.size() only if the input ended (0 means it ended before the first byte).
result<std::size_t> read_full(Reader& r, std::span<std::byte> out);

// A Writer that appends to a std::string.
class StringWriter final : public Writer {
 public:
  explicit StringWriter(std::string& out) : out_(out) {}
  result<std::size_t> write(std::span<const std::byte> data) override {
    out_.append(reinterpret_cast<const char*>(data.data()), data.size());
    return data.size();
  }

 private:
  std::string& out_;
};

// A Reader over a borrowed byte range.
class StringReader final : public Reader {
 public:
  explicit StringReader(std::string_view in) : in_(in) {}
  result<std::size_t> read(std::span<std::byte> out) override {
    std::size_t n = std::min(out.size(), in_.size());
    if (n) std::memcpy(out.data(), in_.data(), n);
    in_.remove_prefix(n);
    return n;
  }
  std::size_t remaining() const { return in_.size(); }

 private:
  std::string_view in_;
};

}  // namespace raft
