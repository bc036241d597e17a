// Filesystem on real files. Every syscall is retried on EINTR only; any other
// failure becomes errc::io_error (errc::no_space for ENOSPC/EDQUOT). Callers
// (LogStore) treat a failed write or fsync as fatal and never retry a sync:
// after a failed fsync Linux may already have dropped the dirty pages, so a
// second fsync can "succeed" without the data ever reaching the disk.
#include "raft/storage/filesystem.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <climits>
#include <unistd.h>

namespace raft::storage {
namespace {

std::error_code from_errno(int e) {
  if (e == ENOSPC || e == EDQUOT) return errc::no_space;
  return errc::io_error;
}

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::uint64_t size) : fd_(fd), size_(size) {}
  ~PosixFile() override { ::close(fd_); }

  result<std::size_t> read_at(std::uint64_t offset, std::span<std::byte> out) override {
    std::size_t got = 0;
    while (got < out.size()) {
      const ssize_t n = ::pread(fd_, out.data() + got, out.size() - got, static_cast<off_t>(offset + got));
      if (n < 0) {
        if (errno == EINTR) continue;
        return from_errno(errno);
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    return got;
  }

  // Appends go through pwrite at the cached end rather than O_APPEND, because
  // on Linux pwrite ignores its offset on an O_APPEND descriptor, which would
  // break write_at.
  result<void> append(std::span<const std::byte> data) override { return write_at(size_.load(), data); }

  result<void> append_gather(std::span<const std::span<const std::byte>> parts) override {
    iov_.clear();
    for (const auto& p : parts)
      if (!p.empty()) iov_.push_back(iovec{const_cast<std::byte*>(p.data()), p.size()});
    std::uint64_t off = size_.load();
    std::size_t i = 0;
    while (i < iov_.size()) {
      const int cnt = static_cast<int>(std::min<std::size_t>(IOV_MAX, iov_.size() - i));
      const ssize_t n = ::pwritev(fd_, &iov_[i], cnt, static_cast<off_t>(off));
      if (n < 0) {
        if (errno == EINTR) continue;
        const int e = errno;
        bump_size(off);
        return from_errno(e);
      }
      off += static_cast<std::uint64_t>(n);
      for (auto left = static_cast<std::size_t>(n); left > 0;) {
        if (left >= iov_[i].iov_len) {
          left -= iov_[i].iov_len;
          ++i;
        } else {
          iov_[i].iov_base = static_cast<char*>(iov_[i].iov_base) + left;
          iov_[i].iov_len -= left;
          left = 0;
        }
      }
    }
    bump_size(off);
    return {};
  }

  result<void> write_at(std::uint64_t offset, std::span<const std::byte> data) override {
    std::size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        const int e = errno;
        bump_size(offset + done);
        return from_errno(e);
      }
      done += static_cast<std::size_t>(n);
    }
    bump_size(offset + done);
    return {};
  }

  result<void> sync() override {
    if (::fsync(fd_) != 0) return from_errno(errno);
    return {};
  }
  result<void> datasync() override {
    if (::fdatasync(fd_) != 0) return from_errno(errno);
    return {};
  }
  void start_writeback(std::uint64_t offset, std::uint64_t len) override {
#ifdef __linux__
    // Errors are ignored: this only schedules writeback; datasync() reports.
    (void)::sync_file_range(fd_, static_cast<off_t>(offset), static_cast<off_t>(len), SYNC_FILE_RANGE_WRITE);
#else
    (void)offset;
    (void)len;
#endif
  }
  result<void> truncate(std::uint64_t size) override {
    while (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      if (errno != EINTR) return from_errno(errno);
    }
    size_.store(size);
    return {};
  }
  result<std::uint64_t> size() override { return size_.load(); }
  void preallocate(std::uint64_t len) override {
#ifdef __linux__
    // Mode 0 (not FALLOC_FL_KEEP_SIZE): the file's size covers the space,
    // so a write into it does not grow the file, and its fdatasync has no
    // size change to commit. (With KEEP_SIZE it still does: measured, see
    // docs/performance.md.) posix_fallocate is not used because where the
    // filesystem cannot preallocate it writes zeros, which costs a write of
    // `len` bytes; raft does without the hint instead.
    const std::uint64_t cur = size_.load();
    if (len > cur) (void)::fallocate(fd_, 0, static_cast<off_t>(cur), static_cast<off_t>(len - cur));
#else
    (void)len;
#endif
  }

 private:
  void bump_size(std::uint64_t end) {
    std::uint64_t cur = size_.load();
    while (end > cur && !size_.compare_exchange_weak(cur, end)) {
    }
  }

  int fd_;
  std::vector<iovec> iov_;  // append_gather's, reused (one writer per file)
  // The file's size as this handle last left it; raft never has two writers
  // on one file, so caching it saves an fstat per append.
  std::atomic<std::uint64_t> size_;
};

class PosixFilesystem final : public Filesystem {
 public:
  result<std::unique_ptr<File>> open(const std::string& path, OpenFlags flags) override {
    int oflags = O_CLOEXEC | (flags.read_only ? O_RDONLY : O_RDWR);
    if (flags.create) oflags |= O_CREAT;
    if (flags.create && flags.exclusive) oflags |= O_EXCL;
    if (flags.truncate) oflags |= O_TRUNC;
    int fd;
    do {
      fd = ::open(path.c_str(), oflags, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return from_errno(errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      return from_errno(e);
    }
    return std::unique_ptr<File>(new PosixFile(fd, static_cast<std::uint64_t>(st.st_size)));
  }

  result<void> rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return from_errno(errno);
    return {};
  }
  result<void> unlink(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return from_errno(errno);
    return {};
  }
  result<std::vector<std::string>> list(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return from_errno(errno);
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* ent = ::readdir(d)) {
      const std::string name = ent->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    const int e = errno;
    ::closedir(d);
    if (e != 0) return from_errno(e);
    std::sort(names.begin(), names.end());
    return names;
  }
  result<void> mkdir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return from_errno(errno);
    return {};
  }
  result<void> sync_dir(const std::string& dir) override {
    int fd;
    do {
      fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return from_errno(errno);
    const int rc = ::fsync(fd);
    const int e = errno;
    ::close(fd);
    if (rc != 0) return from_errno(e);
    return {};
  }
  result<bool> exists(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return true;
    if (errno == ENOENT) return false;
    return result<bool>(boost::system::in_place_error, from_errno(errno));
  }
};

}  // namespace

std::unique_ptr<Filesystem> make_posix_filesystem() { return std::make_unique<PosixFilesystem>(); }

}  // namespace raft::storage
