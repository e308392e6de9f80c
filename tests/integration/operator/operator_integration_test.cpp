// The Operator (operator/operator.h) against a real kube-apiserver with the CRDs installed and a
// real registry holding a seeded image: NodeCaches per Node with owner references, the resolved
// digest and the image's size (by tag and by digest, against skopeo's view of the manifest), the
// registries ConfigMap of the selected node with the rendered drop-in,
// ImageCache status, relabelling and RegistryConfig deletion, and that of two Operators under
// leader election only the Lease holder writes.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "api/meta.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "operator/operator.h"
#include "support/image_seed.h"
#include "support/kube_fixture.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace stowage::op {
namespace {

using kube::Client;
using kube::GroupVersionResource;
using kube::ResourceRef;
using nlohmann::json;
using test::BinaryLookup;
using test::ControlPlane;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::chrono::seconds kDeadline{60};
const std::string kNamespace = "stowage-system";
const GroupVersionResource kNodes{"", "v1", "nodes"};
const GroupVersionResource kConfigMaps{"", "v1", "configmaps"};
const GroupVersionResource kNamespaces{"", "v1", "namespaces"};
const GroupVersionResource kLeases{"coordination.k8s.io", "v1", "leases"};

struct SuiteState {
  BinaryLookup binaries;
  std::optional<std::string> registry_problem;
  std::unique_ptr<ControlPlane> plane;
  std::unique_ptr<test::RegistryFixture> registry;
  std::string digest;  // of team/app:1.0
  std::string error;
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

// Config and layer bytes of `image`'s manifest as skopeo reads it from the plain-HTTP registry
// (no registries.conf of the machine, no credentials); -1 when skopeo fails.
std::int64_t pull_size_by_skopeo(const std::string& image) {
  test::TempDir dir("stowage-inspect");
  test::write_text_file(dir / "registries.conf", "");
  test::RunOptions options;
  options.env = {{"CONTAINERS_REGISTRIES_CONF", (dir / "registries.conf").string()},
                 {"TMPDIR", dir.path().string()}};
  const test::RunResult r = test::run(
      {"skopeo", "inspect", "--raw", "--tls-verify=false", "--no-creds", "docker://" + image},
      options);
  EXPECT_TRUE(r.ok()) << r.describe();
  if (!r.ok()) return -1;
  const json manifest = json::parse(r.out);
  std::int64_t size = manifest["config"]["size"].get<std::int64_t>();
  for (const auto& layer : manifest["layers"]) size += layer["size"].get<std::int64_t>();
  return size;
}

// An Operator running on its own thread until destroyed.
struct Running {
  MetricsRegistry metrics;
  std::unique_ptr<Operator> op;
  std::jthread thread;

  Running(OperatorOptions options, Client& client, http::Transport& transport) {
    op = std::make_unique<Operator>(std::move(options), client, real_clock(), transport, metrics);
    thread = std::jthread([this](std::stop_token stop) { op->run(stop); });
  }
  ~Running() { stop(); }
  void stop() {
    if (thread.joinable()) {
      thread.request_stop();
      thread.join();
    }
  }
};

class OperatorIntegration : public ::testing::Test {
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
      suite().registry = std::make_unique<test::RegistryFixture>();
      suite().digest = suite().registry->seed_image("team/app", "1.0");
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
    if (!client_->try_get({kNamespaces, "", kNamespace, ""})) {
      client_->create(
          {kNamespaces, "", "", ""},
          {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", kNamespace}}}});
    }
  }

  OperatorOptions options(bool leader_elect, std::string identity) const {
    OperatorOptions o;
    o.namespace_ = kNamespace;
    o.max_unavailable = MaxUnavailable::parse("100%");
    o.leader_elect = leader_elect;
    o.leader_election_id = "stowage-operator-test";
    o.identity = std::move(identity);
    o.lease_duration = std::chrono::milliseconds(3000);
    o.renew_deadline = std::chrono::milliseconds(2000);
    o.retry_period = std::chrono::milliseconds(500);
    return o;
  }

  void create_node(const std::string& name, const json& labels) {
    client_->create({kNodes, "", "", ""}, {{"apiVersion", "v1"},
                                           {"kind", "Node"},
                                           {"metadata", {{"name", name}, {"labels", labels}}}});
  }

  std::optional<json> node_cache(const std::string& name) {
    return client_->try_get({api::node_caches_resource(), "", name, ""});
  }

  std::string registries_hash(const std::string& node) {
    const auto nc = node_cache(node);
    if (!nc) return "";
    return nc->value("/spec/registries/hash"_json_pointer, "");
  }

  bool config_map_exists(const std::string& name) {
    return client_->try_get({kConfigMaps, kNamespace, name, ""}).has_value();
  }

  // Waits for `predicate`; a failure names `what` never happened.
  void eventually(const std::string& what, const std::function<bool()>& predicate) {
    EXPECT_TRUE(test::wait_for(predicate, kDeadline)) << "never: " << what;
  }

  http::Client http_;
  std::unique_ptr<Client> client_;
};

TEST_F(OperatorIntegration, PlansNodeCachesResolvesDigestsAndCollectsConfigMaps) {
  const std::string host = suite().registry->host();
  const std::string image = host + "/team/app:1.0";
  const std::string by_digest = host + "/team/app@" + suite().digest;
  create_node("node-a", {{"tier", "gold"}, {"pool", "x"}});
  create_node("node-b", {{"pool", "x"}});
  client_->create({api::registry_configs_resource(), "", "", ""},
                  {{"apiVersion", "stowage.io/v1alpha1"},
                   {"kind", "RegistryConfig"},
                   {"metadata", {{"name", "gold"}}},
                   {"spec",
                    {{"nodeSelector", {{"matchLabels", {{"tier", "gold"}}}}},
                     {"unqualifiedSearchRegistries", {host}},
                     {"insecureRegistries", {host}}}}});
  client_->create({api::image_caches_resource(), "default", "", ""},
                  {{"apiVersion", "stowage.io/v1alpha1"},
                   {"kind", "ImageCache"},
                   {"metadata", {{"name", "base"}, {"namespace", "default"}}},
                   {"spec",
                    {{"nodeSelector", json::object()},
                     {"images", {{{"name", image}}, {{"name", by_digest}}}}}}});

  Running running(options(false, "solo"), *client_, http_);

  // A NodeCache per Node, owned by it, holding the digest the registry has and the bytes a pull
  // downloads, for the tag and for the digest reference alike.
  const std::int64_t size = pull_size_by_skopeo(image);
  ASSERT_GT(size, 0);
  for (const std::string node : {"node-a", "node-b"}) {
    eventually(node + " has a NodeCache with the seeded digest and its size", [&] {
      const auto nc = node_cache(node);
      if (!nc || !nc->contains("spec") || !(*nc)["spec"].contains("images")) return false;
      const json& images = (*nc)["spec"]["images"];
      return images.size() == 2 && images[0].value("digest", "") == suite().digest &&
             images[0].contains("sizeBytes") && images[1].contains("sizeBytes");
    });
    const auto nc = node_cache(node);
    ASSERT_TRUE(nc);
    const json& images = (*nc)["spec"]["images"];
    ASSERT_EQ(images.size(), 2u) << nc->dump();
    EXPECT_EQ(images[0].value("name", ""), image);
    EXPECT_EQ(images[0].value("sizeBytes", std::int64_t{-1}), size);
    EXPECT_EQ(images[1].value("name", ""), by_digest);
    EXPECT_EQ(images[1].value("digest", ""), suite().digest);
    EXPECT_EQ(images[1].value("sizeBytes", std::int64_t{-1}), size);
    const json& owners = (*nc)["metadata"]["ownerReferences"];
    ASSERT_EQ(owners.size(), 1u) << nc->dump();
    EXPECT_EQ(owners[0].value("kind", ""), "Node");
    EXPECT_EQ(owners[0].value("name", ""), node);
    EXPECT_EQ(owners[0].value("uid", ""),
              client_->get({kNodes, "", node, ""})["metadata"].value("uid", ""));
    EXPECT_TRUE(owners[0].value("controller", false));
    bool operator_manages_spec = false;
    for (const auto& entry : (*nc)["metadata"]["managedFields"]) {
      if (entry.value("manager", "") == "stowage-operator" &&
          entry.value("operation", "") == "Apply" && entry["fieldsV1"].contains("f:spec")) {
        operator_manages_spec = true;
      }
    }
    EXPECT_TRUE(operator_manages_spec) << (*nc)["metadata"]["managedFields"].dump();
  }

  // The selected node names a ConfigMap holding the rendered drop-in with the registry.
  std::string gold_hash;
  eventually("node-a names a registries ConfigMap", [&] {
    gold_hash = registries_hash("node-a");
    return !gold_hash.empty() && !registries_hash("node-b").empty();
  });
  ASSERT_FALSE(gold_hash.empty());
  EXPECT_NE(gold_hash, registries_hash("node-b"));
  const std::string gold_cm = "stowage-registries-" + gold_hash;
  EXPECT_EQ(node_cache("node-a").value()["spec"]["registries"].value("configMap", ""), gold_cm);
  const auto cm = client_->try_get({kConfigMaps, kNamespace, gold_cm, ""});
  ASSERT_TRUE(cm) << gold_cm;
  EXPECT_TRUE(cm->value("immutable", false));
  EXPECT_EQ((*cm)["metadata"]["labels"].value("app.kubernetes.io/managed-by", ""), "stowage");
  const std::string dropin = (*cm)["data"].value("99-stowage.conf", "");
  EXPECT_THAT(dropin, HasSubstr(host));
  EXPECT_THAT(dropin, HasSubstr("insecure = true"));

  // ImageCache status reports the image's digest and both nodes.
  eventually("ImageCache status counts both nodes", [&] {
    const json ic = client_->get({api::image_caches_resource(), "default", "base", ""});
    const json status = ic.value("status", json::object());
    return status.value("/nodes/total"_json_pointer, 0) == 2 &&
           status.value("/images/0/digest"_json_pointer, "") == suite().digest &&
           status.value("/images/0/nodesTotal"_json_pointer, 0) == 2;
  });

  // node-a leaves the RegistryConfig: it gets node-b's rendering, and the gold one goes.
  client_->patch({kNodes, "", "node-a", ""}, kube::PatchType::kMerge,
                 {{"metadata", {{"labels", {{"tier", nullptr}}}}}});
  eventually("node-a moves to the rendering without the RegistryConfig", [&] {
    return registries_hash("node-a") == registries_hash("node-b") &&
           !registries_hash("node-a").empty();
  });
  eventually("the gold ConfigMap is deleted once unreferenced",
             [&] { return !config_map_exists(gold_cm); });

  // Back in: the same rendering (content-addressed), its ConfigMap created again.
  client_->patch({kNodes, "", "node-a", ""}, kube::PatchType::kMerge,
                 {{"metadata", {{"labels", {{"tier", "gold"}}}}}});
  eventually("node-a names the gold rendering again",
             [&] { return registries_hash("node-a") == gold_hash && config_map_exists(gold_cm); });

  // Deleting the RegistryConfig leaves its ConfigMap unreferenced: deleted.
  client_->delete_({api::registry_configs_resource(), "", "gold", ""});
  eventually("node-a leaves the gold rendering after the RegistryConfig is deleted",
             [&] { return registries_hash("node-a") == registries_hash("node-b"); });
  eventually("the gold ConfigMap is deleted after the RegistryConfig",
             [&] { return !config_map_exists(gold_cm); });

  client_->delete_({api::image_caches_resource(), "default", "base", ""});
  EXPECT_TRUE(running.op->ready());
  EXPECT_TRUE(running.op->leading());
  running.stop();
  const OperatorStats stats = running.op->stats();
  EXPECT_GT(stats.writes, 0);
  EXPECT_EQ(stats.nodes_planned, 2);
  EXPECT_GE(stats.resolutions, 1);
  EXPECT_GE(stats.size_requests, 1);  // the digest reference's manifest
  const std::string metrics = running.metrics.render();
  EXPECT_THAT(metrics, HasSubstr("stowage_operator_nodes_planned 2"));
  EXPECT_THAT(metrics, HasSubstr("stowage_operator_reconciles_total{result=\"success\"}"));
}

TEST_F(OperatorIntegration, OnlyTheLeaseHolderWrites) {
  const std::string image = suite().registry->host() + "/team/app:1.0";
  if (!client_->try_get({kNodes, "", "node-c", ""})) create_node("node-c", {{"pool", "y"}});
  OperatorOptions options_one = options(true, "operator-one");
  options_one.insecure_registries = {suite().registry->host()};
  OperatorOptions options_two = options(true, "operator-two");
  options_two.insecure_registries = {suite().registry->host()};
  auto one = std::make_unique<Running>(options_one, *client_, http_);
  auto two = std::make_unique<Running>(options_two, *client_, http_);

  client_->create(
      {api::image_caches_resource(), "default", "", ""},
      {{"apiVersion", "stowage.io/v1alpha1"},
       {"kind", "ImageCache"},
       {"metadata", {{"name", "leader-check"}, {"namespace", "default"}}},
       {"spec",
        {{"nodeSelector", {{"matchLabels", {{"pool", "y"}}}}}, {"images", {{{"name", image}}}}}}});
  eventually("one operator leads", [&] { return one->op->leading() || two->op->leading(); });
  const auto wanted_by_leader_check = [&] {
    const auto nc = node_cache("node-c");
    if (!nc) return false;
    for (const auto& entry : nc->value("/spec/images"_json_pointer, json::array())) {
      for (const auto& source : entry.value("sources", json::array())) {
        if (source == "default/leader-check") return true;
      }
    }
    return false;
  };
  eventually("node-c is planned", wanted_by_leader_check);
  ASSERT_NE(one->op->leading(), two->op->leading());
  Running* leader = one->op->leading() ? one.get() : two.get();
  Running* follower = one->op->leading() ? two.get() : one.get();
  EXPECT_GT(leader->op->stats().writes, 0);
  EXPECT_EQ(follower->op->stats().writes, 0);
  EXPECT_EQ(follower->op->stats().reconciles, 0);
  eventually("the standby's caches sync", [&] { return follower->op->ready(); });
  const json lease = client_->get({kLeases, kNamespace, "stowage-operator-test", ""});
  EXPECT_EQ(lease["spec"].value("holderIdentity", ""),
            leader == one.get() ? "operator-one" : "operator-two");

  // The leader goes away; the other takes over and applies the next change.
  leader->stop();
  eventually("the standby takes over", [&] { return follower->op->leading(); });
  client_->patch({kNodes, "", "node-c", ""}, kube::PatchType::kMerge,
                 {{"metadata", {{"labels", {{"pool", "z"}}}}}});
  eventually("node-c leaves the ImageCache under the new leader",
             [&] { return node_cache("node-c") && !wanted_by_leader_check(); });
  eventually("the new leader counts its writes", [&] { return follower->op->stats().writes > 0; });
}

}  // namespace
}  // namespace stowage::op
