#include "api/meta.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"

namespace stowage::api {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

Time at(std::int64_t seconds) {
  return Time(std::chrono::seconds(seconds));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    return e.what();
  }
  return "no error";
}

TEST(ObjectMeta, RoundTripsEveryField) {
  ObjectMeta m;
  m.name = "worker-1";
  m.namespace_ = "ml";
  m.uid = "0b6d";
  m.resource_version = "42";
  m.generation = 7;
  m.creation_timestamp = at(1'700'000'000);
  m.deletion_timestamp = at(1'700'000'060);
  m.labels = {{"a", "b"}};
  m.annotations = {{"c", "d"}};
  m.owner_references = {{"v1", "Node", "worker-1", "u-1", true, true}};
  m.finalizers = {"stowage.io/cleanup"};
  const json j = object_meta_to_json(m);
  EXPECT_EQ(j["creationTimestamp"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(j["ownerReferences"][0]["controller"], true);
  EXPECT_EQ(object_meta_from_json(j), m);
}

TEST(ObjectMeta, IgnoresFieldsItDoesNotModel) {
  const json j = {{"name", "n"}, {"managedFields", json::array({{{"manager", "kubectl"}}})}};
  EXPECT_EQ(object_meta_from_json(j).name, "n");
}

TEST(ObjectMeta, NamesTheBadField) {
  EXPECT_EQ(error_of([] {
              object_meta_from_json({{"labels", {{"a", 1}}}});
            }),
            "metadata.labels[a]: must be a string");
  EXPECT_EQ(error_of([] {
              object_meta_from_json({{"generation", "1"}});
            }),
            "metadata.generation: must be an integer");
  EXPECT_THAT(error_of([] {
                object_meta_from_json({{"creationTimestamp", "yesterday"}});
              }),
              HasSubstr("metadata.creationTimestamp: Invalid value: \"yesterday\""));
  // Outside what a system_clock time_point holds: refused, not overflowed.
  EXPECT_THAT(error_of([] {
                object_meta_from_json({{"creationTimestamp", "1012-05-01T10:00:00Z"}});
              }),
              HasSubstr("must be an RFC 3339 date-time"));
  EXPECT_TRUE(object_meta_from_json({{"creationTimestamp", "2261-12-31T23:59:59Z"}})
                  .creation_timestamp.has_value());
}

TEST(Condition, RoundTripsAndRequiresTheMetav1Fields) {
  const Condition c{"Ready", ConditionStatus::kFalse, 3, at(1'700'000'000), "PullFailed", "no"};
  const json j = condition_to_json(c);
  EXPECT_EQ(j["status"], "False");
  EXPECT_EQ(j["observedGeneration"], 3);
  EXPECT_EQ(condition_from_json(j, "status.conditions[0]"), c);

  json no_reason = j;
  no_reason.erase("reason");
  EXPECT_EQ(error_of([&] { condition_from_json(no_reason, "status.conditions[0]"); }),
            "status.conditions[0].reason: Required value");
  json bad_status = j;
  bad_status["status"] = "Maybe";
  EXPECT_EQ(error_of([&] { condition_from_json(bad_status, "status.conditions[0]"); }),
            "status.conditions[0].status: Unsupported value: \"Maybe\": supported values: "
            "\"True\", \"False\", \"Unknown\"");
}

TEST(Condition, ListRefusesDuplicateTypes) {
  const json c = condition_to_json({"Ready", ConditionStatus::kTrue, 0, at(0), "Ok", ""});
  EXPECT_EQ(error_of([&] {
              conditions_from_json(json::array({c, c}), "status.conditions");
            }),
            "status.conditions[1].type: Duplicate value: \"Ready\"");
}

TEST(Condition, SetKeepsTheTransitionTimeWhileTheStatusHolds) {
  std::vector<Condition> cs;
  EXPECT_TRUE(set_condition(cs, {"Ready", ConditionStatus::kFalse, 1, {}, "Pulling", ""}, at(10)));
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].last_transition_time, at(10));

  // Same status, new reason: updated, time kept.
  EXPECT_TRUE(set_condition(cs, {"Ready", ConditionStatus::kFalse, 2, {}, "Failed", "x"}, at(20)));
  EXPECT_EQ(cs[0].reason, "Failed");
  EXPECT_EQ(cs[0].last_transition_time, at(10));

  // Nothing new: no change reported.
  EXPECT_FALSE(set_condition(cs, {"Ready", ConditionStatus::kFalse, 2, {}, "Failed", "x"}, at(30)));

  // Status flips: the time moves.
  EXPECT_TRUE(set_condition(cs, {"Ready", ConditionStatus::kTrue, 2, {}, "Ready", ""}, at(40)));
  EXPECT_EQ(cs[0].last_transition_time, at(40));
  EXPECT_EQ(find_condition(cs, "Ready")->status, ConditionStatus::kTrue);
  EXPECT_EQ(find_condition(cs, "Degraded"), nullptr);
}

TEST(ObjectType, RefusesAnotherKindOrVersion) {
  EXPECT_EQ(
      error_of([] {
        check_type({{"apiVersion", "stowage.io/v1alpha1"}, {"kind", "ConfigMap"}}, "NodeCache");
      }),
      "kind: expected \"NodeCache\", found \"ConfigMap\"");
  EXPECT_EQ(error_of([] {
              check_type({{"apiVersion", "stowage.io/v1"}, {"kind", "NodeCache"}}, "NodeCache");
            }),
            "apiVersion: NodeCache must be \"stowage.io/v1alpha1\", found \"stowage.io/v1\"");
}

TEST(LabelSelector, EncodesWhatRegistriesDecodes) {
  const json j = {{"matchLabels", {{"role", "gpu"}}},
                  {"matchExpressions",
                   json::array({{{"key", "zone"}, {"operator", "In"}, {"values", {"a", "b"}}},
                                {{"key", "spot"}, {"operator", "DoesNotExist"}}})}};
  const auto selector = registries::selector_from_json(j, "spec.nodeSelector");
  EXPECT_EQ(label_selector_to_json(selector), j);
}

TEST(Resources, AreTheStowageGroup) {
  EXPECT_EQ(node_caches_resource().api_version(), "stowage.io/v1alpha1");
  EXPECT_EQ(registry_configs_resource().resource, "registryconfigs");
  EXPECT_EQ(image_caches_resource().resource, "imagecaches");
}

}  // namespace
}  // namespace stowage::api
