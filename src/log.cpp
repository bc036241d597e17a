// raft::Log: the consensus core.
//
// Everything below marked "strand" runs only on the Log's strand; that is the
// one lock of the consensus state. Other threads (transport callbacks, clock
// timers, storage and apply executors) reach it by posting.
//
// Map of the rules (Raft paper section numbers; DESIGN 5):
//   persist_meta()      term and vote durable before any reply (§5.1, Fig. 2)
//   handle_vote()       §5.2 one vote per term, §5.4.1 up-to-date check
//   on_election_timeout()  pre-vote before the term goes up (thesis §9.6)
//   become_leader()     Nop of the new term (§5.4.2, §8)
//   advance_commit()    commit only current-term entries by counting (§5.4.2)
//   on_position()/on_entry()  Log Matching on the stream (§5.3)
//   handle_ack()        a follower's durable, matching index (DESIGN 4.3)
//   change_membership() one single-server change at a time (thesis §4.1)
#include "raft/log.hpp"
#include "raft/run.hpp"

#include "raft/assert.hpp"
#include "raft/detail/endian.hpp"
#include "raft/detail/stream.hpp"
#include "raft/storage/filesystem.hpp"
#include "raft/storage/log_store.hpp"
#include "raft/storage/meta_store.hpp"
#include "raft/storage/snapshot_store.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <atomic>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>

namespace raft {

namespace net = boost::asio;

std::string_view to_string(State s) noexcept {
  switch (s) {
    case State::stopped: return "stopped";
    case State::follower: return "follower";
    case State::candidate: return "candidate";
    case State::leader: return "leader";
  }
  return "unknown";
}

namespace {

std::string encode_u64(std::uint64_t v) {
  std::string s(8, '\0');
  detail::put_be64(reinterpret_cast<std::byte*>(s.data()), v);
  return s;
}
std::uint64_t decode_u64(std::string_view s) {
  if (s.size() != 8) return 0;
  return detail::get_be64(reinterpret_cast<const std::byte*>(s.data()));
}

// AddPeer entry data: the URL, then "\0" and the joiner's token when there is
// one, then a byte 1 for a learner (with token 0 if there is none). A URL
// never holds a 0 byte (do_add_peer refuses one), so entries written before
// tokens existed decode as a URL with token 0, and those written before
// learners existed as a voter.
std::string encode_add_peer(const std::string& url, std::uint64_t join_token, bool learner) {
  if (join_token == 0 && !learner) return url;
  return url + '\0' + encode_u64(join_token) + (learner ? "\1" : "");
}
struct AddPeerData {
  std::string url;
  std::uint64_t join_token = 0;
  bool learner = false;
};
AddPeerData decode_add_peer(std::string_view data) {
  const auto nul = data.find('\0');
  if (nul == std::string_view::npos) return {std::string(data)};
  const auto rest = data.substr(nul + 1);
  const bool learner = rest.size() == 9 && rest[8] == '\1';
  return {std::string(data.substr(0, nul)), decode_u64(rest.substr(0, 8)), learner};
}
bool is_config_entry(LogEntryType t) {
  return t == LogEntryType::initialize || t == LogEntryType::add_peer || t == LogEntryType::remove_peer ||
         t == LogEntryType::promote_peer || t == LogEntryType::bind_token || t == LogEntryType::demote_peer;
}

template <class T>
void fail(Handler_fn<T>& h, std::error_code ec) {
  if (h) {
    auto f = std::move(h);
    h = nullptr;
    f(result<T>(boost::system::in_place_error, ec));
  }
}

}  // namespace

class Log::Impl : public std::enable_shared_from_this<Impl> {
 public:
  explicit Impl(LogOptions opts);
  ~Impl();

  // ---------------------------------------------------------------- set-up
  LogOptions o_;
  // Threads and defaults owned when the user brought none.
  std::unique_ptr<net::io_context> own_io_, own_storage_io_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> own_work_, own_storage_work_;
  std::thread own_thread_, own_storage_thread_;
  std::unique_ptr<Clock> own_clock_;
  std::unique_ptr<storage::Filesystem> own_fs_;

  net::strand<net::any_io_executor> strand_;
  net::any_io_executor storage_ex_, apply_ex_;
  Clock* clock_ = nullptr;
  storage::Filesystem* fs_ = nullptr;

  // ------------------------------------------- persistent state (storage)
  std::string path_;
  std::optional<storage::MetaStore> meta_;
  std::shared_ptr<storage::LogStore> log_;  // shared with in-flight syncs
  std::unique_ptr<storage::SnapshotStore> snaps_;
  // Bumped by open/close/crash: callbacks from an earlier life are ignored.
  std::uint64_t epoch_ = 0;

  // currentTerm: monotonically increases; persisted (persist_meta) before
  // any message that depends on it is sent or answered.
  std::uint64_t term_ = 0;
  // votedFor in term_: persisted before the vote is granted.
  std::uint64_t voted_for_ = 0;
  std::uint64_t id_ = 0;
  std::uint64_t cluster_id_ = 0;

  // ----------------------------------------------------- volatile state
  State state_ = State::stopped;
  std::uint64_t leader_id_ = 0;
  Clock::time_point last_heard_{};  // last valid heartbeat from leader_id_
  // commitIndex: never decreases; entries <= it are never truncated.
  std::uint64_t commit_ = 0;
  std::uint64_t applied_ = 0;    // handed to and finished by the FSM
  bool applying_ = false;        // a batch is on the apply executor
  // Handlers posted to the apply executor (FSM calls) that have not reported
  // back. close() completes only when none is left: no FSM call happens
  // after close() returns, and a reopened Log never re-applies entries that
  // a batch of the previous opening was still applying.
  int apply_work_ = 0;
  std::vector<Handler_fn<void>> close_waiters_;
  void apply_work_done() {
    if (--apply_work_ > 0 || close_waiters_.empty()) return;
    auto waiters = std::move(close_waiters_);
    close_waiters_.clear();
    for (auto& h : waiters) h({});
  }
  std::uint64_t durable_ = 0;    // highest index made durable by sync
  // The latest snapshot: the FSM state through snapshot_index_.
  std::uint64_t snapshot_index_ = 0, snapshot_term_ = 0;
  bool snapshotting_ = false;  // a local snapshot is being written
  std::optional<storage::SnapshotMeta> pending_restore_;  // installed, not yet given to the FSM
  // Index of the snapshot a restore queued on the apply executor will open
  // (0: none): compaction keeps that file until the restore has run.
  std::uint64_t restoring_ = 0;
  bool sync_running_ = false, sync_again_ = false;
  bool deferred_running_ = false;  // a LogStore::run_deferred() is queued on the storage executor
  bool reclaim_running_ = false;  // a LogStore::reclaim() is queued there
  // Bumped by every truncation: a sync that started before one may report
  // entries that no longer exist as durable, so its result is not used.
  std::uint64_t trunc_gen_ = 0;
  std::vector<LogEntry> pending_append_;  // batched into one store append
  bool flush_posted_ = false;
  // The newest entries written to the store, kept in memory: the stream pump
  // and the apply batches read them from here instead of the segment files
  // (a pread, a CRC check and an allocation per entry per reader). cache_[i]
  // has index cache_first_ + i; its last entry is log_->last_index().
  // Bounded by o_.entry_cache_bytes of entry data.
  std::deque<LogEntry> cache_;
  std::uint64_t cache_first_ = 0;
  std::size_t cache_bytes_ = 0;

  // The configuration: latest in the log (thesis §4.1), with history so a
  // truncation can roll it back. `join_config_` bridges a new node's empty log.
  std::vector<Config> configs_;  // ascending config.index, all > snapshot
  Config base_config_;           // config at the snapshot / before the log
  Config config_;

  // Election.
  std::uint64_t election_gen_ = 0;
  std::shared_ptr<Timer> election_timer_;
  std::map<std::uint64_t, bool> votes_;  // voter id -> granted, for those who answered
  std::shared_ptr<Timer> vote_retry_timer_;
  // Pre-vote (thesis §9.6): a round asks whether a majority would vote for
  // us in prevote_term_ (= term_ + 1) before that election starts. Anything
  // that resets the election timer (a leader heard, a vote granted) or
  // changes the term ends the round.
  std::uint64_t prevote_round_ = 0;
  std::uint64_t prevote_term_ = 0;
  std::map<std::uint64_t, bool> prevotes_;  // voter id -> would grant
  std::shared_ptr<Timer> prevote_retry_timer_;

  // Leader.
  struct Peer {
    std::uint64_t match = 0;  // highest index known durable and matching on the peer
    Clock::time_point last_contact{};
    bool hb_inflight = false;
    // Highest read round (read_seq_ when the heartbeat was sent) that this
    // peer answered in our term: a majority of those at or above a read's
    // round proves we were leader after that read was asked.
    std::uint64_t read_acked = 0;
  };
  std::map<std::uint64_t, Peer> peers_;
  Clock::time_point leader_since_{};
  std::uint64_t heartbeat_gen_ = 0;
  std::shared_ptr<Timer> heartbeat_timer_;

  struct OutStream {
    std::shared_ptr<StreamWriter> writer;
    std::uint64_t peer = 0;
    std::uint64_t term = 0;
    std::uint64_t next = 0;  // next index to send
    bool writing = false;
    bool alive = true;
    std::string buf;  // owned until the write completes
    std::uint64_t buf_last = 0;
    // Sending a snapshot: chunks are read from the file one write at a time,
    // so memory stays bounded whatever the snapshot's size.
    std::unique_ptr<Reader> snap;
    std::uint64_t snap_index = 0;
    bool need_snapshot = false;
    std::uint64_t sent_commit = 0;  // commit index last told on this stream
  };
  std::map<std::uint64_t, std::shared_ptr<OutStream>> out_streams_;  // by peer id

  // Follower stream.
  struct InStream {
    std::shared_ptr<StreamHandle> handle;
    std::uint64_t term = 0;
    std::uint64_t leader = 0;
    std::string leader_url;  // kept: the leader may drop out of our config (removed leader)
    detail::StreamParser parser{0};
    bool positioned = false;
    std::uint64_t pos = 0;  // last index received that matches the leader
    std::uint64_t serial = 0;
    // Receiving a snapshot: written straight to a snapshot file.
    std::unique_ptr<storage::SnapshotSink> sink;
    bool skip_snapshot = false;
    std::uint64_t snap_index = 0, snap_term = 0;
    Config snap_config;
  };
  std::unique_ptr<InStream> in_;
  std::uint64_t in_serial_ = 0;
  std::optional<std::pair<std::uint64_t, std::uint64_t>> stream_from_;  // retry point after a mismatch
  std::uint64_t reconnect_gen_ = 0;
  std::shared_ptr<Timer> reconnect_timer_;
  std::uint64_t leader_commit_ = 0;  // from heartbeats of term_
  std::string leader_url_hint_;      // the leader's URL as its heartbeats tell it
  std::uint64_t leader_url_hint_id_ = 0;  // the leader id that URL was given for
  std::uint64_t acked_ = 0;
  bool ack_inflight_ = false;

  // Joined but not yet a confirmed member: the leader answers a join right
  // after appending the AddPeer entry, and a later leader may truncate that
  // entry; the next joiner is then given the same id. Until this node's log
  // holds a committed configuration with (id_, o_.url) (join.json exists
  // until then), it re-sends its join when it has no leader for an election
  // timeout or a leader refuses it as not (or no longer) that member
  // (rejoin()). A leader that still has the entry gives the same id back;
  // one that does not adds this URL again and gives the id it now has,
  // which this node adopts. Leaders credit a node id only to the URL their
  // configuration gives it (serve_stream, do_ack), so until then the old id
  // is harmless.
  bool provisional_ = false;
  // The role this node asked to join in (JoinOptions::learner); a rejoin
  // asks in the same one.
  bool join_learner_ = false;
  bool rejoining_ = false;      // a rejoin request is in flight
  bool rejoin_refused_ = false;  // a leader said our (id, url) was removed: ask no more
  // Sent with every join request from this data directory
  // (JoinRequest::join_token): drawn by the first join or rejoin and kept in
  // the file `join-token` before it is sent, so a restart keeps it and a
  // wiped directory draws another. 0: none drawn yet.
  std::uint64_t join_token_ = 0;
  std::uint64_t rejoin_rr_ = 0;  // which member to ask next when no leader is known

  // Pending client calls.
  struct PendingApply {
    std::uint64_t term;
    Handler_fn<std::uint64_t> h;
    Clock::time_point deadline = Clock::time_point::max();  // max: no timeout
  };
  std::map<std::uint64_t, PendingApply> pending_applies_;
  // One timer for every apply() timeout, armed at the earliest deadline (a
  // timer per call cost more than the rest of the call on the hot path).
  std::shared_ptr<Timer> apply_timer_;
  Clock::time_point apply_timer_at_ = Clock::time_point::max();
  std::uint64_t apply_timer_gen_ = 0;
  struct Waiter {
    std::uint64_t serial;
    Handler_fn<void> h;
    std::shared_ptr<Timer> timer;
  };
  std::multimap<std::uint64_t, Waiter> waiters_;
  std::uint64_t waiter_serial_ = 0;

  // read_index() calls (thesis §6.4), keyed by their read round: each takes
  // a new round, so only heartbeats sent after the call can confirm it.
  struct PendingRead {
    Handler_fn<std::uint64_t> h;
    std::shared_ptr<Timer> timer;
    bool wait_applied = false;  // read_barrier(): answer once the FSM applied the index
    Clock::time_point deadline = Clock::time_point::max();
  };
  std::map<std::uint64_t, PendingRead> pending_reads_;
  std::uint64_t read_seq_ = 0;
  // Reads asked of a follower, forwarded to the leader (forward_read), by
  // serial: they outlive leader changes (an index a leader confirmed stays
  // valid), and close() or their timeout ends them. One request to the
  // leader at a time answers every read asked before it was sent (serials up
  // to forward_sent_); reads asked meanwhile wait for the next one.
  std::map<std::uint64_t, PendingRead> forwarded_reads_;
  std::uint64_t forward_seq_ = 0;
  std::uint64_t forward_sent_ = 0;
  bool forward_inflight_ = false;

  // Leadership transfer under way on this leader (do_transfer).
  struct Transfer {
    std::uint64_t target = 0;
    std::uint64_t term = 0;  // ours when it began: stepping down for a later one completes it
    Handler_fn<void> h;
    std::shared_ptr<Timer> timer;
    bool sent = false;  // TimeoutNow out, not failed
  };
  std::optional<Transfer> transfer_;
  // A promote_peer waiting for its learner to catch up (thesis §4.2.1): the
  // promotion is appended once the learner's acknowledged log reaches
  // `until`, the leader's last index when it was asked.
  struct Promotion {
    std::uint64_t id = 0;
    std::uint64_t until = 0;
    Handler_fn<void> h;
    std::shared_ptr<Timer> timer;
  };
  std::optional<Promotion> promotion_;
  // Status's counters, read by status() from any thread.
  std::atomic<std::uint64_t> reads_as_leader_{0}, reads_as_follower_{0}, elections_started_{0},
      transfers_completed_{0};
  // The term of our own election that a leader asked for (votes carry
  // VoteRequest::transfer in it).
  std::uint64_t transfer_term_ = 0;
  // Index of this leader's first entry of its term (its Nop, or the
  // Initialize entry): until it commits, the leader does not know the
  // commit index of the terms before it, so no read is answered.
  std::uint64_t term_start_ = 0;

  // apply() calls from other threads queue here; one strand handler takes
  // all that queued meanwhile (a post per batch, not per call: the posts'
  // lock traffic and wake-ups were a large part of a blocking client's cost).
  struct Submission {
    std::string command;
    Clock::duration timeout;
    Handler_fn<std::uint64_t> h;
  };
  std::mutex submit_mu_;
  std::vector<Submission> submit_q_;  // guarded by submit_mu_
  bool submit_posted_ = false;        // guarded by submit_mu_
  void submit_apply(Submission sub);
  void drain_submissions();

  // A view of the state for getters on other threads.
  mutable std::mutex view_mu_;
  Status view_;
  std::string view_path_;
  bool view_open_ = false;
  std::function<void(std::string_view)> logger_;
  std::mt19937_64 default_rng_{std::random_device{}()};

  net::any_io_executor init_executor();
  // Stops the owned io_contexts, joins their threads and runs what they left
  // queued; idempotent. Called by ~Log on the caller's thread (and ~Impl).
  void stop_own_threads();

  // ------------------------------------------------------------ helpers
  template <class F>
  void post(F&& f) {
    net::post(strand_, [self = shared_from_this(), ep = epoch_, f = std::forward<F>(f)]() mutable {
      if (self->epoch_ != ep) return;
      f();
    });
  }
  template <class F>
  void post_any_epoch(F&& f) {
    net::post(strand_, [self = shared_from_this(), f = std::forward<F>(f)]() mutable { f(); });
  }
  std::uint64_t rand() { return o_.rand ? o_.rand() : default_rng_(); }
  // The directory's join token, drawn and saved first if need be; 0 if it
  // could not be saved (the Log is then stopped).
  std::uint64_t join_token();
  // Replaces file `name` in the data directory atomically and durably;
  // false (and the Log stopped, `what` logged) if it could not.
  bool write_whole_file(const std::string& name, std::string_view bytes, const char* what);
  result<std::uint64_t> load_join_token();
  // A timer whose callback runs f on the strand, unless the Log was closed
  // (epoch) or destroyed meanwhile (held weakly: a pending timer must not
  // keep the Log alive). f may capture `this`.
  template <class F>
  std::shared_ptr<Timer> after_on_strand(Clock::duration d, F f) {
    return clock_->after(d, [weak = weak_from_this(), ep = epoch_, f = std::move(f)] {
      auto self = weak.lock();
      if (!self) return;
      self->post_any_epoch([self, ep, f] {
        if (self->epoch_ == ep) f();
      });
    });
  }
  // Yes from a majority of the current configuration's voters.
  bool majority_granted(const std::map<std::uint64_t, bool>& answers) const {
    std::size_t granted = 0;
    for (const auto& [v, g] : answers)
      if (g && is_voter(v)) ++granted;
    return granted >= quorum();
  }
  template <class... A>
  void logf(fmt::format_string<A...> f, A&&... a) {
    std::function<void(std::string_view)> out;
    {
      std::lock_guard lk(view_mu_);
      out = logger_;
    }
    if (!out) return;
    out(fmt::format("raft[{}] t{} {}: {}", id_, term_, to_string(state_), fmt::format(f, std::forward<A>(a)...)));
  }
  void publish();
  // Status::peers, on the leader's heartbeat tick (not per ack: the hot
  // path); fill_ with view_mu_ held.
  void publish_peer_progress();
  void fill_peer_progress();
  // The hot path: only the indexes change (no config or string copies).
  void publish_indexes();
  std::uint64_t last_index() const { return log_ ? std::max(log_->last_index(), pending_last()) : 0; }
  std::uint64_t pending_last() const { return pending_append_.empty() ? 0 : pending_append_.back().index; }
  std::uint64_t last_term() const {
    if (!pending_append_.empty()) return pending_append_.back().term;
    return log_ ? log_->last_term() : 0;
  }
  std::uint64_t term_at(std::uint64_t index) const;
  void cache_add(std::vector<LogEntry>& entries);
  void cache_truncate_after(std::uint64_t index);
  void cache_clear() {
    cache_.clear();
    cache_bytes_ = 0;
  }
  // Calls f(const LogEntry&) for entries [from, to] in order, stopping once
  // max_bytes of data were visited (always at least one entry): from the
  // cache when it holds `from`, else read from the store.
  template <class F>
  result<void> visit_entries(std::uint64_t from, std::uint64_t to, std::size_t max_bytes, F&& f) {
    if (from > to) return {};
    if (!cache_.empty() && from >= cache_first_ && to < cache_first_ + cache_.size()) {
      std::size_t bytes = 0;
      for (std::uint64_t i = from; i <= to; ++i) {
        const LogEntry& e = cache_[i - cache_first_];
        if (i > from && bytes + e.data.size() > max_bytes) break;
        bytes += e.data.size();
        f(e);
      }
      return {};
    }
    auto batch = log_->read(from, to, max_bytes);
    if (!batch) return batch.error();
    for (const auto& e : *batch) f(e);
    return {};
  }
  // Learners count for none of the majorities (commit, votes, reads,
  // check-quorum): the cluster's availability depends on its voters only.
  std::size_t quorum() const { return config_.voter_count() / 2 + 1; }
  // The highest value that a majority of the configuration's voters have
  // reached: this node counts with `mine` (when it is a voter), each peer
  // with its `field` (0 if it has no Peer yet). nullopt with no voters.
  std::optional<std::uint64_t> quorum_value(std::uint64_t mine, std::uint64_t Peer::*field) const;
  bool in_config(std::uint64_t id) const { return config_.node_by_id(id) != nullptr; }
  bool is_voter(std::uint64_t id) const {
    return config_.is_voter(id) || (o_.inject_fault == LogOptions::Fault::learner_counts_as_voter && in_config(id));
  }
  // Whether `c` gives `id` to `url`: how a leader binds a node id to the
  // process that claims it.
  static bool binds(const Config& c, std::uint64_t id, const std::string& url) {
    const auto* n = c.node_by_id(id);
    return n && n->url == url;
  }
  // Leader: may the process at `url` act as node `id`? Empty: yes.
  //   node_not_found     `id` was a member and was removed (ids are never
  //                      reused within one log): the requester is out.
  //   node_url_required  no URL given. Refused: every node of a cluster runs
  //                      this version, and accepting it would leave the id
  //                      unchecked.
  //   node_url_mismatch  `url` is a member under another id, or `id` is
  //                      another node's or was never handed out in this log:
  //                      the requester's join was lost (its AddPeer entry
  //                      truncated; it may since have been added again, its
  //                      answer lost) and it should join again to learn its id.
  std::error_code identity_error(std::uint64_t id, const std::string& url) const {
    const auto* n = config_.node_by_id(id);
    if (n && !url.empty() && n->url == url) return {};
    const bool removed = !n && id <= config_.max_node_id;
    if (url.empty()) return removed ? errc::node_not_found : errc::node_url_required;
    if (config_.node_by_url(url)) return errc::node_url_mismatch;
    if (removed) return errc::node_not_found;
    return errc::node_url_mismatch;
  }
  std::string url_of(std::uint64_t id) const {
    // The leader's own word first: our configuration may give its id to
    // another URL. An AddPeer we appended as leader and that a later leader
    // truncated (we lost our majority first) still names the lost joiner
    // under that id until the stream truncates it; once the id is given to
    // the next joiner and that node leads, the stream we need to get rid of
    // the stale entry would go to the lost joiner's URL, which refuses it
    // ("not leader") or is gone, forever (simulator, reopen_in_place seed
    // 1452). Heartbeats name the sender's URL (leader_url).
    if (id != 0 && id == leader_id_ && id == leader_url_hint_id_ && !leader_url_hint_.empty()) return leader_url_hint_;
    const auto* n = config_.node_by_id(id);
    if (n) return n->url;
    if (id != 0 && id == leader_id_) return leader_url_hint_;
    return std::string();
  }

  // ---------------------------------------------------------- lifecycle
  result<void> open(const std::string& path);
  // sync=false: a simulated power cut (crash_for_testing) writes nothing more.
  void close_now(std::error_code why, bool sync = true);
  void fatal(std::string_view what, std::error_code ec);
  void restore_config_from_log();

  // --------------------------------------------------------- persistence
  bool persist_meta();
  void set_term(std::uint64_t term);
  void append_local(LogEntry e);
  void flush_appends();
  void request_deferred();
  void request_reclaim();
  void schedule_flush();
  void request_sync();
  void on_synced(std::uint64_t durable);
  // `why` is what pending apply() calls on the removed entries learn:
  // errc::not_committed when a conflicting entry proves they cannot commit,
  // errc::timeout (outcome unknown) when they are dropped only because their
  // match with the leader is not yet established (they may come back).
  bool truncate_after(std::uint64_t index, errc why);
  void fail_pending_after(std::uint64_t index, errc why);
  void note_config_entry(const LogEntry& e);

  // ----------------------------------------------------------- roles
  void reset_election_timer();
  void on_election_timeout();
  void request_prevotes(std::uint64_t round);
  // transfer: an election the leader asked for (HeartbeatRequest::timeout_now).
  void start_election(bool transfer = false);
  void request_votes(std::uint64_t term);
  // Leadership transfer (thesis §3.10), leader side.
  void do_transfer(std::uint64_t target, Clock::duration timeout, Handler_fn<void> h);
  void maybe_send_timeout_now();
  // Steps down after a committed change removed or demoted us, telling a
  // caught-up voter to campaign at once.
  void step_down_handing_over();
  void end_transfer(std::error_code ec);
  // Leader stickiness (thesis §4.2.3): we follow a leader heard from within
  // an election timeout.
  bool leader_alive() const {
    return state_ == State::follower && leader_id_ != 0 && clock_->now() - last_heard_ < o_.election_timeout;
  }
  // reset_timer=false: seeing a higher term is not hearing from a leader;
  // only a leader's heartbeat or a granted vote resets the election timer
  // (Figure 2), or a node with the most up-to-date log could be kept from
  // ever campaigning by candidates it must refuse.
  void become_follower(std::uint64_t leader, bool reset_timer = true);
  void become_leader();
  void start_heartbeats();
  void send_heartbeats();
  void send_heartbeat(std::uint64_t peer);
  void advance_commit();
  void set_commit(std::uint64_t c);
  void maybe_apply();
  void settle_pending();
  void arm_apply_timer(Clock::time_point at);
  void on_apply_timer();
  void maybe_snapshot();
  void on_applied(std::uint64_t last);  // FSM has applied through `last`: wake wait()ers
  void compact_to(const storage::SnapshotMeta& meta);
  // Drops the entries a snapshot at `snapshot_index` covers, but for
  // o_.snapshot_tail_entries, from the log; their files go off the strand.
  result<void> compact_log(std::uint64_t snapshot_index);
  const Config& config_at(std::uint64_t index) const;
  result<void> on_snapshot_event(InStream& s, const detail::StreamEvent& ev);
  void begin_snapshot_send(const std::shared_ptr<OutStream>& s);
  void send_buf(const std::shared_ptr<OutStream>& s, bool advance);

  // ---------------------------------------------------------- streams
  void open_stream();
  void schedule_reconnect();
  void drop_in_stream();
  result<void> on_stream_event(InStream& s, const detail::StreamEvent& ev, std::vector<LogEntry>& batch);
  void on_stream_bytes(std::uint64_t serial, std::string_view bytes);
  void maybe_ack();
  void serve_stream(const StreamRequest& req, std::shared_ptr<StreamWriter> w);
  void pump(const std::shared_ptr<OutStream>& s);
  void end_out_streams(std::error_code ec);

  // ---------------------------------------------------------- requests
  void do_apply(LogEntry e, Clock::duration timeout, Handler_fn<std::uint64_t> h);
  void do_wait(std::uint64_t index, Clock::duration timeout, Handler_fn<void> h);
  void do_read_index(Clock::duration timeout, bool wait_applied, Handler_fn<std::uint64_t> h);
  void leader_read(Clock::duration timeout, bool wait_applied, Handler_fn<std::uint64_t> h);
  void forward_read(Clock::duration timeout, bool wait_applied, Handler_fn<std::uint64_t> h);
  void send_forwarded_reads();
  void do_serve_read_index(const ReadIndexRequest& req, Handler_fn<std::uint64_t> h);
  // Answers a read whose index is known: at once, or for read_barrier()
  // once the FSM has applied it, within what is left before `deadline`.
  void finish_read(std::uint64_t index, PendingRead r);
  void settle_reads();
  // Queues a read in `reads` (pending_reads_ or forwarded_reads_) under
  // `key`; with a timeout, it fails with errc::timeout if still there then.
  void queue_read(std::map<std::uint64_t, PendingRead>& reads, std::uint64_t key, Clock::duration timeout,
                  bool wait_applied, Handler_fn<std::uint64_t> h);
  static void fail_all(std::map<std::uint64_t, PendingRead>& reads, std::error_code why);
  void fail_reads(std::error_code why) { fail_all(pending_reads_, why); }
  void fail_forwarded_reads(std::error_code why) {
    forward_inflight_ = false;  // an answer still to come finds nothing to answer
    fail_all(forwarded_reads_, why);
  }
  void do_initialize(Handler_fn<void> h);
  void do_join(std::string url, JoinOptions opts, Handler_fn<void> h);
  void join_attempt(std::string url, int attempt, Handler_fn<void> h);
  void promote_attempt(int attempt, Handler_fn<void> h);
  // Errors after which a join (or a joiner's promotion request) is asked
  // again shortly rather than returned.
  static bool retry_join(std::error_code ec) {
    return ec == errc::change_in_progress || ec == errc::transport_error || ec == errc::timeout ||
           ec == errc::no_leader || ec == errc::not_leader || ec == errc::transfer_in_progress;
  }
  // Whether join() goes on to ask for this node's promotion
  // (JoinOptions::catch_up_first).
  bool join_catch_up_ = false;
  // This directory joined with catch_up_first and has not yet been told its
  // promotion committed: the file `promote-intent` exists. Written before
  // the first join request, so a node that restarts between joining as a
  // learner and its promotion asks for it again (resume_promotion) instead
  // of staying a learner nobody meant it to be. Removed once a leader
  // answers that the promotion committed, once our own log has it committed
  // (maybe_drop_promote_intent), or when a leader refuses us as removed.
  bool promote_intent_ = false;
  bool resuming_promotion_ = false;  // resume_promotion's request or retry timer is live
  bool set_promote_intent(bool on);
  void resume_promotion();
  // The end of a round of promotion requests (join()'s or
  // resume_promotion's): the intent ends with the promotion or a removal;
  // otherwise, if `ask_again`, the node asks again an election timeout later.
  void promotion_round_ended(const result<void>& r, bool ask_again);
  // Drops the intent once a committed configuration in our log makes us a
  // voter: a node that crashed before the leader's answer came, and was
  // demoted meanwhile, must not undo the demotion by asking again.
  void maybe_drop_promote_intent();
  bool save_join_config(const Config& c);
  bool confirmed_member() const;
  void maybe_confirm();
  void rejoin();
  void on_refused(std::error_code ec, const char* what);
  void do_leave(Handler_fn<void> h);
  void do_add_peer(std::string url, std::uint64_t join_token, bool learner, bool wait_commit,
                   Handler_fn<std::pair<std::uint64_t, Config>> h, Handler_fn<JoinResponse> join_h);
  void do_remove_peer(std::uint64_t id, Handler_fn<void> h);
  void do_promote_peer(std::uint64_t id, Clock::duration timeout, Handler_fn<void> h);
  void do_demote_peer(std::uint64_t id, Handler_fn<void> h);
  // Appends a membership entry (remove, promote, demote) and answers `h`
  // once it commits (or with the error that ends its wait).
  void append_change(LogEntryType type, std::uint64_t id, Handler_fn<void> h);
  std::error_code promotion_error(std::uint64_t id) const;
  void maybe_promote();
  void end_promotion(std::error_code ec);
  void do_heartbeat(const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h);
  void do_vote(const VoteRequest& req, Handler_fn<VoteResponse> h);
  std::error_code sticky_refusal(std::uint64_t candidate) const;
  void do_ack(const AckRequest& req, Handler_fn<void> h);
  std::error_code can_change_membership() const;
};

// ==================================================================== set-up

net::any_io_executor Log::Impl::init_executor() {
  // Runs in the member initializer list, before strand_ exists.
  if (!o_.executor) {
    own_io_ = std::make_unique<net::io_context>(1);
    own_work_.emplace(own_io_->get_executor());
    o_.executor = own_io_->get_executor();
    own_thread_ = std::thread([io = own_io_.get(), spin = o_.busy_poll] { run_polling(*io, spin); });
  }
  return o_.executor;
}

Log::Impl::Impl(LogOptions opts) : o_(std::move(opts)), strand_(net::make_strand(init_executor())) {
  if (!o_.storage_executor) {
    own_storage_io_ = std::make_unique<net::io_context>(1);
    own_storage_work_.emplace(own_storage_io_->get_executor());
    o_.storage_executor = own_storage_io_->get_executor();
    own_storage_thread_ = std::thread([io = own_storage_io_.get()] { io->run(); });
  }
  storage_ex_ = o_.storage_executor;
  apply_ex_ = o_.apply_executor ? o_.apply_executor : storage_ex_;
  if (!o_.clock) own_clock_ = std::make_unique<SystemClock>(o_.executor);
  clock_ = o_.clock ? o_.clock : own_clock_.get();
  if (!o_.filesystem) own_fs_ = storage::make_posix_filesystem();
  fs_ = o_.filesystem ? o_.filesystem : own_fs_.get();
  logger_ = o_.logger;
  view_.state = "stopped";
}

Log::Impl::~Impl() { stop_own_threads(); }

void Log::Impl::stop_own_threads() {
  own_work_.reset();
  own_storage_work_.reset();
  if (own_io_) own_io_->stop();
  if (own_storage_io_) own_storage_io_->stop();
  if (own_thread_.joinable()) own_thread_.join();
  if (own_storage_thread_.joinable()) own_storage_thread_.join();
  // Handlers still queued hold the Impl (shared_from_this) and would keep it
  // alive for good now that nothing runs them: run them here. The Log is
  // closed, so each finds its epoch gone or the state stopped and returns.
  for (int round = 0; round < 1000; ++round) {
    std::size_t ran = 0;
    for (auto* io : {own_io_.get(), own_storage_io_.get()})
      if (io) {
        io->restart();
        ran += io->poll();
      }
    if (ran == 0) break;
  }
}

void Log::Impl::publish() {
  std::lock_guard lk(view_mu_);
  view_.id = id_;
  view_.state = std::string(to_string(state_));
  view_.term = term_;
  view_.leader_id = leader_id_;
  view_.leader_url = url_of(leader_id_);
  view_.commit_index = commit_;
  view_.applied_index = applied_;
  view_.last_index = last_index();
  view_.config = config_;
  fill_peer_progress();
  view_open_ = state_ != State::stopped;
  view_path_ = view_open_ ? path_ : std::string();
}

void Log::Impl::fill_peer_progress() {
  view_.peers.clear();
  if (state_ != State::leader) return;
  const auto now = clock_->now();
  for (const auto& [id, p] : peers_) {
    const auto age = now > p.last_contact ? now - p.last_contact : Clock::duration::zero();
    view_.peers.push_back(PeerProgress{
        id, p.match, static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(age).count())});
  }
}

void Log::Impl::publish_peer_progress() {
  std::lock_guard lk(view_mu_);
  fill_peer_progress();
}

void Log::Impl::publish_indexes() {
  std::lock_guard lk(view_mu_);
  view_.commit_index = commit_;
  view_.applied_index = applied_;
  view_.last_index = last_index();
}

void Log::Impl::cache_add(std::vector<LogEntry>& entries) {
  if (entries.empty() || o_.entry_cache_bytes == 0) return;
  if (cache_.empty() || cache_first_ + cache_.size() != entries.front().index) {
    cache_clear();
    cache_first_ = entries.front().index;
  }
  for (auto& e : entries) {
    cache_bytes_ += e.data.size();
    cache_.push_back(std::move(e));
  }
  while (cache_bytes_ > o_.entry_cache_bytes && !cache_.empty()) {
    cache_bytes_ -= cache_.front().data.size();
    cache_.pop_front();
    ++cache_first_;
  }
}

void Log::Impl::cache_truncate_after(std::uint64_t index) {
  while (!cache_.empty() && cache_first_ + cache_.size() - 1 > index) {
    cache_bytes_ -= cache_.back().data.size();
    cache_.pop_back();
  }
}

std::uint64_t Log::Impl::term_at(std::uint64_t index) const {
  if (index == 0) return 0;
  if (!pending_append_.empty() && index >= pending_append_.front().index)
    return pending_append_[index - pending_append_.front().index].term;
  auto t = log_->term_at(index);
  RAFT_ASSERT(bool(t), "term_at outside the log");
  return *t;
}

result<void> Log::Impl::open(const std::string& path) {
  if (state_ != State::stopped) return errc::open;
  if (!o_.fsm) return errc::invalid_argument;
  if (auto r = fs_->mkdir(path); !r) return r.error();
  auto meta = storage::MetaStore::open(*fs_, path);
  if (!meta) return meta.error();
  storage::LogStoreOptions lo;
  lo.segment_size_bytes_max = o_.segment_size_bytes_max;
  lo.preallocate = o_.preallocate_segments;
  lo.entry_size_bytes_max = o_.entry_size_bytes_max;
  lo.warn = [this](const std::string& w) { logf("storage: {}", w); };
  if (auto r = fs_->mkdir(path + "/log"); !r) return r.error();
  auto log = storage::LogStore::open(*fs_, path + "/log", lo);
  if (!log) return log.error();
  if (auto r = fs_->mkdir(path + "/snapshots"); !r) return r.error();
  auto snaps = storage::SnapshotStore::open(*fs_, path + "/snapshots", lo.warn);
  if (!snaps) return snaps.error();

  ++epoch_;
  // Work still queued from an earlier opening (a sync, a flush, the next
  // inline apply batch) belongs to that epoch and is dropped: this opening
  // starts with none of it running, or it would wait for it forever and
  // never sync, flush or apply again.
  sync_running_ = sync_again_ = false;
  deferred_running_ = false;
  reclaim_running_ = false;
  flush_posted_ = false;
  applying_ = false;
  path_ = path;
  meta_.emplace(std::move(*meta));
  log_ = std::shared_ptr<storage::LogStore>(std::move(*log));
  snaps_ = std::move(*snaps);
  const auto& m = meta_->get();
  id_ = m.id;
  term_ = m.term;
  voted_for_ = m.voted_for;
  cluster_id_ = m.cluster_id;
  if (o_.transport) o_.transport->set_cluster_id(cluster_id_);
  durable_ = log_->last_index();  // what survived a restart is on disk
  pending_append_.clear();
  leader_id_ = 0;
  acked_ = 0;
  stream_from_.reset();

  // Bring the FSM up to date: restore the latest snapshot if the FSM is
  // behind it, then replay committed entries as commits become known.
  std::uint64_t fsm_index = o_.fsm->index();
  base_config_ = Config{};
  snapshot_index_ = snapshot_term_ = 0;
  snapshotting_ = false;
  pending_restore_.reset();
  restoring_ = 0;
  if (auto snap = snaps_->latest()) {
    base_config_ = snap->config;
    snapshot_index_ = snap->index;
    snapshot_term_ = snap->term;
    if (fsm_index < snap->index) {
      auto reader = snaps_->open_reader(*snap);
      if (!reader) return reader.error();
      if (auto r = o_.fsm->restore(**reader); !r) return r.error();
      fsm_index = snap->index;
    }
    if (log_->last_index() < snap->index) {
      // Crashed between storing a received snapshot and resetting the log.
      if (auto r = log_->reset(snap->index, snap->term); !r) return r.error();
      durable_ = snap->index;
    }
  }
  // A node stopped after a snapshot but before its compaction, or before the
  // storage thread deleted the compacted segments (close() does not wait for
  // that, and a crash may come first), finds their files again: compact now
  // rather than at the next snapshot, which may be far off.
  if (snapshot_index_ != 0)
    if (auto r = compact_log(snapshot_index_); !r) return r.error();
  // Entries the FSM holds were committed; so is everything up to the log's
  // start (compaction only drops applied entries).
  commit_ = std::max(fsm_index, log_->prev_index());
  applied_ = fsm_index;
  restore_config_from_log();
  join_learner_ = false;
  join_catch_up_ = false;
  if (id_ != 0) {
    // A node that joined but had not received any entry yet takes the
    // configuration it joined with; and a node asking again (rejoin) asks
    // in the role it first asked for.
    auto f = fs_->open(path_ + "/join.json", {.read_only = true});
    if (f) {
      std::string buf(4096, '\0');
      auto n = (*f)->read_at(0, std::as_writable_bytes(std::span(buf.data(), buf.size())));
      if (n) {
        buf.resize(*n);
        if (auto c = config_from_json(buf)) {
          if (const auto* me = c->node_by_id(id_)) join_learner_ = me->learner;
          if (config_.nodes.empty()) config_ = *c;
        }
      }
    }
  }
  {
    auto p = fs_->exists(path_ + "/promote-intent");
    promote_intent_ = p && *p;
  }
  resuming_promotion_ = false;
  // The token of this directory's joins (0 if it never asked to join); a
  // Log opened again on a wiped directory draws a new one.
  auto token = load_join_token();
  if (!token) return token.error();
  join_token_ = *token;
  // Joined, but no committed configuration with us seen yet: see provisional_.
  rejoining_ = false;
  {
    auto j = fs_->exists(path_ + "/join.json");
    provisional_ = id_ != 0 && j && *j;
  }
  maybe_confirm();
  state_ = State::follower;
  logf("opened {}: term {}, last index {}, commit {}, fsm index {}", path, term_, log_->last_index(), commit_,
       fsm_index);
  publish();
  post([this] {
    reset_election_timer();
    maybe_apply();
    // A single-node cluster elects itself at once instead of waiting.
    if (config_.voter_count() == 1 && is_voter(id_)) on_election_timeout();
    // Joined with catch_up_first and restarted before hearing that the
    // promotion committed: ask for it again, unless our log shows it did.
    if (promote_intent_) maybe_drop_promote_intent();
    if (promote_intent_ && id_ != 0) resume_promotion();
  });
  return {};
}

void Log::Impl::restore_config_from_log() {
  configs_.clear();
  config_ = base_config_;
  const std::uint64_t first = log_->first_index(), last = log_->last_index();
  for (std::uint64_t i = first; i <= last;) {
    auto batch = log_->read(i, last, 8u << 20);
    RAFT_ASSERT(bool(batch) && !batch->empty(), "log unreadable while restoring config");
    for (auto& e : *batch) {
      if (e.index <= snapshot_index_) continue;  // already in the snapshot's config
      if (is_config_entry(e.type)) note_config_entry(e);
    }
    i = batch->back().index + 1;
  }
}

void Log::Impl::note_config_entry(const LogEntry& e) {
  Config c = config_;
  switch (e.type) {
    case LogEntryType::initialize: {
      auto parsed = config_from_json(e.data);
      RAFT_ASSERT(bool(parsed), "initialize entry with a bad config");
      c = *parsed;
      break;
    }
    case LogEntryType::add_peer: {
      auto d = decode_add_peer(e.data);
      auto r = c.add_node(c.max_node_id + 1, std::move(d.url), d.join_token, d.learner);
      if (!r) logf("add_peer entry {} not applicable: {}", e.index, r.error().message());
      break;
    }
    case LogEntryType::promote_peer: {
      auto r = c.promote(decode_u64(e.data));
      if (!r) logf("promote_peer entry {} not applicable: {}", e.index, r.error().message());
      break;
    }
    case LogEntryType::demote_peer: {
      auto r = c.demote(decode_u64(e.data));
      if (!r) logf("demote_peer entry {} not applicable: {}", e.index, r.error().message());
      break;
    }
    case LogEntryType::bind_token: {
      const std::string_view d = e.data;
      auto r = d.size() == 16 ? c.bind_token(decode_u64(d.substr(0, 8)), decode_u64(d.substr(8)))
                              : result<void>(errc::invalid_argument);
      if (!r) logf("bind_token entry {} not applicable: {}", e.index, r.error().message());
      break;
    }
    case LogEntryType::remove_peer: {
      auto r = c.remove_node(decode_u64(e.data));
      if (!r) logf("remove_peer entry {} not applicable: {}", e.index, r.error().message());
      break;
    }
    default: return;
  }
  c.index = e.index;
  if (c.cluster_id == 0) c.cluster_id = cluster_id_;
  configs_.push_back(c);
  config_ = std::move(c);
  publish();  // getters and /raft/status see the new configuration
  if (state_ == State::leader) {
    // Start or stop replicating to members as the configuration changes.
    for (const auto& n : config_.nodes)
      if (n.id != id_ && !peers_.count(n.id)) {
        peers_[n.id] = Peer{0, clock_->now(), false};
        send_heartbeat(n.id);
      }
    for (auto it = peers_.begin(); it != peers_.end();) it = in_config(it->first) ? std::next(it) : peers_.erase(it);
  }
}

void Log::Impl::fatal(std::string_view what, std::error_code ec) {
  // DESIGN 6: an fsync or write error is fatal for the node (fail-stop).
  logf("FATAL: {}: {}; stopping this node", what, ec.message());
  close_now(errc::store_failed);
}

void Log::Impl::close_now(std::error_code why, bool sync) {
  if (state_ == State::stopped) return;
  if (state_ == State::leader) end_out_streams(errc::not_leader);
  out_streams_.clear();
  drop_in_stream();
  for (auto* t : {&election_timer_, &heartbeat_timer_, &reconnect_timer_, &vote_retry_timer_, &prevote_retry_timer_})
    if (*t) (*t)->cancel();
  ++election_gen_;
  ++heartbeat_gen_;
  ++reconnect_gen_;
  state_ = State::stopped;
  ++epoch_;
  for (auto& [i, p] : pending_applies_) fail(p.h, why);
  pending_applies_.clear();
  fail_reads(why);
  fail_forwarded_reads(why);
  if (transfer_) end_transfer(why);
  if (promotion_) end_promotion(why);
  if (apply_timer_) apply_timer_->cancel();
  apply_timer_at_ = Clock::time_point::max();
  ++apply_timer_gen_;
  for (auto& [i, w] : waiters_) {
    if (w.timer) w.timer->cancel();
    fail(w.h, why);
  }
  waiters_.clear();
  if (sync && why != errc::store_failed && log_) {
    flush_appends();
    // Without fsync, still finish sealing full segments: the next open then
    // has no pending segment to adopt.
    if (o_.sync)
      (void)log_->sync();
    else
      (void)log_->run_deferred();
  }
  if (log_) log_->close();
  pending_append_.clear();
  cache_clear();
  peers_.clear();
  leader_id_ = 0;
  publish();
}

// =============================================================== persistence

bool Log::Impl::persist_meta() {
  storage::Meta m{id_, term_, voted_for_, cluster_id_};
  if (o_.inject_fault == LogOptions::Fault::forget_vote) m.voted_for = 0;
  auto r = meta_->save(m);
  if (!r) {
    fatal("saving term and vote", r.error());
    return false;
  }
  return true;
}

void Log::Impl::set_term(std::uint64_t term) {
  RAFT_ASSERT(term > term_, "terms only increase");
  term_ = term;
  voted_for_ = 0;
  leader_id_ = 0;
  leader_url_hint_id_ = 0;  // a hint names a leader of one term: the next one's heartbeat sets it again
  leader_commit_ = 0;
  acked_ = 0;
  persist_meta();
}

void Log::Impl::append_local(LogEntry e) {
  RAFT_ASSERT(e.index == last_index() + 1, "appends are contiguous");
  if (is_config_entry(e.type)) note_config_entry(e);
  pending_append_.push_back(std::move(e));
  schedule_flush();
}

void Log::Impl::schedule_flush() {
  if (flush_posted_) return;
  // Everything appended in this strand turn goes out as one store write and
  // one stream write per follower.
  flush_posted_ = true;
  post([this] {
    flush_posted_ = false;
    flush_appends();
  });
}

void Log::Impl::flush_appends() {
  if (state_ == State::stopped) return;
  if (pending_append_.empty()) {
    for (auto& [peer, s] : out_streams_) pump(s);
    return;
  }
  auto r = log_->append(pending_append_);
  if (!r) {
    pending_append_.clear();
    return fatal("appending to the log", r.error());
  }
  cache_add(pending_append_);
  pending_append_.clear();
  request_sync();
  if (!o_.sync) request_deferred();
  for (auto& [peer, s] : out_streams_) pump(s);
}

void Log::Impl::request_deferred() {
  // Without sync() (which does it as part of every round), the disk work
  // the append left is done here, off the strand (LogStore::run_deferred):
  // seals, without which a crash of the machine would drop the sealed
  // segments' successors, space reservation and writeback hints.
  if (deferred_running_ || !log_->deferred_pending()) return;
  deferred_running_ = true;
  net::post(storage_ex_, [self = shared_from_this(), ep = epoch_, log = log_] {
    auto r = log->run_deferred();
    self->post_any_epoch([self, ep, r] {
      if (self->epoch_ != ep) return;
      self->deferred_running_ = false;
      if (!r) return self->fatal("sealing a log segment", r.error());
      self->request_deferred();  // more queued meanwhile
    });
  });
}

void Log::Impl::request_reclaim() {
  // The files of compacted segments are deleted off the strand: an unlink
  // and a directory fsync per segment (LogStore::reclaim). One per job, so
  // syncs queued on a one-thread storage executor run in between.
  if (reclaim_running_ || !log_->reclaim_pending()) return;
  reclaim_running_ = true;
  net::post(storage_ex_, [self = shared_from_this(), ep = epoch_, log = log_] {
    auto r = log->reclaim(1);
    self->post_any_epoch([self, ep, r] {
      if (self->epoch_ != ep) return;
      self->reclaim_running_ = false;
      if (!r) return self->fatal("deleting compacted log segments", r.error());
      self->request_reclaim();  // the next file
    });
  });
}

void Log::Impl::request_sync() {
  if (sync_running_) {
    sync_again_ = true;
    return;
  }
  sync_running_ = true;
  if (!o_.sync) {
    // No fsync: treat what reached the OS as durable (benchmarks only).
    post([this] { sync_running_ = false; on_synced(log_->last_index()); });
    return;
  }
  net::post(storage_ex_, [self = shared_from_this(), ep = epoch_, log = log_, gen = trunc_gen_] {
    auto r = log->sync();
    self->post_any_epoch([self, ep, r, gen] {
      if (self->epoch_ != ep) return;
      self->sync_running_ = false;
      if (!r) return self->fatal("syncing the log", r.error());
      if (gen != self->trunc_gen_) {
        self->sync_again_ = false;
        return self->request_sync();
      }
      self->on_synced(*r);
    });
  });
}

void Log::Impl::on_synced(std::uint64_t durable) {
  durable_ = std::min(durable, log_->last_index());
  if (sync_again_) {
    sync_again_ = false;
    request_sync();
  }
  if (state_ == State::leader) {
    advance_commit();
  } else if (in_ && in_->positioned) {
    // Entries both durable and known to match the leader may commit.
    set_commit(std::min(leader_commit_, std::min(durable_, in_->pos)));
    maybe_ack();
  }
}

void Log::Impl::fail_pending_after(std::uint64_t index, errc why) {
  for (auto it = pending_applies_.upper_bound(index); it != pending_applies_.end();) {
    fail(it->second.h, why);
    it = pending_applies_.erase(it);
  }
}

bool Log::Impl::truncate_after(std::uint64_t index, errc why) {
  // Committed entries are never truncated (DESIGN 5).
  RAFT_ASSERT(index >= commit_, "truncating a committed entry");
  flush_appends();
  if (index >= log_->last_index()) return true;
  logf("truncating log after {} (last {})", index, log_->last_index());
  auto r = log_->truncate_suffix(index, commit_);
  cache_truncate_after(index);
  if (!r) {
    fatal("truncating the log", r.error());
    return false;
  }
  durable_ = std::min(durable_, index);
  ++trunc_gen_;
  while (!configs_.empty() && configs_.back().index > index) configs_.pop_back();
  config_ = configs_.empty() ? base_config_ : configs_.back();
  publish();
  // Client calls waiting on removed entries learn it now.
  fail_pending_after(index, why);
  return true;
}

// ===================================================================== roles

void Log::Impl::reset_election_timer() {
  if (election_timer_) election_timer_->cancel();
  ++prevote_round_;  // a leader was heard or a vote granted: no election now
  const auto t = o_.election_timeout;
  const auto jitter = Clock::duration(static_cast<Clock::duration::rep>(rand() % std::max<std::uint64_t>(1, t.count())));
  const auto gen = ++election_gen_;
  election_timer_ = after_on_strand(t + jitter, [this, gen] {
    if (election_gen_ == gen) on_election_timeout();
  });
}

void Log::Impl::on_election_timeout() {
  if (state_ == State::stopped || state_ == State::leader) return;
  // No leader heard for an election timeout: a node whose membership is not
  // yet confirmed asks again (its join may have been lost; see provisional_).
  if (provisional_) rejoin();
  // Only voters campaign: a removed node, one still joining, or a learner
  // stays quiet.
  if (id_ == 0 || !is_voter(id_)) return reset_election_timer();
  if (quorum() == 1) return start_election();  // our own vote decides
  reset_election_timer();
  // Pre-vote first (thesis §9.6): the term goes up, and our vote goes to
  // ourselves, only once a majority says it would vote for us. A node that
  // cannot win otherwise disrupts the one that can, again and again: the
  // simulator found a member whose configuration was stale (it had missed
  // the entry adding the only other voter that could lead) and whose only
  // known voter, holding a longer log, always refused it; it still raised
  // its term and voted for itself every election timeout, usually just
  // before the electable node asked it for its vote in that same term, so no
  // leader was elected for 15 s (membership_add_remove_under_faults seed
  // 4311). Likewise a joiner whose AddPeer entry was lost (its log empty,
  // its configuration the one it joined with) deposed every new leader with
  // its ever-higher terms (seed 9007).
  prevote_term_ = term_ + 1;
  prevotes_.clear();
  prevotes_[id_] = true;
  const auto round = ++prevote_round_;
  logf("pre-vote for term {} (last {}:{})", prevote_term_, last_index(), last_term());
  request_prevotes(round);
}

void Log::Impl::request_prevotes(std::uint64_t round) {
  if (round != prevote_round_ || term_ + 1 != prevote_term_ || state_ == State::stopped || state_ == State::leader)
    return;
  const VoteRequest req{prevote_term_, id_, last_index(), last_term(), true};
  for (const auto& n : config_.nodes) {
    if (n.id == id_ || n.learner || prevotes_.count(n.id)) continue;
    o_.transport->request_vote(n.url, req, [self = shared_from_this(), ep = epoch_, round, voter = n.id](result<VoteResponse> r) {
      self->post_any_epoch([self, ep, round, voter, r] {
        if (self->epoch_ != ep || !r) return;
        if (r->error == errc::node_not_found) self->on_refused(r->error, "pre-vote");
        if (!r->granted() && r->term > self->term_) {
          // Refused by a voter of a later term: catch up with it. (A voter
          // may grant in its own term, which is the one we ask about.)
          self->set_term(r->term);
          self->become_follower(0, false);
          return;
        }
        if (round != self->prevote_round_ || self->term_ + 1 != self->prevote_term_ ||
            self->state_ == State::stopped || self->state_ == State::leader)
          return;
        self->prevotes_[voter] = r->granted();
        if (self->majority_granted(self->prevotes_)) self->start_election();
      });
    });
  }
  prevote_retry_timer_ = after_on_strand(o_.heartbeat_interval, [this, round] { request_prevotes(round); });
}

void Log::Impl::start_election(bool transfer) {
  reset_election_timer();  // a full election timeout for this election
  flush_appends();
  set_term(term_ + 1);
  transfer_term_ = transfer ? term_ : 0;
  elections_started_.fetch_add(1, std::memory_order_relaxed);
  voted_for_ = id_;
  if (!persist_meta()) return;
  state_ = State::candidate;
  drop_in_stream();
  votes_.clear();
  votes_[id_] = true;
  logf("election started (last {}:{})", last_index(), last_term());
  publish();
  if (votes_.size() >= quorum()) return become_leader();
  request_votes(term_);
}

void Log::Impl::request_votes(std::uint64_t term) {
  if (state_ != State::candidate || term_ != term) return;
  const VoteRequest req{term_, id_, last_index(), last_term(), false, transfer_term_ == term_};
  for (const auto& n : config_.nodes) {
    // Ask again only those who have not answered: requests and replies can
    // be lost, and one lost vote should not cost a whole election round.
    if (n.id == id_ || n.learner || votes_.count(n.id)) continue;
    o_.transport->request_vote(n.url, req, [self = shared_from_this(), ep = epoch_, term = term_, voter = n.id](result<VoteResponse> r) {
      self->post_any_epoch([self, ep, term, voter, r] {
        if (self->epoch_ != ep || !r) return;
        if (r->error == errc::node_not_found) self->on_refused(r->error, "vote");
        if (r->term > self->term_) {
          self->set_term(r->term);
          self->become_follower(0, false);
          return;
        }
        if (self->state_ != State::candidate || self->term_ != term) return;
        self->votes_[voter] = r->granted();
        if (self->majority_granted(self->votes_)) self->become_leader();
      });
    });
  }
  vote_retry_timer_ = after_on_strand(o_.heartbeat_interval, [this, term] { request_votes(term); });
}

void Log::Impl::become_follower(std::uint64_t leader, bool reset_timer) {
  const bool was_leader = state_ == State::leader;
  if (was_leader) {
    // A transfer is done once we step down for a later term (whoever won
    // it); check-quorum stepping us down in our own term is no transfer.
    if (transfer_) end_transfer(term_ > transfer_->term ? std::error_code{} : make_error_code(errc::not_leader));
    end_out_streams(errc::not_leader);
    if (promotion_) end_promotion(make_error_code(errc::not_leader));
    // A read not yet confirmed cannot be now: another leader may commit.
    fail_reads(make_error_code(errc::not_leader));
    peers_.clear();
    if (heartbeat_timer_) heartbeat_timer_->cancel();
    ++heartbeat_gen_;
  }
  if (in_ && (in_->term != term_ || in_->leader != leader)) drop_in_stream();
  if (state_ != State::follower || leader_id_ != leader) {
    state_ = State::follower;
    leader_id_ = leader;
    logf("following {}", leader);
  }
  if (reset_timer || was_leader || !election_timer_) reset_election_timer();
  // A node whose latest configuration leaves it out may never hear of later
  // commits: its pending calls learn now that their outcome is unknown here.
  if (id_ != 0 && !config_.nodes.empty() && !in_config(id_)) fail_pending_after(commit_, errc::removed);
  publish();
}

void Log::Impl::become_leader() {
  state_ = State::leader;
  leader_id_ = id_;
  leader_since_ = clock_->now();
  if (election_timer_) election_timer_->cancel();
  ++election_gen_;
  drop_in_stream();
  peers_.clear();
  for (const auto& n : config_.nodes)
    if (n.id != id_) peers_[n.id] = Peer{0, leader_since_, false};
  logf("became leader (last {}:{})", last_index(), last_term());
  // §5.4.2 / §8: a new leader commits an entry of its own term before it can
  // know which earlier entries are committed.
  term_start_ = last_index() + 1;
  append_local(LogEntry{LogEntryType::nop, term_start_, term_, {}});
  publish();
  start_heartbeats();
}

void Log::Impl::start_heartbeats() {
  const auto gen = ++heartbeat_gen_;
  send_heartbeats();
  publish_peer_progress();
  if (transfer_) maybe_send_timeout_now();  // again, if the last one was lost
  // Check quorum: a leader that has not heard from a majority within an
  // election timeout steps down, so a partitioned leader stops accepting work.
  if (state_ != State::leader) return;
  const auto now = clock_->now();
  if (now - leader_since_ >= o_.election_timeout) {
    std::size_t heard = is_voter(id_) ? 1 : 0;
    for (auto& [id, p] : peers_)
      if (is_voter(id) && now - p.last_contact < o_.election_timeout) ++heard;
    if (heard < quorum() && !config_.nodes.empty()) {
      logf("lost contact with a majority; stepping down");
      become_follower(0);
      return;
    }
  }
  heartbeat_timer_ = after_on_strand(o_.heartbeat_interval, [this, gen] {
    if (heartbeat_gen_ == gen && state_ == State::leader) start_heartbeats();
  });
}

void Log::Impl::send_heartbeats() {
  for (auto& [id, p] : peers_) send_heartbeat(id);
}

void Log::Impl::send_heartbeat(std::uint64_t peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end() || it->second.hb_inflight || !o_.transport) return;
  it->second.hb_inflight = true;
  const HeartbeatRequest req{term_, commit_, id_, o_.url};
  const std::uint64_t round = read_seq_;
  o_.transport->heartbeat(url_of(peer), req, [self = shared_from_this(), ep = epoch_, term = term_, peer, round](result<HeartbeatResponse> r) {
    self->post_any_epoch([self, ep, term, peer, round, r] {
      if (self->epoch_ != ep) return;
      auto it = self->peers_.find(peer);
      const bool ours = it != self->peers_.end() && self->term_ == term && self->state_ == State::leader;
      if (ours) it->second.hb_inflight = false;
      if (!r) return;
      if (r->term > self->term_) {
        self->set_term(r->term);
        self->become_follower(0, false);
        return;
      }
      if (!ours || r->error) return;
      // Only the member itself counts, for check-quorum and for reads: a
      // node started afresh at its URL (id 0, or another id) is not the
      // voter it replaced, and never voted in any later term.
      if (r->id != peer) return;
      it->second.last_contact = self->clock_->now();
      it->second.read_acked = std::max(it->second.read_acked, round);
      if (self->pending_reads_.empty()) return;
      // Reads that arrived while this heartbeat was out need a newer one.
      if (self->read_seq_ > round) self->send_heartbeat(peer);
      self->settle_reads();
    });
  });
}

std::optional<std::uint64_t> Log::Impl::quorum_value(std::uint64_t mine, std::uint64_t Peer::*field) const {
  std::vector<std::uint64_t> values;
  values.reserve(config_.nodes.size());
  for (const auto& n : config_.nodes) {
    if (!is_voter(n.id)) continue;
    if (n.id == id_) {
      values.push_back(mine);
    } else {
      auto it = peers_.find(n.id);
      values.push_back(it == peers_.end() ? 0 : it->second.*field);
    }
  }
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end(), std::greater<>());
  return values[quorum() - 1];
}

void Log::Impl::advance_commit() {
  if (state_ != State::leader) return;
  const auto quorum_match = quorum_value(durable_, &Peer::match);
  if (!quorum_match) return;
  const std::uint64_t n = *quorum_match;
  // §5.4.2 (Figure 8): only an entry of the current term is committed by
  // counting replicas; earlier entries commit with it.
  // n may be at or below the commit index, and then possibly compacted
  // away: after a member is removed, the quorum's match can be that of
  // members lagging behind the snapshot (term_at would assert; simulator,
  // reopen_in_place seed 4335). Only n > commit_ (hence not compacted:
  // compaction drops applied entries only) is looked up.
  const bool ok = n > commit_ && (o_.inject_fault == LogOptions::Fault::commit_previous_term_by_counting ||
                                  term_at(n) == term_);
  if (ok) set_commit(n);
  // A leader removed by a committed change steps down (thesis §4.2.2).
  if (!in_config(id_) && commit_ >= config_.index && state_ == State::leader) {
    logf("removed from the configuration; stepping down");
    // Nobody will tell a removed node about later commits: calls waiting on
    // entries after the removal learn that their outcome is unknown here.
    fail_pending_after(commit_, errc::removed);
    step_down_handing_over();
  }
  // So does one demoted to learner: it stays a member and follows whoever
  // the voters elect (it appended nothing after its demotion, see do_apply).
  if (in_config(id_) && !is_voter(id_) && commit_ >= config_.index && state_ == State::leader) {
    logf("demoted to learner; stepping down");
    step_down_handing_over();
  }
}

void Log::Impl::set_commit(std::uint64_t c) {
  if (c <= commit_) return;
  commit_ = std::min(c, last_index());
  if (provisional_) maybe_confirm();
  if (promote_intent_) maybe_drop_promote_intent();
  settle_pending();
  if (!pending_reads_.empty()) settle_reads();
  maybe_apply();
  publish_indexes();
  // Followers learn the new commit index on their streams (a commit frame
  // after the entries), not by an extra heartbeat round per commit. Sent at
  // the end of this strand turn: the applies that the settled calls trigger
  // right away then share the stream write (one send instead of two).
  if (state_ == State::leader) schedule_flush();
}

void Log::Impl::settle_pending() {
  while (!pending_applies_.empty() && pending_applies_.begin()->first <= commit_) {
    auto node = pending_applies_.extract(pending_applies_.begin());
    auto& p = node.mapped();
    auto h = std::move(p.h);
    if (!h) continue;
    if (node.key() < log_->prev_index()) {
      // Replaced by an installed snapshot: whether our entry is the one that
      // committed is unknown here, so say so rather than guess.
      h(result<std::uint64_t>(boost::system::in_place_error, make_error_code(errc::timeout)));
    } else if (term_at(node.key()) == p.term) h(node.key());
    else h(result<std::uint64_t>(boost::system::in_place_error, make_error_code(errc::not_committed)));
  }
}

void Log::Impl::maybe_apply() {
  if (applying_ || state_ == State::stopped) return;
  if (pending_restore_) {
    // An installed snapshot replaces the FSM's state (on the apply executor,
    // never concurrently with must_apply).
    applying_ = true;
    auto meta = std::move(*pending_restore_);
    pending_restore_.reset();
    ++apply_work_;
    restoring_ = meta.index;
    net::post(apply_ex_, [self = shared_from_this(), ep = epoch_, meta, snaps = snaps_.get()] {
      auto reader = snaps->open_reader(meta);
      result<void> r = reader ? self->o_.fsm->restore(**reader) : result<void>(reader.error());
      self->post_any_epoch([self, ep, meta, r] {
        self->apply_work_done();
        self->restoring_ = 0;
        if (self->epoch_ != ep) return;
        self->applying_ = false;
        if (!r) return self->fatal("restoring the FSM from a snapshot", r.error());
        self->applied_ = std::max(self->applied_, meta.index);
        self->logf("restored FSM from snapshot {}:{}", meta.index, meta.term);
        self->publish();
        self->maybe_apply();
      });
    });
    return;
  }
  if (applied_ >= commit_) return maybe_snapshot();
  flush_appends();
  const std::uint64_t to = std::min(commit_, log_->last_index());
  if (applied_ >= to) return;
  if (o_.apply_inline) {
    // A cheap FSM is fed here, on the strand, in the turn that committed
    // the entries: no hop to another thread and back, and cached entries
    // are passed by reference (no copy). One batch per turn, so a long
    // backlog (replay after open) does not hold up heartbeats and votes.
    std::uint64_t last = applied_;
    auto r = visit_entries(applied_ + 1, std::min(to, applied_ + 4096), 4u << 20, [&](const LogEntry& e) {
      o_.fsm->must_apply(e);
      last = e.index;
    });
    if (!r) return fatal("reading committed entries", r.error());
    on_applied(last);
    if (applied_ < std::min(commit_, log_->last_index())) {
      applying_ = true;  // keeps snapshots and other batches out until the next turn
      post([this] {
        applying_ = false;
        maybe_apply();
      });
    } else {
      maybe_snapshot();
    }
    return;
  }
  auto entries = std::make_shared<std::vector<LogEntry>>();
  auto r = visit_entries(applied_ + 1, std::min(to, applied_ + 4096), 4u << 20,
                         [&](const LogEntry& e) { entries->push_back(e); });
  if (!r) return fatal("reading committed entries", r.error());
  applying_ = true;
  ++apply_work_;
  net::post(apply_ex_, [self = shared_from_this(), ep = epoch_, entries] {
    for (const auto& e : *entries) self->o_.fsm->must_apply(e);
    self->post_any_epoch([self, ep, last = entries->back().index] {
      self->apply_work_done();
      if (self->epoch_ != ep) return;
      self->applying_ = false;
      self->on_applied(last);
      self->maybe_apply();
      if (!self->applying_) self->maybe_snapshot();
    });
  });
}

void Log::Impl::on_applied(std::uint64_t last) {
  applied_ = last;
  while (!waiters_.empty() && waiters_.begin()->first <= last) {
    auto node = waiters_.extract(waiters_.begin());
    if (node.mapped().timer) node.mapped().timer->cancel();
    if (auto h = std::move(node.mapped().h)) h({});
  }
  publish_indexes();
}

const Config& Log::Impl::config_at(std::uint64_t index) const {
  const Config* c = &base_config_;
  for (const auto& k : configs_) {
    if (k.index > index) break;
    c = &k;
  }
  return *c;
}

void Log::Impl::maybe_snapshot() {
  const bool by_entries = o_.snapshot_threshold_entries && applied_ - snapshot_index_ >= o_.snapshot_threshold_entries;
  const bool by_bytes = o_.snapshot_threshold_bytes && log_->size_bytes() >= o_.snapshot_threshold_bytes;
  if (applying_ || snapshotting_ || state_ == State::stopped || applied_ <= snapshot_index_ || !(by_entries || by_bytes))
    return;
  if (applied_ < log_->prev_index()) return;
  // Pause applying (not appending, voting or replicating) while the FSM
  // writes its state: the FSM sees no must_apply during snapshot().
  applying_ = snapshotting_ = true;
  const std::uint64_t index = applied_, term = term_at(index);
  Config cfg = config_at(index);
  ++apply_work_;
  net::post(apply_ex_, [self = shared_from_this(), ep = epoch_, index, term, cfg, snaps = snaps_.get()] {
    result<storage::SnapshotMeta> meta = errc::snapshot_corrupt;
    auto sink = snaps->create(index, term, cfg);
    if (!sink) {
      meta = sink.error();
    } else {
      auto covered = self->o_.fsm->snapshot(**sink);
      if (!covered) {
        (*sink)->abort();
        meta = covered.error();
      } else if (*covered != index) {
        (*sink)->abort();
        meta = errc::invalid_argument;  // the FSM must snapshot exactly what it applied
      } else {
        meta = (*sink)->commit();
      }
    }
    self->post_any_epoch([self, ep, meta] {
      self->apply_work_done();
      if (self->epoch_ != ep) return;
      self->applying_ = self->snapshotting_ = false;
      if (!meta) {
        self->logf("snapshot failed: {}", meta.error().message());
      } else {
        self->compact_to(*meta);
      }
      self->maybe_apply();
    });
  });
}

result<void> Log::Impl::compact_log(std::uint64_t snapshot_index) {
  // Keep a tail so followers slightly behind stream entries, not a snapshot.
  const std::uint64_t keep_from =
      snapshot_index > o_.snapshot_tail_entries ? snapshot_index - o_.snapshot_tail_entries : 0;
  if (keep_from <= log_->first_index()) return {};
  if (auto r = log_->compact(keep_from); !r) return r;
  request_reclaim();
  return {};
}

void Log::Impl::compact_to(const storage::SnapshotMeta& meta) {
  snapshot_index_ = meta.index;
  snapshot_term_ = meta.term;
  base_config_ = meta.config;
  while (!configs_.empty() && configs_.front().index <= meta.index) configs_.erase(configs_.begin());
  if (auto r = compact_log(meta.index); !r) return fatal("compacting the log", r.error());
  // Not the snapshot a queued restore is about to open: a newer snapshot
  // installed from the leader while the FSM restore of the previous one
  // still waits on the apply executor deleted its file, the restore failed
  // (i/o error) and the node stopped (simulator, reopen_in_place seed 4128,
  // whose apply executor lags). That file goes with the next compaction.
  const std::uint64_t keep_snap = restoring_ != 0 ? std::min(meta.index, restoring_) : meta.index;
  if (auto r = snaps_->remove_older_than(keep_snap); !r) logf("removing old snapshots: {}", r.error().message());
  logf("snapshot at {}:{}; log now starts at {}", meta.index, meta.term, log_->first_index());
}

// =================================================================== streams

void Log::Impl::drop_in_stream() {
  if (!in_) return;
  auto h = std::move(in_->handle);
  in_.reset();
  ack_inflight_ = false;
  if (h) h->cancel();
}

void Log::Impl::schedule_reconnect() {
  if (reconnect_timer_) reconnect_timer_->cancel();
  const auto gen = ++reconnect_gen_;
  reconnect_timer_ = after_on_strand(o_.reconnect_timeout, [this, gen] {
    if (reconnect_gen_ == gen) open_stream();
  });
}

void Log::Impl::open_stream() {
  // A joining node streams only once it knows its own id.
  if (state_ != State::follower || leader_id_ == 0 || id_ == 0 || in_ || !o_.transport) return;
  const std::string url = url_of(leader_id_);
  if (url.empty()) return;
  flush_appends();
  auto s = std::make_unique<InStream>();
  s->term = term_;
  s->leader = leader_id_;
  s->leader_url = url;
  s->parser = detail::StreamParser(o_.entry_size_bytes_max + 64 * 1024);
  s->serial = ++in_serial_;
  StreamRequest req{id_, term_, last_index(), last_term(), o_.url};
  if (stream_from_ && stream_from_->first < req.index) {
    req.index = stream_from_->first;
    req.log_term = stream_from_->second;
  }
  const auto serial = s->serial;
  in_ = std::move(s);
  // Report progress afresh on every stream: an ack the transport took but
  // the leader never read (the connection died under it, or the leader
  // refused it and cut the stream) must not keep acked_ ahead of what the
  // leader knows, or an idle cluster could wait forever for that report.
  acked_ = 0;
  StreamCallbacks cb;
  // The transport keeps these callbacks while we keep its handle (in_):
  // capture the Impl weakly, or the two keep each other alive forever.
  cb.on_data = [weak = weak_from_this(), ep = epoch_, serial](std::string_view bytes, std::function<void()> more) {
    auto self = weak.lock();
    if (!self) return more();
    // No copy: the transport keeps the bytes until `more` is called, and
    // `more` keeps the transport's stream (hence its buffer) alive.
    self->post_any_epoch([self, ep, serial, bytes, more = std::move(more)] {
      if (self->epoch_ == ep) self->on_stream_bytes(serial, bytes);
      // Read on only after these bytes were consumed: memory stays bounded.
      more();
    });
  };
  cb.on_end = [weak = weak_from_this(), ep = epoch_, serial](std::error_code ec) {
    auto self = weak.lock();
    if (!self) return;
    self->post_any_epoch([self, ep, serial, ec] {
      if (self->epoch_ != ep || !self->in_ || self->in_->serial != serial) return;
      self->logf("stream from {} ended: {}", self->in_->leader, ec ? ec.message() : "eof");
      self->in_.reset();
      self->ack_inflight_ = false;
      self->on_refused(ec, "stream");
      self->schedule_reconnect();
    });
  };
  auto handle = o_.transport->read_from(url, req, std::move(cb));
  if (in_ && in_->serial == serial) in_->handle = std::move(handle);
}

void Log::Impl::on_stream_bytes(std::uint64_t serial, std::string_view bytes) {
  if (!in_ || in_->serial != serial || state_ != State::follower) return;
  std::vector<LogEntry> batch;
  InStream& s = *in_;
  auto r = s.parser.feed(bytes, [&](const detail::StreamEvent& ev) { return on_stream_event(s, ev, batch); });
  if (!batch.empty()) {
    for (auto& e : batch) append_local(std::move(e));
    flush_appends();
  }
  if (!r) {
    if (r.error() != errc::canceled) logf("stream from {} rejected: {}", leader_id_, r.error().message());
    drop_in_stream();
    if (stream_from_) open_stream();  // retry at once from the earlier point
    else schedule_reconnect();
  }
}

result<void> Log::Impl::on_stream_event(InStream& s, const detail::StreamEvent& ev, std::vector<LogEntry>& batch) {
  using K = detail::StreamEvent::Kind;
  switch (ev.kind) {
    case K::config: {
      auto c = config_from_json(ev.data);
      if (!c) return c.error();
      if (cluster_id_ != 0 && c->cluster_id != cluster_id_) return errc::cluster_id_mismatch;
      if (ev.term != s.term) return errc::stale_term;
      return {};
    }
    case K::position: {
      // Log Matching (§5.3): we must hold (index, term) to read on from it.
      for (auto& e : batch) append_local(std::move(e));
      batch.clear();
      const std::uint64_t x = ev.index;
      const bool have = x <= last_index() && (x < log_->prev_index() ? true : term_at(x) == ev.term);
      if (!have) {
        // Step back over our whole run of entries with that term, but never
        // below the commit index, which always matches (Leader Completeness).
        std::uint64_t j = std::min(x, last_index());
        if (j > 0 && j >= log_->prev_index()) {
          const std::uint64_t t = term_at(j);
          while (j > commit_ && j > log_->prev_index() && term_at(j) == t) --j;
        }
        j = std::max(j, std::min(commit_, last_index()));
        stream_from_ = std::make_pair(j, j >= log_->prev_index() ? term_at(j) : 0);
        return errc::canceled;
      }
      stream_from_.reset();
      const std::uint64_t keep = std::max(x, commit_);
      if (keep < last_index() && !truncate_after(keep, errc::timeout)) return errc::store_failed;
      s.positioned = true;
      s.pos = x;
      return {};
    }
    case K::entry: {
      if (!s.positioned || ev.index != s.pos + 1 || ev.term > s.term) return errc::protocol_error;
      s.pos = ev.index;
      if (ev.index <= log_->prev_index()) return {};  // covered by our snapshot
      const std::uint64_t last = batch.empty() ? last_index() : batch.back().index;
      if (ev.index <= last) {
        const std::uint64_t have_term =
            (!batch.empty() && ev.index >= batch.front().index) ? batch[ev.index - batch.front().index].term : term_at(ev.index);
        if (have_term == ev.term) return {};  // already have it
        for (auto& e : batch) append_local(std::move(e));
        batch.clear();
        // The leader's entry here has another term, so ours (and, by Log
        // Matching, every later one of ours) is not in its log: not committed.
        if (!truncate_after(ev.index - 1, errc::not_committed)) return errc::store_failed;
      }
      batch.push_back(LogEntry{ev.type, ev.index, ev.term, std::string(ev.data)});
      return {};
    }
    case K::commit: {
      if (ev.term != s.term) return errc::protocol_error;
      // The leader's commit index; we commit only what we hold durably and
      // know to match (the same rule as for heartbeats).
      leader_commit_ = std::max(leader_commit_, ev.index);
      if (s.positioned) set_commit(std::min(leader_commit_, std::min(durable_, s.pos)));
      return {};
    }
    case K::snapshot_begin:
    case K::snapshot_data:
    case K::snapshot_end:
      for (auto& e : batch) append_local(std::move(e));
      batch.clear();
      return on_snapshot_event(s, ev);
  }
  return errc::protocol_error;
}

result<void> Log::Impl::on_snapshot_event(InStream& s, const detail::StreamEvent& ev) {
  using K = detail::StreamEvent::Kind;
  if (ev.kind == K::snapshot_begin) {
    if (ev.term > s.term) return errc::protocol_error;
    auto cfg = config_from_json(ev.data);
    if (!cfg) return cfg.error();
    s.snap_index = ev.index;
    s.snap_term = ev.term;
    s.snap_config = std::move(*cfg);
    // A snapshot of what we already hold committed needs no install.
    s.skip_snapshot = ev.index <= commit_;
    if (s.skip_snapshot) return {};
    if (snapshotting_) return errc::change_in_progress;  // retry after our own snapshot
    auto sink = snaps_->create(ev.index, ev.term, s.snap_config);
    if (!sink) return sink.error();
    s.sink = std::move(*sink);
    logf("receiving snapshot {}:{}", ev.index, ev.term);
    return {};
  }
  if (ev.kind == K::snapshot_data) {
    if (s.skip_snapshot) return {};
    if (!s.sink) return errc::protocol_error;
    return write_all(*s.sink, ev.data);
  }
  // snapshot_end
  s.positioned = true;
  s.pos = s.snap_index;
  if (s.skip_snapshot) return {};
  if (!s.sink) return errc::protocol_error;
  // Crash-safe order: (1) the snapshot file is durable, (2) the log is reset
  // durably if it does not contain the snapshot's last entry, (3) the FSM
  // restores. open() finishes (2) and (3) after a crash at any point.
  auto meta = s.sink->commit();
  s.sink.reset();
  if (!meta) return meta.error();
  const bool have = meta->index <= log_->last_index() && meta->index >= log_->prev_index() &&
                    term_at(meta->index) == meta->term;
  if (!have) {
    flush_appends();
    cache_clear();
    if (auto r = log_->reset(meta->index, meta->term); !r) {
      fatal("resetting the log after a snapshot", r.error());
      return errc::store_failed;
    }
    ++trunc_gen_;
    durable_ = meta->index;
    configs_.clear();
    fail_pending_after(meta->index, errc::timeout);  // dropped, fate unknown
  }
  commit_ = std::max(commit_, meta->index);
  compact_to(*meta);
  config_ = configs_.empty() ? base_config_ : configs_.back();
  pending_restore_ = *meta;
  if (provisional_) maybe_confirm();
  if (promote_intent_) maybe_drop_promote_intent();
  settle_pending();
  maybe_apply();
  publish();
  return {};
}

void Log::Impl::maybe_ack() {
  if (!in_ || !in_->positioned || ack_inflight_ || !o_.transport) return;
  const std::uint64_t have =
      o_.inject_fault == LogOptions::Fault::ack_before_sync ? std::max(durable_, log_->last_index()) : durable_;
  const std::uint64_t idx = std::min(have, in_->pos);
  if (idx <= acked_) return;
  ack_inflight_ = true;
  const AckRequest req{id_, term_, idx, o_.url};
  o_.transport->ack(in_->leader_url, req, [self = shared_from_this(), ep = epoch_, idx, serial = in_->serial](result<void> r) {
    self->post_any_epoch([self, ep, idx, serial, r] {
      if (self->epoch_ != ep) return;
      if (!r) self->on_refused(r.error(), "ack");
      if (!self->in_ || self->in_->serial != serial) return;
      self->ack_inflight_ = false;
      if (r) self->acked_ = std::max(self->acked_, idx);
      // Coalesce: report again only if more became durable meanwhile.
      if (r && std::min(self->durable_, self->in_->pos) > self->acked_) self->maybe_ack();
    });
  });
}

void Log::Impl::end_out_streams(std::error_code ec) {
  auto streams = std::move(out_streams_);
  out_streams_.clear();
  for (auto& [peer, s] : streams) {
    s->alive = false;
    s->writer->finish(ec);
  }
}

void Log::Impl::serve_stream(const StreamRequest& req, std::shared_ptr<StreamWriter> w) {
  if (req.term > term_) {
    set_term(req.term);
    become_follower(0, false);
  }
  if (state_ != State::leader) return w->finish(errc::not_leader);
  if (req.term < term_) return w->finish(errc::stale_term);
  // The stream is served to node req.id only if the requester is the process
  // our configuration gives that id to (its URL): see AckRequest and
  // identity_error().
  if (auto ec = identity_error(req.id, req.url)) {
    if (ec != errc::node_not_found) logf("stream for node {} from {} refused: {}", req.id, req.url, ec.message());
    return w->finish(ec);
  }
  flush_appends();
  // Where the follower's log can continue from: its last entry if we hold it
  // with the same term, else an earlier point (it checks and may ask again).
  std::uint64_t x = std::min(req.index, last_index());
  if (x >= log_->prev_index() && x == req.index && term_at(x) == req.log_term) {
    // match
  } else {
    if (x == req.index && x > 0) --x;
    while (x > log_->prev_index() && term_at(x) > req.log_term) --x;
  }
  auto s = std::make_shared<OutStream>();
  s->writer = std::move(w);
  s->peer = req.id;
  s->term = term_;
  s->next = x + 1;
  detail::encode_frame(s->buf, detail::kFrameConfig, config_.index, term_, to_json(config_));
  if (x < log_->prev_index()) {
    // The follower needs entries we compacted: it gets the snapshot first
    // (pump() starts it since next < first_index).
    s->next = log_->prev_index() + 1;
    s->need_snapshot = true;
  } else {
    detail::encode_frame(s->buf, detail::kFramePosition, x, term_at(x), {});
    s->buf_last = x;
  }
  if (auto old = out_streams_.find(req.id); old != out_streams_.end()) {
    old->second->alive = false;
    old->second->writer->finish(errc::canceled);
  }
  out_streams_[req.id] = s;
  send_buf(s, false);  // s->next is already where entries start
}

void Log::Impl::begin_snapshot_send(const std::shared_ptr<OutStream>& s) {
  auto meta = snaps_->latest();
  if (!meta || meta->index < log_->prev_index()) {
    fatal("no snapshot covers the compacted log", make_error_code(errc::snapshot_corrupt));
    return;
  }
  auto reader = snaps_->open_reader(*meta);
  if (!reader) {
    logf("opening snapshot {} to send: {}", meta->index, reader.error().message());
    s->alive = false;
    s->writer->finish(reader.error());
    out_streams_.erase(s->peer);
    return;
  }
  s->snap = std::move(*reader);
  s->snap_index = meta->index;
  s->buf.clear();
  detail::encode_frame(s->buf, detail::kFrameSnapshot, meta->index, meta->term, to_json(meta->config));
  logf("sending snapshot {}:{} to {}", meta->index, meta->term, s->peer);
}

void Log::Impl::pump(const std::shared_ptr<OutStream>& s) {
  if (!s->alive || s->writing || state_ != State::leader || s->term != term_) return;
  std::optional<std::uint64_t> after;  // s->next once this write completes
  if (!s->snap && (s->need_snapshot || s->next < log_->first_index())) {
    s->need_snapshot = false;
    begin_snapshot_send(s);
    if (!s->alive || !s->snap) return;
    after = s->next;
  } else if (s->snap) {
    // The chunk is read straight into the stream buffer behind its 8-byte
    // length prefix (encode_snapshot_chunk's format), not into a temporary.
    constexpr std::size_t kPrefix = 8, kChunk = 1u << 20;
    s->buf.resize(kPrefix + kChunk);
    auto n = s->snap->read(std::as_writable_bytes(std::span(s->buf.data() + kPrefix, kChunk)));
    if (!n) {
      logf("reading snapshot to send: {}", n.error().message());
      s->alive = false;
      s->writer->finish(n.error());
      out_streams_.erase(s->peer);
      return;
    }
    detail::put_be64(reinterpret_cast<std::byte*>(s->buf.data()), *n);
    s->buf.resize(kPrefix + *n);
    after = s->next;
    if (*n == 0) {  // the empty chunk just encoded ends the snapshot
      s->snap.reset();
      after = s->snap_index + 1;
    }
  }
  if (after) {
    s->buf_last = *after - 1;
    send_buf(s, true);
    return;
  }
  const std::uint64_t last = log_->last_index();
  if (s->next > last) {
    // Nothing new to send: tell the commit index if it moved (the follower
    // caps it by what it holds, so it may run ahead of s->next).
    if (commit_ <= s->sent_commit) return;
    s->buf.clear();
    detail::encode_frame(s->buf, detail::kFrameCommit, commit_, term_, {});
    s->sent_commit = commit_;
    s->buf_last = s->next - 1;
    send_buf(s, true);
    return;
  }
  // Served from the log (page cache), never from an unbounded queue: a slow
  // follower simply falls behind and is read from disk when it catches up.
  s->buf.clear();
  std::uint64_t batch_last = 0;
  auto r = visit_entries(s->next, last, o_.stream_batch_bytes_max, [&](const LogEntry& e) {
    encode_entry(s->buf, e);
    batch_last = e.index;
  });
  if (!r) return fatal("reading entries to stream", r.error());
  if (commit_ > s->sent_commit) {
    detail::encode_frame(s->buf, detail::kFrameCommit, commit_, term_, {});
    s->sent_commit = commit_;
  }
  s->buf_last = batch_last;
  send_buf(s, true);
}

void Log::Impl::send_buf(const std::shared_ptr<OutStream>& s, bool advance) {
  // One write outstanding per stream (s->writing): the transport's `done` is
  // the back-pressure, and s->buf stays untouched until it runs.
  s->writing = true;
  s->writer->write(s->buf, [self = shared_from_this(), ep = epoch_, s, advance](std::error_code ec) {
    self->post_any_epoch([self, ep, s, ec, advance] {
      s->writing = false;
      if (self->epoch_ != ep || !s->alive) return;
      if (ec) {
        s->alive = false;
        if (auto it = self->out_streams_.find(s->peer); it != self->out_streams_.end() && it->second == s)
          self->out_streams_.erase(it);
        return;
      }
      if (advance) s->next = s->buf_last + 1;
      self->pump(s);
    });
  });
}

// ================================================================== requests

void Log::Impl::do_apply(LogEntry e, Clock::duration timeout, Handler_fn<std::uint64_t> h) {
  if (state_ == State::stopped) return fail(h, errc::closed);
  if (state_ != State::leader) return fail(h, errc::not_leader);
  // A leader that is removing or demoting itself takes no new work (it
  // steps down once the change commits, and would strand entries appended
  // after it).
  if (!is_voter(id_)) return fail(h, errc::not_leader);
  // Handing leadership over: an entry appended now could keep the target
  // from ever holding our whole log.
  if (transfer_) return fail(h, errc::transfer_in_progress);
  if (e.data.size() > o_.entry_size_bytes_max) return fail(h, errc::entry_too_large);
  e.index = last_index() + 1;
  e.term = term_;
  const std::uint64_t index = e.index;
  PendingApply p{term_, std::move(h)};
  if (timeout > Clock::duration::zero()) {
    p.deadline = clock_->now() + timeout;
    if (p.deadline < apply_timer_at_) arm_apply_timer(p.deadline);
  }
  pending_applies_.emplace(index, std::move(p));
  append_local(std::move(e));
  publish_indexes();
}

void Log::Impl::arm_apply_timer(Clock::time_point at) {
  if (apply_timer_) apply_timer_->cancel();
  apply_timer_at_ = at;
  const auto gen = ++apply_timer_gen_;
  apply_timer_ = after_on_strand(std::max(at - clock_->now(), Clock::duration::zero()), [this, gen] {
    if (apply_timer_gen_ == gen) on_apply_timer();
  });
}

void Log::Impl::on_apply_timer() {
  // Fails every call past its deadline and re-arms for the earliest left:
  // O(pending) once per deadline, not a timer per call.
  apply_timer_at_ = Clock::time_point::max();
  const auto now = clock_->now();
  auto next = Clock::time_point::max();
  for (auto it = pending_applies_.begin(); it != pending_applies_.end();) {
    if (it->second.deadline <= now) {
      fail(it->second.h, errc::timeout);
      it = pending_applies_.erase(it);
    } else {
      next = std::min(next, it->second.deadline);
      ++it;
    }
  }
  if (next != Clock::time_point::max()) arm_apply_timer(next);
}

void Log::Impl::submit_apply(Submission sub) {
  bool post_now = false;
  {
    std::lock_guard lk(submit_mu_);
    submit_q_.push_back(std::move(sub));
    post_now = !std::exchange(submit_posted_, true);
  }
  if (post_now) post_any_epoch([this] { drain_submissions(); });
}

void Log::Impl::drain_submissions() {
  std::vector<Submission> batch;
  {
    std::lock_guard lk(submit_mu_);
    batch.swap(submit_q_);
    submit_posted_ = false;
  }
  for (auto& sub : batch)
    do_apply(LogEntry{LogEntryType::command, 0, 0, std::move(sub.command)}, sub.timeout, std::move(sub.h));
}

void Log::Impl::do_wait(std::uint64_t index, Clock::duration timeout, Handler_fn<void> h) {
  if (state_ == State::stopped) return fail(h, errc::closed);
  if (applied_ >= index) return h({});
  const auto serial = ++waiter_serial_;
  Waiter w{serial, std::move(h), nullptr};
  if (timeout > Clock::duration::zero()) {
    w.timer = after_on_strand(timeout, [this, index, serial] {
      auto [b, e] = waiters_.equal_range(index);
      for (auto it = b; it != e; ++it)
        if (it->second.serial == serial) {
          fail(it->second.h, errc::timeout);
          waiters_.erase(it);
          return;
        }
    });
  }
  waiters_.emplace(index, std::move(w));
}

void Log::Impl::do_read_index(Clock::duration timeout, bool wait_applied, Handler_fn<std::uint64_t> h) {
  if (state_ == State::stopped) return fail(h, errc::closed);
  if (state_ != State::leader) return forward_read(timeout, wait_applied, std::move(h));
  leader_read(timeout, wait_applied, std::move(h));
}

void Log::Impl::do_serve_read_index(const ReadIndexRequest& req, Handler_fn<std::uint64_t> h) {
  if (state_ == State::stopped) return fail(h, errc::closed);
  if (state_ != State::leader) return fail(h, errc::not_leader);
  // A leader that cannot confirm within two election timeouts has lost its
  // majority (check-quorum steps it down after one): no longer wait.
  const Clock::duration cap = 2 * o_.election_timeout;
  const Clock::duration asked = std::chrono::milliseconds(req.timeout_ms);
  leader_read(req.timeout_ms == 0 ? cap : std::min(asked, cap), false, std::move(h));
}

void Log::Impl::forward_read(Clock::duration timeout, bool wait_applied, Handler_fn<std::uint64_t> h) {
  // Thesis §6.4: a follower serves a read by asking the leader for a read
  // index, then reading its own FSM once it has applied that index. The
  // leader's answer covers every write completed before it got the request
  // (so before ours was made), and the entries up to it are committed, hence
  // the same in our log. No leader known (or we are a candidate): refuse.
  const std::string leader = state_ == State::follower ? url_of(leader_id_) : std::string();
  if (leader.empty() || !o_.transport) return fail(h, errc::not_leader);
  if (o_.inject_fault == LogOptions::Fault::follower_read_without_leader) {
    // Broken on purpose: our own commit index may lag the leader's.
    return finish_read(commit_, PendingRead{std::move(h), nullptr, wait_applied,
                                            timeout > Clock::duration::zero() ? clock_->now() + timeout
                                                                              : Clock::time_point::max()});
  }
  queue_read(forwarded_reads_, ++forward_seq_, timeout, wait_applied, std::move(h));
  if (!forward_inflight_) send_forwarded_reads();
}

void Log::Impl::queue_read(std::map<std::uint64_t, PendingRead>& reads, std::uint64_t key, Clock::duration timeout,
                           bool wait_applied, Handler_fn<std::uint64_t> h) {
  PendingRead pr{std::move(h), nullptr, wait_applied};
  if (timeout > Clock::duration::zero()) {
    pr.deadline = clock_->now() + timeout;
    pr.timer = after_on_strand(timeout, [&reads, key] {
      auto it = reads.find(key);
      if (it == reads.end()) return;
      auto rh = std::move(it->second.h);
      reads.erase(it);
      fail(rh, errc::timeout);
    });
  }
  reads.emplace(key, std::move(pr));
}

void Log::Impl::fail_all(std::map<std::uint64_t, PendingRead>& reads, std::error_code why) {
  auto failing = std::move(reads);
  reads.clear();
  for (auto& [key, r] : failing) {
    if (r.timer) r.timer->cancel();
    fail(r.h, why);
  }
}

void Log::Impl::send_forwarded_reads() {
  if (forwarded_reads_.empty()) return;
  if (state_ == State::leader) {
    // We lead now: our own read rounds serve what is still waiting (each
    // round is taken after its read was asked).
    auto reads = std::move(forwarded_reads_);
    forwarded_reads_.clear();
    const auto now = clock_->now();
    for (auto& [serial, r] : reads) {
      if (r.timer) r.timer->cancel();
      if (r.deadline != Clock::time_point::max() && r.deadline <= now) {
        fail(r.h, errc::timeout);
        continue;
      }
      leader_read(r.deadline == Clock::time_point::max() ? Clock::duration::zero() : r.deadline - now,
                  r.wait_applied, std::move(r.h));
    }
    return;
  }
  const std::string leader = state_ == State::follower ? url_of(leader_id_) : std::string();
  if (leader.empty() || !o_.transport) return fail_forwarded_reads(make_error_code(errc::not_leader));
  // The leader may take as long as the most patient of these reads allows
  // (0, its own default, if one has no timeout).
  ReadIndexRequest req;
  const auto now = clock_->now();
  Clock::duration longest{};
  bool unbounded = false;
  for (const auto& [serial, r] : forwarded_reads_) {
    if (r.deadline == Clock::time_point::max()) unbounded = true;
    else longest = std::max(longest, r.deadline - now);
  }
  if (!unbounded)
    req.timeout_ms = static_cast<std::uint64_t>(
        std::max<std::int64_t>(1, std::chrono::ceil<std::chrono::milliseconds>(longest).count()));
  forward_inflight_ = true;
  forward_sent_ = forward_seq_;
  o_.transport->read_index(leader, req, [self = shared_from_this(), ep = epoch_, upto = forward_sent_](result<std::uint64_t> r) {
    self->post_any_epoch([self, ep, upto, r] {
      if (self->epoch_ != ep) return;  // closed meanwhile: close_now failed the reads
      self->forward_inflight_ = false;
      // Every read asked before the request was sent, and not yet timed out.
      auto& reads = self->forwarded_reads_;
      std::vector<PendingRead> answered;
      for (auto it = reads.begin(); it != reads.end() && it->first <= upto;) {
        answered.push_back(std::move(it->second));
        it = reads.erase(it);
      }
      for (auto& pr : answered) {
        if (pr.timer) pr.timer->cancel();
        if (!r) fail(pr.h, r.error());
        else self->finish_read(*r, std::move(pr));
      }
      self->send_forwarded_reads();  // those asked meanwhile
    });
  });
}

void Log::Impl::finish_read(std::uint64_t index, PendingRead r) {
  (state_ == State::leader ? reads_as_leader_ : reads_as_follower_).fetch_add(1, std::memory_order_relaxed);
  if (!r.wait_applied || applied_ >= index) return r.h(index);
  // read_barrier(): the rest of the caller's timeout goes to the apply.
  Clock::duration left{};
  if (r.deadline != Clock::time_point::max()) {
    left = r.deadline - clock_->now();
    if (left <= Clock::duration::zero()) return fail(r.h, errc::timeout);
  }
  do_wait(index, left, [h = std::move(r.h), index](result<void> w) mutable {
    if (!w) return fail(h, w.error());
    h(index);
  });
}

void Log::Impl::leader_read(Clock::duration timeout, bool wait_applied, Handler_fn<std::uint64_t> h) {
  if (o_.inject_fault == LogOptions::Fault::read_without_confirmation) return h(commit_);
  queue_read(pending_reads_, ++read_seq_, timeout, wait_applied, std::move(h));
  // A round of its own, now: heartbeats already out were sent before this
  // call, so their answers cannot confirm it (their replies send the next).
  send_heartbeats();
  settle_reads();
}

void Log::Impl::settle_reads() {
  if (state_ != State::leader || pending_reads_.empty()) return;
  // The commit index is known to cover every earlier term only once an
  // entry of ours commits (§6.4 step 1; our Nop is appended on election).
  if (commit_ < term_start_) return;
  // The highest round a majority of voters answered in our term (we count
  // for ourselves, at every round, while we are a voter).
  const auto confirmed = quorum_value(read_seq_, &Peer::read_acked);
  if (!confirmed) return;
  // commit_ now is at or above the commit index when each read was asked,
  // and committed: reading the FSM once it has applied it is linearizable.
  while (!pending_reads_.empty() && pending_reads_.begin()->first <= *confirmed) {
    auto node = pending_reads_.extract(pending_reads_.begin());
    if (node.mapped().timer) node.mapped().timer->cancel();
    finish_read(commit_, std::move(node.mapped()));
  }
}

void Log::Impl::do_initialize(Handler_fn<void> h) {
  if (state_ == State::stopped) return fail(h, errc::closed);
  if (id_ != 0) return fail(h, errc::initialized);
  if (last_index() != 0) return fail(h, errc::log_exists);
  if (o_.url.empty()) return fail(h, errc::url_required);
  // The first member carries its data directory's join token like a joiner
  // does, so that this node, wiped and asking to join again while still
  // member 1, is refused instead of taking id 1 back with an empty log.
  const std::uint64_t token = join_token();
  if (token == 0) return fail(h, errc::store_failed);
  cluster_id_ = rand();
  if (cluster_id_ == 0) cluster_id_ = 1;
  id_ = 1;
  Config c;
  c.cluster_id = cluster_id_;
  c.index = 1;
  (void)c.add_node(1, o_.url, token);
  set_term(1);
  voted_for_ = id_;
  if (!persist_meta()) return fail(h, errc::store_failed);
  if (o_.transport) o_.transport->set_cluster_id(cluster_id_);
  logf("initialized cluster {}", cluster_id_);
  term_start_ = 1;
  append_local(LogEntry{LogEntryType::initialize, 1, 1, to_json(c)});
  // The Initialize entry is of this term, so no Nop is needed (index 2 is
  // the first command's, as in the Go package).
  state_ = State::leader;
  leader_id_ = id_;
  leader_since_ = clock_->now();
  if (election_timer_) election_timer_->cancel();
  ++election_gen_;
  publish();
  start_heartbeats();
  h({});
}

void Log::Impl::do_join(std::string url, JoinOptions opts, Handler_fn<void> h) {
  if (state_ == State::stopped) return fail(h, errc::closed);
  if (id_ != 0 || last_index() != 0) return fail(h, errc::initialized);
  if (o_.url.empty()) return fail(h, errc::url_required);
  if (!o_.transport) return fail(h, errc::invalid_argument);
  if (opts.learner && opts.catch_up_first) return fail(h, errc::invalid_argument);
  join_learner_ = opts.learner || opts.catch_up_first;
  join_catch_up_ = opts.catch_up_first;
  // Durable before any request: the leader may add us and promote us only
  // later, after a restart of ours (see promote_intent_). A join without the
  // option drops the intent of an earlier one that was never answered.
  if (!set_promote_intent(opts.catch_up_first)) return fail(h, errc::store_failed);
  join_attempt(std::move(url), 0, std::move(h));
}

void Log::Impl::join_attempt(std::string url, int attempt, Handler_fn<void> h) {
  const std::uint64_t token = join_token();
  if (token == 0) return fail(h, errc::store_failed);
  o_.transport->join(url, JoinRequest{o_.url, 0, token, join_learner_}, [self = shared_from_this(), ep = epoch_, url, attempt, h = std::move(h)](result<JoinResponse> r) mutable {
    self->post_any_epoch([self, ep, r, url, attempt, h = std::move(h)]() mutable {
      if (self->epoch_ != ep) return fail(h, errc::closed);
      if (!r && retry_join(r.error()) && attempt < 100) {
        // Another member is still joining or leaving (one change at a time),
        // or the request or its answer was lost: try again shortly rather
        // than burden the caller. Joining is idempotent: a node the leader
        // already added gets its id back. Ask the leader whose heartbeats
        // name us (our AddPeer entry is in its log) if there is one: the
        // member we asked may be gone for good (removed and stopped while
        // our answer was lost; simulator, replace_every_member seed 424).
        if (self->leader_url_hint_id_ == self->leader_id_ && self->leader_id_ != 0 &&
            !self->leader_url_hint_.empty())
          url = self->leader_url_hint_;
        self->clock_->after(self->o_.heartbeat_interval, [weak = self->weak_from_this(), ep, url, attempt, h = std::move(h)]() mutable {
          auto self = weak.lock();
          if (!self) return;
          self->post_any_epoch([self, ep, url, attempt, h = std::move(h)]() mutable {
            if (self->epoch_ != ep) return fail(h, errc::closed);
            self->join_attempt(std::move(url), attempt + 1, std::move(h));
          });
        });
        return;
      }
      if (!r) return fail(h, r.error());
      if (self->id_ != 0) return fail(h, errc::initialized);
      // A leader answers with the configuration that adds us: one that does
      // not give the id to our URL (or names no cluster) would leave this
      // node following a membership it does not have.
      if (r->id == 0 || r->config.cluster_id == 0 || !binds(r->config, r->id, self->o_.url)) {
        self->logf("join refused: the answer gives node {} to {}, not to us ({})", r->id,
                   [&] {
                     const auto* n = r->config.node_by_id(r->id);
                     return n ? n->url : std::string("nobody");
                   }(),
                   self->o_.url);
        return fail(h, errc::protocol_error);
      }
      self->id_ = r->id;
      self->cluster_id_ = r->config.cluster_id;
      // Remember the configuration until the log brings it (a crash before
      // then would otherwise leave this node unable to find its leader); the
      // file also marks the membership as not yet confirmed (provisional_).
      if (!self->save_join_config(r->config)) return fail(h, errc::store_failed);
      self->provisional_ = true;
      if (!self->persist_meta()) return fail(h, errc::store_failed);
      if (self->o_.transport) self->o_.transport->set_cluster_id(self->cluster_id_);
      if (self->configs_.empty()) self->config_ = r->config;
      self->logf("joined cluster {} as node {}{}", self->cluster_id_, self->id_, self->join_learner_ ? " (a learner)" : "");
      self->become_follower(r->leader_id);
      self->publish();
      if (!self->join_catch_up_) return h({});
      self->resuming_promotion_ = true;  // join() asks; resume_promotion waits its turn
      self->promote_attempt(0, [self, ep, h = std::move(h)](result<void> r) mutable {
        if (self->epoch_ != ep) return h(r);
        // Given up on for now (its retries ran out): the caller learns so,
        // and the node goes on asking, as after a restart.
        self->promotion_round_ended(r, !r && retry_join(r.error()));
        h(r);
      });
    });
  });
}

void Log::Impl::promote_attempt(int attempt, Handler_fn<void> h) {
  // Ask the leader we follow (it streams to us once our AddPeer entry is in
  // its log), else any other member; not-leader hints are followed by the
  // transport. The leader answers once our promotion has committed, or at
  // once if we are a voter already (so asking again is harmless).
  std::string url = url_of(leader_id_);
  if (url.empty() || url == o_.url) url = leader_url_hint_;
  for (const auto& n : config_.nodes)
    if (url.empty() && n.url != o_.url) url = n.url;
  const std::uint64_t token = join_token();
  if (url.empty() || token == 0) return fail(h, errc::no_leader);
  o_.transport->join(url, JoinRequest{o_.url, id_, token, true, true}, [self = shared_from_this(), ep = epoch_, attempt, h = std::move(h)](result<JoinResponse> r) mutable {
    self->post_any_epoch([self, ep, r, attempt, h = std::move(h)]() mutable {
      if (self->epoch_ != ep) return fail(h, errc::closed);
      // Promoted only if the answer's configuration makes our id, at our
      // URL, a voter: a leader whose log lost our AddPeer entry answers by
      // adding us again, as a learner, perhaps under the same id
      // (simulator, learners seed 3359: taking that for the promotion left
      // a catch_up_first joiner a learner).
      const auto* me = r ? r->config.node_by_id(r->id) : nullptr;
      if (r && r->id == self->id_ && me && me->url == self->o_.url && !me->learner) {
        self->logf("promoted to voter");
        return h({});
      }
      // A different id: our join was lost and is being redone (rejoin);
      // ask again once it has been. Added again as a learner: ask again.
      if ((r || retry_join(r.error())) && attempt < 100) {
        self->clock_->after(self->o_.heartbeat_interval, [weak = self->weak_from_this(), ep, attempt, h = std::move(h)]() mutable {
          auto self = weak.lock();
          if (!self) return;
          self->post_any_epoch([self, ep, attempt, h = std::move(h)]() mutable {
            if (self->epoch_ != ep) return fail(h, errc::closed);
            self->promote_attempt(attempt + 1, std::move(h));
          });
        });
        return;
      }
      if (!r) return fail(h, r.error());
      fail(h, errc::protocol_error);
    });
  });
}

void Log::Impl::maybe_drop_promote_intent() {
  auto voter = [this](const Config& c) {
    const auto* me = c.node_by_id(id_);
    return me && me->url == o_.url && !me->learner;
  };
  bool promoted = id_ != 0 && voter(base_config_);
  for (const auto& c : configs_) {
    if (promoted || c.index > commit_) break;
    promoted = voter(c);
  }
  if (!promoted) return;
  logf("our promotion has committed");
  set_promote_intent(false);
}

bool Log::Impl::set_promote_intent(bool on) {
  if (promote_intent_ == on) return true;
  if (on) {
    if (!write_whole_file("promote-intent", "catch_up_first\n", "saving the promotion intent")) return false;
  } else {
    // Best effort: a file left behind costs one request after a restart,
    // answered at once for a voter.
    auto r = fs_->unlink(path_ + "/promote-intent");
    if (r) r = fs_->sync_dir(path_);
    if (!r) logf("removing promote-intent: {}", r.error().message());
  }
  promote_intent_ = on;
  return true;
}

void Log::Impl::resume_promotion() {
  if (!promote_intent_ || resuming_promotion_ || id_ == 0 || !o_.transport || state_ == State::stopped) return;
  // A leader is a voter whose promotion is in its own log, which no later
  // leader truncates: it commits with the leader's next entries.
  if (state_ == State::leader) {
    set_promote_intent(false);
    return;
  }
  resuming_promotion_ = true;
  logf("asking again for the promotion this node joined to get (catch_up_first)");
  promote_attempt(0, [self = shared_from_this(), ep = epoch_](result<void> r) {
    if (self->epoch_ == ep) self->promotion_round_ended(r, true);
  });
}

void Log::Impl::promotion_round_ended(const result<void>& r, bool ask_again) {
  resuming_promotion_ = false;
  if (r || r.error() == errc::removed || r.error() == errc::node_not_found) {
    if (!r) logf("not asking for a promotion any more: {}", r.error().message());
    set_promote_intent(false);
    return;
  }
  if (!ask_again) return;
  logf("promotion request failed ({}); asking again later", r.error().message());
  after_on_strand(o_.election_timeout, [this] { resume_promotion(); });
}

std::uint64_t Log::Impl::join_token() {
  if (join_token_ != 0) return join_token_;
  std::uint64_t t = 0;
  while (t == 0) t = rand();
  // Text, one line: 16 hex digits. Durable before any request carries it.
  if (!write_whole_file("join-token", fmt::format("{:016x}\n", t), "saving the join token")) return 0;
  join_token_ = t;
  return t;
}

bool Log::Impl::write_whole_file(const std::string& name, std::string_view bytes, const char* what) {
  // Written to a temporary, synced, renamed over `name`, directory synced: a
  // crash leaves the old file or the new one, never a part of either.
  const std::string tmp = path_ + "/" + name + ".tmp";
  auto f = fs_->open(tmp, {.create = true, .truncate = true});
  bool ok = bool(f) && bool((*f)->append(std::as_bytes(std::span(bytes.data(), bytes.size())))) && bool((*f)->sync()) &&
            bool(fs_->rename(tmp, path_ + "/" + name)) && bool(fs_->sync_dir(path_));
  if (!ok) fatal(what, errc::io_error);
  return ok;
}

result<std::uint64_t> Log::Impl::load_join_token() {
  auto exists = fs_->exists(path_ + "/join-token");
  if (!exists) return exists.error();
  if (!*exists) return std::uint64_t{0};
  auto f = fs_->open(path_ + "/join-token", {.read_only = true});
  if (!f) return f.error();
  char buf[32] = {};
  auto n = (*f)->read_at(0, std::as_writable_bytes(std::span(buf, sizeof buf)));
  if (!n) return n.error();
  // Written whole by rename, so anything but 16 hex digits and a newline is
  // damage: refuse to open rather than guess (a new token would make this
  // node's next join look like a wiped node's).
  std::uint64_t t = 0;
  const auto [end, ec] = std::from_chars(buf, buf + 16, t, 16);
  const bool ok = *n == 17 && buf[16] == '\n' && ec == std::errc{} && end == buf + 16 && t != 0;
  if (!ok) {
    logf("{}/join-token is damaged", path_);
    return errc::log_corrupt;
  }
  return t;
}

bool Log::Impl::save_join_config(const Config& c) {
  return write_whole_file("join.json", to_json(c), "saving the join configuration");
}

bool Log::Impl::confirmed_member() const {
  // A committed configuration in our log (or our snapshot's) gives our id to
  // our URL: the AddPeer entry that added us can no longer be truncated.
  if (binds(base_config_, id_, o_.url)) return true;
  for (const auto& c : configs_) {
    if (c.index > commit_) break;
    if (binds(c, id_, o_.url)) return true;
  }
  return false;
}

void Log::Impl::maybe_confirm() {
  if (!provisional_ || id_ == 0 || !confirmed_member()) return;
  provisional_ = false;
  logf("membership as node {} committed", id_);
  // Durably: a node that restarts with join.json and is then refused as
  // removed must not take itself for a lost joiner.
  auto r = fs_->unlink(path_ + "/join.json");
  if (r) r = fs_->sync_dir(path_);
  if (!r) logf("removing join.json: {}", r.error().message());
}

void Log::Impl::on_refused(std::error_code ec, const char* what) {
  if (ec == errc::node_not_found) {
    // The peer's configuration (its latest, perhaps not committed) no
    // longer has our id: we were removed. Nobody streams to a removed node,
    // so nobody would ever tell us whether the entries we appended as
    // leader commit: callers still waiting on them learn errc::removed
    // ("outcome unknown here") now instead of never (simulator,
    // reopen_in_place seed 588). Otherwise stay quiet, as before.
    if (pending_applies_.upper_bound(commit_) != pending_applies_.end()) {
      logf("{} refused: node {} is not in the peer's configuration; failing the calls still waiting", what, id_);
      fail_pending_after(commit_, errc::removed);
    }
    return;
  }
  if (ec != errc::node_url_mismatch) return;
  if (provisional_) {
    logf("{} refused ({}): our join may have been lost; asking to join again", what, ec.message());
    // Even after a refusal as removed: a leader that talks to us now knows
    // our URL (an operator added it again), and a join gives us its id.
    rejoin_refused_ = false;
    return rejoin();
  }
  // A confirmed member is never refused as a stranger to its id (ids are not
  // reused within one log).
  logf("{} refused: the leader gives node id {} to another url", what, id_);
}

void Log::Impl::rejoin() {
  // Smallest correct behaviour for a node whose join may have been lost:
  // ask again (any member; transports follow not-leader hints), and take
  // whatever id the leader now gives our URL. The answer is the leader's
  // word on which id our URL has in its configuration; the leader credits
  // no other id to us (serve_stream, do_ack), so following it is safe even
  // when a stale leader answered: the real one refuses us and we ask again.
  if (rejoining_ || rejoin_refused_ || !provisional_ || !o_.transport || o_.url.empty() ||
      state_ == State::stopped || state_ == State::leader)
    return;
  std::vector<std::string> urls;
  for (const auto& n : config_.nodes)
    if (n.url != o_.url) urls.push_back(n.url);
  if (urls.empty()) return;
  const std::string target = urls[rejoin_rr_++ % urls.size()];
  const std::uint64_t token = join_token();
  if (token == 0) return;
  rejoining_ = true;
  o_.transport->join(target, JoinRequest{o_.url, id_, token, join_learner_}, [self = shared_from_this(), ep = epoch_](result<JoinResponse> r) {
    self->post_any_epoch([self, ep, r] {
      if (self->epoch_ != ep) return;
      self->rejoining_ = false;
      if (!r && r.error() == errc::removed) {
        // Our membership committed and was then removed while we were cut
        // off: stop asking. If that removal is itself rolled back we are a
        // member after all, and the leader's heartbeats bring us back.
        self->rejoin_refused_ = true;
        self->logf("not joining again: node {} at {} was removed from the cluster", self->id_, self->o_.url);
        return;
      }
      if (!r || !self->provisional_ || self->state_ == State::stopped || self->state_ == State::leader) return;
      if (r->config.cluster_id != self->cluster_id_ || !binds(r->config, r->id, self->o_.url)) return;
      const auto* leader = r->config.node_by_id(r->leader_id);
      if (!leader) return;
      if (r->id != self->id_) {
        self->logf("our join as node {} was lost (the leader gives that id to {}); joined again as node {}", self->id_,
                   [&] {
                     const auto* n = r->config.node_by_id(self->id_);
                     return n ? n->url : std::string("nobody");
                   }(),
                   r->id);
        const std::uint64_t old = self->id_;
        if (!self->save_join_config(r->config)) return;
        self->id_ = r->id;
        // Our vote in this term, if for ourselves, stays ours: never a
        // second vote for whoever now holds the old id.
        if (self->voted_for_ == old) self->voted_for_ = r->id;
        if (!self->persist_meta()) return;
        self->drop_in_stream();  // the next stream reports progress afresh (open_stream)
        self->stream_from_.reset();
        if (self->configs_.empty()) self->config_ = r->config;
      }
      self->leader_url_hint_ = leader->url;
      self->leader_url_hint_id_ = r->leader_id;
      if (self->state_ != State::follower || self->leader_id_ != r->leader_id) self->become_follower(r->leader_id);
      self->publish();
      if (!self->in_) self->open_stream();
    });
  });
}

void Log::Impl::do_leave(Handler_fn<void> h) {
  if (state_ == State::stopped) return fail(h, errc::closed);
  if (id_ == 0) return fail(h, errc::not_initialized);
  if (state_ == State::leader) {
    return do_remove_peer(id_, std::move(h));
  }
  std::string url = url_of(leader_id_);
  if (url.empty()) {
    for (const auto& n : config_.nodes)
      if (n.id != id_) {
        url = n.url;
        break;
      }
  }
  if (url.empty()) return fail(h, errc::no_leader);
  o_.transport->leave(url, id_, [self = shared_from_this(), h = std::move(h)](result<void> r) mutable {
    self->post_any_epoch([r, h = std::move(h)]() mutable { h(r); });
  });
}

std::error_code Log::Impl::can_change_membership() const {
  if (state_ == State::stopped) return errc::closed;
  if (state_ != State::leader) return errc::not_leader;
  if (transfer_) return errc::transfer_in_progress;
  // One change at a time (thesis §4.1), and only once an entry of this term
  // is committed (the fix to the single-server change bug, thesis §4.1 note).
  if (config_.index > commit_) return errc::change_in_progress;
  if (commit_ == 0 || term_at(commit_) != term_) return errc::change_in_progress;
  return {};
}

void Log::Impl::do_add_peer(std::string url, std::uint64_t join_token, bool learner, bool wait_commit,
                            Handler_fn<std::pair<std::uint64_t, Config>> h,
                            Handler_fn<JoinResponse> join_h) {
  auto refuse = [&](std::error_code ec) {
    if (h) fail(h, ec);
    if (join_h) fail(join_h, ec);
  };
  if (auto ec = can_change_membership()) return refuse(ec);
  if (url.empty()) return refuse(errc::url_required);
  if (url.find('\0') != std::string::npos) return refuse(errc::invalid_argument);  // see encode_add_peer
  if (config_.node_by_url(url)) return refuse(errc::duplicate_node_url);
  const std::uint64_t index = last_index() + 1;
  append_local(LogEntry{LogEntryType::add_peer, index, term_, encode_add_peer(url, join_token, learner)});
  const std::uint64_t new_id = config_.max_node_id;
  Config c = config_;
  logf("adding node {} at {}{}", new_id, url, learner ? " as a learner" : "");
  if (join_h) {
    // The joining node needs its id now to start following. A voter's
    // change commits once it has caught up and acknowledged (it is a voter
    // already); a learner's needs only the voters.
    join_h(JoinResponse{new_id, id_, c});
  }
  if (!h) return;
  if (!wait_commit) return h(std::make_pair(new_id, c));
  pending_applies_.emplace(index, PendingApply{term_, [h = std::move(h), new_id, c](result<std::uint64_t> r) mutable {
                                                 if (!r) return fail(h, r.error());
                                                 h(std::make_pair(new_id, c));
                                               }});
}

void Log::Impl::do_remove_peer(std::uint64_t id, Handler_fn<void> h) {
  if (auto ec = can_change_membership()) return fail(h, ec);
  if (id == 0) return fail(h, errc::invalid_node_id);
  if (!config_.node_by_id(id)) return fail(h, errc::node_not_found);
  // A cluster keeps a voter: with only learners left nobody could lead.
  if (config_.is_voter(id) && config_.voter_count() == 1) return fail(h, errc::invalid_argument);
  logf("removing node {}", id);
  append_change(LogEntryType::remove_peer, id, std::move(h));
  advance_commit();  // removing a slow node can itself complete a majority
}

void Log::Impl::append_change(LogEntryType type, std::uint64_t id, Handler_fn<void> h) {
  const std::uint64_t index = last_index() + 1;
  append_local(LogEntry{type, index, term_, encode_u64(id)});
  pending_applies_.emplace(index, PendingApply{term_, [h = std::move(h)](result<std::uint64_t> r) mutable {
                                                 if (!r) return fail(h, r.error());
                                                 h({});
                                               }});
}

void Log::Impl::do_demote_peer(std::uint64_t id, Handler_fn<void> h) {
  // A promotion under way is a change in progress too.
  if (auto ec = promotion_error(id)) return fail(h, ec);
  // A learner in a committed configuration (no change is pending): done, so
  // that a retried demotion succeeds.
  if (config_.node_by_id(id)->learner) return h({});
  // A cluster keeps a voter: with only learners left nobody could lead.
  if (config_.voter_count() == 1) return fail(h, errc::invalid_argument);
  // Like any single-server change (thesis §4.1): the voter set shrinks by
  // one from the moment the entry is appended, here and at each follower.
  // Demoting ourselves: we lead on, counting only the voters, take no new
  // entries, and step down once the demotion commits (advance_commit), as a
  // leader that removes itself does (thesis §4.2.2).
  logf("demoting node {} to learner", id);
  append_change(LogEntryType::demote_peer, id, std::move(h));
  advance_commit();  // demoting a slow voter can itself complete a majority
}

std::error_code Log::Impl::promotion_error(std::uint64_t id) const {
  if (promotion_) return errc::change_in_progress;
  if (auto ec = can_change_membership()) return ec;
  if (id == 0) return errc::invalid_node_id;
  if (!config_.node_by_id(id)) return errc::node_not_found;
  return {};
}

void Log::Impl::do_promote_peer(std::uint64_t id, Clock::duration timeout, Handler_fn<void> h) {
  if (auto ec = promotion_error(id)) return fail(h, ec);
  // Already a voter in a committed configuration (can_change_membership:
  // no change is pending): done, so that a retried promotion succeeds.
  if (!config_.node_by_id(id)->learner) return h({});
  if (timeout <= Clock::duration::zero()) timeout = 10 * o_.election_timeout;
  logf("promoting node {} once it holds our log up to {}", id, last_index());
  promotion_ = Promotion{id, last_index(), std::move(h), nullptr};
  promotion_->timer = after_on_strand(timeout, [this, term = term_] {
    if (!promotion_ || term_ != term || state_ != State::leader) return;
    logf("node {} did not catch up in time: not promoted", promotion_->id);
    end_promotion(make_error_code(errc::timeout));
  });
  maybe_promote();
}

void Log::Impl::maybe_promote() {
  auto it = peers_.find(promotion_->id);
  // Until it has caught up, the learner stays one: a voter that far behind
  // would hold up every commit that needs it (and with one voter down, all
  // of them) until it had.
  if (it == peers_.end() || it->second.match < promotion_->until) return;
  auto p = std::move(*promotion_);
  promotion_.reset();
  if (p.timer) p.timer->cancel();
  // Things may have changed while it caught up (another change began, a
  // transfer, its removal).
  if (auto ec = promotion_error(p.id)) return fail(p.h, ec);
  if (!config_.node_by_id(p.id)->learner) return p.h({});
  logf("promoting node {} to voter (its log at {} of {})", p.id, it->second.match, last_index());
  append_change(LogEntryType::promote_peer, p.id, std::move(p.h));
}

void Log::Impl::end_promotion(std::error_code ec) {
  auto p = std::move(*promotion_);
  promotion_.reset();
  if (p.timer) p.timer->cancel();
  fail(p.h, ec);
}

void Log::Impl::do_heartbeat(const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h) {
  if (state_ == State::stopped) return fail(h, errc::closed);
  if (req.term < term_) return h(HeartbeatResponse{last_index(), term_, make_error_code(errc::stale_term)});
  if (req.term > term_) {
    set_term(req.term);
    if (state_ == State::stopped) return fail(h, errc::store_failed);
    if (state_ == State::leader) become_follower(req.leader_id);
  }
  // Election safety (§5.2): one leader per term, so a heartbeat of our own
  // term from someone else while we lead is a bug.
  RAFT_ASSERT(!(state_ == State::leader && req.leader_id != id_), "two leaders in one term");
  if (state_ != State::leader) {
    if (!req.leader_url.empty()) {
      leader_url_hint_ = req.leader_url;
      leader_url_hint_id_ = req.leader_id;
    }
    become_follower(req.leader_id);
    last_heard_ = clock_->now();
    leader_commit_ = std::max(leader_commit_, req.commit_index);
    if (in_ && in_->positioned && in_->term == term_)
      set_commit(std::min(leader_commit_, std::min(durable_, in_->pos)));
    if (!in_) open_stream();
    else maybe_ack();
  }
  h(HeartbeatResponse{last_index(), term_, {}, id_});
  // Leadership transfer: our leader, whose whole log we hold, asks us to
  // campaign now. Only a voter, and only for the leader we follow in this
  // term (a late copy from an older term was refused above).
  if (req.timeout_now && state_ == State::follower && leader_id_ == req.leader_id && is_voter(id_)) {
    logf("leader {} hands leadership over: election now", req.leader_id);
    start_election(true);
  }
}

std::error_code Log::Impl::sticky_refusal(std::uint64_t candidate) const {
  // Refused either way (a live leader holds this term); the reason tells a
  // candidate whose id our configuration has removed that it was, since no
  // leader streams to it to say so (on_refused). Only where the vote is
  // refused anyway, so that an uncommitted removal in our log, which may yet
  // be rolled back, costs no candidate a vote it would have had.
  const bool removed = !config_.node_by_id(candidate) && candidate <= config_.max_node_id;
  return make_error_code(removed ? errc::node_not_found : errc::already_voted);
}

void Log::Impl::do_vote(const VoteRequest& req, Handler_fn<VoteResponse> h) {
  if (state_ == State::stopped) return fail(h, errc::closed);
  if (req.term < term_) return h(VoteResponse{term_, make_error_code(errc::stale_term)});
  if (req.pre_vote) {
    // Would we vote for this candidate in req.term? The rules below (leader
    // stickiness, one vote per term, §5.4.1), but nothing changes here: no
    // term, no vote, no timer. A live leader, or a follower of one, refuses
    // in its own term too (the leader holds a majority of that term's
    // votes); a leader steps down by check-quorum once it lost its majority.
    if (state_ == State::leader || leader_alive()) return h(VoteResponse{term_, sticky_refusal(req.candidate_id)});
    if (req.term == term_ && voted_for_ != 0 && voted_for_ != req.candidate_id)
      return h(VoteResponse{term_, make_error_code(errc::already_voted)});
    const std::uint64_t lt = last_term(), li = last_index();
    if (req.last_log_term < lt || (req.last_log_term == lt && req.last_log_index < li))
      return h(VoteResponse{term_, make_error_code(errc::out_of_date_log)});
    return h(VoteResponse{term_, {}});
  }
  // Leader stickiness (thesis §4.2.3): while a follower hears from a live
  // leader it ignores candidates, so removed or partitioned nodes cannot
  // disrupt the cluster by inflating terms.
  // A transfer's election is one the leader asked for (thesis §3.10).
  if (req.term > term_ && leader_alive() && !req.transfer) {
    logf("vote for {} in term {} refused: leader {} is alive", req.candidate_id, req.term, leader_id_);
    return h(VoteResponse{term_, sticky_refusal(req.candidate_id)});
  }
  if (req.term > term_) {
    set_term(req.term);
    if (state_ == State::stopped) return fail(h, errc::store_failed);
    become_follower(0, false);
  }
  if (voted_for_ != 0 && voted_for_ != req.candidate_id) {
    logf("vote for {} refused: voted for {}", req.candidate_id, voted_for_);
    return h(VoteResponse{term_, make_error_code(errc::already_voted)});
  }
  // §5.4.1: grant only if the candidate's log is at least as up to date.
  const std::uint64_t lt = last_term(), li = last_index();
  if (req.last_log_term < lt || (req.last_log_term == lt && req.last_log_index < li)) {
    logf("vote for {} refused: its log {}:{} is behind ours {}:{}", req.candidate_id, req.last_log_index,
         req.last_log_term, li, lt);
    return h(VoteResponse{term_, make_error_code(errc::out_of_date_log)});
  }
  if (voted_for_ != req.candidate_id) {
    voted_for_ = req.candidate_id;
    if (!persist_meta()) return fail(h, errc::store_failed);  // durable before the reply
  }
  reset_election_timer();
  h(VoteResponse{term_, {}});
}

void Log::Impl::do_ack(const AckRequest& req, Handler_fn<void> h) {
  if (state_ == State::stopped) return fail(h, errc::closed);
  if (req.term < term_) return fail(h, errc::stale_term);
  if (req.term > term_) {
    set_term(req.term);
    become_follower(0, false);
    return fail(h, errc::not_leader);
  }
  if (state_ != State::leader) return fail(h, errc::not_leader);
  auto it = peers_.find(req.id);
  if (it == peers_.end()) return fail(h, errc::node_not_found);
  // Credit the ack to node req.id only if it comes from that node (its URL
  // in our configuration), as for streams. The heartbeat replies and votes
  // we count are bound already: we send those requests to the member's URL.
  if (auto ec = identity_error(req.id, req.url)) return fail(h, ec);
  it->second.match = std::max(it->second.match, std::min(req.index, last_index()));
  it->second.last_contact = clock_->now();
  advance_commit();
  if (transfer_) maybe_send_timeout_now();
  if (promotion_) maybe_promote();
  h({});
}

void Log::Impl::do_transfer(std::uint64_t target, Clock::duration timeout, Handler_fn<void> h) {
  if (state_ == State::stopped) return fail(h, errc::closed);
  if (state_ != State::leader) return fail(h, errc::not_leader);
  if (transfer_) return fail(h, errc::transfer_in_progress);
  if (target == 0) {
    // The other voter furthest along: the shortest wait before it can be told.
    std::uint64_t best_match = 0;
    for (const auto& n : config_.nodes) {
      if (n.id == id_ || !is_voter(n.id)) continue;
      auto it = peers_.find(n.id);
      const std::uint64_t m = it == peers_.end() ? 0 : it->second.match;
      if (target == 0 || m > best_match) {
        target = n.id;
        best_match = m;
      }
    }
  }
  if (target == 0 || !config_.node_by_id(target)) return fail(h, errc::node_not_found);
  if (target == id_) return h({});
  if (!is_voter(target)) return fail(h, errc::not_voter);  // it would never campaign
  if (timeout <= Clock::duration::zero()) timeout = o_.election_timeout;
  logf("transferring leadership to {}", target);
  transfer_ = Transfer{target, term_, std::move(h), nullptr, false};
  transfer_->timer = after_on_strand(timeout, [this, term = term_] {
    if (!transfer_ || transfer_->term != term || state_ != State::leader) return;
    logf("leadership transfer to {} timed out; leading on", transfer_->target);
    end_transfer(make_error_code(errc::timeout));
  });
  maybe_send_timeout_now();
}

void Log::Impl::step_down_handing_over() {
  // A voter that holds our whole log (we appended nothing after the change
  // that ends our leadership) is told to campaign now, as in a transfer:
  // the cluster is without a leader for one election round instead of an
  // election timeout. Best effort: if the message is lost, the voters'
  // election timeouts elect someone as before.
  std::uint64_t target = 0;
  for (const auto& n : config_.nodes) {
    if (n.id == id_ || n.learner) continue;
    auto it = peers_.find(n.id);
    if (it != peers_.end() && it->second.match >= last_index()) {
      target = n.id;
      break;
    }
  }
  const HeartbeatRequest req{term_, commit_, id_, o_.url, true};
  become_follower(0);
  if (target == 0 || !o_.transport) return;
  logf("handing leadership over to {}", target);
  o_.transport->heartbeat(url_of(target), req, [](result<HeartbeatResponse>) {});
}

void Log::Impl::maybe_send_timeout_now() {
  if (!transfer_ || transfer_->sent || state_ != State::leader || !o_.transport) return;
  auto it = peers_.find(transfer_->target);
  // The target must hold our whole log (durably): it then wins with a log at
  // least as up to date as any majority's, and loses none of our entries.
  // Until then the stream catches it up; its acks call again.
  if (it == peers_.end() || it->second.match < last_index()) return;
  transfer_->sent = true;
  HeartbeatRequest req{term_, commit_, id_, o_.url, true};
  o_.transport->heartbeat(url_of(transfer_->target), req, [self = shared_from_this(), ep = epoch_, term = term_](result<HeartbeatResponse> r) {
    self->post_any_epoch([self, ep, term, r] {
      if (self->epoch_ != ep || self->term_ != term || !self->transfer_ || self->transfer_->term != term) return;
      if (r && r->term > self->term_) {
        self->set_term(r->term);
        self->become_follower(0, false);
        return;
      }
      // Lost or refused: sent again by the next heartbeat tick.
      if (!r || r->error || r->id != self->transfer_->target) self->transfer_->sent = false;
    });
  });
}

void Log::Impl::end_transfer(std::error_code ec) {
  auto t = std::move(*transfer_);
  transfer_.reset();
  if (t.timer) t.timer->cancel();
  if (ec) return fail(t.h, ec);
  transfers_completed_.fetch_add(1, std::memory_order_relaxed);
  t.h({});
}

// ====================================================================== Log

Log::Log(LogOptions opts) : impl_(std::make_shared<Impl>(std::move(opts))) {}

Log::~Log() {
  if (opened()) {
    if (impl_->own_io_) {
      (void)close();  // our own thread runs the strand: wait for a clean close
    } else {
      // On a user's executor we cannot block (it may not be running, or this
      // may be its thread): close asynchronously; queued handlers keep the
      // Impl alive through their shared_ptr.
      start_close([](result<void>) {});
    }
  }
  // The threads the Log owns are stopped and joined here, on the caller's
  // thread. Left to ~Impl, the last reference to the Impl could be dropped
  // by a handler finishing on one of those threads, which would then join
  // itself (std::system_error, "Resource deadlock avoided": seen 8 times in
  // 100 runs of RunPolling.LogOwnThreadWithBusyPoll).
  // Only when the close above was synchronous (the Log owns the strand's
  // thread): an asynchronous close on the user's executor may still post
  // work to an owned storage thread, which must keep running until then.
  if (impl_->own_io_) impl_->stop_own_threads();
}

namespace {
template <class T, class Start>
result<T> run_blocking(Log::Impl& impl, Start start) {
  if (impl.strand_.running_in_this_thread()) return errc::would_block;
  auto p = std::make_shared<std::promise<result<T>>>();
  auto f = p->get_future();
  start([p](result<T> r) { p->set_value(std::move(r)); });
  return f.get();  // a handler dropped uncalled (e.g. by a transport) breaks the promise
}

// The hot path of apply() and wait(): their handlers stay inside the Log
// (pending calls, which close() fails), so each runs exactly once and the
// result can land in this frame: no allocation, once-flag or shared state as
// with a promise/future pair.
// One thread waits, one thread posts, once: an atomic word and at most one
// futex wait and one futex wake (std::binary_semaphore in libstdc++ 12 spins
// on sched_yield first, a mutex + condition variable makes the woken waiter
// block again on the mutex; both cost context switches on a busy machine).
class Baton {
 public:
  void post() {
    if (state_.exchange(kPosted, std::memory_order_release) == kWaiting)
      ::syscall(SYS_futex, &state_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
  void wait() {
    std::uint32_t s = kEmpty;
    if (!state_.compare_exchange_strong(s, kWaiting, std::memory_order_acquire)) return;  // posted already
    while (state_.load(std::memory_order_acquire) != kPosted)
      ::syscall(SYS_futex, &state_, FUTEX_WAIT_PRIVATE, kWaiting, nullptr, nullptr, 0);
  }

 private:
  static constexpr std::uint32_t kEmpty = 0, kWaiting = 1, kPosted = 2;
  std::atomic<std::uint32_t> state_{kEmpty};
};

template <class T, class Start>
result<T> run_blocking_local(Log::Impl& impl, Start start) {
  if (impl.strand_.running_in_this_thread()) return errc::would_block;
  struct Slot {
    std::optional<result<T>> r;
    Baton done;
  } slot;
  start([s = &slot](result<T> r) {
    s->r.emplace(std::move(r));
    s->done.post();  // a wake of an address whose frame just returned is harmless
  });
  slot.done.wait();
  return std::move(*slot.r);
}
}  // namespace

result<void> Log::open(const std::string& path) {
  // Nothing runs on the strand before open() finishes, so the work is done
  // on the caller's thread (which also lets a simulator open a node before
  // its io_context runs).
  return impl_->open(path);
}

result<void> Log::close() {
  return run_blocking<void>(*impl_, [this](Handler_fn<void> h) { start_close(std::move(h)); });
}

void Log::start_close(Handler_fn<void> h) {
  impl_->post_any_epoch([i = impl_.get(), h = std::move(h)]() mutable {
    i->close_now(errc::closed);
    // Done once the FSM calls already on the apply executor have finished.
    if (i->apply_work_ == 0) return h({});
    i->close_waiters_.push_back(std::move(h));
  });
}

void Log::crash_for_testing() {
  impl_->post_any_epoch([i = impl_.get()] {
    i->pending_append_.clear();  // never written: lost in the crash
    i->close_now(errc::closed, /*sync=*/false);
  });
}

bool Log::opened() const {
  std::lock_guard lk(impl_->view_mu_);
  return impl_->view_open_;
}
std::string Log::path() const {
  std::lock_guard lk(impl_->view_mu_);
  return impl_->view_path_;
}
std::uint64_t Log::id() const { return status().id; }
State Log::state() const {
  const auto s = status().state;
  if (s == "leader") return State::leader;
  if (s == "candidate") return State::candidate;
  if (s == "follower") return State::follower;
  return State::stopped;
}
std::uint64_t Log::term() const { return status().term; }
std::pair<std::uint64_t, std::string> Log::leader() const {
  auto s = status();
  return {s.leader_id, s.leader_url};
}
Config Log::config() const { return status().config; }
std::uint64_t Log::commit_index() const { return status().commit_index; }
std::uint64_t Log::applied_index() const { return status().applied_index; }
std::uint64_t Log::last_index() const { return status().last_index; }
Status Log::status() const {
  Status s;
  {
    std::lock_guard lk(impl_->view_mu_);
    s = impl_->view_;
  }
  s.reads_as_leader = impl_->reads_as_leader_.load(std::memory_order_relaxed);
  s.reads_as_follower = impl_->reads_as_follower_.load(std::memory_order_relaxed);
  s.elections_started = impl_->elections_started_.load(std::memory_order_relaxed);
  s.transfers_completed = impl_->transfers_completed_.load(std::memory_order_relaxed);
  return s;
}
std::uint64_t Log::cluster_id() const { return status().config.cluster_id; }

boost::asio::any_io_executor Log::get_executor() const { return impl_->strand_; }

void Log::set_log_output(std::function<void(std::string_view)> out) {
  std::lock_guard lk(impl_->view_mu_);
  impl_->logger_ = std::move(out);
}

void Log::start_apply(std::string command, Clock::duration timeout, Handler_fn<std::uint64_t> h) {
  impl_->submit_apply(Impl::Submission{std::move(command), timeout, std::move(h)});
}
void Log::start_wait(std::uint64_t index, Clock::duration timeout, Handler_fn<void> h) {
  impl_->post_any_epoch([i = impl_.get(), index, timeout, h = std::move(h)]() mutable { i->do_wait(index, timeout, std::move(h)); });
}
void Log::start_read_index(Clock::duration timeout, Handler_fn<std::uint64_t> h) {
  impl_->post_any_epoch([i = impl_.get(), timeout, h = std::move(h)]() mutable { i->do_read_index(timeout, false, std::move(h)); });
}
void Log::start_read_barrier(Clock::duration timeout, Handler_fn<std::uint64_t> h) {
  impl_->post_any_epoch([i = impl_.get(), timeout, h = std::move(h)]() mutable { i->do_read_index(timeout, true, std::move(h)); });
}
void Log::start_initialize(Handler_fn<void> h) {
  impl_->post_any_epoch([i = impl_.get(), h = std::move(h)]() mutable { i->do_initialize(std::move(h)); });
}
void Log::start_join(std::string url, JoinOptions opts, Handler_fn<void> h) {
  impl_->post_any_epoch([i = impl_.get(), u = std::move(url), opts, h = std::move(h)]() mutable {
    i->do_join(std::move(u), opts, std::move(h));
  });
}
void Log::start_join(std::string url, Handler_fn<void> h) { start_join(std::move(url), {}, std::move(h)); }
void Log::start_leave(Handler_fn<void> h) {
  impl_->post_any_epoch([i = impl_.get(), h = std::move(h)]() mutable { i->do_leave(std::move(h)); });
}
void Log::start_add_peer(std::string url, Handler_fn<std::pair<std::uint64_t, Config>> h) {
  impl_->post_any_epoch([i = impl_.get(), u = std::move(url), h = std::move(h)]() mutable {
    i->do_add_peer(std::move(u), 0, false, true, std::move(h), nullptr);
  });
}
void Log::start_add_learner(std::string url, Handler_fn<std::pair<std::uint64_t, Config>> h) {
  impl_->post_any_epoch([i = impl_.get(), u = std::move(url), h = std::move(h)]() mutable {
    i->do_add_peer(std::move(u), 0, true, true, std::move(h), nullptr);
  });
}
void Log::start_promote_peer(std::uint64_t id, Clock::duration timeout, Handler_fn<void> h) {
  impl_->post_any_epoch([i = impl_.get(), id, timeout, h = std::move(h)]() mutable {
    i->do_promote_peer(id, timeout, std::move(h));
  });
}
void Log::start_demote_peer(std::uint64_t id, Handler_fn<void> h) {
  impl_->post_any_epoch([i = impl_.get(), id, h = std::move(h)]() mutable { i->do_demote_peer(id, std::move(h)); });
}
void Log::start_transfer_leadership(std::uint64_t id, Clock::duration timeout, Handler_fn<void> h) {
  impl_->post_any_epoch([i = impl_.get(), id, timeout, h = std::move(h)]() mutable { i->do_transfer(id, timeout, std::move(h)); });
}
void Log::start_remove_peer(std::uint64_t id, Handler_fn<void> h) {
  impl_->post_any_epoch([i = impl_.get(), id, h = std::move(h)]() mutable { i->do_remove_peer(id, std::move(h)); });
}

result<std::uint64_t> Log::apply(std::string command, Clock::duration timeout) {
  return run_blocking_local<std::uint64_t>(*impl_, [&](Handler_fn<std::uint64_t> h) { start_apply(std::move(command), timeout, std::move(h)); });
}
result<void> Log::wait(std::uint64_t index, Clock::duration timeout) {
  return run_blocking_local<void>(*impl_, [&](Handler_fn<void> h) { start_wait(index, timeout, std::move(h)); });
}
result<std::uint64_t> Log::read_index(Clock::duration timeout) {
  return run_blocking_local<std::uint64_t>(*impl_, [&](Handler_fn<std::uint64_t> h) { start_read_index(timeout, std::move(h)); });
}
result<void> Log::transfer_leadership(std::uint64_t id, Clock::duration timeout) {
  return run_blocking_local<void>(*impl_, [&](Handler_fn<void> h) { start_transfer_leadership(id, timeout, std::move(h)); });
}
result<std::uint64_t> Log::read_barrier(Clock::duration timeout) {
  return run_blocking_local<std::uint64_t>(*impl_, [&](Handler_fn<std::uint64_t> h) { start_read_barrier(timeout, std::move(h)); });
}
result<void> Log::initialize() {
  return run_blocking<void>(*impl_, [&](Handler_fn<void> h) { start_initialize(std::move(h)); });
}
result<void> Log::join(const std::string& url, JoinOptions opts) {
  return run_blocking<void>(*impl_, [&](Handler_fn<void> h) { start_join(url, opts, std::move(h)); });
}
result<void> Log::leave() {
  return run_blocking<void>(*impl_, [&](Handler_fn<void> h) { start_leave(std::move(h)); });
}
result<std::pair<std::uint64_t, Config>> Log::add_peer(const std::string& url) {
  return run_blocking<std::pair<std::uint64_t, Config>>(
      *impl_, [&](Handler_fn<std::pair<std::uint64_t, Config>> h) { start_add_peer(url, std::move(h)); });
}
result<void> Log::remove_peer(std::uint64_t id) {
  return run_blocking<void>(*impl_, [&](Handler_fn<void> h) { start_remove_peer(id, std::move(h)); });
}
result<std::pair<std::uint64_t, Config>> Log::add_learner(const std::string& url) {
  return run_blocking<std::pair<std::uint64_t, Config>>(
      *impl_, [&](Handler_fn<std::pair<std::uint64_t, Config>> h) { start_add_learner(url, std::move(h)); });
}
result<void> Log::promote_peer(std::uint64_t id, Clock::duration timeout) {
  return run_blocking<void>(*impl_, [&](Handler_fn<void> h) { start_promote_peer(id, timeout, std::move(h)); });
}
result<void> Log::demote_peer(std::uint64_t id) {
  return run_blocking<void>(*impl_, [&](Handler_fn<void> h) { start_demote_peer(id, std::move(h)); });
}
result<void> Log::flush() {
  return run_blocking<void>(*impl_, [&](Handler_fn<void> h) {
    impl_->post_any_epoch([i = impl_.get(), h = std::move(h)]() mutable {
      if (i->state_ == State::stopped) return fail(h, errc::closed);
      i->flush_appends();
      if (i->state_ == State::leader) i->send_heartbeats();
      h({});
    });
  });
}
result<HeartbeatResponse> Log::heartbeat(std::uint64_t term, std::uint64_t commit_index, std::uint64_t leader_id) {
  auto r = run_blocking<HeartbeatResponse>(
      *impl_, [&](Handler_fn<HeartbeatResponse> h) { handle_heartbeat({term, commit_index, leader_id, {}}, std::move(h)); });
  if (r && r->error) return r->error;
  return r;
}
result<VoteResponse> Log::request_vote(std::uint64_t term, std::uint64_t candidate_id, std::uint64_t last_log_index,
                                       std::uint64_t last_log_term) {
  return run_blocking<VoteResponse>(*impl_, [&](Handler_fn<VoteResponse> h) {
    handle_vote({term, candidate_id, last_log_index, last_log_term}, std::move(h));
  });
}
void Log::write_entries_to(std::shared_ptr<StreamWriter> w, const StreamRequest& req) { handle_stream(req, std::move(w)); }

result<void> Log::read_from(Reader& r, std::uint64_t term) {
  // Feeds a stream read from a blocking Reader through the same path as the
  // transport's stream, as if it came from the current leader of `term`.
  auto serial = run_blocking<std::uint64_t>(*impl_, [&](Handler_fn<std::uint64_t> h) {
    impl_->post_any_epoch([i = impl_.get(), term, h = std::move(h)]() mutable {
      if (i->state_ == State::stopped) return fail(h, errc::closed);
      if (term != i->term_ || i->state_ != State::follower) return fail(h, errc::stale_term);
      i->drop_in_stream();
      auto s = std::make_unique<Impl::InStream>();
      s->term = term;
      s->leader = i->leader_id_;
      s->parser = detail::StreamParser(i->o_.entry_size_bytes_max + 64 * 1024);
      s->serial = ++i->in_serial_;
      const auto serial = s->serial;
      i->in_ = std::move(s);
      h(serial);
    });
  });
  if (!serial) return serial.error();
  std::string buf(64 * 1024, '\0');
  for (;;) {
    auto n = r.read(std::as_writable_bytes(std::span(buf.data(), buf.size())));
    if (!n) return n.error();
    if (*n == 0) return {};
    auto fed = run_blocking<bool>(*impl_, [&](Handler_fn<bool> h) {
      impl_->post_any_epoch([i = impl_.get(), s = *serial, d = std::string(buf.data(), *n), h = std::move(h)]() mutable {
        i->on_stream_bytes(s, d);
        h(bool(i->in_ && i->in_->serial == s));
      });
    });
    if (!fed) return fed.error();
    if (!*fed) return errc::protocol_error;
  }
}

void Log::handle_join(const JoinRequest& req, Handler_fn<JoinResponse> h) {
  impl_->post_any_epoch([i = impl_.get(), req, h = std::move(h)]() mutable {
    if (i->state_ == State::leader) {
      // A node that is already a member (it retried after a lost reply) gets
      // its existing id back instead of a duplicate-url error; but not a
      // request from another data directory at that URL (another join
      // token): a wiped node would become that member with an empty log and
      // no vote record, which Raft's safety does not allow for. The operator
      // removes the member first. Members added by add_peer have no token
      // (initialize records the first member's) and keep the old behaviour.
      if (const auto* n = i->config_.node_by_url(req.url)) {
        if (n->join_token != 0 && req.join_token != 0 && n->join_token != req.join_token) {
          i->logf("join from {} refused: node {} has that URL and joined from another data directory", req.url, n->id);
          return fail(h, errc::duplicate_node_url);
        }
        // A member added by add_peer (no token) is claimed by the first data
        // directory that joins as it: its token is recorded (a config entry,
        // so one change at a time), and a wiped directory asking later is
        // refused as above instead of taking an empty log into the member.
        if (n->join_token == 0 && req.join_token != 0) {
          if (auto ec = i->can_change_membership()) return fail(h, ec);  // the joiner retries
          const std::uint64_t id = n->id;
          i->logf("node {} at {} joined: binding it to its data directory's token", id, req.url);
          i->append_local(LogEntry{LogEntryType::bind_token, i->last_index() + 1, i->term_,
                                   encode_u64(id) + encode_u64(req.join_token)});
          // A learner asking for its promotion asks again once this commits.
          if (req.promote) return fail(h, errc::change_in_progress);
          return h(JoinResponse{id, i->id_, i->config_});
        }
        // A learner that joined to become a voter once caught up
        // (JoinOptions::catch_up_first) asks again with `promote`: answered
        // once its promotion has committed (also when it is a voter already
        // by an entry not yet committed: promote_peer waits for that too).
        if (req.promote) {
          const std::uint64_t id = n->id;
          return i->do_promote_peer(id, {}, [i, id, h = std::move(h)](result<void> r) mutable {
            if (!r) return fail(h, r.error());
            h(JoinResponse{id, i->id_, i->config_});
          });
        }
        return h(JoinResponse{n->id, i->id_, i->config_});
      }
      // A joiner asking again under an id that was removed for its URL was
      // a member that never learned so (cut off or restarted around its own
      // join and removal): adding it back would undo the removal.
      if (req.previous_id != 0 && i->config_.was_removed(req.previous_id, req.url)) return fail(h, errc::removed);
      // The request that added a node now removed, delivered late (delayed
      // or duplicated by the network, or a retry that crossed the removal):
      // same refusal. A node started afresh at that URL drew a new token.
      if (i->config_.join_was_removed(req.url, req.join_token)) return fail(h, errc::removed);
    }
    i->do_add_peer(std::move(req.url), req.join_token, req.learner, false, nullptr, std::move(h));
  });
}
void Log::handle_leave(std::uint64_t id, Handler_fn<void> h) {
  impl_->post_any_epoch([i = impl_.get(), id, h = std::move(h)]() mutable { i->do_remove_peer(id, std::move(h)); });
}
void Log::handle_heartbeat(const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h) {
  impl_->post_any_epoch([i = impl_.get(), req, h = std::move(h)]() mutable { i->do_heartbeat(req, std::move(h)); });
}
void Log::handle_vote(const VoteRequest& req, Handler_fn<VoteResponse> h) {
  impl_->post_any_epoch([i = impl_.get(), req, h = std::move(h)]() mutable { i->do_vote(req, std::move(h)); });
}
void Log::handle_ack(const AckRequest& req, Handler_fn<void> h) {
  impl_->post_any_epoch([i = impl_.get(), req, h = std::move(h)]() mutable { i->do_ack(req, std::move(h)); });
}
void Log::handle_read_index(const ReadIndexRequest& req, Handler_fn<std::uint64_t> h) {
  impl_->post_any_epoch([i = impl_.get(), req, h = std::move(h)]() mutable { i->do_serve_read_index(req, std::move(h)); });
}
void Log::handle_stream(const StreamRequest& req, std::shared_ptr<StreamWriter> w) {
  impl_->post_any_epoch([i = impl_.get(), req, w = std::move(w)]() mutable {
    if (i->state_ == State::stopped) return w->finish(errc::closed);
    i->serve_stream(req, std::move(w));
  });
}

}  // namespace raft
