// A minimal deterministic cluster for the Log's unit tests: every node on one
// io_context, a VirtualClock, in-memory filesystems, and a loss-free
// in-memory transport (the fault-injecting one is the simulator's, in
// tests/sim). Time moves only through run_until().
#pragma once

#include <raft/log.hpp>
#include <raft/storage/memory_filesystem.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

namespace raft::test {

// Records applied entries; in memory, so index() is 0 after a restart.
class RecordingFsm final : public FSM {
 public:
  void must_apply(const LogEntry& e) override {
    if (e.index != applied_index + 1 && applied_index != 0 && e.index <= applied_index) {
      duplicate = true;
    }
    applied_index = e.index;
    if (e.type == LogEntryType::command) commands.push_back(e);
  }
  std::uint64_t index() override { return applied_index; }
  result<std::uint64_t> snapshot(Writer& w) override {
    ++snapshot_attempts;
    if (fail_snapshots) return errc::io_error;
    std::string out;
    for (auto& e : commands) encode_entry(out, e);
    if (auto r = write_all(w, out); !r) return r.error();
    return applied_index;
  }
  result<void> restore(Reader& r) override {
    commands.clear();
    LogEntryDecoder dec(r);
    LogEntry e;
    for (;;) {
      auto ok = dec.decode(e);
      if (!ok) return ok.error();
      if (!*ok) break;
      commands.push_back(e);
    }
    applied_index = commands.empty() ? 0 : commands.back().index;
    return {};
  }
  std::uint64_t applied_index = 0;
  bool duplicate = false;
  std::vector<LogEntry> commands;
  bool fail_snapshots = false;  // snapshot() fails with errc::io_error
  int snapshot_attempts = 0;
};

class LocalNetwork;

class LocalTransport final : public Transport {
 public:
  LocalTransport(LocalNetwork& net, std::string self) : net_(net), self_(std::move(self)) {}
  void set_cluster_id(std::uint64_t id) override { cluster_id_ = id; }
  void join(const std::string& url, const JoinRequest& req, Handler_fn<JoinResponse> h) override;
  void leave(const std::string& url, std::uint64_t id, Handler_fn<void> h) override;
  void heartbeat(const std::string& url, const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h) override;
  void request_vote(const std::string& url, const VoteRequest& req, Handler_fn<VoteResponse> h) override;
  void ack(const std::string& url, const AckRequest& req, Handler_fn<void> h) override;
  void read_index(const std::string& url, const ReadIndexRequest& req, Handler_fn<std::uint64_t> h) override;
  std::shared_ptr<StreamHandle> read_from(const std::string& url, const StreamRequest& req, StreamCallbacks cb) override;

 private:
  LocalNetwork& net_;
  std::string self_;
  std::uint64_t cluster_id_ = 0;
};

struct LocalStream;

class LocalNetwork {
 public:
  boost::asio::io_context io;
  VirtualClock clock;
  std::map<std::string, Service*> services;
  std::map<std::string, bool> down;  // url -> unreachable
  // Nodes of a build that speaks another protocol version (raft/http.hpp):
  // every call and stream to or from them fails with unsupported_protocol,
  // as the HTTP Server (refusing the request) or HTTPTransport (refusing
  // the reply) makes it.
  std::set<std::string> other_protocol;
  bool mismatched(const std::string& a, const std::string& b) const {
    return other_protocol.count(a) > 0 || other_protocol.count(b) > 0;
  }
  // Nodes that speak an older protocol version than kProtocolVersion, as
  // a build of that version would: heartbeats to them and streams from
  // them are in the older of the two sides' versions, as HTTPTransport and
  // the Server agree on it (HeartbeatResponse::protocol,
  // StreamRequest::protocol).
  std::map<std::string, std::uint32_t> speaks;
  // Heartbeats to these nodes fail (transport_error); everything else,
  // their streams and acks included, goes through.
  std::set<std::string> drop_heartbeats_to;
  std::uint32_t spoken(const std::string& a, const std::string& b) const {
    auto v = [&](const std::string& u) {
      auto it = speaks.find(u);
      return it == speaks.end() ? kProtocolVersion : it->second;
    };
    return std::min(v(a), v(b));
  }
  // When set and true for an ack: the ack is lost the way HTTPTransport's
  // ack channel loses one. The sender hears success (its bytes were
  // written), nothing is delivered, and its streams from that leader end
  // (the connection that carried the ack died).
  std::function<bool(const std::string& from, const AckRequest&)> vanish_ack;
  // While set, acks wait here undelivered (a slow network for acks only);
  // release_acks() sends them on.
  bool hold_acks = false;
  std::vector<std::function<void()>> held_acks;
  void release_acks() {
    hold_acks = false;
    run_held(held_acks);
  }
  std::uint64_t heartbeats_sent = 0;
  // While set, the replies to heartbeats sent meanwhile are kept here (each
  // written by its follower at the time, delivered late by
  // release_heartbeat_replies(), whatever the network looks like then).
  bool hold_heartbeat_replies = false;
  std::vector<std::function<void()>> held_heartbeat_replies;
  void release_heartbeat_replies() { run_held(held_heartbeat_replies); }
  // While set, answers to join requests sent meanwhile are kept here, never
  // delivered unless run_held() is called on them (a lost answer).
  bool hold_join_replies = false;
  std::vector<std::function<void()>> held_join_replies;
  // Forwarded reads (Transport::read_index) sent, and, while set, their
  // answers kept back like heartbeat replies.
  std::uint64_t read_index_requests = 0;
  bool hold_read_index_replies = false;
  std::vector<std::function<void()>> held_read_index_replies;
  void release_read_index_replies() {
    hold_read_index_replies = false;
    run_held(held_read_index_replies);
  }
  // Runs (and empties) a queue of held deliveries, in the order held.
  static void run_held(std::vector<std::function<void()>>& held) {
    auto now = std::move(held);
    held.clear();
    for (auto& f : now) f();
  }
  std::vector<std::weak_ptr<LocalStream>> streams;

  Service* find(const std::string& url) {
    auto it = services.find(url);
    if (it == services.end() || down[url]) return nullptr;
    return it->second;
  }
  template <class T>
  void deliver(const std::string& from, const std::string& to, std::function<void(Service&, Handler_fn<T>)> call,
               Handler_fn<T> h) {
    boost::asio::post(io, [this, from, to, call = std::move(call), h = std::move(h)]() mutable {
      Service* s = down[from] ? nullptr : find(to);
      if (!s) return h(result<T>(boost::system::in_place_error, make_error_code(errc::transport_error)));
      if (mismatched(from, to))
        return h(result<T>(boost::system::in_place_error, make_error_code(errc::unsupported_protocol)));
      call(*s, [this, from, h = std::move(h)](result<T> r) mutable {
        boost::asio::post(io, [this, from, r = std::move(r), h = std::move(h)]() mutable {
          if (down[from]) return;
          h(std::move(r));
        });
      });
    });
  }
  // Runs until pred() holds or `limit` of virtual time passes.
  bool run_until(const std::function<bool()>& pred, Clock::duration limit = std::chrono::seconds(30)) {
    const auto end = clock.now() + limit;
    for (int steps = 0; steps < 10'000'000; ++steps) {
      io.poll();
      io.restart();
      if (pred()) return true;
      auto next = clock.next_deadline();
      if (!next || *next > end) break;
      clock.fire_next();
    }
    io.poll();
    io.restart();
    return pred();
  }
  void run_for(Clock::duration d) {
    const auto end = clock.now() + d;
    run_until([&] { return clock.now() >= end; }, d);
  }
};

struct LocalStream final : StreamHandle, StreamWriter, std::enable_shared_from_this<LocalStream> {
  LocalNetwork* net;
  std::string follower_url, leader_url;
  StreamCallbacks cb;
  bool closed = false;
  void cancel() override { end(make_error_code(errc::canceled)); }
  void end(std::error_code ec) {
    if (closed) return;
    closed = true;
    boost::asio::post(net->io, [cb = cb, ec] { cb.on_end(ec); });
  }
  void write(std::string_view bytes, std::function<void(std::error_code)> done) override {
    boost::asio::post(net->io, [self = shared_from_this(), data = std::string(bytes), done = std::move(done)]() mutable {
      if (self->closed || self->net->down[self->follower_url] || self->net->down[self->leader_url]) {
        self->end(make_error_code(errc::transport_error));
        return done(make_error_code(errc::transport_error));
      }
      // A node restarted as a build of another protocol version: the old
      // connection is gone.
      if (self->net->mismatched(self->follower_url, self->leader_url)) {
        self->end(make_error_code(errc::unsupported_protocol));
        return done(make_error_code(errc::transport_error));
      }
      // The bytes must stay valid until `more` runs (StreamCallbacks).
      auto held = std::make_shared<std::string>(std::move(data));
      self->cb.on_data(*held, [self, held, done = std::move(done)] {
        boost::asio::post(self->net->io, [done] { done({}); });
      });
    });
  }
  void finish(std::error_code ec) override { end(ec ? ec : make_error_code(errc::transport_error)); }
};

inline void LocalTransport::join(const std::string& url, const JoinRequest& req, Handler_fn<JoinResponse> h) {
  if (net_.hold_join_replies) {
    h = [this, inner = std::move(h)](result<JoinResponse> r) mutable {
      net_.held_join_replies.push_back([inner = std::move(inner), r]() mutable { inner(std::move(r)); });
    };
  }
  // Follows the leader hint as HTTPTransport does.
  auto attempt = std::make_shared<std::function<void(std::string, int)>>();
  *attempt = [this, req, h, attempt](std::string target, int hops) {
    net_.deliver<JoinResponse>(
        self_, target, [req](Service& s, Handler_fn<JoinResponse> k) { s.handle_join(req, std::move(k)); },
        [this, h, attempt, target, hops](result<JoinResponse> r) {
          if (!r && r.error() == errc::not_leader && hops < 3) {
            if (auto* s = net_.find(target)) {
              auto leader = s->status().leader_url;
              if (!leader.empty()) return (*attempt)(leader, hops + 1);
            }
          }
          *attempt = nullptr;  // the function holds itself: break the cycle
          h(std::move(r));
        });
  };
  (*attempt)(url, 0);
}
inline void LocalTransport::leave(const std::string& url, std::uint64_t id, Handler_fn<void> h) {
  net_.deliver<void>(self_, url, [id](Service& s, Handler_fn<void> k) { s.handle_leave(id, std::move(k)); }, std::move(h));
}
inline void LocalTransport::heartbeat(const std::string& url, const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h) {
  ++net_.heartbeats_sent;
  if (net_.hold_heartbeat_replies) {
    h = [this, inner = std::move(h)](result<HeartbeatResponse> r) mutable {
      net_.held_heartbeat_replies.push_back([inner = std::move(inner), r]() mutable { inner(std::move(r)); });
    };
  }
  h = [this, url, inner = std::move(h)](result<HeartbeatResponse> r) mutable {
    if (r) r->protocol = net_.spoken(self_, url);
    if (net_.drop_heartbeats_to.count(url) > 0) r = make_error_code(errc::transport_error);
    inner(std::move(r));
  };
  net_.deliver<HeartbeatResponse>(
      self_, url, [req](Service& s, Handler_fn<HeartbeatResponse> k) { s.handle_heartbeat(req, std::move(k)); }, std::move(h));
}
inline void LocalTransport::request_vote(const std::string& url, const VoteRequest& req, Handler_fn<VoteResponse> h) {
  net_.deliver<VoteResponse>(
      self_, url, [req](Service& s, Handler_fn<VoteResponse> k) { s.handle_vote(req, std::move(k)); }, std::move(h));
}
inline void LocalTransport::ack(const std::string& url, const AckRequest& req, Handler_fn<void> h) {
  if (net_.vanish_ack && net_.vanish_ack(self_, req)) {
    // In this order, as on a socket: the write completes, then the
    // connection is found dead.
    boost::asio::post(net_.io, [h = std::move(h)] { h(result<void>{}); });
    for (auto& w : net_.streams)
      if (auto s = w.lock(); s && s->follower_url == self_ && s->leader_url == url) s->end(make_error_code(errc::transport_error));
    return;
  }
  auto send = [this, url, req, h = std::move(h)]() mutable {
    net_.deliver<void>(self_, url, [req](Service& s, Handler_fn<void> k) { s.handle_ack(req, std::move(k)); }, std::move(h));
  };
  if (net_.hold_acks) return net_.held_acks.push_back(std::move(send));
  send();
}
inline void LocalTransport::read_index(const std::string& url, const ReadIndexRequest& req, Handler_fn<std::uint64_t> h) {
  ++net_.read_index_requests;
  if (net_.hold_read_index_replies) {
    h = [this, inner = std::move(h)](result<std::uint64_t> r) mutable {
      net_.held_read_index_replies.push_back([inner = std::move(inner), r]() mutable { inner(std::move(r)); });
    };
  }
  net_.deliver<std::uint64_t>(
      self_, url, [req](Service& s, Handler_fn<std::uint64_t> k) { s.handle_read_index(req, std::move(k)); }, std::move(h));
}
inline std::shared_ptr<StreamHandle> LocalTransport::read_from(const std::string& url, const StreamRequest& req,
                                                               StreamCallbacks cb) {
  auto s = std::make_shared<LocalStream>();
  s->net = &net_;
  s->follower_url = self_;
  s->leader_url = url;
  s->cb = std::move(cb);
  net_.streams.push_back(s);
  boost::asio::post(net_.io, [this, s, url, req] {
    Service* svc = net_.down[self_] ? nullptr : net_.find(url);
    if (!svc) return s->end(make_error_code(errc::transport_error));
    if (net_.mismatched(self_, url)) return s->end(make_error_code(errc::unsupported_protocol));
    StreamRequest r = req;
    r.protocol = net_.spoken(self_, url);
    svc->handle_stream(r, s);
  });
  return s;
}

// A node: its filesystem survives crashes; its Log does not.
struct LocalNode {
  std::string url;
  storage::MemoryFilesystem fs{7};
  RecordingFsm fsm;
  std::unique_ptr<LocalTransport> transport;
  std::unique_ptr<Log> log;
};

class LocalCluster {
 public:
  LocalNetwork net;
  std::vector<std::unique_ptr<LocalNode>> nodes;
  std::uint64_t seed = 1;
  std::uint64_t starts_ = 0;
  std::function<void(LogOptions&)> tweak;  // adjusts every node's options

  LocalNode& add(LogOptions::Fault fault = LogOptions::Fault::none) {
    auto n = std::make_unique<LocalNode>();
    n->url = "http://n" + std::to_string(nodes.size() + 1);
    n->transport = std::make_unique<LocalTransport>(net, n->url);
    nodes.push_back(std::move(n));
    start(*nodes.back(), fault);
    return *nodes.back();
  }
  void start(LocalNode& n, LogOptions::Fault fault = LogOptions::Fault::none) {
    LogOptions o;
    o.url = n.url;
    o.fsm = &n.fsm;
    o.transport = n.transport.get();
    o.clock = &net.clock;
    o.executor = o.storage_executor = o.apply_executor = net.io.get_executor();
    o.filesystem = &n.fs;
    // Each node and each restart draws its own sequence.
    auto rng = std::make_shared<std::uint64_t>(seed * 7919 + std::hash<std::string>{}(n.url) + 104729 * ++starts_);
    o.rand = [rng] { return (*rng = *rng * 6364136223846793005ull + 1442695040888963407ull) >> 11; };
    o.inject_fault = fault;
    if (tweak) tweak(o);
    if (std::getenv("RAFT_TEST_LOG")) {
      o.logger = [this](std::string_view line) {
        std::fprintf(stderr, "%10lld %.*s\n",
                     static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(net.clock.now().time_since_epoch()).count()),
                     static_cast<int>(line.size()), line.data());
      };
    }
    n.log = std::make_unique<Log>(std::move(o));
    net.services[n.url] = n.log.get();
    auto r = n.log->open("/data");
    if (!r) throw std::runtime_error("open: " + r.error().message());
  }
  void crash(LocalNode& n) {
    n.log->crash_for_testing();
    net.io.poll();
    net.io.restart();
    n.fs.crash();
    net.services.erase(n.url);
    n.log.reset();
    n.fsm = RecordingFsm{};
  }
  LocalNode* leader() {
    for (auto& n : nodes)
      if (n->log && n->log->state() == State::leader) return n.get();
    return nullptr;
  }
  // Every node but `l`, in node order.
  std::vector<LocalNode*> others(const LocalNode* l) {
    std::vector<LocalNode*> v;
    for (auto& n : nodes)
      if (n.get() != l) v.push_back(n.get());
    return v;
  }
  std::size_t leaders() {
    std::size_t k = 0;
    for (auto& n : nodes)
      if (n->log && n->log->state() == State::leader) ++k;
    return k;
  }
  template <class T, class Start>
  result<T> call(Start start) {
    std::optional<result<T>> out;
    start([&](result<T> r) { out = std::move(r); });
    net.run_until([&] { return out.has_value(); }, std::chrono::seconds(60));
    if (!out) return errc::timeout;
    return *out;
  }
  result<std::uint64_t> apply(LocalNode& n, std::string cmd) {
    return call<std::uint64_t>([&](auto h) { n.log->start_apply(std::move(cmd), {}, std::move(h)); });
  }
  result<void> initialize(LocalNode& n) {
    return call<void>([&](auto h) { n.log->start_initialize(std::move(h)); });
  }
  result<void> join(LocalNode& n, const std::string& url, JoinOptions opts = {}) {
    return call<void>([&](auto h) { n.log->start_join(url, opts, std::move(h)); });
  }
};

}  // namespace raft::test
