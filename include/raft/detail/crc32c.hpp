// CRC32C (Castagnoli), computed by Intel ISA-L when available (hardware
// accelerated), else by Boost.CRC. `mask`/`unmask` as in LevelDB: a CRC of
// data that itself contains CRCs is weak, so stored CRCs are rotated.
#pragma once

#include <cstddef>
#include <cstdint>

namespace raft::detail {

// CRC32C of `n` bytes continuing from `crc` (0 to start).
std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) noexcept;

inline constexpr std::uint32_t kCrcMaskDelta = 0xa282ead8u;
inline std::uint32_t crc_mask(std::uint32_t crc) noexcept {
  return ((crc >> 15) | (crc << 17)) + kCrcMaskDelta;
}
inline std::uint32_t crc_unmask(std::uint32_t masked) noexcept {
  const std::uint32_t rot = masked - kCrcMaskDelta;
  return (rot >> 17) | (rot << 15);
}

}  // namespace raft::detail
