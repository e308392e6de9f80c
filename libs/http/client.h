// http::Client: the libcurl Transport (HTTP/1.1) under the OCI and Kubernetes clients. A pool of
// curl easy handles keeps connections open for reuse; a curl share holds the DNS cache and TLS
// sessions. Thread-safe: each concurrent request takes its own handle. Create one per process,
// share it by reference; it must outlive requests in flight. Binaries should ignore SIGPIPE (the
// Client never touches signal dispositions).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "http/transport.h"

namespace stowage::http {

struct ClientOptions {
  std::string user_agent = "stowage/0.1";
  // Handles kept for reuse; a handle keeps its connections open, so this bounds idle sockets too.
  std::size_t max_idle_handles = 16;
  // std::nullopt: proxies from the environment (http_proxy, https_proxy, no_proxy), as curl does;
  // "": never use a proxy; otherwise the proxy URL.
  std::optional<std::string> proxy;
  // Receive buffer per transfer; zero keeps curl's default (16 KiB). Larger helps big blobs.
  std::size_t receive_buffer_bytes = 0;
};

class Client final : public Transport {
 public:
  explicit Client(ClientOptions options = {});
  ~Client() override;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Response send(const Request& request) override;
  Response stream(const Request& request, const StreamHandlers& handlers) override;

  // Handles waiting in the pool (for tests and metrics).
  std::size_t idle_handles() const;

 private:
  struct Impl;
  Response perform(const Request& request, const StreamHandlers* handlers);

  std::unique_ptr<Impl> impl_;
};

}  // namespace stowage::http
