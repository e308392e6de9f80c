#include "base/backoff.h"

#include <gtest/gtest.h>

namespace stowage {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, GrowsToMaxWithoutJitter) {
  Backoff b({milliseconds(800), milliseconds(30'000), 2.0, 0.0});
  const long expected[] = {800, 1600, 3200, 6400, 12800, 25600, 30000, 30000};
  for (const long e : expected) EXPECT_EQ(b.next().count(), e);
  EXPECT_EQ(b.attempts(), 8);
}

TEST(Backoff, ResetReturnsToInitial) {
  Backoff b({milliseconds(100), milliseconds(1000), 2.0, 0.0});
  b.next();
  b.next();
  b.reset();
  EXPECT_EQ(b.next().count(), 100);
  EXPECT_EQ(b.attempts(), 1);
}

TEST(Backoff, JitterStaysWithinBoundsAndVaries) {
  Backoff b({milliseconds(1000), milliseconds(1000), 2.0, 0.2}, 42);
  long lo = 1'000'000, hi = 0;
  for (int i = 0; i < 200; ++i) {
    const long d = b.next().count();
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_GE(lo, 800);
  EXPECT_LE(hi, 1000);  // capped at max
  EXPECT_LT(lo, hi);    // jitter actually spreads the delays
}

TEST(Backoff, SameSeedSameSequence) {
  Backoff a({}, 7), b({}, 7);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next(), b.next());
}

}  // namespace
}  // namespace stowage
