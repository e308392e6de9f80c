#include "operator/pull_secret_sync.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "oci/auth.h"

namespace stowage::op {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr std::string_view kOperatorNs = "stowage-system";

std::string docker_config(std::string_view host, std::string_view user, std::string_view pass) {
  const std::string auth = oci::base64_encode(std::string(user) + ":" + std::string(pass));
  return R"({"auths":{")" + std::string(host) + R"(":{"auth":")" + auth + R"("}}})";
}

SecretObject pull_secret(std::string ns, std::string name, std::string payload) {
  SecretObject s;
  s.namespace_ = std::move(ns);
  s.name = std::move(name);
  s.type = std::string(kDockerConfigJsonType);
  s.data[std::string(kDockerConfigJsonKey)] = oci::base64_encode(payload);
  return s;
}

api::ImageCache image_cache(std::string ns, std::string name, std::vector<std::string> secrets) {
  api::ImageCache ic;
  ic.metadata.namespace_ = std::move(ns);
  ic.metadata.name = std::move(name);
  ic.spec.images.push_back({"registry.corp/app:1"});
  for (auto& s : secrets) ic.spec.image_pull_secrets.push_back({std::move(s)});
  return ic;
}

// What the API server holds after the plan's writes.
std::vector<SecretObject> copies_after(const PullSecretSyncPlan& plan) {
  std::vector<SecretObject> out;
  for (const auto& c : plan.copies) {
    SecretObject s;
    s.namespace_ = std::string(kOperatorNs);
    s.name = c.name;
    s.type = c.type;
    s.data = c.data;
    s.labels = c.labels;
    s.annotations = c.annotations;
    out.push_back(std::move(s));
  }
  return out;
}

PullSecretSyncInput input(std::vector<api::ImageCache> caches, std::vector<SecretObject> sources,
                          std::vector<SecretObject> copies = {}) {
  PullSecretSyncInput in;
  in.namespace_ = std::string(kOperatorNs);
  in.image_caches = std::move(caches);
  in.sources = std::move(sources);
  in.copies = std::move(copies);
  return in;
}

TEST(PullSecretSync, CopiesAReferencedSecretWithItsDataAndOwnershipMetadata) {
  const std::string payload = docker_config("registry.corp", "u", "p");
  const auto plan = plan_pull_secrets(input({image_cache("team", "ic", {"corp-pull"})},
                                            {pull_secret("team", "corp-pull", payload)}));
  ASSERT_EQ(plan.copies.size(), 1u);
  const PlannedSecretCopy& c = plan.copies[0];
  EXPECT_EQ(c.name, synced_pull_secret_name("team", "corp-pull"));
  EXPECT_EQ(c.name, "stowage-pull-team.corp-pull");
  EXPECT_EQ(c.action, CopyAction::kCreate);
  EXPECT_EQ(c.type, kDockerConfigJsonType);
  EXPECT_EQ(c.data.at(std::string(kDockerConfigJsonKey)), oci::base64_encode(payload));
  EXPECT_EQ(c.labels.at(std::string(kManagedByLabel)), kManagedByValue);
  EXPECT_EQ(c.labels.at(std::string(kSourceNamespaceLabel)), "team");
  EXPECT_EQ(c.annotations.at(std::string(kSourceAnnotation)), "team/corp-pull");
  EXPECT_THAT(plan.payloads.at("team/ic"), ElementsAre(payload));
  EXPECT_THAT(plan.problems, IsEmpty());
  EXPECT_THAT(plan.to_delete, IsEmpty());
}

TEST(PullSecretSync, WritesOnlyWhenTheContentDiffers) {
  auto in = input({image_cache("team", "ic", {"corp-pull"})},
                  {pull_secret("team", "corp-pull", docker_config("registry.corp", "u", "p"))});
  auto plan = plan_pull_secrets(in);
  in.copies = copies_after(plan);
  plan = plan_pull_secrets(in);
  ASSERT_EQ(plan.copies.size(), 1u);
  EXPECT_EQ(plan.copies[0].action, CopyAction::kNone);

  // Extra labels someone added do not count as a difference.
  in.copies[0].labels["team.example/owner"] = "x";
  EXPECT_EQ(plan_pull_secrets(in).copies[0].action, CopyAction::kNone);

  // The source changes: the copy is updated with the new data.
  const std::string rotated = docker_config("registry.corp", "u", "rotated");
  in.sources[0] = pull_secret("team", "corp-pull", rotated);
  plan = plan_pull_secrets(in);
  EXPECT_EQ(plan.copies[0].action, CopyAction::kUpdate);
  EXPECT_EQ(plan.copies[0].data.at(std::string(kDockerConfigJsonKey)), oci::base64_encode(rotated));

  // A copy of another type cannot be updated in place.
  in.copies[0].type = "Opaque";
  EXPECT_EQ(plan_pull_secrets(in).copies[0].action, CopyAction::kReplace);
}

TEST(PullSecretSync, SharedReferencesMakeOneCopyAndUnreferencedCopiesGo) {
  const std::string payload = docker_config("registry.corp", "u", "p");
  auto in = input(
      {image_cache("team", "a", {"corp-pull"}), image_cache("team", "b", {"corp-pull"}),
       image_cache("other", "c", {"corp-pull"})},
      {pull_secret("team", "corp-pull", payload), pull_secret("other", "corp-pull", payload)});
  auto plan = plan_pull_secrets(in);
  ASSERT_EQ(plan.copies.size(), 2u);
  EXPECT_EQ(plan.copies[0].name, "stowage-pull-other.corp-pull");
  EXPECT_EQ(plan.copies[1].name, "stowage-pull-team.corp-pull");
  in.copies = copies_after(plan);

  // "other/c" stops naming it, and "team/b" is being deleted: only team's copy stays.
  in.image_caches[2].spec.image_pull_secrets.clear();
  in.image_caches[1].metadata.deletion_timestamp = api::Time{};
  plan = plan_pull_secrets(in);
  ASSERT_EQ(plan.copies.size(), 1u);
  EXPECT_EQ(plan.copies[0].name, "stowage-pull-team.corp-pull");
  EXPECT_THAT(plan.to_delete, ElementsAre("stowage-pull-other.corp-pull"));
  EXPECT_FALSE(plan.payloads.contains("team/b"));

  // No ImageCache left: every copy goes.
  in.image_caches.clear();
  plan = plan_pull_secrets(in);
  EXPECT_THAT(plan.copies, IsEmpty());
  EXPECT_THAT(plan.to_delete,
              ElementsAre("stowage-pull-other.corp-pull", "stowage-pull-team.corp-pull"));
}

TEST(PullSecretSync, OnlyOwnedCopiesAreEverDeleted) {
  SecretObject foreign = pull_secret(std::string(kOperatorNs), "stowage-pull-team.gone", "{}");
  foreign.labels[std::string(kManagedByLabel)] = std::string(kManagedByValue);  // no annotation
  SecretObject elsewhere = pull_secret("team", "stowage-pull-team.gone", "{}");
  elsewhere.labels = {{std::string(kManagedByLabel), std::string(kManagedByValue)},
                      {std::string(kSourceNamespaceLabel), "team"}};
  elsewhere.annotations = {{std::string(kSourceAnnotation), "team/gone"}};
  EXPECT_FALSE(owned_copy(foreign, kOperatorNs));
  EXPECT_FALSE(owned_copy(elsewhere, kOperatorNs));
  SecretObject owned = elsewhere;
  owned.namespace_ = std::string(kOperatorNs);
  EXPECT_TRUE(owned_copy(owned, kOperatorNs));
  const auto plan = plan_pull_secrets(input({}, {}, {foreign, elsewhere, owned}));
  EXPECT_THAT(plan.to_delete, ElementsAre("stowage-pull-team.gone"));
}

TEST(PullSecretSync, UnusableSecretsAreProblemsAndNeitherCopiedNorUsed) {
  SecretObject opaque = pull_secret("team", "opaque", docker_config("r", "u", "p"));
  opaque.type = "Opaque";
  SecretObject no_key = pull_secret("team", "no-key", "{}");
  no_key.data.clear();
  SecretObject bad_json = pull_secret("team", "bad-json", "{not json");
  SecretObject not_base64 = pull_secret("team", "not-base64", "{}");
  not_base64.data[std::string(kDockerConfigJsonKey)] = "***";
  const std::string good = docker_config("registry.corp", "u", "p");
  auto in = input({image_cache("team", "ic",
                               {"missing", "opaque", "no-key", "bad-json", "not-base64",
                                "unreadable", "good"})},
                  {opaque, no_key, bad_json, not_base64, pull_secret("team", "good", good)});
  in.read_errors["team/unreadable"] = "secrets \"unreadable\" is forbidden";
  // A stale copy of a source that became unusable goes.
  in.copies = copies_after(plan_pull_secrets(
      input({image_cache("team", "ic", {"opaque"})}, {pull_secret("team", "opaque", good)})));
  const auto plan = plan_pull_secrets(in);
  ASSERT_EQ(plan.copies.size(), 1u);
  EXPECT_EQ(plan.copies[0].source_name, "good");
  EXPECT_THAT(plan.payloads.at("team/ic"), ElementsAre(good));
  EXPECT_THAT(plan.to_delete, ElementsAre("stowage-pull-team.opaque"));
  const auto& problems = plan.problems.at("team/ic");
  ASSERT_EQ(problems.size(), 6u);
  EXPECT_EQ(problems[0].name, "missing");
  EXPECT_EQ(problems[0].message, "Secret \"missing\" not found in namespace \"team\"");
  EXPECT_EQ(problems[1].message,
            "Secret \"opaque\" in namespace \"team\" is of type \"Opaque\", not "
            "kubernetes.io/dockerconfigjson");
  EXPECT_THAT(problems[2].message, HasSubstr("has no .dockerconfigjson key"));
  EXPECT_EQ(problems[3].name, "bad-json");
  EXPECT_THAT(problems[4].message, HasSubstr("is not base64"));
  EXPECT_THAT(problems[5].message, HasSubstr("could not be read: secrets \"unreadable\""));
  // Messages never carry the payload.
  for (const auto& p : problems) {
    EXPECT_THAT(p.message, Not(HasSubstr(oci::base64_encode("u:p"))));
    EXPECT_THAT(p.message, Not(HasSubstr("{not json")));
  }
}

}  // namespace
}  // namespace stowage::op
