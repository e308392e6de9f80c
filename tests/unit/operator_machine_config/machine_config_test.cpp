// MachineConfig delivery, pure half (operator/machine_config.h): names, labels and the Ignition
// document of the MachineConfig per pool, the priority merge of several RegistryConfigs on one
// pool, the size limit, invalid configurations, pool status folded into RegistryConfig status,
// and the reboot warning when no node-disruption policy can be set.
#include "operator/machine_config.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kube/encoding.h"
#include "operator/planner.h"
#include "registries/render.h"
#include "registries/spec.h"

namespace stowage::op {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

api::RegistryConfig registry_config(std::string name, std::string_view spec_json,
                                    std::int64_t generation = 1) {
  api::RegistryConfig rc;
  rc.metadata.name = std::move(name);
  rc.metadata.uid = "uid-" + rc.metadata.name;
  rc.metadata.generation = generation;
  rc.spec = registries::spec_from_json(json::parse(spec_json));
  return rc;
}

MachineConfigPoolInfo pool(std::string name, int machines, int updated, int degraded = 0,
                           std::optional<bool> includes = true) {
  MachineConfigPoolInfo p;
  p.name = std::move(name);
  p.machine_count = machines;
  p.updated_machine_count = updated;
  p.degraded_machine_count = degraded;
  p.current_includes_ours = includes;
  return p;
}

const DesiredMachineConfig* desired(const MachineConfigPlan& plan, std::string_view pool_name) {
  for (const auto& mc : plan.machine_configs) {
    if (mc.pool == pool_name) return &mc;
  }
  return nullptr;
}

const api::RegistryConfigStatus& status_of(const MachineConfigPlan& plan, std::string_view name) {
  for (const auto& s : plan.registry_configs) {
    if (s.name == name) return s.status;
  }
  throw std::runtime_error("no status for " + std::string(name));
}

const api::Condition& cond(const api::RegistryConfigStatus& st, std::string_view type) {
  const api::Condition* c = api::find_condition(st.conditions, type);
  if (c == nullptr) throw std::runtime_error("no condition " + std::string(type));
  return *c;
}

// The file content an Ignition document carries at kDropInPath, decoded from its data URL.
std::string decoded_drop_in(const json& ignition) {
  const json& file = ignition.at("storage").at("files").at(0);
  const std::string source = file.at("contents").at("source").get<std::string>();
  EXPECT_EQ(source.rfind(std::string(kDataUrlPrefix), 0), 0u) << source.substr(0, 60);
  const auto decoded = kube::base64_decode(source.substr(kDataUrlPrefix.size()));
  EXPECT_TRUE(decoded.has_value());
  return decoded.value_or("");
}

std::string render_merged(const std::vector<api::RegistryConfig>& rcs) {
  std::vector<registries::NamedRegistryConfig> named;
  for (const auto& rc : rcs) named.push_back(api::named(rc));
  return registries::render(registries::merge_registry_configs(std::move(named)),
                            registries::RenderFormat::kV2DropIn)
      .files.at(0)
      .content;
}

// The input after the plan's writes: MachineConfigs applied and deleted, statuses written.
MachineConfigInput after_writes(MachineConfigInput in, const MachineConfigPlan& plan) {
  for (const auto& mc : plan.machine_configs) {
    if (!mc.write) continue;
    std::erase_if(in.machine_configs, [&](const auto& e) { return e.name == mc.name; });
    in.machine_configs.push_back(existing_machine_config_from_json(mc.object));
  }
  for (const auto& name : plan.to_delete) {
    std::erase_if(in.machine_configs, [&](const auto& e) { return e.name == name; });
  }
  for (const auto& st : plan.registry_configs) {
    for (auto& rc : in.registry_configs) {
      if (rc.metadata.name == st.name) rc.status = st.status;
    }
  }
  return in;
}

TEST(MachineConfig, OnePerPoolCarryingOnlyTheDropInAsIgnition) {
  MachineConfigInput in;
  in.machine_config_api = true;
  in.disruption_policy = DisruptionPolicy::kApplied;
  in.registry_configs = {registry_config("corp", R"({"delivery": "MachineConfig",
      "machineConfigPools": ["infra", "worker"], "unqualifiedSearchRegistries": ["quay.io"],
      "insecureRegistries": ["localhost:5000"]})"),
                         registry_config("plain", R"({"delivery": "Agent"})")};
  in.pools = {pool("infra", 1, 1), pool("worker", 2, 2)};
  const MachineConfigPlan plan = plan_machine_configs(in);

  ASSERT_EQ(plan.machine_configs.size(), 2u);
  const std::string expected = render_merged({in.registry_configs[0]});
  for (const auto* p : {"infra", "worker"}) {
    const DesiredMachineConfig* mc = desired(plan, p);
    ASSERT_NE(mc, nullptr) << p;
    EXPECT_EQ(mc->name, fmt::format("99-{}-stowage-registries", p));
    EXPECT_TRUE(mc->write);
    const json& o = mc->object;
    EXPECT_EQ(o["apiVersion"], "machineconfiguration.openshift.io/v1");
    EXPECT_EQ(o["kind"], "MachineConfig");
    EXPECT_EQ(o["metadata"]["name"], mc->name);
    EXPECT_EQ(o["metadata"]["labels"]["machineconfiguration.openshift.io/role"], p);
    EXPECT_EQ(o["metadata"]["labels"]["app.kubernetes.io/managed-by"], "stowage");
    const json& ignition = o["spec"]["config"];
    EXPECT_EQ(ignition["ignition"]["version"], "3.5.0");
    ASSERT_EQ(ignition["storage"]["files"].size(), 1u);  // never the main registries.conf
    const json& file = ignition["storage"]["files"][0];
    EXPECT_EQ(file["path"], "/etc/containers/registries.conf.d/99-stowage.conf");
    EXPECT_EQ(file["mode"], 420);
    EXPECT_EQ(file["overwrite"], true);
    EXPECT_EQ(file["contents"]["compression"], "");
    EXPECT_EQ(decoded_drop_in(ignition), expected);
    EXPECT_EQ(mc->drop_in, expected);
    EXPECT_THAT(expected, HasSubstr("unqualified-search-registries = [\"quay.io\"]"));
  }
  // Only the MachineConfig-delivered one gets a status here.
  ASSERT_EQ(plan.registry_configs.size(), 1u);
  EXPECT_THAT(status_of(plan, "corp").machine_configs,
              ElementsAre("99-infra-stowage-registries", "99-worker-stowage-registries"));
  EXPECT_EQ(status_of(plan, "corp").rendered_hash, desired(plan, "worker")->hash);

  // Once written (and the status says so), nothing is written again; a RegistryConfig naming no
  // pool targets worker.
  MachineConfigInput next = after_writes(in, plan);
  EXPECT_EQ(cond(status_of(plan, "corp"), "Progressing").status, api::ConditionStatus::kTrue);
  next = after_writes(next, plan_machine_configs(next));
  const MachineConfigPlan again = plan_machine_configs(next);
  EXPECT_EQ(cond(status_of(again, "corp"), "Ready").status, api::ConditionStatus::kTrue);
  for (const auto& mc : again.machine_configs) EXPECT_FALSE(mc.write) << mc.name;
  EXPECT_THAT(again.to_delete, IsEmpty());
  for (const auto& st : again.registry_configs) EXPECT_FALSE(st.changed) << st.name;
  next.registry_configs[0] = registry_config("corp", R"({"delivery": "MachineConfig"})");
  const MachineConfigPlan defaulted = plan_machine_configs(next);
  ASSERT_EQ(defaulted.machine_configs.size(), 1u);
  EXPECT_EQ(defaulted.machine_configs[0].pool, "worker");
  EXPECT_TRUE(defaulted.machine_configs[0].write);
  EXPECT_THAT(defaulted.to_delete, ElementsAre("99-infra-stowage-registries"));
}

TEST(MachineConfig, MergesRegistryConfigsOnAPoolByPriorityAsForNodes) {
  MachineConfigInput in;
  in.machine_config_api = true;
  in.disruption_policy = DisruptionPolicy::kApplied;
  // Same prefix in both: the higher priority's table wins whole, whatever the names' order.
  in.registry_configs = {registry_config("a-low", R"({"delivery": "Auto", "priority": 0,
          "machineConfigPools": ["worker", "infra"], "unqualifiedSearchRegistries": ["low.io"],
          "registries": [{"location": "quay.io/team", "mirrors": [{"location": "low-mirror.io/team"}]}]})"),
                         registry_config("b-high", R"({"delivery": "MachineConfig", "priority": 10,
          "machineConfigPools": ["worker"],
          "registries": [{"location": "quay.io/team", "mirrors": [{"location": "high-mirror.io/team"}]}]})")};
  in.pools = {pool("worker", 1, 1), pool("infra", 1, 1)};
  const MachineConfigPlan plan = plan_machine_configs(in);

  const DesiredMachineConfig* worker = desired(plan, "worker");
  const DesiredMachineConfig* infra = desired(plan, "infra");
  ASSERT_NE(worker, nullptr);
  ASSERT_NE(infra, nullptr);
  EXPECT_THAT(worker->sources, ElementsAre("a-low", "b-high"));
  EXPECT_EQ(worker->object["metadata"]["annotations"]["stowage.io/registry-configs"],
            "a-low,b-high");
  EXPECT_EQ(worker->drop_in, render_merged({in.registry_configs[0], in.registry_configs[1]}));
  EXPECT_THAT(worker->drop_in, HasSubstr("high-mirror.io/team"));
  EXPECT_THAT(worker->drop_in, ::testing::Not(HasSubstr("low-mirror.io/team")));
  EXPECT_THAT(worker->drop_in, HasSubstr("low.io"));  // what b-high does not set stays
  EXPECT_THAT(infra->sources, ElementsAre("a-low"));
  EXPECT_THAT(infra->drop_in, HasSubstr("low-mirror.io/team"));
  // Each status names its own pools; a-low's rendered hash is the one most of them got.
  EXPECT_THAT(status_of(plan, "b-high").machine_configs,
              ElementsAre("99-worker-stowage-registries"));
  EXPECT_EQ(status_of(plan, "b-high").rendered_hash, worker->hash);
  EXPECT_NE(worker->hash, infra->hash);
}

TEST(MachineConfig, RefusesAConfigOverTheSizeLimitAndKeepsThePreviousMachineConfig) {
  MachineConfigInput in;
  in.machine_config_api = true;
  in.disruption_policy = DisruptionPolicy::kApplied;
  in.registry_configs = {registry_config("small", R"({"delivery": "MachineConfig",
      "unqualifiedSearchRegistries": ["quay.io"]})")};
  in.pools = {pool("worker", 1, 1)};
  in = after_writes(in, plan_machine_configs(in));
  ASSERT_EQ(in.machine_configs.size(), 1u);

  // Aliases enough for a drop-in whose base64 pushes the MachineConfig past the limit.
  json aliases = json::object();
  std::size_t bytes = 0;
  for (int i = 0; bytes < kMaxMachineConfigBytes; ++i) {
    const std::string key = fmt::format("tool-{:06}", i);
    const std::string value = "registry.example.com/tools/" + key;
    bytes += key.size() + value.size();
    aliases[key] = value;
  }
  json spec = {{"delivery", "MachineConfig"}, {"aliases", aliases}};
  in.registry_configs[0] = registry_config("small", spec.dump(), 2);
  const MachineConfigPlan plan = plan_machine_configs(in);
  EXPECT_THAT(plan.machine_configs, IsEmpty());
  EXPECT_THAT(plan.held, ElementsAre("worker"));
  EXPECT_THAT(plan.to_delete, IsEmpty());  // the previous one stays
  const auto& st = status_of(plan, "small");
  EXPECT_EQ(cond(st, "Degraded").status, api::ConditionStatus::kTrue);
  EXPECT_EQ(cond(st, "Degraded").reason, "ConfigTooLarge");
  EXPECT_THAT(cond(st, "Degraded").message, HasSubstr("over the limit of 1048576 bytes"));
  EXPECT_EQ(cond(st, "Degraded").observed_generation, 2);
  EXPECT_EQ(cond(st, "Ready").status, api::ConditionStatus::kFalse);
  EXPECT_THAT(st.machine_configs, ElementsAre("99-worker-stowage-registries"));
}

TEST(MachineConfig, InvalidConfigIsDegradedWithThePlannersTextAndNeverReachesAPool) {
  // Invalid on its own, and two valid ones that conflict once merged on a pool.
  const std::string bad_spec = R"({"registries": [{"location": "q.io",
      "mirrorByDigestOnly": true, "mirrors": [{"location": "m.io", "pullFromMirror": "tag-only"}]}]})";
  const std::string one_spec =
      R"({"registries": [{"prefix": "q.io/a", "location": "q.io", "insecure": true}]})";
  const std::string two_spec = R"({"registries": [{"prefix": "q.io/b", "location": "q.io"}]})";
  const auto with = [](std::string spec, std::string_view delivery, std::string_view pools) {
    json j = json::parse(spec);
    j["delivery"] = delivery;
    if (!pools.empty()) j["machineConfigPools"] = json::parse(pools);
    return j.dump();
  };

  // The planner's verdict on the same specs delivered by the agent, for the text.
  // Node n1 stands for pool a (bad + one), n2 for pool b (one + two).
  PlannerInput agent;
  agent.nodes = {PlannerNode{"n1", "u1", {{"pool", "a"}}},
                 PlannerNode{"n2", "u2", {{"pool", "b"}}}};
  agent.registry_configs = {registry_config("bad", with(bad_spec, "Agent", "")),
                            registry_config("one", with(one_spec, "Agent", "")),
                            registry_config("two", with(two_spec, "Agent", ""))};
  agent.registry_configs[0].spec.node_selector.match_labels = {{"pool", "a"}};
  agent.registry_configs[2].spec.node_selector.match_labels = {{"pool", "b"}};
  const Plan agent_plan = plan_cluster(agent);

  MachineConfigInput in;
  in.machine_config_api = true;
  in.disruption_policy = DisruptionPolicy::kApplied;
  in.registry_configs = {registry_config("bad", with(bad_spec, "MachineConfig", R"(["a"])")),
                         registry_config("one", with(one_spec, "MachineConfig", R"(["a", "b"])")),
                         registry_config("two", with(two_spec, "MachineConfig", R"(["b"])"))};
  in.pools = {pool("a", 1, 1), pool("b", 1, 1)};
  // Pool b had a MachineConfig before "two" arrived: it stays as it is.
  ExistingMachineConfig previous;
  previous.name = "99-b-stowage-registries";
  previous.labels = {{"machineconfiguration.openshift.io/role", "b"}};
  in.machine_configs = {previous};
  const MachineConfigPlan plan = plan_machine_configs(in);

  EXPECT_THAT(plan.machine_configs, IsEmpty());
  EXPECT_THAT(plan.held, ElementsAre("a", "b"));
  EXPECT_THAT(plan.to_delete, IsEmpty());
  for (const auto* name : {"bad", "one", "two"}) {
    const auto& ours = cond(status_of(plan, name), "Degraded");
    const api::Condition* theirs = nullptr;
    for (const auto& s : agent_plan.registry_configs) {
      if (s.name == name) theirs = api::find_condition(s.status.conditions, "Degraded");
    }
    ASSERT_NE(theirs, nullptr) << name;
    EXPECT_EQ(ours.status, api::ConditionStatus::kTrue) << name;
    EXPECT_EQ(ours.reason, "InvalidConfig") << name;
    EXPECT_EQ(ours.message, theirs->message) << name;
  }
  EXPECT_THAT(cond(status_of(plan, "two"), "Degraded").message,
              HasSubstr("conflicting 'insecure' setting"));
  EXPECT_THAT(cond(status_of(plan, "bad"), "Degraded").message,
              HasSubstr("RegistryConfig \"bad\""));
}

TEST(MachineConfig, StatusFollowsTheMachineConfigPools) {
  MachineConfigInput in;
  in.machine_config_api = true;
  in.disruption_policy = DisruptionPolicy::kApplied;
  in.registry_configs = {registry_config("corp", R"({"delivery": "MachineConfig",
      "machineConfigPools": ["worker", "infra"], "unqualifiedSearchRegistries": ["quay.io"]})",
                                         3)};
  in.pools = {pool("worker", 3, 3, 0, false)};
  MachineConfigPlan plan = plan_machine_configs(in);
  auto st = status_of(plan, "corp");
  EXPECT_EQ(st.observed_generation, 3);
  EXPECT_EQ(cond(st, "Degraded").reason, "PoolNotFound");
  EXPECT_THAT(cond(st, "Degraded").message, HasSubstr("\"infra\""));

  // Pool infra appears; worker's machines are not at a configuration with ours yet.
  in.pools.push_back(pool("infra", 1, 0));
  in = after_writes(in, plan);
  plan = plan_machine_configs(in);
  st = status_of(plan, "corp");
  EXPECT_EQ(cond(st, "Degraded").status, api::ConditionStatus::kFalse);
  EXPECT_EQ(cond(st, "Progressing").status, api::ConditionStatus::kTrue);
  EXPECT_EQ(cond(st, "Ready").status, api::ConditionStatus::kFalse);
  EXPECT_EQ(st.nodes, (api::RegistryConfigNodes{4, 0, 0}));
  EXPECT_EQ(cond(st, "Progressing").message,
            "0 of 4 nodes updated in MachineConfigPool \"infra\", \"worker\"");

  // MCO rendered it; machines update one by one.
  in.pools = {pool("worker", 3, 1), pool("infra", 1, 1)};
  in = after_writes(in, plan);
  plan = plan_machine_configs(in);
  st = status_of(plan, "corp");
  EXPECT_EQ(st.nodes, (api::RegistryConfigNodes{4, 2, 0}));
  EXPECT_EQ(cond(st, "Progressing").status, api::ConditionStatus::kTrue);
  EXPECT_TRUE(status_of(plan, "corp") != in.registry_configs[0].status);

  in.pools = {pool("worker", 3, 3), pool("infra", 1, 1)};
  in = after_writes(in, plan);
  plan = plan_machine_configs(in);
  st = status_of(plan, "corp");
  EXPECT_EQ(st.nodes, (api::RegistryConfigNodes{4, 4, 0}));
  EXPECT_EQ(cond(st, "Ready").status, api::ConditionStatus::kTrue);
  EXPECT_EQ(cond(st, "Ready").reason, "Applied");
  EXPECT_EQ(cond(st, "Progressing").status, api::ConditionStatus::kFalse);

  // A machine of worker degrades.
  in.pools = {pool("worker", 3, 2, 1), pool("infra", 1, 1)};
  in.pools[0].degraded_message = "Node w2 is reporting: content mismatch";
  in = after_writes(in, plan);
  plan = plan_machine_configs(in);
  st = status_of(plan, "corp");
  EXPECT_EQ(st.nodes, (api::RegistryConfigNodes{4, 3, 1}));
  EXPECT_EQ(cond(st, "Degraded").reason, "PoolDegraded");
  EXPECT_THAT(cond(st, "Degraded").message,
              HasSubstr("MachineConfigPool \"worker\" is degraded: Node w2 is reporting"));
  EXPECT_EQ(cond(st, "Ready").status, api::ConditionStatus::kFalse);
}

TEST(MachineConfig, WarnsThatEachChangeRebootsWithoutADisruptionPolicy) {
  MachineConfigInput in;
  in.machine_config_api = true;
  in.registry_configs = {registry_config("corp", R"({"delivery": "MachineConfig",
      "unqualifiedSearchRegistries": ["quay.io"]})")};
  in.pools = {pool("worker", 1, 1)};

  in.disruption_policy = DisruptionPolicy::kApplied;
  MachineConfigPlan plan = plan_machine_configs(in);
  EXPECT_THAT(status_of(plan, "corp").warnings, IsEmpty());
  EXPECT_THAT(plan.reboot_warnings, IsEmpty());

  in.disruption_policy = DisruptionPolicy::kNotServed;
  plan = plan_machine_configs(in);
  ASSERT_EQ(status_of(plan, "corp").warnings.size(), 1u);
  const std::string warning = status_of(plan, "corp").warnings[0];
  EXPECT_EQ(warning,
            "MachineConfiguration (operator.openshift.io/v1) is not served: MCO drains and reboots "
            "every node of MachineConfigPool \"worker\" for each change of "
            "/etc/containers/registries.conf.d/99-stowage.conf");
  ASSERT_EQ(plan.reboot_warnings.size(), 1u);
  EXPECT_EQ(plan.reboot_warnings[0].registry_config, "corp");
  EXPECT_EQ(plan.reboot_warnings[0].message, warning);
  // Once the status says it, no new event.
  in = after_writes(in, plan);
  EXPECT_THAT(plan_machine_configs(in).reboot_warnings, IsEmpty());

  in.disruption_policy = DisruptionPolicy::kNoClusterObject;
  EXPECT_THAT(status_of(plan_machine_configs(in), "corp").warnings,
              ElementsAre(HasSubstr("MachineConfiguration \"cluster\" does not exist")));

  // The policy entry: a Reload of crio.service for our path, in a list keyed by path.
  const json intent = disruption_policy_intent();
  EXPECT_EQ(intent["apiVersion"], "operator.openshift.io/v1");
  EXPECT_EQ(intent["kind"], "MachineConfiguration");
  EXPECT_EQ(intent["metadata"]["name"], "cluster");
  EXPECT_EQ(intent["spec"]["nodeDisruptionPolicy"]["files"],
            json::parse(R"([{"path": "/etc/containers/registries.conf.d/99-stowage.conf",
                "actions": [{"type": "Reload", "reload": {"serviceName": "crio.service"}}]}])"));
  json cluster = {{"spec", {{"managementState", "Managed"}}}};
  EXPECT_FALSE(has_disruption_policy(cluster));
  cluster["spec"]["nodeDisruptionPolicy"]["files"] = json::parse(
      R"([{"path": "/etc/x", "actions": [{"type": "None"}]},
          {"path": "/etc/containers/registries.conf.d/99-stowage.conf", "actions": [{"type": "Reboot"}]}])");
  EXPECT_FALSE(has_disruption_policy(cluster));
  cluster["spec"]["nodeDisruptionPolicy"]["files"][1] =
      intent["spec"]["nodeDisruptionPolicy"]["files"][0];
  EXPECT_TRUE(has_disruption_policy(cluster));
}

TEST(MachineConfig, DeletesWhatNoRegistryConfigTargetsAndNeedsTheApi) {
  MachineConfigInput in;
  in.machine_config_api = true;
  in.disruption_policy = DisruptionPolicy::kApplied;
  in.registry_configs = {registry_config("corp", R"({"delivery": "Auto",
      "machineConfigPools": ["worker"]})")};
  ExistingMachineConfig infra;
  infra.name = "99-infra-stowage-registries";
  infra.labels = {{"machineconfiguration.openshift.io/role", "infra"}};
  in.machine_configs = {infra};
  MachineConfigPlan plan = plan_machine_configs(in);
  EXPECT_THAT(plan.to_delete, ElementsAre("99-infra-stowage-registries"));
  ASSERT_NE(desired(plan, "worker"), nullptr);

  // A deleted RegistryConfig targets nothing.
  in = after_writes(in, plan);
  in.registry_configs[0].metadata.deletion_timestamp = api::Time{};
  plan = plan_machine_configs(in);
  EXPECT_THAT(plan.machine_configs, IsEmpty());
  EXPECT_THAT(plan.to_delete, ElementsAre("99-worker-stowage-registries"));
  EXPECT_THAT(plan.registry_configs, IsEmpty());

  // Without the API: Auto is the agent's; delivery MachineConfig is Degraded.
  MachineConfigInput plain;
  plain.registry_configs = {registry_config("auto", R"({"delivery": "Auto"})"),
                            registry_config("mc", R"({"delivery": "MachineConfig"})")};
  plan = plan_machine_configs(plain);
  EXPECT_THAT(plan.machine_configs, IsEmpty());
  ASSERT_EQ(plan.registry_configs.size(), 1u);
  EXPECT_EQ(plan.registry_configs[0].name, "mc");
  EXPECT_EQ(cond(plan.registry_configs[0].status, "Degraded").reason, "MachineConfigAPIMissing");
  EXPECT_EQ(cond(plan.registry_configs[0].status, "Ready").status, api::ConditionStatus::kFalse);
}

TEST(MachineConfig, ReadsMachineConfigPoolObjects) {
  const json object = json::parse(R"({
    "metadata": {"name": "worker"},
    "spec": {"configuration": {"name": "rendered-worker-2"}},
    "status": {"machineCount": 3, "updatedMachineCount": 2, "degradedMachineCount": 1,
      "configuration": {"name": "rendered-worker-2", "source": [
        {"kind": "MachineConfig", "name": "00-worker"},
        {"kind": "MachineConfig", "name": "99-worker-stowage-registries"}]},
      "conditions": [{"type": "Updated", "status": "False"},
                     {"type": "Degraded", "status": "True", "message": "1 node degraded"}]}})");
  MachineConfigPoolInfo info = pool_info_from_json(object, std::nullopt);
  EXPECT_EQ(info.name, "worker");
  EXPECT_EQ(info.machine_count, 3);
  EXPECT_EQ(info.updated_machine_count, 2);
  EXPECT_EQ(info.degraded_machine_count, 1);
  EXPECT_EQ(info.current_includes_ours, true);
  EXPECT_EQ(info.degraded_message, "1 node degraded");
  // MCO has not rendered since our change, or the machines are headed for another one.
  EXPECT_EQ(pool_info_from_json(object, "rendered-worker-2").current_includes_ours, false);
  EXPECT_EQ(pool_info_from_json(object, "rendered-worker-1").current_includes_ours, true);
  json moving = object;
  moving["spec"]["configuration"]["name"] = "rendered-worker-3";
  EXPECT_EQ(pool_info_from_json(moving, std::nullopt).current_includes_ours, false);
  json without = object;
  without["status"]["configuration"]["source"].erase(1);
  EXPECT_EQ(pool_info_from_json(without, std::nullopt).current_includes_ours, false);
  json fresh = json::parse(R"({"metadata": {"name": "infra"}, "status": {"machineCount": 1}})");
  EXPECT_EQ(pool_info_from_json(fresh, std::nullopt).current_includes_ours, std::nullopt);
}

}  // namespace
}  // namespace stowage::op
