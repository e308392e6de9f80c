// The HTTP transport seam: what a request and a response are, and the interface every protocol
// client (OCI distribution, Kubernetes REST) talks to. http::Client (client.h) is the libcurl
// implementation; unit tests of higher layers may substitute a narrow fake.
// Non-2xx responses are returned, not thrown: the caller decides (see raise_for_status in
// errors.h). Transport failures (connect, TLS, timeout, reset) throw stowage::Error.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <variant>

#include "http/headers.h"

namespace stowage::http {

// TLS settings of one request. Verification is on by default against the system trust store.
struct TlsOptions {
  // Skip verification of the server's certificate chain and host name (an "insecure" registry).
  bool insecure = false;
  // Trust these CAs instead of the system store: a PEM bundle file, or PEM data in memory
  // (kubeconfig certificate-authority-data). ca_pem wins when both are set.
  std::string ca_file;
  std::string ca_pem;
  // With a custom CA: also keep trusting the system store (containers' certs.d semantics).
  bool also_trust_system_store = false;
  // Client certificate and key, as files or PEM data in memory (kubeconfig client-*-data).
  // In-memory PEM wins over a file when both are set.
  std::string client_cert_file;
  std::string client_key_file;
  std::string client_cert_pem;
  std::string client_key_pem;
};

// A request body produced on demand. read() fills the buffer and returns how many bytes it wrote;
// 0 means the end. It may throw to abort the request (the exception reaches the caller as is).
// With a known size the request carries Content-Length, else chunked transfer encoding.
// A source cannot be rewound, so it cannot be replayed through a followed 307/308 redirect.
struct BodySource {
  std::function<std::size_t(std::span<char> buffer)> read;
  std::optional<std::uint64_t> size;
};

struct Request {
  std::string method = "GET";
  std::string url;
  Headers headers;
  // An in-memory body, or a streaming source. An empty string is no body for GET, HEAD, DELETE
  // and OPTIONS, and Content-Length: 0 for other methods. No Content-Type or Expect header is
  // added on the caller's behalf.
  std::variant<std::string, BodySource> body;

  // Whole-transfer limit; zero means none (large blob downloads rely on the low-speed limit).
  std::chrono::milliseconds timeout{0};
  std::chrono::milliseconds connect_timeout{30'000};
  // Abort when fewer than low_speed_limit bytes/s flow for low_speed_time; zero limit disables.
  std::uint32_t low_speed_limit = 0;
  std::chrono::seconds low_speed_time{0};

  TlsOptions tls;

  // Off by default: callers handle 3xx themselves (registries redirect blobs to storage with
  // signed URLs; the caller decides which headers may follow).
  bool follow_redirects = false;
  int max_redirects = 10;

  // Buffered responses larger than this fail with kResourceExhausted; zero means unlimited.
  std::size_t max_body_bytes = 0;

  // Requesting a stop aborts the transfer within about a second with kUnavailable ("cancelled").
  std::stop_token stop;
};

struct Response {
  int status = 0;
  Headers headers;
  std::string body;
  // What was asked, for messages: the method, and the effective URL (after followed redirects).
  // The URL may carry credentials (signed query strings); pass it through redact_url() before
  // putting it in a message or a log line.
  std::string method;
  std::string url;
  // True when a stream's head callback or sink stopped the transfer before the body ended.
  bool aborted = false;

  bool ok() const { return status >= 200 && status < 300; }
};

// What a streaming caller wants done with the body once it has seen status and headers.
enum class BodyAction {
  kStream,  // deliver the body to the sink, chunk by chunk
  kBuffer,  // keep it in Response::body (a small error document); past 1 MiB the transfer
            // stops and Response::aborted is set
  kAbort,   // stop the transfer now; Response::aborted is set
};

struct StreamHandlers {
  // Called once with status and headers (Response::body empty) before any body byte is delivered.
  // Unset means kStream. May throw; the exception reaches the caller unchanged.
  std::function<BodyAction(const Response& head)> on_head;
  // Called for each body chunk in order; unset discards the body. Return false to stop the
  // transfer (Response::aborted). May throw; the exception reaches the caller unchanged.
  std::function<bool(std::string_view chunk)> on_body;
};

// Abstract HTTP transport. Implementations are thread-safe: any number of threads may call
// send() and stream() concurrently.
class Transport {
 public:
  virtual ~Transport() = default;

  // Performs the request and returns the whole response with its body in memory.
  virtual Response send(const Request& request) = 0;

  // Performs the request and hands the body to handlers.on_body as it arrives. The returned
  // Response has status and headers, and a body only if on_head chose BodyAction::kBuffer.
  virtual Response stream(const Request& request, const StreamHandlers& handlers) = 0;
};

}  // namespace stowage::http
