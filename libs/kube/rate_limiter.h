// A token bucket on an injected Clock: `qps` tokens a second, at most `burst` saved up. Client
// takes one token per request so a controller's bursts cannot flood the API server. Thread-safe:
// concurrent callers queue up, each reserving its own slot.
#pragma once

#include <mutex>
#include <stop_token>

#include "base/clock.h"

namespace stowage::kube {

class RateLimiter {
 public:
  // qps <= 0: unlimited. burst < 1 is treated as 1. The bucket starts full.
  RateLimiter(double qps, int burst, Clock& clock);

  // Takes a token, sleeping on the clock until one is due. Returns false (and takes nothing)
  // when `stop` is requested first.
  bool acquire(std::stop_token stop = {});
  // Takes a token only if one is available now.
  bool try_acquire();
  // How long an acquire() now would wait (for tests and metrics).
  Clock::Duration delay() const;

 private:
  void refill(Clock::TimePoint now) const;

  const double qps_;
  const double burst_;
  Clock& clock_;
  mutable std::mutex mu_;  // guards tokens_, last_
  mutable double tokens_;  // may go negative: reservations of callers still waiting
  mutable Clock::TimePoint last_;
};

}  // namespace stowage::kube
