// The in-use rule shared by the agent's prune and stowctl's CRI rmi: which containers use an
// image (by ID, repo digest or tag in any of the three container fields), pinned, the sandbox
// image, and the phrases that name what protects an image.
#include "cri/image_use.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace stowage::cri {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

Image image() {
  Image i;
  i.id = "sha256:1111";
  i.repo_tags = {"r.test/app:1", "r.test/app:latest"};
  i.repo_digests = {"r.test/app@sha256:aaaa"};
  i.size = 10;
  return i;
}

Container container(std::string id, std::string name, ContainerState state, std::string image,
                    std::string image_ref = "", std::string image_id = "") {
  Container c;
  c.id = std::move(id);
  c.name = std::move(name);
  c.state = state;
  c.image = std::move(image);
  c.image_ref = std::move(image_ref);
  c.image_id = std::move(image_id);
  return c;
}

TEST(NamesImage, MatchesIdTagsAndDigestsExactlyAndNeverEmpty) {
  const Image i = image();
  EXPECT_TRUE(names_image(i, "sha256:1111"));
  EXPECT_TRUE(names_image(i, "r.test/app:latest"));
  EXPECT_TRUE(names_image(i, "r.test/app@sha256:aaaa"));
  EXPECT_FALSE(names_image(i, "r.test/app"));
  EXPECT_FALSE(names_image(i, "sha256:111"));
  EXPECT_FALSE(names_image(i, ""));
  Image no_id;
  EXPECT_FALSE(names_image(no_id, ""));
}

TEST(ImageUse, EveryContainerNamingTheImageInAnyFieldAndAnyStateCounts) {
  const std::vector<Container> containers = {
      // containerd 1.6: the spec's tag in image, the image ID in image_ref, no image_id.
      container("c1", "web", ContainerState::kRunning, "r.test/app:1", "sha256:1111"),
      container("c2", "other", ContainerState::kRunning, "r.test/other:1", "sha256:2222"),
      // Exited, known only by its repo digest in image_ref.
      container("c3", "job", ContainerState::kExited, "sha256:9999", "r.test/app@sha256:aaaa"),
      // Newer runtimes: image_id.
      container("c4", "init", ContainerState::kCreated, "", "", "sha256:1111"),
  };
  const ImageUse use = image_use(image(), containers, {});
  ASSERT_EQ(use.containers.size(), 3u);
  EXPECT_EQ(use.containers[0].id, "c1");
  EXPECT_EQ(use.containers[1].id, "c3");
  EXPECT_EQ(use.containers[2].id, "c4");
  EXPECT_TRUE(use.in_use());
  EXPECT_FALSE(use.pinned);
  EXPECT_FALSE(use.sandbox_image);
  EXPECT_FALSE(use.removable());
  EXPECT_THAT(protections(use), ElementsAre("used by container c1 (web, running)",
                                            "used by container c3 (job, exited)",
                                            "used by container c4 (init, created)"));
}

TEST(ImageUse, UnusedUnpinnedOtherImageIsRemovable) {
  const std::vector<Container> containers = {
      container("c2", "other", ContainerState::kExited, "r.test/other:1", "sha256:2222")};
  const ImageUse use = image_use(image(), containers, {"registry.k8s.io/pause:3.9"});
  EXPECT_TRUE(use.removable());
  EXPECT_THAT(protections(use), IsEmpty());
}

TEST(ImageUse, PinnedAndSandboxImageAreReportedTogetherWithUsers) {
  Image pause = image();
  pause.pinned = true;
  const std::vector<Container> containers = {
      container("c1", "", ContainerState::kUnknown, "r.test/app:1")};
  const ImageUse use = image_use(pause, containers, {"x.test/none:1", "r.test/app:latest"});
  EXPECT_TRUE(use.pinned);
  EXPECT_TRUE(use.sandbox_image);
  EXPECT_FALSE(use.removable());
  EXPECT_THAT(protections(use), ElementsAre("pinned by the runtime", "the sandbox (pause) image",
                                            "used by container c1 (unnamed, unknown)"));
}

TEST(ImageUse, SandboxImageMatchesByDigestOrIdButNotByRepositoryAlone) {
  EXPECT_TRUE(image_use(image(), {}, {"r.test/app@sha256:aaaa"}).sandbox_image);
  EXPECT_TRUE(image_use(image(), {}, {"sha256:1111"}).sandbox_image);
  EXPECT_FALSE(image_use(image(), {}, {"r.test/app"}).sandbox_image);
  EXPECT_FALSE(image_use(image(), {}, {""}).sandbox_image);
}

}  // namespace
}  // namespace stowage::cri
