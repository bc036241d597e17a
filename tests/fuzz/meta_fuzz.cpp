// Fuzz target: the `meta` file decoder (MetaStore::open over a
// MemoryFilesystem whose dir/meta holds the input; DESIGN 6).
//
// Input: byte 0, bit 0: recompute the CRC field before writing the file (so
// the fuzzer gets past the checksum to the other checks); bit 1: also leave a
// garbage meta.tmp, which open() must ignore. The rest is the file.
//
// Invariants beyond "no crash":
// * open() succeeds exactly when the file is 48 bytes with the magic, version
//   1 and a matching CRC (an independent reading of the format), and fails
//   with log_corrupt otherwise;
// * round trip: saving the loaded Meta writes back the same 48 bytes, and a
//   reopen after save() reads the saved value.
#include "fs_util.hpp"
#include "raft/detail/crc32c.hpp"
#include "raft/detail/endian.hpp"
#include "raft/storage/meta_store.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace raft;
  fuzz::Input in(data, size);
  const std::uint8_t flags = in.byte();
  std::string file(in.rest());
  auto* b = reinterpret_cast<std::byte*>(file.data());
  if ((flags & 1) && file.size() >= 48) detail::put_be32(b + 44, detail::crc_mask(detail::crc32c(0, b, 44)));

  const bool valid = file.size() == 48 && detail::get_be64(b) == 0x524146544d455441ull &&
                     detail::get_be32(b + 8) == 1 &&
                     detail::crc_unmask(detail::get_be32(b + 44)) == detail::crc32c(0, b, 44);

  storage::MemoryFilesystem fs;
  fuzz::put_file(fs, "d", "meta", file);
  if (flags & 2) fuzz::put_file(fs, "d", "meta.tmp", "garbage");
  auto ms = storage::MetaStore::open(fs, "d");
  if (!valid) {
    FUZZ_CHECK(!ms && ms.error() == errc::log_corrupt, "invalid meta file: %s",
               ms ? "accepted" : ms.error().message().c_str());
    return 0;
  }
  FUZZ_CHECK(ms.has_value(), "valid meta file refused: %s", ms.error().message().c_str());
  const storage::Meta m = ms->get();
  FUZZ_CHECK(m.id == detail::get_be64(b + 12) && m.term == detail::get_be64(b + 20) &&
                 m.voted_for == detail::get_be64(b + 28) && m.cluster_id == detail::get_be64(b + 36),
             "fields misread");

  // Round trip through save(), in a fresh filesystem and in place.
  storage::MemoryFilesystem fs2;
  auto ms2 = storage::MetaStore::open(fs2, "d");
  FUZZ_CHECK(ms2 && ms2->save(m), "save to a fresh filesystem");
  FUZZ_CHECK(fuzz::get_file(fs2, "d/meta") == file, "save() wrote other bytes than were read");
  storage::Meta next = m;
  next.term += 1;
  next.voted_for = m.id;
  FUZZ_CHECK(ms->save(next).has_value(), "save in place");
  auto again = storage::MetaStore::open(fs, "d");
  FUZZ_CHECK(again && again->get() == next, "reopen after save");
  return 0;
}
