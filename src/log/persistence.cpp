// Log::Impl: term and vote, local appends, syncs, truncation (strand).
#include "log/impl.hpp"

#include <boost/container/small_vector.hpp>

namespace raft {

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
    pump_all();
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
  pump_all();
}

void Log::Impl::pump_all() {
  // pump() may end a stream (erasing it from out_streams_), or every stream
  // (fatal): walk a copy, and hold each stream while it is pumped.
  boost::container::small_vector<std::shared_ptr<OutStream>, 8> streams;  // no allocation per flush
  streams.reserve(out_streams_.size());
  for (const auto& [peer, s] : out_streams_) streams.push_back(s);
  for (const auto& s : streams) pump(s);
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

}  // namespace raft
