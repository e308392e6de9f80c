// How gRPC outcomes of CRI calls become stowage::Error codes: the one mapping for libs/cri.
// Codes are taken as the numbers of the gRPC wire protocol (0 OK ... 16 UNAUTHENTICATED), so
// this header needs no gRPC include.
#pragma once

#include <string_view>

#include "base/error.h"

namespace stowage::cri {

// The code for a failed gRPC call:
//   UNAVAILABLE, CANCELLED        -> Unavailable (retryable: runtime restarting, socket absent)
//   DEADLINE_EXCEEDED             -> DeadlineExceeded (retryable)
//   RESOURCE_EXHAUSTED            -> ResourceExhausted (retryable)
//   ABORTED                       -> Conflict (retryable: retry the whole read-modify-write)
//   NOT_FOUND                     -> NotFound
//   ALREADY_EXISTS                -> AlreadyExists
//   INVALID_ARGUMENT, OUT_OF_RANGE,
//   FAILED_PRECONDITION           -> InvalidArgument (gRPC: do not retry until the state is fixed)
//   PERMISSION_DENIED             -> PermissionDenied
//   UNAUTHENTICATED               -> Unauthenticated
//   DATA_LOSS                     -> DataLoss
//   UNKNOWN, UNIMPLEMENTED, INTERNAL, OK and values outside 0..16 -> Internal
Code code_for_grpc(int grpc_code);

// "UNAVAILABLE", "NOT_FOUND", ... as gRPC names them; "INVALID_STATUS_CODE" outside 0..16.
std::string_view grpc_code_name(int grpc_code);

}  // namespace stowage::cri
