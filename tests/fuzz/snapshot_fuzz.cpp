// Fuzz target: the snapshot file decoder (SnapshotStore::open's header and
// trailer checks, then open_reader's data checksum; DESIGN 6) over a
// MemoryFilesystem whose snapshot directory holds the input as one file.
//
// Input: byte 0, bit 0: recompute the header CRC, the trailer's length and
// the data CRC before writing (so the fuzzer reaches the checks behind the
// checksums); bit 1: name the file one index past its header (a mismatch,
// which must be ignored). The rest is the file; it is named after the
// (term, index) in its header.
//
// Invariants beyond "no crash":
// * open() never fails on a bad file (it ignores it with a warning);
// * a listed snapshot agrees with an independent reading of the format:
//   index, term and config as in the header, a valid config, data size =
//   file size - header - trailer, and the name matching the header;
// * reading it delivers exactly size_bytes and then succeeds when the data
//   CRC matches, or fails with snapshot_corrupt when it does not;
// * round trip: when the header holds the canonical config JSON, writing the
//   same snapshot through SnapshotStore::create gives the same file.
#include "fs_util.hpp"
#include "raft/detail/crc32c.hpp"
#include "raft/detail/endian.hpp"
#include "raft/storage/snapshot_store.hpp"

#include <fmt/format.h>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace raft;
  constexpr std::size_t kFixed = 32, kTrailer = 12;
  fuzz::Input in(data, size);
  const std::uint8_t flags = in.byte();
  std::string file(in.rest());
  auto* b = reinterpret_cast<std::byte*>(file.data());

  // An independent reading of the format.
  const std::uint64_t cfg_len = file.size() >= kFixed ? detail::get_be32(b + 28) : 0;
  const std::uint64_t header = kFixed + cfg_len + 4;
  const bool framed = file.size() >= kFixed && header + kTrailer <= file.size();
  if ((flags & 1) && framed) {
    detail::put_be32(b + header - 4, detail::crc_mask(detail::crc32c(0, b, header - 4)));
    const std::uint64_t n = file.size() - header - kTrailer;
    detail::put_be64(b + file.size() - kTrailer, n);
    detail::put_be32(b + file.size() - 4, detail::crc_mask(detail::crc32c(0, b + header, n)));
  }
  const std::uint64_t index = file.size() >= kFixed ? detail::get_be64(b + 12) : 0;
  const std::uint64_t term = file.size() >= kFixed ? detail::get_be64(b + 20) : 0;
  const std::string name = fmt::format("{:020}-{:020}.snap", term, index + ((flags & 2) ? 1 : 0));
  const bool valid_header =
      framed && cfg_len <= (16u << 20) && detail::get_be64(b) == 0x52414654534e4150ull && detail::get_be32(b + 8) == 1 &&
      detail::crc_unmask(detail::get_be32(b + header - 4)) == detail::crc32c(0, b, header - 4) &&
      detail::get_be64(b + file.size() - kTrailer) == file.size() - header - kTrailer && !(flags & 2);
  auto cfg = valid_header ? config_from_json(std::string_view(file.data() + kFixed, cfg_len)) : result<Config>(errc::invalid_config);
  const bool listed = valid_header && cfg.has_value();

  storage::MemoryFilesystem fs;
  fuzz::put_file(fs, "snaps", name, file);
  std::string warned;
  auto st = storage::SnapshotStore::open(fs, "snaps", [&](const std::string& w) { warned += w + "\n"; });
  FUZZ_CHECK(st.has_value(), "open failed: %s", st.error().message().c_str());
  auto latest = (*st)->latest();
  FUZZ_CHECK(latest.has_value() == listed, "snapshot %s, expected %s (%s)", latest ? "listed" : "ignored",
             listed ? "listed" : "ignored", warned.c_str());
  FUZZ_CHECK(listed || !warned.empty(), "ignored without a warning");
  if (!latest) return 0;
  FUZZ_CHECK(latest->index == index && latest->term == term && latest->config == *cfg, "header misread");
  FUZZ_CHECK(latest->size_bytes == file.size() - header - kTrailer, "data size %llu",
             static_cast<unsigned long long>(latest->size_bytes));

  auto reader = (*st)->open_reader(*latest);
  FUZZ_CHECK(reader.has_value(), "open_reader: %s", reader.error().message().c_str());
  const std::string_view body(file.data() + header, latest->size_bytes);
  const bool crc_ok = detail::crc_unmask(detail::get_be32(b + file.size() - 4)) == detail::crc32c(0, body.data(), body.size());
  std::string got;
  std::error_code err;
  for (std::size_t step = 1;; step = step % 97 + 13) {
    std::string buf(step, '\0');
    auto n = (*reader)->read(std::as_writable_bytes(std::span(buf.data(), buf.size())));
    if (!n) {
      err = n.error();
      break;
    }
    if (*n == 0) break;
    got.append(buf.data(), *n);
    FUZZ_CHECK(got.size() <= body.size(), "read past the data");
  }
  if (!crc_ok) {
    FUZZ_CHECK(err == errc::snapshot_corrupt, "bad data CRC: %s", err ? err.message().c_str() : "accepted");
    return 0;
  }
  FUZZ_CHECK(!err && got == body, "data read back wrong: %s", err.message().c_str());

  // Round trip through the writer when the header's JSON is canonical.
  if (to_json(*cfg) != std::string_view(file.data() + kFixed, cfg_len)) return 0;
  storage::MemoryFilesystem fs2;
  auto st2 = storage::SnapshotStore::open(fs2, "snaps");
  FUZZ_CHECK(st2.has_value(), "open fresh store");
  auto sink = (*st2)->create(index, term, *cfg);
  FUZZ_CHECK(sink.has_value(), "create");
  FUZZ_CHECK(write_all(**sink, body).has_value(), "write");
  FUZZ_CHECK((*sink)->commit().has_value(), "commit");
  FUZZ_CHECK(fuzz::get_file(fs2, "snaps/" + name) == file, "rewritten snapshot differs");
  return 0;
}
