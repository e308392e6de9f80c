// stowctl --cri-endpoint against a real containerd (Debian 1.6, CRI plugin) and real
// docker-registry instances on 127.0.0.1: pull through CRI (anonymous, and with the auth file's
// credentials for an htpasswd registry) showing the image ID and repo digest; images listing what
// containerd holds with what uses it; rmi refusing an image a container uses (running, then
// exited) and naming the container, refusing the sandbox image, removing it with --force and
// saying what it overrode; rmi of an unused image by ID prefix. The pod sandbox and container are
// run with cri::Client from images whose binary is the static pause program the build makes.
// One containerd and the registries are shared by the suite; every test leaves no container.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "cri/client.h"
#include "stowctl_env.h"
#include "support/containerd_fixture.h"
#include "support/image_seed.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace stowage::itest {
namespace {

namespace t = stowage::test;
using nlohmann::json;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr const char* kTag = "1.0";
constexpr const char* kPauseRepo = "stowage/pause";
constexpr const char* kSleeperRepo = "stowage/sleeper";
constexpr const char* kAppRepo = "stowage/app";
constexpr const char* kRemovableRepo = "stowage/removable";
constexpr const char* kPrivateRepo = "private/app";

// Tells containerd's CRI plugin that `host` is a plain-HTTP registry (certs.d/<host>/hosts.toml).
void trust_plain_http(const std::filesystem::path& certs_dir, const std::string& host) {
  t::write_text_file(certs_dir / host / "hosts.toml",
                     fmt::format("server = \"http://{0}\"\n\n[host.\"http://{0}\"]\n"
                                 "  capabilities = [\"pull\", \"resolve\"]\n",
                                 host));
}

struct Suite {
  std::unique_ptr<t::RegistryFixture> registry;  // plain HTTP, anonymous
  std::unique_ptr<t::RegistryFixture> secured;   // plain HTTP, htpasswd
  std::unique_ptr<t::ContainerdFixture> containerd;
  std::string app_digest;
  std::string private_digest;
  std::string error;
};

Suite& suite() {
  static Suite s;
  return s;
}

class StowctlCriTest : public ::testing::Test {
 protected:
  static std::optional<std::string> skip_reason() {
    if (auto r = registry_skip_reason()) return r;
    return t::ContainerdFixture::unavailable_reason();
  }

  static void SetUpTestSuite() {
    if (skip_reason()) return;
    try {
      auto& s = suite();
      s.registry = std::make_unique<t::RegistryFixture>();
      s.secured = std::make_unique<t::RegistryFixture>(
          t::RegistryOptions{.auth = t::RegistryAuth::kHtpasswd});
      const std::string pause = t::read_text_file(STOWAGE_CRI_PAUSE_BINARY);
      if (pause.empty()) throw Error(Code::kNotFound, "empty " STOWAGE_CRI_PAUSE_BINARY);
      s.registry->seed_image(kPauseRepo, kTag,
                             {.layers = {{{"pause", pause, 0755}}}, .entrypoint = {"/pause"}});
      s.registry->seed_image(
          kSleeperRepo, kTag,
          {.layers = {{{"usr/bin/sleeper", pause, 0755}}}, .labels = {{"image", "sleeper"}}});
      s.app_digest = s.registry->seed_image(kAppRepo, kTag, {.labels = {{"image", "app"}}});
      s.registry->seed_image(kRemovableRepo, kTag, {.labels = {{"image", "removable"}}});
      s.private_digest = s.secured->seed_image(kPrivateRepo, kTag, {.labels = {{"p", "1"}}});

      t::ContainerdOptions options;
      options.sandbox_image = fmt::format("{}/{}:{}", s.registry->host(), kPauseRepo, kTag);
      options.cri_settings = {"restrict_oom_score_adj = true"};
      s.containerd = std::make_unique<t::ContainerdFixture>(options);
      trust_plain_http(s.containerd->cri_certs_dir(), s.registry->host());
      trust_plain_http(s.containerd->cri_certs_dir(), s.secured->host());
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }

  static void TearDownTestSuite() {
    suite().containerd.reset();
    suite().secured.reset();
    suite().registry.reset();
  }

  void SetUp() override {
    if (auto reason = skip_reason()) GTEST_SKIP() << *reason;
    ASSERT_THAT(suite().error, IsEmpty());
    endpoint_ = "unix://" + suite().containerd->address();
    client_ =
        std::make_unique<cri::Client>(cri::ClientOptions{.endpoint = endpoint_,
                                                         .timeout = std::chrono::seconds(10),
                                                         .pull_timeout = std::chrono::seconds(60),
                                                         .max_receive_message_bytes = 16 << 20});
  }

  void TearDown() override {
    if (!client_) return;
    // Leave nothing running: containerd 1.6 shims outlive the fixture otherwise.
    try {
      if (!container_id_.empty()) client_->remove_container(container_id_);
      if (!sandbox_id_.empty()) {
        client_->stop_pod_sandbox(sandbox_id_);
        client_->remove_pod_sandbox(sandbox_id_);
      }
    } catch (const Error& e) {
      ADD_FAILURE() << "cleaning up: " << e.what();
    }
  }

  static std::string ref(const std::string& repo) {
    return fmt::format("{}/{}:{}", suite().registry->host(), repo, kTag);
  }

  // stowctl --cri-endpoint <containerd> args...
  t::RunResult cri(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--cri-endpoint", endpoint_});
    return env_.run(args, {}, std::chrono::seconds(90));
  }

  // Runs a sandbox and in it a container of `image`, started.
  void run_container(const std::string& image) {
    cri::PodSandboxConfig sandbox;
    sandbox.name = "stowctl-cri";
    sandbox.uid = "stowctl-cri-uid";
    sandbox.namespace_name = "stowage-test";
    sandbox.network = cri::NamespaceMode::kNode;
    sandbox_id_ = client_->run_pod_sandbox(sandbox);
    cri::ContainerConfig config;
    config.name = "holder";
    config.image = image;
    config.command = {"/usr/bin/sleeper"};
    container_id_ = client_->create_container(sandbox_id_, config, sandbox);
    client_->start_container(container_id_);
  }

  StowctlEnv env_{"stowctl-cri"};
  std::string endpoint_;
  std::unique_ptr<cri::Client> client_;
  std::string sandbox_id_;
  std::string container_id_;
};

TEST_F(StowctlCriTest, PullShowsIdAndDigestAndImagesListsWhatContainerdHolds) {
  const auto pulled = cri({"pull", ref(kAppRepo)});
  ASSERT_TRUE(pulled.ok()) << pulled.describe();
  const auto held = client_->image_status(ref(kAppRepo));
  ASSERT_TRUE(held.has_value());
  EXPECT_THAT(pulled.out, HasSubstr("Image ID: " + held->id + "\n"));
  EXPECT_THAT(pulled.out, HasSubstr(fmt::format("Repo digest: {}/{}@{}\n", suite().registry->host(),
                                                kAppRepo, suite().app_digest)));

  // JSON: exactly the images the runtime lists, with their tags and digests.
  const auto listed = cri({"images", "--format", "json"});
  ASSERT_TRUE(listed.ok()) << listed.describe();
  const json doc = json::parse(listed.out);
  std::vector<std::string> ids;
  for (const auto& image : doc) ids.push_back(image.at("Id").get<std::string>());
  std::vector<std::string> expected;
  for (const auto& image : client_->list_images()) expected.push_back(image.id);
  std::sort(ids.begin(), ids.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(ids, expected);
  const auto app =
      std::find_if(doc.begin(), doc.end(), [&](const json& i) { return i.at("Id") == held->id; });
  ASSERT_NE(app, doc.end());
  EXPECT_THAT(app->at("RepoTags").get<std::vector<std::string>>(), Contains(ref(kAppRepo)));
  EXPECT_EQ(app->at("InUse"), false);

  // Table: podman's columns plus IN USE; the row of the pulled image.
  const auto table = cri({"images"});
  ASSERT_TRUE(table.ok()) << table.describe();
  const auto rows = lines(table.out);
  ASSERT_FALSE(rows.empty());
  EXPECT_THAT(rows[0], ::testing::MatchesRegex("REPOSITORY +TAG +IMAGE ID +SIZE +IN USE"));
  const std::string short_id = held->id.substr(7, 12);
  EXPECT_THAT(rows,
              Contains(::testing::MatchesRegex(fmt::format(
                  "{}/{} +{} +{} +.* B +-", suite().registry->host(), kAppRepo, kTag, short_id))));
}

TEST_F(StowctlCriTest, PullUsesTheAuthFileCredentialsOfTheRegistry) {
  const std::string private_ref =
      fmt::format("{}/{}:{}", suite().secured->host(), kPrivateRepo, kTag);
  const auto anonymous = cri({"pull", private_ref});
  EXPECT_TRUE(fails_with_one_error_line(anonymous));
  EXPECT_FALSE(client_->image_status(private_ref).has_value());

  suite().secured->write_auth_file(env_.authfile());
  const auto pulled = cri({"pull", "-q", private_ref});
  ASSERT_TRUE(pulled.ok()) << pulled.describe();
  const auto held = client_->image_status(private_ref);
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(pulled.out, held->id + "\n");
  EXPECT_THAT(held->repo_digests, Contains(fmt::format("{}/{}@{}", suite().secured->host(),
                                                       kPrivateRepo, suite().private_digest)));
  // Credentials never reach the output.
  EXPECT_THAT(pulled.out + pulled.err, Not(HasSubstr(suite().secured->password())));
}

TEST_F(StowctlCriTest, RmiRefusesImageUsedByAContainerNamingItAndForceRemovesIt) {
  const std::string sleeper = ref(kSleeperRepo);
  ASSERT_TRUE(cri({"pull", sleeper}).ok());
  const std::string id = client_->image_status(sleeper)->id;
  run_container(sleeper);

  const auto listed = cri({"images"});
  ASSERT_TRUE(listed.ok()) << listed.describe();
  EXPECT_THAT(listed.out, ::testing::ContainsRegex(fmt::format(
                              "{}/{} +{} +{} .* 1 container\n", suite().registry->host(),
                              kSleeperRepo, kTag, id.substr(7, 12))));

  const auto refused = cri({"rmi", sleeper});
  EXPECT_TRUE(fails_with_one_error_line(refused));
  EXPECT_THAT(refused.err,
              HasSubstr(fmt::format("used by container {} (holder, running)", container_id_)));
  EXPECT_THAT(refused.err, HasSubstr("--force"));
  EXPECT_TRUE(client_->image_status(id).has_value());

  // Exited, the container still holds its image.
  client_->stop_container(container_id_, std::chrono::seconds(0));
  const auto refused_exited = cri({"rmi", id.substr(7, 12)});
  EXPECT_TRUE(fails_with_one_error_line(refused_exited));
  EXPECT_THAT(refused_exited.err,
              HasSubstr(fmt::format("used by container {} (holder, exited)", container_id_)));
  EXPECT_TRUE(client_->image_status(id).has_value());

  // The sandbox image the runtime is configured with is refused too.
  const std::string pause = ref(kPauseRepo);
  const auto refused_pause = cri({"--sandbox-image", pause, "rmi", pause});
  EXPECT_TRUE(fails_with_one_error_line(refused_pause));
  EXPECT_THAT(refused_pause.err, HasSubstr("the sandbox (pause) image"));
  EXPECT_TRUE(client_->image_status(pause).has_value());

  const auto forced = cri({"rmi", "--force", sleeper});
  ASSERT_TRUE(forced.ok()) << forced.describe();
  EXPECT_THAT(forced.err, HasSubstr(fmt::format("warning: --force: removing image {} although it "
                                                "is used by container {} (holder, exited)",
                                                id, container_id_)));
  EXPECT_THAT(forced.out, HasSubstr("Untagged: " + sleeper + "\n"));
  EXPECT_THAT(forced.out, HasSubstr("Deleted: " + id + "\n"));
  EXPECT_FALSE(client_->image_status(id).has_value());
}

TEST_F(StowctlCriTest, RmiRemovesUnusedImageByIdPrefixAndRefusesLocalOnlyCommands) {
  const std::string removable = ref(kRemovableRepo);
  ASSERT_TRUE(cri({"pull", removable}).ok());
  const std::string id = client_->image_status(removable)->id;

  const auto removed = cri({"rmi", id.substr(7, 12)});
  ASSERT_TRUE(removed.ok()) << removed.describe();
  EXPECT_EQ(removed.out, fmt::format("Untagged: {}\nDeleted: {}\n", removable, id));
  EXPECT_THAT(removed.err, IsEmpty());
  EXPECT_FALSE(client_->image_status(removable).has_value());

  const auto unknown = cri({"rmi", removable});
  EXPECT_TRUE(fails_with_one_error_line(unknown));
  EXPECT_THAT(unknown.err, HasSubstr("image not known to the runtime"));

  const auto save = cri({"save", "-o", env_.path("x.tar").string(), removable});
  EXPECT_TRUE(fails_with_one_error_line(save));
  EXPECT_THAT(save.err, HasSubstr("--cri-endpoint works with images, pull and rmi"));
}

}  // namespace
}  // namespace stowage::itest
