// Keeping credentials out of messages and logs (STYLE.md rule 7): URLs lose their user info,
// fragment and the values of query parameters that look like secrets (tokens, signatures of
// pre-signed storage URLs); header names that carry secrets are recognised so they are never
// printed. Pure functions.
#pragma once

#include <string>
#include <string_view>

namespace stowage::http {

// "https://user:pw@host/p?n=10&X-Amz-Signature=abc#f" ->
// "https://host/p?n=10&X-Amz-Signature=REDACTED".
std::string redact_url(std::string_view url);

// True for Authorization, Proxy-Authorization, Cookie, Set-Cookie and names that mention a
// token, secret, password, key or auth.
bool is_sensitive_header(std::string_view name);

}  // namespace stowage::http
