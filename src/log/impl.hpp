// raft::Log's implementation: the one class, Log::Impl, whose members the
// files of this directory define, grouped by what they do.
//
// Everything marked "strand" runs only on the Log's strand; that is the one
// lock of the consensus state. Other threads (transport callbacks, clock
// timers, storage and apply executors) reach it by posting.
//
// Where each rule lives (Raft paper section numbers; DESIGN 5):
//   persistence.cpp    persist_meta(): term and vote durable before any
//                      reply (§5.1, Fig. 2); appends, syncs, truncation
//   roles.cpp          on_election_timeout(): pre-vote before the term goes
//                      up (thesis §9.6); become_leader(): a Nop of the new
//                      term (§5.4.2, §8); advance_commit(): commit only
//                      current-term entries by counting (§5.4.2); snapshots
//   streams.cpp        on_stream_event(): Log Matching on the stream (§5.3);
//                      the leader's side of each stream (serve_stream, pump)
//   peer_requests.cpp  do_vote(): one vote per term (§5.2), the up-to-date
//                      check (§5.4.1); do_heartbeat(); do_ack(): a
//                      follower's durable, matching index (DESIGN 4.3);
//                      leadership transfer (thesis §3.10)
//   membership.cpp     can_change_membership(): one single-server change at
//                      a time (thesis §4.1); join, leave, learners
//   client_requests.cpp  apply, wait and linearizable reads (thesis §6.4)
//   setup.cpp          construction, open (recovery), close
//   log.cpp            the public raft::Log, which posts to the strand
//
// Internal to src/log/: not installed, not part of the API.
#pragma once

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

#include <algorithm>
#include <charconv>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

namespace raft {

namespace net = boost::asio;

// Helpers of the log's files (inline: each file uses some of them).

inline std::string encode_u64(std::uint64_t v) {
  std::string s(8, '\0');
  detail::put_be64(reinterpret_cast<std::byte*>(s.data()), v);
  return s;
}
inline std::uint64_t decode_u64(std::string_view s) {
  if (s.size() != 8) return 0;
  return detail::get_be64(reinterpret_cast<const std::byte*>(s.data()));
}

// AddPeer entry data: the URL, then "\0" and the joiner's token when there is
// one, then a byte 1 for a learner (with token 0 if there is none). A URL
// never holds a 0 byte (do_add_peer refuses one), so entries written before
// tokens existed decode as a URL with token 0, and those written before
// learners existed as a voter.
inline std::string encode_add_peer(const std::string& url, std::uint64_t join_token, bool learner) {
  if (join_token == 0 && !learner) return url;
  return url + '\0' + encode_u64(join_token) + (learner ? "\1" : "");
}
struct AddPeerData {
  std::string url;
  std::uint64_t join_token = 0;
  bool learner = false;
};
inline AddPeerData decode_add_peer(std::string_view data) {
  const auto nul = data.find('\0');
  if (nul == std::string_view::npos) return {std::string(data)};
  const auto rest = data.substr(nul + 1);
  const bool learner = rest.size() == 9 && rest[8] == '\1';
  return {std::string(data.substr(0, nul)), decode_u64(rest.substr(0, 8)), learner};
}
inline bool is_config_entry(LogEntryType t) {
  return t == LogEntryType::initialize || t == LogEntryType::add_peer || t == LogEntryType::remove_peer ||
         t == LogEntryType::promote_peer || t == LogEntryType::bind_token || t == LogEntryType::demote_peer ||
         t == LogEntryType::joint_voters || t == LogEntryType::leave_joint;
}

template <class T>
void fail(Handler_fn<T>& h, std::error_code ec) {
  if (h) {
    auto f = std::move(h);
    h = nullptr;
    f(result<T>(boost::system::in_place_error, ec));
  }
}

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
  Clock::time_point opened_at_{};   // by clock_, at open() (vote_held_for_lease)
  // This leadership told a member to campaign (a transfer's TimeoutNow, or
  // handing over): its lease is void for the rest of the term, since voters
  // grant that member's election however recently they heard from us.
  bool lease_void_ = false;
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
  // The log's size on disk after the last snapshot's compaction:
  // snapshot_threshold_bytes counts from there. (A snapshot cannot shrink
  // the log below the segment being written and the tail it keeps; compared
  // with the whole log, a threshold below that size called for a snapshot
  // after every batch applied.)
  std::uint64_t log_bytes_at_snapshot_ = 0;
  // The applied index at the last failed snapshot (0: none since open): the
  // entry threshold counts from there too.
  std::uint64_t snapshot_failed_at_ = 0;
  // snapshot() calls: waiting for a snapshot to start, and those the
  // snapshot being taken answers. close() fails both.
  std::vector<Handler_fn<std::uint64_t>> snapshot_asked_, snapshot_answering_;
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
    // Lease reads: until when (Clock ticks; 0: never) its answers keep
    // another leader from being elected: the latest heartbeat it answered
    // in our term, when we sent it, plus the time it promised to grant no
    // vote after getting it (HeartbeatResponse::vote_hold_ms), less the
    // clock-drift margin (LogOptions::lease_reads).
    std::uint64_t lease_until = 0;
    std::uint64_t vote_hold_ms = 0;  // its latest reply's (PeerProgress::vote_hold_ms)
    // It answered in another protocol version (errc::unsupported_protocol):
    // said once per leadership, not at every heartbeat.
    bool protocol_logged = false;
    // The protocol version of its latest heartbeat reply in our term
    // (kProtocolVersion for a transport that says nothing); 0: none yet.
    // set_voters is refused while a member answers in a version without
    // joint consensus (member_without_joint_consensus).
    std::uint32_t protocol = 0;
    Clock::time_point protocol_at{};  // when that reply came
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
    // The version the follower asked in (StreamRequest::protocol): below
    // kJointConsensusProtocol, no joint-consensus entry or configuration
    // may go on this stream (ends it with errc::unsupported_protocol).
    std::uint32_t protocol = kProtocolVersion;
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
  // A set_voters waiting for its new voters to catch up: C_old,new is
  // appended once each that is not a voter yet has acknowledged `until`.
  struct VotersChange {
    std::vector<std::uint64_t> voters;  // sorted
    std::uint64_t until = 0;
    Handler_fn<std::uint64_t> h;
    std::shared_ptr<Timer> timer;
  };
  std::optional<VotersChange> voters_change_;
  // Status's counters, read by status() from any thread.
  std::atomic<std::uint64_t> reads_as_leader_{0}, reads_as_follower_{0}, reads_by_lease_{0}, elections_started_{0},
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
  // Yes from a majority of the current configuration's voters (of each
  // half of a joint one).
  bool majority_granted(const std::map<std::uint64_t, bool>& answers) const {
    return majority_of([&](std::uint64_t id) {
      auto it = answers.find(id);
      return it != answers.end() && it->second;
    });
  }
  // Whether the voters for which has(id) holds are a majority of the
  // configuration's voters and, in a joint configuration, also of its
  // outgoing voters (Raft paper §6: neither half decides alone).
  template <class F>
  bool majority_of(F&& has) const {
    std::size_t n = 0;
    for (const auto& node : config_.nodes)
      if (counts_in_new(node.id) && has(node.id)) ++n;
    if (n < quorum()) return false;
    if (!config_.joint() || o_.inject_fault == LogOptions::Fault::joint_new_majority_only) return true;
    n = 0;
    for (auto id : config_.outgoing_voters)
      if (has(id)) ++n;
    return n >= config_.outgoing_voters.size() / 2 + 1;
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
  // The majority of the (new) voters; see majority_of for joint ones.
  std::size_t quorum() const { return config_.voter_count() / 2 + 1; }
  // The highest value that a majority of the configuration's voters have
  // reached (in a joint configuration: the lower of the two halves' values):
  // this node counts with `mine` (when it is a voter), each peer with its
  // `field` (0 if it has no Peer yet). nullopt with no voters.
  std::optional<std::uint64_t> quorum_value(std::uint64_t mine, std::uint64_t Peer::*field) const;
  bool in_config(std::uint64_t id) const { return config_.node_by_id(id) != nullptr; }
  // A voter of the configuration (C_new's, in a joint one): counts toward
  // quorum().
  bool counts_in_new(std::uint64_t id) const {
    return config_.is_voter(id) || (o_.inject_fault == LogOptions::Fault::learner_counts_as_voter && in_config(id));
  }
  // A voter of either half of the configuration: campaigns, is asked for
  // votes, may be handed leadership.
  bool is_voter(std::uint64_t id) const { return counts_in_new(id) || config_.is_outgoing_voter(id); }
  // Whether this node may campaign: a voter of its latest configuration, or
  // of the one before while the latest is not known to be committed. The
  // servers a change leaves out may be the only ones holding it (and the
  // entries before it): a joint change's C_new appended by a leader cut off
  // with the other old voters, say. The new voters, still in C_old,new,
  // need those servers' votes and cannot have them (their logs are
  // behind); if those could not campaign either, nobody could be elected
  // (simulator, joint_consensus seed 197). As in the Raft paper (§6), such
  // a server campaigns; it counts the votes of its latest configuration's
  // voters, not its own, and steps down once that configuration commits.
  bool may_campaign() const {
    if (is_voter(id_)) return true;
    if (configs_.empty() || config_.index <= commit_) return false;
    const Config& prev = configs_.size() >= 2 ? configs_[configs_.size() - 2] : base_config_;
    return prev.is_voter(id_) || prev.is_outgoing_voter(id_);
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
  // Lease reads (LogOptions::lease_reads) count on more refusals than
  // stickiness: a leader votes for nobody while it leads (check-quorum
  // steps it down once it lost its majority); a node for nobody within an
  // election timeout of its last heartbeat from a leader, whatever it has
  // learned since (what its reply promised: HeartbeatResponse::vote_hold_ms);
  // and a node just opened for nobody within an election timeout, since it
  // forgot when it last heard from a leader that may count its last answer
  // in a lease.
  bool vote_held_for_lease() const;
  // The lease (thesis §6.4.1): true while a read may be answered with the
  // commit index without a heartbeat round.
  bool lease_holds() const;
  // Lease reads: when a lease on a heartbeat sent at `sent` (Clock ticks),
  // answered with vote_hold_ms = hold_ms, ends.
  std::uint64_t lease_end(std::uint64_t sent, std::uint64_t hold_ms) const;
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
  // Whether a snapshot of what the FSM applied is called for: by the
  // thresholds, or by a snapshot() call.
  bool snapshot_due() const;
  void maybe_snapshot();
  void do_snapshot(Handler_fn<std::uint64_t> h);
  static void answer_all(std::vector<Handler_fn<std::uint64_t>>& hs, const result<std::uint64_t>& r);
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
  void pump_all();
  void end_out_streams(std::error_code ec);
  // The follower of `s` reads a protocol version without joint consensus.
  bool reads_no_joint(const OutStream& s) const {
    return s.protocol < kJointConsensusProtocol && o_.inject_fault != LogOptions::Fault::joint_to_old_builds;
  }
  // Ends a stream whose follower reads a protocol version without joint
  // consensus, at `what` (a joint entry or configuration) it cannot read.
  void end_old_stream(const std::shared_ptr<OutStream>& s, std::string_view what);
  // A member (not us) whose heartbeat replies in this term are in a
  // protocol version without joint consensus; 0 if none.
  std::uint64_t member_without_joint_consensus() const;
  // errc::unsupported_protocol, logged with the member's id, while such a
  // member answers; empty otherwise.
  std::error_code joint_protocol_error();

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
  // `left`: members still to ask in this pass (0: a new pass, all of them).
  void rejoin(std::size_t left = 0);
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
  // Joint consensus (Log::set_voters): once the new voters have caught up
  // (maybe_enter_joint), appends C_old,new; once that commits,
  // leave_joint() appends C_new and `h` learns C_new's index once that
  // commits.
  void do_set_voters(std::vector<std::uint64_t> voters, Clock::duration timeout, Handler_fn<std::uint64_t> h);
  result<bool> voters_change_check(const std::vector<std::uint64_t>& voters) const;
  void maybe_enter_joint();
  void end_voters_change(std::error_code ec);
  // Leader, with a committed joint configuration (its own, or one it
  // inherited): appends C_new. `h` (may be empty) is answered once it commits.
  void leave_joint(Handler_fn<std::uint64_t> h);
  void maybe_promote();
  void end_promotion(std::error_code ec);
  void do_heartbeat(const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h);
  void do_vote(const VoteRequest& req, Handler_fn<VoteResponse> h);
  std::error_code sticky_refusal(std::uint64_t candidate) const;
  void do_ack(const AckRequest& req, Handler_fn<void> h);
  std::error_code can_change_membership() const;
};

}  // namespace raft
