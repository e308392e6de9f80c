#include "kube/rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace stowage::kube {
namespace {

using std::chrono::milliseconds;

TEST(RateLimiter, AllowsABurstThenQps) {
  FakeClock clock;
  RateLimiter limiter(10, 3, clock);
  EXPECT_TRUE(limiter.try_acquire());
  EXPECT_TRUE(limiter.try_acquire());
  EXPECT_TRUE(limiter.try_acquire());
  EXPECT_FALSE(limiter.try_acquire());
  EXPECT_EQ(limiter.delay(), milliseconds(100));
  clock.advance(milliseconds(99));
  EXPECT_FALSE(limiter.try_acquire());
  clock.advance(milliseconds(1));
  EXPECT_TRUE(limiter.try_acquire());
  // Idle time refills up to the burst, no more.
  clock.advance(std::chrono::hours(1));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.try_acquire());
  EXPECT_FALSE(limiter.try_acquire());
}

TEST(RateLimiter, AcquireSleepsOnTheClockInArrivalOrder) {
  FakeClock clock;
  RateLimiter limiter(2, 1, clock);  // one every 500 ms
  EXPECT_TRUE(limiter.acquire());    // the burst
  std::atomic<int> done{0};
  std::jthread first([&] {
    EXPECT_TRUE(limiter.acquire());
    ++done;
  });
  ASSERT_TRUE(clock.wait_for_waiters(1, milliseconds(5000)));
  std::jthread second([&] {
    EXPECT_TRUE(limiter.acquire());
    ++done;
  });
  ASSERT_TRUE(clock.wait_for_waiters(2, milliseconds(5000)));
  EXPECT_EQ(done.load(), 0);
  clock.advance(milliseconds(500));
  first.join();
  EXPECT_EQ(done.load(), 1);
  ASSERT_TRUE(clock.wait_for_waiters(1, milliseconds(5000)));  // the second still waits
  clock.advance(milliseconds(500));
  second.join();
  EXPECT_EQ(done.load(), 2);
}

TEST(RateLimiter, StopEndsTheWaitAndGivesTheSlotBack) {
  FakeClock clock;
  RateLimiter limiter(1, 1, clock);
  EXPECT_TRUE(limiter.acquire());
  std::stop_source stop;
  std::atomic<bool> result{true};
  std::jthread waiter([&] { result = limiter.acquire(stop.get_token()); });
  ASSERT_TRUE(clock.wait_for_waiters(1, milliseconds(5000)));
  stop.request_stop();
  waiter.join();
  EXPECT_FALSE(result.load());
  EXPECT_EQ(limiter.delay(), std::chrono::seconds(1));  // as if the waiter never came
}

TEST(RateLimiter, ZeroQpsIsUnlimited) {
  FakeClock clock;
  RateLimiter limiter(0, 1, clock);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.acquire());
  EXPECT_EQ(limiter.delay(), Clock::Duration::zero());
}

}  // namespace
}  // namespace stowage::kube
