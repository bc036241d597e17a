// Log::Impl: elections, leadership, commit and apply, snapshots (strand).
#include "log/impl.hpp"

namespace raft {

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
  // Only voters campaign (may_campaign): a removed node, one still joining,
  // or a learner stays quiet.
  if (id_ == 0 || !may_campaign()) return reset_election_timer();
  if (majority_of([this](std::uint64_t v) { return v == id_; })) return start_election();  // our own vote decides
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
    if (n.id == id_ || !is_voter(n.id) || prevotes_.count(n.id)) continue;
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
  // Checked again here: a pre-vote round begun while we could campaign may
  // end after an entry made us a learner (simulator, joint_consensus seed
  // 12673: its pre-votes came back after C_new, which left it out, had
  // committed).
  if (id_ == 0 || !may_campaign()) return logf("no election: no longer a voter");
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
  if (majority_granted(votes_)) return become_leader();
  request_votes(term_);
}

void Log::Impl::request_votes(std::uint64_t term) {
  if (state_ != State::candidate || term_ != term) return;
  const VoteRequest req{term_, id_, last_index(), last_term(), false, transfer_term_ == term_};
  for (const auto& n : config_.nodes) {
    // Ask again only those who have not answered: requests and replies can
    // be lost, and one lost vote should not cost a whole election round.
    if (n.id == id_ || !is_voter(n.id) || votes_.count(n.id)) continue;
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
    if (voters_change_) end_voters_change(make_error_code(errc::not_leader));
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
  lease_void_ = false;
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
    const bool heard = majority_of([&](std::uint64_t id) {
      if (id == id_) return true;
      auto it = peers_.find(id);
      return it != peers_.end() && now - it->second.last_contact < o_.election_timeout;
    });
    if (!heard && !config_.nodes.empty()) {
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
  const auto sent = static_cast<std::uint64_t>(clock_->now().time_since_epoch().count());
  o_.transport->heartbeat(url_of(peer), req, [self = shared_from_this(), ep = epoch_, term = term_, peer, round, sent](result<HeartbeatResponse> r) {
    self->post_any_epoch([self, ep, term, peer, round, sent, r] {
      if (self->epoch_ != ep) return;
      auto it = self->peers_.find(peer);
      const bool ours = it != self->peers_.end() && self->term_ == term && self->state_ == State::leader;
      if (ours) it->second.hb_inflight = false;
      if (!r) {
        // A mixed cluster whose builds cannot talk: an operator's problem,
        // named once (the follower's side logs each refused stream).
        if (ours && r.error() == errc::unsupported_protocol && !it->second.protocol_logged) {
          it->second.protocol_logged = true;
          self->logf("node {} at {} answers in a protocol version this build does not speak: it cannot follow",
                     peer, self->url_of(peer));
        }
        return;
      }
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
      it->second.protocol = r->protocol != 0 ? r->protocol : kProtocolVersion;
      it->second.last_contact = it->second.protocol_at = self->clock_->now();
      it->second.read_acked = std::max(it->second.read_acked, round);
      it->second.vote_hold_ms = r->vote_hold_ms;
      if (self->o_.lease_reads) {
        std::uint64_t hold = r->vote_hold_ms;
        if (hold == 0 && self->o_.inject_fault == LogOptions::Fault::lease_without_vote_hold)
          hold = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(self->o_.election_timeout).count());
        if (hold != 0) it->second.lease_until = std::max(it->second.lease_until, self->lease_end(sent, hold));
      }
      if (self->pending_reads_.empty()) return;
      // Reads that arrived while this heartbeat was out need a newer one.
      if (self->read_seq_ > round) self->send_heartbeat(peer);
      self->settle_reads();
    });
  });
}

std::optional<std::uint64_t> Log::Impl::quorum_value(std::uint64_t mine, std::uint64_t Peer::*field) const {
  auto value_of = [&](std::uint64_t id) -> std::uint64_t {
    if (id == id_) return mine;
    auto it = peers_.find(id);
    return it == peers_.end() ? 0 : it->second.*field;
  };
  std::vector<std::uint64_t> values;
  values.reserve(config_.nodes.size());
  for (const auto& n : config_.nodes)
    if (counts_in_new(n.id)) values.push_back(value_of(n.id));
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end(), std::greater<>());
  std::uint64_t v = values[quorum() - 1];
  if (config_.joint() && o_.inject_fault != LogOptions::Fault::joint_new_majority_only) {
    // C_old,new: what a majority of each half has reached (Raft paper §6).
    values.clear();
    for (auto id : config_.outgoing_voters) values.push_back(value_of(id));
    std::sort(values.begin(), values.end(), std::greater<>());
    v = std::min(v, values[values.size() / 2]);
  }
  return v;
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
  // the voters elect (it appended nothing after its demotion, see do_apply);
  // and one left out of the voters of a joint change, once C_new commits.
  if (in_config(id_) && !is_voter(id_) && commit_ >= config_.index && state_ == State::leader) {
    logf("demoted to learner; stepping down");
    step_down_handing_over();
  }
  // Joint consensus: once C_old,new commits, the leader appends C_new
  // (Raft paper §6), whoever appended C_old,new. A call to set_voters on
  // this leader does it from its callback, which settle_pending ran first.
  if (state_ == State::leader && config_.joint() && commit_ >= config_.index) leave_joint(nullptr);
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
  // A snapshot that is due goes before the next batch. Waiting for the FSM
  // to catch up first waited forever for an FSM slower than the commits (a
  // steady load): no snapshot, and a log that grew without bound.
  if (snapshot_due()) return maybe_snapshot();
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

bool Log::Impl::snapshot_due() const {
  if (applied_ <= snapshot_index_ || applied_ < log_->prev_index()) return false;
  if (!snapshot_asked_.empty()) return true;  // snapshot()
  const std::uint64_t since = std::max(snapshot_index_, snapshot_failed_at_);
  const bool by_entries = o_.snapshot_threshold_entries && applied_ - since >= o_.snapshot_threshold_entries;
  const bool by_bytes =
      o_.snapshot_threshold_bytes && log_->size_bytes() >= log_bytes_at_snapshot_ + o_.snapshot_threshold_bytes;
  return by_entries || by_bytes;
}

void Log::Impl::do_snapshot(Handler_fn<std::uint64_t> h) {
  if (state_ == State::stopped) return fail(h, errc::closed);
  snapshot_asked_.push_back(std::move(h));
  // Now, or once the FSM's batch in flight (or the snapshot being taken)
  // is done: both end in maybe_apply(), which comes here.
  maybe_snapshot();
}

void Log::Impl::answer_all(std::vector<Handler_fn<std::uint64_t>>& hs, const result<std::uint64_t>& r) {
  auto v = std::move(hs);
  hs.clear();
  for (auto& h : v)
    if (h) h(r);
}

void Log::Impl::maybe_snapshot() {
  if (applying_ || snapshotting_ || state_ == State::stopped) return;
  if (!snapshot_due()) {
    // snapshot() with nothing applied since the latest snapshot (or the FSM
    // still behind it, being restored): that one is the answer.
    answer_all(snapshot_asked_, snapshot_index_);
    return;
  }
  snapshot_answering_ = std::move(snapshot_asked_);
  snapshot_asked_.clear();
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
        // Tried again after another threshold's worth, not at once: a
        // snapshot due goes before the next batch, so retrying at once
        // would stop the FSM for as long as snapshots fail.
        self->snapshot_failed_at_ = self->applied_;
        self->log_bytes_at_snapshot_ = self->log_->size_bytes();
        self->logf("snapshot failed: {}", meta.error().message());
        answer_all(self->snapshot_answering_, meta.error());
      } else {
        self->compact_to(*meta);
        answer_all(self->snapshot_answering_, meta->index);  // none left if compaction failed (close)
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
  log_bytes_at_snapshot_ = log_->size_bytes();
  // Not the snapshot a queued restore is about to open: a newer snapshot
  // installed from the leader while the FSM restore of the previous one
  // still waits on the apply executor deleted its file, the restore failed
  // (i/o error) and the node stopped (simulator, reopen_in_place seed 4128,
  // whose apply executor lags). That file goes with the next compaction.
  const std::uint64_t keep_snap = restoring_ != 0 ? std::min(meta.index, restoring_) : meta.index;
  if (auto r = snaps_->remove_older_than(keep_snap); !r) logf("removing old snapshots: {}", r.error().message());
  logf("snapshot at {}:{}; log now starts at {}", meta.index, meta.term, log_->first_index());
}

}  // namespace raft
