// Fuzzes the gRPC wire rules applied to what a runtime sends back: the response body of a unary
// call, grpc-status and grpc-message. Invariants: a body parses to a message exactly when it is
// one uncompressed length-prefixed message, and that message re-frames to the same bytes;
// percent-decoding never grows the text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cri/grpc_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace wire = stowage::cri::wire;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const wire::UnaryBody body = wire::parse_unary_body(input);
  if (body.error.empty()) {
    if (wire::frame_message(body.message) != input) __builtin_trap();
  } else if (!body.message.empty()) {
    __builtin_trap();
  }

  if (wire::decode_message(input).size() > input.size()) __builtin_trap();

  if (const auto status = wire::parse_status(input)) {
    if (*status < 0 || *status > 99 || input.empty() || input.size() > 2) __builtin_trap();
  }
  return 0;
}
