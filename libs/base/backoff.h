// Exponential backoff with jitter, for retries and watch reconnects. Pure: it computes delays and
// never sleeps; the caller sleeps on its injected Clock. Not thread-safe; one per retry loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace stowage {

struct BackoffPolicy {
  std::chrono::milliseconds initial{800};
  std::chrono::milliseconds max{30'000};
  double factor = 2.0;
  // Each delay is drawn uniformly from [d * (1 - jitter), d * (1 + jitter)], capped at max.
  double jitter = 0.2;
};

class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy = {}, std::uint64_t seed = std::random_device{}());

  // The delay before the next attempt; grows by `factor` up to `max`.
  std::chrono::milliseconds next();
  // Back to `initial`, after a success or a healthy period.
  void reset();
  int attempts() const { return attempts_; }

 private:
  BackoffPolicy policy_;
  std::mt19937_64 rng_;
  double current_ms_;
  int attempts_ = 0;
};

}  // namespace stowage
