// raft-bench: throughput and commit latency of a real raft cluster (issue 8).
//
// The leader process hosts a Log (HTTPTransport + raft::Server on 127.0.0.1)
// and the load generator; the followers are this same binary re-executed in
// --node mode, one process each, joined over HTTP. The FSM is empty (it only
// counts), so what is measured is the replication and commit path: append,
// (fsync), stream to followers, their (fsync) and ack, commit.
//
// Load shapes (the default is NuRaft's raft_bench shape):
//   closed loop, C client threads, each: log.apply(payload) (returns once
//     committed), record the latency, repeat;
//   --async: C outstanding async applies re-issued from their completion
//     (no client threads; the same closed loop, less scheduling);
//   --rate R: open loop, R applies per second, latency from the intended
//     send time (so queueing counts).
//   --reads: each operation is a linearizable read instead of an apply:
//     log.read_barrier() (read_index: one heartbeat round, no log entry,
//     then the wait for the FSM to apply it; what raft-kv's GET does);
//     with threads or --async.
//   --reads --lease: every node with LogOptions::lease_reads: the leader
//     answers reads by lease, without the heartbeat round (the follower's
//     read then costs one request to the leader).
//   --reads --at-follower: the same reads, asked of a follower: once the
//     cluster is up, the load generator's node hands leadership to another
//     (Log::transfer_leadership) and its reads go to the leader over
//     POST /raft/readIndex, then wait for its own FSM.
//
//   raft-bench --nodes 3 --clients 16 --size 256 --duration 10 --no-sync
//   raft-bench --sweep clients=1,4,16,64 --svg sweep.svg --no-sync
//   raft-bench --probe           # loopback RTT/bandwidth, fdatasync rate
//
// Child processes always die with the leader (PR_SET_PDEATHSIG) and are
// reaped with bounded waits (SIGTERM, then SIGKILL).
#include <raft/http.hpp>
#include <raft/log.hpp>
#include <raft/run.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <semaphore>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace net = boost::asio;
namespace fs = std::filesystem;
using Clk = std::chrono::steady_clock;

namespace {

// ------------------------------------------------------------------ options
struct Opts {
  int nodes = 3;
  int clients = 1;
  std::size_t size = 256;
  double duration = 10;
  double warmup = 2;
  bool sync = true;
  bool json = false;
  bool async = false;
  bool reads = false;  // read_barrier() instead of apply()
  bool at_follower = false;  // with reads: the load generator's node is a follower
  bool lease = false;  // LogOptions::lease_reads on every node
  double rate = 0;  // >0: open loop
  int io_threads = 1;
  int busy_poll_us = 0;  // > 0: network threads poll that long before blocking (raft::run_polling)
  bool apply_on_io = false;  // FSM on the network/strand io_context, no apply thread
  bool storage_on_io = false;  // fsync on the network/strand io_context, no storage thread
  // LogOptions::apply_inline: the bench's FSM is empty, the case the option
  // is for (--no-apply-inline: fed on its own apply thread instead).
  bool apply_inline = true;
  // HTTPTransportOptions::ack_channel (--no-ack-channel: every ack is a
  // POST /raft/ack, as before the channel existed).
  bool ack_channel = true;
  // LogOptions::preallocate_segments (--no-prealloc: segments grow by
  // appends, each sync commits a size change, as before session 6).
  bool preallocate = true;
  // LogOptions::snapshot_threshold_entries (0: no snapshots, the default)
  // and segment_size_bytes_max: with both small, every node snapshots and
  // compacts its log during the run, as a service does.
  std::uint64_t snapshot_every = 0;
  std::uint64_t segment_mib = 64;
  // --tls DIR: mutual TLS between the nodes (https:// URLs) with DIR's
  // ca.pem, node.pem and node.key (tests/net/testdata/tls has a set).
  std::string tls_dir;
  int repeat = 1;
  std::vector<int> sweep;  // client counts
  std::string svg = "raft-bench-sweep.svg";
  std::string dir;  // parent of the data directories; default: $TMPDIR or /tmp
  // --node-dirs D1,D2,...: node i's data directory goes under Di instead
  // (e.g. one filesystem per node, as on separate machines); the last one
  // serves the nodes beyond the list.
  std::vector<std::string> node_dirs;
  bool probe = false;
  bool verbose = false;
  // --node (internal): a follower process.
  bool node = false;
  std::string join;
  std::string node_dir;
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "raft-bench: %s\n"
               "usage: raft-bench [--nodes N] [--clients C] [--size BYTES] [--duration S] [--warmup S]\n"
               "                  [--sync|--no-sync] [--async] [--reads [--at-follower] [--lease]] [--rate OPS] [--io-threads T]\n"
               "                  [--apply-on-io]\n"
               "                  [--no-apply-inline]\n"
               "                  [--storage-on-io] [--busy-poll US] [--no-ack-channel] [--no-prealloc]\n"
               "                  [--snapshot-every ENTRIES] [--segment-mib MIB] [--tls DIR]\n"
               "                  [--repeat K]\n"
               "                  [--sweep clients=1,4,16,64] [--svg FILE] [--dir DIR] [--node-dirs D1,D2,...] [--json] [--verbose]\n"
               "       raft-bench --probe [--dir DIR] [--json]\n",
               msg);
  std::exit(2);
}

Opts parse(int argc, char** argv) {
  Opts o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--nodes") o.nodes = std::stoi(val());
    else if (a == "--clients") o.clients = std::stoi(val());
    else if (a == "--size") o.size = std::stoul(val());
    else if (a == "--duration") o.duration = std::stod(val());
    else if (a == "--warmup") o.warmup = std::stod(val());
    else if (a == "--sync") o.sync = true;
    else if (a == "--no-sync") o.sync = false;
    else if (a == "--json") o.json = true;
    else if (a == "--async") o.async = true;
    else if (a == "--reads") o.reads = true;
    else if (a == "--at-follower") o.at_follower = true;
    else if (a == "--lease") o.lease = true;
    else if (a == "--rate") o.rate = std::stod(val());
    else if (a == "--io-threads") o.io_threads = std::stoi(val());
    else if (a == "--busy-poll") o.busy_poll_us = std::stoi(val());
    else if (a == "--apply-on-io") o.apply_on_io = true;
    else if (a == "--storage-on-io") o.storage_on_io = true;
    else if (a == "--apply-inline") o.apply_inline = true;
    else if (a == "--no-apply-inline") o.apply_inline = false;
    else if (a == "--no-ack-channel") o.ack_channel = false;
    else if (a == "--no-prealloc") o.preallocate = false;
    else if (a == "--snapshot-every") o.snapshot_every = std::stoull(val());
    else if (a == "--segment-mib") o.segment_mib = std::stoull(val());
    else if (a == "--tls") o.tls_dir = val();
    else if (a == "--repeat") o.repeat = std::stoi(val());
    else if (a == "--svg") o.svg = val();
    else if (a == "--dir") o.dir = val();
    else if (a == "--node-dirs") {
      std::stringstream ss(val());
      std::string item;
      while (std::getline(ss, item, ',')) o.node_dirs.push_back(item);
      if (o.node_dirs.empty()) usage("--node-dirs takes a comma-separated list");
    }
    else if (a == "--probe") o.probe = true;
    else if (a == "--verbose") o.verbose = true;
    else if (a == "--node") o.node = true;
    else if (a == "--join") o.join = val();
    else if (a == "--node-dir") o.node_dir = val();
    else if (a == "--sweep") {
      std::string v = val();
      if (v.rfind("clients=", 0) != 0) usage("--sweep takes clients=LIST");
      std::stringstream ss(v.substr(8));
      std::string item;
      while (std::getline(ss, item, ',')) o.sweep.push_back(std::stoi(item));
    } else usage(("unknown flag " + a).c_str());
  }
  if (o.nodes < 1 || o.clients < 1 || o.io_threads < 1 || o.repeat < 1) usage("counts must be >= 1");
  if (o.busy_poll_us < 0) usage("--busy-poll must be >= 0 (microseconds)");
  if (o.segment_mib < 1 || o.segment_mib > 2048) usage("--segment-mib must be in 1..2048");
  if (o.reads && o.rate > 0) usage("--reads works with client threads or --async, not with --rate");
  if (o.at_follower && (!o.reads || o.nodes < 2)) usage("--at-follower needs --reads and at least 2 nodes");
  if (o.dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    o.dir = t && *t ? t : "/tmp";
  }
  return o;
}

// ------------------------------------------------------------------ helpers
double secs(Clk::duration d) { return std::chrono::duration<double>(d).count(); }

// A free TCP port on 127.0.0.1 (bound, read, released: the Log's URL must be
// known before the Server that serves it listens).
std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::perror("raft-bench: free_port");
    std::exit(1);
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

struct EmptyFsm final : raft::FSM {
  std::atomic<std::uint64_t> applied{0};
  std::atomic<std::uint64_t> commands{0};
  void must_apply(const raft::LogEntry& e) override {
    applied.store(e.index, std::memory_order_relaxed);
    if (e.type == raft::LogEntryType::command) commands.fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t index() override { return 0; }  // in memory: replay after restart
  raft::result<std::uint64_t> snapshot(raft::Writer&) override { return applied.load(); }
  raft::result<void> restore(raft::Reader&) override { return {}; }
};

// CPU seconds (user + system) of a process from /proc/PID/stat.
double proc_cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto p = s.rfind(')');
  if (p == std::string::npos) return 0;
  std::stringstream ss(s.substr(p + 2));
  std::string field;
  unsigned long long ut = 0, st = 0;
  for (int i = 3; ss >> field; ++i) {  // field 3 is the state
    if (i == 14) ut = std::stoull(field);
    if (i == 15) {
      st = std::stoull(field);
      break;
    }
  }
  return double(ut + st) / double(::sysconf(_SC_CLK_TCK));
}
double self_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}
double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
long peak_rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

double percentile(const std::vector<std::uint64_t>& sorted_ns, double p) {
  if (sorted_ns.empty()) return 0;
  auto i = static_cast<std::size_t>(std::ceil(p / 100.0 * double(sorted_ns.size()))) ;
  i = std::min(sorted_ns.size() - 1, i == 0 ? 0 : i - 1);
  return double(sorted_ns[i]) / 1000.0;  // microseconds
}

// A node's threads: the Log's strand and the network on `io`, storage and
// apply each on their own thread (the kvstore example's layout).
struct Runtime {
  net::io_context io, storage_io{1}, apply_io{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> w1, w2, w3;
  std::vector<std::thread> threads;
  void start(int io_threads, std::chrono::microseconds poll) {
    w1.emplace(io.get_executor());
    w2.emplace(storage_io.get_executor());
    w3.emplace(apply_io.get_executor());
    for (int i = 0; i < io_threads; ++i) threads.emplace_back([this, poll] { raft::run_polling(io, poll); });
    threads.emplace_back([this] { storage_io.run(); });
    threads.emplace_back([this] { apply_io.run(); });
  }
  void stop() {
    w1.reset();
    w2.reset();
    w3.reset();
    io.stop();
    storage_io.stop();
    apply_io.stop();
    for (auto& t : threads) t.join();
    threads.clear();
  }
};

struct Node {
  Runtime rt;
  EmptyFsm fsm;
  std::unique_ptr<raft::HTTPTransport> transport;
  std::unique_ptr<raft::Log> log;
  std::unique_ptr<raft::Handler> handler;
  std::unique_ptr<raft::Server> server;
  std::string url;

  bool start(const std::string& dir, const Opts& o) {
    const auto port = free_port();
    url = (o.tls_dir.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") + std::to_string(port);
    raft::HTTPTransportOptions to;
    to.ack_channel = o.ack_channel;
    raft::ServerOptions so;
    if (!o.tls_dir.empty()) {
      raft::TLSOptions t{o.tls_dir + "/node.pem", o.tls_dir + "/node.key", o.tls_dir + "/ca.pem"};
      t.require_client_certificate = true;
      std::string why;
      auto sc = raft::TLSContext::server(t, &why);
      t.require_client_certificate = false;
      auto cc = sc ? raft::TLSContext::client(t, &why) : sc;
      if (!cc) {
        std::fprintf(stderr, "raft-bench: --tls %s: %s\n", o.tls_dir.c_str(), why.c_str());
        return false;
      }
      so.tls = *sc;
      to.tls = *cc;
    }
    transport = std::make_unique<raft::HTTPTransport>(rt.io.get_executor(), to);
    raft::LogOptions lo;
    lo.url = url;
    lo.fsm = &fsm;
    lo.transport = transport.get();
    lo.executor = rt.io.get_executor();
    lo.storage_executor = o.storage_on_io ? rt.io.get_executor() : rt.storage_io.get_executor();
    lo.apply_executor = o.apply_on_io ? rt.io.get_executor() : rt.apply_io.get_executor();
    lo.apply_inline = o.apply_inline;
    lo.sync = o.sync;
    lo.preallocate_segments = o.preallocate;
    lo.lease_reads = o.lease;
    lo.snapshot_threshold_entries = o.snapshot_every;
    lo.segment_size_bytes_max = o.segment_mib << 20;
    if (o.verbose)
      lo.logger = [](std::string_view l) { std::fprintf(stderr, "[%d] %.*s\n", int(::getpid()), int(l.size()), l.data()); };
    log = std::make_unique<raft::Log>(lo);
    handler = std::make_unique<raft::Handler>(*log);
    server = std::make_unique<raft::Server>(rt.io.get_executor(), *handler, so);
    if (auto r = server->listen("127.0.0.1", port); !r) {
      std::fprintf(stderr, "raft-bench: listen %s: %s\n", url.c_str(), r.error().message().c_str());
      return false;
    }
    if (auto r = log->open(dir); !r) {
      std::fprintf(stderr, "raft-bench: open %s: %s\n", dir.c_str(), r.error().message().c_str());
      return false;
    }
    rt.start(o.io_threads, std::chrono::microseconds(o.busy_poll_us));
    return true;
  }
  void stop() {
    if (server) server->stop();
    if (log) (void)log->close();
    rt.stop();
    server.reset();
    handler.reset();
    log.reset();
    transport.reset();
  }
};

// ------------------------------------------------------------ follower mode
int run_node(const Opts& o) {
  // Die with the leader, and take SIGTERM/SIGINT synchronously below.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  Node n;
  if (!n.start(o.node_dir, o)) return 1;
  bool joined = false;
  for (int attempt = 0; attempt < 100 && !joined; ++attempt) {
    auto r = n.log->join(o.join);
    if (r) joined = true;
    else {
      if (o.verbose) std::fprintf(stderr, "raft-bench node: join: %s\n", r.error().message().c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (!joined) {
    std::fprintf(stderr, "raft-bench node: could not join %s\n", o.join.c_str());
    n.stop();
    return 1;
  }
  int sig = 0;
  sigwait(&set, &sig);
  // Bounded shutdown: never outlive the leader by more than a few seconds.
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(5));
    std::_Exit(3);
  }).detach();
  n.stop();
  return 0;
}

// ---------------------------------------------------------- leader / driver
struct Result {
  Opts o;
  double seconds = 0;
  std::uint64_t ops = 0, errors = 0;
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;  // microseconds
  double cpu_leader = 0, cpu_clients = 0;
  std::vector<double> cpu_followers;
  long rss_kib = 0;
  double ops_per_s() const { return seconds > 0 ? double(ops) / seconds : 0; }
  double mb_per_s() const { return ops_per_s() * double(o.size) / 1e6; }
};

std::vector<pid_t> g_children;

void kill_children() {
  for (pid_t p : g_children) ::kill(p, SIGTERM);
  const auto deadline = Clk::now() + std::chrono::seconds(3);
  std::vector<pid_t> left = g_children;
  while (!left.empty() && Clk::now() < deadline) {
    std::erase_if(left, [](pid_t p) { return ::waitpid(p, nullptr, WNOHANG) != 0; });
    if (!left.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (pid_t p : left) {
    ::kill(p, SIGKILL);
    ::waitpid(p, nullptr, 0);
  }
  g_children.clear();
}

void on_fatal_signal(int sig) {
  for (pid_t p : g_children) ::kill(p, SIGKILL);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

pid_t spawn_follower(const Opts& o, const std::string& join_url, const std::string& dir) {
  std::vector<std::string> args = {"/proc/self/exe", "--node", "--join", join_url, "--node-dir", dir,
                                   o.sync ? "--sync" : "--no-sync", "--io-threads", std::to_string(o.io_threads)};
  if (o.verbose) args.push_back("--verbose");
  if (o.apply_on_io) args.push_back("--apply-on-io");
  if (o.storage_on_io) args.push_back("--storage-on-io");
  if (o.busy_poll_us > 0) {
    args.push_back("--busy-poll");
    args.push_back(std::to_string(o.busy_poll_us));
  }
  if (!o.apply_inline) args.push_back("--no-apply-inline");
  if (!o.ack_channel) args.push_back("--no-ack-channel");
  if (!o.preallocate) args.push_back("--no-prealloc");
  if (o.lease) args.push_back("--lease");
  if (!o.tls_dir.empty()) {
    args.push_back("--tls");
    args.push_back(o.tls_dir);
  }
  for (const auto& [flag, v] : {std::pair{"--snapshot-every", o.snapshot_every}, std::pair{"--segment-mib", o.segment_mib}}) {
    args.push_back(flag);
    args.push_back(std::to_string(v));
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("raft-bench: fork");
    return -1;
  }
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv("/proc/self/exe", argv.data());
    std::perror("raft-bench: exec");
    std::_Exit(127);
  }
  return pid;
}

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds limit) {
  const auto end = Clk::now() + limit;
  while (Clk::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

// Commit latencies in a fixed-size log-linear histogram (exact below 128 ns,
// then 64 buckets per power of two: <= 1.6 % error), not a vector per op: a
// 10-minute run would otherwise hold ~8 bytes per op, and the leader's RSS
// (a target of issue 8) would measure the benchmark instead of the library.
class LatencyHist {
 public:
  static constexpr std::size_t kBuckets = 128 + 58 * 64;
  void add(std::uint64_t ns) {
    ++b_[index(ns)];
    ++n_;
    sum_ += double(ns);
    max_ = std::max(max_, ns);
  }
  void merge(const LatencyHist& o) {
    for (std::size_t i = 0; i < kBuckets; ++i) b_[i] += o.b_[i];
    n_ += o.n_;
    sum_ += o.sum_;
    max_ = std::max(max_, o.max_);
  }
  std::uint64_t count() const { return n_; }
  double mean_us() const { return n_ ? sum_ / double(n_) / 1000.0 : 0; }
  double max_us() const { return double(max_) / 1000.0; }
  // The p-th percentile (lower bound of its bucket), in microseconds.
  double percentile_us(double p) const {
    if (n_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * double(n_)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += b_[i];
      if (seen >= std::max<std::uint64_t>(rank, 1)) return double(lower(i)) / 1000.0;
    }
    return max_us();
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < 128) return std::size_t(v);
    const int msb = 63 - __builtin_clzll(v);
    const int shift = msb - 6;  // v >> shift is in [64, 128)
    return 128 + std::size_t(shift - 1) * 64 + std::size_t((v >> shift) - 64);
  }
  static std::uint64_t lower(std::size_t i) {
    if (i < 128) return i;
    const std::size_t shift = (i - 128) / 64 + 1;
    return (64 + (i - 128) % 64) << shift;
  }
  std::vector<std::uint64_t> b_ = std::vector<std::uint64_t>(kBuckets);
  std::uint64_t n_ = 0, max_ = 0;
  double sum_ = 0;
};

struct Sample {
  LatencyHist lat;
  std::uint64_t errors = 0;
  double cpu = 0;
};

std::optional<Result> run_once(const Opts& o) {
  Result res;
  res.o = o;
  std::string base = (fs::path(o.dir) / "raft-bench-XXXXXX").string();
  if (!::mkdtemp(base.data())) {
    std::perror("raft-bench: mkdtemp");
    return std::nullopt;
  }
  struct Cleanup {
    std::vector<std::string> dirs;
    ~Cleanup() {
      kill_children();
      std::error_code ec;
      for (auto& d : dirs) fs::remove_all(d, ec);
    }
  } cleanup{{base}};
  // Node i's directory: base/ni, or a fresh directory under --node-dirs' ith entry.
  auto node_dir = [&](int i) -> std::optional<std::string> {
    if (o.node_dirs.empty()) return base + "/n" + std::to_string(i);
    const auto& parent = o.node_dirs[std::min<std::size_t>(std::size_t(i - 1), o.node_dirs.size() - 1)];
    std::string d = (fs::path(parent) / ("raft-bench-n" + std::to_string(i) + "-XXXXXX")).string();
    if (!::mkdtemp(d.data())) {
      std::perror(("raft-bench: mkdtemp in " + parent).c_str());
      return std::nullopt;
    }
    cleanup.dirs.push_back(d);
    return d + "/n" + std::to_string(i);
  };

  auto leader = std::make_unique<Node>();
  auto d1 = node_dir(1);
  if (!d1 || !leader->start(*d1, o)) return std::nullopt;
  struct StopNode {
    Node* n;
    ~StopNode() { n->stop(); }
  } stop_leader{leader.get()};
  if (auto r = leader->log->initialize(); !r) {
    std::fprintf(stderr, "raft-bench: initialize: %s\n", r.error().message().c_str());
    return std::nullopt;
  }
  for (int i = 2; i <= o.nodes; ++i) {
    auto di = node_dir(i);
    if (!di) return std::nullopt;
    pid_t p = spawn_follower(o, leader->url, *di);
    if (p < 0) return std::nullopt;
    g_children.push_back(p);
    // One membership change at a time: wait for this one to commit.
    if (!wait_for([&] { return leader->log->config().nodes.size() == std::size_t(i); }, std::chrono::seconds(20))) {
      std::fprintf(stderr, "raft-bench: node %d did not join\n", i);
      return std::nullopt;
    }
  }
  // A commit needs the followers' streams to be up: one apply proves it.
  if (auto r = leader->log->apply("warm", std::chrono::seconds(10)); !r) {
    std::fprintf(stderr, "raft-bench: first apply: %s\n", r.error().message().c_str());
    return std::nullopt;
  }

  if (o.at_follower) {
    // Leadership moves to the follower furthest along; this node then reads
    // as a follower, through the new leader (its first read proves it up).
    if (auto r = leader->log->transfer_leadership(0, std::chrono::seconds(10)); !r) {
      std::fprintf(stderr, "raft-bench: transfer_leadership: %s\n", r.error().message().c_str());
      return std::nullopt;
    }
    bool read_ok = wait_for([&] { return bool(leader->log->read_barrier(std::chrono::seconds(1))); },
                            std::chrono::seconds(20));
    if (!read_ok || leader->log->state() == raft::State::leader) {
      std::fprintf(stderr, "raft-bench: no read at a follower after the transfer\n");
      return std::nullopt;
    }
  }

  const std::string payload(o.size, 'x');
  std::atomic<int> phase{0};  // 0 warm-up, 1 measuring, 2 stopping
  Clk::time_point t_start, t_end;
  std::vector<Sample> samples(std::max(1, o.async || o.rate > 0 ? 1 : o.clients));
  std::vector<std::thread> threads;
  std::atomic<std::int64_t> outstanding{0};
  std::mutex mu;  // guards samples[0] in the callback modes
  raft::Log& log = *leader->log;

  if (o.rate > 0) {
    // Open loop: one pacing thread, latency from the intended send time.
    threads.emplace_back([&] {
      const auto period = std::chrono::duration<double>(1.0 / o.rate);
      const auto t0 = Clk::now();
      for (std::uint64_t k = 0; phase.load() != 2; ++k) {
        const auto due = t0 + std::chrono::duration_cast<Clk::duration>(period * double(k));
        if (due > Clk::now()) std::this_thread::sleep_until(due);
        const bool measured = phase.load() == 1;
        ++outstanding;
        log.start_apply(payload, {}, [&, due, measured](raft::result<std::uint64_t> r) {
          const auto t1 = Clk::now();
          {
            std::lock_guard lk(mu);
            if (!r) ++samples[0].errors;
            else if (measured && phase.load() == 1)
              samples[0].lat.add(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - due).count());
          }
          --outstanding;
        });
      }
    });
  } else if (o.async) {
    // C outstanding applies, each re-issued from its own completion.
    auto issue = std::make_shared<std::function<void()>>();
    *issue = [&, issue] {
      if (phase.load() == 2) return;
      const auto t0 = Clk::now();
      const bool measured = phase.load() == 1;
      ++outstanding;
      auto done = [&, t0, measured, issue](raft::result<std::uint64_t> r) {
        const auto t1 = Clk::now();
        {
          std::lock_guard lk(mu);
          if (!r) ++samples[0].errors;
          else if (measured && phase.load() == 1)
            samples[0].lat.add(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
        }
        (*issue)();
        --outstanding;
      };
      if (o.reads) return log.start_read_barrier({}, std::move(done));
      log.start_apply(payload, {}, std::move(done));
    };
    for (int c = 0; c < o.clients; ++c) (*issue)();
    threads.emplace_back([issue] {});  // keeps `issue` alive until joined
  } else {
    for (int c = 0; c < o.clients; ++c) {
      threads.emplace_back([&, c] {
        Sample& s = samples[c];
        double cpu0 = 0;
        bool in_window = false;
        while (true) {
          const int ph = phase.load(std::memory_order_acquire);
          if (ph == 2) break;
          if (ph == 1 && !in_window) {
            in_window = true;
            cpu0 = thread_cpu_seconds();
          }
          const auto t0 = Clk::now();
          auto r = o.reads ? log.read_barrier(std::chrono::seconds(5)) : log.apply(payload, std::chrono::seconds(5));
          const auto t1 = Clk::now();
          if (!r) {
            ++s.errors;
            continue;
          }
          if (ph == 1 && phase.load(std::memory_order_acquire) == 1)
            s.lat.add(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
        }
        if (in_window) s.cpu = thread_cpu_seconds() - cpu0;
      });
    }
  }

  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
  std::vector<double> cpu0;
  for (pid_t p : g_children) cpu0.push_back(proc_cpu_seconds(p));
  const double self0 = self_cpu_seconds();
  t_start = Clk::now();
  phase.store(1, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(o.duration));
  phase.store(2, std::memory_order_release);
  t_end = Clk::now();
  res.cpu_leader = self_cpu_seconds() - self0;
  for (std::size_t i = 0; i < g_children.size(); ++i) res.cpu_followers.push_back(proc_cpu_seconds(g_children[i]) - cpu0[i]);
  for (auto& t : threads) t.join();
  if (!wait_for([&] { return outstanding.load() <= 0; }, std::chrono::seconds(10)))
    std::fprintf(stderr, "raft-bench: %" PRId64 " applies still outstanding\n", outstanding.load());
  res.rss_kib = peak_rss_kib();

  LatencyHist all;
  {
    std::lock_guard lk(mu);
    for (auto& s : samples) {
      all.merge(s.lat);
      res.errors += s.errors;
      res.cpu_clients += s.cpu;
    }
  }
  res.seconds = secs(t_end - t_start);
  res.ops = all.count();
  res.p50 = all.percentile_us(50);
  res.p90 = all.percentile_us(90);
  res.p99 = all.percentile_us(99);
  res.p999 = all.percentile_us(99.9);
  res.max = all.max_us();
  res.mean = all.mean_us();
  return res;
}

// ------------------------------------------------------------------ output
std::string mode_name(const Opts& o) {
  std::string m = o.rate > 0 ? "open " + std::to_string(static_cast<long long>(o.rate)) + "/s" : o.async ? "async" : "threads";
  if (o.reads) m += o.at_follower ? "+freads" : "+reads";
  if (o.lease) m += "+lease";
  if (o.apply_on_io) m += "+aio";
  if (o.storage_on_io) m += "+sio";
  if (!o.apply_inline) m += "+athr";
  if (!o.tls_dir.empty()) m += "+tls";
  return m;
}

void print_header() {
  std::printf("%-5s %-7s %-6s %-7s %-8s %10s %8s %9s %9s %9s %9s %6s  %s\n", "nodes", "clients", "size", "sync", "load",
              "ops/s", "MB/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "errs", "CPU s: leader(clients) followers");
}

void print_row(const Result& r) {
  std::string cpu = std::to_string(r.cpu_leader).substr(0, 5) + "(" + std::to_string(r.cpu_clients).substr(0, 4) + ")";
  for (double c : r.cpu_followers) cpu += " " + std::to_string(c).substr(0, 5);
  std::printf("%-5d %-7d %-6zu %-7s %-8s %10.0f %8.2f %9.0f %9.0f %9.0f %9.0f %6" PRIu64 "  %s\n", r.o.nodes, r.o.clients,
              r.o.size, r.o.sync ? "sync" : "no-sync", mode_name(r.o).c_str(), r.ops_per_s(), r.mb_per_s(), r.p50, r.p90,
              r.p99, r.p999, r.errors, cpu.c_str());
  std::fflush(stdout);
}

std::string to_json(const Result& r) {
  std::string f = "[";
  for (std::size_t i = 0; i < r.cpu_followers.size(); ++i) f += (i ? "," : "") + std::to_string(r.cpu_followers[i]);
  f += "]";
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "{\"nodes\":%d,\"clients\":%d,\"size\":%zu,\"sync\":%s,\"load\":\"%s\",\"duration_s\":%.3f,"
                "\"ops\":%" PRIu64 ",\"errors\":%" PRIu64
                ",\"ops_per_s\":%.1f,\"mb_per_s\":%.3f,\"latency_us\":{\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,"
                "\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f},\"cpu_s\":{\"leader\":%.3f,\"leader_clients\":%.3f,"
                "\"followers\":%s},\"leader_peak_rss_kib\":%ld}",
                r.o.nodes, r.o.clients, r.o.size, r.o.sync ? "true" : "false", mode_name(r.o).c_str(), r.seconds, r.ops,
                r.errors, r.ops_per_s(), r.mb_per_s(), r.mean, r.p50, r.p90, r.p99, r.p999, r.max, r.cpu_leader,
                r.cpu_clients, f.c_str(), r.rss_kib);
  return buf;
}

// Latency against throughput, p50 and p99, one point per client count.
void write_svg(const std::string& path, const std::vector<Result>& rs) {
  const double W = 720, H = 440, L = 70, R = 20, T = 40, B = 50;
  double xmax = 1, ymax = 1;
  for (auto& r : rs) {
    xmax = std::max(xmax, r.ops_per_s());
    ymax = std::max(ymax, r.p99 / 1000.0);
  }
  auto nice = [](double v) {
    const double e = std::pow(10.0, std::floor(std::log10(v)));
    for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
      if (v <= m * e) return m * e;
    return 10 * e;
  };
  xmax = nice(xmax * 1.05);
  ymax = nice(ymax * 1.05);
  auto X = [&](double v) { return L + (W - L - R) * v / xmax; };
  auto Y = [&](double v) { return H - B - (H - T - B) * v / ymax; };
  std::ofstream f(path);
  f << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  const auto& o = rs.front().o;
  f << "<text x='" << W / 2 << "' y='20' text-anchor='middle' font-size='14'>raft-bench: " << o.nodes << " nodes, "
    << o.size << " B, " << (o.sync ? "sync" : "no-sync") << ", " << mode_name(o) << " (labels: clients)</text>\n";
  for (int i = 0; i <= 5; ++i) {
    const double xv = xmax * i / 5, yv = ymax * i / 5;
    f << "<line x1='" << X(xv) << "' y1='" << Y(0) << "' x2='" << X(xv) << "' y2='" << Y(ymax) << "' stroke='#ddd'/>\n";
    f << "<line x1='" << X(0) << "' y1='" << Y(yv) << "' x2='" << X(xmax) << "' y2='" << Y(yv) << "' stroke='#ddd'/>\n";
    f << "<text x='" << X(xv) << "' y='" << H - B + 16 << "' text-anchor='middle'>" << xv << "</text>\n";
    f << "<text x='" << L - 6 << "' y='" << Y(yv) + 4 << "' text-anchor='end'>" << yv << "</text>\n";
  }
  f << "<text x='" << W / 2 << "' y='" << H - 12 << "' text-anchor='middle'>throughput (ops/s)</text>\n";
  f << "<text x='16' y='" << H / 2 << "' transform='rotate(-90 16 " << H / 2
    << ")' text-anchor='middle'>commit latency (ms)</text>\n";
  auto series = [&](double Result::*field, const char* color, const char* name, int row) {
    std::string pts;
    for (auto& r : rs) pts += std::to_string(X(r.ops_per_s())) + "," + std::to_string(Y(r.*field / 1000.0)) + " ";
    f << "<polyline fill='none' stroke='" << color << "' stroke-width='2' points='" << pts << "'/>\n";
    for (auto& r : rs) {
      f << "<circle cx='" << X(r.ops_per_s()) << "' cy='" << Y(r.*field / 1000.0) << "' r='3' fill='" << color << "'/>\n";
      f << "<text x='" << X(r.ops_per_s()) + 5 << "' y='" << Y(r.*field / 1000.0) - 5 << "' fill='" << color << "'>"
        << r.o.clients << "</text>\n";
    }
    f << "<text x='" << L + 10 << "' y='" << T + 14 * row << "' fill='" << color << "'>" << name << "</text>\n";
  };
  series(&Result::p50, "#1f77b4", "p50", 1);
  series(&Result::p99, "#d62728", "p99", 2);
  f << "</svg>\n";
}

// ------------------------------------------------------------------- probes
struct ProbeResult {
  double rtt_p50_us = 0, rtt_p99_us = 0, loop_gbps = 0;
  double fdatasync_per_s = 0, fdatasync_p50_us = 0, seq_sync_mb_s = 0;
  double wake_ceiling_1 = 0, wake_ceiling_16 = 0, wake_ceiling_64 = 0;
  double group_commit_64 = 0, group_commit_per_sync = 0;
};

// The ceiling of the benchmark's own shape with no raft at all: C client
// threads each hand a request to one server thread and block until it is
// answered (what log.apply() does: post to the Log's strand, wait for the
// commit). The server answers everything queued at once. Every op still
// costs a wake-up of the server (when idle) and of the client: on a small
// VM that, not consensus, bounds blocking-client throughput.
double probe_wake_ceiling(int clients, std::chrono::milliseconds d) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> queue;
  bool stop = false;
  std::vector<std::unique_ptr<std::binary_semaphore>> done;
  for (int i = 0; i < clients; ++i) done.push_back(std::make_unique<std::binary_semaphore>(0));
  std::atomic<std::uint64_t> ops{0};
  std::thread server([&] {
    std::vector<int> batch;
    std::unique_lock lk(mu);
    for (;;) {
      cv.wait(lk, [&] { return stop || !queue.empty(); });
      if (stop) break;
      batch.swap(queue);
      lk.unlock();
      for (int id : batch) done[std::size_t(id)]->release();
      batch.clear();
      lk.lock();
    }
  });
  std::atomic<bool> running{true};
  std::vector<std::thread> cs;
  for (int i = 0; i < clients; ++i)
    cs.emplace_back([&, i] {
      while (running.load(std::memory_order_relaxed)) {
        {
          std::lock_guard lk(mu);
          queue.push_back(i);
        }
        cv.notify_one();
        done[std::size_t(i)]->acquire();
        ops.fetch_add(1, std::memory_order_relaxed);
      }
    });
  std::this_thread::sleep_for(d / 5);  // warm-up
  const auto a = ops.load();
  const auto t0 = Clk::now();
  std::this_thread::sleep_for(d);
  const double rate = double(ops.load() - a) / secs(Clk::now() - t0);
  running = false;
  for (auto& t : cs) t.join();
  {
    std::lock_guard lk(mu);
    stop = true;
  }
  cv.notify_one();
  server.join();
  return rate;
}

// The raw group-commit limit of the disk in the same shape: 64 client
// threads each append a 256 B record and wait until an fdatasync covers it;
// one syncer thread writes everything queued with one write() and one
// fdatasync. Returns entries/s and entries per fdatasync.
std::pair<double, double> probe_group_commit(const std::string& path, int clients, std::chrono::milliseconds d) {
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0600);
  if (fd < 0) return {0, 0};
  std::mutex mu;
  std::condition_variable work, durable_cv;
  std::string pending;
  std::uint64_t queued = 0, durable = 0, syncs = 0;
  bool stop = false, failed = false;
  std::thread syncer([&] {
    std::string out;
    std::unique_lock lk(mu);
    for (;;) {
      work.wait(lk, [&] { return stop || !pending.empty(); });
      if (stop) break;
      out.swap(pending);
      const std::uint64_t upto = queued;
      lk.unlock();
      const bool ok = ::write(fd, out.data(), out.size()) == ssize_t(out.size()) && ::fdatasync(fd) == 0;
      out.clear();
      lk.lock();
      if (!ok) failed = stop = true;
      durable = upto;
      ++syncs;
      durable_cv.notify_all();
    }
  });
  std::atomic<bool> running{true};
  std::atomic<std::uint64_t> ops{0};
  std::vector<std::thread> cs;
  const std::string rec(256, 'g');
  for (int i = 0; i < clients; ++i)
    cs.emplace_back([&] {
      while (running.load(std::memory_order_relaxed)) {
        std::unique_lock lk(mu);
        pending += rec;
        const std::uint64_t mine = ++queued;
        work.notify_one();
        durable_cv.wait(lk, [&] { return stop || durable >= mine; });
        if (stop) return;
        lk.unlock();
        ops.fetch_add(1, std::memory_order_relaxed);
      }
    });
  std::this_thread::sleep_for(d / 5);
  std::uint64_t a, sa;
  {
    std::lock_guard lk(mu);
    a = ops.load();
    sa = syncs;
  }
  const auto t0 = Clk::now();
  std::this_thread::sleep_for(d);
  std::uint64_t b, sb;
  {
    std::lock_guard lk(mu);
    b = ops.load();
    sb = syncs;
  }
  const double el = secs(Clk::now() - t0);
  running = false;
  for (auto& t : cs) t.join();  // each returns once its record is durable
  {
    std::lock_guard lk(mu);
    stop = true;
  }
  work.notify_one();
  syncer.join();
  ::close(fd);
  ::unlink(path.c_str());
  if (failed) return {0, 0};
  return {double(b - a) / el, sb > sa ? double(b - a) / double(sb - sa) : 0};
}

ProbeResult run_probe(const Opts& o) {
  ProbeResult pr;
  // 1. TCP loopback round trip: 1-byte ping-pong, TCP_NODELAY.
  {
    int ls = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(ls, 1);
    ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len);
    const int one = 1;
    constexpr int kIters = 20000, kWarm = 1000;
    constexpr std::size_t kBulk = std::size_t(1) << 30;  // 1 GiB for the bandwidth part
    std::thread server([ls, one] {
      int s = ::accept(ls, nullptr, nullptr);
      ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      char c;
      for (int i = 0; i < kIters + kWarm; ++i) {
        if (::read(s, &c, 1) != 1) break;
        if (::write(s, &c, 1) != 1) break;
      }
      std::vector<char> buf(1 << 20);
      std::size_t got = 0;
      while (got < kBulk) {
        auto n = ::read(s, buf.data(), buf.size());
        if (n <= 0) break;
        got += std::size_t(n);
      }
      ::write(s, &c, 1);
      ::close(s);
    });
    int c = ::socket(AF_INET, SOCK_STREAM, 0);
    ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::vector<std::uint64_t> lat;
    char ch = 'p';
    for (int i = 0; i < kIters + kWarm; ++i) {
      const auto t0 = Clk::now();
      if (::write(c, &ch, 1) != 1 || ::read(c, &ch, 1) != 1) break;
      if (i >= kWarm) lat.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clk::now() - t0).count());
    }
    std::sort(lat.begin(), lat.end());
    pr.rtt_p50_us = percentile(lat, 50);
    pr.rtt_p99_us = percentile(lat, 99);
    std::vector<char> buf(1 << 20, 'b');
    const auto t0 = Clk::now();
    std::size_t sent = 0;
    while (sent < kBulk) {
      auto n = ::write(c, buf.data(), std::min(buf.size(), kBulk - sent));
      if (n <= 0) break;
      sent += std::size_t(n);
    }
    (void)::read(c, &ch, 1);
    pr.loop_gbps = double(sent) / secs(Clk::now() - t0) / 1e9;
    ::close(c);
    server.join();
    ::close(ls);
  }
  // 2. fdatasync of a small append (the disk's group-commit limit), then
  //    sequential synced 1 MiB writes.
  {
    const std::string path = (fs::path(o.dir) / ("raft-bench-probe-" + std::to_string(::getpid()))).string();
    int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0600);
    if (fd < 0) {
      std::perror("raft-bench: probe file");
      return pr;
    }
    std::string rec(256, 'r');
    std::vector<std::uint64_t> lat;
    const auto t0 = Clk::now();
    while (Clk::now() - t0 < std::chrono::seconds(3)) {
      const auto a = Clk::now();
      if (::write(fd, rec.data(), rec.size()) != ssize_t(rec.size()) || ::fdatasync(fd) != 0) break;
      lat.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clk::now() - a).count());
    }
    pr.fdatasync_per_s = double(lat.size()) / secs(Clk::now() - t0);
    std::sort(lat.begin(), lat.end());
    pr.fdatasync_p50_us = percentile(lat, 50);
    std::string mib(1 << 20, 'm');
    std::size_t bytes = 0;
    const auto t1 = Clk::now();
    while (Clk::now() - t1 < std::chrono::seconds(2)) {
      if (::write(fd, mib.data(), mib.size()) != ssize_t(mib.size()) || ::fdatasync(fd) != 0) break;
      bytes += mib.size();
    }
    pr.seq_sync_mb_s = double(bytes) / secs(Clk::now() - t1) / 1e6;
    ::close(fd);
    ::unlink(path.c_str());
    std::tie(pr.group_commit_64, pr.group_commit_per_sync) = probe_group_commit(path, 64, std::chrono::seconds(3));
  }
  // 3. Thread wake-ups: the ceiling of C blocking clients with no raft.
  pr.wake_ceiling_1 = probe_wake_ceiling(1, std::chrono::seconds(2));
  pr.wake_ceiling_16 = probe_wake_ceiling(16, std::chrono::seconds(2));
  pr.wake_ceiling_64 = probe_wake_ceiling(64, std::chrono::seconds(2));
  return pr;
}

}  // namespace

int main(int argc, char** argv) {
  Opts o;
  try {
    o = parse(argc, argv);
  } catch (const std::logic_error&) {  // std::stoi and friends: not a number, or out of range
    usage("a numeric flag has a value that is not a number in range");
  }
  if (o.node) return run_node(o);
  ::signal(SIGPIPE, SIG_IGN);
  for (int s : {SIGINT, SIGTERM, SIGSEGV, SIGABRT}) ::signal(s, on_fatal_signal);

  if (o.probe) {
    auto p = run_probe(o);
    if (o.json)
      std::printf("{\"loopback_rtt_us\":{\"p50\":%.1f,\"p99\":%.1f},\"loopback_gb_per_s\":%.2f,"
                  "\"fdatasync_256b\":{\"per_s\":%.0f,\"p50_us\":%.1f},\"seq_sync_1mib_mb_per_s\":%.0f,"
                  "\"group_commit_64_clients_256b\":{\"per_s\":%.0f,\"per_fdatasync\":%.1f},"
                  "\"blocking_client_ceiling_per_s\":{\"1\":%.0f,\"16\":%.0f,\"64\":%.0f}}\n",
                  p.rtt_p50_us, p.rtt_p99_us, p.loop_gbps, p.fdatasync_per_s, p.fdatasync_p50_us, p.seq_sync_mb_s,
                  p.group_commit_64, p.group_commit_per_sync, p.wake_ceiling_1, p.wake_ceiling_16, p.wake_ceiling_64);
    else
      std::printf("loopback TCP RTT (1 B ping-pong, NODELAY): p50 %.1f us, p99 %.1f us\n"
                  "loopback bandwidth (1 GiB, 1 MiB writes):  %.2f GB/s\n"
                  "append 256 B + fdatasync (%s):            %.0f /s, p50 %.1f us\n"
                  "sequential 1 MiB write + fdatasync:        %.0f MB/s\n"
                  "group commit, 64 threads x 256 B:          %.0f entries/s (%.1f per fdatasync)\n"
                  "blocking-client ceiling (no raft), 1/16/64 threads: %.0f / %.0f / %.0f ops/s\n",
                  p.rtt_p50_us, p.rtt_p99_us, p.loop_gbps, o.dir.c_str(), p.fdatasync_per_s, p.fdatasync_p50_us,
                  p.seq_sync_mb_s, p.group_commit_64, p.group_commit_per_sync, p.wake_ceiling_1, p.wake_ceiling_16,
                  p.wake_ceiling_64);
    return 0;
  }

  std::vector<int> points = o.sweep.empty() ? std::vector<int>{o.clients} : o.sweep;
  std::vector<Result> medians;
  if (!o.json) print_header();
  for (int c : points) {
    Opts oc = o;
    oc.clients = c;
    std::vector<Result> runs;
    for (int k = 0; k < o.repeat; ++k) {
      auto r = run_once(oc);
      if (!r) return 1;
      if (o.json) std::printf("%s\n", to_json(*r).c_str());
      else if (o.repeat > 1) {
        std::printf("  run %d: ", k + 1);
        print_row(*r);
      }
      runs.push_back(std::move(*r));
    }
    std::sort(runs.begin(), runs.end(), [](const Result& a, const Result& b) { return a.ops_per_s() < b.ops_per_s(); });
    const Result& med = runs[runs.size() / 2];
    if (!o.json) {
      if (o.repeat > 1) std::printf("median of %d (by ops/s):\n", o.repeat);
      print_row(med);
    } else if (o.repeat > 1) {
      std::printf("{\"median_of\":%d,\"result\":%s}\n", o.repeat, to_json(med).c_str());
    }
    medians.push_back(med);
  }
  if (!o.sweep.empty()) {
    write_svg(o.svg, medians);
    if (!o.json) std::printf("wrote %s\n", o.svg.c_str());
  }
  return 0;
}
