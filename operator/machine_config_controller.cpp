#include "operator/machine_config_controller.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "base/error.h"
#include "operator/delivery.h"

namespace stowage::op {
namespace {

using nlohmann::json;

const kube::GroupVersionResource kMachineConfigs{std::string(kMachineConfigGroup), "v1",
                                                 "machineconfigs"};
const kube::GroupVersionResource kMachineConfigPools{std::string(kMachineConfigGroup), "v1",
                                                     "machineconfigpools"};
const kube::GroupVersionResource kMachineConfigurations{std::string(kMachineConfigurationGroup),
                                                        "v1", "machineconfigurations"};

kube::InformerOptions informer_options(kube::GroupVersionResource gvr, std::string selector) {
  kube::InformerOptions options;
  options.reflector.collection.gvr = std::move(gvr);
  options.reflector.label_selector = std::move(selector);
  return options;
}

// spec.configuration.name of a pool object ("" when unset).
std::string target_configuration(const json& pool) {
  const json::json_pointer ptr("/spec/configuration/name");
  return pool.contains(ptr) && pool.at(ptr).is_string() ? pool.at(ptr).get<std::string>() : "";
}

}  // namespace

MachineConfigController::MachineConfigController(kube::Client& client, Clock& clock,
                                                 std::function<void()> on_change,
                                                 kube::EventRecorder* events,
                                                 MachineConfigControllerOptions options)
    : client_(client),
      clock_(clock),
      on_change_(std::move(on_change)),
      events_(events),
      options_(std::move(options)),
      discovery_(client, clock, options_.discovery) {}

MachineConfigController::~MachineConfigController() {
  stop();
}

void MachineConfigController::stop() {
  if (pools_) pools_->stop();
  if (machine_configs_) machine_configs_->stop();
}

bool MachineConfigController::discover(std::stop_token stop) {
  const bool served =
      discovery_.resource_for(kMachineConfigGroup, "v1", "MachineConfig").has_value() &&
      discovery_.resource_for(kMachineConfigGroup, "v1", "MachineConfigPool").has_value();
  if (served && !pools_) {
    pools_ = std::make_unique<kube::Informer>(client_, clock_,
                                              informer_options(kMachineConfigPools, ""));
    machine_configs_ = std::make_unique<kube::Informer>(
        client_, clock_,
        informer_options(kMachineConfigs, fmt::format("{}={}", kMachineConfigManagedByLabel,
                                                      kMachineConfigManagedByValue)));
    for (kube::Informer* informer : {pools_.get(), machine_configs_.get()}) {
      informer->on_add([this](const json&) { on_change_(); });
      informer->on_update([this](const json&, const json&) { on_change_(); });
      informer->on_delete([this](const json&) { on_change_(); });
      informer->start();
    }
    spdlog::info("msg=\"MachineConfig API served; watching MachineConfigPools\"");
  }
  if (served) {
    const Clock::TimePoint deadline = clock_.now() + options_.sync_timeout;
    for (kube::Informer* informer : {pools_.get(), machine_configs_.get()}) {
      if (!informer->wait_until_synced(deadline, stop)) {
        throw Error(Code::kUnavailable,
                    "listing MachineConfigPools and MachineConfigs: informers not synced yet");
      }
    }
  }
  served_ = served;
  return served;
}

void MachineConfigController::check_may_act(const std::optional<kube::LeaderGuard>& guard) const {
  if (guard && !guard->may_act()) {
    throw Error(Code::kUnavailable,
                "leadership lost before writing; the MachineConfig plan is not applied");
  }
}

DisruptionPolicy MachineConfigController::ensure_disruption_policy(
    const std::optional<kube::LeaderGuard>& guard, std::int64_t& writes) {
  if (!discovery_.resource_for(kMachineConfigurationGroup, "v1", "MachineConfiguration")) {
    return DisruptionPolicy::kNotServed;
  }
  const kube::ResourceRef ref{kMachineConfigurations, "", std::string(kMachineConfigurationName),
                              ""};
  const std::optional<json> current = client_.try_get(ref);
  if (!current) return DisruptionPolicy::kNoClusterObject;
  if (has_disruption_policy(*current)) return DisruptionPolicy::kApplied;
  check_may_act(guard);
  try {
    // No force: an entry for our path that someone else set is theirs to keep.
    client_.apply(ref, disruption_policy_intent(),
                  {.field_manager = options_.field_manager, .force = false, .dry_run = false});
    ++writes;
    spdlog::info("msg=\"applied node-disruption policy\" key={} path={} service={}",
                 kMachineConfigurationName, kDropInPath, kCrioService);
    return DisruptionPolicy::kApplied;
  } catch (const Error& e) {
    if (e.code() == Code::kNotFound) return DisruptionPolicy::kNoClusterObject;
    if (e.code() != Code::kConflict) throw;
    spdlog::warn(
        "msg=\"node-disruption policy left to another manager\" key={} path={} "
        "error=\"{}\"",
        kMachineConfigurationName, kDropInPath, e.what());
    return DisruptionPolicy::kOtherManager;
  }
}

MachineConfigResult MachineConfigController::reconcile(
    const std::vector<api::RegistryConfig>& registry_configs, api::Time now,
    const std::optional<kube::LeaderGuard>& guard) {
  MachineConfigResult result;
  result.machine_config_api = served_.load();

  MachineConfigInput in;
  in.registry_configs = registry_configs;
  in.machine_config_api = result.machine_config_api;
  in.now = now;
  std::map<std::string, json> pool_objects;
  if (in.machine_config_api) {
    for (const kube::ObjectPtr& pool : pools_->list()) {
      const std::string name = (*pool)["metadata"].value("name", "");
      auto pending = render_pending_.find(name);
      if (pending != render_pending_.end() && target_configuration(*pool) != pending->second) {
        render_pending_.erase(pending);  // MCO rendered a configuration since our change
        pending = render_pending_.end();
      }
      in.pools.push_back(pool_info_from_json(
          *pool, pending == render_pending_.end() ? std::nullopt
                                                  : std::optional<std::string>(pending->second)));
      pool_objects.emplace(name, *pool);
    }
    for (const kube::ObjectPtr& object : machine_configs_->list()) {
      ExistingMachineConfig mc = existing_machine_config_from_json(*object);
      const auto role = mc.labels.find(std::string(kRoleLabel));
      // Only names we give; a look-alike label on someone else's MachineConfig changes nothing.
      if (role != mc.labels.end() && mc.name == machine_config_name(role->second)) {
        in.machine_configs.push_back(std::move(mc));
      }
    }
    const bool any = std::any_of(
        registry_configs.begin(), registry_configs.end(), [&](const api::RegistryConfig& rc) {
          return !rc.metadata.deletion_timestamp && machine_config_delivery(rc.spec, true);
        });
    if (any) in.disruption_policy = ensure_disruption_policy(guard, result.writes);
  }
  result.disruption_policy = in.disruption_policy;
  result.plan = plan_machine_configs(in);
  const MachineConfigPlan& plan = result.plan;

  const kube::PatchOptions apply_options{
      .field_manager = options_.field_manager, .force = true, .dry_run = false};
  // 1. MachineConfigs (after the disruption policy, so MCO never sees one without it).
  for (const DesiredMachineConfig& mc : plan.machine_configs) {
    if (!mc.write) continue;
    const auto cur =
        std::find_if(in.machine_configs.begin(), in.machine_configs.end(),
                     [&](const ExistingMachineConfig& e) { return e.name == mc.name; });
    const bool content_changed =
        cur == in.machine_configs.end() || cur->config != mc.object["spec"]["config"];
    check_may_act(guard);
    client_.apply({kMachineConfigs, "", mc.name, ""}, mc.object, apply_options);
    ++result.writes;
    if (content_changed) {
      if (const auto pool = pool_objects.find(mc.pool); pool != pool_objects.end()) {
        render_pending_[mc.pool] = target_configuration(pool->second);
      }
    }
    spdlog::info("msg=\"applied MachineConfig\" key={} pool={} hash={} sources={}", mc.name,
                 mc.pool, mc.hash, fmt::join(mc.sources, ","));
  }
  // 2. Statuses of the RegistryConfigs delivered by MachineConfig.
  for (const PlannedRegistryConfigStatus& st : plan.registry_configs) {
    if (!st.changed) continue;
    const json intent = {{"apiVersion", std::string(api::kApiVersion)},
                         {"kind", std::string(api::kRegistryConfigKind)},
                         {"metadata", {{"name", st.name}}},
                         {"status", api::registry_config_status_to_json(st.status)}};
    check_may_act(guard);
    try {
      client_.apply({api::registry_configs_resource(), "", st.name, "status"}, intent,
                    apply_options);
      ++result.writes;
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;  // deleted meanwhile
    }
  }
  // 3. Events: each change reboots the pool.
  if (events_ != nullptr) {
    for (const RebootWarning& warning : plan.reboot_warnings) {
      const auto rc = std::find_if(
          registry_configs.begin(), registry_configs.end(),
          [&](const api::RegistryConfig& r) { return r.metadata.name == warning.registry_config; });
      if (rc == registry_configs.end()) continue;
      kube::ObjectReference ref;
      ref.api_version = std::string(api::kApiVersion);
      ref.kind = std::string(api::kRegistryConfigKind);
      ref.name = warning.registry_config;
      ref.uid = rc->metadata.uid;
      events_->record(ref, kube::EventType::kWarning, "RebootOnChange", "DeliverMachineConfig",
                      warning.message);
    }
  }
  // 4. MachineConfigs of pools nothing targets any more.
  for (const std::string& name : plan.to_delete) {
    check_may_act(guard);
    try {
      client_.delete_({kMachineConfigs, "", name, ""});
      ++result.writes;
      spdlog::info("msg=\"deleted MachineConfig\" key={}", name);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
    }
  }
  return result;
}

}  // namespace stowage::op
