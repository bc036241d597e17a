// Log::Impl: the replication streams, the follower's side and the leader's
// (DESIGN 4.2), and acknowledgements (strand).
#include "log/impl.hpp"

namespace raft {

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
  s->protocol = req.protocol != 0 ? req.protocol : kProtocolVersion;
  // This stream replaces the member's previous one.
  if (auto old = out_streams_.find(req.id); old != out_streams_.end()) {
    old->second->alive = false;
    old->second->writer->finish(errc::canceled);
    out_streams_.erase(old);
  }
  if (reads_no_joint(*s) && config_.joint()) {
    // The stream's first frame would be this configuration, whose outgoing
    // voters a version-1 build ignores. Version-1 builds only check its
    // cluster id, so this is caution (a joint phase is short): a build that
    // installed it would count votes and commits by the new voters alone.
    // A snapshot's configuration (begin_snapshot_send) is installed.
    return end_old_stream(s, fmt::format("the joint configuration {}", config_.index));
  }
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
  if (reads_no_joint(*s) && meta->config.joint())
    return end_old_stream(s, fmt::format("snapshot {}, taken in a joint configuration", meta->index));
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
  std::uint64_t unreadable = 0;  // the first joint-consensus entry, for a version-1 follower
  auto r = visit_entries(s->next, last, o_.stream_batch_bytes_max, [&](const LogEntry& e) {
    if (unreadable != 0) return;
    if (reads_no_joint(*s) &&
        (e.type == LogEntryType::joint_voters || e.type == LogEntryType::leave_joint)) {
      unreadable = e.index;
      return;
    }
    encode_entry(s->buf, e);
    batch_last = e.index;
  });
  if (!r) return fatal("reading entries to stream", r.error());
  // The entries before it go; the stream ends when it is next in line.
  if (unreadable == s->next) return end_old_stream(s, fmt::format("the joint-consensus entry {}", unreadable));
  if (commit_ > s->sent_commit) {
    detail::encode_frame(s->buf, detail::kFrameCommit, commit_, term_, {});
    s->sent_commit = commit_;
  }
  s->buf_last = batch_last;
  send_buf(s, true);
}

void Log::Impl::end_old_stream(const std::shared_ptr<OutStream>& s, std::string_view what) {
  if (auto p = peers_.find(s->peer); p == peers_.end() || !p->second.protocol_logged) {
    if (p != peers_.end()) p->second.protocol_logged = true;  // said once per leadership: it asks again and again
    logf("node {} reads protocol version {}, without joint consensus, and cannot follow past {}: upgrade it",
         s->peer, s->protocol, what);
  }
  s->alive = false;
  s->writer->finish(make_error_code(errc::unsupported_protocol));
  if (auto it = out_streams_.find(s->peer); it != out_streams_.end() && it->second == s) out_streams_.erase(it);
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

}  // namespace raft
