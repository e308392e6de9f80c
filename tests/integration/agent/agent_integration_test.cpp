// Agent (node-agent/agent.h) in a thread against a real control plane, a real containerd and a
// real docker-registry. Images are named after upstream.invalid, which resolves nowhere: they
// can only be pulled once the agent has written the hosts.toml of the registries ConfigMap that
// mirrors that host to the local registry.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/meta.h"
#include "api/node_cache.h"
#include "api/registries_config_map.h"
#include "base/clock.h"
#include "base/error.h"
#include "cri/client.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "node-agent/agent.h"
#include "registries/conf.h"
#include "registries/render.h"
#include "support/containerd_fixture.h"
#include "support/image_seed.h"
#include "support/kube_fixture.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace stowage::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::BinaryLookup;
using test::ContainerdFixture;
using test::ControlPlane;
using test::RegistryFixture;
using test::TempDir;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr const char* kNamespace = "stowage-system";
constexpr const char* kNode = "worker-1";
constexpr const char* kUpstream = "upstream.invalid";
constexpr const char* kRepo = "team/app";
constexpr const char* kTag = "1.0";
constexpr const char* kHash = "5eed0a1";
const std::string kMissingDigest = "sha256:" + std::string(64, 'b');

const kube::GroupVersionResource kNamespaces{"", "v1", "namespaces"};
const kube::GroupVersionResource kConfigMaps{"", "v1", "configmaps"};

// containerd's config as the node sees it: the host-root prefix taken off config_path.
std::string node_view(const std::string& config, const fs::path& host_root) {
  std::string out = config;
  const std::string prefix = host_root.string();
  for (auto pos = out.find(prefix); pos != std::string::npos; pos = out.find(prefix, pos)) {
    out.erase(pos, prefix.size());
  }
  return out;
}

// The ConfigMap data the operator would publish for a mirror of kUpstream at `mirror`.
std::map<std::string, std::string> mirror_files(const std::string& mirror) {
  const std::string conf = fmt::format(
      "[[registry]]\nprefix = \"{0}\"\nlocation = \"{0}\"\n\n"
      "[[registry.mirror]]\nlocation = \"{1}\"\ninsecure = true\n",
      kUpstream, mirror);
  const registries::Config config =
      registries::load_text(conf, "rendered.conf", registries::FileRole::kDropIn);
  std::vector<registries::RenderedFile> files;
  files.push_back(
      {.path = std::string(api::kDropInKey), .content = registries::render_v2(config, false)});
  std::vector<std::string> warnings;
  for (auto& f : registries::render_containerd(config, warnings)) files.push_back(f);
  return api::registries_config_map_data(files);
}

struct SuiteState {
  BinaryLookup binaries;
  std::unique_ptr<ControlPlane> plane;
  std::unique_ptr<RegistryFixture> registry;
  std::string digest;
  std::string error;
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

class AgentIntegration : public ::testing::Test {
 protected:
  static std::optional<std::string> skip_reason() {
    if (auto r = RegistryFixture::unavailable_reason()) return r;
    if (auto r = test::seed_unavailable_reason()) return r;
    return ContainerdFixture::unavailable_reason();
  }

  static void SetUpTestSuite() {
    suite().binaries = ControlPlane::find_binaries();
    if (!suite().binaries.dir || skip_reason()) return;
    try {
      test::ControlPlaneOptions options;
      options.with_controller_manager = false;
      suite().plane = std::make_unique<ControlPlane>(options);
      suite().error = test::install_stowage_crds(*suite().plane);
      suite().registry = std::make_unique<RegistryFixture>();
      suite().digest = test::seed_image(suite().registry->host(), kRepo, kTag);
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
    if (auto reason = skip_reason()) GTEST_SKIP() << *reason;
    ASSERT_THAT(suite().error, IsEmpty());
    config_ = kube::rest_config_from_kubeconfig(
        kube::load_kubeconfig({suite().plane->kubeconfig_path()}), "", real_clock());
    kube_ = std::make_unique<kube::Client>(config_, http_, real_clock());
    if (!kube_->try_get({kNamespaces, "", kNamespace, ""})) {
      kube_->create(
          {kNamespaces, "", "", ""},
          {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", kNamespace}}}});
    }
    test::ContainerdOptions options;
    options.cri_registry_config_path = host_ / "etc/containerd/certs.d";
    containerd_ = std::make_unique<ContainerdFixture>(std::move(options));
    test::write_text_file(
        host_ / "etc/containerd/config.toml",
        node_view(test::read_text_file(containerd_->config_file()), host_.path()));
    cri_ = std::make_unique<cri::Client>(
        cri::ClientOptions{.endpoint = "unix://" + containerd_->address(),
                           .timeout = std::chrono::seconds(10),
                           .pull_timeout = std::chrono::seconds(60),
                           .max_receive_message_bytes = 16 * 1024 * 1024});
  }

  void TearDown() override {
    agent_thread_ = {};  // requests stop and joins
    agent_.reset();
  }

  void start_agent() {
    AgentOptions options;
    options.node_name = kNode;
    options.namespace_ = kNamespace;
    options.host_root = host_.path();
    options.store_dir = host_ / "var/lib/stowage";
    options.prune_min_age = std::chrono::seconds(0);
    options.status_min_interval = std::chrono::milliseconds(200);
    options.retry_base = std::chrono::milliseconds(500);
    options.retry_max = std::chrono::seconds(5);
    agent_ = std::make_unique<Agent>(options, *kube_, *cri_, real_clock());
    agent_thread_ = std::jthread([this](std::stop_token stop) { agent_->run(stop); });
  }

  std::string upstream_ref(const std::string& repo) const {
    return fmt::format("{}/{}:{}", kUpstream, repo, kTag);
  }

  api::NodeCache node_cache() {
    api::NodeCache nc;
    api::from_json(kube_->get({api::node_caches_resource(), "", kNode, ""}), nc);
    return nc;
  }

  // Waits until the NodeCache status satisfies `pred`; returns the last one read.
  api::NodeCache wait_status(const std::function<bool(const api::NodeCache&)>& pred) {
    api::NodeCache last;
    const bool ok = test::wait_for(
        [&] {
          last = node_cache();
          return pred(last);
        },
        std::chrono::seconds(120));
    EXPECT_TRUE(ok) << "NodeCache status: " << api::node_cache_status_to_json(last.status).dump(2);
    return last;
  }

  static const api::NodeImageStatus* image(const api::NodeCache& nc, const std::string& name) {
    for (const auto& i : nc.status.images) {
      if (i.name == name) return &i;
    }
    return nullptr;
  }

  TempDir host_{"stowage-agent-host"};
  http::Client http_{http::ClientOptions{.proxy = ""}};
  kube::RestConfig config_;
  std::unique_ptr<kube::Client> kube_;
  std::unique_ptr<ContainerdFixture> containerd_;
  std::unique_ptr<cri::Client> cri_;
  std::unique_ptr<Agent> agent_;
  std::jthread agent_thread_;
};

TEST_F(AgentIntegration, PullsThroughAppliedRegistriesReportsFailuresAndPrunesDroppedImage) {
  const std::string cm_name = api::registries_config_map_name(kHash);
  json cm = {{"apiVersion", "v1"},
             {"kind", "ConfigMap"},
             {"metadata", {{"name", cm_name}, {"namespace", kNamespace}}},
             {"immutable", true},
             {"data", mirror_files(suite().registry->host())}};
  kube_->create({kConfigMaps, kNamespace, "", ""}, cm);

  const std::string app = upstream_ref(kRepo);
  const std::string missing = upstream_ref("team/missing");
  api::NodeCache nc;
  nc.metadata.name = kNode;
  nc.spec.registries = api::NodeRegistries{.hash = kHash, .config_map = cm_name};
  nc.spec.images = {{.name = app, .digest = suite().digest},
                    {.name = missing, .digest = kMissingDigest}};
  json object;
  api::to_json(object, nc);
  object["apiVersion"] = std::string(api::kApiVersion);
  object["kind"] = std::string(api::kNodeCacheKind);
  object.erase("status");
  kube_->create({api::node_caches_resource(), "", "", ""}, object);

  start_agent();
  api::NodeCache got = wait_status([&](const api::NodeCache& n) {
    const auto* a = image(n, app);
    const auto* m = image(n, missing);
    return a && a->state == api::ImageState::kPresent && m && m->state == api::ImageState::kFailed;
  });
  ASSERT_NE(image(got, app), nullptr);
  EXPECT_EQ(image(got, app)->digest, suite().digest);
  EXPECT_TRUE(image(got, app)->size_bytes.has_value());
  ASSERT_NE(image(got, missing), nullptr);
  EXPECT_THAT(image(got, missing)->message, HasSubstr("PullFailed"));
  ASSERT_TRUE(got.status.registries.has_value());
  EXPECT_EQ(got.status.registries->applied_hash, kHash);
  EXPECT_EQ(got.status.registries->state, api::RegistriesState::kApplied);
  EXPECT_TRUE(fs::exists(host_ / "etc/containerd/certs.d" / kUpstream / "hosts.toml"));
  ASSERT_TRUE(got.status.runtime.has_value());
  EXPECT_EQ(got.status.runtime->name, "containerd");
  const api::Condition* ready = api::find_condition(got.status.conditions, api::kConditionReady);
  ASSERT_NE(ready, nullptr);
  EXPECT_EQ(ready->status, api::ConditionStatus::kFalse);
  EXPECT_EQ(ready->reason, kReasonImagesFailed);
  const api::Condition* degraded =
      api::find_condition(got.status.conditions, api::kConditionDegraded);
  ASSERT_NE(degraded, nullptr);
  EXPECT_EQ(degraded->status, api::ConditionStatus::kTrue);
  ASSERT_TRUE(got.status.summary.has_value());
  EXPECT_EQ(got.status.summary->present, 1);
  EXPECT_EQ(got.status.summary->failed, 1);
  EXPECT_TRUE(cri_->image_status(app).has_value());
  EXPECT_TRUE(agent_->readiness().ready);
  EXPECT_THAT(agent_->metrics_text(), HasSubstr("stowage_agent_image_pulls_total 1"));
  EXPECT_THAT(agent_->metrics_text(),
              HasSubstr("stowage_agent_image_failures_total{reason=\"PullFailed\"}"));

  // The plan drops the app image: pruned from the runtime and reported Removed; the failing
  // image is still tried and reported.
  kube_->patch({api::node_caches_resource(), "", kNode, ""}, kube::PatchType::kMerge,
               {{"spec", {{"images", {{{"name", missing}, {"digest", kMissingDigest}}}}}}});
  got = wait_status([&](const api::NodeCache& n) {
    const auto* a = image(n, app);
    return a && a->state == api::ImageState::kRemoved;
  });
  EXPECT_FALSE(cri_->image_status(app).has_value());
  ASSERT_NE(image(got, missing), nullptr);
  EXPECT_EQ(image(got, missing)->state, api::ImageState::kFailed);
  EXPECT_EQ(got.status.observed_generation, got.metadata.generation);
  EXPECT_EQ(got.status.summary->images, 1);
  EXPECT_THAT(agent_->metrics_text(), HasSubstr("stowage_agent_image_prunes_total 1"));

  // SIGTERM's path: stop is requested and run() returns.
  agent_thread_.request_stop();
  agent_thread_.join();
  EXPECT_GE(agent_->syncs(), 2);
}

}  // namespace
}  // namespace stowage::agent
