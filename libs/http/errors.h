// How HTTP outcomes become stowage::Error codes: the one mapping of HTTP statuses, shared by every
// library built on http (OCI, Kubernetes). libcurl's result codes are mapped in curl_errors.h.
// raise_for_status() is the usual way for a caller to turn a non-2xx Response into an exception.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "http/transport.h"

namespace stowage::http {

// The code for a non-2xx HTTP status: 401 Unauthenticated, 403 PermissionDenied, 404 NotFound,
// 409 Conflict, 412 Conflict (a failed precondition is an optimistic-concurrency conflict),
// 410 Gone, 429 ResourceExhausted (rate limit; honour Retry-After), 408 Unavailable, every 5xx
// Unavailable, any other 4xx InvalidArgument. 1xx, 3xx and out-of-range statuses are Internal
// (a response the caller did not expect to see); so is a 2xx, which is not an error.
Code code_for_status(int status);

// "OK", "Not Found", ... for common statuses; "" for others.
std::string_view reason_phrase(int status);

// A non-2xx HTTP answer raised as an error: code_for_status(status), plus what callers need to
// react to it without parsing the message.
class HttpStatusError : public Error {
 public:
  HttpStatusError(Code code, std::string message, int status,
                  std::optional<std::string> retry_after);

  int status() const noexcept { return status_; }
  // The raw Retry-After header, if the server sent one (see parse_retry_after).
  const std::optional<std::string>& retry_after() const noexcept { return retry_after_; }

 private:
  int status_;
  std::optional<std::string> retry_after_;
};

// Returns if response.ok(); otherwise throws HttpStatusError whose message reads
// "<context>: <METHOD> <redacted URL>: HTTP 404 Not Found: <start of the body, if it is text>".
void raise_for_status(const Response& response, std::string_view context);

// An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", the obsolete
// RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" with years 70-99 as 19xx, else 20xx, and asctime
// "Sun Nov  6 08:49:37 1994") as seconds since the Unix epoch; std::nullopt if it is none.
std::optional<long long> parse_http_date(std::string_view value);

// The delay a Retry-After value asks for: delta-seconds, or an HTTP-date relative to now
// (a date in the past gives zero). std::nullopt if the value is neither.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

}  // namespace stowage::http
