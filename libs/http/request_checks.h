// What both HTTP transports (client.h, http1_client.h) check of a request before it goes out,
// and how their messages name it.
#pragma once

#include <string>
#include <string_view>

#include "http/transport.h"

namespace stowage::http {

// An RFC 9110 token: a method or a header name.
bool is_token(std::string_view s);

// No CR, LF or NUL: nothing that could end a header line or the request early.
bool is_safe_value(std::string_view s);

// "GET https://host/path" with credentials removed: the "what and to what" of every message.
std::string describe(std::string_view method, std::string_view url);

// Methods that send no body, and no Content-Length, when their body is empty.
bool body_optional(std::string_view method);

// Throws kInvalidArgument for a method that is not a token, a missing URL or one with CR, LF or
// NUL, and a header whose name is not a token or whose value has CR, LF or NUL: nothing a caller
// passes can inject a header or a request.
void check_request(const Request& request);

}  // namespace stowage::http
