#include "base/backoff.h"

#include <algorithm>

namespace stowage {

Backoff::Backoff(BackoffPolicy policy, std::uint64_t seed)
    : policy_(policy), rng_(seed), current_ms_(static_cast<double>(policy.initial.count())) {}

std::chrono::milliseconds Backoff::next() {
  const double max_ms = static_cast<double>(policy_.max.count());
  const double base = std::min(current_ms_, max_ms);
  double delay = base;
  if (policy_.jitter > 0) {
    std::uniform_real_distribution<double> dist(1.0 - policy_.jitter, 1.0 + policy_.jitter);
    delay = base * dist(rng_);
  }
  delay = std::clamp(delay, 0.0, max_ms);
  current_ms_ = std::min(current_ms_ * policy_.factor, max_ms);
  ++attempts_;
  return std::chrono::milliseconds(static_cast<std::int64_t>(delay));
}

void Backoff::reset() {
  current_ms_ = static_cast<double>(policy_.initial.count());
  attempts_ = 0;
}

}  // namespace stowage
