// The crash model (see memory_filesystem.hpp):
//
// Each file (inode) holds its current bytes plus an undo log of the writes,
// truncations and preallocations made since its last sync/datasync. On
// crash() the undo log is rolled back to the synced state, and then, for each
// file, a seed-chosen one of two things happens:
// * In order: a seed-chosen prefix of those unsynced operations is replayed,
//   the last replayed write cut at a seed-chosen byte. That covers
//   "everything unsynced is lost" (prefix 0) and "the last write reached the
//   disk only in part" (a torn tail).
// * Page by page: the kernel writes dirty pages back in no particular order,
//   so each 4 KiB page of the file independently ends up with a seed-chosen
//   prefix of the unsynced writes that touched it (possibly none: the page
//   keeps its synced bytes, zeros past the synced data). A later page can
//   thus hold a later write while an earlier page never got an earlier one.
// In both, an unsynced size change (truncation, preallocation) is metadata,
// written back independently of the data: it may be lost, or survive, on its
// own. That is why a truncation must be synced before writes that depend on
// it.
//
// The namespace exists twice: the current one and the durable one. create,
// rename and unlink change the current one; sync_dir(d) copies every entry
// of d from the current into the durable one; crash() throws the current one
// away. mkdir is durable at once (raft creates its directories once, before
// anything that matters is written into them).
#include "raft/storage/memory_filesystem.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>

namespace raft::storage {
namespace {

constexpr std::uint64_t kPage = 4096;  // the crash model's unit of writeback

struct PendingOp {
  bool truncate = false;        // a truncation
  bool extend = false;          // a preallocation (grew the file by zeros)
  std::uint64_t offset = 0;     // write: where; truncate, extend: the new size
  std::string bytes;            // write: the data written
  std::uint64_t old_size = 0;   // data.size() before the op
  std::uint64_t old_reserved = 0;  // reserved before the op
  std::string old_bytes;        // bytes the op overwrote or cut off
};

struct Inode {
  std::string data;
  // Preallocated size: the file is max(data.size(), reserved) bytes long,
  // zeros past data. Kept apart so a reservation costs no memory.
  std::uint64_t reserved = 0;
  std::vector<PendingOp> pending;  // since the last sync, oldest first

  std::uint64_t size() const { return std::max<std::uint64_t>(data.size(), reserved); }

  void apply_write(std::uint64_t offset, std::string_view bytes, bool record) {
    PendingOp op;
    op.offset = offset;
    op.old_size = data.size();
    if (record) {
      if (offset < data.size()) op.old_bytes.assign(data, offset, std::min<std::uint64_t>(bytes.size(), data.size() - offset));
      op.bytes.assign(bytes);
    }
    if (offset + bytes.size() > data.size()) data.resize(offset + bytes.size());
    if (!bytes.empty()) std::memcpy(data.data() + offset, bytes.data(), bytes.size());
    if (record) pending.push_back(std::move(op));
  }
  void apply_truncate(std::uint64_t size, bool record) {
    PendingOp op;
    op.truncate = true;
    op.offset = size;
    op.old_size = data.size();
    op.old_reserved = reserved;
    if (record && size < data.size()) op.old_bytes.assign(data, size);
    data.resize(size);
    reserved = 0;
    if (record) pending.push_back(std::move(op));
  }
  void apply_extend(std::uint64_t size, bool record) {
    if (size <= this->size()) return;
    PendingOp op;
    op.extend = true;
    op.offset = size;
    op.old_size = data.size();
    op.old_reserved = reserved;
    reserved = size;
    if (record) pending.push_back(std::move(op));
  }
  void undo(const PendingOp& op) {
    if (op.extend) {
      reserved = op.old_reserved;
    } else if (op.truncate) {
      data.resize(op.old_size);
      reserved = op.old_reserved;
      if (!op.old_bytes.empty()) std::memcpy(data.data() + op.offset, op.old_bytes.data(), op.old_bytes.size());
    } else {
      if (!op.old_bytes.empty()) std::memcpy(data.data() + op.offset, op.old_bytes.data(), op.old_bytes.size());
      data.resize(op.old_size);
    }
  }
};

std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

// A size change is metadata and need not reach the disk in order with the
// data written after it: it may be lost on its own.
void replay_size_change(Inode& ino, const PendingOp& op, std::mt19937_64& rng) {
  if (rng() % 2 == 0) return;
  if (op.extend)
    ino.apply_extend(op.offset, false);
  else
    ino.apply_truncate(op.offset, false);
}

// A prefix of the unsynced operations, the last write cut at some byte.
void replay_in_order(Inode& ino, const std::vector<PendingOp>& ops, std::mt19937_64& rng) {
  const std::size_t keep = static_cast<std::size_t>(rng() % (ops.size() + 1));
  for (std::size_t i = 0; i < keep; ++i) {
    const auto& op = ops[i];
    if (op.truncate || op.extend) {
      replay_size_change(ino, op, rng);
    } else if (i + 1 < keep) {
      ino.apply_write(op.offset, op.bytes, false);
    } else {
      const std::size_t cut = static_cast<std::size_t>(rng() % (op.bytes.size() + 1));
      ino.apply_write(op.offset, std::string_view(op.bytes).substr(0, cut), false);
    }
  }
}

// Every page gets a prefix of the writes that touched it, chosen per page.
void replay_by_page(Inode& ino, const std::vector<PendingOp>& ops, std::mt19937_64& rng) {
  std::map<std::uint64_t, std::size_t> keep;  // page -> how many of its writes survive
  {
    std::map<std::uint64_t, std::size_t> writes;  // page -> writes touching it
    for (const auto& op : ops) {
      if (op.truncate || op.extend || op.bytes.empty()) continue;
      for (std::uint64_t pg = op.offset / kPage; pg * kPage < op.offset + op.bytes.size(); ++pg) ++writes[pg];
    }
    for (const auto& [pg, n] : writes) keep[pg] = static_cast<std::size_t>(rng() % (n + 1));
  }
  std::map<std::uint64_t, std::size_t> seen;
  for (const auto& op : ops) {
    if (op.truncate || op.extend) {
      replay_size_change(ino, op, rng);
      continue;
    }
    for (std::uint64_t pg = op.offset / kPage; pg * kPage < op.offset + op.bytes.size(); ++pg) {
      if (seen[pg]++ >= keep[pg]) continue;
      const std::uint64_t from = std::max(op.offset, pg * kPage);
      const std::uint64_t to = std::min(op.offset + op.bytes.size(), (pg + 1) * kPage);
      ino.apply_write(from, std::string_view(op.bytes).substr(from - op.offset, to - from), false);
    }
  }
}

// All of the filesystem's state, behind one mutex; File handles share it.
struct MemFsState {
  mutable std::mutex mu;
  std::mt19937_64 rng;
  std::uint64_t epoch = 0;  // bumped by crash(); older handles are dead
  std::uint64_t ops = 0;
  std::optional<std::uint64_t> stop;
  std::vector<std::pair<std::string, errc>> fail;
  std::map<std::string, std::shared_ptr<Inode>> cur, durable;
  std::set<std::string> dirs;
  std::uint64_t writeback_bytes = 0, writeback_past_end = 0;  // start_writeback() hints

  explicit MemFsState(std::uint64_t seed) : rng(seed) {}

  // Every mutating call passes here first: it is one persistence point.
  std::error_code point(std::string_view kind) {
    if (stop && ops >= *stop) return errc::io_error;
    for (auto it = fail.begin(); it != fail.end(); ++it) {
      if (it->first == kind || it->first == "any") {
        const errc e = it->second;
        fail.erase(it);
        ++ops;
        return e;
      }
    }
    ++ops;
    return {};
  }
};

class MemFile final : public File {
 public:
  MemFile(std::shared_ptr<MemFsState> s, std::shared_ptr<Inode> ino, std::uint64_t epoch, bool ro)
      : s_(std::move(s)), ino_(std::move(ino)), epoch_(epoch), ro_(ro), end_(ino_->size()) {}

  result<std::size_t> read_at(std::uint64_t offset, std::span<std::byte> out) override {
    std::lock_guard lk(s_->mu);
    if (epoch_ != s_->epoch) return errc::io_error;
    const auto& d = ino_->data;
    const std::uint64_t size = ino_->size();
    if (offset >= size) return std::size_t{0};
    const std::size_t n = std::min<std::uint64_t>(out.size(), size - offset);
    const std::size_t have = offset >= d.size() ? 0 : std::min<std::uint64_t>(n, d.size() - offset);
    if (have > 0) std::memcpy(out.data(), d.data() + offset, have);
    std::memset(out.data() + have, 0, n - have);  // reserved space reads as zeros
    return n;
  }
  result<void> append(std::span<const std::byte> data) override {
    std::lock_guard lk(s_->mu);
    if (auto e = check("append")) return e;
    ino_->apply_write(end_, as_view(data), true);
    end_ += data.size();
    return {};
  }
  result<void> write_at(std::uint64_t offset, std::span<const std::byte> data) override {
    std::lock_guard lk(s_->mu);
    if (auto e = check("write")) return e;
    ino_->apply_write(offset, as_view(data), true);
    end_ = std::max<std::uint64_t>(end_, offset + data.size());
    return {};
  }
  result<void> sync() override { return do_sync(); }
  result<void> datasync() override { return do_sync(); }
  void start_writeback(std::uint64_t offset, std::uint64_t len) override {
    // Only a hint (nothing becomes durable): counted so tests can see it.
    std::lock_guard lk(s_->mu);
    s_->writeback_bytes += len;
    if (offset + len > ino_->size()) ++s_->writeback_past_end;
  }
  result<void> truncate(std::uint64_t size) override {
    std::lock_guard lk(s_->mu);
    if (auto e = check("truncate")) return e;
    ino_->apply_truncate(size, true);
    end_ = size;
    return {};
  }
  // Like the POSIX file: the size this handle last left the file at.
  result<std::uint64_t> size() override {
    std::lock_guard lk(s_->mu);
    if (epoch_ != s_->epoch) return errc::io_error;
    return end_;
  }
  // Grows the file by zeros (undone by a crash unless synced, like any size
  // change). Only a hint: not a persistence point, never fails.
  void preallocate(std::uint64_t len) override {
    std::lock_guard lk(s_->mu);
    if (epoch_ != s_->epoch || ro_ || (s_->stop && s_->ops >= *s_->stop)) return;
    ino_->apply_extend(len, true);
  }

 private:
  static std::string_view as_view(std::span<const std::byte> d) {
    return {reinterpret_cast<const char*>(d.data()), d.size()};
  }
  std::error_code check(std::string_view kind) {
    if (epoch_ != s_->epoch || ro_) return errc::io_error;
    return s_->point(kind);
  }
  result<void> do_sync() {
    std::lock_guard lk(s_->mu);
    if (auto e = check("sync")) return e;
    ino_->pending.clear();
    return {};
  }

  std::shared_ptr<MemFsState> s_;
  std::shared_ptr<Inode> ino_;
  std::uint64_t epoch_;
  bool ro_;
  std::uint64_t end_;  // where append() writes
};

}  // namespace

struct MemoryFilesystem::State : MemFsState {
  using MemFsState::MemFsState;
};

MemoryFilesystem::MemoryFilesystem(std::uint64_t seed) : s_(std::make_shared<State>(seed)) {}
MemoryFilesystem::~MemoryFilesystem() = default;

result<std::unique_ptr<File>> MemoryFilesystem::open(const std::string& path, OpenFlags flags) {
  std::lock_guard lk(s_->mu);
  auto it = s_->cur.find(path);
  std::shared_ptr<Inode> ino;
  if (it == s_->cur.end()) {
    if (!flags.create || flags.read_only) return errc::io_error;
    if (auto e = s_->point("create")) return e;
    ino = std::make_shared<Inode>();
    s_->cur[path] = ino;
  } else {
    if (flags.create && flags.exclusive) return errc::io_error;
    ino = it->second;
    if (flags.truncate && !flags.read_only && ino->size() > 0) {
      if (auto e = s_->point("truncate")) return e;
      ino->apply_truncate(0, true);
    }
  }
  return std::unique_ptr<File>(new MemFile(s_, ino, s_->epoch, flags.read_only));
}

result<void> MemoryFilesystem::rename(const std::string& from, const std::string& to) {
  std::lock_guard lk(s_->mu);
  auto it = s_->cur.find(from);
  if (it == s_->cur.end()) return errc::io_error;
  if (auto e = s_->point("rename")) return e;
  auto ino = it->second;
  s_->cur.erase(it);
  s_->cur[to] = std::move(ino);
  return {};
}

result<void> MemoryFilesystem::unlink(const std::string& path) {
  std::lock_guard lk(s_->mu);
  auto it = s_->cur.find(path);
  if (it == s_->cur.end()) return errc::io_error;
  if (auto e = s_->point("unlink")) return e;
  s_->cur.erase(it);
  return {};
}

result<std::vector<std::string>> MemoryFilesystem::list(const std::string& dir) {
  std::lock_guard lk(s_->mu);
  if (!s_->dirs.count(dir)) return errc::io_error;
  std::vector<std::string> names;
  for (const auto& [p, ino] : s_->cur)
    if (parent_of(p) == dir) names.push_back(p.substr(dir.size() + 1));
  for (const auto& d : s_->dirs)
    if (parent_of(d) == dir) names.push_back(d.substr(dir.size() + 1));
  std::sort(names.begin(), names.end());
  return names;
}

result<void> MemoryFilesystem::mkdir(const std::string& path) {
  std::lock_guard lk(s_->mu);
  if (s_->cur.count(path)) return errc::io_error;
  s_->dirs.insert(path);
  return {};
}

result<void> MemoryFilesystem::sync_dir(const std::string& dir) {
  std::lock_guard lk(s_->mu);
  if (!s_->dirs.count(dir)) return errc::io_error;
  if (auto e = s_->point("sync_dir")) return e;
  for (auto it = s_->durable.begin(); it != s_->durable.end();) {
    if (parent_of(it->first) == dir && !s_->cur.count(it->first))
      it = s_->durable.erase(it);
    else
      ++it;
  }
  for (const auto& [p, ino] : s_->cur)
    if (parent_of(p) == dir) s_->durable[p] = ino;
  return {};
}

result<bool> MemoryFilesystem::exists(const std::string& path) {
  std::lock_guard lk(s_->mu);
  return s_->cur.count(path) > 0 || s_->dirs.count(path) > 0;
}

void MemoryFilesystem::crash() {
  std::lock_guard lk(s_->mu);
  ++s_->epoch;
  s_->cur = s_->durable;
  // Visit inodes in path order so the draws from the seed are reproducible.
  std::set<Inode*> seen;
  for (const auto& [p, ino] : s_->cur) {
    if (!seen.insert(ino.get()).second) continue;
    auto ops = std::move(ino->pending);
    ino->pending.clear();
    for (auto it = ops.rbegin(); it != ops.rend(); ++it) ino->undo(*it);
    if (ops.empty()) continue;
    if (s_->rng() % 2) {
      replay_in_order(*ino, ops, s_->rng);
    } else {
      replay_by_page(*ino, ops, s_->rng);
    }
  }
}

std::uint64_t MemoryFilesystem::ops() const {
  std::lock_guard lk(s_->mu);
  return s_->ops;
}

void MemoryFilesystem::stop_at(std::optional<std::uint64_t> n) {
  std::lock_guard lk(s_->mu);
  s_->stop = n;
}

void MemoryFilesystem::fail_next(const std::string& kind, errc e) {
  std::lock_guard lk(s_->mu);
  s_->fail.emplace_back(kind, e);
}

std::pair<std::uint64_t, std::uint64_t> MemoryFilesystem::writeback_hints() const {
  std::lock_guard lk(s_->mu);
  return {s_->writeback_bytes, s_->writeback_past_end};
}

std::uint64_t MemoryFilesystem::total_bytes() const {
  std::lock_guard lk(s_->mu);
  std::set<Inode*> seen;
  std::uint64_t n = 0;
  for (const auto& [p, ino] : s_->cur)
    if (seen.insert(ino.get()).second) n += ino->data.size();
  return n;
}

}  // namespace raft::storage
