// The planner's rules, one case each: selectors, priority merge, rendering and validation,
// ConfigMaps, images, pull secrets, exports, statuses, idempotence.
#include "operator/planner.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/registries_config_map.h"
#include "fixtures.h"
#include "registries/render.h"

namespace stowage::op {
namespace {

using namespace stowage::op::testing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string dropin_of(const Plan& plan, std::string_view node_name) {
  const auto& nc = planned(plan, node_name);
  if (!nc.spec->registries) return "<no registries>";
  const PlannedConfigMap* cm = config_map(plan, nc.spec->registries->hash);
  if (cm == nullptr) return "<no configmap>";
  return cm->data.at(std::string(api::kDropInKey));
}

TEST(Planner, NoMatchingRegistryConfigGivesTheEmptyConfig) {
  PlannerInput in;
  in.nodes = {node("w1", {{"role", "worker"}})};
  in.registry_configs = {registry_config("masters", R"({"nodeSelector": {"matchLabels":
      {"role": "master"}}, "unqualifiedSearchRegistries": ["quay.io"]})")};
  const Plan plan = plan_cluster(in);
  ASSERT_EQ(plan.node_caches.size(), 1u);
  const auto& nc = plan.node_caches[0];
  ASSERT_TRUE(nc.spec->registries);
  EXPECT_EQ(nc.spec->registries->config_map, "stowage-registries-" + nc.spec->registries->hash);
  const PlannedConfigMap* cm = config_map(plan, nc.spec->registries->hash);
  ASSERT_NE(cm, nullptr);
  EXPECT_TRUE(cm->create);
  EXPECT_EQ(cm->data.size(), 1u);  // the drop-in only: no host to configure
  EXPECT_EQ(cm->data.at("99-stowage.conf"), registries::render_v2(registries::Config{}, false));
  EXPECT_TRUE(nc.write);
  EXPECT_EQ(rc_status(plan, "masters").status.nodes.matched, 0);
}

TEST(Planner, SelectorsDecideWhichConfigsANodeGets) {
  PlannerInput in;
  in.max_unavailable = MaxUnavailable::parse("100%");
  in.nodes = {node("m1", {{"role", "master"}}), node("w1", {{"role", "worker"}}),
              node("w2", {{"role", "worker"}, {"gpu", "true"}})};
  in.registry_configs = {
      registry_config("workers", R"({"nodeSelector": {"matchLabels": {"role": "worker"}},
                                     "unqualifiedSearchRegistries": ["workers.example"]})"),
      registry_config("no-gpu", R"({"nodeSelector": {"matchExpressions":
          [{"key": "gpu", "operator": "DoesNotExist"}]}, "blockedRegistries": ["bad.example"]})"),
      registry_config("all", R"({"aliases": {"nginx": "quay.io/nginx/nginx"}})")};
  const Plan plan = plan_cluster(in);
  EXPECT_THAT(dropin_of(plan, "m1"), Not(HasSubstr("workers.example")));
  EXPECT_THAT(dropin_of(plan, "m1"), HasSubstr("bad.example"));
  EXPECT_THAT(dropin_of(plan, "w1"), HasSubstr("workers.example"));
  EXPECT_THAT(dropin_of(plan, "w1"), HasSubstr("bad.example"));
  EXPECT_THAT(dropin_of(plan, "w2"), HasSubstr("workers.example"));
  EXPECT_THAT(dropin_of(plan, "w2"), Not(HasSubstr("bad.example")));
  for (const auto* n : {"m1", "w1", "w2"}) EXPECT_THAT(dropin_of(plan, n), HasSubstr("nginx"));
  EXPECT_EQ(rc_status(plan, "workers").status.nodes.matched, 2);
  EXPECT_EQ(rc_status(plan, "no-gpu").status.nodes.matched, 2);
  EXPECT_EQ(rc_status(plan, "all").status.nodes.matched, 3);
  // Three distinct renderings, one ConfigMap each.
  EXPECT_EQ(plan.config_maps.size(), 3u);
}

TEST(Planner, NodesWithTheSameConfigShareOneConfigMap) {
  PlannerInput in;
  in.max_unavailable = MaxUnavailable::parse("100%");
  for (int i = 0; i < 5; ++i) in.nodes.push_back(node("n" + std::to_string(i)));
  in.registry_configs = {registry_config("a", R"({"insecureRegistries": ["localhost:5000"]})")};
  const Plan plan = plan_cluster(in);
  ASSERT_EQ(plan.config_maps.size(), 1u);
  for (const auto& nc : plan.node_caches) {
    ASSERT_TRUE(nc.spec->registries) << nc.name;
    EXPECT_EQ(nc.spec->registries->hash, plan.config_maps[0].hash);
  }
  EXPECT_EQ(rc_status(plan, "a").status.rendered_hash, plan.config_maps[0].hash);
}

TEST(Planner, HigherPriorityWinsPerPrefixAndTiesGoToTheFirstName) {
  struct Case {
    int priority_a, priority_b;
    std::string winner_mirror;
  };
  for (const auto& c : {Case{10, 0, "a-mirror.example"}, Case{0, 10, "b-mirror.example"},
                        Case{5, 5, "a-mirror.example"}}) {
    PlannerInput in;
    in.nodes = {node("w1")};
    const auto spec = [](int prio, const char* mirror) {
      return fmt::format(R"({{"priority": {}, "registries": [{{"location": "quay.io",
          "mirrors": [{{"location": "{}"}}]}}]}})",
                         prio, mirror);
    };
    in.registry_configs = {registry_config("b", spec(c.priority_b, "b-mirror.example")),
                           registry_config("a", spec(c.priority_a, "a-mirror.example"))};
    const Plan plan = plan_cluster(in);
    const std::string dropin = dropin_of(plan, "w1");
    EXPECT_THAT(dropin, HasSubstr(c.winner_mirror)) << c.priority_a << " vs " << c.priority_b;
    const std::string loser =
        c.winner_mirror == "a-mirror.example" ? "b-mirror.example" : "a-mirror.example";
    EXPECT_THAT(dropin, Not(HasSubstr(loser)));
  }
}

TEST(Planner, HostsTomlPerRegistryHostWithEscapedKeys) {
  PlannerInput in;
  in.nodes = {node("w1")};
  in.registry_configs = {registry_config("a", R"({"insecureRegistries": ["localhost:5000"],
      "registries": [{"location": "docker.io", "mirrors": [{"location": "mirror.corp:5000"}]}]})")};
  const Plan plan = plan_cluster(in);
  ASSERT_EQ(plan.config_maps.size(), 1u);
  const auto& data = plan.config_maps[0].data;
  EXPECT_TRUE(data.contains("99-stowage.conf"));
  ASSERT_TRUE(data.contains("docker.io.hosts.toml"));
  ASSERT_TRUE(data.contains("localhost_3a5000.hosts.toml"));
  EXPECT_THAT(data.at("docker.io.hosts.toml"), HasSubstr("https://mirror.corp:5000"));
  const auto files = api::registries_files_from_config_map_data(data);
  EXPECT_TRUE(files.hosts_toml.contains("localhost:5000"));
  EXPECT_EQ(files.dropin, data.at("99-stowage.conf"));
}

TEST(Planner, InvalidConfigIsDegradedAndNodesKeepTheirPreviousHash) {
  PlannerInput in;
  in.max_unavailable = MaxUnavailable::parse("100%");
  in.nodes = {node("w1"), node("w2", {{"team", "b"}})};
  in.registry_configs = {registry_config("one", R"({"registries":
      [{"prefix": "q.io/a", "location": "q.io", "insecure": true}]})")};
  Plan plan = plan_cluster(in);
  const std::string previous = planned(plan, "w1").spec->registries->hash;
  in = after_writes(in, plan);
  agents_apply_all(in);
  in = after_writes(in, plan_cluster(in));
  plan = plan_cluster(in);
  ASSERT_FALSE(has_writes(plan));
  EXPECT_EQ(condition(rc_status(plan, "one").status.conditions, "Ready").status,
            api::ConditionStatus::kTrue);

  // A second config that conflicts with the first once merged, on w1 only... and on w2 too.
  in.registry_configs.push_back(registry_config("two", R"({"registries":
      [{"prefix": "q.io/b", "location": "q.io"}]})"));
  plan = plan_cluster(in);
  for (const auto* n : {"w1", "w2"}) {
    EXPECT_EQ(planned(plan, n).spec->registries->hash, previous) << n;
    EXPECT_FALSE(planned(plan, n).write) << n;
  }
  for (const auto* rc : {"one", "two"}) {
    const auto& st = rc_status(plan, rc).status;
    const auto& degraded = condition(st.conditions, "Degraded");
    EXPECT_EQ(degraded.status, api::ConditionStatus::kTrue) << rc;
    EXPECT_EQ(degraded.reason, "InvalidConfig");
    EXPECT_THAT(degraded.message, HasSubstr("merging RegistryConfigs"));
    EXPECT_THAT(degraded.message, HasSubstr("conflicting 'insecure' setting"));
    EXPECT_EQ(condition(st.conditions, "Ready").status, api::ConditionStatus::kFalse);
  }
  EXPECT_THAT(plan.config_maps_to_delete, IsEmpty());  // the previous rendering is still in use
}

TEST(Planner, ConfigInvalidOnItsOwnIsDegradedAndANewNodeGetsNoRegistries) {
  PlannerInput in;
  in.nodes = {node("w1")};
  in.registry_configs = {registry_config("bad", R"({"registries": [{"location": "q.io",
      "mirrorByDigestOnly": true, "mirrors": [{"location": "m.io", "pullFromMirror": "tag-only"}]}]})")};
  const Plan plan = plan_cluster(in);
  EXPECT_FALSE(planned(plan, "w1").spec->registries.has_value());
  EXPECT_THAT(plan.config_maps, IsEmpty());
  const auto& degraded = condition(rc_status(plan, "bad").status.conditions, "Degraded");
  EXPECT_EQ(degraded.status, api::ConditionStatus::kTrue);
  EXPECT_EQ(degraded.reason, "InvalidConfig");
  EXPECT_THAT(degraded.message, HasSubstr("RegistryConfig \"bad\""));
}

TEST(Planner, ContainerdWarningsGoToStatusUnlessEveryNodeRunsCrio) {
  PlannerInput in;
  in.nodes = {node("w1")};
  in.registry_configs = {registry_config("b", R"({"blockedRegistries": ["docker.io"]})")};
  Plan plan = plan_cluster(in);
  EXPECT_THAT(rc_status(plan, "b").status.warnings,
              ElementsAre(HasSubstr("containerd cannot express blocked registries")));
  in = after_writes(in, plan);
  node_cache(in, "w1")->status.runtime = api::RuntimeInfo{"cri-o", "1.30"};
  plan = plan_cluster(in);
  EXPECT_THAT(rc_status(plan, "b").status.warnings, IsEmpty());
  node_cache(in, "w1")->status.runtime = api::RuntimeInfo{"containerd", "1.7"};
  plan = plan_cluster(in);
  EXPECT_THAT(rc_status(plan, "b").status.warnings, Not(IsEmpty()));
}

TEST(Planner, MachineConfigDeliveryLeavesRegistriesToTheMachineConfig) {
  PlannerInput in;
  in.max_unavailable = MaxUnavailable::parse("100%");
  in.nodes = {node("w1", {{"role", "worker"}}), node("m1", {{"role", "master"}})};
  in.registry_configs = {
      registry_config("auto", R"({"nodeSelector": {"matchLabels": {"role": "worker"}},
                                  "unqualifiedSearchRegistries": ["quay.io"]})"),
      registry_config("agent", R"({"delivery": "Agent", "aliases": {"x": "quay.io/x"}})")};
  in.machine_config_api = false;
  Plan plan = plan_cluster(in);
  EXPECT_THAT(dropin_of(plan, "w1"), HasSubstr("quay.io"));
  EXPECT_EQ(plan.registry_configs.size(), 2u);

  in.machine_config_api = true;
  plan = plan_cluster(in);
  EXPECT_FALSE(planned(plan, "w1").spec->registries.has_value());
  EXPECT_TRUE(planned(plan, "m1").spec->registries.has_value());
  ASSERT_EQ(plan.registry_configs.size(), 1u);  // "auto" is the MachineConfig controller's
  const auto& degraded = condition(rc_status(plan, "agent").status.conditions, "Degraded");
  EXPECT_EQ(degraded.reason, "DeliveryConflict");
  EXPECT_THAT(degraded.message, HasSubstr("w1"));
  EXPECT_THAT(degraded.message, HasSubstr("\"auto\""));
}

TEST(Planner, ImagesSharedByCachesAreOneEntryWithEverySource) {
  PlannerInput in;
  in.nodes = {node("w1")};
  auto a = image_cache("ml", "base", {"quay.io/x:1", "quay.io/only-a:2"});
  a.spec.image_pull_secrets = {{"corp-pull"}};
  auto b = image_cache("ci", "runners", {"quay.io/x:1"});
  b.spec.image_pull_secrets = {{"ci-pull"}, {"corp-pull"}};
  in.image_caches = {a, b};
  in.digests = {{"quay.io/x:1", std::string(kDigestA)},
                {"quay.io/only-a:2", std::string(kDigestB)}};
  const Plan plan = plan_cluster(in);
  const auto& images = planned(plan, "w1").spec->images;
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0].name, "quay.io/only-a:2");
  EXPECT_THAT(images[0].sources, ElementsAre("ml/base"));
  EXPECT_EQ(images[1].name, "quay.io/x:1");
  EXPECT_EQ(images[1].digest, kDigestA);
  EXPECT_THAT(images[1].sources, ElementsAre("ci/runners", "ml/base"));
  std::vector<std::string> secrets;
  for (const auto& s : images[1].pull_secrets) secrets.push_back(s.name);
  EXPECT_THAT(secrets, ElementsAre("stowage-pull-ci.ci-pull", "stowage-pull-ci.corp-pull",
                                   "stowage-pull-ml.corp-pull"));
}

TEST(Planner, DigestReferencesNeedNoResolution) {
  PlannerInput in;
  in.nodes = {node("w1")};
  const std::string by_digest = "registry.corp/ml/trainer@" + std::string(kDigestC);
  in.image_caches = {image_cache("ml", "t", {by_digest})};
  const Plan plan = plan_cluster(in);
  const auto& images = planned(plan, "w1").spec->images;
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].name, by_digest);
  EXPECT_EQ(images[0].digest, kDigestC);
  const auto& st = ic_status(plan, "ml", "t").status;
  EXPECT_EQ(st.images[0].digest, kDigestC);
  EXPECT_EQ(condition(st.conditions, "Degraded").status, api::ConditionStatus::kFalse);
}

TEST(Planner, PlannedImagesCarryTheMeasuredSize) {
  PlannerInput in;
  in.nodes = {node("w1")};
  const std::string by_digest = "registry.corp/ml/trainer@" + std::string(kDigestC);
  in.image_caches = {
      image_cache("ml", "base", {"quay.io/x:1", "quay.io/y:2", "quay.io/z:3", by_digest})};
  in.digests = {{"quay.io/x:1", std::string(kDigestA)},
                {"quay.io/y:2", std::string(kDigestB)},
                {"quay.io/z:3", std::string(kDigestB)}};
  in.sizes = {{"quay.io/x:1", 1000}, {"quay.io/z:3", -1}, {by_digest, 3000}};
  Plan plan = plan_cluster(in);
  auto images = planned(plan, "w1").spec->images;
  ASSERT_EQ(images.size(), 4u);
  EXPECT_EQ(images[0].name, "quay.io/x:1");
  EXPECT_EQ(images[0].size_bytes, 1000);
  EXPECT_EQ(images[1].name, "quay.io/y:2");
  EXPECT_EQ(images[1].size_bytes, std::nullopt);  // not measured: absent
  EXPECT_EQ(images[2].name, "quay.io/z:3");
  EXPECT_EQ(images[2].size_bytes, std::nullopt);  // not a size
  EXPECT_EQ(images[3].name, by_digest);
  EXPECT_EQ(images[3].size_bytes, 3000);

  // x cannot be resolved now: the node keeps its digest and the size that came with it.
  in = after_writes(in, plan);
  in.digests.erase("quay.io/x:1");
  in.sizes.erase("quay.io/x:1");
  in.unresolved["quay.io/x:1"] = {"Unavailable", "503"};
  plan = plan_cluster(in);
  EXPECT_FALSE(planned(plan, "w1").write);
  EXPECT_EQ(planned(plan, "w1").spec->images[0].size_bytes, 1000);

  // Measured later: the spec changes to carry it.
  in.sizes["quay.io/y:2"] = 2000;
  plan = plan_cluster(in);
  EXPECT_TRUE(planned(plan, "w1").write);
  EXPECT_EQ(planned(plan, "w1").spec->images[1].size_bytes, 2000);

  // Same digest, no measure this time (an operator restart, a failed GET): the size stays.
  in = after_writes(in, plan);
  in.sizes.erase("quay.io/y:2");
  plan = plan_cluster(in);
  EXPECT_FALSE(planned(plan, "w1").write);
  EXPECT_EQ(planned(plan, "w1").spec->images[1].size_bytes, 2000);

  // The tag moved, not measured yet: the old digest's size is not the new one's.
  in.digests["quay.io/y:2"] = std::string(kDigestC);
  plan = plan_cluster(in);
  EXPECT_EQ(planned(plan, "w1").spec->images[1].digest, kDigestC);
  EXPECT_EQ(planned(plan, "w1").spec->images[1].size_bytes, std::nullopt);
}

TEST(Planner, PullSecretNamesAreUnambiguous) {
  EXPECT_EQ(synced_pull_secret_name("ml", "corp-pull"), "stowage-pull-ml.corp-pull");
  EXPECT_NE(synced_pull_secret_name("a-b", "c"), synced_pull_secret_name("a", "b-c"));
  const std::string long_name(250, 'x');
  const std::string synced = synced_pull_secret_name("ns", long_name);
  EXPECT_LE(synced.size(), 253u);
  EXPECT_TRUE(synced.starts_with("stowage-pull-"));
  EXPECT_NE(synced, synced_pull_secret_name("ns2", long_name));
}

TEST(Planner, UnresolvedImagesAreReportedAndNeverDroppedFromANode) {
  PlannerInput in;
  in.nodes = {node("w1")};
  in.image_caches = {image_cache("ml", "base", {"quay.io/x:1", "quay.io/y:2", "quay.io/z:3"})};
  in.digests = {{"quay.io/x:1", std::string(kDigestA)}, {"quay.io/y:2", std::string(kDigestB)}};
  in.unresolved = {{"quay.io/z:3", {"Unauthorized", "401 from quay.io"}}};
  Plan plan = plan_cluster(in);
  EXPECT_EQ(planned(plan, "w1").spec->images.size(), 2u);  // z has no digest to pull
  auto st = ic_status(plan, "ml", "base").status;
  ASSERT_EQ(st.images.size(), 3u);
  EXPECT_EQ(st.images[2].name, "quay.io/z:3");
  EXPECT_EQ(st.images[2].digest, "");
  const auto& degraded = condition(st.conditions, "Degraded");
  EXPECT_EQ(degraded.reason, "ImagesUnresolved");
  EXPECT_THAT(degraded.message, HasSubstr("quay.io/z:3: Unauthorized: 401 from quay.io"));

  // y resolved before; now the registry is down: the node keeps y at its old digest.
  in = after_writes(in, plan);
  in.digests.erase("quay.io/y:2");
  in.unresolved["quay.io/y:2"] = {"Unavailable", "503"};
  plan = plan_cluster(in);
  const auto& images = planned(plan, "w1").spec->images;
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[1].name, "quay.io/y:2");
  EXPECT_EQ(images[1].digest, kDigestB);
  EXPECT_FALSE(planned(plan, "w1").write);
  EXPECT_THAT(condition(ic_status(plan, "ml", "base").status.conditions, "Degraded").message,
              HasSubstr("quay.io/y:2: Unavailable: 503"));

  // Neither resolved nor failed: waiting for the resolver.
  in.digests.erase("quay.io/x:1");
  in.node_caches.clear();
  plan = plan_cluster(in);
  EXPECT_THAT(condition(ic_status(plan, "ml", "base").status.conditions, "Degraded").message,
              HasSubstr("quay.io/x:1: NotResolvedYet"));
}

TEST(Planner, InvalidReferenceIsReported) {
  PlannerInput in;
  in.nodes = {node("w1")};
  in.image_caches = {image_cache("ml", "base", {"Quay.io/UPPER:1"})};
  const Plan plan = plan_cluster(in);
  EXPECT_THAT(planned(plan, "w1").spec->images, IsEmpty());
  EXPECT_THAT(condition(ic_status(plan, "ml", "base").status.conditions, "Degraded").message,
              HasSubstr("InvalidReference"));
}

TEST(Planner, ExportIsOneTarPerCacheAndTheLaterClaimantIsRefused) {
  PlannerInput in;
  in.nodes = {node("w1", {{"gpu", "true"}}), node("w2")};
  // "a-new" sorts first by name but was created later: "z-old" claimed the file first.
  auto old_ic = image_cache("ml", "z-old", {"quay.io/x:1", "quay.io/y@" + std::string(kDigestB)},
                            /*created_seconds=*/0);
  old_ic.spec.export_ = api::ImageExport{api::ExportFormat::kOciArchive, "base.tar"};
  old_ic.spec.node_selector.match_labels = {{"gpu", "true"}};
  auto new_ic = image_cache("ci", "a-new", {"quay.io/x:1"}, /*created_seconds=*/60);
  new_ic.spec.export_ = api::ImageExport{api::ExportFormat::kDockerArchive, "base.tar"};
  in.image_caches = {new_ic, old_ic};
  in.digests = {{"quay.io/x:1", std::string(kDigestA)}};
  const Plan plan = plan_cluster(in);

  const auto& w1 = planned(plan, "w1").spec->exports;
  ASSERT_EQ(w1.size(), 1u);
  EXPECT_EQ(w1[0].file_name, "base.tar");
  EXPECT_EQ(w1[0].source, "ml/z-old");
  EXPECT_EQ(w1[0].format, api::ExportFormat::kOciArchive);
  EXPECT_THAT(w1[0].images, ElementsAre("quay.io/x@" + std::string(kDigestA),
                                        "quay.io/y@" + std::string(kDigestB)));
  // w2 is not selected by z-old: a-new's export goes there.
  const auto& w2 = planned(plan, "w2").spec->exports;
  ASSERT_EQ(w2.size(), 1u);
  EXPECT_EQ(w2[0].source, "ci/a-new");

  const auto& refused = condition(ic_status(plan, "ci", "a-new").status.conditions, "Degraded");
  EXPECT_EQ(refused.status, api::ConditionStatus::kTrue);
  EXPECT_EQ(refused.reason, "ExportConflict");
  EXPECT_THAT(refused.message, HasSubstr("\"ml/z-old\""));
  EXPECT_THAT(refused.message, HasSubstr("w1"));
  EXPECT_THAT(refused.message, Not(HasSubstr("w2")));
  EXPECT_EQ(condition(ic_status(plan, "ml", "z-old").status.conditions, "Degraded").status,
            api::ConditionStatus::kFalse);
}

TEST(Planner, ClaimOrderIsCreationTimeThenNamespaceAndName) {
  const auto a = image_cache("a", "x", {"q.io/i:1"}, 5);
  const auto b = image_cache("b", "a", {"q.io/i:1"}, 5);
  const auto c = image_cache("a", "y", {"q.io/i:1"}, 1);
  EXPECT_TRUE(claims_before(c, a));
  EXPECT_TRUE(claims_before(a, b));
  EXPECT_FALSE(claims_before(b, a));
  EXPECT_FALSE(claims_before(a, a));
}

TEST(Planner, PrunePolicyIsNeverWhenAnyCacheOfTheNodeSaysSo) {
  PlannerInput in;
  in.nodes = {node("w1")};
  auto a = image_cache("ns", "a", {"q.io/i@" + std::string(kDigestA)});
  auto b = image_cache("ns", "b", {"q.io/j@" + std::string(kDigestB)});
  in.image_caches = {a, b};
  EXPECT_EQ(plan_cluster(in).node_caches[0].spec->prune.policy, api::PrunePolicy::kOnRemoval);
  in.image_caches[1].spec.prune = api::PrunePolicy::kNever;
  EXPECT_EQ(plan_cluster(in).node_caches[0].spec->prune.policy, api::PrunePolicy::kNever);
}

TEST(Planner, ADeletedCacheNoLongerContributesImages) {
  PlannerInput in;
  in.nodes = {node("w1")};
  in.image_caches = {image_cache("ns", "a", {"q.io/i@" + std::string(kDigestA)})};
  Plan plan = plan_cluster(in);
  EXPECT_EQ(plan.node_caches[0].spec->images.size(), 1u);
  in = after_writes(in, plan);
  in.image_caches[0].metadata.deletion_timestamp = api::Time{};
  plan = plan_cluster(in);
  EXPECT_THAT(plan.node_caches[0].spec->images, IsEmpty());
  EXPECT_TRUE(plan.node_caches[0].write);
  EXPECT_THAT(plan.image_caches, IsEmpty());
}

TEST(Planner, NodeCacheIsOwnedByItsNode) {
  PlannerInput in;
  in.nodes = {node("w1")};
  Plan plan = plan_cluster(in);
  ASSERT_EQ(plan.node_caches[0].owner_references.size(), 1u);
  const auto& owner = plan.node_caches[0].owner_references[0];
  EXPECT_EQ(owner.api_version, "v1");
  EXPECT_EQ(owner.kind, "Node");
  EXPECT_EQ(owner.name, "w1");
  EXPECT_EQ(owner.uid, "uid-w1");
  EXPECT_TRUE(owner.controller);
  in = after_writes(in, plan);
  EXPECT_FALSE(plan_cluster(in).node_caches[0].write);
  in.nodes[0].uid = "uid-recreated";  // a Node deleted and created again with the same name
  EXPECT_TRUE(plan_cluster(in).node_caches[0].write);
}

TEST(Planner, ImageCacheStatusCountsNodesAndImages) {
  PlannerInput in;
  in.nodes = {node("ready"), node("pulling"), node("failed"), node("stale")};
  auto ic = image_cache("ml", "base", {"quay.io/x:1", "quay.io/y:1"});
  ic.spec.export_ = api::ImageExport{api::ExportFormat::kDockerArchive, "b.tar"};
  in.image_caches = {ic};
  in.digests = {{"quay.io/x:1", std::string(kDigestA)}, {"quay.io/y:1", std::string(kDigestB)}};
  in = after_writes(in, plan_cluster(in));
  const auto present = [](std::string name, std::string_view digest) {
    api::NodeImageStatus s;
    s.name = std::move(name);
    s.digest = std::string(digest);
    s.state = api::ImageState::kPresent;
    return s;
  };
  api::NodeExportStatus written;
  written.file_name = "b.tar";
  written.state = api::ExportState::kWritten;
  node_cache(in, "ready")->status.images = {present("quay.io/x:1", kDigestA),
                                            present("quay.io/y:1", kDigestB)};
  node_cache(in, "ready")->status.exports = {written};
  node_cache(in, "pulling")->status.images = {present("quay.io/x:1", kDigestA)};
  auto failed = present("quay.io/y:1", "");
  failed.state = api::ImageState::kFailed;
  failed.message = "no space left on device";
  node_cache(in, "failed")->status.images = {present("quay.io/x:1", kDigestA), failed};
  node_cache(in, "stale")->status.images = {present("quay.io/x:1", kDigestC),
                                            present("quay.io/y:1", kDigestB)};
  const Plan plan = plan_cluster(in);
  const auto& st = ic_status(plan, "ml", "base").status;
  EXPECT_EQ(st.nodes, (api::ImageCacheNodes{4, 1, 2, 1}));
  ASSERT_EQ(st.images.size(), 2u);
  EXPECT_EQ(st.images[0], (api::ImageCacheImageStatus{"quay.io/x:1", std::string(kDigestA), 3, 4}));
  EXPECT_EQ(st.images[1], (api::ImageCacheImageStatus{"quay.io/y:1", std::string(kDigestB), 2, 4}));
  ASSERT_EQ(st.failures.size(), 1u);
  EXPECT_EQ(st.failures[0],
            (api::ImageFailure{"failed", "quay.io/y:1", "PullFailed", "no space left on device"}));
  const auto& degraded = condition(st.conditions, "Degraded");
  EXPECT_EQ(degraded.reason, "NodeFailures");
  EXPECT_THAT(degraded.message, HasSubstr("no space left on device"));
  EXPECT_EQ(condition(st.conditions, "Progressing").status, api::ConditionStatus::kTrue);
  EXPECT_EQ(condition(st.conditions, "Ready").status, api::ConditionStatus::kFalse);
  EXPECT_EQ(st.observed_generation, 1);
}

TEST(Planner, RegistryConfigStatusCountsUpdatedAndFailedNodes) {
  PlannerInput in;
  in.nodes = {node("a"), node("b"), node("c")};
  in.max_unavailable = MaxUnavailable::parse("100%");
  in.registry_configs = {registry_config("r", R"({"insecureRegistries": ["localhost:5000"]})", 7)};
  in = after_writes(in, plan_cluster(in));
  agent_reports(in, "a", api::RegistriesState::kApplied);
  agent_reports(in, "b", api::RegistriesState::kFailed, "CRI-O did not come back after reload");
  const Plan plan = plan_cluster(in);
  const auto& st = rc_status(plan, "r").status;
  EXPECT_EQ(st.observed_generation, 7);
  EXPECT_EQ(st.nodes, (api::RegistryConfigNodes{3, 1, 1}));
  ASSERT_EQ(st.failures.size(), 1u);
  EXPECT_EQ(st.failures[0], (api::NodeFailure{"b", "CRI-O did not come back after reload"}));
  const auto& degraded = condition(st.conditions, "Degraded");
  EXPECT_EQ(degraded.reason, "NodeFailed");
  EXPECT_EQ(degraded.observed_generation, 7);
  EXPECT_THAT(degraded.message, HasSubstr("node \"b\""));
  EXPECT_THAT(degraded.message, HasSubstr("CRI-O did not come back after reload"));
  EXPECT_EQ(condition(st.conditions, "Progressing").reason, "RolloutHalted");
}

TEST(Planner, ConditionTimesChangeOnlyWithTheirStatus) {
  PlannerInput in;
  in.nodes = {node("a")};
  in.registry_configs = {registry_config("r", R"({})")};
  in.now = api::Time{} + std::chrono::hours(1);
  Plan plan = plan_cluster(in);
  in = after_writes(in, plan);
  const auto t0 = condition(rc_status(plan, "r").status.conditions, "Ready").last_transition_time;
  EXPECT_EQ(t0, in.now);
  in.now += std::chrono::hours(1);
  agents_apply_all(in);
  plan = plan_cluster(in);  // Ready turns True: a new transition time
  EXPECT_EQ(condition(rc_status(plan, "r").status.conditions, "Ready").last_transition_time,
            in.now);
  in = after_writes(in, plan);
  in.now += std::chrono::hours(1);
  EXPECT_FALSE(has_writes(plan_cluster(in)));  // nothing changed but the clock
}

TEST(Planner, UnreferencedConfigMapsAreDeleted) {
  PlannerInput in;
  in.nodes = {node("w1")};
  in.registry_configs = {registry_config("r", R"({"unqualifiedSearchRegistries": ["quay.io"]})")};
  Plan plan = plan_cluster(in);
  in = after_writes(in, plan);
  agents_apply_all(in);
  const std::string first = plan.config_maps.at(0).name;

  // A gone node's NodeCache still names a rendering: kept until that NodeCache goes.
  api::NodeCache gone;
  gone.metadata.name = "gone";
  gone.spec.registries = api::NodeRegistries{"0123abcd", "stowage-registries-0123abcd"};
  in.node_caches.push_back(current_node_cache(gone));
  in.config_maps.insert(in.config_maps.end(),
                        {"stowage-registries-0123abcd", "stowage-registries-deadbeef",
                         "unrelated-config", "stowage-registries-NOTHEX"});
  in.registry_configs[0].spec.unqualified_search_registries =
      std::vector<std::string>{"registry.redhat.io"};
  plan = plan_cluster(in);
  // w1 moves to the new rendering: the old one goes once that NodeCache is written.
  ASSERT_TRUE(planned(plan, "w1").write);
  EXPECT_NE(planned(plan, "w1").spec->registries->config_map, first);
  std::vector<std::string> want = {first, "stowage-registries-deadbeef"};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(plan.config_maps_to_delete, want);
  in = after_writes(in, plan);
  EXPECT_THAT(plan_cluster(in).config_maps_to_delete, IsEmpty());
  in.node_caches.erase(in.node_caches.begin() + 1);  // "gone" garbage-collected
  plan = plan_cluster(in);
  EXPECT_THAT(plan.config_maps_to_delete, ElementsAre("stowage-registries-0123abcd"));
}

TEST(Planner, PlanningTheOutputAgainYieldsNoWrites) {
  PlannerInput in;
  for (int i = 0; i < 6; ++i) {
    in.nodes.push_back(node("n" + std::to_string(i), {{"role", i % 2 ? "worker" : "infra"}}));
  }
  in.max_unavailable = MaxUnavailable::parse("50%");
  in.registry_configs = {
      registry_config("w", R"({"nodeSelector": {"matchLabels": {"role": "worker"}},
                               "blockedRegistries": ["docker.io"], "priority": 3})"),
      registry_config("all", R"({"registries": [{"location": "quay.io",
                                 "mirrors": [{"location": "m.corp:5000"}]}]})")};
  auto a = image_cache("ml", "a", {"quay.io/x:1", "quay.io/z:1"});
  a.spec.export_ = api::ImageExport{api::ExportFormat::kDockerArchive, "a.tar"};
  a.spec.image_pull_secrets = {{"p"}};
  auto b = image_cache("ml", "b", {"quay.io/x:1"}, 10);
  b.spec.export_ = api::ImageExport{api::ExportFormat::kDockerArchive, "a.tar"};
  in.image_caches = {a, b};
  in.digests = {{"quay.io/x:1", std::string(kDigestA)}};
  in.unresolved = {{"quay.io/z:1", {"NotFound", "manifest unknown"}}};

  Plan plan = plan_cluster(in);
  EXPECT_TRUE(has_writes(plan));
  for (int round = 0; round < 10 && has_writes(plan); ++round) {
    in = after_writes(in, plan);
    plan = plan_cluster(in);
    EXPECT_FALSE(has_writes(plan)) << "round " << round;  // nothing moved on the nodes
    agents_apply_all(in);
    plan = plan_cluster(in);
  }
  EXPECT_FALSE(has_writes(plan));
  EXPECT_EQ(plan, plan_cluster(in));
  for (const auto& nc : plan.node_caches) EXPECT_TRUE(nc.spec->registries) << nc.name;
}

TEST(Planner, NodesWithEqualSpecsShareOneAndAnUnchangedNodeKeepsItsOwn) {
  PlannerInput in;
  for (int i = 0; i < 6; ++i) {
    in.nodes.push_back(node("n" + std::to_string(i), {{"gpu", i < 4 ? "true" : "false"}}));
  }
  in.max_unavailable = MaxUnavailable::parse("100%");  // every node gets the rendering at once
  auto gpu = image_cache("ml", "gpu", {"quay.io/cuda:12"});
  gpu.spec.node_selector.match_labels = {{"gpu", "true"}};
  in.image_caches = {gpu, image_cache("ml", "base", {"quay.io/base:1"})};
  in.digests = {{"quay.io/cuda:12", std::string(kDigestA)},
                {"quay.io/base:1", std::string(kDigestB)}};
  Plan plan = plan_cluster(in);
  ASSERT_EQ(plan.node_caches.size(), 6u);
  EXPECT_EQ(planned(plan, "n0").spec, planned(plan, "n3").spec);  // the same object
  EXPECT_EQ(planned(plan, "n4").spec, planned(plan, "n5").spec);
  EXPECT_NE(planned(plan, "n0").spec, planned(plan, "n4").spec);
  EXPECT_EQ(planned(plan, "n0").spec->images.size(), 2u);
  EXPECT_EQ(planned(plan, "n4").spec->images.size(), 1u);

  in = after_writes(in, plan);
  const SharedSpec before = node_cache(in, "n1")->spec;
  plan = plan_cluster(in);
  EXPECT_FALSE(has_writes(plan));
  EXPECT_EQ(planned(plan, "n1").spec, before);
  // Equal by value, held apart: still no write.
  node_cache(in, "n1")->spec = std::make_shared<const api::NodeCacheSpec>(*before);
  EXPECT_FALSE(planned(plan_cluster(in), "n1").write);
}

}  // namespace
}  // namespace stowage::op
