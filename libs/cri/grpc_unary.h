// One gRPC unary call over HTTP/2 (RFC 9113, framing and HPACK by libnghttp2) on a unix socket:
// what cri::Client needs from gRPC, without a gRPC runtime in the process. Each call opens its
// own connection, sends one request message and reads one response, then closes: CRI calls are
// few, and a runtime restart never leaves a broken channel behind.
//   const UnaryResult r = unary_call({.socket_path = "/run/containerd/containerd.sock",
//       .method = "/runtime.v1.RuntimeService/Version", .timeout = 10s}, request_bytes);
//   if (r.code != 0) ... r.message ...; else parse r.response
#pragma once

#include <chrono>
#include <cstddef>
#include <stop_token>
#include <string>
#include <string_view>

namespace stowage::cri {

struct UnaryCall {
  std::string socket_path;
  std::string method;  // "/package.Service/Method"
  std::chrono::milliseconds timeout{10'000};
  // Larger responses fail with RESOURCE_EXHAUSTED.
  std::size_t max_response_bytes = 16 << 20;
  // A request cancels the call (RST_STREAM CANCEL sent) with CANCELLED.
  std::stop_token stop;
};

struct UnaryResult {
  int code = 0;          // the gRPC status code; 0 is OK
  std::string message;   // grpc-message (decoded), or what failed on our side
  std::string response;  // the serialized response message when code is 0
};

// Never throws for what the peer or the socket does: connection failures are UNAVAILABLE,
// a passed deadline DEADLINE_EXCEEDED, protocol violations INTERNAL, all in UnaryResult.
UnaryResult unary_call(const UnaryCall& call, std::string_view request);

}  // namespace stowage::cri
