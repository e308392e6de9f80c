// The small HTTP server every Stowage binary runs for probes and scraping: GET /healthz (the
// process is alive), /readyz (the readiness callback says so) and /metrics (Prometheus text from
// the render callback). HTTP/1.1, one thread per server, one response per connection.
// Usage: HealthServer s("127.0.0.1:0", ready_fn, metrics_fn); s.start(); ... s.port(); s.stop();
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace stowage::http {

struct Readiness {
  bool ready = true;
  std::string message;  // why not ready; shown in the /readyz body
};

// A listen address: "127.0.0.1:8081", ":8081" (all IPv4 interfaces), "[::1]:0". Port 0 asks for
// any free port.
struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
};

// Parses a listen address; throws InvalidArgument naming the text when it is malformed.
ListenAddress parse_listen_address(std::string_view text);

class HealthServer {
 public:
  using ReadinessCheck = std::function<Readiness()>;
  using MetricsRender = std::function<std::string()>;

  // Callbacks run on the server's thread; two servers may run theirs at the same time, so they
  // must be thread-safe. An unset readiness callback means always ready; an unset metrics
  // callback serves an empty body.
  HealthServer(std::string address, ReadinessCheck readiness, MetricsRender metrics);
  ~HealthServer();  // stops
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  // Starts listening; returns once the port accepts connections. Throws InvalidArgument for a
  // malformed address and Unavailable when it cannot listen.
  void start();

  // The port listened on (the one the kernel chose when 0 was asked); 0 before start().
  std::uint16_t port() const;

  // Stops listening, closes open connections and joins the server thread. Idempotent; start()
  // may follow.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stowage::http
