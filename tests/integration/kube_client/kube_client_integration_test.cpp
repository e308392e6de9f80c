// kube::Client against a real kube-apiserver (the ControlPlane fixture, admin via its kubeconfig).
// One control plane per test process (ctest runs each case in its own process); each case works
// in its own namespace so the cases also pass when run together.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "base/clock.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "support/kube_fixture.h"
#include "support/process.h"

namespace stowage::kube {
namespace {

using nlohmann::json;
using test::BinaryLookup;
using test::ControlPlane;
using test::ControlPlaneOptions;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const GroupVersionResource kNamespaces{"", "v1", "namespaces"};
const GroupVersionResource kConfigMaps{"", "v1", "configmaps"};
const GroupVersionResource kCrds{"apiextensions.k8s.io", "v1", "customresourcedefinitions"};
const GroupVersionResource kWidgets{"test.stowage.io", "v1", "widgets"};

struct SuiteState {
  BinaryLookup binaries;
  std::unique_ptr<ControlPlane> plane;
  std::string error;
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

json config_map(const std::string& ns, const std::string& name, json data = {{"k", "v"}}) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"data", std::move(data)}};
}

class KubeClientIntegration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite().binaries = ControlPlane::find_binaries();
    if (!suite().binaries.dir) return;
    try {
      ControlPlaneOptions options;
      options.with_controller_manager = false;  // nothing here needs a controller
      suite().plane = std::make_unique<ControlPlane>(options);
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }
  static void TearDownTestSuite() { suite().plane.reset(); }

  void SetUp() override {
    const BinaryLookup& binaries = suite().binaries;
    if (!binaries.dir) {
      if (binaries.required) GTEST_FAIL() << binaries.problem;
      GTEST_SKIP() << binaries.problem;
    }
    ASSERT_THAT(suite().error, IsEmpty());
    plane_ = suite().plane.get();
    // The config as a binary would load it: the fixture's kubeconfig, admin's certificate inline.
    config_ =
        rest_config_from_kubeconfig(load_kubeconfig({plane_->kubeconfig_path()}), "", real_clock());
    client_ = std::make_unique<Client>(config_, http_, real_clock());
  }

  // A fresh namespace named after the test.
  std::string make_namespace(const std::string& name) {
    try {
      client_->create(
          {kNamespaces, "", "", ""},
          {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}});
    } catch (const Error& e) {
      if (e.code() != Code::kAlreadyExists) throw;
    }
    return name;
  }

  // Creates the Widget CRD (cluster-scoped, status subresource, status.nodes a map-list keyed by
  // node) and waits until discovery serves it, as envtest does.
  void install_widget_crd() {
    const json crd = json::parse(R"j({
      "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
      "metadata": {"name": "widgets.test.stowage.io"},
      "spec": {"group": "test.stowage.io", "scope": "Cluster",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [{"name": "v1", "served": true, "storage": true,
          "subresources": {"status": {}},
          "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 0}}},
            "status": {"type": "object", "properties": {
              "nodes": {"type": "array", "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["node"],
                        "items": {"type": "object", "required": ["node"], "properties": {
                          "node": {"type": "string"}, "state": {"type": "string"}}}}}}}}}}]}})j");
    try {
      client_->create({kCrds, "", "", ""}, crd);
    } catch (const Error& e) {
      if (e.code() != Code::kAlreadyExists) throw;
    }
    std::string last;
    const bool served = test::wait_for(
        [&] {
          try {
            const json d = client_->get_path("/apis/test.stowage.io/v1");
            for (const auto& r : d.value("resources", json::array())) {
              if (r.value("name", "") == "widgets") return true;
            }
            last = d.dump();
          } catch (const Error& e) {
            last = e.what();
          }
          return false;
        },
        std::chrono::seconds(30));
    ASSERT_TRUE(served) << "discovery never served widgets: " << last;
  }

  ControlPlane* plane_ = nullptr;
  http::Client http_{http::ClientOptions{.proxy = ""}};
  RestConfig config_;
  std::unique_ptr<Client> client_;
};

TEST_F(KubeClientIntegration, ConfigMapCrud) {
  const std::string ns = make_namespace("crud");
  const ResourceRef cm{kConfigMaps, ns, "settings", ""};
  const json created = client_->create({kConfigMaps, ns, "", ""}, config_map(ns, "settings"));
  EXPECT_EQ(created["data"]["k"], "v");
  EXPECT_FALSE(created["metadata"]["uid"].get<std::string>().empty());

  json got = client_->get(cm);
  EXPECT_EQ(got["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);
  got["data"]["k"] = "v2";
  const json updated = client_->update(cm, got);
  EXPECT_EQ(updated["data"]["k"], "v2");
  EXPECT_NE(updated["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);

  const json patched = client_->patch(cm, PatchType::kMerge, {{"data", {{"extra", "1"}}}});
  EXPECT_EQ(patched["data"], json({{"k", "v2"}, {"extra", "1"}}));
  const json json_patched =
      client_->patch(cm, PatchType::kJson,
                     json::array({{{"op", "test"}, {"path", "/data/extra"}, {"value", "1"}},
                                  {{"op", "remove"}, {"path", "/data/extra"}}}));
  EXPECT_EQ(json_patched["data"], json({{"k", "v2"}}));
  const json strategic = client_->patch(cm, PatchType::kStrategicMerge, {{"data", {{"s", "m"}}}});
  EXPECT_EQ(strategic["data"]["s"], "m");

  const KubeError dup = [&] {
    try {
      client_->create({kConfigMaps, ns, "", ""}, config_map(ns, "settings"));
    } catch (const KubeError& e) {
      return e;
    }
    return KubeError(Code::kInternal, "no error", 0, "", {}, std::nullopt);
  }();
  EXPECT_EQ(dup.code(), Code::kAlreadyExists);
  EXPECT_EQ(dup.http_status(), 409);

  client_->delete_(cm);
  EXPECT_EQ(client_->try_get(cm), std::nullopt);
  try {
    client_->get(cm);
    ADD_FAILURE() << "get after delete succeeded";
  } catch (const KubeError& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_EQ(e.reason(), "NotFound");
  }
}

TEST_F(KubeClientIntegration, PaginationFollowsContinue) {
  const std::string ns = make_namespace("paging");
  for (int i = 0; i < 7; ++i) {
    json cm = config_map(ns, fmt::format("page-{}", i));
    cm["metadata"]["labels"] = {{"app", "paging"}};
    client_->create({kConfigMaps, ns, "", ""}, cm);
  }
  client_->create({kConfigMaps, ns, "", ""}, config_map(ns, "unlabelled"));

  const json first =
      client_->list({kConfigMaps, ns, "", ""}, {.label_selector = "app=paging", .limit = 3});
  EXPECT_EQ(first["items"].size(), 3u);
  const std::string token = first["metadata"].value("continue", "");
  ASSERT_FALSE(token.empty());
  const json second =
      client_->list({kConfigMaps, ns, "", ""},
                    {.label_selector = "app=paging", .limit = 3, .continue_token = token});
  EXPECT_EQ(second["items"].size(), 3u);
  EXPECT_NE(second["items"][0]["metadata"]["name"], first["items"][0]["metadata"]["name"]);

  int pages = 0;
  client_->list_pages({kConfigMaps, ns, "", ""}, {.label_selector = "app=paging"}, 3,
                      [&](json&) { ++pages; });
  EXPECT_EQ(pages, 3);
  const json all =
      client_->list_all({kConfigMaps, ns, "", ""}, {.label_selector = "app=paging"}, 3);
  ASSERT_EQ(all["items"].size(), 7u);
  std::set<std::string> names;
  for (const auto& item : all["items"]) names.insert(item["metadata"]["name"].get<std::string>());
  EXPECT_EQ(names.size(), 7u);
  EXPECT_FALSE(all["metadata"]["resourceVersion"].get<std::string>().empty());
  EXPECT_FALSE(all["metadata"].contains("continue"));
}

TEST_F(KubeClientIntegration, ServerSideApplyOfTwoManagersOnAStatusMapList) {
  ASSERT_NO_FATAL_FAILURE(install_widget_crd());
  const ResourceRef w1{kWidgets, "", "w1", ""};
  const ResourceRef w1_status{kWidgets, "", "w1", "status"};
  const json created =
      client_->create({kWidgets, "", "", ""}, {{"apiVersion", "test.stowage.io/v1"},
                                               {"kind", "Widget"},
                                               {"metadata", {{"name", "w1"}}},
                                               {"spec", {{"size", 1}}}});
  const auto generation = created["metadata"]["generation"];

  auto intent = [](json nodes) {
    return json{{"apiVersion", "test.stowage.io/v1"},
                {"kind", "Widget"},
                {"metadata", {{"name", "w1"}}},
                {"status", {{"nodes", std::move(nodes)}}}};
  };
  client_->apply(w1_status, intent(json::array({{{"node", "a"}, {"state", "Pulling"}}})),
                 {.field_manager = "agent-a", .force = true});
  client_->apply(w1_status, intent(json::array({{{"node", "b"}, {"state", "Present"}}})),
                 {.field_manager = "agent-b", .force = true});
  json got = client_->get(w1);
  EXPECT_EQ(got["status"]["nodes"],
            json::parse(R"([{"node":"a","state":"Pulling"},{"node":"b","state":"Present"}])"));
  EXPECT_EQ(got["metadata"]["generation"], generation);  // status writes leave generation alone

  // agent-a updates its own entry: agent-b's stays.
  client_->apply(w1_status, intent(json::array({{{"node", "a"}, {"state", "Present"}}})),
                 {.field_manager = "agent-a", .force = true});
  got = client_->get(w1);
  EXPECT_EQ(got["status"]["nodes"],
            json::parse(R"([{"node":"a","state":"Present"},{"node":"b","state":"Present"}])"));

  // A third manager touching agent-b's field without force conflicts, naming the field.
  try {
    client_->apply(w1_status, intent(json::array({{{"node", "b"}, {"state", "Failed"}}})),
                   {.field_manager = "intruder"});
    ADD_FAILURE() << "no conflict";
  } catch (const KubeError& e) {
    EXPECT_EQ(e.code(), Code::kConflict);
    ASSERT_FALSE(e.causes().empty());
    EXPECT_EQ(e.causes()[0].type, "FieldManagerConflict");
    EXPECT_THAT(e.what(), HasSubstr("agent-b"));
  }

  // agent-a leaves (an empty intent): only its entry goes.
  client_->apply(w1_status, intent(json::array()), {.field_manager = "agent-a", .force = true});
  got = client_->get(w1);
  EXPECT_EQ(got["status"]["nodes"], json::parse(R"([{"node":"b","state":"Present"}])"));

  // The main endpoint ignores status; the status endpoint ignores spec.
  json changed = got;
  changed["status"]["nodes"] = json::array();
  changed["spec"]["size"] = 2;
  const json after_main = client_->update(w1, changed);
  EXPECT_EQ(after_main["spec"]["size"], 2);
  EXPECT_EQ(after_main["status"]["nodes"].size(), 1u);
  json status_write = after_main;
  status_write["spec"]["size"] = 5;
  status_write["status"]["nodes"] = json::parse(R"([{"node":"b","state":"Gone"}])");
  const json after_status = client_->update_status(w1, status_write);
  EXPECT_EQ(after_status["spec"]["size"], 2);
  EXPECT_EQ(after_status["status"]["nodes"][0]["state"], "Gone");
}

TEST_F(KubeClientIntegration, StaleUpdateConflicts) {
  const std::string ns = make_namespace("conflict");
  const ResourceRef cm{kConfigMaps, ns, "c", ""};
  const json v1 = client_->create({kConfigMaps, ns, "", ""}, config_map(ns, "c"));
  json first = v1;
  first["data"]["k"] = "first";
  client_->update(cm, first);
  json stale = v1;  // still carries the old resourceVersion
  stale["data"]["k"] = "second";
  try {
    client_->update(cm, stale);
    ADD_FAILURE() << "stale update succeeded";
  } catch (const KubeError& e) {
    EXPECT_EQ(e.code(), Code::kConflict);
    EXPECT_EQ(e.http_status(), 409);
    EXPECT_EQ(e.reason(), "Conflict");
    EXPECT_THAT(e.what(), HasSubstr("the object has been modified"));
  }
  EXPECT_EQ(client_->get(cm)["data"]["k"], "first");
}

TEST_F(KubeClientIntegration, InvalidObjectNamesTheField) {
  const std::string ns = make_namespace("invalid");
  try {
    client_->create({kConfigMaps, ns, "", ""}, config_map(ns, "bad", {{"a b", "x"}}));
    ADD_FAILURE() << "invalid config map created";
  } catch (const KubeError& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_EQ(e.http_status(), 422);
    EXPECT_EQ(e.reason(), "Invalid");
    ASSERT_EQ(e.causes().size(), 1u);
    EXPECT_EQ(e.causes()[0].field, "data[a b]");
    EXPECT_THAT(e.what(), HasSubstr("data[a b]: Invalid value"));
  }
}

TEST_F(KubeClientIntegration, DeleteHonoursTheUidPrecondition) {
  const std::string ns = make_namespace("precondition");
  const ResourceRef cm{kConfigMaps, ns, "p", ""};
  const json created = client_->create({kConfigMaps, ns, "", ""}, config_map(ns, "p"));
  try {
    client_->delete_(cm, {.uid = "00000000-0000-0000-0000-000000000000"});
    ADD_FAILURE() << "delete with a wrong uid succeeded";
  } catch (const KubeError& e) {
    EXPECT_EQ(e.code(), Code::kConflict);
    EXPECT_THAT(e.what(), HasSubstr("the UID in the precondition"));
  }
  EXPECT_TRUE(client_->try_get(cm));
  client_->delete_(cm, {.uid = created["metadata"]["uid"].get<std::string>(),
                        .propagation_policy = "Background"});
  EXPECT_EQ(client_->try_get(cm), std::nullopt);
}

TEST_F(KubeClientIntegration, MetadataOnlyListAndWatchCarryNoData) {
  const std::string ns = make_namespace("metadata");
  client_->create({kConfigMaps, ns, "", ""},
                  config_map(ns, "m1", {{"big", std::string(1000, 'x')}}));
  const json list = client_->list({kConfigMaps, ns, "", ""}, {.metadata_only = true});
  EXPECT_EQ(list["kind"], "PartialObjectMetadataList");
  EXPECT_EQ(list["apiVersion"], "meta.k8s.io/v1");
  ASSERT_EQ(list["items"].size(), 1u);
  EXPECT_EQ(list["items"][0]["metadata"]["name"], "m1");
  EXPECT_FALSE(list["items"][0].contains("data"));
  const std::string rv = list["metadata"]["resourceVersion"];

  // A watch from that version sees the next object, as metadata only.
  std::string stream;
  std::atomic<bool> saw{false};
  std::jthread watcher([&] {
    client_->watch({kConfigMaps, ns, "", ""},
                   {.resource_version = rv, .timeout_seconds = 30, .metadata_only = true},
                   [&](std::string_view chunk) {
                     stream += chunk;
                     saw = stream.find("\"name\":\"m2\"") != std::string::npos &&
                           stream.find('\n', stream.find("\"name\":\"m2\"")) != std::string::npos;
                     return !saw.load();
                   });
  });
  client_->create({kConfigMaps, ns, "", ""},
                  config_map(ns, "m2", {{"big", std::string(1000, 'y')}}));
  watcher.join();
  ASSERT_TRUE(saw.load()) << stream;
  const json event = json::parse(stream.substr(0, stream.find('\n')));
  EXPECT_EQ(event["type"], "ADDED");
  EXPECT_EQ(event["object"]["kind"], "PartialObjectMetadata");
  EXPECT_FALSE(event["object"].contains("data"));
}

TEST_F(KubeClientIntegration, AuthenticationAndAuthorizationErrors) {
  // A bearer token the server does not know: one refresh, one retry, then Unauthenticated.
  RestConfig bogus = config_;
  bogus.tls.client_cert_pem.clear();
  bogus.tls.client_key_pem.clear();
  bogus.token_source = std::make_shared<StaticTokenSource>("not-a-real-token");
  Client anonymous(bogus, http_, real_clock());
  try {
    anonymous.list({kConfigMaps, "default", "", ""});
    ADD_FAILURE() << "an unknown token was accepted";
  } catch (const KubeError& e) {
    EXPECT_EQ(e.code(), Code::kUnauthenticated);
    EXPECT_EQ(e.http_status(), 401);
    EXPECT_THAT(e.what(), ::testing::Not(HasSubstr("not-a-real-token")));
  }

  // A real user without RBAC grants.
  const test::ClientCert alice = plane_->mint_client_cert("alice");
  RestConfig as_alice = config_;
  as_alice.tls.client_cert_pem = alice.cert_pem;
  as_alice.tls.client_key_pem = alice.key_pem;
  Client alice_client(as_alice, http_, real_clock());
  try {
    alice_client.list({{"", "v1", "secrets"}, "", "", ""});
    ADD_FAILURE() << "alice listed secrets";
  } catch (const KubeError& e) {
    EXPECT_EQ(e.code(), Code::kPermissionDenied);
    EXPECT_EQ(e.reason(), "Forbidden");
  }
}

}  // namespace
}  // namespace stowage::kube
