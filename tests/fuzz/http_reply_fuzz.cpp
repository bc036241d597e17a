// Fuzz target: the client side of the HTTP transport, how HTTPTransport
// decodes what a peer sends back, without a socket. A misbehaving peer, a
// proxy, or some other server at a peer's URL can send anything.
//
// The input's payload is the bytes the peer sends on the connection. They are
// read the way HTTPTransport reads them, with Beast's synchronous twins of
// the calls it makes (http::read for a short reply, http::read_header then
// http::read_some into a fixed buffer_body buffer for a stream) from a stream
// that hands them out in pieces of seeded sizes, with the transport's parser
// limits (http_detail::set_reply_limits / set_stream_limits). The parsed
// reply then goes through the transport's own decoding (http_detail:
// redirect_target, decode_join/_empty/_heartbeat/_vote, reusable_after,
// stream_head_error), and the bytes of a stream to a detail::StreamParser
// as the Log feeds them.
//
// Input: byte 0 picks the call (join, leave, heartbeat, vote, ack, stream),
// byte 1 the options (bit 0: small limits, header 256 and body 512 bytes;
// bit 1: after its bytes the peer stays silent until the deadline instead
// of closing), byte 2 seeds the read sizes; the rest is the peer's bytes.
//
// Invariants beyond "no crash":
// * one outcome per reply: an error, a redirect (join/leave) or a value, and
//   the same outcome whatever the read sizes;
// * only raft errc values come out; without a complete reply only
//   transport_error (or timeout when the peer fell silent); from a reply,
//   first the protocol version (an X-Raft-Protocol other than 1 or 2:
//   unsupported_protocol, or transport_error when it is not one decimal, and
//   nothing else of the reply is used), then DESIGN 4's mapping:
//   X-Raft-Error's errc (unknown text: transport_error), else
//   transport_error for any status but 200;
// * a success needs a 200 whose required headers are plain decimals (ids
//   non-zero) and whose body parses: no value is made up;
// * a redirect only on 421/307, to X-Raft-Leader-URL exactly, and only when
//   that is an absolute http URL with a host;
// * limits: a successful reply's body is within the body limit and its
//   header within twice the header limit (Beast counts the status line and
//   the fields separately), and a Content-Length over the body limit fails
//   from the header alone;
// * a connection is reusable only with nothing left unread after a final,
//   keep-alive reply;
// * round trip: a decoded join/heartbeat/vote value, or a decoded error,
//   answered by a Service through the server's Handler and written as a
//   Server writes it, decodes to the same outcome;
// * a stream: one end, no data after it, no data on a non-200 head; the
//   bytes delivered are the body Beast parses from the whole input at once
//   when the stream ends cleanly; the StreamParser fed them in the
//   transport's pieces agrees with one feed; the transport never spins
//   (each step reads a byte or ends).
#include "fuzz_util.hpp"
#include "http/common.hpp"
#include "http/handler.hpp"
#include "http/reply.hpp"
#include "raft/detail/stream.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url.hpp>

#include <optional>
#include <sstream>
#include <variant>

namespace raft {
bool operator==(const HeartbeatResponse& a, const HeartbeatResponse& b) {
  return a.index == b.index && a.term == b.term && a.error == b.error;
}
bool operator==(const VoteResponse& a, const VoteResponse& b) { return a.term == b.term && a.error == b.error; }
bool operator==(const JoinResponse& a, const JoinResponse& b) {
  return a.id == b.id && a.leader_id == b.leader_id && a.config == b.config;
}
}  // namespace raft

namespace {

using namespace raft;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace hd = raft::http_detail;

enum class Kind { join, leave, heartbeat, vote, ack, stream, read_index };

// The peer's side of the connection: its bytes in pieces of seeded sizes,
// then EOF (it closed) or a timeout (it went silent; the transport's
// deadline fires). A Beast SyncReadStream.
class PeerStream {
 public:
  PeerStream(std::string_view bytes, std::uint64_t seed, bool silent)
      : bytes_(bytes), rng_(seed), silent_(silent) {}
  template <class Buffers>
  std::size_t read_some(const Buffers& b, beast::error_code& ec) {
    ec = {};
    if (at_ == bytes_.size()) {
      ec = silent_ ? beast::error_code(beast::error::timeout) : beast::error_code(net::error::eof);
      return 0;
    }
    std::size_t piece = rng_.below(4) == 0 ? bytes_.size() : 1 + rng_.below(64);
    const std::size_t n = std::min({net::buffer_size(b), bytes_.size() - at_, piece});
    net::buffer_copy(b, net::buffer(bytes_.data() + at_, n));
    at_ += n;
    return n;
  }
  template <class Buffers>
  std::size_t read_some(const Buffers& b) {
    beast::error_code ec;
    const std::size_t n = read_some(b, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

 private:
  std::string_view bytes_;
  fuzz::Rng rng_;
  bool silent_;
  std::size_t at_ = 0;
};

bool documented(const std::error_code& ec) {
  errc e{};
  return ec && &ec.category() == &error_category() && errc_from_message(ec.message(), e) &&
         static_cast<int>(e) == ec.value();
}

// A plain decimal header (digits only, no overflow), read independently of
// the transport's parse_u64.
std::optional<std::uint64_t> decimal(const hd::ClientResponse& res, std::string_view name) {
  auto f = res.find(name);
  if (f == res.end() || f->value().empty() || f->value().size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : f->value()) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

// The protocol version, restated (raft/http.hpp): a reply that does not
// say it is in version 1 or 2 (no header says 1) is refused whole.
std::error_code version_error(const hd::ClientResponse& res) {
  static_assert(kMinProtocolVersion == 1 && kProtocolVersion == 2);
  if (res.count(hd::kHeaderProtocol) == 0) return {};
  const auto v = decimal(res, hd::kHeaderProtocol);
  if (!v || res.count(hd::kHeaderProtocol) > 1) return make_error_code(errc::transport_error);
  return *v == 1 || *v == 2 ? std::error_code{} : make_error_code(errc::unsupported_protocol);
}

// DESIGN 4's mapping, restated: X-Raft-Error's errc (unknown text:
// transport_error); else transport_error for any status but 200.
std::error_code expected_error(const hd::ClientResponse& res) {
  if (auto e = version_error(res)) return e;
  if (auto f = res.find(hd::kHeaderError); f != res.end()) {
    errc e{};
    return make_error_code(errc_from_message(f->value(), e) ? e : errc::transport_error);
  }
  return res.result_int() == 200 ? std::error_code{} : make_error_code(errc::transport_error);
}

// Beast's header limit is not exact: arriving in one piece, a header over it
// is refused; in pieces, its status line and fields are each held to it. A
// header in between may go either way, so outcomes may differ with the read
// sizes (a bound of twice the limit holds whatever they are).
bool header_near_limit(std::string_view bytes, const HTTPTransportOptions& o) {
  const std::size_t end = bytes.find("\r\n\r\n");
  return end == std::string_view::npos ? bytes.size() > o.response_header_limit_bytes
                                       : end + 4 > o.response_header_limit_bytes;
}

// --------------------------------------------------------------- short replies

struct Exchange {
  std::error_code error;                 // no complete reply
  std::optional<hd::ClientResponse> res;  // the final reply
  bool reusable = false;
};

// Call::do_read/on_read, synchronously, on a fresh connection (so a failed
// read is never retried).
Exchange exchange(std::string_view bytes, const HTTPTransportOptions& o, std::uint64_t seed, bool silent) {
  PeerStream s(bytes, seed, silent);
  beast::flat_buffer buf;
  std::size_t start = 0;  // where the current message starts in `bytes`
  for (;;) {
    hd::ReplyParser p;
    hd::set_reply_limits(p, o);
    beast::error_code ec;
    const std::size_t n = http::read(s, buf, p, ec);
    if (ec) {
      if (p.is_header_done() && p.content_length() && *p.content_length() > o.response_body_limit_bytes)
        FUZZ_CHECK(ec == http::error::body_limit, "Content-Length %llu over the limit read on: %s",
                   static_cast<unsigned long long>(*p.content_length()), ec.message().c_str());
      const std::error_code e = hd::map_net_error(ec);
      FUZZ_CHECK(e == errc::transport_error || (silent && e == errc::timeout), "read error %s -> %s",
                 ec.message().c_str(), e.message().c_str());
      return {e, std::nullopt, false};
    }
    // Beast applies header_limit to the status line and to the fields each
    // (basic_parser.ipp never lowers it after the status line), so a header
    // is bounded by twice the limit, not by the limit.
    const std::size_t head_end = bytes.find("\r\n\r\n", start);
    FUZZ_CHECK(head_end != std::string_view::npos && head_end + 4 - start <= 2 * o.response_header_limit_bytes,
               "header of %zu bytes accepted (limit %zu)", head_end + 4 - start, o.response_header_limit_bytes);
    start += n;
    if (hd::is_interim(p.get().result_int())) continue;
    hd::ClientResponse res = p.release();
    FUZZ_CHECK(res.body().size() <= o.response_body_limit_bytes, "body of %zu bytes", res.body().size());
    const bool reusable = hd::reusable_after(res, buf.size());
    if (reusable)
      FUZZ_CHECK(buf.size() == 0 && res.result_int() >= 200 && res.keep_alive() && !res.need_eof(),
                 "reusable with %zu bytes unread, status %u", buf.size(), res.result_int());
    return {{}, std::move(res), reusable};
  }
}

struct Redirect {
  std::string url;
  bool operator==(const Redirect&) const = default;
};
// monostate: void; std::uint64_t: a read index
using Value = std::variant<std::monostate, JoinResponse, HeartbeatResponse, VoteResponse, std::uint64_t>;
// One outcome: an error, a redirect, or a value.
using Outcome = std::variant<std::error_code, Redirect, Value>;

template <class T>
Outcome from(result<T> r) {
  if (!r) return r.error();
  if constexpr (std::is_void_v<T>) return Value{};
  else return Value{std::move(*r)};
}

// The calls whose transport follows a leader hint (HTTPTransport::redirecting).
bool redirects(Kind k) { return k == Kind::join || k == Kind::leave || k == Kind::read_index; }

Outcome decode(Kind k, const hd::ClientResponse& res) {
  if (redirects(k))
    if (auto url = hd::redirect_target(res)) return Redirect{*url};
  switch (k) {
    case Kind::join: return from(hd::decode_join(res));
    case Kind::leave:
    case Kind::ack: return from(hd::decode_empty(res));
    case Kind::heartbeat: return from(hd::decode_heartbeat(res));
    case Kind::vote: return from(hd::decode_vote(res));
    case Kind::read_index: return from(hd::decode_read_index(res));
    case Kind::stream: break;
  }
  std::abort();
}

bool followable(std::string_view url) {
  if (!hd::has_authority_form(url)) return false;  // Boost 1.81 asserts on some others
  auto u = boost::urls::parse_absolute_uri(url);
  return u && (u->scheme_id() == boost::urls::scheme::http || u->scheme_id() == boost::urls::scheme::https) &&
         u->has_authority() && !u->host().empty();
}

void check_outcome(Kind k, const hd::ClientResponse& res, const Outcome& out) {
  const unsigned st = res.result_int();
  const std::error_code want = expected_error(res);
  if (auto v = version_error(res)) {  // nothing else of the reply counts
    const auto* e = std::get_if<std::error_code>(&out);
    FUZZ_CHECK(e && *e == v, "a reply in another protocol version gave %s", e ? e->message().c_str() : "no error");
    return;
  }
  if (auto* r = std::get_if<Redirect>(&out)) {
    FUZZ_CHECK(redirects(k), "redirect on another call");
    FUZZ_CHECK(st == 421 || st == 307, "redirect on status %u", st);
    FUZZ_CHECK(res[hd::kHeaderLeaderURL] == r->url, "redirect to %s, not the header's URL", r->url.c_str());
    FUZZ_CHECK(followable(r->url), "redirect to %s", r->url.c_str());
    return;
  }
  if (redirects(k))
    FUZZ_CHECK(!((st == 421 || st == 307) && followable(res[hd::kHeaderLeaderURL])), "leader hint not followed");
  if (auto* e = std::get_if<std::error_code>(&out)) {
    FUZZ_CHECK(documented(*e), "undocumented error %s", e->message().c_str());
    switch (k) {
      case Kind::leave:
      case Kind::ack: FUZZ_CHECK(*e == want, "%s, not %s", e->message().c_str(), want.message().c_str()); break;
      case Kind::join:
      case Kind::read_index:
        FUZZ_CHECK(*e == want || (!want && *e == errc::transport_error), "join: %s, not %s", e->message().c_str(),
                   want.message().c_str());
        break;
      case Kind::heartbeat:
      case Kind::vote: {
        // A reply carrying the answer's headers is an answer or malformed;
        // only one without them is an error reply to map.
        const bool answer_headers =
            res.count(hd::kHeaderTerm) > 0 || (k == Kind::heartbeat && res.count(hd::kHeaderIndex) > 0);
        if (st == 200 || answer_headers)
          FUZZ_CHECK(*e == errc::transport_error, "malformed answer gave %s", e->message().c_str());
        else
          FUZZ_CHECK(*e == want, "%s, not %s", e->message().c_str(), want.message().c_str());
        break;
      }
      case Kind::stream: break;
    }
    return;
  }
  // A value: a 200 with everything it needs, well formed.
  const Value& v = std::get<Value>(out);
  FUZZ_CHECK(st == 200, "success on status %u", st);
  switch (k) {
    case Kind::leave:
    case Kind::ack: FUZZ_CHECK(!want, "success despite X-Raft-Error"); break;
    case Kind::join: {
      const auto& j = std::get<JoinResponse>(v);
      FUZZ_CHECK(!want, "join success despite X-Raft-Error");
      FUZZ_CHECK(decimal(res, hd::kHeaderID) == j.id && decimal(res, hd::kHeaderLeaderID) == j.leader_id,
                 "join ids %llu/%llu not the headers'", static_cast<unsigned long long>(j.id),
                 static_cast<unsigned long long>(j.leader_id));
      FUZZ_CHECK(j.id != 0 && j.leader_id != 0, "join with id 0");
      auto cfg = config_from_json(res.body());
      FUZZ_CHECK(cfg && *cfg == j.config, "join config not the body's");
      break;
    }
    case Kind::heartbeat: {
      const auto& h = std::get<HeartbeatResponse>(v);
      FUZZ_CHECK(decimal(res, hd::kHeaderIndex) == h.index && decimal(res, hd::kHeaderTerm) == h.term,
                 "heartbeat values not the headers'");
      // X-Raft-ID is optional; when present it is the responder's id.
      FUZZ_CHECK(res.count(hd::kHeaderID) == 0 ? h.id == 0 : decimal(res, hd::kHeaderID) == h.id,
                 "heartbeat id %llu not the header's", static_cast<unsigned long long>(h.id));
      // So is X-Raft-Vote-Hold-Ms (lease reads): 0 when absent.
      FUZZ_CHECK(res.count(hd::kHeaderVoteHold) == 0 ? h.vote_hold_ms == 0
                                                      : decimal(res, hd::kHeaderVoteHold) == h.vote_hold_ms,
                 "heartbeat vote hold %llu not the header's", static_cast<unsigned long long>(h.vote_hold_ms));
      FUZZ_CHECK(h.error == want && (!h.error || documented(h.error)), "heartbeat refusal %s",
                 h.error.message().c_str());
      break;
    }
    case Kind::read_index:
      FUZZ_CHECK(!want, "read index despite X-Raft-Error");
      FUZZ_CHECK(decimal(res, hd::kHeaderIndex) == std::get<std::uint64_t>(v), "read index not the header's");
      break;
    case Kind::vote: {
      const auto& r = std::get<VoteResponse>(v);
      FUZZ_CHECK(decimal(res, hd::kHeaderTerm) == r.term, "vote term not the header's");
      FUZZ_CHECK(r.error == want && (!r.error || documented(r.error)), "vote refusal %s", r.error.message().c_str());
      break;
    }
    case Kind::stream: break;
  }
}

// The same outcome from both runs (different read sizes).
void check_same(const Outcome& a, const Outcome& b) {
  FUZZ_CHECK(a.index() == b.index(), "outcome depends on the read sizes");
  if (auto* e = std::get_if<std::error_code>(&a)) FUZZ_CHECK(*e == std::get<std::error_code>(b), "error differs");
  if (auto* r = std::get_if<Redirect>(&a)) FUZZ_CHECK(*r == std::get<Redirect>(b), "redirect differs");
  if (auto* v = std::get_if<Value>(&a)) FUZZ_CHECK(*v == std::get<Value>(b), "value differs");
}

// Answers with the value (or error) to re-encode, through the real Handler.
class EchoService final : public Service {
 public:
  explicit EchoService(Outcome o) : o_(std::move(o)) {}
  std::uint64_t cluster_id() const override { return 0; }
  Status status() const override { return {}; }  // no leader URL: a not_leader stays an error
  void handle_join(const JoinRequest&, Handler_fn<JoinResponse> h) override { answer(h); }
  void handle_leave(std::uint64_t, Handler_fn<void> h) override { answer(h); }
  void handle_heartbeat(const HeartbeatRequest&, Handler_fn<HeartbeatResponse> h) override { answer(h); }
  void handle_vote(const VoteRequest&, Handler_fn<VoteResponse> h) override { answer(h); }
  void handle_ack(const AckRequest&, Handler_fn<void> h) override { answer(h); }
  void handle_read_index(const ReadIndexRequest&, Handler_fn<std::uint64_t> h) override { answer(h); }
  void handle_stream(const StreamRequest&, std::shared_ptr<StreamWriter>) override { std::abort(); }

 private:
  template <class T>
  void answer(const Handler_fn<T>& h) {
    if (auto* e = std::get_if<std::error_code>(&o_)) return h(*e);
    if constexpr (std::is_void_v<T>) h(result<void>{});
    else h(std::get<T>(std::get<Value>(o_)));
  }
  Outcome o_;
};

// The outcome re-encoded by the server's Handler and written as a Server
// writes it, then read and decoded again.
void check_round_trip(Kind k, const Outcome& out, std::uint64_t seed) {
  if (std::holds_alternative<Redirect>(out)) return;  // the Handler only redirects to its Service's leader
  static constexpr const char* targets[] = {"/raft/join?url=http://127.0.0.1:9", "/raft/leave?id=2",
                                            "/raft/heartbeat?term=1&commitIndex=0&leaderID=1",
                                            "/raft/vote?term=1&candidateID=1&lastLogIndex=0&lastLogTerm=0",
                                            "/raft/ack?id=2&term=1&index=0", "/raft/stream",
                                            "/raft/readIndex"};
  hd::Request req;
  req.method(http::verb::post);
  req.version(11);
  req.target(targets[static_cast<int>(k)]);
  EchoService svc(out);
  Handler handler(svc);
  std::optional<hd::Reply> reply;
  hd::handle_request(handler, req, [&](hd::Reply r) { reply = std::move(r); });
  FUZZ_CHECK(reply && !reply->stream, "no reply from the Handler");
  hd::finish_response(reply->res, req, false);
  std::ostringstream os;
  os << reply->res;
  const std::string wire = os.str();
  const HTTPTransportOptions defaults;
  Exchange again = exchange(wire, defaults, seed, false);
  FUZZ_CHECK(again.res && again.reusable, "the server's own reply did not parse: %s", wire.c_str());
  const Outcome back = decode(k, *again.res);
  check_same(out, back);
}

// --------------------------------------------------------------- stream

struct StreamRun {
  std::string delivered;
  std::vector<std::size_t> pieces;
  std::error_code end;
  bool rejected = false;  // the StreamParser refused the bytes (the Log cancels)
  std::error_code parse_error;
};

// StreamCall::do_read_header/on_header/do_read_body/on_body, synchronously,
// with the Log's StreamParser as the consumer.
StreamRun stream(std::string_view bytes, const HTTPTransportOptions& o, std::uint64_t seed, bool silent) {
  StreamRun run;
  int ends = 0;
  auto end = [&](std::error_code ec) {
    ++ends;
    run.end = ec;
  };
  PeerStream s(bytes, seed, silent);
  beast::flat_buffer buf;
  hd::StreamReplyParser p;
  hd::set_stream_limits(p, o);
  beast::error_code ec;
  http::read_header(s, buf, p, ec);
  if (ec) {
    end(hd::map_net_error(ec));
  } else if (auto e = hd::stream_head_error(p.get())) {
    const hd::ClientResponse head{p.get().base()};
    FUZZ_CHECK((p.get().result_int() != 200 || version_error(head)) && documented(e), "head %u ended with %s",
               p.get().result_int(), e.message().c_str());
    FUZZ_CHECK(e == expected_error(head), "stream head %u: %s", p.get().result_int(), e.message().c_str());
    end(e);
  } else {
    FUZZ_CHECK(p.get().result_int() == 200, "stream accepted on status %u", p.get().result_int());
    std::vector<char> vbuf(hd::stream_buffer_bytes(o));
    detail::StreamParser parser(1 << 20);
    std::size_t idle_steps = 0;
    for (;;) {
      if (p.is_done()) {
        end({});
        break;
      }
      p.get().body().data = vbuf.data();
      p.get().body().size = vbuf.size();
      p.get().body().more = true;
      http::read_some(s, buf, p, ec);
      if (ec == http::error::need_buffer) ec = {};
      const std::size_t got = vbuf.size() - p.get().body().size;
      if (ec) {
        end(hd::map_net_error(ec));
        break;
      }
      if (got == 0) {
        FUZZ_CHECK(++idle_steps <= bytes.size() + 4, "the stream spins without data");
        continue;
      }
      run.delivered.append(vbuf.data(), got);
      run.pieces.push_back(got);
      auto r = parser.feed(std::string_view(vbuf.data(), got), [](const detail::StreamEvent&) -> result<void> {
        return {};
      });
      if (!r) {  // the Log drops the stream: cancel() ends it with canceled
        run.rejected = true;
        run.parse_error = r.error();
        end(make_error_code(errc::canceled));
        break;
      }
    }
  }
  FUZZ_CHECK(ends == 1, "stream ended %d times", ends);
  if (run.end) FUZZ_CHECK(documented(run.end), "stream end %s", run.end.message().c_str());
  return run;
}

void check_stream(std::string_view bytes, const HTTPTransportOptions& o, std::uint64_t seed, bool silent) {
  const StreamRun a = stream(bytes, o, seed, silent);
  const StreamRun b = stream(bytes, o, seed ^ 0x5bd1e995, silent);
  const bool comparable = !header_near_limit(bytes, o);
  if (comparable) FUZZ_CHECK(a.rejected == b.rejected && a.parse_error == b.parse_error, "stream parser outcome depends on read sizes");
  if (!a.rejected && comparable) {
    FUZZ_CHECK(a.delivered == b.delivered && (a.end == b.end || (silent && a.end && b.end)),
               "stream depends on the read sizes: %zu bytes, %s vs %zu bytes, %s", a.delivered.size(),
               a.end.message().c_str(), b.delivered.size(), b.end.message().c_str());
    // One feed of everything delivered ends as the pieces did.
    detail::StreamParser whole(1 << 20);
    auto r = whole.feed(a.delivered, [](const detail::StreamEvent&) -> result<void> { return {}; });
    FUZZ_CHECK(r.has_value(), "pieces accepted, one feed refused");
  }
  // Beast on the whole input at once, as a plain message, is the oracle for
  // the body bytes.
  hd::ReplyParser whole;
  whole.header_limit(static_cast<std::uint32_t>(o.response_header_limit_bytes));
  // string_body reserves Content-Length up front: no body longer than the
  // input can be complete anyway.
  whole.body_limit(bytes.size());
  whole.eager(true);
  beast::error_code ec;
  std::string_view rest = bytes;
  while (!rest.empty() && !whole.is_done()) {
    const std::size_t n = whole.put(net::buffer(rest.data(), rest.size()), ec);
    if (ec || n == 0) break;
    rest.remove_prefix(n);
  }
  const bool done_without_eof = !ec && whole.is_done();
  if (!comparable) return;
  if (!a.end) {
    FUZZ_CHECK(!a.rejected, "clean end after a rejection");
    if (!whole.is_done() && !ec) whole.put_eof(ec);
    FUZZ_CHECK(!ec && whole.is_done() && whole.get().result_int() == 200, "clean stream end, whole parse %s",
               ec.message().c_str());
    FUZZ_CHECK(whole.get().body() == a.delivered, "delivered %zu bytes, the body has %zu", a.delivered.size(),
               whole.get().body().size());
  } else if (done_without_eof && whole.get().result_int() == 200 && !a.rejected &&
             !version_error(whole.get())) {
    FUZZ_CHECK(false, "a complete stream reply ended with %s", a.end.message().c_str());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const Kind kind = static_cast<Kind>(in.byte() % 7);
  const std::uint8_t flags = in.byte();
  const std::uint64_t seed = in.byte();
  HTTPTransportOptions o;
  if (flags & 1) {
    o.response_header_limit_bytes = 256;
    o.response_body_limit_bytes = 512;
  }
  const bool silent = flags & 2;
  const std::string_view bytes = in.rest();

  if (kind == Kind::stream) {
    check_stream(bytes, o, seed, silent);
    return 0;
  }
  const Exchange a = exchange(bytes, o, seed, silent);
  const Exchange b = exchange(bytes, o, seed ^ 0x5bd1e995, silent);
  // Beast sees some garbage early when it arrives in one piece, and only
  // once the header is complete otherwise: against a peer that then falls
  // silent, that is transport_error now or timeout at the deadline.
  // (Whether bytes after the reply were already read, and so whether the
  // connection is reusable, does depend on how they arrive.)
  if (header_near_limit(bytes, o)) {
    if (a.res.has_value() != b.res.has_value()) return 0;
  }
  FUZZ_CHECK((a.error == b.error || (silent && a.error && b.error)) && a.res.has_value() == b.res.has_value(),
             "reading depends on the read sizes: %s/%d vs %s/%d", a.error.message().c_str(), a.res.has_value(),
             b.error.message().c_str(), b.res.has_value());
  if (!a.res) return 0;
  const Outcome out = decode(kind, *a.res);
  check_outcome(kind, *a.res, out);
  check_same(out, decode(kind, *b.res));
  check_round_trip(kind, out, seed);
  return 0;
}
