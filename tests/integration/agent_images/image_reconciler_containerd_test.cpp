// ImageReconciler through cri::Client against a real containerd (Debian 1.6) and a real
// docker-registry: two planned images pulled and Present at their seeded digests; one dropped
// from the plan and pruned (ImageStatus then finds nothing); an image a running container uses
// kept with reason InUse (containerd 1.6 reports the image ID in image_ref, image_id empty).
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "cri/client.h"
#include "node-agent/image_reconciler.h"
#include "node-agent/pull_record.h"
#include "support/containerd_fixture.h"
#include "support/image_seed.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace stowage::agent {
namespace {

using test::ContainerdFixture;
using test::RegistryFixture;
using ::testing::Contains;
using ::testing::IsEmpty;

constexpr const char* kTag = "1.0";
constexpr const char* kAppRepo = "agent/app";
constexpr const char* kToolsRepo = "agent/tools";
constexpr const char* kSleeperRepo = "agent/sleeper";
constexpr const char* kPauseRepo = "agent/pause";

void trust_plain_http(const std::filesystem::path& certs_dir, const std::string& host) {
  test::write_text_file(certs_dir / host / "hosts.toml",
                        fmt::format("server = \"http://{0}\"\n"
                                    "\n"
                                    "[host.\"http://{0}\"]\n"
                                    "  capabilities = [\"pull\", \"resolve\"]\n",
                                    host));
}

struct SuiteState {
  std::unique_ptr<RegistryFixture> registry;
  std::unique_ptr<ContainerdFixture> containerd;
  std::string app_digest;
  std::string tools_digest;
  std::string sleeper_digest;
  std::string error;
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

class AgentImagesContainerdTest : public ::testing::Test {
 protected:
  static std::optional<std::string> skip_reason() {
    if (auto r = RegistryFixture::unavailable_reason()) return r;
    if (auto r = test::seed_unavailable_reason()) return r;
    return ContainerdFixture::unavailable_reason();
  }

  static void SetUpTestSuite() {
    if (skip_reason()) return;
    try {
      auto& s = suite();
      s.registry = std::make_unique<RegistryFixture>();
      const std::string pause = test::read_text_file(STOWAGE_CRI_PAUSE_BINARY);
      if (pause.empty()) throw Error(Code::kNotFound, "empty " STOWAGE_CRI_PAUSE_BINARY);
      s.app_digest = s.registry->seed_image(kAppRepo, kTag, {.labels = {{"image", "app"}}});
      s.tools_digest = s.registry->seed_image(kToolsRepo, kTag, {.labels = {{"image", "tools"}}});
      s.sleeper_digest = s.registry->seed_image(
          kSleeperRepo, kTag,
          {.layers = {{{"usr/bin/sleeper", pause, 0755}}}, .labels = {{"image", "sleeper"}}});
      s.registry->seed_image(kPauseRepo, kTag,
                             {.layers = {{{"pause", pause, 0755}}}, .entrypoint = {"/pause"}});
      test::ContainerdOptions options;
      options.sandbox_image = fmt::format("{}/{}:{}", s.registry->host(), kPauseRepo, kTag);
      options.cri_settings = {"restrict_oom_score_adj = true", "stats_collect_period = 1"};
      s.containerd = std::make_unique<ContainerdFixture>(options);
      trust_plain_http(s.containerd->cri_certs_dir(), s.registry->host());
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }

  static void TearDownTestSuite() {
    suite().containerd.reset();
    suite().registry.reset();
  }

  void SetUp() override {
    if (auto reason = skip_reason()) GTEST_SKIP() << *reason;
    ASSERT_THAT(suite().error, IsEmpty());
    client_ = std::make_unique<cri::Client>(
        cri::ClientOptions{.endpoint = "unix://" + suite().containerd->address(),
                           .timeout = std::chrono::seconds(10),
                           .pull_timeout = std::chrono::seconds(60),
                           .max_receive_message_bytes = 16 << 20});
    runtime_ = std::make_unique<CriImageRuntime>(*client_);
    record_ = std::make_unique<PullRecord>(PullRecord::load(store_ / kPullRecordFile));
  }

  void TearDown() override {
    if (!client_) return;
    if (!container_id_.empty()) {
      try {
        client_->stop_container(container_id_, std::chrono::seconds(0));
        client_->remove_container(container_id_);
      } catch (const Error& e) {
        ADD_FAILURE() << "cleaning up container " << container_id_ << ": " << e.what();
      }
    }
    if (!sandbox_id_.empty()) {
      try {
        client_->stop_pod_sandbox(sandbox_id_);
        client_->remove_pod_sandbox(sandbox_id_);
      } catch (const Error& e) {
        ADD_FAILURE() << "cleaning up sandbox " << sandbox_id_ << ": " << e.what();
      }
    }
  }

  std::string ref(const std::string& repo) const {
    return fmt::format("{}/{}:{}", suite().registry->host(), repo, kTag);
  }
  std::string digest_ref(const std::string& repo, const std::string& digest) const {
    return fmt::format("{}/{}@{}", suite().registry->host(), repo, digest);
  }
  static PruneOptions no_min_age() {
    return PruneOptions{
        .min_age = std::chrono::seconds(0),
        .pause_images = {fmt::format("{}/{}:{}", suite().registry->host(), kPauseRepo, kTag)},
        .dropped = {}};
  }
  static const PruneResult* find(const std::vector<PruneResult>& results, const std::string& r) {
    const auto it = std::find_if(results.begin(), results.end(),
                                 [&](const PruneResult& p) { return p.ref == r; });
    return it == results.end() ? nullptr : &*it;
  }

  test::TempDir store_{"stowage-agent-store"};
  std::unique_ptr<cri::Client> client_;
  std::unique_ptr<CriImageRuntime> runtime_;
  std::unique_ptr<PullRecord> record_;
  std::string sandbox_id_;
  std::string container_id_;
};

TEST_F(AgentImagesContainerdTest, PullsPlannedImagesThenPrunesTheDroppedOne) {
  const DesiredImage app{.name = ref(kAppRepo), .digest = suite().app_digest};
  const DesiredImage tools{.name = ref(kToolsRepo), .digest = suite().tools_digest};
  ImageReconciler reconciler(*runtime_, *record_, real_clock());

  const auto results = reconciler.reconcile({app, tools});
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_EQ(r.state, api::ImageState::kPresent) << r.name << ": " << r.message << "\n"
                                                  << suite().containerd->log();
    EXPECT_TRUE(r.pulled);
    EXPECT_GT(r.size_bytes.value_or(0), 0u);
  }
  const auto app_status = client_->image_status(ref(kAppRepo));
  ASSERT_TRUE(app_status.has_value());
  EXPECT_THAT(app_status->repo_digests, Contains(digest_ref(kAppRepo, suite().app_digest)));
  EXPECT_THAT(app_status->repo_tags, Contains(ref(kAppRepo)));
  const auto tools_status = client_->image_status(ref(kToolsRepo));
  ASSERT_TRUE(tools_status.has_value());
  EXPECT_THAT(tools_status->repo_digests, Contains(digest_ref(kToolsRepo, suite().tools_digest)));
  EXPECT_EQ(record_->entries().size(), 2u);

  // A second pass finds both present and pulls nothing.
  for (const auto& r : reconciler.reconcile({app, tools})) {
    EXPECT_EQ(r.state, api::ImageState::kPresent);
    EXPECT_FALSE(r.pulled);
  }

  // The plan drops tools: a restarted agent (record reloaded from disk) prunes it.
  PullRecord reloaded = PullRecord::load(store_ / kPullRecordFile);
  ImageReconciler restarted(*runtime_, reloaded, real_clock());
  const auto pruned = restarted.prune({app}, no_min_age());
  const PruneResult* tools_result = find(pruned, ref(kToolsRepo));
  ASSERT_NE(tools_result, nullptr);
  EXPECT_EQ(tools_result->decision, PruneDecision::kRemoved) << tools_result->message;
  const PruneResult* app_result = find(pruned, ref(kAppRepo));
  ASSERT_NE(app_result, nullptr);
  EXPECT_EQ(app_result->decision, PruneDecision::kStillWanted);

  EXPECT_FALSE(client_->image_status(ref(kToolsRepo)).has_value());
  EXPECT_FALSE(client_->image_status(tools_status->id).has_value());
  EXPECT_TRUE(client_->image_status(ref(kAppRepo)).has_value());
  ASSERT_EQ(reloaded.entries().size(), 1u);
  EXPECT_EQ(reloaded.entries()[0].ref, ref(kAppRepo));

  // Dropping app as well removes it; nothing recorded is left.
  const auto last = restarted.prune({}, no_min_age());
  ASSERT_NE(find(last, ref(kAppRepo)), nullptr);
  EXPECT_EQ(find(last, ref(kAppRepo))->decision, PruneDecision::kRemoved);
  EXPECT_FALSE(client_->image_status(ref(kAppRepo)).has_value());
  EXPECT_THAT(reloaded.entries(), IsEmpty());
}

TEST_F(AgentImagesContainerdTest, ImageUsedByContainerIsNotPruned) {
  const DesiredImage sleeper{.name = ref(kSleeperRepo), .digest = suite().sleeper_digest};
  ImageReconciler reconciler(*runtime_, *record_, real_clock());
  const auto results = reconciler.reconcile({sleeper});
  ASSERT_EQ(results.size(), 1u);
  ASSERT_EQ(results[0].state, api::ImageState::kPresent) << results[0].message;

  cri::PodSandboxConfig sandbox;
  sandbox.name = "agent-images";
  sandbox.uid = "agent-images-uid";
  sandbox.namespace_name = "stowage-test";
  sandbox.network = cri::NamespaceMode::kNode;
  sandbox_id_ = client_->run_pod_sandbox(sandbox);
  cri::ContainerConfig config;
  config.name = "sleeper";
  config.image = ref(kSleeperRepo);
  config.command = {"/usr/bin/sleeper"};
  container_id_ = client_->create_container(sandbox_id_, config, sandbox);
  client_->start_container(container_id_);

  const auto pruned = reconciler.prune({}, no_min_age());
  const PruneResult* r = find(pruned, ref(kSleeperRepo));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->decision, PruneDecision::kInUse) << r->message;
  EXPECT_THAT(r->message, ::testing::HasSubstr(container_id_));
  EXPECT_TRUE(client_->image_status(ref(kSleeperRepo)).has_value());
  // The pause image containerd pulled for the sandbox was never the agent's to prune.
  EXPECT_EQ(find(pruned, no_min_age().pause_images[0]), nullptr);
  EXPECT_TRUE(client_->image_status(no_min_age().pause_images[0]).has_value());

  // Stopped, the exited container still holds the image.
  client_->stop_container(container_id_, std::chrono::seconds(0));
  const auto exited = reconciler.prune({}, no_min_age());
  ASSERT_NE(find(exited, ref(kSleeperRepo)), nullptr);
  EXPECT_EQ(find(exited, ref(kSleeperRepo))->decision, PruneDecision::kInUse);

  // Once the container is gone the image is removed.
  client_->remove_container(container_id_);
  container_id_.clear();
  const auto freed = reconciler.prune({}, no_min_age());
  ASSERT_NE(find(freed, ref(kSleeperRepo)), nullptr);
  EXPECT_EQ(find(freed, ref(kSleeperRepo))->decision, PruneDecision::kRemoved);
  EXPECT_FALSE(client_->image_status(ref(kSleeperRepo)).has_value());
}

}  // namespace
}  // namespace stowage::agent
