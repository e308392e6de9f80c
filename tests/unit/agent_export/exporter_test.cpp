// The agent's exporter without servers: pure planning (file names, plan against the node's
// images, blob sources, containerd's root), and the Exporter over temp dirs laid out as the
// agent's content store and containerd's content store under a host root, with no registry.
#include "node-agent/exporter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "base/sha256.h"
#include "node-agent/node_status.h"
#include "oci/archive.h"
#include "unit/oci_store/test_util.h"

namespace stowage::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr const char* kRepo = "registry.test/team/app";

// --- Pure ----------------------------------------------------------------------------------------

TEST(ExportFileName, AcceptsPlainNamesAndRefusesEscapes) {
  EXPECT_NO_THROW(check_export_file_name("base-images.tar"));
  EXPECT_NO_THROW(check_export_file_name("a..b.tar"));
  for (const std::string& bad :
       std::vector<std::string>{"", ".", "..", "../escape.tar", "a/b.tar", "/etc/passwd",
                                ".hidden.tar", std::string("a\0b", 3), std::string(256, 'x')}) {
    try {
      check_export_file_name(bad);
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument);
      EXPECT_THAT(e.what(), HasSubstr("inside the export directory"));
    }
  }
}

TEST(ContainerdRoot, DefaultCustomAndRefused) {
  EXPECT_EQ(containerd_root_from_config("version = 2\n", "c.toml"), "/var/lib/containerd");
  EXPECT_EQ(containerd_root_from_config("version = 2\nroot = \"/data/ctr\"\n", "c.toml"),
            "/data/ctr");
  EXPECT_THROW(containerd_root_from_config("root = \"relative\"\n", "c.toml"), Error);
  EXPECT_THROW(containerd_root_from_config("root = [\n", "c.toml"), Error);
}

HeldImage held(std::string name, std::string digest,
               std::optional<api::ImageState> state = api::ImageState::kPresent) {
  return HeldImage{.name = std::move(name), .digest = std::move(digest), .state = state};
}

TEST(PlanExport, MatchesPlannedImagesAndCollectsTheirTags) {
  const std::string d1 = "sha256:" + std::string(64, '1');
  const std::string d2 = "sha256:" + std::string(64, '2');
  api::NodeExport exp{.file_name = "x.tar",
                      .format = api::ExportFormat::kDockerArchive,
                      .images = {std::string(kRepo) + "@" + d1, "busybox@" + d2}};
  std::vector<HeldImage> images = {
      held(std::string(kRepo) + ":2", d1), held(std::string(kRepo) + ":1", d1),
      held("docker.io/library/busybox@" + d2, d2), held(std::string(kRepo) + ":old", d2)};
  images[1].pull_secrets = {"{\"auths\":{}}"};
  const ExportPlan plan = plan_export(exp, images);
  ASSERT_EQ(plan.readiness, ExportReadiness::kReady) << plan.message;
  ASSERT_EQ(plan.images.size(), 2u);
  EXPECT_EQ(plan.images[0].repository, kRepo);
  EXPECT_EQ(plan.images[0].digest, d1);
  EXPECT_THAT(plan.images[0].names,
              ElementsAre(std::string(kRepo) + ":1", std::string(kRepo) + ":2"));
  EXPECT_THAT(plan.images[0].pull_secrets, ElementsAre("{\"auths\":{}}"));
  EXPECT_EQ(plan.images[1].repository, "docker.io/library/busybox");
  EXPECT_THAT(plan.images[1].names, IsEmpty());  // planned by digest only: untagged
}

TEST(PlanExport, PendingUntilPresentAndFailedWhenNotPlanned) {
  const std::string d = "sha256:" + std::string(64, 'a');
  api::NodeExport exp{.file_name = "x.tar",
                      .format = api::ExportFormat::kOciArchive,
                      .images = {std::string(kRepo) + "@" + d}};
  ExportPlan plan =
      plan_export(exp, {held(std::string(kRepo) + ":1", d, api::ImageState::kPulling)});
  EXPECT_EQ(plan.readiness, ExportReadiness::kPending);
  EXPECT_THAT(plan.message, HasSubstr("Pulling"));
  plan = plan_export(exp, {held(std::string(kRepo) + ":1", "sha256:" + std::string(64, 'b'))});
  EXPECT_EQ(plan.readiness, ExportReadiness::kFailed);
  EXPECT_THAT(plan.message, HasSubstr("not among the node's planned images"));
  exp.images = {"not a reference"};
  EXPECT_EQ(plan_export(exp, {}).readiness, ExportReadiness::kFailed);
  exp.images = {std::string(kRepo) + "@" + d};
  exp.file_name = "../../etc/cron.d/x";
  plan = plan_export(exp, {held(std::string(kRepo) + ":1", d)});
  EXPECT_EQ(plan.readiness, ExportReadiness::kFailed);
  EXPECT_THAT(plan.message, HasSubstr("contains '/'"));
}

TEST(PlanBlobSources, StoreFirstContainerdOnlyWhenWholeElseRegistry) {
  const std::vector<std::string> blobs = {"m", "c", "l1", "l2"};
  EXPECT_THAT(plan_blob_sources(blobs, {"m", "c", "l1", "l2"}, {}),
              ElementsAre(BlobSource::kAgentStore, BlobSource::kAgentStore, BlobSource::kAgentStore,
                          BlobSource::kAgentStore));
  EXPECT_THAT(plan_blob_sources(blobs, {"m"}, {"m", "c", "l1", "l2"}),
              ElementsAre(BlobSource::kAgentStore, BlobSource::kContainerd, BlobSource::kContainerd,
                          BlobSource::kContainerd));
  // containerd lacks a layer (a pull in progress, a GC): none of its blobs are used.
  EXPECT_THAT(plan_blob_sources(blobs, {"c"}, {"m", "c", "l1"}),
              ElementsAre(BlobSource::kRegistry, BlobSource::kAgentStore, BlobSource::kRegistry,
                          BlobSource::kRegistry));
}

TEST(ExportStatus, ExportsReportedAndAFailedOneDegradesTheNode) {
  api::NodeCacheSpec spec;
  spec.exports = {{.file_name = "a.tar"}, {.file_name = "b.tar"}};
  SyncOutcome outcome;
  outcome.generation = 3;
  outcome.exports = {{.file_name = "a.tar",
                      .format = api::ExportFormat::kDockerArchive,
                      .size_bytes = 10,
                      .sha256 = std::string(64, 'f'),
                      .state = api::ExportState::kWritten,
                      .message = ""},
                     {.file_name = "b.tar",
                      .format = api::ExportFormat::kDockerArchive,
                      .size_bytes = std::nullopt,
                      .sha256 = "",
                      .state = api::ExportState::kFailed,
                      .message = "writing b.tar: no space"}};
  const api::NodeCacheStatus next = next_status(spec, {}, outcome, api::Time{});
  EXPECT_EQ(next.exports, outcome.exports);
  const api::Condition* degraded = api::find_condition(next.conditions, api::kConditionDegraded);
  ASSERT_NE(degraded, nullptr);
  EXPECT_EQ(degraded->status, api::ConditionStatus::kTrue);
  EXPECT_EQ(degraded->reason, kReasonExportsFailed);
}

// --- Exporter over temp dirs
// ----------------------------------------------------------------------

class ExporterTest : public ::testing::Test {
 protected:
  fs::path containerd_blobs() const {
    return host_ / "var/lib/containerd/io.containerd.content.v1.content/blobs/sha256";
  }

  // Builds an image in a scratch store and lays its blobs out as containerd's content store.
  oci::testing::TestImage make_containerd_image(const oci::testing::TestImageSpec& spec = {}) {
    oci::Store scratch(dir_ / "scratch");
    const auto image = oci::testing::put_image(scratch, spec);
    fs::create_directories(containerd_blobs());
    for (const auto& e : fs::directory_iterator(dir_ / "scratch/blobs/sha256")) {
      fs::copy_file(e.path(), containerd_blobs() / e.path().filename(),
                    fs::copy_options::overwrite_existing);
    }
    return image;
  }

  ExporterOptions options() const {
    return ExporterOptions{
        .export_dir = dir_ / "exports", .store_dir = dir_ / "store", .host_root = host_};
  }

  std::vector<HeldImage> held_for(const oci::testing::TestImage& image) const {
    return {held(std::string(kRepo) + ":1.0", image.manifest.digest)};
  }
  api::NodeExport export_of(const oci::testing::TestImage& image, std::string file,
                            api::ExportFormat format = api::ExportFormat::kDockerArchive) const {
    return {.file_name = std::move(file),
            .format = format,
            .images = {std::string(kRepo) + "@" + image.manifest.digest}};
  }

  static std::string sha_of(const fs::path& p) { return sha256_hex(oci::testing::read_whole(p)); }
  std::vector<std::string> export_dir_entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_ / "exports")) {
      out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  oci::testing::TempDir dir_{"stowage-export"};
  fs::path host_ = dir_ / "host";
};

TEST_F(ExporterTest, WritesFromContainerdVerifiedThenSkipsAnUnchangedFile) {
  const auto image = make_containerd_image();
  // A temp file of an interrupted write is removed when the exporter starts.
  fs::create_directories(dir_ / "exports");
  oci::testing::write_whole(dir_ / "exports/.tmp-app.tar-abc123", "partial");
  Exporter exporter(options(), real_clock());
  EXPECT_FALSE(fs::exists(dir_ / "exports/.tmp-app.tar-abc123"));

  ExportResult r = exporter.run(export_of(image, "app.tar"), held_for(image));
  ASSERT_EQ(r.outcome, ExportOutcome::kWritten) << r.status.message;
  EXPECT_EQ(r.status.state, api::ExportState::kWritten);
  const fs::path file = dir_ / "exports/app.tar";
  ASSERT_TRUE(r.status.size_bytes.has_value());
  EXPECT_EQ(static_cast<std::uint64_t>(*r.status.size_bytes), fs::file_size(file));
  EXPECT_EQ(r.status.sha256, sha_of(file));
  EXPECT_GT(r.blob_bytes[BlobSource::kContainerd], 0u);
  EXPECT_EQ(r.blob_bytes.count(BlobSource::kRegistry), 0u);
  EXPECT_THAT(export_dir_entries(), ElementsAre("app.tar"));
  // The docker-archive names the image by its planned tag.
  const auto files = oci::testing::tar_files(file);
  ASSERT_TRUE(files.contains("manifest.json"));
  EXPECT_THAT(files.at("manifest.json"), HasSubstr(std::string(kRepo) + ":1.0"));
  EXPECT_TRUE(exporter.store().verify().clean());
  EXPECT_TRUE(exporter.store().has(image.manifest.digest));

  // Unchanged: not written again (same inode times), same status.
  const auto mtime = fs::last_write_time(file);
  ExportResult again = exporter.run(export_of(image, "app.tar"), held_for(image));
  EXPECT_EQ(again.outcome, ExportOutcome::kUnchanged);
  EXPECT_EQ(again.status, r.status);
  EXPECT_EQ(fs::last_write_time(file), mtime);

  // A new exporter (a restarted agent) trusts the record too; a file changed behind its back is
  // written again.
  Exporter restarted(options(), real_clock());
  EXPECT_EQ(restarted.run(export_of(image, "app.tar"), held_for(image)).outcome,
            ExportOutcome::kUnchanged);
  oci::testing::write_whole(file, "tampered");
  ExportResult rewritten = restarted.run(export_of(image, "app.tar"), held_for(image));
  EXPECT_EQ(rewritten.outcome, ExportOutcome::kWritten);
  EXPECT_EQ(rewritten.status.sha256, sha_of(file));
  EXPECT_EQ(rewritten.status.sha256, r.status.sha256);  // deterministic tar
}

TEST_F(ExporterTest, AgentStoreServesFirstAndOciArchiveWritten) {
  const auto image = make_containerd_image();
  Exporter exporter(options(), real_clock());
  ASSERT_EQ(exporter.run(export_of(image, "a.tar"), held_for(image)).outcome,
            ExportOutcome::kWritten);
  fs::remove_all(host_ / "var/lib/containerd");
  ExportResult r =
      exporter.run(export_of(image, "b.tar", api::ExportFormat::kOciArchive), held_for(image));
  ASSERT_EQ(r.outcome, ExportOutcome::kWritten) << r.status.message;
  EXPECT_TRUE(r.blob_bytes.empty());
  const auto files = oci::testing::tar_files(dir_ / "exports/b.tar");
  EXPECT_TRUE(files.contains("oci-layout"));
  EXPECT_TRUE(files.contains("blobs/sha256/" + image.manifest.digest.substr(7)));
}

TEST_F(ExporterTest, IncompleteOrCorruptContainerdIsNotUsed) {
  const auto image = make_containerd_image(
      {.layers = {{{"a", "first\n"}}, {{"b", "second\n"}}}, .labels = {{"x", "1"}}});
  // One layer missing: containerd does not hold the whole image, and there is no registry.
  const fs::path layer = containerd_blobs() / image.layer_digests[1].substr(7);
  const std::string bytes = oci::testing::read_whole(layer);
  fs::remove(layer);
  Exporter exporter(options(), real_clock());
  ExportResult r = exporter.run(export_of(image, "app.tar"), held_for(image));
  EXPECT_EQ(r.outcome, ExportOutcome::kFailed);
  EXPECT_TRUE(r.retry);
  EXPECT_THAT(r.status.message, HasSubstr("no registry access"));
  EXPECT_FALSE(exporter.store().has(image.layer_digests[0]));

  // Every blob there, but one does not match its digest: refused, nothing of it kept.
  std::string corrupt = bytes;
  corrupt[corrupt.size() / 2] ^= 0x01;
  oci::testing::write_whole(layer, corrupt);
  r = exporter.run(export_of(image, "app.tar"), held_for(image));
  EXPECT_EQ(r.outcome, ExportOutcome::kFailed);
  EXPECT_FALSE(exporter.store().has(image.layer_digests[1]));
  EXPECT_THAT(export_dir_entries(), IsEmpty());
  EXPECT_TRUE(exporter.store().verify().clean());
}

TEST_F(ExporterTest, FileNameLeavingTheExportDirIsRefused) {
  const auto image = make_containerd_image();
  Exporter exporter(options(), real_clock());
  ExportResult r = exporter.run(export_of(image, "../escape.tar"), held_for(image));
  EXPECT_EQ(r.outcome, ExportOutcome::kFailed);
  EXPECT_EQ(r.status.state, api::ExportState::kFailed);
  EXPECT_FALSE(r.retry);
  EXPECT_FALSE(fs::exists(dir_ / "escape.tar"));
  EXPECT_THAT(export_dir_entries(), IsEmpty());
}

TEST_F(ExporterTest, DiskFullLeavesNoFileVisible) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const auto image =
      make_containerd_image({.layers = {{{"big", oci::testing::random_bytes(2 << 20, 7)}}},
                             .compression = oci::Compression::kNone});
  const fs::path exports = dir_ / "exports";
  fs::create_directories(exports);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0) ::_exit(10);
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(11);
    if (::mount("tmpfs", exports.c_str(), "tmpfs", 0, "size=512k") != 0) ::_exit(12);
    int rc = 0;
    try {
      Exporter exporter(options(), real_clock());
      const ExportResult r = exporter.run(export_of(image, "app.tar"), held_for(image));
      if (r.outcome != ExportOutcome::kFailed) rc = 1;
      if (r.status.message.find("space") == std::string::npos) rc = 2;
      if (std::distance(fs::directory_iterator(exports), {}) != 0) rc = 3;
    } catch (...) {
      rc = 4;
    }
    ::_exit(rc);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) >= 10) GTEST_SKIP() << "cannot mount here, step " << WEXITSTATUS(status);
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "1: not Failed, 2: message does not say space, 3: file left behind, 4: threw";
}

}  // namespace
}  // namespace stowage::agent
