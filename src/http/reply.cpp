// The socket-free core of HTTPTransport's reply handling (reply.hpp).
#include "http/reply.hpp"

#include "http/common.hpp"

#include <boost/asio/error.hpp>
#include <boost/url.hpp>

#include <algorithm>
#include <cstdint>

namespace raft::http_detail {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

result<Target> parse_target(std::string_view url) {
  if (!has_authority_form(url)) return make_error_code(errc::invalid_argument);
  auto u = boost::urls::parse_absolute_uri(url);
  if (!u || (u->scheme_id() != boost::urls::scheme::http && u->scheme_id() != boost::urls::scheme::https) ||
      !u->has_authority() || u->host().empty())
    return make_error_code(errc::invalid_argument);
  Target t;
  t.tls = u->scheme_id() == boost::urls::scheme::https;
  t.host = u->host_address();  // IPv6 without brackets
  t.port = u->has_port() ? std::string(u->port()) : std::string(t.tls ? "443" : "80");
  t.base = u->path();
  while (!t.base.empty() && t.base.back() == '/') t.base.pop_back();
  t.key = std::string(t.tls ? "https|" : "http|") + t.host + "|" + t.port;
  return t;
}

std::string Target::host_header() const {
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return port == (tls ? "443" : "80") ? h : h + ":" + port;
}

std::error_code map_net_error(const beast::error_code& ec, bool canceled) {
  if (canceled || ec == net::error::operation_aborted) return make_error_code(errc::canceled);
  if (ec == beast::error::timeout) return make_error_code(errc::timeout);
  return make_error_code(errc::transport_error);
}

void set_reply_limits(ReplyParser& p, const HTTPTransportOptions& o) {
  p.header_limit(static_cast<std::uint32_t>(o.response_header_limit_bytes));
  p.body_limit(o.response_body_limit_bytes);
}

void set_stream_limits(StreamReplyParser& p, const HTTPTransportOptions& o) {
  p.header_limit(static_cast<std::uint32_t>(o.response_header_limit_bytes));
  p.body_limit(boost::none);
}

std::size_t stream_buffer_bytes(const HTTPTransportOptions& o) {
  return std::max<std::size_t>(o.stream_read_buffer_bytes, 4096);
}

bool is_interim(unsigned status) { return status >= 100 && status < 200 && status != 101; }

bool reusable_after(const ClientResponse& res, std::size_t unread_bytes) {
  return unread_bytes == 0 && res.result_int() >= 200 && res.keep_alive() && !res.need_eof();
}

std::error_code protocol_error_of(const boost::beast::http::fields& head) {
  const auto v = protocol_version_of(head);
  if (!v) return make_error_code(errc::transport_error);
  if (!protocol_supported(*v)) return make_error_code(errc::unsupported_protocol);
  return {};
}

std::error_code reply_error(const ClientResponse& res) {
  if (auto e = protocol_error_of(res)) return e;
  if (auto f = res.find(kHeaderError); f != res.end()) return error_from_text(f->value());
  if (res.result() != http::status::ok) return make_error_code(errc::transport_error);
  return {};
}

namespace {
std::optional<std::uint64_t> header_u64(const ClientResponse& res, std::string_view name) {
  auto f = res.find(name);
  if (f == res.end()) return std::nullopt;
  return parse_u64(f->value());
}
}  // namespace

std::optional<std::string> redirect_target(const ClientResponse& res) {
  if (protocol_error_of(res)) return std::nullopt;  // not understood: not followed
  if (res.result() != http::status::misdirected_request && res.result() != http::status::temporary_redirect)
    return std::nullopt;
  auto f = res.find(kHeaderLeaderURL);
  // A hint the transport cannot follow (relative, https, no host...) would
  // end the call with invalid_argument, blaming the caller: ignore it.
  if (f == res.end() || !parse_target(f->value())) return std::nullopt;
  return std::string(f->value());
}

result<JoinResponse> decode_join(const ClientResponse& res) {
  if (auto e = reply_error(res)) return e;
  auto id = header_u64(res, kHeaderID);
  auto leader = header_u64(res, kHeaderLeaderID);
  // Ids start at 1 on the wire (the Handler refuses 0 in requests alike); a
  // join "as node 0" would leave the Log believing it joined with no id.
  if (!id || !leader || *id == 0 || *leader == 0) return make_error_code(errc::transport_error);
  auto cfg = config_from_json(res.body());
  if (!cfg) return make_error_code(errc::transport_error);
  return JoinResponse{*id, *leader, std::move(*cfg)};
}

result<void> decode_empty(const ClientResponse& res) {
  if (auto e = reply_error(res)) return e;
  return {};
}

result<HeartbeatResponse> decode_heartbeat(const ClientResponse& res) {
  if (auto e = protocol_error_of(res)) return e;
  auto index = header_u64(res, kHeaderIndex);
  auto term = header_u64(res, kHeaderTerm);
  bool has_index = res.find(kHeaderIndex) != res.end();
  bool has_term = res.find(kHeaderTerm) != res.end();
  // X-Raft-ID is optional (a node without an id sends none), but if present
  // it must be a number.
  const bool has_id = res.find(kHeaderID) != res.end();
  auto id = header_u64(res, kHeaderID);
  // So is X-Raft-Vote-Hold-Ms (a build without lease reads sends none).
  const bool has_hold = res.find(kHeaderVoteHold) != res.end();
  auto hold = header_u64(res, kHeaderVoteHold);
  if (res.result() == http::status::ok && index && term && (!has_id || id) && (!has_hold || hold)) {
    HeartbeatResponse r;
    r.index = *index;
    r.term = *term;
    if (has_id) r.id = *id;
    if (has_hold) r.vote_hold_ms = *hold;
    r.protocol = static_cast<std::uint32_t>(protocol_version_of(res).value_or(1));  // supported: checked above
    if (auto f = res.find(kHeaderError); f != res.end()) r.error = error_from_text(f->value());
    return r;
  }
  if (res.result() == http::status::ok || has_index || has_term) return make_error_code(errc::transport_error);
  return reply_error(res);
}

result<std::uint64_t> decode_read_index(const ClientResponse& res) {
  if (auto e = reply_error(res)) return e;
  auto index = header_u64(res, kHeaderIndex);
  if (!index) return make_error_code(errc::transport_error);
  return *index;
}

result<VoteResponse> decode_vote(const ClientResponse& res) {
  if (auto e = protocol_error_of(res)) return e;
  auto term = header_u64(res, kHeaderTerm);
  if (res.result() == http::status::ok && term) {
    VoteResponse r;
    r.term = *term;
    if (auto f = res.find(kHeaderError); f != res.end()) r.error = error_from_text(f->value());
    return r;
  }
  if (res.result() == http::status::ok || res.find(kHeaderTerm) != res.end())
    return make_error_code(errc::transport_error);
  return reply_error(res);
}

std::optional<std::uint32_t> fallback_version(const boost::beast::http::fields& head, std::uint32_t sent) {
  const auto v = protocol_version_of(head);
  if (!v || !protocol_supported(*v) || *v >= sent) return std::nullopt;
  const auto f = head.find(kHeaderError);
  if (f == head.end() || error_from_text(f->value()) != errc::unsupported_protocol) return std::nullopt;
  return static_cast<std::uint32_t>(*v);
}

std::error_code stream_head_error(const StreamReplyParser::value_type& head) {
  if (auto e = protocol_error_of(head)) return e;
  if (head.result() == http::status::ok) return {};
  if (auto f = head.find(kHeaderError); f != head.end()) return error_from_text(f->value());
  return make_error_code(errc::transport_error);
}

}  // namespace raft::http_detail
