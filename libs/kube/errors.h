// How Kubernetes API answers become stowage::Error: the one mapping from an HTTP status and its
// metav1.Status body to a Code, keeping what callers branch on (reason, field causes, Retry-After)
// in a KubeError. Also reads the Status of a watch ERROR event. Pure.
#pragma once

#include <chrono>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "http/transport.h"

namespace stowage::kube {

// One entry of Status.details.causes.
struct StatusCause {
  std::string type{};     // "FieldValueInvalid", "FieldManagerConflict", "ResourceVersionTooLarge"
  std::string message{};  // "Invalid value: \"x\": must be ..."
  std::string field{};    // "spec.replicas", "data[a b]"
  bool operator==(const StatusCause&) const = default;
};

// The parts of a metav1.Status that matter to a client.
struct ApiStatus {
  int code = 0;          // the HTTP status it stands for; 0 when absent
  std::string reason{};  // "NotFound", "AlreadyExists", "Conflict", "Invalid", "Expired", ...
  std::string message{};
  std::vector<StatusCause> causes{};
  std::optional<std::chrono::seconds> retry_after{};  // details.retryAfterSeconds
};

// The Status in `object`; std::nullopt unless it is a JSON object of kind "Status".
std::optional<ApiStatus> parse_status(const nlohmann::json& object);

// An error answered by the API server.
class KubeError : public Error {
 public:
  KubeError(Code code, std::string message, int http_status, std::string reason,
            std::vector<StatusCause> causes, std::optional<std::chrono::seconds> retry_after);

  // The HTTP status (for an in-stream Status, the code it carries).
  int http_status() const noexcept { return http_status_; }
  // Status.reason; "" when the body was not a Status.
  const std::string& reason() const noexcept { return reason_; }
  const std::vector<StatusCause>& causes() const noexcept { return causes_; }
  // How long the server asked us to wait (Retry-After header, else details.retryAfterSeconds).
  const std::optional<std::chrono::seconds>& retry_after() const noexcept { return retry_after_; }

 private:
  int http_status_{};
  std::string reason_{};
  std::vector<StatusCause> causes_{};
  std::optional<std::chrono::seconds> retry_after_{};
};

// The code for an API answer. By status: 401 Unauthenticated, 403 PermissionDenied, 404 NotFound,
// 409 Conflict, 410 Gone, 422 and other 4xx InvalidArgument, 429 ResourceExhausted, 5xx
// Unavailable. The reason refines it: AlreadyExists → AlreadyExists; Expired or Gone → Gone; a
// ResourceVersionTooLarge cause → Gone (relist, as client-go does). `http_status` 0 (a Status
// without a code) maps by reason alone, Internal if that says nothing.
Code code_for_api_status(int http_status, std::string_view reason,
                         const std::vector<StatusCause>& causes);

// The error for a non-2xx API response. Its message reads
// "<context>: <METHOD> <redacted URL>: HTTP 422 Unprocessable Entity: <Status.message>" followed by
// any field causes the message does not already name ("; spec.x: Invalid value: ..."). A body that
// is not a Status contributes the start of its text. `now` resolves an HTTP-date Retry-After.
KubeError error_from_response(const http::Response& response, std::string_view context,
                              std::chrono::system_clock::time_point now);

// The error for a Status received inside a 200 answer (a watch ERROR event):
// "<context>: 410 Expired: too old resource version: 5 (10)".
KubeError error_from_status(const ApiStatus& status, std::string_view context);

// True when a watch ERROR Status says the resourceVersion is gone from history: code 410, or reason
// Expired or Gone (older servers). The watcher must relist.
bool is_expired_status(const ApiStatus& status);
bool is_expired_status(const nlohmann::json& status_object);

// True when a Status says the requested resourceVersion is newer than the server has seen
// (cause ResourceVersionTooLarge, or older servers' "Too large resource version" message).
bool is_too_large_resource_version(const ApiStatus& status);

}  // namespace stowage::kube
