// Opt-in: serve /raft/* from your own Boost.Beast server over TLS.
//
// The TLS twin of raft/http_beast.hpp (read that first): your server accepts
// the connection, completes the TLS handshake with your own
// boost::asio::ssl::context, reads a request, and hands a "/raft/..." one
// here with the ssl_stream. Raft answers on it and gives it back when the
// connection may carry another request, exactly as the plain hook does.
// This header pulls in Asio's ssl layer (OpenSSL's headers).
//
// Who may talk to raft is then your context's business: for mutual TLS, ask
// for and verify client certificates in it (what TLSOptions::
// require_client_certificate does for raft::Server).
#pragma once

#include "raft/http_beast.hpp"

#include <boost/beast/ssl/ssl_stream.hpp>

namespace raft {

using TLSBeastStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

// As serve_raft_request on a tcp_stream (raft/http_beast.hpp), on a TLS
// connection whose handshake is done. ServerOptions::tls is not used: the
// connection's context is yours.
// The OpenSSL context a raft::TLSContext loaded and checked, for your own
// server's ssl_streams (one set of PEM files and one set of checks for the
// port that serves both your API and /raft/*).
boost::asio::ssl::context& native_context(TLSContext& tls) noexcept;

void serve_raft_request(Handler& handler, TLSBeastStream stream,
                        boost::beast::http::request<boost::beast::http::string_body> req,
                        std::function<void(TLSBeastStream)> give_back, const ServerOptions& opts = {});

// Revocation while running (a new CRL, or a CA no longer trusted): after
// your port moves to a new context, close what `now` would refuse.
//
// Whether the peer of `stream` (its handshake done) would pass `now`'s
// checks: its certificate chain against `now`'s CAs and CRLs
// (TLSOptions::crl_file), and whether `now` requires a certificate at all.
// Call on the stream's strand, e.g. before serving each request on a
// connection made under an older context. (raft::Server and HTTPTransport
// do this for their own connections in set_tls.)
bool peer_still_trusted(TLSBeastStream& stream, TLSContext& now);
// The connections raft holds at the moment through serve_raft_request (a
// stream to a follower, mostly; they are not yours to reach until given
// back) are closed if their peer is one `now` would refuse. Any thread.
void recheck_raft_connections(Handler& handler, std::shared_ptr<TLSContext> now);

}  // namespace raft
