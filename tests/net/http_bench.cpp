// raft-http-bench: loopback figures for the HTTP transport, one thread, one
// io_context (client and server share the core, as a raw TCP transfer does).
//   heartbeat round trip (10k sequential calls): median, p99
//   stream leader -> follower for 256 B and 64 KiB writes: writes/s, MB/s
//   raw TCP loopback transfer of the same bytes for comparison
// Usage: raft-http-bench [heartbeats=10000]
#include "raft/http.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct BenchService : raft::Service {
  std::function<void(std::shared_ptr<raft::StreamWriter>)> on_stream;
  std::uint64_t cluster_id() const override { return 0; }
  raft::Status status() const override { return {}; }
  void handle_join(const raft::JoinRequest&, raft::Handler_fn<raft::JoinResponse> h) override { h(raft::JoinResponse{}); }
  void handle_leave(std::uint64_t, raft::Handler_fn<void> h) override { h(raft::result<void>{}); }
  void handle_heartbeat(const raft::HeartbeatRequest& r, raft::Handler_fn<raft::HeartbeatResponse> h) override {
    h(raft::HeartbeatResponse{r.commit_index, r.term, {}});
  }
  void handle_vote(const raft::VoteRequest& r, raft::Handler_fn<raft::VoteResponse> h) override {
    h(raft::VoteResponse{r.term, {}});
  }
  void handle_ack(const raft::AckRequest&, raft::Handler_fn<void> h) override { h(raft::result<void>{}); }
  void handle_read_index(const raft::ReadIndexRequest&, raft::Handler_fn<std::uint64_t> h) override { h(std::uint64_t{0}); }
  void handle_stream(const raft::StreamRequest&, std::shared_ptr<raft::StreamWriter> w) override {
    on_stream(std::move(w));
  }
};

double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

void run_until(net::io_context& ioc, const std::function<bool()>& pred) {
  while (!pred()) {
    if (ioc.stopped()) ioc.restart();
    ioc.run_one();
  }
}

void bench_heartbeat(net::io_context& ioc, raft::HTTPTransport& t, const std::string& url, int n) {
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n + 100; ++i) {  // 100 warm-up calls
    bool done = false;
    auto start = Clock::now();
    t.heartbeat(url, {1, static_cast<std::uint64_t>(i), 1}, [&](raft::result<raft::HeartbeatResponse> r) {
      if (!r) {
        std::fprintf(stderr, "heartbeat failed: %s\n", r.error().message().c_str());
        std::exit(1);
      }
      done = true;
    });
    run_until(ioc, [&] { return done; });
    if (i >= 100) us.push_back(secs(Clock::now() - start) * 1e6);
  }
  std::sort(us.begin(), us.end());
  std::printf("heartbeat round trip, %d calls: median %.1f us, p99 %.1f us, max %.1f us\n", n,
              us[us.size() / 2], us[us.size() * 99 / 100], us.back());
}

double bench_stream(net::io_context& ioc, raft::HTTPTransport& t, BenchService& svc, const std::string& url,
                    std::size_t write_bytes, std::size_t total_bytes) {
  std::shared_ptr<raft::StreamWriter> writer;
  svc.on_stream = [&](std::shared_ptr<raft::StreamWriter> w) { writer = std::move(w); };
  std::size_t received = 0;
  bool ended = false;
  auto h = t.read_from(url, {2, 1, 0, 0},
                       {[&](std::string_view b, std::function<void()> more) {
                          received += b.size();
                          more();
                        },
                        [&](std::error_code) { ended = true; }});
  run_until(ioc, [&] { return writer != nullptr || ended; });
  if (!writer) {
    std::fprintf(stderr, "stream failed\n");
    std::exit(1);
  }
  std::string chunk(write_bytes, 'x');
  std::size_t writes = total_bytes / write_bytes, sent = 0;
  std::function<void()> next = [&] {
    if (sent == writes) return writer->finish({});
    writer->write(chunk, [&](std::error_code ec) {
      if (ec) return;
      ++sent;
      next();
    });
  };
  auto start = Clock::now();
  next();
  run_until(ioc, [&] { return ended; });
  double s = secs(Clock::now() - start);
  double mbps = static_cast<double>(received) / s / 1e6;
  std::printf("stream %6zu B writes: %8zu writes in %.3f s = %9.0f writes/s, %7.1f MB/s\n", write_bytes, writes, s,
              static_cast<double>(writes) / s, mbps);
  writer.reset();
  return mbps;
}

double bench_raw_tcp(net::io_context& ioc, std::size_t write_bytes, std::size_t total_bytes) {
  tcp::acceptor acc(ioc, {net::ip::make_address("127.0.0.1"), 0});
  tcp::socket a(ioc), b(ioc);
  bool accepted = false, connected = false;
  acc.async_accept(b, [&](boost::system::error_code) { accepted = true; });
  a.async_connect(acc.local_endpoint(), [&](boost::system::error_code) { connected = true; });
  run_until(ioc, [&] { return accepted && connected; });
  a.set_option(tcp::no_delay(true));
  b.set_option(tcp::no_delay(true));
  std::string chunk(write_bytes, 'x');
  std::vector<char> buf(256 * 1024);
  std::size_t sent = 0, received = 0;
  std::function<void()> do_write = [&] {
    if (sent >= total_bytes) return;
    net::async_write(a, net::buffer(chunk), [&](boost::system::error_code ec, std::size_t n) {
      if (ec) return;
      sent += n;
      do_write();
    });
  };
  std::function<void()> do_read = [&] {
    b.async_read_some(net::buffer(buf), [&](boost::system::error_code ec, std::size_t n) {
      if (ec) return;
      received += n;
      if (received < total_bytes) do_read();
    });
  };
  auto start = Clock::now();
  do_write();
  do_read();
  run_until(ioc, [&] { return received >= total_bytes; });
  double s = secs(Clock::now() - start);
  double mbps = static_cast<double>(received) / s / 1e6;
  std::printf("raw TCP %6zu B writes: %zu bytes in %.3f s = %7.1f MB/s\n", write_bytes, received, s, mbps);
  return mbps;
}

}  // namespace

// raft-http-bench [HEARTBEATS] [--tls DIR]: with --tls, the heartbeat and
// stream figures again over TLS (DIR: ca.pem, node.pem, node.key, e.g.
// tests/net/testdata/tls), after the plain ones. One thread does both ends,
// so the difference is the CPU that TLS adds per call and per byte.
int main(int argc, char** argv) {
  int heartbeats = 10000;
  std::string tls_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--tls" && i + 1 < argc) tls_dir = argv[++i];
    else heartbeats = std::atoi(argv[i]);
  }
  if (heartbeats < 200) {
    std::fprintf(stderr, "usage: raft-http-bench [HEARTBEATS >= 200] [--tls DIR]\n");
    return 2;
  }
  net::io_context ioc;
  BenchService svc;
  raft::Handler handler(svc);
  raft::Server server(ioc.get_executor(), handler);
  auto port = server.listen("127.0.0.1", 0);
  if (!port) return 1;
  std::string url = "http://127.0.0.1:" + std::to_string(*port);
  raft::HTTPTransport transport(ioc.get_executor());

  bench_heartbeat(ioc, transport, url, heartbeats);
  bench_stream(ioc, transport, svc, url, 256, 64u << 20);
  double raw_small = bench_raw_tcp(ioc, 256, 64u << 20);
  double http_big = bench_stream(ioc, transport, svc, url, 64 * 1024, 1024u << 20);
  double raw_big = bench_raw_tcp(ioc, 64 * 1024, 1024u << 20);
  std::printf("stream/raw for 64 KiB writes: %.0f %%  (256 B raw: %.1f MB/s)\n", 100.0 * http_big / raw_big,
              raw_small);
  if (!tls_dir.empty()) {
    raft::TLSOptions o{tls_dir + "/node.pem", tls_dir + "/node.key", tls_dir + "/ca.pem"};
    std::string why;
    auto sc = raft::TLSContext::server(o, &why);
    auto cc = sc ? raft::TLSContext::client(o, &why) : sc;
    if (!cc) {
      std::fprintf(stderr, "raft-http-bench: --tls %s: %s\n", tls_dir.c_str(), why.c_str());
      return 2;
    }
    raft::ServerOptions so;
    so.tls = *sc;
    raft::Server tls_server(ioc.get_executor(), handler, so);
    auto tls_port = tls_server.listen("127.0.0.1", 0);
    if (!tls_port) return 1;
    raft::HTTPTransportOptions to;
    to.tls = *cc;
    raft::HTTPTransport tls_transport(ioc.get_executor(), to);
    const std::string tls_url = "https://127.0.0.1:" + std::to_string(*tls_port);
    std::printf("-- over TLS --\n");
    bench_heartbeat(ioc, tls_transport, tls_url, heartbeats);
    bench_stream(ioc, tls_transport, svc, tls_url, 256, 64u << 20);
    const double tls_big = bench_stream(ioc, tls_transport, svc, tls_url, 64 * 1024, 1024u << 20);
    std::printf("TLS/plain stream for 64 KiB writes: %.0f %%\n", 100.0 * tls_big / http_big);
    tls_server.stop();
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(100));
  }
  server.stop();
  ioc.restart();
  ioc.run_for(std::chrono::milliseconds(100));
  return 0;
}
