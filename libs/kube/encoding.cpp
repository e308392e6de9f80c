#include "kube/encoding.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>

namespace stowage::kube {
namespace {

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+') {
    return 62;
  }
  if (c == '/') {
    return 63;
  }
  return -1;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t y;
  unsigned m, d;
};

Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2 ? 1 : 0), m, d};
}

bool is_leap(std::int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr std::array<unsigned, 12> kDays = {31, 28, 31, 30, 31, 30,
                                                     31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `n` digits at `pos`.
std::optional<int> digits(std::string_view s, std::size_t pos, std::size_t n) {
  if (pos + n > s.size()) {
    return std::nullopt;
  }
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return std::nullopt;
    }
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

std::string format(std::chrono::system_clock::time_point t, bool micro) {
  using namespace std::chrono;
  const auto us = duration_cast<microseconds>(t.time_since_epoch()).count();
  std::int64_t secs = us / 1'000'000;
  std::int64_t frac = us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    --secs;
  }
  std::int64_t days = secs / 86400;
  std::int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  const Civil c = civil_from_days(days);
  std::array<char, 48> buf{};
  int n = 0;
  if (micro) {
    n = std::snprintf(buf.data(), buf.size(), "%04lld-%02u-%02uT%02d:%02d:%02d.%06lldZ",
                      static_cast<long long>(c.y), c.m, c.d, static_cast<int>(rem / 3600),
                      static_cast<int>(rem / 60 % 60), static_cast<int>(rem % 60),
                      static_cast<long long>(frac));
  } else {
    n = std::snprintf(buf.data(), buf.size(), "%04lld-%02u-%02uT%02d:%02d:%02dZ",
                      static_cast<long long>(c.y), c.m, c.d, static_cast<int>(rem / 3600),
                      static_cast<int>(rem / 60 % 60), static_cast<int>(rem % 60));
  }
  return std::string(buf.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
}

}  // namespace

std::optional<std::string> base64_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3 + 3);
  std::uint32_t acc = 0;
  int bits = 0;
  int quads = 0;  // symbols of the current group of four
  int padding = 0;
  for (const char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      continue;
    }
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding > 0) {
      return std::nullopt;  // data after padding
    }
    const int v = base64_value(c);
    if (v < 0) {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    quads = (quads + 1) % 4;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (quads == 1) {
    return std::nullopt;  // 6 bits cannot be a byte
  }
  if (padding > 0 && (quads == 0 || padding != 4 - quads)) {
    return std::nullopt;  // wrong padding
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return std::nullopt;  // non-canonical tail
  }
  return out;
}

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view s) {
  using namespace std::chrono;
  // YYYY-MM-DDTHH:MM:SS
  const auto year = digits(s, 0, 4);
  const auto month = digits(s, 5, 2);
  const auto day = digits(s, 8, 2);
  const auto hour = digits(s, 11, 2);
  const auto minute = digits(s, 14, 2);
  const auto second = digits(s, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second || s.size() < 20) {
    return std::nullopt;
  }
  if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  if (*month < 1 || *month > 12 || *day < 1 ||
      static_cast<unsigned>(*day) > days_in_month(*year, static_cast<unsigned>(*month)) ||
      *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  std::int64_t micros = 0;
  if (s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    int scale = 100'000;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      micros += static_cast<std::int64_t>(s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) {
      return std::nullopt;
    }
  }
  if (pos >= s.size()) {
    return std::nullopt;
  }
  std::int64_t offset_s = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    const auto oh = digits(s, pos + 1, 2);
    const auto om = digits(s, pos + 4, 2);
    if (!oh || !om || pos + 3 >= s.size() || s[pos + 3] != ':' || *oh > 23 || *om > 59) {
      return std::nullopt;
    }
    offset_s = (std::int64_t{*oh} * 3600 + std::int64_t{*om} * 60) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) {
    return std::nullopt;
  }
  const std::int64_t days =
      days_from_civil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day));
  const std::int64_t secs = days * 86400 + std::int64_t{*hour} * 3600 + std::int64_t{*minute} * 60 +
                            std::min(*second, 59) - offset_s;
  // The clock counts nanoseconds in 64 bits: about the years 1678 to 2262.
  constexpr std::int64_t kLimit = duration_cast<seconds>(system_clock::duration::max()).count() - 1;
  if (secs < -kLimit || secs > kLimit) {
    return std::nullopt;
  }
  return system_clock::time_point(
      duration_cast<system_clock::duration>(seconds(secs) + microseconds(micros)));
}

std::string format_rfc3339(std::chrono::system_clock::time_point t) {
  return format(t, false);
}

std::string format_rfc3339_micro(std::chrono::system_clock::time_point t) {
  return format(t, true);
}

}  // namespace stowage::kube
