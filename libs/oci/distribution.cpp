#include "oci/distribution.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <nlohmann/json.hpp>

#include "http/errors.h"
#include "oci/manifest.h"

namespace stowage::oci {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxDetailChars = 300;
constexpr std::size_t kMaxExcerptChars = 200;

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// Printable one-line text; non-printable bytes become '?'.
std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n' || c == '\r' || c == '\t') {
      out += ' ';
    } else if (u < 0x20 || u == 0x7f) {
      out += '?';
    } else {
      out += c;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

json parse_json_document(std::string_view body, std::string_view what) {
  if (body.size() > kMaxListBytes) {
    throw Error(Code::kInvalidArgument,
                fmt::format("{}: answer of {} bytes is larger than the {} byte limit", what,
                            body.size(), kMaxListBytes));
  }
  if (json_nesting_exceeds(body, kMaxJsonDepth)) {
    throw Error(Code::kInvalidArgument, fmt::format("{}: JSON nested too deeply", what));
  }
  try {
    return json::parse(body);
  } catch (const json::parse_error& e) {
    throw Error(Code::kInvalidArgument, fmt::format("{}: invalid JSON at byte {}", what, e.byte));
  } catch (const json::exception&) {
    throw Error(Code::kInvalidArgument, fmt::format("{}: invalid JSON", what));
  }
}

std::vector<std::string> string_array(const json& doc, const char* field, std::string_view what) {
  if (!doc.is_object()) {
    throw Error(Code::kInvalidArgument, fmt::format("{}: not a JSON object", what));
  }
  std::vector<std::string> out;
  const auto it = doc.find(field);
  if (it == doc.end() || it->is_null()) return out;
  if (!it->is_array()) {
    throw Error(Code::kInvalidArgument, fmt::format("{}: \"{}\" is not an array", what, field));
  }
  out.reserve(it->size());
  for (std::size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    if (!v.is_string()) {
      throw Error(Code::kInvalidArgument,
                  fmt::format("{}: {}[{}] is not a string", what, field, i));
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

// --- URLs ----------------------------------------------------------------------------------------

std::optional<UrlParts> parse_url(std::string_view url) {
  const auto colon = url.find("://");
  if (colon == std::string_view::npos) return std::nullopt;
  UrlParts parts;
  parts.scheme = lowercase(url.substr(0, colon));
  if (parts.scheme != "http" && parts.scheme != "https") return std::nullopt;
  std::string_view rest = url.substr(colon + 3);
  const auto end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  if (authority.empty()) return std::nullopt;
  for (char c : authority) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return std::nullopt;
  }
  parts.host = lowercase(authority);
  std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (const auto hash = tail.find('#'); hash != std::string_view::npos) tail = tail.substr(0, hash);
  parts.path_and_query =
      tail.empty() || tail.front() != '/' ? "/" + std::string(tail) : std::string(tail);
  return parts;
}

namespace {

std::string resolve_unchecked(const UrlParts& b, std::string_view reference) {
  if (reference.starts_with("//")) return b.scheme + ":" + std::string(reference);
  if (reference.front() == '/') return b.scheme + "://" + b.host + std::string(reference);
  std::string path = b.path_and_query;
  if (const auto q = path.find('?'); q != std::string::npos) path.resize(q);
  if (reference.front() == '?') return b.scheme + "://" + b.host + path + std::string(reference);
  path.resize(path.rfind('/') + 1);
  return b.scheme + "://" + b.host + path + std::string(reference);
}

}  // namespace

std::string resolve_url(std::string_view base, std::string_view reference) {
  reference = trim(reference);
  if (reference.empty()) throw Error(Code::kInvalidArgument, "empty URL reference");
  for (char c : reference) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) {
      throw Error(Code::kInvalidArgument, "URL reference with control characters or spaces");
    }
  }
  std::string out;
  if (reference.find("://") != std::string_view::npos) {
    out = std::string(reference);
  } else {
    const auto b = parse_url(base);
    if (!b) throw Error(Code::kInvalidArgument, "base URL is not an absolute http(s) URL");
    out = resolve_unchecked(*b, reference);
  }
  if (!parse_url(out)) {
    throw Error(Code::kInvalidArgument, "URL reference does not resolve to an http(s) URL");
  }
  return out;
}

bool same_origin(std::string_view from, std::string_view to) {
  const auto a = parse_url(from);
  const auto b = parse_url(to);
  if (!a || !b) return false;
  auto with_port = [](const UrlParts& p) {
    // An IPv6 literal ends with ']' when it has no port.
    const auto colon = p.host.rfind(':');
    const bool has_port =
        colon != std::string::npos && p.host.find(']', colon) == std::string::npos;
    return has_port ? p.host : p.host + (p.scheme == "https" ? ":443" : ":80");
  };
  return a->scheme == b->scheme && with_port(*a) == with_port(*b);
}

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

std::string append_query(std::string_view url, std::string_view name, std::string_view value) {
  std::string out(url);
  if (const auto hash = out.find('#'); hash != std::string::npos) out.resize(hash);
  const auto q = out.find('?');
  if (q == std::string::npos) {
    out += '?';
  } else if (q + 1 != out.size() && out.back() != '&') {
    out += '&';
  }
  out += url_encode(name);
  out += '=';
  out += url_encode(value);
  return out;
}

// --- Link / Range --------------------------------------------------------------------------------

std::optional<std::string> parse_link_next(const std::vector<std::string>& link_values) {
  for (const auto& value : link_values) {
    std::string_view rest = value;
    while (!rest.empty()) {
      rest = trim(rest);
      while (!rest.empty() && rest.front() == ',') rest = trim(rest.substr(1));
      if (rest.empty() || rest.front() != '<') break;
      const auto close = rest.find('>');
      if (close == std::string_view::npos) break;
      const std::string_view target = rest.substr(1, close - 1);
      rest = rest.substr(close + 1);
      // Parameters up to the next link (a ',' outside quotes).
      bool next = false;
      while (true) {
        rest = trim(rest);
        if (rest.empty() || rest.front() == ',') break;
        if (rest.front() != ';') {
          rest = {};  // malformed: stop reading this value
          break;
        }
        rest = trim(rest.substr(1));
        const auto eq = rest.find_first_of("=;,");
        std::string_view name = trim(rest.substr(0, eq));
        std::string param_value;
        if (eq != std::string_view::npos && rest[eq] == '=') {
          rest = trim(rest.substr(eq + 1));
          if (!rest.empty() && rest.front() == '"') {
            std::size_t i = 1;
            for (; i < rest.size() && rest[i] != '"'; ++i) {
              if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
              param_value += rest[i];
            }
            rest = i < rest.size() ? rest.substr(i + 1) : std::string_view();
          } else {
            const auto stop = rest.find_first_of(";,");
            param_value = std::string(trim(rest.substr(0, stop)));
            rest = stop == std::string_view::npos ? std::string_view() : rest.substr(stop);
          }
        } else {
          rest = eq == std::string_view::npos ? std::string_view() : rest.substr(eq);
        }
        if (ieq(name, "rel")) {
          // rel may hold several space-separated relation types.
          std::string_view types = param_value;
          while (!types.empty()) {
            const auto sp = types.find(' ');
            if (ieq(types.substr(0, sp), "next")) next = true;
            types = sp == std::string_view::npos ? std::string_view() : types.substr(sp + 1);
          }
        }
      }
      if (next && !target.empty()) return std::string(trim(target));
    }
  }
  return std::nullopt;
}

std::optional<ContentRange> parse_content_range(std::string_view value) {
  value = trim(value);
  if (value.size() < 6 || !ieq(value.substr(0, 6), "bytes ")) return std::nullopt;
  value = trim(value.substr(6));
  const auto dash = value.find('-');
  const auto slash = value.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || dash > slash) {
    return std::nullopt;
  }
  ContentRange r;
  const auto first = parse_u64(value.substr(0, dash));
  const auto last = parse_u64(value.substr(dash + 1, slash - dash - 1));
  if (!first || !last || *first > *last) return std::nullopt;
  r.first = *first;
  r.last = *last;
  const std::string_view total = value.substr(slash + 1);
  if (total != "*") {
    r.total = parse_u64(total);
    if (!r.total || *r.total <= r.last) return std::nullopt;
  }
  return r;
}

std::string format_upload_range(std::uint64_t first, std::uint64_t last) {
  return fmt::format("{}-{}", first, last);
}

std::optional<std::uint64_t> parse_upload_range(std::string_view value) {
  value = trim(value);
  if (value.size() >= 6 && ieq(value.substr(0, 6), "bytes=")) value.remove_prefix(6);
  const auto dash = value.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const auto first = parse_u64(value.substr(0, dash));
  const auto last = parse_u64(value.substr(dash + 1));
  if (!first || !last || *first != 0 || *last == UINT64_MAX) return std::nullopt;
  return *last + 1;
}

// --- Errors --------------------------------------------------------------------------------------

std::vector<RegistryErrorEntry> parse_error_body(std::string_view body) {
  std::vector<RegistryErrorEntry> out;
  if (body.empty() || body.size() > kMaxErrorBodyBytes || json_nesting_exceeds(body, 16)) {
    return out;
  }
  json doc;
  try {
    doc = json::parse(body);
  } catch (const json::exception&) {
    return out;
  }
  if (!doc.is_object()) return out;
  const auto errors = doc.find("errors");
  if (errors == doc.end() || !errors->is_array()) return out;
  for (const auto& e : *errors) {
    if (!e.is_object()) continue;
    RegistryErrorEntry entry;
    if (const auto c = e.find("code"); c != e.end() && c->is_string()) {
      entry.code = printable(c->get_ref<const std::string&>(), 64);
    }
    if (const auto m = e.find("message"); m != e.end() && m->is_string()) {
      entry.message = printable(m->get_ref<const std::string&>(), kMaxDetailChars);
    }
    if (const auto d = e.find("detail"); d != e.end() && !d->is_null()) {
      try {
        entry.detail = d->is_string() ? d->get<std::string>()
                                      : d->dump(-1, ' ', false, json::error_handler_t::replace);
      } catch (const json::exception&) {
        entry.detail.clear();
      }
      entry.detail = printable(entry.detail, kMaxDetailChars);
    }
    if (entry.code.empty() && entry.message.empty()) continue;
    out.push_back(std::move(entry));
    if (out.size() >= 8) break;
  }
  return out;
}

Code code_for_registry_error(int status, const std::vector<RegistryErrorEntry>& errors) {
  for (const auto& e : errors) {
    const std::string& c = e.code;
    if (c == "MANIFEST_UNKNOWN" || c == "BLOB_UNKNOWN" || c == "NAME_UNKNOWN" || c == "NOT_FOUND" ||
        c == "BLOB_UPLOAD_UNKNOWN") {
      return Code::kNotFound;
    }
    if (c == "UNAUTHORIZED") return Code::kUnauthenticated;
    if (c == "DENIED") return Code::kPermissionDenied;
    if (c == "TOOMANYREQUESTS") return Code::kResourceExhausted;
    if (c == "UNSUPPORTED" || c == "DIGEST_INVALID" || c == "MANIFEST_INVALID" ||
        c == "NAME_INVALID" || c == "SIZE_INVALID" || c == "TAG_INVALID" ||
        c == "MANIFEST_BLOB_UNKNOWN" || c == "BLOB_UPLOAD_INVALID" || c == "MANIFEST_UNVERIFIED" ||
        c == "PAGINATION_NUMBER_INVALID" || c == "RANGE_INVALID") {
      return Code::kInvalidArgument;
    }
  }
  return http::code_for_status(status);
}

std::string describe_error_entry(const RegistryErrorEntry& entry) {
  std::string text;
  std::string code_words = lowercase(entry.code);
  std::replace(code_words.begin(), code_words.end(), '_', ' ');
  if (entry.message.empty() || ieq(entry.message, code_words)) {
    text = code_words.empty() ? std::string("error") : code_words;
  } else {
    text = entry.message;
  }
  if (!entry.code.empty()) text += " (" + entry.code + ")";
  if (!entry.detail.empty()) text += ": " + entry.detail;
  return text;
}

std::string describe_registry_failure(std::string_view context, int status, std::string_view body) {
  std::string message(context);
  if (!message.empty()) message += ": ";
  message += "HTTP " + std::to_string(status);
  if (const auto reason = http::reason_phrase(status); !reason.empty()) {
    message += ' ';
    message += reason;
  }
  const auto entries = parse_error_body(body);
  if (!entries.empty()) {
    message += ": ";
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (i > 0) message += "; ";
      message += describe_error_entry(entries[i]);
    }
    return message;
  }
  std::string_view text = body;
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  const bool textual = std::none_of(
      text.begin(),
      text.begin() + static_cast<std::ptrdiff_t>(std::min(text.size(), kMaxExcerptChars)),
      [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 && c != '\n' && c != '\r' && c != '\t';
      });
  if (!text.empty() && textual && text.front() != '<') {
    message += ": " + printable(text, kMaxExcerptChars);
  }
  return message;
}

// --- Retries -------------------------------------------------------------------------------------

bool retryable_status(int status) {
  switch (status) {
    case 408:
    case 429:
    case 499:
    case 500:
    case 502:
    case 503:
    case 504:
    case 522: return true;
    default: return false;
  }
}

std::optional<std::chrono::seconds> parse_retry_after_value(
    std::string_view value, std::chrono::system_clock::time_point now) {
  return http::parse_retry_after(value, now);
}

std::optional<std::chrono::seconds> retry_after_delay(const http::Headers& headers,
                                                      std::chrono::system_clock::time_point now) {
  const auto value = headers.get("Retry-After");
  if (!value) return std::nullopt;
  return parse_retry_after_value(*value, now);
}

// --- Lists ---------------------------------------------------------------------------------------

std::vector<std::string> parse_tags_list(std::string_view body) {
  return string_array(parse_json_document(body, "tag list"), "tags", "tag list");
}

std::vector<std::string> parse_catalog(std::string_view body) {
  return string_array(parse_json_document(body, "catalog"), "repositories", "catalog");
}

std::vector<SearchResult> parse_search_results(std::string_view body) {
  const json doc = parse_json_document(body, "search results");
  if (!doc.is_object()) throw Error(Code::kInvalidArgument, "search results: not a JSON object");
  std::vector<SearchResult> out;
  const auto results = doc.find("results");
  if (results == doc.end() || results->is_null()) return out;
  if (!results->is_array()) {
    throw Error(Code::kInvalidArgument, "search results: \"results\" is not an array");
  }
  for (std::size_t i = 0; i < results->size(); ++i) {
    const json& r = (*results)[i];
    const std::string where = fmt::format("search results: results[{}]", i);
    if (!r.is_object()) throw Error(Code::kInvalidArgument, where + " is not an object");
    SearchResult s;
    auto text = [&](const char* field, std::string& into) {
      const auto it = r.find(field);
      if (it == r.end() || it->is_null()) return;
      if (!it->is_string()) {
        throw Error(Code::kInvalidArgument, fmt::format("{}.{} is not a string", where, field));
      }
      into = it->get<std::string>();
    };
    auto flag = [&](const char* field, bool& into) {
      const auto it = r.find(field);
      if (it == r.end() || it->is_null()) return;
      if (!it->is_boolean()) {
        throw Error(Code::kInvalidArgument, fmt::format("{}.{} is not a boolean", where, field));
      }
      into = it->get<bool>();
    };
    text("name", s.name);
    text("description", s.description);
    flag("is_official", s.is_official);
    flag("is_automated", s.is_automated);
    if (const auto it = r.find("star_count"); it != r.end() && !it->is_null()) {
      if (it->is_number_unsigned()) {
        s.star_count = it->get<std::uint64_t>();
      } else if (it->is_number_integer() && it->get<std::int64_t>() >= 0) {
        s.star_count = static_cast<std::uint64_t>(it->get<std::int64_t>());
      } else {
        throw Error(Code::kInvalidArgument, where + ".star_count is not a non-negative integer");
      }
    }
    if (s.name.empty()) continue;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace stowage::oci
