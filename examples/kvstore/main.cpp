// raft-kv: a replicated key-value service built on raft::Log.
//
// One port serves both the Raft endpoints (/raft/*, through raft's Beast
// hook) and the client API:
//   PUT    /kv/{key}            body = value            -> 204 once applied
//   PUT    /kv/{key}?prev=V     compare-and-set         -> 204, or 412
//   PUT    /kv/{key}?prev=      only if absent          -> 204, or 412
//   GET    /kv/{key}                                    -> 200 value, or 404
//   DELETE /kv/{key}                                    -> 204
// Writes go through the log; a follower answers a write with 307 to the
// leader, or 503 with Retry-After when no leader is known. Any node serves
// a read: it takes a read barrier (raft::Log::read_barrier: the leader
// confirms with one heartbeat round that it still leads, no log entry, no
// disk write; a follower asks the leader for that index; the call returns
// once this node's FSM has applied it), then reads its own map: answers are
// linearizable wherever they are served.
#include "kvstore/kv_fsm.hpp"

#include <raft/http.hpp>
#include <raft/http_beast.hpp>
#include <raft/http_beast_tls.hpp>
#include <raft/log.hpp>
#include <raft/run.hpp>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/url.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr const char* kUsage = R"(usage: raft-kv --dir DIR --listen HOST:PORT [options]

A replicated key-value service on raft::Log.

  --dir DIR               data directory (meta, log, snapshots). An empty DIR
                          without --join initializes a new cluster; with --join
                          it joins one; an existing DIR reopens and rejoins.
  --listen HOST:PORT      address to serve the client API and /raft/* on
  --join URL              join the cluster through any member, e.g.
                          http://127.0.0.1:8001 (ignored if DIR has a cluster):
                          as a learner first, promoted to voter once it has
                          caught up (no majority waits for it meanwhile)
  --learner               with --join: stay a learner (non-voting member)
                          that serves reads without counting toward any
                          majority; POST /admin/promote?id=ID on the leader
                          makes it a voter
  --lease-reads           GETs answered by the leader's lease, without a
                          heartbeat round (LogOptions::lease_reads): give it
                          to every node, with clocks that do not jump
  --auth-token-file PATH  the cluster's shared secret, one line of visible
                          ASCII: /raft/* (but the ping) and /admin/* then
                          require `Authorization: Bearer <token>`, and this
                          node sends it to its peers. Give every member the
                          same file. Clear text on the wire: keep the
                          cluster's network private.
  --tls-cert FILE         serve and talk to peers over TLS (https://) with this
  --tls-key FILE          PEM certificate chain and key; it must name the host
                          of --advertise (its IP address or DNS name)
  --tls-key-password-file FILE
                          the passphrase of an encrypted --tls-key (its first
                          line)
  --tls-ca FILE           the CA that signs the members' certificates
                          (default: the system's CA store)
  --tls-crl FILE          refuse peers and clients whose certificate a CRL
                          (PEM, from the CAs of --tls-ca) in FILE revokes;
                          strict: a certificate from a CA with no current CRL
                          in FILE is refused too. Reload it (SIGHUP) before
                          its next update passes
  --tls-client-certs      mutual TLS: refuse clients (peers, and API clients
                          such as curl --cert) without a certificate from
                          --tls-ca; this node presents --tls-cert to its peers.
                          SIGHUP reads the --tls-* files again (renewed
                          certificates, a new CRL): new connections use them,
                          and open ones whose peer they refuse are closed
  --advertise URL         URL other nodes use to reach this one
                          (default: http://HOST:PORT of --listen, https://
                          with --tls-cert)
  --snapshot-entries N    take a snapshot and compact the log every N applied
                          entries (default 10000; 0 disables)
  --no-sync               never fsync. FOR BENCHMARKS ONLY: acknowledged writes
                          can be lost on a crash.
  --busy-poll US          network threads keep polling US microseconds after
                          each burst of traffic before they sleep
                          (raft::run_polling): lower commit latency where
                          cores are to spare, worse next to CPU-bound work.
                          Default 0 (off).
  --test-faults           enable the test-only fault endpoint
                          POST /test/block?peers=URL,URL (drop traffic to those
                          peers; empty list heals). Never use in production.
  --quiet                 do not print the Log's diagnostics
  --help                  this text

Client API: PUT/GET/DELETE /kv/{key}, PUT /kv/{key}?prev=V (compare-and-set).
Admin: POST /admin/transfer-leadership[?to=ID] hands leadership to node ID
(default: the member furthest along), e.g. before stopping the leader.
POST /admin/promote?id=ID makes learner ID a voter once it has caught up;
POST /admin/demote?id=ID makes voter ID a learner.
POST /admin/voters?ids=ID,ID,... makes exactly those members the voters in
one change (joint consensus), the others learners; the answer is the new
configuration's index (409 while a member runs a build without joint
consensus: upgrade it first).
POST /admin/snapshot (any node) snapshots this node's state now and compacts
its log; the answer is the snapshot's index.
)";

struct Options {
  std::string dir, listen, join, advertise, auth_token;
  std::string tls_cert, tls_key, tls_ca, tls_key_password_file, tls_crl;
  bool tls_client_certs = false;
  std::uint64_t snapshot_entries = 10000;
  bool no_sync = false, test_faults = false, quiet = false, learner = false, lease_reads = false;
  std::chrono::microseconds busy_poll{0};
};

// ----------------------------------------------------------------------------
// Test-only fault injection: drops this node's traffic to chosen peers. The
// chaos nemesis blocks both directions by telling both nodes.
class FaultyTransport final : public raft::Transport {
 public:
  FaultyTransport(raft::Transport& inner, net::any_io_executor ex) : inner_(inner), ex_(std::move(ex)) {}

  void block(std::set<std::string> peers) {
    std::vector<std::shared_ptr<raft::StreamHandle>> cut;
    {
      std::lock_guard lk(mu_);
      blocked_ = std::move(peers);
      for (auto it = streams_.begin(); it != streams_.end();) {
        auto h = it->second.lock();
        if (!h) {
          it = streams_.erase(it);
          continue;
        }
        if (blocked_.count(it->first)) cut.push_back(h);
        ++it;
      }
    }
    for (auto& h : cut) h->cancel();
  }

  void set_cluster_id(std::uint64_t id) override { inner_.set_cluster_id(id); }
  void join(const std::string& url, const raft::JoinRequest& req, raft::Handler_fn<raft::JoinResponse> h) override {
    if (refuse(url, h)) return;
    inner_.join(url, req, std::move(h));
  }
  void leave(const std::string& url, std::uint64_t id, raft::Handler_fn<void> h) override {
    if (refuse(url, h)) return;
    inner_.leave(url, id, std::move(h));
  }
  void heartbeat(const std::string& url, const raft::HeartbeatRequest& req,
                 raft::Handler_fn<raft::HeartbeatResponse> h) override {
    if (refuse(url, h)) return;
    inner_.heartbeat(url, req, std::move(h));
  }
  void request_vote(const std::string& url, const raft::VoteRequest& req, raft::Handler_fn<raft::VoteResponse> h) override {
    if (refuse(url, h)) return;
    inner_.request_vote(url, req, std::move(h));
  }
  void ack(const std::string& url, const raft::AckRequest& req, raft::Handler_fn<void> h) override {
    if (refuse(url, h)) return;
    inner_.ack(url, req, std::move(h));
  }
  void read_index(const std::string& url, const raft::ReadIndexRequest& req,
                  raft::Handler_fn<std::uint64_t> h) override {
    if (refuse(url, h)) return;
    inner_.read_index(url, req, std::move(h));
  }
  std::shared_ptr<raft::StreamHandle> read_from(const std::string& url, const raft::StreamRequest& req,
                                                raft::StreamCallbacks cb) override {
    if (is_blocked(url)) {
      net::post(ex_, [cb] { cb.on_end(raft::errc::transport_error); });
      return std::make_shared<NoStream>();
    }
    auto h = inner_.read_from(url, req, std::move(cb));
    std::lock_guard lk(mu_);
    streams_.emplace(url, h);
    return h;
  }

 private:
  struct NoStream final : raft::StreamHandle {
    void cancel() override {}
  };
  bool is_blocked(const std::string& url) {
    std::lock_guard lk(mu_);
    return blocked_.count(url) > 0;
  }
  template <class T>
  bool refuse(const std::string& url, raft::Handler_fn<T>& h) {
    if (!is_blocked(url)) return false;
    net::post(ex_, [h = std::move(h)] { h(raft::result<T>(boost::system::in_place_error, make_error_code(raft::errc::transport_error))); });
    return true;
  }

  raft::Transport& inner_;
  net::any_io_executor ex_;
  std::mutex mu_;
  std::set<std::string> blocked_;
  std::multimap<std::string, std::weak_ptr<raft::StreamHandle>> streams_;
};

// ----------------------------------------------------------------------------
struct Node {
  Options opts;
  kvstore::KvFsm fsm{1u << 20};
  raft::Log* log = nullptr;
  raft::Handler* handler = nullptr;
  FaultyTransport* faults = nullptr;
  raft::ServerOptions server_opts;
  // The port speaks TLS when set (a server context); SIGHUP replaces it.
  std::shared_ptr<raft::TLSContext> current_tls() {
    std::lock_guard lk(tls_mu);
    return tls;
  }
  std::mutex tls_mu;
  std::shared_ptr<raft::TLSContext> tls;
};

// The TLS contexts of --tls-*: the port's (server) and the peers' (client).
struct TLSPair {
  std::shared_ptr<raft::TLSContext> server, client;
};
// The first line of a file of secrets (without a CRLF's CR), or nullopt
// when it cannot be read.
std::optional<std::string> read_first_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  if (!f || !std::getline(f, line)) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::optional<TLSPair> load_tls(const Options& o, std::string& why) {
  raft::TLSOptions t{o.tls_cert, o.tls_key, o.tls_ca};
  if (!o.tls_key_password_file.empty()) {
    // Read at each load, so that SIGHUP takes a new passphrase with a new key.
    auto pw = read_first_line(o.tls_key_password_file);
    if (!pw) {
      why = "--tls-key-password-file: cannot read " + o.tls_key_password_file;
      return std::nullopt;
    }
    t.private_key_password = std::move(*pw);
  }
  t.crl_file = o.tls_crl;
  t.require_client_certificate = o.tls_client_certs;
  auto server = raft::TLSContext::server(t, &why);
  if (!server) return std::nullopt;
  t.require_client_certificate = false;
  auto client = raft::TLSContext::client(t, &why);
  if (!client) return std::nullopt;
  return TLSPair{*server, *client};
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Node& node) : node_(node), ex_(socket.get_executor()), tls_ctx_(node.current_tls()) {
    if (tls_ctx_) tls_.emplace(std::move(socket), raft::native_context(*tls_ctx_));
    else stream_.emplace(std::move(socket));
  }
  void run() {
    net::dispatch(ex_, [self = shared_from_this()] {
      if (!self->tls_) return self->do_read();
      self->tcp_layer().expires_after(std::chrono::seconds(10));
      self->tls_->async_handshake(net::ssl::stream_base::server, [self](beast::error_code ec) {
        if (!ec) self->do_read();  // else: dropped, as a malformed request is
      });
    });
  }

 private:
  // The connection's TCP layer (deadlines, shutdown), plain or under TLS.
  beast::tcp_stream& tcp_layer() { return tls_ ? beast::get_lowest_layer(*tls_) : *stream_; }
  template <class F>
  void with_stream(F&& f) {
    if (tls_) f(*tls_);
    else f(*stream_);
  }

  void do_read() {
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(kvstore::kMaxValueBytes + 1024);
    tcp_layer().expires_after(std::chrono::seconds(60));
    with_stream([&](auto& s) {
      http::async_read(s, buffer_, *parser_, beast::bind_front_handler(&Session::on_read, shared_from_this()));
    });
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::body_limit) return reply_text(http::status::payload_too_large, "value too large", false);
    if (ec == http::error::header_limit) return reply_text(http::status::request_header_fields_too_large, "headers too large", false);
    if (ec) return;  // closed, timed out or malformed: drop the connection
    if (tls_ && !still_trusted()) return;  // dropped, as a malformed request is
    req_ = parser_->release();
    if (raft::is_raft_target(req_.target())) {
      // Until given back, the connection belongs to raft.
      if (tls_) {
        raft::serve_raft_request(*node_.handler, std::move(*tls_), std::move(req_),
                                 [self = shared_from_this()](raft::TLSBeastStream s) {
                                   self->tls_.emplace(std::move(s));
                                   self->do_read();
                                 },
                                 node_.server_opts);
        tls_.reset();
        return;
      }
      raft::serve_raft_request(*node_.handler, std::move(*stream_), std::move(req_),
                               [self = shared_from_this()](beast::tcp_stream s) {
                                 self->stream_.emplace(std::move(s));
                                 self->do_read();
                               },
                               node_.server_opts);
      stream_.reset();
      return;
    }
    handle();
  }

  // A connection opened under certificates that SIGHUP has replaced since:
  // its client must pass the new ones too (a CRL that now revokes it, a CA
  // no longer trusted). Checked once per new context, before a request is
  // served; raft::recheck_raft_connections covers the connections that are
  // in raft's hands meanwhile (streams).
  bool still_trusted() {
    auto now = node_.current_tls();
    if (now == checked_) return true;
    if (!raft::peer_still_trusted(*tls_, *now)) return false;
    checked_ = std::move(now);
    return true;
  }

  void handle() {
    auto url = boost::urls::parse_origin_form(req_.target());
    if (!url) return reply_text(http::status::bad_request, "malformed target", true);
    const std::string path = url->path();
    if (node_.opts.test_faults && path == "/test/block" && req_.method() == http::verb::post) {
      std::set<std::string> peers;
      if (auto it = url->params().find("peers"); it != url->params().end()) {
        std::string list = (*it).value;
        std::size_t start = 0;
        while (start < list.size()) {
          auto comma = list.find(',', start);
          if (comma == std::string::npos) comma = list.size();
          if (comma > start) peers.insert(list.substr(start, comma - start));
          start = comma + 1;
        }
      }
      node_.faults->block(std::move(peers));
      return reply_text(http::status::no_content, "", true);
    }
    if (path == "/admin/snapshot") {
      if (!authorized()) return reply_text(http::status::unauthorized, "unauthorized", true);
      if (req_.method() != http::verb::post) return reply_text(http::status::method_not_allowed, "use POST", true);
      return start_snapshot();
    }
    if (path == "/admin/voters") {
      if (!authorized()) return reply_text(http::status::unauthorized, "unauthorized", true);
      if (req_.method() != http::verb::post) return reply_text(http::status::method_not_allowed, "use POST", true);
      auto it = url->params().find("ids");
      std::vector<std::uint64_t> ids;
      const std::string v = it == url->params().end() ? std::string() : std::string((*it).value);
      for (std::size_t at = 0; at <= v.size() && !v.empty();) {
        const std::size_t comma = std::min(v.find(',', at), v.size());
        std::uint64_t id = 0;
        auto [p, ec] = std::from_chars(v.data() + at, v.data() + comma, id);
        if (ec != std::errc() || p != v.data() + comma || comma == at) {
          ids.clear();
          break;
        }
        ids.push_back(id);
        at = comma + 1;
      }
      if (ids.empty()) return reply_text(http::status::bad_request, "ids: node ids separated by commas", true);
      return start_set_voters(std::move(ids));
    }
    if (path == "/admin/transfer-leadership" || path == "/admin/promote" || path == "/admin/demote") {
      if (!authorized()) return reply_text(http::status::unauthorized, "unauthorized", true);
      if (req_.method() != http::verb::post) return reply_text(http::status::method_not_allowed, "use POST", true);
      const bool transfer = path == "/admin/transfer-leadership";
      const char* key = transfer ? "to" : "id";
      std::uint64_t id = 0;  // transfer: 0 is the member furthest along
      auto it = url->params().find(key);
      if (it != url->params().end()) {
        const std::string v = (*it).value;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), id);
        if (ec != std::errc() || p != v.data() + v.size() || v.empty())
          return reply_text(http::status::bad_request, std::string(key) + ": a node id", true);
      } else if (!transfer) {
        return reply_text(http::status::bad_request, "id: a node id is required", true);
      }
      if (transfer) return start_transfer(id);
      return path == "/admin/promote" ? start_promote(id) : start_demote(id);
    }
    if (path.rfind("/kv/", 0) != 0) return reply_text(http::status::not_found, "not found", true);
    std::string key = path.substr(4);
    if (key.empty()) return reply_text(http::status::bad_request, "empty key", true);
    if (key.size() > kvstore::kMaxKeyBytes) return reply_text(http::status::bad_request, "key over 1024 bytes", true);

    if (req_.method() == http::verb::get) return start_read(std::move(key));
    std::optional<kvstore::Command> cmd;
    switch (req_.method()) {
      case http::verb::delete_: cmd = kvstore::Command::del(key); break;
      case http::verb::put: {
        auto prev = url->params().find("prev");
        if (prev != url->params().end()) {
          std::string p = (*prev).value;
          cmd = kvstore::Command::cas(key, p.empty() ? std::nullopt : std::optional<std::string>(p), req_.body());
        } else {
          cmd = kvstore::Command::put(key, req_.body());
        }
        break;
      }
      default: return reply_text(http::status::method_not_allowed, "method not allowed (use GET, PUT or DELETE)", true);
    }
    if (auto why = kvstore::validate(*cmd); !why.empty()) return reply_text(http::status::bad_request, std::string(why), true);
    if (node_.log->state() != raft::State::leader) return redirect();
    auto bytes = kvstore::encode_command(*cmd);
    if (!bytes) return reply_text(http::status::bad_request, bytes.error().message(), true);
    node_.log->start_apply(std::move(*bytes), std::chrono::seconds(5), [self = shared_from_this()](raft::result<std::uint64_t> r) {
      net::post(self->ex_, [self, r] { self->on_applied_index(r); });
    });
  }

  // Hands leadership to node `to` (raft::Log::transfer_leadership), e.g.
  // before this node is stopped for maintenance. 204 once it stepped down.
  void start_transfer(std::uint64_t to) {
    if (node_.log->state() != raft::State::leader) return redirect();
    node_.log->start_transfer_leadership(to, std::chrono::seconds(5), [self = shared_from_this()](raft::result<void> r) {
      net::post(self->ex_,
                [self, r] { self->reply_admin(r, "transfer not done in time; still leader"); });
    });
  }

  // Admin calls change the cluster: with --auth-token-file they need the
  // token, as /raft/* does (raft::HandlerOptions::auth_token).
  bool authorized() const {
    if (node_.opts.auth_token.empty()) return true;
    return req_.count(http::field::authorization) == 1 && node_.handler->authorizes(req_[http::field::authorization]);
  }

  // The answer to an admin call (a transfer, a promotion): 204 once done.
  void reply_admin(raft::result<void> r, const char* timed_out) {
    if (r) return reply_text(http::status::no_content, "", true);
    const auto e = r.error();
    if (e == raft::errc::not_leader) return redirect();
    if (e == raft::errc::node_not_found) return reply_text(http::status::not_found, e.message(), true);
    if (e == raft::errc::invalid_node_id || e == raft::errc::not_voter)
      return reply_text(http::status::bad_request, e.message(), true);
    if (e == raft::errc::change_in_progress || e == raft::errc::transfer_in_progress)
      return reply_text(http::status::conflict, e.message(), true, true);
    if (e == raft::errc::timeout) return reply_text(http::status::gateway_timeout, timed_out, true);
    reply_text(http::status::service_unavailable, e.message(), true, true);
  }

  // Makes learner `id` a voter (raft::Log::promote_peer) once it holds the
  // leader's log. 204 once the promotion committed.
  void start_promote(std::uint64_t id) {
    if (node_.log->state() != raft::State::leader) return redirect();
    node_.log->start_promote_peer(id, std::chrono::seconds(30), [self = shared_from_this()](raft::result<void> r) {
      net::post(self->ex_,
                [self, r] { self->reply_admin(r, "the learner did not catch up in time; still a learner"); });
    });
  }

  // Makes voter `id` a learner (raft::Log::demote_peer), e.g. before moving
  // it to a machine that should not hold up majorities. 204 once committed;
  // demoting this leader itself hands leadership to the voters.
  void start_demote(std::uint64_t id) {
    if (node_.log->state() != raft::State::leader) return redirect();
    node_.log->start_demote_peer(id, [self = shared_from_this()](raft::result<void> r) {
      net::post(self->ex_, [self, r] {
        if (!r && r.error() == raft::errc::invalid_argument)
          return self->reply_text(http::status::bad_request, "the last voter cannot be demoted", true);
        self->reply_admin(r, "demotion not committed in time");
      });
    });
  }

  // Makes exactly `ids` the voters, the other members learners, in one
  // change (raft::Log::set_voters, joint consensus), e.g. to move the
  // cluster's majority to new machines that joined as learners. 200 with
  // the new configuration's index once committed.
  void start_set_voters(std::vector<std::uint64_t> ids) {
    if (node_.log->state() != raft::State::leader) return redirect();
    node_.log->start_set_voters(std::move(ids), std::chrono::seconds(30), [self = shared_from_this()](raft::result<std::uint64_t> r) {
      net::post(self->ex_, [self, r] {
        if (!r && r.error() == raft::errc::invalid_argument)
          return self->reply_text(http::status::bad_request, r.error().message(), true);
        // A member runs a build without joint consensus (its id is in the
        // leader's log): retrying will not help until it is upgraded.
        if (!r && r.error() == raft::errc::unsupported_protocol)
          return self->reply_text(http::status::conflict,
                                  r.error().message() + ": a member runs an older build; upgrade it first", true);
        if (!r)
          return self->reply_admin(raft::result<void>(boost::system::in_place_error, r.error()),
                                   "the new voters did not catch up in time; nothing changed");
        self->reply_text(http::status::ok, std::to_string(*r), true);
      });
    });
  }

  // Snapshots this node's FSM now and compacts its log (raft::Log::snapshot),
  // e.g. after a burst of writes, before copying the data directory. 200 with
  // the snapshot's index.
  void start_snapshot() {
    node_.log->start_snapshot([self = shared_from_this()](raft::result<std::uint64_t> r) {
      net::post(self->ex_, [self, r] {
        if (!r) return self->reply_text(http::status::service_unavailable, r.error().message(), true, true);
        self->reply_text(http::status::ok, std::to_string(*r), true);
      });
    });
  }

  void start_read(std::string key) {
    node_.log->start_read_barrier(std::chrono::seconds(5), [self = shared_from_this(), key = std::move(key)](
                                                               raft::result<std::uint64_t> r) mutable {
      net::post(self->ex_, [self, key = std::move(key), r] { self->on_read_barrier(key, r); });
    });
  }

  void on_read_barrier(const std::string& key, raft::result<std::uint64_t> r) {
    if (!r) {
      if (r.error() == raft::errc::not_leader) return redirect();
      if (r.error() == raft::errc::timeout) return reply_text(http::status::gateway_timeout, "read not confirmed in time; retry", true, true);
      return reply_text(http::status::service_unavailable, r.error().message(), true, true);
    }
    // The FSM has applied at least the read index: every write that
    // completed before this read is in the map (later ones may be too).
    auto v = node_.fsm.get(key);
    if (!v) return reply_text(http::status::not_found, "no such key", true);
    reply(http::status::ok, *v, "application/octet-stream", true);
  }

  void on_applied_index(raft::result<std::uint64_t> r) {
    if (!r) {
      if (r.error() == raft::errc::not_leader) return redirect();
      if (r.error() == raft::errc::timeout) return reply_text(http::status::gateway_timeout, "timed out; the write may still apply", true);
      return reply_text(http::status::service_unavailable, r.error().message(), true, true);
    }
    const std::uint64_t index = *r;
    node_.log->start_wait(index, std::chrono::seconds(5), [self = shared_from_this(), index](raft::result<void> w) {
      net::post(self->ex_, [self, index, w] {
        if (!w) return self->reply_text(http::status::gateway_timeout, "committed, but not applied in time", true);
        auto out = self->node_.fsm.result_of(index);
        if (!out) return self->reply_text(http::status::internal_server_error, "outcome no longer known", true);
        using S = kvstore::Outcome::Status;
        if (out->status == S::invalid) return self->reply_text(http::status::bad_request, "invalid command", true);
        if (out->status == S::cas_failed) return self->reply_text(http::status::precondition_failed, "current value differs", true);
        self->reply_text(http::status::no_content, "", true);
      });
    });
  }

  void redirect() {
    auto [id, url] = node_.log->leader();
    if (id == 0 || url.empty() || id == node_.log->id()) {
      return reply_text(http::status::service_unavailable, "no leader; retry", true, true);
    }
    http::response<http::string_body> res{http::status::temporary_redirect, req_.version()};
    res.set(http::field::location, url + std::string(req_.target()));
    res.set(http::field::content_type, "text/plain");
    res.body() = "not the leader: " + url + "\n";
    send(std::move(res), true);
  }

  void reply_text(http::status st, std::string text, bool keep, bool retry = false) {
    if (!text.empty()) text += "\n";
    http::response<http::string_body> res{st, req_.version() ? req_.version() : 11};
    if (retry) res.set(http::field::retry_after, "1");
    res.set(http::field::content_type, "text/plain");
    res.body() = std::move(text);
    send(std::move(res), keep);
  }
  void reply(http::status st, std::string body, const char* type, bool keep) {
    http::response<http::string_body> res{st, req_.version()};
    res.set(http::field::content_type, type);
    res.body() = std::move(body);
    send(std::move(res), keep);
  }
  void send(http::response<http::string_body> res, bool keep) {
    res.keep_alive(keep && req_.keep_alive());
    res.prepare_payload();
    auto sp = std::make_shared<http::response<http::string_body>>(std::move(res));
    tcp_layer().expires_after(std::chrono::seconds(30));
    with_stream([&](auto& s) {
      http::async_write(s, *sp, [self = shared_from_this(), sp](beast::error_code ec, std::size_t) {
        if (ec || !sp->keep_alive()) {
          beast::error_code ignored;
          self->tcp_layer().socket().shutdown(tcp::socket::shutdown_send, ignored);
          return;
        }
        self->do_read();
      });
    });
  }

  Node& node_;
  net::any_io_executor ex_;                   // the connection's strand
  std::shared_ptr<raft::TLSContext> tls_ctx_;  // what tls_ uses: outlives it, whatever SIGHUP loads
  std::shared_ptr<raft::TLSContext> checked_ = tls_ctx_;  // the newest context the client was checked against
  std::optional<beast::tcp_stream> stream_;   // plain HTTP, or
  std::optional<raft::TLSBeastStream> tls_;   // TLS (Node::tls)
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(net::io_context& io, tcp::endpoint ep, Node& node) : io_(io), acceptor_(net::make_strand(io)), node_(node) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(net::socket_base::max_listen_connections);
  }
  void run() { do_accept(); }
  void stop() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
    });
  }

 private:
  void do_accept() {
    acceptor_.async_accept(net::make_strand(io_), [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
      if (ec == net::error::operation_aborted) return;
      if (!ec) {
        s.set_option(tcp::no_delay(true));
        std::make_shared<Session>(std::move(s), self->node_)->run();
      }
      self->do_accept();
    });
  }
  net::io_context& io_;
  tcp::acceptor acceptor_;
  Node& node_;
};

// The token in `path`: its first line, without the line end. Refused
// (std::invalid_argument) if unreadable, empty, or not visible ASCII (it
// goes into an HTTP header).
std::string read_auth_token(const std::string& path) {
  auto first = read_first_line(path);
  if (!first) throw std::invalid_argument("--auth-token-file: cannot read " + path);
  std::string line = std::move(*first);
  if (line.empty()) throw std::invalid_argument("--auth-token-file: " + path + " starts with an empty line");
  for (unsigned char ch : line)
    if (ch < 0x21 || ch > 0x7e)
      throw std::invalid_argument("--auth-token-file: the token must be visible ASCII (no spaces or control characters)");
  return line;
}

bool parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      out = argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--dir") value(o.dir);
    else if (a == "--listen") value(o.listen);
    else if (a == "--join") value(o.join);
    else if (a == "--advertise") value(o.advertise);
    else if (a == "--tls-cert") value(o.tls_cert);
    else if (a == "--tls-key") value(o.tls_key);
    else if (a == "--tls-ca") value(o.tls_ca);
    else if (a == "--tls-key-password-file") value(o.tls_key_password_file);
    else if (a == "--tls-crl") value(o.tls_crl);
    else if (a == "--tls-client-certs") o.tls_client_certs = true;
    else if (a == "--auth-token-file") {
      std::string path;
      value(path);
      o.auth_token = read_auth_token(path);
    } else if (a == "--snapshot-entries") {
      std::string v;
      value(v);
      std::size_t pos = 0;
      o.snapshot_entries = std::stoull(v, &pos);
      if (pos != v.size()) throw std::invalid_argument("--snapshot-entries needs a number");
    } else if (a == "--busy-poll") {
      std::string v;
      value(v);
      std::size_t pos = 0;
      const long long us = std::stoll(v, &pos);
      if (pos != v.size() || us < 0) throw std::invalid_argument("--busy-poll needs a number of microseconds >= 0");
      o.busy_poll = std::chrono::microseconds(us);
    } else if (a == "--no-sync") o.no_sync = true;
    else if (a == "--test-faults") o.test_faults = true;
    else if (a == "--learner") o.learner = true;
    else if (a == "--lease-reads") o.lease_reads = true;
    else if (a == "--quiet") o.quiet = true;
    else throw std::invalid_argument("unknown argument " + a);
  }
  if (o.dir.empty() || o.listen.empty()) throw std::invalid_argument("--dir and --listen are required");
  if (o.learner && o.join.empty()) throw std::invalid_argument("--learner needs --join (a new cluster's first node votes)");
  if (o.tls_cert.empty() != o.tls_key.empty()) throw std::invalid_argument("--tls-cert and --tls-key go together");
  if (o.tls_cert.empty() &&
      (!o.tls_ca.empty() || o.tls_client_certs || !o.tls_key_password_file.empty() || !o.tls_crl.empty()))
    throw std::invalid_argument(
        "--tls-ca, --tls-crl, --tls-client-certs and --tls-key-password-file need --tls-cert and --tls-key");
  if (!o.tls_crl.empty() && o.tls_ca.empty()) throw std::invalid_argument("--tls-crl needs --tls-ca");
  if (o.advertise.empty()) o.advertise = (o.tls_cert.empty() ? "http://" : "https://") + o.listen;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  try {
    parse_args(argc, argv, opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "raft-kv: %s\n\n%s", e.what(), kUsage);
    return 2;
  }
  const auto colon = opts.listen.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "raft-kv: --listen must be HOST:PORT\n");
    return 2;
  }
  boost::system::error_code ec;
  const auto addr = net::ip::make_address(opts.listen.substr(0, colon), ec);
  int port = 0;
  try {
    port = std::stoi(opts.listen.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (ec || port < 0 || port > 65535) {
    std::fprintf(stderr, "raft-kv: bad --listen address %s\n", opts.listen.c_str());
    return 2;
  }
  if (opts.no_sync)
    std::fprintf(stderr,
                 "raft-kv: WARNING: --no-sync: nothing is fsynced. Acknowledged writes CAN BE LOST on a crash.\n"
                 "raft-kv: WARNING: use --no-sync for benchmarks only.\n");

  net::io_context io;
  net::io_context storage_io(1), apply_io(1);
  auto work = net::make_work_guard(io);
  auto storage_work = net::make_work_guard(storage_io);
  auto apply_work = net::make_work_guard(apply_io);

  Node node;
  node.opts = opts;
  raft::HTTPTransportOptions hto;
  hto.auth_token = opts.auth_token;
  if (!opts.tls_cert.empty()) {
    std::string why;
    auto tls = load_tls(opts, why);
    if (!tls) {
      std::fprintf(stderr, "raft-kv: %s\n", why.c_str());
      return 2;
    }
    node.tls = tls->server;
    hto.tls = tls->client;
  }
  raft::HTTPTransport http_transport(io.get_executor(), hto);
  FaultyTransport faults(http_transport, io.get_executor());
  node.faults = &faults;

  raft::LogOptions lo;
  lo.url = opts.advertise;
  lo.fsm = &node.fsm;
  lo.transport = &faults;
  lo.executor = io.get_executor();
  lo.storage_executor = storage_io.get_executor();
  lo.apply_executor = apply_io.get_executor();
  lo.sync = !opts.no_sync;
  lo.lease_reads = opts.lease_reads;
  lo.snapshot_threshold_entries = opts.snapshot_entries;
  // Compaction deletes whole segments: keep segments small next to the
  // snapshot interval so the log really shrinks (about 128 B per entry).
  lo.segment_size_bytes_max = std::clamp<std::uint64_t>(opts.snapshot_entries * 128, 64u << 10, 64u << 20);
  if (!opts.quiet)
    lo.logger = [](std::string_view line) { std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data()); };
  raft::Log log(lo);
  node.log = &log;
  raft::Handler handler(log, {.auth_token = opts.auth_token});
  node.handler = &handler;

  if (auto r = log.open(opts.dir); !r) {
    std::fprintf(stderr, "raft-kv: cannot open %s: %s\n", opts.dir.c_str(), r.error().message().c_str());
    return 1;
  }
  std::shared_ptr<Listener> listener;
  try {
    listener = std::make_shared<Listener>(io, tcp::endpoint(addr, static_cast<unsigned short>(port)), node);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "raft-kv: cannot listen on %s: %s\n", opts.listen.c_str(), e.what());
    return 1;
  }
  listener->run();

  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&] { raft::run_polling(io, opts.busy_poll); });
  threads.emplace_back([&] { storage_io.run(); });
  threads.emplace_back([&] { apply_io.run(); });

  int rc = 0;
  if (log.id() == 0) {
    if (!opts.join.empty()) {
      auto r = log.join(opts.join, {.learner = opts.learner, .catch_up_first = !opts.learner});
      if (!r) {
        std::fprintf(stderr, "raft-kv: join %s failed: %s\n", opts.join.c_str(), r.error().message().c_str());
        rc = 1;
      }
    } else if (auto r = log.initialize(); !r) {
      std::fprintf(stderr, "raft-kv: initialize failed: %s\n", r.error().message().c_str());
      rc = 1;
    }
  }
  if (rc == 0) {
    std::fprintf(stderr, "raft-kv: node %llu serving %s (advertised %s), data in %s\n",
                 static_cast<unsigned long long>(log.id()), opts.listen.c_str(), opts.advertise.c_str(), opts.dir.c_str());
    // Block until SIGINT/SIGTERM. With TLS, SIGHUP reads the --tls-* files
    // again (renewed certificates, a new CRL): new connections, in and out,
    // use them; open ones keep theirs unless their peer is one the new
    // files refuse. Files that fail to load change nothing.
    net::io_context sig_io;
    net::signal_set signals(sig_io, SIGINT, SIGTERM);
    if (node.current_tls()) signals.add(SIGHUP);
    for (;;) {
      int got = 0;
      signals.async_wait([&](const boost::system::error_code& e, int sig) { got = e ? 0 : sig; });
      sig_io.restart();
      sig_io.run();
      if (got != SIGHUP) break;
      std::string why;
      if (auto tls = load_tls(opts, why)) {
        {
          std::lock_guard lk(node.tls_mu);
          node.tls = tls->server;
        }
        // Open connections whose peer the new files refuse are closed: the
        // streams raft serves here, and the peers' streams this node reads
        // (set_tls); the others are checked at their next request.
        raft::recheck_raft_connections(*node.handler, tls->server);
        (void)http_transport.set_tls(tls->client);  // a client context: cannot fail
        std::fprintf(stderr, "raft-kv: SIGHUP: TLS certificates reloaded\n");
      } else {
        std::fprintf(stderr, "raft-kv: SIGHUP: keeping the current certificates: %s\n", why.c_str());
      }
    }
    std::fprintf(stderr, "raft-kv: shutting down\n");
  }
  listener->stop();
  (void)log.close();
  work.reset();
  storage_work.reset();
  apply_work.reset();
  io.stop();
  storage_io.stop();
  apply_io.stop();
  for (auto& t : threads) t.join();
  return rc;
}
