// Shared pieces of the net tests: a scripted fake Service, a fixture with a
// Server and an HTTPTransport on one io_context, bounded waits, and a raw
// TCP client/server for bytes the real client would never send.
#pragma once

#include "raft/http.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace raft::test {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

// Records every call; answers with the scripted result, synchronously.
struct FakeService : Service {
  std::uint64_t cid = 0;
  Status st;
  std::vector<std::string> calls;

  result<JoinResponse> join_result = JoinResponse{};
  result<void> leave_result = result<void>{};
  result<HeartbeatResponse> hb_result = HeartbeatResponse{};
  result<VoteResponse> vote_result = VoteResponse{};
  result<void> ack_result = result<void>{};
  result<std::uint64_t> read_index_result = std::uint64_t{0};
  std::string last_join_url;
  std::uint64_t last_join_previous_id = 0;
  std::uint64_t last_join_token = 0;
  bool last_join_learner = false;
  bool last_join_promote = false;
  std::uint64_t last_leave_id = 0;
  HeartbeatRequest last_hb;
  VoteRequest last_vote;
  AckRequest last_ack;
  ReadIndexRequest last_read_index;
  StreamRequest last_stream;
  std::function<void(std::shared_ptr<StreamWriter>)> on_stream;

  std::uint64_t cluster_id() const override { return cid; }
  Status status() const override { return st; }
  void handle_join(const JoinRequest& req, Handler_fn<JoinResponse> h) override {
    calls.push_back("join");
    last_join_url = req.url;
    last_join_previous_id = req.previous_id;
    last_join_token = req.join_token;
    last_join_learner = req.learner;
    last_join_promote = req.promote;
    h(join_result);
  }
  void handle_leave(std::uint64_t id, Handler_fn<void> h) override {
    calls.push_back("leave");
    last_leave_id = id;
    h(leave_result);
  }
  void handle_heartbeat(const HeartbeatRequest& r, Handler_fn<HeartbeatResponse> h) override {
    calls.push_back("heartbeat");
    last_hb = r;
    h(hb_result);
  }
  void handle_vote(const VoteRequest& r, Handler_fn<VoteResponse> h) override {
    calls.push_back("vote");
    last_vote = r;
    h(vote_result);
  }
  void handle_ack(const AckRequest& r, Handler_fn<void> h) override {
    calls.push_back("ack");
    last_ack = r;
    h(ack_result);
  }
  void handle_read_index(const ReadIndexRequest& r, Handler_fn<std::uint64_t> h) override {
    calls.push_back("readIndex");
    last_read_index = r;
    h(read_index_result);
  }
  void handle_stream(const StreamRequest& r, std::shared_ptr<StreamWriter> w) override {
    calls.push_back("stream");
    last_stream = r;
    if (on_stream) on_stream(std::move(w));
    else w->finish(make_error_code(errc::not_leader));
  }
};

// Runs `ioc` until `pred` holds or `limit` passes; never sleeps.
inline bool run_until(net::io_context& ioc, const std::function<bool()>& pred,
                      std::chrono::milliseconds limit = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    if (ioc.stopped()) ioc.restart();
    ioc.run_one_for(10ms);
  }
  return true;
}

// Runs `ioc` for `d` of wall time (used only to observe that nothing happens).
inline void run_for(net::io_context& ioc, std::chrono::milliseconds d) {
  auto deadline = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ioc.stopped()) ioc.restart();
    ioc.run_one_for(5ms);
  }
}

// One StreamWriter::write, run to its completion: its error (errc::timeout
// if it never completed).
inline std::error_code write_once(net::io_context& ioc, StreamWriter& w, std::string_view bytes) {
  // Shared: a write that completes after we gave up must not touch our frame.
  auto r = std::make_shared<std::optional<std::error_code>>();
  w.write(bytes, [r](std::error_code ec) { *r = ec; });
  if (!run_until(ioc, [&] { return r->has_value(); })) return make_error_code(errc::timeout);
  return **r;
}

inline ServerOptions quick_options() {
  ServerOptions o;
  o.header_limit_bytes = 4096;
  o.body_limit_bytes = 1024;
  o.max_connections = 16;
  o.idle_timeout_ms = 2000;
  o.read_timeout_ms = 300;
  o.write_timeout_ms = 300;
  return o;
}

// A raw TCP client: writes `bytes`, then reads until the peer closes, `done`
// returns true on what arrived, or the wait limit.
struct RawClient {
  explicit RawClient(net::io_context& ioc) : ioc(ioc), sock(ioc) {}
  // Pending handlers may run after we are gone: they check `alive` first.
  ~RawClient() { *alive = false; }
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  net::io_context& ioc;
  tcp::socket sock;
  std::string data;
  bool closed = false;
  bool connected = false;
  char buf[4096];

  bool connect(std::uint16_t port) {
    bool done = false;
    boost::system::error_code err;
    sock.async_connect({net::ip::make_address("127.0.0.1"), port}, [&](boost::system::error_code ec) {
      err = ec;
      done = true;
    });
    run_until(ioc, [&] { return done; });
    connected = done && !err;
    if (connected) start_read();
    return connected;
  }
  void start_read() {
    sock.async_read_some(net::buffer(buf), [this, alive = alive](boost::system::error_code ec, std::size_t n) {
      if (!*alive) return;
      data.append(buf, n);
      if (ec) {
        closed = true;
        return;
      }
      start_read();
    });
  }
  void send(std::string bytes) {
    auto b = std::make_shared<std::string>(std::move(bytes));
    net::async_write(sock, net::buffer(*b), [b](boost::system::error_code, std::size_t) {});
  }
  bool wait_closed(std::chrono::milliseconds limit = 5000ms) {
    return run_until(ioc, [&] { return closed; }, limit);
  }
  bool wait_for(const std::string& needle, std::chrono::milliseconds limit = 5000ms) {
    return run_until(ioc, [&] { return data.find(needle) != std::string::npos || closed; }, limit) &&
           data.find(needle) != std::string::npos;
  }
  // Count of complete responses seen so far (by status lines).
  std::size_t responses() const {
    std::size_t n = 0;
    for (auto p = data.find("HTTP/1."); p != std::string::npos; p = data.find("HTTP/1.", p + 1)) ++n;
    return n;
  }
};

// Fixture: one io_context, a Server for a FakeService, a transport.
class NetTest : public ::testing::Test {
 protected:
  void SetUp() override { start_server(quick_options()); }
  void TearDown() override {
    if (server) server->stop();
    run_until(ioc, [&] { return !server || server->connection_count() == 0; }, 2000ms);
  }
  void start_server(ServerOptions o) {
    if (server) server->stop();
    server = std::make_unique<Server>(ioc.get_executor(), handler, o);
    auto p = server->listen("127.0.0.1", 0);
    ASSERT_TRUE(p) << p.error().message();
    port = *p;
    url = "http://127.0.0.1:" + std::to_string(port);
  }
  // One raw request; waits until the server closes or a full response shows.
  std::string raw(const std::string& bytes) {
    RawClient c(ioc);
    EXPECT_TRUE(c.connect(port));
    c.send(bytes);
    EXPECT_TRUE(c.wait_closed());
    return c.data;
  }
  static std::string post(const std::string& target, const std::string& extra = "") {
    return "POST " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + "\r\n";
  }
  static std::string get(const std::string& target, const std::string& extra = "") {
    return "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + "\r\n";
  }

  net::io_context ioc;
  FakeService svc;
  Handler handler{svc};
  std::unique_ptr<Server> server;
  std::uint16_t port = 0;
  std::string url;
  HTTPTransportOptions topts = [] {
    HTTPTransportOptions o;
    o.request_timeout_ms = 1000;
    o.connect_timeout_ms = 1000;
    return o;
  }();
  HTTPTransport transport{ioc.get_executor(), topts};
};

inline std::string status_line(const std::string& resp) { return resp.substr(0, resp.find("\r\n")); }

}  // namespace raft::test
