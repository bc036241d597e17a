// raft::Log — a replicated log of commands (the Go package's Log, in C++).
//
//   raft::Log log({.url = "http://10.0.0.1:8001", .fsm = &fsm, .transport = &transport});
//   log.open("/var/lib/app/raft");          // creates or reopens; rejoins on restart
//   log.initialize();                        // first node only; others: log.join(url)
//   auto index = log.apply("set x 1");       // returns once committed
//   log.wait(*index);                        // returns once the FSM applied it
//
// Threading. All consensus state lives on one strand of `executor`. Durable
// writes (fsync) run on `storage_executor` so replication never waits on the
// disk; the FSM runs on `apply_executor`. With no executors given, the Log
// owns one thread for the strand and one for storage and apply. Every
// blocking call has an async twin (async_apply(cmd, token) ...) taking an Asio
// completion token; a blocking call made from the Log's own strand returns
// errc::would_block instead of deadlocking.
//
// Safety (DESIGN 5): term and vote are fsynced before any reply that depends
// on them; entries are durable before they are acknowledged; votes follow
// §5.4.1; a new leader appends a Nop and commits only entries of its own term
// by counting (§5.4.2); streamed entries must extend a matching prefix;
// committed entries are never truncated; membership changes one server at a
// time using the latest configuration in the log (thesis §4.1).
#pragma once

#include "raft/clock.hpp"
#include "raft/config.hpp"
#include "raft/error.hpp"
#include "raft/fsm.hpp"
#include "raft/transport.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace raft {

namespace storage {
class Filesystem;
}

enum class State { stopped, follower, candidate, leader };
std::string_view to_string(State s) noexcept;

struct LogOptions {
  // This node's advertised URL (the Go Log.URL). Required for initialize/join.
  std::string url;
  FSM* fsm = nullptr;              // required
  Transport* transport = nullptr;  // required for more than one node
  Clock* clock = nullptr;          // default: SystemClock on the Log's executor
  // Random source for election timeouts and the cluster id. Default: seeded
  // from std::random_device.
  std::function<std::uint64_t()> rand;
  boost::asio::any_io_executor executor;          // default: a thread owned by the Log
  // With no `executor` given: > 0 runs the Log's own thread with
  // raft::run_polling(io, busy_poll) instead of io.run() (include/raft/run.hpp:
  // lower latency where cores are to spare, worse next to CPU-bound work).
  std::chrono::microseconds busy_poll{0};
  boost::asio::any_io_executor storage_executor;  // default: a second owned thread
  // default: storage_executor. A given one must keep running until close()
  // (or ~Log) returns: close waits for FSM calls already queued on it.
  boost::asio::any_io_executor apply_executor;
  // true: committed entries are applied on the Log's strand, in the turn
  // that commits them, instead of on apply_executor (snapshot() and
  // restore() still run there). Saves two thread hops per batch; for FSMs
  // whose must_apply is cheap (an in-memory map): a slow one would hold up
  // heartbeats, votes and replication.
  bool apply_inline = false;
  storage::Filesystem* filesystem = nullptr;      // default: the real (POSIX) filesystem

  // Election timeouts are drawn from [election_timeout, 2 * election_timeout).
  Clock::duration election_timeout = kDefaultElectionTimeout;
  Clock::duration heartbeat_interval = kDefaultHeartbeatInterval;
  Clock::duration reconnect_timeout = kDefaultReconnectTimeout;

  // false: never fsync (benchmarks only: an acknowledged entry can be lost).
  bool sync = true;
  // Their sum must stay below 4 GiB (storage::LogStoreOptions: open() fails
  // with errc::invalid_argument otherwise).
  std::uint64_t segment_size_bytes_max = 64ull << 20;
  std::uint64_t entry_size_bytes_max = 64ull << 20;
  // Keep the segment being written preallocated a few MiB ahead, so a sync
  // has no file size change to commit (storage::LogStoreOptions::preallocate).
  bool preallocate_segments = true;
  // Leader: most bytes of entries read from disk into one stream write.
  std::size_t stream_batch_bytes_max = 1u << 20;
  // The newest entries are also kept in memory, up to this many bytes of
  // entry data, so streaming them to followers and applying them does not
  // read them back from the segment files (0: always read from disk).
  std::size_t entry_cache_bytes = 16u << 20;

  // Snapshots: taken when the log since the last snapshot exceeds either
  // threshold (0 disables that threshold; both 0 disables snapshots).
  std::uint64_t snapshot_threshold_entries = 0;
  std::uint64_t snapshot_threshold_bytes = 0;
  // Entries kept before the snapshot point so slightly lagging followers
  // stream entries rather than a snapshot (the seed kept 1,000).
  std::uint64_t snapshot_tail_entries = 1000;

  // Reads by lease (Raft thesis §6.4.1): while a majority of voters answered
  // a heartbeat this leader sent less than a lease ago, read_index() and
  // read_barrier() are answered at once, without a heartbeat round (and a
  // follower's read costs one request to the leader). The lease counts on
  // the members' vote refusals: with lease_reads, a member grants no vote
  // (but a leadership transfer's) within an election timeout of a
  // heartbeat from its leader, of its own open(), or while it leads, and
  // says so in its heartbeat replies (HeartbeatResponse::vote_hold_ms, its
  // election timeout). The lease on a member's answer is that hold times
  // (1 - d) / (1 + d), d = lease_clock_drift, from when the heartbeat was
  // sent. A member without lease_reads (or of an older build) promises
  // nothing and counts in no lease, so lease reads need a majority of
  // members that have it; different election timeouts are fine. It rests
  // on clocks, not on messages alone: no member's clock may run faster or
  // slower than real time by more than lease_clock_drift (a fraction; 0.1:
  // within 10 %) over an election timeout, and a clock that stands still
  // while time passes breaks the lease (the default SystemClock is
  // std::chrono::steady_clock, CLOCK_MONOTONIC on Linux, which counts a
  // process stopped by SIGSTOP but not a machine suspended to RAM; a VM
  // paused by its host may see either). A leader takes no lease before an
  // entry of its term commits, nor once it has told a member to campaign
  // (transfer_leadership) in its term. Without a lease (expired, none yet, lease_reads false) reads take a
  // heartbeat round as before. Status::reads_by_lease counts the others.
  bool lease_reads = false;
  double lease_clock_drift = 0.1;  // in [0, 1): open() says errc::invalid_argument otherwise

  // Receives the Log's diagnostics, one line each (set_log_output changes it).
  std::function<void(std::string_view)> logger;

  // Test hook for the simulator's "can it find a bug" check: breaks one
  // safety rule on purpose. Never set outside tests.
  // ack_before_sync: a follower acknowledges entries written but not yet
  // synced. read_without_confirmation: read_index() answers at once with the
  // commit index, without a heartbeat round (a deposed leader reads stale).
  // follower_read_without_leader: a follower answers read_index() with its
  // own commit index instead of asking the leader (it may lag).
  // learner_counts_as_voter: learners count toward majorities (commit,
  // votes, reads, check-quorum) whose size is still that of the voters.
  // joint_new_majority_only: in a joint configuration (set_voters), the new
  // voters' majority decides alone, as if C_new were already in force.
  // joint_to_old_builds: a leader streams joint-consensus entries and
  // configurations to followers whose stream is in a protocol version
  // without them (builds that cannot read them).
  // lease_outlives_election_timeout: with lease_reads, the lease is three
  // election timeouts long (voters may elect another leader within it).
  // lease_votes_after_restart: with lease_reads, a restarted voter grants
  // votes at once (it no longer knows when it last heard from its leader).
  // lease_without_vote_hold: a leader counts in its lease the members that
  // promised no vote hold (lease_reads off there), as if they had.
  enum class Fault {
    none,
    commit_previous_term_by_counting,
    forget_vote,
    ack_before_sync,
    read_without_confirmation,
    follower_read_without_leader,
    learner_counts_as_voter,
    joint_new_majority_only,
    joint_to_old_builds,
    lease_outlives_election_timeout,
    lease_votes_after_restart,
    lease_without_vote_hold
  } inject_fault = Fault::none;
};

// How join() asks to join.
struct JoinOptions {
  // Join as a learner (non-voting member, ConfigNode::learner): the node
  // catches up and applies the log without counting toward any majority
  // until the leader's promote_peer(id) makes it a voter. Adding an empty
  // voter to a cluster makes its majority wait for that node's catch-up
  // (and, with one member down, stalls it); a learner changes no majority.
  bool learner = false;
  // Join as a learner, then have the leader promote this node once it holds
  // the leader's log (as promote_peer does); join() returns once it is a
  // voter. The safe way to add a voter to a cluster that has data. The
  // intent is kept on disk (the file `promote-intent`): a node that restarts
  // before its promotion commits asks for it again, and one whose join()
  // returned a retryable error (no leader, a timeout: the leader's
  // promotion waits for this node to catch up) goes on asking, until a
  // leader says it is a voter, its own log shows the promotion committed,
  // or a leader refuses it as removed. Not with `learner`
  // (errc::invalid_argument).
  bool catch_up_first = false;
};

class Log final : public Service {
 public:
  explicit Log(LogOptions opts);
  ~Log() override;  // close()s if open
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Opens (creating if needed) the log directory: meta, log and snapshots
  // are loaded, the FSM is brought up to date, and a node that was a cluster
  // member resumes as a follower. errc::open if already open;
  // errc::log_corrupt if storage is damaged (nothing deleted).
  result<void> open(const std::string& path);
  // Stops timers, streams and the FSM feed; pending calls fail with
  // errc::closed. Returns once FSM calls already under way on the apply
  // executor have finished: none happens after close() returns, and the Log
  // may be opened again. Idempotent.
  result<void> close();

  bool opened() const;
  std::string path() const;  // "" when closed
  std::uint64_t id() const;
  State state() const;
  std::uint64_t term() const;
  // Current leader's id and URL; (0, "") if unknown.
  std::pair<std::uint64_t, std::string> leader() const;
  Config config() const;
  std::uint64_t commit_index() const;
  std::uint64_t applied_index() const;
  std::uint64_t last_index() const;
  Status status() const override;
  std::uint64_t cluster_id() const override;

  // Bootstraps a one-node cluster (id 1, random cluster id, leader).
  // errc::closed, errc::initialized (already a member), errc::url_required.
  result<void> initialize();
  // Asks any member at `url` to add this node; returns once this node has its
  // id and configuration (it then catches up by streaming from the leader),
  // or with JoinOptions::catch_up_first once it is a voter. A voter by
  // default, a learner with JoinOptions::learner. errc::initialized,
  // errc::url_required, errc::invalid_argument (both options), errc::removed,
  // errc::duplicate_node_url (a member has this URL and joined from another
  // data directory: remove it first), or the last error of its retries.
  result<void> join(const std::string& url, JoinOptions opts = {});
  // Removes this node through the leader; returns once committed.
  result<void> leave();
  // Leader only: adds a node; returns its id and the new configuration once
  // the change is committed. errc::not_leader, errc::duplicate_node_url,
  // errc::change_in_progress.
  result<std::pair<std::uint64_t, Config>> add_peer(const std::string& url);
  // Leader only: removes node `id` once committed. errc::node_not_found,
  // errc::invalid_node_id, errc::invalid_argument (the last voter).
  result<void> remove_peer(std::uint64_t id);
  // Leader only: add_peer for a learner (see JoinOptions::learner). Its
  // change commits without it: it needs not have caught up.
  result<std::pair<std::uint64_t, Config>> add_learner(const std::string& url);
  // Leader only: makes learner `id` a voter; returns once committed. The
  // promotion is appended only once the learner holds this leader's log as
  // it was when asked (acknowledged), so that the new voter does not hold up
  // commits while it catches up (thesis §4.2.1); meanwhile writes go on.
  // Succeeds at once if `id` is a voter already. errc::timeout (it did not
  // catch up within `timeout`, default 10 election timeouts: it stays a
  // learner), errc::not_leader (also: leadership lost meanwhile),
  // errc::node_not_found, errc::invalid_node_id, errc::change_in_progress
  // (another change or promotion is under way), errc::transfer_in_progress.
  result<void> promote_peer(std::uint64_t id, Clock::duration timeout = {});
  // Leader only: makes voter `id` a learner; returns once committed. The
  // voters' majority shrinks by one from the moment the change is appended
  // (a single-server change, thesis §4.1). For maintenance: the node keeps
  // its data and applies the log, and promote_peer makes it a voter again.
  // Demoting this leader itself works like removing it: it takes no new
  // entries (errc::not_leader) and steps down once the change commits.
  // Succeeds at once if `id` is a learner already. errc::invalid_argument
  // (the last voter), errc::not_leader, errc::node_not_found,
  // errc::invalid_node_id, errc::change_in_progress, errc::transfer_in_progress.
  result<void> demote_peer(std::uint64_t id);
  // Leader only: makes exactly `voters` the voting members, in one change
  // by joint consensus (Raft paper §6), however many voters it adds or
  // drops: replacing a majority with single-server changes takes several
  // steps, and the order matters for availability. Every other member
  // becomes a learner (remove_peer can then remove it: removing a learner
  // changes no majority). Each id must be a member already (join new nodes
  // as learners). As promote_peer, the change waits until each new voter
  // holds this leader's log as it was when asked (writes go on meanwhile),
  // so that the new voters' majority does not hold up commits while they
  // catch up. Then the leader appends C_old,new; from then on every
  // decision (commit, election, read, check-quorum) needs a majority of the
  // old voters and one of the new.
  // Once that commits, the leader (this one or the next) appends C_new;
  // returns C_new's index once it has committed. A leader left out of
  // `voters` leads through the change and steps down once C_new commits.
  // Succeeds at once (with the configuration's index) if `voters` are the
  // voters already. errc::invalid_argument (empty, id 0, or an id listed
  // twice), errc::node_not_found, errc::not_leader (also: leadership lost
  // before C_new was appended; the next leader finishes the change, and a
  // call again with the same voters then succeeds), errc::timeout (a new
  // voter did not catch up within `timeout`, default 10 election timeouts:
  // nothing changed), errc::change_in_progress, errc::transfer_in_progress,
  // errc::unsupported_protocol (a member answers in a protocol version
  // without joint consensus, a build older than it: upgrade it first;
  // nothing changed; see kProtocolVersion in raft/transport.hpp).
  result<std::uint64_t> set_voters(std::vector<std::uint64_t> voters, Clock::duration timeout = {});

  // Leader only: appends a command; returns its index once committed.
  // errc::not_leader (nothing appended), errc::not_committed (overwritten by
  // a later leader: it will never commit), errc::timeout (timeout > 0 and it
  // passed, or the entry was dropped without proof either way: it may still
  // commit), errc::removed (this node left the configuration: outcome
  // unknown here).
  result<std::uint64_t> apply(std::string command, Clock::duration timeout = {});
  // Returns once the FSM has applied `index`.
  result<void> wait(std::uint64_t index, Clock::duration timeout = {});
  // A linearizable read without a log entry (ReadIndex, Raft thesis §6.4).
  // Returns a committed index at or above the commit index of every entry
  // committed anywhere when the call was made; once this node's FSM has
  // applied it, state read from the FSM reflects every write that completed
  // before the call:
  //   if (auto i = log.read_index(); i && log.wait(*i)) { read the FSM }
  // On the leader: once a heartbeat round sent after the call was answered
  // by a majority (so it was still leader then); one round trip, no disk
  // write, concurrent calls share rounds; a new leader answers once its
  // first entry has committed. On a follower: it asks its leader for that
  // index (POST /raft/readIndex), so reads can be spread over the members;
  // the follower's FSM may take a little longer to reach the index.
  // errc::not_leader (no leader known, the leader stepped down before
  // confirming, or the node asked is not the leader any more),
  // errc::timeout (timeout > 0 and it passed), errc::closed, or the
  // transport's error reaching the leader (errc::transport_error...).
  result<std::uint64_t> read_index(Clock::duration timeout = {});
  // read_index() and wait() in one call (one wake-up of the caller instead
  // of two): returns the read index once the FSM has applied it, so the FSM
  // can be read at once. The timeout covers both parts.
  result<std::uint64_t> read_barrier(Clock::duration timeout = {});
  // Leader only: hands leadership to member `id` (0: the other voter whose
  // log is furthest along) without waiting for an election timeout (thesis
  // §3.10), e.g. before stopping this node. New entries are refused
  // meanwhile (apply() and membership changes: errc::transfer_in_progress);
  // once the target holds this leader's whole log it is told to campaign at
  // once, and its voters grant it although they hear from a live leader.
  // Returns once this node has stepped down for a later term (the target, or
  // in a race another node, leads it). errc::not_leader, errc::node_not_found
  // (`id` is not a member, or there is no other voter), errc::not_voter (`id`
  // is a learner: it would never campaign), errc::transfer_in_progress
  // (another transfer is under way), errc::timeout (not done within
  // `timeout`, default one election timeout: this node leads on and takes
  // entries again), errc::closed.
  result<void> transfer_leadership(std::uint64_t id = 0, Clock::duration timeout = {});
  // Takes a snapshot of what the FSM has applied, now, whatever the
  // thresholds (LogOptions::snapshot_threshold_*), and compacts the log
  // behind it (keeping snapshot_tail_entries); on any member. Returns the
  // snapshot's index: the latest snapshot's if the FSM has applied nothing
  // since (0 if it never applied anything and there is none). A snapshot
  // already being taken answers the call when it is done; a batch of entries
  // on its way to the FSM is applied first. Errors: the FSM's snapshot()
  // error or the snapshot store's, errc::closed.
  result<std::uint64_t> snapshot();
  // Forces buffered work out now: a heartbeat round on a leader.
  result<void> flush();

  // Peer-facing calls (what the Handler invokes; also usable directly).
  result<HeartbeatResponse> heartbeat(std::uint64_t term, std::uint64_t commit_index, std::uint64_t leader_id);
  result<VoteResponse> request_vote(std::uint64_t term, std::uint64_t candidate_id, std::uint64_t last_log_index,
                                    std::uint64_t last_log_term);
  // Leader: streams the log to follower `id` through `w` (DESIGN 4.2) until
  // the term ends or the writer fails.
  void write_entries_to(std::shared_ptr<StreamWriter> w, const StreamRequest& req);
  // Follower: consumes a stream read from `r` (blocking) until it ends.
  result<void> read_from(Reader& r, std::uint64_t term);

  void set_log_output(std::function<void(std::string_view)> out);

  // ---- async twins: Asio completion tokens ----
  template <class Token>
  auto async_apply(std::string command, Token&& token) {
    return initiate<std::uint64_t>(std::forward<Token>(token),
                                   [this, c = std::move(command)](auto h) mutable { start_apply(std::move(c), {}, std::move(h)); });
  }
  template <class Token>
  auto async_wait(std::uint64_t index, Token&& token) {
    return initiate<void>(std::forward<Token>(token), [this, index](auto h) { start_wait(index, {}, std::move(h)); });
  }
  template <class Token>
  auto async_read_index(Token&& token) {
    return initiate<std::uint64_t>(std::forward<Token>(token), [this](auto h) { start_read_index({}, std::move(h)); });
  }
  template <class Token>
  auto async_read_barrier(Token&& token) {
    return initiate<std::uint64_t>(std::forward<Token>(token), [this](auto h) { start_read_barrier({}, std::move(h)); });
  }
  template <class Token>
  auto async_initialize(Token&& token) {
    return initiate<void>(std::forward<Token>(token), [this](auto h) { start_initialize(std::move(h)); });
  }
  template <class Token>
  auto async_join(std::string url, Token&& token) {
    return async_join(std::move(url), JoinOptions{}, std::forward<Token>(token));
  }
  template <class Token>
  auto async_join(std::string url, JoinOptions opts, Token&& token) {
    return initiate<void>(std::forward<Token>(token),
                          [this, u = std::move(url), opts](auto h) mutable { start_join(std::move(u), opts, std::move(h)); });
  }
  template <class Token>
  auto async_leave(Token&& token) {
    return initiate<void>(std::forward<Token>(token), [this](auto h) { start_leave(std::move(h)); });
  }
  template <class Token>
  auto async_add_peer(std::string url, Token&& token) {
    return initiate<std::pair<std::uint64_t, Config>>(
        std::forward<Token>(token), [this, u = std::move(url)](auto h) mutable { start_add_peer(std::move(u), std::move(h)); });
  }
  template <class Token>
  auto async_remove_peer(std::uint64_t id, Token&& token) {
    return initiate<void>(std::forward<Token>(token), [this, id](auto h) { start_remove_peer(id, std::move(h)); });
  }
  template <class Token>
  auto async_add_learner(std::string url, Token&& token) {
    return initiate<std::pair<std::uint64_t, Config>>(
        std::forward<Token>(token), [this, u = std::move(url)](auto h) mutable { start_add_learner(std::move(u), std::move(h)); });
  }
  template <class Token>
  auto async_promote_peer(std::uint64_t id, Token&& token) {
    return initiate<void>(std::forward<Token>(token), [this, id](auto h) { start_promote_peer(id, {}, std::move(h)); });
  }
  template <class Token>
  auto async_demote_peer(std::uint64_t id, Token&& token) {
    return initiate<void>(std::forward<Token>(token), [this, id](auto h) { start_demote_peer(id, std::move(h)); });
  }
  template <class Token>
  auto async_set_voters(std::vector<std::uint64_t> voters, Token&& token) {
    return initiate<std::uint64_t>(std::forward<Token>(token), [this, v = std::move(voters)](auto h) mutable {
      start_set_voters(std::move(v), {}, std::move(h));
    });
  }
  template <class Token>
  auto async_transfer_leadership(std::uint64_t id, Token&& token) {
    return initiate<void>(std::forward<Token>(token), [this, id](auto h) { start_transfer_leadership(id, {}, std::move(h)); });
  }
  template <class Token>
  auto async_snapshot(Token&& token) {
    return initiate<std::uint64_t>(std::forward<Token>(token), [this](auto h) { start_snapshot(std::move(h)); });
  }
  template <class Token>
  auto async_close(Token&& token) {
    return initiate<void>(std::forward<Token>(token), [this](auto h) { start_close(std::move(h)); });
  }

  // Simulates a power cut for tests: drops every timer, stream and pending
  // call without a clean shutdown (pending calls fail with errc::closed).
  // The storage is left as the filesystem has it.
  void crash_for_testing();

  // ---- Service (called by raft::Handler or the simulator's network) ----
  void handle_join(const JoinRequest& req, Handler_fn<JoinResponse> h) override;
  void handle_leave(std::uint64_t id, Handler_fn<void> h) override;
  void handle_heartbeat(const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h) override;
  void handle_vote(const VoteRequest& req, Handler_fn<VoteResponse> h) override;
  void handle_ack(const AckRequest& req, Handler_fn<void> h) override;
  void handle_read_index(const ReadIndexRequest& req, Handler_fn<std::uint64_t> h) override;
  void handle_stream(const StreamRequest& req, std::shared_ptr<StreamWriter> w) override;

  // Callback-style entry points behind the async twins.
  void start_apply(std::string command, Clock::duration timeout, Handler_fn<std::uint64_t> h);
  void start_wait(std::uint64_t index, Clock::duration timeout, Handler_fn<void> h);
  void start_read_index(Clock::duration timeout, Handler_fn<std::uint64_t> h);
  void start_read_barrier(Clock::duration timeout, Handler_fn<std::uint64_t> h);
  void start_initialize(Handler_fn<void> h);
  void start_join(std::string url, Handler_fn<void> h);
  void start_join(std::string url, JoinOptions opts, Handler_fn<void> h);
  void start_leave(Handler_fn<void> h);
  void start_add_peer(std::string url, Handler_fn<std::pair<std::uint64_t, Config>> h);
  void start_remove_peer(std::uint64_t id, Handler_fn<void> h);
  void start_add_learner(std::string url, Handler_fn<std::pair<std::uint64_t, Config>> h);
  void start_promote_peer(std::uint64_t id, Clock::duration timeout, Handler_fn<void> h);
  void start_demote_peer(std::uint64_t id, Handler_fn<void> h);
  void start_set_voters(std::vector<std::uint64_t> voters, Clock::duration timeout, Handler_fn<std::uint64_t> h);
  void start_transfer_leadership(std::uint64_t id, Clock::duration timeout, Handler_fn<void> h);
  void start_snapshot(Handler_fn<std::uint64_t> h);
  void start_close(Handler_fn<void> h);

  boost::asio::any_io_executor get_executor() const;

  class Impl;

 private:
  template <class T>
  struct Sig {
    using type = void(std::error_code, T);
  };
  template <class T, class Token, class Start>
  auto initiate(Token&& token, Start start) {
    using S = typename Sig<T>::type;
    return boost::asio::async_initiate<Token, S>(
        [this](auto handler, Start start) {
          using H = decltype(handler);
          auto hp = std::make_shared<H>(std::move(handler));
          auto ex = boost::asio::get_associated_executor(*hp, get_executor());
          start([hp, ex](result<T> r) {
            boost::asio::post(ex, [hp, r = std::move(r)]() mutable {
              if constexpr (std::is_void_v<T>) {
                (*hp)(r ? std::error_code{} : r.error());
              } else {
                if (r) (*hp)(std::error_code{}, std::move(*r));
                else (*hp)(r.error(), T{});
              }
            });
          });
        },
        token, std::move(start));
  }

  std::shared_ptr<Impl> impl_;
};

template <>
struct Log::Sig<void> {
  using type = void(std::error_code);
};

}  // namespace raft
