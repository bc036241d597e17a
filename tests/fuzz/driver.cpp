// The replay driver linked with each fuzz target in the normal build (the
// RAFT_FUZZ build links libFuzzer's main instead).
//
//   raft-fuzz-<target> [--mutations N] [--seed S] [--max-len BYTES] PATH...
//
// Runs every file given (or found directly in a directory given) through
// LLVMFuzzerTestOneInput, then N deterministic mutations of each: bit flips,
// interesting bytes, truncation, insertion, erasure, splicing with another
// input, and length-field edits (a big-endian 32- or 64-bit value such as 0,
// 1, a size near the input's, 2^32-1 or 2^56-1 written at some offset).
// Everything derives from --seed, so a failure replays exactly. When a check
// fails (abort) or a sanitizer reports, the input at fault is written to
// ./fuzz-crash-<target> (working directory) so it can be added to the corpus
// and replayed alone: `raft-fuzz-<target> ./fuzz-crash-<target>`.
#include "fuzz_util.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

extern "C" void __sanitizer_set_death_callback(void (*)()) __attribute__((weak));

namespace {

// The input being run, for the crash handlers (which may only call
// async-signal-safe functions: open/write/close).
const std::string* g_current = nullptr;
char g_crash_path[256] = "fuzz-crash";

void dump_current() {
  if (!g_current) return;
  const int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  const char* p = g_current->data();
  std::size_t left = g_current->size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  ::close(fd);
  static const char msg[] = "fuzz driver: failing input written to ./";
  (void)!::write(2, msg, sizeof msg - 1);
  (void)!::write(2, g_crash_path, std::strlen(g_crash_path));
  (void)!::write(2, "\n", 1);
}

void on_signal(int sig) {
  dump_current();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void run(const std::string& input) {
  g_current = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
  g_current = nullptr;
}

std::uint64_t interesting(raft::fuzz::Rng& rng, std::size_t size) {
  switch (rng.below(10)) {
    case 0: return 0;
    case 1: return 1;
    case 2: return size;
    case 3: return size > 24 ? size - 24 : 0;
    case 4: return size + 1 + rng.below(16);
    case 5: return 0xffffffffull;
    case 6: return (1ull << 56) - 1;
    case 7: return ~0ull;
    case 8: return 0x8000000000000000ull >> rng.below(64);
    default: return rng.below(300);
  }
}

std::string mutate(std::string s, const std::vector<std::string>& pool, raft::fuzz::Rng& rng, std::size_t max_len) {
  const int ops = 1 + static_cast<int>(rng.below(4));
  for (int k = 0; k < ops; ++k) {
    const std::size_t n = s.size();
    switch (rng.below(9)) {
      case 0:  // bit flip
        if (n) s[rng.below(n)] ^= static_cast<char>(1u << rng.below(8));
        break;
      case 1: {  // interesting byte
        static const std::uint8_t bytes[] = {0, 1, 0x7f, 0x80, 0xfe, 0xff, '0', '9', '"', '%', '&', '=', '?', '{'};
        if (n) s[rng.below(n)] = static_cast<char>(rng.below(2) ? bytes[rng.below(sizeof bytes)] : rng.below(256));
        break;
      }
      case 2:  // truncate
        s.resize(rng.below(n + 1));
        break;
      case 3: {  // insert random bytes
        std::string ins(1 + rng.below(8), '\0');
        for (auto& c : ins) c = static_cast<char>(rng.below(256));
        s.insert(rng.below(n + 1), ins);
        break;
      }
      case 4: {  // duplicate a range
        if (!n) break;
        const std::size_t a = rng.below(n), len = 1 + rng.below(std::min<std::size_t>(n - a, 64));
        s.insert(rng.below(n + 1), s.substr(a, len));
        break;
      }
      case 5:  // erase a range
        if (n) {
          const std::size_t a = rng.below(n);
          s.erase(a, 1 + rng.below(std::min<std::size_t>(n - a, 32)));
        }
        break;
      case 6: {  // splice: our prefix, another input's suffix
        const std::string& o = pool[rng.below(pool.size())];
        s = s.substr(0, rng.below(n + 1)) + o.substr(rng.below(o.size() + 1));
        break;
      }
      case 7: {  // overwrite a range with bytes of another input
        const std::string& o = pool[rng.below(pool.size())];
        if (!n || o.empty()) break;
        const std::size_t from = rng.below(o.size()), at = rng.below(n);
        const std::size_t len = std::min({o.size() - from, n - at, std::size_t{1} + rng.below(32)});
        s.replace(at, len, o, from, len);
        break;
      }
      default: {  // length field: a big-endian u32 or u64 at some offset
        const std::size_t width = rng.below(2) ? 8 : 4;
        if (n < width) break;
        // Offsets of 4 and 8 (our headers' field alignment) more often than not.
        std::size_t at = rng.below(n - width + 1);
        if (rng.below(2)) at -= at % 4;
        std::uint64_t v = interesting(rng, n);
        for (std::size_t i = width; i-- > 0;) {
          s[at + i] = static_cast<char>(v & 0xff);
          v >>= 8;
        }
        break;
      }
    }
  }
  if (s.size() > max_len) s.resize(max_len);
  return s;
}

[[noreturn]] void usage() {
  std::cerr << "usage: raft-fuzz-<target> [--mutations N] [--seed S] [--max-len BYTES] PATH...\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t mutations = 0, seed = 1;
  std::size_t max_len = 1 << 16;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::uint64_t {
      if (i + 1 >= argc) usage();
      return std::stoull(argv[++i]);
    };
    if (a == "--mutations") {
      mutations = value();
    } else if (a == "--seed") {
      seed = value();
    } else if (a == "--max-len") {
      max_len = value();
    } else if (a.rfind("--", 0) == 0) {
      usage();
    } else if (std::filesystem::is_directory(a)) {
      std::vector<std::filesystem::path> in_dir;
      for (const auto& e : std::filesystem::directory_iterator(a))
        if (e.is_regular_file()) in_dir.push_back(e.path());
      std::sort(in_dir.begin(), in_dir.end());  // a stable order: replays are exact
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (std::filesystem::is_regular_file(a)) {
      files.emplace_back(a);
    } else {
      std::cerr << "no such file or directory: " << a << "\n";
      return 2;
    }
  }
  if (files.empty()) usage();

  const std::string name = std::filesystem::path(argv[0]).filename().string();
  std::snprintf(g_crash_path, sizeof g_crash_path, "fuzz-crash-%s", name.c_str());
  std::signal(SIGABRT, on_signal);
  std::signal(SIGSEGV, on_signal);
  std::signal(SIGBUS, on_signal);
  std::signal(SIGFPE, on_signal);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(dump_current);

  std::vector<std::string> pool;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    pool.push_back(ss.str());
  }
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t runs = 0;
  for (const auto& s : pool) {
    run(s);
    ++runs;
  }
  for (std::size_t i = 0; i < pool.size(); ++i) {
    raft::fuzz::Rng rng(seed * 0x100000001b3ull + i);
    for (std::uint64_t m = 0; m < mutations; ++m) {
      run(mutate(pool[i], pool, rng, max_len));
      ++runs;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << name << ": " << pool.size() << " inputs replayed, " << runs - pool.size() << " mutations (seed " << seed
            << "), no failure, " << secs << " s\n";
  return 0;
}
