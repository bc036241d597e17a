// Snapshot files, `%020llu-%020llu.snap` named by (term, index), big-endian:
//   header:  u64 magic "RAFTSNAP" | u32 format version (1) | u64 index |
//            u64 term | u32 config length | config JSON (raft::to_json) |
//            u32 masked crc32c of every header byte before it
//   data:    the FSM's bytes, streamed
//   trailer: u64 data length | u32 masked crc32c of the data
// A sink writes `<name>.tmp` through a bounded buffer, then the trailer,
// fsyncs, renames to `<name>` and fsyncs the directory: a `.snap` name only
// ever refers to a complete file. Listing checks the header CRC, the names
// against the header and the trailer's length against the file size (cheap);
// the data CRC is checked by the reader when it reaches the end, since
// reading a multi-GiB snapshot at open would be too slow. Anything that fails
// is ignored with a warning, never deleted by listing.
#include "raft/storage/snapshot_store.hpp"

#include "raft/detail/crc32c.hpp"
#include "raft/detail/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <set>

namespace raft::storage {
namespace {

constexpr std::uint64_t kSnapMagic = 0x52414654534e4150ull;  // "RAFTSNAP"
constexpr std::uint32_t kSnapVersion = 1;
constexpr std::size_t kFixedHeader = 32;  // magic..config length
constexpr std::size_t kTrailer = 12;
constexpr std::uint32_t kConfigBytesMax = 16u << 20;
constexpr std::size_t kSinkBufferBytes = 1u << 20;

std::string snap_name(std::uint64_t term, std::uint64_t index) { return fmt::format("{:020}-{:020}.snap", term, index); }

bool parse_snap_name(const std::string& name, std::uint64_t& term, std::uint64_t& index) {
  if (name.size() != 46 || name[20] != '-' || name.compare(41, 5, ".snap") != 0) return false;
  auto num = [&](std::size_t at, std::uint64_t& v) {
    v = 0;
    for (std::size_t i = at; i < at + 20; ++i) {
      if (name[i] < '0' || name[i] > '9') return false;
      v = v * 10 + static_cast<std::uint64_t>(name[i] - '0');
    }
    return true;
  };
  return num(0, term) && num(21, index);
}

struct Header {
  std::uint64_t index = 0, term = 0;
  Config config;
  std::uint64_t header_bytes = 0, data_bytes = 0;
};

// Reads and checks the header and trailer of `path`; a message on failure.
result<Header> read_header(Filesystem& fs, const std::string& path, std::string& why) {
  auto f = fs.open(path, OpenFlags{.read_only = true});
  if (!f) return f.error();
  auto size = (*f)->size();
  if (!size) return size.error();
  std::array<std::byte, kFixedHeader> fixed{};
  auto n = (*f)->read_at(0, fixed);
  if (!n) return n.error();
  Header h;
  if (*n < kFixedHeader || detail::get_be64(fixed.data()) != kSnapMagic ||
      detail::get_be32(fixed.data() + 8) != kSnapVersion) {
    why = "bad magic or version";
    return errc::snapshot_corrupt;
  }
  h.index = detail::get_be64(fixed.data() + 12);
  h.term = detail::get_be64(fixed.data() + 20);
  const std::uint32_t cfg_len = detail::get_be32(fixed.data() + 28);
  h.header_bytes = kFixedHeader + cfg_len + 4;
  if (cfg_len > kConfigBytesMax || h.header_bytes + kTrailer > *size) {
    why = "header or trailer cut short";
    return errc::snapshot_corrupt;
  }
  std::string rest(cfg_len + 4, '\0');
  n = (*f)->read_at(kFixedHeader, std::as_writable_bytes(std::span(rest.data(), rest.size())));
  if (!n) return n.error();
  std::uint32_t crc = detail::crc32c(0, fixed.data(), kFixedHeader);
  crc = detail::crc32c(crc, rest.data(), cfg_len);
  if (*n != rest.size() ||
      detail::crc_unmask(detail::get_be32(reinterpret_cast<const std::byte*>(rest.data()) + cfg_len)) != crc) {
    why = "header checksum mismatch";
    return errc::snapshot_corrupt;
  }
  auto cfg = config_from_json(std::string_view(rest.data(), cfg_len));
  if (!cfg) {
    why = "bad configuration";
    return errc::snapshot_corrupt;
  }
  h.config = std::move(*cfg);
  std::array<std::byte, kTrailer> tr{};
  n = (*f)->read_at(*size - kTrailer, tr);
  if (!n) return n.error();
  h.data_bytes = *size - kTrailer - h.header_bytes;
  if (*n != kTrailer || detail::get_be64(tr.data()) != h.data_bytes) {
    why = "trailer does not match the file size (half-written?)";
    return errc::snapshot_corrupt;
  }
  return h;
}

class SnapshotFileReader final : public Reader {
 public:
  SnapshotFileReader(std::unique_ptr<File> f, std::uint64_t offset, std::uint64_t remaining)
      : f_(std::move(f)), offset_(offset), remaining_(remaining) {}

  result<std::size_t> read(std::span<std::byte> out) override {
    if (remaining_ == 0) {
      // A caller that reads exactly the data size never asks again, so the
      // check runs when the last byte is delivered (below); this covers a
      // snapshot with no data.
      if (!checked_)
        if (auto r = check(); !r) return r.error();
      return std::size_t{0};
    }
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), remaining_));
    auto n = f_->read_at(offset_, out.first(want));
    if (!n) return n.error();
    if (*n == 0) return errc::snapshot_corrupt;
    crc_ = detail::crc32c(crc_, out.data(), *n);
    offset_ += *n;
    remaining_ -= *n;
    if (remaining_ == 0)
      if (auto r = check(); !r) return r.error();
    return *n;
  }

 private:
  result<void> check() {
    checked_ = true;
    std::array<std::byte, kTrailer> tr{};
    auto n = f_->read_at(offset_, tr);
    if (!n) return n.error();
    if (*n != kTrailer || detail::crc_unmask(detail::get_be32(tr.data() + 8)) != crc_) return errc::snapshot_corrupt;
    return {};
  }

  std::unique_ptr<File> f_;
  std::uint64_t offset_, remaining_;
  std::uint32_t crc_ = 0;
  bool checked_ = false;
};

struct StoreState {
  Filesystem* fs = nullptr;
  std::string dir;
  std::function<void(const std::string&)> warn;
  mutable std::mutex mu;
  std::vector<SnapshotMeta> valid;  // sorted by (index, term)
  std::set<std::string> writing;    // temp names of open sinks

  void add(SnapshotMeta m) {
    std::lock_guard lk(mu);
    std::erase_if(valid, [&](const SnapshotMeta& v) { return v.path == m.path; });
    valid.push_back(std::move(m));
    std::sort(valid.begin(), valid.end(),
              [](const SnapshotMeta& a, const SnapshotMeta& b) { return std::tie(a.index, a.term) < std::tie(b.index, b.term); });
  }
};

// The sink must not outlive the store that created it.
class FileSink final : public SnapshotSink {
 public:
  FileSink(StoreState* store, std::unique_ptr<File> f, std::string tmp, std::string path, std::uint64_t index,
           std::uint64_t term, Config config)
      : store_(store), f_(std::move(f)), tmp_(std::move(tmp)), path_(std::move(path)), index_(index), term_(term),
        config_(std::move(config)) {}
  ~FileSink() override { abort(); }

  result<std::size_t> write(std::span<const std::byte> data) override {
    if (done_) return errc::invalid_argument;
    crc_ = detail::crc32c(crc_, data.data(), data.size());
    bytes_ += data.size();
    buf_.append(reinterpret_cast<const char*>(data.data()), data.size());
    if (buf_.size() >= kSinkBufferBytes)
      if (auto r = flush(); !r) return r.error();
    return data.size();
  }

  result<SnapshotMeta> commit() override {
    if (done_) return errc::invalid_argument;
    std::array<std::byte, kTrailer> tr{};
    detail::put_be64(tr.data(), bytes_);
    detail::put_be32(tr.data() + 8, detail::crc_mask(crc_));
    buf_.append(reinterpret_cast<const char*>(tr.data()), tr.size());
    if (auto r = flush(); !r) return r.error();
    if (auto r = f_->sync(); !r) return r.error();
    f_.reset();
    if (auto r = store_->fs->rename(tmp_, path_); !r) return r.error();
    if (auto r = store_->fs->sync_dir(store_->dir); !r) return r.error();
    done_ = true;
    {
      std::lock_guard lk(store_->mu);
      store_->writing.erase(tmp_);
    }
    SnapshotMeta m{index_, term_, config_, path_, bytes_};
    store_->add(m);
    return m;
  }

  void abort() override {
    if (done_) return;
    done_ = true;
    f_.reset();
    (void)store_->fs->unlink(tmp_);
    std::lock_guard lk(store_->mu);
    store_->writing.erase(tmp_);
  }

 private:
  result<void> flush() {
    if (buf_.empty()) return {};
    auto r = f_->append(std::as_bytes(std::span(buf_.data(), buf_.size())));
    buf_.clear();
    return r;
  }

  StoreState* store_;
  std::unique_ptr<File> f_;
  std::string tmp_, path_;
  std::uint64_t index_, term_;
  Config config_;
  std::string buf_;
  std::uint32_t crc_ = 0;
  std::uint64_t bytes_ = 0;
  bool done_ = false;
};

}  // namespace

struct SnapshotStore::Impl : StoreState {};

SnapshotStore::SnapshotStore() : impl_(std::make_unique<Impl>()) {}
SnapshotStore::~SnapshotStore() = default;

result<std::unique_ptr<SnapshotStore>> SnapshotStore::open(Filesystem& fs, std::string dir,
                                                           std::function<void(const std::string&)> warn) {
  std::unique_ptr<SnapshotStore> s(new SnapshotStore());
  Impl& m = *s->impl_;
  m.fs = &fs;
  m.dir = std::move(dir);
  m.warn = std::move(warn);
  if (auto r = fs.mkdir(m.dir); !r) return r.error();
  auto names = fs.list(m.dir);
  if (!names) return names.error();
  for (const auto& name : *names) {
    const std::string path = m.dir + "/" + name;
    std::uint64_t term = 0, index = 0;
    if (name.ends_with(".tmp")) {
      if (m.warn) m.warn(fmt::format("ignoring half-written snapshot {}", path));
      continue;
    }
    if (!parse_snap_name(name, term, index)) continue;
    std::string why;
    auto h = read_header(fs, path, why);
    if (h && (h->index != index || h->term != term)) {
      why = "name does not match header";
      h = errc::snapshot_corrupt;
    }
    if (!h) {
      if (h.error() != errc::snapshot_corrupt) return h.error();
      if (m.warn) m.warn(fmt::format("ignoring corrupt snapshot {}: {}", path, why));
      continue;
    }
    m.add(SnapshotMeta{h->index, h->term, std::move(h->config), path, h->data_bytes});
  }
  return s;
}

result<std::unique_ptr<SnapshotSink>> SnapshotStore::create(std::uint64_t index, std::uint64_t term,
                                                            const Config& config) {
  Impl& m = *impl_;
  const std::string path = m.dir + "/" + snap_name(term, index);
  const std::string tmp = path + ".tmp";
  const std::string json = to_json(config);
  if (json.size() > kConfigBytesMax) return errc::invalid_config;
  std::string header(kFixedHeader, '\0');
  auto* h = reinterpret_cast<std::byte*>(header.data());
  detail::put_be64(h, kSnapMagic);
  detail::put_be32(h + 8, kSnapVersion);
  detail::put_be64(h + 12, index);
  detail::put_be64(h + 20, term);
  detail::put_be32(h + 28, static_cast<std::uint32_t>(json.size()));
  header += json;
  std::array<std::byte, 4> crc{};
  detail::put_be32(crc.data(), detail::crc_mask(detail::crc32c(0, header.data(), header.size())));
  header.append(reinterpret_cast<const char*>(crc.data()), crc.size());
  auto f = m.fs->open(tmp, OpenFlags{.create = true, .truncate = true});
  if (!f) return f.error();
  if (auto r = (*f)->append(std::as_bytes(std::span(header.data(), header.size()))); !r) {
    f->reset();
    (void)m.fs->unlink(tmp);
    return r.error();
  }
  {
    std::lock_guard lk(m.mu);
    m.writing.insert(tmp);
  }
  return std::unique_ptr<SnapshotSink>(
      new FileSink(&m, std::move(*f), tmp, path, index, term, config));
}

std::optional<SnapshotMeta> SnapshotStore::latest() const {
  std::lock_guard lk(impl_->mu);
  if (impl_->valid.empty()) return std::nullopt;
  return impl_->valid.back();
}

result<std::unique_ptr<Reader>> SnapshotStore::open_reader(const SnapshotMeta& meta) const {
  std::string why;
  auto h = read_header(*impl_->fs, meta.path, why);
  if (!h) {
    if (impl_->warn && h.error() == errc::snapshot_corrupt)
      impl_->warn(fmt::format("snapshot {} unreadable: {}", meta.path, why));
    return h.error();
  }
  auto f = impl_->fs->open(meta.path, OpenFlags{.read_only = true});
  if (!f) return f.error();
  return std::unique_ptr<Reader>(new SnapshotFileReader(std::move(*f), h->header_bytes, h->data_bytes));
}

result<void> SnapshotStore::remove_older_than(std::uint64_t index) {
  Impl& m = *impl_;
  std::vector<std::string> doomed;
  {
    std::lock_guard lk(m.mu);
    for (auto it = m.valid.begin(); it != m.valid.end();) {
      if (it->index < index) {
        doomed.push_back(it->path);
        it = m.valid.erase(it);
      } else {
        ++it;
      }
    }
  }
  auto names = m.fs->list(m.dir);
  if (!names) return names.error();
  for (const auto& name : *names) {
    const std::string path = m.dir + "/" + name;
    std::lock_guard lk(m.mu);
    if (name.ends_with(".tmp") && !m.writing.count(path)) doomed.push_back(path);
  }
  for (const auto& p : doomed)
    if (auto r = m.fs->unlink(p); !r) return r.error();
  if (!doomed.empty())
    if (auto r = m.fs->sync_dir(m.dir); !r) return r.error();
  return {};
}

}  // namespace raft::storage
