// The planner's inputs from the operator's pull-secret sync and per-ImageCache tag resolution:
// unusable pull secrets leave NodeCache pullSecrets and degrade the ImageCache; an ImageCache's
// own resolutions (digests and sizes) win over the cluster-wide maps.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fixtures.h"
#include "operator/planner.h"

namespace stowage::op {
namespace {

using namespace stowage::op::testing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(PlannerPullSecrets, UnusableSecretIsLeftOutOfNodesAndDegradesTheCache) {
  PlannerInput in;
  in.nodes = {node("w1")};
  auto ic = image_cache("ml", "base", {"quay.io/x:1"});
  ic.spec.image_pull_secrets = {{"gone"}, {"corp-pull"}};
  in.image_caches = {ic};
  in.digests = {{"quay.io/x:1", std::string(kDigestA)}};
  in.pull_secret_problems["ml/base"] = {{"gone", "Secret \"gone\" not found in namespace \"ml\""}};
  const Plan plan = plan_cluster(in);
  const auto& images = planned(plan, "w1").spec->images;
  ASSERT_EQ(images.size(), 1u);
  std::vector<std::string> secrets;
  for (const auto& s : images[0].pull_secrets) secrets.push_back(s.name);
  EXPECT_THAT(secrets, ElementsAre("stowage-pull-ml.corp-pull"));
  const auto& degraded = condition(ic_status(plan, "ml", "base").status.conditions, "Degraded");
  EXPECT_EQ(degraded.status, api::ConditionStatus::kTrue);
  EXPECT_EQ(degraded.reason, kReasonPullSecretUnavailable);
  EXPECT_THAT(degraded.message, HasSubstr("Secret \"gone\" not found in namespace \"ml\""));

  // Fixed: the condition clears.
  in.pull_secret_problems.clear();
  EXPECT_EQ(condition(plan_cluster(in).image_caches[0].status.conditions, "Degraded").status,
            api::ConditionStatus::kFalse);
}

TEST(PlannerPullSecrets, EachCacheGetsItsOwnResolution) {
  PlannerInput in;
  in.nodes = {node("w1", {{"pool", "a"}}), node("w2", {{"pool", "b"}})};
  auto with_secret = image_cache("team", "private", {"registry.corp/app:1"});
  with_secret.spec.node_selector = registries::LabelSelector{{{"pool", "a"}}, {}};
  auto without = image_cache("other", "anon", {"registry.corp/app:1"});
  without.spec.node_selector = registries::LabelSelector{{{"pool", "b"}}, {}};
  in.image_caches = {with_secret, without};
  in.digests = {{"registry.corp/app:1", std::string(kDigestB)}};  // cluster-wide: overridden
  in.resolutions["team/private"].digests["registry.corp/app:1"] = std::string(kDigestA);
  in.resolutions["other/anon"].unresolved["registry.corp/app:1"] = {"Unauthorized", "401"};
  const Plan plan = plan_cluster(in);
  ASSERT_EQ(planned(plan, "w1").spec->images.size(), 1u);
  EXPECT_EQ(planned(plan, "w1").spec->images[0].digest, kDigestA);
  EXPECT_TRUE(planned(plan, "w2").spec->images.empty());
  EXPECT_EQ(ic_status(plan, "team", "private").status.images[0].digest, kDigestA);
  const auto& anon = ic_status(plan, "other", "anon").status;
  EXPECT_EQ(anon.images[0].digest, "");
  EXPECT_THAT(condition(anon.conditions, "Degraded").message,
              HasSubstr("registry.corp/app:1: Unauthorized: 401"));
}

TEST(PlannerPullSecrets, ASizeComesWithTheDigestItWasMeasuredFor) {
  PlannerInput in;
  in.nodes = {node("w1", {{"pool", "a"}}), node("w2", {{"pool", "b"}}),
              node("w3", {{"pool", "c"}})};
  auto own = image_cache("team", "private", {"registry.corp/app:1"});
  own.spec.node_selector = registries::LabelSelector{{{"pool", "a"}}, {}};
  auto cluster = image_cache("other", "anon", {"registry.corp/app:1"});
  cluster.spec.node_selector = registries::LabelSelector{{{"pool", "b"}}, {}};
  auto unmeasured = image_cache("third", "c", {"registry.corp/app:1"});
  unmeasured.spec.node_selector = registries::LabelSelector{{{"pool", "c"}}, {}};
  in.image_caches = {own, cluster, unmeasured};
  in.digests = {{"registry.corp/app:1", std::string(kDigestB)}};
  in.sizes = {{"registry.corp/app:1", 1000}};
  in.resolutions["team/private"].digests["registry.corp/app:1"] = std::string(kDigestA);
  in.resolutions["team/private"].sizes["registry.corp/app:1"] = 2000;
  in.resolutions["third/c"].digests["registry.corp/app:1"] = std::string(kDigestC);
  const Plan plan = plan_cluster(in);
  const auto image = [&](std::string_view n) { return planned(plan, n).spec->images.at(0); };
  EXPECT_EQ(image("w1").digest, kDigestA);
  EXPECT_EQ(image("w1").size_bytes, 2000);
  EXPECT_EQ(image("w2").digest, kDigestB);
  EXPECT_EQ(image("w2").size_bytes, 1000);
  // Its own digest has no size; the cluster-wide one is of another digest.
  EXPECT_EQ(image("w3").digest, kDigestC);
  EXPECT_EQ(image("w3").size_bytes, std::nullopt);
}

}  // namespace
}  // namespace stowage::op
