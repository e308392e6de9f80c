// MachineConfig delivery (OpenShift), the pure half: from the RegistryConfigs delivered by
// MachineConfig, the MachineConfigPools and the MachineConfigs the operator owns, decide the
// MachineConfig per targeted pool (`99-<pool>-stowage-registries`, Ignition 3.5.0 carrying only
// the drop-in /etc/containers/registries.conf.d/99-stowage.conf), the ones to delete, and the
// status of every such RegistryConfig. machine_config_controller.h does the I/O around it.
//   MachineConfigPlan plan = plan_machine_configs(input);
// No I/O, no clock of its own; safe to call from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/meta.h"
#include "api/registry_config.h"
#include "operator/planner.h"

namespace stowage::op {

inline constexpr std::string_view kMachineConfigGroup = "machineconfiguration.openshift.io";
inline constexpr std::string_view kMachineConfigApiVersion = "machineconfiguration.openshift.io/v1";
inline constexpr std::string_view kMachineConfigurationGroup = "operator.openshift.io";
inline constexpr std::string_view kMachineConfigurationApiVersion = "operator.openshift.io/v1";
// The one MachineConfiguration MCO reads (other names are refused by its admission policy).
inline constexpr std::string_view kMachineConfigurationName = "cluster";
// The label MachineConfigPools select MachineConfigs by.
inline constexpr std::string_view kRoleLabel = "machineconfiguration.openshift.io/role";
// Our MachineConfigs also carry app.kubernetes.io/managed-by=stowage (the informer's selector).
inline constexpr std::string_view kMachineConfigManagedByLabel = "app.kubernetes.io/managed-by";
inline constexpr std::string_view kMachineConfigManagedByValue = "stowage";
// Annotations: the drop-in's hash, and the RegistryConfigs merged into it (comma-separated).
inline constexpr std::string_view kMachineConfigHashAnnotation = "stowage.io/registries-hash";
inline constexpr std::string_view kMachineConfigSourcesAnnotation = "stowage.io/registry-configs";
inline constexpr std::string_view kDropInPath = "/etc/containers/registries.conf.d/99-stowage.conf";
inline constexpr std::string_view kIgnitionVersion = "3.5.0";
inline constexpr std::string_view kDataUrlPrefix = "data:text/plain;charset=utf-8;base64,";
inline constexpr int kDropInMode = 420;  // 0644
inline constexpr std::string_view kCrioService = "crio.service";
// A RegistryConfig under MachineConfig delivery that names no pool targets this one (MCO itself
// renders registries only for its built-in pools; custom pools inherit worker MachineConfigs).
inline constexpr std::string_view kDefaultPool = "worker";

// The largest MachineConfig (its JSON) the operator writes. MCO refuses a *rendered*
// MachineConfig over MaxMachineConfigSize = 1572864 bytes (1.5 MiB, etcd's default
// --max-request-bytes; MCO ValidateMachineConfigSize) and ours is merged into rendered-<pool>
// with the pool's template MachineConfigs, so 1 MiB leaves them half a MiB.
inline constexpr std::size_t kMaxMachineConfigBytes = std::size_t{1} << 20;

// Condition reasons (besides the planner's InvalidConfig, AsExpected, RollingOut, Complete).
inline constexpr std::string_view kReasonMachineConfigApiMissing = "MachineConfigAPIMissing";
inline constexpr std::string_view kReasonConfigTooLarge = "ConfigTooLarge";
inline constexpr std::string_view kReasonPoolNotFound = "PoolNotFound";
inline constexpr std::string_view kReasonPoolDegraded = "PoolDegraded";
inline constexpr std::string_view kReasonPoolsUpdated = "PoolsUpdated";

// A MachineConfigPool as the informer holds it.
struct MachineConfigPoolInfo {
  std::string name{};
  std::int32_t machine_count = 0;          // status.machineCount
  std::int32_t updated_machine_count = 0;  // status.updatedMachineCount
  std::int32_t degraded_machine_count = 0;
  // Whether the configuration all machines are at (status.configuration) includes our
  // MachineConfig with its current content; nullopt when the pool does not say (no
  // status.configuration yet): the counts alone are trusted then.
  std::optional<bool> current_includes_ours{};
  // Message of a True Degraded / RenderDegraded condition of the pool ("" when none).
  std::string degraded_message{};
  bool operator==(const MachineConfigPoolInfo&) const = default;
};

// One of our MachineConfigs as it is now.
struct ExistingMachineConfig {
  std::string name{};
  std::map<std::string, std::string> labels{};
  std::map<std::string, std::string> annotations{};
  nlohmann::json config = nlohmann::json::object();  // spec.config (the Ignition document)
  bool operator==(const ExistingMachineConfig&) const = default;
};

// Whether MCO will reload CRI-O instead of rebooting when the drop-in changes.
enum class DisruptionPolicy {
  kApplied,          // our entry is in MachineConfiguration "cluster" spec.nodeDisruptionPolicy
  kNotServed,        // operator.openshift.io/v1 MachineConfiguration is not served
  kNoClusterObject,  // served, but MachineConfiguration "cluster" does not exist
  kOtherManager,     // the entry for our path is another field manager's (left as it is)
};

struct MachineConfigInput {
  // Every RegistryConfig; those delivered by MachineConfig (delivery.h) are taken, the rest
  // are the planner's.
  std::vector<api::RegistryConfig> registry_configs{};
  bool machine_config_api = false;  // MachineConfig and MachineConfigPool are served
  std::vector<MachineConfigPoolInfo> pools{};
  std::vector<ExistingMachineConfig> machine_configs{};  // ours, now
  DisruptionPolicy disruption_policy = DisruptionPolicy::kNotServed;
  api::Time now{};  // for condition transition times
};

struct DesiredMachineConfig {
  std::string name{};  // 99-<pool>-stowage-registries
  std::string pool{};
  std::string hash{};                  // sha256 of the drop-in rendering
  std::vector<std::string> sources{};  // the RegistryConfigs merged into it, by name
  std::string drop_in{};               // the file's content
  nlohmann::json object{};             // the whole MachineConfig, the apply intent
  bool write = false;                  // absent now, or its labels or Ignition differ
  bool operator==(const DesiredMachineConfig&) const = default;
};

// A RegistryConfig whose status newly says that each change reboots its pools.
struct RebootWarning {
  std::string registry_config{};
  std::string message{};
  bool operator==(const RebootWarning&) const = default;
};

struct MachineConfigPlan {
  // One per targeted pool whose configuration is valid and small enough, by pool.
  std::vector<DesiredMachineConfig> machine_configs{};
  // Targeted pools whose new configuration is refused: their MachineConfig (if any) stays.
  std::vector<std::string> held{};
  // Our MachineConfigs of pools no RegistryConfig targets any more, by name.
  std::vector<std::string> to_delete{};
  // The statuses of the RegistryConfigs delivered by MachineConfig, by name.
  std::vector<PlannedRegistryConfigStatus> registry_configs{};
  // Warnings new in those statuses that each change reboots the pools (worth an event).
  std::vector<RebootWarning> reboot_warnings{};
  bool operator==(const MachineConfigPlan&) const = default;
};

// The whole plan. Never throws for bad user input (it lands in statuses).
MachineConfigPlan plan_machine_configs(const MachineConfigInput& input);

// "99-<pool>-stowage-registries".
std::string machine_config_name(std::string_view pool);

// The Ignition document carrying `drop_in` at kDropInPath.
nlohmann::json drop_in_ignition(std::string_view drop_in);

// The server-side apply intent for MachineConfiguration "cluster": our node-disruption policy
// entry, {path: kDropInPath, actions: [{type: Reload, reload: {serviceName: crio.service}}]}
// in spec.nodeDisruptionPolicy.files (a list map keyed by path, so other entries are kept).
nlohmann::json disruption_policy_intent();

// Whether `machine_configuration` (the whole object) holds exactly our entry.
bool has_disruption_policy(const nlohmann::json& machine_configuration);

// A MachineConfigPool object as MachineConfigPoolInfo. `our_machine_config` is the name of ours
// for that pool; `render_pending_from` is spec.configuration.name as it was when our
// MachineConfig last changed, while MCO has not rendered a new configuration since (then the
// pool cannot include our current content yet).
MachineConfigPoolInfo pool_info_from_json(const nlohmann::json& pool,
                                          const std::optional<std::string>& render_pending_from);

// One of our MachineConfig objects as ExistingMachineConfig.
ExistingMachineConfig existing_machine_config_from_json(const nlohmann::json& object);

}  // namespace stowage::op
