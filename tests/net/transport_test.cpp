// HTTPTransport against the real Server and a fake Service: each call's
// wire form, replies mapped back to values and errc, failures of the peer.
#include "net_fixture.hpp"

namespace raft::test {
namespace {

template <class T>
struct Got {
  bool done = false;
  std::optional<result<T>> r;
  Handler_fn<T> fn() {
    return [this](result<T> x) {
      r.emplace(std::move(x));
      done = true;
    };
  }
};

class TransportTest : public NetTest {
 protected:
  template <class T>
  result<T> wait(Got<T>& g) {
    EXPECT_TRUE(run_until(ioc, [&] { return g.done; }));
    if (!g.done) return make_error_code(errc::timeout);
    return *g.r;
  }
  // One join through the transport to the fixture's server, to completion.
  result<JoinResponse> join(JoinRequest req) {
    Got<JoinResponse> g;
    transport.join(url, req, g.fn());
    return wait(g);
  }
};

TEST_F(TransportTest, HeartbeatSendsParametersAndReadsIndexAndTerm) {
  svc.hb_result = HeartbeatResponse{7, 3, {}, 2};
  Got<HeartbeatResponse> g;
  transport.heartbeat(url, {3, 5, 1}, g.fn());
  auto r = wait(g);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->index, 7u);
  EXPECT_EQ(r->term, 3u);
  EXPECT_EQ(r->id, 2u);  // the responder's id: reads count only the addressed member
  EXPECT_FALSE(r->error);
  EXPECT_EQ(svc.last_hb.term, 3u);
  EXPECT_EQ(svc.last_hb.commit_index, 5u);
  EXPECT_EQ(svc.last_hb.leader_id, 1u);
}

// Leadership transfer: timeoutNow=1 on the heartbeat, absent otherwise.
TEST_F(TransportTest, HeartbeatCarriesTheTimeoutNowFlag) {
  svc.hb_result = HeartbeatResponse{7, 3, {}, 2};
  Got<HeartbeatResponse> plain;
  transport.heartbeat(url, {3, 5, 1}, plain.fn());
  ASSERT_TRUE(wait(plain));
  EXPECT_FALSE(svc.last_hb.timeout_now);
  Got<HeartbeatResponse> now;
  transport.heartbeat(url, {3, 5, 1, "http://127.0.0.1:1", true}, now.fn());
  ASSERT_TRUE(wait(now));
  EXPECT_TRUE(svc.last_hb.timeout_now);
  EXPECT_EQ(svc.last_hb.leader_url, "http://127.0.0.1:1");
}

// A node with no id yet (started afresh) sends no X-Raft-ID: read as 0.
TEST_F(TransportTest, HeartbeatFromANodeWithoutAnIdReadsAsIdZero) {
  svc.hb_result = HeartbeatResponse{0, 3, {}, 0};
  Got<HeartbeatResponse> g;
  transport.heartbeat(url, {3, 5, 1}, g.fn());
  auto r = wait(g);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->id, 0u);
  EXPECT_EQ(r->term, 3u);
  EXPECT_EQ(r->vote_hold_ms, 0u);
}

// Lease reads: the responder's promise to grant no vote for a while
// (X-Raft-Vote-Hold-Ms) comes through; without the header it is 0.
TEST_F(TransportTest, HeartbeatCarriesTheVoteHoldOfLeaseReads) {
  HeartbeatResponse hb{7, 3, {}, 2};
  hb.vote_hold_ms = 1500;
  svc.hb_result = hb;
  Got<HeartbeatResponse> g;
  transport.heartbeat(url, {3, 5, 1}, g.fn());
  auto r = wait(g);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->vote_hold_ms, 1500u);
}

TEST_F(TransportTest, HeartbeatStaleTermIsAnAnswerNotAFailure) {
  svc.hb_result = HeartbeatResponse{4, 9, make_error_code(errc::stale_term)};
  Got<HeartbeatResponse> g;
  transport.heartbeat(url, {3, 5, 1}, g.fn());
  auto r = wait(g);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->term, 9u);
  EXPECT_EQ(r->error, errc::stale_term);
}

TEST_F(TransportTest, HeartbeatServiceErrorMapsBackToErrc) {
  svc.hb_result = make_error_code(errc::closed);
  Got<HeartbeatResponse> g;
  transport.heartbeat(url, {3, 5, 1}, g.fn());
  auto r = wait(g);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::closed);
}

TEST_F(TransportTest, HeartbeatExtremeTermPassesThroughExactly) {
  svc.hb_result = HeartbeatResponse{UINT64_MAX, UINT64_MAX, {}};
  Got<HeartbeatResponse> g;
  transport.heartbeat(url, {UINT64_MAX, UINT64_MAX, UINT64_MAX}, g.fn());
  auto r = wait(g);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->index, UINT64_MAX);
  EXPECT_EQ(svc.last_hb.term, UINT64_MAX);
  EXPECT_EQ(svc.last_hb.leader_id, UINT64_MAX);
}

TEST_F(TransportTest, VoteGrantedAndRefused) {
  svc.vote_result = VoteResponse{4, {}};
  Got<VoteResponse> g;
  transport.request_vote(url, {4, 2, 10, 3}, g.fn());
  auto r = wait(g);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->granted());
  EXPECT_EQ(r->term, 4u);
  EXPECT_EQ(svc.last_vote.candidate_id, 2u);
  EXPECT_EQ(svc.last_vote.last_log_index, 10u);
  EXPECT_EQ(svc.last_vote.last_log_term, 3u);
  EXPECT_FALSE(svc.last_vote.pre_vote);

  EXPECT_FALSE(svc.last_vote.transfer);

  Got<VoteResponse> pre;
  transport.request_vote(url, {4, 2, 10, 3, true}, pre.fn());
  ASSERT_TRUE(wait(pre));
  EXPECT_TRUE(svc.last_vote.pre_vote);
  EXPECT_EQ(svc.last_vote.term, 4u);

  // A leadership transfer's election (transfer=1).
  Got<VoteResponse> tr;
  transport.request_vote(url, {4, 2, 10, 3, false, true}, tr.fn());
  ASSERT_TRUE(wait(tr));
  EXPECT_TRUE(svc.last_vote.transfer);
  EXPECT_FALSE(svc.last_vote.pre_vote);

  for (errc e : {errc::already_voted, errc::stale_term, errc::out_of_date_log}) {
    svc.vote_result = VoteResponse{5, make_error_code(e)};
    Got<VoteResponse> g2;
    transport.request_vote(url, {4, 2, 10, 3}, g2.fn());
    auto r2 = wait(g2);
    ASSERT_TRUE(r2);
    EXPECT_FALSE(r2->granted());
    EXPECT_EQ(r2->error, e);
    EXPECT_EQ(r2->term, 5u);
  }
}

TEST_F(TransportTest, JoinReturnsIdLeaderAndConfig) {
  JoinResponse jr;
  jr.id = 2;
  jr.leader_id = 1;
  jr.config.cluster_id = 77;
  ASSERT_TRUE(jr.config.add_node(1, "http://127.0.0.1:1"));
  ASSERT_TRUE(jr.config.add_node(2, "http://127.0.0.1:2"));
  svc.join_result = jr;
  auto r = join(JoinRequest{"http://127.0.0.1:2", 0});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->id, 2u);
  EXPECT_EQ(r->leader_id, 1u);
  EXPECT_EQ(r->config, jr.config);
  EXPECT_EQ(svc.last_join_url, "http://127.0.0.1:2");
  EXPECT_EQ(svc.last_join_previous_id, 0u);  // a first join sends no id
}

// A node asking again after a lost join sends the id it was given (`id`), so
// that a leader can tell it was removed meanwhile (errc::removed).
TEST_F(TransportTest, RejoinCarriesThePreviousIdAndRemovedComesBack) {
  svc.join_result = make_error_code(errc::removed);
  auto r = join(JoinRequest{"http://127.0.0.1:2", 4});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::removed);
  EXPECT_EQ(svc.last_join_url, "http://127.0.0.1:2");
  EXPECT_EQ(svc.last_join_previous_id, 4u);
  EXPECT_EQ(svc.last_join_token, 0u);  // none sent
}

// The join token reaches the leader's Service intact, all 64 bits of it.
TEST_F(TransportTest, JoinCarriesTheJoinToken) {
  svc.join_result = make_error_code(errc::removed);
  auto r = join(JoinRequest{"http://127.0.0.1:2", 0, 0xfedcba9876543210ull});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::removed);
  EXPECT_EQ(svc.last_join_previous_id, 0u);
  EXPECT_EQ(svc.last_join_token, 0xfedcba9876543210ull);
}

// A join as a learner says so, as does a learner asking to be promoted; a
// plain join does neither.
TEST_F(TransportTest, JoinCarriesTheLearnerFlag) {
  svc.join_result = make_error_code(errc::removed);
  ASSERT_FALSE(join(JoinRequest{"http://127.0.0.1:2", 0, 7, true}));
  EXPECT_TRUE(svc.last_join_learner);
  EXPECT_FALSE(svc.last_join_promote);
  ASSERT_FALSE(join(JoinRequest{"http://127.0.0.1:2", 3, 7, true, true}));
  EXPECT_TRUE(svc.last_join_promote);
  ASSERT_FALSE(join(JoinRequest{"http://127.0.0.1:2", 0, 7}));
  EXPECT_FALSE(svc.last_join_learner);
  EXPECT_FALSE(svc.last_join_promote);
}

TEST_F(TransportTest, JoinFollowsLeaderRedirect) {
  FakeService leader_svc;
  Handler leader_handler(leader_svc);
  Server leader(ioc.get_executor(), leader_handler, quick_options());
  auto lp = leader.listen("127.0.0.1", 0);
  ASSERT_TRUE(lp);
  std::string leader_url = "http://127.0.0.1:" + std::to_string(*lp);
  leader_svc.join_result = JoinResponse{3, 1, {}};
  svc.join_result = make_error_code(errc::not_leader);
  svc.st.leader_url = leader_url;

  Got<JoinResponse> g;
  transport.join(url, JoinRequest{"http://127.0.0.1:3", 0}, g.fn());
  auto r = wait(g);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->id, 3u);
  EXPECT_EQ(svc.calls, std::vector<std::string>{"join"});
  EXPECT_EQ(leader_svc.calls, std::vector<std::string>{"join"});

  // leave follows the same hint.
  svc.leave_result = make_error_code(errc::not_leader);
  Got<void> g2;
  transport.leave(url, 3, g2.fn());
  ASSERT_TRUE(wait(g2));
  EXPECT_EQ(leader_svc.last_leave_id, 3u);
  leader.stop();
  run_until(ioc, [&] { return leader.connection_count() == 0; });
}

TEST_F(TransportTest, JoinRedirectLoopGivesUpWithNotLeader) {
  svc.join_result = make_error_code(errc::not_leader);
  svc.st.leader_url = url;  // points at itself
  Got<JoinResponse> g;
  transport.join(url, JoinRequest{"http://127.0.0.1:3", 0}, g.fn());
  auto r = wait(g);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::not_leader);
  EXPECT_EQ(svc.calls.size(), static_cast<std::size_t>(topts.max_redirects + 1));
}

TEST_F(TransportTest, JoinWithoutLeaderHintReportsNotLeader) {
  svc.join_result = make_error_code(errc::not_leader);
  auto r = join(JoinRequest{"http://127.0.0.1:3", 0});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::not_leader);
}

// A follower's read: the index comes back in X-Raft-Index, the caller's
// timeout goes along, refusals map back, and a non-leader's hint is
// followed (any leader's confirmed index answers the read).
TEST_F(TransportTest, ReadIndexCarriesTheTimeoutAndFollowsTheLeaderHint) {
  svc.read_index_result = std::uint64_t{41};
  Got<std::uint64_t> g;
  transport.read_index(url, ReadIndexRequest{250}, g.fn());
  auto r = wait(g);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, 41u);
  EXPECT_EQ(svc.last_read_index.timeout_ms, 250u);

  svc.read_index_result = make_error_code(errc::timeout);
  Got<std::uint64_t> g2;
  transport.read_index(url, ReadIndexRequest{}, g2.fn());
  auto t = wait(g2);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error(), errc::timeout);
  EXPECT_EQ(svc.last_read_index.timeout_ms, 0u);  // absent: the leader's default

  FakeService leader_svc;
  Handler leader_handler(leader_svc);
  Server leader(ioc.get_executor(), leader_handler, quick_options());
  auto lp = leader.listen("127.0.0.1", 0);
  ASSERT_TRUE(lp);
  leader_svc.read_index_result = std::uint64_t{77};
  svc.read_index_result = make_error_code(errc::not_leader);
  svc.st.leader_url = "http://127.0.0.1:" + std::to_string(*lp);
  Got<std::uint64_t> g3;
  transport.read_index(url, ReadIndexRequest{}, g3.fn());
  auto f = wait(g3);
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(*f, 77u);
  EXPECT_EQ(leader_svc.calls, std::vector<std::string>{"readIndex"});
  leader.stop();
  run_until(ioc, [&] { return leader.connection_count() == 0; });
}

TEST_F(TransportTest, AckAndLeave) {
  Got<void> g;
  transport.ack(url, {2, 3, 40}, g.fn());
  ASSERT_TRUE(wait(g));
  EXPECT_EQ(svc.last_ack.id, 2u);
  EXPECT_EQ(svc.last_ack.term, 3u);
  EXPECT_EQ(svc.last_ack.index, 40u);

  svc.leave_result = make_error_code(errc::node_not_found);
  Got<void> g2;
  transport.leave(url, 9, g2.fn());
  auto r = wait(g2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::node_not_found);
}

// The sender's URL (`url`) binds the ack's node id to the sender; the
// Log's refusal of a wrong one comes back as its errc.
TEST_F(TransportTest, AckCarriesTheSendersUrlAndItsRefusalMapsBack) {
  Got<void> g;
  transport.ack(url, {2, 3, 40, "http://127.0.0.1:7/a b"}, g.fn());
  ASSERT_TRUE(wait(g));
  EXPECT_EQ(svc.last_ack.url, "http://127.0.0.1:7/a b");

  Got<void> g2;
  transport.ack(url, {2, 3, 41}, g2.fn());  // no URL: the parameter is left out
  ASSERT_TRUE(wait(g2));
  EXPECT_EQ(svc.last_ack.url, "");

  for (errc e : {errc::node_url_mismatch, errc::node_url_required}) {
    svc.ack_result = make_error_code(e);
    Got<void> g3;
    transport.ack(url, {2, 3, 42, "http://127.0.0.1:7"}, g3.fn());
    auto r = wait(g3);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), e);
  }
}

TEST_F(TransportTest, ClusterIdIsSentAndAMismatchRefused) {
  svc.cid = 6;
  transport.set_cluster_id(5);
  Got<HeartbeatResponse> g;
  transport.heartbeat(url, {1, 0, 1}, g.fn());
  auto r = wait(g);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::cluster_id_mismatch);
  EXPECT_TRUE(svc.calls.empty());

  transport.set_cluster_id(6);
  Got<HeartbeatResponse> g2;
  transport.heartbeat(url, {1, 0, 1}, g2.fn());
  EXPECT_TRUE(wait(g2));
}

TEST_F(TransportTest, KeepAliveConnectionIsReused) {
  for (int i = 0; i < 20; ++i) {
    Got<HeartbeatResponse> g;
    transport.heartbeat(url, {1, 0, 1}, g.fn());
    ASSERT_TRUE(wait(g));
  }
  EXPECT_EQ(transport.connections_opened(), 1u);
}

TEST_F(TransportTest, ConnectionClosedByServerWhileIdleIsReplaced) {
  ServerOptions o = quick_options();
  o.idle_timeout_ms = 100;
  start_server(o);
  Got<HeartbeatResponse> g;
  transport.heartbeat(url, {1, 0, 1}, g.fn());
  ASSERT_TRUE(wait(g));
  ASSERT_TRUE(run_until(ioc, [&] { return server->connection_count() == 0; }));
  Got<HeartbeatResponse> g2;
  transport.heartbeat(url, {1, 0, 1}, g2.fn());
  ASSERT_TRUE(wait(g2));
  EXPECT_EQ(transport.connections_opened(), 2u);
}

TEST_F(TransportTest, ConnectionRefusedIsTransportError) {
  std::uint16_t dead;
  {
    tcp::acceptor a(ioc, {net::ip::make_address("127.0.0.1"), 0});
    dead = a.local_endpoint().port();
  }
  Got<HeartbeatResponse> g;
  transport.heartbeat("http://127.0.0.1:" + std::to_string(dead), {1, 0, 1}, g.fn());
  auto r = wait(g);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::transport_error);
}

TEST_F(TransportTest, BadUrlIsInvalidArgument) {
  Got<HeartbeatResponse> g;
  transport.heartbeat("not a url", {1, 0, 1}, g.fn());
  auto r = wait(g);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::invalid_argument);
}

// Accepts connections on `acc` until it closes: each socket is kept in
// `socks` and handed to `serve`.
void accept_loop(tcp::acceptor& acc, std::vector<std::shared_ptr<tcp::socket>>& socks,
                 std::function<void(std::shared_ptr<tcp::socket>)> serve) {
  acc.async_accept([&acc, &socks, serve = std::move(serve)](boost::system::error_code ec, tcp::socket s) mutable {
    if (ec) return;
    auto sock = std::make_shared<tcp::socket>(std::move(s));
    socks.push_back(sock);
    serve(sock);
    accept_loop(acc, socks, std::move(serve));
  });
}

// A raw TCP peer that answers every request with `reply` (or nothing).
struct CannedServer {
  CannedServer(net::io_context& ioc, std::string reply) : acc(ioc, {net::ip::make_address("127.0.0.1"), 0}),
                                                          reply(std::move(reply)) {
    accept_loop(acc, socks, [this](std::shared_ptr<tcp::socket> sock) {
      auto buf = std::make_shared<std::array<char, 4096>>();
      sock->async_read_some(net::buffer(*buf), [this, sock, buf](boost::system::error_code e, std::size_t n) {
        if (e) return;
        got.append(buf->data(), n);
        if (this->reply.empty()) return;  // the member: the constructor's `reply` was moved from
        net::async_write(*sock, net::buffer(this->reply), [](boost::system::error_code, std::size_t) {});
      });
    });
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acc.local_endpoint().port()); }
  tcp::acceptor acc;
  std::string reply;
  std::string got;  // the request bytes (of the first read on each connection)
  std::vector<std::shared_ptr<tcp::socket>> socks;
};

// raft::kProtocolVersion goes with every request, and a reply in another
// version is unsupported_protocol whatever else it says: not an answer, not
// a redirect, not a stream.
TEST_F(TransportTest, ProtocolVersionIsSentAndAReplyInAnotherIsRefused) {
  auto heartbeat_reply = [](const std::string& version_lines) {
    return "HTTP/1.1 200 OK\r\n" + version_lines + "X-Raft-Index: 1\r\nX-Raft-Term: 5\r\nContent-Length: 0\r\n\r\n";
  };
  static_assert(kProtocolVersion == 2 && kMinProtocolVersion == 1);
  // Any version this build speaks (no header: a build before it) is an
  // answer, and says which version the exchange was in.
  for (const auto& [v, spoken] : {std::pair<std::string, std::uint32_t>{"X-Raft-Protocol: 2\r\n", 2},
                                  {"X-Raft-Protocol: 1\r\n", 1}, {"", 1}}) {
    CannedServer peer(ioc, heartbeat_reply(v));
    Got<HeartbeatResponse> g;
    transport.heartbeat(peer.url(), {1, 0, 1}, g.fn());
    auto r = wait(g);
    ASSERT_TRUE(r) << v;
    EXPECT_EQ(r->term, 5u);
    EXPECT_EQ(r->protocol, spoken) << v;
    EXPECT_NE(peer.got.find("\r\nX-Raft-Protocol: 2\r\n"), std::string::npos) << peer.got;
  }
  const std::pair<std::string, errc> others[] = {
      {"X-Raft-Protocol: 3\r\n", errc::unsupported_protocol},
      {"X-Raft-Protocol: 0\r\n", errc::unsupported_protocol},
      {"X-Raft-Protocol: two\r\n", errc::transport_error},
      {"X-Raft-Protocol: 1\r\nX-Raft-Protocol: 2\r\n", errc::transport_error},
  };
  for (const auto& [v, want] : others) {
    CannedServer peer(ioc, heartbeat_reply(v));
    Got<HeartbeatResponse> g;
    transport.heartbeat(peer.url(), {1, 0, 1}, g.fn());
    auto r = wait(g);
    ASSERT_FALSE(r) << v;
    EXPECT_EQ(r.error(), want) << v;
  }
  {
    CannedServer peer(ioc, "HTTP/1.1 200 OK\r\nX-Raft-Protocol: 3\r\nX-Raft-Term: 5\r\nContent-Length: 0\r\n\r\n");
    Got<VoteResponse> g;
    transport.request_vote(peer.url(), {5, 2, 10, 3}, g.fn());
    auto r = wait(g);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::unsupported_protocol);
  }
  {
    CannedServer peer(ioc, "HTTP/1.1 200 OK\r\nX-Raft-Protocol: 3\r\nContent-Length: 0\r\n\r\n");
    Got<void> g;
    transport.ack(peer.url(), {2, 3, 40}, g.fn());
    auto r = wait(g);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::unsupported_protocol);
  }
  {  // a leader hint in another version is not followed
    CannedServer peer(ioc, "HTTP/1.1 421 Misdirected Request\r\nX-Raft-Protocol: 3\r\nX-Raft-Error: not leader\r\n"
                           "X-Raft-Leader-URL: " + url + "\r\nContent-Length: 0\r\n\r\n");
    Got<JoinResponse> g;
    transport.join(peer.url(), JoinRequest{"http://127.0.0.1:9", 0}, g.fn());
    auto r = wait(g);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::unsupported_protocol);
    EXPECT_TRUE(svc.calls.empty());
  }
  {  // a stream in another version: no byte of its body is delivered
    CannedServer peer(ioc, "HTTP/1.1 200 OK\r\nX-Raft-Protocol: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n");
    std::string got;
    std::optional<std::error_code> end;
    auto h = transport.read_from(peer.url(), {2, 1, 0, 0},
                                 {[&](std::string_view b, std::function<void()> more) {
                                    got.append(b);
                                    more();
                                  },
                                  [&](std::error_code ec) { end = ec; }});
    ASSERT_TRUE(run_until(ioc, [&] { return end.has_value(); }));
    EXPECT_EQ(*end, errc::unsupported_protocol);
    EXPECT_EQ(got, "");
    EXPECT_NE(peer.got.find("\r\nX-Raft-Protocol: 2\r\n"), std::string::npos) << peer.got;
  }
}

// A peer of an older build, as its Server answers: a request in a version
// other than 1 is refused with 400, naming version 1; a request in version
// 1 (or without the header) gets `reply`. Once `upgraded`, it speaks 2 as
// well and answers in the request's version. Keep-alive: every request on
// a connection is answered, and each is kept (`requests`).
struct OlderBuildServer {
  OlderBuildServer(net::io_context& ioc, std::string reply) : acc(ioc, {net::ip::make_address("127.0.0.1"), 0}),
                                                              reply(std::move(reply)) {
    accept_loop(acc, socks, [this](std::shared_ptr<tcp::socket> sock) { read(sock, std::make_shared<std::string>()); });
  }
  static std::string version_of(const std::string& req) {
    auto at = req.find("\r\nX-Raft-Protocol: ");
    if (at == std::string::npos) return "";
    at += 19;
    return req.substr(at, req.find("\r\n", at) - at);
  }
  void read(std::shared_ptr<tcp::socket> sock, std::shared_ptr<std::string> pending) {
    auto buf = std::make_shared<std::array<char, 4096>>();
    sock->async_read_some(net::buffer(*buf), [this, sock, buf, pending](boost::system::error_code e, std::size_t n) {
      if (e) return;
      pending->append(buf->data(), n);
      for (auto end = pending->find("\r\n\r\n"); end != std::string::npos; end = pending->find("\r\n\r\n")) {
        requests.push_back(pending->substr(0, end + 4));
        pending->erase(0, end + 4);
        std::string version = version_of(requests.back());
        if (version.empty()) version = "1";
        std::string out;
        if (version == "1" || (upgraded && version == "2")) {
          out = reply;
          out.insert(out.find("\r\n") + 2, "X-Raft-Protocol: " + version + "\r\n");
        } else {
          out = std::string("HTTP/1.1 400 Bad Request\r\nX-Raft-Protocol: ") + (upgraded ? "2" : "1") +
                "\r\nX-Raft-Error: unsupported protocol version\r\nContent-Length: 0\r\n\r\n";
        }
        auto held = std::make_shared<std::string>(std::move(out));
        net::async_write(*sock, net::buffer(*held), [held](boost::system::error_code, std::size_t) {});
      }
      read(sock, pending);
    });
  }
  // The versions of the requests received, in order ("" for none).
  std::vector<std::string> versions() const {
    std::vector<std::string> v;
    for (const auto& r : requests) v.push_back(version_of(r));
    return v;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acc.local_endpoint().port()); }
  tcp::acceptor acc;
  std::string reply;
  bool upgraded = false;
  std::vector<std::string> requests;
  std::vector<std::shared_ptr<tcp::socket>> socks;
};

using Versions = std::vector<std::string>;

// A rolling upgrade, the caller's side: a peer that refuses this build's
// version and names an older one this build speaks is asked again at once
// in that one (the caller sees only the answer, which says it is in
// version 1), and spoken to in it from then on.
TEST_F(TransportTest, APeerOfAnOlderBuildIsAskedAgainInItsVersion) {
  OlderBuildServer peer(ioc, "HTTP/1.1 200 OK\r\nX-Raft-Index: 1\r\nX-Raft-Term: 5\r\nContent-Length: 0\r\n\r\n");
  Got<HeartbeatResponse> g;
  transport.heartbeat(peer.url(), {1, 0, 1}, g.fn());
  auto r = wait(g);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->term, 5u);
  EXPECT_EQ(r->protocol, 1u);
  EXPECT_EQ(peer.versions(), (Versions{"2", "1"}));
  Got<HeartbeatResponse> again;
  transport.heartbeat(peer.url(), {1, 0, 1}, again.fn());
  ASSERT_TRUE(wait(again));
  EXPECT_EQ(peer.versions(), (Versions{"2", "1", "1"}));  // remembered
  Got<VoteResponse> vote;  // every call to that peer, not only heartbeats
  transport.request_vote(peer.url(), {5, 2, 10, 3}, vote.fn());
  wait(vote);
  EXPECT_EQ(peer.versions(), (Versions{"2", "1", "1", "1"}));
}

// The same for a stream: the follower's callbacks see only the stream in
// the older version, and cancel() reaches it.
TEST_F(TransportTest, AStreamFromALeaderOfAnOlderBuildIsAskedForAgainInItsVersion) {
  OlderBuildServer peer(ioc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  std::string got;  // the stream's bytes, read on at once
  std::optional<std::error_code> end;
  StreamCallbacks cb;
  cb.on_data = [&](std::string_view b, std::function<void()> more) {
    got.append(b);
    more();
  };
  cb.on_end = [&](std::error_code ec) { end = ec; };
  auto h = transport.read_from(peer.url(), {2, 1, 0, 0}, std::move(cb));
  ASSERT_TRUE(run_until(ioc, [&] { return got == "hello"; }));
  EXPECT_FALSE(end.has_value());
  EXPECT_EQ(peer.versions(), (Versions{"2", "1"}));
  h->cancel();
  ASSERT_TRUE(run_until(ioc, [&] { return end.has_value(); }));
  EXPECT_EQ(*end, errc::canceled);
}

// A peer whose connection closes may be restarting on a newer build: the
// call after that tries this build's version again, long before
// protocol_recheck_ms (30 s here).
TEST_F(TransportTest, APeerWhoseConnectionClosedIsAskedInThisVersionAgain) {
  OlderBuildServer peer(ioc, "HTTP/1.1 200 OK\r\nX-Raft-Index: 1\r\nX-Raft-Term: 5\r\nContent-Length: 0\r\n\r\n");
  Got<HeartbeatResponse> g;
  transport.heartbeat(peer.url(), {1, 0, 1}, g.fn());
  ASSERT_TRUE(wait(g));
  EXPECT_EQ(peer.versions(), (Versions{"2", "1"}));
  // "Restarted", upgraded: the kept connection is closed under the caller.
  for (auto& sock : peer.socks) sock->close();
  peer.upgraded = true;
  Got<HeartbeatResponse> first;
  transport.heartbeat(peer.url(), {1, 0, 1}, first.fn());
  ASSERT_TRUE(wait(first));  // the request, repeated on a new connection as it was
  Got<HeartbeatResponse> next;
  transport.heartbeat(peer.url(), {1, 0, 1}, next.fn());
  auto r = wait(next);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->protocol, 2u);
  EXPECT_EQ(peer.versions(), (Versions{"2", "1", "1", "2"}));
}

// protocol_recheck_ms: after it, this build's version is tried again, so a
// peer upgraded in place is found without a restart here. A refusal that
// names no older version this build speaks is the caller's error, asked
// once.
TEST_F(TransportTest, AnOlderPeerIsAskedInThisVersionAgainAfterTheRecheckTime) {
  HTTPTransportOptions o = topts;
  o.protocol_recheck_ms = 0;  // at every call
  HTTPTransport t(ioc.get_executor(), o);
  OlderBuildServer peer(ioc, "HTTP/1.1 200 OK\r\nX-Raft-Index: 1\r\nX-Raft-Term: 5\r\nContent-Length: 0\r\n\r\n");
  for (int i = 0; i < 2; ++i) {
    Got<HeartbeatResponse> g;
    t.heartbeat(peer.url(), {1, 0, 1}, g.fn());
    ASSERT_TRUE(wait(g));
  }
  EXPECT_EQ(peer.versions(), (Versions{"2", "1", "2", "1"}));
  peer.upgraded = true;
  Got<HeartbeatResponse> g;
  t.heartbeat(peer.url(), {1, 0, 1}, g.fn());
  auto r = wait(g);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->protocol, 2u);
  EXPECT_EQ(peer.versions(), (Versions{"2", "1", "2", "1", "2"}));

  for (const char* named : {"3", "0", "2"}) {  // newer, unknown, or the version sent: no retry
    CannedServer other(ioc, std::string("HTTP/1.1 400 Bad Request\r\nX-Raft-Protocol: ") + named +
                                "\r\nX-Raft-Error: unsupported protocol version\r\nContent-Length: 0\r\n\r\n");
    Got<HeartbeatResponse> h;
    t.heartbeat(other.url(), {1, 0, 1}, h.fn());
    auto e = wait(h);
    ASSERT_FALSE(e) << named;
    EXPECT_EQ(e.error(), errc::unsupported_protocol) << named;
    EXPECT_EQ(other.socks.size(), 1u) << named;
  }
}

TEST_F(TransportTest, MalformedRepliesAreTransportErrors) {
  const char* replies[] = {
      "HTTP/1.1 200 OK\r\nX-Raft-Index: abc\r\nX-Raft-Term: 1\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-Raft-Index: 1\r\nX-Raft-Term: -1\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-Raft-Term: 1\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-Raft-Index: 99999999999999999999999\r\nX-Raft-Term: 1\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-Raft-Index: 1\r\nX-Raft-Term: 1\r\nX-Raft-ID: two\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-Raft-Index: 1\r\nX-Raft-Term: 1\r\nX-Raft-Vote-Hold-Ms: 5s\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 500 Internal Server Error\r\nX-Raft-Error: no such error text\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
      "garbage\r\n\r\n",
  };
  for (const char* reply : replies) {
    CannedServer peer(ioc, reply);
    Got<HeartbeatResponse> g;
    transport.heartbeat(peer.url(), {1, 0, 1}, g.fn());
    auto r = wait(g);
    ASSERT_FALSE(r) << reply;
    EXPECT_EQ(r.error(), errc::transport_error) << reply;
  }
  // A join reply with a config that does not parse.
  CannedServer peer(ioc, "HTTP/1.1 200 OK\r\nX-Raft-ID: 2\r\nX-Raft-Leader-ID: 1\r\nContent-Length: 5\r\n\r\n{bad}");
  Got<JoinResponse> g;
  transport.join(peer.url(), JoinRequest{"http://127.0.0.1:9", 0}, g.fn());
  auto r = wait(g);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::transport_error);
}

// Found while writing tests/fuzz/http_reply_fuzz.cpp (its invariant: a
// connection goes back to the pool only with nothing left unread): bytes a peer sent after its reply stayed in the
// pooled connection's buffer and were taken as the reply to the next request
// on it, so the second heartbeat read the first one's stale second answer.
TEST_F(TransportTest, BytesAfterAReplyAreNotReadAsTheNextReply) {
  CannedServer peer(ioc,
                    "HTTP/1.1 200 OK\r\nX-Raft-Index: 1\r\nX-Raft-Term: 5\r\nContent-Length: 0\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nX-Raft-Index: 1\r\nX-Raft-Term: 9\r\nContent-Length: 0\r\n\r\n");
  for (int i = 0; i < 2; ++i) {
    Got<HeartbeatResponse> g;
    transport.heartbeat(peer.url(), {1, 0, 1}, g.fn());
    auto r = wait(g);
    ASSERT_TRUE(r) << "call " << i << ": " << r.error().message();
    EXPECT_EQ(r->term, 5u) << "call " << i;
  }
}

// Found with the same invariant: an interim 1xx response (which RFC 9110
// 15.2 says a client must accept even unasked) was taken as the final reply
// (a transport_error), and the real reply behind it stayed in the pooled
// connection's buffer, to be read as the answer to the next request.
TEST_F(TransportTest, InterimResponsesAreSkipped) {
  CannedServer peer(ioc,
                    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nX-Raft-Index: 1\r\nX-Raft-Term: 5\r\nContent-Length: 0\r\n\r\n");
  Got<HeartbeatResponse> g;
  transport.heartbeat(peer.url(), {1, 0, 1}, g.fn());
  auto r = wait(g);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->term, 5u);
}

// Found while writing tests/fuzz/http_reply_fuzz.cpp (its invariant: a
// successful join carries valid ids): ids start at 1 on the wire, but a 200 with X-Raft-ID: 0 was a
// successful join, after which the Log believed itself joined as node 0.
TEST_F(TransportTest, JoinReplyWithIdZeroIsATransportError) {
  const std::string cfg = R"({"clusterID":1,"index":1,"maxNodeID":2,"nodes":[{"id":1,"url":"http://a:1"}]})";
  for (const char* ids : {"X-Raft-ID: 0\r\nX-Raft-Leader-ID: 1\r\n", "X-Raft-ID: 2\r\nX-Raft-Leader-ID: 0\r\n"}) {
    CannedServer peer(ioc, std::string("HTTP/1.1 200 OK\r\n") + ids + "Content-Length: " + std::to_string(cfg.size()) +
                               "\r\n\r\n" + cfg);
    Got<JoinResponse> g;
    transport.join(peer.url(), JoinRequest{"http://127.0.0.1:9", 0}, g.fn());
    auto r = wait(g);
    ASSERT_FALSE(r) << ids;
    EXPECT_EQ(r.error(), errc::transport_error) << ids;
  }
}

// Found while writing tests/fuzz/http_reply_fuzz.cpp (its invariant: a
// redirect goes only to an absolute http URL): any non-empty X-Raft-Leader-URL was followed, and
// one that is not an absolute http URL made join fail with
// invalid_argument, as if the caller had passed a bad URL. A hint that
// cannot be followed is now ignored: the reply's own error (not_leader).
TEST_F(TransportTest, UnusableLeaderHintIsNotFollowed) {
  // "http:?" and "http:#x": Boost.URL 1.81 fails an assertion parsing them
  // (http_detail::has_authority_form); they must be refused, not abort.
  for (const char* hint : {"not a url", "/raft", "ftp://127.0.0.1:1", "http://", "http:?", "http:#x", "http:\"x"}) {
    CannedServer peer(ioc, std::string("HTTP/1.1 421 Misdirected Request\r\nX-Raft-Error: not leader\r\n"
                                       "X-Raft-Leader-URL: ") + hint + "\r\nContent-Length: 0\r\n\r\n");
    Got<JoinResponse> g;
    transport.join(peer.url(), JoinRequest{"http://127.0.0.1:9", 0}, g.fn());
    auto r = wait(g);
    ASSERT_FALSE(r) << hint;
    EXPECT_EQ(r.error(), errc::not_leader) << hint;
    EXPECT_EQ(peer.socks.size(), 1u) << hint;  // one request: no hop was made
  }
}

// An https:// hint is a leader behind TLS: followed, and a transport with no
// TLSContext says so (errc::tls_error) instead of "not leader".
TEST_F(TransportTest, HttpsLeaderHintNeedsATLSContext) {
  CannedServer peer(ioc, "HTTP/1.1 421 Misdirected Request\r\nX-Raft-Error: not leader\r\n"
                         "X-Raft-Leader-URL: https://127.0.0.1:1\r\nContent-Length: 0\r\n\r\n");
  Got<JoinResponse> g;
  transport.join(peer.url(), JoinRequest{"http://127.0.0.1:9", 0}, g.fn());
  auto r = wait(g);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::tls_error);
}

TEST_F(TransportTest, SilentPeerTimesOut) {
  HTTPTransportOptions o;
  o.request_timeout_ms = 150;
  HTTPTransport t(ioc.get_executor(), o);
  CannedServer peer(ioc, "");
  Got<HeartbeatResponse> g;
  auto start = std::chrono::steady_clock::now();
  t.heartbeat(peer.url(), {1, 0, 1}, g.fn());
  auto r = wait(g);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

}  // namespace
}  // namespace raft::test
