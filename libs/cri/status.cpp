#include "cri/status.h"

#include <array>

namespace stowage::cri {
namespace {

constexpr std::array<std::string_view, 17> kGrpcCodeNames = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

}  // namespace

Code code_for_grpc(int grpc_code) {
  switch (grpc_code) {
    case 1:   // CANCELLED
    case 14:  // UNAVAILABLE
      return Code::kUnavailable;
    case 4: return Code::kDeadlineExceeded;   // DEADLINE_EXCEEDED
    case 8: return Code::kResourceExhausted;  // RESOURCE_EXHAUSTED
    case 10: return Code::kConflict;          // ABORTED
    case 5: return Code::kNotFound;           // NOT_FOUND
    case 6: return Code::kAlreadyExists;      // ALREADY_EXISTS
    case 3:                                   // INVALID_ARGUMENT
    case 9:                                   // FAILED_PRECONDITION
    case 11:                                  // OUT_OF_RANGE
      return Code::kInvalidArgument;
    case 7: return Code::kPermissionDenied;  // PERMISSION_DENIED
    case 16: return Code::kUnauthenticated;  // UNAUTHENTICATED
    case 15: return Code::kDataLoss;         // DATA_LOSS
    default: return Code::kInternal;         // OK, UNKNOWN, UNIMPLEMENTED, INTERNAL, others
  }
}

std::string_view grpc_code_name(int grpc_code) {
  if (grpc_code < 0 || static_cast<std::size_t>(grpc_code) >= kGrpcCodeNames.size()) {
    return "INVALID_STATUS_CODE";
  }
  return kGrpcCodeNames[static_cast<std::size_t>(grpc_code)];
}

}  // namespace stowage::cri
