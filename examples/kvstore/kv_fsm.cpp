#include "kvstore/kv_fsm.hpp"

#include <raft/assert.hpp>
#include <raft/detail/crc32c.hpp>
#include <raft/detail/endian.hpp>

#include <algorithm>
#include <array>
#include <iterator>
#include <cstring>
#include <vector>

namespace kvstore {

using raft::errc;
using raft::result;

std::string_view to_string(Op op) noexcept {
  switch (op) {
    case Op::put: return "PUT";
    case Op::cas: return "CAS";
    case Op::del: return "DELETE";
    case Op::read: return "READ";
  }
  return "?";
}

// ---------------------------------------------------------------- commands

std::string_view validate(const Command& c) noexcept {
  if (c.key.empty()) return "empty key";
  if (c.key.size() > kMaxKeyBytes) return "key longer than 1024 bytes";
  switch (c.op) {
    case Op::put:
      if (c.value.size() > kMaxValueBytes) return "value longer than 1 MiB";
      break;
    case Op::cas:
      if (c.value.size() > kMaxValueBytes) return "value longer than 1 MiB";
      if (c.prev && c.prev->size() > kMaxValueBytes) return "expected value longer than 1 MiB";
      break;
    case Op::del:
    case Op::read:
      break;
    default:
      return "unknown operation";
  }
  return {};
}

namespace {

void put_u32(std::string& out, std::uint32_t v) {
  std::array<std::byte, 4> b;
  raft::detail::put_be32(b.data(), v);
  out.append(reinterpret_cast<const char*>(b.data()), b.size());
}
void put_u64(std::string& out, std::uint64_t v) {
  std::array<std::byte, 8> b;
  raft::detail::put_be64(b.data(), v);
  out.append(reinterpret_cast<const char*>(b.data()), b.size());
}
void put_str(std::string& out, std::string_view s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

// Bounds-checked cursor over untrusted bytes.
class Cursor {
 public:
  explicit Cursor(std::string_view in) : in_(in) {}
  bool u8(std::uint8_t& v) {
    if (in_.empty()) return false;
    v = static_cast<std::uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (in_.size() < 4) return false;
    v = raft::detail::get_be32(reinterpret_cast<const std::byte*>(in_.data()));
    in_.remove_prefix(4);
    return true;
  }
  // A length-prefixed string of at most `max` bytes.
  bool str(std::string& s, std::size_t max) {
    std::uint32_t n;
    if (!u32(n) || n > max || n > in_.size()) return false;
    s.assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

}  // namespace

result<std::string> encode_command(const Command& c) {
  if (!validate(c).empty()) return errc::invalid_argument;
  std::string out;
  out.reserve(2 + 4 + c.key.size() + 9 + (c.prev ? c.prev->size() : 0) + c.value.size());
  out.push_back(static_cast<char>(kCommandVersion));
  out.push_back(static_cast<char>(c.op));
  put_str(out, c.key);
  if (c.op == Op::cas) {
    out.push_back(c.prev ? 1 : 0);
    if (c.prev) put_str(out, *c.prev);
  }
  if (c.op == Op::put || c.op == Op::cas) put_str(out, c.value);
  return out;
}

result<Command> decode_command(std::string_view bytes) {
  Cursor in(bytes);
  std::uint8_t version, op;
  if (!in.u8(version) || version != kCommandVersion) return errc::invalid_argument;
  if (!in.u8(op) || op < 1 || op > 4) return errc::invalid_argument;
  Command c;
  c.op = static_cast<Op>(op);
  if (!in.str(c.key, kMaxKeyBytes) || c.key.empty()) return errc::invalid_argument;
  if (c.op == Op::cas) {
    std::uint8_t has_prev;
    if (!in.u8(has_prev) || has_prev > 1) return errc::invalid_argument;
    if (has_prev) {
      c.prev.emplace();
      if (!in.str(*c.prev, kMaxValueBytes)) return errc::invalid_argument;
    }
  }
  if (c.op == Op::put || c.op == Op::cas) {
    if (!in.str(c.value, kMaxValueBytes)) return errc::invalid_argument;
  }
  if (!in.done()) return errc::invalid_argument;
  return c;
}

// ---------------------------------------------------------------- the FSM

KvFsm::KvFsm(std::size_t outcome_retention)
    : map_(std::make_shared<Map>()), outcome_retention_(outcome_retention) {}

KvFsm::Map& KvFsm::mutable_map() {
  // Another reference can only be taken under mu_, which we hold exclusively,
  // so a count of 1 cannot grow under us. A snapshot that drops its reference
  // does so with a release decrement; the acquire fence orders its last reads
  // of the map before our writes.
  if (map_.use_count() == 1) {
    std::atomic_thread_fence(std::memory_order_acquire);
  } else {
    map_ = std::make_shared<Map>(*map_);
  }
  return *map_;
}

Outcome KvFsm::apply_command(std::string_view data) {
  auto cmd = decode_command(data);
  if (!cmd) return Outcome{Op::put, Outcome::Status::invalid, std::nullopt};
  Outcome out{cmd->op, Outcome::Status::ok, std::nullopt};
  auto it = map_->find(cmd->key);
  if (it != map_->end()) out.previous = it->second;
  switch (cmd->op) {
    case Op::put:
      mutable_map().insert_or_assign(std::move(cmd->key), std::move(cmd->value));
      break;
    case Op::cas:
      if (out.previous != cmd->prev) {
        out.status = Outcome::Status::cas_failed;
      } else {
        mutable_map().insert_or_assign(std::move(cmd->key), std::move(cmd->value));
      }
      break;
    case Op::del:
      if (out.previous) mutable_map().erase(cmd->key);
      break;
    case Op::read:
      break;
  }
  return out;
}

void KvFsm::must_apply(const raft::LogEntry& entry) {
  std::optional<Outcome> outcome;
  {
    std::unique_lock lock(mu_);
    const std::uint64_t last = index_.load(std::memory_order_relaxed);
    if (entry.index <= last) return;  // a replay of something already applied
    RAFT_ASSERT(entry.index == last + 1, "KvFsm: the Log skipped committed entries");
    if (entry.type == raft::LogEntryType::command) {
      outcome = apply_command(entry.data);
      outcomes_.emplace_back(entry.index, *outcome);
      while (outcomes_.size() > outcome_retention_) outcomes_.pop_front();
    }
    index_.store(entry.index, std::memory_order_release);
  }
  if (outcome && on_applied_) on_applied_(entry.index, *outcome);
}

std::optional<std::string> KvFsm::get(std::string_view key) const {
  std::shared_lock lock(mu_);
  auto it = map_->find(key);
  if (it == map_->end()) return std::nullopt;
  return it->second;
}

std::size_t KvFsm::size() const {
  std::shared_lock lock(mu_);
  return map_->size();
}

std::optional<Outcome> KvFsm::result_of(std::uint64_t index) const {
  std::shared_lock lock(mu_);
  if (outcomes_.empty() || index < outcomes_.front().first || index > outcomes_.back().first) return std::nullopt;
  // Indexes are increasing but not contiguous (non-command entries are not
  // recorded): binary search.
  auto it = std::lower_bound(outcomes_.begin(), outcomes_.end(), index,
                             [](const auto& e, std::uint64_t i) { return e.first < i; });
  if (it == outcomes_.end() || it->first != index) return std::nullopt;
  return it->second;
}

void KvFsm::on_applied(AppliedCallback cb) {
  std::unique_lock lock(mu_);
  on_applied_ = std::move(cb);
}

// ---------------------------------------------------------------- snapshots

namespace {

constexpr std::string_view kSnapMagic = "RKVS";
constexpr std::string_view kSnapEndMagic = "RKVE";
constexpr std::size_t kSnapHeaderBytes = 4 + 4 + 8 + 8;

// Buffers output into bounded chunks and checksums everything written.
class ChunkWriter {
 public:
  explicit ChunkWriter(raft::Writer& w) : w_(w) { buf_.reserve(kSnapshotChunkBytes); }
  std::string& buf() { return buf_; }
  result<void> maybe_flush() {
    if (buf_.size() >= kSnapshotChunkBytes) return flush();
    return {};
  }
  result<void> flush() {
    crc_ = raft::detail::crc32c(crc_, buf_.data(), buf_.size());
    auto r = raft::write_all(w_, buf_);
    buf_.clear();
    return r;
  }
  std::uint32_t crc() const { return crc_; }

 private:
  raft::Writer& w_;
  std::string buf_;
  std::uint32_t crc_ = 0;
};

// Reads exact byte counts and checksums everything read.
class CheckedReader {
 public:
  explicit CheckedReader(raft::Reader& r) : r_(r) {}
  // errc::unexpected_eof if the input ends first.
  result<void> read(void* dst, std::size_t n) {
    auto got = raft::read_full(r_, std::span(static_cast<std::byte*>(dst), n));
    if (!got) return got.error();
    if (*got != n) return errc::unexpected_eof;
    crc_ = raft::detail::crc32c(crc_, dst, n);
    return {};
  }
  std::uint32_t crc() const { return crc_; }

 private:
  raft::Reader& r_;
  std::uint32_t crc_ = 0;
};

}  // namespace

result<std::uint64_t> KvFsm::snapshot(raft::Writer& w) {
  std::shared_ptr<const Map> view;
  std::uint64_t index;
  {
    // Exclusive, so that the (map, index) pair is a consistent cut and so
    // that mutable_map()'s use_count() test cannot race with this copy.
    std::unique_lock lock(mu_);
    view = map_;
    index = index_.load(std::memory_order_relaxed);
  }
  ChunkWriter out(w);
  std::string& b = out.buf();
  b.append(kSnapMagic);
  put_u32(b, kSnapshotVersion);
  put_u64(b, index);
  put_u64(b, view->size());
  for (const auto& [k, v] : *view) {
    put_u32(b, static_cast<std::uint32_t>(k.size()));
    put_u32(b, static_cast<std::uint32_t>(v.size()));
    b.append(k);
    b.append(v);
    if (auto r = out.maybe_flush(); !r) return r.error();
  }
  if (auto r = out.flush(); !r) return r.error();
  put_u32(b, raft::detail::crc_mask(out.crc()));
  b.append(kSnapEndMagic);
  if (auto r = raft::write_all(w, b); !r) return r.error();
  return index;
}

result<void> KvFsm::restore(raft::Reader& r) {
  CheckedReader in(r);
  std::array<std::byte, kSnapHeaderBytes> h;
  if (auto e = in.read(h.data(), h.size()); !e) return e.error();
  if (std::memcmp(h.data(), kSnapMagic.data(), 4) != 0) return errc::snapshot_corrupt;
  if (raft::detail::get_be32(h.data() + 4) != kSnapshotVersion) return errc::snapshot_corrupt;
  const std::uint64_t index = raft::detail::get_be64(h.data() + 8);
  const std::uint64_t count = raft::detail::get_be64(h.data() + 16);

  auto map = std::make_shared<Map>();
  std::string key, value;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::array<std::byte, 8> lens;
    if (auto e = in.read(lens.data(), lens.size()); !e) return e.error();
    const std::uint32_t klen = raft::detail::get_be32(lens.data());
    const std::uint32_t vlen = raft::detail::get_be32(lens.data() + 4);
    if (klen == 0 || klen > kMaxKeyBytes || vlen > kMaxValueBytes) return errc::snapshot_corrupt;
    key.resize(klen);
    value.resize(vlen);
    if (auto e = in.read(key.data(), klen); !e) return e.error();
    if (auto e = in.read(value.data(), vlen); !e) return e.error();
    if (!map->empty() && !(std::prev(map->end())->first < key)) return errc::snapshot_corrupt;
    map->emplace_hint(map->end(), std::move(key), std::move(value));
    key.clear();
    value.clear();
  }
  const std::uint32_t crc = in.crc();
  std::array<std::byte, 8> trailer;
  if (auto e = in.read(trailer.data(), trailer.size()); !e) return e.error();
  if (raft::detail::crc_unmask(raft::detail::get_be32(trailer.data())) != crc) return errc::snapshot_corrupt;
  if (std::memcmp(trailer.data() + 4, kSnapEndMagic.data(), 4) != 0) return errc::snapshot_corrupt;
  std::byte extra;
  auto tail = raft::read_full(r, std::span(&extra, 1));
  if (!tail) return tail.error();
  if (*tail != 0) return errc::snapshot_corrupt;

  std::unique_lock lock(mu_);
  map_ = std::move(map);
  outcomes_.clear();
  index_.store(index, std::memory_order_release);
  return {};
}

}  // namespace kvstore
