#include "kube/workqueue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "base/metrics.h"

namespace stowage::kube {
namespace {

using namespace std::chrono_literals;

// A real-time bound on waits for other threads; reached only when a test is broken.
constexpr auto kDeadline = 10s;

std::vector<std::string> drain(WorkQueue& q) {
  std::vector<std::string> out;
  while (auto item = q.try_get()) out.push_back(*item);
  return out;
}

// Runs get() on its own thread and publishes the result.
class Getter {
 public:
  explicit Getter(WorkQueue& q)
      : thread_([this, &q](std::stop_token stop) {
          auto item = q.get(stop);
          std::lock_guard lock(mu_);
          result_ = std::move(item);
          returned_ = true;
          cv_.notify_all();
        }) {}

  // Waits (really, bounded) for get() to return; false if it did not.
  bool wait() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return returned_; });
  }
  bool returned() {
    std::lock_guard lock(mu_);
    return returned_;
  }
  std::optional<std::string> result() {
    std::lock_guard lock(mu_);
    return result_;
  }
  void request_stop() { thread_.request_stop(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool returned_ = false;
  std::optional<std::string> result_;
  std::jthread thread_;  // last: starts after the members it uses exist
};

TEST(WorkQueue, IsFifo) {
  FakeClock clock;
  WorkQueue q(clock);
  for (const char* k : {"ns/c", "ns/a", "ns/b"}) q.add(k);
  EXPECT_EQ(q.len(), 3u);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"ns/c", "ns/a", "ns/b"}));
}

TEST(WorkQueue, DeduplicatesAddsBeforeProcessing) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add("ns/a");
  q.add("ns/a");
  q.add("ns/b");
  q.add("ns/a");
  EXPECT_EQ(q.len(), 2u);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"ns/a", "ns/b"}));
  q.done("ns/a");
  q.done("ns/b");
  EXPECT_EQ(q.len(), 0u);
  EXPECT_FALSE(q.try_get());
}

TEST(WorkQueue, ReAddWhileProcessingIsProcessedAgainAfterDone) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add("ns/a");
  ASSERT_EQ(q.try_get(), "ns/a");
  q.add("ns/a");
  q.add("ns/a");
  EXPECT_EQ(q.len(), 0u);  // never handed out while it is being processed
  EXPECT_FALSE(q.try_get());
  q.done("ns/a");
  EXPECT_EQ(q.len(), 1u);  // once, however many adds
  EXPECT_EQ(q.try_get(), "ns/a");
  q.done("ns/a");
  EXPECT_FALSE(q.try_get());
}

TEST(WorkQueue, DoneOfUnknownItemIsHarmless) {
  FakeClock clock;
  WorkQueue q(clock);
  q.done("ns/never");
  q.add("ns/a");
  q.done("ns/a");  // queued, not processing: stays queued
  EXPECT_EQ(q.try_get(), "ns/a");
}

TEST(WorkQueue, AddAfterReleasesInReadyTimeOrder) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add_after("ns/a", 30ms);
  q.add_after("ns/b", 10ms);
  q.add_after("ns/c", 20ms);
  q.add_after("ns/d", 20ms);  // same time as c: insertion order
  EXPECT_EQ(q.waiting(), 4u);
  EXPECT_EQ(q.next_ready(), clock.now() + 10ms);
  clock.advance(9ms);
  EXPECT_EQ(q.len(), 0u);
  clock.advance(1ms);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"ns/b"}));
  clock.advance(100ms);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"ns/c", "ns/d", "ns/a"}));
  EXPECT_EQ(q.waiting(), 0u);
  EXPECT_FALSE(q.next_ready());
}

TEST(WorkQueue, AddAfterKeepsTheEarlierReadyTime) {
  FakeClock clock;
  WorkQueue q(clock);
  const auto t0 = clock.now();
  q.add_after("ns/a", 50ms);
  q.add_after("ns/a", 10ms);  // earlier: wins
  q.add_after("ns/a", 30ms);  // later than 10ms: ignored
  EXPECT_EQ(q.waiting(), 1u);
  EXPECT_EQ(q.next_ready(), t0 + 10ms);
  clock.advance(10ms);
  EXPECT_EQ(q.try_get(), "ns/a");
  q.done("ns/a");
  clock.advance(100ms);  // neither the 30 ms nor the 50 ms entry is still waiting
  EXPECT_FALSE(q.try_get());
  EXPECT_EQ(q.waiting(), 0u);
}

TEST(WorkQueue, ManyEarlierReAddsLeaveOneEntry) {
  FakeClock clock;
  WorkQueue q(clock);
  const auto t0 = clock.now();
  for (int i = 10'000; i >= 1; --i) q.add_after("ns/a", std::chrono::milliseconds(i));
  q.add_after("ns/b", 5s);
  EXPECT_EQ(q.waiting(), 2u);
  EXPECT_EQ(q.next_ready(), t0 + 1ms);
  clock.advance(1ms);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"ns/a"}));
  clock.advance(1h);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"ns/b"}));
}

TEST(WorkQueue, AddAfterNonPositiveDelayAddsNow) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add_after("ns/a", 0ms);
  q.add_after("ns/b", -5ms);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"ns/a", "ns/b"}));
}

TEST(WorkQueue, DelayedItemAlreadyQueuedIsHandedOutOnce) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add("ns/a");
  q.add_after("ns/a", 10ms);
  clock.advance(10ms);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"ns/a"}));  // still dirty: the delayed add merges
}

TEST(WorkQueue, RateLimitedDelaysDoublePerItemAndForgetResets) {
  FakeClock clock;
  WorkQueue q(clock);
  for (const auto delay : {5ms, 10ms, 20ms, 40ms, 80ms}) {
    const auto before = q.num_requeues("ns/a");
    q.add_rate_limited("ns/a");
    EXPECT_EQ(q.num_requeues("ns/a"), before + 1);
    EXPECT_EQ(q.next_ready(), clock.now() + delay);
    clock.advance(delay - 1ms);
    EXPECT_FALSE(q.try_get()) << delay.count();
    clock.advance(1ms);
    ASSERT_EQ(q.try_get(), "ns/a") << delay.count();
    q.done("ns/a");
  }
  // Another item has its own count.
  q.add_rate_limited("ns/b");
  EXPECT_EQ(q.next_ready(), clock.now() + 5ms);
  EXPECT_EQ(q.num_requeues("ns/b"), 1);
  clock.advance(5ms);
  drain(q);
  q.done("ns/b");

  q.forget("ns/a");
  EXPECT_EQ(q.num_requeues("ns/a"), 0);
  q.add_rate_limited("ns/a");
  EXPECT_EQ(q.next_ready(), clock.now() + 5ms);
}

TEST(ItemExponentialBackoff, IsCappedWithoutOverflow) {
  ItemExponentialBackoff backoff(5ms, 1000s);
  Clock::Duration last{};
  for (int i = 0; i < 18; ++i) last = backoff.when("k");
  EXPECT_EQ(last, std::chrono::milliseconds(5 << 17));  // 655.36 s
  EXPECT_EQ(backoff.when("k"), 1000s);                  // 1310.72 s, capped
  for (int i = 0; i < 5000; ++i) EXPECT_EQ(backoff.when("k"), 1000s);
  EXPECT_EQ(backoff.failures("k"), 5019);
  backoff.forget("k");
  EXPECT_EQ(backoff.when("k"), 5ms);
}

TEST(TokenBucket, AllowsBurstThenRefillsAtQps) {
  FakeClock clock;
  TokenBucket bucket(10.0, 100, clock.now());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(bucket.reserve(clock.now()), 0ms) << i;
  EXPECT_EQ(bucket.reserve(clock.now()), 100ms);
  EXPECT_EQ(bucket.reserve(clock.now()), 200ms);
  clock.advance(200ms);  // repays the debt exactly
  EXPECT_EQ(bucket.reserve(clock.now()), 100ms);
  clock.advance(1h);  // refills to the burst, no further
  for (int i = 0; i < 100; ++i) EXPECT_EQ(bucket.reserve(clock.now()), 0ms) << i;
  EXPECT_EQ(bucket.reserve(clock.now()), 100ms);
}

TEST(WorkQueue, TokenBucketLimitsABurstOfDistinctItems) {
  FakeClock clock;
  WorkQueue q(clock);  // default: 5 ms per item, 10 qps burst 100 overall
  for (int i = 0; i < 103; ++i) q.add_rate_limited("ns/" + std::to_string(i));
  clock.advance(5ms);
  EXPECT_EQ(q.len(), 100u);  // the burst, each after its 5 ms per-item delay
  clock.advance(94ms);
  EXPECT_EQ(q.len(), 100u);
  clock.advance(1ms);  // 100 ms
  EXPECT_EQ(q.len(), 101u);
  clock.advance(100ms);
  EXPECT_EQ(q.len(), 102u);
  clock.advance(100ms);
  EXPECT_EQ(q.len(), 103u);
  const auto items = drain(q);
  EXPECT_EQ(items[100], "ns/100");
  EXPECT_EQ(items[102], "ns/102");
}

TEST(WorkQueue, RateLimitIsConfigurable) {
  FakeClock clock;
  WorkQueueOptions options;
  options.rate_limit = {.base_delay = 1s, .max_delay = 4s, .qps = 0, .burst = 0};
  WorkQueue q(clock, options);
  for (const auto delay : {1s, 2s, 4s, 4s}) {
    q.add_rate_limited("ns/a");
    EXPECT_EQ(q.next_ready(), clock.now() + delay);
    clock.advance(delay);
    ASSERT_EQ(q.try_get(), "ns/a");
    q.done("ns/a");
  }
  // A bucket of 1 qps, burst 2, with no per-item delay.
  options.rate_limit = {.base_delay = 0s, .max_delay = 0s, .qps = 1, .burst = 2};
  WorkQueue bucket(clock, options);
  bucket.add_rate_limited("ns/a");
  bucket.add_rate_limited("ns/b");
  bucket.add_rate_limited("ns/c");
  EXPECT_EQ(bucket.len(), 2u);
  EXPECT_EQ(bucket.next_ready(), clock.now() + 1s);
}

TEST(WorkQueue, RejectsUnusableRateLimits) {
  FakeClock clock;
  WorkQueueOptions options;
  options.rate_limit.burst = 0;
  EXPECT_THROW(WorkQueue(clock, options), Error);
  options = {};
  options.rate_limit.max_delay = 1ms;  // below base
  EXPECT_THROW(WorkQueue(clock, options), Error);
}

TEST(WorkQueue, GetBlocksUntilAnAdd) {
  FakeClock clock;
  WorkQueue q(clock);
  Getter getter(q);
  ASSERT_TRUE(clock.wait_for_waiters(1, kDeadline));  // parked in get()
  EXPECT_FALSE(getter.returned());
  q.add("ns/a");
  ASSERT_TRUE(getter.wait());
  EXPECT_EQ(getter.result(), "ns/a");
}

TEST(WorkQueue, GetWakesWhenADelayedItemBecomesReady) {
  FakeClock clock;
  WorkQueue q(clock);
  const auto t0 = clock.now();
  Getter getter(q);
  ASSERT_TRUE(clock.wait_for_waiters(1, kDeadline));
  q.add_after("ns/a", 10ms);
  clock.advance(9ms);
  EXPECT_EQ(q.len(), 0u);
  clock.advance(1ms);
  ASSERT_TRUE(getter.wait());
  EXPECT_EQ(getter.result(), "ns/a");
  EXPECT_EQ(clock.now(), t0 + 10ms);
}

TEST(WorkQueue, ShutDownUnblocksGet) {
  FakeClock clock;
  WorkQueue q(clock);
  Getter getter(q);
  ASSERT_TRUE(clock.wait_for_waiters(1, kDeadline));
  q.shut_down();
  ASSERT_TRUE(getter.wait());
  EXPECT_FALSE(getter.result());
  EXPECT_TRUE(q.shutting_down());
}

TEST(WorkQueue, StopTokenUnblocksGet) {
  FakeClock clock;
  WorkQueue q(clock);
  Getter getter(q);
  ASSERT_TRUE(clock.wait_for_waiters(1, kDeadline));
  getter.request_stop();
  ASSERT_TRUE(getter.wait());
  EXPECT_FALSE(getter.result());
  // The queue still works for others.
  q.add("ns/a");
  EXPECT_EQ(q.try_get(), "ns/a");
}

TEST(WorkQueue, GetReturnsNothingOnceStopRequestedEvenWithItemsQueued) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add("ns/a");
  std::stop_source stop;
  stop.request_stop();
  EXPECT_FALSE(q.get(stop.get_token()));
  EXPECT_EQ(q.len(), 1u);
}

TEST(WorkQueue, AfterShutDownQueuedItemsDrainAndAddsAreIgnored) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add("ns/a");
  q.add("ns/b");
  ASSERT_EQ(q.try_get(), "ns/a");
  q.add("ns/a");  // dirty while processing
  q.add_after("ns/c", 1s);
  q.shut_down();
  q.add("ns/d");
  q.add_after("ns/e", 1ms);
  q.add_rate_limited("ns/f");
  clock.advance(1h);
  EXPECT_EQ(q.waiting(), 0u);  // delayed items were dropped
  EXPECT_EQ(q.get(std::stop_token()), "ns/b");
  q.done("ns/b");
  q.done("ns/a");  // was re-added before the shutdown: handed out again
  EXPECT_EQ(q.get(std::stop_token()), "ns/a");
  q.done("ns/a");
  EXPECT_FALSE(q.get(std::stop_token()));  // empty and shut down: does not block
}

TEST(WorkQueue, ShutDownWithDrainWaitsForInFlightItems) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add("ns/a");
  ASSERT_EQ(q.try_get(), "ns/a");
  std::atomic<int> drained{-1};
  std::jthread drainer([&] { drained = q.shut_down_with_drain(clock.now() + 30s) ? 1 : 0; });
  ASSERT_TRUE(clock.wait_for_waiters(1, kDeadline));  // parked until done() or the deadline
  EXPECT_EQ(drained.load(), -1);
  EXPECT_TRUE(q.shutting_down());
  q.done("ns/a");
  drainer.join();
  EXPECT_EQ(drained.load(), 1);
}

TEST(WorkQueue, ShutDownWithDrainGivesUpAtTheDeadline) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add("ns/a");
  ASSERT_EQ(q.try_get(), "ns/a");
  std::atomic<int> drained{-1};
  std::jthread drainer([&] { drained = q.shut_down_with_drain(clock.now() + 30s) ? 1 : 0; });
  ASSERT_TRUE(clock.wait_for_waiters(1, kDeadline));
  clock.advance(29s);
  EXPECT_EQ(drained.load(), -1);
  clock.advance(1s);
  drainer.join();
  EXPECT_EQ(drained.load(), 0);
  EXPECT_TRUE(q.shut_down_with_drain(clock.now()) == false);
  q.done("ns/a");
  EXPECT_TRUE(q.shut_down_with_drain(clock.now()));
}

TEST(WorkQueue, DepthGaugeFollowsReadyItems) {
  FakeClock clock;
  Gauge depth;
  WorkQueueOptions options;
  options.depth = &depth;
  WorkQueue q(clock, options);
  q.add("ns/a");
  q.add("ns/b");
  q.add_after("ns/c", 1s);
  EXPECT_EQ(depth.value(), 2);
  ASSERT_TRUE(q.try_get());
  EXPECT_EQ(depth.value(), 1);
  clock.advance(1s);
  EXPECT_EQ(q.len(), 2u);
  EXPECT_EQ(depth.value(), 2);
}

// Several producers add keys at random, several consumers process them (re-adding some while
// processing). No key is ever processed by two consumers at once, and every add is followed by a
// processing of that key.
TEST(WorkQueue, ConcurrentProducersAndConsumersNeverProcessAKeyTwiceAtOnce) {
  FakeClock clock;
  WorkQueue q(clock);
  constexpr int kKeys = 16;
  constexpr int kProducers = 4;
  constexpr int kConsumers = 4;
  constexpr int kAddsPerProducer = 20'000;

  std::mutex mu;  // guards in_progress, pending
  std::set<std::string> in_progress;
  std::set<std::string> pending;  // added since their last processing started
  std::atomic<int> overlaps{0};
  std::atomic<int> processed{0};
  std::atomic<int> adds{0};
  // Adds hold it shared; the test holds it exclusively to stop them before shutting down, so
  // no add is counted as pending but dropped by the shut-down queue.
  std::shared_mutex gate;
  bool accepting = true;  // guarded by gate

  auto add = [&](const std::string& key) {
    std::shared_lock open(gate);
    if (!accepting) return;
    {
      std::lock_guard lock(mu);
      pending.insert(key);
    }
    ++adds;
    q.add(key);
  };

  std::vector<std::jthread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&, c](std::stop_token stop) {
      std::mt19937 rng(static_cast<unsigned>(c));
      while (auto key = q.get(stop)) {
        {
          std::lock_guard lock(mu);
          if (!in_progress.insert(*key).second) ++overlaps;
          pending.erase(*key);
        }
        if (rng() % 8 == 0) add(*key);  // re-add while processing
        for (unsigned i = rng() % 50; i > 0; --i) std::this_thread::yield();
        {
          std::lock_guard lock(mu);
          in_progress.erase(*key);
        }
        ++processed;
        q.done(*key);
      }
    });
  }
  {
    std::vector<std::jthread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        std::mt19937 rng(static_cast<unsigned>(100 + p));
        for (int i = 0; i < kAddsPerProducer; ++i) {
          add("ns/key-" + std::to_string(rng() % kKeys));
          if (rng() % 16 == 0) std::this_thread::yield();
        }
      });
    }
  }  // producers joined
  {
    std::unique_lock closed(gate);
    accepting = false;
  }
  // Consumers hand out what is left (including re-adds) and return once the queue is empty.
  q.shut_down();
  for (auto& c : consumers) c.join();

  EXPECT_EQ(overlaps.load(), 0);
  std::lock_guard lock(mu);
  EXPECT_TRUE(pending.empty()) << pending.size() << " keys added but never processed after";
  EXPECT_GT(processed.load(), kKeys);
  EXPECT_LE(processed.load(), adds.load());
  EXPECT_EQ(q.len(), 0u);
}

}  // namespace
}  // namespace stowage::kube
