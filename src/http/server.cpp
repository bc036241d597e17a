// raft::Handler, raft::Server and the Beast hook (DESIGN 4).
//
// One Session per connection, on its own strand (Beast's advanced_server
// shape): do_read/on_read, then the Handler turns the request into a Reply
// (possibly later, from any thread: the Service answers asynchronously), then
// do_write/on_write. Every step has a deadline: idle_timeout_ms waiting for a
// request's first byte, read_timeout_ms for the rest of it, write_timeout_ms
// per write.
//
// /raft/stream switches the connection to streaming: the Service gets a
// StreamWriter whose write() becomes one chunk, with exactly one write on the
// socket at a time. `done` runs when the socket accepted the bytes, so a
// follower that stops reading stalls the Log's writer (back-pressure) until
// write_timeout_ms cuts the connection; the server never queues more than the
// one chunk in flight.
#include "raft/http_beast.hpp"
#include "raft/http_beast_tls.hpp"

#include "http/common.hpp"
#include "http/handler.hpp"
#include "http/tls.hpp"
#include "raft/config.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/url.hpp>
#include <fmt/format.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace raft {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using namespace http_detail;

namespace {

Reply make_reply(http::status st, std::string body = {}, std::string_view type = "text/plain; charset=utf-8") {
  Reply r;
  r.res.result(st);
  if (!body.empty()) r.res.set(http::field::content_type, type);
  r.res.body() = std::move(body);
  return r;
}

// An error answer: X-Raft-Error carries the text the client maps back.
Reply error_reply(http::status st, std::string_view text) {
  Reply r = make_reply(st, std::string(text) + "\n");
  r.res.set(kHeaderError, text);
  return r;
}

http::status status_for(const std::error_code& ec) {
  if (ec == errc::not_leader) return http::status::misdirected_request;  // 421
  if (ec == errc::cluster_id_mismatch) return http::status::forbidden;
  if (ec == errc::no_leader) return http::status::service_unavailable;
  return http::status::internal_server_error;
}

// Query parameters of an origin-form target; a parameter given twice counts
// as invalid (it is ambiguous which one the client meant).
class Params {
 public:
  bool parse(std::string_view target) {
    auto u = boost::urls::parse_origin_form(target);
    if (!u) return false;
    path_ = u->path();  // percent-decoded
    // Percent-decoded, but '+' stays '+': params() alone would decode it as
    // a space (form encoding), while HTTPTransport, like any URL encoder,
    // leaves '+' unescaped in a value, so a node URL with a '+' arrived
    // changed.
    for (auto p : u->params(boost::urls::encoding_opts{}))
      kv_.emplace_back(p.key, p.has_value ? p.value : std::string());
    return true;
  }
  const std::string& path() const { return path_; }
  // nullptr when missing or duplicated.
  const std::string* one(std::string_view key) const {
    const std::string* found = nullptr;
    for (const auto& [k, v] : kv_) {
      if (k != key) continue;
      if (found) return nullptr;
      found = &v;
    }
    return found;
  }
  bool present(std::string_view key) const {
    return std::any_of(kv_.begin(), kv_.end(), [&](const auto& kv) { return kv.first == key; });
  }
  std::optional<std::uint64_t> u64(std::string_view key) const {
    const std::string* v = one(key);
    if (!v) return std::nullopt;
    return parse_u64(*v);
  }
  // An optional flag: absent is false; present, exactly one "0" or "1"
  // (nullopt otherwise: a flag given twice is as ambiguous as any value).
  std::optional<bool> flag(std::string_view key) const {
    if (!present(key)) return false;
    const std::string* v = one(key);
    if (!v || (*v != "0" && *v != "1")) return std::nullopt;
    return *v == "1";
  }
  // Terms and ids start at 1; 0 is never valid on the wire.
  std::optional<std::uint64_t> positive(std::string_view key) const {
    auto v = u64(key);
    if (v && *v == 0) return std::nullopt;
    return v;
  }

 private:
  std::string path_;
  std::vector<std::pair<std::string, std::string>> kv_;
};

std::string status_json(const Status& s) {
  boost::json::object o;
  o["id"] = s.id;
  o["state"] = s.state;
  o["term"] = s.term;
  o["leaderID"] = s.leader_id;
  o["leaderURL"] = s.leader_url;
  o["commitIndex"] = s.commit_index;
  o["appliedIndex"] = s.applied_index;
  o["lastIndex"] = s.last_index;
  o["config"] = boost::json::parse(to_json(s.config));
  // This node's role in its configuration (ConfigNode::learner).
  const ConfigNode* me = s.config.node_by_id(s.id);
  o["learner"] = me != nullptr && me->learner;
  boost::json::array peers;  // the leader's view of the others; [] elsewhere
  for (const auto& p : s.peers)
    peers.push_back(boost::json::object{
        {"id", p.id}, {"match", p.match}, {"lastContactMs", p.last_contact_ms}, {"voteHoldMs", p.vote_hold_ms}});
  o["peers"] = std::move(peers);
  // Lease reads count only on members whose voteHoldMs is not 0: one
  // configured without them shows here.
  o["leaseReads"] = s.lease_reads;
  // What this build speaks (http.hpp): checked across the members during a
  // rolling upgrade.
  o["protocol"] = kProtocolVersion;
  o["minProtocol"] = kMinProtocolVersion;
  return boost::json::serialize(o) + "\n";
}

std::string metrics_text(const Status& s) {
  std::string out;
  auto header = [&](std::string_view name, std::string_view help, std::string_view type) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
  };
  auto sample = [&](std::string_view series, std::uint64_t v) {
    out += series;
    out += ' ';
    out += std::to_string(v);
    out += '\n';
  };
  auto gauge = [&](std::string_view name, std::string_view help, std::uint64_t v) {
    header(name, help, "gauge");
    sample(name, v);
  };
  gauge("raft_id", "This node's id.", s.id);
  gauge("raft_term", "Current term.", s.term);
  gauge("raft_leader_id", "Known leader's id (0 if none).", s.leader_id);
  gauge("raft_commit_index", "Highest committed index.", s.commit_index);
  gauge("raft_applied_index", "Highest index applied to the FSM.", s.applied_index);
  gauge("raft_last_index", "Last index in the log.", s.last_index);
  gauge("raft_config_nodes", "Members in the current configuration.", s.config.nodes.size());
  gauge("raft_config_voters", "Voting members in the current configuration (the others are learners).",
        s.config.voter_count());
  const ConfigNode* me = s.config.node_by_id(s.id);
  gauge("raft_learner", "1 if this node is a learner (a non-voting member).", me != nullptr && me->learner);
  header("raft_peer_match_index", "Leader only: the highest index each other member acknowledged as durable.",
         "gauge");
  for (const auto& p : s.peers) sample("raft_peer_match_index{id=\"" + std::to_string(p.id) + "\"}", p.match);
  header("raft_reads_total", "Linearizable reads answered, by the role that answered them.", "counter");
  sample("raft_reads_total{role=\"leader\"}", s.reads_as_leader);
  sample("raft_reads_total{role=\"follower\"}", s.reads_as_follower);
  header("raft_reads_by_lease_total", "Of the leader's reads, those answered by lease, without a heartbeat round.",
         "counter");
  sample("raft_reads_by_lease_total", s.reads_by_lease);
  header("raft_elections_started_total", "Elections this node started.", "counter");
  sample("raft_elections_started_total", s.elections_started);
  header("raft_leadership_transfers_total", "Leadership transfers completed by this node as leader.", "counter");
  sample("raft_leadership_transfers_total", s.transfers_completed);
  header("raft_state", "Current role (1 for the active one).", "gauge");
  for (std::string_view st : {"follower", "candidate", "leader", "stopped"}) {
    out += "raft_state{state=\"";
    out += st;
    out += "\"} ";
    out += (s.state == st) ? "1\n" : "0\n";
  }
  return out;
}

bool valid_node_url(std::string_view s) {
  if (!http_detail::has_authority_form(s)) return false;
  auto u = boost::urls::parse_absolute_uri(s);
  if (!u) return false;
  if (u->scheme_id() != boost::urls::scheme::http && u->scheme_id() != boost::urls::scheme::https) return false;
  return u->has_authority() && !u->host().empty();
}

}  // namespace

// ---------------------------------------------------------------- Handler

namespace {
struct Registry;
std::shared_ptr<Registry> make_registry();
}  // namespace

struct Handler::Impl {
  Impl(Service& s, HandlerOptions o) : svc(s), opts(std::move(o)), hooked(make_registry()) {}
  Service& svc;
  HandlerOptions opts;
  // The TLS connections in raft's hands through serve_raft_request, for
  // recheck_raft_connections.
  std::shared_ptr<Registry> hooked;

  // Whether `req` carries the auth token (HandlerOptions::auth_token).
  bool authorized(const Request& req) const {
    if (opts.auth_token.empty()) return true;
    return req.count(http::field::authorization) == 1 && authorizes(opts, req[http::field::authorization]);
  }
  static bool authorizes(const HandlerOptions& o, std::string_view authorization) noexcept {
    if (o.auth_token.empty()) return true;
    if (authorization.substr(0, kBearerPrefix.size()) != kBearerPrefix) return false;
    const std::string_view given = authorization.substr(kBearerPrefix.size());
    const std::string_view want = o.auth_token;
    // In time independent of where the first difference is, so that
    // response times do not reveal the token byte by byte.
    unsigned char diff = given.size() == want.size() ? 0 : 1;
    for (std::size_t i = 0; i < want.size(); ++i)
      diff |= static_cast<unsigned char>(want[i] ^ (i < given.size() ? given[i] : 0));
    return diff == 0;
  }

  Reply service_error(const std::error_code& ec) {
    Reply r = error_reply(status_for(ec), ec.message());
    if (ec == errc::not_leader) {
      Status st = svc.status();
      if (!st.leader_url.empty()) r.res.set(kHeaderLeaderURL, st.leader_url);
    }
    return r;
  }

  // Turns one request into one Reply; `cb` runs exactly once, on any thread.
  void handle(const Request& req, ReplyFn cb);
};

Handler::Handler(Service& service, HandlerOptions opts) : impl_(std::make_unique<Impl>(service, std::move(opts))) {}
Handler::~Handler() = default;
Service& Handler::service() const noexcept { return impl_->svc; }
bool Handler::authorizes(std::string_view authorization) const noexcept {
  return Impl::authorizes(impl_->opts, authorization);
}

void Handler::Impl::handle(const Request& req, ReplyFn cb) {
  Params p;
  if (!p.parse(req.target())) return cb(error_reply(http::status::bad_request, "invalid request target"));

  enum class Op { ping, join, leave, heartbeat, vote, ack, read_index, stream, status, metrics };
  static const std::unordered_map<std::string, std::pair<Op, http::verb>> routes = {
      {"/raft/ping", {Op::ping, http::verb::get}},
      {"/raft/join", {Op::join, http::verb::post}},
      {"/raft/leave", {Op::leave, http::verb::post}},
      {"/raft/heartbeat", {Op::heartbeat, http::verb::post}},
      {"/raft/vote", {Op::vote, http::verb::post}},
      {"/raft/ack", {Op::ack, http::verb::post}},
      {"/raft/readIndex", {Op::read_index, http::verb::post}},
      {"/raft/stream", {Op::stream, http::verb::get}},
      {"/raft/status", {Op::status, http::verb::get}},
      {"/raft/metrics", {Op::metrics, http::verb::get}},
  };
  auto it = routes.find(p.path());
  if (it == routes.end()) return cb(error_reply(http::status::not_found, "not found"));
  auto [op, verb] = it->second;
  // HEAD as GET, except for the stream: its answer is a body, which a HEAD
  // answer must not have.
  bool head_ok = verb == http::verb::get && req.method() == http::verb::head && op != Op::stream;
  if (req.method() != verb && !head_ok) {
    Reply r = error_reply(http::status::method_not_allowed, "method not allowed");
    r.res.set(http::field::allow, http::to_string(verb));
    return cb(std::move(r));
  }

  // The cluster's shared secret, if it has one: everything but the ping.
  if (op != Op::ping && !authorized(req)) {
    Reply r = error_reply(http::status::unauthorized, make_error_code(errc::unauthorized).message());
    r.res.set(http::field::www_authenticate, "Bearer");
    return cb(std::move(r));
  }

  // Protocol version (http.hpp): a request this build may not understand is
  // refused before its cluster id or parameters are read. The refusal names
  // this node's newest version, which the caller may fall back to; every
  // other response is in the request's version (finish_response).
  const auto version = protocol_version_of(req);
  if (!version) return cb(error_reply(http::status::bad_request, "invalid protocol version"));
  if (!protocol_supported(*version))
    return cb(error_reply(http::status::bad_request, make_error_code(errc::unsupported_protocol).message()));

  // Cluster id: a request that names another cluster is refused (the seed
  // never checked). A request without the header is let through: a node that
  // has not joined yet (and humans with curl) do not know the id.
  if (req.count(kHeaderClusterID) > 1) return cb(error_reply(http::status::bad_request, "invalid cluster id"));
  if (auto f = req.find(kHeaderClusterID); f != req.end()) {
    auto cid = parse_u64(f->value());
    if (!cid) return cb(error_reply(http::status::bad_request, "invalid cluster id"));
    std::uint64_t mine = svc.cluster_id();
    if (*cid != 0 && mine != 0 && *cid != mine)
      return cb(error_reply(http::status::forbidden, make_error_code(errc::cluster_id_mismatch).message()));
  }

  auto bad = [&](std::string_view text) { cb(error_reply(http::status::bad_request, text)); };

  switch (op) {
    case Op::ping:
      return cb(make_reply(http::status::ok));

    case Op::status:
      return cb(make_reply(http::status::ok, status_json(svc.status()), "application/json"));

    case Op::metrics:
      return cb(make_reply(http::status::ok, metrics_text(svc.status()), "text/plain; version=0.0.4"));

    case Op::join: {
      const std::string* url = p.one("url");
      if (!url || url->empty()) return bad("url required");
      if (!valid_node_url(*url)) return bad("invalid url");
      JoinRequest jr{*url, 0};
      if (p.present("id")) {  // optional: set by a node asking again (JoinRequest)
        auto id = p.positive("id");
        if (!id) return bad("invalid raft id");
        jr.previous_id = *id;
      }
      if (p.present("joinToken")) {  // optional: JoinRequest::join_token
        auto token = p.positive("joinToken");
        if (!token) return bad("invalid joinToken");
        jr.join_token = *token;
      }
      auto learner = p.flag("learner");  // optional: JoinRequest::learner
      if (!learner) return bad("invalid learner flag");
      jr.learner = *learner;
      auto promote = p.flag("promote");  // optional: JoinRequest::promote
      if (!promote) return bad("invalid promote flag");
      jr.promote = *promote;
      return svc.handle_join(jr, [this, cb](result<JoinResponse> r) {
        if (!r) return cb(service_error(r.error()));
        Reply rep = make_reply(http::status::ok, to_json(r->config), "application/json");
        rep.res.set(kHeaderID, std::to_string(r->id));
        rep.res.set(kHeaderLeaderID, std::to_string(r->leader_id));
        cb(std::move(rep));
      });
    }

    case Op::leave: {
      auto id = p.positive("id");
      if (!id) return bad("invalid raft id");
      return svc.handle_leave(*id, [this, cb](result<void> r) {
        if (!r) return cb(service_error(r.error()));
        cb(make_reply(http::status::ok));
      });
    }

    case Op::heartbeat: {
      HeartbeatRequest hb;
      auto term = p.positive("term");
      if (!term) return bad("invalid term");
      auto commit = p.u64("commitIndex");
      if (!commit) return bad("invalid commit index");
      auto leader = p.positive("leaderID");
      if (!leader) return bad("invalid leader id");
      hb.term = *term;
      hb.commit_index = *commit;
      hb.leader_id = *leader;
      if (const std::string* lu = p.one("leaderURL")) hb.leader_url = *lu;  // optional
      auto timeout_now = p.flag("timeoutNow");  // optional: leadership transfer
      if (!timeout_now) return bad("invalid timeoutNow flag");
      hb.timeout_now = *timeout_now;
      return svc.handle_heartbeat(hb, [this, cb](result<HeartbeatResponse> r) {
        if (!r) return cb(service_error(r.error()));
        Reply rep = make_reply(http::status::ok);
        rep.res.set(kHeaderIndex, std::to_string(r->index));
        rep.res.set(kHeaderTerm, std::to_string(r->term));
        if (r->id != 0) rep.res.set(kHeaderID, std::to_string(r->id));
        if (r->vote_hold_ms != 0) rep.res.set(kHeaderVoteHold, std::to_string(r->vote_hold_ms));
        if (r->error) rep.res.set(kHeaderError, r->error.message());
        cb(std::move(rep));
      });
    }

    case Op::vote: {
      VoteRequest v;
      auto term = p.positive("term");
      if (!term) return bad("invalid term");
      auto cand = p.positive("candidateID");
      if (!cand) return bad("invalid candidate id");
      auto lli = p.u64("lastLogIndex");
      if (!lli) return bad("invalid last log index");
      auto llt = p.u64("lastLogTerm");
      if (!llt) return bad("invalid last log term");
      v.term = *term;
      v.candidate_id = *cand;
      v.last_log_index = *lli;
      v.last_log_term = *llt;
      auto pre = p.flag("preVote");
      if (!pre) return bad("invalid pre-vote flag");
      v.pre_vote = *pre;
      auto transfer = p.flag("transfer");  // optional: an election the leader asked for
      if (!transfer) return bad("invalid transfer flag");
      v.transfer = *transfer;
      return svc.handle_vote(v, [this, cb](result<VoteResponse> r) {
        if (!r) return cb(service_error(r.error()));
        Reply rep = make_reply(http::status::ok);
        rep.res.set(kHeaderTerm, std::to_string(r->term));
        if (r->error) rep.res.set(kHeaderError, r->error.message());
        cb(std::move(rep));
      });
    }

    case Op::ack: {
      AckRequest a;
      auto id = p.positive("id");
      if (!id) return bad("invalid id");
      auto term = p.positive("term");
      if (!term) return bad("invalid term");
      auto index = p.u64("index");
      if (!index) return bad("invalid index");
      a.id = *id;
      a.term = *term;
      a.index = *index;
      // The sender's URL (optional here: the Log refuses an ack without it,
      // with errc::node_url_required, so the answer says what is missing).
      if (const std::string* u = p.one("url")) a.url = *u;
      return svc.handle_ack(a, [this, cb](result<void> r) {
        if (!r) return cb(service_error(r.error()));
        cb(make_reply(http::status::ok));
      });
    }

    case Op::read_index: {
      ReadIndexRequest ri;
      if (p.present("timeoutMs")) {  // optional: 0 or absent lets the leader choose
        auto t = p.u64("timeoutMs");
        if (!t) return bad("invalid timeoutMs");
        ri.timeout_ms = *t;
      }
      return svc.handle_read_index(ri, [this, cb](result<std::uint64_t> r) {
        if (!r) return cb(service_error(r.error()));
        Reply rep = make_reply(http::status::ok);
        rep.res.set(kHeaderIndex, std::to_string(*r));
        cb(std::move(rep));
      });
    }

    case Op::stream: {
      Reply rep;
      auto id = p.positive("id");
      if (!id) return bad("invalid id");
      auto term = p.positive("term");
      if (!term) return bad("invalid term");
      auto index = p.u64("index");
      if (!index) return bad("invalid index");
      auto log_term = p.u64("logTerm");
      if (!log_term) return bad("invalid log term");
      if (req.version() < 11) return cb(error_reply(http::status::http_version_not_supported, "http/1.1 required"));
      rep.stream = true;
      rep.sreq = StreamRequest{*id, *term, *index, *log_term, {}, static_cast<std::uint32_t>(*version)};
      if (const std::string* u = p.one("url")) rep.sreq.url = *u;  // required by the Log, as for acks
      // Acks on this connection: only for a follower that names itself (the
      // Log credits acks to the stream's id and URL); anything but "1"
      // keeps the plain protocol.
      if (auto f = req.find(kHeaderAckChannel); f != req.end() && f->value() == "1" && !rep.sreq.url.empty())
        rep.ack_channel = true;
      return cb(std::move(rep));
    }
  }
}

void http_detail::handle_request(Handler& handler, const Request& req, ReplyFn cb) {
  handler.impl().handle(req, std::move(cb));
}

void http_detail::finish_response(Response& res, const Request& req, bool close_after) {
  res.version(req.version() ? req.version() : 11);
  // The request's version when this build speaks it (a peer of an older
  // build refuses a reply in a version it does not know), else this
  // build's newest: the refusal of an unsupported or malformed version.
  const auto v = protocol_version_of(req);
  res.set(kHeaderProtocol, std::to_string(v && protocol_supported(*v) ? *v : kProtocolVersion));
  res.keep_alive(!close_after && req.keep_alive());
  if (req.method() == http::verb::head) {
    res.content_length(res.body().size());
    res.body().clear();
  } else {
    res.prepare_payload();
  }
}

std::string http_detail::chunk_header(std::size_t n) {
  char buf[32];
  int len = std::snprintf(buf, sizeof buf, "%zx\r\n", n);
  return std::string(buf, static_cast<std::size_t>(len));
}

// ---------------------------------------------------------------- Session

namespace {

struct Registry;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(AnyStream stream, Handler::Impl& h, const ServerOptions& opts, std::shared_ptr<Registry> reg,
          std::shared_ptr<TLSContext> tls = nullptr)
      : tls_ctx_(std::move(tls)),
        stream_(std::move(stream)),
        buffer_(opts.header_limit_bytes + opts.body_limit_bytes + 4096),
        h_(h),
        opts_(opts),
        reg_(std::move(reg)),
        timer_(stream_.get_executor()) {}
  ~Session();

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->stream_.is_tls()) return self->do_handshake();
      self->do_read();
    });
  }

  // For the hook: a request already read by the user's server.
  void start_with(Request req, std::function<void(AnyStream&)> give_back) {
    give_back_ = std::move(give_back);
    net::dispatch(stream_.get_executor(), [self = shared_from_this(), req = std::move(req)]() mutable {
      self->req_ = std::move(req);
      self->dispatch_request();
    });
  }

  // Any thread.
  void close() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->do_close(); });
  }
  // Any thread (Server::set_tls): closes this connection if its peer is
  // one `now` would refuse (http_detail::peer_still_trusted).
  void recheck(std::shared_ptr<TLSContext> now) {
    net::post(stream_.get_executor(), [self = shared_from_this(), now = std::move(now)] {
      if (self->closed_ || !self->stream_.is_tls()) return;
      if (!peer_still_trusted(self->stream_.tls().native_handle(), *now)) self->do_close();
    });
  }

  // Stream side, called (via post) from the SessionWriter.
  void stream_write(std::string_view bytes, std::function<void(std::error_code)> done);
  void stream_finish(std::error_code ec);
  void writer_gone() {
    if (!finished_) do_close();
  }

 private:
  void do_handshake();
  void do_read();
  void on_first_bytes(beast::error_code ec, std::size_t n);
  void on_read(beast::error_code ec);
  void dispatch_request();
  void on_reply(Reply r);
  void do_write(bool close_after);
  void on_write(beast::error_code ec);
  void do_close();

  void start_stream(const StreamRequest& sreq, bool ack_channel);
  void do_peer_watch();
  void on_peer_bytes(std::size_t n);
  // The n bytes just placed after watch_byte_'s first watch_fill_: hands the
  // newest whole record on (or keeps it for after the ack in flight); false
  // when they are not records (the connection is closed).
  bool take_ack_bytes(std::size_t n);
  void send_ack(AckRecord a);
  // kStreamHead in the request's protocol version, naming the ack channel
  // when this connection carries acks.
  std::string stream_head() const {
    std::string h(kStreamHead);
    h.insert(h.size() - 2, fmt::format("{}: {}\r\n", kHeaderProtocol, sreq_.protocol));
    if (ack_channel_) h.insert(h.size() - 2, std::string(kHeaderAckChannel) + ": 1\r\n");
    return h;
  }
  void do_chunk_write(std::shared_ptr<std::string> head, std::string_view body, std::string_view tail);
  void on_chunk_write(beast::error_code ec);

  std::shared_ptr<TLSContext> tls_ctx_;  // what stream_ was made with; outlives it
  AnyStream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Request req_;
  Response res_;
  Handler::Impl& h_;
  ServerOptions opts_;
  std::shared_ptr<Registry> reg_;
  std::function<void(AnyStream&)> give_back_;  // the hook's, given the stream to move out
  bool closed_ = false;

  // Streaming state.
  bool streaming_ = false;
  bool header_sent_ = false;
  bool writing_ = false;
  bool finished_ = false;  // finish() seen
  std::optional<std::error_code> finish_pending_;
  std::shared_ptr<std::string> head_;
  std::function<void(std::error_code)> done_;
  net::steady_timer timer_;
  bool timed_out_ = false;
  char watch_byte_[256];

  // Ack channel (kHeaderAckChannel): the follower's acks arrive on this
  // connection. Bytes of a partial record wait in watch_byte_ (its first
  // watch_fill_ bytes). One ack is with the Service at a time; records that
  // arrive meanwhile coalesce into ack_next_ (the newest wins: a follower's
  // acks only grow).
  bool ack_channel_ = false;
  StreamRequest sreq_;
  std::size_t watch_fill_ = 0;
  bool ack_busy_ = false;
  std::optional<AckRecord> ack_next_;
};

struct Registry {
  std::mutex mu;
  bool stopped = false;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  std::atomic<std::size_t> count{0};

  bool add(const std::shared_ptr<Session>& s) {
    std::lock_guard lk(mu);
    if (stopped) return false;
    sessions.emplace(s.get(), s);
    ++count;
    return true;
  }
  void remove(Session* s) {
    std::lock_guard lk(mu);
    if (sessions.erase(s)) --count;
  }
  std::vector<std::shared_ptr<Session>> live(bool stop) {
    std::vector<std::shared_ptr<Session>> out;
    std::lock_guard lk(mu);
    stopped = stopped || stop;
    for (auto& [p, w] : sessions)
      if (auto s = w.lock()) out.push_back(std::move(s));
    return out;
  }
  void stop_all() {
    for (auto& s : live(true)) s->close();
  }
  void recheck_all(const std::shared_ptr<TLSContext>& now) {
    for (auto& s : live(false)) s->recheck(now);
  }
};

std::shared_ptr<Registry> make_registry() { return std::make_shared<Registry>(); }

Session::~Session() {
  if (reg_) reg_->remove(this);
  if (done_) done_(make_error_code(errc::transport_error));
}

class SessionWriter final : public StreamWriter {
 public:
  SessionWriter(std::shared_ptr<Session> s, net::any_io_executor ex) : s_(std::move(s)), ex_(std::move(ex)) {}
  ~SessionWriter() override {
    net::post(ex_, [s = s_] { s->writer_gone(); });
  }
  void write(std::string_view bytes, std::function<void(std::error_code)> done) override {
    // The caller keeps the bytes until `done` (StreamWriter's contract): they
    // go to the socket from where they are, with no copy here.
    net::post(ex_, [s = s_, bytes, d = std::move(done)]() mutable { s->stream_write(bytes, std::move(d)); });
  }
  void finish(std::error_code ec) override {
    net::post(ex_, [s = s_, ec] { s->stream_finish(ec); });
  }

 private:
  std::shared_ptr<Session> s_;
  net::any_io_executor ex_;
};

void Session::do_read() {
  if (closed_) return;
  // An answer to a request that fails to parse is finished against this,
  // not against the previous request (a HEAD's would lose its body).
  req_ = {};
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(opts_.header_limit_bytes, UINT32_MAX)));
  parser_->body_limit(opts_.body_limit_bytes);
  if (buffer_.size() > 0) return on_first_bytes({}, 0);
  // Idle: wait for the first byte of the next request.
  stream_.tcp().expires_after(std::chrono::milliseconds(opts_.idle_timeout_ms));
  stream_.visit([&](auto& s) {
    s.async_read_some(buffer_.prepare(std::min<std::size_t>(4096, buffer_.max_size() - buffer_.size())),
                      beast::bind_front_handler(&Session::on_first_bytes, shared_from_this()));
  });
}

// TLS: the handshake comes before the first request, under the deadline a
// request has (a client that opens connections and stalls is cut off).
void Session::do_handshake() {
  stream_.tcp().expires_after(std::chrono::milliseconds(opts_.read_timeout_ms));
  stream_.tls().async_handshake(net::ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
    if (ec) return self->do_close();
    self->do_read();
  });
}

void Session::on_first_bytes(beast::error_code ec, std::size_t n) {
  if (ec) return do_close();
  buffer_.commit(n);
  // The whole request must now arrive within read_timeout_ms (one deadline
  // for all its bytes, so trickling cannot extend it).
  stream_.tcp().expires_after(std::chrono::milliseconds(opts_.read_timeout_ms));
  stream_.visit([&](auto& s) {
    http::async_read(s, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code e, std::size_t) { self->on_read(e); });
  });
}

void Session::on_read(beast::error_code ec) {
  if (ec == http::error::end_of_stream) return do_close();
  if (ec == http::error::header_limit) {
    res_ = error_reply(http::status::request_header_fields_too_large, "header too large").res;
    return do_write(true);
  }
  if (ec == http::error::body_limit || ec == http::error::buffer_overflow) {
    res_ = error_reply(http::status::payload_too_large, "body too large").res;
    return do_write(true);
  }
  if (ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
      ec != http::error::partial_message) {
    res_ = error_reply(http::status::bad_request, "bad request").res;
    return do_write(true);
  }
  if (ec) return do_close();  // timeout, reset, partial message
  req_ = parser_->release();
  dispatch_request();
}

void Session::dispatch_request() {
  stream_.tcp().expires_never();
  h_.handle(req_, [self = shared_from_this()](Reply r) {
    net::post(self->stream_.get_executor(), [self, r = std::move(r)]() mutable { self->on_reply(std::move(r)); });
  });
}

void Session::on_reply(Reply r) {
  if (closed_) return;
  if (r.stream) return start_stream(r.sreq, r.ack_channel);
  res_ = std::move(r.res);
  do_write(false);
}

void Session::do_write(bool close_after) {
  if (closed_) return;
  finish_response(res_, req_, close_after);
  stream_.tcp().expires_after(std::chrono::milliseconds(opts_.write_timeout_ms));
  stream_.visit([&](auto& s) {
    http::async_write(s, res_, [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
  });
}

void Session::on_write(beast::error_code ec) {
  if (ec) return do_close();
  if (!res_.keep_alive()) {
    // Over TLS too, a plain FIN: the reply is framed (length or chunks), so
    // the client needs no close_notify to know it has all of it.
    beast::error_code ignored;
    stream_.tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    return do_close();
  }
  res_ = {};
  if (give_back_) {
    stream_.tcp().expires_never();
    auto gb = std::move(give_back_);
    give_back_ = nullptr;
    closed_ = true;  // no longer ours
    if (reg_) reg_->remove(this);
    return gb(stream_);
  }
  do_read();
}

void Session::do_close() {
  if (closed_) return;
  closed_ = true;
  if (reg_) reg_->remove(this);  // counts open connections, not live objects
  timer_.cancel();
  stream_.close();
}

// ---- streaming

void Session::start_stream(const StreamRequest& sreq, bool ack_channel) {
  streaming_ = true;
  ack_channel_ = ack_channel;
  sreq_ = sreq;
  stream_.tcp().expires_never();
  auto w = std::make_shared<SessionWriter>(shared_from_this(), stream_.get_executor());
  h_.svc.handle_stream(sreq, std::move(w));
  // Watch the socket: without the ack channel the follower sends nothing
  // after its request, so a completed read means it went away (stray bytes
  // are ignored); with it, the reads carry its acks. Bytes already read
  // along with the request are the channel's first ones (a follower that
  // did not wait for the head; records split across that read and the next).
  if (ack_channel_) {
    while (buffer_.size() > 0 && !closed_) {
      const std::size_t n = net::buffer_copy(
          net::buffer(watch_byte_ + watch_fill_, sizeof watch_byte_ - watch_fill_), buffer_.data());
      buffer_.consume(n);
      take_ack_bytes(n);
    }
  }
  if (!closed_) do_peer_watch();
}

void Session::do_peer_watch() {
  stream_.visit_raw([&](auto& s) {
    s.async_read_some(net::buffer(watch_byte_ + watch_fill_, sizeof watch_byte_ - watch_fill_),
                      [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                        if (ec || self->closed_) return self->do_close();
                        self->on_peer_bytes(n);
                      });
  });
}

void Session::on_peer_bytes(std::size_t n) {
  if (!ack_channel_) return do_peer_watch();  // ignore stray bytes
  if (take_ack_bytes(n)) do_peer_watch();
}

bool Session::take_ack_bytes(std::size_t n) {
  watch_fill_ += n;
  std::optional<AckRecord> last;
  std::size_t used = 0;
  if (!decode_ack_records(std::string_view(watch_byte_, watch_fill_), used, [&](AckRecord a) { last = a; })) {
    do_close();  // not an ack record: the peer does not speak the protocol
    return false;
  }
  std::memmove(watch_byte_, watch_byte_ + used, watch_fill_ - used);
  watch_fill_ -= used;
  if (last) {
    if (ack_busy_) ack_next_ = *last;
    else send_ack(*last);
  }
  return true;
}

void Session::send_ack(AckRecord a) {
  ack_busy_ = true;
  AckRequest req{sreq_.id, a.term, a.index, sreq_.url};
  h_.svc.handle_ack(req, [self = shared_from_this()](result<void> r) {
    net::post(self->stream_.get_executor(), [self, ok = bool(r)] {
      self->ack_busy_ = false;
      // A refused ack (stale term, not the leader, no longer a member...)
      // ends the stream: the follower learns by reconnecting, which is also
      // how it reports its progress again (the Log re-acks on a new stream).
      if (!ok) return self->do_close();
      if (self->ack_next_ && !self->closed_) {
        auto next = *self->ack_next_;
        self->ack_next_.reset();
        self->send_ack(next);
      }
    });
  });
}

void Session::stream_write(std::string_view bytes, std::function<void(std::error_code)> done) {
  if (closed_ || finished_) {
    return net::post(stream_.get_executor(),
                     [d = std::move(done)] { d(make_error_code(errc::transport_error)); });
  }
  if (writing_) {  // contract: one write outstanding at a time
    return net::post(stream_.get_executor(), [d = std::move(done)] { d(make_error_code(errc::protocol_error)); });
  }
  if (bytes.empty()) {  // an empty chunk would end the body
    return net::post(stream_.get_executor(), [d = std::move(done)] { d({}); });
  }
  done_ = std::move(done);
  auto head = std::make_shared<std::string>();
  if (!header_sent_) {
    header_sent_ = true;
    *head = stream_head();
  }
  *head += chunk_header(bytes.size());
  do_chunk_write(std::move(head), bytes, kChunkEnd);
}

void Session::do_chunk_write(std::shared_ptr<std::string> head, std::string_view body, std::string_view tail) {
  writing_ = true;
  head_ = std::move(head);
  timed_out_ = false;
  timer_.expires_after(std::chrono::milliseconds(opts_.write_timeout_ms));
  timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec) return;  // canceled: the write finished
    self->timed_out_ = true;
    self->do_close();
  });
  std::array<net::const_buffer, 3> bufs{net::buffer(*head_), net::buffer(body.data(), body.size()),
                                        net::buffer(tail.data(), tail.size())};
  stream_.visit_raw([&](auto& s) {
    net::async_write(s, bufs, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_chunk_write(ec);
    });
  });
}

void Session::on_chunk_write(beast::error_code ec) {
  writing_ = false;
  timer_.cancel();
  auto done = std::move(done_);
  done_ = nullptr;
  std::error_code out;
  if (ec) {
    out = make_error_code(timed_out_ ? errc::timeout : errc::transport_error);
    do_close();
  }
  if (done) done(out);
  if (finish_pending_) {
    auto f = *finish_pending_;
    finish_pending_.reset();
    finished_ = false;
    stream_finish(f);
  }
}

void Session::stream_finish(std::error_code ec) {
  if (finished_) return;
  finished_ = true;
  if (closed_) return;
  if (writing_) {  // after the chunk in flight
    finish_pending_ = ec;
    return;
  }
  if (!header_sent_ && ec) {
    // Nothing streamed yet: answer with a plain error response.
    streaming_ = false;
    res_ = h_.service_error(ec).res;
    return do_write(true);
  }
  if (ec) return do_close();  // mid-stream failure: an unterminated body tells the follower
  auto head = std::make_shared<std::string>();
  if (!header_sent_) {
    header_sent_ = true;
    *head = stream_head();
  }
  *head += kLastChunk;
  // `this`, not a shared_ptr: the write's handler holds the Session while
  // on_chunk_write calls done_, and a Session holding itself in done_ would
  // never be freed if that handler never ran (a Server stopped and its
  // io_context destroyed with the last chunk in flight; ASan found it in
  // HandlerTest.ProtocolVersionIsNamedAndAnotherIsRefused, which ends so).
  done_ = [this](std::error_code) {
    beast::error_code ignored;
    stream_.tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    do_close();
  };
  do_chunk_write(std::move(head), {}, {});
}

}  // namespace

// ---------------------------------------------------------------- Server

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  Impl(net::any_io_executor ex, Handler& h, ServerOptions o)
      : ex(ex), handler(h), opts(o), acceptor(net::make_strand(ex)), reg(std::make_shared<Registry>()) {}

  void do_accept() {
    acceptor.async_accept(net::make_strand(ex), [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
      self->on_accept(ec, std::move(s));
    });
  }
  void on_accept(beast::error_code ec, tcp::socket s) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      beast::error_code ignored;
      if (reg->count.load() >= opts.max_connections) {
        s.close(ignored);
      } else {
        s.set_option(tcp::no_delay(true), ignored);
        beast::tcp_stream ts(std::move(s));
        auto tls = current_tls();
        auto sess = tls ? std::make_shared<Session>(AnyStream(std::move(ts), *tls), handler.impl(), opts, reg, tls)
                        : std::make_shared<Session>(AnyStream(std::move(ts)), handler.impl(), opts, reg);
        if (reg->add(sess)) {
          sess->start();
          // set_tls ran between current_tls() and add(): its recheck_all
          // missed this one, made with the old context.
          if (auto now = current_tls(); now != tls) sess->recheck(std::move(now));
        }
      }
    }
    do_accept();  // transient errors (EMFILE...) must not stop the server
  }

  std::shared_ptr<TLSContext> current_tls() {
    std::lock_guard lk(tls_mu);
    return tls;
  }

  net::any_io_executor ex;
  Handler& handler;
  ServerOptions opts;  // opts.tls: the context at construction (tls below is the current one)
  std::mutex tls_mu;
  std::shared_ptr<TLSContext> tls = opts.tls;
  tcp::acceptor acceptor;
  std::shared_ptr<Registry> reg;
  std::atomic<bool> listening{false};
};

Server::Server(net::any_io_executor ex, Handler& handler, ServerOptions opts)
    : impl_(std::make_shared<Impl>(std::move(ex), handler, opts)) {}

Server::~Server() { stop(); }

result<std::uint16_t> Server::listen(const std::string& host, std::uint16_t port) {
  if (impl_->listening.exchange(true)) return make_error_code(errc::invalid_argument);
  if (impl_->opts.tls && !impl_->opts.tls->is_server()) return make_error_code(errc::tls_error);
  beast::error_code ec;
  auto addr = net::ip::make_address(host, ec);
  if (ec) return make_error_code(errc::invalid_argument);
  tcp::endpoint ep(addr, port);
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    a.close(ignored);
    return std::error_code(ec);
  }
  std::uint16_t actual = a.local_endpoint(ec).port();
  net::dispatch(a.get_executor(), [self = impl_] { self->do_accept(); });
  return actual;
}

void Server::stop() {
  net::post(impl_->acceptor.get_executor(), [self = impl_] {
    beast::error_code ignored;
    self->acceptor.close(ignored);
  });
  impl_->reg->stop_all();
}

std::size_t Server::connection_count() const noexcept { return impl_->reg->count.load(); }

result<void> Server::set_tls(std::shared_ptr<TLSContext> tls) {
  if (!tls || !impl_->opts.tls) return make_error_code(errc::invalid_argument);
  if (!tls->is_server()) return make_error_code(errc::tls_error);
  {
    std::lock_guard lk(impl_->tls_mu);
    impl_->tls = tls;
  }
  impl_->reg->recheck_all(tls);
  return {};
}

// ---------------------------------------------------------------- hook

void serve_raft_request(Handler& handler, beast::tcp_stream stream, Request req,
                        std::function<void(beast::tcp_stream)> give_back, const ServerOptions& opts) {
  auto s = std::make_shared<Session>(AnyStream(std::move(stream)), handler.impl(), opts, nullptr);
  s->start_with(std::move(req), [gb = std::move(give_back)](AnyStream& st) { gb(st.release_plain()); });
}

void serve_raft_request(Handler& handler, TLSBeastStream stream, Request req,
                        std::function<void(TLSBeastStream)> give_back, const ServerOptions& opts) {
  auto& reg = handler.impl().hooked;
  auto s = std::make_shared<Session>(AnyStream(std::move(stream)), handler.impl(), opts, reg);
  reg->add(s);
  s->start_with(std::move(req), [gb = std::move(give_back)](AnyStream& st) { gb(st.release_tls()); });
}

void recheck_raft_connections(Handler& handler, std::shared_ptr<TLSContext> now) {
  if (now) handler.impl().hooked->recheck_all(now);
}

bool peer_still_trusted(TLSBeastStream& stream, TLSContext& now) {
  return http_detail::peer_still_trusted(stream.native_handle(), now);
}

}  // namespace raft
