// The operator's NodeCache cache: what the informer keeps of an object, one spec per distinct
// spec, and when a spec goes.
#include "operator/node_cache_specs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/error.h"

namespace {

using nlohmann::json;
using stowage::Code;
using stowage::Error;
using stowage::FakeClock;
using stowage::op::kSpecFingerprintField;
using stowage::op::NodeCacheSpecs;
using ::testing::HasSubstr;

constexpr const char* kDigest =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";

json node_cache(const std::string& name, const std::string& image) {
  return json::parse(R"({
    "apiVersion": "stowage.io/v1alpha1", "kind": "NodeCache",
    "metadata": {"name": ")" +
                     name + R"(", "uid": "u-)" + name + R"(", "resourceVersion": "7",
                 "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z",
                 "managedFields": [{"manager": "stowage-operator"}],
                 "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": ")" +
                     name + R"(", "uid": "n-)" + name + R"(", "controller": true}]},
    "spec": {"registries": {"hash": "abc", "configMap": "stowage-registries-abc"},
             "images": [{"name": ")" +
                     image + R"(", "digest": ")" + kDigest + R"(",
                         "sources": ["ml/base"], "sizeBytes": 1000}],
             "prune": {"policy": "OnRemoval"}},
    "status": {"observedGeneration": 3,
               "conditions": [{"type": "Ready", "status": "True", "reason": "AsExpected",
                               "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
               "registries": {"appliedHash": "abc", "state": "Applied", "message": "",
                              "lastTransitionTime": "2026-01-01T00:00:00Z"},
               "images": [{"name": ")" +
                     image + R"(", "digest": ")" + kDigest + R"(",
                           "state": "Present", "sizeBytes": 1000, "message": "",
                           "lastTransitionTime": "2026-01-01T00:00:00Z"}],
               "runtime": {"name": "containerd", "version": "1.7.0"},
               "store": {"usedBytes": 5, "capacityBytes": 10},
               "summary": {"images": 1, "present": 1, "pulling": 0, "failed": 0}}
  })");
}

TEST(NodeCacheSpecs, KeepsWhatThePlannerReadsAndAFingerprintForTheSpec) {
  FakeClock clock;
  NodeCacheSpecs specs(clock);
  const json kept = specs.trim(node_cache("w1", "quay.io/base:1"));
  EXPECT_FALSE(kept.contains("spec"));
  EXPECT_EQ(kept[kSpecFingerprintField].get<std::string>().size(), 64u);
  EXPECT_EQ(kept["metadata"], json::parse(R"({"name": "w1", "uid": "u-w1", "resourceVersion": "7",
                            "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                "name": "w1", "uid": "n-w1", "controller": true}]})"));
  EXPECT_EQ(kept["status"], json::parse(R"({
      "registries": {"appliedHash": "abc", "state": "Applied", "message": ""},
      "images": [{"name": "quay.io/base:1", "digest": ")" +
                                        std::string(kDigest) +
                                        R"(", "state": "Present", "message": ""}],
      "runtime": {"name": "containerd"}})"));

  const auto nc = specs.current(kept);
  ASSERT_TRUE(nc.has_value());
  EXPECT_EQ(nc->metadata.name, "w1");
  EXPECT_EQ(nc->metadata.resource_version, "7");
  ASSERT_EQ(nc->metadata.owner_references.size(), 1u);
  ASSERT_TRUE(nc->spec->registries.has_value());
  EXPECT_EQ(nc->spec->registries->hash, "abc");
  ASSERT_EQ(nc->spec->images.size(), 1u);
  EXPECT_EQ(nc->spec->images[0].size_bytes, 1000);
  ASSERT_EQ(nc->status.images.size(), 1u);
  EXPECT_EQ(nc->status.images[0].state, stowage::api::ImageState::kPresent);
  EXPECT_EQ(nc->status.runtime->name, "containerd");
}

TEST(NodeCacheSpecs, NodesWithEqualSpecsShareOneCopy) {
  FakeClock clock;
  NodeCacheSpecs specs(clock);
  const auto a = specs.current(specs.trim(node_cache("w1", "quay.io/base:1")));
  const auto b = specs.current(specs.trim(node_cache("w2", "quay.io/base:1")));
  const auto c = specs.current(specs.trim(node_cache("w3", "quay.io/other:1")));
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->spec, b->spec);
  EXPECT_NE(a->spec, c->spec);
  EXPECT_EQ(specs.size(), 2u);
}

TEST(NodeCacheSpecs, AnUnusedSpecGoesOnlyAfterTheGracePeriod) {
  FakeClock clock;
  NodeCacheSpecs specs(clock);
  const json w1 = specs.trim(node_cache("w1", "quay.io/base:1"));
  const json w3 = specs.trim(node_cache("w3", "quay.io/other:1"));
  const std::string used = w1[kSpecFingerprintField];
  specs.retain({used}, std::chrono::minutes(5));
  EXPECT_EQ(specs.size(), 2u);  // w3's is young: its object may be being stored
  clock.advance(std::chrono::minutes(6));
  specs.retain({used}, std::chrono::minutes(5));
  EXPECT_EQ(specs.size(), 1u);
  EXPECT_TRUE(specs.current(w1).has_value());
  EXPECT_FALSE(specs.current(w3).has_value());  // the caller reads it again
  EXPECT_TRUE(specs.current(specs.trim(node_cache("w3", "quay.io/other:1"))).has_value());
}

TEST(NodeCacheSpecs, AnUndecodableSpecStaysAndDecodingNamesIt) {
  FakeClock clock;
  NodeCacheSpecs specs(clock);
  json bad = node_cache("w1", "quay.io/base:1");
  bad["spec"]["prune"]["policy"] = "Sometimes";
  const json kept = specs.trim(bad);
  EXPECT_FALSE(kept.contains(kSpecFingerprintField));
  EXPECT_EQ(kept["spec"], bad["spec"]);
  EXPECT_EQ(specs.size(), 0u);
  try {
    (void)specs.current(kept);
    FAIL() << "decoded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_THAT(e.what(), HasSubstr("NodeCache \"w1\""));
    EXPECT_THAT(e.what(), HasSubstr("spec.prune.policy"));
  }
}

}  // namespace
