// The sandbox (pause) image the agent protects, read from the runtime's configuration: containerd
// config.toml versions 1, 2 and 3, CRI-O crio.conf and its drop-ins (later files win), the
// runtimes' defaults per version, normalization, and bad files. Files live in a temp host root.
#include "node-agent/runtime_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>

#include "base/error.h"

namespace stowage::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A temp directory standing in for the host's root file system.
class HostRoot {
 public:
  HostRoot() {
    std::string pattern = (fs::temp_directory_path() / "stowage-runtime-config-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = pattern;
  }
  ~HostRoot() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  HostRoot(const HostRoot&) = delete;
  HostRoot& operator=(const HostRoot&) = delete;

  void write(const std::string& host_path, const std::string& text) const {
    const fs::path p = root_ / fs::path(host_path).relative_path();
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  const fs::path& path() const { return root_; }

 private:
  fs::path root_;
};

Code code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "expected a stowage::Error";
  return Code::kInternal;
}

TEST(NormalizeSandboxReference, AddsDomainLibraryAndTagAndKeepsOnlyTheDigest) {
  EXPECT_EQ(normalize_sandbox_reference("registry.k8s.io/pause:3.9"), "registry.k8s.io/pause:3.9");
  EXPECT_EQ(normalize_sandbox_reference("pause:3.9"), "docker.io/library/pause:3.9");
  EXPECT_EQ(normalize_sandbox_reference("corp.test:5000/infra/pause"),
            "corp.test:5000/infra/pause:latest");
  const std::string digest = "sha256:" + std::string(64, 'e');
  EXPECT_EQ(normalize_sandbox_reference("quay.io/x/pause:3.9@" + digest),
            "quay.io/x/pause@" + digest);
  EXPECT_EQ(code_of([] { normalize_sandbox_reference("Not A Reference"); }),
            Code::kInvalidArgument);
}

TEST(ContainerdSandboxImage, ReadsTheKeyOfEachConfigVersion) {
  EXPECT_EQ(containerd_sandbox_image("[plugins.cri]\nsandbox_image = \"a.test/p:1\"\n", "c"),
            "a.test/p:1");
  EXPECT_EQ(containerd_sandbox_image("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n"
                                     "  sandbox_image = \"b.test/p:2\"\n",
                                     "c"),
            "b.test/p:2");
  EXPECT_EQ(containerd_sandbox_image(
                "version = 3\n[plugins.\"io.containerd.cri.v1.images\".pinned_images]\n"
                "  sandbox = \"c.test/p:3\"\n",
                "c"),
            "c.test/p:3");
  // A key of another version's layout does not count.
  EXPECT_EQ(
      containerd_sandbox_image("version = 2\n[plugins.cri]\nsandbox_image = \"x.test/p:1\"\n", "c"),
      std::nullopt);
  EXPECT_EQ(containerd_sandbox_image("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n"
                                     "  enable_selinux = false\n",
                                     "c"),
            std::nullopt);
}

TEST(ContainerdSandboxImage, BadTomlOrTypeIsInvalidArgumentNamingTheFile) {
  try {
    containerd_sandbox_image(
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n"
        "  sandbox_image = 3\n",
        "/etc/containerd/config.toml");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_THAT(e.what(), HasSubstr("/etc/containerd/config.toml"));
    EXPECT_THAT(e.what(), HasSubstr("sandbox_image must be a string"));
  }
  EXPECT_EQ(code_of([] { containerd_sandbox_image("[plugins\n", "c"); }), Code::kInvalidArgument);
  EXPECT_EQ(code_of([] { containerd_sandbox_image("version = \"2\"\n", "c"); }),
            Code::kInvalidArgument);
}

TEST(CrioPauseImage, ReadsCrioImageTable) {
  EXPECT_EQ(crio_pause_image("[crio.image]\npause_image = \"q.test/p@sha256:00\"\n", "f"),
            "q.test/p@sha256:00");
  EXPECT_EQ(crio_pause_image("[crio.runtime]\npause_image = \"x.test/p:1\"\n", "f"), std::nullopt);
  EXPECT_EQ(code_of([] { crio_pause_image("[crio.image]\npause_image = []\n", "f"); }),
            Code::kInvalidArgument);
}

TEST(DefaultSandboxImage, FollowsTheRuntimeVersion) {
  const auto ref = [](RuntimeKind kind, const char* version) {
    return default_sandbox_image(kind, version).reference;
  };
  EXPECT_EQ(ref(RuntimeKind::kContainerd, "1.5.9"), "k8s.gcr.io/pause:3.5");
  EXPECT_EQ(ref(RuntimeKind::kContainerd, "1.6.20~ds1"), "registry.k8s.io/pause:3.6");
  EXPECT_EQ(ref(RuntimeKind::kContainerd, "v1.7.13"), "registry.k8s.io/pause:3.8");
  EXPECT_EQ(ref(RuntimeKind::kContainerd, "2.0.0"), "registry.k8s.io/pause:3.10");
  EXPECT_EQ(ref(RuntimeKind::kContainerd, "garbage"), "registry.k8s.io/pause:3.10");
  EXPECT_EQ(ref(RuntimeKind::kCrio, "1.26.4"), "registry.k8s.io/pause:3.6");
  EXPECT_EQ(ref(RuntimeKind::kCrio, "1.30.1"), "registry.k8s.io/pause:3.9");
  EXPECT_EQ(ref(RuntimeKind::kCrio, "1.31.0"), "registry.k8s.io/pause:3.10");
  EXPECT_EQ(default_sandbox_image(RuntimeKind::kContainerd, "1.6.20~ds1").origin,
            "the default of containerd 1.6");
}

TEST(ReadSandboxImage, ContainerdConfigUnderTheHostRootNormalized) {
  HostRoot host;
  EXPECT_EQ(read_sandbox_image(host.path(), RuntimeKind::kContainerd, "1.7.2"),
            (SandboxImage{.reference = "registry.k8s.io/pause:3.8",
                          .origin = "the default of containerd 1.7"}));
  host.write("/etc/containerd/config.toml",
             "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n"
             "  sandbox_image = \"pause:3.9\"\n");
  EXPECT_EQ(read_sandbox_image(host.path(), RuntimeKind::kContainerd, "1.7.2"),
            (SandboxImage{.reference = "docker.io/library/pause:3.9",
                          .origin = "/etc/containerd/config.toml sandbox_image"}));
  // An empty value is unset: the default applies.
  host.write("/etc/containerd/config.toml",
             "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"\"\n");
  EXPECT_EQ(read_sandbox_image(host.path(), RuntimeKind::kContainerd, "1.6.20").reference,
            "registry.k8s.io/pause:3.6");
  host.write("/etc/containerd/config.toml", "version = 2\n[plugins\n");
  EXPECT_EQ(code_of([&] { read_sandbox_image(host.path(), RuntimeKind::kContainerd, "1.6.20"); }),
            Code::kInvalidArgument);
}

TEST(ReadSandboxImage, CrioDropInsInLexicalOrderOverrideCrioConf) {
  HostRoot host;
  host.write("/etc/crio/crio.conf", "[crio.image]\npause_image = \"main.test/pause:1\"\n");
  EXPECT_EQ(read_sandbox_image(host.path(), RuntimeKind::kCrio, "1.31.0"),
            (SandboxImage{.reference = "main.test/pause:1",
                          .origin = "/etc/crio/crio.conf pause_image"}));
  host.write("/etc/crio/crio.conf.d/10-b.conf", "[crio.image]\npause_image = \"b.test/pause:2\"\n");
  host.write("/etc/crio/crio.conf.d/05-a.conf", "[crio.image]\npause_image = \"a.test/pause:2\"\n");
  // A later drop-in that does not set it leaves the earlier value.
  host.write("/etc/crio/crio.conf.d/20-other.conf", "[crio.runtime]\nlog_level = \"info\"\n");
  EXPECT_EQ(read_sandbox_image(host.path(), RuntimeKind::kCrio, "1.31.0"),
            (SandboxImage{.reference = "b.test/pause:2",
                          .origin = "/etc/crio/crio.conf.d/10-b.conf pause_image"}));
  host.write("/etc/crio/crio.conf.d/99-bad.conf", "[crio.image\n");
  EXPECT_EQ(code_of([&] { read_sandbox_image(host.path(), RuntimeKind::kCrio, "1.31.0"); }),
            Code::kInvalidArgument);
}

TEST(ReadSandboxImage, CrioWithoutAnyConfigGetsItsDefault) {
  HostRoot host;
  EXPECT_EQ(read_sandbox_image(host.path(), RuntimeKind::kCrio, "1.29.3").reference,
            "registry.k8s.io/pause:3.9");
}

}  // namespace
}  // namespace stowage::agent
