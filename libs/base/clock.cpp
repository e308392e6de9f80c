#include "base/clock.h"

#include <thread>

namespace stowage {

Clock::TimePoint RealClock::now() const {
  return std::chrono::time_point_cast<Duration>(std::chrono::steady_clock::now());
}

Clock::WallTime RealClock::wall_now() const {
  return std::chrono::system_clock::now();
}

bool RealClock::sleep_until(TimePoint deadline, std::stop_token stop) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  return !cv.wait_until(lock, stop, deadline, [] { return false; }) && !stop.stop_requested();
}

Clock& real_clock() {
  static RealClock clock;
  return clock;
}

FakeClock::FakeClock(WallTime wall_start) : wall_start_(wall_start) {}

Clock::TimePoint FakeClock::now() const {
  std::lock_guard lock(mu_);
  return TimePoint(now_);
}

Clock::WallTime FakeClock::wall_now() const {
  std::lock_guard lock(mu_);
  return wall_start_ + std::chrono::duration_cast<WallTime::duration>(now_);
}

bool FakeClock::sleep_until(TimePoint deadline, std::stop_token stop) {
  std::unique_lock lock(mu_);
  ++waiters_;
  cv_.notify_all();
  const bool reached = cv_.wait(lock, stop, [&] { return TimePoint(now_) >= deadline; });
  --waiters_;
  cv_.notify_all();
  return reached;
}

void FakeClock::advance(Duration d) {
  std::lock_guard lock(mu_);
  now_ += d;
  cv_.notify_all();
}

int FakeClock::waiters() const {
  std::lock_guard lock(mu_);
  return waiters_;
}

bool FakeClock::wait_for_waiters(int n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return waiters_ >= n; });
}

}  // namespace stowage
