// raft::run_polling: runs an io_context like run(), polling for a while
// before it blocks. Real time (timers, a second thread), hence label net;
// every wait is bounded.
#include <raft/log.hpp>
#include <raft/run.hpp>
#include <raft/storage/memory_filesystem.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <thread>

#include <time.h>

namespace raft {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

TEST(RunPolling, RunsEveryHandlerAndReturnsWhenOutOfWork) {
  for (std::chrono::microseconds spin : {0us, 200us}) {
    net::io_context io;
    int ran = 0;
    net::post(io, [&] {
      ++ran;
      net::post(io, [&] { ++ran; });  // posted from a handler: still run
    });
    net::post(io, [&] { ++ran; });
    EXPECT_EQ(run_polling(io, spin), 3u) << spin.count();
    EXPECT_EQ(ran, 3);
    EXPECT_TRUE(io.stopped());
  }
}

// A timer longer than the spin window: the runner must get past polling to
// the blocking wait and still be woken by the timer.
// It must also stop burning CPU then: 100 ms of waiting may cost about the
// 100 us window, not the whole wait (20 ms leaves room for a slow machine,
// and a runner that never blocks spends far more even when it shares its
// CPU with other busy threads).
std::chrono::nanoseconds thread_cpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

TEST(RunPolling, BlocksAfterTheSpinWindowAndWakesForTimers) {
  net::io_context io;
  net::steady_timer t(io, 100ms);
  bool fired = false;
  t.async_wait([&](boost::system::error_code ec) { fired = !ec; });
  const auto start = std::chrono::steady_clock::now();
  const auto cpu0 = thread_cpu();
  EXPECT_EQ(run_polling(io, 100us), 1u);
  const auto cpu = thread_cpu() - cpu0;
  EXPECT_TRUE(fired);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_LT(cpu, 20ms) << "the runner kept spinning instead of blocking";
}

// Work posted from another thread is run whether the runner is polling or
// blocked, and stop() from another thread ends it.
TEST(RunPolling, RunsWorkFromOtherThreadsAndStops) {
  for (std::chrono::microseconds spin : {50us, 10000us}) {
    net::io_context io;
    std::optional<net::executor_work_guard<net::io_context::executor_type>> guard(io.get_executor());
    std::atomic<int> ran{0};
    auto done = std::async(std::launch::async, [&] { return run_polling(io, spin); });
    for (int i = 0; i < 100; ++i) {
      net::post(io, [&] { ++ran; });
      if (i % 10 == 0) std::this_thread::yield();
    }
    // Bounded wait for the posts to run (the runner may be in either phase).
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (ran.load() < 100 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    EXPECT_EQ(ran.load(), 100) << spin.count();
    io.stop();
    ASSERT_EQ(done.wait_for(10s), std::future_status::ready) << "run_polling did not return after stop()";
    EXPECT_EQ(done.get(), 100u);
  }
}

// LogOptions::busy_poll: the Log's own thread polls. A single node commits
// and applies through it, and close() plus the destructor return (bounded:
// a runner that ignored stop() would hang them). Before ~Log joined the
// owned threads itself, 8 of 100 runs aborted at exit: the last reference
// to the Log's state was dropped on its own thread, which then joined
// itself.
TEST(RunPolling, LogOwnThreadWithBusyPoll) {
  struct Count final : FSM {
    std::atomic<std::uint64_t> applied{0};
    void must_apply(const LogEntry& e) override { applied = e.index; }
    std::uint64_t index() override { return applied; }
    result<std::uint64_t> snapshot(Writer&) override { return applied.load(); }
    result<void> restore(Reader&) override { return {}; }
  };
  auto run = std::async(std::launch::async, [] {
    storage::MemoryFilesystem fs;
    Count fsm;
    LogOptions o;
    o.url = "http://127.0.0.1:1";
    o.fsm = &fsm;
    o.filesystem = &fs;
    o.busy_poll = 100us;
    auto log = std::make_unique<Log>(o);
    EXPECT_TRUE(log->open("/data"));
    EXPECT_TRUE(log->initialize());
    std::uint64_t last = 0;
    for (int i = 0; i < 50; ++i) {
      auto r = log->apply("c" + std::to_string(i));
      EXPECT_TRUE(r) << r.error().message();
      if (r) last = *r;
    }
    EXPECT_TRUE(log->wait(last));
    EXPECT_EQ(fsm.applied.load(), last);
    EXPECT_TRUE(log->close());
    log.reset();
    return last;
  });
  ASSERT_EQ(run.wait_for(30s), std::future_status::ready) << "the Log with busy_poll hung";
  EXPECT_GE(run.get(), 51u);  // the initialize entry, then 50 commands
}

}  // namespace
}  // namespace raft
