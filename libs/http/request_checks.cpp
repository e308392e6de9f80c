#include "http/request_checks.h"

#include <algorithm>

#include "base/error.h"
#include "http/redact.h"

namespace stowage::http {

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

bool is_safe_value(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == 0; });
}

std::string describe(std::string_view method, std::string_view url) {
  std::string out(method);
  out += ' ';
  out += redact_url(url);
  return out;
}

bool body_optional(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "DELETE" || method == "OPTIONS";
}

void check_request(const Request& request) {
  const std::string& method = request.method;
  if (!is_token(method)) {
    throw_invalid("HTTP request to " + redact_url(request.url) + ": invalid method");
  }
  if (request.url.empty() || !is_safe_value(request.url)) {
    throw_invalid(method + " request: missing or invalid URL");
  }
  for (const auto& [name, value] : request.headers) {
    if (!is_token(name) || !is_safe_value(value)) {
      throw_invalid(describe(method, request.url) + ": invalid header " +
                    (is_token(name) ? name : std::string("name")));
    }
  }
}

}  // namespace stowage::http
