// libs/oci image_fs: layers applied with the OCI whiteout rules, and diffs with podman's
// conventions (the real podman is the oracle in tests/integration/stowctl).
#include "oci/image_fs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/sha256.h"
#include "unit/oci_store/test_util.h"

namespace stowage::oci {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing::TarBuilder;
using testing::TempDir;

class ImageFsTest : public ::testing::Test {
 protected:
  Descriptor layer(const std::string& tar, Compression compression = Compression::kGzip) {
    return testing::put_blob(store_, media::kOciLayerGzip, testing::compress(tar, compression));
  }

  std::vector<std::string> paths(const FsTree& tree) {
    std::vector<std::string> out;
    for (const auto& [path, entry] : tree) out.push_back(path);
    return out;
  }

  TempDir dir_;
  Store store_{dir_.path()};
};

TEST_F(ImageFsTest, LayersStackAndUpperFilesWin) {
  const auto l1 = layer(TarBuilder().dir("etc").file("etc/a", "one").file("etc/b", "b").finish());
  const auto l2 = layer(TarBuilder().file("etc/a", "two", 0600).finish(), Compression::kZstd);
  const FsTree tree = build_fs_tree(store_, {l1, l2});
  EXPECT_THAT(paths(tree), ElementsAre("etc", "etc/a", "etc/b"));
  EXPECT_EQ(tree.at("etc/a").digest, sha256_digest("two"));
  EXPECT_EQ(tree.at("etc/a").mode, 0600u);
  EXPECT_EQ(tree.at("etc/a").size, 3u);
}

TEST_F(ImageFsTest, WhiteoutDeletesAPathAndEverythingBelowIt) {
  const auto l1 = layer(TarBuilder()
                            .dir("opt")
                            .dir("opt/app")
                            .file("opt/app/bin", "x")
                            .file("opt/keep", "k")
                            .finish());
  const auto l2 = layer(TarBuilder().file("opt/.wh.app", "").finish());
  EXPECT_THAT(paths(build_fs_tree(store_, {l1, l2})), ElementsAre("opt", "opt/keep"));
}

TEST_F(ImageFsTest, OpaqueDirectoryHidesOnlyLowerLayers) {
  const auto l1 =
      layer(TarBuilder().dir("var").file("var/old1", "1").file("var/old2", "2").finish());
  // The marker may come after the layer's own entries in the same directory.
  const auto l2 =
      layer(TarBuilder().dir("var").file("var/new", "n").file("var/.wh..wh..opq", "").finish());
  EXPECT_THAT(paths(build_fs_tree(store_, {l1, l2})), ElementsAre("var", "var/new"));
}

TEST_F(ImageFsTest, AFileReplacingADirectoryHidesItsContents) {
  const auto l1 = layer(TarBuilder().dir("x").file("x/y", "1").finish());
  const auto l2 = layer(TarBuilder().symlink("x", "/elsewhere").finish());
  const FsTree tree = build_fs_tree(store_, {l1, l2});
  EXPECT_THAT(paths(tree), ElementsAre("x"));
  EXPECT_EQ(tree.at("x").type, TarEntryType::kSymlink);
  EXPECT_EQ(tree.at("x").link_target, "/elsewhere");  // absolute targets stay inside the image
}

TEST_F(ImageFsTest, HostileAndMissingLayersAreRefused) {
  const auto escape = layer(TarBuilder().file("../../etc/passwd", "x").finish());
  try {
    build_fs_tree(store_, {escape});
    ADD_FAILURE() << "a path leaving the root was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument) << e.what();
  }
  Descriptor missing;
  missing.digest = sha256_digest("not stored");
  try {
    build_fs_tree(store_, {missing});
    ADD_FAILURE() << "a missing layer was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
  }
}

FsEntry file(std::string_view content, std::int64_t mtime = 0) {
  FsEntry e;
  e.type = TarEntryType::kRegular;
  e.mode = 0644;
  e.mtime = mtime;
  e.size = content.size();
  e.digest = sha256_digest(content);
  return e;
}

FsEntry directory(std::uint32_t mode = 0755, std::int64_t mtime = 0) {
  FsEntry e;
  e.type = TarEntryType::kDirectory;
  e.mode = mode;
  e.mtime = mtime;
  return e;
}

TEST(DiffFsTrees, FollowsPodmanConventions) {
  const FsTree from = {{"etc", directory()},         {"etc/a", file("a")},
                       {"etc/c", file("c")},         {"gone", directory()},
                       {"gone/deep", directory()},   {"gone/deep/f", file("f")},
                       {"same", directory(0755, 1)}, {"same/f", file("f")}};
  const FsTree to = {{"etc", directory()},         {"etc/a", file("A")},  // same size, other bytes
                     {"new", directory()},         {"new/x", file("x")},
                     {"same", directory(0755, 2)},  // only the directory's mtime differs
                     {"same/f", file("f")}};
  std::vector<std::string> lines;
  for (const auto& c : diff_fs_trees(from, to)) {
    lines.push_back(std::string(1, change_letter(c.kind)) + " " + c.path);
  }
  // A deleted tree is reported once; an added one with its contents; a directory holding a
  // change is changed itself; a directory's own mtime is not compared.
  EXPECT_THAT(lines,
              ElementsAre("C /etc", "C /etc/a", "D /etc/c", "D /gone", "A /new", "A /new/x"));
}

TEST(DiffFsTrees, IdenticalTreesHaveNoChanges) {
  const FsTree tree = {{"a", directory()}, {"a/b", file("b")}};
  EXPECT_THAT(diff_fs_trees(tree, tree), IsEmpty());
}

TEST(DiffFsTrees, MetadataChangesCount) {
  FsTree from = {{"f", file("x", 1)}, {"d", directory(0755)}};
  FsTree to = {{"f", file("x", 2)}, {"d", directory(0700)}};
  std::vector<FsChange> want = {{ChangeKind::kChanged, "/d"}, {ChangeKind::kChanged, "/f"}};
  EXPECT_EQ(diff_fs_trees(from, to), want);
}

}  // namespace
}  // namespace stowage::oci
