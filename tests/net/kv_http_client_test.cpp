// The blocking HTTP client shared by raft-demo and raft-chaos
// (examples/kvstore/kv_http_client.hpp): URL and /raft/status parsing, and
// the connection handling against a scripted local server, plain and TLS.
#if defined(RAFT_HAVE_KV_CLIENT)

#include "kvstore/kv_http_client.hpp"
#include "eventually.hpp"
#include "raft/http.hpp"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <atomic>
#include <thread>

namespace kvstore {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

TEST(KvHttpClient, ParseUrl) {
  auto u = parse_url("http://127.0.0.1:8001/kv/a?b=c");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "8001");
  EXPECT_EQ(u->target, "/kv/a?b=c");
  EXPECT_EQ(u->base(), "http://127.0.0.1:8001");
  u = parse_url("http://127.0.0.1:8001");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->target, "/");
  u = parse_url("https://127.0.0.1:8443/kv/a");
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->tls());
  EXPECT_EQ(u->port, "8443");
  EXPECT_EQ(u->target, "/kv/a");
  EXPECT_EQ(u->base(), "https://127.0.0.1:8443");
  EXPECT_FALSE(parse_url("ftp://127.0.0.1:8001/"));
  EXPECT_FALSE(parse_url("httpss://127.0.0.1:8001/"));
  EXPECT_FALSE(parse_url("127.0.0.1:8001/"));
  EXPECT_FALSE(parse_url("http://127.0.0.1/"));
  EXPECT_FALSE(parse_url("http://127.0.0.1:/"));
  EXPECT_FALSE(parse_url("http://127.0.0.1:80x/"));
  EXPECT_FALSE(parse_url("http://127.0.0.1:0/"));
  EXPECT_FALSE(parse_url("http://127.0.0.1:70000/"));  // used to wrap into a short
}

TEST(KvHttpClient, ParseStatus) {
  auto s = parse_status(R"({"id":2,"term":7,"state":"leader","leaderID":2,"leaderURL":"http://127.0.0.1:1",)"
                        R"("commitIndex":40,"appliedIndex":39,"lastIndex":41,"extra":[1]})");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->id, 2u);
  EXPECT_EQ(s->term, 7u);
  EXPECT_EQ(s->state, "leader");
  EXPECT_EQ(s->leader_id, 2u);
  EXPECT_EQ(s->leader_url, "http://127.0.0.1:1");
  EXPECT_EQ(s->commit, 40u);
  EXPECT_EQ(s->applied, 39u);
  EXPECT_EQ(s->last, 41u);
  EXPECT_FALSE(s->learner);
  s = parse_status(R"({"id":3,"state":"follower","learner":true})");
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->learner);
  s = parse_status(R"({"id":"x","state":3})");  // wrong types read as absent
  ASSERT_TRUE(s);
  EXPECT_EQ(s->id, 0u);
  EXPECT_EQ(s->state, "");
  EXPECT_FALSE(parse_status("[1]"));
  EXPECT_FALSE(parse_status("{"));
}

// A one-connection-at-a-time HTTP server on 127.0.0.1 that answers every
// request with "c<N>", N the number of the connection it came on. With
// close_after_first it closes each connection after the first answer while
// still advertising keep-alive (as a killed or restarted node does); with
// silent it reads requests and never answers. With a TLS context it speaks
// only TLS (a connection whose handshake fails is counted, then dropped).
class Server {
 public:
  explicit Server(bool close_after_first = false, bool silent = false, net::ssl::context* tls = nullptr)
      : acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)),
        close_after_first_(close_after_first),
        silent_(silent),
        tls_(tls),
        thread_([this] { loop(); }) {}
  ~Server() {
    stop_ = true;
    boost::system::error_code ec;
    net::io_context ioc;
    tcp::socket poke(ioc);
    poke.connect(acceptor_.local_endpoint(), ec);  // unblocks accept()
    thread_.join();
  }
  std::string url() const {
    return (tls_ ? "https" : "http") + std::string("://127.0.0.1:") + std::to_string(acceptor_.local_endpoint().port());
  }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  int closed() const { return closed_; }

 private:
  void loop() {
    while (!stop_) {
      boost::system::error_code ec;
      tcp::socket s(ioc_);
      acceptor_.accept(s, ec);
      if (ec || stop_) return;
      const int n = ++connections_;
      if (tls_) {
        net::ssl::stream<tcp::socket&> t(s, *tls_);
        t.handshake(net::ssl::stream_base::server, ec);
        if (!ec) serve(t, n);
      } else {
        serve(s, n);
      }
      s.close(ec);
      ++closed_;
    }
  }

  template <class Stream>
  void serve(Stream& s, int n) {
    boost::system::error_code ec;
    net::streambuf buf;
    for (;;) {
      net::read_until(s, buf, "\r\n\r\n", ec);
      if (ec) break;
      buf.consume(buf.size());
      ++requests_;
      if (silent_) continue;
      const std::string body = "c" + std::to_string(n);
      const std::string res = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      net::write(s, net::buffer(res), ec);
      if (ec || close_after_first_) break;
    }
  }

  net::io_context ioc_;
  tcp::acceptor acceptor_;
  bool close_after_first_, silent_;
  net::ssl::context* tls_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0}, requests_{0}, closed_{0};
  std::thread thread_;
};

std::optional<Response> get(HttpClient& c, const std::string& base, bool* sent = nullptr,
                            Clock::duration budget = 2s) {
  return c.request(Method::get, *parse_url(base + "/x"), "", Clock::now() + budget, sent);
}

TEST(KvHttpClient, KeepAliveAndReconnectOnAnotherNode) {
  Server a, b;
  HttpClient c;
  auto r = get(c, a.url());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "c1");
  r = get(c, a.url());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "c1");  // the same connection
  r = get(c, b.url());       // another port: a new connection to b, not a's
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "c1");
  EXPECT_EQ(b.requests(), 1);
  r = get(c, a.url());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "c2");
  EXPECT_EQ(a.requests(), 3);
}

// `a` closes each connection after one answer: the request after that
// must notice the close before sending (otherwise it would fail after
// *sent = true) and go on a new connection.
void expect_a_new_connection_after_the_close(Server& a, HttpClient& c) {
  ASSERT_TRUE(get(c, a.url()));
  // closed() counts after close() returned; on loopback the FIN is queued to
  // our socket within that call, so no further wait is needed.
  ASSERT_TRUE(raft::test::eventually([&] { return a.closed() == 1; }, 5s));
  bool sent = false;
  auto r = get(c, a.url(), &sent);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "c2");
  EXPECT_TRUE(sent);
}

TEST(KvHttpClient, ClosedKeepAliveConnectionIsNotWrittenInto) {
  Server a(/*close_after_first=*/true);
  HttpClient c;
  expect_a_new_connection_after_the_close(a, c);
}

TEST(KvHttpClient, RefusedConnectionWasNotSent) {
  std::string url;
  {
    net::io_context ioc;
    tcp::acceptor held(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    url = "http://127.0.0.1:" + std::to_string(held.local_endpoint().port());
  }  // closed: connecting is refused
  HttpClient c;
  bool sent = true;
  EXPECT_FALSE(get(c, url, &sent));
  EXPECT_FALSE(sent);
}

TEST(KvHttpClient, DeadlineBoundsASilentServer) {
  Server a(/*close_after_first=*/false, /*silent=*/true);
  HttpClient c;
  bool sent = false;
  const auto t0 = Clock::now();
  EXPECT_FALSE(get(c, a.url(), &sent, 200ms));
  const auto took = Clock::now() - t0;
  EXPECT_TRUE(sent);
  EXPECT_GE(took, 190ms);
  EXPECT_LT(took, 2s);
  // The client is usable afterwards (a new connection).
  EXPECT_FALSE(get(c, a.url(), &sent, 100ms));
  EXPECT_TRUE(raft::test::eventually([&] { return a.connections() == 2; }, 5s));
}

TEST(KvHttpClient, MovedClientStillWorks) {
  Server a;
  HttpClient c;
  ASSERT_TRUE(get(c, a.url()));
  HttpClient d(std::move(c));
  auto r = get(d, a.url());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "c1");
  d.reset();  // the server serves one connection at a time
  c = HttpClient();
  r = get(c, a.url());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "c2");
}

std::string pem(const std::string& name) { return std::string(RAFT_TLS_TESTDATA) + "/" + name; }

// The test server's side: `cert` (testdata/tls) and its key.
net::ssl::context server_tls(const std::string& cert = "node") {
  net::ssl::context ctx(net::ssl::context::tls_server);
  ctx.use_certificate_chain_file(pem(cert + ".pem"));
  ctx.use_private_key_file(pem(cert + ".key"), net::ssl::context::pem);
  return ctx;
}

// A client context that trusts `ca`.
std::shared_ptr<raft::TLSContext> client_tls(const std::string& ca = "ca") {
  raft::TLSOptions o;
  o.ca_file = pem(ca + ".pem");
  std::string why;
  auto c = raft::TLSContext::client(o, &why);
  EXPECT_TRUE(c) << why;
  return c ? *c : nullptr;
}

TEST(KvHttpClient, HttpsWithoutATLSContextIsTheCallersMistake) {
  HttpClient c;
  EXPECT_THROW(c.request(Method::get, *parse_url("https://127.0.0.1:1/x"), "", Clock::now() + 1s),
               std::invalid_argument);
}

TEST(KvHttpClient, KeepAliveOverTLS) {
  auto ctx = server_tls();
  Server a(false, false, &ctx);
  HttpClient c(client_tls());
  for (int i = 0; i < 3; ++i) {
    auto r = get(c, a.url());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "c1");  // one handshake, then the same connection
  }
  EXPECT_EQ(a.requests(), 3);
  // Plain HTTP to the same port is another connection, which the TLS
  // server cannot read: no answer, and no request counted.
  const auto plain = "http://127.0.0.1:" + a.url().substr(a.url().rfind(':') + 1);
  EXPECT_FALSE(get(c, plain, nullptr, 500ms));
  EXPECT_EQ(a.requests(), 3);
}

// alive() under TLS: a closed connection is noticed before the request is
// written into it, whether or not the server sent a close_notify first.
TEST(KvHttpClient, ClosedTLSConnectionIsNotWrittenInto) {
  auto ctx = server_tls();
  Server a(/*close_after_first=*/true, false, &ctx);
  HttpClient c(client_tls());
  expect_a_new_connection_after_the_close(a, c);
}

// A server the client must not trust (another CA, or a certificate for
// another address) gets no byte of the request: *sent stays false.
TEST(KvHttpClient, UntrustedTLSServerIsNotSent) {
  for (const std::string cert : {"rogue", "othername"}) {
    auto ctx = server_tls(cert);
    Server a(false, false, &ctx);
    HttpClient c(client_tls());
    bool sent = true;
    EXPECT_FALSE(get(c, a.url(), &sent)) << cert;
    EXPECT_FALSE(sent) << cert;
    EXPECT_EQ(a.requests(), 0) << cert;
  }
  // The control: trusting the rogue CA, its certificate (which names
  // 127.0.0.1) is accepted.
  auto ctx = server_tls("rogue");
  Server a(false, false, &ctx);
  HttpClient c(client_tls("rogue-ca"));
  EXPECT_TRUE(get(c, a.url()));
}

}  // namespace
}  // namespace kvstore

#endif  // RAFT_HAVE_KV_CLIENT
