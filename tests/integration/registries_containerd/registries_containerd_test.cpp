// render_containerd() against real containerd (Debian 1.6): the certs.d/<host>/hosts.toml it
// writes for a registries.conf mirror makes `ctr images pull --hosts-dir` fetch the image from
// that mirror (a real docker-registry on 127.0.0.1, plain HTTP) while the upstream name,
// upstream.invalid, resolves nowhere. Controls: with no hosts.toml the same pull fails, and with
// the mirror not marked insecure (https only) it fails too.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "registries/conf.h"
#include "registries/render.h"
#include "support/containerd_fixture.h"
#include "support/image_seed.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace stowage::registries {
namespace {

using test::ContainerdFixture;
using test::RegistryFixture;
using test::RunResult;
using test::TempDir;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// containerd keeps the repository path and swaps only the host, so the mirror serves the image
// under the upstream's repository path.
constexpr const char* kUpstream = "upstream.invalid";
constexpr const char* kRepo = "team/app";
constexpr const char* kTag = "1.0";

std::string upstream_ref() {
  return fmt::format("{}/{}:{}", kUpstream, kRepo, kTag);
}

std::string registries_conf(const std::string& mirror, bool insecure) {
  return fmt::format(
      "[[registry]]\n"
      "prefix = \"{0}\"\n"
      "location = \"{0}\"\n"
      "\n"
      "[[registry.mirror]]\n"
      "location = \"{1}\"\n"
      "insecure = {2}\n",
      kUpstream, mirror, insecure ? "true" : "false");
}

// Loads registries.conf text, renders it for containerd and writes the files under `certs_dir`.
std::vector<RenderedFile> render_into(const std::string& conf_text,
                                      const std::filesystem::path& certs_dir,
                                      std::vector<std::string>& warnings) {
  const Config config = load_text(conf_text, "registries.conf", FileRole::kMain);
  std::vector<RenderedFile> files = render_containerd(config, warnings);
  for (const auto& f : files) test::write_text_file(certs_dir / f.path, f.content);
  return files;
}

// The registry and seeded image shared by the suite (one process runs one or all tests).
struct SuiteState {
  std::unique_ptr<RegistryFixture> registry;
  std::string digest;  // of the seeded kRepo:kTag
  std::string error;   // why SetUpTestSuite failed
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

class RegistriesContainerdTest : public ::testing::Test {
 protected:
  static std::optional<std::string> skip_reason() {
    if (auto r = RegistryFixture::unavailable_reason()) return r;
    if (auto r = test::seed_unavailable_reason()) return r;
    return ContainerdFixture::unavailable_reason();
  }

  // One registry and one seeded image for the suite; a fresh containerd per test.
  static void SetUpTestSuite() {
    if (skip_reason()) return;
    try {
      suite().registry = std::make_unique<RegistryFixture>();
      suite().digest = test::seed_image(suite().registry->host(), kRepo, kTag);
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }

  static void TearDownTestSuite() { suite().registry.reset(); }

  void SetUp() override {
    if (auto reason = skip_reason()) GTEST_SKIP() << *reason;
    ASSERT_THAT(suite().error, IsEmpty());
    registry_ = suite().registry.get();
    digest_ = suite().digest;
    containerd_ = std::make_unique<ContainerdFixture>();
    registry_log_start_ = registry_->log().size();
  }

  RunResult pull(const std::string& ref) const {
    return containerd_->ctr({"images", "pull", "--hosts-dir", certs_.path().string(), ref});
  }

  // What the registry logged since the test started.
  std::string registry_log_since_start() const {
    return registry_->log().substr(registry_log_start_);
  }

  // Whether the registry logged `needle` since the test started. The registry writes its access
  // log line after the response, so a client may finish first: wait for it briefly.
  bool registry_logged(const std::string& needle) const {
    return test::wait_for(
        [&] { return registry_log_since_start().find(needle) != std::string::npos; },
        std::chrono::seconds(5));
  }

  RegistryFixture* registry_ = nullptr;
  std::string digest_;
  TempDir certs_{"stowage-certs.d"};
  std::unique_ptr<ContainerdFixture> containerd_;
  std::size_t registry_log_start_ = 0;
};

TEST_F(RegistriesContainerdTest, PullsTagThroughInsecureMirrorWhenUpstreamDoesNotResolve) {
  std::vector<std::string> warnings;
  const auto files = render_into(registries_conf(registry_->host(), true), certs_.path(), warnings);
  EXPECT_THAT(warnings, IsEmpty());
  ASSERT_EQ(files.size(), 1u);
  ASSERT_EQ(files[0].path, "upstream.invalid/hosts.toml");

  const RunResult r = pull(upstream_ref());
  ASSERT_TRUE(r.ok()) << r.describe() << "\nhosts.toml:\n" << files[0].content;

  const auto image = containerd_->image(upstream_ref());
  ASSERT_TRUE(image.has_value()) << containerd_->ctr({"images", "ls"}).describe();
  EXPECT_EQ(image->digest, digest_);
  EXPECT_EQ(image->platforms, "linux/" + test::host_architecture());
  // The mirror answered, and containerd asked it as a mirror of upstream.invalid (?ns=).
  EXPECT_TRUE(registry_logged(
      fmt::format("\"HEAD /v2/{}/manifests/{}?ns={} HTTP/1.1\" 200", kRepo, kTag, kUpstream)))
      << registry_->log();
  EXPECT_TRUE(registry_logged(fmt::format("\"GET /v2/{}/blobs/", kRepo))) << registry_->log();
}

TEST_F(RegistriesContainerdTest, PullsDigestThroughInsecureMirror) {
  std::vector<std::string> warnings;
  render_into(registries_conf(registry_->host(), true), certs_.path(), warnings);
  const std::string ref = fmt::format("{}/{}@{}", kUpstream, kRepo, digest_);

  const RunResult r = pull(ref);
  ASSERT_TRUE(r.ok()) << r.describe();

  const auto image = containerd_->image(ref);
  ASSERT_TRUE(image.has_value()) << containerd_->ctr({"images", "ls"}).describe();
  EXPECT_EQ(image->digest, digest_);
  EXPECT_TRUE(registry_logged(fmt::format("/v2/{}/manifests/{}?ns={}", kRepo, digest_, kUpstream)))
      << registry_->log();
}

TEST_F(RegistriesContainerdTest, PullFailsWithoutHostsToml) {
  // Negative control: the same pull with an empty hosts dir goes to upstream.invalid only.
  const RunResult r = pull(upstream_ref());
  EXPECT_FALSE(r.ok()) << r.describe();
  EXPECT_THAT(r.err, HasSubstr(fmt::format("https://{}/v2/", kUpstream))) << r.describe();
  EXPECT_FALSE(containerd_->image(upstream_ref()).has_value());
  EXPECT_THAT(registry_log_since_start(), Not(HasSubstr("/v2/team/app")));
}

TEST_F(RegistriesContainerdTest, PullFailsWhenMirrorIsNotMarkedInsecure) {
  // Without insecure = true the rendered mirror entry is https only, which the plain-HTTP
  // registry cannot serve: proves the insecure flag is what makes the first test pass.
  std::vector<std::string> warnings;
  const auto files =
      render_into(registries_conf(registry_->host(), false), certs_.path(), warnings);
  EXPECT_THAT(warnings, IsEmpty());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_THAT(files[0].content, HasSubstr(fmt::format("[host.\"https://{}\"]", registry_->host())));
  EXPECT_THAT(files[0].content, Not(HasSubstr("http://")));

  const RunResult r = pull(upstream_ref());
  EXPECT_FALSE(r.ok()) << r.describe() << "\nhosts.toml:\n" << files[0].content;
  EXPECT_THAT(r.err, HasSubstr(fmt::format("https://{}/v2/{}/manifests/{}", registry_->host(),
                                           kRepo, kTag)))
      << r.describe();
  EXPECT_THAT(r.err, HasSubstr("server gave HTTP response to HTTPS client")) << r.describe();
  EXPECT_FALSE(containerd_->image(upstream_ref()).has_value());
  EXPECT_THAT(registry_log_since_start(), Not(HasSubstr("/v2/team/app")));
}

}  // namespace
}  // namespace stowage::registries
