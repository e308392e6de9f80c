// Fuzzes the Retry-After value a registry or apiserver sends: delta-seconds or an HTTP-date in
// any of its three forms. Invariants: a date lies within years 0000-9999, and the delay is never
// negative nor longer than ten years, whatever the clock says.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace http = stowage::http;
  const std::string_view value(reinterpret_cast<const char*>(data), size);
  if (const auto when = http::parse_http_date(value)) {
    if (*when < -62'167'219'200LL || *when >= 253'402'300'800LL) __builtin_trap();
  }
  for (const auto now : {std::chrono::system_clock::time_point{},
                         std::chrono::system_clock::from_time_t(784111777)}) {
    if (const auto delay = http::parse_retry_after(value, now)) {
      if (delay->count() < 0 || delay->count() > 10LL * 365 * 24 * 3600) __builtin_trap();
    }
  }
  return 0;
}
