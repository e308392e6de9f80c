#include "cri/client.h"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>
#include <utility>

#include "base/error.h"
#include "cri/api.pb.h"
#include "cri/convert.h"
#include "cri/grpc_unary.h"
#include "cri/status.h"

namespace stowage::cri {

namespace v1 = ::runtime::v1;

namespace {

constexpr std::string_view kRuntimeService = "/runtime.v1.RuntimeService/";
constexpr std::string_view kImageService = "/runtime.v1.ImageService/";

}  // namespace

struct Client::Impl {
  ClientOptions options;
  std::string socket_path;

  // Runs one unary call of `service` with `timeout` as its deadline and parses its response;
  // throws the mapped Error on failure. `subject` names what the call is about (an image, a
  // container ID), never credentials. A stop request cancels the call in flight (gRPC
  // CANCELLED, mapped to Unavailable).
  void call(std::string_view service, std::string_view rpc, std::string_view subject,
            std::chrono::milliseconds timeout, const google::protobuf::MessageLite& request,
            google::protobuf::MessageLite& response, std::stop_token stop = {}) const {
    std::string method(service);
    method += rpc;
    UnaryResult result;
    std::string bytes;
    if (!request.SerializeToString(&bytes)) {
      result = {13, "the request could not be serialized", {}};
    } else {
      result = unary_call(UnaryCall{.socket_path = socket_path,
                                    .method = std::move(method),
                                    .timeout = timeout,
                                    .max_response_bytes = static_cast<std::size_t>(
                                        std::max(options.max_receive_message_bytes, 0)),
                                    .stop = std::move(stop)},
                          bytes);
      if (result.code == 0) {
        if (response.ParseFromString(result.response)) {
          return;
        }
        result = {13, fmt::format("the response does not parse as {}", response.GetTypeName()), {}};
      }
    }
    std::string what = fmt::format("CRI {}", rpc);
    if (!subject.empty()) {
      what += fmt::format(" {}", subject);
    }
    throw Error(code_for_grpc(result.code),
                fmt::format("{} at {}: {}: {}", what, socket_path, grpc_code_name(result.code),
                            result.message.empty() ? "(no message)" : result.message));
  }
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->socket_path = parse_endpoint(options.endpoint);
  impl_->options = std::move(options);
}

Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

const std::string& Client::socket_path() const {
  return impl_->socket_path;
}

const ClientOptions& Client::options() const {
  return impl_->options;
}

VersionInfo Client::version() const {
  v1::VersionRequest request;
  request.set_version("0.1.0");  // the kubelet runtime API version kubelet sends
  v1::VersionResponse response;
  impl_->call(kRuntimeService, "Version", "", impl_->options.timeout, request, response);
  return convert::from_proto(response);
}

std::vector<Container> Client::list_containers(const ContainerFilter& filter) const {
  v1::ListContainersRequest request;
  *request.mutable_filter() = convert::to_proto(filter);
  v1::ListContainersResponse response;
  impl_->call(kRuntimeService, "ListContainers", "", impl_->options.timeout, request, response);
  std::vector<Container> out;
  out.reserve(static_cast<std::size_t>(response.containers_size()));
  for (const auto& container : response.containers()) {
    out.push_back(convert::from_proto(container));
  }
  return out;
}

ContainerStatus Client::container_status(const std::string& container_id) const {
  v1::ContainerStatusRequest request;
  request.set_container_id(container_id);
  v1::ContainerStatusResponse response;
  impl_->call(kRuntimeService, "ContainerStatus", container_id, impl_->options.timeout, request,
              response);
  if (!response.has_status()) {
    throw Error(Code::kNotFound, fmt::format("CRI ContainerStatus {} at {}: no status returned",
                                             container_id, impl_->socket_path));
  }
  return convert::from_proto(response.status());
}

std::string Client::run_pod_sandbox(const PodSandboxConfig& config,
                                    const std::string& runtime_handler) const {
  v1::RunPodSandboxRequest request;
  *request.mutable_config() = convert::to_proto(config);
  request.set_runtime_handler(runtime_handler);
  v1::RunPodSandboxResponse response;
  impl_->call(kRuntimeService, "RunPodSandbox",
              fmt::format("{}/{}", config.namespace_name, config.name), impl_->options.timeout,
              request, response);
  return response.pod_sandbox_id();
}

void Client::stop_pod_sandbox(const std::string& sandbox_id) const {
  v1::StopPodSandboxRequest request;
  request.set_pod_sandbox_id(sandbox_id);
  v1::StopPodSandboxResponse response;
  impl_->call(kRuntimeService, "StopPodSandbox", sandbox_id, impl_->options.timeout, request,
              response);
}

void Client::remove_pod_sandbox(const std::string& sandbox_id) const {
  v1::RemovePodSandboxRequest request;
  request.set_pod_sandbox_id(sandbox_id);
  v1::RemovePodSandboxResponse response;
  impl_->call(kRuntimeService, "RemovePodSandbox", sandbox_id, impl_->options.timeout, request,
              response);
}

std::vector<PodSandbox> Client::list_pod_sandboxes(const PodSandboxFilter& filter) const {
  v1::ListPodSandboxRequest request;
  *request.mutable_filter() = convert::to_proto(filter);
  v1::ListPodSandboxResponse response;
  impl_->call(kRuntimeService, "ListPodSandbox", "", impl_->options.timeout, request, response);
  std::vector<PodSandbox> out;
  out.reserve(static_cast<std::size_t>(response.items_size()));
  for (const auto& sandbox : response.items()) {
    out.push_back(convert::from_proto(sandbox));
  }
  return out;
}

std::string Client::create_container(const std::string& sandbox_id, const ContainerConfig& config,
                                     const PodSandboxConfig& sandbox) const {
  v1::CreateContainerRequest request;
  request.set_pod_sandbox_id(sandbox_id);
  *request.mutable_config() = convert::to_proto(config);
  *request.mutable_sandbox_config() = convert::to_proto(sandbox);
  v1::CreateContainerResponse response;
  impl_->call(kRuntimeService, "CreateContainer",
              fmt::format("{} in sandbox {}", config.name, sandbox_id), impl_->options.timeout,
              request, response);
  return response.container_id();
}

void Client::start_container(const std::string& container_id) const {
  v1::StartContainerRequest request;
  request.set_container_id(container_id);
  v1::StartContainerResponse response;
  impl_->call(kRuntimeService, "StartContainer", container_id, impl_->options.timeout, request,
              response);
}

void Client::stop_container(const std::string& container_id, std::chrono::seconds grace) const {
  v1::StopContainerRequest request;
  request.set_container_id(container_id);
  request.set_timeout(grace.count());
  v1::StopContainerResponse response;
  // The runtime may wait the whole grace period before it kills: allow for it.
  impl_->call(kRuntimeService, "StopContainer", container_id, impl_->options.timeout + grace,
              request, response);
}

void Client::remove_container(const std::string& container_id) const {
  v1::RemoveContainerRequest request;
  request.set_container_id(container_id);
  v1::RemoveContainerResponse response;
  impl_->call(kRuntimeService, "RemoveContainer", container_id, impl_->options.timeout, request,
              response);
}

std::vector<Image> Client::list_images(const std::string& image) const {
  v1::ListImagesRequest request;
  if (!image.empty()) {
    request.mutable_filter()->mutable_image()->set_image(image);
  }
  v1::ListImagesResponse response;
  impl_->call(kImageService, "ListImages", image, impl_->options.timeout, request, response);
  std::vector<Image> out;
  out.reserve(static_cast<std::size_t>(response.images_size()));
  for (const auto& i : response.images()) {
    out.push_back(convert::from_proto(i));
  }
  return out;
}

std::optional<Image> Client::image_status(const std::string& image) const {
  v1::ImageStatusRequest request;
  request.mutable_image()->set_image(image);
  v1::ImageStatusResponse response;
  impl_->call(kImageService, "ImageStatus", image, impl_->options.timeout, request, response);
  if (!response.has_image()) {
    return std::nullopt;
  }
  return convert::from_proto(response.image());
}

std::string Client::pull_image(const std::string& image, const std::optional<AuthConfig>& auth,
                               const std::optional<PodSandboxConfig>& sandbox,
                               std::stop_token stop) const {
  const v1::PullImageRequest request = convert::pull_request(image, auth, sandbox);
  v1::PullImageResponse response;
  impl_->call(kImageService, "PullImage", image, impl_->options.pull_timeout, request, response,
              stop);
  return response.image_ref();
}

void Client::remove_image(const std::string& image) const {
  v1::RemoveImageRequest request;
  request.mutable_image()->set_image(image);
  v1::RemoveImageResponse response;
  impl_->call(kImageService, "RemoveImage", image, impl_->options.timeout, request, response);
}

ImageFsInfo Client::image_fs_info() const {
  v1::ImageFsInfoRequest request;
  v1::ImageFsInfoResponse response;
  impl_->call(kImageService, "ImageFsInfo", "", impl_->options.timeout, request, response);
  return convert::from_proto(response);
}

std::string_view container_state_name(ContainerState state) {
  switch (state) {
    case ContainerState::kCreated: return "created";
    case ContainerState::kRunning: return "running";
    case ContainerState::kExited: return "exited";
    case ContainerState::kUnknown: return "unknown";
  }
  return "unknown";
}

}  // namespace stowage::cri
