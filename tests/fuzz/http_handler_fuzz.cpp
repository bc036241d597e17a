// Fuzz target: the server's request path without a socket. The input is
// parsed as raw HTTP by Beast's request_parser with the server's limits
// (ServerOptions defaults), as a Server connection would, and the request is
// handed to the Handler's routing/query/cluster-id code
// (http_detail::handle_request, what every connection calls), backed by a
// Service that answers at once.
//
// Input: byte 0 picks the Service's answer (success or an errc), byte 1 its
// cluster id (0 or 7: bit 0) and whether the Handler has an auth token
// ("tok": bit 7); the rest is the request bytes.
//
// Invariants beyond "no crash":
// * exactly one reply, synchronously; its status is one the Handler documents
//   (200, 400, 403, 404, 405, 421, 500, 503, 505, or the stream go-ahead;
//   401 only with a token); every error reply carries X-Raft-Error and
//   repeats it as the body;
// * with a token, nothing but a ping is served unless the request has
//   exactly one `Authorization: Bearer tok`;
// * a Service call only receives valid parameters (non-zero terms and ids,
//   an absolute http(s) join URL), and a request naming another cluster
//   or in another protocol version (X-Raft-Protocol other than one 1 or 2,
//   or malformed) never reaches the Service;
// * every reply is in the request's protocol version when that is one this
//   build speaks (no header: 1), else in this build's newest;
// * a Service error maps to its status and message (X-Raft-Leader-URL on
//   not_leader); protocol refusals are 200 with X-Raft-Error;
// * round trip: the parameters the Service received, written back into a
//   canonical target, are parsed to the same parameters again.
#include "fuzz_util.hpp"
#include "http/common.hpp"
#include "http/handler.hpp"

#include <boost/beast/http/parser.hpp>
#include <boost/url.hpp>

#include <optional>
#include <variant>

namespace raft {
// Field-wise equality for the round trip (the public structs have none).
bool operator==(const HeartbeatRequest& a, const HeartbeatRequest& b) {
  return a.term == b.term && a.commit_index == b.commit_index && a.leader_id == b.leader_id &&
         a.leader_url == b.leader_url && a.timeout_now == b.timeout_now;
}
bool operator==(const VoteRequest& a, const VoteRequest& b) {
  return a.term == b.term && a.candidate_id == b.candidate_id && a.last_log_index == b.last_log_index &&
         a.last_log_term == b.last_log_term && a.pre_vote == b.pre_vote && a.transfer == b.transfer;
}
bool operator==(const AckRequest& a, const AckRequest& b) {
  return a.id == b.id && a.term == b.term && a.index == b.index && a.url == b.url;
}
bool operator==(const ReadIndexRequest& a, const ReadIndexRequest& b) { return a.timeout_ms == b.timeout_ms; }
bool operator==(const StreamRequest& a, const StreamRequest& b) {
  return a.id == b.id && a.term == b.term && a.index == b.index && a.log_term == b.log_term && a.url == b.url;
}
}  // namespace raft

namespace {

using namespace raft;
namespace http = boost::beast::http;
using http_detail::Reply;
using http_detail::Request;

struct Join {
  std::string url;
  std::uint64_t previous_id;  // 0: absent
  std::uint64_t join_token;   // 0: absent
  bool operator==(const Join&) const = default;
};
struct Leave {
  std::uint64_t id;
  bool operator==(const Leave&) const = default;
};
using Call = std::variant<std::monostate, Join, Leave, HeartbeatRequest, VoteRequest, AckRequest, ReadIndexRequest,
                          StreamRequest>;

constexpr errc kAnswers[8] = {errc{},           errc::not_leader, errc::cluster_id_mismatch, errc::no_leader,
                              errc::stale_term, errc::io_error,   errc::already_voted,       errc{}};

class FakeService final : public Service {
 public:
  FakeService(errc answer, std::uint64_t cid) : answer_(answer), cid_(cid) {}
  Call call;

  std::uint64_t cluster_id() const override { return cid_; }
  Status status() const override {
    Status s;
    s.id = 1;
    s.state = "follower";
    s.leader_url = "http://127.0.0.1:9";
    (void)s.config.add_node(1, "http://127.0.0.1:8");
    return s;
  }
  void handle_join(const JoinRequest& req, Handler_fn<JoinResponse> h) override {
    record(Join{req.url, req.previous_id, req.join_token});
    if (fails()) return h(error());
    JoinResponse r;
    r.id = 2;
    r.leader_id = 1;
    h(r);
  }
  void handle_leave(std::uint64_t id, Handler_fn<void> h) override {
    record(Leave{id});
    if (fails()) return h(error());
    h(result<void>{});
  }
  void handle_heartbeat(const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h) override {
    record(req);
    if (fails()) return h(error());
    h(HeartbeatResponse{5, req.term, refusal()});
  }
  void handle_vote(const VoteRequest& req, Handler_fn<VoteResponse> h) override {
    record(req);
    if (fails()) return h(error());
    h(VoteResponse{req.term, refusal()});
  }
  void handle_ack(const AckRequest& req, Handler_fn<void> h) override {
    record(req);
    if (fails()) return h(error());
    h(result<void>{});
  }
  void handle_read_index(const ReadIndexRequest& req, Handler_fn<std::uint64_t> h) override {
    record(req);
    if (fails()) return h(error());
    h(std::uint64_t{5});
  }
  void handle_stream(const StreamRequest&, std::shared_ptr<StreamWriter>) override {
    FUZZ_CHECK(false, "the Handler itself never starts a stream");
  }

  // Transport-level failures (answered with a status) vs protocol refusals
  // (stale_term, already_voted: 200 with X-Raft-Error on heartbeat and vote).
  bool fails() const { return answer_ != errc{} && answer_ != errc::stale_term && answer_ != errc::already_voted; }
  std::error_code error() const { return make_error_code(answer_); }
  std::error_code refusal() const { return fails() || answer_ == errc{} ? std::error_code{} : error(); }

 private:
  void record(Call c) {
    FUZZ_CHECK(std::holds_alternative<std::monostate>(call), "Service called twice");
    call = std::move(c);
  }
  errc answer_;
  std::uint64_t cid_;
};

std::optional<Request> parse(std::string_view bytes) {
  http::request_parser<http::string_body> p;
  const ServerOptions defaults;
  p.header_limit(static_cast<std::uint32_t>(defaults.header_limit_bytes));
  p.body_limit(defaults.body_limit_bytes);
  p.eager(true);
  boost::beast::error_code ec;
  if (bytes.empty()) return std::nullopt;
  while (!bytes.empty() && !p.is_done()) {
    const std::size_t n = p.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
    if (ec == http::error::need_more) break;
    if (ec) return std::nullopt;
    if (n == 0) break;
    bytes.remove_prefix(n);
  }
  if (!p.is_done()) {
    if (!p.got_some()) return std::nullopt;
    p.put_eof(ec);
    if (ec || !p.is_done()) return std::nullopt;
  }
  return p.release();
}

Reply dispatch(Handler& h, const Request& req) {
  std::optional<Reply> out;
  int calls = 0;
  http_detail::handle_request(h, req, [&](Reply r) {
    ++calls;
    out = std::move(r);
  });
  FUZZ_CHECK(calls == 1, "reply callback ran %d times", calls);
  return std::move(*out);
}

bool valid_join_url(const std::string& s) {
  if (!http_detail::has_authority_form(s)) return false;  // Boost 1.81 asserts on some others
  auto u = boost::urls::parse_absolute_uri(s);
  return u && (u->scheme_id() == boost::urls::scheme::http || u->scheme_id() == boost::urls::scheme::https) && u->has_authority() && !u->host().empty();
}

// The parameters of `c` as a canonical request target.
std::string canonical(const Call& c) {
  boost::urls::url u;
  auto add = [&](std::string_view k, const std::string& v) { u.params().append({k, v}); };
  auto num = [](std::uint64_t v) { return std::to_string(v); };
  if (auto* j = std::get_if<Join>(&c)) {
    u.set_path("/raft/join");
    add("url", j->url);
    if (j->previous_id) add("id", num(j->previous_id));
    if (j->join_token) add("joinToken", num(j->join_token));
  } else if (auto* l = std::get_if<Leave>(&c)) {
    u.set_path("/raft/leave");
    add("id", num(l->id));
  } else if (auto* hb = std::get_if<HeartbeatRequest>(&c)) {
    u.set_path("/raft/heartbeat");
    add("term", num(hb->term));
    add("commitIndex", num(hb->commit_index));
    add("leaderID", num(hb->leader_id));
    if (!hb->leader_url.empty()) add("leaderURL", hb->leader_url);
    if (hb->timeout_now) add("timeoutNow", "1");
  } else if (auto* v = std::get_if<VoteRequest>(&c)) {
    u.set_path("/raft/vote");
    add("term", num(v->term));
    add("candidateID", num(v->candidate_id));
    add("lastLogIndex", num(v->last_log_index));
    add("lastLogTerm", num(v->last_log_term));
    if (v->pre_vote) add("preVote", "1");
    if (v->transfer) add("transfer", "1");
  } else if (auto* a = std::get_if<AckRequest>(&c)) {
    u.set_path("/raft/ack");
    add("id", num(a->id));
    add("term", num(a->term));
    add("index", num(a->index));
    if (!a->url.empty()) add("url", a->url);
  } else if (auto* ri = std::get_if<ReadIndexRequest>(&c)) {
    u.set_path("/raft/readIndex");
    if (ri->timeout_ms) add("timeoutMs", num(ri->timeout_ms));
  } else if (auto* s = std::get_if<StreamRequest>(&c)) {
    u.set_path("/raft/stream");
    add("id", num(s->id));
    add("term", num(s->term));
    add("index", num(s->index));
    add("logTerm", num(s->log_term));
    if (!s->url.empty()) add("url", s->url);
  }
  return std::string(u.buffer());
}

void check_call(const Call& c) {
  if (auto* j = std::get_if<Join>(&c)) FUZZ_CHECK(valid_join_url(j->url), "join url %s", j->url.c_str());
  if (auto* l = std::get_if<Leave>(&c)) FUZZ_CHECK(l->id != 0, "leave id 0");
  if (auto* hb = std::get_if<HeartbeatRequest>(&c)) FUZZ_CHECK(hb->term && hb->leader_id, "heartbeat term/leader 0");
  if (auto* v = std::get_if<VoteRequest>(&c)) FUZZ_CHECK(v->term && v->candidate_id, "vote term/candidate 0");
  if (auto* a = std::get_if<AckRequest>(&c)) FUZZ_CHECK(a->id && a->term, "ack id/term 0");
  if (auto* s = std::get_if<StreamRequest>(&c)) FUZZ_CHECK(s->id && s->term, "stream id/term 0");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const errc answer = kAnswers[in.byte() & 7];
  const std::uint8_t b1 = in.byte();
  const std::uint64_t cid = (b1 & 1) ? 7 : 0;
  const bool with_token = (b1 & 0x80) != 0;
  auto req = parse(in.rest());
  if (!req) return 0;

  FakeService svc(answer, cid);
  Handler handler(svc, {.auth_token = with_token ? "tok" : ""});
  Reply r = dispatch(handler, *req);
  Call call = svc.call;
  const unsigned st = r.res.result_int();
  if (r.stream) {
    FUZZ_CHECK(st == 200 && std::holds_alternative<std::monostate>(call), "stream go-ahead with status %u", st);
    FUZZ_CHECK(req->version() >= 11, "stream over HTTP/1.0");
    call = r.sreq;
  }
  check_call(call);
  // A request naming another cluster (one well-formed X-Raft-Cluster-ID).
  const bool other_cluster = [&] {
    if (req->count(http_detail::kHeaderClusterID) != 1) return false;
    const auto id = http_detail::parse_u64(req->find(http_detail::kHeaderClusterID)->value());
    return id && *id != 0 && cid != 0 && *id != cid;
  }();
  if (other_cluster) FUZZ_CHECK(std::holds_alternative<std::monostate>(call), "another cluster's request served");
  // A request in another protocol version, restated: no header is version
  // 1; this build speaks 1 and 2, written in decimal with any leading zeros.
  static_assert(kMinProtocolVersion == 1 && kProtocolVersion == 2);
  const char version = [&]() -> char {
    if (req->count(http_detail::kHeaderProtocol) == 0) return '1';
    if (req->count(http_detail::kHeaderProtocol) > 1) return 0;
    const auto v = req->find(http_detail::kHeaderProtocol)->value();
    if (v.empty() || v.find_first_not_of('0') != v.size() - 1 || (v.back() != '1' && v.back() != '2')) return 0;
    return v.back();
  }();
  if (version == 0) {
    FUZZ_CHECK(std::holds_alternative<std::monostate>(call) && (st == 400 || st == 401 || st == 404 || st == 405),
               "a request in another protocol version answered %u", st);
  }
  if (r.stream) {
    // The stream's head is written in the version the Service is given.
    FUZZ_CHECK(version != 0 && r.sreq.protocol == static_cast<std::uint32_t>(version - '0'),
               "a stream in protocol version %u", r.sreq.protocol);
  } else {
    auto res = r.res;
    http_detail::finish_response(res, *req, false);
    const auto label = res.find(http_detail::kHeaderProtocol);
    FUZZ_CHECK(res.count(http_detail::kHeaderProtocol) == 1 && label->value().size() == 1 &&
                   label->value()[0] == (version == 0 ? '2' : version),
               "a reply in the wrong protocol version (status %u)", st);
  }

  if (with_token && (st == 200 || !std::holds_alternative<std::monostate>(call))) {
    // Served (a Service call, a stream, a status or metrics answer) only
    // with the token; the ping answers anyone.
    auto u = boost::urls::parse_origin_form(req->target());
    const bool ping = u && u->path() == "/raft/ping";
    FUZZ_CHECK(ping || (req->count(http::field::authorization) == 1 &&
                        (*req)[http::field::authorization] == "Bearer tok"),
               "served without the token (status %u)", st);
  }
  const std::string err(r.res[http_detail::kHeaderError]);
  switch (st) {
    case 200: break;
    case 401:
      FUZZ_CHECK(with_token && err == "unauthorized", "401 without a token configured, or not saying so");
      [[fallthrough]];
    case 400: case 403: case 404: case 405: case 421: case 500: case 503: case 505:
      FUZZ_CHECK(!err.empty() && r.res.body() == err + "\n", "error reply %u without X-Raft-Error", st);
      break;
    default: FUZZ_CHECK(false, "status %u", st);
  }
  if (!std::holds_alternative<std::monostate>(call) && !r.stream) {
    if (svc.fails()) {
      const unsigned want = answer == errc::not_leader ? 421 : answer == errc::cluster_id_mismatch ? 403
                            : answer == errc::no_leader ? 503 : 500;
      FUZZ_CHECK(st == want && err == svc.error().message(), "service error %s answered %u",
                 svc.error().message().c_str(), st);
      if (answer == errc::not_leader) FUZZ_CHECK(r.res["X-Raft-Leader-URL"] == "http://127.0.0.1:9", "leader url");
    } else {
      FUZZ_CHECK(st == 200, "service success answered %u", st);
      const bool refusable = std::holds_alternative<HeartbeatRequest>(call) || std::holds_alternative<VoteRequest>(call);
      if (std::holds_alternative<ReadIndexRequest>(call))
        FUZZ_CHECK(r.res[http_detail::kHeaderIndex] == "5", "read index not in X-Raft-Index");
      if (refusable && answer != errc{}) FUZZ_CHECK(err == svc.error().message(), "refusal not reported");
    }
  }

  // Round trip of the parameters through a canonical target.
  if (!std::holds_alternative<std::monostate>(call)) {
    Request again;
    again.method(r.stream ? http::verb::get : http::verb::post);
    again.version(11);
    again.target(canonical(call));
    FakeService svc2(errc{}, cid);
    Handler h2(svc2);
    Reply r2 = dispatch(h2, again);
    Call call2 = r2.stream ? Call{r2.sreq} : svc2.call;
    FUZZ_CHECK(call2 == call, "canonical target %s parsed differently", std::string(again.target()).c_str());
  }
  return 0;
}
