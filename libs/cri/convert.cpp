#include "cri/convert.h"

namespace stowage::cri::convert {
namespace {

template <typename ProtoMap>
Labels to_labels(const ProtoMap& map) {
  return Labels(map.begin(), map.end());
}

template <typename ProtoMap>
void put_labels(const Labels& labels, ProtoMap* out) {
  for (const auto& [k, v] : labels) {
    (*out)[k] = v;
  }
}

template <typename Repeated>
std::vector<std::string> to_strings(const Repeated& repeated) {
  return std::vector<std::string>(repeated.begin(), repeated.end());
}

}  // namespace

Image from_proto(const v1::Image& image) {
  Image out;
  out.id = image.id();
  out.repo_tags = to_strings(image.repo_tags());
  out.repo_digests = to_strings(image.repo_digests());
  out.size = image.size();
  if (image.has_uid()) {
    out.uid = image.uid().value();
  }
  out.username = image.username();
  out.pinned = image.pinned();
  return out;
}

FilesystemUsage from_proto(const v1::FilesystemUsage& usage) {
  FilesystemUsage out;
  out.mountpoint = usage.fs_id().mountpoint();
  out.used_bytes = usage.used_bytes().value();
  if (usage.has_inodes_used()) {
    out.inodes_used = usage.inodes_used().value();
  }
  out.timestamp_ns = usage.timestamp();
  return out;
}

ImageFsInfo from_proto(const v1::ImageFsInfoResponse& response) {
  ImageFsInfo out;
  for (const auto& u : response.image_filesystems()) {
    out.image_filesystems.push_back(from_proto(u));
  }
  for (const auto& u : response.container_filesystems()) {
    out.container_filesystems.push_back(from_proto(u));
  }
  return out;
}

VersionInfo from_proto(const v1::VersionResponse& response) {
  return VersionInfo{
      .version = response.version(),
      .runtime_name = response.runtime_name(),
      .runtime_version = response.runtime_version(),
      .runtime_api_version = response.runtime_api_version(),
  };
}

ContainerState from_proto(v1::ContainerState state) {
  switch (state) {
    case v1::CONTAINER_CREATED: return ContainerState::kCreated;
    case v1::CONTAINER_RUNNING: return ContainerState::kRunning;
    case v1::CONTAINER_EXITED: return ContainerState::kExited;
    default: return ContainerState::kUnknown;
  }
}

PodSandboxState from_proto(v1::PodSandboxState state) {
  return state == v1::SANDBOX_READY ? PodSandboxState::kReady : PodSandboxState::kNotReady;
}

PodSandbox from_proto(const v1::PodSandbox& sandbox) {
  PodSandbox out;
  out.id = sandbox.id();
  out.name = sandbox.metadata().name();
  out.uid = sandbox.metadata().uid();
  out.namespace_name = sandbox.metadata().namespace_();
  out.attempt = sandbox.metadata().attempt();
  out.state = from_proto(sandbox.state());
  out.created_at_ns = sandbox.created_at();
  out.labels = to_labels(sandbox.labels());
  out.annotations = to_labels(sandbox.annotations());
  out.runtime_handler = sandbox.runtime_handler();
  return out;
}

Container from_proto(const v1::Container& container) {
  Container out;
  out.id = container.id();
  out.pod_sandbox_id = container.pod_sandbox_id();
  out.name = container.metadata().name();
  out.attempt = container.metadata().attempt();
  out.image = container.image().image();
  out.image_ref = container.image_ref();
  out.image_id = container.image_id();
  out.state = from_proto(container.state());
  out.created_at_ns = container.created_at();
  out.labels = to_labels(container.labels());
  out.annotations = to_labels(container.annotations());
  return out;
}

ContainerStatus from_proto(const v1::ContainerStatus& status) {
  ContainerStatus out;
  out.id = status.id();
  out.name = status.metadata().name();
  out.attempt = status.metadata().attempt();
  out.state = from_proto(status.state());
  out.created_at_ns = status.created_at();
  out.started_at_ns = status.started_at();
  out.finished_at_ns = status.finished_at();
  out.exit_code = status.exit_code();
  out.image = status.image().image();
  out.image_ref = status.image_ref();
  out.image_id = status.image_id();
  out.reason = status.reason();
  out.message = status.message();
  out.labels = to_labels(status.labels());
  out.annotations = to_labels(status.annotations());
  out.log_path = status.log_path();
  return out;
}

v1::AuthConfig to_proto(const AuthConfig& auth) {
  v1::AuthConfig out;
  out.set_username(auth.username);
  out.set_password(auth.password);
  out.set_auth(auth.auth);
  out.set_server_address(auth.server_address);
  out.set_identity_token(auth.identity_token);
  out.set_registry_token(auth.registry_token);
  return out;
}

v1::NamespaceMode to_proto(NamespaceMode mode) {
  switch (mode) {
    case NamespaceMode::kPod: return v1::POD;
    case NamespaceMode::kContainer: return v1::CONTAINER;
    case NamespaceMode::kNode: return v1::NODE;
    case NamespaceMode::kTarget: return v1::TARGET;
  }
  return v1::POD;
}

v1::ContainerState to_proto(ContainerState state) {
  switch (state) {
    case ContainerState::kCreated: return v1::CONTAINER_CREATED;
    case ContainerState::kRunning: return v1::CONTAINER_RUNNING;
    case ContainerState::kExited: return v1::CONTAINER_EXITED;
    case ContainerState::kUnknown: return v1::CONTAINER_UNKNOWN;
  }
  return v1::CONTAINER_UNKNOWN;
}

v1::PodSandboxState to_proto(PodSandboxState state) {
  return state == PodSandboxState::kReady ? v1::SANDBOX_READY : v1::SANDBOX_NOTREADY;
}

v1::PodSandboxConfig to_proto(const PodSandboxConfig& config) {
  v1::PodSandboxConfig out;
  auto* metadata = out.mutable_metadata();
  metadata->set_name(config.name);
  metadata->set_uid(config.uid);
  metadata->set_namespace_(config.namespace_name);
  metadata->set_attempt(config.attempt);
  out.set_hostname(config.hostname);
  out.set_log_directory(config.log_directory);
  put_labels(config.labels, out.mutable_labels());
  put_labels(config.annotations, out.mutable_annotations());
  auto* linux_config = out.mutable_linux();
  linux_config->set_cgroup_parent(config.cgroup_parent);
  auto* security = linux_config->mutable_security_context();
  security->set_privileged(config.privileged);
  auto* namespaces = security->mutable_namespace_options();
  namespaces->set_network(to_proto(config.network));
  namespaces->set_pid(to_proto(config.pid));
  namespaces->set_ipc(to_proto(config.ipc));
  return out;
}

v1::PodSandboxFilter to_proto(const PodSandboxFilter& filter) {
  v1::PodSandboxFilter out;
  out.set_id(filter.id);
  if (filter.state) {
    out.mutable_state()->set_state(to_proto(*filter.state));
  }
  put_labels(filter.label_selector, out.mutable_label_selector());
  return out;
}

v1::ContainerConfig to_proto(const ContainerConfig& config) {
  v1::ContainerConfig out;
  out.mutable_metadata()->set_name(config.name);
  out.mutable_metadata()->set_attempt(config.attempt);
  out.mutable_image()->set_image(config.image);
  for (const auto& c : config.command) {
    out.add_command(c);
  }
  for (const auto& a : config.args) {
    out.add_args(a);
  }
  out.set_working_dir(config.working_dir);
  for (const auto& [key, value] : config.envs) {
    auto* kv = out.add_envs();
    kv->set_key(key);
    kv->set_value(value);
  }
  put_labels(config.labels, out.mutable_labels());
  put_labels(config.annotations, out.mutable_annotations());
  out.set_log_path(config.log_path);
  return out;
}

v1::ContainerFilter to_proto(const ContainerFilter& filter) {
  v1::ContainerFilter out;
  out.set_id(filter.id);
  if (filter.state) {
    out.mutable_state()->set_state(to_proto(*filter.state));
  }
  out.set_pod_sandbox_id(filter.pod_sandbox_id);
  put_labels(filter.label_selector, out.mutable_label_selector());
  return out;
}

PodSandboxConfig default_pull_sandbox() {
  PodSandboxConfig config;
  config.name = "stowage-image-pull";
  config.uid = "stowage-image-pull";
  config.namespace_name = "stowage";
  config.annotations = {{"stowage.io/pulled-by", "stowage"}};
  return config;
}

v1::PullImageRequest pull_request(const std::string& image, const std::optional<AuthConfig>& auth,
                                  const std::optional<PodSandboxConfig>& sandbox) {
  v1::PullImageRequest out;
  out.mutable_image()->set_image(image);
  if (auth) {
    *out.mutable_auth() = to_proto(*auth);
  }
  *out.mutable_sandbox_config() = to_proto(sandbox ? *sandbox : default_pull_sandbox());
  return out;
}

}  // namespace stowage::cri::convert
