// Bounded waits for code that runs on real threads and real time (network
// tests, benchmarks): re-checks a condition every few milliseconds until it
// holds or the limit passes. Unit and simulator tests use virtual time instead.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace raft::test {

inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit,
                       std::chrono::milliseconds every = std::chrono::milliseconds(5)) {
  std::mutex m;
  std::condition_variable cv;  // never notified: a wait with a bound, not a sleep
  std::unique_lock lk(m);
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    cv.wait_for(lk, every);
  }
  return pred();
}

}  // namespace raft::test
