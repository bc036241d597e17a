// Private helpers shared by the HTTP client and server (not installed).
#pragma once

#include "raft/error.hpp"
#include "raft/http.hpp"

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace raft::http_detail {

inline constexpr std::string_view kHeaderClusterID = "X-Raft-Cluster-ID";
// raft::kProtocolVersion on every request and response (http.hpp).
inline constexpr std::string_view kHeaderProtocol = "X-Raft-Protocol";
inline constexpr std::string_view kBearerPrefix = "Bearer ";
inline constexpr std::string_view kHeaderError = "X-Raft-Error";
inline constexpr std::string_view kHeaderID = "X-Raft-ID";
// HeartbeatResponse::vote_hold_ms (lease reads); absent: 0.
inline constexpr std::string_view kHeaderVoteHold = "X-Raft-Vote-Hold-Ms";
inline constexpr std::string_view kHeaderLeaderID = "X-Raft-Leader-ID";
inline constexpr std::string_view kHeaderLeaderURL = "X-Raft-Leader-URL";
inline constexpr std::string_view kHeaderIndex = "X-Raft-Index";
inline constexpr std::string_view kHeaderTerm = "X-Raft-Term";
// Ack channel (docs/design-notes.md, "Acks on the stream connection"): a
// follower asks for it on its /raft/stream request, a leader that agrees
// repeats the header on the stream's response, and from then on the
// follower writes its acks as kAckRecordBytes records on the same
// connection's otherwise unused upstream direction instead of one
// POST /raft/ack (and one reply) each.
inline constexpr std::string_view kHeaderAckChannel = "X-Raft-Ack-Channel";

// True if `s` reads scheme "://" ...: the only form of URL we accept (a
// node URL needs an authority). Checked before boost::urls::
// parse_absolute_uri, which in Boost 1.81 fails an internal assertion on a
// scheme followed by an empty path and more text ("http:?", "http:#",
// "http:\""): with assertions on, one such join URL or leader hint from the
// network would abort the process (found by tests/fuzz/http_handler_fuzz).
inline bool has_authority_form(std::string_view s) noexcept {
  const auto colon = s.find(':');
  return colon != std::string_view::npos && colon > 0 && s.substr(colon + 1, 2) == "//";
}

// One ack record: type byte 0xA1, then term and index as big-endian u64
// (the entry header's byte order, DESIGN 4.1). The node id and URL are the
// stream's, checked when the stream was opened.
inline constexpr std::size_t kAckRecordBytes = 17;
inline constexpr unsigned char kAckRecordType = 0xA1;

inline void encode_ack_record(std::uint64_t term, std::uint64_t index, char* out) noexcept {
  out[0] = static_cast<char>(kAckRecordType);
  for (int i = 0; i < 8; ++i) {
    out[1 + i] = static_cast<char>(term >> (56 - 8 * i));
    out[9 + i] = static_cast<char>(index >> (56 - 8 * i));
  }
}

struct AckRecord {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
};

// Decodes the whole records at the front of `bytes` and calls on_record for
// each; `consumed` is set to the bytes they took (a partial record at the
// end stays for the next read). False on a malformed record (wrong type
// byte, term 0): the peer is not speaking this protocol.
template <class F>
bool decode_ack_records(std::string_view bytes, std::size_t& consumed, F&& on_record) {
  consumed = 0;
  while (bytes.size() - consumed >= kAckRecordBytes) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + consumed);
    if (p[0] != kAckRecordType) return false;
    AckRecord r;
    for (int i = 0; i < 8; ++i) {
      r.term = (r.term << 8) | p[1 + i];
      r.index = (r.index << 8) | p[9 + i];
    }
    if (r.term == 0) return false;
    on_record(r);
    consumed += kAckRecordBytes;
  }
  return true;
}

// Strict unsigned decimal: digits only, no sign, no spaces, no overflow.
inline std::optional<std::uint64_t> parse_u64(std::string_view s) noexcept {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  for (char c : s)
    if (c < '0' || c > '9') return std::nullopt;
  return v;
}

// The protocol version a request or response is in (kHeaderProtocol; 1
// without it, as from builds before the header). nullopt when the header
// is not a number or is given twice.
template <class Fields>
std::optional<std::uint64_t> protocol_version_of(const Fields& h) {
  if (h.count(kHeaderProtocol) > 1) return std::nullopt;
  const auto f = h.find(kHeaderProtocol);
  if (f == h.end()) return 1;
  return parse_u64(f->value());
}

inline bool protocol_supported(std::uint64_t v) noexcept {
  return v >= kMinProtocolVersion && v <= kProtocolVersion;
}

// X-Raft-Error text back to an error code; unknown text is a transport error.
inline std::error_code error_from_text(std::string_view text) {
  errc e{};
  if (errc_from_message(text, e)) return make_error_code(e);
  return make_error_code(errc::transport_error);
}

}  // namespace raft::http_detail
