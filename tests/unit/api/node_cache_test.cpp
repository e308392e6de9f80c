#include "api/node_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"

namespace stowage::api {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::string kDigestA = "sha256:" + std::string(64, 'a');
const std::string kDigestB = "sha256:" + std::string(64, 'b');

std::string error_of(const json& j) {
  try {
    (void)j.get<NodeCache>();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    return e.what();
  }
  return "no error";
}

NodeCache full() {
  NodeCache nc;
  nc.metadata.name = "worker-1";
  nc.metadata.owner_references = {{"v1", "Node", "worker-1", "uid-1", false, false}};
  nc.spec.registries = NodeRegistries{"ab12", "stowage-registries-ab12"};
  nc.spec.images = {
      {"quay.io/nginx:1.25", kDigestA, {{"stowage-pull-ml-corp"}}, {"ml/base"}, 71234567},
      {"busybox:1", kDigestB, {}, {"a/b", "c/d"}, std::nullopt}};
  nc.spec.exports = {
      {"base.tar", ExportFormat::kOciArchive, {"quay.io/nginx@" + kDigestA}, "ml/base"}};
  nc.spec.prune.policy = PrunePolicy::kNever;
  auto& st = nc.status;
  st.observed_generation = 4;
  st.conditions = {{"Ready", ConditionStatus::kFalse, 4, Time(50s), "Pulling", "1 of 2"}};
  st.registries = NodeRegistriesStatus{"ab12", RegistriesState::kApplied, "", Time(40s)};
  st.images = {{"quay.io/nginx:1.25", kDigestA, ImageState::kPresent, 1234, "", Time(45s)},
               {"busybox:1", "", ImageState::kPulling, std::nullopt, "", std::nullopt}};
  st.exports = {{"base.tar", ExportFormat::kOciArchive, 999, std::string(64, 'c'),
                 ExportState::kWritten, ""}};
  st.runtime = RuntimeInfo{"containerd", "1.7.24"};
  st.store = StoreUsage{100, 1000};
  st.summary = summarize(nc.spec, st.images);
  return nc;
}

TEST(NodeCache, RoundTripsEveryField) {
  const NodeCache nc = full();
  const json j = nc;
  EXPECT_EQ(j["spec"]["registries"]["configMap"], "stowage-registries-ab12");
  EXPECT_EQ(j["spec"]["prune"]["policy"], "Never");
  EXPECT_EQ(j["spec"]["images"][0]["sizeBytes"], 71234567);
  EXPECT_FALSE(j["spec"]["images"][1].contains("sizeBytes"));  // unknown: absent
  EXPECT_EQ(j["status"]["images"][0]["state"], "Present");
  EXPECT_EQ(j["status"]["exports"][0]["state"], "Written");
  EXPECT_EQ(j["status"]["summary"],
            json({{"images", 2}, {"present", 1}, {"pulling", 1}, {"failed", 0}}));
  EXPECT_EQ(j.get<NodeCache>(), nc);
  EXPECT_EQ(json(j.get<NodeCache>()).dump(), j.dump());
}

TEST(NodeCache, EmptySpecUnderMachineConfigDelivery) {
  const json j = {{"apiVersion", "stowage.io/v1alpha1"},
                  {"kind", "NodeCache"},
                  {"metadata", {{"name", "n"}}},
                  {"spec", json::object()}};
  const auto nc = j.get<NodeCache>();
  EXPECT_FALSE(nc.spec.registries);
  EXPECT_EQ(nc.spec.prune.policy, PrunePolicy::kOnRemoval);
  EXPECT_EQ(json(nc)["spec"], json({{"prune", {{"policy", "OnRemoval"}}}}));
}

TEST(NodeCache, BadInputNamesTheField) {
  json j = full();
  j["spec"]["images"][1].erase("digest");
  EXPECT_EQ(error_of(j), "NodeCache \"worker-1\": spec.images[1].digest: Required value");

  j = full();
  j["spec"]["images"][1]["name"] = "quay.io/nginx:1.25";
  EXPECT_EQ(error_of(j),
            "NodeCache \"worker-1\": spec.images[1].name: Duplicate value: \"quay.io/nginx:1.25\"");

  j = full();
  j["spec"]["exports"][0]["fileName"] = "../../etc/cron.d/x";
  EXPECT_EQ(error_of(j),
            "NodeCache \"worker-1\": spec.exports[0].fileName: must be a file name, without \"/\"");

  j = full();
  j["spec"]["exports"][0].erase("format");
  EXPECT_EQ(error_of(j), "NodeCache \"worker-1\": spec.exports[0].format: Required value");

  j = full();
  j["status"]["images"][0]["state"] = "Gone";
  EXPECT_EQ(error_of(j),
            "NodeCache \"worker-1\": status.images[0].state: Unsupported value: \"Gone\": "
            "supported values: \"Present\", \"Pulling\", \"Failed\", \"Removed\"");

  j = full();
  j["spec"]["images"][0]["sizeBytes"] = -1;
  EXPECT_EQ(error_of(j),
            "NodeCache \"worker-1\": spec.images[0].sizeBytes: must be between 0 and "
            "9223372036854775807");

  j = full();
  j["status"]["store"]["usedBytes"] = -1;
  EXPECT_EQ(error_of(j),
            "NodeCache \"worker-1\": status.store.usedBytes: must be between 0 and "
            "9223372036854775807");

  j = full();
  j["status"]["registries"]["lastTransitionTime"] = "noon";
  EXPECT_EQ(error_of(j),
            "NodeCache \"worker-1\": status.registries.lastTransitionTime: Invalid "
            "value: \"noon\": must be an RFC 3339 date-time");

  j = full();
  j["spec"]["registries"] = {{"hash", "ab"}};
  EXPECT_EQ(error_of(j), "NodeCache \"worker-1\": spec.registries.configMap: Required value");

  j = full();
  j["spec"] = "everything";
  EXPECT_EQ(error_of(j), "NodeCache \"worker-1\": spec: must be an object");
}

TEST(NodeCache, SummaryCountsOnlyThePlannedDigest) {
  NodeCacheSpec spec;
  spec.images = {{"a:1", kDigestA, {}, {}},
                 {"b:1", kDigestA, {}, {}},
                 {"c:1", kDigestA, {}, {}},
                 {"d:1", kDigestA, {}, {}}};
  const std::vector<NodeImageStatus> st = {
      {"a:1", kDigestA, ImageState::kPresent, {}, "", {}},
      {"b:1", kDigestB, ImageState::kPresent, {}, "", {}},  // an older digest: still to pull
      {"c:1", "", ImageState::kFailed, {}, "401", {}},
      {"gone:1", kDigestA, ImageState::kRemoved, {}, "", {}},
  };
  const ImageSummary s = summarize(spec, st);
  EXPECT_EQ(s.images, 4);
  EXPECT_EQ(s.present, 1);
  EXPECT_EQ(s.pulling, 1);
  EXPECT_EQ(s.failed, 1);
}

}  // namespace
}  // namespace stowage::api
