// Private: TLS contexts and the connection type the HTTP client and server
// share, plain TCP or TLS over it (not installed: it pulls in OpenSSL).
#pragma once

#include "raft/http.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <utility>
#include <variant>

namespace raft {

struct TLSContext::Impl {
  explicit Impl(bool server)
      : ctx(server ? boost::asio::ssl::context::tls_server : boost::asio::ssl::context::tls_client), is_server(server) {}
  boost::asio::ssl::context ctx;
  bool is_server;
  bool verify_peer_name = true;
};

namespace http_detail {

// Whether the peer of an established TLS connection would pass `now`'s
// verification: its certificate chain against `now`'s CAs and CRLs, and
// whether `now` requires a certificate at all. False for a handshake not yet
// finished (it runs under the context it started with). For set_tls, which
// closes the open connections this says no to: a CRL loaded there revokes
// the peers already connected too, not only the next ones. The peer's name
// is not checked again (the URL it was checked against has not changed).
bool peer_still_trusted(SSL* ssl, TLSContext& now);

using TLSStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

// One connection, plain or TLS. Reads and writes go through visit() (the
// stream to hand Beast) or visit_raw() (the plain socket itself, which skips
// tcp_stream's timer bookkeeping on the streaming hot path, or the TLS
// stream); deadlines and closing always act on the TCP layer.
class AnyStream {
 public:
  explicit AnyStream(boost::beast::tcp_stream s) : v_(std::in_place_index<0>, std::move(s)) {}
  AnyStream(boost::beast::tcp_stream s, TLSContext& tls) : v_(std::in_place_index<1>, std::move(s), tls.impl().ctx) {}
  // A TLS connection that is already set up (the hook).
  explicit AnyStream(TLSStream s) : v_(std::in_place_index<1>, std::move(s)) {}

  bool is_tls() const noexcept { return v_.index() == 1; }
  TLSStream& tls() { return std::get<1>(v_); }
  boost::beast::tcp_stream& tcp() {
    if (auto* p = std::get_if<0>(&v_)) return *p;
    return boost::beast::get_lowest_layer(std::get<1>(v_));
  }
  // The stream itself, for giving a hooked connection back.
  boost::beast::tcp_stream release_plain() { return std::move(std::get<0>(v_)); }
  TLSStream release_tls() { return std::move(std::get<1>(v_)); }
  auto get_executor() { return tcp().get_executor(); }

  template <class F>
  decltype(auto) visit(F&& f) {
    if (auto* p = std::get_if<0>(&v_)) return f(*p);
    return f(std::get<1>(v_));
  }
  template <class F>
  decltype(auto) visit_raw(F&& f) {
    if (auto* p = std::get_if<0>(&v_)) return f(p->socket());
    return f(std::get<1>(v_));
  }

  void close() {
    boost::beast::error_code ignored;
    tcp().socket().close(ignored);
  }

 private:
  std::variant<boost::beast::tcp_stream, TLSStream> v_;
};

}  // namespace http_detail
}  // namespace raft
