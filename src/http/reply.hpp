// Private (not installed): the socket-free core of raft::HTTPTransport's
// reply handling, so that tests and fuzz targets can decode a peer's replies
// without a connection (as handler.hpp does for the server side).
//
// A peer, a proxy in between, or some other server at a peer's URL can send
// anything: every function here takes a parsed Beast response, trusts none
// of it, and returns one outcome. The status mapping is DESIGN 4's:
// X-Raft-Error: <errc message> maps back to that errc (unknown text:
// transport_error); without it any status but 200 is transport_error.
#pragma once

#include "raft/error.hpp"
#include "raft/http.hpp"
#include "raft/transport.hpp"

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace raft::http_detail {

using ClientResponse = boost::beast::http::response<boost::beast::http::string_body>;
using ReplyParser = boost::beast::http::response_parser<boost::beast::http::string_body>;
using StreamReplyParser = boost::beast::http::response_parser<boost::beast::http::buffer_body>;

// A peer URL as the transport uses it: absolute, http or https, with a
// host. Anything else is errc::invalid_argument.
struct Target {
  std::string host;  // IPv6 without brackets
  std::string port;
  std::string base;  // path prefix without trailing '/'
  std::string key;   // pool key: scheme|host|port
  bool tls = false;  // https
  // The Host header's value (the port only when not the scheme's default).
  std::string host_header() const;
};
result<Target> parse_target(std::string_view url);

// A failed read/write/connect as an errc: canceled, timeout, or (any other
// failure, including every parse error and limit) transport_error.
std::error_code map_net_error(const boost::beast::error_code& ec, bool canceled = false);

// The transport's limits on a short reply (header and body) and on the head
// of a stream (its body has no limit: the stream parser bounds each frame).
void set_reply_limits(ReplyParser& p, const HTTPTransportOptions& o);
void set_stream_limits(StreamReplyParser& p, const HTTPTransportOptions& o);
// Bytes read from the socket per step of a stream.
std::size_t stream_buffer_bytes(const HTTPTransportOptions& o);

// A 1xx other than 101: RFC 9110 15.2 says a client must skip it (even
// unasked) and read on for the final response.
bool is_interim(unsigned status);

// May the connection go back to the pool after this reply? Only when both
// sides keep it alive and nothing is left unread: without pipelining, any
// byte after the reply is unsolicited and would be taken as the answer to
// the next request sent on the connection.
bool reusable_after(const ClientResponse& res, std::size_t unread_bytes);

// A response in a protocol version this build does not speak is
// errc::unsupported_protocol, whatever else it says (X-Raft-Protocol that is
// not a number: transport_error); every decode below checks this first.
std::error_code protocol_error_of(const boost::beast::http::fields& head);

// The reply's X-Raft-Error as an error, or transport_error when there is
// none but the status is not 200; empty for a plain 200.
std::error_code reply_error(const ClientResponse& res);

// join/leave: the leader to retry at, from X-Raft-Leader-URL on a 421 or
// 307, only when it is a URL the transport can use (parse_target accepts
// it); otherwise nullopt and the reply is decoded as it is.
std::optional<std::string> redirect_target(const ClientResponse& res);

// Each call's reply as the call's result. A 200 whose required headers or
// body do not parse is transport_error, never a success with made-up values.
result<JoinResponse> decode_join(const ClientResponse& res);
result<void> decode_empty(const ClientResponse& res);  // leave, ack
result<HeartbeatResponse> decode_heartbeat(const ClientResponse& res);
// POST /raft/readIndex: the index in X-Raft-Index (required on success).
result<std::uint64_t> decode_read_index(const ClientResponse& res);
result<VoteResponse> decode_vote(const ClientResponse& res);

// A stream's response head: empty when the body is the stream (200), else
// the error the follower ends with. A 1xx head is an error here, not
// skipped: a stream's connection is never reused, so nothing is misread.
// When `head` refuses a request sent in version `sent` as
// errc::unsupported_protocol and names an older version this build also
// speaks: that version, to repeat the request in (HTTPTransport).
std::optional<std::uint32_t> fallback_version(const boost::beast::http::fields& head, std::uint32_t sent);

std::error_code stream_head_error(const StreamReplyParser::value_type& head);

}  // namespace raft::http_detail
