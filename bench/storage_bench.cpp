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
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
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
