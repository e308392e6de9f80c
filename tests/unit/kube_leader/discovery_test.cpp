#include "kube/discovery.h"

#include <gtest/gtest.h>

namespace stowage::kube {
namespace {

TEST(Discovery, ParsesGroupVersions) {
  const auto apis = nlohmann::json::parse(R"({"kind":"APIGroupList","groups":[
    {"name":"apps","versions":[{"groupVersion":"apps/v1","version":"v1"}]},
    {"name":"coordination.k8s.io","versions":[{"groupVersion":"coordination.k8s.io/v1"}]},
    {"name":"broken"}]})");
  EXPECT_EQ(parse_group_versions(apis),
            (std::set<std::string>{"apps/v1", "coordination.k8s.io/v1"}));
  EXPECT_EQ(
      parse_core_versions(nlohmann::json::parse(R"({"kind":"APIVersions","versions":["v1"]})")),
      (std::set<std::string>{"v1"}));
  EXPECT_TRUE(parse_group_versions(nlohmann::json::array()).empty());
}

TEST(Discovery, ParsesResourcesWithoutSubresources) {
  const auto list =
      nlohmann::json::parse(R"({"kind":"APIResourceList","groupVersion":"coordination.k8s.io/v1",
    "resources":[{"name":"leases","singularName":"lease","namespaced":true,"kind":"Lease",
                  "verbs":["create","get"]},
                 {"name":"leases/status","namespaced":true,"kind":"Lease","verbs":["get"]},
                 {"kind":"Nameless"}]})");
  const std::vector<ApiResourceInfo> resources =
      parse_resource_list(list, "coordination.k8s.io", "v1");
  ASSERT_EQ(resources.size(), 1u);
  EXPECT_EQ(
      resources[0],
      (ApiResourceInfo{{"coordination.k8s.io", "v1", "leases"}, "Lease", true, {"create", "get"}}));
}

}  // namespace
}  // namespace stowage::kube
