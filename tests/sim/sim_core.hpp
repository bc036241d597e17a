// The deterministic simulator's building blocks that do not need raft::Log:
// seeded randomness, the event trace, a drifting clock view, the in-memory
// network (requests, responses and TCP-like streams, with faults), the test
// FSM and the invariant checker. DESIGN section 7.
//
// Determinism: everything runs on one thread, on one io_context, with time
// from one VirtualClock. Every random choice comes from an Rng forked from the
// run's seed. Containers iterated by the simulator are ordered by small
// integers (node slots, stream ids), never by pointers.
#pragma once

#include <raft/clock.hpp>
#include <raft/fsm.hpp>
#include <raft/log_entry.hpp>
#include <raft/transport.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace raft::sim {

// ---------------------------------------------------------------------------
// Seeded randomness. std::mt19937_64's sequence is fixed by the standard; we
// do our own reduction (x % n) so that no implementation-defined distribution
// is involved.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : g_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  std::uint64_t next() { return g_(); }
  std::uint64_t below(std::uint64_t n) { return n ? g_() % n : 0; }
  // Inclusive range.
  std::uint64_t range(std::uint64_t lo, std::uint64_t hi) { return lo + below(hi - lo + 1); }
  bool chance_ppm(std::uint64_t ppm) { return below(1'000'000) < ppm; }
  bool one_in(std::uint64_t n) { return below(n) == 0; }
  Clock::duration duration(Clock::duration lo, Clock::duration hi) {
    return Clock::duration(static_cast<Clock::duration::rep>(range(static_cast<std::uint64_t>(lo.count()),
                                                                    static_cast<std::uint64_t>(hi.count()))));
  }
  Rng fork() { return Rng(next()); }

 private:
  std::mt19937_64 g_;
};

// ---------------------------------------------------------------------------
// The event trace: one line per event, virtual timestamps only. Disabled
// traces cost one branch per event (callers test `on()` before formatting).
class Trace {
 public:
  explicit Trace(const VirtualClock& clock) : clock_(clock) {}
  bool on() const { return out_ != nullptr || echo_; }
  // Lines are appended to *out (if set) and, with echo, written to stdout.
  void capture(std::string* out) { out_ = out; }
  void echo(bool e) { echo_ = e; }
  void line(std::string_view text);
  template <class... A>
  void operator()(fmt::format_string<A...> f, A&&... a) {
    if (on()) line(fmt::format(f, std::forward<A>(a)...));
  }

 private:
  const VirtualClock& clock_;
  std::string* out_ = nullptr;
  bool echo_ = false;
};

// Formats a virtual time as seconds with microseconds, e.g. "12.345678".
std::string format_time(Clock::time_point t);

// ---------------------------------------------------------------------------
// Clock drift: a node's view of the shared VirtualClock, running `permille`
// / 1000 as fast. Timers of a crashed incarnation never fire (kill()).
class DriftClock final : public Clock {
 public:
  DriftClock(VirtualClock& base, std::uint32_t permille)
      : base_(base), permille_(permille ? permille : 1000), alive_(std::make_shared<bool>(true)) {}
  time_point now() const override {
    return time_point(duration(base_.now().time_since_epoch().count() * permille_ / 1000));
  }
  std::shared_ptr<Timer> after(duration d, std::function<void()> fn) override {
    const auto scaled = duration(d.count() * 1000 / permille_);
    return base_.after(scaled, [alive = alive_, fn = std::move(fn)] {
      if (*alive) fn();
    });
  }
  void kill() { *alive_ = false; }
  std::uint32_t permille() const { return permille_; }

 private:
  VirtualClock& base_;
  std::int64_t permille_;
  std::shared_ptr<bool> alive_;
};

// ---------------------------------------------------------------------------
// Network faults. Probabilities are parts per million.
struct NetFaults {
  std::uint32_t drop_ppm = 0;       // a request, response or stream packet is lost
  std::uint32_t dup_ppm = 0;        // a request is delivered twice
  Clock::duration delay_min = std::chrono::milliseconds(1);
  Clock::duration delay_max = std::chrono::milliseconds(5);
  std::uint32_t long_delay_ppm = 0;  // this share of messages waits up to long_delay_max
  Clock::duration long_delay_max = std::chrono::milliseconds(0);
  // An ack sent while the sender reads a stream from the receiver is lost
  // the way HTTPTransport's ack channel loses one: the sender is told it was
  // sent (its bytes were written) and the connection, hence the stream,
  // breaks before the leader reads them.
  std::uint32_t ack_vanish_ppm = 0;

  static NetFaults reliable() { return {}; }
  // Drawn from the seed: drop 0-30 %, duplication, reordering through random
  // delays, and occasional delays of up to several election timeouts.
  static NetFaults unreliable(Rng& r, Clock::duration election_timeout);
};

class SimNetwork;

// What a node's Log calls: one per node slot, alive across incarnations.
class SimTransport final : public Transport {
 public:
  SimTransport(SimNetwork& net, int slot) : net_(net), slot_(slot) {}
  void set_cluster_id(std::uint64_t id) override { cluster_id_ = id; }
  void join(const std::string& url, const JoinRequest& req, Handler_fn<JoinResponse> h) override;
  void leave(const std::string& url, std::uint64_t id, Handler_fn<void> h) override;
  void heartbeat(const std::string& url, const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h) override;
  void request_vote(const std::string& url, const VoteRequest& req, Handler_fn<VoteResponse> h) override;
  void ack(const std::string& url, const AckRequest& req, Handler_fn<void> h) override;
  // Asks the node at `url` only (no leader hints followed: a node that is
  // not leader answers not_leader, which the reading follower reports).
  void read_index(const std::string& url, const ReadIndexRequest& req, Handler_fn<std::uint64_t> h) override;
  std::shared_ptr<StreamHandle> read_from(const std::string& url, const StreamRequest& req,
                                          StreamCallbacks cb) override;
  std::uint64_t cluster_id() const { return cluster_id_; }

 private:
  SimNetwork& net_;
  int slot_;
  std::uint64_t cluster_id_ = 0;
};

// The in-memory network. Nodes are slots 0..n-1, each with a URL and, while
// up, the Service (Log) that serves it. Each up/down cycle of a slot is an
// "epoch": anything addressed to an older epoch of a node is dropped, so a
// crashed node's pending requests, responses and streams die with it.
class SimNetwork {
 public:
  SimNetwork(boost::asio::io_context& io, VirtualClock& clock, Rng rng, Trace& trace);
  ~SimNetwork();
  SimNetwork(const SimNetwork&) = delete;
  SimNetwork& operator=(const SimNetwork&) = delete;

  int add_node(std::string url);
  int slot_of(std::string_view url) const;
  const std::string& url(int slot) const { return nodes_[static_cast<std::size_t>(slot)].url; }
  std::size_t size() const { return nodes_.size(); }
  SimTransport& transport(int slot) { return *nodes_[static_cast<std::size_t>(slot)].transport; }

  // The node now serves `svc` (a new epoch). detach(): the node crashed.
  void attach(int slot, Service* svc);
  void detach(int slot);
  bool up(int slot) const { return nodes_[static_cast<std::size_t>(slot)].svc != nullptr; }

  // Links are directed: link(a, b) carries messages from a to b.
  bool link(int from, int to) const { return from == to || !cut_[index(from, to)]; }
  void set_link(int from, int to, bool up);
  void heal();
  void isolate(int slot);
  // `side` against everyone else (a majority/minority split when sizes differ).
  void partition(const std::vector<int>& side);
  // Two halves that talk only through `bridge`.
  void bridge(const std::vector<int>& a, const std::vector<int>& b, int bridge);

  void set_faults(const NetFaults& f) { faults_ = f; }
  const NetFaults& faults() const { return faults_; }

  // Protocol versions (a rolling upgrade; raft/transport.hpp): the version
  // node `slot` speaks, as a build of that version would (kProtocolVersion
  // unless set). Heartbeats and streams between two nodes are in the older
  // of their versions (HeartbeatResponse::protocol, StreamRequest::protocol),
  // as HTTPTransport and the Server agree on it. A stream keeps the version
  // it was opened in: change a node's version across a restart.
  void set_protocol(int slot, std::uint32_t v) { protocol_[slot] = v; }
  std::uint32_t protocol(int slot) const {
    auto it = protocol_.find(slot);
    return it == protocol_.end() ? kProtocolVersion : it->second;
  }
  std::uint32_t spoken(int a, int b) const { return std::min(protocol(a), b < 0 ? kProtocolVersion : protocol(b)); }
  // How long a client waits for a response before reporting transport_error.
  Clock::duration rpc_timeout = std::chrono::milliseconds(1000);
  // Called when node `to` credits node id `id` to the node at slot `from`:
  // it accepted an ack from it ("ack") or started serving it a stream
  // ("stream"). The cluster checks that `to`'s configuration gives `id` to
  // `from`'s URL (a node must never be taken for another member).
  std::function<void(int to, int from, std::uint64_t id, const char* what)> on_credit;

  struct Stats {
    std::uint64_t sent = 0, delivered = 0, dropped = 0, duplicated = 0, streams_opened = 0, streams_broken = 0,
                  stream_bytes = 0;
  };
  const Stats& stats() const { return stats_; }
  std::size_t open_streams() const { return streams_.size(); }

 private:
  std::map<int, std::uint32_t> protocol_;
  friend class SimTransport;
  friend class SimStreamWriter;
  friend class SimStreamHandle;
  struct Stream;
  struct Node {
    std::string url;
    Service* svc = nullptr;
    std::uint64_t epoch = 0;
    std::unique_ptr<SimTransport> transport;
  };

  std::size_t index(int a, int b) const { return static_cast<std::size_t>(a) * kMaxNodes + static_cast<std::size_t>(b); }
  bool alive(int slot, std::uint64_t epoch) const {
    const auto& n = nodes_[static_cast<std::size_t>(slot)];
    return n.svc && n.epoch == epoch;
  }
  std::uint64_t epoch(int slot) const { return nodes_[static_cast<std::size_t>(slot)].epoch; }
  Clock::duration delay();
  bool drop();
  void after(Clock::duration d, std::function<void()> fn);
  void post(std::function<void()> fn);
  void trace_link(int from, int to, bool up);

  // Request/response. Call receives the target's Service and a reply
  // handler; the response travels back over the reverse link.
  template <class R>
  void rpc(int from, const std::string& url, const char* what, std::string detail,
           std::function<void(Service&, Handler_fn<R>)> call, Handler_fn<R> h, bool may_duplicate);
  // rpc() that, on a not-leader answer, asks again the leader the asked node
  // names (at most 5 hops), as HTTPTransport follows X-Raft-Leader-URL.
  template <class R>
  void hinted_rpc(int from, std::string url, const char* what, std::string detail,
                  std::function<void(Service&, Handler_fn<R>)> call, Handler_fn<R> h, bool may_duplicate, int hops = 0);
  // NetFaults::ack_vanish_ppm: true if the ack was lost that way.
  bool vanish_ack(int from, const std::string& url, Handler_fn<void>& h);

  // Streams.
  std::shared_ptr<StreamHandle> open_stream(int follower, const std::string& url, const StreamRequest& req,
                                            StreamCallbacks cb);
  void stream_write(const std::shared_ptr<Stream>& s, std::string_view bytes, std::function<void(std::error_code)> done);
  void stream_finish(const std::shared_ptr<Stream>& s, std::error_code ec);
  void stream_arrive(const std::shared_ptr<Stream>& s);
  void stream_pump(const std::shared_ptr<Stream>& s);
  void stream_break(const std::shared_ptr<Stream>& s, std::error_code ec, const char* why);
  void stream_cancel(const std::shared_ptr<Stream>& s);

  static constexpr std::size_t kMaxNodes = 32;
  boost::asio::io_context& io_;
  VirtualClock& clock_;
  Rng rng_;
  Trace& trace_;
  NetFaults faults_;
  std::vector<Node> nodes_;
  std::map<std::string, int, std::less<>> by_url_;
  std::vector<bool> cut_;
  std::map<std::uint64_t, std::shared_ptr<Stream>> streams_;  // by id: deterministic order
  std::uint64_t next_stream_id_ = 1;
  Stats stats_;
  // False once the network is destroyed: writers and handles held by a Log
  // that outlives it become inert.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// ---------------------------------------------------------------------------
// Invariant checker (DESIGN 5 / 7). Fed with observations; cheap per event:
// state machine safety is checked incrementally per applied index.
class Checker {
 public:
  explicit Checker(Trace& trace) : trace_(trace) {}

  // A node (slot) was observed as leader of `term` with node id `id`.
  void leader(int slot, std::uint64_t id, std::uint64_t term, std::uint64_t last_index);
  // Observations come in passes (one per simulator step): begin_pass() first.
  void begin_pass();
  void end_pass();
  // Per-node counters, observed after every event.
  void observe(int slot, std::uint64_t term, std::uint64_t commit, std::uint64_t applied);
  // Node `slot` applied `e` (FSM::must_apply).
  void applied(int slot, const LogEntry& e);
  // Node `slot` restored a snapshot holding entries up to `index`.
  void restored(int slot, std::uint64_t index, const std::vector<LogEntry>& entries);
  // A new incarnation of `slot` starts (after a crash): volatile indexes reset.
  void restarted(int slot);
  // The same Log closed and opened again with its FSM kept: the commit index
  // (volatile) starts over, the FSM's apply order does not.
  void reopened(int slot);
  // A leader of `term` moved its commit index to `commit` by counting: the
  // entry there must be of `term` (§5.4.2, Figure 8). Checked as soon as the
  // entry at `commit` is applied somewhere.
  void leader_commit(int slot, std::uint64_t term, std::uint64_t commit);
  // A client's apply of `data` returned success with `index`.
  void apply_succeeded(std::uint64_t index, const std::string& data);
  // The highest commit index observed on any node so far.
  std::uint64_t commit_max() const { return commit_max_; }
  // Node `slot` answered a read_index() asked when commit_max() was `floor`
  // with `index`: linearizable only if index >= floor (thesis §6.4).
  void read_succeeded(int slot, std::uint64_t floor, std::uint64_t index);

  void violation(std::string what);
  bool failed() const { return !violations_.empty(); }
  // Slots running a build without joint consensus (protocol version 1;
  // SimNetwork::set_protocol): such a node must never apply a
  // joint-consensus entry, nor hold a joint configuration (SimCluster::check).
  std::set<int> old_builds;
  const std::vector<std::string>& violations() const { return violations_; }

  // The first applied entry at each index (1-based; `known(i)` if any node
  // applied it).
  bool known(std::uint64_t i) const { return i < global_.size() && global_[i].set; }
  std::uint64_t known_term(std::uint64_t i) const { return global_[i].term; }
  const std::string& known_data(std::uint64_t i) const { return global_[i].data; }
  std::uint64_t known_max() const { return global_.empty() ? 0 : global_.size() - 1; }

 private:
  struct Rec {
    bool set = false;
    LogEntryType type = LogEntryType::command;
    std::uint64_t term = 0;
    std::string data;
  };
  struct NodeObs {
    std::uint64_t max_term = 0;
    std::uint64_t commit = 0;   // this incarnation
    std::uint64_t applied = 0;  // this incarnation's last applied index (FSM)
    std::uint64_t observed_applied = 0;
    bool fresh = true;  // no entry applied yet in this incarnation
  };
  NodeObs& node(int slot);
  void check_entry(int slot, std::uint64_t index, std::uint64_t term, LogEntryType type, const std::string& data);
  void check_readable(int slot, const LogEntry& e);

  Trace& trace_;
  std::map<std::uint64_t, std::uint64_t> leader_of_term_;  // term -> node id
  std::map<std::uint64_t, int> leader_slot_of_term_;
  std::vector<Rec> global_;
  std::vector<NodeObs> nodes_;
  std::vector<std::string> violations_;
  std::map<std::uint64_t, std::string> expected_;
  std::multimap<std::uint64_t, std::pair<std::uint64_t, int>> commit_checks_;  // index -> (term, slot)  // successful applies: index -> data
  // For each term, the highest commit index observed before any node reached
  // it (leader completeness compares new leaders against it).
  std::vector<std::uint64_t> commit_at_term_start_;
  std::uint64_t max_term_ = 0;
  std::uint64_t commit_max_ = 0;
  std::uint64_t pass_commit_max_ = 0;
};

// ---------------------------------------------------------------------------
// The test state machine: keeps every applied entry (so checks and snapshots
// can use them). In memory only: a new incarnation starts empty, index() 0.
class SimFsm final : public FSM {
 public:
  SimFsm(Checker& checker, int slot) : checker_(checker), slot_(slot) {}
  void must_apply(const LogEntry& e) override;
  std::uint64_t index() override { return index_; }
  // Snapshot format: u64 index, then the applied entries in the entry framing.
  result<std::uint64_t> snapshot(Writer& w) override;
  result<void> restore(Reader& r) override;
  const std::vector<LogEntry>& entries() const { return entries_; }
  // The machine lost power: work the dead Log still had queued must not
  // reach the checker as if this node applied it.
  void kill() { dead_ = true; }

 private:
  bool dead_ = false;
  Checker& checker_;
  int slot_;
  std::uint64_t index_ = 0;
  std::vector<LogEntry> entries_;
};

}  // namespace raft::sim
