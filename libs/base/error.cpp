#include "base/error.h"

namespace stowage {

std::string_view code_name(Code code) {
  switch (code) {
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kNotFound: return "NotFound";
    case Code::kAlreadyExists: return "AlreadyExists";
    case Code::kConflict: return "Conflict";
    case Code::kGone: return "Gone";
    case Code::kUnauthenticated: return "Unauthenticated";
    case Code::kPermissionDenied: return "PermissionDenied";
    case Code::kUnavailable: return "Unavailable";
    case Code::kDeadlineExceeded: return "DeadlineExceeded";
    case Code::kResourceExhausted: return "ResourceExhausted";
    case Code::kDataLoss: return "DataLoss";
    case Code::kInternal: return "Internal";
  }
  return "Unknown";
}

bool code_retryable(Code code) {
  switch (code) {
    case Code::kUnavailable:
    case Code::kDeadlineExceeded:
    case Code::kResourceExhausted:
    case Code::kConflict:
    case Code::kGone: return true;
    default: return false;
  }
}

Error Error::wrap(std::string_view context) const {
  std::string message(context);
  message += ": ";
  message += what();
  return Error(code_, std::move(message));
}

void throw_invalid(std::string message) {
  throw Error(Code::kInvalidArgument, std::move(message));
}
void throw_not_found(std::string message) {
  throw Error(Code::kNotFound, std::move(message));
}
void throw_internal(std::string message) {
  throw Error(Code::kInternal, std::move(message));
}

}  // namespace stowage
