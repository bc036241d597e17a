// Fuzz target: the Server's socket loop (src/http/server.cpp, Session). One
// real raft::Server on 127.0.0.1 (made once, reused by every input) serves a
// fake Service that records its calls; each input is one TCP connection.
// Everything, client included, runs on one io_context in this thread, so an
// input replays the same way every time.
//
// Input: byte 0 flags, byte 1 split seed, the rest is the bytes the client
// writes, in 1 to 8 pieces cut where the seed says; after each piece the
// io_context runs until nothing is ready (so the server mostly reads piece by
// piece) and acks the Service holds are answered.
//   byte 0 bits 0-1: stream mode: 0 the Service writes one chunk at once and
//                    the harness ends the stream cleanly at the end, 1 it
//                    refuses the stream (finish(not_leader) before any
//                    write), 2 one chunk then finish(io_error), 3 nothing
//                    until the end, then a clean end;
//          bit 2:    the Service holds acks (answered after each piece);
//          bits 3-4: refuse the n-th ack (stale_term), 0 = never;
//          bit 5:    half-close (shutdown send) after the last piece;
//          bit 6:    plain requests are answered with an error
//                    (not_leader / no_leader / io_error by the call).
//
// A model reads the same bytes as the Server would (Beast's request_parser
// with the Server's limits, one request at a time, the Handler's routing to
// tell a /raft/stream go-ahead from a plain answer): the requests before the
// first bad one, where the stream starts and whether it carries acks, and
// the ack records (0xA1, term, index, 17 bytes each) written after the stream
// request, up to the first malformed one. Where Beast's verdict depends on
// read sizes the model says so (README: a header near the limit, a malformed
// header split across reads) and expects less.
//
// Invariants beyond "no crash":
// * everything the server writes parses as a sequence of HTTP/1.x responses
//   (Beast's response_parser; a HEAD request's answer has no body) with only
//   documented statuses, an X-Raft-Error on every error; a response keeps
//   the connection alive exactly when its request asked for it, and nothing
//   follows a response that does not;
// * one response per complete request, in order, up to the first bad
//   request (then one 400/413/431 and a close), the first request that
//   closes, or the stream request; nothing more, and the connection stays
//   open when none of these ended it (fewer only when the connection was
//   reset under them);
// * a stream request gets either the stream (200, chunked, the Service's
//   bytes, X-Raft-Ack-Channel: 1 in the head exactly when the request asked
//   for the channel) or the Service's refusal (421, close); a stream the
//   harness ends cleanly arrives whole (last chunk) unless the connection
//   was cut (malformed ack bytes, refused ack, half-close);
// * acks reach the Service only on a channel stream, credited to the
//   stream's id and URL, and are a subsequence (by position) of the model's
//   records: never invented, never reordered, none after the first
//   malformed record; after a refused ack none follows; a malformed record
//   and a refused ack each close the connection; with every ack accepted
//   and the connection left open, the last record is delivered (coalescing
//   skips, never loses the newest);
// * every connection is gone once the client closed (connection_count()).
//
// HTTP_SERVER_FUZZ_DEBUG=1 prints the pieces, the model, what came back and
// the acks.
#include "fuzz_util.hpp"
#include "http/common.hpp"
#include "http/handler.hpp"
#include "raft/http.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace raft;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using http_detail::AckRecord;
using http_detail::Reply;
using http_detail::Request;
using Clock = std::chrono::steady_clock;

ServerOptions server_options() {
  ServerOptions o;
  // Small limits, so that short inputs reach them.
  o.header_limit_bytes = 1024;
  o.body_limit_bytes = 256;
  o.max_connections = 8;
  // Longer than an input may take: no server timeout fires during one.
  o.idle_timeout_ms = 10'000;
  o.read_timeout_ms = 10'000;
  o.write_timeout_ms = 10'000;
  return o;
}

// What one input asks of the Service and the harness.
struct Flags {
  int stream_mode = 0;
  bool hold_acks = false;
  std::size_t refuse_ack = 0;  // 1-based; 0 never
  bool half_close = false;
  bool plain_errors = false;
};

const std::string kChunk = "stream bytes from the Service";

// The Service behind the Server: records everything, answers as Flags say.
class FuzzService final : public Service {
 public:
  Flags f;
  std::vector<std::string> plain_calls;
  std::vector<AckRequest> acks;
  std::deque<Handler_fn<void>> held;
  std::vector<StreamRequest> streams;
  std::shared_ptr<StreamWriter> writer;
  bool refused = false;      // an ack was refused
  std::size_t acks_after_refusal = 0;

  void reset(const Flags& flags) {
    f = flags;
    plain_calls.clear();
    acks.clear();
    held.clear();
    streams.clear();
    writer.reset();
    refused = false;
    acks_after_refusal = 0;
    channel_answers = 0;
  }

  std::uint64_t cluster_id() const override { return 0; }
  Status status() const override {
    Status s;
    s.id = 1;
    s.state = "leader";
    s.leader_url = "http://127.0.0.1:9";
    return s;
  }
  void handle_join(const JoinRequest&, Handler_fn<JoinResponse> h) override {
    plain_calls.push_back("join");
    if (f.plain_errors) return h(make_error_code(errc::not_leader));
    JoinResponse r;
    r.id = 2;
    r.leader_id = 1;
    h(r);
  }
  void handle_leave(std::uint64_t, Handler_fn<void> h) override {
    plain_calls.push_back("leave");
    if (f.plain_errors) return h(make_error_code(errc::no_leader));
    h(result<void>{});
  }
  void handle_heartbeat(const HeartbeatRequest& r, Handler_fn<HeartbeatResponse> h) override {
    plain_calls.push_back("heartbeat");
    if (f.plain_errors) return h(make_error_code(errc::io_error));
    h(HeartbeatResponse{5, r.term, {}});
  }
  void handle_vote(const VoteRequest& r, Handler_fn<VoteResponse> h) override {
    plain_calls.push_back("vote");
    if (f.plain_errors) return h(make_error_code(errc::not_leader));
    h(VoteResponse{r.term, {}});
  }
  void handle_ack(const AckRequest& r, Handler_fn<void> h) override {
    if (streams.empty()) {  // POST /raft/ack: a plain request
      plain_calls.push_back("ack");
      if (f.plain_errors) return h(make_error_code(errc::not_leader));
      return h(result<void>{});
    }
    if (refused) ++acks_after_refusal;
    acks.push_back(r);
    held.push_back(std::move(h));
    if (!f.hold_acks) answer_held();
  }
  void handle_read_index(const ReadIndexRequest&, Handler_fn<std::uint64_t> h) override {
    plain_calls.push_back("readIndex");
    if (f.plain_errors) return h(make_error_code(errc::timeout));
    h(std::uint64_t{7});
  }
  void handle_stream(const StreamRequest& r, std::shared_ptr<StreamWriter> w) override {
    streams.push_back(r);
    writer = std::move(w);
    switch (f.stream_mode) {
      case 0:
      case 2: writer->write(kChunk, [](std::error_code) {}); break;
      case 1: writer->finish(make_error_code(errc::not_leader)); break;
      default: break;
    }
  }

  // Answers the held channel acks, refusing the configured one.
  void answer_held() {
    while (!held.empty()) {
      auto h = std::move(held.front());
      held.pop_front();
      ++channel_answers;
      if (f.refuse_ack != 0 && channel_answers == f.refuse_ack) {
        refused = true;
        h(make_error_code(errc::stale_term));
      } else {
        h(result<void>{});
      }
    }
  }

 private:
  std::size_t channel_answers = 0;
};

// The model's Service: records which calls the Handler makes and never
// answers (only the Handler's own decisions matter to the model).
class ModelService final : public Service {
 public:
  std::vector<std::string> calls;
  std::uint64_t cluster_id() const override { return 0; }
  Status status() const override { return {}; }
  void handle_join(const JoinRequest&, Handler_fn<JoinResponse>) override { calls.push_back("join"); }
  void handle_leave(std::uint64_t, Handler_fn<void>) override { calls.push_back("leave"); }
  void handle_heartbeat(const HeartbeatRequest&, Handler_fn<HeartbeatResponse>) override {
    calls.push_back("heartbeat");
  }
  void handle_vote(const VoteRequest&, Handler_fn<VoteResponse>) override { calls.push_back("vote"); }
  void handle_ack(const AckRequest&, Handler_fn<void>) override { calls.push_back("ack"); }
  void handle_read_index(const ReadIndexRequest&, Handler_fn<std::uint64_t>) override { calls.push_back("readIndex"); }
  void handle_stream(const StreamRequest&, std::shared_ptr<StreamWriter>) override {}
};

struct ModelRequest {
  bool head = false;
  bool keep_alive = true;
  bool stream = false;
  bool ack_channel = false;
  StreamRequest sreq;
  std::size_t end = 0;  // offset just past the request
};

struct Model {
  std::vector<ModelRequest> reqs;  // up to and including the one that ends the exchange
  std::vector<std::string> calls;  // the Service calls they make, in order
  // How the request sequence ends: a bad request (status), the bytes
  // running out (mid-request or between requests), a request that closes,
  // or a stream.
  unsigned bad_status = 0;
  // The fault is in the header: Beast finds it at once when it has the bytes
  // in one piece, but once a read ended inside the header it waits for a
  // "\r\n\r\n" it has not scanned yet (it skips all but the last 3 bytes it
  // had, even when they held the terminator) before parsing again, so the
  // answer may never come (only a close, at EOF), or be a 431 when the
  // search runs into the header limit.
  bool bad_maybe = false;
  bool partial_tail = false;
  // From this response on nothing exact is expected: its request's header is
  // near the limit, where Beast's verdict depends on the read sizes (in one
  // piece the start line and the fields have a limit each, after a read
  // that ended in the start line the whole header has one).
  std::size_t ambiguous_at = SIZE_MAX;
  bool ambiguous() const { return ambiguous_at != SIZE_MAX; }
  // Stream with the channel: the records after the stream request, up to
  // the first malformed one.
  std::vector<AckRecord> records;
  bool bad_record = false;
  bool stream() const { return !reqs.empty() && reqs.back().stream; }
};

Model read_requests(std::string_view in, Handler& handler) {
  Model m;
  const ServerOptions o = server_options();
  std::size_t off = 0;
  while (off < in.size()) {
    std::string_view rest = in.substr(off);
    const std::size_t eoh = rest.find("\r\n\r\n");
    const std::size_t hdr = eoh == std::string_view::npos ? rest.size() : eoh + 4;
    if (!m.ambiguous() && hdr + 8 >= o.header_limit_bytes && hdr <= 2 * o.header_limit_bytes + 8)
      m.ambiguous_at = m.reqs.size();

    http::request_parser<http::string_body> p;
    p.header_limit(static_cast<std::uint32_t>(o.header_limit_bytes));
    p.body_limit(o.body_limit_bytes);
    p.eager(true);
    beast::error_code ec;
    std::size_t used = 0;
    while (used < rest.size() && !p.is_done()) {
      const std::size_t n = p.put(net::buffer(rest.data() + used, rest.size() - used), ec);
      used += n;
      if (ec == http::error::need_more) {
        ec = {};
        if (n == 0) break;
        continue;
      }
      if (ec || n == 0) break;
    }
    if (ec) {
      m.bad_status = ec == http::error::header_limit ? 431
                     : ec == http::error::body_limit || ec == http::error::buffer_overflow ? 413
                                                                                            : 400;
      m.bad_maybe = !p.is_header_done();
      return m;
    }
    if (!p.is_done()) {
      m.partial_tail = true;
      return m;
    }
    off += used;
    Request req = p.release();
    ModelRequest r;
    r.head = req.method() == http::verb::head;
    r.keep_alive = req.keep_alive();
    r.end = off;
    std::optional<Reply> reply;
    http_detail::handle_request(handler, req, [&](Reply x) { reply = std::move(x); });
    if (reply && reply->stream) {
      r.stream = true;
      r.ack_channel = reply->ack_channel;
      r.sreq = reply->sreq;
    }
    m.reqs.push_back(r);
    if (r.stream) break;
    if (!r.keep_alive) return m;
  }
  if (m.stream() && m.reqs.back().ack_channel) {
    std::size_t used = 0;
    m.bad_record = !http_detail::decode_ack_records(in.substr(off), used, [&](AckRecord a) { m.records.push_back(a); });
  }
  return m;
}

Model build_model(std::string_view in) {
  static ModelService svc;
  static Handler handler(svc);
  svc.calls.clear();
  Model m = read_requests(in, handler);
  m.calls = svc.calls;
  return m;
}

// The client's view of what came back.
struct Parsed {
  std::vector<http::response<http::string_body>> done;
  bool partial = false;  // the last response is cut short
  std::size_t partial_at = 0;  // where it starts
  std::string bad;       // bytes that are not a response (the parser's error)
};

Parsed parse_responses(std::string_view data, const std::vector<bool>& head) {
  Parsed out;
  const std::size_t total = data.size();
  while (!data.empty()) {
    out.partial_at = total - data.size();
    http::response_parser<http::string_body> p;
    p.header_limit(1 << 16);
    p.body_limit(boost::none);
    p.eager(true);
    const std::size_t i = out.done.size();
    if (i < head.size() && head[i]) p.skip(true);
    beast::error_code ec;
    while (!data.empty() && !p.is_done()) {
      const std::size_t n = p.put(net::buffer(data.data(), data.size()), ec);
      data.remove_prefix(n);
      if (ec == http::error::need_more) {
        ec = {};
        if (n == 0) break;
        continue;
      }
      if (ec) {
        out.bad = ec.message();
        return out;
      }
      if (n == 0) break;
    }
    if (!p.is_done()) {
      out.partial = true;
      return out;
    }
    out.done.push_back(p.release());
  }
  return out;
}

struct Env {
  net::io_context ioc;
  FuzzService svc;
  Handler handler{svc};
  Server server{ioc.get_executor(), handler, server_options()};
  std::uint16_t port = 0;
  Env() {
    auto p = server.listen("127.0.0.1", 0);
    FUZZ_CHECK(p.has_value(), "listen: %s", p ? "" : p.error().message().c_str());
    port = *p;
  }
};

Env& env() {
  static Env* e = new Env;  // never destroyed: sessions of the last input may still be winding down
  return *e;
}

// A client connection on the harness's io_context.
struct Client {
  explicit Client(net::io_context& ioc) : sock(ioc) {}
  ~Client() { *alive = false; }
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  tcp::socket sock;
  std::string data;
  bool closed = false;  // EOF or error from the server's side
  bool reset = false;   // ... an error rather than a clean EOF
  char buf[4096];

  void start_read() {
    sock.async_read_some(net::buffer(buf), [this, a = alive](boost::system::error_code ec, std::size_t n) {
      if (!*a) return;
      data.append(buf, n);
      if (ec) {
        closed = true;
        reset = ec != net::error::eof;
        return;
      }
      start_read();
    });
  }
};

// Runs handlers until none is ready (bounded).
void settle(net::io_context& ioc) {
  for (int i = 0; i < 10'000; ++i) {
    if (ioc.stopped()) ioc.restart();
    if (ioc.poll() == 0) return;
  }
}

// Runs the io_context until `pred` or the deadline; false on the deadline.
template <class Pred>
bool run_until(net::io_context& ioc, Clock::time_point deadline, Pred pred) {
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    if (ioc.stopped()) ioc.restart();
    ioc.run_one_for(std::chrono::milliseconds(5));
  }
  return true;
}

bool documented(unsigned st) {
  switch (st) {
    case 200: case 400: case 403: case 404: case 405: case 413: case 421: case 431: case 500: case 503: case 505:
      return true;
    default:
      return false;
  }
}

bool same_ack(const AckRequest& a, const AckRecord& r) { return a.term == r.term && a.index == r.index; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::uint8_t b0 = in.byte();
  fuzz::Rng rng(in.byte());
  Flags f;
  f.stream_mode = b0 & 3;
  f.hold_acks = (b0 & 4) != 0;
  f.refuse_ack = (b0 >> 3) & 3;
  f.half_close = (b0 & 32) != 0;
  f.plain_errors = (b0 & 64) != 0;
  const std::string_view payload = in.rest();

  Env& e = env();
  auto& ioc = e.ioc;
  auto& svc = e.svc;
  svc.reset(f);
  const Model m = build_model(payload);
  const auto deadline = Clock::now() + std::chrono::milliseconds(1000);

  Client c(ioc);
  {
    bool done = false;
    boost::system::error_code cec;
    c.sock.async_connect({net::ip::make_address("127.0.0.1"), e.port}, [&](boost::system::error_code ec) {
      cec = ec;
      done = true;
    });
    FUZZ_CHECK(run_until(ioc, deadline, [&] { return done; }) && !cec, "connect");
    boost::system::error_code ignored;
    c.sock.set_option(tcp::no_delay(true), ignored);  // no Nagle wait between pieces
    c.start_read();
  }

  // The pieces: up to 7 cut points.
  std::vector<std::size_t> cuts;
  const std::size_t ncuts = rng.below(8);
  for (std::size_t i = 0; i < ncuts && !payload.empty(); ++i) cuts.push_back(rng.below(payload.size() + 1));
  cuts.push_back(payload.size());
  std::sort(cuts.begin(), cuts.end());
  if (std::getenv("HTTP_SERVER_FUZZ_DEBUG"))
    for (std::size_t cut : cuts) std::fprintf(stderr, "cut at %zu\n", cut);
  std::size_t from = 0;
  for (std::size_t cut : cuts) {
    if (cut > from && !c.closed) {
      bool written = false;
      net::async_write(c.sock, net::buffer(payload.data() + from, cut - from),
                       [&, a = c.alive](boost::system::error_code, std::size_t) {
                         if (*a) written = true;
                       });
      // A server that stops reading (it closed, or waits for the client to
      // read) may leave the write pending; the reads keep going meanwhile.
      run_until(ioc, deadline, [&] { return written || c.closed; });
      from = cut;
    }
    settle(ioc);
    if (!svc.held.empty()) {
      svc.answer_held();
      settle(ioc);
    }
  }
  if (f.half_close) {
    boost::system::error_code ignored;
    c.sock.shutdown(tcp::socket::shutdown_send, ignored);
  }
  settle(ioc);

  const bool debug = std::getenv("HTTP_SERVER_FUZZ_DEBUG") != nullptr;
  if (debug)
    std::fprintf(stderr, "model: %zu requests, bad %u (maybe %d), partial %d, ambiguous at %zu, stream %d, %zu records, bad record %d\n",
                 m.reqs.size(), m.bad_status, m.bad_maybe, m.partial_tail, m.ambiguous_at, m.stream(),
                 m.records.size(), m.bad_record);

  // ---- wait for the exchange to reach the end the model gives it
  const bool stream = m.stream() && !m.ambiguous();
  const ModelRequest* sr = stream ? &m.reqs.back() : nullptr;
  const std::size_t plain = m.reqs.size() - (m.stream() ? 1 : 0);  // plain answers due
  std::vector<bool> head;  // which answers are to HEAD requests (no body)
  for (const auto& r : m.reqs) head.push_back(r.head);
  head.resize(std::min(head.size(), m.ambiguous_at));
  auto responses = [&] { return parse_responses(c.data, head).done.size(); };
  auto wait_closed = [&] {
    return run_until(ioc, deadline, [&] {
      if (!svc.held.empty()) svc.answer_held();
      return c.closed;
    });
  };

  bool ended_by_harness = false;
  if (m.ambiguous()) {
    settle(ioc);
  } else if (stream) {
    // The stream starts after every earlier answer was written.
    FUZZ_CHECK(run_until(ioc, deadline, [&] { return !svc.streams.empty() || c.closed; }),
               "stream request not handed to the Service");
    if (!svc.streams.empty()) {
      if (sr->ack_channel && !m.bad_record && !m.records.empty() && !f.half_close && f.refuse_ack == 0 &&
          f.stream_mode != 1) {
        // Liveness: the newest record reaches the Service.
        const AckRecord& last = m.records.back();
        FUZZ_CHECK(run_until(ioc, deadline,
                             [&] {
                               if (!svc.held.empty()) svc.answer_held();
                               return (!svc.acks.empty() && same_ack(svc.acks.back(), last) && svc.held.empty()) ||
                                      c.closed;
                             }),
                   "the last ack record (term %llu index %llu) never reached the Service (%zu acks)",
                   (unsigned long long)last.term, (unsigned long long)last.index, svc.acks.size());
      }
      // (With a refused stream the error answer may close it first.)
      if (sr->ack_channel && m.bad_record && f.stream_mode != 1)
        FUZZ_CHECK(wait_closed(), "a malformed ack record did not close the connection");
      if (f.half_close && f.stream_mode != 1) FUZZ_CHECK(wait_closed(), "a half-closed stream stayed open");
      settle(ioc);
      if (svc.refused) FUZZ_CHECK(wait_closed(), "a refused ack did not close the connection");
      // The harness ends the stream (as the Log does when its term ends).
      if (!c.closed && svc.writer && f.stream_mode != 1) {
        ended_by_harness = true;
        if (f.stream_mode == 2) svc.writer->finish(make_error_code(errc::io_error));
        else svc.writer->finish({});
      }
      FUZZ_CHECK(wait_closed(), "an ended stream left the connection open");
    }
  } else if (f.half_close || (m.bad_status && !m.bad_maybe) || (!m.reqs.empty() && !m.reqs.back().keep_alive)) {
    FUZZ_CHECK(wait_closed(), "the server did not close");
  } else {
    FUZZ_CHECK(run_until(ioc, deadline, [&] { return responses() >= plain || c.closed; }),
               "%zu responses for %zu requests", responses(), plain);
    settle(ioc);
    if (m.bad_maybe && (responses() > plain || c.closed))
      FUZZ_CHECK(wait_closed(), "the server did not close after a 400");
    else
      FUZZ_CHECK(!c.closed, "the server closed a keep-alive connection");
  }
  settle(ioc);

  // ---- the responses
  if (debug)
    std::fprintf(stderr, "received (%s): %s\n", c.closed ? (c.reset ? "reset" : "eof") : "open", c.data.c_str());
  const Parsed p = parse_responses(c.data, head);
  FUZZ_CHECK(p.bad.empty() || p.done.size() >= m.ambiguous_at, "not an HTTP response after %zu: %s; data %s",
             p.done.size(), p.bad.c_str(), fuzz::hex(c.data, 400).c_str());
  for (std::size_t i = 0; i < p.done.size(); ++i) {
    const auto& r = p.done[i];
    const unsigned st = r.result_int();
    FUZZ_CHECK(documented(st), "status %u", st);
    FUZZ_CHECK(r.version() == 10 || r.version() == 11, "version %u", r.version());
    if (st != 200) FUZZ_CHECK(!r[http_detail::kHeaderError].empty(), "status %u without X-Raft-Error", st);
    if (!r.keep_alive())
      FUZZ_CHECK(i + 1 == p.done.size() && !p.partial && p.bad.empty(), "bytes after a closing response");
    if (i < plain && i < m.ambiguous_at)
      FUZZ_CHECK(r.keep_alive() == m.reqs[i].keep_alive, "response %zu keep-alive %d, request %d", i, r.keep_alive(),
                 m.reqs[i].keep_alive);
  }
  if (!m.ambiguous() && !stream) {
    // One answer per request, in order, then the bad request's (when it comes).
    const std::size_t want = plain + (m.bad_status && (!m.bad_maybe || p.done.size() > plain) ? 1 : 0);
    // A reset (the server closed with input unread) may take answers with it.
    if (!c.reset)
      FUZZ_CHECK(p.done.size() == want && !p.partial, "%zu responses (partial %d), want %zu", p.done.size(),
                 p.partial, want);
    else
      FUZZ_CHECK(p.done.size() <= want, "%zu responses, want %zu", p.done.size(), want);
    // (Waiting for a terminator it skipped, Beast may run into the header
    // limit instead.)
    if (m.bad_status && p.done.size() > plain)
      FUZZ_CHECK(p.done.back().result_int() == m.bad_status || (m.bad_maybe && p.done.back().result_int() == 431),
                 "bad request answered %u, want %u", p.done.back().result_int(), m.bad_status);
  }
  if (stream) {
    FUZZ_CHECK(p.done.size() >= plain || c.reset, "%zu responses before the stream's, want %zu", p.done.size(), plain);
    FUZZ_CHECK(p.done.size() <= plain + 1, "%zu responses, want at most %zu", p.done.size(), plain + 1);
    if (p.partial) FUZZ_CHECK(p.done.size() == plain, "a cut response that is not the stream");
    // The connection was cut under the stream (or the stream failed).
    const bool cut = c.reset || svc.refused || m.bad_record || f.half_close || f.stream_mode == 2;
    if (p.done.size() == plain + 1) {
      const auto& r = p.done.back();
      if (f.stream_mode == 1) {
        FUZZ_CHECK(r.result_int() == 421 && !r.keep_alive(), "refused stream answered %u", r.result_int());
      } else {
        FUZZ_CHECK(r.result_int() == 200 && r.chunked(), "stream head %u", r.result_int());
        FUZZ_CHECK((r[http_detail::kHeaderAckChannel] == "1") == sr->ack_channel, "ack channel header");
        FUZZ_CHECK(r.body() == (f.stream_mode == 0 ? kChunk : ""), "stream body %s", r.body().c_str());
      }
    } else {
      FUZZ_CHECK(!ended_by_harness || cut, "a stream ended cleanly did not arrive whole (%zu responses, partial %d)",
                 p.done.size(), p.partial);
    }
    if (p.partial && f.stream_mode != 1) {
      // What did arrive of the stream is its head (with the channel header
      // exactly when asked for) and then the Service's bytes.
      const std::string_view rest = std::string_view(c.data).substr(p.partial_at);
      FUZZ_CHECK(rest.starts_with("HTTP/1.1 200 OK\r\n"), "cut stream head %s", std::string(rest.substr(0, 40)).c_str());
      FUZZ_CHECK((rest.find("\r\nX-Raft-Ack-Channel: 1\r\n") != std::string_view::npos) == sr->ack_channel,
                 "ack channel header");
    }
  }

  // ---- the Service
  if (!m.ambiguous())
    FUZZ_CHECK(svc.plain_calls == m.calls, "the Service saw %zu plain calls, the model %zu", svc.plain_calls.size(),
               m.calls.size());

  // ---- the stream and its acks
  FUZZ_CHECK(svc.streams.size() <= 1, "%zu streams on one connection", svc.streams.size());
  FUZZ_CHECK(svc.acks_after_refusal == 0, "%zu acks after a refused one", svc.acks_after_refusal);
  if (!m.ambiguous()) {
    FUZZ_CHECK(svc.streams.empty() || stream, "a stream the model did not see");
    if (!svc.streams.empty()) {
      const StreamRequest& got = svc.streams[0];
      FUZZ_CHECK(got.id == sr->sreq.id && got.term == sr->sreq.term && got.index == sr->sreq.index &&
                     got.log_term == sr->sreq.log_term && got.url == sr->sreq.url,
                 "stream request changed on the way");
    }
    const bool channel = stream && sr->ack_channel;
    FUZZ_CHECK(channel || svc.acks.empty(), "%zu acks without an ack channel", svc.acks.size());
    // A subsequence of the records, by position: each ack matched to the
    // first equal record after the previous match.
    std::size_t next = 0;
    for (std::size_t i = 0; i < svc.acks.size(); ++i) {
      const AckRequest& a = svc.acks[i];
      FUZZ_CHECK(a.id == sr->sreq.id && a.url == sr->sreq.url, "ack %zu credited to id %llu url %s", i,
                 (unsigned long long)a.id, a.url.c_str());
      while (next < m.records.size() && !same_ack(a, m.records[next])) ++next;
      FUZZ_CHECK(next < m.records.size(),
                 "ack %zu (term %llu index %llu) is not a later record of the input (%zu records)", i,
                 (unsigned long long)a.term, (unsigned long long)a.index, m.records.size());
      ++next;
    }
  }

  if (debug) {
    std::fprintf(stderr, "acks:");
    for (const auto& a : svc.acks) std::fprintf(stderr, " %llu/%llu", (unsigned long long)a.term, (unsigned long long)a.index);
    std::fprintf(stderr, " (of %zu records)%s\n", m.records.size(), svc.refused ? ", one refused" : "");
  }

  // ---- cleanup: the client goes away, and so must the session.
  boost::system::error_code ignored;
  c.sock.close(ignored);
  svc.answer_held();
  svc.writer.reset();  // the Service lets go of the stream (the Session closes if still open)
  FUZZ_CHECK(run_until(ioc, Clock::now() + std::chrono::milliseconds(1000),
                       [&] {
                         if (!svc.held.empty()) svc.answer_held();
                         return e.server.connection_count() == 0;
                       }),
             "a connection outlived its client");
  settle(ioc);
  return 0;
}
