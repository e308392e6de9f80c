#include "http/errors.h"

#include <algorithm>
#include <array>
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

namespace {

// Exactly `n` decimal digits at the start of `s`, consumed; -1 otherwise.
int take_digits(std::string_view& s, std::size_t n) {
  if (s.size() < n) {
    return -1;
  }
  int v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return -1;
    }
    v = v * 10 + (s[i] - '0');
  }
  s.remove_prefix(n);
  return v;
}

bool take(std::string_view& s, std::string_view literal) {
  if (!s.starts_with(literal)) {
    return false;
  }
  s.remove_prefix(literal.size());
  return true;
}

// "Jan".."Dec" as 1..12, consumed; 0 otherwise.
unsigned take_month(std::string_view& s) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (std::size_t i = 0; i < kMonths.size(); ++i) {
    if (take(s, kMonths[i])) {
      return static_cast<unsigned>(i + 1);
    }
  }
  return 0;
}

bool take_weekday(std::string_view& s, bool full) {
  static constexpr std::array<std::string_view, 7> kDays = {
      "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
  for (const std::string_view day : kDays) {
    if (take(s, full ? day : day.substr(0, 3))) {
      return true;
    }
  }
  return false;
}

// "HH:MM:SS" as seconds of the day, consumed; -1 otherwise.
long long take_time_of_day(std::string_view& s) {
  const int h = take_digits(s, 2);
  if (h < 0 || h > 23 || !take(s, ":")) return -1;
  const int m = take_digits(s, 2);
  if (m < 0 || m > 59 || !take(s, ":")) return -1;
  const int sec = take_digits(s, 2);
  if (sec < 0 || sec > 60) return -1;  // 60: a leap second
  return h * 3600LL + m * 60LL + sec;
}

std::optional<long long> to_epoch(int year, unsigned month, int day, long long time_of_day) {
  const std::chrono::year_month_day date{std::chrono::year(year), std::chrono::month(month),
                                         std::chrono::day(static_cast<unsigned>(day))};
  if (day < 1 || !date.ok()) {
    return std::nullopt;
  }
  const long long days = std::chrono::sys_days(date).time_since_epoch().count();
  return days * 86400 + time_of_day;
}

}  // namespace

std::optional<long long> parse_http_date(std::string_view s) {
  std::string_view rest = s;
  if (take_weekday(rest, false) && take(rest, ", ")) {  // IMF-fixdate
    const int day = take_digits(rest, 2);
    if (day < 0 || !take(rest, " ")) return std::nullopt;
    const unsigned month = take_month(rest);
    if (month == 0 || !take(rest, " ")) return std::nullopt;
    const int year = take_digits(rest, 4);
    if (year < 0 || !take(rest, " ")) return std::nullopt;
    const long long t = take_time_of_day(rest);
    if (t < 0 || rest != " GMT") return std::nullopt;
    return to_epoch(year, month, day, t);
  }
  rest = s;
  if (take_weekday(rest, true) && take(rest, ", ")) {  // RFC 850, two-digit year
    const int day = take_digits(rest, 2);
    if (day < 0 || !take(rest, "-")) return std::nullopt;
    const unsigned month = take_month(rest);
    if (month == 0 || !take(rest, "-")) return std::nullopt;
    const int yy = take_digits(rest, 2);
    if (yy < 0 || !take(rest, " ")) return std::nullopt;
    const long long t = take_time_of_day(rest);
    if (t < 0 || rest != " GMT") return std::nullopt;
    return to_epoch(yy < 70 ? 2000 + yy : 1900 + yy, month, day, t);
  }
  rest = s;
  if (take_weekday(rest, false) && take(rest, " ")) {  // asctime
    const unsigned month = take_month(rest);
    if (month == 0 || !take(rest, " ")) return std::nullopt;
    int day = 0;
    if (take(rest, " ")) {
      day = take_digits(rest, 1);
    } else {
      day = take_digits(rest, 2);
    }
    if (day < 0 || !take(rest, " ")) return std::nullopt;
    const long long t = take_time_of_day(rest);
    if (t < 0 || !take(rest, " ")) return std::nullopt;
    const int year = take_digits(rest, 4);
    if (year < 0 || !rest.empty()) return std::nullopt;
    return to_epoch(year, month, day, t);
  }
  return std::nullopt;
}

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
  const auto when = parse_http_date(value);
  if (!when) {
    return std::nullopt;
  }
  // In seconds: a far-future date would overflow a time_point's nanoseconds.
  const long long now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const long long delay = *when - now_s;
  return std::chrono::seconds(std::clamp(delay, 0LL, kMaxRetryAfterSeconds));
}

}  // namespace stowage::http
