// The opt-in hook: a user's own Beast server serves its API and /raft/* on
// one port; raft gives the connection back after each non-stream request.
#include "net_fixture.hpp"
#include "raft/http_beast.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace raft::test {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

// The smallest user server: /api/hello is its own, /raft/* goes to raft.
struct UserSession : std::enable_shared_from_this<UserSession> {
  UserSession(tcp::socket s, Handler& h) : handler(h) { stream.emplace(std::move(s)); }
  std::optional<beast::tcp_stream> stream;  // basic_stream is not move-assignable
  beast::flat_buffer buffer;
  http::request<http::string_body> req;
  Handler& handler;

  void do_read() {
    req = {};
    http::async_read(*stream, buffer, req, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return;
      self->on_read();
    });
  }
  void on_read() {
    if (is_raft_target(req.target())) {
      serve_raft_request(handler, std::move(*stream), std::move(req),
                         [self = shared_from_this()](beast::tcp_stream s) {
                           self->stream.emplace(std::move(s));
                           self->do_read();
                         });
      return;
    }
    auto res = std::make_shared<http::response<http::string_body>>(http::status::ok, req.version());
    res->body() = "hello";
    res->keep_alive(req.keep_alive());
    res->prepare_payload();
    http::async_write(*stream, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (ec || !res->keep_alive()) return;
      self->do_read();
    });
  }
};

struct UserServer {
  UserServer(net::io_context& ioc, Handler& h) : acc(ioc, {net::ip::make_address("127.0.0.1"), 0}), handler(h) {
    accept();
  }
  void accept() {
    acc.async_accept([this](beast::error_code ec, tcp::socket s) {
      if (ec) return;
      std::make_shared<UserSession>(std::move(s), handler)->do_read();
      accept();
    });
  }
  std::uint16_t port() const { return acc.local_endpoint().port(); }
  tcp::acceptor acc;
  Handler& handler;
};

class BeastHookTest : public NetTest {};

TEST_F(BeastHookTest, OnePortServesUserRoutesAndRaft) {
  UserServer us(ioc, handler);
  svc.hb_result = HeartbeatResponse{5, 2, {}};
  RawClient c(ioc);
  ASSERT_TRUE(c.connect(us.port()));
  c.send("GET /api/hello HTTP/1.1\r\nHost: x\r\n\r\n"
         "POST /raft/heartbeat?term=2&commitIndex=1&leaderID=1 HTTP/1.1\r\nHost: x\r\n\r\n"
         "GET /api/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(c.wait_closed());
  auto a = c.data.find("hello"), b = c.data.find("X-Raft-Index: 5"), d = c.data.rfind("hello");
  ASSERT_NE(a, std::string::npos) << c.data;
  ASSERT_NE(b, std::string::npos) << c.data;
  EXPECT_LT(a, b);
  EXPECT_LT(b, d);
  EXPECT_EQ(svc.calls, std::vector<std::string>{"heartbeat"});
}

TEST_F(BeastHookTest, TransportAndStreamThroughTheHook) {
  UserServer us(ioc, handler);
  std::string u = "http://127.0.0.1:" + std::to_string(us.port());
  bool got = false;
  transport.heartbeat(u, {1, 0, 1}, [&](result<HeartbeatResponse> r) {
    EXPECT_TRUE(r);
    got = true;
  });
  ASSERT_TRUE(run_until(ioc, [&] { return got; }));

  std::shared_ptr<StreamWriter> w;
  svc.on_stream = [&](std::shared_ptr<StreamWriter> x) { w = std::move(x); };
  std::string data;
  int ends = 0;
  auto h = transport.read_from(u, {2, 1, 0, 0},
                               {[&](std::string_view b, std::function<void()> more) {
                                  data.append(b);
                                  more();
                                },
                                [&](std::error_code ec) {
                                  EXPECT_FALSE(ec);
                                  ++ends;
                                }});
  ASSERT_TRUE(run_until(ioc, [&] { return w != nullptr; }));
  w->write("entries", [](std::error_code) {});
  w->finish({});
  ASSERT_TRUE(run_until(ioc, [&] { return ends == 1; }));
  EXPECT_EQ(data, "entries");
}

// The ack channel through the hook: the user's server read the stream
// request; the follower writes acks only after the response head, so they
// reach raft's session, not the user's buffer.
TEST_F(BeastHookTest, AcksRideTheHookedStreamConnection) {
  UserServer us(ioc, handler);
  const std::string u = "http://127.0.0.1:" + std::to_string(us.port());
  const std::string me = "http://127.0.0.1:9/me";
  std::shared_ptr<StreamWriter> w;
  svc.on_stream = [&](std::shared_ptr<StreamWriter> x) { w = std::move(x); };
  std::string data;
  auto h = transport.read_from(u, {2, 1, 0, 0, me},
                               {[&](std::string_view b, std::function<void()> more) {
                                  data.append(b);
                                  more();
                                },
                                [](std::error_code) {}});
  ASSERT_TRUE(run_until(ioc, [&] { return w != nullptr; }));
  w->write("entries", [](std::error_code) {});
  ASSERT_TRUE(run_until(ioc, [&] { return data == "entries"; }));
  const auto before = transport.connections_opened();
  std::optional<result<void>> r;
  transport.ack(u, {2, 1, 5, me}, [&](result<void> x) { r = x; });
  ASSERT_TRUE(run_until(ioc, [&] { return svc.last_ack.index == 5; }));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(*r);
  EXPECT_EQ(svc.last_ack.id, 2u);
  EXPECT_EQ(svc.last_ack.url, me);
  EXPECT_EQ(transport.connections_opened(), before);  // no POST connection
  w->finish({});
}

}  // namespace
}  // namespace raft::test
