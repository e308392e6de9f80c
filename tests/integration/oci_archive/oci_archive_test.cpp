// libs/oci archives against the real peers as oracles (Debian podman 4.3, skopeo 1.9):
//   - `podman load -i` takes our docker-archive and oci-archive, and `podman images` / `podman
//     image inspect` show our names, our config digest as the image ID and our diffIDs;
//   - `skopeo inspect oci-archive:` reads our oci-archive and reports our manifest digest, and the
//     layout skopeo copies out of it passes the shared OCI layout checker;
//   - what `podman save` writes (docker-archive, multi-image docker-archive, oci-archive) of images
//     podman loaded from layouts built by tests/support/image_seed.h loads in our reader with the
//     same image IDs, diffIDs and (for oci-archive) the manifest digest skopeo reports.
// podman runs hermetic (support/podman_peer.h). Needs root, podman, skopeo and unshare; skips
// otherwise.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "base/error.h"
#include "oci/archive.h"
#include "oci/manifest.h"
#include "support/image_seed.h"
#include "support/podman_peer.h"
#include "support/process.h"
#include "unit/oci_store/oci_layout_check.h"
#include "unit/oci_store/test_util.h"

namespace stowage::oci {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

using Peers = test::PodmanPeer;

std::string hex(const std::string& digest) {
  return digest.substr(7);
}

class OciArchivePeers : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = test::podman_unavailable_reason(); !why.empty())
      GTEST_SKIP() << why;
  }

  testing::TempDir dir_{"stowage-oci-archive-store"};
  Store store_{dir_ / "store"};
};

TEST_F(OciArchivePeers, PodmanLoadsOurDockerArchive) {
  const std::map<std::string, std::string> base = {{"etc/base", "shared base layer\n"}};
  const auto a = testing::put_image(
      store_, {.layers = {base, {{"app/a", "a\n"}}}, .labels = {{"image", "a"}}});
  const auto b = testing::put_image(store_, {.layers = {base, {{"app/b", "b\n"}}},
                                             .compression = Compression::kZstd,
                                             .labels = {{"image", "b"}}});
  const fs::path out = dir_ / "images.tar";
  write_docker_archive(
      store_,
      {{a.manifest, {"localhost/stowage/a:v1", "quay.io/team/a:1"}}, {b.manifest, {"stowage-b:2"}}},
      out);

  Peers peers;
  const auto load = peers.podman({"load", "-i", out.string()});
  ASSERT_TRUE(load.ok()) << load.describe();
  EXPECT_THAT(peers.image_names(),
              UnorderedElementsAre("localhost/stowage/a:v1", "quay.io/team/a:1",
                                   "docker.io/library/stowage-b:2"));
  const json ia = peers.inspect("localhost/stowage/a:v1");
  EXPECT_EQ(ia["Id"], hex(a.config_digest));  // image ID = our config digest
  EXPECT_EQ(ia["RootFS"]["Layers"], json(a.diff_ids));
  const json ib = peers.inspect("docker.io/library/stowage-b:2");
  EXPECT_EQ(ib["Id"], hex(b.config_digest));
  EXPECT_EQ(ib["RootFS"]["Layers"], json(b.diff_ids));

  // Why full names are the default: podman reads docker save's familiar "stowage-b:2" as
  // localhost/stowage-b:2, not as the docker.io image it names.
  const fs::path familiar = dir_ / "familiar.tar";
  write_docker_archive(store_, {{b.manifest, {"stowage-b:3"}}}, familiar,
                       {.repo_tags = RepoTagStyle::kFamiliar});
  Peers fresh;
  ASSERT_TRUE(fresh.podman({"load", "-i", familiar.string()}).ok());
  EXPECT_THAT(fresh.image_names(), UnorderedElementsAre("localhost/stowage-b:3"));
}

TEST_F(OciArchivePeers, SkopeoAndPodmanReadOurOciArchive) {
  const auto a = testing::put_image(store_, {.layers = {{{"x", "1"}}, {{"y", "2"}}}});
  const fs::path out = dir_ / "image.oci.tar";
  write_oci_archive(store_, {{a.manifest, {"quay.io/team/app:v1"}}}, out);

  Peers peers;
  const auto inspect = peers.skopeo({"inspect", "oci-archive:" + out.string()});
  ASSERT_TRUE(inspect.ok()) << inspect.describe();
  EXPECT_EQ(json::parse(inspect.out)["Digest"], a.manifest.digest);
  const auto raw = peers.skopeo({"inspect", "--raw", "oci-archive:" + out.string()});
  ASSERT_TRUE(raw.ok()) << raw.describe();
  EXPECT_EQ(raw.out, store_.read(a.manifest.digest));
  const auto by_ref = peers.skopeo({"inspect", "oci-archive:" + out.string() + ":v1"});
  EXPECT_TRUE(by_ref.ok()) << by_ref.describe();

  // skopeo's copy out of our archive is a valid layout with the same blobs.
  const fs::path copied = peers.path("copied");
  const auto copy = peers.skopeo({"--insecure-policy", "copy", "oci-archive:" + out.string(),
                                  "oci:" + copied.string() + ":v1"});
  ASSERT_TRUE(copy.ok()) << copy.describe();
  EXPECT_THAT(testing::oci_layout_problems(copied), IsEmpty());
  EXPECT_TRUE(fs::exists(copied / "blobs" / "sha256" / hex(a.manifest.digest)));

  const auto load = peers.podman({"load", "-i", out.string()});
  ASSERT_TRUE(load.ok()) << load.describe();
  EXPECT_THAT(peers.image_names(), Contains("quay.io/team/app:v1"));
  EXPECT_EQ(peers.inspect("quay.io/team/app:v1")["Id"], hex(a.config_digest));
}

TEST_F(OciArchivePeers, OurReaderLoadsWhatPodmanSaves) {
  Peers peers;
  // Two images sharing their base layer, built as OCI layouts and loaded into podman.
  const std::vector<test::LayerFile> base = {{"etc/base", "base\n"}};
  const test::BuiltImage one =
      test::write_oci_layout(peers.path("layout-one"), "one",
                             {.layers = {base, {{"app/one", "1\n"}}}, .labels = {{"n", "1"}}});
  const test::BuiltImage two =
      test::write_oci_layout(peers.path("layout-two"), "two",
                             {.layers = {base, {{"app/two", "2\n"}}}, .labels = {{"n", "2"}}});
  EXPECT_THAT(testing::oci_layout_problems(peers.path("layout-one")), IsEmpty());
  for (const auto& [layout, image, name] :
       {std::tuple{"layout-one", &one, "localhost/seed/one:v1"},
        std::tuple{"layout-two", &two, "localhost/seed/two:v2"}}) {
    // podman load names a layout directory after its path, which must then be a valid
    // reference; loading it as an oci-archive (made with GNU tar, not our code) avoids that.
    const fs::path archive = peers.path(std::string(layout) + ".tar");
    const auto tar =
        test::run({"tar", "-C", peers.path(layout).string(), "-cf", archive.string(), "."});
    ASSERT_TRUE(tar.ok()) << tar.describe();
    const auto load = peers.podman({"load", "-i", archive.string()});
    ASSERT_TRUE(load.ok()) << load.describe();
    const auto tag = peers.podman({"tag", hex(image->config_digest), name});
    ASSERT_TRUE(tag.ok()) << tag.describe();
  }

  struct Saved {
    std::string format;
    std::vector<std::string> names;
  };
  for (const Saved& s :
       {Saved{"docker-archive", {"localhost/seed/one:v1"}},
        Saved{"docker-archive", {"localhost/seed/one:v1", "localhost/seed/two:v2"}},
        Saved{"oci-archive", {"localhost/seed/two:v2"}}}) {
    SCOPED_TRACE(fmt::format("{} of {} image(s)", s.format, s.names.size()));
    const fs::path file = peers.path(fmt::format("saved-{}-{}.tar", s.format, s.names.size()));
    std::vector<std::string> args = {"save", "--format", s.format, "-o", file.string()};
    if (s.names.size() > 1) args.push_back("-m");
    args.insert(args.end(), s.names.begin(), s.names.end());
    const auto save = peers.podman(args);
    ASSERT_TRUE(save.ok()) << save.describe();

    testing::TempDir fresh;
    Store store(fresh / "store");
    const ImportResult r = import_archive(store, file);
    ASSERT_EQ(r.images.size(), s.names.size());
    for (std::size_t i = 0; i < s.names.size(); ++i) {
      const json podman_image = peers.inspect(s.names[i]);
      const ImportedImage* mine = nullptr;
      for (const auto& image : r.images) {
        if (std::find(image.names.begin(), image.names.end(), s.names[i]) != image.names.end()) {
          mine = &image;
        }
      }
      ASSERT_NE(mine, nullptr) << s.names[i] << " not among the imported names";
      EXPECT_EQ(mine->config_digest, "sha256:" + podman_image["Id"].get<std::string>());
      const ImageConfig config = parse_image_config(store.read(mine->config_digest));
      EXPECT_EQ(json(config.diff_ids), podman_image["RootFS"]["Layers"]);
      EXPECT_EQ(store.resolve(s.names[i])->digest, mine->manifest.digest);
    }
    if (s.format == "oci-archive") {
      EXPECT_EQ(r.format, ArchiveFormat::kOciLayout);
      const auto inspect = peers.skopeo({"inspect", "oci-archive:" + file.string()});
      ASSERT_TRUE(inspect.ok()) << inspect.describe();
      EXPECT_EQ(json::parse(inspect.out)["Digest"], r.images[0].manifest.digest);
    } else {
      EXPECT_EQ(r.format, ArchiveFormat::kDockerArchive);
    }
    EXPECT_TRUE(store.verify().clean());
    EXPECT_THAT(testing::oci_layout_problems(fresh / "store"), IsEmpty());

    // And back: our docker-archive of what we read loads in podman as the same image.
    if (s.format == "docker-archive" && s.names.size() == 2) {
      std::vector<ArchiveImage> images;
      for (const auto& image : r.images)
        images.push_back(
            {image.manifest, {"localhost/again/" + hex(image.config_digest).substr(0, 12) + ":x"}});
      const fs::path again = peers.path("again.tar");
      write_docker_archive(store, images, again);
      Peers other;
      const auto load = other.podman({"load", "-i", again.string()});
      ASSERT_TRUE(load.ok()) << load.describe();
      EXPECT_EQ(other.inspect(images[0].names[0])["Id"], hex(r.images[0].config_digest));
    }
  }
}

}  // namespace
}  // namespace stowage::oci
