// MachineConfig delivery (OpenShift), the I/O half: discovers whether MachineConfig /
// MachineConfigPool (machineconfiguration.openshift.io/v1) and MachineConfiguration
// (operator.openshift.io/v1) are served, watches the pools and our MachineConfigs once they are,
// and on each reconcile plans with plan_machine_configs() (machine_config.h) and writes the plan:
// the node-disruption policy, the MachineConfigs (server-side apply, field manager
// "stowage-operator"), the statuses of the RegistryConfigs it delivers, then the deletions.
//   MachineConfigController mc(client, clock, [&] { queue.add(key); }, &events);
//   const bool api = mc.discover(stop);      // before planning: tells the planner what is ours
//   mc.reconcile(registry_configs, now, guard);
// Owns its informers (stopped by stop() or the destructor). discover() and reconcile() are for
// one thread (the reconcile loop); machine_config_api() may be read from any. The client, clock
// and event recorder are borrowed and must outlive the controller.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "api/meta.h"
#include "api/registry_config.h"
#include "base/clock.h"
#include "kube/client.h"
#include "kube/discovery.h"
#include "kube/events.h"
#include "kube/informer.h"
#include "kube/leader_election.h"
#include "operator/machine_config.h"

namespace stowage::op {

struct MachineConfigControllerOptions {
  std::string field_manager = "stowage-operator";
  // How long discover() waits for the informers' first lists once the API is found.
  std::chrono::milliseconds sync_timeout{30'000};
  kube::DiscoveryOptions discovery{};
};

struct MachineConfigResult {
  bool machine_config_api = false;
  MachineConfigPlan plan{};
  DisruptionPolicy disruption_policy = DisruptionPolicy::kNotServed;
  std::int64_t writes = 0;  // applies, status writes and deletes made
};

class MachineConfigController {
 public:
  // Starts nothing. `on_change` runs on an informer thread for every pool or MachineConfig
  // event (enqueue a reconcile; must be quick). `events` may be null (no events are recorded).
  MachineConfigController(kube::Client& client, Clock& clock, std::function<void()> on_change,
                          kube::EventRecorder* events = nullptr,
                          MachineConfigControllerOptions options = {});
  ~MachineConfigController();
  MachineConfigController(const MachineConfigController&) = delete;
  MachineConfigController& operator=(const MachineConfigController&) = delete;

  // Whether MachineConfig and MachineConfigPool are served (discovery, cached; a miss is asked
  // again at most once a second). The first time they are, starts the informers and waits for
  // their first lists; throws Unavailable when they do not sync within sync_timeout.
  bool discover(std::stop_token stop = {});
  // The answer of the last discover().
  bool machine_config_api() const { return served_.load(); }

  // Plans the RegistryConfigs delivered by MachineConfig (all of them may be passed; the others
  // are left to the planner) and writes the plan, checking `guard` before every write (throws
  // Unavailable when leadership is lost). Statuses are written here, not returned for writing.
  // Throws the client's errors; a retry after a failure is safe.
  MachineConfigResult reconcile(const std::vector<api::RegistryConfig>& registry_configs,
                                api::Time now, const std::optional<kube::LeaderGuard>& guard);

  // Stops the informers. Idempotent.
  void stop();

 private:
  DisruptionPolicy ensure_disruption_policy(const std::optional<kube::LeaderGuard>& guard,
                                            std::int64_t& writes);
  void check_may_act(const std::optional<kube::LeaderGuard>& guard) const;

  kube::Client& client_;
  Clock& clock_;
  const std::function<void()> on_change_;
  kube::EventRecorder* const events_;
  const MachineConfigControllerOptions options_;
  kube::Discovery discovery_;
  std::atomic<bool> served_{false};
  // Created by discover() on the reconcile thread; read there only.
  std::unique_ptr<kube::Informer> pools_;
  std::unique_ptr<kube::Informer> machine_configs_;
  // Per pool: spec.configuration.name when our MachineConfig's content last changed, until MCO
  // renders a new configuration (reconcile thread only).
  std::map<std::string, std::string> render_pending_;
};

}  // namespace stowage::op
