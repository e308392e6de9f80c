#include "http/redact.h"

#include <algorithm>
#include <array>

#include "http/headers.h"

namespace stowage::http {
namespace {

constexpr std::string_view kRedacted = "REDACTED";

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return out;
}

bool mentions_secret(std::string_view name) {
  static constexpr std::array<std::string_view, 10> kWords = {
      "token", "sig",  "secret",     "password", "passwd",
      "pwd",   "auth", "credential", "key",      "session"};
  const auto l = lower(name);
  return std::any_of(kWords.begin(), kWords.end(),
                     [&](std::string_view w) { return l.find(w) != std::string::npos; });
}

std::string redact_query(std::string_view query) {
  std::string out;
  while (true) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    const auto key = pair.substr(0, eq);
    out += key;
    if (eq != std::string_view::npos) {
      out += '=';
      if (mentions_secret(key) || key.empty()) {
        out += kRedacted;
      } else {
        out += pair.substr(eq + 1);
      }
    }
    if (amp == std::string_view::npos) {
      break;
    }
    out += '&';
    query.remove_prefix(amp + 1);
  }
  return out;
}

}  // namespace

std::string redact_url(std::string_view url) {
  if (const auto hash = url.find('#'); hash != std::string_view::npos) {
    url = url.substr(0, hash);
  }
  std::string_view query;
  bool has_query = false;
  if (const auto q = url.find('?'); q != std::string_view::npos) {
    query = url.substr(q + 1);
    url = url.substr(0, q);
    has_query = true;
  }
  std::string out;
  const auto scheme_end = url.find("://");
  const auto authority_start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  out += url.substr(0, authority_start);
  auto rest = url.substr(authority_start);
  const auto path_start = rest.find('/');
  auto authority = rest.substr(0, path_start);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  out += authority;
  if (path_start != std::string_view::npos) {
    out += rest.substr(path_start);
  }
  if (has_query) {
    out += '?';
    out += redact_query(query);
  }
  return out;
}

bool is_sensitive_header(std::string_view name) {
  return iequals(name, "Cookie") || iequals(name, "Set-Cookie") || mentions_secret(name);
}

}  // namespace stowage::http
