#include "api/image_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "yaml_json.h"

namespace stowage::api {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string error_of(const json& j) {
  try {
    (void)j.get<ImageCache>();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    return e.what();
  }
  return "no error";
}

json minimal() {
  return {{"apiVersion", "stowage.io/v1alpha1"},
          {"kind", "ImageCache"},
          {"metadata", {{"name", "base"}, {"namespace", "ml"}}},
          {"spec", {{"images", json::array({{{"name", "quay.io/nginx:1.25"}}})}}}};
}

ImageCache full() {
  ImageCache ic;
  ic.metadata.name = "base";
  ic.metadata.namespace_ = "ml";
  ic.spec.node_selector.match_labels = {{"gpu", "true"}};
  ic.spec.images = {{"quay.io/nginx:1.25"},
                    {"registry.corp/ml/trainer@sha256:" + std::string(64, 'a')}};
  ic.spec.image_pull_secrets = {{"corp-pull"}};
  ic.spec.refresh_interval = 90min;
  ic.spec.prune = PrunePolicy::kNever;
  ic.spec.export_ = ImageExport{ExportFormat::kOciArchive, "base-images.tar"};
  ic.status.observed_generation = 2;
  ic.status.conditions = {{"Degraded", ConditionStatus::kTrue, 2, Time(100s), "ExportConflict",
                           "fileName base-images.tar is taken by ml/other"}};
  ic.status.images = {{"quay.io/nginx:1.25", "sha256:" + std::string(64, 'b'), 2, 3}};
  ic.status.nodes = {3, 2, 0, 1};
  ic.status.failures = {{"worker-3", "quay.io/nginx:1.25", "PullFailed", "401 Unauthorized"}};
  return ic;
}

TEST(ImageCache, RoundTripsEveryField) {
  const ImageCache ic = full();
  const json j = ic;
  EXPECT_EQ(j["spec"]["refreshInterval"], "1h30m");
  EXPECT_EQ(j["spec"]["prune"], "Never");
  EXPECT_EQ(j["spec"]["export"],
            json({{"format", "oci-archive"}, {"fileName", "base-images.tar"}}));
  EXPECT_EQ(j["status"]["failures"][0]["reason"], "PullFailed");
  EXPECT_EQ(j.get<ImageCache>(), ic);
  EXPECT_EQ(json(j.get<ImageCache>()).dump(), j.dump());
}

TEST(ImageCache, DecodingAppliesTheCrdDefaults) {
  json j = minimal();
  j["spec"]["export"] = {{"fileName", "all.tar"}};
  const auto ic = j.get<ImageCache>();
  EXPECT_EQ(ic.spec.refresh_interval, 6h);
  EXPECT_EQ(ic.spec.prune, PrunePolicy::kOnRemoval);
  ASSERT_TRUE(ic.spec.export_);
  EXPECT_EQ(ic.spec.export_->format, ExportFormat::kDockerArchive);
  EXPECT_TRUE(ic.spec.node_selector.empty());
  const json back = ic;
  EXPECT_EQ(back["spec"]["refreshInterval"], "6h");
  EXPECT_EQ(back["spec"]["prune"], "OnRemoval");
  EXPECT_EQ(back["spec"]["export"]["format"], "docker-archive");
}

TEST(ImageCache, SampleDecodes) {
  const auto docs = testing::load_yaml_file(
      testing::source_path("manifests/samples/imagecache-base-images.yaml"));
  ASSERT_EQ(docs.size(), 1u);
  const auto ic = docs[0].get<ImageCache>();
  EXPECT_EQ(ic.metadata.name, "base-images");
  EXPECT_EQ(ic.spec.images.size(), 3u);
  ASSERT_TRUE(ic.spec.export_);
  EXPECT_EQ(ic.spec.export_->file_name, "base-images.tar");
  EXPECT_EQ(json(ic).get<ImageCache>(), ic);
}

struct BadSpec {
  const char* what;
  json spec_patch;  // merged into minimal()["spec"]
  std::string message;
};

TEST(ImageCache, BadInputNamesTheField) {
  const BadSpec cases[] = {
      {"no images", {{"images", json::array()}}, "spec.images: Required value: at least one image"},
      {"image without name",
       {{"images", json::array({json::object()})}},
       "spec.images[0].name: Required value"},
      {"duplicate image",
       {{"images", json::array({{{"name", "a:1"}}, {{"name", "b:1"}}, {{"name", "a:1"}}})}},
       "spec.images[2].name: Duplicate value: \"a:1\""},
      {"image name not a string",
       {{"images", json::array({{{"name", 5}}})}},
       "spec.images[0].name: must be a string"},
      {"unknown image field",
       {{"images", json::array({{{"name", "a:1"}, {"tag", "x"}}})}},
       "spec.images[0].tag: unknown field"},
      {"bad interval",
       {{"refreshInterval", "1d"}},
       "spec.refreshInterval: Invalid value: \"1d\": must be hours, minutes and seconds such as "
       "6h, 1h30m or 90s"},
      {"short interval", {{"refreshInterval", "30s"}}, "spec.refreshInterval: must be at least 1m"},
      {"bad prune",
       {{"prune", "Always"}},
       "spec.prune: Unsupported value: \"Always\": supported values: \"OnRemoval\", \"Never\""},
      {"export path",
       {{"export", {{"fileName", "../etc/passwd"}}}},
       "spec.export.fileName: must be a file name, without \"/\""},
      {"export dotdot",
       {{"export", {{"fileName", ".."}}}},
       "spec.export.fileName: must not be \".\" or \"..\""},
      {"export no name",
       {{"export", {{"format", "oci-archive"}}}},
       "spec.export.fileName: Required value"},
      {"export format",
       {{"export", {{"fileName", "a.tar"}, {"format", "tar"}}}},
       "spec.export.format: Unsupported value: \"tar\": supported values: \"docker-archive\", "
       "\"oci-archive\""},
      {"duplicate secret",
       {{"imagePullSecrets", json::array({{{"name", "s"}}, {{"name", "s"}}})}},
       "spec.imagePullSecrets[1].name: Duplicate value: \"s\""},
      {"selector",
       {{"nodeSelector",
         {{"matchExpressions", json::array({{{"key", "k"}, {"operator", "In"}}})}}}},
       "spec.nodeSelector.matchExpressions[0].values: Required value: must be specified when "
       "`operator` is 'In' or 'NotIn'"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    json j = minimal();
    j["spec"].merge_patch(c.spec_patch);
    EXPECT_EQ(error_of(j), "ImageCache \"ml/base\": " + c.message);
  }
}

TEST(ImageCache, StatusErrorsNameTheField) {
  json j = full();
  j["status"]["images"][0]["nodesReady"] = "2";
  EXPECT_EQ(error_of(j), "ImageCache \"ml/base\": status.images[0].nodesReady: must be an integer");
  j = full();
  j["status"]["failures"][0].erase("image");
  EXPECT_EQ(error_of(j), "ImageCache \"ml/base\": status.failures[0].image: Required value");
}

TEST(Interval, ParsesHoursMinutesSeconds) {
  EXPECT_EQ(parse_interval("6h"), 6h);
  EXPECT_EQ(parse_interval("1h30m"), 90min);
  EXPECT_EQ(parse_interval("90s"), 90s);
  EXPECT_EQ(parse_interval("1m1m"), 2min);
  EXPECT_EQ(parse_interval(""), std::nullopt);
  EXPECT_EQ(parse_interval("h"), std::nullopt);
  EXPECT_EQ(parse_interval("10"), std::nullopt);
  EXPECT_EQ(parse_interval("1.5h"), std::nullopt);
  EXPECT_EQ(parse_interval("1d"), std::nullopt);
  EXPECT_EQ(parse_interval("99999999999h"), std::nullopt);
  EXPECT_EQ(format_interval(5400s), "1h30m");
  EXPECT_EQ(format_interval(3661s), "1h1m1s");
  EXPECT_EQ(format_interval(90s), "1m30s");
  EXPECT_EQ(format_interval(0s), "0s");
  for (const auto s : {60s, 61s, 3600s, 86399s, 7200s}) {
    EXPECT_EQ(parse_interval(format_interval(s)), s) << s.count();
  }
}

TEST(ExportFileName, RefusesWhatCouldEscapeTheExportDir) {
  EXPECT_EQ(export_file_name_problem("base-images.tar"), std::nullopt);
  EXPECT_EQ(export_file_name_problem("v1.2_x+y.tar"), std::nullopt);
  EXPECT_TRUE(export_file_name_problem("a/b.tar"));
  EXPECT_TRUE(export_file_name_problem("/abs.tar"));
  EXPECT_TRUE(export_file_name_problem(".."));
  EXPECT_TRUE(export_file_name_problem("."));
  EXPECT_TRUE(export_file_name_problem(""));
  EXPECT_TRUE(export_file_name_problem("a b.tar"));
  EXPECT_TRUE(export_file_name_problem(std::string(256, 'a')));
}

}  // namespace
}  // namespace stowage::api
