// cri::Client against a real containerd (Debian 1.6, CRI plugin) and real docker-registry
// instances on 127.0.0.1: Version, PullImage from a plain-HTTP registry (told to containerd by a
// hosts.toml under its registry config_path) and from an htpasswd one, ImageStatus, ListImages,
// RemoveImage, ImageFsInfo, a deadline cut short by a registry that stalls, an absent socket, and
// a pod sandbox plus a container run from pulled images (the pause image is a static binary the
// build makes, seeded into the registry) that ListContainers then reports with its image.
// One containerd and the registries are shared by the suite; every test leaves no container.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "cri/client.h"
#include "support/containerd_fixture.h"
#include "support/fault_proxy.h"
#include "support/image_seed.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace stowage::cri {
namespace {

using test::ContainerdFixture;
using test::RegistryAuth;
using test::RegistryFixture;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

// Repositories seeded for the suite, all tag kTag.
constexpr const char* kTag = "1.0";
constexpr const char* kAppRepo = "stowage/app";
constexpr const char* kRemovableRepo = "stowage/removable";
constexpr const char* kPauseRepo = "stowage/pause";
constexpr const char* kSleeperRepo = "stowage/sleeper";
constexpr const char* kPrivateRepo = "private/app";
constexpr const char* kStalledRepo = "stowage/stalled";  // only ever pulled through a stall

// Tells containerd's CRI plugin that `host` is a plain-HTTP registry (certs.d/<host>/hosts.toml).
void trust_plain_http(const std::filesystem::path& certs_dir, const std::string& host) {
  test::write_text_file(certs_dir / host / "hosts.toml",
                        fmt::format("server = \"http://{0}\"\n"
                                    "\n"
                                    "[host.\"http://{0}\"]\n"
                                    "  capabilities = [\"pull\", \"resolve\"]\n",
                                    host));
}

std::string base64(const std::string& in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (const std::size_t rest = in.size() - i; rest > 0) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// The code of the stowage::Error `f` throws; fails the test if it throws nothing.
template <typename F>
std::optional<Error> error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a stowage::Error";
  return std::nullopt;
}

struct SuiteState {
  std::unique_ptr<RegistryFixture> registry;  // plain HTTP, anonymous
  std::unique_ptr<RegistryFixture> secured;   // plain HTTP, htpasswd
  std::unique_ptr<ContainerdFixture> containerd;
  std::string app_digest;
  std::string sleeper_digest;
  std::string private_digest;
  std::string error;  // why SetUpTestSuite failed
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

class CriContainerdTest : public ::testing::Test {
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
      s.secured =
          std::make_unique<RegistryFixture>(test::RegistryOptions{.auth = RegistryAuth::kHtpasswd});
      const std::string pause = test::read_text_file(STOWAGE_CRI_PAUSE_BINARY);
      if (pause.empty()) throw Error(Code::kNotFound, "empty " STOWAGE_CRI_PAUSE_BINARY);

      s.app_digest = s.registry->seed_image(kAppRepo, kTag, {.labels = {{"image", "app"}}});
      s.registry->seed_image(kRemovableRepo, kTag, {.labels = {{"image", "removable"}}});
      s.registry->seed_image(kStalledRepo, kTag, {.labels = {{"image", "stalled"}}});
      s.registry->seed_image(kPauseRepo, kTag,
                             {.layers = {{{"pause", pause, 0755}}}, .entrypoint = {"/pause"}});
      s.sleeper_digest = s.registry->seed_image(
          kSleeperRepo, kTag,
          {.layers = {{{"usr/bin/sleeper", pause, 0755}}}, .labels = {{"image", "sleeper"}}});
      s.private_digest = s.secured->seed_image(kPrivateRepo, kTag, {.labels = {{"p", "1"}}});

      test::ContainerdOptions options;
      options.sandbox_image = fmt::format("{}/{}:{}", s.registry->host(), kPauseRepo, kTag);
      // The sandbox spec asks for oom_score_adj -998, which needs CAP_SYS_RESOURCE that test
      // machines (containers, VMs) may not grant; and image filesystem usage is sampled every
      // stats_collect_period seconds (default 10).
      options.cri_settings = {"restrict_oom_score_adj = true", "stats_collect_period = 1"};
      s.containerd = std::make_unique<ContainerdFixture>(options);
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
    containerd_ = suite().containerd.get();
    registry_ = suite().registry.get();
    secured_ = suite().secured.get();
    client_ = std::make_unique<Client>(ClientOptions{.endpoint = "unix://" + containerd_->address(),
                                                     .timeout = std::chrono::seconds(10),
                                                     .pull_timeout = std::chrono::seconds(60),
                                                     .max_receive_message_bytes = 16 << 20});
  }

  std::string ref(const std::string& repo) const {
    return fmt::format("{}/{}:{}", registry_->host(), repo, kTag);
  }

  ContainerdFixture* containerd_ = nullptr;
  RegistryFixture* registry_ = nullptr;
  RegistryFixture* secured_ = nullptr;
  std::unique_ptr<Client> client_;
};

// Needs no runtime: nothing listens on the socket.
TEST(CriClient, AbsentSocketIsUnavailable) {
  test::TempDir dir("stowage-cri");
  Client nobody(ClientOptions{.endpoint = "unix://" + (dir / "absent.sock").string(),
                              .timeout = std::chrono::seconds(5),
                              .pull_timeout = std::chrono::seconds(5),
                              .max_receive_message_bytes = 16 << 20});
  const auto start = std::chrono::steady_clock::now();
  const auto error = error_of([&] { nobody.version(); });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code(), Code::kUnavailable) << error->what();
  EXPECT_TRUE(error->retryable());
  EXPECT_THAT(error->what(), HasSubstr("CRI Version"));
  EXPECT_THAT(error->what(), HasSubstr("absent.sock"));
  // Fails fast rather than waiting for the deadline.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(CriContainerdTest, VersionReportsContainerd) {
  const VersionInfo v = client_->version();
  EXPECT_EQ(v.runtime_name, "containerd");
  EXPECT_EQ(v.runtime_api_version, "v1");
  EXPECT_THAT(v.runtime_version, StartsWith("1."));
  EXPECT_FALSE(v.version.empty());
}

TEST_F(CriContainerdTest, PullFromPlainHttpRegistryShowsTagAndDigest) {
  const std::string tag_ref = ref(kAppRepo);
  const std::string digest_ref =
      fmt::format("{}/{}@{}", registry_->host(), kAppRepo, suite().app_digest);
  const std::string image_ref = client_->pull_image(tag_ref);
  EXPECT_THAT(image_ref, StartsWith("sha256:"));

  const auto by_tag = client_->image_status(tag_ref);
  ASSERT_TRUE(by_tag.has_value()) << containerd_->log();
  EXPECT_EQ(by_tag->id, image_ref);  // CRI: Image.id equals PullImageResponse.image_ref
  EXPECT_THAT(by_tag->repo_tags, Contains(tag_ref));
  EXPECT_THAT(by_tag->repo_digests, Contains(digest_ref));
  EXPECT_GT(by_tag->size, 0u);
  EXPECT_FALSE(by_tag->pinned);

  const auto by_id = client_->image_status(image_ref);
  ASSERT_TRUE(by_id.has_value());
  EXPECT_EQ(by_id->id, image_ref);
  const auto by_digest = client_->image_status(digest_ref);
  ASSERT_TRUE(by_digest.has_value());
  EXPECT_EQ(by_digest->id, image_ref);

  const std::vector<Image> all = client_->list_images();
  const auto it =
      std::find_if(all.begin(), all.end(), [&](const Image& i) { return i.id == image_ref; });
  ASSERT_NE(it, all.end());
  EXPECT_THAT(it->repo_tags, Contains(tag_ref));
  EXPECT_THAT(it->repo_digests, Contains(digest_ref));

  const std::vector<Image> filtered = client_->list_images(tag_ref);
  ASSERT_EQ(filtered.size(), 1u);
  EXPECT_EQ(filtered[0].id, image_ref);
}

TEST_F(CriContainerdTest, PullByDigestReferenceUnchanged) {
  const std::string digest_ref =
      fmt::format("{}/{}@{}", registry_->host(), kAppRepo, suite().app_digest);
  const std::string image_ref = client_->pull_image(digest_ref);
  const auto image = client_->image_status(digest_ref);
  ASSERT_TRUE(image.has_value());
  EXPECT_EQ(image->id, image_ref);
  EXPECT_THAT(image->repo_digests, Contains(digest_ref));
}

TEST_F(CriContainerdTest, ImageStatusOfAbsentImageIsNullopt) {
  EXPECT_FALSE(client_->image_status(ref("stowage/never-pulled")).has_value());
}

TEST_F(CriContainerdTest, PullFromHtpasswdRegistryNeedsCredentials) {
  const std::string private_ref = fmt::format("{}/{}:{}", secured_->host(), kPrivateRepo, kTag);
  client_->remove_image(private_ref);  // whatever an earlier test left
  ASSERT_FALSE(client_->image_status(private_ref).has_value());

  const auto anonymous = error_of([&] { client_->pull_image(private_ref); });
  ASSERT_TRUE(anonymous.has_value());
  EXPECT_THAT(anonymous->what(), HasSubstr("CRI PullImage " + private_ref));
  EXPECT_THAT(anonymous->what(), HasSubstr(containerd_->address()));
  // containerd 1.6 reports the registry's 401 as gRPC UNKNOWN, which the client does not
  // second-guess from message text; the runtime's message is kept for the operator.
  EXPECT_EQ(anonymous->code(), Code::kInternal) << anonymous->what();
  EXPECT_FALSE(anonymous->retryable());
  EXPECT_THAT(anonymous->what(), HasSubstr("401 Unauthorized"));
  EXPECT_FALSE(client_->image_status(private_ref).has_value());

  const auto wrong = error_of([&] {
    client_->pull_image(private_ref, AuthConfig{.username = secured_->username(),
                                                .password = "not-the-password",
                                                .auth = "",
                                                .server_address = "",
                                                .identity_token = "",
                                                .registry_token = ""});
  });
  ASSERT_TRUE(wrong.has_value());
  EXPECT_THAT(wrong->what(), Not(HasSubstr("not-the-password")));
  EXPECT_THAT(wrong->what(), HasSubstr("401 Unauthorized"));
  EXPECT_FALSE(client_->image_status(private_ref).has_value());

  // Right credentials for another registry: containerd does not send them here.
  const auto elsewhere = error_of([&] {
    client_->pull_image(private_ref, AuthConfig{.username = secured_->username(),
                                                .password = secured_->password(),
                                                .auth = "",
                                                .server_address = "http://" + registry_->host(),
                                                .identity_token = "",
                                                .registry_token = ""});
  });
  ASSERT_TRUE(elsewhere.has_value());
  EXPECT_FALSE(client_->image_status(private_ref).has_value());

  // The auth field alone (base64 "user:password") is enough.
  const std::string by_auth =
      client_->pull_image(private_ref, AuthConfig{.username = "",
                                                  .password = "",
                                                  .auth = base64(secured_->credentials()),
                                                  .server_address = "http://" + secured_->host(),
                                                  .identity_token = "",
                                                  .registry_token = ""});
  ASSERT_TRUE(client_->image_status(private_ref).has_value());
  client_->remove_image(by_auth);
  ASSERT_FALSE(client_->image_status(private_ref).has_value());

  const std::string image_ref =
      client_->pull_image(private_ref, AuthConfig{.username = secured_->username(),
                                                  .password = secured_->password(),
                                                  .auth = "",
                                                  .server_address = "",
                                                  .identity_token = "",
                                                  .registry_token = ""});
  EXPECT_EQ(image_ref, by_auth);
  const auto image = client_->image_status(private_ref);
  ASSERT_TRUE(image.has_value());
  EXPECT_THAT(image->repo_digests, Contains(fmt::format("{}/{}@{}", secured_->host(), kPrivateRepo,
                                                        suite().private_digest)));
}

TEST_F(CriContainerdTest, RemoveImageThenStatusIsAbsent) {
  const std::string removable = ref(kRemovableRepo);
  const std::string image_ref = client_->pull_image(removable);
  ASSERT_TRUE(client_->image_status(removable).has_value());

  client_->remove_image(removable);
  EXPECT_FALSE(client_->image_status(removable).has_value());
  EXPECT_FALSE(client_->image_status(image_ref).has_value());
  const std::vector<Image> all = client_->list_images();
  EXPECT_TRUE(
      std::none_of(all.begin(), all.end(), [&](const Image& i) { return i.id == image_ref; }));
  // Idempotent: removing what is gone is not an error.
  EXPECT_NO_THROW(client_->remove_image(removable));
}

TEST_F(CriContainerdTest, ImageFsInfoReportsUsedBytes) {
  client_->pull_image(ref(kAppRepo));
  // containerd samples usage in the background (every second here): wait for a sample.
  ImageFsInfo info;
  test::wait_for(
      [&] {
        info = client_->image_fs_info();
        return !info.image_filesystems.empty() && info.image_filesystems.front().used_bytes > 0;
      },
      std::chrono::seconds(10));
  ASSERT_FALSE(info.image_filesystems.empty());
  const FilesystemUsage& fs = info.image_filesystems.front();
  EXPECT_GT(fs.used_bytes, 0u);
  EXPECT_THAT(fs.mountpoint, StartsWith(containerd_->dir().string()));
  EXPECT_GT(fs.timestamp_ns, 0);
  ASSERT_TRUE(fs.inodes_used.has_value());
  EXPECT_GT(*fs.inodes_used, 0u);
}

TEST_F(CriContainerdTest, PullPastItsDeadlineIsDeadlineExceeded) {
  // The registry, behind a proxy, sends blob headers and then nothing: the pull is in flight
  // when its deadline passes.
  test::FaultProxy proxy(registry_->port());
  proxy.add_fault(
      {.method = "GET", .path = "/blobs/sha256:", .skip = 0, .times = 0, .fault = test::Stall{}});
  trust_plain_http(containerd_->cri_certs_dir(), proxy.host());
  Client impatient(ClientOptions{.endpoint = containerd_->address(),
                                 .timeout = std::chrono::seconds(10),
                                 .pull_timeout = std::chrono::milliseconds(1500),
                                 .max_receive_message_bytes = 16 << 20});
  const std::string stalled_ref = fmt::format("{}/{}:{}", proxy.host(), kStalledRepo, kTag);

  const auto start = std::chrono::steady_clock::now();
  const auto error = error_of([&] { impatient.pull_image(stalled_ref); });
  const auto elapsed = std::chrono::steady_clock::now() - start;
  proxy.release_stalls();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code(), Code::kDeadlineExceeded) << error->what();
  EXPECT_TRUE(error->retryable());
  EXPECT_THAT(error->what(), HasSubstr("DEADLINE_EXCEEDED"));
  EXPECT_GE(elapsed, std::chrono::milliseconds(1500));
  EXPECT_LT(elapsed, std::chrono::seconds(10));
  EXPECT_GT(proxy.connections_accepted(), 0);  // containerd did reach the stalling registry
  EXPECT_FALSE(client_->image_status(stalled_ref).has_value());
}

TEST_F(CriContainerdTest, UnknownContainerIsNotFound) {
  const auto error = error_of([&] { client_->container_status("no-such-container"); });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code(), Code::kNotFound) << error->what();
}

// A pod sandbox (host network: no CNI here) running the seeded pause image, and in it a
// container running the pulled sleeper image.
class CriSandboxTest : public CriContainerdTest {
 protected:
  void TearDown() override {
    if (!client_) return;
    // Leave nothing running: containerd 1.6 shims outlive the fixture otherwise.
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

  PodSandboxConfig sandbox_config() const {
    PodSandboxConfig config;
    config.name = "cri-test";
    config.uid = "cri-test-uid";
    config.namespace_name = "stowage-test";
    config.labels = {{"suite", "cri"}};
    config.network = NamespaceMode::kNode;
    return config;
  }

  std::string sandbox_id_;
  std::string container_id_;
};

TEST_F(CriSandboxTest, ContainerFromPulledImageIsListedWithItsImage) {
  const std::string sleeper_ref = ref(kSleeperRepo);
  const std::string image_id = client_->pull_image(sleeper_ref);

  const PodSandboxConfig sandbox = sandbox_config();
  sandbox_id_ = client_->run_pod_sandbox(sandbox);
  ASSERT_FALSE(sandbox_id_.empty());
  const auto sandboxes = client_->list_pod_sandboxes(
      {.id = sandbox_id_, .state = PodSandboxState::kReady, .label_selector = {{"suite", "cri"}}});
  ASSERT_EQ(sandboxes.size(), 1u) << containerd_->log();
  EXPECT_EQ(sandboxes[0].name, "cri-test");
  EXPECT_EQ(sandboxes[0].namespace_name, "stowage-test");
  // containerd pulled the sandbox image it was configured with from the seeded registry.
  EXPECT_TRUE(client_->image_status(ref(kPauseRepo)).has_value());

  ContainerConfig config;
  config.name = "sleeper";
  config.image = sleeper_ref;
  config.command = {"/usr/bin/sleeper"};
  config.labels = {{"role", "holds-image"}};
  container_id_ = client_->create_container(sandbox_id_, config, sandbox);
  ASSERT_FALSE(container_id_.empty());
  client_->start_container(container_id_);

  const auto containers = client_->list_containers({.id = "",
                                                    .state = ContainerState::kRunning,
                                                    .pod_sandbox_id = sandbox_id_,
                                                    .label_selector = {}});
  ASSERT_EQ(containers.size(), 1u) << containerd_->log();
  const Container& c = containers[0];
  EXPECT_EQ(c.id, container_id_);
  EXPECT_EQ(c.pod_sandbox_id, sandbox_id_);
  EXPECT_EQ(c.name, "sleeper");
  EXPECT_EQ(c.state, ContainerState::kRunning);
  EXPECT_EQ(c.labels.at("role"), "holds-image");
  EXPECT_GT(c.created_at_ns, 0);
  // In-use matching: containerd 1.6 lists the image as the container was created with and
  // the image ID (what PullImage returned) as image_ref; image_id is newer than it.
  EXPECT_EQ(c.image, sleeper_ref);
  EXPECT_EQ(c.image_ref, image_id);
  EXPECT_THAT(c.image_id, IsEmpty());

  const ContainerStatus status = client_->container_status(container_id_);
  EXPECT_EQ(status.id, container_id_);
  EXPECT_EQ(status.name, "sleeper");
  EXPECT_EQ(status.state, ContainerState::kRunning);
  EXPECT_GT(status.started_at_ns, 0);
  EXPECT_EQ(status.finished_at_ns, 0);
  // ContainerStatus gives the repo digest instead.
  EXPECT_EQ(status.image_ref,
            fmt::format("{}/{}@{}", registry_->host(), kSleeperRepo, suite().sleeper_digest));

  // Unfiltered listing includes it too; a filter on another state excludes it.
  const auto every = client_->list_containers();
  EXPECT_TRUE(std::any_of(every.begin(), every.end(),
                          [&](const Container& x) { return x.id == container_id_; }));
  EXPECT_THAT(client_->list_containers({.id = container_id_,
                                        .state = ContainerState::kExited,
                                        .pod_sandbox_id = "",
                                        .label_selector = {}}),
              IsEmpty());

  // Stopped, it is still listed (exited containers hold their image too) until removed.
  client_->stop_container(container_id_, std::chrono::seconds(2));
  const auto exited = client_->list_containers(
      {.id = container_id_, .state = std::nullopt, .pod_sandbox_id = "", .label_selector = {}});
  ASSERT_EQ(exited.size(), 1u);
  EXPECT_EQ(exited[0].state, ContainerState::kExited);
  client_->remove_container(container_id_);
  container_id_.clear();
  EXPECT_THAT(
      client_->list_containers(
          {.id = "", .state = std::nullopt, .pod_sandbox_id = sandbox_id_, .label_selector = {}}),
      IsEmpty());

  client_->stop_pod_sandbox(sandbox_id_);
  client_->remove_pod_sandbox(sandbox_id_);
  const std::string removed = sandbox_id_;
  sandbox_id_.clear();
  EXPECT_THAT(
      client_->list_pod_sandboxes({.id = removed, .state = std::nullopt, .label_selector = {}}),
      IsEmpty());
}

}  // namespace
}  // namespace stowage::cri
