// Wire encodings of Kubernetes API fields: base64 for []byte fields (kubeconfig *-data, Secret
// data, ExecCredential cluster info) and RFC 3339 for metav1.Time / MicroTime. Pure functions.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "base/text.h"

namespace stowage::kube {

// Standard base64 with padding, as Go's encoding/json writes []byte.
using ::stowage::base64_encode;

// Decodes standard base64; padding is optional and ASCII whitespace (line breaks in pasted data) is
// skipped. std::nullopt for any other character or a malformed length.
std::optional<std::string> base64_decode(std::string_view text);

// Parses an RFC 3339 date-time ("2024-05-01T10:00:00Z", "…00.123456+02:00"); std::nullopt when
// malformed. Fractions finer than a microsecond are truncated.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

// "2024-05-01T10:00:00Z" (metav1.Time, whole seconds) and "2024-05-01T10:00:00.123456Z"
// (metav1.MicroTime), always in UTC.
std::string format_rfc3339(std::chrono::system_clock::time_point t);
std::string format_rfc3339_micro(std::chrono::system_clock::time_point t);

}  // namespace stowage::kube
