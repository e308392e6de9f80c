#include "kube/controller.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "base/metrics.h"

namespace stowage::kube {
namespace {

using namespace std::chrono_literals;

// A real-time bound on waits for worker threads; reached only when a test is broken.
constexpr auto kDeadline = 10s;

struct Call {
  std::string key;
  Clock::TimePoint at;
};

struct Outcome {
  std::string key;
  ReconcileResult result;
};

// Records reconcile calls and outcomes; lets the test wait for the n-th outcome.
class Recorder {
 public:
  explicit Recorder(Clock& clock) : clock_(clock) {}

  void called(const std::string& key) {
    std::lock_guard lock(mu_);
    calls_.push_back({key, clock_.now()});
    cv_.notify_all();
  }
  std::function<void(const std::string&, ReconcileResult)> hook() {
    return [this](const std::string& key, ReconcileResult result) {
      std::lock_guard lock(mu_);
      outcomes_.push_back({key, result});
      cv_.notify_all();
    };
  }
  bool wait_outcomes(std::size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return outcomes_.size() >= n; });
  }
  bool wait_calls(std::size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return calls_.size() >= n; });
  }
  std::vector<Call> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  std::vector<Outcome> outcomes() {
    std::lock_guard lock(mu_);
    return outcomes_;
  }

 private:
  Clock& clock_;
  std::mutex mu_;  // guards calls_, outcomes_
  std::condition_variable cv_;
  std::vector<Call> calls_;
  std::vector<Outcome> outcomes_;
};

// A gate a reconcile blocks on until the test opens it.
class Gate {
 public:
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool wait() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

ControllerOptions options_for(Recorder& rec, int workers = 1) {
  ControllerOptions options;
  options.name = "test";
  options.workers = workers;
  options.after_reconcile = rec.hook();
  return options;
}

TEST(Controller, ErrorsRequeueWithExponentialBackoff) {
  FakeClock clock;
  Recorder rec(clock);
  std::atomic<int> calls{0};
  Controller c(
      clock,
      [&](const std::string& key) {
        rec.called(key);
        if (++calls <= 3) throw Error(Code::kUnavailable, "apiserver unavailable");
        return Action::await_change();
      },
      options_for(rec));
  c.start();
  const auto t0 = clock.now();
  c.queue().add("ns/a");

  Clock::Duration elapsed{0};
  std::size_t n = 0;
  for (const auto delay : {5ms, 10ms, 20ms}) {
    ++n;
    ASSERT_TRUE(rec.wait_outcomes(n));
    EXPECT_EQ(rec.outcomes()[n - 1].result, ReconcileResult::kError);
    EXPECT_EQ(rec.calls()[n - 1].at, t0 + elapsed);
    EXPECT_EQ(c.queue().num_requeues("ns/a"), static_cast<int>(n));
    EXPECT_EQ(c.queue().next_ready(), t0 + elapsed + delay);
    clock.advance(delay - 1ms);
    EXPECT_EQ(c.queue().len(), 0u);  // not ready a millisecond early
    clock.advance(1ms);
    elapsed += delay;
  }
  ASSERT_TRUE(rec.wait_outcomes(4));
  EXPECT_EQ(rec.outcomes()[3].result, ReconcileResult::kSuccess);
  EXPECT_EQ(rec.calls()[3].at, t0 + 35ms);
  EXPECT_EQ(c.queue().num_requeues("ns/a"), 0);  // success forgets the failures
  EXPECT_FALSE(c.queue().next_ready());
  EXPECT_TRUE(c.stop());
  EXPECT_EQ(rec.calls().size(), 4u);
}

TEST(Controller, AnyExceptionRequeuesWithBackoff) {
  FakeClock clock;
  Recorder rec(clock);
  std::atomic<int> calls{0};
  Controller c(
      clock,
      [&](const std::string& key) -> Action {
        rec.called(key);
        const int n = ++calls;
        if (n == 1) throw std::runtime_error("plain exception");
        if (n == 2) throw 42;
        return Action::await_change();
      },
      options_for(rec));
  c.start();
  const auto t0 = clock.now();
  c.queue().add("ns/a");
  ASSERT_TRUE(rec.wait_outcomes(1));
  EXPECT_EQ(c.queue().next_ready(), t0 + 5ms);
  clock.advance(5ms);
  ASSERT_TRUE(rec.wait_outcomes(2));
  EXPECT_EQ(c.queue().next_ready(), t0 + 15ms);
  clock.advance(10ms);
  ASSERT_TRUE(rec.wait_outcomes(3));
  const auto outcomes = rec.outcomes();
  EXPECT_EQ(outcomes[0].result, ReconcileResult::kError);
  EXPECT_EQ(outcomes[1].result, ReconcileResult::kError);
  EXPECT_EQ(outcomes[2].result, ReconcileResult::kSuccess);
}

TEST(Controller, RequeueAfterDelaysTheNextReconcileAndResetsBackoff) {
  FakeClock clock;
  Recorder rec(clock);
  std::atomic<int> calls{0};
  Controller c(
      clock,
      [&](const std::string& key) {
        rec.called(key);
        if (++calls == 1) throw Error(Code::kConflict, "conflict");
        return Action::requeue_after(30s);
      },
      options_for(rec));
  c.start();
  const auto t0 = clock.now();
  c.queue().add("ns/a");
  ASSERT_TRUE(rec.wait_outcomes(1));
  clock.advance(5ms);
  ASSERT_TRUE(rec.wait_outcomes(2));
  EXPECT_EQ(rec.outcomes()[1].result, ReconcileResult::kRequeueAfter);
  EXPECT_EQ(c.queue().num_requeues("ns/a"), 0);
  EXPECT_EQ(c.queue().next_ready(), t0 + 5ms + 30s);
  clock.advance(30s - 1ms);
  EXPECT_EQ(c.queue().len(), 0u);
  clock.advance(1ms);
  ASSERT_TRUE(rec.wait_outcomes(3));
  EXPECT_EQ(rec.calls()[2].at, t0 + 5ms + 30s);
}

TEST(Controller, AwaitChangeReconcilesAgainOnlyWhenReAdded) {
  FakeClock clock;
  Recorder rec(clock);
  Controller c(
      clock,
      [&](const std::string& key) {
        rec.called(key);
        return Action::await_change();
      },
      options_for(rec));
  c.start();
  c.queue().add("ns/a");
  ASSERT_TRUE(rec.wait_outcomes(1));
  // Nothing is queued or waiting, so nothing can run however long we wait.
  clock.advance(24h);
  EXPECT_EQ(c.queue().len(), 0u);
  EXPECT_EQ(c.queue().waiting(), 0u);
  EXPECT_FALSE(c.queue().next_ready());
  c.queue().add("ns/a");
  ASSERT_TRUE(rec.wait_outcomes(2));
  EXPECT_EQ(rec.calls().size(), 2u);
}

TEST(Controller, StopWaitsForAnInFlightReconcile) {
  FakeClock clock;
  Recorder rec(clock);
  Gate gate;
  std::atomic<bool> finished{false};
  Controller c(
      clock,
      [&](const std::string& key) {
        rec.called(key);
        gate.wait();
        finished = true;
        return Action::await_change();
      },
      options_for(rec));
  c.start();
  c.queue().add("ns/a");
  ASSERT_TRUE(rec.wait_calls(1));

  std::atomic<int> stopped{-1};
  std::jthread stopper([&] { stopped = c.stop() ? 1 : 0; });
  // The only thread that can sleep on the clock now is stop(), waiting for the reconcile.
  ASSERT_TRUE(clock.wait_for_waiters(1, kDeadline));
  EXPECT_EQ(stopped.load(), -1);
  EXPECT_FALSE(finished.load());
  gate.open();
  stopper.join();
  EXPECT_EQ(stopped.load(), 1);
  EXPECT_TRUE(finished.load());
  EXPECT_EQ(rec.outcomes().size(), 1u);  // the workers have exited: the hook has run
}

TEST(Controller, StopGivesUpAfterTheGracePeriod) {
  FakeClock clock;
  Recorder rec(clock);
  Gate gate;
  ControllerOptions options = options_for(rec);
  options.stop_grace = 5s;
  Controller c(
      clock,
      [&](const std::string& key) {
        rec.called(key);
        gate.wait();
        return Action::await_change();
      },
      options);
  c.start();
  c.queue().add("ns/a");
  ASSERT_TRUE(rec.wait_calls(1));
  std::atomic<int> stopped{-1};
  std::jthread stopper([&] { stopped = c.stop() ? 1 : 0; });
  ASSERT_TRUE(clock.wait_for_waiters(1, kDeadline));
  clock.advance(4s);
  EXPECT_EQ(stopped.load(), -1);
  clock.advance(1s);
  stopper.join();
  EXPECT_EQ(stopped.load(), 0);
  gate.open();  // lets the destructor join the worker
}

TEST(Controller, StopDropsQueuedKeysAndIgnoresNewOnes) {
  FakeClock clock;
  Recorder rec(clock);
  Gate gate;
  Controller c(
      clock,
      [&](const std::string& key) {
        rec.called(key);
        if (key == "ns/a") gate.wait();
        return Action::await_change();
      },
      options_for(rec));
  c.start();
  c.queue().add("ns/a");
  ASSERT_TRUE(rec.wait_calls(1));
  c.queue().add("ns/b");  // queued behind the in-flight reconcile
  std::jthread stopper([&] { EXPECT_TRUE(c.stop()); });
  ASSERT_TRUE(clock.wait_for_waiters(1, kDeadline));
  gate.open();
  stopper.join();
  c.queue().add("ns/c");
  EXPECT_EQ(c.queue().len(), 1u);  // ns/b, never taken; ns/c ignored
  const auto calls = rec.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].key, "ns/a");
  EXPECT_TRUE(c.stop());  // idempotent
}

TEST(Controller, NeverReconcilesOneKeyTwiceAtOnce) {
  FakeClock clock;
  Recorder rec(clock);
  constexpr int kKeys = 8;
  std::mutex mu;  // guards in_progress, pending
  std::set<std::string> in_progress;
  std::set<std::string> pending;
  std::condition_variable all_done;
  std::atomic<int> overlaps{0};
  std::atomic<int> errors{0};

  ControllerOptions options = options_for(rec, 4);
  options.after_reconcile = nullptr;
  options.queue.rate_limit.qps = 0;
  options.queue.rate_limit.base_delay = 0ms;  // errors requeue at once: more contention
  options.queue.rate_limit.max_delay = 0ms;
  Controller c(
      clock,
      [&](const std::string& key) {
        {
          std::lock_guard lock(mu);
          if (!in_progress.insert(key).second) ++overlaps;
          pending.erase(key);
        }
        std::mt19937 rng(std::hash<std::string>{}(key) + static_cast<unsigned>(errors.load()));
        for (unsigned i = rng() % 100; i > 0; --i) std::this_thread::yield();
        const bool fail = rng() % 10 == 0;
        {
          std::lock_guard lock(mu);
          in_progress.erase(key);
          if (pending.empty()) all_done.notify_all();
        }
        if (fail) {
          ++errors;
          throw Error(Code::kUnavailable, "flaky");
        }
        return Action::await_change();
      },
      options);
  c.start();
  {
    std::vector<std::jthread> producers;
    for (int p = 0; p < 3; ++p) {
      producers.emplace_back([&, p] {
        std::mt19937 rng(static_cast<unsigned>(p));
        for (int i = 0; i < 3000; ++i) {
          const std::string key = "ns/k" + std::to_string(rng() % kKeys);
          {
            std::lock_guard lock(mu);
            pending.insert(key);
          }
          c.queue().add(key);
        }
      });
    }
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(all_done.wait_for(lock, kDeadline, [&] { return pending.empty(); }));
  }
  EXPECT_TRUE(c.stop());
  EXPECT_EQ(overlaps.load(), 0);
}

TEST(Controller, CountsReconcilesErrorsAndQueueDepth) {
  FakeClock clock;
  Recorder rec(clock);
  MetricsRegistry registry;
  const ControllerMetrics metrics(registry);
  ControllerOptions options = options_for(rec);
  options.name = "nodecache";
  options.metrics = &metrics;
  std::atomic<int> calls{0};
  Controller c(
      clock,
      [&](const std::string& key) {
        if (key == "ns/b") return Action::requeue_after(1h);
        if (++calls == 1) throw Error(Code::kUnavailable, "down");
        return Action::await_change();
      },
      options);
  c.queue().add("ns/a");
  c.queue().add("ns/b");
  EXPECT_EQ(metrics.depth.with({"nodecache"}).value(), 2);
  c.start();
  ASSERT_TRUE(rec.wait_outcomes(2));
  clock.advance(5ms);
  ASSERT_TRUE(rec.wait_outcomes(3));
  EXPECT_TRUE(c.stop());
  EXPECT_EQ(metrics.reconciles.with({"nodecache", "success"}).value(), 1);
  EXPECT_EQ(metrics.reconciles.with({"nodecache", "requeue_after"}).value(), 1);
  EXPECT_EQ(metrics.reconciles.with({"nodecache", "error"}).value(), 1);
  EXPECT_EQ(metrics.errors.with({"nodecache"}).value(), 1);
  EXPECT_EQ(metrics.depth.with({"nodecache"}).value(), 0);
  const std::string text = registry.render();
  EXPECT_NE(text.find("stowage_controller_reconcile_errors_total{controller=\"nodecache\"} 1"),
            std::string::npos)
      << text;
}

TEST(Controller, RejectsBadWorkerCounts) {
  FakeClock clock;
  const Reconciler noop = [](const std::string&) { return Action::await_change(); };
  for (int workers : {0, -1, kMaxControllerWorkers + 1}) {
    ControllerOptions options;
    options.workers = workers;
    EXPECT_THROW(Controller(clock, noop, options), Error) << workers;
  }
  ControllerOptions options;
  options.workers = kMaxControllerWorkers;
  Controller c(clock, noop, options);
  c.start();
  EXPECT_THROW(c.start(), Error);
  EXPECT_TRUE(c.stop());
}

}  // namespace
}  // namespace stowage::kube
