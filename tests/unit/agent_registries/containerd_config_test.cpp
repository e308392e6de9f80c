// containerd_registry_path() on config.toml shapes of containerd 1.6/1.7 (version 2, and the
// older version 1) and 2.x (version 3), and check_hosts_dir_name().
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "base/error.h"
#include "node-agent/registries_applier.h"

namespace stowage::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// The shape Debian's and most distributions' containerd 1.6/1.7 configs have.
constexpr const char* kContainerd16 = R"(
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.8"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"
)";

// containerd 2.x (`containerd config default` of 2.0): the image settings moved to their own
// plugin.
constexpr const char* kContainerd2 = R"(
version = 3
root = '/var/lib/containerd'
state = '/run/containerd'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'registry.k8s.io/pause:3.10'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '/etc/containerd/certs.d:/etc/docker/certs.d'
  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
)";

TEST(ContainerdRegistryPath, FindsGrpcCriKeyOfVersion2Config) {
  const auto r = containerd_registry_path(kContainerd16, "config.toml");
  EXPECT_EQ(r.config_version, 2);
  EXPECT_EQ(r.key, "plugins.\"io.containerd.grpc.v1.cri\".registry.config_path");
  EXPECT_THAT(r.dirs, ElementsAre("/etc/containerd/certs.d"));
}

TEST(ContainerdRegistryPath, FindsImagesPluginKeyOfVersion3Config) {
  const auto r = containerd_registry_path(kContainerd2, "config.toml");
  EXPECT_EQ(r.config_version, 3);
  EXPECT_EQ(r.key, "plugins.\"io.containerd.cri.v1.images\".registry.config_path");
  // config_path lists several directories; the first is where hosts.toml files go.
  ASSERT_THAT(r.dirs, ElementsAre("/etc/containerd/certs.d", "/etc/docker/certs.d"));
}

TEST(ContainerdRegistryPath, FindsShortCriKeyOfVersion1Config) {
  const auto r = containerd_registry_path(
      "[plugins.cri.registry]\nconfig_path = \"/etc/containerd/certs.d\"\n", "config.toml");
  EXPECT_EQ(r.config_version, 1);
  EXPECT_THAT(r.dirs, ElementsAre("/etc/containerd/certs.d"));
}

TEST(ContainerdRegistryPath, IgnoresKeyThatThisConfigVersionDoesNotRead) {
  // A version 2 file with the 2.x plugin's key: containerd 1.x never reads it.
  const auto r = containerd_registry_path(
      "version = 2\n[plugins.\"io.containerd.cri.v1.images\".registry]\n"
      "config_path = \"/etc/containerd/certs.d\"\n",
      "config.toml");
  EXPECT_THAT(r.dirs, IsEmpty());
  EXPECT_EQ(r.key, "plugins.\"io.containerd.grpc.v1.cri\".registry.config_path");
}

TEST(ContainerdRegistryPath, EmptyWhenNotSet) {
  EXPECT_THAT(containerd_registry_path("version = 2\n", "c").dirs, IsEmpty());
  // The deprecated mirrors table does not count: containerd ignores hosts.toml then.
  EXPECT_THAT(containerd_registry_path(
                  "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors."
                  "\"docker.io\"]\nendpoint = [\"https://mirror.corp\"]\n",
                  "c")
                  .dirs,
              IsEmpty());
  EXPECT_THAT(
      containerd_registry_path("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n"
                               "config_path = \"\"\n",
                               "c")
          .dirs,
      IsEmpty());
}

TEST(ContainerdRegistryPath, DropsEmptyEntriesOfTheList) {
  const auto r = containerd_registry_path(
      "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\n"
      "config_path = \":/etc/containerd/certs.d:\"\n",
      "c");
  EXPECT_THAT(r.dirs, ElementsAre("/etc/containerd/certs.d"));
}

TEST(ContainerdRegistryPath, RejectsBadTomlAndWrongTypes) {
  try {
    containerd_registry_path("version = 2\n[plugins\n", "/etc/containerd/config.toml");
    FAIL() << "bad TOML accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_THAT(e.what(), HasSubstr("/etc/containerd/config.toml"));
    EXPECT_THAT(e.what(), HasSubstr("line 2"));
  }
  try {
    containerd_registry_path(
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = 3\n", "c");
    FAIL() << "numeric config_path accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_THAT(e.what(), HasSubstr("must be a string"));
  }
  EXPECT_THROW(containerd_registry_path("version = \"2\"\n", "c"), Error);
}

TEST(HostsDirName, AcceptsHostsPortsIpv6AndDefault) {
  for (const char* host : {"quay.io", "mirror.corp:5000", "_default", "[::1]:5000", "10.0.0.1",
                           "registry-1.docker.io"}) {
    EXPECT_NO_THROW(check_hosts_dir_name(host)) << host;
  }
}

TEST(HostsDirName, RefusesNamesThatEscapeOrHide) {
  for (const char* host :
       {"", ".", "..", "../etc", "a/b", ".stowage-managed", "quay.io/team", "host name"}) {
    EXPECT_THROW(check_hosts_dir_name(host), Error) << host;
  }
}

TEST(RuntimeKind, FromCriRuntimeName) {
  EXPECT_EQ(runtime_kind_from_name("cri-o"), RuntimeKind::kCrio);
  EXPECT_EQ(runtime_kind_from_name("containerd"), RuntimeKind::kContainerd);
  EXPECT_EQ(runtime_kind_from_name("docker"), std::nullopt);
  EXPECT_EQ(runtime_kind_name(RuntimeKind::kCrio), "cri-o");
}

}  // namespace
}  // namespace stowage::agent
