// raft::HTTPTransport: the client side of DESIGN 4 on Boost.Beast.
//
// Each call is a Call object on the strand of the connection it uses:
// take a pooled keep-alive connection for the peer (or connect), write the
// request, read the reply under one deadline, give the connection back if
// both sides allow keep-alive. A pooled connection the peer closed while it
// sat idle fails at first use; that case is retried once on a fresh
// connection (nothing reached the server).
//
// A stream (read_from) has its own connection, never pooled: the reply body
// is parsed into a fixed buffer (buffer_body) and each filled piece goes to
// on_data; nothing more is read from the socket until the consumer calls
// more(), so TCP flow control carries the consumer's pace back to the leader.
#include "raft/http.hpp"

#include "http/common.hpp"
#include "http/reply.hpp"
#include "http/tls.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url.hpp>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace raft {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using namespace http_detail;

namespace {

using Response = ClientResponse;

// A connection to one peer: plain TCP, or TLS when `tls` is given (an
// https:// target).
struct Conn {
  Conn(net::any_io_executor ex, std::shared_ptr<TLSContext> tls)
      : tls_ctx(std::move(tls)),
        stream(tls_ctx ? AnyStream(beast::tcp_stream(net::make_strand(ex)), *tls_ctx)
                       : AnyStream(beast::tcp_stream(net::make_strand(ex)))) {}
  // The context the TLS stream was made with, kept while the stream lives
  // (set_tls may replace the transport's meanwhile). Declared first:
  // destroyed after the stream.
  std::shared_ptr<TLSContext> tls_ctx;
  AnyStream stream;
  beast::flat_buffer buffer;
};

// A stream that carries acks (kHeaderAckChannel). try_ack() runs on any
// thread: true if the stream took the ack (then `h` has been moved from and
// runs once the record is on the socket, or with the write's error).
struct AckChannel {
  virtual ~AckChannel() = default;
  virtual bool try_ack(const AckRequest& req, Handler_fn<void>& h) = 0;
};

std::string query(std::initializer_list<std::pair<std::string_view, std::string>> kv) {
  boost::urls::url u;
  for (auto& [k, v] : kv) u.params().append({k, v});
  return std::string(u.encoded_query());
}

}  // namespace

struct HTTPTransport::Impl : std::enable_shared_from_this<HTTPTransport::Impl> {
  Impl(net::any_io_executor e, HTTPTransportOptions o) : ex(std::move(e)), opts(o), tls(opts.tls) {}

  net::any_io_executor ex;
  HTTPTransportOptions opts;
  std::atomic<std::uint64_t> cluster_id{0};
  std::atomic<std::uint64_t> opened{0};

  std::mutex mu;
  std::shared_ptr<TLSContext> tls;  // guarded by mu: set_tls replaces it
  bool closed = false;
  std::unordered_map<std::string, std::vector<std::unique_ptr<Conn>>> idle;

  std::unique_ptr<Conn> take(const std::string& key) {
    std::lock_guard lk(mu);
    auto it = idle.find(key);
    if (it == idle.end() || it->second.empty()) return nullptr;
    auto c = std::move(it->second.back());
    it->second.pop_back();
    return c;
  }
  void give(const std::string& key, std::unique_ptr<Conn> c) {
    std::lock_guard lk(mu);
    auto& v = idle[key];
    if (closed || v.size() >= opts.max_idle_connections_per_host) return;  // c closes as it dies
    if (c->tls_ctx && c->tls_ctx != tls) return;  // made before set_tls: not kept
    v.push_back(std::move(c));
  }
  void close_idle() {
    std::lock_guard lk(mu);
    closed = true;
    idle.clear();
  }

  // Streams whose leader agreed to take acks on them, by the URL they were
  // opened to (the URL the Log sends its acks to). The newest stream wins.
  std::unordered_map<std::string, std::weak_ptr<AckChannel>> ack_channels;
  void add_channel(const std::string& url, std::weak_ptr<AckChannel> c) {
    std::lock_guard lk(mu);
    ack_channels[url] = std::move(c);
  }
  void remove_channel(const std::string& url, const AckChannel* c) {
    std::lock_guard lk(mu);
    auto it = ack_channels.find(url);
    if (it == ack_channels.end()) return;
    auto cur = it->second.lock();
    if (!cur || cur.get() == c) ack_channels.erase(it);
  }
  std::shared_ptr<AckChannel> channel_for(const std::string& url) {
    std::lock_guard lk(mu);
    auto it = ack_channels.find(url);
    return it == ack_channels.end() ? nullptr : it->second.lock();
  }

  void ack_by_post(const std::string& url, const AckRequest& req, Handler_fn<void> h);

  // Connects `c` to t (and, for https, completes the TLS handshake);
  // on_done(ec) on c's strand.
  void connect(Conn& c, const Target& t, std::function<void(beast::error_code)> on_done);
  void handshake(Conn& c, const Target& t, std::function<void(beast::error_code)> on_done);
  // The TLS context for t (null for plain http), or tls_error when t is
  // https and there is no client context to speak it with.
  result<std::shared_ptr<TLSContext>> tls_for(const Target& t) {
    if (!t.tls) return std::shared_ptr<TLSContext>();
    std::lock_guard lk(mu);
    if (!tls || tls->is_server()) return make_error_code(errc::tls_error);
    return tls;
  }
  // A TLS stream in flight, which set_tls asks to check its server again.
  struct Rechecked {
    virtual ~Rechecked() = default;
    virtual void recheck(std::shared_ptr<TLSContext> now) = 0;
  };
  std::vector<std::weak_ptr<Rechecked>> tls_streams;  // guarded by mu
  // Registers a stream made with `made_with`; if set_tls has replaced that
  // meanwhile, the stream is checked against the new context at once.
  void add_tls_stream(const std::shared_ptr<Rechecked>& s, const std::shared_ptr<TLSContext>& made_with) {
    std::shared_ptr<TLSContext> now;
    {
      std::lock_guard lk(mu);
      std::erase_if(tls_streams, [](const auto& w) { return w.expired(); });
      tls_streams.push_back(s);
      if (tls != made_with) now = tls;
    }
    if (now) s->recheck(std::move(now));
  }

  void set_tls(std::shared_ptr<TLSContext> c) {
    std::vector<std::shared_ptr<Rechecked>> streams;
    {
      std::lock_guard lk(mu);
      tls = c;
      // Idle https connections were set up with the old certificates: new
      // calls handshake anew. (Calls in flight keep theirs.)
      for (auto& [key, conns] : idle)
        if (key.rfind("https|", 0) == 0) conns.clear();
      for (auto& w : tls_streams)
        if (auto sp = w.lock()) streams.push_back(std::move(sp));
    }
    // Streams last; a stream's server that `c` would refuse is cut.
    for (auto& sp : streams) sp->recheck(c);
  }

  // Protocol versions (raft/http.hpp): by target key, the older version a
  // peer's refusal named, spoken to it until `until`; then
  // kProtocolVersion is tried again.
  struct Fallback {
    std::uint32_t version = kProtocolVersion;
    std::chrono::steady_clock::time_point until;
  };
  std::unordered_map<std::string, Fallback> fallbacks;  // guarded by mu
  std::atomic<bool> any_fallback{false};  // once set, stays: the common case (one build) skips the lock
  std::uint32_t version_for(const std::string& key) {
    if (!any_fallback.load(std::memory_order_acquire)) return kProtocolVersion;
    std::lock_guard lk(mu);
    auto it = fallbacks.find(key);
    if (it == fallbacks.end()) return kProtocolVersion;
    if (std::chrono::steady_clock::now() < it->second.until) return it->second.version;
    fallbacks.erase(it);
    return kProtocolVersion;
  }
  // The peer's connection failed or closed: it may be restarting, perhaps
  // on a newer build, so its next call tries kProtocolVersion first.
  void forget_version(const std::string& key) {
    if (!any_fallback.load(std::memory_order_acquire)) return;
    std::lock_guard lk(mu);
    fallbacks.erase(key);
  }
  void fall_back(const std::string& key, std::uint32_t v) {
    std::lock_guard lk(mu);
    fallbacks[key] = {v, std::chrono::steady_clock::now() + std::chrono::milliseconds(opts.protocol_recheck_ms)};
    any_fallback.store(true, std::memory_order_release);
  }

  // One call in the version this peer is spoken to (or `version`); a
  // refusal that names an older version we speak is repeated in that one.
  void exchange(std::string url, std::string path_query, http::verb verb,
                std::function<void(std::error_code, Response)> done, std::uint32_t version = 0);
};

namespace {

// One request/response exchange.
class Call : public std::enable_shared_from_this<Call> {
 public:
  Call(std::shared_ptr<HTTPTransport::Impl> t, Target target, http::request<http::empty_body> req,
       std::function<void(std::error_code, Response)> done)
      : t_(std::move(t)), target_(std::move(target)), req_(std::move(req)), done_(std::move(done)) {}

  void start() {
    conn_ = t_->take(target_.key);
    if (conn_) {
      reused_ = true;
      net::dispatch(conn_->stream.get_executor(), [self = shared_from_this()] { self->do_write(); });
    } else {
      do_connect();
    }
  }

 private:
  void do_connect() {
    reused_ = false;
    auto tls = t_->tls_for(target_);
    if (!tls) {
      auto d = std::move(done_);
      return net::post(t_->ex, [d = std::move(d), e = tls.error()] { d(e, Response{}); });
    }
    conn_ = std::make_unique<Conn>(t_->ex, *tls);
    net::dispatch(conn_->stream.get_executor(), [self = shared_from_this()] {
      self->t_->connect(*self->conn_, self->target_, [self](beast::error_code ec) {
        if (ec) return self->fail(ec);
        self->do_write();
      });
    });
  }

  void do_write() {
    conn_->stream.tcp().expires_after(std::chrono::milliseconds(t_->opts.request_timeout_ms));
    conn_->stream.visit([&](auto& s) {
      http::async_write(s, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) return self->retry_or_fail(ec);
        self->do_read();
      });
    });
  }

  void do_read() {
    parser_.emplace();
    set_reply_limits(*parser_, t_->opts);
    conn_->stream.visit([&](auto& s) {
      http::async_read(s, conn_->buffer, *parser_,
                       [self = shared_from_this()](beast::error_code ec, std::size_t n) { self->on_read(ec, n); });
    });
  }

  void on_read(beast::error_code ec, std::size_t n) {
    if (ec) {
      // A pooled connection closed by the peer while idle: nothing was read
      // (an interim reply means the request did arrive: no retry then).
      if (n == 0 && !interim_ &&
          (ec == http::error::end_of_stream || ec == net::error::connection_reset || ec == net::error::eof ||
           ec == net::ssl::error::stream_truncated))
        return retry_or_fail(ec);
      return fail(ec);
    }
    // An interim 1xx is not the reply: read on, under the same deadline.
    if (is_interim(parser_->get().result_int())) {
      interim_ = true;
      return do_read();
    }
    Response res = parser_->release();
    conn_->stream.tcp().expires_never();
    if (reusable_after(res, conn_->buffer.size())) t_->give(target_.key, std::move(conn_));
    auto d = std::move(done_);
    d({}, std::move(res));
  }

  void retry_or_fail(beast::error_code ec) {
    t_->forget_version(target_.key);
    if (reused_ && !retried_ && ec != beast::error::timeout) {
      retried_ = true;
      conn_.reset();
      return do_connect();
    }
    fail(ec);
  }

  void fail(beast::error_code ec) {
    t_->forget_version(target_.key);
    conn_.reset();
    auto d = std::move(done_);
    d(map_net_error(ec), Response{});
  }

  std::shared_ptr<HTTPTransport::Impl> t_;
  Target target_;
  http::request<http::empty_body> req_;
  std::function<void(std::error_code, Response)> done_;
  std::unique_ptr<Conn> conn_;
  std::optional<ReplyParser> parser_;
  bool reused_ = false;
  bool retried_ = false;
  bool interim_ = false;  // a 1xx was read: the peer has the request
};

}  // namespace

void HTTPTransport::Impl::connect(Conn& c, const Target& t, std::function<void(beast::error_code)> on_done) {
  ++opened;
  auto& ts = c.stream.tcp();
  ts.expires_after(std::chrono::milliseconds(opts.connect_timeout_ms));
  auto finish = [this, &c, &t, on_done](beast::error_code ec) {
    if (!ec) {
      beast::error_code ignored;
      c.stream.tcp().socket().set_option(tcp::no_delay(true), ignored);
      if (c.stream.is_tls()) return handshake(c, t, on_done);  // under the same deadline
    }
    c.stream.tcp().expires_never();
    on_done(ec);
  };
  beast::error_code ec;
  auto addr = net::ip::make_address(t.host, ec);
  std::uint16_t port = 0;
  if (auto p = parse_u64(t.port); p && *p <= 65535) port = static_cast<std::uint16_t>(*p);
  if (!ec) {
    ts.async_connect(tcp::endpoint(addr, port), [finish](beast::error_code e) { finish(e); });
    return;
  }
  // A host name: Asio's resolver (which may use a helper thread of its own).
  auto resolver = std::make_shared<tcp::resolver>(c.stream.get_executor());
  resolver->async_resolve(t.host, t.port,
                          [&ts, finish, resolver](beast::error_code e, tcp::resolver::results_type r) {
                            if (e) return finish(e);
                            ts.async_connect(r, [finish](beast::error_code e2, const tcp::endpoint&) { finish(e2); });
                          });
}

void HTTPTransport::Impl::handshake(Conn& c, const Target& t, std::function<void(beast::error_code)> on_done) {
  auto& s = c.stream.tls();
  beast::error_code ignored;
  net::ip::make_address(t.host, ignored);
  // SNI names a host, never an address (RFC 6066 3).
  if (ignored && !SSL_set_tlsext_host_name(s.native_handle(), t.host.c_str()))
    return net::post(c.stream.get_executor(), [on_done] { on_done(net::error::invalid_argument); });
  if (c.tls_ctx->impl().verify_peer_name) s.set_verify_callback(net::ssl::host_name_verification(t.host));
  s.async_handshake(net::ssl::stream_base::client, [&c, on_done](beast::error_code ec) {
    c.stream.tcp().expires_never();
    on_done(ec);
  });
}

void HTTPTransport::Impl::exchange(std::string url, std::string path_query, http::verb verb,
                                   std::function<void(std::error_code, Response)> done, std::uint32_t version) {
  auto t = parse_target(url);
  if (!t) {
    return net::post(ex, [done = std::move(done), e = t.error()] { done(e, Response{}); });
  }
  if (version == 0) version = version_for(t->key);
  http::request<http::empty_body> req{verb, t->base + path_query, 11};
  req.set(http::field::host, t->host_header());
  req.set(http::field::user_agent, "raft-http");
  req.set(kHeaderProtocol, std::to_string(version));
  if (auto cid = cluster_id.load(); cid != 0) req.set(kHeaderClusterID, std::to_string(cid));
  if (!opts.auth_token.empty()) req.set(http::field::authorization, std::string(kBearerPrefix) + opts.auth_token);
  req.keep_alive(true);
  req.prepare_payload();
  // A peer of an older build refuses this version and names its own: say
  // it again in that one (each step is to a strictly older version).
  auto repeat = [self = shared_from_this(), url = std::move(url), path_query = std::move(path_query), verb, version,
                 key = t->key, done = std::move(done)](std::error_code ec, Response res) mutable {
    if (!ec) {
      if (auto older = fallback_version(res, version)) {
        self->fall_back(key, *older);
        return self->exchange(std::move(url), std::move(path_query), verb, std::move(done), *older);
      }
    }
    done(ec, std::move(res));
  };
  std::make_shared<Call>(shared_from_this(), std::move(*t), std::move(req), std::move(repeat))->start();
}

// ---------------------------------------------------------------- public calls

HTTPTransport::HTTPTransport(net::any_io_executor ex, HTTPTransportOptions opts)
    : impl_(std::make_shared<Impl>(std::move(ex), opts)) {}

HTTPTransport::~HTTPTransport() { impl_->close_idle(); }

void HTTPTransport::set_cluster_id(std::uint64_t id) { impl_->cluster_id.store(id); }

result<void> HTTPTransport::set_tls(std::shared_ptr<TLSContext> tls) {
  if (!tls) return make_error_code(errc::invalid_argument);
  if (tls->is_server()) return make_error_code(errc::tls_error);
  impl_->set_tls(std::move(tls));
  return {};
}

std::uint64_t HTTPTransport::connections_opened() const noexcept { return impl_->opened.load(); }

namespace {
// join/leave: follow X-Raft-Leader-URL hints (421/307) up to max_redirects.
void redirecting(std::shared_ptr<HTTPTransport::Impl> t, std::string url, std::string pq, int hops_left,
                 std::function<void(std::error_code, Response)> done) {
  auto tt = t;
  tt->exchange(url, pq, http::verb::post,
               [t = std::move(t), pq, hops_left, done = std::move(done)](std::error_code ec, Response res) mutable {
                 if (!ec) {
                   if (auto next = redirect_target(res)) {
                     if (hops_left <= 0) return done(make_error_code(errc::not_leader), Response{});
                     return redirecting(std::move(t), *next, std::move(pq), hops_left - 1, std::move(done));
                   }
                 }
                 done(ec, std::move(res));
               });
}
}  // namespace

void HTTPTransport::join(const std::string& url, const JoinRequest& req, Handler_fn<JoinResponse> h) {
  std::string pq = "/raft/join?" + query({{"url", req.url}});
  if (req.previous_id != 0) pq += "&" + query({{"id", std::to_string(req.previous_id)}});
  if (req.join_token != 0) pq += "&" + query({{"joinToken", std::to_string(req.join_token)}});
  if (req.learner) pq += "&learner=1";  // absent: a voter
  if (req.promote) pq += "&promote=1";
  redirecting(impl_, url, std::move(pq), impl_->opts.max_redirects,
              [h = std::move(h)](std::error_code ec, Response res) {
                if (ec) return h(ec);
                h(decode_join(res));
              });
}

void HTTPTransport::leave(const std::string& url, std::uint64_t id, Handler_fn<void> h) {
  redirecting(impl_, url, "/raft/leave?" + query({{"id", std::to_string(id)}}), impl_->opts.max_redirects,
              [h = std::move(h)](std::error_code ec, Response res) {
                if (ec) return h(ec);
                h(decode_empty(res));
              });
}

void HTTPTransport::heartbeat(const std::string& url, const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h) {
  std::string pq = "/raft/heartbeat?" + query({{"term", std::to_string(req.term)},
                                               {"commitIndex", std::to_string(req.commit_index)},
                                               {"leaderID", std::to_string(req.leader_id)}});
  if (!req.leader_url.empty()) pq += "&" + query({{"leaderURL", req.leader_url}});
  if (req.timeout_now) pq += "&timeoutNow=1";  // absent: a plain heartbeat
  impl_->exchange(url, std::move(pq), http::verb::post, [h = std::move(h)](std::error_code ec, Response res) {
    if (ec) return h(ec);
    h(decode_heartbeat(res));
  });
}

void HTTPTransport::read_index(const std::string& url, const ReadIndexRequest& req, Handler_fn<std::uint64_t> h) {
  std::string pq = "/raft/readIndex";
  if (req.timeout_ms != 0) pq += "?" + query({{"timeoutMs", std::to_string(req.timeout_ms)}});
  // Follows a leader hint: any leader's confirmed index is a valid answer.
  redirecting(impl_, url, std::move(pq), impl_->opts.max_redirects,
              [h = std::move(h)](std::error_code ec, Response res) {
                if (ec) return h(ec);
                h(decode_read_index(res));
              });
}

void HTTPTransport::request_vote(const std::string& url, const VoteRequest& req, Handler_fn<VoteResponse> h) {
  std::string pq = "/raft/vote?" + query({{"term", std::to_string(req.term)},
                                          {"candidateID", std::to_string(req.candidate_id)},
                                          {"lastLogIndex", std::to_string(req.last_log_index)},
                                          {"lastLogTerm", std::to_string(req.last_log_term)}});
  if (req.pre_vote) pq += "&preVote=1";  // absent: a real vote (the seed's request)
  if (req.transfer) pq += "&transfer=1";
  impl_->exchange(url, std::move(pq), http::verb::post, [h = std::move(h)](std::error_code ec, Response res) {
    if (ec) return h(ec);
    h(decode_vote(res));
  });
}

void HTTPTransport::ack(const std::string& url, const AckRequest& req, Handler_fn<void> h) {
  if (auto c = impl_->channel_for(url); c && c->try_ack(req, h)) return;
  impl_->ack_by_post(url, req, std::move(h));
}

void HTTPTransport::Impl::ack_by_post(const std::string& url, const AckRequest& req, Handler_fn<void> h) {
  std::string pq = "/raft/ack?" + query({{"id", std::to_string(req.id)},
                                         {"term", std::to_string(req.term)},
                                         {"index", std::to_string(req.index)}});
  if (!req.url.empty()) pq += "&" + query({{"url", req.url}});
  exchange(url, std::move(pq), http::verb::post, [h = std::move(h)](std::error_code ec, Response res) {
    if (ec) return h(ec);
    h(decode_empty(res));
  });
}

// ---------------------------------------------------------------- stream

namespace {

// Opens a stream in protocol `version` (0: the one this peer is spoken to).
std::shared_ptr<StreamHandle> open_stream(const std::shared_ptr<HTTPTransport::Impl>& impl, const std::string& url,
                                          const StreamRequest& req, StreamCallbacks cb, std::uint32_t version);

class StreamCall final : public StreamHandle,
                         public AckChannel,
                         public HTTPTransport::Impl::Rechecked,
                         public std::enable_shared_from_this<StreamCall> {
 public:
  StreamCall(std::shared_ptr<HTTPTransport::Impl> t, Target target, std::shared_ptr<TLSContext> tls,
             http::request<http::empty_body> req, StreamCallbacks cb, std::string url, StreamRequest sreq,
             std::uint32_t version)
      : version_(version),
        t_(std::move(t)),
        target_(std::move(target)),
        req_(std::move(req)),
        cb_(std::move(cb)),
        url_(std::move(url)),
        sreq_(std::move(sreq)),
        conn_(t_->ex, std::move(tls)),
        timer_(conn_.stream.get_executor()),
        ack_timer_(conn_.stream.get_executor()),
        buf_(stream_buffer_bytes(t_->opts)) {}

  bool try_ack(const AckRequest& req, Handler_fn<void>& h) override {
    // Acks of another identity (a node that changed id) go by POST, where
    // the leader checks them on their own.
    if (req.id != sreq_.id || req.url != sreq_.url) return false;
    if (ack_busy_.exchange(true)) return false;  // one record at a time; a second ack goes by POST
    net::post(conn_.stream.get_executor(), [self = shared_from_this(), req, h = std::move(h)]() mutable {
      self->write_ack(req, std::move(h));
    });
    return true;
  }

  void start() {
    net::dispatch(conn_.stream.get_executor(), [self = shared_from_this()] {
      self->t_->connect(self->conn_, self->target_, [self](beast::error_code ec) {
        if (ec || self->canceled_ || self->untrusted_) return self->end(map_net_error(ec, self->canceled_));
        self->do_write();
      });
    });
  }

  void cancel() override {
    net::post(conn_.stream.get_executor(), [self = shared_from_this()] {
      if (self->next_) return self->next_->cancel();
      if (self->ended_) return;
      self->canceled_ = true;
      self->timer_.cancel();
      self->conn_.stream.close();
      // Waiting for more(): no operation will complete to report it.
      if (self->waiting_more_) self->end(make_error_code(errc::canceled));
    });
  }

  void recheck(std::shared_ptr<TLSContext> now) override {
    net::post(conn_.stream.get_executor(), [self = shared_from_this(), now = std::move(now)] {
      if (self->ended_ || self->canceled_ || !self->conn_.stream.is_tls()) return;
      if (peer_still_trusted(self->conn_.stream.tls().native_handle(), *now)) return;
      // As cancel(), but the stream ends with tls_error (end()).
      self->untrusted_ = true;
      self->timer_.cancel();
      self->conn_.stream.close();
      if (self->waiting_more_) self->end({});
    });
  }

 private:
  void do_write() {
    conn_.stream.tcp().expires_after(std::chrono::milliseconds(t_->opts.request_timeout_ms));
    conn_.stream.visit([&](auto& s) {
      http::async_write(s, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) return self->end(map_net_error(ec, self->canceled_));
        self->do_read_header();
      });
    });
  }

  void do_read_header() {
    set_stream_limits(parser_, t_->opts);
    conn_.stream.visit([&](auto& s) {
      http::async_read_header(s, conn_.buffer, parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) return self->end(map_net_error(ec, self->canceled_));
        self->on_header();
      });
    });
  }

  void on_header() {
    conn_.stream.tcp().expires_never();
    // flat_buffer reads only its free capacity (512 bytes when empty): give
    // it room so one socket read can carry a whole large frame.
    conn_.buffer.reserve(buf_.size());
    if (auto older = fallback_version(parser_.get(), version_)) {
      // A leader of an older build: the same request in its version, on a
      // new connection, with these callbacks; this call ends unheard, and
      // cancel() goes on to the new one.
      t_->fall_back(target_.key, *older);
      if (!canceled_ && !untrusted_) {
        auto cb = std::move(cb_);
        cb_ = {};
        end({});
        next_ = open_stream(t_, url_, sreq_, std::move(cb), *older);
        return;
      }
    }
    if (auto e = stream_head_error(parser_.get())) return end(e);
    // The leader repeats the header only if it reads acks on this
    // connection; until it has, nothing but the request may be sent on it.
    if (req_.count(kHeaderAckChannel) != 0) {
      auto f = parser_.get().find(kHeaderAckChannel);
      if (f != parser_.get().end() && f->value() == "1") t_->add_channel(url_, weak_from_this());
    }
    do_read_body();
  }

  // On the strand.
  void write_ack(const AckRequest& req, Handler_fn<void> h) {
    if (ended_) {  // the stream is gone: the ack still goes, as a request
      ack_busy_ = false;
      return t_->ack_by_post(url_, req, std::move(h));
    }
    encode_ack_record(req.term, req.index, ack_record_);
    // The leader reads acks as they come, so this write only waits for a
    // socket buffer; one that does not drain means the leader is stuck.
    // (A timer that fired as the write completed finds a newer generation.)
    const std::uint64_t gen = ++ack_gen_;
    ack_timer_.expires_after(std::chrono::milliseconds(t_->opts.request_timeout_ms));
    ack_timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
      if (!ec && self->ack_gen_ == gen) self->end(make_error_code(errc::timeout));
    });
    conn_.stream.visit_raw([&](auto& s) {
      net::async_write(s, net::buffer(ack_record_),
                       [self = shared_from_this(), h = std::move(h)](beast::error_code ec, std::size_t) mutable {
                         ++self->ack_gen_;
                         self->ack_timer_.cancel();
                         self->ack_busy_ = false;
                         if (ec) return h(map_net_error(ec, self->canceled_));
                         h({});
                       });
    });
  }

  void do_read_body() {
    if (ended_) return;
    if (canceled_) return end(make_error_code(errc::canceled));
    waiting_more_ = false;
    if (parser_.is_done()) return end({});
    parser_.get().body().data = buf_.data();
    parser_.get().body().size = buf_.size();
    parser_.get().body().more = true;
    if (t_->opts.stream_idle_timeout_ms > 0) {
      timer_.expires_after(std::chrono::milliseconds(t_->opts.stream_idle_timeout_ms));
      timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (ec) return;
        self->idle_expired_ = true;
        self->conn_.stream.close();
      });
    }
    conn_.stream.visit([&](auto& s) {
      http::async_read_some(s, conn_.buffer, parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_body(ec); });
    });
  }

  void on_body(beast::error_code ec) {
    timer_.cancel();
    if (ec == http::error::need_buffer) ec = {};
    std::size_t got = buf_.size() - parser_.get().body().size;
    if (ec) {
      if (idle_expired_) return end(make_error_code(errc::timeout));
      return end(map_net_error(ec, canceled_));
    }
    if (got == 0) return do_read_body();
    waiting_more_ = true;
    // `more` owns the call: the bytes handed out live in buf_, and the
    // consumer may read them until it calls `more` (StreamCallbacks).
    auto ex = conn_.stream.get_executor();
    auto more = [self = shared_from_this(), ex] { net::post(ex, [self] { self->do_read_body(); }); };
    cb_.on_data(std::string_view(buf_.data(), got), std::move(more));
  }

  void end(std::error_code ec) {
    if (ended_) return;
    if (untrusted_) ec = make_error_code(errc::tls_error);  // whatever the cut socket's operation said
    // The connection failed (not a refusal): the peer may be restarting.
    if (ec == errc::transport_error || ec == errc::timeout) t_->forget_version(target_.key);
    ended_ = true;
    waiting_more_ = false;
    t_->remove_channel(url_, this);
    timer_.cancel();
    ack_timer_.cancel();
    conn_.stream.close();
    auto on_end = std::move(cb_.on_end);
    cb_ = {};
    if (on_end) on_end(ec);
  }

  std::uint32_t version_;  // the protocol version req_ is in
  std::shared_ptr<StreamHandle> next_;  // strand only: the call in an older version that replaced this one
  std::shared_ptr<HTTPTransport::Impl> t_;
  Target target_;
  http::request<http::empty_body> req_;
  StreamCallbacks cb_;
  std::string url_;
  StreamRequest sreq_;
  Conn conn_;
  net::steady_timer timer_;
  net::steady_timer ack_timer_;
  std::atomic<bool> ack_busy_{false};
  std::uint64_t ack_gen_ = 0;  // strand only: bumped when an ack write starts and ends
  char ack_record_[kAckRecordBytes];
  StreamReplyParser parser_;
  std::vector<char> buf_;
  bool ended_ = false;
  bool canceled_ = false;
  bool waiting_more_ = false;
  bool idle_expired_ = false;
  bool untrusted_ = false;  // recheck() cut it: the server is one set_tls's context refuses
};

std::shared_ptr<StreamHandle> open_stream(const std::shared_ptr<HTTPTransport::Impl>& impl, const std::string& url,
                                          const StreamRequest& req, StreamCallbacks cb, std::uint32_t version) {
  auto t = parse_target(url);
  auto tls = t ? impl->tls_for(*t) : result<std::shared_ptr<TLSContext>>(t.error());
  if (!tls) {
    struct Dead final : StreamHandle {
      void cancel() override {}
    };
    const std::error_code e = tls.error();
    net::post(impl->ex, [on_end = std::move(cb.on_end), e] {
      if (on_end) on_end(e);
    });
    return std::make_shared<Dead>();
  }
  std::string pq = "/raft/stream?" + query({{"id", std::to_string(req.id)},
                                            {"term", std::to_string(req.term)},
                                            {"index", std::to_string(req.index)},
                                            {"logTerm", std::to_string(req.log_term)}});
  if (!req.url.empty()) pq += "&" + query({{"url", req.url}});
  http::request<http::empty_body> r{http::verb::get, t->base + pq, 11};
  r.set(http::field::host, t->host_header());
  r.set(http::field::user_agent, "raft-http");
  if (version == 0) version = impl->version_for(t->key);
  r.set(kHeaderProtocol, std::to_string(version));
  if (auto cid = impl->cluster_id.load(); cid != 0) r.set(kHeaderClusterID, std::to_string(cid));
  if (!impl->opts.auth_token.empty())
    r.set(http::field::authorization, std::string(kBearerPrefix) + impl->opts.auth_token);
  // Acks on this connection are credited to the stream's node, so they are
  // asked for only by a follower that names itself (its URL).
  if (impl->opts.ack_channel && !req.url.empty()) r.set(kHeaderAckChannel, "1");
  r.keep_alive(true);
  auto made_with = *tls;
  auto call = std::make_shared<StreamCall>(impl, std::move(*t), std::move(*tls), std::move(r), std::move(cb), url, req, version);
  if (made_with) impl->add_tls_stream(call, made_with);
  call->start();
  return call;
}

}  // namespace

std::shared_ptr<StreamHandle> HTTPTransport::read_from(const std::string& url, const StreamRequest& req,
                                                       StreamCallbacks cb) {
  return open_stream(impl_, url, req, std::move(cb), 0);
}

}  // namespace raft
