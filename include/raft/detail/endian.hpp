// Big- and little-endian integer helpers for the wire and disk formats.
#pragma once

#include "raft/assert.hpp"

#include <cstddef>
#include <cstdint>

namespace raft::detail {

inline void put_be64(std::byte* p, std::uint64_t v) noexcept {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<std::byte>(v & 0xff);
    v >>= 8;
  }
}
inline std::uint64_t get_be64(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}
inline void put_be32(std::byte* p, std::uint32_t v) noexcept {
  for (int i = 3; i >= 0; --i) {
    p[i] = static_cast<std::byte>(v & 0xff);
    v >>= 8;
  }
}
inline std::uint32_t get_be32(const std::byte* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

}  // namespace raft::detail
