// raft::Handler and raft::Server on raw bytes: the seed's status codes,
// headers and error texts per endpoint, and hostile input (each answered with
// a 4xx or a closed connection, never a crash, never a Service call).
#include "net_fixture.hpp"

namespace raft::test {
namespace {

class HandlerTest : public NetTest {};

bool has_header(const std::string& resp, const std::string& line) {
  return resp.find("\r\n" + line + "\r\n") != std::string::npos;
}

TEST_F(HandlerTest, PingStatusMetrics) {
  EXPECT_EQ(status_line(raw(get("/raft/ping"))), "HTTP/1.1 200 OK");

  svc.st.id = 2;
  svc.st.state = "leader";
  svc.st.term = 5;
  svc.st.leader_id = 2;
  svc.st.leader_url = "http://127.0.0.1:2";
  svc.st.commit_index = 10;
  svc.st.applied_index = 9;
  svc.st.last_index = 11;
  svc.st.config.cluster_id = 7;
  svc.st.reads_as_leader = 12;
  svc.st.reads_as_follower = 3;
  svc.st.reads_by_lease = 7;
  svc.st.elections_started = 4;
  svc.st.transfers_completed = 1;
  auto s = raw(get("/raft/status"));
  EXPECT_EQ(status_line(s), "HTTP/1.1 200 OK");
  for (const char* f : {"\"id\":2", "\"state\":\"leader\"", "\"term\":5", "\"leaderID\":2",
                        "\"leaderURL\":\"http://127.0.0.1:2\"", "\"commitIndex\":10", "\"appliedIndex\":9",
                        "\"lastIndex\":11", "\"clusterID\":7", "\"learner\":false", "\"peers\":[]",
                        "\"protocol\":2", "\"minProtocol\":1"})
    EXPECT_NE(s.find(f), std::string::npos) << f << "\n" << s;
  auto m = raw(get("/raft/metrics"));
  EXPECT_EQ(status_line(m), "HTTP/1.1 200 OK");
  EXPECT_NE(m.find("\nraft_term 5\n"), std::string::npos) << m;
  EXPECT_NE(m.find("raft_state{state=\"leader\"} 1"), std::string::npos);
  EXPECT_NE(m.find("\nraft_commit_index 10\n"), std::string::npos);
  for (const char* line : {"\n# TYPE raft_reads_total counter\n", "\nraft_reads_total{role=\"leader\"} 12\n",
                           "\nraft_reads_total{role=\"follower\"} 3\n",
                           "\n# TYPE raft_reads_by_lease_total counter\nraft_reads_by_lease_total 7\n",
                           "\nraft_elections_started_total 4\n",
                           "\nraft_leadership_transfers_total 1\n", "\nraft_learner 0\n"})
    EXPECT_NE(m.find(line), std::string::npos) << line << "\n" << m;

  // A learner says so, at the top and in its configuration's node.
  ASSERT_TRUE(svc.st.config.add_node(1, "http://127.0.0.1:1"));
  ASSERT_TRUE(svc.st.config.add_node(2, "http://127.0.0.1:2", 0, true));
  svc.st.peers = {PeerProgress{1, 9, 40, 500}};
  auto ls = raw(get("/raft/status"));
  EXPECT_NE(ls.find("\"learner\":true,"), std::string::npos) << ls;
  EXPECT_NE(ls.find("\"peers\":[{\"id\":1,\"match\":9,\"lastContactMs\":40,\"voteHoldMs\":500}]"), std::string::npos)
      << ls;
  EXPECT_NE(ls.find("\"leaseReads\":false"), std::string::npos) << ls;
  EXPECT_NE(ls.find("{\"id\":2,\"url\":\"http://127.0.0.1:2\",\"learner\":true}"), std::string::npos) << ls;
  auto lm = raw(get("/raft/metrics"));
  for (const char* line : {"\nraft_learner 1\n", "\nraft_config_voters 1\n", "\nraft_peer_match_index{id=\"1\"} 9\n"})
    EXPECT_NE(lm.find(line), std::string::npos) << line << lm;
}

TEST_F(HandlerTest, UnknownPathIs404AndWrongMethodIs405) {
  EXPECT_EQ(status_line(raw(get("/raft/nope"))), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(status_line(raw(get("/other"))), "HTTP/1.1 404 Not Found");
  auto r = raw(get("/raft/heartbeat?term=1&commitIndex=0&leaderID=1"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_TRUE(has_header(r, "Allow: POST"));
  EXPECT_EQ(status_line(raw(post("/raft/stream?id=1&term=1&index=0&logTerm=0"))), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_TRUE(svc.calls.empty());
}

struct BadParam {
  const char* target;
  const char* error;
};

TEST_F(HandlerTest, BadParametersAre400WithTheSeedTexts) {
  const BadParam cases[] = {
      {"/raft/heartbeat?commitIndex=0&leaderID=1", "invalid term"},
      {"/raft/heartbeat?term=x&commitIndex=0&leaderID=1", "invalid term"},
      {"/raft/heartbeat?term=-1&commitIndex=0&leaderID=1", "invalid term"},
      {"/raft/heartbeat?term=0&commitIndex=0&leaderID=1", "invalid term"},
      {"/raft/heartbeat?term=18446744073709551616&commitIndex=0&leaderID=1", "invalid term"},
      {"/raft/heartbeat?term=1&term=2&commitIndex=0&leaderID=1", "invalid term"},
      {"/raft/heartbeat?term=%201&commitIndex=0&leaderID=1", "invalid term"},
      {"/raft/heartbeat?term=1&commitIndex=&leaderID=1", "invalid commit index"},
      {"/raft/heartbeat?term=1&commitIndex=1e3&leaderID=1", "invalid commit index"},
      {"/raft/heartbeat?term=1&commitIndex=0", "invalid leader id"},
      {"/raft/heartbeat?term=1&commitIndex=0&leaderID=0", "invalid leader id"},
      {"/raft/vote?term=1&lastLogIndex=0&lastLogTerm=0", "invalid candidate id"},
      {"/raft/vote?candidateID=1&lastLogIndex=0&lastLogTerm=0", "invalid term"},
      {"/raft/vote?term=1&candidateID=1&lastLogTerm=0", "invalid last log index"},
      {"/raft/vote?term=1&candidateID=1&lastLogIndex=0&lastLogTerm=z", "invalid last log term"},
      {"/raft/vote?term=1&candidateID=1&lastLogIndex=0&lastLogTerm=0&preVote=yes", "invalid pre-vote flag"},
      {"/raft/leave", "invalid raft id"},
      {"/raft/leave?id=abc", "invalid raft id"},
      {"/raft/leave?id=0", "invalid raft id"},
      {"/raft/join", "url required"},
      {"/raft/join?url=", "url required"},
      {"/raft/join?url=%%%", "invalid request target"},
      {"/raft/join?url=not-a-url", "invalid url"},
      {"/raft/join?url=ftp://h:1", "invalid url"},
      {"/raft/ack?term=1&index=1", "invalid id"},
      {"/raft/ack?id=1&term=1&index=x", "invalid index"},
  };
  for (const auto& c : cases) {
    auto r = raw(post(c.target));
    EXPECT_EQ(status_line(r), "HTTP/1.1 400 Bad Request") << c.target;
    EXPECT_TRUE(has_header(r, std::string("X-Raft-Error: ") + c.error)) << c.target << "\n" << r;
  }
  const BadParam streams[] = {
      {"/raft/stream?term=1&index=0&logTerm=0", "invalid id"},
      {"/raft/stream?id=1&term=q&index=0&logTerm=0", "invalid term"},
      {"/raft/stream?id=1&term=1&index=-3&logTerm=0", "invalid index"},
      {"/raft/stream?id=1&term=1&index=0", "invalid log term"},
  };
  for (const auto& c : streams) {
    auto r = raw(get(c.target));
    EXPECT_EQ(status_line(r), "HTTP/1.1 400 Bad Request") << c.target;
    EXPECT_TRUE(has_header(r, std::string("X-Raft-Error: ") + c.error)) << c.target << "\n" << r;
  }
  EXPECT_TRUE(svc.calls.empty());
}

TEST_F(HandlerTest, MaximalValuesReachTheServiceExactly) {
  auto r = raw(post("/raft/vote?term=18446744073709551615&candidateID=18446744073709551615"
                    "&lastLogIndex=18446744073709551615&lastLogTerm=0"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(svc.last_vote.term, UINT64_MAX);
  EXPECT_EQ(svc.last_vote.candidate_id, UINT64_MAX);
  EXPECT_EQ(svc.last_vote.last_log_index, UINT64_MAX);
}

// `url` on /raft/ack and /raft/stream: the sender's own URL, decoded; absent,
// the Service gets "" (the Log refuses that with node_url_required).
TEST_F(HandlerTest, AckAndStreamUrlParameterReachesTheService) {
  auto r = raw(post("/raft/ack?id=2&term=3&index=4&url=http%3A%2F%2F127.0.0.1%3A7"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(svc.last_ack.url, "http://127.0.0.1:7");
  r = raw(post("/raft/ack?id=2&term=3&index=5"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(svc.last_ack.url, "");
  svc.ack_result = make_error_code(errc::node_url_mismatch);
  r = raw(post("/raft/ack?id=2&term=3&index=6&url=http%3A%2F%2F127.0.0.1%3A8"));
  EXPECT_TRUE(has_header(r, "X-Raft-Error: node id belongs to another url")) << r;

  r = raw(get("/raft/stream?id=2&term=3&index=0&logTerm=0&url=http%3A%2F%2F127.0.0.1%3A7"));
  EXPECT_EQ(svc.last_stream.url, "http://127.0.0.1:7");
  EXPECT_TRUE(has_header(r, "X-Raft-Error: not leader")) << r;  // the fake refuses every stream
}

TEST_F(HandlerTest, ServiceErrorsBecomeHeadersAndStatus) {
  svc.join_result = make_error_code(errc::not_leader);
  svc.st.leader_url = "http://127.0.0.1:9";
  auto r = raw(post("/raft/join?url=http://127.0.0.1:5"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 421 Misdirected Request");
  EXPECT_TRUE(has_header(r, "X-Raft-Error: not leader"));
  EXPECT_TRUE(has_header(r, "X-Raft-Leader-URL: http://127.0.0.1:9"));

  svc.join_result = make_error_code(errc::duplicate_node_url);
  r = raw(post("/raft/join?url=http://127.0.0.1:5"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 500 Internal Server Error");
  EXPECT_TRUE(has_header(r, "X-Raft-Error: duplicate node url"));

  svc.hb_result = make_error_code(errc::closed);
  r = raw(post("/raft/heartbeat?term=1&commitIndex=0&leaderID=1"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 500 Internal Server Error");
  EXPECT_TRUE(has_header(r, "X-Raft-Error: log closed"));

  svc.hb_result = HeartbeatResponse{3, 4, make_error_code(errc::stale_term)};
  r = raw(post("/raft/heartbeat?term=1&commitIndex=0&leaderID=1"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_TRUE(has_header(r, "X-Raft-Index: 3"));
  EXPECT_TRUE(has_header(r, "X-Raft-Term: 4"));
  EXPECT_TRUE(has_header(r, "X-Raft-Error: stale term"));
  EXPECT_EQ(r.find("X-Raft-Vote-Hold-Ms"), std::string::npos) << "a vote hold promised by a node without lease reads";
  HeartbeatResponse held{3, 4, {}, 2};
  held.vote_hold_ms = 500;  // lease reads: no vote for 500 ms after this heartbeat
  svc.hb_result = held;
  r = raw(post("/raft/heartbeat?term=1&commitIndex=0&leaderID=1"));
  EXPECT_TRUE(has_header(r, "X-Raft-Vote-Hold-Ms: 500"));

  JoinResponse jr;
  jr.id = 4;
  jr.leader_id = 1;
  svc.join_result = jr;
  r = raw(post("/raft/join?url=http://127.0.0.1:5"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_TRUE(has_header(r, "X-Raft-ID: 4"));
  EXPECT_TRUE(has_header(r, "X-Raft-Leader-ID: 1"));
  EXPECT_NE(r.find("\"maxNodeID\""), std::string::npos);
}

TEST_F(HandlerTest, WrongClusterIdIs403) {
  svc.cid = 7;
  auto r = raw(post("/raft/heartbeat?term=1&commitIndex=0&leaderID=1", "X-Raft-Cluster-ID: 8\r\n"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 403 Forbidden");
  EXPECT_TRUE(has_header(r, "X-Raft-Error: cluster id mismatch"));
  r = raw(get("/raft/stream?id=1&term=1&index=0&logTerm=0", "X-Raft-Cluster-ID: 8\r\n"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 403 Forbidden");
  r = raw(post("/raft/heartbeat?term=1&commitIndex=0&leaderID=1", "X-Raft-Cluster-ID: seven\r\n"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 400 Bad Request");
  r = raw(post("/raft/heartbeat?term=1&commitIndex=0&leaderID=1",
               "X-Raft-Cluster-ID: 7\r\nX-Raft-Cluster-ID: 8\r\n"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 400 Bad Request");
  EXPECT_TRUE(svc.calls.empty());
  // Right id, and no id (a joining node), are served.
  EXPECT_EQ(status_line(raw(post("/raft/heartbeat?term=1&commitIndex=0&leaderID=1", "X-Raft-Cluster-ID: 7\r\n"))),
            "HTTP/1.1 200 OK");
  EXPECT_EQ(status_line(raw(post("/raft/join?url=http://127.0.0.1:5"))), "HTTP/1.1 200 OK");
}

// raft::kProtocolVersion: a request in any version in [kMinProtocolVersion,
// kProtocolVersion] is answered in that version (an older build refuses a
// reply in a version it does not know); one in another version (or with a
// malformed X-Raft-Protocol) is refused before it reaches the Service, and
// the refusal names this build's version, for the caller to fall back to.
TEST_F(HandlerTest, ProtocolVersionIsNamedAndAnotherIsRefused) {
  static_assert(kProtocolVersion == 2 && kMinProtocolVersion == 1);
  const std::string hb = "/raft/heartbeat?term=1&commitIndex=0&leaderID=1";
  for (const char* extra : {"X-Raft-Protocol: 3\r\n", "X-Raft-Protocol: 0\r\n",
                            "X-Raft-Protocol: 18446744073709551615\r\n"}) {
    auto r = raw(post(hb, extra));
    EXPECT_EQ(status_line(r), "HTTP/1.1 400 Bad Request") << extra;
    EXPECT_TRUE(has_header(r, "X-Raft-Error: unsupported protocol version")) << r;
    EXPECT_TRUE(has_header(r, "X-Raft-Protocol: 2")) << r;  // what this node speaks
  }
  for (const char* extra : {"X-Raft-Protocol: two\r\n", "X-Raft-Protocol: -1\r\n",
                            "X-Raft-Protocol: 1\r\nX-Raft-Protocol: 1\r\n"}) {
    auto r = raw(post(hb, extra));
    EXPECT_EQ(status_line(r), "HTTP/1.1 400 Bad Request") << extra;
    EXPECT_TRUE(has_header(r, "X-Raft-Error: invalid protocol version")) << r;
    EXPECT_TRUE(has_header(r, "X-Raft-Protocol: 2")) << r;
  }
  auto r = raw(get("/raft/stream?id=1&term=1&index=0&logTerm=0", "X-Raft-Protocol: 3\r\n"));
  EXPECT_TRUE(has_header(r, "X-Raft-Error: unsupported protocol version")) << r;
  EXPECT_TRUE(svc.calls.empty());

  // Versions 2 and 1, and no version (builds before the header; curl), are
  // served, each answered in its own version.
  for (const auto& [extra, answer] : {std::pair{"X-Raft-Protocol: 2\r\n", "X-Raft-Protocol: 2"},
                                      std::pair{"X-Raft-Protocol: 1\r\n", "X-Raft-Protocol: 1"},
                                      std::pair{"", "X-Raft-Protocol: 1"}}) {
    r = raw(post(hb, extra));
    EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK") << extra;
    EXPECT_TRUE(has_header(r, answer)) << r;
  }
  EXPECT_EQ(svc.calls.size(), 3u);
  EXPECT_TRUE(has_header(raw(get("/nowhere")), "X-Raft-Protocol: 1"));  // errors too, in the request's version
  EXPECT_TRUE(has_header(raw(get("/nowhere", "X-Raft-Protocol: 2\r\n")), "X-Raft-Protocol: 2"));

  // The stream's head as well; the Service learns the stream's version (a
  // leader sends nothing on it that the follower's version cannot read).
  for (const auto& [extra, version] : {std::pair{"X-Raft-Protocol: 1\r\n", 1u}, std::pair{"", 1u},
                                       std::pair{"X-Raft-Protocol: 2\r\n", 2u}}) {
    std::shared_ptr<StreamWriter> writer;
    svc.on_stream = [&](std::shared_ptr<StreamWriter> w) { writer = std::move(w); };
    RawClient c(ioc);
    ASSERT_TRUE(c.connect(port));
    c.send(get("/raft/stream?id=1&term=1&index=0&logTerm=0", extra));
    ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
    EXPECT_EQ(svc.last_stream.protocol, version) << extra;
    writer->write("abc", [](std::error_code) {});  // the head goes with the first chunk
    ASSERT_TRUE(c.wait_for("abc"));
    EXPECT_EQ(status_line(c.data), "HTTP/1.1 200 OK");
    EXPECT_TRUE(has_header(c.data.substr(0, c.data.find("\r\n\r\n") + 2),
                           "X-Raft-Protocol: " + std::to_string(version)))
        << c.data;
    // The test ends with the last chunk in flight: the fixture stops the
    // server and destroys the io_context with its handler unrun, which once
    // leaked the Session (it held itself; ASan's leak check).
    writer->finish({});
  }
}

TEST_F(HandlerTest, HeaderOverLimitIs431) {
  auto r = raw(post("/raft/ping", "X-Big: " + std::string(8000, 'a') + "\r\n"));
  EXPECT_EQ(status_line(r), "HTTP/1.1 431 Request Header Fields Too Large");
}

TEST_F(HandlerTest, BodyOverLimitIs413) {
  auto r = raw("POST /raft/ack?id=1&term=1&index=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" +
               std::string(5000, 'b'));
  EXPECT_EQ(status_line(r), "HTTP/1.1 413 Payload Too Large");
  EXPECT_TRUE(svc.calls.empty());
}

TEST_F(HandlerTest, BrokenFramingIs400OrClosed) {
  const std::string cases[] = {
      "POST /raft/ack?id=1&term=1&index=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
      "POST /raft/ack?id=1&term=1&index=1 HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "POST /raft/ack?id=1&term=1&index=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      "NOT HTTP AT ALL\r\n\r\n",
      "GET /raft/ping HTTP/9.9\r\n\r\n",
      std::string("GET /raft/ping\0 HTTP/1.1\r\n\r\n", 28),
  };
  for (const auto& c : cases) {
    auto r = raw(c);
    EXPECT_TRUE(r.empty() || status_line(r) == "HTTP/1.1 400 Bad Request") << c << "\n--\n" << r;
  }
  EXPECT_TRUE(svc.calls.empty());
}

TEST_F(HandlerTest, ContentLengthLongerThanBodyIsCutByTheReadTimeout) {
  RawClient c(ioc);
  ASSERT_TRUE(c.connect(port));
  c.send("POST /raft/ack?id=1&term=1&index=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc");
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.wait_closed());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_TRUE(svc.calls.empty());
}

TEST_F(HandlerTest, Http10GetsAnAnswerAndAClose) {
  auto r = raw("POST /raft/ack?id=1&term=1&index=1 HTTP/1.0\r\n\r\n");
  EXPECT_EQ(status_line(r), "HTTP/1.0 200 OK");
  auto s = raw("GET /raft/stream?id=1&term=1&index=0&logTerm=0 HTTP/1.0\r\n\r\n");
  EXPECT_EQ(status_line(s), "HTTP/1.0 505 HTTP Version Not Supported");
}

TEST_F(HandlerTest, PipelinedRequestsAreAnsweredInOrder) {
  svc.hb_result = HeartbeatResponse{1, 1, {}};
  RawClient c(ioc);
  ASSERT_TRUE(c.connect(port));
  c.send("POST /raft/heartbeat?term=1&commitIndex=0&leaderID=1 HTTP/1.1\r\nHost: x\r\n\r\n"
         "GET /raft/nope HTTP/1.1\r\nHost: x\r\n\r\n"
         "POST /raft/ack?id=1&term=1&index=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(c.wait_closed());
  auto a = c.data.find("HTTP/1.1 200 OK"), b = c.data.find("HTTP/1.1 404"), d = c.data.rfind("HTTP/1.1 200 OK");
  ASSERT_NE(a, std::string::npos) << c.data;
  ASSERT_NE(b, std::string::npos);
  EXPECT_LT(a, b);
  EXPECT_LT(b, d);
  EXPECT_EQ((std::vector<std::string>{"heartbeat", "ack"}), svc.calls);
}

// A bad request after a HEAD request is answered as itself: the 400 carries
// its body (it used to be finished as an answer to the HEAD before it, with a
// Content-Length and no body, so the client waited for bytes that never came).
// Found by the http_server fuzz target (corpus/http_server/head-then-bad).
TEST_F(HandlerTest, ABadRequestAfterAHeadRequestGetsAWholeAnswer) {
  auto r = raw("HEAD /raft/ping HTTP/1.1\r\nHost: x\r\n\r\nBAD\x01 / HTTP/1.1\r\n\r\n");
  const auto second = r.find("HTTP/1.1 400 Bad Request");
  ASSERT_NE(second, std::string::npos) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\nbad request\n")) << r;
}

// HEAD /raft/stream would start a stream, whose chunked body a HEAD answer
// must not have (the client reads it as the next response): refused.
// Found by the http_server fuzz target (corpus/http_server/stream-head).
TEST_F(HandlerTest, HeadOfTheStreamIs405) {
  auto r = raw("HEAD /raft/stream?id=1&term=1&index=0&logTerm=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_line(r), "HTTP/1.1 405 Method Not Allowed") << r;
  EXPECT_TRUE(has_header(r, "Allow: GET"));
  EXPECT_TRUE(svc.calls.empty());
}

// One byte every 50 ms against read_timeout_ms = 300: cut off well before
// the request completes.
TEST_F(HandlerTest, ByteAtATimeClientIsCutOffByTheReadTimeout) {
  RawClient c(ioc);
  ASSERT_TRUE(c.connect(port));
  const std::string req = post("/raft/heartbeat?term=1&commitIndex=0&leaderID=1");
  std::size_t sent = 0;
  net::steady_timer t(ioc);
  std::function<void()> drip = [&] {
    if (sent == req.size() || c.closed) return;
    c.send(req.substr(sent++, 1));
    t.expires_after(50ms);
    t.async_wait([&](boost::system::error_code ec) {
      if (!ec) drip();
    });
  };
  drip();
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.wait_closed(3000ms));
  t.cancel();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_LT(sent, req.size());
  EXPECT_TRUE(svc.calls.empty());
}

TEST_F(HandlerTest, IdleKeepAliveConnectionIsClosed) {
  ServerOptions o = quick_options();
  o.idle_timeout_ms = 100;
  start_server(o);
  RawClient c(ioc);
  ASSERT_TRUE(c.connect(port));
  c.send("GET /raft/ping HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(c.wait_closed(2000ms));
  EXPECT_EQ(status_line(c.data), "HTTP/1.1 200 OK");
}

TEST_F(HandlerTest, ConnectionsBeyondTheLimitAreClosed) {
  ServerOptions o = quick_options();
  o.max_connections = 2;
  start_server(o);
  std::vector<std::unique_ptr<RawClient>> cs;
  for (int i = 0; i < 2; ++i) {
    cs.push_back(std::make_unique<RawClient>(ioc));
    ASSERT_TRUE(cs.back()->connect(port));
  }
  ASSERT_TRUE(run_until(ioc, [&] { return server->connection_count() == 2; }));
  RawClient extra(ioc);
  ASSERT_TRUE(extra.connect(port));
  ASSERT_TRUE(extra.wait_closed());
  EXPECT_TRUE(extra.data.empty());
  // The first two still work.
  cs[0]->send(get("/raft/ping"));
  ASSERT_TRUE(cs[0]->wait_closed());
  EXPECT_EQ(status_line(cs[0]->data), "HTTP/1.1 200 OK");
}

}  // namespace
}  // namespace raft::test
