// stowctl and the real peers, each way, through a real docker-registry and through tar files:
//   - what skopeo and `podman push` put in a registry, stowctl pulls (same digest, same image ID);
//   - what stowctl pushes, podman pulls and skopeo inspects with the same digest;
//   - `stowctl save` loads in `podman load`; `stowctl save --format oci-archive` is read by
//     `skopeo inspect oci-archive:`; `podman save` loads in `stowctl load` with the same IDs;
//   - `stowctl diff A B` prints what `podman diff A B` prints for two imported rootfs tars.
// podman runs hermetic (support/podman_peer.h). Needs root, podman, skopeo, unshare and
// docker-registry; skips otherwise.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "stowctl_env.h"
#include "support/image_seed.h"
#include "support/podman_peer.h"
#include "support/registry_fixture.h"

namespace stowage::itest {
namespace {

namespace fs = std::filesystem;
namespace t = stowage::test;
using nlohmann::json;
using ::testing::Contains;
using ::testing::HasSubstr;

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A rootfs tar made by GNU tar from `files` (path → content; a path ending in '/' is a directory).
fs::path rootfs_tar(const fs::path& dir, const std::string& name,
                    const std::map<std::string, std::string>& files) {
  const fs::path tree = dir / (name + ".d");
  fs::create_directories(tree);
  for (const auto& [path, content] : files) {
    if (path.ends_with("/")) {
      fs::create_directories(tree / path);
    } else {
      t::write_text_file(tree / path, content);
    }
  }
  const fs::path tar = dir / (name + ".tar");
  const auto r = t::run({"tar", "--sort=name", "-C", tree.string(), "-cf", tar.string(), "."});
  if (!r.ok()) throw std::runtime_error(r.describe());
  return tar;
}

class StowctlInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = t::podman_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    if (auto r = registry_skip_reason()) GTEST_SKIP() << *r;
    registry_ = std::make_unique<t::RegistryFixture>();
    env_.allow_insecure({host()});
  }

  std::string host() const { return registry_->host(); }

  // `stowctl inspect` of one image.
  json inspect(const std::string& name) const {
    const auto r = env_.run({"inspect", name});
    if (!r.ok()) throw std::runtime_error(r.describe());
    return json::parse(r.out).at(0);
  }

  // Imports a rootfs tar into podman as `name`.
  void podman_import(const fs::path& tar, const std::string& name) const {
    const auto r = podman_.podman({"import", tar.string(), name});
    ASSERT_TRUE(r.ok()) << r.describe();
  }

  std::unique_ptr<t::RegistryFixture> registry_;
  StowctlEnv env_;
  t::PodmanPeer podman_;
};

TEST_F(StowctlInteropTest, PullsWhatSkopeoAndPodmanPushed) {
  // skopeo (image_seed) pushed this one.
  t::ImageSpec spec;
  spec.layers = {{{"etc/os-release", "ID=stowage\n"}}, {{"app/run", "#!/bin/sh\n", 0755}}};
  const std::string skopeo_digest = registry_->seed_image("peers/skopeo", "1", spec);
  const t::BuiltImage built = t::write_oci_layout(env_.path("layout"), "1", spec);
  const auto pulled = env_.run({"pull", "-q", host() + "/peers/skopeo:1"});
  ASSERT_TRUE(pulled.ok()) << pulled.describe();
  EXPECT_EQ(trimmed(pulled.out), skopeo_digest);
  EXPECT_EQ(inspect(host() + "/peers/skopeo:1")["Id"], built.config_digest.substr(7));

  // podman pushed this one, compressing the layer itself.
  podman_import(rootfs_tar(env_.dir(), "podman", {{"usr/share/podman.txt", "from podman\n"}}),
                "localhost/podman-made:1");
  const auto push =
      podman_.podman({"push", "--tls-verify=false", "--digestfile", podman_.path("digest").string(),
                      "localhost/podman-made:1", host() + "/peers/podman:1"});
  ASSERT_TRUE(push.ok()) << push.describe();
  const std::string podman_digest = trimmed(t::read_text_file(podman_.path("digest")));
  ASSERT_TRUE(podman_digest.starts_with("sha256:")) << podman_digest;
  const auto from_podman = env_.run({"pull", "-q", host() + "/peers/podman:1"});
  ASSERT_TRUE(from_podman.ok()) << from_podman.describe();
  EXPECT_EQ(trimmed(from_podman.out), podman_digest);
  EXPECT_EQ(inspect(host() + "/peers/podman:1")["Id"],
            podman_.inspect("localhost/podman-made:1")["Id"]);
  const auto fsck = env_.run({"fsck"});
  EXPECT_TRUE(fsck.ok()) << fsck.describe();
}

TEST_F(StowctlInteropTest, PodmanAndSkopeoReadWhatStowctlPushed) {
  // An image stowctl made itself: loaded from a tar (its manifest is stowctl's own).
  podman_import(rootfs_tar(env_.dir(), "made", {{"etc/made", "by stowctl\n"}}), "localhost/made:1");
  const fs::path tar = env_.path("made-podman.tar");
  const auto save = podman_.podman({"save", "-o", tar.string(), "localhost/made:1"});
  ASSERT_TRUE(save.ok()) << save.describe();
  const auto load = env_.run({"load", "-i", tar.string()});
  ASSERT_TRUE(load.ok()) << load.describe();
  const auto push = env_.run({"push", "-q", "localhost/made:1", host() + "/stowctl/made:1"});
  ASSERT_TRUE(push.ok()) << push.describe();
  const std::string digest = trimmed(push.out);

  const auto skopeo = podman_.skopeo(
      {"inspect", "--tls-verify=false", "--no-creds", "docker://" + host() + "/stowctl/made:1"});
  ASSERT_TRUE(skopeo.ok()) << skopeo.describe();
  EXPECT_EQ(json::parse(skopeo.out)["Digest"], digest);

  t::PodmanPeer fresh;
  const auto pull = fresh.podman({"pull", "--tls-verify=false", host() + "/stowctl/made:1"});
  ASSERT_TRUE(pull.ok()) << pull.describe();
  const json pulled = fresh.inspect(host() + "/stowctl/made:1");
  EXPECT_EQ(pulled["Digest"], digest);
  EXPECT_EQ(pulled["Id"], inspect("localhost/made:1")["Id"]);
  EXPECT_EQ(pulled["Id"], podman_.inspect("localhost/made:1")["Id"]);
}

TEST_F(StowctlInteropTest, ArchivesBetweenStowctlPodmanAndSkopeo) {
  t::ImageSpec spec;
  spec.layers = {{{"etc/base", "base\n"}}, {{"srv/data", "data\n"}}};
  spec.labels = {{"test", "archives"}};
  registry_->seed_image("peers/archive", "1", spec);
  const std::string name = host() + "/peers/archive:1";
  ASSERT_TRUE(env_.run({"pull", "-q", name}).ok());
  const json ours = inspect(name);

  // docker-archive → podman load: same image ID, same name.
  const fs::path docker_tar = env_.path("docker.tar");
  const auto save = env_.run({"save", "-o", docker_tar.string(), name});
  ASSERT_TRUE(save.ok()) << save.describe();
  const auto load = podman_.podman({"load", "-i", docker_tar.string()});
  ASSERT_TRUE(load.ok()) << load.describe();
  EXPECT_THAT(podman_.image_names(), Contains(name));
  EXPECT_EQ(podman_.inspect(name)["Id"], ours["Id"]);

  // oci-archive → skopeo inspect: the manifest digest stowctl holds.
  const fs::path oci_tar = env_.path("oci.tar");
  const auto save_oci = env_.run({"save", "--format", "oci-archive", "-o", oci_tar.string(), name});
  ASSERT_TRUE(save_oci.ok()) << save_oci.describe();
  const auto skopeo = podman_.skopeo({"inspect", "oci-archive:" + oci_tar.string()});
  ASSERT_TRUE(skopeo.ok()) << skopeo.describe();
  EXPECT_EQ(json::parse(skopeo.out)["Digest"], ours["Digest"]);
  EXPECT_EQ(json::parse(skopeo.out)["Layers"], ours["Layers"]);

  // podman save → stowctl load: the image IDs podman reports.
  podman_import(rootfs_tar(env_.dir(), "other", {{"opt/other", "other\n"}}), "localhost/other:1");
  const fs::path podman_tar = env_.path("podman.tar");
  const auto podman_save =
      podman_.podman({"save", "-m", "-o", podman_tar.string(), name, "localhost/other:1"});
  ASSERT_TRUE(podman_save.ok()) << podman_save.describe();
  StowctlEnv fresh("stowctl-load");
  const auto loaded = fresh.run({"load", "-i", podman_tar.string()});
  ASSERT_TRUE(loaded.ok()) << loaded.describe();
  EXPECT_THAT(loaded.out, HasSubstr("Loaded image: " + name));
  EXPECT_THAT(loaded.out, HasSubstr("Loaded image: localhost/other:1"));
  for (const std::string& image : std::vector<std::string>{name, "localhost/other:1"}) {
    const auto r = fresh.run({"inspect", image});
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(json::parse(r.out)[0]["Id"], podman_.inspect(image)["Id"]) << image;
  }
  const auto fsck = fresh.run({"fsck"});
  EXPECT_TRUE(fsck.ok()) << fsck.describe();
}

TEST_F(StowctlInteropTest, DiffMatchesPodmanDiff) {
  podman_import(rootfs_tar(env_.dir(), "before",
                           {{"etc/config", "version=1\n"},
                            {"etc/keep", "unchanged\n"},
                            {"bin/old-tool", "old\n"},
                            {"var/lib/", ""}}),
                "localhost/diff-before:1");
  podman_import(rootfs_tar(env_.dir(), "after",
                           {{"etc/config", "version=2, longer\n"},
                            {"etc/keep", "unchanged\n"},
                            {"bin/", ""},
                            {"opt/new/", ""},
                            {"opt/new/tool", "new\n"},
                            {"var/lib/", ""}}),
                "localhost/diff-after:1");
  const fs::path tar = env_.path("diff.tar");
  const auto save = podman_.podman(
      {"save", "-m", "-o", tar.string(), "localhost/diff-after:1", "localhost/diff-before:1"});
  ASSERT_TRUE(save.ok()) << save.describe();
  const auto load = env_.run({"load", "-i", tar.string()});
  ASSERT_TRUE(load.ok()) << load.describe();

  for (const auto& [a, b] : {std::pair{"localhost/diff-after:1", "localhost/diff-before:1"},
                             std::pair{"localhost/diff-before:1", "localhost/diff-after:1"}}) {
    SCOPED_TRACE(fmt::format("diff {} {}", a, b));
    const auto theirs = podman_.podman({"diff", a, b});
    ASSERT_TRUE(theirs.ok()) << theirs.describe();
    const auto ours = env_.run({"diff", a, b});
    ASSERT_TRUE(ours.ok()) << ours.describe();
    // podman walks directories through a Go map, so its order changes from run to run; stowctl
    // sorts by path. The same lines, then, and ours in order.
    auto their_lines = lines(theirs.out);
    std::sort(their_lines.begin(), their_lines.end(),
              [](const auto& x, const auto& y) { return x.substr(2) < y.substr(2); });
    EXPECT_EQ(lines(ours.out), their_lines);
  }
  // The three kinds are all there (so the comparison above covers them).
  const auto ours = env_.run({"diff", "localhost/diff-after:1", "localhost/diff-before:1"});
  EXPECT_THAT(ours.out, HasSubstr("A /opt/new\n"));
  EXPECT_THAT(ours.out, HasSubstr("C /etc/config\n"));
  EXPECT_THAT(ours.out, HasSubstr("D /bin/old-tool\n"));
}

}  // namespace
}  // namespace stowage::itest
