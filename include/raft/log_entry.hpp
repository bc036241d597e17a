// LogEntry and its wire/stream framing (DESIGN 4.1, the seed's format).
//
// Frame: a 24-byte big-endian header followed by the data.
//   u64  type << 56 | data_length      (data_length < 2^56)
//   u64  index
//   u64  term
//   data_length bytes of data
// Example: {Command, index 2, term 3, data 04 05 06} encodes to
//   00 00 00 00 00 00 00 03 | 00 .. 00 02 | 00 .. 00 03 | 04 05 06
#pragma once

#include "raft/error.hpp"
#include "raft/io.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace raft {

enum class LogEntryType : std::uint8_t {
  command = 0,      // user command: the only type passed to FSM::must_apply
  nop = 1,          // appended by every new leader in its term (§5.4.2)
  initialize = 2,   // first entry of a new cluster
  add_peer = 3,     // membership: the new node's URL, then, if it joined
                    // with a join token or as a learner, a 0 byte, the token
                    // (8 bytes BE, 0 if none) and, for a learner, a byte 1
  remove_peer = 4,  // membership: data is the removed node's id (8 bytes BE)
  promote_peer = 5, // membership: learner -> voter; data is its id (8 bytes BE)
  bind_token = 6,   // membership: a member added without a join token (add_peer)
                    // takes the token of the first directory that joins as it;
                    // data: its id, then the token (8 bytes BE each)
  demote_peer = 7,  // membership: voter -> learner; data is its id (8 bytes BE)
  joint_voters = 8, // membership: enter joint consensus (Log::set_voters): the
                    // new voters' ids, 8 bytes BE each (Config::enter_joint)
  leave_joint = 9,  // membership: leave joint consensus; no data
  config = 254,     // internal: configuration JSON at the head of a stream
};

// True for the types above; anything else read from the wire or disk is
// corrupt input.
bool is_valid_entry_type(std::uint8_t t) noexcept;
std::string_view to_string(LogEntryType t) noexcept;

struct LogEntry {
  LogEntryType type = LogEntryType::command;
  std::uint64_t index = 0;
  std::uint64_t term = 0;
  std::string data;

  friend bool operator==(const LogEntry&, const LogEntry&) = default;
};

inline constexpr std::size_t kEntryHeaderSize = 24;
// Default cap on a single entry's data when decoding untrusted input.
inline constexpr std::uint64_t kDefaultMaxEntryBytes = 64ull << 20;
// The length field has 56 bits.
inline constexpr std::uint64_t kMaxEncodableEntryBytes = (1ull << 56) - 1;

// Appends the frame of `e` to `out` (the allocation-free hot path).
void encode_entry(std::string& out, const LogEntry& e);
// Writes the 24-byte header of `e` with data length `len` into `dst`.
void encode_entry_header(std::byte* dst, LogEntryType type, std::uint64_t len, std::uint64_t index,
                         std::uint64_t term) noexcept;

struct EntryHeader {
  std::uint8_t type;
  std::uint64_t data_length;
  std::uint64_t index;
  std::uint64_t term;
};
EntryHeader decode_entry_header(const std::byte* src) noexcept;

// Encodes entries to a Writer.
class LogEntryEncoder {
 public:
  explicit LogEntryEncoder(Writer& w) : w_(w) {}
  // errc::short_write if the writer stops accepting bytes; errc::entry_too_large
  // if the data cannot be represented in 56 bits.
  result<void> encode(const LogEntry& e);

 private:
  Writer& w_;
  std::string buf_;
};

// Decodes entries from a Reader.
class LogEntryDecoder {
 public:
  explicit LogEntryDecoder(Reader& r, std::uint64_t max_data_bytes = kDefaultMaxEntryBytes)
      : r_(r), max_(max_data_bytes) {}
  // true: `e` holds the next entry. false: the input ended cleanly before a
  // header. Errors: errc::unexpected_eof inside a header or data,
  // errc::entry_too_large (refused before allocating), errc::protocol_error
  // for an unknown type.
  result<bool> decode(LogEntry& e);

 private:
  Reader& r_;
  std::uint64_t max_;
};

}  // namespace raft
