#include "http/errors.h"

#include <curl/curl.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <string>

#include "http/redact.h"

namespace stowage::http {
namespace {

constexpr std::size_t kBodyExcerptBytes = 200;

// The start of a body, on one line, if it looks like text; "" otherwise (binary bodies and
// bodies with control characters say nothing useful in a message).
std::string body_excerpt(std::string_view body) {
  while (!body.empty() && (body.front() == ' ' || body.front() == '\n' || body.front() == '\r' ||
                           body.front() == '\t')) {
    body.remove_prefix(1);
  }
  const bool truncated = body.size() > kBodyExcerptBytes;
  body = body.substr(0, kBodyExcerptBytes);
  std::string out;
  out.reserve(body.size() + 3);
  bool last_space = false;
  for (char c : body) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      if (!last_space) {
        out += ' ';
      }
      last_space = true;
      continue;
    }
    if (u < 0x20 || u == 0x7f) {
      return "";
    }
    out += c;
    last_space = false;
  }
  while (!out.empty() && out.back() == ' ') {
    out.pop_back();
  }
  if (truncated && !out.empty()) {
    out += "...";
  }
  return out;
}

}  // namespace

Code code_for_status(int status) {
  switch (status) {
    case 401: return Code::kUnauthenticated;
    case 403: return Code::kPermissionDenied;
    case 404: return Code::kNotFound;
    case 409:
    case 412: return Code::kConflict;
    case 410: return Code::kGone;
    case 408: return Code::kUnavailable;
    case 429: return Code::kResourceExhausted;
    default: break;
  }
  if (status >= 500 && status < 600) {
    return Code::kUnavailable;
  }
  if (status >= 400 && status < 500) {
    return Code::kInvalidArgument;
  }
  return Code::kInternal;
}

Code code_for_curl(int curl_code) {
  switch (curl_code) {  // an int: values outside CURLcode must not be cast to it
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_AGAIN:
    case CURLE_NO_CONNECTION_AVAILABLE:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
    case CURLE_PROXY:
    case CURLE_UNRECOVERABLE_POLL:
    case CURLE_INTERFACE_FAILED:
    case CURLE_ABORTED_BY_CALLBACK: return Code::kUnavailable;

    case CURLE_OPERATION_TIMEDOUT: return Code::kDeadlineExceeded;

    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_LOGIN_DENIED:
    case CURLE_AUTH_ERROR: return Code::kUnauthenticated;

    case CURLE_REMOTE_ACCESS_DENIED: return Code::kPermissionDenied;

    case CURLE_REMOTE_FILE_NOT_FOUND: return Code::kNotFound;

    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_SEND_FAIL_REWIND:
    case CURLE_RANGE_ERROR:
    case CURLE_BAD_DOWNLOAD_RESUME: return Code::kInvalidArgument;

    case CURLE_BAD_CONTENT_ENCODING: return Code::kDataLoss;

    case CURLE_OUT_OF_MEMORY:
    case CURLE_FILESIZE_EXCEEDED: return Code::kResourceExhausted;

    default: return Code::kInternal;
  }
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

HttpStatusError::HttpStatusError(Code code, std::string message, int status,
                                 std::optional<std::string> retry_after)
    : Error(code, std::move(message)), status_(status), retry_after_(std::move(retry_after)) {}

void raise_for_status(const Response& response, std::string_view context) {
  if (response.ok()) {
    return;
  }
  std::string message(context);
  if (!message.empty()) {
    message += ": ";
  }
  message += response.method.empty() ? std::string("GET") : response.method;
  message += ' ';
  message += redact_url(response.url);
  message += ": HTTP ";
  message += std::to_string(response.status);
  if (const auto reason = reason_phrase(response.status); !reason.empty()) {
    message += ' ';
    message += reason;
  }
  if (const auto excerpt = body_excerpt(response.body); !excerpt.empty()) {
    message += ": ";
    message += excerpt;
  }
  throw HttpStatusError(code_for_status(response.status), std::move(message), response.status,
                        response.headers.get("Retry-After"));
}

namespace {
// Longer waits are clamped: callers compare with their own limits in any duration type.
constexpr long long kMaxRetryAfterSeconds = 10LL * 365 * 24 * 3600;
}  // namespace

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
    value.remove_prefix(1);
  }
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
    value.remove_suffix(1);
  }
  if (value.empty()) {
    return std::nullopt;
  }
  if (value.front() >= '0' && value.front() <= '9') {
    long long seconds = 0;
    const auto* end = value.data() + value.size();
    const auto [ptr, ec] = std::from_chars(value.data(), end, seconds);
    if (ec != std::errc() || ptr != end) {
      return std::nullopt;
    }
    return std::chrono::seconds(std::min(seconds, kMaxRetryAfterSeconds));
  }
  // curl_getdate is a pure parser of the HTTP date formats (IMF-fixdate, RFC 850, asctime).
  const std::string text(value);
  const std::time_t when = curl_getdate(text.c_str(), nullptr);
  if (when == -1) {
    return std::nullopt;
  }
  // In seconds: a far-future date would overflow a time_point's nanoseconds.
  const long long now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const long long delay = static_cast<long long>(when) - now_s;
  return std::chrono::seconds(std::clamp(delay, 0LL, kMaxRetryAfterSeconds));
}

}  // namespace stowage::http
