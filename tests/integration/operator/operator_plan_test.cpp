// The Operator (operator/operator.h) writes exactly what plan_cluster() (operator/planner.h)
// promises, against a real kube-apiserver with the CRDs and a real docker-registry behind Bearer
// token auth (anonymous pulls allowed for the public repositories only). Three Nodes with
// different labels, two RegistryConfigs whose merge depends on their priorities, and two
// ImageCaches (one public, one private with a pull Secret): the test plans the cluster itself from
// the objects it reads back (with the digests and sizes it seeded) and compares every NodeCache
// spec, every registries ConfigMap and every status with that plan. Relabelling a node, changing a
// priority, changing an ImageCache's images and re-pushing a tag each re-plan only the nodes
// concerned (the other NodeCaches keep their resourceVersion); the re-pushed tag is picked up once
// the ImageCache's refresh interval is over (the operator's clock is moved past it), not before.
// Last, the test writes NodeCache statuses as the agents do (server-side apply of the status
// subresource as "stowage-agent") and checks how they fold into the RegistryConfig and ImageCache
// statuses.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "api/image_cache.h"
#include "api/meta.h"
#include "api/node_cache.h"
#include "api/registries_config_map.h"
#include "api/registry_config.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/metrics.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "oci/auth.h"
#include "oci/registry_client.h"
#include "operator/operator.h"
#include "operator/planner.h"
#include "support/image_seed.h"
#include "support/kube_fixture.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace stowage::op {
namespace {

using kube::Client;
using kube::GroupVersionResource;
using nlohmann::json;
using test::BinaryLookup;
using test::ControlPlane;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::chrono::seconds kDeadline{30};
constexpr std::chrono::seconds kRefreshInterval{3};
const std::string kOperatorNs = "stowage-system";
const std::string kTeam = "team";
const std::string kAgentManager = "stowage-agent";
const std::string kPullSecret = "corp-pull";
const GroupVersionResource kNodes{"", "v1", "nodes"};
const GroupVersionResource kConfigMaps{"", "v1", "configmaps"};
const GroupVersionResource kSecrets{"", "v1", "secrets"};
const GroupVersionResource kNamespaces{"", "v1", "namespaces"};

test::ImageSpec labelled(std::map<std::string, std::string> labels) {
  test::ImageSpec spec;
  spec.labels = std::move(labels);
  return spec;
}

// What a pull of repository:tag downloads, summed from its manifest as the registry serves it
// (config and layers, compressed): the size the operator is expected to measure.
std::int64_t pull_size(const test::RegistryFixture& registry, const std::string& repository,
                       const std::string& tag) {
  http::Client http;
  oci::RegistryClientOptions options;
  options.registry = registry.host();
  options.plain_http = true;
  options.credentials = oci::Credentials{registry.username(), registry.password(), ""};
  oci::RegistryClient client(http, real_clock(), options);
  const json manifest = json::parse(client.get_manifest(repository, tag).bytes);
  std::int64_t total = manifest["config"].value("size", std::int64_t{0});
  for (const auto& layer : manifest["layers"]) total += layer.value("size", std::int64_t{0});
  return total;
}

struct SuiteState {
  BinaryLookup binaries;
  std::optional<std::string> registry_problem;
  std::unique_ptr<ControlPlane> plane;
  std::unique_ptr<test::RegistryFixture> registry;
  std::string public_app;   // digest of public/app:1.0
  std::string private_app;  // digest of private/app:1.0 (first push)
  std::string private_tool;
  std::map<std::string, std::int64_t> sizes;  // by repository, of the digests above
  std::string error;
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

// List items come without apiVersion and kind; the api decoders check them.
template <typename T>
std::vector<T> decode_items(const json& list, std::string_view kind) {
  std::vector<T> out;
  for (json item : list.value("items", json::array())) {
    item["apiVersion"] = std::string(api::kApiVersion);
    item["kind"] = std::string(kind);
    out.push_back(item.get<T>());
  }
  return out;
}

std::map<std::string, std::string> string_map(const json& object) {
  std::map<std::string, std::string> out;
  if (!object.is_object()) return out;
  for (const auto& [k, v] : object.items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

const api::Condition* condition(const std::vector<api::Condition>& conditions,
                                std::string_view type) {
  return api::find_condition(conditions, type);
}

// Real time plus an offset the test moves forward, so the operator sees an ImageCache's refresh
// interval (at least 1m by the CRD) pass without the test waiting it out. Sleepers look at the
// time every few milliseconds, so a jump wakes them.
class JumpingClock final : public Clock {
 public:
  TimePoint now() const override { return real_clock().now() + offset(); }
  WallTime wall_now() const override {
    return real_clock().wall_now() +
           std::chrono::duration_cast<std::chrono::system_clock::duration>(offset());
  }
  bool sleep_until(TimePoint deadline, std::stop_token stop) override {
    while (now() < deadline) {
      const Duration left = deadline - now();
      const Duration step = std::min<Duration>(left, std::chrono::milliseconds(20));
      if (!real_clock().sleep_until(real_clock().now() + step, stop)) return false;
    }
    return !stop.stop_requested();
  }
  void jump(Duration d) { offset_ns_ += d.count(); }

 private:
  Duration offset() const { return Duration(offset_ns_.load()); }
  std::atomic<std::int64_t> offset_ns_{0};
};

class OperatorPlan : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite().binaries = ControlPlane::find_binaries();
    if (!suite().binaries.dir) return;
    suite().registry_problem = test::RegistryFixture::unavailable_reason();
    if (!suite().registry_problem) suite().registry_problem = test::seed_unavailable_reason();
    if (suite().registry_problem) return;
    try {
      test::ControlPlaneOptions options;
      options.with_controller_manager = false;  // no garbage collection is relied upon
      suite().plane = std::make_unique<ControlPlane>(options);
      suite().error = test::install_stowage_crds(*suite().plane);
      // One registry for both kinds of image: anonymous clients may pull public/* only.
      test::RegistryOptions registry;
      registry.auth = test::RegistryAuth::kToken;
      registry.token.anonymous_repository_actions = {{"public/app", {"pull"}},
                                                     {"public/other", {"pull"}}};
      suite().registry = std::make_unique<test::RegistryFixture>(registry);
      suite().public_app =
          suite().registry->seed_image("public/app", "1.0", labelled({{"image", "public-app"}}));
      suite().private_app =
          suite().registry->seed_image("private/app", "1.0", labelled({{"image", "private-app"}}));
      suite().private_tool = suite().registry->seed_image("private/tool", "1.0",
                                                          labelled({{"image", "private-tool"}}));
      for (const std::string repository : {"public/app", "private/app", "private/tool"}) {
        suite().sizes[repository] = pull_size(*suite().registry, repository, "1.0");
      }
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }
  static void TearDownTestSuite() {
    suite().registry.reset();
    suite().plane.reset();
  }

  void SetUp() override {
    const BinaryLookup& binaries = suite().binaries;
    if (!binaries.dir) {
      if (binaries.required) GTEST_FAIL() << binaries.problem;
      GTEST_SKIP() << binaries.problem;
    }
    if (suite().registry_problem) GTEST_SKIP() << *suite().registry_problem;
    ASSERT_THAT(suite().error, IsEmpty());
    client_ = std::make_unique<Client>(
        kube::rest_config_from_kubeconfig(kube::load_kubeconfig({suite().plane->kubeconfig_path()}),
                                          "", real_clock()),
        http_, real_clock());
    for (const std::string& ns : {kOperatorNs, kTeam}) {
      if (!client_->try_get({kNamespaces, "", ns, ""})) {
        client_->create(
            {kNamespaces, "", "", ""},
            {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}});
      }
    }
  }

  std::string ref(const std::string& repo_tag) const {
    return suite().registry->host() + "/" + repo_tag;
  }

  void create_node(const std::string& name, const json& labels) {
    client_->create({kNodes, "", "", ""}, {{"apiVersion", "v1"},
                                           {"kind", "Node"},
                                           {"metadata", {{"name", name}, {"labels", labels}}}});
  }

  // What the cluster holds now, as the operator's PlannerInput: nodes as the metadata informer
  // sees them, the stowage objects decoded with libs/api, and what the test seeded.
  PlannerInput observed_input() {
    PlannerInput in;
    for (const json& node : client_->list({kNodes, "", "", ""}).value("items", json::array())) {
      PlannerNode n;
      n.name = node["metadata"].value("name", "");
      n.uid = node["metadata"].value("uid", "");
      for (const auto& [k, v] : string_map(node["metadata"].value("labels", json::object()))) {
        n.labels[k] = v;
      }
      in.nodes.push_back(std::move(n));
    }
    in.registry_configs = decode_items<api::RegistryConfig>(
        client_->list({api::registry_configs_resource(), "", "", ""}), api::kRegistryConfigKind);
    in.image_caches = decode_items<api::ImageCache>(
        client_->list({api::image_caches_resource(), "", "", ""}), api::kImageCacheKind);
    for (const api::NodeCache& nc : decode_items<api::NodeCache>(
             client_->list({api::node_caches_resource(), "", "", ""}), api::kNodeCacheKind)) {
      in.node_caches.push_back(current_node_cache(nc));
    }
    for (const auto& [name, cm] : config_maps()) in.config_maps.push_back(name);
    in.digests = digests_;
    in.sizes = sizes_;
    in.max_unavailable = MaxUnavailable::parse("100%");
    in.now = clock_.wall_now();
    return in;
  }

  // The operator's registries ConfigMaps, by name.
  std::map<std::string, json> config_maps() {
    std::map<std::string, json> out;
    kube::ListOptions options;
    options.label_selector = std::string(kManagedByLabel) + "=" + std::string(kManagedByValue);
    const json list = client_->list({kConfigMaps, kOperatorNs, "", ""}, options);
    for (const json& cm : list.value("items", json::array())) {
      const std::string name = cm["metadata"].value("name", "");
      if (api::hash_from_registries_config_map_name(name)) out[name] = cm;
    }
    return out;
  }

  // How the cluster differs from the plan made of it ("" when it is exactly as planned): NodeCache
  // specs and owners, registries ConfigMaps (none missing, none extra, same data, immutable), and
  // RegistryConfig and ImageCache statuses. `plan_out` receives the plan.
  std::string plan_mismatch(Plan* plan_out = nullptr) {
    const PlannerInput in = observed_input();
    const Plan plan = plan_cluster(in);
    if (plan_out != nullptr) *plan_out = plan;
    std::vector<std::string> problems;
    std::map<std::string, const CurrentNodeCache*> current;
    for (const auto& nc : in.node_caches) current[nc.metadata.name] = &nc;
    for (const PlannedNodeCache& planned : plan.node_caches) {
      const auto it = current.find(planned.name);
      if (it == current.end()) {
        problems.push_back(fmt::format("NodeCache {} missing", planned.name));
        continue;
      }
      if (*it->second->spec != *planned.spec) {
        problems.push_back(fmt::format("NodeCache {} spec {} != planned {}", planned.name,
                                       api::node_cache_spec_to_json(*it->second->spec).dump(),
                                       api::node_cache_spec_to_json(*planned.spec).dump()));
      }
      if (it->second->metadata.owner_references != planned.owner_references) {
        problems.push_back(fmt::format("NodeCache {} owners differ from the plan", planned.name));
      }
    }
    if (current.size() != plan.node_caches.size()) {
      problems.push_back(
          fmt::format("{} NodeCaches for {} planned", current.size(), plan.node_caches.size()));
    }
    std::map<std::string, json> cms = config_maps();
    for (const PlannedConfigMap& planned : plan.config_maps) {
      const auto it = cms.find(planned.name);
      if (it == cms.end()) {
        problems.push_back(fmt::format("ConfigMap {} missing", planned.name));
        continue;
      }
      if (string_map(it->second.value("data", json::object())) != planned.data) {
        problems.push_back(fmt::format("ConfigMap {} data {} != planned {}", planned.name,
                                       it->second.value("data", json::object()).dump(),
                                       json(planned.data).dump()));
      }
      if (!it->second.value("immutable", false)) {
        problems.push_back(fmt::format("ConfigMap {} is not immutable", planned.name));
      }
      cms.erase(it);
    }
    for (const auto& [name, cm] : cms) {
      problems.push_back(fmt::format("ConfigMap {} is not planned", name));
    }
    for (const PlannedRegistryConfigStatus& st : plan.registry_configs) {
      if (st.changed) {
        problems.push_back(fmt::format("RegistryConfig {} status differs from planned {}", st.name,
                                       api::registry_config_status_to_json(st.status).dump()));
      }
    }
    for (const PlannedImageCacheStatus& st : plan.image_caches) {
      if (st.changed) {
        problems.push_back(fmt::format("ImageCache {}/{} status differs from planned {}",
                                       st.namespace_, st.name,
                                       api::image_cache_status_to_json(st.status).dump()));
      }
    }
    std::string out;
    for (const auto& p : problems) out += p + "\n";
    return out;
  }

  // resourceVersion of every NodeCache, by name.
  std::map<std::string, std::string> node_cache_versions() {
    std::map<std::string, std::string> out;
    for (const json& nc :
         client_->list({api::node_caches_resource(), "", "", ""}).value("items", json::array())) {
      out[nc["metadata"].value("name", "")] = nc["metadata"].value("resourceVersion", "");
    }
    return out;
  }

  api::NodeCache node_cache(const std::string& name) {
    return client_->get({api::node_caches_resource(), "", name, ""}).get<api::NodeCache>();
  }

  const api::NodeImage* planned_image(const api::NodeCacheSpec& spec, const std::string& name) {
    for (const auto& image : spec.images) {
      if (image.name == name) return &image;
    }
    return nullptr;
  }

  // The digest node's NodeCache spec holds for image `name`; "" when it has no such image.
  std::string planned_digest(const std::string& node, const std::string& name) {
    const api::NodeCache nc = node_cache(node);
    const api::NodeImage* image = planned_image(nc.spec, name);
    return image == nullptr ? "" : image->digest;
  }

  // Waits until the cluster is as planned and every node of `changed` got a new NodeCache
  // resourceVersion since `before`; then checks the others kept theirs.
  void converge_changing_only(const std::string& what,
                              const std::map<std::string, std::string>& before,
                              const std::set<std::string>& changed) {
    const bool converged = test::wait_for(
        [&] {
          const auto now = node_cache_versions();
          for (const auto& node : changed) {
            const auto b = before.find(node);
            const auto n = now.find(node);
            if (n == now.end() || (b != before.end() && b->second == n->second)) return false;
          }
          return plan_mismatch().empty();
        },
        kDeadline);
    EXPECT_TRUE(converged) << "never as planned after " << what << ":\n" << plan_mismatch();
    const auto after = node_cache_versions();
    for (const auto& [node, version] : before) {
      ASSERT_TRUE(after.contains(node)) << node;
      if (changed.contains(node)) {
        EXPECT_NE(after.at(node), version) << what << ": " << node << " should be re-planned";
      } else {
        EXPECT_EQ(after.at(node), version) << what << ": " << node << " should be left alone";
      }
    }
  }

  // Writes a NodeCache status as the node's agent does: every planned image Present at its
  // planned digest (or Failed, for `failed`), the registries rendering applied.
  void report_as_agent(const std::string& node, const std::string& failed = "") {
    const api::NodeCache nc = node_cache(node);
    const api::Time now = std::chrono::system_clock::now();
    api::NodeCacheStatus status;
    status.observed_generation = nc.metadata.generation;
    if (nc.spec.registries) {
      status.registries = api::NodeRegistriesStatus{.applied_hash = nc.spec.registries->hash,
                                                    .state = api::RegistriesState::kApplied,
                                                    .message = "",
                                                    .last_transition_time = now};
    }
    for (const auto& image : nc.spec.images) {
      const bool fails = image.name == failed;
      status.images.push_back(api::NodeImageStatus{
          .name = image.name,
          .digest = image.digest,
          .state = fails ? api::ImageState::kFailed : api::ImageState::kPresent,
          .size_bytes = fails ? std::nullopt : std::optional<std::int64_t>(1024),
          .message = fails ? "pull refused by the registry (test)" : "",
          .last_transition_time = now});
    }
    status.summary = api::summarize(nc.spec, status.images);
    const json intent = {{"apiVersion", std::string(api::kApiVersion)},
                         {"kind", std::string(api::kNodeCacheKind)},
                         {"metadata", {{"name", node}}},
                         {"status", api::node_cache_status_to_json(status)}};
    client_->apply({api::node_caches_resource(), "", node, "status"}, intent,
                   {.field_manager = kAgentManager, .force = true, .dry_run = false});
  }

  // A HEAD of `repository`:1.0 without credentials; the error code, or nullopt when it answers.
  std::optional<Code> anonymous_head(const std::string& repository) {
    oci::RegistryClientOptions options;
    options.registry = suite().registry->host();
    options.plain_http = true;
    options.retry.max_attempts = 1;
    try {
      oci::RegistryClient registry(http_, real_clock(), options);
      registry.head_manifest(repository, "1.0");
      return std::nullopt;
    } catch (const Error& e) {
      return e.code();
    }
  }

  http::Client http_;
  std::unique_ptr<Client> client_;
  JumpingClock clock_;                          // the operator's
  std::map<std::string, std::string> digests_;  // what the test seeded, by tag reference
  std::map<std::string, std::int64_t> sizes_;   // their pull sizes, by tag reference
};

TEST_F(OperatorPlan, WritesThePlanReplansOnlyAffectedNodesAndFoldsAgentStatus) {
  test::RegistryFixture& registry = *suite().registry;
  const std::string public_app = ref("public/app:1.0");
  const std::string private_app = ref("private/app:1.0");
  const std::string private_tool = ref("private/tool:1.0");
  digests_ = {{public_app, suite().public_app},
              {private_app, suite().private_app},
              {private_tool, suite().private_tool}};
  sizes_ = {{public_app, suite().sizes.at("public/app")},
            {private_app, suite().sizes.at("private/app")},
            {private_tool, suite().sizes.at("private/tool")}};

  // The private repositories refuse anonymous clients: only the pull Secret resolves them.
  EXPECT_EQ(anonymous_head("public/app"), std::nullopt);
  const std::optional<Code> refused = anonymous_head("private/app");
  ASSERT_TRUE(refused.has_value());
  EXPECT_TRUE(*refused == Code::kUnauthenticated || *refused == Code::kPermissionDenied)
      << code_name(*refused);

  create_node("node-a", {{"zone", "east"}, {"tier", "gold"}, {"cache", "private"}});
  create_node("node-b", {{"zone", "east"}});
  create_node("node-c", {{"zone", "west"}, {"cache", "private"}});
  // Both RegistryConfigs configure the same prefix; on node-a (both match) the higher priority
  // wins, so the priority decides node-a's rendering only. gold also blocks a registry, so node-a
  // never shares node-b's rendering.
  const auto registry_config = [](const std::string& name, const std::string& selector_key,
                                  const std::string& selector_value, int priority,
                                  const std::string& mirror) {
    return json{{"apiVersion", "stowage.io/v1alpha1"},
                {"kind", "RegistryConfig"},
                {"metadata", {{"name", name}}},
                {"spec",
                 {{"nodeSelector", {{"matchLabels", {{selector_key, selector_value}}}}},
                  {"priority", priority},
                  {"registries",
                   {{{"location", "docker.io/library"}, {"mirrors", {{{"location", mirror}}}}}}}}}};
  };
  client_->create({api::registry_configs_resource(), "", "", ""},
                  registry_config("east", "zone", "east", 10, "mirror-east.example/library"));
  json gold = registry_config("gold", "tier", "gold", 5, "mirror-gold.example/library");
  gold["spec"]["blockedRegistries"] = {"blocked-gold.example"};
  client_->create({api::registry_configs_resource(), "", "", ""}, gold);
  const std::string payload =
      json{{"auths", {{registry.host(), {{"auth", oci::base64_encode(registry.credentials())}}}}}}
          .dump();
  client_->create({kSecrets, kTeam, "", ""},
                  {{"apiVersion", "v1"},
                   {"kind", "Secret"},
                   {"metadata", {{"name", kPullSecret}, {"namespace", kTeam}}},
                   {"type", "kubernetes.io/dockerconfigjson"},
                   {"data", {{".dockerconfigjson", oci::base64_encode(payload)}}}});
  // public: no refreshInterval (the CRD's default applies); private: 10m.
  client_->create({api::image_caches_resource(), kTeam, "", ""},
                  {{"apiVersion", "stowage.io/v1alpha1"},
                   {"kind", "ImageCache"},
                   {"metadata", {{"name", "public"}, {"namespace", kTeam}}},
                   {"spec",
                    {{"nodeSelector", {{"matchLabels", {{"zone", "east"}}}}},
                     {"images", {{{"name", public_app}}}}}}});
  client_->create({api::image_caches_resource(), kTeam, "", ""},
                  {{"apiVersion", "stowage.io/v1alpha1"},
                   {"kind", "ImageCache"},
                   {"metadata", {{"name", "private"}, {"namespace", kTeam}}},
                   {"spec",
                    {{"nodeSelector", {{"matchLabels", {{"cache", "private"}}}}},
                     {"imagePullSecrets", {{{"name", kPullSecret}}}},
                     {"refreshInterval", "10m"},
                     {"images", {{{"name", private_app}}}}}}});

  MetricsRegistry metrics;
  OperatorOptions options;
  options.namespace_ = kOperatorNs;
  options.max_unavailable = MaxUnavailable::parse("100%");
  options.leader_elect = false;
  options.identity = "plan-test";
  options.refresh_interval = kRefreshInterval;
  options.unresolved_retry = std::chrono::seconds(1);
  options.insecure_registries = {registry.host()};  // the fixture serves plain HTTP
  auto op = std::make_unique<Operator>(options, *client_, clock_, http_, metrics);
  std::jthread runner([&op](std::stop_token stop) { op->run(stop); });

  // 1. Everything as planned.
  {
    SCOPED_TRACE("initial plan");
    EXPECT_TRUE(test::wait_for([&] { return plan_mismatch().empty(); }, kDeadline))
        << plan_mismatch();
    Plan plan;
    EXPECT_EQ(plan_mismatch(&plan), "");
    ASSERT_EQ(plan.node_caches.size(), 3u);
    // The plan itself is the one intended: the digests seeded, the copied Secret for the
    // private image, node-a and node-b on distinct renderings, node-c on the empty one.
    const api::NodeCache a = node_cache("node-a");
    const api::NodeCache b = node_cache("node-b");
    const api::NodeCache c = node_cache("node-c");
    ASSERT_TRUE(planned_image(a.spec, public_app) && planned_image(a.spec, private_app));
    EXPECT_EQ(planned_image(a.spec, public_app)->digest, suite().public_app);
    EXPECT_EQ(planned_image(a.spec, public_app)->size_bytes, suite().sizes.at("public/app"));
    EXPECT_EQ(planned_image(a.spec, private_app)->digest, suite().private_app);
    EXPECT_EQ(planned_image(a.spec, private_app)->pull_secrets,
              (std::vector<api::LocalObjectReference>{{"stowage-pull-team.corp-pull"}}));
    EXPECT_TRUE(planned_image(a.spec, public_app)->pull_secrets.empty());
    EXPECT_EQ(b.spec.images.size(), 1u);
    ASSERT_EQ(c.spec.images.size(), 1u);
    EXPECT_EQ(c.spec.images[0].name, private_app);
    ASSERT_TRUE(a.spec.registries && b.spec.registries && c.spec.registries);
    EXPECT_NE(a.spec.registries->hash, b.spec.registries->hash);
    EXPECT_NE(b.spec.registries->hash, c.spec.registries->hash);
    const auto cms = config_maps();
    ASSERT_TRUE(cms.contains(a.spec.registries->config_map));
    EXPECT_THAT(cms.at(a.spec.registries->config_map)["data"].dump(),
                HasSubstr("mirror-east.example"));
    EXPECT_TRUE(client_->try_get({kSecrets, kOperatorNs, "stowage-pull-team.corp-pull", ""}));
  }

  // 2. node-c moves to zone east: a new rendering and the public image, for node-c alone.
  {
    SCOPED_TRACE("relabel node-c");
    const auto before = node_cache_versions();
    client_->patch({kNodes, "", "node-c", ""}, kube::PatchType::kMerge,
                   {{"metadata", {{"labels", {{"zone", "east"}}}}}});
    converge_changing_only("relabelling node-c", before, {"node-c"});
    const api::NodeCache c = node_cache("node-c");
    EXPECT_TRUE(planned_image(c.spec, public_app));
    ASSERT_TRUE(c.spec.registries);
    EXPECT_EQ(c.spec.registries->hash, node_cache("node-b").spec.registries->hash);
  }

  // 3. gold outranks east: the merge changes on node-a only (the only node both match).
  {
    SCOPED_TRACE("priority");
    const auto before = node_cache_versions();
    const std::string old_hash = node_cache("node-a").spec.registries->hash;
    client_->patch({api::registry_configs_resource(), "", "gold", ""}, kube::PatchType::kMerge,
                   {{"spec", {{"priority", 20}}}});
    converge_changing_only("raising gold's priority", before, {"node-a"});
    const api::NodeCache a = node_cache("node-a");
    ASSERT_TRUE(a.spec.registries);
    EXPECT_NE(a.spec.registries->hash, old_hash);
    const auto cms = config_maps();
    EXPECT_FALSE(cms.contains(api::registries_config_map_name(old_hash)));
    ASSERT_TRUE(cms.contains(a.spec.registries->config_map));
    EXPECT_THAT(cms.at(a.spec.registries->config_map)["data"].dump(),
                HasSubstr("mirror-gold.example"));
  }

  // 4. The private ImageCache gains an image: its nodes (node-a, node-c) only.
  {
    SCOPED_TRACE("image list");
    const auto before = node_cache_versions();
    client_->patch({api::image_caches_resource(), kTeam, "private", ""}, kube::PatchType::kMerge,
                   {{"spec", {{"images", {{{"name", private_app}}, {{"name", private_tool}}}}}}});
    converge_changing_only("adding an image to ImageCache private", before, {"node-a", "node-c"});
    EXPECT_EQ(planned_digest("node-c", private_tool), suite().private_tool);
    EXPECT_FALSE(planned_image(node_cache("node-b").spec, private_tool));
  }

  // 5. private/app:1.0 is pushed again with other content. The operator re-plans every few
  // seconds but resolves the tag again only once the ImageCache's refreshInterval (10m) is over:
  // then, with no event to prompt it, the nodes wanting it get the new digest.
  std::string repushed;
  {
    SCOPED_TRACE("re-push");
    const auto before = node_cache_versions();
    repushed = registry.seed_image("private/app", "1.0",
                                   labelled({{"image", "private-app"}, {"revision", "2"}}));
    ASSERT_NE(repushed, suite().private_app);
    const std::int64_t reconciles = op->stats().reconciles;
    const std::int64_t resolutions = op->stats().resolutions;
    EXPECT_TRUE(test::wait_for([&] { return op->stats().reconciles >= reconciles + 2; }, kDeadline))
        << "the operator does not re-plan every " << kRefreshInterval.count() << "s";
    EXPECT_EQ(op->stats().resolutions, resolutions) << "resolved again before refreshInterval";
    EXPECT_EQ(plan_mismatch(), "") << "the old digest is kept until refreshInterval is over";
    EXPECT_EQ(node_cache_versions(), before);
    digests_[private_app] = repushed;
    sizes_[private_app] = pull_size(registry, "private/app", "1.0");
    clock_.jump(std::chrono::minutes(10) + std::chrono::seconds(1));
    converge_changing_only("re-pushing private/app:1.0", before, {"node-a", "node-c"});
    EXPECT_EQ(planned_digest("node-a", private_app), repushed);
    EXPECT_EQ(planned_digest("node-c", private_app), repushed);
    EXPECT_GT(op->stats().resolutions, resolutions);
    const api::ImageCacheStatus st = api::image_cache_status_from_json(
        client_->get({api::image_caches_resource(), kTeam, "private", ""})["status"]);
    ASSERT_EQ(st.images.size(), 2u);
    EXPECT_EQ(st.images[0].name, private_app);
    EXPECT_EQ(st.images[0].digest, repushed);
  }

  // 6. The agents report: everything applied and present, except private/tool on node-c.
  {
    SCOPED_TRACE("agent statuses");
    report_as_agent("node-a");
    report_as_agent("node-b");
    report_as_agent("node-c", private_tool);
    const auto status_of = [&](const GroupVersionResource& gvr, const std::string& ns,
                               const std::string& name) {
      return client_->get({gvr, ns, name, ""});
    };
    const auto folded = [&] {
      const json priv = status_of(api::image_caches_resource(), kTeam, "private");
      const json pub = status_of(api::image_caches_resource(), kTeam, "public");
      const json east = status_of(api::registry_configs_resource(), "", "east");
      return priv.value("/status/nodes/failed"_json_pointer, 0) == 1 &&
             pub.value("/status/nodes/ready"_json_pointer, 0) == 3 &&
             east.value("/status/nodes/updated"_json_pointer, 0) == 3 && plan_mismatch().empty();
    };
    EXPECT_TRUE(test::wait_for(folded, kDeadline)) << plan_mismatch();
    EXPECT_EQ(plan_mismatch(), "");
    // The agents' writes are the agents': the operator manages no NodeCache status field.
    for (const std::string node : {"node-a", "node-b", "node-c"}) {
      const json nc = client_->get({api::node_caches_resource(), "", node, ""});
      for (const auto& entry : nc["metadata"]["managedFields"]) {
        if (entry.value("subresource", "") == "status") {
          EXPECT_EQ(entry.value("manager", ""), kAgentManager) << node;
        }
      }
    }

    const std::string public_hash = node_cache("node-b").spec.registries->hash;
    const std::string gold_hash = node_cache("node-a").spec.registries->hash;
    const auto registry_config_expect = [&](const std::string& name, int matched,
                                            const std::string& hash) {
      SCOPED_TRACE("RegistryConfig " + name);
      const api::RegistryConfig rc =
          status_of(api::registry_configs_resource(), "", name).get<api::RegistryConfig>();
      EXPECT_EQ(rc.status.observed_generation, rc.metadata.generation);
      EXPECT_EQ(rc.status.nodes.matched, matched);
      EXPECT_EQ(rc.status.nodes.updated, matched);
      EXPECT_EQ(rc.status.nodes.failed, 0);
      EXPECT_TRUE(rc.status.failures.empty());
      EXPECT_EQ(rc.status.rendered_hash, hash);
      for (const auto& [type, status, reason] :
           std::vector<std::tuple<std::string_view, api::ConditionStatus, std::string_view>>{
               {api::kConditionReady, api::ConditionStatus::kTrue, "Applied"},
               {api::kConditionDegraded, api::ConditionStatus::kFalse, kReasonAsExpected},
               {api::kConditionProgressing, api::ConditionStatus::kFalse, kReasonComplete}}) {
        const api::Condition* c = condition(rc.status.conditions, type);
        ASSERT_NE(c, nullptr) << type;
        EXPECT_EQ(c->status, status) << type;
        EXPECT_EQ(c->reason, reason) << type;
        EXPECT_EQ(c->observed_generation, rc.metadata.generation) << type;
      }
    };
    registry_config_expect("east", 3, public_hash);
    registry_config_expect("gold", 1, gold_hash);
    EXPECT_EQ(status_of(api::registry_configs_resource(), "", "gold")
                  .value("/metadata/generation"_json_pointer, 0),
              2);

    const api::ImageCache pub =
        status_of(api::image_caches_resource(), kTeam, "public").get<api::ImageCache>();
    EXPECT_EQ(pub.status.observed_generation, pub.metadata.generation);
    EXPECT_EQ(pub.status.images,
              (std::vector<api::ImageCacheImageStatus>{{public_app, suite().public_app, 3, 3}}));
    EXPECT_EQ(pub.status.nodes, (api::ImageCacheNodes{.total = 3, .ready = 3}));
    EXPECT_TRUE(pub.status.failures.empty());
    const api::Condition* ready = condition(pub.status.conditions, api::kConditionReady);
    ASSERT_NE(ready, nullptr);
    EXPECT_EQ(ready->status, api::ConditionStatus::kTrue);
    EXPECT_EQ(ready->reason, kReasonAllNodesReady);
    EXPECT_EQ(ready->observed_generation, pub.metadata.generation);
    const api::Condition* degraded = condition(pub.status.conditions, api::kConditionDegraded);
    ASSERT_NE(degraded, nullptr);
    EXPECT_EQ(degraded->status, api::ConditionStatus::kFalse);

    const api::ImageCache priv =
        status_of(api::image_caches_resource(), kTeam, "private").get<api::ImageCache>();
    EXPECT_EQ(priv.metadata.generation, 2);
    EXPECT_EQ(priv.status.observed_generation, priv.metadata.generation);
    EXPECT_EQ(priv.status.images,
              (std::vector<api::ImageCacheImageStatus>{
                  {private_app, repushed, 2, 2}, {private_tool, suite().private_tool, 1, 2}}));
    EXPECT_EQ(priv.status.nodes, (api::ImageCacheNodes{.total = 2, .ready = 1, .failed = 1}));
    EXPECT_EQ(priv.status.failures,
              (std::vector<api::ImageFailure>{
                  {"node-c", private_tool, "PullFailed", "pull refused by the registry (test)"}}));
    for (const std::string_view type : {api::kConditionReady, api::kConditionDegraded}) {
      const api::Condition* c = condition(priv.status.conditions, type);
      ASSERT_NE(c, nullptr) << type;
      EXPECT_EQ(c->status, type == api::kConditionReady ? api::ConditionStatus::kFalse
                                                        : api::ConditionStatus::kTrue)
          << type;
      EXPECT_EQ(c->reason, kReasonNodeFailures) << type;
      EXPECT_EQ(c->observed_generation, priv.metadata.generation) << type;
    }
    EXPECT_THAT(condition(priv.status.conditions, api::kConditionDegraded)->message,
                HasSubstr("1 of 2 nodes failed: node \"node-c\""));
  }

  runner.request_stop();
  runner.join();
  EXPECT_EQ(op->stats().errors, 0);
}

}  // namespace
}  // namespace stowage::op
