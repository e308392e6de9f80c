// cpprestsdk's U() macro collides with fmt/spdlog; the target defines _TURN_OFF_PLATFORM_STRING.
#include "http/health_server.h"

#include <arpa/inet.h>
#include <cpprest/http_listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pplx/threadpool.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <mutex>
#include <optional>

#include "base/error.h"

namespace stowage::http {
namespace {

namespace cl = web::http::experimental::listener;
using web::http::http_request;
using web::http::http_response;
using web::http::status_code;

constexpr int kPortAttempts = 8;
constexpr std::string_view kTextType = "text/plain; charset=utf-8";
constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";

// Asks the kernel for a free TCP port on host by binding port 0; the socket is closed again.
std::uint16_t pick_free_port(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), "0", &hints, &found); rc != 0) {
    throw Error(Code::kInvalidArgument,
                "resolving listen host " + host + ": " + std::string(gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, &freeaddrinfo);
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw Error(Code::kResourceExhausted, "creating a socket to pick a free port failed");
  }
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  const bool ok = ::bind(fd, found->ai_addr, found->ai_addrlen) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) == 0;
  ::close(fd);
  if (!ok) {
    throw Error(Code::kUnavailable, "no free port on " + host);
  }
  return bound.ss_family == AF_INET6
             ? ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port)
             : ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
}

std::string authority(const std::string& host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

void reply(const http_request& request, status_code status, std::string body,
           std::string_view content_type) {
  http_response response(status);
  response.set_body(std::move(body), std::string(content_type));
  // A task whose exception nobody observes terminates the process; the client may be gone.
  request.reply(response).then([](const pplx::task<void>& done) {
    try {
      done.get();
    } catch (const std::exception& e) {
      spdlog::debug("health server: reply not delivered: {}", e.what());
    }
  });
}

}  // namespace

ListenAddress parse_listen_address(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    throw_invalid("listen address \"" + std::string(text) + "\": " + std::string(why));
  };
  ListenAddress out;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      bad("expected [ipv6]:port");
    }
    out.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
    in6_addr ignored{};
    if (inet_pton(AF_INET6, out.host.c_str(), &ignored) != 1) {
      bad("not an IPv6 address");
    }
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      bad("expected host:port");
    }
    out.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) {
      bad("IPv6 hosts are written [addr]:port");
    }
    if (out.host.empty()) {
      out.host = "0.0.0.0";
    }
  }
  unsigned value = 0;
  const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value > 65535) {
    bad("port must be a number from 0 to 65535");
  }
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

struct HealthServer::Impl {
  Impl(std::string a, ReadinessCheck r, MetricsRender m)
      : address(std::move(a)), readiness(std::move(r)), metrics(std::move(m)) {}

  void handle(const http_request& request) {
    const std::string path = request.relative_uri().path();
    try {
      if (request.method() != web::http::methods::GET) {
        reply(request, web::http::status_codes::MethodNotAllowed, "only GET is served\n",
              kTextType);
      } else if (path == "/healthz") {
        reply(request, web::http::status_codes::OK, "ok\n", kTextType);
      } else if (path == "/readyz") {
        const Readiness state = readiness ? readiness() : Readiness{};
        if (state.ready) {
          reply(request, web::http::status_codes::OK, "ok\n", kTextType);
        } else {
          reply(request, web::http::status_codes::ServiceUnavailable,
                "not ready: " + state.message + "\n", kTextType);
        }
      } else if (path == "/metrics") {
        reply(request, web::http::status_codes::OK, metrics ? metrics() : std::string(),
              kMetricsType);
      } else {
        reply(request, web::http::status_codes::NotFound, "not found\n", kTextType);
      }
    } catch (const std::exception& e) {
      spdlog::error("health server: handling path={} failed: {}", path, e.what());
      reply(request, web::http::status_codes::InternalError, "internal error\n", kTextType);
    }
  }

  const std::string address;
  const ReadinessCheck readiness;
  const MetricsRender metrics;
  std::mutex mutex;  // guards listener and port across start/stop/port
  std::unique_ptr<cl::http_listener> listener;
  std::uint16_t port = 0;
};

HealthServer::HealthServer(std::string address, ReadinessCheck readiness, MetricsRender metrics)
    : impl_(std::make_unique<Impl>(std::move(address), std::move(readiness), std::move(metrics))) {}

HealthServer::~HealthServer() {
  try {
    stop();
  } catch (const std::exception& e) {
    spdlog::warn("health server: stopping failed: {}", e.what());
  }
}

void HealthServer::start() {
  const ListenAddress where = parse_listen_address(impl_->address);
  std::lock_guard lock(impl_->mutex);
  if (impl_->listener) {
    return;
  }
  const int attempts = where.port == 0 ? kPortAttempts : 1;
  std::string last_error;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    const std::uint16_t port = where.port != 0 ? where.port : pick_free_port(where.host);
    auto listener =
        std::make_unique<cl::http_listener>("http://" + authority(where.host, port) + "/");
    Impl* impl = impl_.get();
    listener->support([impl](const http_request& request) { impl->handle(request); });
    try {
      listener->open().wait();
    } catch (const std::exception& e) {
      last_error = e.what();
      continue;  // the port was taken in between; pick another
    }
    impl_->listener = std::move(listener);
    impl_->port = port;
    spdlog::info("health server listening address={}", authority(where.host, port));
    return;
  }
  throw Error(Code::kUnavailable,
              "health server: listening on " + impl_->address + ": " + last_error);
}

std::uint16_t HealthServer::port() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->port;
}

void HealthServer::stop() {
  std::unique_ptr<cl::http_listener> listener;
  {
    std::lock_guard lock(impl_->mutex);
    listener = std::move(impl_->listener);
    impl_->port = 0;
  }
  if (listener) {
    listener->close().wait();
  }
}

bool HealthServer::set_io_threads(std::size_t threads) {
  try {
    crossplat::threadpool::initialize_with_threads(threads);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace stowage::http
