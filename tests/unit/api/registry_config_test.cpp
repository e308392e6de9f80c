#include "api/registry_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "yaml_json.h"

namespace stowage::api {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::string error_of(const json& j) {
  try {
    (void)j.get<RegistryConfig>();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    return e.what();
  }
  return "no error";
}

RegistryConfig full() {
  RegistryConfig rc;
  rc.metadata.name = "corp";
  rc.metadata.generation = 3;
  auto& s = rc.spec;
  s.node_selector.match_labels = {{"node-role.kubernetes.io/worker", ""}};
  s.node_selector.match_expressions = {{"zone", "In", {"a"}}};
  s.priority = -5;
  s.unqualified_search_registries = std::vector<std::string>{};  // set, and empty: clears
  s.insecure_registries = {"localhost:5000"};
  s.blocked_registries = {"docker.io"};
  s.short_name_mode = "permissive";
  registries::Registry r;
  r.prefix = "quay.io/team";
  r.location = "quay.io/team";
  r.blocked = true;
  r.insecure = true;
  r.mirror_by_digest_only = true;
  r.mirrors = {{"mirror.corp:5000/team", true, ""}};
  registries::Registry w;
  w.prefix = "*.dev.corp";
  w.insecure = true;
  s.registries = {r, w};
  s.aliases = {{"nginx", "quay.io/nginx"}};
  s.delivery = "MachineConfig";
  s.machine_config_pools = {"worker", "infra"};
  auto& st = rc.status;
  st.observed_generation = 3;
  st.conditions = {{"Ready", ConditionStatus::kTrue, 3, Time(std::chrono::seconds(100)), "Applied",
                    "all nodes updated"}};
  st.rendered_hash = "ab12";
  st.machine_configs = {"99-worker-stowage-registries"};
  st.warnings = {"containerd nodes ignore blocked registries"};
  st.nodes = {4, 3, 1};
  st.failures = {{"worker-2", "crio did not reload"}};
  return rc;
}

TEST(RegistryConfig, RoundTripsEveryField) {
  const RegistryConfig rc = full();
  const json j = rc;
  EXPECT_EQ(j["apiVersion"], "stowage.io/v1alpha1");
  EXPECT_EQ(j["kind"], "RegistryConfig");
  EXPECT_EQ(j["spec"]["unqualifiedSearchRegistries"], json::array());
  EXPECT_EQ(j["spec"]["registries"][1], json({{"prefix", "*.dev.corp"}, {"insecure", true}}));
  EXPECT_EQ(j["status"]["nodes"], json({{"matched", 4}, {"updated", 3}, {"failed", 1}}));
  EXPECT_EQ(j.get<RegistryConfig>(), rc);
}

TEST(RegistryConfig, EncodingIsStable) {
  const json j = full();
  EXPECT_EQ(json(j.get<RegistryConfig>()).dump(), j.dump());
}

TEST(RegistryConfig, EmptyStatusIsOmitted) {
  RegistryConfig rc;
  rc.metadata.name = "a";
  const json j = rc;
  EXPECT_FALSE(j.contains("status"));
  EXPECT_EQ(j["spec"], json({{"priority", 0}, {"delivery", "Auto"}}));
}

TEST(RegistryConfig, SamplesDecodeAsLibsRegistriesReadsThem) {
  int seen = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(testing::source_path("manifests/samples"))) {
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    const auto docs = testing::load_yaml_file(entry.path());
    for (const auto& doc : docs) {
      if (doc.value("kind", "") != "RegistryConfig") continue;
      SCOPED_TRACE(entry.path().filename().string());
      const auto expected = registries::read_registry_configs(text.str(), "sample");
      ASSERT_EQ(expected.size(), 1u);
      const auto rc = doc.get<RegistryConfig>();
      EXPECT_EQ(rc.metadata.name, expected[0].name);
      EXPECT_EQ(rc.spec, expected[0].spec);
      EXPECT_EQ(json(rc).get<RegistryConfig>(), rc);
      ++seen;
    }
  }
  EXPECT_GE(seen, 2);
}

TEST(RegistryConfig, ErrorsNameTheObjectAndTheField) {
  json j = full();
  j["spec"]["priority"] = "high";
  EXPECT_EQ(error_of(j), "RegistryConfig \"corp\": spec.priority: must be an integer");

  j = full();
  j["spec"]["registries"][0]["mirrors"][0]["insecure"] = "yes";
  EXPECT_EQ(error_of(j),
            "RegistryConfig \"corp\": spec.registries[0].mirrors[0].insecure: must be a boolean");

  j = full();
  j["spec"]["delivery"] = "Agent";
  EXPECT_THAT(error_of(j), HasSubstr("spec.machineConfigPools: Forbidden"));

  j = full();
  j["status"]["failures"].push_back({{"node", "worker-2"}});
  EXPECT_EQ(error_of(j),
            "RegistryConfig \"corp\": status.failures[1].node: Duplicate value: \"worker-2\"");

  j = full();
  j["status"]["nodes"]["matched"] = -1;
  EXPECT_EQ(error_of(j),
            "RegistryConfig \"corp\": status.nodes.matched: must be between 0 and 2147483647");

  j = full();
  j["status"]["color"] = "blue";
  EXPECT_EQ(error_of(j), "RegistryConfig \"corp\": status.color: unknown field");

  j = full();
  j["kind"] = "ImageCache";
  EXPECT_EQ(error_of(j), "kind: expected \"RegistryConfig\", found \"ImageCache\"");
}

TEST(RegistryConfig, NamedFeedsTheMerge) {
  const auto n = named(full());
  EXPECT_EQ(n.name, "corp");
  EXPECT_EQ(n.spec.priority, -5);
}

}  // namespace
}  // namespace stowage::api
