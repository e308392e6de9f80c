// Injected time. Logic never reads a real clock directly: it takes a Clock&, so backoff, requeue,
// lease and rate-limit code runs under FakeClock in tests, which advances without sleeping.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <vector>

namespace stowage {

class Clock {
 public:
  using Duration = std::chrono::nanoseconds;
  using TimePoint = std::chrono::time_point<std::chrono::steady_clock, Duration>;
  using WallTime = std::chrono::system_clock::time_point;

  virtual ~Clock() = default;
  // Monotonic time, for deadlines and intervals.
  virtual TimePoint now() const = 0;
  // Wall time, for timestamps written to objects (lastTransitionTime, lease renewals).
  virtual WallTime wall_now() const = 0;
  // Blocks until `deadline` or until `stop` is requested; returns false if stopped early.
  virtual bool sleep_until(TimePoint deadline, std::stop_token stop) = 0;
  bool sleep_for(Duration d, std::stop_token stop) { return sleep_until(now() + d, stop); }
};

class RealClock final : public Clock {
 public:
  TimePoint now() const override;
  WallTime wall_now() const override;
  bool sleep_until(TimePoint deadline, std::stop_token stop) override;
};

// A process-wide RealClock for main() to inject.
Clock& real_clock();

// A clock that moves only when advance() is called. Thread-safe: sleepers in other threads wake
// when the time they wait for is reached. waiters() lets a test wait until a thread is parked.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(WallTime wall_start = WallTime(std::chrono::seconds(1'700'000'000)));
  TimePoint now() const override;
  WallTime wall_now() const override;
  bool sleep_until(TimePoint deadline, std::stop_token stop) override;

  void advance(Duration d);
  // Number of threads currently blocked in sleep_until.
  int waiters() const;
  // Blocks (really) until at least `n` threads sleep on this clock, or `timeout` passes.
  bool wait_for_waiters(int n, std::chrono::milliseconds timeout) const;

 private:
  mutable std::mutex mu_;  // guards now_, waiters_
  mutable std::condition_variable_any cv_;
  Duration now_{0};
  WallTime wall_start_;
  int waiters_ = 0;
};

}  // namespace stowage
