#include "operator/machine_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <utility>

#include "base/error.h"
#include "kube/encoding.h"
#include "operator/delivery.h"
#include "operator/status_text.h"
#include "registries/render.h"
#include "registries/spec.h"

namespace stowage::op {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxName = 253;  // a MachineConfig name
constexpr std::string_view kReasonApplied = "Applied";

// The pools a RegistryConfig targets, sorted, without repeats.
std::vector<std::string> target_pools(const api::RegistryConfig& rc) {
  std::vector<std::string> pools = rc.spec.machine_config_pools;
  if (pools.empty()) pools.emplace_back(kDefaultPool);
  std::sort(pools.begin(), pools.end());
  pools.erase(std::unique(pools.begin(), pools.end()), pools.end());
  return pools;
}

// What became of one targeted pool.
struct PoolOutcome {
  std::vector<std::string> sources{};    // RegistryConfig names, sorted
  std::string error{};                   // merge or validation error
  std::string too_large{};               // the size refusal
  std::optional<std::size_t> desired{};  // index into plan.machine_configs
};

std::string reboot_warning(DisruptionPolicy policy, const std::vector<std::string>& pools) {
  const std::string tail =
      fmt::format("MCO drains and reboots every node of MachineConfigPool {} for each change of {}",
                  quoted_list(pools), kDropInPath);
  switch (policy) {
    case DisruptionPolicy::kApplied: return "";
    case DisruptionPolicy::kNotServed:
      return fmt::format("MachineConfiguration ({}) is not served: {}",
                         kMachineConfigurationApiVersion, tail);
    case DisruptionPolicy::kNoClusterObject:
      return fmt::format("MachineConfiguration \"{}\" does not exist: {}",
                         kMachineConfigurationName, tail);
    case DisruptionPolicy::kOtherManager:
      return fmt::format(
          "the node-disruption policy for {} in MachineConfiguration \"{}\" is set by another "
          "field manager and was left as it is: unless it reloads {}, {}",
          kDropInPath, kMachineConfigurationName, kCrioService, tail);
  }
  return "";
}

std::string own_error(const api::RegistryConfig& rc) {
  try {
    (void)registries::spec_to_config(api::named(rc));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string label_or_empty(const std::map<std::string, std::string>& labels, std::string_view key) {
  const auto it = labels.find(std::string(key));
  return it == labels.end() ? "" : it->second;
}

}  // namespace

std::string machine_config_name(std::string_view pool) {
  return fmt::format("99-{}-stowage-registries", pool);
}

json drop_in_ignition(std::string_view drop_in) {
  const json file = {{"path", std::string(kDropInPath)},
                     {"overwrite", true},
                     {"mode", kDropInMode},
                     {"contents",
                      {{"source", std::string(kDataUrlPrefix) + kube::base64_encode(drop_in)},
                       {"compression", ""}}}};
  return {{"ignition", {{"version", std::string(kIgnitionVersion)}}},
          {"storage", {{"files", json::array({file})}}}};
}

json disruption_policy_intent() {
  const json entry = {
      {"path", std::string(kDropInPath)},
      {"actions", json::array({{{"type", "Reload"},
                                {"reload", {{"serviceName", std::string(kCrioService)}}}}})}};
  return {{"apiVersion", std::string(kMachineConfigurationApiVersion)},
          {"kind", "MachineConfiguration"},
          {"metadata", {{"name", std::string(kMachineConfigurationName)}}},
          {"spec", {{"nodeDisruptionPolicy", {{"files", json::array({entry})}}}}}};
}

bool has_disruption_policy(const json& machine_configuration) {
  const json::json_pointer files_ptr("/spec/nodeDisruptionPolicy/files");
  if (!machine_configuration.contains(files_ptr)) return false;
  const json& files = machine_configuration.at(files_ptr);
  if (!files.is_array()) return false;
  const json want = disruption_policy_intent()["spec"]["nodeDisruptionPolicy"]["files"][0];
  for (const json& f : files) {
    if (f.is_object() && f.value("path", "") == kDropInPath) {
      return f.contains("actions") && f["actions"] == want["actions"];
    }
  }
  return false;
}

MachineConfigPoolInfo pool_info_from_json(const json& pool,
                                          const std::optional<std::string>& render_pending_from) {
  MachineConfigPoolInfo info;
  const json meta = pool.value("metadata", json::object());
  info.name = meta.value("name", "");
  const json status = pool.value("status", json::object());
  const auto count = [&](const char* key) -> std::int32_t {
    const auto it = status.find(key);
    return it != status.end() && it->is_number_integer() ? it->get<std::int32_t>() : 0;
  };
  info.machine_count = count("machineCount");
  info.updated_machine_count = count("updatedMachineCount");
  info.degraded_machine_count = count("degradedMachineCount");

  const std::string ours = machine_config_name(info.name);
  const auto names_ours = [&](const json& configuration) {
    const json sources = configuration.value("source", json::array());
    if (!sources.is_array()) return false;
    return std::any_of(sources.begin(), sources.end(),
                       [&](const json& s) { return s.is_object() && s.value("name", "") == ours; });
  };
  const json current = status.value("configuration", json::object());
  const std::string current_name = current.is_object() ? current.value("name", "") : "";
  if (!current_name.empty()) {
    const json spec = pool.value("spec", json::object());
    const json target = spec.value("configuration", json::object());
    const std::string target_name = target.is_object() ? target.value("name", "") : "";
    const bool rendered = !render_pending_from || target_name != *render_pending_from;
    info.current_includes_ours =
        names_ours(current) && rendered && (target_name.empty() || target_name == current_name);
  }
  for (const json& c : status.value("conditions", json::array())) {
    if (!c.is_object() || c.value("status", "") != "True") continue;
    const std::string type = c.value("type", "");
    if (type != "Degraded" && type != "RenderDegraded") continue;
    const std::string message = c.value("message", "");
    if (info.degraded_message.empty() || type == "RenderDegraded") {
      info.degraded_message = message.empty() ? fmt::format("condition {} is True", type) : message;
    }
  }
  return info;
}

ExistingMachineConfig existing_machine_config_from_json(const json& object) {
  ExistingMachineConfig mc;
  const json meta = object.value("metadata", json::object());
  mc.name = meta.value("name", "");
  for (const char* key : {"labels", "annotations"}) {
    const json m = meta.value(key, json::object());
    if (!m.is_object()) continue;
    for (const auto& [k, v] : m.items()) {
      if (v.is_string()) (key[0] == 'l' ? mc.labels : mc.annotations)[k] = v.get<std::string>();
    }
  }
  const json spec = object.value("spec", json::object());
  if (spec.is_object() && spec.contains("config")) mc.config = spec["config"];
  return mc;
}

MachineConfigPlan plan_machine_configs(const MachineConfigInput& in) {
  MachineConfigPlan plan;

  std::vector<const api::RegistryConfig*> configs;
  for (const auto& rc : in.registry_configs) {
    if (rc.metadata.deletion_timestamp) continue;
    if (machine_config_delivery(rc.spec, in.machine_config_api)) configs.push_back(&rc);
  }
  std::sort(configs.begin(), configs.end(),
            [](const auto* a, const auto* b) { return a->metadata.name < b->metadata.name; });

  std::map<std::string, const MachineConfigPoolInfo*> pools;
  for (const auto& p : in.pools) pools[p.name] = &p;
  std::map<std::string, const ExistingMachineConfig*> existing;
  for (const auto& mc : in.machine_configs) existing[mc.name] = &mc;

  // Per pool: the RegistryConfigs targeting it (in name order), merged by priority as for a
  // node, rendered as the drop-in.
  std::map<std::string, std::vector<const api::RegistryConfig*>> by_pool;
  if (in.machine_config_api) {
    for (const auto* rc : configs) {
      for (const auto& pool : target_pools(*rc)) by_pool[pool].push_back(rc);
    }
  }
  std::map<std::string, PoolOutcome> outcomes;
  for (const auto& [pool, targeting] : by_pool) {
    PoolOutcome& out = outcomes[pool];
    std::vector<registries::NamedRegistryConfig> named;
    for (const auto* rc : targeting) {
      out.sources.push_back(rc->metadata.name);
      named.push_back(api::named(*rc));
    }
    const std::string name = machine_config_name(pool);
    if (name.size() > kMaxName) {
      out.error = fmt::format(
          "MachineConfigPool \"{}\": the MachineConfig name \"{}\" is longer "
          "than {} characters",
          pool, name, kMaxName);
      plan.held.push_back(pool);
      continue;
    }
    registries::Rendering rendering;
    try {
      rendering = registries::render(registries::merge_registry_configs(std::move(named)),
                                     registries::RenderFormat::kV2DropIn);
    } catch (const Error& e) {
      out.error = e.what();
      plan.held.push_back(pool);
      continue;
    }
    DesiredMachineConfig mc;
    mc.name = name;
    mc.pool = pool;
    mc.hash = rendering.hash;
    mc.sources = out.sources;
    mc.drop_in = rendering.files.at(0).content;
    const json labels = {
        {std::string(kRoleLabel), pool},
        {std::string(kMachineConfigManagedByLabel), std::string(kMachineConfigManagedByValue)}};
    const json annotations = {
        {std::string(kMachineConfigHashAnnotation), mc.hash},
        {std::string(kMachineConfigSourcesAnnotation), join(mc.sources, ",")}};
    const json ignition = drop_in_ignition(mc.drop_in);
    mc.object = {{"apiVersion", std::string(kMachineConfigApiVersion)},
                 {"kind", "MachineConfig"},
                 {"metadata", {{"name", name}, {"labels", labels}, {"annotations", annotations}}},
                 {"spec", {{"config", ignition}}}};
    const std::size_t size = mc.object.dump().size();
    if (size > kMaxMachineConfigBytes) {
      out.too_large = fmt::format(
          "the MachineConfig \"{}\" for pool \"{}\" would be {} bytes, over the limit of {} "
          "bytes (MCO refuses rendered MachineConfigs over 1572864 bytes, shared with the "
          "pool's other MachineConfigs); the previous MachineConfig, if any, stays",
          name, pool, size, kMaxMachineConfigBytes);
      plan.held.push_back(pool);
      continue;
    }
    const auto cur = existing.find(name);
    mc.write = cur == existing.end() || cur->second->config != ignition ||
               label_or_empty(cur->second->labels, kRoleLabel) != pool ||
               label_or_empty(cur->second->labels, kMachineConfigManagedByLabel) !=
                   kMachineConfigManagedByValue ||
               label_or_empty(cur->second->annotations, kMachineConfigHashAnnotation) != mc.hash ||
               label_or_empty(cur->second->annotations, kMachineConfigSourcesAnnotation) !=
                   join(mc.sources, ",");
    out.desired = plan.machine_configs.size();
    plan.machine_configs.push_back(std::move(mc));
  }

  std::set<std::string> kept;
  for (const auto& mc : plan.machine_configs) kept.insert(mc.name);
  for (const auto& pool : plan.held) kept.insert(machine_config_name(pool));
  for (const auto& [name, mc] : existing) {
    if (!kept.contains(name)) plan.to_delete.push_back(name);
  }

  // Statuses.
  for (const auto* rc : configs) {
    const std::int64_t gen = rc->metadata.generation;
    PlannedRegistryConfigStatus out;
    out.name = rc->metadata.name;
    api::RegistryConfigStatus& st = out.status;
    st.observed_generation = gen;
    st.conditions = rc->status.conditions;

    if (!in.machine_config_api) {
      const std::string message = fmt::format(
          "delivery MachineConfig needs the {} MachineConfig and MachineConfigPool API, which "
          "this cluster does not serve; use delivery Auto or Agent",
          kMachineConfigApiVersion);
      api::set_condition(
          st.conditions,
          condition(api::kConditionDegraded, true, kReasonMachineConfigApiMissing, message, gen),
          in.now);
      api::set_condition(st.conditions,
                         condition(api::kConditionProgressing, false,
                                   kReasonMachineConfigApiMissing, message, gen),
                         in.now);
      api::set_condition(
          st.conditions,
          condition(api::kConditionReady, false, kReasonMachineConfigApiMissing, message, gen),
          in.now);
      out.changed = out.status != rc->status;
      plan.registry_configs.push_back(std::move(out));
      continue;
    }

    const std::vector<std::string> targets = target_pools(*rc);
    const std::string own = own_error(*rc);
    std::vector<std::string> invalid;
    if (!own.empty()) invalid.push_back(own);
    std::set<std::string> merge_errors;  // sorted, as the planner lists them
    std::vector<std::string> too_large;
    std::vector<std::string> missing;
    std::vector<std::string> pool_degraded;
    std::map<std::string, int> hash_counts;
    std::vector<std::string> rebooting;  // pools whose MachineConfig changes reboot them
    bool pending = false;
    for (const auto& pool : targets) {
      const PoolOutcome& o = outcomes.at(pool);
      const std::string name = machine_config_name(pool);
      if (!o.error.empty()) merge_errors.insert(o.error);
      if (!o.too_large.empty()) too_large.push_back(o.too_large);
      const DesiredMachineConfig* desired = o.desired ? &plan.machine_configs[*o.desired] : nullptr;
      if (desired != nullptr || existing.contains(name)) {
        st.machine_configs.push_back(name);
        rebooting.push_back(pool);
      }
      if (desired != nullptr) ++hash_counts[desired->hash];

      const auto p = pools.find(pool);
      if (p == pools.end()) {
        missing.push_back(pool);
        continue;
      }
      const MachineConfigPoolInfo& info = *p->second;
      const bool includes = info.current_includes_ours.value_or(true);
      st.nodes.matched += info.machine_count;
      st.nodes.failed += info.degraded_machine_count;
      if (includes) st.nodes.updated += info.updated_machine_count;
      if (!info.degraded_message.empty() || info.degraded_machine_count > 0) {
        pool_degraded.push_back(
            fmt::format("MachineConfigPool \"{}\" is degraded: {}", pool,
                        info.degraded_message.empty()
                            ? fmt::format("{} of {} machines degraded", info.degraded_machine_count,
                                          info.machine_count)
                            : info.degraded_message));
      }
      if (desired != nullptr &&
          (desired->write || !includes || info.updated_machine_count < info.machine_count)) {
        pending = true;
      }
    }
    for (const auto& [hash, count] : hash_counts) {
      if (st.rendered_hash.empty() || count > hash_counts.at(st.rendered_hash)) {
        st.rendered_hash = hash;
      }
    }
    if (!rebooting.empty()) {
      const std::string w = reboot_warning(in.disruption_policy, rebooting);
      if (!w.empty()) {
        st.warnings.push_back(w);
        const bool had = std::any_of(rc->status.warnings.begin(), rc->status.warnings.end(),
                                     [&](const std::string& old) { return old == w; });
        if (!had) plan.reboot_warnings.push_back({rc->metadata.name, w});
      }
    }

    for (const auto& e : merge_errors) {
      if (e != own) invalid.push_back(e);
    }
    std::vector<std::string> degraded;
    std::string_view reason;
    if (!invalid.empty()) {
      reason = kReasonInvalidConfig;
      degraded.push_back(join(invalid, "; "));
    }
    if (!too_large.empty()) {
      if (reason.empty()) reason = kReasonConfigTooLarge;
      degraded.push_back(join(too_large, "; "));
    }
    if (!missing.empty()) {
      if (reason.empty()) reason = kReasonPoolNotFound;
      degraded.push_back(fmt::format("MachineConfigPool {} not found", quoted_list(missing)));
    }
    if (!pool_degraded.empty()) {
      if (reason.empty()) reason = kReasonPoolDegraded;
      degraded.push_back(join(pool_degraded, "; "));
    }
    const bool is_degraded = !degraded.empty();
    api::set_condition(
        st.conditions,
        condition(api::kConditionDegraded, is_degraded, is_degraded ? reason : kReasonAsExpected,
                  join(degraded, "; "), gen),
        in.now);
    const std::string counts =
        fmt::format("{} of {} nodes updated in MachineConfigPool {}", st.nodes.updated,
                    st.nodes.matched, quoted_list(targets));
    api::set_condition(st.conditions,
                       condition(api::kConditionProgressing, pending,
                                 pending ? kReasonRollingOut : kReasonComplete, counts, gen),
                       in.now);
    const bool ready = !is_degraded && !pending;
    api::set_condition(
        st.conditions,
        condition(api::kConditionReady, ready,
                  ready ? kReasonApplied : (is_degraded ? reason : kReasonRollingOut), counts, gen),
        in.now);
    out.changed = out.status != rc->status;
    plan.registry_configs.push_back(std::move(out));
  }
  return plan;
}

}  // namespace stowage::op
