#include "raft/log_entry.hpp"

#include "raft/detail/endian.hpp"

#include <algorithm>

namespace raft {

bool is_valid_entry_type(std::uint8_t t) noexcept {
  return t <= static_cast<std::uint8_t>(LogEntryType::leave_joint) ||
         t == static_cast<std::uint8_t>(LogEntryType::config);
}

std::string_view to_string(LogEntryType t) noexcept {
  switch (t) {
    case LogEntryType::command: return "command";
    case LogEntryType::nop: return "nop";
    case LogEntryType::initialize: return "initialize";
    case LogEntryType::add_peer: return "add_peer";
    case LogEntryType::remove_peer: return "remove_peer";
    case LogEntryType::promote_peer: return "promote_peer";
    case LogEntryType::bind_token: return "bind_token";
    case LogEntryType::demote_peer: return "demote_peer";
    case LogEntryType::joint_voters: return "joint_voters";
    case LogEntryType::leave_joint: return "leave_joint";
    case LogEntryType::config: return "config";
  }
  return "unknown";
}

void encode_entry_header(std::byte* dst, LogEntryType type, std::uint64_t len, std::uint64_t index,
                         std::uint64_t term) noexcept {
  detail::put_be64(dst, (static_cast<std::uint64_t>(type) << 56) | len);
  detail::put_be64(dst + 8, index);
  detail::put_be64(dst + 16, term);
}

EntryHeader decode_entry_header(const std::byte* src) noexcept {
  const std::uint64_t w = detail::get_be64(src);
  return {static_cast<std::uint8_t>(w >> 56), w & kMaxEncodableEntryBytes, detail::get_be64(src + 8),
          detail::get_be64(src + 16)};
}

void encode_entry(std::string& out, const LogEntry& e) {
  RAFT_ASSERT(e.data.size() <= kMaxEncodableEntryBytes, "entry data above 2^56 bytes");
  const std::size_t at = out.size();
  out.resize(at + kEntryHeaderSize);
  encode_entry_header(reinterpret_cast<std::byte*>(out.data() + at), e.type, e.data.size(), e.index,
                      e.term);
  out.append(e.data);
}

result<void> LogEntryEncoder::encode(const LogEntry& e) {
  if (e.data.size() > kMaxEncodableEntryBytes) return errc::entry_too_large;
  std::byte hdr[kEntryHeaderSize];
  encode_entry_header(hdr, e.type, e.data.size(), e.index, e.term);
  if (auto r = write_all(w_, hdr); !r) return r;
  return write_all(w_, e.data);
}

result<bool> LogEntryDecoder::decode(LogEntry& e) {
  std::byte hdr[kEntryHeaderSize];
  auto n = read_full(r_, hdr);
  // result<bool> is constructible from an error_code both ways: say which.
  if (!n) return {boost::system::in_place_error, n.error()};
  if (*n == 0) return false;
  if (*n < kEntryHeaderSize) return errc::unexpected_eof;
  const EntryHeader h = decode_entry_header(hdr);
  if (!is_valid_entry_type(h.type)) return errc::protocol_error;
  if (h.data_length > max_) return errc::entry_too_large;
  e.type = static_cast<LogEntryType>(h.type);
  e.index = h.index;
  e.term = h.term;
  // Grow with the bytes that actually arrive (the step doubles from 64 KiB):
  // a 24-byte header declaring max_ bytes must not make us allocate them.
  e.data.clear();
  while (e.data.size() < h.data_length) {
    const std::size_t at = e.data.size();
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(std::max<std::size_t>(at, 64 * 1024), h.data_length - at));
    e.data.resize(at + n);
    auto m = read_full(r_, std::as_writable_bytes(std::span(e.data.data() + at, n)));
    if (!m) return {boost::system::in_place_error, m.error()};
    if (*m < n) return errc::unexpected_eof;
  }
  return true;
}

}  // namespace raft
