// Query parameters as the Handler reads them (http_detail::handle_request,
// no socket).
#include "http/handler.hpp"

#include <boost/url.hpp>

#include <gtest/gtest.h>

namespace raft {
namespace {

// Records the ack it is given and accepts it.
class AckService final : public Service {
 public:
  AckRequest got;
  std::uint64_t cluster_id() const override { return 0; }
  Status status() const override { return {}; }
  void handle_join(std::string, Handler_fn<JoinResponse> h) override { h(errc::invalid_argument); }
  void handle_leave(std::uint64_t, Handler_fn<void> h) override { h(errc::invalid_argument); }
  void handle_heartbeat(const HeartbeatRequest&, Handler_fn<HeartbeatResponse> h) override { h(errc::invalid_argument); }
  void handle_vote(const VoteRequest&, Handler_fn<VoteResponse> h) override { h(errc::invalid_argument); }
  void handle_ack(const AckRequest& req, Handler_fn<void> h) override {
    got = req;
    h(result<void>{});
  }
  void handle_stream(const StreamRequest&, std::shared_ptr<StreamWriter>) override {}
};

TEST(HandlerParams, PlusInAValueIsAPlusNotASpace) {
  // Found by tests/fuzz/http_handler_fuzz.cpp (round trip of the parameters
  // through a canonical target): the Handler decoded '+' as a space, but
  // HTTPTransport builds queries with boost::urls params().append, which
  // leaves '+' unescaped, so a node URL with a '+' arrived as another URL.
  const std::string url = "http://127.0.0.1:8001/raft+kv";
  boost::urls::url u("/raft/ack");
  u.params().append({"id", "2"});
  u.params().append({"term", "3"});
  u.params().append({"index", "4"});
  u.params().append({"url", url});  // as HTTPTransport's query() does
  http_detail::Request req;
  req.method(boost::beast::http::verb::post);
  req.version(11);
  req.target(u.buffer());
  AckService svc;
  Handler h(svc);
  unsigned status = 0;
  http_detail::handle_request(h, req, [&](http_detail::Reply r) { status = r.res.result_int(); });
  EXPECT_EQ(status, 200u);
  EXPECT_EQ(svc.got.url, url) << "target " << u.buffer();
  // Percent-encoded '+' and spaces still decode.
  req.target("/raft/ack?id=2&term=3&index=4&url=http://h:1/a%2Bb%20c");
  http_detail::handle_request(h, req, [&](http_detail::Reply r) { status = r.res.result_int(); });
  EXPECT_EQ(svc.got.url, "http://h:1/a+b c");
}

}  // namespace
}  // namespace raft
