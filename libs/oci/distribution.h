// The pure wire formats of the OCI distribution API that a registry client reads and writes:
// pagination Link headers, Content-Range and upload Range values, distribution error bodies and
// their mapping to error codes, tag/catalog lists, Docker Hub style /v1/search results, and URL
// helpers for the relative Locations registries send. No I/O; every parser treats its input as
// untrusted and throws stowage::Error(kInvalidArgument) (or returns nullopt) on bad input.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "http/headers.h"

namespace stowage::oci {

// Registry answers read into memory are capped (tag lists of big repositories included).
inline constexpr std::size_t kMaxListBytes = std::size_t{16} * 1024 * 1024;
inline constexpr std::size_t kMaxErrorBodyBytes = std::size_t{64} * 1024;

// --- URLs ----------------------------------------------------------------------------------------

// The parts of an absolute http(s) URL. host keeps the port ("127.0.0.1:5000").
struct UrlParts {
  std::string scheme;  // lowercased
  std::string host;    // lowercased, with ":port" when present
  std::string path_and_query;
};

// Splits an absolute http(s) URL; nullopt for anything else (user info is dropped).
std::optional<UrlParts> parse_url(std::string_view url);

// `reference` (absolute, scheme-relative "//host/p", absolute-path "/p?q", or relative "p")
// resolved against the absolute `base`. Throws InvalidArgument when either is unusable.
std::string resolve_url(std::string_view base, std::string_view reference);

// True when both URLs have the same scheme and host:port (the default port made explicit), so
// credentials may be sent to `to` after being sent to `from`.
bool same_origin(std::string_view from, std::string_view to);

// application/x-www-form-urlencoded / query component encoding (unreserved characters kept).
std::string url_encode(std::string_view text);

// `url` with "name=value" appended to its query ('?' or '&'), the value encoded.
std::string append_query(std::string_view url, std::string_view name, std::string_view value);

// --- Link / Range --------------------------------------------------------------------------------

// The target of the first `rel="next"` link among RFC 8288 Link header values (several values,
// each possibly a comma-separated list); nullopt when there is none. The target may be relative.
std::optional<std::string> parse_link_next(const std::vector<std::string>& link_values);

// A Content-Range response value "bytes <first>-<last>/<total|*>".
struct ContentRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;              // inclusive
  std::optional<std::uint64_t> total;  // nullopt for "*"
  bool operator==(const ContentRange&) const = default;
};
std::optional<ContentRange> parse_content_range(std::string_view value);

// The Content-Range of an upload PATCH: "<first>-<last>" (inclusive). Requires first <= last.
std::string format_upload_range(std::uint64_t first, std::uint64_t last);

// The `Range` header of an upload status: "0-<last>" (distribution) or "bytes=0-<last>" (Docker
// docs). Returns how many bytes the registry holds (last + 1); nullopt when malformed.
std::optional<std::uint64_t> parse_upload_range(std::string_view value);

// --- Errors --------------------------------------------------------------------------------------

// One entry of a distribution error body {"errors":[{"code","message","detail"}]}.
struct RegistryErrorEntry {
  std::string code;     // "MANIFEST_UNKNOWN", ...
  std::string message;  // the registry's text
  std::string detail;   // compact JSON text of `detail`, if any (cut to a few hundred bytes)
  bool operator==(const RegistryErrorEntry&) const = default;
};

// The entries of an error body; empty when the body is not such a document (HTML, empty, ...).
// Never throws.
std::vector<RegistryErrorEntry> parse_error_body(std::string_view body);

// The Stowage code of a failed response: from the first distribution error code that decides one
// (MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN, NOT_FOUND → NotFound; UNAUTHORIZED →
// Unauthenticated; DENIED → PermissionDenied; TOOMANYREQUESTS → ResourceExhausted; UNSUPPORTED →
// InvalidArgument; *_INVALID, SIZE_INVALID, MANIFEST_BLOB_UNKNOWN → InvalidArgument), else from
// the HTTP status (http::code_for_status).
Code code_for_registry_error(int status, const std::vector<RegistryErrorEntry>& errors);

// A human sentence for one entry: "manifest unknown (MANIFEST_UNKNOWN)", with the registry's
// message when it says more than the code, and the detail.
std::string describe_error_entry(const RegistryErrorEntry& entry);

// "<context>: HTTP <status> <reason>: <entries described, '; '-joined>" or, for a body that is not
// an error document, a short printable excerpt of it. Never contains request headers.
std::string describe_registry_failure(std::string_view context, int status, std::string_view body);

// --- Retries -------------------------------------------------------------------------------------

// Statuses worth retrying: 408, 429, 499, 500, 502, 503, 504, 522 (ggcr's list).
bool retryable_status(int status);

// A Retry-After value: http::parse_retry_after (delta-seconds or an HTTP date relative to `now`,
// a past date gives zero, long waits clamped); nullopt when malformed.
std::optional<std::chrono::seconds> parse_retry_after_value(
    std::string_view value, std::chrono::system_clock::time_point now);

// The wait a response asks for in its Retry-After header (delta-seconds, or an HTTP date relative
// to `now`); nullopt when absent or malformed (the caller's backoff decides).
std::optional<std::chrono::seconds> retry_after_delay(const http::Headers& headers,
                                                      std::chrono::system_clock::time_point now);

// --- Lists ---------------------------------------------------------------------------------------

// {"name": "...", "tags": [...]}; "tags": null is an empty list. Throws InvalidArgument.
std::vector<std::string> parse_tags_list(std::string_view body);
// {"repositories": [...]}. Throws InvalidArgument.
std::vector<std::string> parse_catalog(std::string_view body);

// One result of GET /v1/search (Docker Hub's index API).
struct SearchResult {
  std::string name;
  std::string description;
  std::uint64_t star_count = 0;
  bool is_official = false;
  bool is_automated = false;
  bool operator==(const SearchResult&) const = default;
};

// {"results": [{"name", "description", "star_count", "is_official", "is_automated", ...}]};
// entries without a name are skipped; wrong types throw InvalidArgument.
std::vector<SearchResult> parse_search_results(std::string_view body);

}  // namespace stowage::oci
