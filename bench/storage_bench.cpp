// Storage benchmarks on the real disk (DESIGN 6, issue 3):
//   raft-storage-bench [--benchmark_filter=...] [google benchmark flags]
// Data goes to $RAFT_BENCH_DIR (default: a fresh directory under /tmp), which
// is removed at exit. Rates are wall-clock (UseRealTime): fsync time counts.
// BM_RawWriteFdatasync is the physical limit the log's append+sync is
// compared with: the same bytes per batch written with one pwrite and made
// durable with one fdatasync, with no framing, CRC or index.
#include <raft/storage/log_store.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

std::string g_root;
int g_run = 0;

std::string fresh_dir() {
  const std::string d = g_root + "/run-" + std::to_string(g_run++);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

std::vector<raft::LogEntry> make_batch(std::size_t n, std::size_t size) {
  std::vector<raft::LogEntry> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i].term = 1;
    v[i].data.assign(size, static_cast<char>('a' + i % 26));
  }
  return v;
}

void BM_AppendNoSync(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  auto fs = raft::storage::make_posix_filesystem();
  const std::string dir = fresh_dir();
  auto log = std::move(*raft::storage::LogStore::open(*fs, dir + "/log"));
  auto entries = make_batch(batch, 256);
  std::uint64_t next = 1;
  for (auto _ : state) {
    for (auto& e : entries) e.index = next++;
    if (!log->append(entries)) state.SkipWithError("append failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(next - 1));
  state.SetBytesProcessed(static_cast<std::int64_t>((next - 1) * 256));
  log.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_AppendNoSync)->Arg(1)->Arg(16)->Arg(256)->UseRealTime()->MinTime(1.0);

void BM_AppendSync(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto batch = static_cast<std::size_t>(state.range(1));
  auto fs = raft::storage::make_posix_filesystem();
  const std::string dir = fresh_dir();
  auto log = std::move(*raft::storage::LogStore::open(*fs, dir + "/log"));
  auto entries = make_batch(batch, size);
  std::uint64_t next = 1;
  for (auto _ : state) {
    for (auto& e : entries) e.index = next++;
    if (!log->append(entries) || !log->sync()) state.SkipWithError("append/sync failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(next - 1));
  state.SetBytesProcessed(static_cast<std::int64_t>((next - 1) * size));
  log.reset();
  std::filesystem::remove_all(dir);
}

void BM_RawWriteFdatasync(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto batch = static_cast<std::size_t>(state.range(1));
  const std::string dir = fresh_dir();
  const int fd = ::open((dir + "/raw").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  // Same bytes per batch as the log writes (25-byte record header each).
  std::string buf(batch * (size + 25), 'x');
  off_t off = 0;
  std::int64_t items = 0;
  for (auto _ : state) {
    if (::pwrite(fd, buf.data(), buf.size(), off) != static_cast<ssize_t>(buf.size()) || ::fdatasync(fd) != 0)
      state.SkipWithError("raw write failed");
    off += static_cast<off_t>(buf.size());
    items += static_cast<std::int64_t>(batch);
  }
  state.SetItemsProcessed(items);
  state.SetBytesProcessed(items * static_cast<std::int64_t>(size));
  ::close(fd);
  std::filesystem::remove_all(dir);
}

void SyncArgs(benchmark::internal::Benchmark* b) {
  for (int size : {256, 4096, 65536})
    for (int batch : {1, 16, 256}) b->Args({size, batch});
  b->UseRealTime()->MinTime(1.0);
}
BENCHMARK(BM_AppendSync)->Apply(SyncArgs);
BENCHMARK(BM_RawWriteFdatasync)->Apply(SyncArgs);

// The same comparison interleaved: every iteration does one log batch
// (append + sync) and one raw batch (pwrite + fdatasync) of the same size,
// so both see the same disk conditions (this machine's fsync latency drifts
// between runs). Reports entries/s and MB/s of each and log/raw.
void BM_SyncPaired(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto batch = static_cast<std::size_t>(state.range(1));
  auto fs = raft::storage::make_posix_filesystem();
  const std::string dir = fresh_dir();
  auto log = std::move(*raft::storage::LogStore::open(*fs, dir + "/log"));
  auto entries = make_batch(batch, size);
  const int fd = ::open((dir + "/raw").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::string buf(batch * (size + 25), 'x');
  off_t off = 0;
  std::uint64_t next = 1;
  double log_s = 0, raw_s = 0;
  using clock = std::chrono::steady_clock;
  for (auto _ : state) {
    for (auto& e : entries) e.index = next++;
    auto t0 = clock::now();
    if (!log->append(entries) || !log->sync()) state.SkipWithError("append/sync failed");
    auto t1 = clock::now();
    if (::pwrite(fd, buf.data(), buf.size(), off) != static_cast<ssize_t>(buf.size()) || ::fdatasync(fd) != 0)
      state.SkipWithError("raw write failed");
    auto t2 = clock::now();
    off += static_cast<off_t>(buf.size());
    log_s += std::chrono::duration<double>(t1 - t0).count();
    raw_s += std::chrono::duration<double>(t2 - t1).count();
  }
  const double n = static_cast<double>(next - 1);
  state.counters["log_entries/s"] = n / log_s;
  state.counters["raw_entries/s"] = n / raw_s;
  state.counters["log_MB/s"] = n * static_cast<double>(size) / log_s / 1e6;
  state.counters["raw_MB/s"] = n * static_cast<double>(size) / raw_s / 1e6;
  state.counters["log/raw"] = raw_s / log_s;
  ::close(fd);
  log.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SyncPaired)->Apply(SyncArgs);

// Recovery (open + index rebuild, every record's CRC checked) of a 1 GiB log
// of 4 KiB entries in 64 MiB segments. Reported as medians of 5 opens each:
// warm_ms with the files in the page cache, cold_ms after evicting them with
// posix_fadvise(DONTNEED) (works without root for clean pages).
void evict(const std::string& dir) {
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    const int fd = ::open(f.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

void BM_Recovery1GiB(benchmark::State& state) {
  auto fs = raft::storage::make_posix_filesystem();
  const std::string dir = fresh_dir();
  std::uint64_t next = 1;
  {
    auto log = std::move(*raft::storage::LogStore::open(*fs, dir + "/log"));
    auto entries = make_batch(256, 4096);
    while (log->size_bytes() < (1ull << 30)) {
      for (auto& e : entries) e.index = next++;
      if (!log->append(entries)) state.SkipWithError("append failed");
    }
    if (!log->sync()) state.SkipWithError("sync failed");
  }
  std::uint64_t bytes = 0;
  auto time_open = [&](bool cold) {
    if (cold) evict(dir + "/log");
    const auto t0 = std::chrono::steady_clock::now();
    auto log = raft::storage::LogStore::open(*fs, dir + "/log");
    const auto t1 = std::chrono::steady_clock::now();
    if (!log || (*log)->last_index() != next - 1) state.SkipWithError("recovery failed");
    bytes = (*log)->size_bytes();
    return std::chrono::duration<double, std::milli>(t1 - t0).count();
  };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::vector<double> warm, cold;
  for (auto _ : state) {
    for (int i = 0; i < 5; ++i) warm.push_back(time_open(false));
    for (int i = 0; i < 5; ++i) cold.push_back(time_open(true));
  }
  state.counters["warm_ms"] = median(warm);
  state.counters["cold_ms"] = median(cold);
  state.counters["log_MiB"] = static_cast<double>(bytes >> 20);
  state.counters["entries"] = static_cast<double>(next - 1);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_Recovery1GiB)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

// A log of `n` entries of `size` bytes, terms changing every `per_term`
// entries, in segments of `seg` bytes. Returns the open store.
std::unique_ptr<raft::storage::LogStore> fill_log(raft::storage::Filesystem& fs, const std::string& dir,
                                                  std::uint64_t n, std::size_t size, std::uint64_t per_term,
                                                  std::uint64_t seg) {
  raft::storage::LogStoreOptions o;
  o.segment_size_bytes_max = seg;
  auto log = std::move(*raft::storage::LogStore::open(fs, dir, o));
  auto entries = make_batch(256, size);
  for (std::uint64_t next = 1; next <= n;) {
    const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(256, n - next + 1));
    for (std::size_t i = 0; i < k; ++i) {
      entries[i].index = next;
      entries[i].term = 1 + (next - 1) / per_term;
      ++next;
    }
    if (!log->append(std::span(entries).first(k))) return nullptr;
  }
  return log;
}

// read() of `range` consecutive 256-byte entries from a warm 200k-entry log
// in 4 MiB segments (so some reads cross segments), walking the log in order.
void BM_ReadRange(benchmark::State& state) {
  const auto range = static_cast<std::uint64_t>(state.range(0));
  constexpr std::uint64_t kN = 200000;
  auto fs = raft::storage::make_posix_filesystem();
  const std::string dir = fresh_dir();
  auto log = fill_log(*fs, dir + "/log", kN, 256, 50000, 4u << 20);
  if (!log) {
    state.SkipWithError("fill failed");
    return;
  }
  std::uint64_t from = 1, items = 0;
  for (auto _ : state) {
    if (from + range - 1 > kN) from = 1;
    auto r = log->read(from, from + range - 1, SIZE_MAX);
    if (!r || r->size() != range) state.SkipWithError("read failed");
    benchmark::DoNotOptimize(r);
    from += range;
    items += range;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(items));
  log.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_ReadRange)->Arg(1)->Arg(64)->UseRealTime()->MinTime(1.0);

// term_at on a 1M-entry log of 16-byte entries, 10 terms, 4 MiB segments:
// arg 0 asks for indexes near the tail (the common case: AppendEntries
// consistency checks and commit), arg 1 for random indexes.
void BM_TermAt(benchmark::State& state) {
  const bool random = state.range(0) != 0;
  constexpr std::uint64_t kN = 1000000;
  auto fs = raft::storage::make_posix_filesystem();
  const std::string dir = fresh_dir();
  auto log = fill_log(*fs, dir + "/log", kN, 16, kN / 10, 4u << 20);
  if (!log) {
    state.SkipWithError("fill failed");
    return;
  }
  std::vector<std::uint64_t> idx(4096);
  std::uint64_t x = 88172645463325252ull;
  for (auto& i : idx) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    i = random ? 1 + x % kN : kN - x % 1000;
  }
  std::size_t k = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    sum += *log->term_at(idx[k++ & 4095]);
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
  log.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_TermAt)->Arg(0)->Arg(1)->MinTime(0.5);

// Recovery of a 256 MiB log of 64-byte entries (about 3M), where the
// per-entry index work weighs more than in BM_Recovery1GiB. Warm only.
void BM_RecoverySmallEntries(benchmark::State& state) {
  auto fs = raft::storage::make_posix_filesystem();
  const std::string dir = fresh_dir();
  constexpr std::uint64_t kN = (256ull << 20) / (64 + 25);
  {
    auto log = fill_log(*fs, dir + "/log", kN, 64, kN / 4, 64ull << 20);
    if (!log || !log->sync()) state.SkipWithError("fill failed");
  }
  std::vector<double> warm;
  for (auto _ : state) {
    for (int i = 0; i < 5; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      auto log = raft::storage::LogStore::open(*fs, dir + "/log");
      const auto t1 = std::chrono::steady_clock::now();
      if (!log || (*log)->last_index() != kN) state.SkipWithError("recovery failed");
      warm.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
  }
  std::sort(warm.begin(), warm.end());
  state.counters["warm_ms"] = warm[warm.size() / 2];
  state.counters["entries"] = static_cast<double>(kN);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_RecoverySmallEntries)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

// Resident memory the store gains per appended entry (16-byte entries, no
// sync, default 64 MiB segments): the in-memory index, as the process sees
// it. Run alone (--benchmark_filter=IndexMemory): memory freed by earlier
// benchmarks would be reused and hide growth.
std::uint64_t rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

void BM_IndexMemory(benchmark::State& state) {
  const auto n = static_cast<std::uint64_t>(state.range(0));
  auto fs = raft::storage::make_posix_filesystem();
  const std::string dir = fresh_dir();
  double per_entry = 0;
  for (auto _ : state) {
    auto log = std::move(*raft::storage::LogStore::open(*fs, dir + "/log"));
    auto entries = make_batch(256, 16);
    const std::uint64_t before = rss_bytes();
    std::uint64_t next = 1;
    while (next <= n) {
      for (auto& e : entries) e.index = next++;
      if (!log->append(entries)) state.SkipWithError("append failed");
    }
    per_entry = static_cast<double>(rss_bytes() - before) / static_cast<double>(next - 1);
  }
  state.counters["rss_B_per_entry"] = per_entry;
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_IndexMemory)->Arg(5000000)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

}  // namespace

int main(int argc, char** argv) {
  if (const char* d = std::getenv("RAFT_BENCH_DIR")) {
    g_root = std::string(d) + "/raft-storage-bench";
    std::filesystem::create_directories(g_root);
  } else {
    char tmpl[] = "/tmp/raft-storage-bench-XXXXXX";
    g_root = ::mkdtemp(tmpl);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::filesystem::remove_all(g_root);
  return 0;
}
