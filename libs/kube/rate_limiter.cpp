#include "kube/rate_limiter.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

namespace stowage::kube {

RateLimiter::RateLimiter(double qps, int burst, Clock& clock)
    : qps_(qps), burst_(std::max(1, burst)), clock_(clock), tokens_(burst_), last_(clock.now()) {}

void RateLimiter::refill(Clock::TimePoint now) const {
  if (now <= last_) {
    return;
  }
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed * qps_);
  last_ = now;
}

bool RateLimiter::acquire(std::stop_token stop) {
  if (qps_ <= 0) {
    return !stop.stop_requested();
  }
  Clock::TimePoint due;
  {
    std::lock_guard lock(mu_);
    const auto now = clock_.now();
    refill(now);
    tokens_ -= 1;
    if (tokens_ >= 0) {
      return true;
    }
    const double wait_s = -tokens_ / qps_;
    due = now + std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(wait_s));
  }
  if (clock_.sleep_until(due, std::move(stop))) {
    return true;
  }
  std::lock_guard lock(mu_);  // give the reservation back
  tokens_ = std::min(burst_, tokens_ + 1);
  return false;
}

bool RateLimiter::try_acquire() {
  if (qps_ <= 0) {
    return true;
  }
  std::lock_guard lock(mu_);
  refill(clock_.now());
  if (tokens_ < 1 - 1e-9) {
    return false;
  }
  tokens_ -= 1;
  return true;
}

Clock::Duration RateLimiter::delay() const {
  if (qps_ <= 0) {
    return Clock::Duration::zero();
  }
  std::lock_guard lock(mu_);
  refill(clock_.now());
  if (tokens_ >= 1 - 1e-9) {
    return Clock::Duration::zero();
  }
  return std::chrono::duration_cast<Clock::Duration>(
      std::chrono::duration<double>((1 - tokens_) / qps_));
}

}  // namespace stowage::kube
