// RegistriesApplier on a containerd node, against a real containerd (Debian 1.6) with its CRI
// plugin and a real docker-registry: the applier finds config_path in the node's config.toml
// under the host root, writes <config_path>/<host>/hosts.toml, and a CRI pull of an image named
// after upstream.invalid (which resolves nowhere) then comes from the mirror — no containerd
// restart. Removing the mirror removes the file and the pull fails again. A config.toml without
// config_path is refused with a message saying containerd would ignore hosts.toml.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "base/files.h"
#include "cri/client.h"
#include "node-agent/registries_applier.h"
#include "registries/conf.h"
#include "registries/render.h"
#include "support/containerd_fixture.h"
#include "support/image_seed.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace stowage::agent {
namespace {

namespace fs = std::filesystem;
using test::ContainerdFixture;
using test::RegistryFixture;
using test::TempDir;
using ::testing::Contains;
using ::testing::HasSubstr;

constexpr const char* kUpstream = "upstream.invalid";
constexpr const char* kRepo = "team/app";
constexpr const char* kTag = "1.0";
constexpr const char* kCertsOnNode = "/etc/containerd/certs.d";

// The operator's rendering of a RegistryConfig: the drop-in and one hosts.toml per host.
DesiredRegistries render_desired(const std::string& conf_text) {
  const registries::Config config =
      registries::load_text(conf_text, "rendered.conf", registries::FileRole::kDropIn);
  DesiredRegistries out;
  out.dropin = registries::render_v2(config, false);
  std::vector<std::string> warnings;
  for (const auto& f : registries::render_containerd(config, warnings)) {
    const auto slash = f.path.find('/');
    out.hosts_toml[f.path.substr(0, slash)] = f.content;
  }
  return out;
}

std::string mirror_conf(const std::string& mirror) {
  return fmt::format(
      "[[registry]]\nprefix = \"{0}\"\nlocation = \"{0}\"\n\n"
      "[[registry.mirror]]\nlocation = \"{1}\"\ninsecure = true\n",
      kUpstream, mirror);
}

// containerd's config as the node sees it: the fixture's own file with the host-root prefix of
// config_path taken off, as a pod sees /host/etc/containerd/config.toml.
std::string node_view(const std::string& config, const fs::path& host_root) {
  std::string out = config;
  const std::string prefix = host_root.string();
  for (auto pos = out.find(prefix); pos != std::string::npos; pos = out.find(prefix, pos)) {
    out.erase(pos, prefix.size());
  }
  return out;
}

struct SuiteState {
  std::unique_ptr<RegistryFixture> registry;
  std::string digest;
  std::string error;
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

class ContainerdHostsTest : public ::testing::Test {
 protected:
  static std::optional<std::string> skip_reason() {
    if (auto r = RegistryFixture::unavailable_reason()) return r;
    if (auto r = test::seed_unavailable_reason()) return r;
    return ContainerdFixture::unavailable_reason();
  }

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
    ASSERT_EQ(suite().error, "");
    test::ContainerdOptions options;
    options.cri_registry_config_path = host_ / "etc/containerd/certs.d";
    containerd_ = std::make_unique<ContainerdFixture>(std::move(options));
    config_text_ = test::read_text_file(containerd_->config_file());
    ASSERT_THAT(config_text_, HasSubstr("config_path"));
    cri_ = std::make_unique<cri::Client>(
        cri::ClientOptions{.endpoint = "unix://" + containerd_->address(),
                           .timeout = std::chrono::seconds(10),
                           .pull_timeout = std::chrono::minutes(2),
                           .max_receive_message_bytes = 16 * 1024 * 1024});
  }

  std::string upstream_ref() const { return fmt::format("{}/{}:{}", kUpstream, kRepo, kTag); }
  fs::path certs() const { return host_ / "etc/containerd/certs.d"; }

  TempDir host_{"stowage-agent-host"};
  std::unique_ptr<ContainerdFixture> containerd_;
  std::unique_ptr<cri::Client> cri_;
  std::string config_text_;
};

TEST_F(ContainerdHostsTest, HostsTomlUnderConfigPathMakesCriPullUseMirror) {
  test::write_text_file(host_ / "etc/containerd/config.toml",
                        node_view(config_text_, host_.path()));
  const auto kind = runtime_kind_from_name(cri_->version().runtime_name);
  ASSERT_EQ(kind, RuntimeKind::kContainerd);
  RegistriesApplier applier(host_.path(), nullptr);

  const DesiredRegistries desired = render_desired(mirror_conf(suite().registry->host()));
  ASSERT_EQ(desired.hosts_toml.size(), 1u);
  const ApplyResult r = applier.apply(desired, *kind);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_TRUE(r.changed);
  EXPECT_FALSE(r.reloaded);
  EXPECT_THAT(r.message, HasSubstr(certs().string()));
  EXPECT_EQ(read_file(certs() / kUpstream / "hosts.toml"), desired.hosts_toml.at(kUpstream));
  EXPECT_EQ(read_file(host_ / "etc/containers/registries.conf.d/99-stowage.conf"), desired.dropin);

  // containerd reads hosts.toml on each pull: no restart between writing and pulling.
  const std::string image_ref = cri_->pull_image(upstream_ref());
  const auto image = cri_->image_status(upstream_ref());
  ASSERT_TRUE(image.has_value()) << containerd_->log();
  EXPECT_EQ(image->id, image_ref);
  EXPECT_THAT(image->repo_digests,
              Contains(fmt::format("{}/{}@{}", kUpstream, kRepo, suite().digest)));
  EXPECT_THAT(suite().registry->log(),
              HasSubstr(fmt::format("/v2/{}/manifests/{}?ns={}", kRepo, kTag, kUpstream)));

  EXPECT_EQ(applier.apply(desired, *kind).message, "unchanged");

  // The mirror goes away: our hosts.toml goes with it, and the same pull fails again.
  const ApplyResult removed =
      applier.apply(render_desired("unqualified-search-registries = [\"quay.io\"]\n"), *kind);
  ASSERT_TRUE(removed.ok()) << removed.message;
  EXPECT_FALSE(fs::exists(certs() / kUpstream));
  cri_->remove_image(image_ref);
  try {
    cri_->pull_image(upstream_ref());
    FAIL() << "pull through the removed mirror succeeded";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(kUpstream));
  }
}

TEST_F(ContainerdHostsTest, ConfigWithoutConfigPathIsRefusedAndNothingIsWritten) {
  // The node's config is the real one minus config_path: containerd would ignore hosts.toml.
  std::string without;
  std::istringstream in(node_view(config_text_, host_.path()));
  for (std::string line; std::getline(in, line);) {
    if (line.find("config_path") == std::string::npos) without += line + "\n";
  }
  test::write_text_file(host_ / "etc/containerd/config.toml", without);
  RegistriesApplier applier(host_.path(), nullptr);

  const ApplyResult r = applier.apply(render_desired(mirror_conf(suite().registry->host())),
                                      RuntimeKind::kContainerd);
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_THAT(r.message,
              HasSubstr("does not set plugins.\"io.containerd.grpc.v1.cri\".registry.config_path: "
                        "containerd would ignore hosts.toml files"));
  EXPECT_FALSE(fs::exists(certs() / kUpstream));
  EXPECT_FALSE(fs::exists(host_ / "etc/containers/registries.conf.d/99-stowage.conf"));
}

}  // namespace
}  // namespace stowage::agent
