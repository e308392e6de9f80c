#include "http/health_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace stowage::http {
namespace {

using Steady = std::chrono::steady_clock;

// A request head larger than this is answered with 431; the body of a GET is never read.
constexpr std::size_t kMaxRequestBytes = std::size_t{8} * 1024;
// Connections served at once; more wait in the listen backlog.
constexpr std::size_t kMaxConnections = 32;
constexpr int kListenBacklog = 64;
// From accept to the last byte of the response (and the peer's close after it).
constexpr auto kConnectionTimeout = std::chrono::seconds(5);
// How long accepting pauses after accept() fails for want of descriptors or memory.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
constexpr std::string_view kTextType = "text/plain; charset=utf-8";
constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";

std::string authority(const std::string& host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::uint16_t bound_port(int fd) {
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
    return 0;
  }
  return bound.ss_family == AF_INET6
             ? ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port)
             : ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
}

// A non-blocking listening socket on the first address the host resolves to that accepts it.
Fd listen_on(const ListenAddress& where, const std::string& address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(where.port);
  if (const int rc = getaddrinfo(where.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    throw Error(Code::kInvalidArgument,
                "resolving listen host " + where.host + ": " + std::string(gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, &freeaddrinfo);
  std::string last_error = "no address to listen on";
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    Fd fd(::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
      last_error = std::strerror(errno);
      continue;
    }
    const int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) == 0 &&
        ::listen(fd.get(), kListenBacklog) == 0) {
      return fd;
    }
    last_error = std::strerror(errno);
  }
  throw Error(Code::kUnavailable, "health server: listening on " + address + ": " + last_error);
}

std::string_view reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

std::string response(int status, std::string_view body, std::string_view content_type) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason(status)) +
                    "\r\nContent-Type: " + std::string(content_type) +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    (status == 405 ? "\r\nAllow: GET" : "") + "\r\nConnection: close\r\n\r\n";
  out += body;
  return out;
}

// The end of the request head ("\r\n\r\n", or "\n\n" from lenient clients), if it has arrived.
std::optional<std::size_t> head_end(std::string_view in) {
  const auto crlf = in.find("\r\n\r\n");
  const auto lf = in.find("\n\n");
  if (crlf == std::string_view::npos && lf == std::string_view::npos) {
    return std::nullopt;
  }
  return std::min(crlf, lf);
}

struct RequestLine {
  std::string_view method;
  std::string_view path;  // without query or fragment
};

// "GET /readyz?verbose HTTP/1.1" → {GET, /readyz}; nullopt when malformed.
std::optional<RequestLine> parse_request_line(std::string_view head) {
  std::string_view line = head.substr(0, head.find('\n'));
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  const auto first = line.find(' ');
  const auto last = line.rfind(' ');
  if (first == std::string_view::npos || first == last || first == 0 ||
      !line.substr(last + 1).starts_with("HTTP/1.")) {
    return std::nullopt;
  }
  RequestLine out{line.substr(0, first), line.substr(first + 1, last - first - 1)};
  out.path = out.path.substr(0, out.path.find_first_of("?#"));
  if (!out.path.starts_with('/')) {
    return std::nullopt;
  }
  return out;
}

// One accepted connection: read the head, write the response, then read until the peer closes
// (so unread input never turns the close into a reset that loses the response).
struct Connection {
  enum class State { kReading, kWriting, kDraining, kDone };

  Connection(Fd socket, Steady::time_point until) : fd(std::move(socket)), deadline(until) {}

  Fd fd;
  Steady::time_point deadline;
  State state = State::kReading;
  std::string in;
  std::string out;
  std::size_t written = 0;
};

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
  // A listening socket and the thread serving it; destroying it after stop() closes both.
  struct Listener {
    Fd socket;
    Fd wake;  // eventfd: written by stop() to end the thread's poll
    std::uint16_t port = 0;
    std::jthread thread;
  };

  Impl(std::string a, ReadinessCheck r, MetricsRender m)
      : address(std::move(a)), readiness(std::move(r)), metrics(std::move(m)) {}

  // The whole response to a request head.
  std::string respond(std::string_view head) const {
    const auto request = parse_request_line(head);
    if (!request) {
      return response(400, "malformed request\n", kTextType);
    }
    const std::string_view path = request->path;
    try {
      if (request->method != "GET") {
        return response(405, "only GET is served\n", kTextType);
      }
      if (path == "/healthz") {
        return response(200, "ok\n", kTextType);
      }
      if (path == "/readyz") {
        const Readiness state = readiness ? readiness() : Readiness{};
        return state.ready ? response(200, "ok\n", kTextType)
                           : response(503, "not ready: " + state.message + "\n", kTextType);
      }
      if (path == "/metrics") {
        return response(200, metrics ? metrics() : std::string(), kMetricsType);
      }
      return response(404, "not found\n", kTextType);
    } catch (const std::exception& e) {
      spdlog::error("health server: handling path={} failed: {}", path, e.what());
      return response(500, "internal error\n", kTextType);
    }
  }

  // Moves a connection on as far as its socket allows without blocking.
  void advance(Connection& c) const {
    char buffer[4096];
    if (c.state == Connection::State::kReading) {
      const ssize_t n = ::recv(c.fd.get(), buffer, sizeof(buffer), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        c.state = Connection::State::kDone;
        return;
      }
      if (n < 0) {
        return;
      }
      c.in.append(buffer, static_cast<std::size_t>(n));
      if (const auto end = head_end(c.in)) {
        c.out = respond(std::string_view(c.in).substr(0, *end));
      } else if (c.in.size() >= kMaxRequestBytes) {
        c.out = response(431, "request head too large\n", kTextType);
      } else {
        return;
      }
      c.in.clear();
      c.state = Connection::State::kWriting;
    }
    if (c.state == Connection::State::kWriting) {
      const ssize_t n =
          ::send(c.fd.get(), c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
          c.state = Connection::State::kDone;
        }
        return;
      }
      c.written += static_cast<std::size_t>(n);
      if (c.written == c.out.size()) {
        ::shutdown(c.fd.get(), SHUT_WR);
        c.state = Connection::State::kDraining;
      }
      return;
    }
    if (c.state == Connection::State::kDraining) {
      const ssize_t n = ::recv(c.fd.get(), buffer, sizeof(buffer), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        c.state = Connection::State::kDone;
      }
    }
  }

  // The server thread: accepts and serves connections until the wake descriptor is written.
  void serve(int listen_fd, int wake_fd) const {
    pthread_setname_np(pthread_self(), "health-http");
    std::vector<Connection> connections;
    std::vector<pollfd> fds;
    Steady::time_point accept_paused_until;
    for (;;) {
      const auto now = Steady::now();
      int timeout_ms = -1;
      const auto wake_by = [&](Steady::time_point at) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(at - now).count();
        const int wait_ms = static_cast<int>(std::max<long long>(left, 0));
        timeout_ms = timeout_ms < 0 ? wait_ms : std::min(timeout_ms, wait_ms);
      };
      const bool accepting = connections.size() < kMaxConnections && now >= accept_paused_until;
      if (now < accept_paused_until) {
        wake_by(accept_paused_until);
      }
      fds.clear();
      fds.push_back({wake_fd, POLLIN, 0});
      fds.push_back({listen_fd, static_cast<short>(accepting ? POLLIN : 0), 0});
      for (const Connection& c : connections) {
        fds.push_back(
            {c.fd.get(),
             static_cast<short>(c.state == Connection::State::kWriting ? POLLOUT : POLLIN), 0});
        wake_by(c.deadline);
      }
      if (::poll(fds.data(), fds.size(), timeout_ms) < 0) {
        if (errno == EINTR) {
          continue;
        }
        spdlog::error("health server: poll failed: {}", std::strerror(errno));
        return;
      }
      if (fds[0].revents != 0) {
        return;
      }
      const auto after = Steady::now();
      for (std::size_t i = 0; i < connections.size(); ++i) {
        Connection& c = connections[i];
        if (fds[i + 2].revents != 0) {
          advance(c);
        }
        if (after >= c.deadline) {
          c.state = Connection::State::kDone;
        }
      }
      std::erase_if(connections,
                    [](const Connection& c) { return c.state == Connection::State::kDone; });
      if ((fds[1].revents & POLLIN) != 0) {
        while (connections.size() < kMaxConnections) {
          Fd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
          if (!fd) {
            // EAGAIN, or a connection that failed before it was taken; out of descriptors or
            // memory, the pending connection stays readable, so wait instead of spinning.
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
              spdlog::warn("health server: accepting failed: {}", std::strerror(errno));
              accept_paused_until = after + kAcceptPause;
            }
            break;
          }
          connections.emplace_back(std::move(fd), after + kConnectionTimeout);
        }
      }
    }
  }

  const std::string address;
  const ReadinessCheck readiness;
  const MetricsRender metrics;
  mutable std::mutex mutex;  // guards listener across start/stop/port
  std::unique_ptr<Listener> listener;
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
  auto listener = std::make_unique<Impl::Listener>();
  listener->socket = listen_on(where, impl_->address);
  listener->port = bound_port(listener->socket.get());
  listener->wake = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!listener->wake) {
    throw Error(Code::kResourceExhausted,
                "health server: creating an eventfd failed: " + std::string(std::strerror(errno)));
  }
  listener->thread =
      std::jthread([impl = impl_.get(), listen_fd = listener->socket.get(),
                    wake_fd = listener->wake.get()] { impl->serve(listen_fd, wake_fd); });
  spdlog::info("health server listening address={}", authority(where.host, listener->port));
  impl_->listener = std::move(listener);
}

std::uint16_t HealthServer::port() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->listener ? impl_->listener->port : 0;
}

void HealthServer::stop() {
  std::unique_ptr<Impl::Listener> listener;
  {
    std::lock_guard lock(impl_->mutex);
    listener = std::move(impl_->listener);
  }
  if (listener) {
    const std::uint64_t one = 1;
    if (::write(listener->wake.get(), &one, sizeof(one)) != sizeof(one)) {
      spdlog::error("health server: waking the server thread failed: {}", std::strerror(errno));
    }
    listener->thread.join();
  }
}

}  // namespace stowage::http
