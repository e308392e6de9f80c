// http::Http1Client: the Transport (transport.h) without libcurl, HTTP/1.1 over POSIX sockets and
// OpenSSL, for processes that must stay small (the node agent). Same contract, error codes and
// messages as the libcurl http::Client; keeps idle keep-alive connections in a bounded pool and one
// SSL_CTX per distinct TlsOptions (and version of the files they name, so rotated certificates are
// read again). Thread-safe: any number of threads may send at once. Create one per process, share
// it by reference; it must outlive requests in flight. Never raises SIGPIPE.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "http/transport.h"

namespace stowage::http {

struct Http1ClientOptions {
  std::string user_agent = "stowage/0.1";
  // Idle keep-alive connections kept for reuse, over all hosts.
  std::size_t max_idle_connections = 16;
  // std::nullopt: proxies from the environment as curl reads them (http_proxy for http URLs,
  // https_proxy or HTTPS_PROXY for https URLs, then all_proxy or ALL_PROXY; no_proxy or NO_PROXY
  // lists exceptions); "": never use a proxy; otherwise the proxy URL (http:// only).
  std::optional<std::string> proxy;
  // Bytes read from a connection at a time; zero means 16 KiB. Larger helps big blobs.
  std::size_t receive_buffer_bytes = 0;
};

class Http1Client final : public Transport {
 public:
  explicit Http1Client(Http1ClientOptions options = {});
  ~Http1Client() override;
  Http1Client(const Http1Client&) = delete;
  Http1Client& operator=(const Http1Client&) = delete;

  Response send(const Request& request) override;
  Response stream(const Request& request, const StreamHandlers& handlers) override;

  // Connections waiting in the pool (for tests and metrics).
  std::size_t idle_connections() const;

 private:
  struct Impl;
  Response perform(const Request& request, const StreamHandlers* handlers);

  std::unique_ptr<Impl> impl_;
};

}  // namespace stowage::http
