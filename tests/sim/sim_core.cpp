#include "sim_core.hpp"

#include <raft/error.hpp>

#include <algorithm>
#include <cstdio>

namespace raft::sim {

namespace {
template <class R>
result<R> fail(errc e) {
  return result<R>(boost::system::in_place_error, make_error_code(e));
}
}  // namespace

// ---------------------------------------------------------------------------
// Trace

std::string format_time(Clock::time_point t) {
  const auto ns = t.time_since_epoch().count();
  return fmt::format("{}.{:06}", ns / 1'000'000'000, (ns / 1000) % 1'000'000);
}

void Trace::line(std::string_view text) {
  std::string l = fmt::format("[{:>13}] {}\n", format_time(clock_.now()), text);
  if (out_) out_->append(l);
  if (echo_) std::fwrite(l.data(), 1, l.size(), stdout);
}

// ---------------------------------------------------------------------------
// Faults

NetFaults NetFaults::unreliable(Rng& r, Clock::duration election_timeout) {
  NetFaults f;
  f.drop_ppm = static_cast<std::uint32_t>(r.below(300'001));  // 0-30 %
  f.dup_ppm = static_cast<std::uint32_t>(r.below(100'001));   // 0-10 %
  f.delay_min = std::chrono::milliseconds(1);
  f.delay_max = std::chrono::milliseconds(r.range(5, 60));     // reordering within this window
  f.long_delay_ppm = static_cast<std::uint32_t>(r.below(30'001));
  f.long_delay_max = election_timeout * static_cast<Clock::duration::rep>(r.range(1, 4));
  f.ack_vanish_ppm = static_cast<std::uint32_t>(r.below(50'001));  // 0-5 %
  return f;
}

// ---------------------------------------------------------------------------
// Streams: a TCP connection from the follower (who opened it) to the leader
// (who writes). Bytes arrive in order; a lost packet or a cut link breaks the
// whole connection and both ends see an error; bytes are never lost in the
// middle of a live stream.

struct SimNetwork::Stream {
  struct Chunk {
    std::string bytes;
    std::function<void(std::error_code)> done;  // leader's write completion
    bool fin = false;
    std::error_code fin_ec;
  };
  std::uint64_t id = 0;
  int follower = 0, leader = 0;
  std::uint64_t fep = 0, lep = 0;
  StreamRequest req;
  StreamCallbacks cb;
  bool connected = false;  // the leader's Service has it
  bool closed = false;     // no more deliveries (broken, canceled or finished)
  bool end_called = false;
  std::error_code end_ec;
  bool busy = false;  // on_data outstanding (the follower has not called more)
  std::string current;
  Clock::time_point last_arrival{};
  std::deque<Chunk> in_flight;  // written, not yet at the follower (in order)
  std::deque<Chunk> arrived;    // at the follower, waiting for `more`
  bool writer_finished = false;
  bool credited = false;  // on_credit was called for the leader's first write
};

class SimStreamWriter final : public StreamWriter {
 public:
  SimStreamWriter(SimNetwork& net, std::shared_ptr<SimNetwork::Stream> s, std::shared_ptr<bool> net_alive)
      : net_(net), s_(std::move(s)), net_alive_(std::move(net_alive)) {}
  ~SimStreamWriter() override {
    // A writer dropped without finish() closes the connection.
    if (*net_alive_ && !s_->writer_finished) net_.stream_finish(s_, make_error_code(errc::transport_error));
  }
  void write(std::string_view bytes, std::function<void(std::error_code)> done) override {
    net_.stream_write(s_, bytes, std::move(done));
  }
  void finish(std::error_code ec) override {
    if (s_->writer_finished) return;
    net_.stream_finish(s_, ec);
  }

 private:
  SimNetwork& net_;
  std::shared_ptr<SimNetwork::Stream> s_;
  std::shared_ptr<bool> net_alive_;
};

class SimStreamHandle final : public StreamHandle {
 public:
  SimStreamHandle(SimNetwork& net, std::weak_ptr<SimNetwork::Stream> s, std::shared_ptr<bool> net_alive)
      : net_(net), s_(std::move(s)), net_alive_(std::move(net_alive)) {}
  void cancel() override {
    if (!*net_alive_) return;
    if (auto s = s_.lock()) net_.stream_cancel(s);
  }

 private:
  SimNetwork& net_;
  std::weak_ptr<SimNetwork::Stream> s_;
  std::shared_ptr<bool> net_alive_;
};

// ---------------------------------------------------------------------------
// SimNetwork


SimNetwork::SimNetwork(boost::asio::io_context& io, VirtualClock& clock, Rng rng, Trace& trace)
    : io_(io), clock_(clock), rng_(rng), trace_(trace), cut_(kMaxNodes * kMaxNodes, false) {}

SimNetwork::~SimNetwork() {
  *alive_ = false;
  for (auto& [id, s] : streams_) {
    s->cb = {};
    s->in_flight.clear();
    s->arrived.clear();
  }
  streams_.clear();
}

int SimNetwork::add_node(std::string url) {
  const int slot = static_cast<int>(nodes_.size());
  if (nodes_.size() >= kMaxNodes) throw std::runtime_error("SimNetwork: too many nodes");
  by_url_.emplace(url, slot);
  Node n;
  n.url = std::move(url);
  n.transport = std::make_unique<SimTransport>(*this, slot);
  nodes_.push_back(std::move(n));
  return slot;
}

int SimNetwork::slot_of(std::string_view url) const {
  auto it = by_url_.find(url);
  return it == by_url_.end() ? -1 : it->second;
}

void SimNetwork::attach(int slot, Service* svc) {
  auto& n = nodes_[static_cast<std::size_t>(slot)];
  ++n.epoch;
  n.svc = svc;
}

void SimNetwork::detach(int slot) {
  auto& n = nodes_[static_cast<std::size_t>(slot)];
  n.svc = nullptr;
  ++n.epoch;
  // Its connections die: the peer sees an error, the dead side nothing.
  std::vector<std::shared_ptr<Stream>> doomed;
  for (auto& [id, s] : streams_)
    if (s->follower == slot || s->leader == slot) doomed.push_back(s);
  for (auto& s : doomed) stream_break(s, make_error_code(errc::transport_error), "node crashed");
}

void SimNetwork::trace_link(int from, int to, bool up) {
  trace_("net link {}->{} {}", from, to, up ? "up" : "cut");
}

void SimNetwork::set_link(int from, int to, bool up) {
  if (from == to) return;
  if (cut_[index(from, to)] == !up) return;
  cut_[index(from, to)] = !up;
  trace_link(from, to, up);
  if (up) return;
  std::vector<std::shared_ptr<Stream>> doomed;
  for (auto& [id, s] : streams_)
    if ((s->follower == from && s->leader == to) || (s->follower == to && s->leader == from)) doomed.push_back(s);
  for (auto& s : doomed) stream_break(s, make_error_code(errc::transport_error), "link cut");
}

void SimNetwork::heal() {
  for (std::size_t a = 0; a < nodes_.size(); ++a)
    for (std::size_t b = 0; b < nodes_.size(); ++b) set_link(static_cast<int>(a), static_cast<int>(b), true);
}

void SimNetwork::isolate(int slot) {
  for (std::size_t b = 0; b < nodes_.size(); ++b) {
    set_link(slot, static_cast<int>(b), false);
    set_link(static_cast<int>(b), slot, false);
  }
}

void SimNetwork::partition(const std::vector<int>& side) {
  std::vector<bool> in(nodes_.size(), false);
  for (int s : side) in[static_cast<std::size_t>(s)] = true;
  for (std::size_t a = 0; a < nodes_.size(); ++a)
    for (std::size_t b = 0; b < nodes_.size(); ++b)
      set_link(static_cast<int>(a), static_cast<int>(b), in[a] == in[b]);
}

void SimNetwork::bridge(const std::vector<int>& a, const std::vector<int>& b, int br) {
  std::vector<int> side(nodes_.size(), -1);
  for (int s : a) side[static_cast<std::size_t>(s)] = 0;
  for (int s : b) side[static_cast<std::size_t>(s)] = 1;
  side[static_cast<std::size_t>(br)] = 2;
  for (std::size_t x = 0; x < nodes_.size(); ++x)
    for (std::size_t y = 0; y < nodes_.size(); ++y) {
      const bool ok = side[x] == side[y] || side[x] == 2 || side[y] == 2;
      set_link(static_cast<int>(x), static_cast<int>(y), ok);
    }
}

Clock::duration SimNetwork::delay() {
  if (faults_.long_delay_ppm && rng_.chance_ppm(faults_.long_delay_ppm))
    return rng_.duration(faults_.delay_max, std::max(faults_.delay_max, faults_.long_delay_max));
  return rng_.duration(faults_.delay_min, faults_.delay_max);
}

bool SimNetwork::drop() { return faults_.drop_ppm && rng_.chance_ppm(faults_.drop_ppm); }

void SimNetwork::after(Clock::duration d, std::function<void()> fn) { clock_.after(d, std::move(fn)); }

void SimNetwork::post(std::function<void()> fn) { boost::asio::post(io_, std::move(fn)); }

// ---- request / response ----

namespace {
template <class R>
struct Call {
  Handler_fn<R> h;
  int from = 0;
  std::uint64_t ep = 0;
  bool done = false;
};
}  // namespace

template <class R>
void SimNetwork::rpc(int from, const std::string& url, const char* what, std::string detail,
                     std::function<void(Service&, Handler_fn<R>)> call, Handler_fn<R> h, bool may_duplicate) {
  ++stats_.sent;
  auto c = std::make_shared<Call<R>>();
  c->h = std::move(h);
  c->from = from;
  c->ep = epoch(from);
  auto finish = [this, c, what](result<R> r) {
    if (c->done) return;
    c->done = true;
    auto h = std::move(c->h);
    c->h = nullptr;
    if (!alive(c->from, c->ep)) return;  // the caller crashed meanwhile
    h(std::move(r));
  };
  (void)what;
  const int to = slot_of(url);
  after(rpc_timeout, [finish] { finish(fail<R>(errc::transport_error)); });
  if (to < 0 || !up(to)) {  // connection refused, quickly
    trace_("net {}->{} {} {} refused", from, to, what, detail);
    after(delay(), [finish] { finish(fail<R>(errc::transport_error)); });
    return;
  }
  if (!link(from, to) || drop()) {
    ++stats_.dropped;
    trace_("net {}->{} {} {} lost", from, to, what, detail);
    return;  // the caller times out
  }
  const int copies = may_duplicate && faults_.dup_ppm && rng_.chance_ppm(faults_.dup_ppm) ? 2 : 1;
  if (copies == 2) ++stats_.duplicated;
  const std::uint64_t sender_cluster = nodes_[static_cast<std::size_t>(from)].transport->cluster_id();
  for (int k = 0; k < copies; ++k) {
    after(delay(), [this, finish, call, to, k, from, what, detail, sender_cluster] {
      if (!up(to)) {
        trace_("net {}->{} {} {} refused", from, to, what, detail);
        after(delay(), [finish] { finish(fail<R>(errc::transport_error)); });
        return;
      }
      ++stats_.delivered;
      Service& svc = *nodes_[static_cast<std::size_t>(to)].svc;
      const std::uint64_t tep = epoch(to);
      trace_("net {}->{} {} {}{}", from, to, what, detail, k ? " (duplicate)" : "");
      const std::uint64_t target_cluster = svc.cluster_id();
      if (sender_cluster && target_cluster && sender_cluster != target_cluster) {
        after(delay(), [finish] { finish(fail<R>(errc::cluster_id_mismatch)); });
        return;
      }
      call(svc, [this, finish, to, tep, k, from, what](result<R> r) mutable {
        if (k) return;                  // the duplicate's answer is not read
        if (!alive(to, tep)) return;    // answered by a dead incarnation
        if (!link(to, from) || drop()) {
          ++stats_.dropped;
          trace_("net {}->{} {} reply lost", to, from, what);
          return;
        }
        after(delay(), [this, finish, r = std::move(r), to, from, what]() mutable {
          trace_("net {}->{} {} reply {}", to, from, what, r ? std::string("ok") : r.error().message());
          finish(std::move(r));
        });
      });
    });
  }
}

template <class R>
void SimNetwork::hinted_rpc(int from, std::string url, const char* what, std::string detail,
                            std::function<void(Service&, Handler_fn<R>)> call, Handler_fn<R> h, bool may_duplicate,
                            int hops) {
  auto hint = std::make_shared<std::string>();
  rpc<R>(
      from, url, what, detail,
      [call, hint](Service& s, Handler_fn<R> reply) {
        *hint = s.status().leader_url;
        call(s, std::move(reply));
      },
      [this, from, url, what, detail, call, may_duplicate, hint, h = std::move(h), hops](result<R> r) mutable {
        if (!r && r.error() == make_error_code(errc::not_leader) && !hint->empty() && *hint != url && hops < 5) {
          hinted_rpc<R>(from, *hint, what, std::move(detail), std::move(call), std::move(h), may_duplicate, hops + 1);
          return;
        }
        h(std::move(r));
      },
      may_duplicate);
}

void SimTransport::join(const std::string& url, const JoinRequest& req, Handler_fn<JoinResponse> h) {
  std::string detail;
  if (net_.trace_.on()) detail = req.previous_id ? fmt::format("{} as {}", req.url, req.previous_id) : req.url;
  net_.hinted_rpc<JoinResponse>(
      slot_, url, "join", std::move(detail),
      [req](Service& s, Handler_fn<JoinResponse> reply) { s.handle_join(req, std::move(reply)); }, std::move(h),
      false);
}

void SimTransport::leave(const std::string& url, std::uint64_t id, Handler_fn<void> h) {
  net_.hinted_rpc<void>(
      slot_, url, "leave", net_.trace_.on() ? fmt::format("id={}", id) : std::string(),
      [id](Service& s, Handler_fn<void> reply) { s.handle_leave(id, std::move(reply)); }, std::move(h), false);
}

void SimTransport::heartbeat(const std::string& url, const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h) {
  net_.rpc<HeartbeatResponse>(
      slot_, url, "heartbeat",
      net_.trace_.on() ? fmt::format("term={} commit={} leader={}{}", req.term, req.commit_index, req.leader_id,
                                     req.timeout_now ? " timeout-now" : "")
                       : std::string(),
      [req](Service& s, Handler_fn<HeartbeatResponse> reply) { s.handle_heartbeat(req, std::move(reply)); },
      [this, url, h = std::move(h)](result<HeartbeatResponse> r) {
        if (r) r->protocol = net_.spoken(slot_, net_.slot_of(url));
        h(std::move(r));
      },
      true);
}

void SimTransport::request_vote(const std::string& url, const VoteRequest& req, Handler_fn<VoteResponse> h) {
  net_.rpc<VoteResponse>(
      slot_, url, "vote",
      net_.trace_.on() ? fmt::format("{}{}term={} candidate={} last={}/{}", req.pre_vote ? "pre-vote " : "",
                                     req.transfer ? "transfer " : "", req.term, req.candidate_id,
                                     req.last_log_index, req.last_log_term)
                       : std::string(),
      [req](Service& s, Handler_fn<VoteResponse> reply) { s.handle_vote(req, std::move(reply)); }, std::move(h),
      true);
}

void SimTransport::ack(const std::string& url, const AckRequest& req, Handler_fn<void> h) {
  if (net_.vanish_ack(slot_, url, h)) return;
  net_.rpc<void>(
      slot_, url, "ack",
      net_.trace_.on() ? fmt::format("id={} term={} index={}", req.id, req.term, req.index) : std::string(),
      [req, net = &net_, from = slot_, to = net_.slot_of(url)](Service& s, Handler_fn<void> reply) {
        // The Service answers success only once it counted the ack for
        // req.id: tell the checker who it was really from.
        s.handle_ack(req, [net, from, to, id = req.id, reply = std::move(reply)](result<void> r) mutable {
          if (r && net->on_credit) net->on_credit(to, from, id, "ack");
          reply(std::move(r));
        });
      },
      std::move(h), true);
}

void SimTransport::read_index(const std::string& url, const ReadIndexRequest& req, Handler_fn<std::uint64_t> h) {
  // Follows a not-leader answer's hint, as HTTPTransport does: a follower
  // whose leader changed reaches the new one instead of failing the read.
  net_.hinted_rpc<std::uint64_t>(
      slot_, url, "readIndex", net_.trace_.on() ? fmt::format("timeout={}ms", req.timeout_ms) : std::string(),
      [req](Service& s, Handler_fn<std::uint64_t> reply) { s.handle_read_index(req, std::move(reply)); },
      std::move(h), true);
}

bool SimNetwork::vanish_ack(int from, const std::string& url, Handler_fn<void>& h) {
  if (!faults_.ack_vanish_ppm) return false;
  const int to = slot_of(url);
  std::shared_ptr<Stream> carrier;  // the stream whose connection would carry the ack
  for (auto& [id, s] : streams_)
    if (s->follower == from && s->leader == to && !s->closed && s->connected) carrier = s;
  if (!carrier || !rng_.chance_ppm(faults_.ack_vanish_ppm)) return false;
  ++stats_.sent;
  ++stats_.dropped;
  trace_("net {}->{} ack vanished with stream {}", from, to, carrier->id);
  // As on a socket: the write completes at once, the connection is found
  // dead a little later.
  post([this, h = std::move(h), from, ep = epoch(from)] {
    if (alive(from, ep)) h(result<void>{});
  });
  after(delay(), [this, carrier] {
    stream_break(carrier, make_error_code(errc::transport_error), "ack lost on the stream's connection");
  });
  return true;
}

std::shared_ptr<StreamHandle> SimTransport::read_from(const std::string& url, const StreamRequest& req,
                                                      StreamCallbacks cb) {
  return net_.open_stream(slot_, url, req, std::move(cb));
}

// ---- streams ----

std::shared_ptr<StreamHandle> SimNetwork::open_stream(int follower, const std::string& url, const StreamRequest& req,
                                                      StreamCallbacks cb) {
  auto s = std::make_shared<Stream>();
  s->id = next_stream_id_++;
  s->follower = follower;
  s->fep = epoch(follower);
  s->leader = slot_of(url);
  s->req = req;
  s->req.protocol = spoken(follower, s->leader);
  s->cb = std::move(cb);
  ++stats_.streams_opened;
  auto handle = std::make_shared<SimStreamHandle>(*this, s, alive_);
  trace_("stream {} open {}->{} term={} after={}/{}", s->id, follower, s->leader, req.term, req.index, req.log_term);
  streams_.emplace(s->id, s);
  if (s->leader < 0 || !up(s->leader)) {
    after(delay(), [this, s] { stream_break(s, make_error_code(errc::transport_error), "connection refused"); });
    return handle;
  }
  s->lep = epoch(s->leader);
  if (!link(follower, s->leader) || !link(s->leader, follower) || drop()) {
    after(rpc_timeout, [this, s] { stream_break(s, make_error_code(errc::transport_error), "connect timeout"); });
    return handle;
  }
  const std::uint64_t sender_cluster = nodes_[static_cast<std::size_t>(follower)].transport->cluster_id();
  after(delay(), [this, s, sender_cluster] {
    if (s->closed) return;
    if (!alive(s->leader, s->lep)) {
      stream_break(s, make_error_code(errc::transport_error), "connection refused");
      return;
    }
    Service& svc = *nodes_[static_cast<std::size_t>(s->leader)].svc;
    if (sender_cluster && svc.cluster_id() && sender_cluster != svc.cluster_id()) {
      stream_break(s, make_error_code(errc::cluster_id_mismatch), "cluster id mismatch");
      return;
    }
    s->connected = true;
    s->last_arrival = clock_.now();
    trace_("stream {} accepted by {}", s->id, s->leader);
    svc.handle_stream(s->req, std::make_shared<SimStreamWriter>(*this, s, alive_));
  });
  return handle;
}

void SimNetwork::stream_write(const std::shared_ptr<Stream>& s, std::string_view bytes,
                              std::function<void(std::error_code)> done) {
  if (!s->credited && !s->writer_finished) {
    // The leader's first write: it serves this stream as node s->req.id.
    s->credited = true;
    if (on_credit && alive(s->leader, s->lep)) on_credit(s->leader, s->follower, s->req.id, "stream");
  }
  if (s->closed || s->writer_finished) {
    if (alive(s->leader, s->lep))
      post([done = std::move(done)] { done(make_error_code(errc::transport_error)); });
    return;
  }
  if (!link(s->leader, s->follower) || !link(s->follower, s->leader) || drop()) {
    ++stats_.dropped;
    s->in_flight.push_back(Stream::Chunk{std::string(), std::move(done), false, {}});
    stream_break(s, make_error_code(errc::transport_error), "packet lost");
    return;
  }
  stats_.stream_bytes += bytes.size();
  s->in_flight.push_back(Stream::Chunk{std::string(bytes), std::move(done), false, {}});
  const auto arrival = std::max(clock_.now() + delay(), s->last_arrival);
  s->last_arrival = arrival;
  after(arrival - clock_.now(), [this, s] { stream_arrive(s); });
}

void SimNetwork::stream_finish(const std::shared_ptr<Stream>& s, std::error_code ec) {
  if (s->writer_finished) return;
  s->writer_finished = true;
  if (s->closed) return;
  trace_("stream {} finish by {} {}", s->id, s->leader, ec ? ec.message() : std::string("ok"));
  s->in_flight.push_back(Stream::Chunk{std::string(), nullptr, true, ec});
  const auto arrival = std::max(clock_.now() + delay(), s->last_arrival);
  s->last_arrival = arrival;
  after(arrival - clock_.now(), [this, s] { stream_arrive(s); });
}

void SimNetwork::stream_arrive(const std::shared_ptr<Stream>& s) {
  if (s->closed || s->in_flight.empty()) return;
  s->arrived.push_back(std::move(s->in_flight.front()));
  s->in_flight.pop_front();
  stream_pump(s);
}

void SimNetwork::stream_pump(const std::shared_ptr<Stream>& s) {
  if (s->busy || s->end_called) return;
  if (s->closed) {
    // A broken stream is noticed by the reader only when it reads again.
    s->end_called = true;
    streams_.erase(s->id);
    auto cb = std::move(s->cb);
    s->cb = {};
    if (alive(s->follower, s->fep) && cb.on_end) {
      trace_("stream {} end at {}: {}", s->id, s->follower, s->end_ec.message());
      cb.on_end(s->end_ec);
    }
    return;
  }
  if (s->arrived.empty()) return;
  Stream::Chunk c = std::move(s->arrived.front());
  s->arrived.pop_front();
  if (c.fin) {
    s->closed = true;
    s->end_ec = c.fin_ec;
    stream_pump(s);
    return;
  }
  if (c.done && alive(s->leader, s->lep)) post([done = std::move(c.done)] { done({}); });
  if (!alive(s->follower, s->fep) || !s->cb.on_data) return;
  s->busy = true;
  s->current = std::move(c.bytes);
  trace_("stream {} deliver {} bytes to {}", s->id, s->current.size(), s->follower);
  auto more = [this, s, called = false, alive_flag = alive_]() mutable {
    if (called || !*alive_flag) return;
    called = true;
    post([this, s, alive_flag] {
      if (!*alive_flag) return;
      s->busy = false;
      s->current.clear();
      stream_pump(s);
    });
  };
  s->cb.on_data(std::string_view(s->current), std::move(more));
}

void SimNetwork::stream_break(const std::shared_ptr<Stream>& s, std::error_code ec, const char* why) {
  if (s->closed) return;
  s->closed = true;
  s->end_ec = ec;
  ++stats_.streams_broken;
  trace_("stream {} {}->{} broken: {}", s->id, s->follower, s->leader, why);
  // The leader's outstanding write fails.
  for (auto* q : {&s->in_flight, &s->arrived})
    for (auto& c : *q)
      if (c.done && alive(s->leader, s->lep)) post([done = std::move(c.done)] { done(make_error_code(errc::transport_error)); });
  s->in_flight.clear();
  s->arrived.clear();
  if (!alive(s->follower, s->fep)) {
    s->end_called = true;
    s->cb = {};
    streams_.erase(s->id);
    return;
  }
  post([this, s] { stream_pump(s); });
}

void SimNetwork::stream_cancel(const std::shared_ptr<Stream>& s) {
  if (s->end_called) return;
  trace_("stream {} canceled by {}", s->id, s->follower);
  if (!s->closed) {
    s->closed = true;
    for (auto* q : {&s->in_flight, &s->arrived})
      for (auto& c : *q)
        if (c.done && alive(s->leader, s->lep))
          post([done = std::move(c.done)] { done(make_error_code(errc::transport_error)); });
    s->in_flight.clear();
    s->arrived.clear();
  }
  s->end_ec = make_error_code(errc::canceled);
  // on_end runs even if on_data is outstanding: the reader asked to stop.
  s->busy = false;
  post([this, s] { stream_pump(s); });
}

// ---------------------------------------------------------------------------
// Checker

Checker::NodeObs& Checker::node(int slot) {
  if (static_cast<std::size_t>(slot) >= nodes_.size()) nodes_.resize(static_cast<std::size_t>(slot) + 1);
  return nodes_[static_cast<std::size_t>(slot)];
}

void Checker::violation(std::string what) {
  trace_("VIOLATION {}", what);
  violations_.push_back(std::move(what));
}

void Checker::leader(int slot, std::uint64_t id, std::uint64_t term, std::uint64_t last_index) {
  auto [it, inserted] = leader_of_term_.emplace(term, id);
  if (!inserted) {
    if (it->second != id || leader_slot_of_term_[term] != slot)
      violation(fmt::format("election safety: term {} has two leaders (id {} slot {}, id {} slot {})", term,
                            it->second, leader_slot_of_term_[term], id, slot));
    return;
  }
  leader_slot_of_term_[term] = slot;
  trace_("check leader of term {} is id {} (slot {})", term, id, slot);
  // Leader completeness (§5.4): whatever was committed before any node
  // reached this term is in this leader's log.
  const std::uint64_t committed = term < commit_at_term_start_.size() ? commit_at_term_start_[term] : 0;
  if (last_index < committed)
    violation(fmt::format("leader completeness: leader id {} of term {} has last index {} < {} committed before the term",
                          id, term, last_index, committed));
}

void Checker::begin_pass() { pass_commit_max_ = commit_max_; }

void Checker::end_pass() {}

void Checker::observe(int slot, std::uint64_t term, std::uint64_t commit, std::uint64_t applied) {
  NodeObs& n = node(slot);
  if (term < n.max_term)
    violation(fmt::format("monotone term: slot {} term went {} -> {}", slot, n.max_term, term));
  if (commit < n.commit)
    violation(fmt::format("monotone commit: slot {} commit went {} -> {}", slot, n.commit, commit));
  if (applied < n.observed_applied)
    violation(fmt::format("monotone applied: slot {} applied went {} -> {}", slot, n.observed_applied, applied));
  if (applied > commit) violation(fmt::format("applied {} > commit {} on slot {}", applied, commit, slot));
  n.max_term = std::max(n.max_term, term);
  n.commit = std::max(n.commit, commit);
  n.observed_applied = std::max(n.observed_applied, applied);
  // Terms this node is the first to reach start with what was committed by
  // the end of the previous pass (conservative: no false positives).
  if (term > max_term_) {
    if (commit_at_term_start_.size() <= term) commit_at_term_start_.resize(term + 1, 0);
    for (std::uint64_t t = max_term_ + 1; t <= term; ++t) commit_at_term_start_[t] = pass_commit_max_;
    max_term_ = term;
  }
  commit_max_ = std::max(commit_max_, commit);
}

void Checker::check_entry(int slot, std::uint64_t index, std::uint64_t term, LogEntryType type,
                          const std::string& data) {
  if (index == 0) {
    violation(fmt::format("slot {} applied index 0", slot));
    return;
  }
  if (type == LogEntryType::config || !is_valid_entry_type(static_cast<std::uint8_t>(type)))
    violation(fmt::format("slot {} applied an entry of type {} at {}", slot, static_cast<int>(type), index));
  if (global_.size() <= index) global_.resize(index + 1);
  Rec& r = global_[index];
  if (!r.set) {
    r.set = true;
    r.term = term;
    r.type = type;
    r.data = data;
    if (auto it = expected_.find(index); it != expected_.end()) {
      if (it->second != data || type != LogEntryType::command)
        violation(fmt::format("apply result: index {} was reported committed with '{}' but '{}' was applied",
                              index, it->second, data));
    }
    for (auto it = commit_checks_.lower_bound(index); it != commit_checks_.end() && it->first == index;
         it = commit_checks_.erase(it))
      if (it->second.first != term)
        violation(fmt::format("commit by counting: slot {} as leader of term {} committed index {} of term {} (§5.4.2)",
                              it->second.second, it->second.first, index, term));
    // Terms never decrease along the log.
    for (std::uint64_t i = index - 1; i > 0; --i)
      if (global_[i].set) {
        if (global_[i].term > term)
          violation(fmt::format("log order: index {} has term {} but earlier index {} has term {}", index, term, i,
                                global_[i].term));
        break;
      }
    return;
  }
  if (r.term != term || r.type != type || r.data != data)
    violation(fmt::format("state machine safety: slot {} applied ({}, term {}, {} '{}') at index {} where "
                          "(term {}, {} '{}') was applied before",
                          slot, index, term, to_string(type), data, index, r.term, to_string(r.type), r.data));
}

void Checker::applied(int slot, const LogEntry& e) {
  NodeObs& n = node(slot);
  if (e.index != n.applied + 1)
    violation(fmt::format("apply order: slot {} applied index {} after {}", slot, e.index, n.applied));
  n.applied = e.index;
  check_entry(slot, e.index, e.term, e.type, e.data);
  check_readable(slot, e);
}

void Checker::check_readable(int slot, const LogEntry& e) {
  if (old_builds.count(slot) > 0 && (e.type == LogEntryType::joint_voters || e.type == LogEntryType::leave_joint))
    violation(fmt::format("slot {}, a build without joint consensus, holds the {} entry {}", slot, to_string(e.type),
                          e.index));
}

void Checker::restored(int slot, std::uint64_t index, const std::vector<LogEntry>& entries) {
  NodeObs& n = node(slot);
  if (index < n.applied)
    violation(fmt::format("restore: slot {} restored a snapshot at {} below its applied index {}", slot, index,
                          n.applied));
  trace_("check slot {} restored snapshot at {}", slot, index);
  // (Not check_readable: a snapshot's data is the FSM's, which here keeps
  // every entry it applied; an old build reads only the snapshot's
  // configuration, checked by SimCluster::check.)
  for (const auto& e : entries) check_entry(slot, e.index, e.term, e.type, e.data);
  n.applied = index;
}

void Checker::restarted(int slot) {
  NodeObs& n = node(slot);
  n.commit = 0;
  n.applied = 0;
  n.observed_applied = 0;
}

void Checker::reopened(int slot) { node(slot).commit = 0; }

void Checker::leader_commit(int slot, std::uint64_t term, std::uint64_t commit) {
  if (known(commit)) {
    if (global_[commit].term != term)
      violation(fmt::format("commit by counting: slot {} as leader of term {} committed index {} of term {} (§5.4.2)",
                            slot, term, commit, global_[commit].term));
    return;
  }
  commit_checks_.emplace(commit, std::make_pair(term, slot));
}

void Checker::apply_succeeded(std::uint64_t index, const std::string& data) {
  auto [it, inserted] = expected_.emplace(index, data);
  if (!inserted && it->second != data)
    violation(fmt::format("apply result: index {} returned for both '{}' and '{}'", index, it->second, data));
  if (known(index) && (global_[index].data != data || global_[index].type != LogEntryType::command))
    violation(fmt::format("apply result: index {} reported committed with '{}' but '{}' was applied", index, data,
                          global_[index].data));
}

void Checker::read_succeeded(int slot, std::uint64_t floor, std::uint64_t index) {
  if (index < floor)
    violation(fmt::format("stale read: slot {} answered read_index with {}, but {} was committed when it was asked "
                          "(thesis §6.4)",
                          slot, index, floor));
}

// ---------------------------------------------------------------------------
// SimFsm

void SimFsm::must_apply(const LogEntry& e) {
  if (dead_) return;
  checker_.applied(slot_, e);
  entries_.push_back(e);
  index_ = e.index;
}

result<std::uint64_t> SimFsm::snapshot(Writer& w) {
  std::string out;
  out.reserve(8 + entries_.size() * 40);
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((index_ >> (i * 8)) & 0xff));
  for (const auto& e : entries_) encode_entry(out, e);
  if (auto r = write_all(w, out); !r) return r.error();
  return index_;
}

result<void> SimFsm::restore(Reader& r) {
  if (dead_) return make_error_code(errc::closed);
  std::string in;
  std::byte buf[4096];
  for (;;) {
    auto n = r.read(buf);
    if (!n) return n.error();
    if (*n == 0) break;
    in.append(reinterpret_cast<const char*>(buf), *n);
  }
  if (in.size() < 8) return make_error_code(errc::snapshot_corrupt);
  std::uint64_t index = 0;
  for (int i = 0; i < 8; ++i) index = (index << 8) | static_cast<unsigned char>(in[static_cast<std::size_t>(i)]);
  StringReader sr(std::string_view(in).substr(8));
  LogEntryDecoder dec(sr);
  std::vector<LogEntry> entries;
  for (;;) {
    LogEntry e;
    auto got = dec.decode(e);
    if (!got) return got.error();
    if (!*got) break;
    entries.push_back(std::move(e));
  }
  checker_.restored(slot_, index, entries);
  entries_ = std::move(entries);
  index_ = index;
  return {};
}

}  // namespace raft::sim
