#include "base/clock.h"

#include <gtest/gtest.h>

#include <thread>

namespace stowage {
namespace {

using namespace std::chrono_literals;

TEST(FakeClock, AdvancesOnlyWhenTold) {
  FakeClock clock;
  const auto t0 = clock.now();
  const auto w0 = clock.wall_now();
  EXPECT_EQ(clock.now(), t0);
  clock.advance(5s);
  EXPECT_EQ(clock.now() - t0, 5s);
  EXPECT_EQ(clock.wall_now() - w0, 5s);
}

TEST(FakeClock, SleeperWakesWhenTimeReached) {
  FakeClock clock;
  std::atomic<bool> woke{false};
  std::jthread sleeper([&](std::stop_token st) {
    EXPECT_TRUE(clock.sleep_for(10s, st));
    woke = true;
  });
  ASSERT_TRUE(clock.wait_for_waiters(1, 5s));
  clock.advance(9s);
  EXPECT_FALSE(woke.load());
  EXPECT_EQ(clock.waiters(), 1);
  clock.advance(1s);
  sleeper.join();
  EXPECT_TRUE(woke.load());
}

TEST(FakeClock, StopInterruptsSleep) {
  FakeClock clock;
  std::atomic<bool> result{true};
  std::jthread sleeper([&](std::stop_token st) { result = clock.sleep_for(1h, st); });
  ASSERT_TRUE(clock.wait_for_waiters(1, 5s));
  sleeper.request_stop();
  sleeper.join();
  EXPECT_FALSE(result.load());
}

TEST(RealClock, StopInterruptsSleep) {
  std::stop_source stop;
  stop.request_stop();
  EXPECT_FALSE(real_clock().sleep_for(1h, stop.get_token()));
}

TEST(RealClock, ShortSleepCompletes) {
  const auto t0 = real_clock().now();
  EXPECT_TRUE(real_clock().sleep_for(1ms, std::stop_token{}));
  EXPECT_GE(real_clock().now() - t0, 1ms);
}

}  // namespace
}  // namespace stowage
