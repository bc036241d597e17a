// TLS on the HTTP transport and server (raft::TLSContext): the calls and
// the stream with its ack channel over TLS, and each refusal: an untrusted
// or misnamed server certificate, a client without a member's certificate
// under mutual TLS, plain HTTP to a TLS port, an https:// URL with no
// TLSContext, unreadable or mismatched PEM files, a revoked certificate
// and CRL files that cannot work; a CRL loaded while running closing the
// revoked peer's open connections (Server, transport, the hook).
// Certificates and CRLs are in
// testdata/tls (made by its gen.sh).
#include "net_fixture.hpp"
#include "raft/http_beast_tls.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/beast/http.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace raft::test {
namespace {

std::string pem(const std::string& name) { return std::string(RAFT_TLS_TESTDATA) + "/" + name; }

// A client that presents no certificate and trusts `ca`.
TLSOptions trusting(const std::string& ca = "ca") {
  TLSOptions o;
  o.ca_file = pem(ca + ".pem");
  return o;
}

TLSOptions member(const std::string& cert = "node", const std::string& ca = "ca") {
  TLSOptions o;
  o.certificate_chain_file = pem(cert + ".pem");
  o.private_key_file = pem(cert + ".key");
  o.ca_file = pem(ca + ".pem");
  return o;
}

// A member's server under mutual TLS that checks the CRLs in `crl`.
TLSOptions mutual_with_crl(const std::string& crl) {
  auto o = member();
  o.require_client_certificate = true;
  o.crl_file = pem(crl);
  return o;
}

std::shared_ptr<TLSContext> server_ctx(const TLSOptions& o) {
  std::string why;
  auto c = TLSContext::server(o, &why);
  EXPECT_TRUE(c) << why;
  return c ? *c : nullptr;
}

std::shared_ptr<TLSContext> client_ctx(const TLSOptions& o) {
  std::string why;
  auto c = TLSContext::client(o, &why);
  EXPECT_TRUE(c) << why;
  return c ? *c : nullptr;
}

class TLS : public NetTest {
 protected:
  // The fixture's server again, speaking TLS with `o`; `url` becomes https.
  void serve_tls(const TLSOptions& o) {
    auto so = quick_options();
    so.tls = server_ctx(o);
    ASSERT_NO_FATAL_FAILURE(start_server(so));
    url = "https://127.0.0.1:" + std::to_string(port);
  }
  std::unique_ptr<HTTPTransport> client(std::shared_ptr<TLSContext> tls) {
    HTTPTransportOptions o = topts;
    o.tls = std::move(tls);
    return std::make_unique<HTTPTransport>(ioc.get_executor(), o);
  }
  result<HeartbeatResponse> heartbeat(HTTPTransport& t, const std::string& to) {
    std::optional<result<HeartbeatResponse>> r;
    t.heartbeat(to, {3, 5, 1}, [&](result<HeartbeatResponse> x) { r = std::move(x); });
    EXPECT_TRUE(run_until(ioc, [&] { return r.has_value(); }));
    return r ? *r : result<HeartbeatResponse>(errc::timeout);
  }
  // A heartbeat from `t` fails as a refused connection does (the caller
  // cannot tell a failed handshake from a refused connect) and reaches no
  // Service.
  void expect_refused(HTTPTransport& t, const std::string& to) { expect_refused_after(t, to, 0); }
  // The same, for a Service that has had `calls` calls.
  void expect_refused_after(HTTPTransport& t, const std::string& to, std::size_t calls) {
    auto r = heartbeat(t, to);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::transport_error);
    EXPECT_EQ(svc.calls.size(), calls);
  }
};

TEST_F(TLS, CallsAndKeepAliveOverTLS) {
  ASSERT_NO_FATAL_FAILURE(serve_tls(member()));
  svc.hb_result = HeartbeatResponse{7, 3, {}, 2};
  auto t = client(client_ctx(trusting()));
  for (int i = 0; i < 3; ++i) {
    auto r = heartbeat(*t, url);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->index, 7u);
    EXPECT_EQ(r->id, 2u);
  }
  EXPECT_EQ(svc.calls.size(), 3u);
  EXPECT_EQ(t->connections_opened(), 1u);  // one handshake, then keep-alive
}

// The stream and the acks that ride its connection upstream both go
// through TLS (one ssl stream, a read and a write outstanding at once).
TEST_F(TLS, StreamAndItsAckChannelOverTLS) {
  ASSERT_NO_FATAL_FAILURE(serve_tls(member()));
  std::shared_ptr<StreamWriter> writer;
  svc.on_stream = [&](std::shared_ptr<StreamWriter> w) { writer = std::move(w); };
  auto t = client(client_ctx(member()));
  std::string got;
  int ends = 0;
  const std::string me = "https://127.0.0.1:9/me";
  auto h = t->read_from(url, {2, 1, 0, 0, me},
                        {[&](std::string_view b, std::function<void()> more) {
                           got.append(b);
                           more();
                         },
                         [&](std::error_code) { ++ends; }});
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  const std::string big(200'000, 'x');  // many TLS records
  for (const std::string* chunk : {&big, &big}) {
    std::optional<std::error_code> wrote;
    writer->write(*chunk, [&](std::error_code ec) { wrote = ec; });
    ASSERT_TRUE(run_until(ioc, [&] { return wrote.has_value(); }));
    ASSERT_FALSE(*wrote) << wrote->message();
  }
  ASSERT_TRUE(run_until(ioc, [&] { return got.size() == 2 * big.size(); }));
  EXPECT_EQ(got, big + big);
  const auto opened = t->connections_opened();
  std::optional<result<void>> acked;
  t->ack(url, {2, 1, 9, me}, [&](result<void> r) { acked = r; });
  ASSERT_TRUE(run_until(ioc, [&] { return acked.has_value() && svc.last_ack.index == 9; }));
  EXPECT_TRUE(*acked);
  EXPECT_EQ(svc.last_ack.id, 2u);
  EXPECT_EQ(t->connections_opened(), opened);  // on the stream's connection, not a POST
  writer->finish({});
  ASSERT_TRUE(run_until(ioc, [&] { return ends == 1; }));
}

TEST_F(TLS, AServerCertificateFromAnotherCAIsRefused) {
  ASSERT_NO_FATAL_FAILURE(serve_tls(member("rogue", "rogue-ca")));
  auto t = client(client_ctx(trusting()));
  expect_refused(*t, url);
}

TEST_F(TLS, AServerCertificateForAnotherNameIsRefusedUnlessNamesAreNotChecked) {
  ASSERT_NO_FATAL_FAILURE(serve_tls(member("othername")));
  auto strict = client(client_ctx(trusting()));
  expect_refused(*strict, url);
  TLSOptions co = trusting();
  co.verify_peer_name = false;
  auto lax = client(client_ctx(co));
  auto r2 = heartbeat(*lax, url);
  EXPECT_TRUE(r2) << r2.error().message();
}

TEST_F(TLS, MutualTLSRefusesClientsWithoutAMembersCertificate) {
  auto so = member();
  so.require_client_certificate = true;
  ASSERT_NO_FATAL_FAILURE(serve_tls(so));
  auto none = client(client_ctx(trusting()));
  expect_refused(*none, url);
  auto wrong = client(client_ctx(member("rogue")));  // trusts our CA, presents another's certificate
  expect_refused(*wrong, url);
  auto good = client(client_ctx(member()));
  auto r3 = heartbeat(*good, url);
  ASSERT_TRUE(r3) << r3.error().message();
  EXPECT_EQ(svc.calls.size(), 1u);
}

TEST_F(TLS, PlainHTTPToATLSPortGetsNoAnswer) {
  ASSERT_NO_FATAL_FAILURE(serve_tls(member()));
  const std::string reply = raw(post("/raft/heartbeat?term=3&commitIndex=5&leaderID=1"));
  EXPECT_EQ(reply.find("HTTP/1.1"), std::string::npos) << reply;
  expect_refused(transport, "http://127.0.0.1:" + std::to_string(port));
}

// A client that connects and never starts (or never finishes) the
// handshake holds a connection only until read_timeout_ms (300 ms here),
// as a request trickled byte by byte would.
TEST_F(TLS, AStalledHandshakeIsCutOffAtTheReadTimeout) {
  ASSERT_NO_FATAL_FAILURE(serve_tls(member()));
  RawClient silent(ioc);
  ASSERT_TRUE(silent.connect(port));
  RawClient partial(ioc);
  ASSERT_TRUE(partial.connect(port));
  partial.send(std::string("\x16\x03\x01\x02\x00\x01", 6));  // a ClientHello's first bytes, then nothing
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(silent.wait_closed(3000ms));
  EXPECT_TRUE(partial.wait_closed(3000ms));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 250ms);  // not at once: the deadline, not an error, closed them
  EXPECT_TRUE(run_until(ioc, [&] { return server->connection_count() == 0; }));
  EXPECT_TRUE(svc.calls.empty());
}

// Certificates renewed while running (set_tls on both sides): connections
// opened afterwards use the new ones, connections already open keep theirs.
TEST_F(TLS, RenewedCertificatesApplyToNewConnections) {
  auto plain_server_refuses = server->set_tls(server_ctx(member()));
  ASSERT_FALSE(plain_server_refuses);  // the fixture's server speaks plain HTTP
  EXPECT_EQ(plain_server_refuses.error(), errc::invalid_argument);
  ASSERT_NO_FATAL_FAILURE(serve_tls(member()));
  TLSOptions co = trusting();
  auto t = client(client_ctx(co));
  ASSERT_TRUE(heartbeat(*t, url));
  // The server moves to a certificate of another CA.
  ASSERT_TRUE(server->set_tls(server_ctx(member("rogue", "rogue-ca"))));
  auto again = heartbeat(*t, url);
  EXPECT_TRUE(again) << "the kept-alive connection keeps its session";
  EXPECT_EQ(t->connections_opened(), 1u);
  const auto calls = svc.calls.size();
  auto fresh = client(client_ctx(co));
  auto r = heartbeat(*fresh, url);
  ASSERT_FALSE(r);  // a new handshake sees the new certificate
  EXPECT_EQ(r.error(), errc::transport_error);
  EXPECT_EQ(svc.calls.size(), calls);
  // The client moves to trusting that CA: its idle connection is dropped.
  co = trusting("rogue-ca");
  ASSERT_TRUE(t->set_tls(client_ctx(co)));
  auto after = heartbeat(*t, url);
  EXPECT_TRUE(after) << after.error().message();
  EXPECT_EQ(t->connections_opened(), 2u);
  // What is refused.
  auto null_server = server->set_tls(nullptr);
  ASSERT_FALSE(null_server);
  EXPECT_EQ(null_server.error(), errc::invalid_argument);
  auto client_as_server = server->set_tls(client_ctx(co));
  ASSERT_FALSE(client_as_server);
  EXPECT_EQ(client_as_server.error(), errc::tls_error);
  auto server_as_client = t->set_tls(server_ctx(member()));
  ASSERT_FALSE(server_as_client);
  EXPECT_EQ(server_as_client.error(), errc::tls_error);
  auto null_client = t->set_tls(nullptr);
  ASSERT_FALSE(null_client);
  EXPECT_EQ(null_client.error(), errc::invalid_argument);
}

TEST_F(TLS, AnHttpsURLWithoutATLSContextIsATLSError) {
  auto r = heartbeat(transport, "https://127.0.0.1:" + std::to_string(port));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::tls_error);
  std::optional<std::error_code> end;
  auto h = transport.read_from("https://127.0.0.1:" + std::to_string(port), {2, 1, 0, 0},
                               {[](std::string_view, std::function<void()>) {}, [&](std::error_code ec) { end = ec; }});
  ASSERT_TRUE(run_until(ioc, [&] { return end.has_value(); }));
  EXPECT_EQ(*end, errc::tls_error);
  EXPECT_TRUE(svc.calls.empty());
  EXPECT_EQ(transport.connections_opened(), 0u);
}

TEST_F(TLS, AServerNeedsAServerContext) {
  auto so = quick_options();
  so.tls = client_ctx(member());
  Server s(ioc.get_executor(), handler, so);
  auto p = s.listen("127.0.0.1", 0);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error(), errc::tls_error);
}

TEST_F(TLS, BadFilesAreRefusedWithTheReason) {
  auto refused = [](result<std::shared_ptr<TLSContext>> r, const std::string& why, const std::string& needle) {
    EXPECT_FALSE(r);
    if (!r) {
      EXPECT_EQ(r.error(), errc::tls_error);
    }
    EXPECT_NE(why.find(needle), std::string::npos) << why;
  };
  std::string why;
  auto o = member();
  o.certificate_chain_file = pem("missing.pem");
  refused(TLSContext::server(o, &why), why, "missing.pem");
  o = member();
  o.private_key_file = pem("rogue.key");  // another certificate's key
  refused(TLSContext::server(o, &why), why, "rogue.key");
  o = member();
  o.ca_file = pem("gen.sh");  // not PEM
  refused(TLSContext::client(o, &why), why, "gen.sh");
  o = member();
  o.private_key_file.clear();
  refused(TLSContext::client(o, &why), why, "go together");
  refused(TLSContext::server(TLSOptions{}, &why), why, "a server needs");
  o = member();
  o.ca_file.clear();
  o.require_client_certificate = true;
  refused(TLSContext::server(o, &why), why, "needs ca_file");
  refused(TLSContext::client(o, &why), why, "is for a server");
  EXPECT_TRUE(TLSContext::server(member()));
  EXPECT_TRUE(TLSContext::client(member()));
  TLSOptions system_store;  // a client with no ca_file trusts the system's CAs
  EXPECT_TRUE(TLSContext::client(system_store));
}

// An encrypted private key (testdata/tls/node-encrypted.key, node.key under
// a passphrase): with its passphrase the server serves; without it, or with
// a wrong one, making the context fails with the reason instead of OpenSSL
// asking for the passphrase on the process's terminal (which would block).
TEST_F(TLS, EncryptedPrivateKeyNeedsItsPassphrase) {
  auto o = member();
  o.private_key_file = pem("node-encrypted.key");
  std::string why;
  for (const std::string pw : {"", "not it"}) {
    o.private_key_password = pw;
    auto r = TLSContext::server(o, &why);
    ASSERT_FALSE(r) << pw;
    EXPECT_EQ(r.error(), errc::tls_error);
    EXPECT_NE(why.find("node-encrypted.key"), std::string::npos) << why;
    EXPECT_NE(why.find("private_key_password"), std::string::npos) << why;
  }
  o.private_key_password = "raft-test-passphrase";
  ASSERT_NO_FATAL_FAILURE(serve_tls(o));
  svc.hb_result = HeartbeatResponse{7, 3, {}, 2};
  auto t = client(client_ctx(o));  // the client side presents the same key
  auto r = heartbeat(*t, url);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->index, 7u);
}

// Revocation (TLSOptions::crl_file; testdata/tls/ca.crl revokes
// revoked.pem, a certificate of our own CA for the right name): refused on
// either side of the handshake, while a member's certificate is still
// served.
TEST_F(TLS, ARevokedCertificateIsRefusedOnEitherSide) {
  auto so = mutual_with_crl("ca.crl");
  ASSERT_NO_FATAL_FAILURE(serve_tls(so));
  svc.hb_result = HeartbeatResponse{7, 3, {}, 2};
  auto revoked = client(client_ctx(member("revoked")));
  expect_refused(*revoked, url);
  auto good = client(client_ctx(member()));
  auto r = heartbeat(*good, url);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(svc.calls.size(), 1u);

  // A client with the CRL does not talk to a server that presents the
  // revoked certificate; without the CRL it would.
  svc.calls.clear();
  ASSERT_NO_FATAL_FAILURE(serve_tls(member("revoked")));
  auto co = trusting();
  co.crl_file = pem("ca.crl");
  auto checking = client(client_ctx(co));
  expect_refused(*checking, url);
  auto unchecking = client(client_ctx(trusting()));
  auto r2 = heartbeat(*unchecking, url);
  EXPECT_TRUE(r2) << r2.error().message();
}

// A CRL loaded while running (Server::set_tls) also reaches the revoked
// peer's connections already open, a stream included: they are closed,
// while a member's kept-alive connection goes on.
TEST_F(TLS, ACRLLoadedWhileRunningClosesTheRevokedClientsOpenConnections) {
  auto so = mutual_with_crl("ca-empty.crl");
  ASSERT_NO_FATAL_FAILURE(serve_tls(so));
  svc.hb_result = HeartbeatResponse{7, 3, {}, 2};
  auto revoked = client(client_ctx(member("revoked")));
  auto good = client(client_ctx(member()));
  ASSERT_TRUE(heartbeat(*revoked, url));  // not revoked yet
  ASSERT_TRUE(heartbeat(*good, url));
  std::shared_ptr<StreamWriter> writer;
  svc.on_stream = [&](std::shared_ptr<StreamWriter> w) { writer = std::move(w); };
  std::optional<std::error_code> ended;
  auto h = revoked->read_from(url, {2, 1, 0, 0, ""}, {[](std::string_view, std::function<void()> more) { more(); },
                                                      [&](std::error_code ec) { ended = ec; }});
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  ASSERT_FALSE(write_once(ioc, *writer, "bytes"));
  ASSERT_TRUE(run_until(ioc, [&] { return server->connection_count() == 3u; }));

  // The same CRL again: nothing is revoked, nothing is closed.
  ASSERT_TRUE(server->set_tls(server_ctx(so)));
  run_until(ioc, [] { return false; }, 50ms);
  EXPECT_EQ(server->connection_count(), 3u);
  EXPECT_FALSE(ended.has_value());

  so.crl_file = pem("ca.crl");
  ASSERT_TRUE(server->set_tls(server_ctx(so)));
  ASSERT_TRUE(run_until(ioc, [&] { return ended.has_value() && server->connection_count() == 1u; }))
      << server->connection_count();
  EXPECT_TRUE(*ended);  // an error, not the stream's end
  const auto calls = svc.calls.size();
  expect_refused_after(*revoked, url, calls);
  auto r = heartbeat(*good, url);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(good->connections_opened(), 1u);  // its connection was kept
}

// The client's side: HTTPTransport::set_tls with a CRL that revokes the
// server's certificate ends a stream from it with tls_error; a context that
// revokes nothing leaves it running.
TEST_F(TLS, ACRLLoadedWhileRunningEndsAStreamFromARevokedServer) {
  ASSERT_NO_FATAL_FAILURE(serve_tls(member("revoked")));
  std::shared_ptr<StreamWriter> writer;
  svc.on_stream = [&](std::shared_ptr<StreamWriter> w) { writer = std::move(w); };
  auto co = trusting();
  co.crl_file = pem("ca-empty.crl");
  auto t = client(client_ctx(co));
  std::string got;
  std::optional<std::error_code> ended;
  auto h = t->read_from(url, {2, 1, 0, 0, ""},
                        {[&](std::string_view b, std::function<void()> more) {
                           got.append(b);
                           more();
                         },
                         [&](std::error_code ec) { ended = ec; }});
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  ASSERT_FALSE(write_once(ioc, *writer, "one"));
  ASSERT_TRUE(run_until(ioc, [&] { return got == "one"; }));
  ASSERT_TRUE(t->set_tls(client_ctx(co)));  // revokes nothing
  ASSERT_FALSE(write_once(ioc, *writer, "two"));
  ASSERT_TRUE(run_until(ioc, [&] { return got == "onetwo"; }));
  EXPECT_FALSE(ended.has_value());
  co.crl_file = pem("ca.crl");
  ASSERT_TRUE(t->set_tls(client_ctx(co)));
  ASSERT_TRUE(run_until(ioc, [&] { return ended.has_value(); }));
  EXPECT_EQ(*ended, errc::tls_error);
  // And a new stream does not get past the handshake.
  std::optional<std::error_code> again;
  auto h2 = t->read_from(url, {2, 1, 0, 0, ""}, {[](std::string_view, std::function<void()> more) { more(); },
                                                 [&](std::error_code ec) { again = ec; }});
  ASSERT_TRUE(run_until(ioc, [&] { return again.has_value(); }));
  EXPECT_EQ(*again, errc::transport_error);
  EXPECT_EQ(got, "onetwo");
}

// A temporary directory for files a test writes.
struct ScratchDir {
  ScratchDir() {
    char tmpl[] = "/tmp/raft-tls-test-XXXXXX";
    const char* made = ::mkdtemp(tmpl);
    EXPECT_NE(made, nullptr);
    path = made ? made : "/nonexistent";
  }
  ~ScratchDir() { std::filesystem::remove_all(path); }
  // Writes the concatenation of `parts` (testdata files; text where it
  // starts with "-----") to `name` here and returns its path.
  std::string write(const std::string& name, const std::vector<std::string>& parts) {
    std::ofstream out(path + "/" + name, std::ios::binary);
    for (const auto& p : parts) {
      if (p.starts_with("-----")) out << p;
      else out << std::ifstream(pem(p), std::ios::binary).rdbuf();
    }
    return path + "/" + name;
  }
  std::string path;
};

// Strict on purpose: with crl_file set, a peer whose CA published no CRL in
// it is refused (OpenSSL cannot tell "not revoked" from "no list"), even
// though ca_file trusts that CA.
TEST_F(TLS, WithACRLFileAPeerWhoseCAHasNoCRLIsRefused) {
  ScratchDir dir;
  auto so = mutual_with_crl("ca.crl");
  so.ca_file = dir.write("both-cas.pem", {"ca.pem", "rogue-ca.pem"});
  ASSERT_NO_FATAL_FAILURE(serve_tls(so));
  svc.hb_result = HeartbeatResponse{7, 3, {}, 2};
  auto co = member("rogue");
  co.ca_file = so.ca_file;
  auto no_crl = client(client_ctx(co));
  expect_refused(*no_crl, url);
  // Both CRLs in the file: the other CA's member is served too.
  so.crl_file = dir.write("both.crl", {"ca.crl", "rogue-ca.crl"});
  ASSERT_NO_FATAL_FAILURE(serve_tls(so));
  auto listed = client(client_ctx(co));
  auto r = heartbeat(*listed, url);
  EXPECT_TRUE(r) << r.error().message();
}

// What would make every handshake fail later is refused when the context is
// made, with the reason: a CRL that is missing, not a CRL, from a CA that
// ca_file does not hold, or out of date.
TEST_F(TLS, ACRLFileIsCheckedWhenTheContextIsMade) {
  ScratchDir dir;
  const std::string kBroken = "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";
  struct Case {
    std::string file, needle;
  };
  const std::vector<Case> cases = {
      {pem("missing.crl"), "cannot read"},
      {pem("gen.sh"), "no PEM CRL"},
      {pem("rogue-ca.crl"), "not signed by a CA in ca_file"},
      {pem("ca-expired.crl"), "out of date"},
      {dir.write("broken.crl", {kBroken}), "not a PEM CRL:"},
      {dir.write("then-broken.crl", {"ca.crl", kBroken}), "not a PEM CRL after its CRL #1"},
  };
  for (const auto& c : cases) {
    auto o = member();
    o.crl_file = c.file;
    std::string why;
    for (bool server : {true, false}) {
      auto r = server ? TLSContext::server(o, &why) : TLSContext::client(o, &why);
      ASSERT_FALSE(r) << c.file;
      EXPECT_EQ(r.error(), errc::tls_error);
      EXPECT_NE(why.find(c.file), std::string::npos) << why;
      EXPECT_NE(why.find(c.needle), std::string::npos) << why;
    }
  }
  auto o = member();
  o.crl_file = pem("ca.crl");
  o.ca_file.clear();
  std::string why;
  EXPECT_FALSE(TLSContext::client(o, &why));
  EXPECT_NE(why.find("crl_file needs ca_file"), std::string::npos) << why;
  EXPECT_TRUE(TLSContext::server(member()));
}

// The TLS hook: the application's own Beast server owns the port and the
// TLS context, completes the handshake, reads requests, answers its own
// routes and hands /raft/* to raft, which gives the connection back.
struct UserTLSServer {
  // With `tls`, its context (raft::native_context) instead of the server's
  // own one.
  UserTLSServer(net::io_context& ioc, Handler& h, std::shared_ptr<TLSContext> tls = nullptr)
      : acc(ioc, {net::ip::make_address("127.0.0.1"), 0}), handler(h), tls(std::move(tls)) {
    ctx.use_certificate_chain_file(pem("node.pem"));
    ctx.use_private_key_file(pem("node.key"), net::ssl::context::pem);
    accept();
  }
  struct Session : std::enable_shared_from_this<Session> {
    Session(tcp::socket s, net::ssl::context& ctx, Handler& h) : handler(h) { stream.emplace(std::move(s), ctx); }
    std::optional<TLSBeastStream> stream;
    boost::beast::flat_buffer buffer;
    boost::beast::http::request<boost::beast::http::string_body> req;
    Handler& handler;
    int raft_requests = 0;
    void do_read() {
      req = {};
      boost::beast::http::async_read(*stream, buffer, req,
                                     [self = shared_from_this()](boost::beast::error_code ec, std::size_t) {
                                       if (!ec) self->on_read();
                                     });
    }
    void on_read() {
      ASSERT_TRUE(is_raft_target(req.target()));  // the test sends nothing else
      ++raft_requests;
      serve_raft_request(handler, std::move(*stream), std::move(req), [self = shared_from_this()](TLSBeastStream s) {
        self->stream.emplace(std::move(s));
        ++self->given_back;
        self->do_read();
      });
    }
    int given_back = 0;
  };
  void accept() {
    acc.async_accept([this](boost::beast::error_code ec, tcp::socket s) {
      if (ec) return;
      auto sess = std::make_shared<Session>(std::move(s), tls ? native_context(*tls) : ctx, handler);
      sessions.push_back(sess);
      sess->stream->async_handshake(net::ssl::stream_base::server, [sess](boost::beast::error_code e) {
        if (!e) sess->do_read();
      });
      accept();
    });
  }
  std::uint16_t port() const { return acc.local_endpoint().port(); }
  net::ssl::context ctx{net::ssl::context::tls_server};
  tcp::acceptor acc;
  Handler& handler;
  std::shared_ptr<TLSContext> tls;
  std::vector<std::shared_ptr<Session>> sessions;
};

TEST_F(TLS, TheBeastHookServesRaftOnTheApplicationsTLSConnection) {
  UserTLSServer us(ioc, handler);
  svc.hb_result = HeartbeatResponse{4, 2, {}, 1};
  auto t = client(client_ctx(trusting()));
  const std::string at = "https://127.0.0.1:" + std::to_string(us.port());
  for (int i = 0; i < 3; ++i) {
    auto r = heartbeat(*t, at);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->index, 4u);
  }
  EXPECT_EQ(t->connections_opened(), 1u);
  ASSERT_EQ(us.sessions.size(), 1u);
  EXPECT_EQ(us.sessions[0]->raft_requests, 3);
  EXPECT_TRUE(run_until(ioc, [&] { return us.sessions[0]->given_back == 3; }));
  // A stream on the hooked TLS connection.
  std::shared_ptr<StreamWriter> writer;
  svc.on_stream = [&](std::shared_ptr<StreamWriter> w) { writer = std::move(w); };
  std::string got;
  auto h = t->read_from(at, {2, 1, 0, 0}, {[&](std::string_view b, std::function<void()> more) {
                                             got.append(b);
                                             more();
                                           },
                                           [](std::error_code) {}});
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  writer->write("frames", [](std::error_code) {});
  EXPECT_TRUE(run_until(ioc, [&] { return got == "frames"; }));
  writer.reset();
  h->cancel();
}

// Revocation on the hook: after the application's port moves to a context
// with a CRL, peer_still_trusted tells it which of its kept-alive
// connections to close, and recheck_raft_connections closes the revoked
// peer's connection that raft holds (its stream), not a member's.
TEST_F(TLS, OnTheHookTheApplicationAndRaftEachCutTheRevokedPeersConnections) {
  auto so = mutual_with_crl("ca-empty.crl");
  auto before = server_ctx(so);
  UserTLSServer us(ioc, handler, before);
  svc.hb_result = HeartbeatResponse{4, 2, {}, 1};
  const std::string at = "https://127.0.0.1:" + std::to_string(us.port());
  auto revoked = client(client_ctx(member("revoked")));
  auto good = client(client_ctx(member()));
  ASSERT_TRUE(heartbeat(*revoked, at));  // sessions[0]
  ASSERT_TRUE(heartbeat(*good, at));     // sessions[1]
  ASSERT_TRUE(run_until(ioc, [&] { return us.sessions.size() == 2 && us.sessions[1]->given_back == 1; }));
  ASSERT_EQ(us.sessions[0]->given_back, 1);

  std::vector<std::shared_ptr<StreamWriter>> writers;
  svc.on_stream = [&](std::shared_ptr<StreamWriter> w) { writers.push_back(std::move(w)); };
  std::string revoked_got, good_got;
  std::optional<std::error_code> revoked_end, good_end;
  auto h1 = revoked->read_from(at, {2, 1, 0, 0, ""}, {[&](std::string_view b, std::function<void()> more) {
                                                        revoked_got.append(b);
                                                        more();
                                                      },
                                                      [&](std::error_code ec) { revoked_end = ec; }});
  ASSERT_TRUE(run_until(ioc, [&] { return writers.size() == 1; }));
  ASSERT_FALSE(write_once(ioc, *writers[0], "up"));  // the stream's head goes with its first bytes
  ASSERT_TRUE(run_until(ioc, [&] { return revoked_got == "up"; }));
  auto h2 = good->read_from(at, {3, 1, 0, 0, ""}, {[&](std::string_view b, std::function<void()> more) {
                                                     good_got.append(b);
                                                     more();
                                                   },
                                                   [&](std::error_code ec) { good_end = ec; }});
  ASSERT_TRUE(run_until(ioc, [&] { return writers.size() == 2; }));
  ASSERT_FALSE(write_once(ioc, *writers[1], "up"));
  ASSERT_TRUE(run_until(ioc, [&] { return good_got == "up"; }));

  so.crl_file = pem("ca.crl");
  auto now = server_ctx(so);
  // The application's side: the connections given back to it.
  EXPECT_FALSE(peer_still_trusted(*us.sessions[0]->stream, *now));
  EXPECT_TRUE(peer_still_trusted(*us.sessions[0]->stream, *before));
  EXPECT_TRUE(peer_still_trusted(*us.sessions[1]->stream, *now));
  // Raft's side: the streams.
  EXPECT_FALSE(revoked_end.has_value());
  recheck_raft_connections(handler, now);
  ASSERT_TRUE(run_until(ioc, [&] { return revoked_end.has_value(); }));
  EXPECT_EQ(*revoked_end, errc::transport_error);
  ASSERT_FALSE(write_once(ioc, *writers[1], "still"));
  ASSERT_TRUE(run_until(ioc, [&] { return good_got == "upstill"; }));
  EXPECT_FALSE(good_end.has_value());
  h2->cancel();
}

}  // namespace
}  // namespace raft::test
