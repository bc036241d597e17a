// The `meta` file, 48 bytes, big-endian:
//   u64 magic "RAFTMETA" | u32 format version (1) |
//   u64 id | u64 term | u64 voted_for | u64 cluster_id |
//   u32 masked crc32c of the 44 bytes before it
// The file is never modified in place: save() writes meta.tmp, fsyncs it,
// renames it over meta and fsyncs the directory, so after a crash the name
// `meta` refers to either the complete old file or the complete new one.
// A leftover meta.tmp is a save that did not finish; it is never read.
#include "raft/storage/meta_store.hpp"

#include "raft/detail/crc32c.hpp"
#include "raft/detail/endian.hpp"

#include <array>

namespace raft::storage {
namespace {

constexpr std::uint64_t kMetaMagic = 0x524146544d455441ull;  // "RAFTMETA"
constexpr std::uint32_t kMetaVersion = 1;
constexpr std::size_t kMetaSize = 48;

std::array<std::byte, kMetaSize> encode(const Meta& m) {
  std::array<std::byte, kMetaSize> b{};
  detail::put_be64(b.data(), kMetaMagic);
  detail::put_be32(b.data() + 8, kMetaVersion);
  detail::put_be64(b.data() + 12, m.id);
  detail::put_be64(b.data() + 20, m.term);
  detail::put_be64(b.data() + 28, m.voted_for);
  detail::put_be64(b.data() + 36, m.cluster_id);
  detail::put_be32(b.data() + 44, detail::crc_mask(detail::crc32c(0, b.data(), 44)));
  return b;
}

}  // namespace

result<MetaStore> MetaStore::open(Filesystem& fs, std::string dir) {
  if (auto r = fs.mkdir(dir); !r) return r.error();
  const std::string path = dir + "/meta";
  auto ex = fs.exists(path);
  if (!ex) return ex.error();
  Meta m;
  if (*ex) {
    auto f = fs.open(path, OpenFlags{.read_only = true});
    if (!f) return f.error();
    std::array<std::byte, kMetaSize + 1> b{};
    auto n = (*f)->read_at(0, b);
    if (!n) return n.error();
    // Every byte is checked: a wrong size, magic, version or CRC means the
    // file is not one save() wrote, and guessing a term or vote is unsafe.
    if (*n != kMetaSize || detail::get_be64(b.data()) != kMetaMagic ||
        detail::get_be32(b.data() + 8) != kMetaVersion ||
        detail::crc_unmask(detail::get_be32(b.data() + 44)) != detail::crc32c(0, b.data(), 44))
      return errc::log_corrupt;
    m.id = detail::get_be64(b.data() + 12);
    m.term = detail::get_be64(b.data() + 20);
    m.voted_for = detail::get_be64(b.data() + 28);
    m.cluster_id = detail::get_be64(b.data() + 36);
  }
  return MetaStore(fs, std::move(dir), m);
}

result<void> MetaStore::save(const Meta& m) {
  const std::string tmp = dir_ + "/meta.tmp";
  const auto b = encode(m);
  {
    auto f = fs_->open(tmp, OpenFlags{.create = true, .truncate = true});
    if (!f) return f.error();
    if (auto r = (*f)->append(b); !r) return r.error();
    if (auto r = (*f)->sync(); !r) return r.error();
  }
  if (auto r = fs_->rename(tmp, dir_ + "/meta"); !r) return r.error();
  if (auto r = fs_->sync_dir(dir_); !r) return r.error();
  meta_ = m;
  return {};
}

}  // namespace raft::storage
