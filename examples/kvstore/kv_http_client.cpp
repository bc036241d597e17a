#include "kvstore/kv_http_client.hpp"

#include "raft/http_beast_tls.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>

#include <cerrno>
#include <charconv>
#include <stdexcept>

#include <sys/socket.h>
#include <sys/types.h>

namespace kvstore {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

namespace {

// "1".."65535" only (no sign, no spaces, no wrap-around into a short).
std::optional<unsigned short> parse_port(const std::string& s) {
  unsigned v = 0;
  const auto* end = s.data() + s.size();
  const auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || p != end || v == 0 || v > 65535) return std::nullopt;
  return static_cast<unsigned short>(v);
}

http::verb to_verb(Method m) {
  switch (m) {
    case Method::get: return http::verb::get;
    case Method::put: return http::verb::put;
    case Method::post: return http::verb::post;
    case Method::del: return http::verb::delete_;
  }
  return http::verb::get;
}

}  // namespace

std::optional<Url> parse_url(const std::string& s) {
  const auto sep = s.find("://");
  if (sep == std::string::npos) return std::nullopt;
  const auto scheme = s.substr(0, sep);
  if (scheme != "http" && scheme != "https") return std::nullopt;
  const auto rest = s.substr(sep + 3);
  const auto slash = rest.find('/');
  const auto hostport = rest.substr(0, slash);
  const auto colon = hostport.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  Url u{scheme, hostport.substr(0, colon), hostport.substr(colon + 1),
        slash == std::string::npos ? "/" : rest.substr(slash)};
  if (!parse_port(u.port)) return std::nullopt;
  return u;
}

// Every operation runs on the private io_context, driven by run() until it
// completes or its deadline passes.
struct HttpClient::Impl {
  // Past the deadline, tcp_stream's own timer cancels the operation; this is
  // how long run() waits for that to be delivered before forcing the issue.
  static constexpr auto kSlack = 200ms;

  using TLSStream = beast::ssl_stream<beast::tcp_stream>;

  explicit Impl(std::shared_ptr<raft::TLSContext> t) : tls(std::move(t)) {}

  std::shared_ptr<raft::TLSContext> tls;  // for https:// URLs
  std::optional<net::io_context> ioc{std::in_place};
  // The connection: `plain` or `secure`, never both (declared after ioc:
  // destroyed first).
  std::optional<beast::tcp_stream> plain;
  std::optional<TLSStream> secure;
  std::string scheme, host, port;  // what the connection goes to
  bool stale = false;              // ioc may still hold handlers of an abandoned call

  bool connected() const { return plain || secure; }
  // Deadlines, liveness and closing act on the TCP layer, under TLS too.
  beast::tcp_stream& tcp() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
  // Reads and writes go through TLS when there is TLS.
  template <class F>
  void with_stream(F&& f) {
    if (secure) f(*secure);
    else f(*plain);
  }

  void reset() {
    if (connected()) {
      beast::error_code ignored;
      tcp().socket().close(ignored);
    }
    secure.reset();
    plain.reset();
    scheme.clear();
    host.clear();
    port.clear();
    if (stale) {
      // Never run an abandoned call's handlers later: they refer to that
      // call's (gone) stack frame. Destroying the io_context destroys them
      // without running them.
      ioc.reset();
      ioc.emplace();
      stale = false;
    } else {
      ioc->restart();
    }
  }

  // A kept-alive connection the server has closed (killed, restarted, idle
  // timeout) is readable with EOF: reconnect rather than send into it, which
  // would fail only after the request may have been sent (an ambiguous write
  // for raft-chaos). Unsolicited bytes are not ours either. This is the
  // stricter of the two former copies: available(ec) reports a broken socket
  // as "not alive" where the throwing available() let an exception escape
  // from request().
  //
  // Under TLS a server's close_notify is such bytes too. (TLS 1.3 session
  // tickets arrive after the handshake, but the first response's read
  // consumes them, and alive() is only asked before a second request.)
  bool alive() {
    auto& s = tcp().socket();
    beast::error_code ec;
    if (s.available(ec) > 0 || ec) return false;
    char c;
    const auto n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    return true;
  }

  bool connect(const Url& url, Clock::time_point deadline) {
    reset();
    if (url.tls() && !tls) throw std::invalid_argument("kvstore::HttpClient: " + url.base() + " needs a TLS context");
    beast::error_code ec;
    const auto addr = net::ip::make_address(url.host, ec);
    const auto port_number = parse_port(url.port);
    if (ec || !port_number) return false;
    plain.emplace(*ioc);
    ec = net::error::timed_out;
    plain->expires_at(deadline);
    plain->async_connect(tcp::endpoint(addr, *port_number), [&](beast::error_code e) { ec = e; });
    if (!run(deadline) || ec) {
      reset();
      return false;
    }
    plain->socket().set_option(tcp::no_delay(true), ec);  // best effort
    if (url.tls()) {
      // The handshake is part of connecting: a failure here has sent no
      // byte of the request. The certificate must name the URL's IP.
      secure.emplace(std::move(*plain), raft::native_context(*tls));
      plain.reset();
      secure->set_verify_callback(net::ssl::host_name_verification(url.host));
      ec = net::error::timed_out;
      secure->async_handshake(net::ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
      if (!run(deadline) || ec) {
        reset();
        return false;
      }
    }
    scheme = url.scheme;
    host = url.host;
    port = url.port;
    return true;
  }

  // Runs the io_context until the pending operation is done (true) or
  // deadline + kSlack passes (false; the caller then reset()s).
  //
  // The timeout path closes the socket but keeps the stream object: closing
  // completes every pending operation with operation_aborted, and run_for
  // lets those handlers run while everything they refer to (the stream, the
  // caller's request, response and buffer) still exists. raft-demo's former
  // copy destroyed the stream here first; a handler already queued with
  // success (a write that completed just as time ran out) would then have
  // started the read on a destroyed stream. Should anything still be pending
  // after that, `stale` makes reset() discard the io_context instead of
  // running those handlers during a later call.
  bool run(Clock::time_point deadline) {
    ioc->restart();
    ioc->run_until(deadline + kSlack);
    if (ioc->stopped()) return true;
    if (connected()) {
      beast::error_code ignored;
      tcp().socket().close(ignored);
    }
    ioc->run_for(1s);
    if (!ioc->stopped()) stale = true;
    return false;
  }
};

HttpClient::HttpClient(std::shared_ptr<raft::TLSContext> tls) : impl_(std::make_unique<Impl>(std::move(tls))) {}
HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

std::optional<Response> HttpClient::request(Method method, const Url& url, const std::string& body,
                                            Clock::time_point deadline, bool* sent) {
  if (sent) *sent = false;
  if (!impl_) impl_ = std::make_unique<Impl>(nullptr);  // moved from
  auto& m = *impl_;
  if (!m.connected() || url.scheme != m.scheme || url.host != m.host || url.port != m.port || !m.alive()) {
    if (!m.connect(url, deadline)) return std::nullopt;
  }
  const auto verb = to_verb(method);
  http::request<http::string_body> req{verb, url.target, 11};
  req.set(http::field::host, url.host + ":" + url.port);
  req.keep_alive(true);
  if (method == Method::put || method == Method::post) req.body() = body;
  req.prepare_payload();
  beast::error_code ec = net::error::timed_out;
  http::response<http::string_body> res;
  beast::flat_buffer buf;
  if (sent) *sent = true;
  m.tcp().expires_at(deadline);
  m.with_stream([&](auto& s) {
    http::async_write(s, req, [&](beast::error_code e, std::size_t) {
      ec = e;
      if (!e) http::async_read(s, buf, res, [&](beast::error_code e2, std::size_t) { ec = e2; });
    });
  });
  if (!m.run(deadline) || ec) {
    m.reset();
    return std::nullopt;
  }
  Response r;
  r.status = static_cast<int>(res.result_int());
  r.body = std::move(res.body());
  if (auto it = res.find(http::field::location); it != res.end()) r.location = std::string(it->value());
  if (!res.keep_alive()) m.reset();
  return r;
}

void HttpClient::reset() {
  if (impl_) impl_->reset();
}

std::optional<Status> parse_status(const std::string& json) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(json, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.as_object();
  auto u64 = [&](const char* k) -> std::uint64_t {
    const auto* p = o.if_contains(k);
    if (!p) return 0;
    if (p->is_uint64()) return p->as_uint64();
    if (p->is_int64()) return static_cast<std::uint64_t>(p->as_int64());
    return 0;
  };
  auto str = [&](const char* k) -> std::string {
    const auto* p = o.if_contains(k);
    return p && p->is_string() ? std::string(p->as_string()) : std::string();
  };
  Status s;
  s.id = u64("id");
  s.term = u64("term");
  s.leader_id = u64("leaderID");
  s.commit = u64("commitIndex");
  s.applied = u64("appliedIndex");
  s.last = u64("lastIndex");
  s.state = str("state");
  s.leader_url = str("leaderURL");
  const auto* learner = o.if_contains("learner");
  s.learner = learner && learner->is_bool() && learner->as_bool();
  return s;
}

std::optional<Status> get_status(HttpClient& c, const std::string& node, Clock::duration budget) {
  const auto url = parse_url(node + "/raft/status");
  if (!url) return std::nullopt;
  const auto r = c.request(Method::get, *url, "", Clock::now() + budget);
  if (!r || r->status != 200) return std::nullopt;
  return parse_status(r->body);
}

std::shared_ptr<raft::TLSContext> tls_client_from_dir(const std::string& dir, std::string* why) {
  raft::TLSOptions o;
  o.certificate_chain_file = dir + "/node.pem";
  o.private_key_file = dir + "/node.key";
  o.ca_file = dir + "/ca.pem";
  auto c = raft::TLSContext::client(o, why);
  return c ? *c : nullptr;
}

}  // namespace kvstore
