// The two Transport implementations every http integration case runs against: the libcurl
// http::Client and the socket + OpenSSL http::Http1Client. Cases are value-parameterized on
// TransportKind and named ".../curl" and ".../http1". Not product code.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "http/client.h"
#include "http/http1_client.h"

namespace stowage::http::testing {

enum class TransportKind { kCurl, kHttp1 };

inline void PrintTo(TransportKind kind, std::ostream* os) {
  *os << (kind == TransportKind::kCurl ? "curl" : "http1");
}

inline std::string transport_name(const ::testing::TestParamInfo<TransportKind>& info) {
  return info.param == TransportKind::kCurl ? "curl" : "http1";
}

inline const auto kAllTransports = ::testing::Values(TransportKind::kCurl, TransportKind::kHttp1);

// proxy "" ignores any proxy in the environment (hermetic tests); std::nullopt reads it.
inline std::unique_ptr<Transport> make_transport(TransportKind kind,
                                                 std::optional<std::string> proxy = "") {
  if (kind == TransportKind::kCurl) {
    ClientOptions options;
    options.proxy = std::move(proxy);
    return std::make_unique<Client>(options);
  }
  Http1ClientOptions options;
  options.proxy = std::move(proxy);
  return std::make_unique<Http1Client>(options);
}

// Idle handles (curl) or idle connections (Http1Client) waiting for reuse.
inline std::size_t idle_count(const Transport& transport) {
  if (const auto* curl = dynamic_cast<const Client*>(&transport)) {
    return curl->idle_handles();
  }
  return dynamic_cast<const Http1Client&>(transport).idle_connections();
}

}  // namespace stowage::http::testing
