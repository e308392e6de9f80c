// The CRDs under crds/ against a real kube-apiserver (one control plane for the whole binary,
// installed once with `kubectl apply --server-side`, as a user would): they become Established,
// the samples apply, each schema and CEL rule refuses its invalid object with its message, the
// printer columns come back in the server-side Table, `kubectl explain` prints the descriptions,
// the status subresource keeps spec and status apart, and libs/api objects survive the server.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "api/image_cache.h"
#include "api/node_cache.h"
#include "api/registry_config.h"
#include "base/clock.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "support/kube_fixture.h"
#include "support/process.h"

namespace stowage::api {
namespace {

using kube::Client;
using kube::GroupVersionResource;
using kube::KubeError;
using kube::ResourceRef;
using nlohmann::json;
using test::BinaryLookup;
using test::ControlPlane;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const GroupVersionResource kCrds{"apiextensions.k8s.io", "v1", "customresourcedefinitions"};
const char* const kPlurals[] = {"registryconfigs", "imagecaches", "nodecaches"};
const std::string kDigest = "sha256:" + std::string(64, 'a');

std::filesystem::path source(const std::string& relative) {
  return std::filesystem::path(STOWAGE_SOURCE_DIR) / relative;
}

struct SuiteState {
  BinaryLookup binaries;
  std::unique_ptr<ControlPlane> plane;
  std::string error;
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

// Installs the CRDs and waits until each is Established; "" or what went wrong.
std::string install_crds(ControlPlane& plane) {
  const auto applied = plane.kubectl({"apply", "--server-side", "-f", source("crds").string()});
  if (!applied.ok()) return applied.describe();
  std::vector<std::string> wait = {"wait", "--for=condition=Established", "--timeout=60s"};
  for (const char* plural : kPlurals) wait.push_back(fmt::format("crd/{}.stowage.io", plural));
  const auto waited = plane.kubectl(wait);
  if (!waited.ok()) return waited.describe();
  // kubectl explain reads the OpenAPI v3 document, which the server publishes a moment later.
  std::string last;
  const bool published = test::wait_for(
      [&] {
        const auto root = plane.kubectl({"get", "--raw", "/openapi/v3"});
        last = root.describe();
        if (!root.ok() || root.out.find("apis/stowage.io/v1alpha1") == std::string::npos) {
          return false;
        }
        const auto r = plane.kubectl({"get", "--raw", "/openapi/v3/apis/stowage.io/v1alpha1"});
        last = r.describe();
        return r.ok() && r.out.find("io.stowage.v1alpha1.RegistryConfig") != std::string::npos &&
               r.out.find("io.stowage.v1alpha1.ImageCache") != std::string::npos &&
               r.out.find("io.stowage.v1alpha1.NodeCache") != std::string::npos;
      },
      std::chrono::seconds(60));
  return published ? "" : "OpenAPI v3 never served the stowage.io schemas: " + last;
}

class CrdsIntegration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite().binaries = ControlPlane::find_binaries();
    if (!suite().binaries.dir) return;
    try {
      test::ControlPlaneOptions options;
      options.with_controller_manager = false;  // nothing here needs a controller
      suite().plane = std::make_unique<ControlPlane>(options);
      suite().error = install_crds(*suite().plane);
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
    client_ = std::make_unique<Client>(
        kube::rest_config_from_kubeconfig(kube::load_kubeconfig({plane_->kubeconfig_path()}), "",
                                          real_clock()),
        http_, real_clock());
  }

  // The server-side Table of one object (what `kubectl get` prints).
  json table(const ResourceRef& ref) {
    http::Request request;
    request.url = plane_->server_url() + kube::resource_path(ref);
    request.headers.set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io");
    request.tls = plane_->tls_options();
    request.timeout = std::chrono::seconds(30);
    const http::Response response = http_.send(request);
    EXPECT_EQ(response.status, 200) << response.body;
    return json::parse(response.body);
  }

  // The cells of the Table's only row, keyed by column name.
  json table_row(const ResourceRef& ref) {
    const json t = table(ref);
    EXPECT_EQ(t.value("kind", ""), "Table");
    json row = json::object();
    if (t["rows"].size() != 1) {
      ADD_FAILURE() << "expected one row: " << t.dump();
      return row;
    }
    const json& columns = t["columnDefinitions"];
    for (std::size_t i = 0; i < columns.size(); ++i) {
      row[columns[i]["name"].get<std::string>()] = t["rows"][0]["cells"][i];
    }
    return row;
  }

  std::string fresh_cache_dir() {
    return (plane_->dir() / fmt::format("kubectl-cache-{}", ++caches_)).string();
  }

  ControlPlane* plane_ = nullptr;
  int caches_ = 0;
  http::Client http_{http::ClientOptions{.proxy = ""}};
  std::unique_ptr<Client> client_;
};

Condition ready(ConditionStatus status, std::int64_t generation) {
  return {"Ready", status, generation, Time(std::chrono::seconds(1'700'000'000)), "Reconciled", ""};
}

TEST_F(CrdsIntegration, CrdsAreEstablishedAndDiscoverable) {
  for (const char* plural : kPlurals) {
    SCOPED_TRACE(plural);
    const json crd = client_->get({kCrds, "", fmt::format("{}.stowage.io", plural), ""});
    std::map<std::string, std::string> conditions;
    for (const auto& c : crd["status"]["conditions"]) {
      conditions[c["type"].get<std::string>()] = c["status"].get<std::string>();
    }
    EXPECT_EQ(conditions["Established"], "True");
    EXPECT_EQ(conditions["NamesAccepted"], "True");
  }
  const json discovery = client_->get_path("/apis/stowage.io/v1alpha1");
  std::map<std::string, json> resources;
  for (const auto& r : discovery["resources"]) resources[r["name"].get<std::string>()] = r;
  EXPECT_EQ(resources["registryconfigs"]["shortNames"], json::array({"regcfg"}));
  EXPECT_EQ(resources["registryconfigs"]["namespaced"], false);
  EXPECT_EQ(resources["imagecaches"]["shortNames"], json::array({"ic"}));
  EXPECT_EQ(resources["imagecaches"]["namespaced"], true);
  EXPECT_EQ(resources["nodecaches"]["shortNames"], json::array({"nc"}));
  EXPECT_EQ(resources["nodecaches"]["categories"], json::array({"stowage"}));
  EXPECT_TRUE(resources.contains("nodecaches/status"));
}

TEST_F(CrdsIntegration, SamplesApplyServerSideAndDecode) {
  int applied = 0;
  for (const auto& entry : std::filesystem::directory_iterator(source("manifests/samples"))) {
    SCOPED_TRACE(entry.path().filename().string());
    // --validate=strict (kubectl's default) makes an unknown field an error, not a silent drop.
    const auto r = plane_->kubectl({"apply", "--server-side", "--validate=strict", "-n", "default",
                                    "--field-manager=samples", "-f", entry.path().string()});
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_THAT(r.out, HasSubstr("serverside-applied"));
    ++applied;
  }
  EXPECT_GE(applied, 3);

  // What the server stored decodes with libs/api into what libs/registries reads from the file.
  std::ifstream in(source("manifests/samples/registryconfig-mirrors.yaml"));
  std::stringstream text;
  text << in.rdbuf();
  const auto from_file = registries::read_registry_configs(text.str(), "sample");
  ASSERT_EQ(from_file.size(), 1u);
  const auto stored =
      client_->get({registry_configs_resource(), "", from_file[0].name, ""}).get<RegistryConfig>();
  EXPECT_EQ(stored.spec, from_file[0].spec);
  EXPECT_EQ(stored.metadata.generation, 1);

  const auto ic =
      client_->get({image_caches_resource(), "default", "base-images", ""}).get<ImageCache>();
  ASSERT_TRUE(ic.spec.export_);
  EXPECT_EQ(ic.spec.export_->file_name, "base-images.tar");
  EXPECT_EQ(ic.spec.export_->format, ExportFormat::kOciArchive);

  // `kubectl get stowage` lists every kind of the category.
  const auto all = plane_->kubectl({"get", "stowage", "-A", "-o", "name"});
  ASSERT_TRUE(all.ok()) << all.describe();
  EXPECT_THAT(all.out, HasSubstr("registryconfig.stowage.io/corp-mirrors"));
  EXPECT_THAT(all.out, HasSubstr("imagecache.stowage.io/base-images"));
}

struct Invalid {
  const char* what;
  const char* kind;     // RegistryConfig, ImageCache, NodeCache
  json patch;           // RFC 7386 merge patch over the kind's valid base object
  std::string field;    // the field the server names
  std::string message;  // part of what it says
};

json base_object(const std::string& kind) {
  if (kind == "RegistryConfig") {
    return json::parse(R"j({
      "apiVersion": "stowage.io/v1alpha1", "kind": "RegistryConfig",
      "metadata": {"name": "invalid"},
      "spec": {"registries": [{"prefix": "quay.io/team", "location": "quay.io/team",
                               "mirrors": [{"location": "mirror.corp:5000/team"}]}]}})j");
  }
  if (kind == "ImageCache") {
    return json::parse(R"j({
      "apiVersion": "stowage.io/v1alpha1", "kind": "ImageCache",
      "metadata": {"name": "invalid", "namespace": "default"},
      "spec": {"images": [{"name": "quay.io/nginx:1.25"}],
               "export": {"fileName": "base.tar"}}})j");
  }
  json nc = json::parse(R"j({
      "apiVersion": "stowage.io/v1alpha1", "kind": "NodeCache", "metadata": {"name": "invalid"},
      "spec": {"registries": {"hash": "ab12", "configMap": "stowage-registries-ab12"},
               "exports": [{"fileName": "base.tar", "format": "oci-archive"}]}})j");
  nc["spec"]["images"] = json::array({{{"name", "quay.io/nginx:1.25"}, {"digest", kDigest}}});
  return nc;
}

json registries_with(json registry) {
  return {{"spec", {{"registries", json::array({std::move(registry)})}}}};
}

json with_mirror(json mirror) {
  return registries_with({{"prefix", "quay.io/team"},
                          {"location", "quay.io/team"},
                          {"mirrors", json::array({mirror})}});
}

json images(json list) {
  return {{"spec", {{"images", std::move(list)}}}};
}

json export_file(const std::string& name) {
  return {{"spec", {{"export", {{"fileName", name}}}}}};
}

std::vector<Invalid> invalid_objects() {
  return {
      // RegistryConfig: locations and prefixes.
      {"scheme in location", "RegistryConfig",
       registries_with({{"location", "https://quay.io/team"}}), "spec.registries[0].location",
       "invalid location 'https://quay.io/team': URI schemes are not supported"},
      {"scheme in prefix", "RegistryConfig",
       registries_with({{"prefix", "http://quay.io"}, {"location", "quay.io"}}),
       "spec.registries[0].prefix",
       "invalid location 'http://quay.io': URI schemes are not supported"},
      {"scheme in mirror", "RegistryConfig", with_mirror({{"location", "https://mirror.corp"}}),
       "spec.registries[0].mirrors[0].location",
       "invalid location 'https://mirror.corp': URI schemes are not supported"},
      {"wildcard not *.host", "RegistryConfig",
       registries_with({{"prefix", "example.*.com"}, {"location", "example.com"}}),
       "spec.registries[0].prefix",
       "Wildcarded prefix should be in the format: *.example.com. Current prefix \"example.*.com\" "
       "is incorrectly formatted"},
      {"wildcard with a path", "RegistryConfig",
       registries_with({{"prefix", "*.example.com/foo"}, {"insecure", true}}),
       "spec.registries[0].prefix",
       "Current prefix \"*.example.com/foo\" is incorrectly formatted"},
      {"tag in prefix", "RegistryConfig",
       registries_with({{"prefix", "quay.io/a:1"}, {"location", "quay.io/a"}}),
       "spec.registries[0].prefix",
       "invalid prefix 'quay.io/a:1': a tag or digest is not allowed (it never matches)"},
      {"wildcard location", "RegistryConfig",
       registries_with({{"prefix", "quay.io"}, {"location", "*.quay.io"}}),
       "spec.registries[0].location",
       "invalid location '*.quay.io': wildcards are only allowed as a leading \"*.\" in prefix"},
      {"digest in location", "RegistryConfig",
       registries_with({{"location", "quay.io/a@" + kDigest}}), "spec.registries[0].location",
       "a tag or digest is not allowed (it never matches)"},
      {"wildcard mirror", "RegistryConfig", with_mirror({{"location", "*.mirror.corp"}}),
       "spec.registries[0].mirrors[0].location",
       "invalid mirror location '*.mirror.corp': wildcards are only allowed"},
      {"tag in mirror", "RegistryConfig", with_mirror({{"location", "mirror.corp/team:v1"}}),
       "spec.registries[0].mirrors[0].location",
       "invalid mirror location 'mirror.corp/team:v1': a tag or digest is not allowed"},
      {"empty mirror location", "RegistryConfig", with_mirror({{"location", ""}}),
       "spec.registries[0].mirrors[0].location", "invalid condition: mirror location is unset"},
      {"mirror without location", "RegistryConfig", with_mirror({{"insecure", true}}),
       "spec.registries[0].mirrors[0].location", "Required value"},
      {"neither prefix nor location", "RegistryConfig", registries_with({{"insecure", true}}),
       "spec.registries[0]", "invalid condition: both location and prefix are unset"},
      {"prefix without location", "RegistryConfig", registries_with({{"prefix", "quay.io"}}),
       "spec.registries[0]",
       "invalid condition: location is unset and prefix is not in the format: *.example.com"},
      {"pullFromMirror on a registry", "RegistryConfig",
       registries_with({{"location", "quay.io"}, {"pullFromMirror", "digest-only"}}),
       "spec.registries[0].pullFromMirror",
       "pull-from-mirror must not be set for a non-mirror registry \"quay.io\""},
      {"mirrorByDigestOnly and pullFromMirror", "RegistryConfig",
       registries_with(
           {{"location", "quay.io"},
            {"mirrorByDigestOnly", true},
            {"mirrors", json::array({{{"location", "m.corp"}, {"pullFromMirror", "tag-only"}}})}}),
       "spec.registries[0].mirrors",
       "cannot set mirror usage mirror-by-digest-only for the registry and pull-from-mirror"},
      {"mirrors under a wildcard without location", "RegistryConfig",
       registries_with(
           {{"prefix", "*.corp"}, {"mirrors", json::array({{{"location", "m.corp"}}})}}),
       "spec.registries[0].mirrors", "mirrors are set for a wildcarded prefix without a location"},
      {"bad pullFromMirror", "RegistryConfig",
       with_mirror({{"location", "m.corp"}, {"pullFromMirror", "sometimes"}}),
       "spec.registries[0].mirrors[0].pullFromMirror", "Unsupported value: \"sometimes\""},
      {"duplicate prefix",
       "RegistryConfig",
       {{"spec",
         {{"registries",
           json::array({{{"location", "quay.io/team"}},
                        {{"prefix", "quay.io/team"}, {"location", "q2.io/team"}}})}}}},
       "spec.registries",
       "each prefix may be defined only once"},
      // RegistryConfig: shorthands and globals.
      {"scheme in search registry",
       "RegistryConfig",
       {{"spec", {{"unqualifiedSearchRegistries", {"https://quay.io"}}}}},
       "spec.unqualifiedSearchRegistries[0]",
       "invalid location 'https://quay.io': URI schemes are not supported"},
      {"path in search registry",
       "RegistryConfig",
       {{"spec", {{"unqualifiedSearchRegistries", {"quay.io", "quay.io/team"}}}}},
       "spec.unqualifiedSearchRegistries[1]",
       "Invalid unqualified-search-registries entry \"quay.io/team\""},
      {"scheme in insecure registry",
       "RegistryConfig",
       {{"spec", {{"insecureRegistries", {"http://localhost:5000"}}}}},
       "spec.insecureRegistries[0]",
       "URI schemes are not supported"},
      {"bad wildcard in blocked registry",
       "RegistryConfig",
       {{"spec", {{"blockedRegistries", {"*.example.com:5000"}}}}},
       "spec.blockedRegistries[0]",
       "Current prefix \"*.example.com:5000\" is incorrectly formatted"},
      {"tag in blocked registry",
       "RegistryConfig",
       {{"spec", {{"blockedRegistries", {"docker.io/library/nginx:latest"}}}}},
       "spec.blockedRegistries[0]",
       "a tag or digest is not allowed"},
      {"short-name mode",
       "RegistryConfig",
       {{"spec", {{"shortNameMode", "strict"}}}},
       "spec.shortNameMode",
       "Unsupported value: \"strict\""},
      {"delivery",
       "RegistryConfig",
       {{"spec", {{"delivery", "Ssh"}}}},
       "spec.delivery",
       "Unsupported value: \"Ssh\""},
      {"pools with agent delivery",
       "RegistryConfig",
       {{"spec", {{"delivery", "Agent"}, {"machineConfigPools", {"worker"}}}}},
       "spec.machineConfigPools",
       "Forbidden: only allowed with delivery Auto or MachineConfig"},
      {"priority",
       "RegistryConfig",
       {{"spec", {{"priority", 2000000}}}},
       "spec.priority",
       "should be less than or equal to 1000000"},
      {"selector In without values",
       "RegistryConfig",
       {{"spec",
         {{"nodeSelector",
           {{"matchExpressions", json::array({{{"key", "zone"}, {"operator", "In"}}})}}}}}},
       "spec.nodeSelector.matchExpressions[0]",
       "values must be non-empty with operator In"},
      {"selector operator",
       "RegistryConfig",
       {{"spec",
         {{"nodeSelector",
           {{"matchExpressions", json::array({{{"key", "zone"}, {"operator", "Is"}}})}}}}}},
       "spec.nodeSelector.matchExpressions[0].operator",
       "Unsupported value: \"Is\""},
      // ImageCache.
      {"no images", "ImageCache", images(json::array()), "spec.images",
       "should have at least 1 items"},
      {"duplicate images", "ImageCache",
       images(json::array({{{"name", "a:1"}}, {{"name", "a:1"}}})), "spec.images[1]",
       "Duplicate value"},
      {"scheme in image", "ImageCache", images(json::array({{{"name", "https://quay.io/a:1"}}})),
       "spec.images[0].name", "an image reference has no URL scheme"},
      {"space in image", "ImageCache", images(json::array({{{"name", "quay.io/a b:1"}}})),
       "spec.images[0].name", "must be an image reference such as quay.io/nginx:1.25"},
      {"short digest", "ImageCache", images(json::array({{{"name", "quay.io/a@sha256:abc"}}})),
       "spec.images[0].name", "a digest must be sha256:<64 hex digits>"},
      {"interval format",
       "ImageCache",
       {{"spec", {{"refreshInterval", "1d"}}}},
       "spec.refreshInterval",
       "should match '^([0-9]+[hms])+$'"},
      {"interval too short",
       "ImageCache",
       {{"spec", {{"refreshInterval", "30s"}}}},
       "spec.refreshInterval",
       "must be at least 1m"},
      {"prune",
       "ImageCache",
       {{"spec", {{"prune", "Always"}}}},
       "spec.prune",
       "Unsupported value: \"Always\""},
      {"export path", "ImageCache", export_file("../etc/cron.d/x"), "spec.export.fileName",
       "must be a file name, without \"/\""},
      {"export dotdot", "ImageCache", export_file(".."), "spec.export.fileName",
       "must not be \".\" or \"..\""},
      {"export characters", "ImageCache", export_file("my images.tar"), "spec.export.fileName",
       "may contain only letters, digits and . _ + -"},
      {"export format",
       "ImageCache",
       {{"spec", {{"export", {{"format", "zip"}}}}}},
       "spec.export.format",
       "Unsupported value: \"zip\""},
      {"export without file",
       "ImageCache",
       {{"spec", {{"export", {{"fileName", nullptr}}}}}},
       "spec.export.fileName",
       "Required value"},
      {"duplicate pull secret",
       "ImageCache",
       {{"spec", {{"imagePullSecrets", json::array({{{"name", "s"}}, {{"name", "s"}}})}}}},
       "spec.imagePullSecrets[1]",
       "Duplicate value"},
      {"selector values with Exists",
       "ImageCache",
       {{"spec",
         {{"nodeSelector",
           {{"matchExpressions",
             json::array({{{"key", "gpu"}, {"operator", "Exists"}, {"values", {"true"}}}})}}}}}},
       "spec.nodeSelector.matchExpressions[0]",
       "and empty with Exists or DoesNotExist"},
      // NodeCache.
      {"digest", "NodeCache", images(json::array({{{"name", "a:1"}, {"digest", "latest"}}})),
       "spec.images[0].digest", "should match"},
      {"image without digest", "NodeCache", images(json::array({{{"name", "a:1"}}})),
       "spec.images[0].digest", "Required value"},
      {"hash",
       "NodeCache",
       {{"spec", {{"registries", {{"hash", "../x"}}}}}},
       "spec.registries.hash",
       "should match '^[a-f0-9]+$'"},
      {"node export path",
       "NodeCache",
       {{"spec",
         {{"exports", json::array({{{"fileName", "/etc/passwd"}, {"format", "oci-archive"}}})}}}},
       "spec.exports[0].fileName",
       "must be a file name, without \"/\""},
      {"node export dotdot",
       "NodeCache",
       {{"spec", {{"exports", json::array({{{"fileName", ".."}, {"format", "oci-archive"}}})}}}},
       "spec.exports[0].fileName",
       "must not be \".\" or \"..\""},
      {"node export characters",
       "NodeCache",
       {{"spec",
         {{"exports", json::array({{{"fileName", "a;b.tar"}, {"format", "oci-archive"}}})}}}},
       "spec.exports[0].fileName",
       "may contain only letters, digits and . _ + -"},
      {"export image without digest",
       "NodeCache",
       {{"spec",
         {{"exports", json::array({{{"fileName", "a.tar"},
                                    {"format", "oci-archive"},
                                    {"images", {"quay.io/a:1"}}}})}}}},
       "spec.exports[0].images[0]",
       "should match"},
  };
}

GroupVersionResource resource_of(const std::string& kind) {
  if (kind == "RegistryConfig") return registry_configs_resource();
  if (kind == "ImageCache") return image_caches_resource();
  return node_caches_resource();
}

TEST_F(CrdsIntegration, BaseObjectsAreValid) {
  for (const char* kind : {"RegistryConfig", "ImageCache", "NodeCache"}) {
    const json base = base_object(kind);
    kube::WriteOptions dry_run;
    dry_run.dry_run = true;
    EXPECT_NO_THROW(client_->create(
        {resource_of(kind), base["metadata"].value("namespace", ""), "", ""}, base, dry_run))
        << kind;
  }
}

TEST_F(CrdsIntegration, EachRuleRefusesItsInvalidObject) {
  for (const auto& c : invalid_objects()) {
    SCOPED_TRACE(c.what);
    json object = base_object(c.kind);
    object.merge_patch(c.patch);
    kube::WriteOptions dry_run;
    dry_run.dry_run = true;
    try {
      client_->create({resource_of(c.kind), object["metadata"].value("namespace", ""), "", ""},
                      object, dry_run);
      ADD_FAILURE() << "accepted: " << object.dump();
    } catch (const KubeError& e) {
      EXPECT_EQ(e.http_status(), 422) << e.what();
      EXPECT_THAT(e.what(), HasSubstr(c.message));
      bool named = false;
      for (const auto& cause : e.causes()) named = named || cause.field == c.field;
      EXPECT_TRUE(named) << "no cause names " << c.field << ": " << e.what();
    }
  }
}

TEST_F(CrdsIntegration, StatusRulesApplyToTheStatusSubresource) {
  NodeCache nc;
  nc.metadata.name = "status-rules";
  nc.spec.images = {{"quay.io/nginx:1.25", kDigest, {}, {}}};
  const ResourceRef ref{node_caches_resource(), "", "status-rules", ""};
  json created = client_->create({node_caches_resource(), "", "", ""}, json(nc));
  created["status"] = {
      {"images", json::array({{{"name", "quay.io/nginx:1.25"}, {"state", "Gone"}}})},
      {"exports", json::array({{{"fileName", "a.tar"}, {"sha256", "abc"}}})},
      {"conditions", json::array({{{"type", "Ready"}, {"status", "Yes"}}})}};
  try {
    client_->update_status(ref, created);
    ADD_FAILURE() << "invalid status accepted";
  } catch (const KubeError& e) {
    EXPECT_EQ(e.http_status(), 422);
    EXPECT_THAT(e.what(), HasSubstr("status.images[0].state: Unsupported value: \"Gone\""));
    EXPECT_THAT(e.what(), HasSubstr("status.conditions[0].status: Unsupported value: \"Yes\""));
    EXPECT_THAT(e.what(), HasSubstr("status.conditions[0].reason: Required value"));
    EXPECT_THAT(e.what(), HasSubstr("status.exports[0].sha256"));
  }
}

TEST_F(CrdsIntegration, PrinterColumnsInTheServerSideTable) {
  RegistryConfig rc;
  rc.metadata.name = "printed";
  rc.spec.priority = 7;
  rc.spec.insecure_registries = {"localhost:5000"};
  const ResourceRef rc_ref{registry_configs_resource(), "", "printed", ""};
  json created = client_->create({registry_configs_resource(), "", "", ""}, json(rc));
  RegistryConfig with_status = created.get<RegistryConfig>();
  with_status.status.nodes = {5, 4, 1};
  with_status.status.conditions = {ready(ConditionStatus::kFalse, 1)};
  client_->update_status(rc_ref, json(with_status));
  const json rc_row = table_row(rc_ref);
  EXPECT_EQ(rc_row["Name"], "printed");
  EXPECT_EQ(rc_row["Priority"], 7);
  EXPECT_EQ(rc_row["Delivery"], "Auto");
  EXPECT_EQ(rc_row["Matched"], 5);
  EXPECT_EQ(rc_row["Updated"], 4);
  EXPECT_EQ(rc_row["Failed"], 1);
  EXPECT_EQ(rc_row["Ready"], "False");
  EXPECT_TRUE(rc_row.contains("Age"));

  ImageCache ic;
  ic.metadata.name = "printed";
  ic.metadata.namespace_ = "default";
  ic.spec.images = {{"quay.io/nginx:1.25"}};
  ic.spec.export_ = ImageExport{ExportFormat::kDockerArchive, "printed.tar"};
  const ResourceRef ic_ref{image_caches_resource(), "default", "printed", ""};
  ImageCache ic_created =
      client_->create({image_caches_resource(), "default", "", ""}, json(ic)).get<ImageCache>();
  ic_created.status.nodes = {3, 2, 1, 0};
  ic_created.status.conditions = {ready(ConditionStatus::kTrue, 1)};
  client_->update_status(ic_ref, json(ic_created));
  const json ic_row = table_row(ic_ref);
  EXPECT_EQ(ic_row["Nodes"], 3);
  EXPECT_EQ(ic_row["Ready"], 2);
  EXPECT_EQ(ic_row["Pulling"], 1);
  EXPECT_EQ(ic_row["Failed"], 0);
  EXPECT_EQ(ic_row["Status"], "True");
  EXPECT_EQ(ic_row["Export"], "printed.tar");

  NodeCache nc;
  nc.metadata.name = "printed-node";
  nc.spec.images = {{"quay.io/nginx:1.25", kDigest, {}, {}}, {"busybox:1", kDigest, {}, {}}};
  const ResourceRef nc_ref{node_caches_resource(), "", "printed-node", ""};
  NodeCache nc_created =
      client_->create({node_caches_resource(), "", "", ""}, json(nc)).get<NodeCache>();
  nc_created.status.runtime = RuntimeInfo{"containerd", "1.7.24"};
  nc_created.status.registries = NodeRegistriesStatus{"ab", RegistriesState::kApplied, "", {}};
  nc_created.status.images = {{"quay.io/nginx:1.25", kDigest, ImageState::kPresent, 10, "", {}},
                              {"busybox:1", "", ImageState::kFailed, {}, "401 Unauthorized", {}}};
  nc_created.status.summary = summarize(nc_created.spec, nc_created.status.images);
  nc_created.status.conditions = {ready(ConditionStatus::kFalse, 1)};
  client_->update_status(nc_ref, json(nc_created));
  const json nc_row = table_row(nc_ref);
  EXPECT_EQ(nc_row["Runtime"], "containerd");
  EXPECT_EQ(nc_row["Registries"], "Applied");
  EXPECT_EQ(nc_row["Images"], 2);
  EXPECT_EQ(nc_row["Present"], 1);
  EXPECT_EQ(nc_row["Failed"], 1);
  EXPECT_EQ(nc_row["Ready"], "False");
}

TEST_F(CrdsIntegration, KubectlExplainTeachesNestedFields) {
  const struct {
    const char* field;
    const char* says;
  } cases[] = {
      {"registryconfigs.spec.registries.mirrors.pullFromMirror",
       "digest-only (references by digest)"},
      {"regcfg.spec.registries.prefix", "\"*.host\" for every subdomain of host"},
      {"imagecaches.spec.export.fileName", "no directories (\"/\"), not \".\" or \"..\""},
      {"ic.spec.refreshInterval", "Hours, minutes and seconds"},
      {"nodecaches.status.images.state", "Present, Pulling, Failed or Removed"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.field);
    // A fresh cache: kubectl keeps the OpenAPI index it fetched before the CRDs existed.
    const auto r = plane_->kubectl({"explain", c.field, "--cache-dir=" + fresh_cache_dir()});
    ASSERT_TRUE(r.ok()) << r.describe();
    std::string flat;  // explain wraps long lines
    bool space = false;
    for (const char ch : r.out) {
      const bool blank = ch == ' ' || ch == '\n' || ch == '\t';
      if (blank && !space) flat += ' ';
      if (!blank) flat += ch;
      space = blank;
    }
    EXPECT_THAT(flat, HasSubstr(c.says)) << r.out;
  }
  const auto mirrors = plane_->kubectl({"explain", "regcfg.spec.registries.mirrors.pullFromMirror",
                                        "--cache-dir=" + fresh_cache_dir()});
  EXPECT_THAT(mirrors.out, HasSubstr("ENUM"));
  EXPECT_THAT(mirrors.out, HasSubstr("tag-only"));
}

TEST_F(CrdsIntegration, StatusSubresourceKeepsSpecAndStatusApart) {
  ImageCache ic;
  ic.metadata.name = "apart";
  ic.metadata.namespace_ = "default";
  ic.spec.images = {{"quay.io/nginx:1.25"}};
  ic.status.nodes = {9, 9, 0, 0};  // ignored on create: status comes only through /status
  const ResourceRef ref{image_caches_resource(), "default", "apart", ""};
  ImageCache created =
      client_->create({image_caches_resource(), "default", "", ""}, json(ic)).get<ImageCache>();
  EXPECT_EQ(created.status, ImageCacheStatus{});
  EXPECT_EQ(created.metadata.generation, 1);

  // A status write changes only status.
  ImageCache status_write = created;
  status_write.status.nodes = {3, 1, 2, 0};
  status_write.status.observed_generation = 1;
  status_write.spec.images = {{"quay.io/other:1"}};  // ignored by /status
  const ImageCache after_status = client_->update_status(ref, json(status_write)).get<ImageCache>();
  EXPECT_EQ(after_status.status.nodes, (ImageCacheNodes{3, 1, 2, 0}));
  EXPECT_EQ(after_status.spec, created.spec);
  EXPECT_EQ(after_status.metadata.generation, 1);

  // A spec write changes only spec, and bumps the generation.
  ImageCache spec_write = after_status;
  spec_write.spec.images.push_back({"busybox:1"});
  spec_write.status.nodes = {0, 0, 0, 0};  // ignored by the main resource
  const ImageCache after_spec = client_->update(ref, json(spec_write)).get<ImageCache>();
  EXPECT_EQ(after_spec.spec.images.size(), 2u);
  EXPECT_EQ(after_spec.status, after_status.status);
  EXPECT_EQ(after_spec.metadata.generation, 2);
}

TEST_F(CrdsIntegration, ApiObjectsSurviveTheServer) {
  NodeCache nc;
  nc.metadata.name = "worker-rt";
  nc.metadata.labels = {{"stowage.io/node", "worker-rt"}};
  nc.spec.registries = NodeRegistries{"ab12", "stowage-registries-ab12"};
  nc.spec.images = {
      {"quay.io/nginx:1.25", kDigest, {{"stowage-pull-default-corp"}}, {"default/base"}}};
  nc.spec.exports = {
      {"base.tar", ExportFormat::kOciArchive, {"quay.io/nginx@" + kDigest}, "default/base"}};
  nc.spec.prune.policy = PrunePolicy::kNever;
  const ResourceRef ref{node_caches_resource(), "", "worker-rt", ""};
  NodeCache stored =
      client_->create({node_caches_resource(), "", "", ""}, json(nc)).get<NodeCache>();
  EXPECT_EQ(stored.spec, nc.spec);
  EXPECT_EQ(stored.metadata.labels, nc.metadata.labels);
  EXPECT_FALSE(stored.metadata.uid.empty());
  ASSERT_TRUE(stored.metadata.creation_timestamp);

  // The agent's report, through server-side apply of the status, as the agent writes it.
  NodeCacheStatus report;
  report.observed_generation = 1;
  report.conditions = {ready(ConditionStatus::kTrue, 1)};
  report.registries = NodeRegistriesStatus{"ab12", RegistriesState::kApplied, "",
                                           Time(std::chrono::seconds(1'700'000'100))};
  report.images = {{"quay.io/nginx:1.25", kDigest, ImageState::kPresent, 1 << 20, "",
                    Time(std::chrono::seconds(1'700'000'200))}};
  report.exports = {{"base.tar", ExportFormat::kOciArchive, 4096, std::string(64, 'c'),
                     ExportState::kWritten, ""}};
  report.runtime = RuntimeInfo{"containerd", "1.7.24"};
  report.store = StoreUsage{1 << 20, std::int64_t{1} << 40};
  report.summary = summarize(nc.spec, report.images);
  const json intent = {{"apiVersion", kApiVersion},
                       {"kind", kNodeCacheKind},
                       {"metadata", {{"name", "worker-rt"}}},
                       {"status", node_cache_status_to_json(report)}};
  kube::PatchOptions apply;
  apply.field_manager = "stowage-agent";
  apply.force = true;
  client_->apply({node_caches_resource(), "", "worker-rt", "status"}, intent, apply);
  const NodeCache back = client_->get(ref).get<NodeCache>();
  EXPECT_EQ(back.status, report);
  EXPECT_EQ(back.spec, nc.spec);

  // An ImageCache with only images: the server's defaults are libs/api's.
  const json minimal = {{"apiVersion", kApiVersion},
                        {"kind", kImageCacheKind},
                        {"metadata", {{"name", "defaults"}, {"namespace", "default"}}},
                        {"spec",
                         {{"images", json::array({{{"name", "quay.io/nginx:1.25"}}})},
                          {"export", {{"fileName", "d.tar"}}}}}};
  const json server = client_->create({image_caches_resource(), "default", "", ""}, minimal);
  EXPECT_EQ(server["spec"]["refreshInterval"], "6h");
  EXPECT_EQ(server["spec"]["prune"], "OnRemoval");
  EXPECT_EQ(server["spec"]["export"]["format"], "docker-archive");
  EXPECT_EQ(server.get<ImageCache>().spec, minimal.get<ImageCache>().spec);

  const json rc_server = client_->create({registry_configs_resource(), "", "", ""},
                                         {{"apiVersion", kApiVersion},
                                          {"kind", kRegistryConfigKind},
                                          {"metadata", {{"name", "defaults"}}},
                                          {"spec", json::object()}});
  EXPECT_EQ(rc_server["spec"]["delivery"], registries::RegistryConfigSpec{}.delivery);
  EXPECT_EQ(rc_server.get<RegistryConfig>().spec, registries::RegistryConfigSpec{});
}

}  // namespace
}  // namespace stowage::api
