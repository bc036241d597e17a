// Log::Impl: heartbeats, votes, acknowledgements and leadership transfer
// from other members (strand).
#include "log/impl.hpp"

namespace raft {

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
  HeartbeatResponse res{last_index(), term_, {}, id_};
  // What vote_held_for_lease promises from now on (last_heard_), rounded
  // down: the leader's lease on this answer is no longer than that.
  if (o_.lease_reads)
    res.vote_hold_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(o_.election_timeout).count());
  h(res);
  // Leadership transfer: our leader, whose whole log we hold, asks us to
  // campaign now. Only a voter, and only for the leader we follow in this
  // term (a late copy from an older term was refused above).
  if (req.timeout_now && state_ == State::follower && leader_id_ == req.leader_id && is_voter(id_)) {
    logf("leader {} hands leadership over: election now", req.leader_id);
    start_election(true);
  }
}

bool Log::Impl::vote_held_for_lease() const {
  if (!o_.lease_reads) return false;
  if (state_ == State::leader) return true;
  const auto now = clock_->now();
  // By time alone, not leader_alive(): a reply of a later term (to a
  // pre-vote of ours, say) makes us forget our leader, yet it may still
  // count our last answer in its lease.
  if (last_heard_ != Clock::time_point{} && now - last_heard_ < o_.election_timeout) return true;
  if (o_.inject_fault == LogOptions::Fault::lease_votes_after_restart) return false;
  return now - opened_at_ < o_.election_timeout;
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
  // A vote asked again by the candidate we voted for in this term is not a
  // second vote: it stays granted.
  const bool held = vote_held_for_lease() && !(req.term == term_ && voted_for_ == req.candidate_id);
  if (req.pre_vote) {
    // Would we vote for this candidate in req.term? The rules below (leader
    // stickiness, one vote per term, §5.4.1), but nothing changes here: no
    // term, no vote, no timer. A live leader, or a follower of one, refuses
    // in its own term too (the leader holds a majority of that term's
    // votes); a leader steps down by check-quorum once it lost its majority.
    if (state_ == State::leader || leader_alive() || held)
      return h(VoteResponse{term_, sticky_refusal(req.candidate_id)});
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
  if (held && !req.transfer) {
    logf("vote for {} in term {} refused: {}", req.candidate_id, req.term,
         state_ == State::leader ? "we lead (lease reads)" : "a leader's lease may count on our answer (lease reads)");
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
  if (voters_change_) maybe_enter_joint();
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
    if (n.id == id_ || !is_voter(n.id)) continue;
    auto it = peers_.find(n.id);
    if (it != peers_.end() && it->second.match >= last_index()) {
      target = n.id;
      break;
    }
  }
  const HeartbeatRequest req{term_, commit_, id_, o_.url, true};
  lease_void_ = true;
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
  lease_void_ = true;  // for the rest of the term: a lost reply may hide a delivered TimeoutNow
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

}  // namespace raft
