// Private helpers shared by the HTTP client and server (not installed).
#pragma once

#include "raft/error.hpp"

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

namespace raft::http_detail {

inline constexpr std::string_view kHeaderClusterID = "X-Raft-Cluster-ID";
inline constexpr std::string_view kHeaderError = "X-Raft-Error";
inline constexpr std::string_view kHeaderID = "X-Raft-ID";
inline constexpr std::string_view kHeaderLeaderID = "X-Raft-Leader-ID";
inline constexpr std::string_view kHeaderLeaderURL = "X-Raft-Leader-URL";
inline constexpr std::string_view kHeaderIndex = "X-Raft-Index";
inline constexpr std::string_view kHeaderTerm = "X-Raft-Term";

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

// X-Raft-Error text back to an error code; unknown text is a transport error.
inline std::error_code error_from_text(std::string_view text) {
  errc e{};
  if (errc_from_message(text, e)) return make_error_code(e);
  return make_error_code(errc::transport_error);
}

}  // namespace raft::http_detail
