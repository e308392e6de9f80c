// RegistriesApplier over a temp host root with a fake CRI-O reload: validation refuses before
// any file changes, writes and backups, idempotence, rollback when the reload fails, and the
// containerd side (config_path discovery from the node's config.toml, hosts.toml ownership).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/files.h"
#include "node-agent/registries_applier.h"

namespace stowage::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class HostRoot {
 public:
  HostRoot() {
    std::string tmpl = (fs::temp_directory_path() / "stowage-agent-unit-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~HostRoot() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  HostRoot(const HostRoot&) = delete;
  HostRoot& operator=(const HostRoot&) = delete;

  fs::path at(std::string_view absolute) const {
    return path_ / fs::path(absolute).relative_path();
  }
  void write(std::string_view absolute, std::string_view text) const {
    fs::create_directories(at(absolute).parent_path());
    std::ofstream(at(absolute), std::ios::binary) << text;
  }
  std::optional<std::string> read(std::string_view absolute) const {
    return read_file(at(absolute));
  }
  bool exists(std::string_view absolute) const { return fs::exists(at(absolute)); }
  const fs::path& path() const { return path_; }

  // Every regular file under the root with its content: a snapshot to compare before/after.
  std::map<std::string, std::string> snapshot() const {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(path_)) {
      if (e.is_regular_file()) {
        out[fs::relative(e.path(), path_).string()] = *read_file(e.path());
      } else if (e.is_directory()) {
        out[fs::relative(e.path(), path_).string() + "/"] = "";
      }
    }
    return out;
  }

 private:
  fs::path path_;
};

// Counts reloads; fails the first `fail_next` of them with kUnavailable.
class FakeReloader final : public RuntimeReloader {
 public:
  void reload() override {
    ++calls;
    if (fail_next > 0) {
      --fail_next;
      throw Error(Code::kUnavailable, "CRI-O (pid 42) exited after SIGHUP");
    }
  }
  int calls = 0;
  int fail_next = 0;
};

constexpr std::string_view kDropIn = "/etc/containers/registries.conf.d/99-stowage.conf";
constexpr std::string_view kBackup = "/etc/containers/registries.conf.d/99-stowage.conf.bak";
constexpr std::string_view kPending = "/etc/containers/registries.conf.d/99-stowage.conf.pending";
constexpr std::string_view kMain = "/etc/containers/registries.conf";

const std::string kSearchQuay = "unqualified-search-registries = [\"quay.io\"]\n";
const std::string kSearchCorp = "unqualified-search-registries = [\"registry.corp\"]\n";
const std::string kInvalidMirrorUsage =
    "[[registry]]\nlocation = \"quay.io\"\nmirror-by-digest-only = true\n"
    "[[registry.mirror]]\nlocation = \"m.corp\"\npull-from-mirror = \"all\"\n";

class CrioApplierTest : public ::testing::Test {
 protected:
  HostRoot root_;
  FakeReloader reloader_;
  RegistriesApplier applier_{root_.path(), &reloader_};

  ApplyResult apply(const std::string& dropin) {
    return applier_.apply({.dropin = dropin, .hosts_toml = {}}, RuntimeKind::kCrio);
  }
};

TEST_F(CrioApplierTest, WritesDropInAndReloads) {
  const ApplyResult r = apply(kSearchQuay);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_TRUE(r.changed);
  EXPECT_TRUE(r.reloaded);
  EXPECT_FALSE(r.rolled_back);
  EXPECT_EQ(reloader_.calls, 1);
  EXPECT_EQ(root_.read(kDropIn), kSearchQuay);
  // Nothing before it: no backup, and the reload marker is gone once CRI-O came through.
  EXPECT_FALSE(root_.exists(kBackup));
  EXPECT_FALSE(root_.exists(kPending));
}

TEST_F(CrioApplierTest, SameContentIsUnchangedWithoutWriteOrReload) {
  ASSERT_TRUE(apply(kSearchQuay).ok());
  const auto mtime = fs::last_write_time(root_.at(kDropIn));
  const auto before = root_.snapshot();
  const ApplyResult r = apply(kSearchQuay);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_FALSE(r.changed);
  EXPECT_FALSE(r.reloaded);
  EXPECT_EQ(r.message, "unchanged");
  EXPECT_EQ(reloader_.calls, 1);
  EXPECT_EQ(root_.snapshot(), before);
  EXPECT_EQ(fs::last_write_time(root_.at(kDropIn)), mtime);
}

TEST_F(CrioApplierTest, KeepsPreviousVersionAsBackup) {
  ASSERT_TRUE(apply(kSearchQuay).ok());
  const ApplyResult r = apply(kSearchCorp);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(root_.read(kDropIn), kSearchCorp);
  EXPECT_EQ(root_.read(kBackup), kSearchQuay);
  EXPECT_EQ(reloader_.calls, 2);
}

TEST_F(CrioApplierTest, InvalidDropInIsRefusedWithLibraryMessageAndNothingChanges) {
  root_.write(kMain, "unqualified-search-registries = [\"docker.io\"]\n");
  ASSERT_TRUE(apply(kSearchQuay).ok());
  const auto before = root_.snapshot();
  const ApplyResult r = apply(kInvalidMirrorUsage);
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_EQ(r.error, Code::kInvalidArgument);
  EXPECT_EQ(r.message,
            "loading drop-in registries configuration \"" + root_.at(kDropIn).string() +
                "\": cannot set mirror usage mirror-by-digest-only for the registry (\"quay.io\") "
                "and pull-from-mirror for per-mirror (\"m.corp\") at the same time");
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(reloader_.calls, 1);
  EXPECT_EQ(root_.snapshot(), before);
}

TEST_F(CrioApplierTest, V1DropInIsRefusedAsContainersImageWould) {
  const ApplyResult r = apply("[registries.search]\nregistries = [\"quay.io\"]\n");
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_THAT(r.message, HasSubstr("registry must be in v2 format but is in v1"));
  EXPECT_FALSE(root_.exists(kDropIn));
  EXPECT_EQ(reloader_.calls, 0);
}

TEST_F(CrioApplierTest, BrokenNodeConfigIsRefusedAndNamed) {
  // The merge reads the node's own files: a broken drop-in of someone else blocks ours, with
  // the same message containers/image would print for that file.
  root_.write("/etc/containers/registries.conf.d/50-other.conf", "unqualified-search = [\n");
  const auto before = root_.snapshot();
  const ApplyResult r = apply(kSearchQuay);
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_THAT(r.message,
              HasSubstr("loading drop-in registries configuration \"" +
                        root_.at("/etc/containers/registries.conf.d/50-other.conf").string() +
                        "\": toml: line"));
  EXPECT_EQ(root_.snapshot(), before);
  EXPECT_EQ(reloader_.calls, 0);
}

TEST_F(CrioApplierTest, OtherDropInsAndMainFileMergeAndWarningsComeBack) {
  root_.write(kMain, "[[registry]]\nlocation = \"quay.io\"\n");
  root_.write("/etc/containers/registries.conf.d/10-a.conf", kSearchCorp);
  root_.write("/etc/containers/registries.conf.d/notes.txt", "not a config [\n");
  const ApplyResult r = apply(kSearchQuay + "some-future-key = 1\n");
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_THAT(r.warnings, ElementsAre(HasSubstr("unknown key \"some-future-key\" ignored")));
}

TEST_F(CrioApplierTest, FailedReloadRestoresBackupAndReloadsAgain) {
  ASSERT_TRUE(apply(kSearchQuay).ok());
  reloader_.fail_next = 1;
  const ApplyResult r = apply(kSearchCorp);
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_EQ(r.error, Code::kUnavailable);
  EXPECT_TRUE(r.rolled_back);
  EXPECT_FALSE(r.reloaded);
  EXPECT_THAT(r.message, HasSubstr("exited after SIGHUP"));
  EXPECT_THAT(r.message, HasSubstr("restored the previous drop-in and reloaded CRI-O"));
  EXPECT_EQ(root_.read(kDropIn), kSearchQuay);
  EXPECT_EQ(reloader_.calls, 3);  // first apply, the failed one, the one after restoring
  EXPECT_FALSE(root_.exists(kPending));
}

TEST_F(CrioApplierTest, FailedFirstReloadRemovesTheNewDropIn) {
  reloader_.fail_next = 2;
  const ApplyResult r = apply(kSearchQuay);
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_TRUE(r.rolled_back);
  EXPECT_THAT(r.message, HasSubstr("removed the drop-in (there was none before), but reloading "
                                   "CRI-O again failed too"));
  EXPECT_FALSE(root_.exists(kDropIn));
  // The second reload failed too: the marker stays so a later apply reloads.
  EXPECT_TRUE(root_.exists(kPending));
}

TEST_F(CrioApplierTest, InterruptedApplyIsReloadedNextTime) {
  // An agent killed after writing but before CRI-O reloaded leaves the pending marker.
  root_.write(kDropIn, kSearchQuay);
  root_.write(kPending, "");
  const ApplyResult r = apply(kSearchQuay);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_FALSE(r.changed);
  EXPECT_TRUE(r.reloaded);
  EXPECT_EQ(reloader_.calls, 1);
  EXPECT_FALSE(root_.exists(kPending));
  EXPECT_EQ(apply(kSearchQuay).message, "unchanged");
  EXPECT_EQ(reloader_.calls, 1);
}

TEST(RegistriesApplier, CrioWithoutReloaderFailsBeforeWriting) {
  HostRoot root;
  RegistriesApplier applier(root.path(), nullptr);
  const ApplyResult r =
      applier.apply({.dropin = kSearchQuay, .hosts_toml = {}}, RuntimeKind::kCrio);
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_FALSE(root.exists(kDropIn));
}

TEST(RegistriesApplier, HostPathStaysUnderRoot) {
  RegistriesApplier applier("/host", nullptr);
  EXPECT_EQ(applier.host_path("/etc/containerd/certs.d"), fs::path("/host/etc/containerd/certs.d"));
  EXPECT_EQ(applier.dropin_path(),
            fs::path("/host/etc/containers/registries.conf.d/99-stowage.conf"));
  EXPECT_THROW(applier.host_path("/etc/../../escape"), Error);
  EXPECT_THROW(applier.host_path("etc/containerd"), Error);
}

// ---- containerd

constexpr std::string_view kContainerdConf = "/etc/containerd/config.toml";
constexpr std::string_view kCerts = "/etc/containerd/certs.d";
const std::string kConfigWithPath =
    "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n"
    "config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n";
const std::string kHostsQuay =
    "server = \"https://quay.io\"\n[host.\"http://m.corp:5000\"]\n"
    "capabilities = [\"pull\", \"resolve\"]\n";
const std::string kHostsDocker = "server = \"https://registry-1.docker.io\"\n";

class ContainerdApplierTest : public ::testing::Test {
 protected:
  void SetUp() override { root_.write(kContainerdConf, kConfigWithPath); }

  ApplyResult apply(std::map<std::string, std::string> hosts) {
    return applier_.apply({.dropin = kSearchQuay, .hosts_toml = std::move(hosts)},
                          RuntimeKind::kContainerd);
  }
  std::string certs(std::string_view rel) const {
    return std::string(kCerts) + "/" + std::string(rel);
  }

  HostRoot root_;
  FakeReloader reloader_;
  RegistriesApplier applier_{root_.path(), &reloader_};
};

TEST_F(ContainerdApplierTest, WritesHostsTomlUnderFirstConfigPathDirWithoutReload) {
  const ApplyResult r = apply({{"quay.io", kHostsQuay}, {"docker.io", kHostsDocker}});
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_TRUE(r.changed);
  EXPECT_FALSE(r.reloaded);
  EXPECT_EQ(reloader_.calls, 0);
  EXPECT_THAT(r.message, HasSubstr("no reload needed"));
  EXPECT_EQ(root_.read(certs("quay.io/hosts.toml")), kHostsQuay);
  EXPECT_EQ(root_.read(certs("docker.io/hosts.toml")), kHostsDocker);
  EXPECT_EQ(root_.read(kDropIn), kSearchQuay);
  EXPECT_FALSE(root_.exists("/etc/docker/certs.d"));
  EXPECT_THAT(owned_hosts(root_.at(kCerts)), ElementsAre("docker.io", "quay.io"));
}

TEST_F(ContainerdApplierTest, SecondApplyIsUnchanged) {
  ASSERT_TRUE(apply({{"quay.io", kHostsQuay}}).ok());
  const auto before = root_.snapshot();
  const ApplyResult r = apply({{"quay.io", kHostsQuay}});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(r.message, "unchanged");
  EXPECT_EQ(root_.snapshot(), before);
}

TEST_F(ContainerdApplierTest, RemovesOnlyHostsItOwns) {
  // Someone else's host dir, and a file of someone else inside one of ours.
  root_.write(certs("ghcr.io/hosts.toml"), "server = \"https://ghcr.io\"\n");
  ASSERT_TRUE(apply({{"quay.io", kHostsQuay}, {"docker.io", kHostsDocker}}).ok());
  root_.write(certs("docker.io/ca.crt"), "certificate");

  const ApplyResult r = apply({{"quay.io", kHostsQuay}});
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_TRUE(r.changed);
  EXPECT_THAT(r.message, HasSubstr("removed hosts.toml"));
  EXPECT_FALSE(root_.exists(certs("docker.io/hosts.toml")));
  EXPECT_FALSE(root_.exists(certs("docker.io/.stowage-managed")));
  EXPECT_EQ(root_.read(certs("docker.io/ca.crt")), "certificate");
  EXPECT_EQ(root_.read(certs("ghcr.io/hosts.toml")), "server = \"https://ghcr.io\"\n");
  EXPECT_THAT(owned_hosts(root_.at(kCerts)), ElementsAre("quay.io"));

  ASSERT_TRUE(apply({}).ok());
  EXPECT_FALSE(root_.exists(certs("quay.io")));  // empty once ours is gone: removed
  EXPECT_TRUE(root_.exists(certs("ghcr.io/hosts.toml")));
}

TEST_F(ContainerdApplierTest, RefusesToReplaceHostsTomlItDidNotWrite) {
  root_.write(certs("quay.io/hosts.toml"), "server = \"https://quay.io\"\n");
  const auto before = root_.snapshot();
  const ApplyResult r = apply({{"quay.io", kHostsQuay}});
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_EQ(r.error, Code::kConflict);
  EXPECT_THAT(r.message, HasSubstr("was not written by Stowage"));
  EXPECT_EQ(root_.snapshot(), before);
}

TEST_F(ContainerdApplierTest, FailsWithoutConfigPathAndWritesNothing) {
  root_.write(kContainerdConf,
              "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n"
              "sandbox_image = \"registry.k8s.io/pause:3.8\"\n");
  const auto before = root_.snapshot();
  const ApplyResult r = apply({{"quay.io", kHostsQuay}});
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_THAT(r.message,
              HasSubstr("does not set plugins.\"io.containerd.grpc.v1.cri\".registry.config_path: "
                        "containerd would ignore hosts.toml files"));
  EXPECT_EQ(root_.snapshot(), before);
}

TEST_F(ContainerdApplierTest, FailsWithoutContainerdConfig) {
  fs::remove(root_.at(kContainerdConf));
  const ApplyResult r = apply({{"quay.io", kHostsQuay}});
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_EQ(r.error, Code::kNotFound);
  EXPECT_FALSE(root_.exists(kDropIn));
  // Without hosts to write, the drop-in alone needs no containerd config.
  EXPECT_TRUE(apply({}).ok());
  EXPECT_EQ(root_.read(kDropIn), kSearchQuay);
}

TEST_F(ContainerdApplierTest, RefusesBadHostsTomlAndBadHostNames) {
  const auto before = root_.snapshot();
  ApplyResult r = apply({{"quay.io", "server = \n"}});
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_THAT(r.message, HasSubstr("hosts.toml for quay.io: toml: line 1"));
  r = apply({{"../../etc", kHostsQuay}});
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_THAT(r.message, HasSubstr("cannot name a certs.d directory"));
  EXPECT_EQ(root_.snapshot(), before);
}

TEST_F(ContainerdApplierTest, UsesImagesPluginKeyOfContainerd2) {
  root_.write(kContainerdConf,
              "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\n"
              "config_path = '/etc/containerd/certs.d'\n");
  ASSERT_TRUE(apply({{"quay.io", kHostsQuay}}).ok());
  EXPECT_EQ(root_.read(certs("quay.io/hosts.toml")), kHostsQuay);
}

}  // namespace
}  // namespace stowage::agent
