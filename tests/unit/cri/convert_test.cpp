// Conversions between runtime.v1 messages and cri/types.h values, and the wire contract of the
// api.proto subset: every field Stowage declares has upstream cri-api's number and type.
#include "cri/convert.h"

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cri/api.grpc.pb.h"

namespace stowage::cri {
namespace {

namespace v1 = ::runtime::v1;
using google::protobuf::FieldDescriptor;
using ::testing::ElementsAre;
using ::testing::Pair;

TEST(CriConvert, ImageFromProto) {
  v1::Image p;
  p.set_id("sha256:aaa");
  p.add_repo_tags("127.0.0.1:5000/team/app:1.0");
  p.add_repo_tags("127.0.0.1:5000/team/app:latest");
  p.add_repo_digests("127.0.0.1:5000/team/app@sha256:bbb");
  p.set_size(12345);
  p.mutable_uid()->set_value(0);
  p.set_pinned(true);
  const Image image = convert::from_proto(p);
  EXPECT_EQ(image.id, "sha256:aaa");
  EXPECT_THAT(image.repo_tags,
              ElementsAre("127.0.0.1:5000/team/app:1.0", "127.0.0.1:5000/team/app:latest"));
  EXPECT_THAT(image.repo_digests, ElementsAre("127.0.0.1:5000/team/app@sha256:bbb"));
  EXPECT_EQ(image.size, 12345u);
  ASSERT_TRUE(image.uid.has_value());  // uid 0 (root) is set, not absent
  EXPECT_EQ(*image.uid, 0);
  EXPECT_EQ(image.username, "");
  EXPECT_TRUE(image.pinned);
}

TEST(CriConvert, ImageWithoutUidHasNoUid) {
  v1::Image p;
  p.set_username("nobody");
  const Image image = convert::from_proto(p);
  EXPECT_FALSE(image.uid.has_value());
  EXPECT_EQ(image.username, "nobody");
  EXPECT_FALSE(image.pinned);
}

TEST(CriConvert, ImageFsInfoFromProto) {
  v1::ImageFsInfoResponse p;
  auto* u = p.add_image_filesystems();
  u->set_timestamp(1'700'000'000'000'000'000);
  u->mutable_fs_id()->set_mountpoint("/var/lib/containerd/io.containerd.snapshotter.v1.native");
  u->mutable_used_bytes()->set_value(4096);
  u->mutable_inodes_used()->set_value(7);
  auto* c = p.add_container_filesystems();
  c->mutable_fs_id()->set_mountpoint("/var/lib/containers");
  c->mutable_used_bytes()->set_value(1);
  const ImageFsInfo info = convert::from_proto(p);
  ASSERT_EQ(info.image_filesystems.size(), 1u);
  EXPECT_EQ(info.image_filesystems[0].mountpoint,
            "/var/lib/containerd/io.containerd.snapshotter.v1.native");
  EXPECT_EQ(info.image_filesystems[0].used_bytes, 4096u);
  EXPECT_EQ(info.image_filesystems[0].inodes_used, std::optional<std::uint64_t>(7));
  EXPECT_EQ(info.image_filesystems[0].timestamp_ns, 1'700'000'000'000'000'000);
  ASSERT_EQ(info.container_filesystems.size(), 1u);
  EXPECT_EQ(info.container_filesystems[0].mountpoint, "/var/lib/containers");
  EXPECT_FALSE(info.container_filesystems[0].inodes_used.has_value());
}

TEST(CriConvert, VersionFromProto) {
  v1::VersionResponse p;
  p.set_version("0.1.0");
  p.set_runtime_name("containerd");
  p.set_runtime_version("1.6.20");
  p.set_runtime_api_version("v1");
  const VersionInfo v = convert::from_proto(p);
  EXPECT_EQ(v.version, "0.1.0");
  EXPECT_EQ(v.runtime_name, "containerd");
  EXPECT_EQ(v.runtime_version, "1.6.20");
  EXPECT_EQ(v.runtime_api_version, "v1");
}

TEST(CriConvert, ContainerFromProto) {
  v1::Container p;
  p.set_id("c1");
  p.set_pod_sandbox_id("s1");
  p.mutable_metadata()->set_name("app");
  p.mutable_metadata()->set_attempt(2);
  p.mutable_image()->set_image("sha256:img");
  p.set_image_ref("sha256:img");
  p.set_image_id("sha256:id");
  p.set_state(v1::CONTAINER_EXITED);
  p.set_created_at(42);
  (*p.mutable_labels())["io.kubernetes.pod.name"] = "web";
  (*p.mutable_annotations())["a"] = "b";
  const Container c = convert::from_proto(p);
  EXPECT_EQ(c.id, "c1");
  EXPECT_EQ(c.pod_sandbox_id, "s1");
  EXPECT_EQ(c.name, "app");
  EXPECT_EQ(c.attempt, 2u);
  EXPECT_EQ(c.image, "sha256:img");
  EXPECT_EQ(c.image_ref, "sha256:img");
  EXPECT_EQ(c.image_id, "sha256:id");
  EXPECT_EQ(c.state, ContainerState::kExited);
  EXPECT_EQ(c.created_at_ns, 42);
  EXPECT_THAT(c.labels, ElementsAre(Pair("io.kubernetes.pod.name", "web")));
  EXPECT_THAT(c.annotations, ElementsAre(Pair("a", "b")));
}

TEST(CriConvert, ContainerStatesBothWays) {
  for (const auto s : {ContainerState::kCreated, ContainerState::kRunning, ContainerState::kExited,
                       ContainerState::kUnknown}) {
    EXPECT_EQ(convert::from_proto(convert::to_proto(s)), s) << container_state_name(s);
  }
  EXPECT_EQ(convert::to_proto(ContainerState::kRunning), v1::CONTAINER_RUNNING);
  // proto3 enums are open: a state from a newer runtime is unknown, not a crash.
  EXPECT_EQ(convert::from_proto(static_cast<v1::ContainerState>(42)), ContainerState::kUnknown);
  EXPECT_EQ(container_state_name(ContainerState::kRunning), "running");
}

TEST(CriConvert, ContainerStatusFromProto) {
  v1::ContainerStatus p;
  p.set_id("c1");
  p.mutable_metadata()->set_name("app");
  p.set_state(v1::CONTAINER_RUNNING);
  p.set_started_at(5);
  p.set_exit_code(3);
  p.mutable_image()->set_image("reg/app:1");
  p.set_image_ref("reg/app@sha256:x");
  p.set_image_id("sha256:id");
  p.set_reason("Completed");
  p.set_log_path("/logs/app.log");
  const ContainerStatus s = convert::from_proto(p);
  EXPECT_EQ(s.id, "c1");
  EXPECT_EQ(s.name, "app");
  EXPECT_EQ(s.state, ContainerState::kRunning);
  EXPECT_EQ(s.started_at_ns, 5);
  EXPECT_EQ(s.finished_at_ns, 0);
  EXPECT_EQ(s.exit_code, 3);
  EXPECT_EQ(s.image, "reg/app:1");
  EXPECT_EQ(s.image_ref, "reg/app@sha256:x");
  EXPECT_EQ(s.image_id, "sha256:id");
  EXPECT_EQ(s.reason, "Completed");
  EXPECT_EQ(s.log_path, "/logs/app.log");
}

TEST(CriConvert, PodSandboxFromProto) {
  v1::PodSandbox p;
  p.set_id("s1");
  p.mutable_metadata()->set_name("web");
  p.mutable_metadata()->set_uid("u1");
  p.mutable_metadata()->set_namespace_("default");
  p.mutable_metadata()->set_attempt(1);
  p.set_state(v1::SANDBOX_NOTREADY);
  p.set_runtime_handler("runc");
  const PodSandbox s = convert::from_proto(p);
  EXPECT_EQ(s.id, "s1");
  EXPECT_EQ(s.name, "web");
  EXPECT_EQ(s.uid, "u1");
  EXPECT_EQ(s.namespace_name, "default");
  EXPECT_EQ(s.attempt, 1u);
  EXPECT_EQ(s.state, PodSandboxState::kNotReady);
  EXPECT_EQ(s.runtime_handler, "runc");
  p.set_state(v1::SANDBOX_READY);
  EXPECT_EQ(convert::from_proto(p).state, PodSandboxState::kReady);
}

TEST(CriConvert, AuthConfigToProtoCarriesEveryField) {
  const AuthConfig auth{.username = "u",
                        .password = "p",
                        .auth = "dTpw",
                        .server_address = "registry.example:5000",
                        .identity_token = "it",
                        .registry_token = "rt"};
  const v1::AuthConfig p = convert::to_proto(auth);
  EXPECT_EQ(p.username(), "u");
  EXPECT_EQ(p.password(), "p");
  EXPECT_EQ(p.auth(), "dTpw");
  EXPECT_EQ(p.server_address(), "registry.example:5000");
  EXPECT_EQ(p.identity_token(), "it");
  EXPECT_EQ(p.registry_token(), "rt");
}

TEST(CriConvert, PullRequestKeepsDigestReferenceAndAlwaysSendsSandbox) {
  const std::string ref = "quay.io/team/app@sha256:" + std::string(64, 'a');
  const v1::PullImageRequest p = convert::pull_request(ref, std::nullopt, std::nullopt);
  EXPECT_EQ(p.image().image(), ref);
  EXPECT_FALSE(p.has_auth());
  ASSERT_TRUE(p.has_sandbox_config());
  EXPECT_EQ(p.sandbox_config().metadata().name(), convert::default_pull_sandbox().name);
  EXPECT_EQ(p.sandbox_config().metadata().namespace_(), "stowage");

  PodSandboxConfig mine;
  mine.name = "pod";
  const v1::PullImageRequest with = convert::pull_request("a:1",
                                                          AuthConfig{.username = "u",
                                                                     .password = "p",
                                                                     .auth = "",
                                                                     .server_address = "",
                                                                     .identity_token = "",
                                                                     .registry_token = ""},
                                                          mine);
  ASSERT_TRUE(with.has_auth());
  EXPECT_EQ(with.auth().username(), "u");
  EXPECT_EQ(with.sandbox_config().metadata().name(), "pod");
}

TEST(CriConvert, PodSandboxConfigToProto) {
  PodSandboxConfig c;
  c.name = "web";
  c.uid = "u1";
  c.namespace_name = "ns";
  c.attempt = 3;
  c.hostname = "web-host";
  c.log_directory = "/var/log/pods/ns_web_u1";
  c.labels = {{"app", "web"}};
  c.annotations = {{"k", "v"}};
  c.cgroup_parent = "/stowage";
  c.network = NamespaceMode::kNode;
  c.pid = NamespaceMode::kContainer;
  c.privileged = true;
  const v1::PodSandboxConfig p = convert::to_proto(c);
  EXPECT_EQ(p.metadata().name(), "web");
  EXPECT_EQ(p.metadata().uid(), "u1");
  EXPECT_EQ(p.metadata().namespace_(), "ns");
  EXPECT_EQ(p.metadata().attempt(), 3u);
  EXPECT_EQ(p.hostname(), "web-host");
  EXPECT_EQ(p.log_directory(), "/var/log/pods/ns_web_u1");
  EXPECT_EQ(p.labels().at("app"), "web");
  EXPECT_EQ(p.annotations().at("k"), "v");
  EXPECT_EQ(p.linux().cgroup_parent(), "/stowage");
  EXPECT_TRUE(p.linux().security_context().privileged());
  const auto& ns = p.linux().security_context().namespace_options();
  EXPECT_EQ(ns.network(), v1::NODE);
  EXPECT_EQ(ns.pid(), v1::CONTAINER);
  EXPECT_EQ(ns.ipc(), v1::POD);
}

TEST(CriConvert, ContainerConfigToProto) {
  ContainerConfig c;
  c.name = "app";
  c.attempt = 1;
  c.image = "sha256:img";
  c.command = {"/bin/sleeper"};
  c.args = {"--forever"};
  c.working_dir = "/";
  c.envs = {{"A", "1"}, {"B", "2"}};
  c.labels = {{"l", "1"}};
  c.log_path = "app/0.log";
  const v1::ContainerConfig p = convert::to_proto(c);
  EXPECT_EQ(p.metadata().name(), "app");
  EXPECT_EQ(p.metadata().attempt(), 1u);
  EXPECT_EQ(p.image().image(), "sha256:img");
  EXPECT_THAT(p.command(), ElementsAre("/bin/sleeper"));
  EXPECT_THAT(p.args(), ElementsAre("--forever"));
  EXPECT_EQ(p.working_dir(), "/");
  ASSERT_EQ(p.envs_size(), 2);
  EXPECT_EQ(p.envs(1).key(), "B");
  EXPECT_EQ(p.envs(1).value(), "2");
  EXPECT_EQ(p.labels().at("l"), "1");
  EXPECT_EQ(p.log_path(), "app/0.log");
}

TEST(CriConvert, FiltersToProto) {
  ContainerFilter cf;
  cf.pod_sandbox_id = "s1";
  cf.state = ContainerState::kRunning;
  cf.label_selector = {{"app", "web"}};
  const v1::ContainerFilter cp = convert::to_proto(cf);
  EXPECT_EQ(cp.pod_sandbox_id(), "s1");
  ASSERT_TRUE(cp.has_state());
  EXPECT_EQ(cp.state().state(), v1::CONTAINER_RUNNING);
  EXPECT_EQ(cp.label_selector().at("app"), "web");
  // No state condition: the field stays unset, which means "any state" (kCreated is 0 on the wire).
  EXPECT_FALSE(convert::to_proto(ContainerFilter{}).has_state());

  PodSandboxFilter sf;
  sf.state = PodSandboxState::kReady;
  EXPECT_TRUE(convert::to_proto(sf).has_state());
  EXPECT_EQ(convert::to_proto(sf).state().state(), v1::SANDBOX_READY);
  EXPECT_FALSE(convert::to_proto(PodSandboxFilter{}).has_state());
}

// ---- Wire contract: upstream kubernetes/cri-api pkg/apis/runtime/v1/api.proto.

struct FieldContract {
  const char* message;
  const char* field;
  int number;
  FieldDescriptor::Type type;
};

TEST(CriWireContract, FieldNumbersAndTypesMatchUpstream) {
  using T = FieldDescriptor;
  const std::vector<FieldContract> contract = {
      {"ImageSpec", "image", 1, T::TYPE_STRING},
      {"ImageSpec", "annotations", 2, T::TYPE_MESSAGE},
      {"ImageSpec", "user_specified_image", 18, T::TYPE_STRING},
      {"ImageSpec", "runtime_handler", 19, T::TYPE_STRING},
      {"Image", "id", 1, T::TYPE_STRING},
      {"Image", "repo_tags", 2, T::TYPE_STRING},
      {"Image", "repo_digests", 3, T::TYPE_STRING},
      {"Image", "size", 4, T::TYPE_UINT64},
      {"Image", "uid", 5, T::TYPE_MESSAGE},
      {"Image", "username", 6, T::TYPE_STRING},
      {"Image", "spec", 7, T::TYPE_MESSAGE},
      {"Image", "pinned", 8, T::TYPE_BOOL},
      {"Int64Value", "value", 1, T::TYPE_INT64},
      {"UInt64Value", "value", 1, T::TYPE_UINT64},
      {"ImageFilter", "image", 1, T::TYPE_MESSAGE},
      {"ListImagesRequest", "filter", 1, T::TYPE_MESSAGE},
      {"ListImagesResponse", "images", 1, T::TYPE_MESSAGE},
      {"ImageStatusRequest", "image", 1, T::TYPE_MESSAGE},
      {"ImageStatusRequest", "verbose", 2, T::TYPE_BOOL},
      {"ImageStatusResponse", "image", 1, T::TYPE_MESSAGE},
      {"ImageStatusResponse", "info", 2, T::TYPE_MESSAGE},
      {"AuthConfig", "username", 1, T::TYPE_STRING},
      {"AuthConfig", "password", 2, T::TYPE_STRING},
      {"AuthConfig", "auth", 3, T::TYPE_STRING},
      {"AuthConfig", "server_address", 4, T::TYPE_STRING},
      {"AuthConfig", "identity_token", 5, T::TYPE_STRING},
      {"AuthConfig", "registry_token", 6, T::TYPE_STRING},
      {"PullImageRequest", "image", 1, T::TYPE_MESSAGE},
      {"PullImageRequest", "auth", 2, T::TYPE_MESSAGE},
      {"PullImageRequest", "sandbox_config", 3, T::TYPE_MESSAGE},
      {"PullImageResponse", "image_ref", 1, T::TYPE_STRING},
      {"RemoveImageRequest", "image", 1, T::TYPE_MESSAGE},
      {"ImageFsInfoResponse", "image_filesystems", 1, T::TYPE_MESSAGE},
      {"ImageFsInfoResponse", "container_filesystems", 2, T::TYPE_MESSAGE},
      {"FilesystemUsage", "timestamp", 1, T::TYPE_INT64},
      {"FilesystemUsage", "fs_id", 2, T::TYPE_MESSAGE},
      {"FilesystemUsage", "used_bytes", 3, T::TYPE_MESSAGE},
      {"FilesystemUsage", "inodes_used", 4, T::TYPE_MESSAGE},
      {"FilesystemIdentifier", "mountpoint", 1, T::TYPE_STRING},
      {"VersionRequest", "version", 1, T::TYPE_STRING},
      {"VersionResponse", "version", 1, T::TYPE_STRING},
      {"VersionResponse", "runtime_name", 2, T::TYPE_STRING},
      {"VersionResponse", "runtime_version", 3, T::TYPE_STRING},
      {"VersionResponse", "runtime_api_version", 4, T::TYPE_STRING},
      {"PodSandboxMetadata", "name", 1, T::TYPE_STRING},
      {"PodSandboxMetadata", "uid", 2, T::TYPE_STRING},
      {"PodSandboxMetadata", "namespace", 3, T::TYPE_STRING},
      {"PodSandboxMetadata", "attempt", 4, T::TYPE_UINT32},
      {"PodSandboxConfig", "metadata", 1, T::TYPE_MESSAGE},
      {"PodSandboxConfig", "hostname", 2, T::TYPE_STRING},
      {"PodSandboxConfig", "log_directory", 3, T::TYPE_STRING},
      {"PodSandboxConfig", "labels", 6, T::TYPE_MESSAGE},
      {"PodSandboxConfig", "annotations", 7, T::TYPE_MESSAGE},
      {"PodSandboxConfig", "linux", 8, T::TYPE_MESSAGE},
      {"LinuxPodSandboxConfig", "cgroup_parent", 1, T::TYPE_STRING},
      {"LinuxPodSandboxConfig", "security_context", 2, T::TYPE_MESSAGE},
      {"LinuxSandboxSecurityContext", "namespace_options", 1, T::TYPE_MESSAGE},
      {"LinuxSandboxSecurityContext", "privileged", 6, T::TYPE_BOOL},
      {"NamespaceOption", "network", 1, T::TYPE_ENUM},
      {"NamespaceOption", "pid", 2, T::TYPE_ENUM},
      {"NamespaceOption", "ipc", 3, T::TYPE_ENUM},
      {"NamespaceOption", "target_id", 4, T::TYPE_STRING},
      {"RunPodSandboxRequest", "config", 1, T::TYPE_MESSAGE},
      {"RunPodSandboxRequest", "runtime_handler", 2, T::TYPE_STRING},
      {"RunPodSandboxResponse", "pod_sandbox_id", 1, T::TYPE_STRING},
      {"StopPodSandboxRequest", "pod_sandbox_id", 1, T::TYPE_STRING},
      {"RemovePodSandboxRequest", "pod_sandbox_id", 1, T::TYPE_STRING},
      {"PodSandboxFilter", "id", 1, T::TYPE_STRING},
      {"PodSandboxFilter", "state", 2, T::TYPE_MESSAGE},
      {"PodSandboxFilter", "label_selector", 3, T::TYPE_MESSAGE},
      {"PodSandbox", "id", 1, T::TYPE_STRING},
      {"PodSandbox", "metadata", 2, T::TYPE_MESSAGE},
      {"PodSandbox", "state", 3, T::TYPE_ENUM},
      {"PodSandbox", "created_at", 4, T::TYPE_INT64},
      {"PodSandbox", "labels", 5, T::TYPE_MESSAGE},
      {"PodSandbox", "annotations", 6, T::TYPE_MESSAGE},
      {"PodSandbox", "runtime_handler", 7, T::TYPE_STRING},
      {"ListPodSandboxResponse", "items", 1, T::TYPE_MESSAGE},
      {"ContainerMetadata", "name", 1, T::TYPE_STRING},
      {"ContainerMetadata", "attempt", 2, T::TYPE_UINT32},
      {"KeyValue", "key", 1, T::TYPE_STRING},
      {"KeyValue", "value", 2, T::TYPE_STRING},
      {"ContainerConfig", "metadata", 1, T::TYPE_MESSAGE},
      {"ContainerConfig", "image", 2, T::TYPE_MESSAGE},
      {"ContainerConfig", "command", 3, T::TYPE_STRING},
      {"ContainerConfig", "args", 4, T::TYPE_STRING},
      {"ContainerConfig", "working_dir", 5, T::TYPE_STRING},
      {"ContainerConfig", "envs", 6, T::TYPE_MESSAGE},
      {"ContainerConfig", "labels", 9, T::TYPE_MESSAGE},
      {"ContainerConfig", "annotations", 10, T::TYPE_MESSAGE},
      {"ContainerConfig", "log_path", 11, T::TYPE_STRING},
      {"CreateContainerRequest", "pod_sandbox_id", 1, T::TYPE_STRING},
      {"CreateContainerRequest", "config", 2, T::TYPE_MESSAGE},
      {"CreateContainerRequest", "sandbox_config", 3, T::TYPE_MESSAGE},
      {"CreateContainerResponse", "container_id", 1, T::TYPE_STRING},
      {"StartContainerRequest", "container_id", 1, T::TYPE_STRING},
      {"StopContainerRequest", "container_id", 1, T::TYPE_STRING},
      {"StopContainerRequest", "timeout", 2, T::TYPE_INT64},
      {"RemoveContainerRequest", "container_id", 1, T::TYPE_STRING},
      {"ContainerFilter", "id", 1, T::TYPE_STRING},
      {"ContainerFilter", "state", 2, T::TYPE_MESSAGE},
      {"ContainerFilter", "pod_sandbox_id", 3, T::TYPE_STRING},
      {"ContainerFilter", "label_selector", 4, T::TYPE_MESSAGE},
      {"ContainerStateValue", "state", 1, T::TYPE_ENUM},
      {"ListContainersRequest", "filter", 1, T::TYPE_MESSAGE},
      {"ListContainersResponse", "containers", 1, T::TYPE_MESSAGE},
      {"Container", "id", 1, T::TYPE_STRING},
      {"Container", "pod_sandbox_id", 2, T::TYPE_STRING},
      {"Container", "metadata", 3, T::TYPE_MESSAGE},
      {"Container", "image", 4, T::TYPE_MESSAGE},
      {"Container", "image_ref", 5, T::TYPE_STRING},
      {"Container", "state", 6, T::TYPE_ENUM},
      {"Container", "created_at", 7, T::TYPE_INT64},
      {"Container", "labels", 8, T::TYPE_MESSAGE},
      {"Container", "annotations", 9, T::TYPE_MESSAGE},
      {"Container", "image_id", 10, T::TYPE_STRING},
      {"ContainerStatusRequest", "container_id", 1, T::TYPE_STRING},
      {"ContainerStatusRequest", "verbose", 2, T::TYPE_BOOL},
      {"ContainerStatusResponse", "status", 1, T::TYPE_MESSAGE},
      {"ContainerStatusResponse", "info", 2, T::TYPE_MESSAGE},
      {"ContainerStatus", "id", 1, T::TYPE_STRING},
      {"ContainerStatus", "metadata", 2, T::TYPE_MESSAGE},
      {"ContainerStatus", "state", 3, T::TYPE_ENUM},
      {"ContainerStatus", "created_at", 4, T::TYPE_INT64},
      {"ContainerStatus", "started_at", 5, T::TYPE_INT64},
      {"ContainerStatus", "finished_at", 6, T::TYPE_INT64},
      {"ContainerStatus", "exit_code", 7, T::TYPE_INT32},
      {"ContainerStatus", "image", 8, T::TYPE_MESSAGE},
      {"ContainerStatus", "image_ref", 9, T::TYPE_STRING},
      {"ContainerStatus", "reason", 10, T::TYPE_STRING},
      {"ContainerStatus", "message", 11, T::TYPE_STRING},
      {"ContainerStatus", "labels", 12, T::TYPE_MESSAGE},
      {"ContainerStatus", "annotations", 13, T::TYPE_MESSAGE},
      {"ContainerStatus", "log_path", 15, T::TYPE_STRING},
      {"ContainerStatus", "image_id", 17, T::TYPE_STRING},
  };
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const auto& c : contract) {
    const auto* message = pool->FindMessageTypeByName(std::string("runtime.v1.") + c.message);
    ASSERT_NE(message, nullptr) << c.message;
    const auto* field = message->FindFieldByName(c.field);
    ASSERT_NE(field, nullptr) << c.message << "." << c.field;
    EXPECT_EQ(field->number(), c.number) << c.message << "." << c.field;
    EXPECT_EQ(field->type(), c.type) << c.message << "." << c.field;
  }
}

TEST(CriWireContract, EnumValuesMatchUpstream) {
  EXPECT_EQ(v1::CONTAINER_CREATED, 0);
  EXPECT_EQ(v1::CONTAINER_RUNNING, 1);
  EXPECT_EQ(v1::CONTAINER_EXITED, 2);
  EXPECT_EQ(v1::CONTAINER_UNKNOWN, 3);
  EXPECT_EQ(v1::SANDBOX_READY, 0);
  EXPECT_EQ(v1::SANDBOX_NOTREADY, 1);
  EXPECT_EQ(v1::POD, 0);
  EXPECT_EQ(v1::CONTAINER, 1);
  EXPECT_EQ(v1::NODE, 2);
  EXPECT_EQ(v1::TARGET, 3);
}

TEST(CriWireContract, ServicesAreRuntimeV1) {
  EXPECT_STREQ(v1::ImageService::service_full_name(), "runtime.v1.ImageService");
  EXPECT_STREQ(v1::RuntimeService::service_full_name(), "runtime.v1.RuntimeService");
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const auto* images = pool->FindServiceByName("runtime.v1.ImageService");
  ASSERT_NE(images, nullptr);
  for (const char* rpc : {"ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"}) {
    EXPECT_NE(images->FindMethodByName(rpc), nullptr) << rpc;
  }
  const auto* pull = images->FindMethodByName("PullImage");
  EXPECT_EQ(pull->input_type()->full_name(), "runtime.v1.PullImageRequest");
  EXPECT_EQ(pull->output_type()->full_name(), "runtime.v1.PullImageResponse");
  const auto* runtime = pool->FindServiceByName("runtime.v1.RuntimeService");
  ASSERT_NE(runtime, nullptr);
  EXPECT_EQ(runtime->FindMethodByName("ListContainers")->input_type()->full_name(),
            "runtime.v1.ListContainersRequest");
}

TEST(CriWireContract, AuthSecretsAreEncodedAtUpstreamTags) {
  v1::AuthConfig p;
  p.set_password("p");
  p.set_registry_token("t");
  // field 2, wire type 2 (0x12); field 6, wire type 2 (0x32)
  EXPECT_EQ(p.SerializeAsString(), std::string("\x12\x01p\x32\x01t", 6));
}

}  // namespace
}  // namespace stowage::cri
