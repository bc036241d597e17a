// Private (not installed): the socket-free core of raft::Handler, so that
// tests and fuzz targets can drive routing, query parsing and the cluster-id
// check without a connection.
#pragma once

#include "raft/http.hpp"
#include "raft/transport.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <functional>
#include <string>
#include <string_view>

namespace raft::http_detail {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;

// One request's answer: a response, or (stream) the go-ahead to start
// /raft/stream with the parsed StreamRequest.
struct Reply {
  Response res;
  bool stream = false;
  StreamRequest sreq;
  bool ack_channel = false;  // the stream request asked for the ack channel (kHeaderAckChannel)
};
using ReplyFn = std::function<void(Reply)>;

// What a Server connection and serve_raft_request do with each request:
// route it, check its parameters and cluster id, call the Service. `cb`
// runs exactly once, on any thread (synchronously if the Service answers
// synchronously).
void handle_request(Handler& handler, const Request& req, ReplyFn cb);

// What a connection does to a Reply's response before writing it: the
// request's HTTP version, keep-alive unless `close_after` or the request
// said close, Content-Length (and no body for HEAD). Tests and the fuzz
// corpus use it to produce the exact bytes a Server sends.
void finish_response(Response& res, const Request& req, bool close_after);

// /raft/stream on the wire: this head, then each StreamWriter::write() as
// one chunk (chunk_header(n), the bytes, CRLF), then kLastChunk when the
// stream ends cleanly.
inline constexpr std::string_view kStreamHead =
    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n"
    "Cache-Control: no-store\r\n\r\n";
inline constexpr std::string_view kChunkEnd = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";
std::string chunk_header(std::size_t n);

}  // namespace raft::http_detail
