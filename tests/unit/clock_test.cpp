#include <raft/clock.hpp>
#include <raft/detail/crc32c.hpp>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <vector>

namespace raft {
namespace {

TEST(Clock, GoDefaults) {
  EXPECT_EQ(kDefaultApplyInterval, 10ms);
  EXPECT_EQ(kDefaultElectionTimeout, 500ms);
  EXPECT_EQ(kDefaultHeartbeatInterval, 150ms);
  EXPECT_EQ(kDefaultReconnectTimeout, 10ms);
}

TEST(VirtualClock, TimersFireInDeadlineOrderThenCreationOrder) {
  VirtualClock c;
  std::vector<int> fired;
  c.after(30ms, [&] { fired.push_back(3); });
  c.after(10ms, [&] { fired.push_back(1); });
  c.after(20ms, [&] { fired.push_back(2); });
  c.after(20ms, [&] { fired.push_back(22); });
  c.advance(15ms);
  EXPECT_EQ(fired, (std::vector<int>{1}));
  EXPECT_EQ(c.now().time_since_epoch(), 15ms);
  c.advance(100ms);
  EXPECT_EQ(fired, (std::vector<int>{1, 2, 22, 3}));
  EXPECT_EQ(c.pending(), 0u);
}

TEST(VirtualClock, CanceledTimerDoesNotFire) {
  VirtualClock c;
  int n = 0;
  auto t = c.after(10ms, [&] { ++n; });
  t->cancel();
  c.advance(1s);
  EXPECT_EQ(n, 0);
}

TEST(VirtualClock, NowIsTheDeadlineInsideTheCallback) {
  VirtualClock c;
  Clock::time_point seen{};
  c.after(7ms, [&] {
    seen = c.now();
    c.after(0ms, [&] { seen += 1ms; });
  });
  EXPECT_TRUE(c.fire_next());
  EXPECT_EQ(seen.time_since_epoch(), 8ms);
  EXPECT_FALSE(c.fire_next());
}

TEST(SystemClock, TimerFiresOnTheExecutor) {
  boost::asio::io_context io;
  SystemClock c(io.get_executor());
  int n = 0;
  const auto start = c.now();
  c.after(1ms, [&] { ++n; });
  auto t = c.after(1ms, [&] { n += 100; });
  t->cancel();
  io.run_for(std::chrono::seconds(5));
  EXPECT_EQ(n, 1);
  EXPECT_GE(c.now() - start, 1ms);
}

TEST(Crc32c, KnownVectorsAndResume) {
  EXPECT_EQ(detail::crc32c(0, "123456789", 9), 0xe3069283u);
  EXPECT_EQ(detail::crc32c(0, "", 0), 0u);
  const std::uint32_t part = detail::crc32c(0, "1234", 4);
  EXPECT_EQ(detail::crc32c(part, "56789", 5), 0xe3069283u);
  for (std::uint32_t v : {0u, 1u, 0xe3069283u, 0xffffffffu})
    EXPECT_EQ(detail::crc_unmask(detail::crc_mask(v)), v);
  EXPECT_NE(detail::crc_mask(0xe3069283u), 0xe3069283u);
}

}  // namespace
}  // namespace raft
