#include "cri/endpoint.h"

#include <fmt/format.h>
#include <sys/un.h>

#include "base/error.h"

namespace stowage::cri {
namespace {

constexpr std::string_view kUnixScheme = "unix:";

[[noreturn]] void reject(std::string_view endpoint, std::string_view why) {
  throw Error(Code::kInvalidArgument, fmt::format("CRI endpoint \"{}\": {}", endpoint, why));
}

}  // namespace

std::string parse_endpoint(std::string_view endpoint) {
  if (endpoint.empty()) {
    reject(endpoint, "empty");
  }
  if (endpoint.find('\0') != std::string_view::npos) {
    reject(endpoint, "contains a NUL byte");
  }
  std::string_view path = endpoint;
  if (endpoint.starts_with(kUnixScheme)) {
    path.remove_prefix(kUnixScheme.size());
    if (path.starts_with("//")) {
      path.remove_prefix(2);
      if (!path.empty() && path.front() != '/') {
        reject(endpoint, "a unix endpoint has no host part; write unix:///absolute/path");
      }
    }
  } else if (const auto colon = endpoint.find("://");
             !endpoint.starts_with('/') && colon != std::string_view::npos) {
    reject(endpoint, fmt::format("scheme {} is not supported; CRI is served on unix sockets",
                                 endpoint.substr(0, colon)));
  }
  if (path.empty()) {
    reject(endpoint, "no socket path");
  }
  if (path.front() != '/') {
    reject(endpoint, "the socket path must be absolute");
  }
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    reject(endpoint, fmt::format("the socket path is {} bytes; a unix socket path holds at most {}",
                                 path.size(), sizeof(sockaddr_un{}.sun_path) - 1));
  }
  return std::string(path);
}

std::string grpc_target(std::string_view socket_path) {
  return std::string(kUnixScheme) + std::string(socket_path);
}

}  // namespace stowage::cri
