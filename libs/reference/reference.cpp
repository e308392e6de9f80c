#include "reference/reference.h"

#include <algorithm>
#include <cstdio>

#include "base/error.h"

namespace stowage {
namespace {

// Inputs are outside data: messages show at most this much of them, with odd bytes escaped.
constexpr std::size_t kQuotedMax = 200;

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool is_alnum(char c) {
  return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}
bool is_word(char c) {
  return is_alnum(c) || c == '_';
}
bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}
bool is_upper(char c) {
  return c >= 'A' && c <= 'Z';
}

template <typename Pred>
bool all_of(std::string_view s, Pred pred) {
  return std::all_of(s.begin(), s.end(), pred);
}

std::string quote(std::string_view s) {
  std::string out = "\"";
  const std::size_t shown = std::min(s.size(), kQuotedMax);
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (shown < s.size()) {
    out += "... (" + std::to_string(s.size()) + " bytes)";
  }
  return out;
}

[[noreturn]] void fail(std::string_view input, std::string_view reason) {
  throw_invalid("invalid reference " + quote(input) + ": " + std::string(reason));
}

// path-component: [a-z0-9]+ (separator [a-z0-9]+)*, separator: "." | "_" | "__" | "-"+.
bool is_path_component(std::string_view s) {
  std::size_t i = 0;
  const auto alnum_run = [&] {
    const std::size_t start = i;
    while (i < s.size() && is_lower_alnum(s[i])) {
      ++i;
    }
    return i > start;
  };
  if (!alnum_run()) {
    return false;
  }
  while (i < s.size()) {
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '_') {
      ++i;
      if (i < s.size() && s[i] == '_') {
        ++i;
      }
    } else if (s[i] == '-') {
      while (i < s.size() && s[i] == '-') {
        ++i;
      }
    } else {
      return false;
    }
    if (!alnum_run()) {
      return false;
    }
  }
  return true;
}

// domain-component: [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9].
bool is_domain_component(std::string_view s) {
  return !s.empty() && is_alnum(s.front()) && is_alnum(s.back()) &&
         all_of(s, [](char c) { return is_alnum(c) || c == '-'; });
}

// host: domain-name (which covers IPv4) | "[" [a-fA-F0-9:]+ "]"; then optional ":" [0-9]+.
bool is_domain(std::string_view s) {
  std::string_view port;
  bool has_port = false;
  if (!s.empty() && s.front() == '[') {
    const std::size_t close = s.find(']');
    if (close == std::string_view::npos || close < 2) {
      return false;
    }
    if (!all_of(s.substr(1, close - 1), [](char c) { return is_hex(c) || c == ':'; })) {
      return false;
    }
    const std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return false;
      }
      has_port = true;
      port = rest.substr(1);
    }
  } else {
    const std::size_t colon = s.find(':');
    std::string_view host = s.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port = s.substr(colon + 1);
    }
    while (true) {
      const std::size_t dot = host.find('.');
      if (!is_domain_component(host.substr(0, dot))) {
        return false;
      }
      if (dot == std::string_view::npos) {
        break;
      }
      host.remove_prefix(dot + 1);
    }
  }
  return !has_port || (!port.empty() && all_of(port, [](char c) { return c >= '0' && c <= '9'; }));
}

// Why `path` is not a valid repository path, or nothing when it is.
std::optional<std::string> path_problem(std::string_view path) {
  if (path.empty()) {
    return "repository name must have at least one component";
  }
  std::string lowered(path);
  std::transform(lowered.begin(), lowered.end(), lowered.begin(),
                 [](char c) { return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c; });
  // Components are checked lowercased, so that uppercase gets its own message below.
  for (std::size_t start = 0;;) {
    const std::size_t slash = path.find('/', start);
    const std::size_t length =
        slash == std::string_view::npos ? path.size() - start : slash - start;
    if (length == 0) {
      return "invalid reference format: empty path component";
    }
    if (!is_path_component(std::string_view(lowered).substr(start, length))) {
      return "invalid reference format: path component " + quote(path.substr(start, length)) +
             " must be [a-z0-9]+ joined by \".\", \"_\", \"__\" or \"-\"";
    }
    if (slash == std::string_view::npos) {
      break;
    }
    start = slash + 1;
  }
  if (lowered != path) {  // fine but for its uppercase letters
    return "repository name must be lowercase";
  }
  if (path.size() > kPathMaxLength) {
    return "repository name must not be more than " + std::to_string(kPathMaxLength) +
           " characters";
  }
  return std::nullopt;
}

std::optional<std::string> tag_problem(std::string_view tag) {
  if (tag.empty()) {
    return "invalid tag format: tag is empty";
  }
  if (tag.size() > kTagMaxLength) {
    return "invalid tag format: tag must not be more than " + std::to_string(kTagMaxLength) +
           " characters";
  }
  if (!is_word(tag.front()) ||
      !all_of(tag, [](char c) { return is_word(c) || c == '.' || c == '-'; })) {
    return "invalid tag format: tag must be [A-Za-z0-9_][A-Za-z0-9_.-]*";
  }
  return std::nullopt;
}

struct Registered {
  std::string_view algorithm;
  std::size_t hex_length;
};
constexpr Registered kRegistered[] = {{"sha256", 64}, {"sha512", 128}, {"blake3", 64}};

// Digest grammar of the OCI specs: algorithm [a-z0-9]+ joined by [+._-], encoded [a-zA-Z0-9=_-]+;
// registered algorithms then need exactly their length of lowercase hex (go-digest's wording).
std::optional<std::string> digest_problem(std::string_view text) {
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return "invalid checksum digest format: want algorithm:encoded";
  }
  const std::string_view algorithm = text.substr(0, colon);
  const std::string_view encoded = text.substr(colon + 1);
  bool at_component_start = true;
  for (const char c : algorithm) {
    if (is_lower_alnum(c)) {
      at_component_start = false;
    } else if ((c == '+' || c == '.' || c == '_' || c == '-') && !at_component_start) {
      at_component_start = true;
    } else {
      return "invalid checksum digest format: bad algorithm";
    }
  }
  if (at_component_start) {
    return "invalid checksum digest format: bad algorithm";
  }
  if (encoded.empty() ||
      !all_of(encoded, [](char c) { return is_alnum(c) || c == '=' || c == '_' || c == '-'; })) {
    return "invalid checksum digest format: bad encoded part";
  }
  for (const Registered& r : kRegistered) {
    if (algorithm != r.algorithm) {
      continue;
    }
    const std::string need = " (" + std::string(r.algorithm) + " needs " +
                             std::to_string(r.hex_length) + " lowercase hex characters)";
    if (encoded.size() != r.hex_length) {
      return "invalid checksum digest length" + need;
    }
    if (!all_of(encoded, is_lower_hex)) {
      return "invalid checksum digest format" + need;
    }
  }
  return std::nullopt;
}

// A digest inside a reference also meets distribution/reference's own pattern: algorithm
// components start with a letter, and the encoded part is at least 32 hex characters.
std::optional<std::string> reference_digest_problem(std::string_view text) {
  if (auto problem = digest_problem(text)) {
    return problem;
  }
  const std::size_t colon = text.find(':');
  const std::string_view algorithm = text.substr(0, colon);
  const std::string_view encoded = text.substr(colon + 1);
  bool at_component_start = true;
  for (const char c : algorithm) {
    if (at_component_start && !(c >= 'a' && c <= 'z')) {
      return "invalid checksum digest format: algorithm components must start with a letter";
    }
    at_component_start = !is_lower_alnum(c);
  }
  if (encoded.size() < 32 || !all_of(encoded, is_hex)) {
    return "invalid checksum digest format: want at least 32 hex characters";
  }
  return std::nullopt;
}

bool is_identifier(std::string_view s) {
  return s.size() == 64 && all_of(s, is_lower_hex);
}

// A first path component that split_domain() would take for a registry.
bool looks_like_domain(std::string_view component) {
  return component == "localhost" || component.find_first_of(".:") != std::string_view::npos ||
         std::any_of(component.begin(), component.end(), is_upper);
}

// [":" tag] ["@" digest]
std::string suffix(const Reference& ref) {
  std::string out;
  if (ref.tag) {
    out += ":" + *ref.tag;
  }
  if (ref.digest) {
    out += "@" + *ref.digest;
  }
  return out;
}

}  // namespace

Digest Digest::parse(std::string_view text) {
  if (auto problem = digest_problem(text)) {
    throw_invalid("invalid digest " + quote(text) + ": " + *problem);
  }
  const std::size_t colon = text.find(':');
  return Digest{std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
}

bool Digest::is_valid(std::string_view text) noexcept {
  return !digest_problem(text);
}

DomainSplit split_domain(std::string_view text) {
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return {{}, text};  // "ubuntu", "localhost:5000" (a tag), "example.com": Docker Hub names
  }
  const std::string_view first = text.substr(0, slash);
  if (looks_like_domain(first)) {
    return {first, text.substr(slash + 1)};
  }
  return {{}, text};
}

bool is_short_name(std::string_view text) {
  return split_domain(text).domain.empty();
}

Reference Reference::parse(std::string_view text) {
  if (text.empty()) {
    fail(text, "repository name must have at least one component");
  }
  const std::size_t at = text.find('@');
  const std::string_view name_tag = text.substr(0, at);
  // The tag separator is a ':' after the last '/'; earlier ones belong to a port.
  const std::size_t last_slash = name_tag.rfind('/');
  const std::size_t colon =
      name_tag.find(':', last_slash == std::string_view::npos ? 0 : last_slash + 1);
  const std::string_view name = name_tag.substr(0, colon);
  if (name.empty()) {
    fail(text, "repository name must have at least one component");
  }

  Reference ref;
  const DomainSplit split = split_domain(name);
  if (!split.domain.empty() && !is_domain(split.domain)) {
    fail(text, "invalid reference format: registry " + quote(split.domain) +
                   " is not a valid host[:port]");
  }
  if (auto problem = path_problem(split.remainder)) {
    fail(text, *problem);
  }
  ref.domain = split.domain;
  ref.path = split.remainder;
  if (colon != std::string_view::npos) {
    const std::string_view tag = name_tag.substr(colon + 1);
    if (auto problem = tag_problem(tag)) {
      fail(text, *problem);
    }
    ref.tag = std::string(tag);
  }
  if (at != std::string_view::npos) {
    const std::string_view digest = text.substr(at + 1);
    if (auto problem = reference_digest_problem(digest)) {
      fail(text, *problem);
    }
    ref.digest = std::string(digest);
  }
  return ref;
}

Reference Reference::parse_normalized(std::string_view text) {
  if (is_identifier(text)) {
    fail(text, "cannot specify 64-byte hexadecimal strings as a repository name");
  }
  Reference ref = parse(text);
  if (ref.domain.empty() || ref.domain == kLegacyDefaultDomain) {
    ref.domain = kDefaultDomain;
  }
  if (ref.domain == kDefaultDomain && ref.path.find('/') == std::string::npos) {
    ref.path.insert(0, kOfficialRepoPrefix);
    if (ref.path.size() > kPathMaxLength) {
      fail(text, "repository name must not be more than " + std::to_string(kPathMaxLength) +
                     " characters (with \"library/\")");
    }
  }
  return ref;
}

std::string Reference::name() const {
  return domain.empty() ? path : domain + "/" + path;
}

std::string Reference::string() const {
  return name() + suffix(*this);
}

std::string Reference::familiar() const {
  if (domain != kDefaultDomain) {
    return string();
  }
  std::string_view short_path = path;
  if (short_path.starts_with(kOfficialRepoPrefix)) {
    const std::string_view rest = short_path.substr(kOfficialRepoPrefix.size());
    if (rest.find('/') == std::string_view::npos && !is_identifier(rest)) {
      short_path = rest;
    }
  }
  const std::size_t slash = short_path.find('/');
  if (slash != std::string_view::npos && looks_like_domain(short_path.substr(0, slash))) {
    return string();
  }
  return std::string(short_path) + suffix(*this);
}

Reference Reference::with_default_tag() const {
  Reference out = *this;
  if (!out.tag && !out.digest) {
    out.tag = std::string(kDefaultTag);
  }
  return out;
}

}  // namespace stowage
