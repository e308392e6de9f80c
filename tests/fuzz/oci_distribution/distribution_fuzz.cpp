// Fuzzes the parsers of registry answers (libs/oci/distribution.h): Link headers, Content-Range
// and upload Range values, Retry-After, distribution error bodies and their messages, tag lists,
// catalogs, /v1/search results, and URL resolution of the Locations registries send. Bad input
// must end in a stowage::Error or an empty result, never a crash or another exception type.
// Invariants: a parsed Content-Range is ordered and inside its total; an upload range formatted
// from a parsed one parses back the same; a resolved URL parses as an absolute http(s) URL.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "http/headers.h"
#include "oci/distribution.h"

namespace {

namespace oci = stowage::oci;

void check_lists(std::string_view text) {
  try {
    (void)oci::parse_tags_list(text);
  } catch (const stowage::Error&) {
  }
  try {
    (void)oci::parse_catalog(text);
  } catch (const stowage::Error&) {
  }
  try {
    for (const auto& r : oci::parse_search_results(text)) {
      if (r.name.empty()) __builtin_trap();
    }
  } catch (const stowage::Error&) {
  }
}

void check_errors(std::string_view text) {
  const auto entries = oci::parse_error_body(text);
  for (const auto& e : entries) {
    if (e.code.empty() && e.message.empty()) __builtin_trap();
    (void)oci::describe_error_entry(e);
  }
  for (int status : {400, 401, 404, 429, 503}) {
    (void)oci::code_for_registry_error(status, entries);
    const std::string message = oci::describe_registry_failure("fuzz", status, text);
    if (message.rfind("fuzz: HTTP ", 0) != 0) __builtin_trap();
    for (char c : message) {
      if (c == '\n' || c == '\r') __builtin_trap();
    }
  }
}

void check_small(std::string_view text) {
  const auto nl = text.find('\n');
  const std::string_view a = text.substr(0, nl);
  const std::string_view b =
      nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);

  (void)oci::parse_link_next({std::string(a), std::string(b)});

  if (const auto r = oci::parse_content_range(text)) {
    if (r->first > r->last) __builtin_trap();
    if (r->total && *r->total <= r->last) __builtin_trap();
  }
  if (const auto n = oci::parse_upload_range(text)) {
    if (*n == 0) __builtin_trap();
    if (oci::parse_upload_range(oci::format_upload_range(0, *n - 1)) != n) __builtin_trap();
  }

  const stowage::http::Headers headers{{"Retry-After", std::string(text)}};
  (void)oci::retry_after_delay(
      headers, std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000)));

  try {
    const std::string url = oci::resolve_url(a, b);
    if (!oci::parse_url(url)) __builtin_trap();
    (void)oci::same_origin(a, url);
  } catch (const stowage::Error&) {
  }
  (void)oci::parse_url(text);
  const std::string appended = oci::append_query("http://h/p", a, b);
  if (appended.find('#') != std::string::npos) __builtin_trap();
  for (char c : oci::url_encode(text)) {
    if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) {
      __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_lists(text);
  check_errors(text);
  if (size < 1024) check_small(text);
  return 0;
}
