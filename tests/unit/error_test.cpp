#include <raft/error.hpp>

#include <gtest/gtest.h>

namespace raft {
namespace {

TEST(Errc, GoMessagesAreKept) {
  const std::pair<errc, const char*> go[] = {
      {errc::closed, "log closed"},
      {errc::open, "log already open"},
      {errc::initialized, "log already initialized"},
      {errc::url_required, "url required"},
      {errc::log_exists, "log exists"},
      {errc::not_leader, "not leader"},
      {errc::stale_term, "stale term"},
      {errc::out_of_date_log, "out of date log"},
      {errc::uncommitted_index, "uncommitted index"},
      {errc::already_voted, "already voted"},
      {errc::node_not_found, "node not found"},
      {errc::invalid_node_id, "invalid node id"},
      {errc::node_url_required, "node url required"},
      {errc::duplicate_node_id, "duplicate node id"},
      {errc::duplicate_node_url, "duplicate node url"},
  };
  for (auto [e, msg] : go) {
    std::error_code ec = e;
    EXPECT_EQ(ec.message(), msg);
    EXPECT_EQ(&ec.category(), &error_category());
    EXPECT_STREQ(ec.category().name(), "raft");
    errc back{};
    ASSERT_TRUE(errc_from_message(msg, back)) << msg;
    EXPECT_EQ(back, e);
  }
}

TEST(Errc, EveryValueRoundTripsThroughItsMessage) {
  for (int v = 1; v < 200; ++v) {
    std::error_code ec(v, error_category());
    const std::string msg = ec.message();
    errc back{};
    if (msg.rfind("unknown raft error", 0) == 0) {
      EXPECT_FALSE(errc_from_message(msg, back));
      continue;
    }
    ASSERT_TRUE(errc_from_message(msg, back)) << msg;
    EXPECT_EQ(static_cast<int>(back), v);
  }
  errc out{};
  EXPECT_FALSE(errc_from_message("no such error", out));
}

TEST(Errc, ResultCarriesValueOrError) {
  auto f = [](bool ok) -> result<int> {
    if (!ok) return errc::not_leader;
    return 42;
  };
  auto a = f(true);
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, 42);
  auto b = f(false);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error(), errc::not_leader);
  EXPECT_EQ(b.error().message(), "not leader");
}

}  // namespace
}  // namespace raft
