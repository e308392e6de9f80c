#include "cri/grpc_wire.h"

#include <cstdint>

namespace stowage::cri::wire {
namespace {

constexpr std::size_t kPrefix = 5;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string encode_timeout(std::chrono::milliseconds timeout) {
  constexpr std::int64_t kMaxDigits = 99'999'999;
  const std::int64_t ms = timeout.count();
  if (ms <= 0) {
    return "0m";
  }
  if (ms <= kMaxDigits) {
    return std::to_string(ms) + "m";
  }
  // Round up so the peer never gives up before we do.
  const std::int64_t seconds = (ms + 999) / 1000;
  if (seconds <= kMaxDigits) {
    return std::to_string(seconds) + "S";
  }
  const std::int64_t hours = (seconds + 3599) / 3600;
  return std::to_string(hours <= kMaxDigits ? hours : kMaxDigits) + "H";
}

std::string decode_message(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '%' && i + 2 < value.size()) {
      const int hi = hex_value(value[i + 1]);
      const int lo = hex_value(value[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += value[i];
  }
  return out;
}

int code_for_http_status(int http_status) {
  switch (http_status) {
    case 200: return 13;  // INTERNAL: a 200 must carry grpc-status
    case 400: return 13;  // INTERNAL
    case 401: return 16;  // UNAUTHENTICATED
    case 403: return 7;   // PERMISSION_DENIED
    case 404: return 12;  // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504: return 14;  // UNAVAILABLE
    default: return 2;    // UNKNOWN
  }
}

std::optional<int> parse_status(std::string_view value) {
  if (value.empty() || value.size() > 2) {
    return std::nullopt;
  }
  int n = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    n = n * 10 + (c - '0');
  }
  return n;
}

UnaryBody parse_unary_body(std::string_view body) {
  UnaryBody out;
  if (body.empty()) {
    out.error = "the response carried no message";
    return out;
  }
  if (body.size() < kPrefix) {
    out.error = "the response message is truncated (" + std::to_string(body.size()) +
                " bytes, a 5-byte prefix expected)";
    return out;
  }
  const auto flag = static_cast<unsigned char>(body[0]);
  const std::uint64_t length = (std::uint64_t{static_cast<unsigned char>(body[1])} << 24) |
                               (std::uint64_t{static_cast<unsigned char>(body[2])} << 16) |
                               (std::uint64_t{static_cast<unsigned char>(body[3])} << 8) |
                               std::uint64_t{static_cast<unsigned char>(body[4])};
  if (flag == 1) {
    out.error = "the response message is compressed, though no compression was offered";
    return out;
  }
  if (flag != 0) {
    out.error = "the response message has an invalid flag byte " + std::to_string(flag);
    return out;
  }
  if (body.size() - kPrefix < length) {
    out.error = "the response message is truncated (" + std::to_string(body.size() - kPrefix) +
                " of " + std::to_string(length) + " bytes)";
    return out;
  }
  if (body.size() - kPrefix > length) {
    out.error = "the response carried more than one message";
    return out;
  }
  out.message.assign(body.substr(kPrefix));
  return out;
}

std::string frame_message(std::string_view message) {
  const auto n = static_cast<std::uint32_t>(message.size());
  std::string out;
  out.reserve(kPrefix + message.size());
  out += '\0';
  out += static_cast<char>((n >> 24) & 0xff);
  out += static_cast<char>((n >> 16) & 0xff);
  out += static_cast<char>((n >> 8) & 0xff);
  out += static_cast<char>(n & 0xff);
  out += message;
  return out;
}

}  // namespace stowage::cri::wire
