#include "kube/resource.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace stowage::kube {
namespace {

using nlohmann::json;

const GroupVersionResource kConfigMaps{"", "v1", "configmaps"};
const GroupVersionResource kNodes{"", "v1", "nodes"};
const GroupVersionResource kNodeCaches{"stowage.io", "v1alpha1", "nodecaches"};
const GroupVersionResource kImageCaches{"stowage.io", "v1alpha1", "imagecaches"};

Code code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no error";
  return Code::kInternal;
}

TEST(GroupVersionResource, ApiVersionBothWays) {
  EXPECT_EQ(kConfigMaps.api_version(), "v1");
  EXPECT_EQ(kNodeCaches.api_version(), "stowage.io/v1alpha1");
  EXPECT_EQ(gvr_from_api_version("v1", "pods"), (GroupVersionResource{"", "v1", "pods"}));
  EXPECT_EQ(gvr_from_api_version("apps/v1", "deployments"),
            (GroupVersionResource{"apps", "v1", "deployments"}));
}

TEST(ResourcePath, EveryForm) {
  const struct {
    ResourceRef ref;
    const char* path;
  } cases[] = {
      {{kConfigMaps, "", "", ""}, "/api/v1/configmaps"},
      {{kConfigMaps, "ns", "", ""}, "/api/v1/namespaces/ns/configmaps"},
      {{kConfigMaps, "ns", "cm", ""}, "/api/v1/namespaces/ns/configmaps/cm"},
      {{kNodes, "", "node-1", ""}, "/api/v1/nodes/node-1"},
      {{kNodes, "", "node-1", "status"}, "/api/v1/nodes/node-1/status"},
      {{kNodeCaches, "", "", ""}, "/apis/stowage.io/v1alpha1/nodecaches"},
      {{kNodeCaches, "", "n1", "status"}, "/apis/stowage.io/v1alpha1/nodecaches/n1/status"},
      {{kImageCaches, "team", "", ""}, "/apis/stowage.io/v1alpha1/namespaces/team/imagecaches"},
      {{kImageCaches, "team", "ic", "status"},
       "/apis/stowage.io/v1alpha1/namespaces/team/imagecaches/ic/status"},
      {{{"rbac.authorization.k8s.io", "v1", "clusterroles"}, "", "system:controller:x", ""},
       "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:controller:x"},
      {{kConfigMaps, "ns", "a b?#", ""}, "/api/v1/namespaces/ns/configmaps/a%20b%3F%23"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(resource_path(c.ref), c.path);
  }
}

TEST(ResourcePath, RefusesSegmentsTheServerRefuses) {
  const ResourceRef bad[] = {
      {kConfigMaps, "ns", "a/b", ""},   {kConfigMaps, "ns", "..", ""},
      {kConfigMaps, "ns", ".", ""},     {kConfigMaps, "ns", "50%", ""},
      {kConfigMaps, "a/b", "x", ""},    {kConfigMaps, "ns", "", "status"},
      {{"", "", "pods"}, "", "", ""},   {{"", "v1", ""}, "", "", ""},
      {{"g/x", "v1", "r"}, "", "", ""},
  };
  for (const auto& ref : bad) {
    EXPECT_EQ(code_of([&] { resource_path(ref); }), Code::kInvalidArgument)
        << ref.namespace_ << "/" << ref.name;
  }
}

TEST(ListQuery, EncodesEveryOption) {
  const struct {
    ListOptions options;
    bool watch;
    const char* query;
  } cases[] = {
      {{}, false, ""},
      {{}, true, "?watch=1"},
      {{.label_selector = "app=web,tier in (a,b)"},
       false,
       "?labelSelector=app%3Dweb%2Ctier%20in%20%28a%2Cb%29"},
      {{.field_selector = "metadata.name=node-1"},
       true,
       "?watch=1&fieldSelector=metadata.name%3Dnode-1"},
      {{.limit = 500}, false, "?limit=500"},
      {{.limit = 2, .continue_token = "eyJ2IjoibWV0YS5rOHMuaW8vdjEi+/="},
       false,
       "?limit=2&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEi%2B%2F%3D"},
      {{.resource_version = "0"}, false, "?resourceVersion=0"},
      {{.resource_version = ""}, false, "?resourceVersion="},
      {{.resource_version = "123", .resource_version_match = "NotOlderThan"},
       false,
       "?resourceVersion=123&resourceVersionMatch=NotOlderThan"},
      {{.resource_version = "123", .resource_version_match = "Exact"},
       false,
       "?resourceVersion=123&resourceVersionMatch=Exact"},
      {{.resource_version = "77", .allow_watch_bookmarks = true, .timeout_seconds = 290},
       true,
       "?watch=1&resourceVersion=77&allowWatchBookmarks=true&timeoutSeconds=290"},
      {{.resource_version_match = "NotOlderThan",
        .allow_watch_bookmarks = true,
        .send_initial_events = true},
       true,
       "?watch=1&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&"
       "sendInitialEvents=true"},
      {{.label_selector = "a",
        .field_selector = "b",
        .limit = 1,
        .continue_token = "c",
        .resource_version = "d",
        .resource_version_match = "NotOlderThan",
        .timeout_seconds = 5},
       false,
       "?labelSelector=a&fieldSelector=b&limit=1&continue=c&resourceVersion=d&"
       "resourceVersionMatch=NotOlderThan&timeoutSeconds=5"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(list_query(c.options, c.watch), c.query);
  }
}

TEST(ListQuery, RefusesInconsistentOptions) {
  const struct {
    ListOptions options;
    bool watch;
  } cases[] = {
      {{.limit = 0}, false},
      {{.limit = -3}, false},
      {{.resource_version_match = "NotOlderThan"}, false},
      {{.resource_version = "0", .resource_version_match = "Exact"}, false},
      {{.resource_version = "1", .resource_version_match = "Newest"}, false},
      {{.allow_watch_bookmarks = true}, false},
      {{.send_initial_events = true}, false},
      {{.timeout_seconds = 0}, true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(code_of([&] { list_query(c.options, c.watch); }), Code::kInvalidArgument);
  }
}

TEST(Requests, GetListWatchAndMetadataOnly) {
  const ResourceRef cm{kConfigMaps, "ns", "cm", ""};
  EXPECT_EQ(get_request(cm),
            (ApiRequest{"GET", "/api/v1/namespaces/ns/configmaps/cm", "application/json", "", ""}));
  EXPECT_EQ(get_request(cm, {.resource_version = "0", .metadata_only = true}),
            (ApiRequest{"GET", "/api/v1/namespaces/ns/configmaps/cm?resourceVersion=0",
                        std::string(kAcceptMetadata), "", ""}));
  const ResourceRef nodes{kNodes, "", "", ""};
  EXPECT_EQ(list_request(nodes, {.limit = 500, .metadata_only = true}),
            (ApiRequest{"GET", "/api/v1/nodes?limit=500",
                        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
                        "application/json",
                        "", ""}));
  EXPECT_EQ(watch_request(nodes, {.resource_version = "9", .metadata_only = true}),
            (ApiRequest{"GET", "/api/v1/nodes?watch=1&resourceVersion=9",
                        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,"
                        "application/json",
                        "", ""}));
  // A name in the collection ref of a list is ignored.
  EXPECT_EQ(list_request(cm).path, "/api/v1/namespaces/ns/configmaps");
  EXPECT_EQ(code_of([&] { get_request({kConfigMaps, "ns", "", ""}); }), Code::kInvalidArgument);
}

TEST(Requests, CreateAndUpdate) {
  const json obj = {{"apiVersion", "v1"},
                    {"kind", "ConfigMap"},
                    {"metadata", {{"name", "cm"}, {"namespace", "ns"}, {"resourceVersion", "5"}}},
                    {"data", {{"k", "v"}}}};
  const ApiRequest create = create_request({kConfigMaps, "ns", "ignored", ""}, obj,
                                           {.field_manager = "op", .dry_run = true});
  EXPECT_EQ(create.method, "POST");
  EXPECT_EQ(create.path, "/api/v1/namespaces/ns/configmaps?dryRun=All&fieldManager=op");
  EXPECT_EQ(create.content_type, "application/json");
  EXPECT_EQ(json::parse(create.body), obj);

  const ApiRequest update = update_request({kConfigMaps, "ns", "cm", ""}, obj);
  EXPECT_EQ(update.method, "PUT");
  EXPECT_EQ(update.path, "/api/v1/namespaces/ns/configmaps/cm");
  EXPECT_EQ(update.content_type, "application/json");
  EXPECT_EQ(json::parse(update.body), obj);

  const json status_obj = {{"metadata", {{"name", "n1"}, {"resourceVersion", "8"}}},
                           {"status", {{"x", 1}}}};
  EXPECT_EQ(update_request({kNodeCaches, "", "n1", "status"}, status_obj).path,
            "/apis/stowage.io/v1alpha1/nodecaches/n1/status");
}

TEST(Requests, RefuseWritesThatWouldDoTheWrongThing) {
  const json no_rv = {{"metadata", {{"name", "cm"}}}};
  const json other_name = {{"metadata", {{"name", "other"}, {"resourceVersion", "1"}}}};
  const json other_ns = {
      {"metadata", {{"name", "cm"}, {"namespace", "b"}, {"resourceVersion", "1"}}}};
  const ResourceRef cm{kConfigMaps, "a", "cm", ""};
  EXPECT_EQ(code_of([&] { update_request(cm, no_rv); }), Code::kInvalidArgument);
  EXPECT_EQ(code_of([&] { update_request(cm, other_name); }), Code::kInvalidArgument);
  EXPECT_EQ(code_of([&] { update_request(cm, other_ns); }), Code::kInvalidArgument);
  EXPECT_EQ(code_of([&] { create_request(cm, other_ns); }), Code::kInvalidArgument);
  EXPECT_EQ(code_of([&] { create_request(cm, json::array()); }), Code::kInvalidArgument);
  EXPECT_EQ(code_of([&] {
              create_request(cm, {{"metadata", {{"name", "x"}}}},
                             {.field_manager = std::string(129, 'm')});
            }),
            Code::kInvalidArgument);
  EXPECT_EQ(code_of([&] {
              create_request(cm, {{"metadata", {{"name", "x"}}}}, {.field_manager = "a\nb"});
            }),
            Code::kInvalidArgument);
}

TEST(Requests, PatchTypes) {
  const ResourceRef cm{kConfigMaps, "ns", "cm", ""};
  const struct {
    PatchType type;
    json body;
    const char* content_type;
  } cases[] = {
      {PatchType::kMerge, {{"data", {{"k", nullptr}}}}, "application/merge-patch+json"},
      {PatchType::kJson,
       json::array({{{"op", "test"}, {"path", "/metadata/finalizers/0"}, {"value", "f"}},
                    {{"op", "remove"}, {"path", "/metadata/finalizers/0"}}}),
       "application/json-patch+json"},
      {PatchType::kStrategicMerge,
       {{"data", {{"k", "v"}}}},
       "application/strategic-merge-patch+json"},
  };
  for (const auto& c : cases) {
    const ApiRequest r = patch_request(cm, c.type, c.body, {.field_manager = "op"});
    EXPECT_EQ(r.method, "PATCH");
    EXPECT_EQ(r.path, "/api/v1/namespaces/ns/configmaps/cm?fieldManager=op");
    EXPECT_EQ(r.content_type, c.content_type);
    EXPECT_EQ(json::parse(r.body), c.body);
  }
  EXPECT_EQ(code_of([&] {
              patch_request(cm, PatchType::kMerge, {{"a", 1}}, {.force = true});
            }),
            Code::kInvalidArgument);
  EXPECT_EQ(code_of([&] {
              patch_request(cm, PatchType::kJson, {{"a", 1}});
            }),
            Code::kInvalidArgument);
  EXPECT_EQ(code_of([&] { patch_request(cm, PatchType::kMerge, json::array()); }),
            Code::kInvalidArgument);
}

TEST(Requests, ApplyToObjectAndStatus) {
  const json intent = {{"apiVersion", "stowage.io/v1alpha1"},
                       {"kind", "NodeCache"},
                       {"metadata", {{"name", "n1"}}},
                       {"status", {{"images", json::array()}}}};
  const ApiRequest r = apply_request({kNodeCaches, "", "n1", "status"}, intent,
                                     {.field_manager = "stowage-agent/n1", .force = true});
  EXPECT_EQ(r.method, "PATCH");
  EXPECT_EQ(r.path,
            "/apis/stowage.io/v1alpha1/nodecaches/n1/status?fieldManager=stowage-agent%2Fn1&"
            "force=true");
  EXPECT_EQ(r.content_type, "application/apply-patch+yaml");
  EXPECT_EQ(json::parse(r.body), intent);
  // Through patch_request too.
  EXPECT_EQ(patch_request({kNodeCaches, "", "n1", "status"}, PatchType::kApply, intent,
                          {.field_manager = "stowage-agent/n1", .force = true}),
            r);
  EXPECT_EQ(
      apply_request({kNodeCaches, "", "n1", ""}, intent, {.field_manager = "op", .dry_run = true})
          .path,
      "/apis/stowage.io/v1alpha1/nodecaches/n1?dryRun=All&fieldManager=op");
}

TEST(Requests, ApplyRefusesIncompleteIntent) {
  const ResourceRef n1{kNodeCaches, "", "n1", ""};
  const json good = {
      {"apiVersion", "stowage.io/v1alpha1"}, {"kind", "NodeCache"}, {"metadata", {{"name", "n1"}}}};
  EXPECT_EQ(code_of([&] { apply_request(n1, good, {}); }), Code::kInvalidArgument);  // manager
  for (const char* key : {"apiVersion", "kind"}) {
    json j = good;
    j.erase(key);
    EXPECT_EQ(code_of([&] { apply_request(n1, j, {.field_manager = "m"}); }),
              Code::kInvalidArgument);
  }
  json other = good;
  other["metadata"]["name"] = "n2";
  EXPECT_EQ(code_of([&] { apply_request(n1, other, {.field_manager = "m"}); }),
            Code::kInvalidArgument);
}

TEST(Requests, DeleteWithPreconditionsAndPropagation) {
  const ResourceRef cm{kConfigMaps, "ns", "cm", ""};
  const ApiRequest plain = delete_request(cm);
  EXPECT_EQ(plain, (ApiRequest{"DELETE", "/api/v1/namespaces/ns/configmaps/cm", "application/json",
                               "", ""}));
  const ApiRequest r = delete_request(cm, {.uid = "u-1",
                                           .resource_version = "42",
                                           .propagation_policy = "Foreground",
                                           .grace_period_seconds = 0,
                                           .dry_run = true});
  EXPECT_EQ(r.method, "DELETE");
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"apiVersion":"v1","kind":"DeleteOptions",
      "preconditions":{"uid":"u-1","resourceVersion":"42"},"propagationPolicy":"Foreground",
      "gracePeriodSeconds":0,"dryRun":["All"]})"));
  EXPECT_EQ(code_of([&] { delete_request(cm, {.propagation_policy = "Later"}); }),
            Code::kInvalidArgument);
  EXPECT_EQ(code_of([&] { delete_request({kConfigMaps, "ns", "", ""}); }), Code::kInvalidArgument);
}

TEST(Describe, NamesTheResourceForMessages) {
  EXPECT_EQ(describe({kConfigMaps, "ns", "cm", ""}), "configmaps ns/cm");
  EXPECT_EQ(describe({kNodeCaches, "", "n1", "status"}), "nodecaches.stowage.io/status n1");
  EXPECT_EQ(describe({kConfigMaps, "ns", "", ""}), "configmaps in ns");
  EXPECT_EQ(describe({kNodes, "", "", ""}), "nodes");
  EXPECT_EQ(ref_of(kConfigMaps, {{"metadata", {{"name", "a"}, {"namespace", "b"}}}}),
            (ResourceRef{kConfigMaps, "b", "a", ""}));
}

}  // namespace
}  // namespace stowage::kube
