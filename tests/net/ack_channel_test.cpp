// Acks on the stream connection (X-Raft-Ack-Channel, docs/design-notes.md):
// negotiation, what travels where, and what a leader does with bytes on
// that channel that are not ack records.
#include "net_fixture.hpp"

#include <array>
#include <deque>

namespace raft::test {
namespace {

constexpr const char* kMe = "http://127.0.0.1:9/me";

// The channel's record, written out by hand (not with the library's
// encoder): type 0xA1, term and index as big-endian u64.
std::string record(std::uint64_t term, std::uint64_t index) {
  std::string r(1, static_cast<char>(0xA1));
  for (int i = 7; i >= 0; --i) r += static_cast<char>(term >> (8 * i));
  for (int i = 7; i >= 0; --i) r += static_cast<char>(index >> (8 * i));
  return r;
}

// FakeService::handle_ack answers at once; these tests need to see every
// ack and sometimes hold the answer, so the fixture answers instead.
struct RoutedService : FakeService {
  std::function<void(const AckRequest&, Handler_fn<void>)> route;
  void handle_ack(const AckRequest& r, Handler_fn<void> h) override {
    calls.push_back("ack");
    last_ack = r;
    route(r, std::move(h));
  }
};

class AckChannel : public NetTest {
 protected:
  struct Follower {
    std::string got;
    int ends = 0;
    std::error_code end_ec;
    StreamCallbacks callbacks() {
      return {[this](std::string_view b, std::function<void()> more) {
                got.append(b);
                more();
              },
              [this](std::error_code ec) {
                ++ends;
                end_ec = ec;
              }};
    }
  };

  void SetUp() override {
    rsvc.on_stream = [this](std::shared_ptr<StreamWriter> w) { writer = std::move(w); };
    rsvc.route = [this](const AckRequest& r, Handler_fn<void> h) {
      acks.push_back(r);
      if (hold_acks) held.push_back(std::move(h));
      else h(rsvc.ack_result);
    };
    server = std::make_unique<Server>(ioc.get_executor(), rhandler, quick_options());
    auto p = server->listen("127.0.0.1", 0);
    ASSERT_TRUE(p) << p.error().message();
    port = *p;
    url = "http://127.0.0.1:" + std::to_string(port);
  }
  void TearDown() override {
    writer.reset();
    held.clear();
    NetTest::TearDown();
  }

  // Opens a stream as node 2 (URL kMe unless given) and waits until the
  // first chunk arrived, i.e. the response head was read.
  std::shared_ptr<StreamHandle> open(Follower& f, std::string me = kMe, HTTPTransport* t = nullptr) {
    auto h = (t ? *t : transport).read_from(url, {2, 1, 0, 0, std::move(me)}, f.callbacks());
    EXPECT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
    if (!writer) return h;
    bool wrote = false;
    writer->write("hello", [&](std::error_code) { wrote = true; });
    EXPECT_TRUE(run_until(ioc, [&] { return wrote && f.got == "hello"; }));
    return h;
  }

  result<void> ack(const AckRequest& req, HTTPTransport* t = nullptr) {
    std::optional<result<void>> r;
    (t ? *t : transport).ack(url, req, [&](result<void> x) { r = x; });
    EXPECT_TRUE(run_until(ioc, [&] { return r.has_value(); }));
    return r ? *r : result<void>(errc::timeout);
  }


 public:  // for open_raw()
  std::uint16_t port_() const { return port; }
  bool wait_writer() { return run_until(ioc, [&] { return writer != nullptr; }); }
  StreamWriter* writer_() const { return writer.get(); }

 protected:
  RoutedService rsvc;
  Handler rhandler{rsvc};
  std::shared_ptr<StreamWriter> writer;
  bool hold_acks = false;             // keep the Service's ack answers
  std::deque<Handler_fn<void>> held;  // ... here, oldest first
  std::vector<AckRequest> acks;       // every ack the Service saw
};

TEST_F(AckChannel, AcksTravelOnTheStreamConnection) {
  Follower f;
  auto h = open(f);
  const auto before = transport.connections_opened();
  ASSERT_TRUE(ack({2, 1, 5, kMe}));
  ASSERT_TRUE(run_until(ioc, [&] { return acks.size() == 1; }));
  // Credited to the stream's node: the id and URL it opened the stream with.
  EXPECT_EQ(acks[0].id, 2u);
  EXPECT_EQ(acks[0].term, 1u);
  EXPECT_EQ(acks[0].index, 5u);
  EXPECT_EQ(acks[0].url, kMe);
  ASSERT_TRUE(ack({2, 1, 9, kMe}));
  ASSERT_TRUE(run_until(ioc, [&] { return acks.size() == 2; }));
  EXPECT_EQ(acks[1].index, 9u);
  EXPECT_EQ(transport.connections_opened(), before);  // no POST connection
  EXPECT_EQ(f.ends, 0);
}

TEST_F(AckChannel, WithoutTheOptionEveryAckIsAPost) {
  HTTPTransportOptions o = topts;
  o.ack_channel = false;
  HTTPTransport t2(ioc.get_executor(), o);
  Follower f;
  auto h = open(f, kMe, &t2);
  const auto before = t2.connections_opened();
  ASSERT_TRUE(ack({2, 1, 5, kMe}, &t2));
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(t2.connections_opened(), before + 1);
}

TEST_F(AckChannel, AFollowerWithoutAUrlDoesNotAskForIt) {
  Follower f;
  auto h = open(f, "");
  const auto before = transport.connections_opened();
  ASSERT_TRUE(ack({2, 1, 5, ""}));  // refused by a real Log (no URL); the fake accepts
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(transport.connections_opened(), before + 1);
}

TEST_F(AckChannel, AnAckOfAnotherIdentityGoesByPost) {
  Follower f;
  auto h = open(f);
  const auto before = transport.connections_opened();
  ASSERT_TRUE(ack({7, 1, 5, kMe}));  // the node took another id meanwhile
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].id, 7u);
  EXPECT_EQ(transport.connections_opened(), before + 1);
}

TEST_F(AckChannel, AcksWaitingForTheLogCoalesceToTheNewest) {
  Follower f;
  auto h = open(f);
  hold_acks = true;
  ASSERT_TRUE(ack({2, 1, 5, kMe}));
  ASSERT_TRUE(run_until(ioc, [&] { return held.size() == 1; }));
  // Written while the first is still with the Log: only the newest goes on.
  ASSERT_TRUE(ack({2, 1, 6, kMe}));
  ASSERT_TRUE(ack({2, 1, 7, kMe}));
  run_for(ioc, 50ms);
  ASSERT_EQ(acks.size(), 1u);
  auto first = std::move(held.front());
  held.pop_front();
  first(result<void>{});
  ASSERT_TRUE(run_until(ioc, [&] { return acks.size() == 2; }));
  EXPECT_EQ(acks[1].index, 7u);
  held.front()(result<void>{});
  run_for(ioc, 50ms);
  EXPECT_EQ(acks.size(), 2u);
  EXPECT_EQ(f.ends, 0);
}

TEST_F(AckChannel, ARefusedAckEndsTheStream) {
  Follower f;
  auto h = open(f);
  rsvc.ack_result = make_error_code(errc::stale_term);
  ASSERT_TRUE(ack({2, 1, 5, kMe}));  // on the socket: the refusal comes as the stream's end
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
  EXPECT_TRUE(f.end_ec);
  // The channel went with the stream: the next ack is a request, and its
  // refusal is reported.
  auto r = ack({2, 1, 6, kMe});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::stale_term);
}

TEST_F(AckChannel, AckAfterTheStreamEndedGoesByPost) {
  Follower f;
  auto h = open(f);
  writer->finish({});
  ASSERT_TRUE(run_until(ioc, [&] { return f.ends == 1; }));
  const auto before = transport.connections_opened();
  ASSERT_TRUE(ack({2, 1, 5, kMe}));
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(transport.connections_opened(), before + 1);
}

// The leader's side with bytes the real client never sends.
std::string stream_request(bool channel, const std::string& me = kMe) {
  return "GET /raft/stream?id=2&term=1&index=0&logTerm=0&url=" + me + " HTTP/1.1\r\nHost: x\r\n" +
         (channel ? "X-Raft-Ack-Channel: 1\r\n" : "") + "\r\n";
}

// A raw follower's stream request; returns once the response head arrived.
void open_raw(AckChannel& t, RawClient& c, bool channel) {
  ASSERT_TRUE(c.connect(t.port_()));
  c.send(stream_request(channel));
  ASSERT_TRUE(t.wait_writer());
  t.writer_()->write("x", [](std::error_code) {});
  ASSERT_TRUE(c.wait_for("\r\n\r\n"));
}

TEST_F(AckChannel, TheLeaderAgreesInTheResponseHead) {
  RawClient c(ioc);
  open_raw(*this, c, true);
  EXPECT_NE(c.data.find("X-Raft-Ack-Channel: 1\r\n"), std::string::npos) << c.data;
}

TEST_F(AckChannel, WithoutTheRequestHeaderTheHeadDoesNotOfferIt) {
  RawClient c(ioc);
  open_raw(*this, c, false);
  EXPECT_EQ(c.data.find("X-Raft-Ack-Channel"), std::string::npos) << c.data;
  // And bytes from such a follower are ignored, as before the channel.
  c.send(record(1, 5) + "junk");
  run_for(ioc, 50ms);
  EXPECT_TRUE(acks.empty());
  EXPECT_FALSE(c.closed);
}

TEST_F(AckChannel, ARecordSplitAcrossReadsIsReassembled) {
  RawClient c(ioc);
  ASSERT_TRUE(c.connect(port));
  c.send(stream_request(true));
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
  const std::string r = record(3, 0x0102030405060708ull);
  c.send(r.substr(0, 5));
  run_for(ioc, 30ms);
  EXPECT_TRUE(acks.empty());
  c.send(r.substr(5) + record(3, 0x0102030405060709ull).substr(0, 16));
  ASSERT_TRUE(run_until(ioc, [&] { return acks.size() == 1; }));
  EXPECT_EQ(acks[0].term, 3u);
  EXPECT_EQ(acks[0].index, 0x0102030405060708ull);
  c.send(std::string(1, '\x09'));  // the last byte of the second record
  ASSERT_TRUE(run_until(ioc, [&] { return acks.size() == 2; }));
  EXPECT_EQ(acks[1].index, 0x0102030405060709ull);
  EXPECT_FALSE(c.closed);
}

// Records written right behind the request (before the response head, which
// the real client waits for) are read like the ones after it: they used to
// stay in the buffer the request was read into, lost, and a record split
// between that buffer and the socket was read from its middle. Found by the
// http_server fuzz target (corpus/http_server/ack-channel-after-requests).
TEST_F(AckChannel, RecordsSentWithTheRequestAreRead) {
  RawClient c(ioc);
  ASSERT_TRUE(c.connect(port));
  const std::string r = record(3, 7);
  c.send(stream_request(true) + record(3, 5) + r.substr(0, 6));
  ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr && acks.size() == 1; }));
  EXPECT_EQ(acks[0].index, 5u);
  c.send(r.substr(6));
  ASSERT_TRUE(run_until(ioc, [&] { return acks.size() == 2; }));
  EXPECT_EQ(acks[1].term, 3u);
  EXPECT_EQ(acks[1].index, 7u);
  EXPECT_FALSE(c.closed);
}

TEST_F(AckChannel, BytesThatAreNotAckRecordsCloseTheStream) {
  for (const std::string& bad : {std::string("GET / HTTP/1.1\r\n\r\n"), record(0, 5)}) {
    SCOPED_TRACE(bad.substr(0, 3));
    writer.reset();
    RawClient c(ioc);
    ASSERT_TRUE(c.connect(port));
    c.send(stream_request(true));
    ASSERT_TRUE(run_until(ioc, [&] { return writer != nullptr; }));
    c.send(bad);
    EXPECT_TRUE(c.wait_closed());
    EXPECT_TRUE(acks.empty());
    // The Log's writer learns it at its next write.
    EXPECT_TRUE(write_once(ioc, *writer, "late"));
  }
}

}  // namespace
}  // namespace raft::test
