// The gRPC-over-HTTP/2 wire rules a unary CRI call needs, as pure functions (the protocol is
// "gRPC over HTTP2" of the gRPC project): the grpc-timeout header, the percent-encoded
// grpc-message, the code of a response without grpc-status, and the length-prefixed messages of
// a response body.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace stowage::cri::wire {

// The grpc-timeout header value for `timeout`: at most 8 digits and a unit ("1500m", "86400S").
// Non-positive timeouts give "0m" (the call fails at once with DEADLINE_EXCEEDED at the peer).
std::string encode_timeout(std::chrono::milliseconds timeout);

// grpc-message is percent-encoded UTF-8; malformed escapes are kept as they are (the spec asks
// the receiver not to fail on them).
std::string decode_message(std::string_view value);

// The gRPC code of a response that carries no grpc-status: from its HTTP status, as the spec
// maps it (400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
// 429/502/503/504 UNAVAILABLE, else UNKNOWN; 200 without grpc-status is INTERNAL).
int code_for_http_status(int http_status);

// grpc-status as a number; nullopt when the value is not a decimal number in 0..99.
std::optional<int> parse_status(std::string_view value);

// The single message of a unary response body ("Length-Prefixed-Message": a compressed flag
// byte, a 4-byte big-endian length, the bytes). Returns the message, or an error text: a
// truncated frame, a compressed message (none was asked for), more than one message, or none.
struct UnaryBody {
  std::string message;
  std::string error;  // empty when message is valid
};
UnaryBody parse_unary_body(std::string_view body);

// The 5-byte prefix plus `message`, as a request body.
std::string frame_message(std::string_view message);

}  // namespace stowage::cri::wire
