#include "raft/run.hpp"

#include <boost/asio/io_context.hpp>

#include <sched.h>

namespace raft {

std::size_t run_polling(boost::asio::io_context& io, std::chrono::microseconds spin) {
  if (spin <= std::chrono::microseconds::zero()) return io.run();
  using Clock = std::chrono::steady_clock;
  std::size_t ran = 0;
  auto last = Clock::now();
  while (!io.stopped()) {
    if (const std::size_t n = io.poll(); n > 0) {
      ran += n;
      last = Clock::now();
      continue;
    }
    // poll() stops an io_context that ran out of work, as run() would.
    if (io.stopped()) break;
    if (Clock::now() - last < spin) {
      // Let another runnable thread on this CPU go first: spinning must not
      // delay the thread whose work we are waiting for.
      sched_yield();
      continue;
    }
    ran += io.run_one();  // blocks until a handler ran, or io stopped
    last = Clock::now();
  }
  return ran;
}

}  // namespace raft
