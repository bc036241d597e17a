// Time, injected. The Log never reads the wall clock or sleeps: every timeout
// is a one-shot timer from its Clock, so tests run on virtual time.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>


namespace raft {

using namespace std::chrono_literals;

// The Go package's default intervals.
inline constexpr std::chrono::milliseconds kDefaultApplyInterval = 10ms;
inline constexpr std::chrono::milliseconds kDefaultElectionTimeout = 500ms;
inline constexpr std::chrono::milliseconds kDefaultHeartbeatInterval = 150ms;
inline constexpr std::chrono::milliseconds kDefaultReconnectTimeout = 10ms;

class Timer {
 public:
  virtual ~Timer() = default;
  // After cancel() returns the callback will not start (it may already be
  // running on another thread; callers use generation numbers for that).
  virtual void cancel() = 0;
};

class Clock {
 public:
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;

  virtual ~Clock() = default;
  virtual time_point now() const = 0;
  // Runs fn once, `d` from now, unless canceled first. fn may run on any
  // thread; the Log re-posts it to its own strand.
  virtual std::shared_ptr<Timer> after(duration d, std::function<void()> fn) = 0;
};

// The real clock: std::chrono::steady_clock and Asio timers on an executor.
class SystemClock final : public Clock {
 public:
  explicit SystemClock(const boost::asio::any_io_executor& ex);
  ~SystemClock() override;
  time_point now() const override;
  std::shared_ptr<Timer> after(duration d, std::function<void()> fn) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Virtual time for tests and the simulator: time moves only when told to, and
// timers fire in deadline order (ties in creation order), synchronously inside
// advance()/fire_next(). Not thread-safe: one thread drives it.
class VirtualClock final : public Clock {
 public:
  explicit VirtualClock(time_point start = time_point{}) : now_(start) {}
  time_point now() const override { return now_; }
  std::shared_ptr<Timer> after(duration d, std::function<void()> fn) override;

  // Fires every timer due within `d`, in order, then sets now to now + d.
  void advance(duration d);
  // Moves to the earliest pending deadline and fires the timers due then.
  // Returns false if no timer is pending.
  bool fire_next();
  std::optional<time_point> next_deadline() const;
  std::size_t pending() const { return timers_.size(); }
  // Drops every pending timer without running it (test teardown: what the
  // callbacks hold is released while the executors they need still exist).
  void clear() { timers_.clear(); }

 private:
  class VTimer;
  struct Key {
    time_point at;
    std::uint64_t seq;
    friend bool operator<(const Key& a, const Key& b) {
      return a.at != b.at ? a.at < b.at : a.seq < b.seq;
    }
  };
  time_point now_;
  std::uint64_t seq_ = 0;
  std::map<Key, std::function<void()>> timers_;
};

}  // namespace raft
