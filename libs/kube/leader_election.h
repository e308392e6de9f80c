// Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics: candidates poll
// the Lease every RetryPeriod (jittered); a record counts as expired LeaseDuration after this
// process last saw it change (local monotonic time, never the writer's renewTime); the leader
// renews every RetryPeriod and gives up after RenewDeadline. All writes are PUTs of the last-read
// object, so a lost race is a 409 and not a second leader.
//
//   KubeLeaseStore store(client, "stowage-system", "stowage-operator");
//   LeaderElector elector(store, real_clock(), {.identity = pod_name,
//       .on_started_leading = [&](LeaderGuard guard, std::stop_token stop) { ... },
//       .on_stopped_leading = [&] { ... }});
//   elector.run(stop);  // one term; returns when leadership is lost or `stop` is requested
//
// Work done while leading checks LeaderGuard::may_act() before every write: it turns false
// RenewDeadline after the last successful renewal, before any other candidate can consider the
// lease expired, so a process that was paused wakes up unable to act.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stop_token>
#include <string>

#include "base/clock.h"
#include "kube/client.h"

namespace stowage::kube {

// The spec of a Lease as leader election uses it.
struct LeaseRecord {
  std::string holder_identity{};  // "" when released or never held
  std::int64_t lease_duration_seconds = 0;
  std::optional<Clock::WallTime> acquire_time{};
  std::optional<Clock::WallTime> renew_time{};
  std::int64_t lease_transitions = 0;

  bool operator==(const LeaseRecord&) const = default;
};

// A Lease as read from (or written to) the store: the record, the object it came from (what the
// next PUT sends back) and its resourceVersion.
struct ObservedLease {
  LeaseRecord record{};
  std::string resource_version{};
  nlohmann::json object{};
};

// The record in a Lease object's spec. Times are parsed as RFC 3339 (MicroTime); a malformed
// time is treated as absent. Throws InvalidArgument when `lease` is not a JSON object.
LeaseRecord lease_record_from_json(const nlohmann::json& lease);
// `object` with its spec replaced by `record` (MicroTime timestamps; absent fields omitted).
nlohmann::json with_lease_record(nlohmann::json object, const LeaseRecord& record);

// Reads and writes one Lease: the seam between the election logic and the API server.
// Implementations map "already exists" to Code::kAlreadyExists and a stale write to
// Code::kConflict; any other failure is an Error the elector retries.
class LeaseStore {
 public:
  virtual ~LeaseStore() = default;
  // The lease, or std::nullopt when it does not exist.
  virtual std::optional<ObservedLease> get() = 0;
  // Creates the lease with `record`.
  virtual ObservedLease create(const LeaseRecord& record) = 0;
  // Replaces the record of `last_read`; fails with kConflict unless the lease is still at
  // last_read.resource_version.
  virtual ObservedLease update(const ObservedLease& last_read, const LeaseRecord& record) = 0;
  // "leases ns/name", for messages.
  virtual std::string describe() const = 0;
};

// The LeaseStore of leases.coordination.k8s.io `namespace_`/`name` through a kube::Client.
// Thread-safe as the Client is; the client is borrowed.
class KubeLeaseStore final : public LeaseStore {
 public:
  KubeLeaseStore(Client& client, std::string namespace_, std::string name);

  std::optional<ObservedLease> get() override;
  ObservedLease create(const LeaseRecord& record) override;
  ObservedLease update(const ObservedLease& last_read, const LeaseRecord& record) override;
  std::string describe() const override;

 private:
  Client& client_;
  ResourceRef ref_;
};

class LeaderElector;

// Proof of one term of leadership, handed to on_started_leading. Cheap to copy; valid while its
// LeaderElector lives. Thread-safe.
class LeaderGuard {
 public:
  // The term: the Lease's leaseTransitions when this process acquired it. Every acquisition by
  // any candidate increments it, so terms are unique and increase across processes (usable as a
  // fencing token).
  std::int64_t term() const { return term_; }
  // True while this term lasts and the clock is before the last successful renewal (local time
  // at which the renewing PUT was sent) + RenewDeadline. Check it before every write.
  bool may_act() const;

 private:
  friend class LeaderElector;
  LeaderGuard(const LeaderElector& elector, std::int64_t term) : elector_(&elector), term_(term) {}

  const LeaderElector* elector_;
  std::int64_t term_;
};

struct LeaderElectionConfig {
  // This candidate's name in holderIdentity (a pod name, hostname + random suffix); required.
  std::string identity{};
  // How long non-leaders wait after seeing the record change before taking over.
  std::chrono::milliseconds lease_duration{15'000};
  // How long the leader keeps acting without a successful renewal.
  std::chrono::milliseconds renew_deadline{10'000};
  // Interval of acquire and renew attempts; acquisition waits a jittered [1, 2.2) × this.
  std::chrono::milliseconds retry_period{2'000};
  // On stop while leading, write the lease released (empty holder, leaseDurationSeconds 1) so a
  // successor need not wait for expiry. The store's client must still work then: do not give it
  // the same stop token (ClientOptions::stop) as run().
  bool release_on_cancel = true;
  // Runs in its own thread for the whole term; `stop` is requested when the term ends. run()
  // joins it before returning, so it must return promptly once stopped.
  std::function<void(LeaderGuard guard, std::stop_token stop)> on_started_leading{};
  // Called by run() after a term ended and on_started_leading has returned.
  std::function<void()> on_stopped_leading{};
  // Called whenever the observed holder changes (including to this identity).
  std::function<void(const std::string& holder)> on_new_leader{};
};

// Throws InvalidArgument unless identity is set and lease_duration > renew_deadline >
// retry_period × 1.2 > 0 (client-go's checks).
void validate(const LeaderElectionConfig& config);

// Runs the election for one candidate. run() is called from one thread at a time; guards,
// is_leader(), term() and observed_holder() may be read from any thread. The store and clock
// are borrowed.
class LeaderElector {
 public:
  // Throws InvalidArgument for an invalid config (see validate()).
  LeaderElector(LeaseStore& store, Clock& clock, LeaderElectionConfig config);
  ~LeaderElector();
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // Acquires the lease (blocking, attempts every jittered RetryPeriod), runs
  // on_started_leading, renews until RenewDeadline passes without a successful renewal or
  // another holder appears, then ends the term (stops the callback, calls on_stopped_leading)
  // and returns. A stop request ends the term the same way, then releases the lease when
  // configured. Returns without leading if stopped before acquiring. Store errors are retried.
  void run(std::stop_token stop);

  // One acquire-or-renew attempt (what run() does every RetryPeriod), for tests and callers with
  // their own loop. True when this candidate holds the lease afterwards: a new term began, or the
  // current one was extended. Ends the current term first when its RenewDeadline has passed, and
  // when the lease turns out held by another candidate. Throws the store's errors other than
  // AlreadyExists and Conflict (which mean a lost race: false).
  bool try_acquire_or_renew();
  // Ends the current term and, if this candidate still holds the lease, writes it released.
  // Returns whether the release was written; store errors are logged and give false.
  bool release();

  bool is_leader() const;
  // The guard of the current term; std::nullopt when not leading.
  std::optional<LeaderGuard> guard() const;
  // The holderIdentity last read from the lease ("" when none).
  std::string observed_holder() const;

 private:
  friend class LeaderGuard;
  bool may_act(std::int64_t term) const;
  void end_term_locked();
  Clock::Duration jittered_retry();

  LeaseStore& store_;
  Clock& clock_;
  const LeaderElectionConfig config_;
  std::mt19937_64 rng_;  // jitter; used by run()'s thread only

  // Only the thread in run() / try_acquire_or_renew() / release() writes these; guards read them.
  mutable std::mutex mu_;  // guards everything below
  std::optional<ObservedLease> observed_{};
  Clock::TimePoint observed_at_{};  // local time the observed record last changed
  bool leading_ = false;
  std::int64_t term_ = -1;
  Clock::TimePoint act_until_{};  // last successful renewal's send time + renew_deadline
};

}  // namespace stowage::kube
