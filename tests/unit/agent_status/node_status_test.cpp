#include "node-agent/node_status.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>

#include "api/meta.h"

namespace stowage::agent {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr const char* kDigest =
    "sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7";

api::Time at(std::int64_t seconds, std::int64_t millis = 0) {
  return api::Time(std::chrono::seconds(seconds) + std::chrono::milliseconds(millis));
}

api::NodeCacheSpec spec_with(std::vector<std::string> names) {
  api::NodeCacheSpec spec;
  spec.registries = api::NodeRegistries{.hash = "3f9a", .config_map = "stowage-registries-3f9a"};
  for (auto& n : names) spec.images.push_back({.name = n, .digest = kDigest});
  return spec;
}

ImageResult present(const std::string& name) {
  ImageResult r;
  r.name = name;
  r.digest = kDigest;
  r.state = api::ImageState::kPresent;
  r.size_bytes = 1234;
  return r;
}

SyncOutcome outcome_for(const std::vector<ImageResult>& results) {
  SyncOutcome o;
  o.generation = 3;
  o.registries = api::NodeRegistriesStatus{.applied_hash = "3f9a",
                                           .state = api::RegistriesState::kApplied,
                                           .message = "",
                                           .last_transition_time = std::nullopt};
  for (const auto& r : results) o.images.push_back(image_status_from_result(r));
  o.runtime = api::RuntimeInfo{.name = "containerd", .version = "1.6.20"};
  return o;
}

TEST(NodeStatus, FailedResultCarriesReasonAndNoDigest) {
  ImageResult r;
  r.name = "reg/a:1";
  r.digest = kDigest;
  r.state = api::ImageState::kFailed;
  r.failure = ImageFailure::kPullFailed;
  r.message = "manifest unknown";
  const api::NodeImageStatus s = image_status_from_result(r);
  EXPECT_EQ(s.state, api::ImageState::kFailed);
  EXPECT_EQ(s.message, "PullFailed: manifest unknown");
  EXPECT_EQ(s.digest, "");
  EXPECT_FALSE(s.size_bytes.has_value());
}

TEST(NodeStatus, AllPresentIsReadyWithWholeSecondTimes) {
  const auto spec = spec_with({"reg/a:1"});
  const auto next = next_status(spec, {}, outcome_for({present("reg/a:1")}), at(100, 750));
  ASSERT_EQ(next.images.size(), 1u);
  EXPECT_EQ(next.images[0].last_transition_time, at(100));
  EXPECT_EQ(next.images[0].size_bytes, 1234);
  EXPECT_EQ(next.observed_generation, 3);
  const api::Condition* ready = api::find_condition(next.conditions, api::kConditionReady);
  ASSERT_NE(ready, nullptr);
  EXPECT_EQ(ready->status, api::ConditionStatus::kTrue);
  EXPECT_EQ(ready->reason, kReasonSynced);
  const api::Condition* degraded = api::find_condition(next.conditions, api::kConditionDegraded);
  ASSERT_NE(degraded, nullptr);
  EXPECT_EQ(degraded->status, api::ConditionStatus::kFalse);
  ASSERT_TRUE(next.summary.has_value());
  EXPECT_EQ(next.summary->present, 1);
  EXPECT_EQ(next.runtime->name, "containerd");
}

TEST(NodeStatus, SameOutcomeLaterNeedsNoWriteEvenAfterJsonRoundTrip) {
  const auto spec = spec_with({"reg/a:1", "reg/b:1"});
  const auto outcome = outcome_for({present("reg/a:1"), present("reg/b:1")});
  const auto first = next_status(spec, {}, outcome, at(100, 250));
  // What the apiserver hands back after the write.
  const auto stored = api::node_cache_status_from_json(api::node_cache_status_to_json(first));
  const auto again = next_status(spec, stored, outcome, at(400, 900));
  EXPECT_FALSE(status_needs_write(stored, again));
  EXPECT_EQ(again.images[1].last_transition_time, at(100));
}

TEST(NodeStatus, FailedImageMakesNotReadyAndDegradedAndNeedsWrite) {
  const auto before =
      next_status(spec_with({"reg/a:1"}), {}, outcome_for({present("reg/a:1")}), at(100));
  const auto spec = spec_with({"reg/a:1", "reg/missing:1"});
  ImageResult failed;
  failed.name = "reg/missing:1";
  failed.digest = kDigest;
  failed.state = api::ImageState::kFailed;
  failed.failure = ImageFailure::kPullFailed;
  const auto after = next_status(spec, before, outcome_for({present("reg/a:1"), failed}), at(200));
  EXPECT_TRUE(status_needs_write(before, after));
  EXPECT_EQ(after.images[0].last_transition_time, at(100));
  EXPECT_EQ(after.images[1].last_transition_time, at(200));
  const api::Condition* ready = api::find_condition(after.conditions, api::kConditionReady);
  ASSERT_NE(ready, nullptr);
  EXPECT_EQ(ready->status, api::ConditionStatus::kFalse);
  EXPECT_EQ(ready->reason, kReasonImagesFailed);
  EXPECT_EQ(ready->last_transition_time, at(200));
  const api::Condition* degraded = api::find_condition(after.conditions, api::kConditionDegraded);
  ASSERT_NE(degraded, nullptr);
  EXPECT_EQ(degraded->status, api::ConditionStatus::kTrue);
  EXPECT_EQ(after.summary->failed, 1);
}

TEST(NodeStatus, RegistriesFailureKeepsPreviousHashTimeAndIsTheReason) {
  const auto spec = spec_with({});
  auto outcome = outcome_for({});
  auto prev = next_status(spec, {}, outcome, at(100));
  outcome.registries->state = api::RegistriesState::kFailed;
  outcome.registries->message = "config_path not set";
  const auto next = next_status(spec, prev, outcome, at(150));
  EXPECT_EQ(next.registries->last_transition_time, at(150));
  const api::Condition* ready = api::find_condition(next.conditions, api::kConditionReady);
  ASSERT_NE(ready, nullptr);
  EXPECT_EQ(ready->reason, kReasonRegistriesFailed);
  EXPECT_THAT(ready->message, HasSubstr("config_path"));
}

TEST(NodeStatus, DroppedImageBecomesRemovedAfterPruneAndStaysReported) {
  const auto old_spec = spec_with({"reg/a:1", "reg/b:1"});
  const auto before =
      next_status(old_spec, {}, outcome_for({present("reg/a:1"), present("reg/b:1")}), at(100));
  const auto spec = spec_with({"reg/a:1"});
  EXPECT_EQ(dropped_image_names(spec, before.images), std::vector<std::string>{"reg/b:1"});

  const std::vector<PruneResult> pruned = {{.ref = "reg/b:1",
                                            .digest = kDigest,
                                            .image_id = "sha256:1",
                                            .decision = PruneDecision::kRemoved,
                                            .message = ""}};
  auto outcome = outcome_for({present("reg/a:1")});
  for (auto& s : dropped_image_statuses(spec, before.images, pruned)) outcome.images.push_back(s);
  const auto after = next_status(spec, before, outcome, at(200));
  ASSERT_EQ(after.images.size(), 2u);
  EXPECT_EQ(after.images[1].name, "reg/b:1");
  EXPECT_EQ(after.images[1].state, api::ImageState::kRemoved);
  EXPECT_EQ(after.images[1].last_transition_time, at(200));
  EXPECT_EQ(after.summary->images, 1);

  // Later syncs ask no more about it, and keep reporting it Removed without a write.
  EXPECT_TRUE(dropped_image_names(spec, after.images).empty());
  auto later = outcome_for({present("reg/a:1")});
  for (auto& s : dropped_image_statuses(spec, after.images, {})) later.images.push_back(s);
  EXPECT_FALSE(status_needs_write(after, next_status(spec, after, later, at(300))));
}

TEST(NodeStatus, DroppedImageInUseIsKeptWithTheRuleThatKeepsIt) {
  const auto old_spec = spec_with({"reg/b:1"});
  const auto before = next_status(old_spec, {}, outcome_for({present("reg/b:1")}), at(100));
  const auto spec = spec_with({});
  const std::vector<PruneResult> pruned = {{.ref = "reg/b:1",
                                            .digest = kDigest,
                                            .image_id = "x",
                                            .decision = PruneDecision::kInUse,
                                            .message = "container c1"}};
  const auto entries = dropped_image_statuses(spec, before.images, pruned);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].state, api::ImageState::kPresent);
  EXPECT_EQ(entries[0].message, "not removed: InUse: container c1");
  // Under policy Never no prune runs and the dropped entry is no longer reported.
  EXPECT_TRUE(dropped_image_statuses(spec, before.images, {}).empty());
}

}  // namespace
}  // namespace stowage::agent
