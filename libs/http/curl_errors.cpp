#include "http/curl_errors.h"

#include <curl/curl.h>

namespace stowage::http {

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

}  // namespace stowage::http
