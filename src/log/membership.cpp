// Log::Impl: initialize, join, leave, add/remove/promote/demote (strand).
#include "log/impl.hpp"

#include <fmt/ranges.h>

namespace raft {

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
  lease_void_ = false;
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

void Log::Impl::rejoin(std::size_t left) {
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
  // One pass asks every member we know, one after another, without waiting
  // for another election timeout between them: while we wait, the members
  // we know may all be replaced, and then nobody can tell us where the
  // cluster went (simulator, membership_add_remove_under_faults seed 50806:
  // the one member still there, the leader, was removed before our turn to
  // ask it came).
  if (left == 0 || left > urls.size()) left = urls.size();
  const std::uint64_t token = join_token();
  if (token == 0) return;
  rejoining_ = true;
  o_.transport->join(target, JoinRequest{o_.url, id_, token, join_learner_}, [self = shared_from_this(), ep = epoch_, left](result<JoinResponse> r) {
    self->post_any_epoch([self, ep, r, left] {
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
      // Not answered (gone, not the leader and no hint, a lost reply): the
      // next member of this pass.
      if (!r) {
        if (left > 1) self->rejoin(left - 1);
        return;
      }
      if (!self->provisional_ || self->state_ == State::stopped || self->state_ == State::leader) return;
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
  if (config_.index > commit_ || config_.joint()) return errc::change_in_progress;
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

// The change set_voters asks for, checked against the configuration now:
// errc::* to refuse it, or whether `voters` are the voters already.
result<bool> Log::Impl::voters_change_check(const std::vector<std::uint64_t>& voters) const {
  if (auto ec = can_change_membership()) return {boost::system::in_place_error, ec};
  Config next = config_;
  if (auto r = next.enter_joint(voters); !r) return {boost::system::in_place_error, r.error()};
  for (const auto& n : config_.nodes)
    if (n.learner != next.node_by_id(n.id)->learner) return false;
  return true;
}

void Log::Impl::do_set_voters(std::vector<std::uint64_t> voters, Clock::duration timeout,
                              Handler_fn<std::uint64_t> h) {
  if (promotion_ || voters_change_) return fail(h, errc::change_in_progress);
  auto same = voters_change_check(voters);
  if (!same) return fail(h, same.error());
  // These voters already (can_change_membership: in a committed
  // configuration): done, so that a retried call succeeds.
  if (*same) return h(config_.index);
  if (auto ec = joint_protocol_error()) return fail(h, ec);
  if (timeout <= Clock::duration::zero()) timeout = 10 * o_.election_timeout;
  std::sort(voters.begin(), voters.end());
  logf("changing the voters to {} once the new ones hold our log up to {}", fmt::join(voters, ","), last_index());
  voters_change_ = VotersChange{std::move(voters), last_index(), std::move(h), nullptr};
  voters_change_->timer = after_on_strand(timeout, [this, term = term_] {
    if (!voters_change_ || term_ != term || state_ != State::leader) return;
    logf("the new voters did not catch up in time: voters unchanged");
    end_voters_change(make_error_code(errc::timeout));
  });
  maybe_enter_joint();
}

void Log::Impl::maybe_enter_joint() {
  // As promote_peer: a new voter far behind would hold up every commit that
  // needs the new voters' majority until it had caught up.
  for (auto id : voters_change_->voters) {
    if (config_.is_voter(id) || id == id_) continue;
    auto it = peers_.find(id);
    if (it == peers_.end() || it->second.match < voters_change_->until) return;
  }
  auto v = std::move(*voters_change_);
  voters_change_.reset();
  if (v.timer) v.timer->cancel();
  // Things may have changed while they caught up (a transfer, a removal).
  auto same = voters_change_check(v.voters);
  if (!same) return fail(v.h, same.error());
  if (*same) return v.h(config_.index);
  // A member may have answered in an older protocol meanwhile (a node
  // restarted on an older build): it could not read what follows.
  if (auto ec = joint_protocol_error()) return fail(v.h, ec);
  Config next = config_;
  (void)next.enter_joint(v.voters);
  std::string data;
  for (auto id : v.voters) data += encode_u64(id);
  const std::uint64_t index = last_index() + 1;
  logf("entering joint consensus: voters {} -> {}", fmt::join(next.outgoing_voters, ","), fmt::join(v.voters, ","));
  // From here on every decision needs a majority of the old voters and one
  // of the new (note_config_entry installs C_old,new as it is appended, here
  // and at each follower). Once it commits, leave_joint appends C_new.
  append_local(LogEntry{LogEntryType::joint_voters, index, term_, std::move(data)});
  // `this`, not shared_from_this(): the callback lives in our own
  // pending_applies_, and a strong reference there would keep a Log that
  // is never closed alive forever (LeakSanitizer, a change left pending).
  pending_applies_.emplace(index, PendingApply{term_, [this, h = std::move(v.h)](result<std::uint64_t> r) mutable {
                                                 if (!r) return fail(h, r.error());
                                                 leave_joint(std::move(h));
                                               }});
}

std::error_code Log::Impl::joint_protocol_error() {
  const std::uint64_t old = member_without_joint_consensus();
  if (old == 0) return {};
  logf("node {} answers in protocol version {}, without joint consensus: voters unchanged (upgrade it first)", old,
       peers_.at(old).protocol);
  return errc::unsupported_protocol;
}

std::uint64_t Log::Impl::member_without_joint_consensus() const {
  // Only replies from the last election timeout count (acks refresh
  // last_contact, not the version): a member never heard from in this
  // term, or silent since, does not hold the change up
  // (that is how a dead member is replaced). Safety does not rest on this
  // check: if such a member comes back on an older build, its stream stops
  // before the first joint entry (end_old_stream). The check spares a live
  // old member that, and the change a majority it cannot be part of.
  const auto now = clock_->now();
  for (const auto& n : config_.nodes) {
    if (n.id == id_) continue;
    auto it = peers_.find(n.id);
    if (it == peers_.end()) continue;
    const Peer& p = it->second;
    if (p.protocol != 0 && p.protocol < kJointConsensusProtocol && now - p.protocol_at < o_.election_timeout)
      return n.id;
  }
  return 0;
}

void Log::Impl::end_voters_change(std::error_code ec) {
  auto v = std::move(*voters_change_);
  voters_change_.reset();
  if (v.timer) v.timer->cancel();
  fail(v.h, ec);
}

void Log::Impl::leave_joint(Handler_fn<std::uint64_t> h) {
  if (state_ != State::leader) return fail(h, errc::not_leader);
  if (!config_.joint()) {
    // Appended already (this leader's advance_commit got there first).
    if (!h) return;
    const std::uint64_t index = config_.index;
    auto [it, fresh] = pending_applies_.try_emplace(index, PendingApply{term_, nullptr});
    if (!fresh) return fail(h, errc::change_in_progress);  // not ours: cannot happen
    it->second.h = [h = std::move(h), index](result<std::uint64_t> r) mutable {
      if (!r) return fail(h, r.error());
      h(index);
    };
    return;
  }
  if (commit_ < config_.index) return fail(h, errc::change_in_progress);
  const std::uint64_t index = last_index() + 1;
  logf("leaving joint consensus: voters {}", [&] {
    std::vector<std::uint64_t> v;
    for (const auto& n : config_.nodes)
      if (!n.learner) v.push_back(n.id);
    return fmt::format("{}", fmt::join(v, ","));
  }());
  append_local(LogEntry{LogEntryType::leave_joint, index, term_, {}});
  if (h) pending_applies_.emplace(index, PendingApply{term_, [h = std::move(h), index](result<std::uint64_t> r) mutable {
                                    if (!r) return fail(h, r.error());
                                    h(index);
                                  }});
}

std::error_code Log::Impl::promotion_error(std::uint64_t id) const {
  if (promotion_ || voters_change_) return errc::change_in_progress;
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

}  // namespace raft
