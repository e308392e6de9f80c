#include "kube/errors.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "http/errors.h"
#include "http/redact.h"

namespace stowage::kube {
namespace {

using nlohmann::json;

constexpr std::size_t kExcerptBytes = 300;

std::string string_member(const json& obj, const char* key) {
  const auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The start of a non-Status body on one line, if it is text.
std::string excerpt(std::string_view body) {
  std::string out;
  bool space = false;
  for (const char c : body.substr(0, kExcerptBytes)) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (u < 0x20 || u == 0x7f) {
      return "";
    }
    if (space) {
      out += ' ';
    }
    space = false;
    out += c;
  }
  if (body.size() > kExcerptBytes && !out.empty()) {
    out += "...";
  }
  return out;
}

// "spec.x: Invalid value: ..." for each cause the Status message does not already contain.
std::string causes_suffix(const ApiStatus& s) {
  std::string out;
  for (const auto& c : s.causes) {
    std::string line = c.field.empty() ? c.message : c.field + ": " + c.message;
    if (line.empty() || s.message.find(line) != std::string::npos) {
      continue;
    }
    out += "; ";
    out += line;
  }
  return out;
}

bool any_cause(const std::vector<StatusCause>& causes, std::string_view type) {
  for (const auto& c : causes) {
    if (c.type == type) {
      return true;
    }
  }
  return false;
}

}  // namespace

KubeError::KubeError(Code code, std::string message, int http_status, std::string reason,
                     std::vector<StatusCause> causes,
                     std::optional<std::chrono::seconds> retry_after)
    : Error(code, std::move(message)),
      http_status_(http_status),
      reason_(std::move(reason)),
      causes_(std::move(causes)),
      retry_after_(retry_after) {}

std::optional<ApiStatus> parse_status(const json& object) {
  if (!object.is_object() || string_member(object, "kind") != "Status") {
    return std::nullopt;
  }
  ApiStatus s;
  if (const auto it = object.find("code"); it != object.end() && it->is_number_integer()) {
    const auto code = it->get<long long>();
    if (code > 0 && code < 1000) {
      s.code = static_cast<int>(code);
    }
  }
  s.reason = string_member(object, "reason");
  s.message = string_member(object, "message");
  if (const auto d = object.find("details"); d != object.end() && d->is_object()) {
    if (const auto c = d->find("causes"); c != d->end() && c->is_array()) {
      for (const auto& cause : *c) {
        if (!cause.is_object()) {
          continue;
        }
        s.causes.push_back({string_member(cause, "reason"), string_member(cause, "message"),
                            string_member(cause, "field")});
      }
    }
    if (const auto r = d->find("retryAfterSeconds"); r != d->end() && r->is_number_integer()) {
      const auto secs = r->get<long long>();
      if (secs >= 0 && secs < 86400LL * 365) {
        s.retry_after = std::chrono::seconds(secs);
      }
    }
  }
  return s;
}

Code code_for_api_status(int http_status, std::string_view reason,
                         const std::vector<StatusCause>& causes) {
  if (reason == "AlreadyExists") {
    return Code::kAlreadyExists;
  }
  if (reason == "Expired" || reason == "Gone") {
    return Code::kGone;
  }
  if (any_cause(causes, "ResourceVersionTooLarge")) {
    return Code::kGone;
  }
  if (http_status == 0) {
    if (reason == "NotFound") {
      return Code::kNotFound;
    }
    if (reason == "Conflict") {
      return Code::kConflict;
    }
    if (reason == "Invalid" || reason == "BadRequest") {
      return Code::kInvalidArgument;
    }
    if (reason == "Unauthorized") {
      return Code::kUnauthenticated;
    }
    if (reason == "Forbidden") {
      return Code::kPermissionDenied;
    }
    if (reason == "TooManyRequests") {
      return Code::kResourceExhausted;
    }
    if (reason == "Timeout" || reason == "ServerTimeout" || reason == "ServiceUnavailable") {
      return Code::kUnavailable;
    }
    return Code::kInternal;
  }
  switch (http_status) {
    case 401: return Code::kUnauthenticated;
    case 403: return Code::kPermissionDenied;
    case 404: return Code::kNotFound;
    case 409: return Code::kConflict;
    case 410: return Code::kGone;
    case 422: return Code::kInvalidArgument;
    case 429: return Code::kResourceExhausted;
    default: break;
  }
  return http::code_for_status(http_status);
}

KubeError error_from_response(const http::Response& response, std::string_view context,
                              std::chrono::system_clock::time_point now) {
  std::optional<ApiStatus> status;
  if (!response.body.empty()) {
    const json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_discarded()) {
      status = parse_status(body);
    }
  }
  std::string message = fmt::format("{}: {} {}: HTTP {}", context, response.method,
                                    http::redact_url(response.url), response.status);
  if (const auto phrase = http::reason_phrase(response.status); !phrase.empty()) {
    message += ' ';
    message += phrase;
  }
  std::optional<std::chrono::seconds> retry_after;
  if (const auto header = response.headers.get("Retry-After")) {
    retry_after = http::parse_retry_after(*header, now);
  }
  if (status) {
    if (!status->message.empty()) {
      message += ": " + status->message;
    }
    message += causes_suffix(*status);
    if (!retry_after) {
      retry_after = status->retry_after;
    }
    const Code code = code_for_api_status(response.status, status->reason, status->causes);
    return KubeError(code, std::move(message), response.status, status->reason,
                     std::move(status->causes), retry_after);
  }
  if (const std::string text = excerpt(response.body); !text.empty()) {
    message += ": " + text;
  }
  return KubeError(code_for_api_status(response.status, "", {}), std::move(message),
                   response.status, "", {}, retry_after);
}

KubeError error_from_status(const ApiStatus& status, std::string_view context) {
  std::string message(context);
  message += ": ";
  if (status.code != 0) {
    message += std::to_string(status.code) + " ";
  }
  message += status.reason.empty() ? std::string("Failure") : status.reason;
  if (!status.message.empty()) {
    message += ": " + status.message;
  }
  message += causes_suffix(status);
  return KubeError(code_for_api_status(status.code, status.reason, status.causes),
                   std::move(message), status.code, status.reason, status.causes,
                   status.retry_after);
}

bool is_expired_status(const ApiStatus& status) {
  return status.code == 410 || status.reason == "Expired" || status.reason == "Gone";
}

bool is_expired_status(const json& status_object) {
  const auto s = parse_status(status_object);
  return s && is_expired_status(*s);
}

bool is_too_large_resource_version(const ApiStatus& status) {
  return any_cause(status.causes, "ResourceVersionTooLarge") ||
         status.message.find("Too large resource version") != std::string::npos;
}

}  // namespace stowage::kube
