// Helpers shared by the storage tests.
#pragma once

#include <raft/log_entry.hpp>
#include <raft/storage/filesystem.hpp>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace raft::storage::testing {

// Deterministic payload of `size` bytes that differs per index and term, so
// an entry read back from the wrong place never compares equal.
inline LogEntry make_entry(std::uint64_t index, std::uint64_t term, std::size_t size) {
  LogEntry e;
  e.type = index % 7 == 0 ? LogEntryType::nop : LogEntryType::command;
  e.index = index;
  e.term = term;
  e.data.resize(size);
  std::uint64_t x = index * 0x9e3779b97f4a7c15ull + term;
  for (auto& c : e.data) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return e;
}

inline std::vector<LogEntry> make_entries(std::uint64_t first, std::uint64_t last, std::uint64_t term, std::size_t size) {
  std::vector<LogEntry> v;
  for (std::uint64_t i = first; i <= last; ++i) v.push_back(make_entry(i, term, size + i % 13));
  return v;
}

inline std::string read_file(Filesystem& fs, const std::string& path) {
  auto f = fs.open(path, OpenFlags{.read_only = true});
  if (!f) return {};
  auto size = (*f)->size();
  std::string s(*size, '\0');
  (void)(*f)->read_at(0, std::as_writable_bytes(std::span(s.data(), s.size())));
  return s;
}

inline void write_file(Filesystem& fs, const std::string& path, const std::string& data) {
  auto f = fs.open(path, OpenFlags{.create = true, .truncate = true});
  (void)(*f)->append(std::as_bytes(std::span(data.data(), data.size())));
  (void)(*f)->sync();
}

// A filesystem that counts datasyncs and, while `closed`, holds each one
// until released: to observe group commit without sleeping, and to check
// which calls wait for the disk. It also records the directory changes.
class GateFs final : public Filesystem {
 public:
  explicit GateFs(Filesystem& inner) : inner_(inner) {}
  class GateFile final : public File {
   public:
    GateFile(GateFs& fs, std::unique_ptr<File> f, std::string path) : fs_(fs), f_(std::move(f)), path_(std::move(path)) {}
    result<std::size_t> read_at(std::uint64_t o, std::span<std::byte> out) override { return f_->read_at(o, out); }
    result<void> append(std::span<const std::byte> d) override { return f_->append(d); }
    result<void> write_at(std::uint64_t o, std::span<const std::byte> d) override { return f_->write_at(o, d); }
    result<void> sync() override { return f_->sync(); }
    result<void> datasync() override {
      std::unique_lock lk(fs_.mu);
      ++fs_.datasyncs;
      fs_.entered = true;
      fs_.cv.notify_all();
      fs_.cv.wait(lk, [&] { return !fs_.closed; });
      return f_->datasync();
    }
    result<void> truncate(std::uint64_t s) override {
      fs_.note("truncate " + path_);
      return f_->truncate(s);
    }
    result<std::uint64_t> size() override { return f_->size(); }
    void preallocate(std::uint64_t len) override {
      fs_.note("preallocate " + path_);
      f_->preallocate(len);
    }
    void start_writeback(std::uint64_t off, std::uint64_t len) override {
      fs_.note("writeback " + path_);
      f_->start_writeback(off, len);
    }

   private:
    GateFs& fs_;
    std::unique_ptr<File> f_;
    std::string path_;  // as opened
  };
  result<std::unique_ptr<File>> open(const std::string& p, OpenFlags fl) override {
    auto f = inner_.open(p, fl);
    if (!f) return f.error();
    return std::unique_ptr<File>(new GateFile(*this, std::move(*f), p));
  }
  result<void> rename(const std::string& a, const std::string& b) override {
    note("rename " + b);
    return inner_.rename(a, b);
  }
  result<void> unlink(const std::string& p) override {
    note("unlink " + p);
    return inner_.unlink(p);
  }
  result<std::vector<std::string>> list(const std::string& d) override { return inner_.list(d); }
  result<void> mkdir(const std::string& p) override { return inner_.mkdir(p); }
  result<void> sync_dir(const std::string& d) override {
    note("sync_dir");
    return inner_.sync_dir(d);
  }
  result<bool> exists(const std::string& p) override { return inner_.exists(p); }

  std::mutex mu;
  std::condition_variable cv;
  bool closed = false, entered = false;
  int datasyncs = 0;
  // Renames ("rename <to>"), unlinks ("unlink <path>"), directory syncs
  // ("sync_dir"), and truncations, reservations and writeback hints
  // ("truncate <path>", "preallocate <path>", "writeback <path>", each
  // naming the file by the path it was opened at), in order.
  std::vector<std::string> calls;

 private:
  void note(std::string c) {
    std::lock_guard lk(mu);
    calls.push_back(std::move(c));
  }
  Filesystem& inner_;
};

}  // namespace raft::storage::testing
