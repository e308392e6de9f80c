// The stowage-operator process as a class: informers on RegistryConfig, ImageCache, NodeCache,
// Node (metadata only) and the operator's own ConfigMaps feed one reconcile loop (a work queue
// with a single key, so bursts of events coalesce) that resolves image tags to digests, runs
// plan_cluster() and writes the Plan in the planner's order. Only the Lease holder writes.
//   Operator op(options, client, real_clock(), registry_transport, metrics);
//   std::jthread t([&](std::stop_token s) { op.run(s); });   // returns once `s` is requested
// The client, clock, transport and metrics registry are borrowed and must outlive the Operator.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "http/transport.h"
#include "kube/client.h"
#include "kube/informer.h"
#include "kube/leader_election.h"
#include "kube/workqueue.h"
#include "operator/planner.h"
#include "operator/rollout.h"

namespace stowage::op {

inline constexpr std::string_view kFieldManager = "stowage-operator";
inline constexpr std::string_view kManagedByLabel = "app.kubernetes.io/managed-by";
inline constexpr std::string_view kManagedByValue = "stowage";
inline constexpr std::string_view kHashLabel = "stowage.io/registries-hash";

struct OperatorOptions {
  // Where the registries ConfigMaps (and the Lease) live.
  std::string namespace_ = "stowage-system";
  MaxUnavailable max_unavailable{};
  bool leader_elect = true;
  std::string leader_election_id = "stowage-operator";  // the Lease's name
  std::string identity{};                               // holderIdentity; required with election
  std::chrono::milliseconds lease_duration{15'000};
  std::chrono::milliseconds renew_deadline{10'000};
  std::chrono::milliseconds retry_period{2'000};
  // How often the whole cluster is planned again without any event; also the tag refresh
  // interval of an ImageCache that does not set spec.refreshInterval.
  std::chrono::seconds refresh_interval{std::chrono::minutes(10)};
  // How soon a tag that could not be resolved is tried again (never later than its interval).
  std::chrono::seconds unresolved_retry{std::chrono::seconds(30)};
  // Registry hosts reached without TLS verification (plain HTTP when they do not answer HTTPS),
  // besides those a RegistryConfig lists as insecure.
  std::vector<std::string> insecure_registries{};
  // Whether the MachineConfig API is served (passed to the planner).
  bool machine_config_api = false;
};

// Counters for tests and logs; metrics carry the same numbers.
struct OperatorStats {
  std::int64_t reconciles = 0;
  std::int64_t errors = 0;
  std::int64_t writes = 0;       // API writes: creates, applies, status writes, deletes
  std::int64_t resolutions = 0;  // registry HEADs for tags
  std::int64_t nodes_planned = 0;
};

class Operator {
 public:
  // Registers the informers and metric families; starts nothing.
  Operator(OperatorOptions options, kube::Client& client, Clock& clock,
           http::Transport& registry_transport, MetricsRegistry& metrics);
  ~Operator();
  Operator(const Operator&) = delete;
  Operator& operator=(const Operator&) = delete;

  // Starts the informers, waits for their first lists, then reconciles while leading (always
  // without leader election) until `stop` is requested. Stops the informers before returning.
  void run(std::stop_token stop);

  // Ready once every informer has synced. Thread-safe.
  bool ready() const;
  bool leading() const { return leading_.load(); }
  OperatorStats stats() const;

 private:
  struct Resolved {
    std::optional<std::string> digest{};
    std::optional<Unresolved> failure{};
    Clock::TimePoint at{};
    Clock::Duration interval{};
  };

  void lead(const std::optional<kube::LeaderGuard>& guard, std::stop_token stop);
  // One reconcile; returns the delay until the next planned one.
  Clock::Duration reconcile(const std::optional<kube::LeaderGuard>& guard);
  PlannerInput build_input();
  Clock::Duration resolve_tags(PlannerInput& input);
  Resolved resolve_one(const std::string& name, const std::set<std::string>& insecure);
  void apply_plan(const Plan& plan, const std::optional<kube::LeaderGuard>& guard);
  void check_may_act(const std::optional<kube::LeaderGuard>& guard) const;
  void count_write();

  const OperatorOptions options_;
  kube::Client& client_;
  Clock& clock_;
  http::Transport& registry_transport_;

  Family<Counter>& reconciles_family_;
  Family<Counter>& resolutions_family_;
  Counter& reconciles_ok_;
  Counter& reconciles_error_;
  Counter& errors_;
  Counter& writes_;
  Counter& resolutions_ok_;
  Counter& resolutions_failed_;
  Gauge& nodes_planned_;
  Gauge& leader_;

  kube::WorkQueue queue_;
  std::unique_ptr<kube::Informer> registry_configs_;
  std::unique_ptr<kube::Informer> image_caches_;
  std::unique_ptr<kube::Informer> node_caches_;
  std::unique_ptr<kube::Informer> nodes_;
  std::unique_ptr<kube::Informer> config_maps_;

  std::atomic<bool> leading_{false};
  // Used by the reconcile thread only (one term at a time).
  std::map<std::string, Resolved> resolved_{};  // by the reference as written

  mutable std::mutex stats_mu_;  // guards stats_
  OperatorStats stats_{};
};

}  // namespace stowage::op
