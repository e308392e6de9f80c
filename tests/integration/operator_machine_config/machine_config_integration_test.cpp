// MachineConfigController against a real kube-apiserver holding our CRDs and the OpenShift
// stand-in CRDs. The test plays MCO: it creates the MachineConfigPools and MachineConfiguration
// "cluster", and moves the pools' status as MCO would once it has rendered our MachineConfig.
// Oracles: the real ignition-validate (from the envtest cache) for the Ignition document, and
// real podman (hermetic, tests/support/podman_peer.h) for the drop-in it carries.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/meta.h"
#include "api/registry_config.h"
#include "base/clock.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/encoding.h"
#include "operator/machine_config.h"
#include "operator/machine_config_controller.h"
#include "registries/render.h"
#include "registries/spec.h"
#include "support/kube_fixture.h"
#include "support/podman_peer.h"
#include "support/process.h"

namespace stowage::op {
namespace {

namespace fs = std::filesystem;
using kube::Client;
using kube::GroupVersionResource;
using nlohmann::json;
using test::BinaryLookup;
using test::ControlPlane;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr std::chrono::seconds kDeadline{30};
const GroupVersionResource kMachineConfigs{"machineconfiguration.openshift.io", "v1",
                                           "machineconfigs"};
const GroupVersionResource kPools{"machineconfiguration.openshift.io", "v1", "machineconfigpools"};
const GroupVersionResource kMachineConfigurations{"operator.openshift.io", "v1",
                                                  "machineconfigurations"};

struct SuiteState {
  BinaryLookup binaries;
  std::unique_ptr<ControlPlane> plane;
  std::string error;
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

std::string install_crds(ControlPlane& plane) {
  const fs::path src(STOWAGE_SOURCE_DIR);
  for (const fs::path& dir : {src / "crds", src / "tests" / "support" / "openshift-crds"}) {
    const auto applied = plane.kubectl({"apply", "--server-side", "-f", dir.string()});
    if (!applied.ok()) return applied.describe();
  }
  const auto waited = plane.kubectl({"wait", "--for=condition=Established", "--timeout=60s",
                                     "crd/registryconfigs.stowage.io",
                                     "crd/machineconfigs.machineconfiguration.openshift.io",
                                     "crd/machineconfigpools.machineconfiguration.openshift.io",
                                     "crd/machineconfigurations.operator.openshift.io"});
  return waited.ok() ? "" : waited.describe();
}

class MachineConfigIntegration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite().binaries = ControlPlane::find_binaries();
    if (!suite().binaries.dir) return;
    try {
      test::ControlPlaneOptions options;
      options.with_controller_manager = false;
      suite().plane = std::make_unique<ControlPlane>(options);
      suite().error = install_crds(*suite().plane);
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }
  static void TearDownTestSuite() { suite().plane.reset(); }

  void SetUp() override {
    const BinaryLookup& binaries = suite().binaries;
    if (!binaries.dir) {
      if (binaries.required) GTEST_FAIL() << binaries.problem;
      GTEST_SKIP() << binaries.problem;
    }
    ASSERT_THAT(suite().error, IsEmpty());
    client_ = std::make_unique<Client>(
        kube::rest_config_from_kubeconfig(kube::load_kubeconfig({suite().plane->kubeconfig_path()}),
                                          "", real_clock()),
        http_, real_clock());
  }

  // MCO's part: a pool whose machines are all at `rendered`, made of `sources`.
  void set_pool(const std::string& name, int machines, int updated, const std::string& rendered,
                const std::vector<std::string>& sources) {
    json source = json::array();
    for (const auto& s : sources) {
      source.push_back({{"apiVersion", "machineconfiguration.openshift.io/v1"},
                        {"kind", "MachineConfig"},
                        {"name", s}});
    }
    const json configuration = {{"name", rendered}, {"source", source}};
    const kube::ResourceRef ref{kPools, "", name, ""};
    json pool = client_->try_get(ref).value_or(
        json{{"apiVersion", "machineconfiguration.openshift.io/v1"},
             {"kind", "MachineConfigPool"},
             {"metadata", {{"name", name}}},
             {"spec",
              {{"machineConfigSelector",
                {{"matchLabels", {{"machineconfiguration.openshift.io/role", name}}}}}}}});
    pool["spec"]["configuration"] = configuration;
    pool = pool["metadata"].contains("resourceVersion")
               ? client_->update(ref, pool)
               : client_->create({kPools, "", "", ""}, pool);
    pool["status"] = {{"machineCount", machines},
                      {"updatedMachineCount", updated},
                      {"readyMachineCount", updated},
                      {"degradedMachineCount", 0},
                      {"configuration", configuration}};
    client_->update_status(ref, pool);
  }

  std::vector<api::RegistryConfig> registry_configs() {
    std::vector<api::RegistryConfig> out;
    const json list = client_->list_all({api::registry_configs_resource(), "", "", ""});
    for (const json& item : list.at("items")) {
      json object = item;
      object["apiVersion"] = std::string(api::kApiVersion);
      object["kind"] = std::string(api::kRegistryConfigKind);
      out.push_back(object.get<api::RegistryConfig>());
    }
    return out;
  }

  // Reconciles until `predicate` holds (the informers catch up asynchronously).
  void reconcile_until(MachineConfigController& controller, const std::string& what,
                       const std::function<bool()>& predicate) {
    std::string last_error;
    const bool ok = test::wait_for(
        [&] {
          try {
            controller.discover();
            last_ = controller.reconcile(registry_configs(), std::chrono::system_clock::now(),
                                         std::nullopt);
          } catch (const std::exception& e) {
            last_error = e.what();
            return false;
          }
          return predicate();
        },
        kDeadline);
    std::string statuses;
    for (const auto& st : last_.plan.registry_configs) {
      statuses +=
          fmt::format(" {}: {};", st.name, api::registry_config_status_to_json(st.status).dump());
    }
    EXPECT_TRUE(ok) << "never: " << what << (last_error.empty() ? "" : "; last error: ")
                    << last_error << "; last statuses:" << statuses;
  }

  std::optional<json> machine_config(const std::string& name) {
    return client_->try_get({kMachineConfigs, "", name, ""});
  }

  api::RegistryConfigStatus status_of(const std::string& name) {
    const json rc = client_->get({api::registry_configs_resource(), "", name, ""});
    return api::registry_config_status_from_json(rc.value("status", json::object()));
  }

  http::Client http_;
  std::unique_ptr<Client> client_;
  MachineConfigResult last_{};
};

TEST_F(MachineConfigIntegration, DeliversTheDropInPerPoolWithAReloadPolicy) {
  client_->create({kMachineConfigurations, "", "", ""},
                  {{"apiVersion", "operator.openshift.io/v1"},
                   {"kind", "MachineConfiguration"},
                   {"metadata", {{"name", "cluster"}}},
                   {"spec", {{"managementState", "Managed"}}}});
  set_pool("worker", 2, 2, "rendered-worker-1", {"00-worker"});
  set_pool("infra", 1, 1, "rendered-infra-1", {"00-worker"});
  client_->create({api::registry_configs_resource(), "", "", ""},
                  json::parse(R"({"apiVersion": "stowage.io/v1alpha1", "kind": "RegistryConfig",
        "metadata": {"name": "corp"},
        "spec": {"delivery": "MachineConfig", "machineConfigPools": ["worker", "infra"],
          "unqualifiedSearchRegistries": ["registry.corp.example", "quay.io"],
          "registries": [{"location": "quay.io/team",
            "mirrors": [{"location": "mirror.corp.example:5000/team"}]}],
          "aliases": {"trainer": "registry.corp.example/ml/trainer"}}})"));
  client_->create({api::registry_configs_resource(), "", "", ""},
                  json::parse(R"({"apiVersion": "stowage.io/v1alpha1", "kind": "RegistryConfig",
        "metadata": {"name": "override"},
        "spec": {"delivery": "MachineConfig", "priority": 10, "machineConfigPools": ["worker"],
          "registries": [{"location": "quay.io/team", "insecure": true}]}})"));

  MachineConfigController controller(*client_, real_clock(), [] {});
  reconcile_until(controller, "both MachineConfigs exist", [&] {
    return machine_config("99-worker-stowage-registries") &&
           machine_config("99-infra-stowage-registries");
  });
  EXPECT_TRUE(controller.machine_config_api());
  EXPECT_EQ(last_.disruption_policy, DisruptionPolicy::kApplied);

  // Name, label, and an Ignition document the real validator accepts.
  const json worker = machine_config("99-worker-stowage-registries").value();
  EXPECT_EQ(worker["metadata"]["labels"]["machineconfiguration.openshift.io/role"], "worker");
  const json& ignition = worker["spec"]["config"];
  test::TempDir tmp("stowage-mc");
  const fs::path ignition_file = tmp.path() / "worker.ign";
  test::write_text_file(ignition_file, ignition.dump());
  const auto validated =
      test::run({(*suite().binaries.dir / "ignition-validate").string(), ignition_file.string()});
  EXPECT_TRUE(validated.ok()) << validated.describe();
  // The validator is no rubber stamp: a relative path fails.
  json broken = ignition;
  broken["storage"]["files"][0]["path"] = "etc/containers/registries.conf.d/99-stowage.conf";
  test::write_text_file(tmp.path() / "broken.ign", broken.dump());
  EXPECT_FALSE(test::run({(*suite().binaries.dir / "ignition-validate").string(),
                          (tmp.path() / "broken.ign").string()})
                   .ok());

  // The decoded drop-in is the merge of both RegistryConfigs, rendered.
  const std::string source = ignition["storage"]["files"][0]["contents"]["source"];
  ASSERT_EQ(source.rfind(std::string(kDataUrlPrefix), 0), 0u);
  const std::string drop_in = kube::base64_decode(source.substr(kDataUrlPrefix.size())).value();
  std::vector<registries::NamedRegistryConfig> named;
  for (const auto& rc : registry_configs()) named.push_back(api::named(rc));
  EXPECT_EQ(drop_in, registries::render(registries::merge_registry_configs(named),
                                        registries::RenderFormat::kV2DropIn)
                         .files.at(0)
                         .content);

  // Real podman reads it: the search list and the winning (insecure) quay.io/team table.
  if (const std::string why = test::podman_unavailable_reason(); !why.empty()) {
    ADD_FAILURE() << "podman oracle unavailable: " << why;
  } else {
    test::PodmanPeer podman;
    test::write_text_file(podman.path("registries.conf"), drop_in);
    const auto info = podman.podman({"info", "--format", "json"});
    ASSERT_TRUE(info.ok()) << info.describe();
    const json registries = json::parse(info.out).at("registries");
    EXPECT_EQ(registries.at("search"), json::parse(R"(["registry.corp.example", "quay.io"])"));
    EXPECT_EQ(registries.at("quay.io/team").at("Insecure"), true) << registries.dump();
  }

  // The node-disruption policy is in MachineConfiguration "cluster", beside what was there.
  const json cluster = client_->get({kMachineConfigurations, "", "cluster", ""});
  EXPECT_TRUE(has_disruption_policy(cluster)) << cluster.dump();
  EXPECT_EQ(cluster["spec"]["managementState"], "Managed");

  // Status: MachineConfigs named, waiting for MCO to render and roll them out.
  auto st = status_of("corp");
  EXPECT_THAT(st.machine_configs,
              ElementsAre("99-infra-stowage-registries", "99-worker-stowage-registries"));
  EXPECT_THAT(st.warnings, IsEmpty());
  EXPECT_EQ(api::find_condition(st.conditions, "Progressing")->status, api::ConditionStatus::kTrue);

  // MCO renders both pools with ours and updates every machine.
  set_pool("worker", 2, 2, "rendered-worker-2", {"00-worker", "99-worker-stowage-registries"});
  set_pool("infra", 1, 1, "rendered-infra-2", {"00-worker", "99-infra-stowage-registries"});
  reconcile_until(controller, "corp is Ready with 3 of 3 nodes updated", [&] {
    const auto s = status_of("corp");
    const api::Condition* ready = api::find_condition(s.conditions, "Ready");
    return ready != nullptr && ready->status == api::ConditionStatus::kTrue &&
           s.nodes == api::RegistryConfigNodes{3, 3, 0};
  });

  // infra is no longer targeted: its MachineConfig goes, worker's stays.
  client_->patch({api::registry_configs_resource(), "", "corp", ""}, kube::PatchType::kMerge,
                 json::parse(R"({"spec": {"machineConfigPools": ["worker"]}})"));
  reconcile_until(controller, "99-infra-stowage-registries is deleted",
                  [&] { return !machine_config("99-infra-stowage-registries"); });
  EXPECT_TRUE(machine_config("99-worker-stowage-registries").has_value());
  EXPECT_THAT(status_of("corp").machine_configs, ElementsAre("99-worker-stowage-registries"));
}

}  // namespace
}  // namespace stowage::op
