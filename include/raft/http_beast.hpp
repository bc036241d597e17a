// Opt-in: serve /raft/* from your own Boost.Beast server, on your port.
//
// This header includes Beast (the rest of raft's public headers do not).
// Your server reads a request as usual; when its target starts with "/raft/"
// it hands the request and the connection to raft::serve_raft_request. Raft
// answers on the connection (a long chunked response for /raft/stream) and,
// when the connection may carry another request, hands the stream back so
// your read loop continues.
//
//   std::optional<beast::tcp_stream> stream_;  // tcp_stream is not move-assignable
//
//   void session::on_read(beast::error_code ec, std::size_t) {
//     if (ec) return fail(ec);
//     if (raft::is_raft_target(req_.target())) {
//       raft::serve_raft_request(handler_, std::move(*stream_), std::move(req_),
//           [self = shared_from_this()](beast::tcp_stream s) {
//             self->stream_.emplace(std::move(s));  // back to us: read on
//             self->do_read();
//           });
//       return;  // until given back, the connection belongs to raft
//     }
//     ... your own routes ...
//   }
//
// Bytes you already buffered beyond the request stay in your buffer: a client
// that pipelines a request after a /raft/* request keeps working because you
// keep the buffer and read on after give_back. (The stream endpoint never
// gives the connection back; pipelining after it is meaningless.)
//
// Over TLS: raft/http_beast_tls.hpp has the same call for a
// beast::ssl_stream<beast::tcp_stream>.
#pragma once

#include "raft/http.hpp"

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <functional>
#include <string_view>

namespace raft {

// True for targets raft serves ("/raft/..." with or without a query).
inline bool is_raft_target(std::string_view target) noexcept {
  return target.substr(0, 6) == "/raft/";
}

// Serves one request that your server read from `stream`. Writes the answer
// on `stream` (write timeout: opts.write_timeout_ms). Afterwards:
// * the connection can carry another request -> `give_back(stream)` is called
//   once, on the stream's executor;
// * otherwise (HTTP/1.0 or Connection: close, a write error or timeout, or the
//   stream endpoint, which keeps the connection until the stream ends) raft
//   closes the connection and never calls `give_back`.
// `handler` (and its Service) must outlive the connection.
void serve_raft_request(Handler& handler, boost::beast::tcp_stream stream,
                        boost::beast::http::request<boost::beast::http::string_body> req,
                        std::function<void(boost::beast::tcp_stream)> give_back,
                        const ServerOptions& opts = {});

}  // namespace raft
