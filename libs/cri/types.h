// Plain C++ values for what Stowage sends to and reads from a CRI runtime (CRI-O, containerd):
// images, filesystem usage, runtime version, pod sandboxes and containers. They mirror the
// runtime.v1 messages of libs/cri/api.proto field for field where Stowage uses them, without
// exposing protobuf: code that uses stowage::cri never compiles generated headers.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stowage::cri {

using Labels = std::map<std::string, std::string>;

// An image in the runtime's store (CRI Image).
struct Image {
  // The runtime's image ID; equals PullImage's image_ref and Container::image_id.
  std::string id;
  std::vector<std::string> repo_tags;     // "registry/repo:tag"
  std::vector<std::string> repo_digests;  // "registry/repo@sha256:..."
  std::uint64_t size = 0;                 // bytes
  // The user the image runs as: a numeric uid, or else a name (mutually exclusive).
  std::optional<std::int64_t> uid;
  std::string username;
  // The runtime recommends keeping this image (e.g. CRI-O's pause and pinned_images).
  bool pinned = false;
};

// Registry credentials for one pull (CRI AuthConfig). The secret fields (password, auth,
// identity_token, registry_token) never appear in an error message or a log line.
struct AuthConfig {
  std::string username;
  std::string password;
  std::string auth;  // base64 of "username:password"
  // The registry these credentials are for, as a URL ("https://registry.example:5000");
  // runtimes ignore them for other hosts. containerd 1.6 parses it as a URL and fails the pull
  // on a bare "host:port".
  std::string server_address;
  std::string identity_token;  // exchanged by the runtime for an access token
  std::string registry_token;  // a bearer token sent to the registry as is
};

// Usage of one filesystem holding images or container layers (CRI FilesystemUsage).
struct FilesystemUsage {
  std::string mountpoint;
  std::uint64_t used_bytes = 0;
  std::optional<std::uint64_t> inodes_used;
  std::int64_t timestamp_ns = 0;  // when the runtime measured it, ns since the epoch
};

struct ImageFsInfo {
  std::vector<FilesystemUsage> image_filesystems;
  // Only runtimes that keep container layers apart from images report these.
  std::vector<FilesystemUsage> container_filesystems;
};

// The runtime's answer to CRI Version.
struct VersionInfo {
  std::string version;              // the kubelet runtime API version ("0.1.0")
  std::string runtime_name;         // "containerd", "cri-o"
  std::string runtime_version;      // e.g. "1.6.20~ds1"
  std::string runtime_api_version;  // "v1"
};

// ---- Pod sandboxes

enum class NamespaceMode { kPod, kContainer, kNode, kTarget };

// What RunPodSandbox needs (CRI PodSandboxConfig, Linux part only). The same value is passed
// again to create_container() for containers of that sandbox.
struct PodSandboxConfig {
  // Metadata: identifies the sandbox; (name, uid, namespace_name, attempt) must be unique.
  std::string name;
  std::string uid;
  std::string namespace_name;
  std::uint32_t attempt = 0;
  std::string hostname;
  // Host directory for container logs; container log paths are relative to it.
  std::string log_directory;
  Labels labels;
  Labels annotations;
  std::string cgroup_parent;
  // kNode network needs no CNI: the sandbox shares the host's network namespace.
  NamespaceMode network = NamespaceMode::kPod;
  NamespaceMode pid = NamespaceMode::kPod;
  NamespaceMode ipc = NamespaceMode::kPod;
  bool privileged = false;
};

enum class PodSandboxState { kReady, kNotReady };

struct PodSandbox {
  std::string id;
  std::string name;
  std::string uid;
  std::string namespace_name;
  std::uint32_t attempt = 0;
  PodSandboxState state = PodSandboxState::kNotReady;
  std::int64_t created_at_ns = 0;
  Labels labels;
  Labels annotations;
  std::string runtime_handler;
};

// Conditions of list_pod_sandboxes(), combined with AND; empty fields match everything.
struct PodSandboxFilter {
  std::string id;
  std::optional<PodSandboxState> state;
  Labels label_selector;
};

// ---- Containers

enum class ContainerState { kCreated, kRunning, kExited, kUnknown };

// "created", "running", "exited", "unknown".
std::string_view container_state_name(ContainerState state);

// What CreateContainer needs (CRI ContainerConfig, the parts Stowage uses).
struct ContainerConfig {
  std::string name;  // unique within the sandbox together with attempt
  std::uint32_t attempt = 0;
  std::string image;                 // reference, digest or image ID of an image the runtime holds
  std::vector<std::string> command;  // replaces the image's entrypoint when not empty
  std::vector<std::string> args;     // replaces the image's cmd when not empty
  std::string working_dir;
  std::vector<std::pair<std::string, std::string>> envs;
  Labels labels;
  Labels annotations;
  std::string log_path;  // relative to the sandbox's log_directory
};

// One container as ListContainers reports it.
struct Container {
  std::string id;
  std::string pod_sandbox_id;
  std::string name;  // metadata.name
  std::uint32_t attempt = 0;
  // The image as the container was created with (ImageSpec.image); runtimes often put the
  // image ID here.
  std::string image;
  std::string image_ref;  // historically a digest or ID of the image in use
  // Image::id of the image in use; empty on runtimes older than the 2024 CRI (containerd 1.6).
  std::string image_id;
  ContainerState state = ContainerState::kUnknown;
  std::int64_t created_at_ns = 0;
  Labels labels;
  Labels annotations;
};

// Conditions of list_containers(), combined with AND; empty fields match everything.
struct ContainerFilter {
  std::string id;
  std::optional<ContainerState> state;
  std::string pod_sandbox_id;
  Labels label_selector;
};

// One container as ContainerStatus reports it.
struct ContainerStatus {
  std::string id;
  std::string name;
  std::uint32_t attempt = 0;
  ContainerState state = ContainerState::kUnknown;
  std::int64_t created_at_ns = 0;
  std::int64_t started_at_ns = 0;   // 0: not started
  std::int64_t finished_at_ns = 0;  // 0: not finished
  std::int32_t exit_code = 0;       // meaningful when finished_at_ns != 0
  std::string image;
  std::string image_ref;
  std::string image_id;
  std::string reason;
  std::string message;
  Labels labels;
  Labels annotations;
  std::string log_path;
};

}  // namespace stowage::cri
