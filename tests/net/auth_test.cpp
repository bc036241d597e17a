// The cluster's shared secret (HandlerOptions::auth_token,
// HTTPTransportOptions::auth_token): every /raft/* request but the ping must
// carry `Authorization: Bearer <token>`; anything else is a 401 that reaches
// no Service call. The transport sends the token on every request, streams
// included, and maps a 401 to errc::unauthorized.
#include "net_fixture.hpp"

namespace raft::test {
namespace {

constexpr const char* kToken = "s3cret-Token_42";

class AuthTest : public NetTest {
 protected:
  void SetUp() override {
    server = std::make_unique<Server>(ioc.get_executor(), authed, quick_options());
    auto p = server->listen("127.0.0.1", 0);
    ASSERT_TRUE(p) << p.error().message();
    port = *p;
    url = "http://127.0.0.1:" + std::to_string(port);
  }
  static std::string bearer(const std::string& token) { return "Authorization: Bearer " + token + "\r\n"; }
  template <class T>
  result<T> call(std::function<void(Handler_fn<T>)> start) {
    auto r = std::make_shared<std::optional<result<T>>>();
    start([r](result<T> x) { r->emplace(std::move(x)); });
    if (!run_until(ioc, [&] { return r->has_value(); })) return make_error_code(errc::timeout);
    return **r;
  }
  HTTPTransportOptions with_token(std::string token) {
    HTTPTransportOptions o = topts;
    o.auth_token = std::move(token);
    return o;
  }
  Handler authed{svc, {.auth_token = kToken}};
};

TEST_F(AuthTest, RequestsWithoutTheTokenAreRefusedAndReachNoService) {
  for (const std::string& req : {post("/raft/leave?id=2"), post("/raft/join?url=http%3A%2F%2F127.0.0.1%3A9"),
                                 post("/raft/heartbeat?term=1&commitIndex=0&leaderID=1"),
                                 post("/raft/vote?term=1&candidateID=2&lastLogIndex=0&lastLogTerm=0"),
                                 post("/raft/ack?id=2&term=1&index=1"), get("/raft/stream?id=2&term=1&index=0&logTerm=0"),
                                 get("/raft/status"), get("/raft/metrics")}) {
    const auto resp = raw(req);
    EXPECT_EQ(status_line(resp), "HTTP/1.1 401 Unauthorized") << req;
    EXPECT_NE(resp.find("X-Raft-Error: unauthorized"), std::string::npos) << req;
    EXPECT_NE(resp.find("WWW-Authenticate: Bearer"), std::string::npos) << req;
  }
  EXPECT_TRUE(svc.calls.empty());
  // The ping stays open: load balancers and humans check liveness with it.
  EXPECT_EQ(status_line(raw(get("/raft/ping"))), "HTTP/1.1 200 OK");
}

TEST_F(AuthTest, OnlyTheExactBearerTokenIsAccepted) {
  const std::string t = kToken;
  for (const std::string& extra :
       {bearer("wrong"), bearer(t + "x"), bearer(t.substr(0, t.size() - 1)), bearer(""), "Authorization: Basic " + t + "\r\n",
        "Authorization: bearer " + t + "\r\n", bearer(t) + bearer(t)}) {
    EXPECT_EQ(status_line(raw(post("/raft/leave?id=2", extra))), "HTTP/1.1 401 Unauthorized") << extra;
  }
  EXPECT_TRUE(svc.calls.empty());
  EXPECT_EQ(status_line(raw(post("/raft/leave?id=2", bearer(t)))), "HTTP/1.1 200 OK");
  ASSERT_EQ(svc.calls.size(), 1u);
  EXPECT_EQ(svc.last_leave_id, 2u);
}

TEST_F(AuthTest, TransportSendsTheTokenAndMapsARefusalToUnauthorized) {
  svc.hb_result = HeartbeatResponse{7, 3, {}, 2};
  HTTPTransport good(ioc.get_executor(), with_token(kToken));
  auto ok = call<HeartbeatResponse>([&](auto h) { good.heartbeat(url, {3, 5, 1}, std::move(h)); });
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->index, 7u);

  HTTPTransport wrong(ioc.get_executor(), with_token("not-it"));
  auto hb = call<HeartbeatResponse>([&](auto h) { wrong.heartbeat(url, {3, 5, 1}, std::move(h)); });
  EXPECT_EQ(hb.error(), errc::unauthorized);
  auto j = call<JoinResponse>([&](auto h) { wrong.join(url, {"http://127.0.0.1:9", 0}, std::move(h)); });
  EXPECT_EQ(j.error(), errc::unauthorized);
  auto none = call<void>([&](auto h) { transport.leave(url, 2, std::move(h)); });  // no token at all
  EXPECT_EQ(none.error(), errc::unauthorized);
  EXPECT_EQ(svc.calls, std::vector<std::string>{"heartbeat"});
}

TEST_F(AuthTest, StreamsCarryTheToken) {
  svc.on_stream = [](std::shared_ptr<StreamWriter> w) { w->finish(make_error_code(errc::stale_term)); };
  auto stream_end = [&](HTTPTransport& t) {
    auto ec = std::make_shared<std::optional<std::error_code>>();
    StreamCallbacks cb;
    cb.on_data = [](std::string_view, std::function<void()> more) { more(); };
    cb.on_end = [ec](std::error_code e) { *ec = e; };
    auto handle = t.read_from(url, {2, 1, 0, 0}, std::move(cb));
    EXPECT_TRUE(run_until(ioc, [&] { return ec->has_value(); }));
    return ec->value_or(make_error_code(errc::timeout));
  };
  HTTPTransport wrong(ioc.get_executor(), with_token("not-it"));
  EXPECT_EQ(stream_end(wrong), errc::unauthorized);
  EXPECT_TRUE(svc.calls.empty());
  HTTPTransport good(ioc.get_executor(), with_token(kToken));
  EXPECT_EQ(stream_end(good), errc::stale_term);  // served: the Service's own answer
  EXPECT_EQ(svc.calls, std::vector<std::string>{"stream"});
}

}  // namespace
}  // namespace raft::test
