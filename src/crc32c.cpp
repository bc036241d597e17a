#include "raft/detail/crc32c.hpp"

#include <climits>

#if RAFT_HAVE_ISAL
#include <isa-l/crc.h>
#else
#include <boost/crc.hpp>
#endif

namespace raft::detail {

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) noexcept {
#if RAFT_HAVE_ISAL
  // ISA-L's crc32_iscsi applies no pre/post inversion; the standard CRC32C
  // does. Its length is an int, so feed large buffers in slices.
  std::uint32_t state = ~crc;
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  while (n > 0) {
    const std::size_t step = n > (1u << 30) ? (1u << 30) : n;
    state = crc32_iscsi(p, static_cast<int>(step), state);
    p += step;
    n -= step;
  }
  return ~state;
#else
  // Resume from a previous value: Boost keeps the register of a reflected
  // CRC bit-reversed, so the un-finalized state ~crc is reversed before reset.
  std::uint32_t reg = ~crc, rev = 0;
  for (int i = 0; i < 32; ++i, reg >>= 1) rev = (rev << 1) | (reg & 1u);
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> c(rev);
  c.process_bytes(data, n);
  return c.checksum();
#endif
}

}  // namespace raft::detail
