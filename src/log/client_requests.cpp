// Log::Impl: apply, wait and linearizable reads (strand).
#include "log/impl.hpp"

#include <limits>

namespace raft {

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
  if (lease_holds()) {
    // No other leader can have been elected since a majority last answered
    // us (lease_holds), so commit_ covers every write completed before now.
    reads_by_lease_.fetch_add(1, std::memory_order_relaxed);
    const auto deadline = timeout > Clock::duration::zero() ? clock_->now() + timeout : Clock::time_point::max();
    return finish_read(commit_, PendingRead{std::move(h), nullptr, wait_applied, deadline});
  }
  queue_read(pending_reads_, ++read_seq_, timeout, wait_applied, std::move(h));
  // A round of its own, now: heartbeats already out were sent before this
  // call, so their answers cannot confirm it (their replies send the next).
  send_heartbeats();
  settle_reads();
}

std::uint64_t Log::Impl::lease_end(std::uint64_t sent, std::uint64_t hold_ms) const {
  // The member got the heartbeat after we sent it, and grants no vote for
  // hold_ms after that by its clock; ours may run fast or slow against
  // theirs by up to lease_clock_drift each: hence the margin.
  const double d = o_.lease_clock_drift;
  auto hold = Clock::duration(static_cast<Clock::duration::rep>(
      static_cast<double>(std::chrono::nanoseconds(std::chrono::milliseconds(hold_ms)).count()) * (1.0 - d) / (1.0 + d)));
  if (o_.inject_fault == LogOptions::Fault::lease_outlives_election_timeout) hold = 3 * o_.election_timeout;
  return sent + static_cast<std::uint64_t>(hold.count());
}

bool Log::Impl::lease_holds() const {
  if (!o_.lease_reads || state_ != State::leader || lease_void_) return false;
  // As for a read round: commit_ covers earlier terms only once an entry of
  // ours has committed.
  if (commit_ < term_start_) return false;
  // Until when a majority of voters each keeps every other candidate from
  // being elected (we count for ourselves, for as long as we lead:
  // vote_held_for_lease). No leader of a later term can exist before then,
  // so our commit index covers every write completed so far. A member
  // that promised nothing (lease_reads off, an older build) counts for
  // nothing.
  const auto until = quorum_value(std::numeric_limits<std::uint64_t>::max(), &Peer::lease_until);
  return until && static_cast<std::uint64_t>(clock_->now().time_since_epoch().count()) < *until;
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

}  // namespace raft
