// raft-micro-bench: Google Benchmark micro-benchmarks of the hot path pieces
// (issue 8): the entry codec, the stream parser, the segment append path on
// the in-memory filesystem, and the whole commit path of a 3-node cluster in
// one process (in-memory transport and filesystem, virtual clock: it measures
// CPU per commit, not the network or the disk).
//
//   build-bench/bin/raft-micro-bench --benchmark_min_time=0.2
#include "local_cluster.hpp"

#include <raft/detail/stream.hpp>
#include <raft/log_entry.hpp>
#include <raft/storage/log_store.hpp>
#include <raft/storage/memory_filesystem.hpp>

#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

namespace {

using raft::LogEntry;
using raft::LogEntryType;

std::string encoded_entries(std::size_t n, std::size_t size) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) raft::encode_entry(out, LogEntry{LogEntryType::command, i + 1, 1, std::string(size, 'x')});
  return out;
}

// ----------------------------------------------------------------- codec
void BM_EncodeEntry(benchmark::State& st) {
  const LogEntry e{LogEntryType::command, 42, 7, std::string(static_cast<std::size_t>(st.range(0)), 'x')};
  std::string out;
  out.reserve(1 << 20);
  for (auto _ : st) {
    out.clear();
    for (int i = 0; i < 64; ++i) raft::encode_entry(out, e);
    benchmark::DoNotOptimize(out.data());
  }
  st.SetItemsProcessed(st.iterations() * 64);
  st.SetBytesProcessed(st.iterations() * 64 * (st.range(0) + 24));
}
BENCHMARK(BM_EncodeEntry)->Arg(256)->Arg(4096);

void BM_DecodeEntry(benchmark::State& st) {
  const std::string buf = encoded_entries(64, static_cast<std::size_t>(st.range(0)));
  LogEntry e;
  for (auto _ : st) {
    raft::StringReader r(buf);
    raft::LogEntryDecoder dec(r);
    int n = 0;
    while (true) {
      auto ok = dec.decode(e);
      if (!ok || !*ok) break;
      ++n;
    }
    benchmark::DoNotOptimize(n);
  }
  st.SetItemsProcessed(st.iterations() * 64);
  st.SetBytesProcessed(st.iterations() * static_cast<std::int64_t>(buf.size()));
}
BENCHMARK(BM_DecodeEntry)->Arg(256)->Arg(4096);

// ---------------------------------------------------------- stream parser
// Feeds 256 entries in pieces of range(1) bytes (what one socket read hands
// the follower), the way the follower's Log consumes its stream.
void BM_StreamParse(benchmark::State& st) {
  const std::string buf = encoded_entries(256, static_cast<std::size_t>(st.range(0)));
  const std::size_t piece = static_cast<std::size_t>(st.range(1));
  std::uint64_t events = 0;
  for (auto _ : st) {
    raft::detail::StreamParser p(64 << 20);
    for (std::size_t off = 0; off < buf.size(); off += piece) {
      auto r = p.feed(std::string_view(buf).substr(off, piece), [&](const raft::detail::StreamEvent& ev) -> raft::result<void> {
        events += ev.data.size() > 0;
        return {};
      });
      if (!r) st.SkipWithError("parse error");
    }
  }
  benchmark::DoNotOptimize(events);
  st.SetItemsProcessed(st.iterations() * 256);
  st.SetBytesProcessed(st.iterations() * static_cast<std::int64_t>(buf.size()));
}
BENCHMARK(BM_StreamParse)->Args({256, 1400})->Args({256, 64 << 10})->Args({4096, 64 << 10});

// The follower's whole per-entry work on the stream, as src/log/streams.cpp does it:
// parse, then copy each entry's data into an owned LogEntry.
void BM_StreamParseToEntries(benchmark::State& st) {
  const std::string buf = encoded_entries(256, static_cast<std::size_t>(st.range(0)));
  std::vector<LogEntry> batch;
  for (auto _ : st) {
    raft::detail::StreamParser p(64 << 20);
    batch.clear();
    auto r = p.feed(buf, [&](const raft::detail::StreamEvent& ev) -> raft::result<void> {
      batch.push_back(LogEntry{ev.type, ev.index, ev.term, std::string(ev.data)});
      return {};
    });
    if (!r) st.SkipWithError("parse error");
    benchmark::DoNotOptimize(batch.data());
  }
  st.SetItemsProcessed(st.iterations() * 256);
}
BENCHMARK(BM_StreamParseToEntries)->Arg(256)->Arg(4096);

// ------------------------------------------------------ segment append path
// LogStore::append of batches of range(1) entries on the in-memory
// filesystem (framing, CRC32C, index upkeep; no disk), then a read back of
// the batch as the leader's stream pump does.
void BM_LogStoreAppendRead(benchmark::State& st) {
  raft::storage::MemoryFilesystem fs(1);
  (void)fs.mkdir("/log");
  auto store = raft::storage::LogStore::open(fs, "/log");
  if (!store) {
    st.SkipWithError("open");
    return;
  }
  auto& log = **store;
  const std::size_t size = static_cast<std::size_t>(st.range(0)), n = static_cast<std::size_t>(st.range(1));
  std::vector<LogEntry> batch(n, LogEntry{LogEntryType::command, 0, 1, std::string(size, 'x')});
  std::uint64_t next = 1;
  for (auto _ : st) {
    for (auto& e : batch) e.index = next++;
    if (auto r = log.append(batch); !r) st.SkipWithError("append");
    auto back = log.read(batch.front().index, batch.back().index, 1 << 20);
    benchmark::DoNotOptimize(back);
    if (next > 200'000) {  // keep the in-memory filesystem small
      st.PauseTiming();
      (void)log.compact(next - 1);
      st.ResumeTiming();
    }
  }
  st.SetItemsProcessed(st.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_LogStoreAppendRead)->Args({256, 1})->Args({256, 64})->Args({4096, 16});

// ------------------------------------------------------------ commit path
// Three real Logs on one io_context with the in-memory transport: the time
// for range(0) concurrent applies to commit on the leader. CPU per commit of
// the whole cluster (leader + 2 followers), nothing else.
void BM_CommitPath3(benchmark::State& st) {
  raft::test::LocalCluster c;
  c.tweak = [](raft::LogOptions& o) { o.sync = true; };
  auto& a = c.add();
  auto& b = c.add();
  auto& d = c.add();
  if (!c.initialize(a) || !c.join(b, a.url) || !c.join(d, a.url)) {
    st.SkipWithError("cluster set-up");
    return;
  }
  const int k = static_cast<int>(st.range(0));
  const std::string payload(static_cast<std::size_t>(st.range(1)), 'x');
  for (auto _ : st) {
    int done = 0, failed = 0;
    for (int i = 0; i < k; ++i)
      a.log->start_apply(payload, {}, [&](raft::result<std::uint64_t> r) { r ? ++done : ++failed; });
    c.net.run_until([&] { return done + failed == k; }, std::chrono::seconds(10));
    if (failed || done != k) st.SkipWithError("apply failed");
    st.PauseTiming();
    for (auto* n : {&a, &b, &d}) n->fsm.commands.clear();
    st.ResumeTiming();
  }
  st.SetItemsProcessed(st.iterations() * k);
}
BENCHMARK(BM_CommitPath3)->Args({1, 256})->Args({64, 256})->Args({16, 4096})->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
