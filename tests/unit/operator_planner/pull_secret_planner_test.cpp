// The planner's inputs from the operator's pull-secret sync and per-ImageCache tag resolution:
// unusable pull secrets leave NodeCache pullSecrets and degrade the ImageCache; an ImageCache's
// own resolutions win over the cluster-wide maps.
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
  const auto& images = planned(plan, "w1").spec.images;
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
  ASSERT_EQ(planned(plan, "w1").spec.images.size(), 1u);
  EXPECT_EQ(planned(plan, "w1").spec.images[0].digest, kDigestA);
  EXPECT_TRUE(planned(plan, "w2").spec.images.empty());
  EXPECT_EQ(ic_status(plan, "team", "private").status.images[0].digest, kDigestA);
  const auto& anon = ic_status(plan, "other", "anon").status;
  EXPECT_EQ(anon.images[0].digest, "");
  EXPECT_THAT(condition(anon.conditions, "Degraded").message,
              HasSubstr("registry.corp/app:1: Unauthorized: 401"));
}

}  // namespace
}  // namespace stowage::op
