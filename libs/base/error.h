// The one error type of Stowage. Every failure that crosses a function boundary is a
// stowage::Error carrying a Code; callers branch on code(), never on message text. Each client
// maps its protocol's outcomes (HTTP status, curl codes, gRPC status) to codes in one function.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace stowage {

enum class Code {
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kConflict,
  kGone,
  kUnauthenticated,
  kPermissionDenied,
  kUnavailable,
  kDeadlineExceeded,
  kResourceExhausted,
  kDataLoss,
  kInternal,
};

// "InvalidArgument", "NotFound", ... as written in STYLE.md.
std::string_view code_name(Code code);

// True for outcomes worth retrying with backoff: Unavailable, DeadlineExceeded, ResourceExhausted
// (rate limits), Conflict (re-read and retry) and Gone (relist).
bool code_retryable(Code code);

class Error : public std::runtime_error {
 public:
  Error(Code code, std::string message) : std::runtime_error(std::move(message)), code_(code) {}

  Code code() const noexcept { return code_; }
  bool retryable() const noexcept { return code_retryable(code_); }

  // A new error with the same code and "context: message", for adding what was being done.
  Error wrap(std::string_view context) const;

 private:
  Code code_;
};

// Shorthands for the common codes.
[[noreturn]] void throw_invalid(std::string message);
[[noreturn]] void throw_not_found(std::string message);
[[noreturn]] void throw_internal(std::string message);

}  // namespace stowage
