#include "kube/leader_election.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/clock.h"
#include "base/error.h"
#include "fake_lease_store.h"
#include "kube/encoding.h"

namespace stowage::kube {
namespace {

using namespace std::chrono_literals;
using testing::FakeLeaseStore;

// A real-time bound on waits for the elector's threads; reached only when a test is broken.
constexpr auto kDeadline = 10s;

LeaderElectionConfig config(std::string identity) {
  LeaderElectionConfig c;
  c.identity = std::move(identity);
  return c;  // client-go defaults: 15 s / 10 s / 2 s
}

TEST(LeaderElectionConfig, AcceptsDefaultsAndRejectsBadTimings) {
  EXPECT_NO_THROW(validate(config("a")));
  LeaderElectionConfig c = config("");
  EXPECT_THROW(validate(c), Error);
  c = config("a");
  c.renew_deadline = 15s;  // not below the lease duration
  EXPECT_THROW(validate(c), Error);
  c = config("a");
  c.retry_period = 9s;  // 9 × 1.2 > 10
  EXPECT_THROW(validate(c), Error);
  c.retry_period = 8s;  // 9.6 < 10
  EXPECT_NO_THROW(validate(c));
  c.retry_period = 0s;
  EXPECT_THROW(validate(c), Error);
}

TEST(LeaseRecord, RoundTripsThroughJson) {
  const Clock::WallTime t = Clock::WallTime(1'700'000'000s) + 123456us;
  const LeaseRecord record{"pod-a", 15, t, t + 2s, 3};
  const nlohmann::json object = with_lease_record({{"spec", {{"strategy", "x"}}}}, record);
  EXPECT_EQ(object["spec"]["renewTime"], format_rfc3339_micro(t + 2s));
  EXPECT_EQ(object["spec"]["strategy"], "x");  // fields it does not own are kept
  EXPECT_EQ(lease_record_from_json(object), record);
  EXPECT_EQ(lease_record_from_json(nlohmann::json::object()), LeaseRecord{});
}

TEST(LeaderElector, AcquiresAnAbsentLeaseByCreatingIt) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, config("a"));
  EXPECT_FALSE(a.guard());
  ASSERT_TRUE(a.try_acquire_or_renew());
  ASSERT_TRUE(a.guard());
  EXPECT_TRUE(a.guard()->may_act());
  EXPECT_EQ(a.guard()->term(), 0);
  const LeaseRecord r = *store.record();
  EXPECT_EQ(r.holder_identity, "a");
  EXPECT_EQ(r.lease_duration_seconds, 15);
  EXPECT_EQ(r.acquire_time, clock.wall_now());
  EXPECT_EQ(r.renew_time, clock.wall_now());
  EXPECT_EQ(a.observed_holder(), "a");
}

TEST(LeaderElector, RenewalKeepsTermAndAcquireTimeAndExtendsMayAct) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, config("a"));
  ASSERT_TRUE(a.try_acquire_or_renew());
  const LeaderGuard guard = *a.guard();
  const Clock::WallTime acquired = clock.wall_now();
  clock.advance(2s);
  ASSERT_TRUE(a.try_acquire_or_renew());
  const LeaseRecord r = *store.record();
  EXPECT_EQ(r.acquire_time, acquired);
  EXPECT_EQ(r.renew_time, clock.wall_now());
  EXPECT_EQ(r.lease_transitions, 0);
  EXPECT_EQ(a.guard()->term(), guard.term());
  clock.advance(9999ms);  // 2 s + 9.999 s: within the renewed deadline, past the first one
  EXPECT_TRUE(guard.may_act());
  clock.advance(1ms);
  EXPECT_FALSE(guard.may_act());
}

TEST(LeaderElector, AnotherValidHolderBlocksUntilItsLeaseExpires) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, config("a"));
  LeaderElector b(store, clock, config("b"));
  ASSERT_TRUE(a.try_acquire_or_renew());
  EXPECT_FALSE(b.try_acquire_or_renew());  // b observes a's record now
  EXPECT_EQ(b.observed_holder(), "a");
  clock.advance(14999ms);
  EXPECT_FALSE(b.try_acquire_or_renew());
  EXPECT_FALSE(b.is_leader());
  clock.advance(1ms);  // 15 s after b saw the record change
  ASSERT_TRUE(b.try_acquire_or_renew());
  const LeaseRecord r = *store.record();
  EXPECT_EQ(r.holder_identity, "b");
  EXPECT_EQ(r.lease_transitions, 1);
  EXPECT_EQ(b.guard()->term(), 1);
}

TEST(LeaderElector, ExpiryCountsFromLocalObservationNotRenewTime) {
  FakeClock clock;
  FakeLeaseStore store;
  // The holder's renewTime is an hour old (skewed clock, or a stale record): irrelevant.
  store.force({"x", 15, clock.wall_now() - 1h, clock.wall_now() - 1h, 4});
  LeaderElector b(store, clock, config("b"));
  EXPECT_FALSE(b.try_acquire_or_renew());
  clock.advance(10s);
  EXPECT_FALSE(b.try_acquire_or_renew());
  // x renews (the record changes): the 15 s start again from this observation, even though
  // renewTime claims to be in the future.
  store.force({"x", 15, clock.wall_now(), clock.wall_now() + 1h, 4});
  clock.advance(2s);
  EXPECT_FALSE(b.try_acquire_or_renew());
  clock.advance(14999ms);
  EXPECT_FALSE(b.try_acquire_or_renew());
  clock.advance(1ms);
  EXPECT_TRUE(b.try_acquire_or_renew());
  EXPECT_EQ(store.record()->lease_transitions, 5);
}

TEST(LeaderElector, LosingTheWriteRaceIsNotLeading) {
  FakeClock clock;
  FakeLeaseStore store;
  store.force({"x", 15, clock.wall_now(), clock.wall_now(), 0});
  LeaderElector b(store, clock, config("b"));
  EXPECT_FALSE(b.try_acquire_or_renew());
  clock.advance(15s);
  // c writes between b's read and b's PUT: b's PUT carries a stale resourceVersion (409).
  store.before_next_update([&] { store.force({"c", 15, clock.wall_now(), clock.wall_now(), 1}); });
  EXPECT_FALSE(b.try_acquire_or_renew());
  EXPECT_FALSE(b.is_leader());
  EXPECT_EQ(store.record()->holder_identity, "c");
  // The next attempt sees c's fresh record and waits for it.
  EXPECT_FALSE(b.try_acquire_or_renew());
  EXPECT_EQ(b.observed_holder(), "c");
}

TEST(LeaderElector, FailedRenewalsPastRenewDeadlineLoseLeadership) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, config("a"));
  ASSERT_TRUE(a.try_acquire_or_renew());
  const LeaderGuard guard = *a.guard();
  store.fail_with(Code::kUnavailable);
  for (int i = 0; i < 4; ++i) {
    clock.advance(2s);
    EXPECT_THROW(a.try_acquire_or_renew(), Error);
    EXPECT_TRUE(a.is_leader());
  }
  clock.advance(1999ms);  // 9.999 s
  EXPECT_TRUE(guard.may_act());
  clock.advance(1ms);
  EXPECT_FALSE(guard.may_act());
  EXPECT_THROW(a.try_acquire_or_renew(), Error);
  EXPECT_FALSE(a.is_leader());
}

TEST(LeaderElector, PausePastRenewDeadlineStopsActingBeforeAnyOneCanTakeOver) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, config("a"));
  ASSERT_TRUE(a.try_acquire_or_renew());
  const LeaderGuard old_term = *a.guard();
  clock.advance(11s);                // a was paused: the lease is still valid for others (15 s)…
  EXPECT_FALSE(old_term.may_act());  // …but a may no longer act, before doing anything
  // Nobody took the lease: a gets it back, as a new term; the old guard stays dead.
  ASSERT_TRUE(a.try_acquire_or_renew());
  EXPECT_GT(a.guard()->term(), old_term.term());
  EXPECT_TRUE(a.guard()->may_act());
  EXPECT_FALSE(old_term.may_act());
  EXPECT_EQ(store.record()->lease_transitions, 1);
}

TEST(LeaderElector, WokenLeaderFindsASuccessorAndFollows) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, config("a"));
  LeaderElector b(store, clock, config("b"));
  ASSERT_TRUE(a.try_acquire_or_renew());
  const LeaderGuard a_guard = *a.guard();
  EXPECT_FALSE(b.try_acquire_or_renew());
  clock.advance(10s);
  EXPECT_FALSE(a_guard.may_act());  // a stopped acting at 10 s…
  clock.advance(5s);
  ASSERT_TRUE(b.try_acquire_or_renew());  // …before b took over at 15 s
  clock.advance(5s);                      // a wakes at 20 s
  EXPECT_FALSE(a_guard.may_act());
  EXPECT_FALSE(a.try_acquire_or_renew());
  EXPECT_FALSE(a.is_leader());
  EXPECT_EQ(a.observed_holder(), "b");
  EXPECT_EQ(store.record()->holder_identity, "b");
}

TEST(LeaderElector, ReleaseLetsTheNextCandidateTakeOverAtOnce) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, config("a"));
  LeaderElector b(store, clock, config("b"));
  ASSERT_TRUE(a.try_acquire_or_renew());
  EXPECT_FALSE(b.try_acquire_or_renew());
  const LeaderGuard guard = *a.guard();
  ASSERT_TRUE(a.release());
  EXPECT_FALSE(guard.may_act());
  EXPECT_FALSE(a.is_leader());
  const LeaseRecord r = *store.record();
  EXPECT_EQ(r.holder_identity, "");
  EXPECT_EQ(r.lease_duration_seconds, 1);
  EXPECT_EQ(r.lease_transitions, 0);
  ASSERT_TRUE(b.try_acquire_or_renew());  // no waiting for expiry
  EXPECT_EQ(b.guard()->term(), 1);
  EXPECT_FALSE(a.release());  // not the holder any more: nothing written
  EXPECT_EQ(store.record()->holder_identity, "b");
}

// Signals from the callbacks, waited for in real time (bounded).
struct Signals {
  std::mutex mu;  // guards started, stopped, work_stopped, guard
  std::condition_variable cv;
  bool started = false;
  bool stopped = false;
  bool work_stopped = false;
  std::optional<LeaderGuard> guard;

  void attach(LeaderElectionConfig& c) {
    c.on_started_leading = [this](LeaderGuard g, std::stop_token stop) {
      {
        std::lock_guard lock(mu);
        started = true;
        guard = g;
      }
      cv.notify_all();
      std::mutex m;
      std::condition_variable_any wait;
      std::unique_lock lock(m);
      wait.wait(lock, stop, [] { return false; });
      std::lock_guard done(mu);
      work_stopped = true;
    };
    c.on_stopped_leading = [this] {
      {
        std::lock_guard lock(mu);
        stopped = true;
      }
      cv.notify_all();
    };
  }
  bool stopped_now() {
    std::lock_guard lock(mu);
    return stopped;
  }
  bool wait(bool Signals::*flag) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, kDeadline, [&] { return this->*flag; });
  }
};

TEST(LeaderElector, RunLeadsUntilStoppedThenReleases) {
  FakeClock clock;
  FakeLeaseStore store;
  Signals signals;
  LeaderElectionConfig c = config("a");
  signals.attach(c);
  LeaderElector a(store, clock, c);
  std::jthread runner([&](std::stop_token stop) { a.run(stop); });
  ASSERT_TRUE(signals.wait(&Signals::started));
  EXPECT_TRUE(signals.guard->may_act());
  runner.request_stop();
  ASSERT_TRUE(signals.wait(&Signals::stopped));
  runner.join();
  EXPECT_TRUE(signals.work_stopped);  // the work ended before on_stopped_leading
  EXPECT_FALSE(signals.guard->may_act());
  EXPECT_EQ(store.record()->holder_identity, "");
  EXPECT_EQ(store.record()->lease_duration_seconds, 1);
}

TEST(LeaderElector, RunEndsTheTermWhenRenewalsFailPastTheDeadline) {
  FakeClock clock;
  FakeLeaseStore store;
  Signals signals;
  LeaderElectionConfig c = config("a");
  signals.attach(c);
  LeaderElector a(store, clock, c);
  std::jthread runner([&](std::stop_token stop) { a.run(stop); });
  ASSERT_TRUE(signals.wait(&Signals::started));
  store.fail_with(Code::kUnavailable);
  // Step in retry periods until the deadline passes; the renew loop wakes at each step. Once the
  // term has ended nothing waits on the clock any more, and on_stopped_leading may come a moment
  // after the last step: wait for either.
  for (int i = 0; i < 6 && !signals.stopped_now(); ++i) {
    const auto give_up = std::chrono::steady_clock::now() + kDeadline;
    while (!clock.wait_for_waiters(1, 10ms) && !signals.stopped_now()) {
      ASSERT_LT(std::chrono::steady_clock::now(), give_up)
          << "the renew loop neither waits on the clock nor ended the term";
    }
    if (signals.stopped_now()) break;
    clock.advance(2s);
  }
  ASSERT_TRUE(signals.wait(&Signals::stopped));
  runner.join();  // run() returns after losing the term
  EXPECT_TRUE(signals.work_stopped);
  EXPECT_FALSE(signals.guard->may_act());
  EXPECT_FALSE(a.is_leader());
  store.fail_with(std::nullopt);
  EXPECT_EQ(store.record()->holder_identity, "a");  // lost, not stopped: no release
}

}  // namespace
}  // namespace stowage::kube
