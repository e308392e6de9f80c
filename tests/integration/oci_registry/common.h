// Shared pieces of the oci_registry integration tests: a real-clock connector for test
// registries, pull sources for a reference, a log capture for secret checks, and skip reasons.
#pragma once

#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "http/client.h"
#include "oci/copy.h"
#include "oci/resolve.h"

namespace stowage::oci::itest {

// A client that never uses a proxy (tests talk to loopback only).
http::Client& transport();

// Fast retries for tests: 3 attempts, 50 ms backoff.
RetryPolicy fast_retry();

// A connector reaching `plain_http_hosts` over plain HTTP, with `credentials` for every host.
std::unique_ptr<RegistryConnector> connector(std::vector<std::string> plain_http_hosts,
                                             Credentials credentials = {},
                                             std::string certs_dir = {});

// One primary source for a reference such as "127.0.0.1:5000/team/app:1.0".
std::vector<PullSource> sources(const std::string& reference, bool insecure = false);

// Why the registry tests cannot run here (docker-registry or skopeo missing), or nullopt.
std::optional<std::string> skip_reason();

// Everything spdlog's default logger writes (at debug level) while it lives.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::string text() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace stowage::oci::itest
