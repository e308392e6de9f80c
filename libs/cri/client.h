// A client of a node's CRI runtime (containerd, CRI-O) over its unix socket: the image service
// (list, status, pull, remove, filesystem usage), runtime identification, and the sandbox and
// container calls needed to run and inspect containers.
//   cri::Client runtime({.endpoint = "unix:///run/containerd/containerd.sock"});
//   const std::string id = runtime.pull_image("quay.io/team/app:1.0", auth);
//   if (auto image = runtime.image_status(id)) { ... image->repo_digests ... }
// Every call has a deadline (ClientOptions) and throws stowage::Error with the code of
// cri/status.h on failure; the message names the call, its subject and the endpoint, never
// credentials. Thread-safe: one Client may be used from many threads at once.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "cri/endpoint.h"
#include "cri/types.h"

namespace stowage::cri {

struct ClientOptions {
  // "unix:///path", "unix:/path" or "/path" (see parse_endpoint).
  std::string endpoint = std::string(kContainerdEndpoint);
  // Deadline of each call but PullImage.
  std::chrono::milliseconds timeout = std::chrono::seconds(10);
  // Deadline of PullImage, which blocks until the whole image is in the store. Kubelet applies
  // no deadline of its own to pulls; containerd cancels a pull that stalls for 5 minutes.
  std::chrono::milliseconds pull_timeout = std::chrono::minutes(2);
  // Largest response accepted (ListImages and ListContainers on a busy node exceed gRPC's 4 MiB).
  int max_receive_message_bytes = 16 * 1024 * 1024;
};

class Client {
 public:
  // Checks the endpoint (Error kInvalidArgument) but does not connect: the first call does, and
  // a runtime that is not there yet fails that call with kUnavailable.
  explicit Client(ClientOptions options = {});
  ~Client();
  // A moved-from Client may only be destroyed or assigned to.
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The absolute path of the socket this client talks to.
  const std::string& socket_path() const;
  const ClientOptions& options() const;

  // ---- RuntimeService: identification and containers

  VersionInfo version() const;
  // Containers in every state (exited ones too) matching `filter`.
  std::vector<Container> list_containers(const ContainerFilter& filter = {}) const;
  // Throws kNotFound when the runtime has no such container.
  ContainerStatus container_status(const std::string& container_id) const;

  // Creates and starts a sandbox; returns its ID. An empty handler selects the default runtime.
  std::string run_pod_sandbox(const PodSandboxConfig& config,
                              const std::string& runtime_handler = "") const;
  // Both idempotent: an already stopped or removed sandbox is not an error.
  void stop_pod_sandbox(const std::string& sandbox_id) const;
  void remove_pod_sandbox(const std::string& sandbox_id) const;
  std::vector<PodSandbox> list_pod_sandboxes(const PodSandboxFilter& filter = {}) const;

  // Creates a container in a sandbox made with run_pod_sandbox(`sandbox`); returns its ID.
  std::string create_container(const std::string& sandbox_id, const ContainerConfig& config,
                               const PodSandboxConfig& sandbox) const;
  void start_container(const std::string& container_id) const;
  // Signals the container and kills it after `grace` (0: at once). Idempotent.
  void stop_container(const std::string& container_id, std::chrono::seconds grace) const;
  // Idempotent; a running container is killed first.
  void remove_container(const std::string& container_id) const;

  // ---- ImageService

  // Every image in the store, or those matching `image` (a reference or ID) when not empty.
  std::vector<Image> list_images(const std::string& image = "") const;
  // The image named by `image` (reference, digest reference or ID), or nullopt when absent.
  std::optional<Image> image_status(const std::string& image) const;
  // Pulls `image` (passed on unchanged: "repo:tag" or "repo@sha256:...") with optional
  // credentials, and returns the image reference the runtime reports (its image ID). `sandbox`
  // is sent as the pull's sandbox config; without it a fixed Stowage one is sent, because some
  // runtimes fail on none. A request on `stop` cancels the pull (Error kUnavailable).
  std::string pull_image(const std::string& image,
                         const std::optional<AuthConfig>& auth = std::nullopt,
                         const std::optional<PodSandboxConfig>& sandbox = std::nullopt,
                         std::stop_token stop = {}) const;
  // Removes the image and every tag it has. Idempotent: an absent image is not an error.
  void remove_image(const std::string& image) const;
  ImageFsInfo image_fs_info() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stowage::cri
