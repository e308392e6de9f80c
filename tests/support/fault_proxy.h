// A fault-injecting HTTP/1.1 reverse proxy on 127.0.0.1 in front of a plain-HTTP upstream (a
// RegistryFixture): requests pass through unchanged (Host included, so registry Location headers
// point at the proxy) until a scripted fault matches by method, path regex and occurrence.
// Faults: reset mid-body, a synthetic status (429 + Retry-After, 503 bursts), one corrupted body
// byte, a stall after the headers, a bandwidth cap. Every exchange is logged (method, target,
// Range, status, bytes) so tests can assert retries and resume-with-Range.
//   FaultProxy proxy(registry.port());
//   proxy.add_fault({.method = "GET", .path = "/blobs/sha256:", .fault = ResetAfter{4096}});
//   ... pull from proxy.host() ...; proxy.requests() shows the reset GET and the Range retry.
// Thread-per-connection; keep-alive and pipelining on both sides; stop() ends every connection.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <variant>
#include <vector>

namespace stowage::test {

namespace wire {
class Conn;
class Server;
class SocketSet;
struct BodyFraming;
struct RequestHead;
}  // namespace wire

// Close the client connection with a TCP RST after `body_bytes` bytes of the response body
// (headers unchanged, so the client expected more). The client reads those bytes, then ECONNRESET.
// A shorter body passes intact.
struct ResetAfter {
  std::uint64_t body_bytes = 0;
};
// Answer with this status instead of forwarding (the upstream never sees the request).
struct RespondStatus {
  int status = 503;
  std::optional<std::string> retry_after = std::nullopt;  // the Retry-After value, e.g. "2"
  std::string body = {};  // default: a distribution-style JSON error
};
// Flip every bit of the response body byte at `offset` (length and headers unchanged).
struct CorruptByte {
  std::uint64_t offset = 0;
};
// Send the headers (and `after_body_bytes` of the body), then send nothing until `duration`
// passes, release_stalls() is called, or the proxy stops; then continue normally.
struct Stall {
  std::uint64_t after_body_bytes = 0;
  std::optional<std::chrono::milliseconds> duration = std::nullopt;  // nullopt: until released
};
// Send the response body at no more than this rate.
struct Throttle {
  std::uint64_t bytes_per_second = 64 * 1024;
};
using Fault = std::variant<ResetAfter, RespondStatus, CorruptByte, Stall, Throttle>;

// One scripted fault. Rules are tried in the order added; the first whose method and path match
// and that has occurrences left applies (one fault per request).
struct FaultRule {
  std::string method = {};  // "GET", "HEAD", ...; empty: any
  std::string path =
      {};         // POSIX extended regex searched in the request path (no query); empty: any
  int skip = 0;   // let this many matching requests pass before faulting
  int times = 1;  // how many requests get the fault; 0 or less: every later one
  Fault fault = ResetAfter{};
};

// One exchange as the proxy handled it.
struct ProxiedRequest {
  std::string method;
  std::string target;                // path and query, as received
  std::optional<std::string> range;  // the Range request header
  int status = 0;                    // sent to the client (502 when the upstream failed)
  std::string fault;  // "" passed through; else "reset", "status", "corrupt", "stall", "throttle"
  int rule = -1;      // id of the rule applied, or -1
  std::uint64_t body_bytes = 0;  // response body bytes sent to the client
  bool complete = false;         // the whole response reached the client
  bool chunked = false;          // the response body was chunked
};

class FaultProxy {
 public:
  // Starts listening on 127.0.0.1 (kernel-chosen port) in front of 127.0.0.1:upstream_port.
  explicit FaultProxy(int upstream_port);
  // stop().
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  int port() const;
  std::string host() const;  // "127.0.0.1:PORT"
  std::string url() const;   // "http://127.0.0.1:PORT"

  // Adds a rule and returns its id. Throws stowage::Error (InvalidArgument) on a bad regex.
  // Thread-safe, like everything below.
  int add_fault(FaultRule rule);
  void clear_faults();
  // How many requests rule `id` has faulted so far.
  int fault_count(int id) const;

  // Exchanges finished so far, logged just after the response ended (completely or not): a
  // client may hold its response a moment before the entry exists, so wait_for_requests() first.
  std::vector<ProxiedRequest> requests() const;
  void clear_requests();
  // Waits until at least n exchanges are logged; false at the deadline.
  bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;
  int connections_accepted() const;

  // Responses stalled right now; wait until at least n are.
  int stalled() const;
  bool wait_for_stalled(int n, std::chrono::milliseconds timeout) const;
  // Ends every current stall (later stalls wait anew).
  void release_stalls();

  // Closes the listener and every connection, waking stalled and throttled responses, and joins
  // the connection threads. Idempotent.
  void stop();

 private:
  struct PathPattern;  // a compiled regex_t
  struct Rule {
    FaultRule spec;
    std::shared_ptr<const PathPattern> path;
    int seen = 0;
    int applied = 0;
    bool active = true;
  };
  struct Plan {
    std::optional<Fault> fault;
    int rule = -1;
  };
  enum class Relay { kComplete, kReset, kFailed };
  void serve(wire::Conn& client, const std::stop_token& stop, wire::SocketSet& sockets);
  // Copies one response body from upstream to client with the plan's fault applied.
  Relay relay_body(const Plan& plan, wire::Conn& upstream, wire::Conn& client,
                   const wire::BodyFraming& framing, ProxiedRequest& entry,
                   const std::stop_token& stop);
  Plan match(const wire::RequestHead& head);
  void log(ProxiedRequest entry);
  // Waits until `deadline` (or forever when nullopt), a release, or stop. Counts as stalled.
  void stall(std::optional<std::chrono::steady_clock::time_point> deadline,
             const std::stop_token& stop);
  // Waits until `deadline` or stop; false on stop.
  bool pause_until(std::chrono::steady_clock::time_point deadline, const std::stop_token& stop);

  int upstream_port_;
  mutable std::mutex mutex_;  // guards rules_, log_, stalled_, release_generation_
  mutable std::condition_variable_any changed_;
  std::vector<Rule> rules_;
  std::vector<ProxiedRequest> log_;
  int stalled_ = 0;
  std::uint64_t release_generation_ = 0;
  std::unique_ptr<wire::Server> server_;
};

}  // namespace stowage::test
