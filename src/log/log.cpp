// raft::Log, the public API: each call posts to the strand (log/impl.hpp).
#include "log/impl.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <future>

namespace raft {

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
  s.reads_by_lease = impl_->reads_by_lease_.load(std::memory_order_relaxed);
  s.lease_reads = impl_->o_.lease_reads;
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

void Log::start_set_voters(std::vector<std::uint64_t> voters, Clock::duration timeout, Handler_fn<std::uint64_t> h) {
  impl_->post_any_epoch([i = impl_.get(), v = std::move(voters), timeout, h = std::move(h)]() mutable {
    i->do_set_voters(std::move(v), timeout, std::move(h));
  });
}
void Log::start_transfer_leadership(std::uint64_t id, Clock::duration timeout, Handler_fn<void> h) {
  impl_->post_any_epoch([i = impl_.get(), id, timeout, h = std::move(h)]() mutable { i->do_transfer(id, timeout, std::move(h)); });
}
void Log::start_snapshot(Handler_fn<std::uint64_t> h) {
  impl_->post_any_epoch([i = impl_.get(), h = std::move(h)]() mutable { i->do_snapshot(std::move(h)); });
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
result<std::uint64_t> Log::snapshot() {
  return run_blocking_local<std::uint64_t>(*impl_, [&](Handler_fn<std::uint64_t> h) { start_snapshot(std::move(h)); });
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

result<std::uint64_t> Log::set_voters(std::vector<std::uint64_t> voters, Clock::duration timeout) {
  return run_blocking<std::uint64_t>(*impl_, [&](Handler_fn<std::uint64_t> h) {
    start_set_voters(std::move(voters), timeout, std::move(h));
  });
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
