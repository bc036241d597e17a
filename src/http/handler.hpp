// Private (not installed): the socket-free core of raft::Handler, so that
// tests and fuzz targets can drive routing, query parsing and the cluster-id
// check without a connection.
#pragma once

#include "raft/http.hpp"
#include "raft/transport.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <functional>

namespace raft::http_detail {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;

// One request's answer: a response, or (stream) the go-ahead to start
// /raft/stream with the parsed StreamRequest.
struct Reply {
  Response res;
  bool stream = false;
  StreamRequest sreq;
};
using ReplyFn = std::function<void(Reply)>;

// What a Server connection and serve_raft_request do with each request:
// route it, check its parameters and cluster id, call the Service. `cb`
// runs exactly once, on any thread (synchronously if the Service answers
// synchronously).
void handle_request(Handler& handler, const Request& req, ReplyFn cb);

}  // namespace raft::http_detail
