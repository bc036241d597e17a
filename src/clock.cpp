#include "raft/clock.hpp"

#include <atomic>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace raft {

// ---- SystemClock ----

struct SystemClock::Impl {
  boost::asio::any_io_executor ex;
};

namespace {
class AsioTimer final : public Timer, public std::enable_shared_from_this<AsioTimer> {
 public:
  explicit AsioTimer(const boost::asio::any_io_executor& ex) : timer_(ex) {}
  // Asio timers are not thread-safe: cancel on the timer's executor. The flag
  // makes cancel() effective at once even if the expiry is already queued.
  void cancel() override {
    canceled_.store(true);
    boost::asio::post(timer_.get_executor(), [self = shared_from_this()] { self->timer_.cancel(); });
  }
  std::atomic<bool> canceled_{false};
  boost::asio::steady_timer timer_;
};
}  // namespace

SystemClock::SystemClock(const boost::asio::any_io_executor& ex) : impl_(new Impl{ex}) {}
SystemClock::~SystemClock() = default;

Clock::time_point SystemClock::now() const {
  return std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
}

std::shared_ptr<Timer> SystemClock::after(duration d, std::function<void()> fn) {
  auto t = std::make_shared<AsioTimer>(impl_->ex);
  t->timer_.expires_after(d);
  // The handler keeps the timer alive until it completes or is canceled.
  t->timer_.async_wait([t, fn = std::move(fn)](const boost::system::error_code& ec) {
    if (!ec && !t->canceled_.load()) fn();
  });
  return t;
}

// ---- VirtualClock ----

class VirtualClock::VTimer final : public Timer {
 public:
  VTimer(VirtualClock* c, Key k) : clock_(c), key_(k) {}
  void cancel() override { clock_->timers_.erase(key_); }

 private:
  VirtualClock* clock_;
  Key key_;
};

std::shared_ptr<Timer> VirtualClock::after(duration d, std::function<void()> fn) {
  if (d < duration::zero()) d = duration::zero();
  Key k{now_ + d, seq_++};
  timers_.emplace(k, std::move(fn));
  return std::make_shared<VTimer>(this, k);
}

bool VirtualClock::fire_next() {
  if (timers_.empty()) return false;
  const time_point at = timers_.begin()->first.at;
  if (at > now_) now_ = at;
  // Fire everything due at `at`, including timers that callbacks add for now.
  while (!timers_.empty() && timers_.begin()->first.at <= now_) {
    auto node = timers_.extract(timers_.begin());
    node.mapped()();
  }
  return true;
}

void VirtualClock::advance(duration d) {
  const time_point end = now_ + d;
  while (!timers_.empty() && timers_.begin()->first.at <= end) fire_next();
  now_ = end;
}

std::optional<Clock::time_point> VirtualClock::next_deadline() const {
  if (timers_.empty()) return std::nullopt;
  return timers_.begin()->first.at;
}

}  // namespace raft
