// The stream (DESIGN 4.2) over HTTP: incremental delivery, back-pressure in
// both directions, cancel, errors, followers that stop reading or vanish.
#include "net_fixture.hpp"

#include <deque>

namespace raft::test {
namespace {

std::string payload(std::size_t i, std::size_t n) {
  // Cheap in Debug+ASan builds, yet differs per chunk and per position.
  std::string s(n, static_cast<char>(i * 131));
  for (std::size_t k = 0; k < n; k += 251) s[k] = static_cast<char>(k + i);
  return s;
}

class StreamTest : public NetTest {
 protected:
  // Follower side: collects bytes; `hold` keeps the more() instead of calling it.
  struct Follower {
    std::string got;
    int ends = 0;
    std::error_code end_ec;
    bool hold = false;
    std::function<void()> pending_more;
    StreamCallbacks callbacks() {
      return {[this](std::string_view b, std::function<void()> more) {
                got.append(b);
                if (hold) pending_more = std::move(more);
                else more();
              },
              [this](std::error_code ec) {
                ++ends;
                end_ec = ec;
              }};
    }
  };
  std::shared_ptr<StreamWriter> writer;
  void SetUp() override {
    NetTest::SetUp();
    svc.on_stream = [this](std::shared_ptr<StreamWriter> w) { writer = std::move(w); };
  }
  void TearDown() override {
    writer.reset();
    NetTest::TearDown();
  }
};

TEST_F(StreamTest, RequestParametersReachTheService) {
  Follower f;
  auto h = transport.read_from(url, {2, 7, 100, 6, "http://127.0.0.1:7/x?y"}, f.callbacks());
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  EXPECT_EQ(svc.last_stream.id, 2u);
  EXPECT_EQ(svc.last_stream.term, 7u);
  EXPECT_EQ(svc.last_stream.index, 100u);
  EXPECT_EQ(svc.last_stream.log_term, 6u);
  EXPECT_EQ(svc.last_stream.url, "http://127.0.0.1:7/x?y");
  writer->finish({});
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
  EXPECT_FALSE(f.end_ec);
}

// Each chunk is written only after the follower holds every earlier byte: this
// finishes only if delivery is incremental (no buffering of the response).
TEST_F(StreamTest, ManyChunksArriveInOrderAsTheyAreWritten) {
  Follower f;
  auto h = transport.read_from(url, {2, 1, 0, 0}, f.callbacks());
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  std::string expect;
  for (std::size_t i = 0; i < 300; ++i) {
    std::string p = payload(i, 1 + (i * 37) % 3000);
    expect += p;
    bool done = false;
    writer->write(p, [&](std::error_code ec) {
      EXPECT_FALSE(ec);
      done = true;
    });
    ASSERT_TRUE(run_until(ioc, [&] { return done && f.got.size() == expect.size(); })) << i;
  }
  EXPECT_EQ(f.got, expect);
  EXPECT_EQ(f.ends, 0);
  writer->finish({});
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
  EXPECT_FALSE(f.end_ec);
  run_for(ioc, 20ms);
  EXPECT_EQ(f.ends, 1);
}

// A follower that does not call more(): the leader's writes stall (done is
// withheld) instead of the server buffering; releasing it delivers everything.
TEST_F(StreamTest, SlowConsumerStallsTheWriter) {
  ServerOptions o = quick_options();
  o.write_timeout_ms = 10'000;  // stalling, not cutting, is what we observe here
  start_server(o);
  Follower f;
  f.hold = true;
  auto h = transport.read_from(url, {2, 1, 0, 0}, f.callbacks());
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));

  const std::size_t chunk = 64 * 1024, total_chunks = 256;  // 16 MiB if nothing pushed back
  std::size_t written = 0;
  std::string bytes;  // the write in flight (kept until its done runs)
  std::function<void()> next = [&] {
    if (written == total_chunks) return;
    bytes = payload(written, chunk);
    writer->write(bytes, [&](std::error_code ec) {
      if (ec) return;
      ++written;
      next();
    });
  };
  next();
  ASSERT_TRUE(run_until(ioc, [&] { return f.pending_more != nullptr; }));
  run_for(ioc, 300ms);
  std::size_t stalled_at = written;
  // Socket buffers on both sides hold a few MiB at most.
  EXPECT_LT(stalled_at, total_chunks / 2) << "writer was not held back";
  std::printf("stalled after %zu chunks of 64 KiB\n", stalled_at);
  run_for(ioc, 100ms);
  EXPECT_EQ(written, stalled_at);

  f.hold = false;
  auto m = std::move(f.pending_more);
  f.pending_more = nullptr;
  m();
  ASSERT_TRUE(run_until(ioc, [&] { return f.got.size() == chunk * total_chunks; }, 30'000ms))
      << f.got.size();
  for (std::size_t i = 0; i < total_chunks; ++i)
    ASSERT_EQ(f.got.compare(i * chunk, chunk, payload(i, chunk)), 0) << i;
  writer->finish({});
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
}

TEST_F(StreamTest, CancelWhileWaitingForDataEndsOnce) {
  Follower f;
  auto h = transport.read_from(url, {2, 1, 0, 0}, f.callbacks());
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  bool done = false;
  writer->write("abc", [&](std::error_code) { done = true; });
  ASSERT_TRUE(run_until(ioc, [&] { return f.got == "abc"; }));
  h->cancel();
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
  EXPECT_EQ(f.end_ec, errc::canceled);
  h->cancel();
  // The leader notices: its connection closes and a later write fails.
  std::error_code wec;
  bool wdone = false;
  ASSERT_TRUE(run_until(ioc, [&] { return server->connection_count() == 0; }));
  writer->write("def", [&](std::error_code ec) {
    wec = ec;
    wdone = true;
  });
  ASSERT_TRUE(run_until(ioc, [&] { return wdone; }));
  EXPECT_TRUE(wec);
  EXPECT_EQ(f.ends, 1);
}

TEST_F(StreamTest, CancelWhileConsumerHoldsDataEndsAtOnce) {
  Follower f;
  f.hold = true;
  auto h = transport.read_from(url, {2, 1, 0, 0}, f.callbacks());
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  writer->write("abc", [](std::error_code) {});
  ASSERT_TRUE(run_until(ioc, [&] { return f.pending_more != nullptr; }));
  h->cancel();
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
  EXPECT_EQ(f.end_ec, errc::canceled);
  f.pending_more();  // late more() is harmless
  run_for(ioc, 20ms);
  EXPECT_EQ(f.ends, 1);
}

TEST_F(StreamTest, ErrorBeforeAnyDataIsAnErrorResponse) {
  svc.on_stream = nullptr;  // the fake answers finish(not_leader)
  svc.st.leader_url = "http://127.0.0.1:1";
  Follower f;
  auto h = transport.read_from(url, {2, 1, 0, 0}, f.callbacks());
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
  EXPECT_EQ(f.end_ec, errc::not_leader);
  EXPECT_TRUE(f.got.empty());
}

// A leader that does not take the requester for the node id it claims
// (another node's URL, or none) refuses the stream; the follower learns why.
TEST_F(StreamTest, IdentityRefusalsReachTheFollower) {
  for (errc e : {errc::node_url_mismatch, errc::node_url_required}) {
    svc.on_stream = [e](std::shared_ptr<StreamWriter> w) { w->finish(make_error_code(e)); };
    Follower f;
    auto h = transport.read_from(url, {2, 1, 0, 0, "http://127.0.0.1:7"}, f.callbacks());
    ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
    EXPECT_EQ(f.end_ec, e);
    EXPECT_TRUE(f.got.empty());
  }
  // Without a URL the parameter is left out (the Log refuses that).
  svc.on_stream = nullptr;
  Follower f;
  auto h = transport.read_from(url, {2, 1, 0, 0}, f.callbacks());
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
  EXPECT_EQ(svc.last_stream.url, "");
}

TEST_F(StreamTest, ErrorAfterDataCutsTheStream) {
  Follower f;
  auto h = transport.read_from(url, {2, 1, 0, 0}, f.callbacks());
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  writer->write("abc", [](std::error_code) {});
  ASSERT_TRUE(run_until(ioc, [&] { return f.got == "abc"; }));
  writer->finish(make_error_code(errc::stale_term));
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
  EXPECT_TRUE(f.end_ec);  // an unterminated body is an error, not a clean end
}

TEST_F(StreamTest, DroppedWriterClosesTheStream) {
  Follower f;
  auto h = transport.read_from(url, {2, 1, 0, 0}, f.callbacks());
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  writer.reset();
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
  EXPECT_TRUE(f.end_ec);
}

TEST_F(StreamTest, RefusedConnectionEndsTheStream) {
  std::uint16_t dead;
  {
    tcp::acceptor a(ioc, {net::ip::make_address("127.0.0.1"), 0});
    dead = a.local_endpoint().port();
  }
  Follower f;
  auto h = transport.read_from("http://127.0.0.1:" + std::to_string(dead), {2, 1, 0, 0}, f.callbacks());
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
  EXPECT_EQ(f.end_ec, errc::transport_error);
}

TEST_F(StreamTest, IdleTimeoutCutsASilentStream) {
  HTTPTransportOptions o;
  o.stream_idle_timeout_ms = 100;
  HTTPTransport t(ioc.get_executor(), o);
  Follower f;
  auto h = t.read_from(url, {2, 1, 0, 0}, f.callbacks());
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  writer->write("x", [](std::error_code) {});
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
  EXPECT_EQ(f.got, "x");
  EXPECT_EQ(f.end_ec, errc::timeout);
}

// The idle timeout counts from the last chunk received, and not while the
// consumer holds the bytes.
TEST_F(StreamTest, IdleTimeoutCountsOnlySilenceOnTheWire) {
  HTTPTransportOptions o;
  o.stream_idle_timeout_ms = 200;
  HTTPTransport t(ioc.get_executor(), o);
  Follower f;
  auto h = t.read_from(url, {2, 1, 0, 0}, f.callbacks());
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  std::string expect;
  std::deque<std::string> sent;  // each write's bytes live until its done runs
  for (int i = 0; i < 12; ++i) {  // 12 x 50 ms: three times the timeout
    expect += std::to_string(i);
    writer->write(sent.emplace_back(std::to_string(i)), [](std::error_code) {});
    run_for(ioc, 50ms);
    ASSERT_EQ(f.ends, 0) << "cut after chunk " << i << " although chunks kept coming";
  }
  EXPECT_EQ(f.got, expect);
  f.hold = true;  // the consumer keeps the next bytes for 3 timeouts
  writer->write("h", [](std::error_code) {});
  ASSERT_TRUE(run_until(ioc, [&] { return f.pending_more != nullptr; }));
  run_for(ioc, 600ms);
  EXPECT_EQ(f.ends, 0) << "time spent in the consumer counted as silence";
  f.hold = false;
  auto more = std::move(f.pending_more);
  more();
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));  // then real silence cuts it
  EXPECT_EQ(f.end_ec, errc::timeout);
  EXPECT_EQ(f.got, expect + "h");
}

// A follower that opens the stream and never reads: the leader's write
// stalls, then write_timeout_ms cuts the connection; nothing piles up.
TEST_F(StreamTest, FollowerThatNeverReadsIsCutOff) {
  RawClient c(ioc);
  ASSERT_TRUE(c.connect(port));
  c.sock.cancel();  // stop our reads: the kernel buffers fill up
  c.send("GET /raft/stream?id=2&term=1&index=0&logTerm=0 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  std::size_t written = 0;
  std::error_code err;
  bool failed = false;
  std::string bytes;  // the write in flight
  std::function<void()> next = [&] {
    bytes = payload(written, 64 * 1024);
    writer->write(bytes, [&](std::error_code ec) {
      if (ec) {
        err = ec;
        failed = true;
        return;
      }
      ++written;
      next();
    });
  };
  next();
  ASSERT_TRUE(run_until(ioc, [&] { return failed; }, 20'000ms));
  EXPECT_EQ(err, errc::timeout);
  EXPECT_LT(written, 1024u);  // < 64 MiB: bounded by socket buffers
  ASSERT_TRUE(run_until(ioc, [&] { return server->connection_count() == 0; }));
}

TEST_F(StreamTest, FollowerThatHangsUpIsNoticed) {
  {
    RawClient c(ioc);
    ASSERT_TRUE(c.connect(port));
    c.send("GET /raft/stream?id=2&term=1&index=0&logTerm=0 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
    c.sock.close();
  }
  ASSERT_TRUE(run_until(ioc, [&] { return server->connection_count() == 0; }));
  EXPECT_TRUE(write_once(ioc, *writer, "late"));
}

TEST_F(StreamTest, ServerStopEndsOpenStreams) {
  Follower f;
  auto h = transport.read_from(url, {2, 1, 0, 0}, f.callbacks());
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  server->stop();
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
  EXPECT_TRUE(f.end_ec);
}

}  // namespace
}  // namespace raft::test
