// Log::Impl: construction, open (recovery from disk), close and fail-stop.
#include "log/impl.hpp"

namespace raft {

std::string_view to_string(State s) noexcept {
  switch (s) {
    case State::stopped: return "stopped";
    case State::follower: return "follower";
    case State::candidate: return "candidate";
    case State::leader: return "leader";
  }
  return "unknown";
}

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
        id, p.match, static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(age).count()),
        p.vote_hold_ms});
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
  if (!(o_.lease_clock_drift >= 0.0 && o_.lease_clock_drift < 1.0)) return errc::invalid_argument;
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
  opened_at_ = clock_->now();
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
  log_bytes_at_snapshot_ = snapshot_index_ != 0 ? log_->size_bytes() : 0;
  snapshot_failed_at_ = 0;
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
    if (is_voter(id_) && majority_of([this](std::uint64_t v) { return v == id_; })) on_election_timeout();
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
    case LogEntryType::joint_voters: {
      std::vector<std::uint64_t> voters;
      const std::string_view d = e.data;
      for (std::size_t at = 0; at + 8 <= d.size(); at += 8) voters.push_back(decode_u64(d.substr(at, 8)));
      auto r = d.size() % 8 == 0 ? c.enter_joint(voters) : result<void>(errc::invalid_argument);
      if (!r) logf("joint_voters entry {} not applicable: {}", e.index, r.error().message());
      break;
    }
    case LogEntryType::leave_joint: {
      auto r = c.leave_joint();
      if (!r) logf("leave_joint entry {} not applicable: {}", e.index, r.error().message());
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
  for (auto* v : {&snapshot_asked_, &snapshot_answering_}) answer_all(*v, why);
  fail_forwarded_reads(why);
  if (transfer_) end_transfer(why);
  if (promotion_) end_promotion(why);
  if (voters_change_) end_voters_change(why);
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

}  // namespace raft
