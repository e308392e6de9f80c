// How libcurl result codes become stowage::Error codes (http::Client, client.h).
#pragma once

#include "base/error.h"

namespace stowage::http {

// The code for a libcurl result (a CURLcode value, CURLE_OK excluded): connect, DNS, reset and
// other network failures Unavailable; timeouts (total and low-speed) DeadlineExceeded; a server
// certificate that does not verify Unauthenticated (its identity could not be established;
// retrying will not help); an unusable local CA, client certificate or key InvalidArgument;
// malformed URLs InvalidArgument; out of memory ResourceExhausted; anything else Internal.
Code code_for_curl(int curl_code);

}  // namespace stowage::http
