// The stowage-operator process as a class: informers on RegistryConfig, ImageCache, NodeCache,
// Node (metadata only), the operator's own ConfigMaps and kubernetes.io/dockerconfigjson Secrets
// (cluster-wide, trimmed to metadata, type and data: the pull secrets ImageCaches name and the
// operator's copies of them) feed one reconcile loop (a work queue with a single key, so bursts
// of events coalesce). A reconcile plans the pull-secret copies, resolves image tags to digests,
// runs plan_cluster(), writes secret copies, then the Plan in the planner's order, then deletes
// unreferenced copies, and records events for transitions. Only the Lease holder writes.
// Tag resolution: one manifest GET per (reference, credentials, pull route) per refresh
// interval for the whole cluster; the digest is that of the bytes, and the image's size (config
// and layers, compressed: what a pull downloads) is summed from them. For an index, the manifest
// of the operator's own platform (oci::host_platform(), as the nodes are assumed to run) is
// fetched once more, only when the digest moved or its size is not known yet. A digest
// reference is GET once for its size, and again per refresh interval only while that fails, on a
// thread of its own (a slow registry never holds up a plan).
// A size that cannot be learned is left out; it never makes an image unresolved. Credentials
// are the ImageCache's usable pull secrets (matched as kubelet's keyring does, the mirror's own
// entry first, then the image's); the route is the pull sources (mirrors, then the primary) of the
// merged registries configuration of the nodes the ImageCache selects, each distinct one tried, the
// most common first. ImageCaches naming the same reference with the same secret content and routes
// share one HEAD; otherwise each gets its own answer. A registry blocked for all its nodes is
// reported Unresolved with reason Blocked.
//   Operator op(options, client, real_clock(), registry_transport, metrics);
//   std::jthread t([&](std::stop_token s) { op.run(s); });   // returns once `s` is requested
// The client, clock, transport and metrics registry are borrowed and must outlive the Operator.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "http/transport.h"
#include "kube/client.h"
#include "kube/events.h"
#include "kube/informer.h"
#include "kube/leader_election.h"
#include "kube/workqueue.h"
#include "operator/machine_config_controller.h"
#include "operator/node_cache_specs.h"
#include "operator/planner.h"
#include "operator/pull_secret_sync.h"
#include "operator/rollout.h"

namespace stowage::op {

inline constexpr std::string_view kFieldManager = "stowage-operator";
inline constexpr std::string_view kHashLabel = "stowage.io/registries-hash";

struct OperatorOptions {
  // Where the registries ConfigMaps (and the Lease) live.
  std::string namespace_ = "stowage-system";
  MaxUnavailable max_unavailable{};
  // NodeCache specs applied at once (each its own request).
  int concurrent_writes = 4;
  bool leader_elect = true;
  std::string leader_election_id = "stowage-operator";  // the Lease's name
  std::string identity{};                               // holderIdentity; required with election
  std::chrono::milliseconds lease_duration{15'000};
  std::chrono::milliseconds renew_deadline{10'000};
  std::chrono::milliseconds retry_period{2'000};
  // How often the whole cluster is planned again without any event. (Also the tag refresh
  // interval of an ImageCache stored without spec.refreshInterval, which the CRD's default of 6h
  // makes rare.)
  std::chrono::seconds refresh_interval{std::chrono::minutes(10)};
  // How soon a tag that could not be resolved is tried again (never later than its interval).
  std::chrono::seconds unresolved_retry{std::chrono::seconds(30)};
  // Registry hosts reached without TLS verification (plain HTTP when they do not answer HTTPS),
  // besides those a RegistryConfig lists as insecure.
  std::vector<std::string> insecure_registries{};
};

// Counters for tests and logs; metrics carry the same numbers.
struct OperatorStats {
  std::int64_t reconciles = 0;
  std::int64_t errors = 0;
  std::int64_t writes = 0;       // API writes: creates, applies, status writes, deletes
  std::int64_t resolutions = 0;  // tag resolutions (one manifest GET each)
  // Manifest GETs for sizes beyond the resolutions: an index's platform manifest, a digest
  // reference's manifest.
  std::int64_t size_requests = 0;
  std::int64_t nodes_planned = 0;
  std::int64_t events = 0;  // events recorded
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
    std::optional<std::int64_t> size{};  // bytes a pull of `digest` downloads, when measured
    std::optional<Unresolved> failure{};
    Clock::TimePoint at{};
    Clock::Duration interval{};
  };

  struct ResolveJob;

  void lead(const std::optional<kube::LeaderGuard>& guard, std::stop_token stop);
  // One reconcile; returns the delay until the next planned one.
  Clock::Duration reconcile(const std::optional<kube::LeaderGuard>& guard);
  PlannerInput build_input();
  // Every NodeCache the informer holds, as the planner reads it (specs shared).
  std::vector<CurrentNodeCache> current_node_caches();
  PullSecretSyncInput build_secret_input(const PlannerInput& in);
  Clock::Duration resolve_tags(PlannerInput& input, const PullSecretSyncPlan& secrets);
  // `previous`: the last answer for the same job, whose size is reused while the digest holds.
  Resolved resolve_one(const ResolveJob& job, const Resolved* previous);
  void apply_secret_copies(const PullSecretSyncPlan& plan,
                           const std::optional<kube::LeaderGuard>& guard);
  void delete_secret_copies(const PullSecretSyncPlan& plan,
                            const std::optional<kube::LeaderGuard>& guard);
  void apply_plan(const Plan& plan, const std::optional<kube::LeaderGuard>& guard);
  void record_events(const PlannerInput& in, const Plan& plan, const PullSecretSyncPlan& secrets);
  void record(const kube::ObjectReference& regarding, kube::EventType type, std::string reason,
              std::string action, std::string note);
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
  Gauge& queue_depth_;
  Histogram& reconcile_seconds_;

  // Outlives the NodeCache informer, whose transform fills it.
  NodeCacheSpecs node_cache_specs_;

  kube::WorkQueue queue_;
  std::unique_ptr<kube::Informer> registry_configs_;
  std::unique_ptr<kube::Informer> image_caches_;
  std::unique_ptr<kube::Informer> node_caches_;
  std::unique_ptr<kube::Informer> nodes_;
  std::unique_ptr<kube::Informer> config_maps_;
  std::unique_ptr<kube::Informer> secrets_;
  kube::KubeEventSink event_sink_;
  std::unique_ptr<kube::EventRecorder> events_;
  // MachineConfig delivery (OpenShift): its own informers, started once the API is discovered.
  std::unique_ptr<MachineConfigController> machine_configs_;

  // NodeCache specs this process wrote that the informer may not show yet (at thousands of
  // writes its watch lags behind): by name, the resourceVersion the informer showed before the
  // write ("" for a create), what was written and when. Until the informer shows another
  // resourceVersion (or a minute passes) the planner sees what was written, so the reconcile
  // the writes' own events trigger does not write them all again.
  struct PendingWrite {
    std::string version_before{};
    SharedSpec spec{};
    std::vector<api::OwnerReference> owners{};
    Clock::TimePoint at{};
  };
  std::mutex pending_mu_;  // guards pending_writes_ (writers add to it in parallel)
  std::map<std::string, PendingWrite> pending_writes_;
  // resourceVersion of each NodeCache as the last current_node_caches() read it; reconcile
  // thread writes, the writers of that reconcile read.
  std::map<std::string, std::string> versions_seen_;

  // Sizes of digest references are fetched on a thread of their own while leading, so that a
  // slow or unreachable registry never holds up a plan: a reconcile queues what is due and takes
  // what is done; each result queues a reconcile (coalesced) to carry it into NodeCache specs.
  void fetch_sizes(std::stop_token stop);
  void queue_size_fetch(const std::string& key, const ResolveJob& job);
  std::mutex sizes_mu_;  // guards the three below
  std::condition_variable_any sizes_cv_;
  std::deque<std::pair<std::string, std::shared_ptr<const ResolveJob>>> sizes_queued_;
  std::set<std::string> sizes_pending_;  // keys queued or being fetched
  std::map<std::string, Resolved> sizes_done_;

  std::atomic<bool> leading_{false};
  // Used by the reconcile thread only (one term at a time).
  // By resolution key: the reference as written, a fingerprint of the credentials, the routes.
  std::map<std::string, Resolved> resolved_{};
  // What the last events said, for transitions: "<ic key>\n<image>" -> "digest:…" or
  // "unresolved:<reason>"; and the pull-secret problems reported ("<ic key>\n<message>").
  std::map<std::string, std::string> image_states_{};
  std::set<std::string> secret_problems_reported_{};

  mutable std::mutex stats_mu_;  // guards stats_
  OperatorStats stats_{};
};

}  // namespace stowage::op
