#include "oci/auth.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/error.h"
#include "base/files.h"
#include "oci/manifest.h"

namespace stowage::oci {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr std::string_view kDefaultRegistryHost = "index.docker.io";

[[noreturn]] void bad(std::string_view where, std::string_view message) {
  throw_invalid(fmt::format("{}: {}", where, message));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Printable form of outside text for messages (never used for secrets).
std::string shown(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max) {
    out += "...";
  }
  return out;
}

json parse_json(std::string_view text, std::string_view where, std::size_t max_bytes) {
  if (text.size() > max_bytes) {
    bad(where, fmt::format("{} bytes, more than the {} allowed", text.size(), max_bytes));
  }
  if (json_nesting_exceeds(text, kMaxJsonDepth)) {
    bad(where, fmt::format("JSON nested deeper than {} levels", kMaxJsonDepth));
  }
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    bad(where, fmt::format("invalid JSON at byte {}", e.byte));
  } catch (const json::exception&) {
    bad(where, "invalid JSON: a number is out of range");  // nlohmann's out_of_range.406
  }
}

const json* member(const json& obj, std::string_view key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

std::string string_member(const json& obj, std::string_view key) {
  const json* v = member(obj, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
}

// Checks that `entry` (auths[key]) has string-typed secret fields.
void check_entry(const json& entry, std::string_view key, std::string_view where) {
  if (!entry.is_object()) {
    bad(where, fmt::format("entry \"{}\" must be an object", shown(key)));
  }
  for (const char* field :
       {"auth", "username", "password", "identitytoken", "registrytoken", "email"}) {
    const json* v = member(entry, field);
    if (v != nullptr && !v->is_string()) {
      bad(where, fmt::format("entry \"{}\": \"{}\" must be a string", shown(key), field));
    }
  }
}

// docker.io and registry-1.docker.io are index.docker.io for auth purposes.
std::string normalize_registry(std::string_view registry) {
  if (registry == "docker.io" || registry == "registry-1.docker.io") {
    return std::string(kDefaultRegistryHost);
  }
  return std::string(registry);
}

// containers/image normalizeAuthFileKey: strip a scheme; cut at the first '/' when there was a
// scheme or the file is legacy; then normalize the registry.
std::string normalize_auth_key(std::string_view key, bool legacy) {
  std::string_view stripped = key;
  if (stripped.starts_with("http://")) {
    stripped.remove_prefix(7);
  } else if (stripped.starts_with("https://")) {
    stripped.remove_prefix(8);
  }
  if (legacy || stripped.size() != key.size()) {
    stripped = stripped.substr(0, stripped.find('/'));
  }
  return normalize_registry(stripped);
}

bool is_docker_hub_key(std::string_view key) {
  return key == "docker.io" || key == "index.docker.io" || key == "registry-1.docker.io" ||
         key == kDockerHubAuthKey;
}

// "quay.io/a/b" → "quay.io/a/b", "quay.io/a", "quay.io".
std::vector<std::string> keys_most_specific_first(std::string_view name) {
  std::vector<std::string> out;
  while (true) {
    out.emplace_back(name);
    const auto slash = name.rfind('/');
    if (slash == std::string_view::npos) {
      break;
    }
    name = name.substr(0, slash);
  }
  return out;
}

// --- URL pieces for the kubelet keyring (Go net/url semantics where they matter) ---

struct UrlParts {
  std::string host;  // with port, brackets kept, as Go's URL.Host
  std::string path;  // percent-decoded
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool valid_host_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x80) {
    return true;  // Go lets non-ASCII through to IDNA checks elsewhere
  }
  if (std::isalnum(u)) {
    return true;
  }
  return std::strchr("-._~!$&'()*+,;=:[]<>\"", c) != nullptr && c != '\0';
}

// Parses "host[:port][/path]" as url.Parse("https://" + text) would; nullopt where Go errors.
std::optional<UrlParts> parse_schemeless(std::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return std::nullopt;
    }
  }
  const auto end_of_authority = text.find_first_of("/?#");
  std::string_view authority = text.substr(0, end_of_authority);
  std::string_view rest = end_of_authority == std::string_view::npos
                              ? std::string_view()
                              : text.substr(end_of_authority);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority = authority.substr(at + 1);
  }
  // Port: after ']' for IPv6 literals, else after the last ':'; digits only (may be empty).
  std::string_view port_part;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    port_part = authority.substr(close + 1);
    if (!port_part.empty() && port_part.front() != ':') {
      return std::nullopt;
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    port_part = authority.substr(colon);
  }
  if (!port_part.empty()) {
    if (!std::all_of(port_part.begin() + 1, port_part.end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
  }
  if (!std::all_of(authority.begin(), authority.end(), valid_host_char)) {
    return std::nullopt;
  }
  UrlParts out;
  out.host = std::string(authority);
  const std::string_view raw_path = rest.substr(0, rest.find_first_of("?#"));
  for (std::size_t i = 0; i < raw_path.size(); ++i) {
    if (raw_path[i] == '%') {
      if (i + 2 >= raw_path.size()) {
        return std::nullopt;
      }
      const int hi = hex_value(raw_path[i + 1]);
      const int lo = hex_value(raw_path[i + 2]);
      if (hi < 0 || lo < 0) {
        return std::nullopt;
      }
      out.path += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out.path += raw_path[i];
    }
  }
  return out;
}

// net.SplitHostPort, falling back to (whole, "") on error as kubelet's SplitURL does.
std::pair<std::string_view, std::string_view> split_host_port(std::string_view h) {
  if (!h.empty() && h.front() == '[') {
    const auto close = h.find(']');
    if (close == std::string_view::npos || close + 1 >= h.size() || h[close + 1] != ':') {
      return {h, {}};
    }
    return {h.substr(1, close - 1), h.substr(close + 2)};
  }
  const auto colon = h.rfind(':');
  if (colon == std::string_view::npos || h.find(':') != colon) {
    return {h, {}};
  }
  return {h.substr(0, colon), h.substr(colon + 1)};
}

std::vector<std::string_view> split_labels(std::string_view host) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const auto dot = host.find('.', start);
    out.push_back(host.substr(start, dot - start));
    if (dot == std::string_view::npos) {
      break;
    }
    start = dot + 1;
  }
  return out;
}

bool urls_match(std::string_view glob, std::string_view target) {
  const auto g = parse_schemeless(glob);
  const auto t = parse_schemeless(target);
  if (!g || !t) {
    return false;
  }
  const auto [g_host, g_port] = split_host_port(g->host);
  const auto [t_host, t_port] = split_host_port(t->host);
  if (g_port != t_port) {
    return false;
  }
  const auto g_labels = split_labels(g_host);
  const auto t_labels = split_labels(t_host);
  if (g_labels.size() != t_labels.size()) {
    return false;
  }
  if (!std::string_view(t->path).starts_with(g->path)) {
    return false;
  }
  for (std::size_t i = 0; i < g_labels.size(); ++i) {
    if (!glob_match(g_labels[i], t_labels[i])) {
      return false;
    }
  }
  return true;
}

bool is_default_registry_match(std::string_view image) {
  const auto slash = image.find('/');
  const std::string_view first = image.substr(0, slash);
  if (first.empty()) {
    return false;
  }
  if (slash == std::string_view::npos) {
    return true;
  }
  if (first == "docker.io" || first == "index.docker.io") {
    return true;
  }
  return first.find_first_of(".:") == std::string_view::npos;
}

// --- filepath.Match ---

struct ChunkScan {
  bool star;
  std::string_view chunk;
  std::string_view rest;
};

ChunkScan scan_chunk(std::string_view pattern) {
  bool star = false;
  while (!pattern.empty() && pattern.front() == '*') {
    pattern.remove_prefix(1);
    star = true;
  }
  bool in_range = false;
  std::size_t i = 0;
  for (; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\') {
      if (i + 1 < pattern.size()) {
        ++i;
      }
    } else if (c == '[') {
      in_range = true;
    } else if (c == ']') {
      in_range = false;
    } else if (c == '*' && !in_range) {
      break;
    }
  }
  return {star, pattern.substr(0, i), pattern.substr(i)};
}

// One escaped-or-plain character of a class; nullopt for a malformed class.
std::optional<char> class_char(std::string_view& chunk) {
  if (chunk.empty() || chunk.front() == '-' || chunk.front() == ']') {
    return std::nullopt;
  }
  if (chunk.front() == '\\') {
    chunk.remove_prefix(1);
    if (chunk.empty()) {
      return std::nullopt;
    }
  }
  const char c = chunk.front();
  chunk.remove_prefix(1);
  if (chunk.empty()) {
    return std::nullopt;
  }
  return c;
}

enum class ChunkResult { kMatch, kNoMatch, kBadPattern };

// Matches `chunk` against the start of `s`; on kMatch, `rest` is what is left of `s`.
ChunkResult match_chunk(std::string_view chunk, std::string_view s, std::string_view& rest) {
  bool failed = false;
  while (!chunk.empty()) {
    if (!failed && s.empty()) {
      failed = true;
    }
    switch (chunk.front()) {
      case '[': {
        char r = 0;
        if (!failed) {
          r = s.front();
          s.remove_prefix(1);
        }
        chunk.remove_prefix(1);
        bool negated = false;
        if (!chunk.empty() && chunk.front() == '^') {
          negated = true;
          chunk.remove_prefix(1);
        }
        bool matched = false;
        int ranges = 0;
        while (true) {
          if (!chunk.empty() && chunk.front() == ']' && ranges > 0) {
            chunk.remove_prefix(1);
            break;
          }
          const auto lo = class_char(chunk);
          if (!lo) {
            return ChunkResult::kBadPattern;
          }
          char hi = *lo;
          if (chunk.front() == '-') {
            chunk.remove_prefix(1);
            const auto h = class_char(chunk);
            if (!h) {
              return ChunkResult::kBadPattern;
            }
            hi = *h;
          }
          if (*lo <= r && r <= hi) {
            matched = true;
          }
          ++ranges;
        }
        if (matched == negated) {
          failed = true;
        }
        break;
      }
      case '?':
        if (!failed) {
          if (s.front() == '/') {
            failed = true;
          }
          s.remove_prefix(1);
        }
        chunk.remove_prefix(1);
        break;
      case '\\':
        chunk.remove_prefix(1);
        if (chunk.empty()) {
          return ChunkResult::kBadPattern;
        }
        [[fallthrough]];
      default:
        if (!failed) {
          if (chunk.front() != s.front()) {
            failed = true;
          }
          s.remove_prefix(1);
        }
        chunk.remove_prefix(1);
        break;
    }
  }
  if (failed) {
    return ChunkResult::kNoMatch;
  }
  rest = s;
  return ChunkResult::kMatch;
}

// --- WWW-Authenticate lexing ---

bool is_tchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         (c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

bool is_token68_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         (c != '\0' && std::strchr("-._~+/", c) != nullptr);
}

class ChallengeLexer {
 public:
  explicit ChallengeLexer(std::string_view s) : s_(s) {}

  bool done() const { return pos_ >= s_.size(); }
  char peek() const { return done() ? '\0' : s_[pos_]; }
  std::size_t pos() const { return pos_; }
  void set_pos(std::size_t p) { pos_ = p; }
  void skip_ows() {
    while (!done() && (s_[pos_] == ' ' || s_[pos_] == '\t')) {
      ++pos_;
    }
  }
  void skip_ows_and_commas() {
    while (!done() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == ',')) {
      ++pos_;
    }
  }
  std::string_view token() {
    const std::size_t start = pos_;
    while (!done() && is_tchar(s_[pos_])) {
      ++pos_;
    }
    return s_.substr(start, pos_ - start);
  }
  // token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
  std::string_view token68() {
    const std::size_t start = pos_;
    while (!done() && is_token68_char(s_[pos_])) {
      ++pos_;
    }
    if (pos_ == start) {
      return {};
    }
    while (!done() && s_[pos_] == '=') {
      ++pos_;
    }
    return s_.substr(start, pos_ - start);
  }
  std::string quoted_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (done()) {
        fail("unterminated quoted string");
      }
      const char c = s_[pos_++];
      if (c == '"') {
        return out;
      }
      if (c == '\\') {
        if (done()) {
          fail("unterminated quoted string");
        }
        out += s_[pos_++];
      } else {
        out += c;
      }
    }
  }
  [[noreturn]] void fail(std::string_view what) const {
    throw_invalid(fmt::format("WWW-Authenticate: {} at byte {}", what, pos_));
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

// Go's url.QueryEscape: unreserved bytes kept, space as '+', the rest %XX.
std::string query_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

struct Rfc3339 {
  std::int64_t seconds;  // since the epoch
  std::int64_t nanos;
};

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) {
    return false;
  }
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return false;
    }
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

std::optional<Rfc3339> parse_rfc3339_parts(std::string_view t) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(t, 0, 4, year) || t.size() < 20 || t[4] != '-' || !digits(t, 5, 2, month) ||
      t[7] != '-' || !digits(t, 8, 2, day) || (t[10] != 'T' && t[10] != 't') ||
      !digits(t, 11, 2, hour) || t[13] != ':' || !digits(t, 14, 2, minute) || t[16] != ':' ||
      !digits(t, 17, 2, second)) {
    return std::nullopt;
  }
  using namespace std::chrono;
  const year_month_day ymd{std::chrono::year{year},
                           std::chrono::month{static_cast<unsigned>(month)},
                           std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok() || hour > 23 || minute > 59 || second > 59) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  std::int64_t nanos = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    std::int64_t scale = 100'000'000;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      nanos += (t[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) {
      return std::nullopt;
    }
  }
  std::int64_t offset = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    int oh = 0, om = 0;
    if (!digits(t, pos + 1, 2, oh) || pos + 3 >= t.size() || t[pos + 3] != ':' ||
        !digits(t, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = (std::int64_t{oh} * 3600 + std::int64_t{om} * 60) * (t[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != t.size()) {
    return std::nullopt;
  }
  const std::int64_t days = sys_days(ymd).time_since_epoch().count();
  return Rfc3339{
      days * 86400 + std::int64_t{hour} * 3600 + std::int64_t{minute} * 60 + second - offset,
      nanos};
}

// WallTime covers about 1678..2262 with nanosecond ticks; stay well inside.
constexpr std::int64_t kMinWallSeconds = -2'208'988'800;  // 1900-01-01
constexpr std::int64_t kMaxWallSeconds = 7'258'118'400;   // 2200-01-01

}  // namespace

// --- Credentials ---------------------------------------------------------------------------------

std::string redact(std::string_view secret) {
  return secret.empty() ? std::string() : std::string("<redacted>");
}

std::string redact_authorization(std::string_view value) {
  const auto space = value.find(' ');
  if (space == std::string_view::npos) {
    return redact(value);
  }
  return std::string(value.substr(0, space)) + " <redacted>";
}

std::string to_string(const Credentials& c) {
  const auto secret = [](const std::string& s) {
    return s.empty() ? std::string("<none>") : std::string("<redacted>");
  };
  return fmt::format("username=\"{}\" password={} identity_token={}", shown(c.username),
                     secret(c.password), secret(c.identity_token));
}

std::ostream& operator<<(std::ostream& os, const Credentials& c) {
  return os << to_string(c);
}

std::optional<std::string> base64_decode(std::string_view text) {
  const auto value = [](char c) -> int {
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
  };
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t symbols = 0;
  std::size_t padding = 0;
  for (char c : text) {
    if (c == '\r' || c == '\n') {
      continue;
    }
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding > 0) {
      return std::nullopt;  // data after padding
    }
    const int v = value(c);
    if (v < 0) {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    ++symbols;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  const std::size_t rem = symbols % 4;
  if (rem == 1) {
    return std::nullopt;
  }
  if (padding > 0 && (symbols + padding) % 4 != 0) {
    return std::nullopt;
  }
  if (padding > 2) {
    return std::nullopt;
  }
  return out;
}

std::string encode_auth_field(const Credentials& c) {
  return base64_encode(c.username + ":" + c.password);
}

std::string basic_authorization(const Credentials& c) {
  return "Basic " + encode_auth_field(c);
}

std::optional<Credentials> decode_auth_field(std::string_view auth) {
  const auto decoded = base64_decode(auth);
  if (!decoded) {
    throw_invalid("\"auth\" is not valid base64");
  }
  const auto colon = decoded->find(':');
  if (colon == std::string::npos) {
    return std::nullopt;
  }
  Credentials c;
  c.username = decoded->substr(0, colon);
  std::string_view password = std::string_view(*decoded).substr(colon + 1);
  while (!password.empty() && password.front() == '\0') {
    password.remove_prefix(1);
  }
  while (!password.empty() && password.back() == '\0') {
    password.remove_suffix(1);
  }
  c.password = std::string(password);
  return c;
}

// --- Locations -----------------------------------------------------------------------------------

AuthEnvironment AuthEnvironment::from_process() {
  const auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr ? std::string() : std::string(v);
  };
  AuthEnvironment e;
  e.registry_auth_file = env("REGISTRY_AUTH_FILE");
  e.docker_config = env("DOCKER_CONFIG");
  e.xdg_runtime_dir = env("XDG_RUNTIME_DIR");
  e.xdg_config_home = env("XDG_CONFIG_HOME");
  e.home = env("HOME");
  e.uid = static_cast<unsigned>(::getuid());
  return e;
}

namespace {

std::optional<AuthFileLocation> explicit_location(const AuthEnvironment& env,
                                                  std::string_view authfile) {
  if (!authfile.empty()) {
    return AuthFileLocation{fs::path(authfile), AuthFileFormat::kContainers};
  }
  if (!env.registry_auth_file.empty()) {
    return AuthFileLocation{fs::path(env.registry_auth_file), AuthFileFormat::kContainers};
  }
  if (!env.docker_config.empty()) {
    return AuthFileLocation{fs::path(env.docker_config) / "config.json", AuthFileFormat::kDocker};
  }
  return std::nullopt;
}

AuthFileLocation primary_location(const AuthEnvironment& env) {
  if (!env.xdg_runtime_dir.empty()) {
    return {fs::path(env.xdg_runtime_dir) / "containers" / "auth.json",
            AuthFileFormat::kContainers};
  }
  return {fs::path("/run/containers") / std::to_string(env.uid) / "auth.json",
          AuthFileFormat::kContainers};
}

}  // namespace

std::vector<AuthFileLocation> auth_read_locations(const AuthEnvironment& env,
                                                  std::string_view authfile) {
  if (auto only = explicit_location(env, authfile)) {
    return {*only};
  }
  std::vector<AuthFileLocation> out{primary_location(env)};
  if (!env.xdg_config_home.empty()) {
    out.push_back(
        {fs::path(env.xdg_config_home) / "containers" / "auth.json", AuthFileFormat::kContainers});
  } else if (!env.home.empty()) {
    out.push_back(
        {fs::path(env.home) / ".config" / "containers" / "auth.json", AuthFileFormat::kContainers});
  }
  if (!env.home.empty()) {
    out.push_back({fs::path(env.home) / ".docker" / "config.json", AuthFileFormat::kDocker});
    out.push_back({fs::path(env.home) / ".dockercfg", AuthFileFormat::kDockerCfgLegacy});
  }
  return out;
}

AuthFileLocation auth_write_location(const AuthEnvironment& env, std::string_view authfile) {
  if (auto only = explicit_location(env, authfile)) {
    return *only;
  }
  return primary_location(env);
}

void check_runtime_dir(const AuthEnvironment& env) {
  if (env.xdg_runtime_dir.empty()) {
    return;
  }
  std::error_code ec;
  if (!fs::exists(env.xdg_runtime_dir, ec)) {
    throw Error(Code::kNotFound,
                fmt::format("\"{}\" directory set by $XDG_RUNTIME_DIR does not exist. Either "
                            "create the directory or unset $XDG_RUNTIME_DIR.",
                            shown(env.xdg_runtime_dir)));
  }
}

bool validate_auth_key(std::string_view key) {
  if (key.starts_with("http://") || key.starts_with("https://")) {
    throw_invalid(fmt::format("key {} contains http[s]:// prefix", shown(key)));
  }
  if (key.find('@') != std::string_view::npos) {
    throw_invalid(fmt::format("key {} contains a '@' character", shown(key)));
  }
  const auto slash = key.find('/');
  if (slash != std::string_view::npos && key.find(':', slash + 1) != std::string_view::npos) {
    throw_invalid(fmt::format("key {} contains a ':' character after host[:port]", shown(key)));
  }
  return slash != std::string_view::npos;
}

// --- AuthFile ------------------------------------------------------------------------------------

AuthFile::AuthFile(AuthFileFormat format) : doc_(json::object()), format_(format) {
  doc_["auths"] = json::object();
}

AuthFile AuthFile::parse(std::string_view text, AuthFileFormat format, std::string_view source) {
  const std::string where = fmt::format("auth file \"{}\"", shown(source));
  json doc = parse_json(text, where, kMaxAuthFileBytes);
  if (!doc.is_object()) {
    bad(where, "must be a JSON object");
  }
  AuthFile file(format);
  if (format == AuthFileFormat::kDockerCfgLegacy) {
    file.doc_["auths"] = std::move(doc);
  } else {
    if (doc.contains("auths") && doc["auths"].is_null()) {
      doc["auths"] = json::object();
    }
    if (!doc.contains("auths")) {
      doc["auths"] = json::object();
    }
    if (!doc["auths"].is_object()) {
      bad(where, "\"auths\" must be an object");
    }
    file.doc_ = std::move(doc);
  }
  for (const auto& [key, entry] : file.doc_["auths"].items()) {
    check_entry(entry, key, where);
  }
  if (const json* helpers = member(file.doc_, "credHelpers")) {
    if (!helpers->is_object()) {
      bad(where, "\"credHelpers\" must be an object");
    }
    for (const auto& [registry, helper] : helpers->items()) {
      if (!helper.is_string()) {
        bad(where,
            fmt::format("\"credHelpers\" value of \"{}\" must be a string", shown(registry)));
      }
    }
  }
  if (const json* store = member(file.doc_, "credsStore");
      store != nullptr && !store->is_string()) {
    bad(where, "\"credsStore\" must be a string");
  }
  return file;
}

std::string AuthFile::serialize() const {
  try {
    if (format_ == AuthFileFormat::kDockerCfgLegacy) {
      return doc_["auths"].dump(1, '\t');
    }
    return doc_.dump(1, '\t');
  } catch (const json::exception&) {
    throw_invalid("auth file: a key or value is not valid UTF-8");
  }
}

std::vector<std::string> AuthFile::keys() const {
  std::vector<std::string> out;
  for (const auto& [key, entry] : doc_["auths"].items()) {
    out.push_back(key);
  }
  return out;
}

std::optional<Credentials> AuthFile::get(std::string_view key) const {
  const json& auths = doc_["auths"];
  const auto it = auths.find(key);
  if (it == auths.end()) {
    return std::nullopt;
  }
  const json& entry = *it;
  if (!entry.is_object()) {
    return Credentials{};
  }
  Credentials c;
  const std::string auth = string_member(entry, "auth");
  if (!auth.empty()) {
    std::optional<Credentials> decoded;
    try {
      decoded = decode_auth_field(auth);
    } catch (const Error& e) {
      throw e.wrap(fmt::format("auth file entry \"{}\"", shown(key)));
    }
    if (decoded) {
      c = std::move(*decoded);
    }
  } else {
    c.username = string_member(entry, "username");
    c.password = string_member(entry, "password");
  }
  c.identity_token = string_member(entry, "identitytoken");
  return c;
}

void AuthFile::set(std::string_view key_in, const Credentials& credentials) {
  validate_auth_key(key_in);
  std::string key(key_in);
  if (format_ == AuthFileFormat::kDocker && is_docker_hub_key(key)) {
    key = kDockerHubAuthKey;
  }
  json& auths = doc_["auths"];
  json& entry = auths[key];
  if (!entry.is_object()) {
    entry = json::object();
  }
  for (const char* field : {"auth", "username", "password", "identitytoken", "registrytoken"}) {
    entry.erase(field);
  }
  entry["auth"] = encode_auth_field(credentials);
  if (!credentials.identity_token.empty()) {
    entry["identitytoken"] = credentials.identity_token;
  }
}

bool AuthFile::remove(std::string_view key) {
  json& auths = doc_["auths"];
  std::vector<std::string> candidates{std::string(key), normalize_registry(key)};
  if (is_docker_hub_key(key)) {
    candidates.emplace_back(kDockerHubAuthKey);
  }
  for (const auto& k : candidates) {
    if (auths.erase(k) > 0) {
      return true;
    }
  }
  return false;
}

std::optional<std::string> AuthFile::credential_helper(std::string_view registry) const {
  const json* helpers = member(doc_, "credHelpers");
  if (helpers == nullptr) {
    return std::nullopt;
  }
  const auto it = helpers->find(registry);
  if (it == helpers->end() || !it->is_string()) {
    return std::nullopt;
  }
  return it->get<std::string>();
}

std::string AuthFile::creds_store() const {
  return string_member(doc_, "credsStore");
}

std::optional<AuthMatch> AuthFile::find_keys(std::string_view registry,
                                             const std::vector<std::string>& keys) const {
  if (format_ != AuthFileFormat::kDockerCfgLegacy) {
    if (auto helper = credential_helper(registry)) {
      return AuthMatch{{}, {}, std::move(*helper), {}};
    }
  }
  const json& auths = doc_["auths"];
  for (const auto& key : keys) {
    if (auths.contains(key)) {
      return AuthMatch{key, *get(key), {}, {}};
    }
  }
  const bool legacy = format_ == AuthFileFormat::kDockerCfgLegacy;
  const std::string wanted = normalize_registry(registry);
  for (const auto& [key, entry] : auths.items()) {
    if (normalize_auth_key(key, legacy) == wanted) {
      return AuthMatch{key, *get(key), {}, {}};
    }
  }
  return std::nullopt;
}

std::optional<AuthMatch> AuthFile::find(const Reference& image) const {
  const std::string registry = image.domain.empty() ? std::string(kDefaultDomain) : image.domain;
  if (format_ == AuthFileFormat::kDockerCfgLegacy) {
    return find_keys(registry, {registry});
  }
  Reference named = image;
  named.domain = registry;
  return find_keys(registry, keys_most_specific_first(named.name()));
}

std::optional<AuthMatch> AuthFile::find_registry(std::string_view registry) const {
  return find_keys(registry, {std::string(registry)});
}

std::optional<AuthFile> load_auth_file(const AuthFileLocation& location) {
  const auto text = read_file(location.path);
  if (!text) {
    return std::nullopt;
  }
  return AuthFile::parse(*text, location.format, location.path.string());
}

void save_auth_file(const AuthFileLocation& location, const AuthFile& file) {
  const fs::path dir = location.path.parent_path();
  if (!dir.empty()) {
    std::vector<fs::path> missing;
    for (fs::path p = dir; !p.empty() && !fs::exists(p); p = p.parent_path()) {
      missing.push_back(p);
      if (p == p.parent_path()) {
        break;
      }
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      if (::mkdir(it->c_str(), 0700) != 0 && errno != EEXIST) {
        throw_errno(errno, "creating directory", *it);
      }
    }
  }
  atomic_write_file(location.path, file.serialize(), 0600);
}

std::optional<AuthMatch> find_credentials(const std::vector<AuthFileLocation>& locations,
                                          const Reference& image) {
  for (const auto& location : locations) {
    const auto file = load_auth_file(location);
    if (!file) {
      continue;
    }
    auto match = file->find(image);
    if (match && (!match->helper.empty() || !match->credentials.empty())) {
      match->file = location.path;
      return match;
    }
  }
  return std::nullopt;
}

// --- Kubernetes keyring --------------------------------------------------------------------------

bool glob_match(std::string_view pattern, std::string_view name) {
  while (!pattern.empty()) {
    const ChunkScan scan = scan_chunk(pattern);
    pattern = scan.rest;
    if (scan.star && scan.chunk.empty()) {
      return name.find('/') == std::string_view::npos;
    }
    std::string_view rest;
    const ChunkResult r = match_chunk(scan.chunk, name, rest);
    if (r == ChunkResult::kMatch && (rest.empty() || !pattern.empty())) {
      name = rest;
      continue;
    }
    if (r == ChunkResult::kBadPattern) {
      return false;
    }
    bool advanced = false;
    if (scan.star) {
      for (std::size_t i = 0; i < name.size() && name[i] != '/'; ++i) {
        const ChunkResult r2 = match_chunk(scan.chunk, name.substr(i + 1), rest);
        if (r2 == ChunkResult::kMatch) {
          if (pattern.empty() && !rest.empty()) {
            continue;
          }
          name = rest;
          advanced = true;
          break;
        }
        if (r2 == ChunkResult::kBadPattern) {
          return false;
        }
      }
    }
    if (advanced) {
      continue;
    }
    return false;
  }
  return name.empty();
}

bool DockerKeyring::add(std::string_view location, const Credentials& credentials) {
  std::string_view value = location;
  if (value.starts_with("https://")) {
    value.remove_prefix(8);
  } else if (value.starts_with("http://")) {
    value.remove_prefix(7);
  }
  const auto parsed = parse_schemeless(value);
  if (!parsed) {
    return false;
  }
  std::string_view path = parsed->path;
  if (path.starts_with("/v2/") || path.starts_with("/v1/")) {
    path.remove_prefix(3);
  }
  const std::string key =
      (!path.empty() && path != "/") ? parsed->host + std::string(path) : parsed->host;
  auto& list = creds_[key];
  if (list.empty()) {
    index_.push_back(key);
    std::sort(index_.begin(), index_.end(), std::greater<>());
  }
  list.push_back(credentials);
  return true;
}

void DockerKeyring::add_entries(const json& auths, std::string_view source) {
  if (!auths.is_object()) {
    bad(source, "\"auths\" must be an object");
  }
  std::vector<std::pair<std::string, Credentials>> entries;
  for (const auto& [location, entry] : auths.items()) {
    check_entry(entry, location, source);
    Credentials c;
    c.username = string_member(entry, "username");
    c.password = string_member(entry, "password");
    const std::string auth = string_member(entry, "auth");
    if (!auth.empty()) {
      const auto decoded = base64_decode(auth);
      const auto colon = decoded ? decoded->find(':') : std::string::npos;
      if (colon == std::string::npos) {
        bad(source, fmt::format("entry \"{}\": unable to parse auth field, must be formatted as "
                                "base64(username:password)",
                                shown(location)));
      }
      c.username = decoded->substr(0, colon);
      c.password = decoded->substr(colon + 1);
    }
    c.identity_token = string_member(entry, "identitytoken");
    entries.emplace_back(location, std::move(c));
  }
  for (const auto& [location, c] : entries) {
    add(location, c);
  }
}

void DockerKeyring::add_dockerconfigjson(std::string_view payload) {
  constexpr std::string_view where = ".dockerconfigjson";
  const json doc = parse_json(payload, where, kMaxAuthFileBytes);
  if (!doc.is_object()) {
    bad(where, "must be a JSON object");
  }
  const json* auths = member(doc, "auths");
  if (auths == nullptr) {
    return;
  }
  add_entries(*auths, where);
}

void DockerKeyring::add_dockercfg(std::string_view payload) {
  constexpr std::string_view where = ".dockercfg";
  const json doc = parse_json(payload, where, kMaxAuthFileBytes);
  if (!doc.is_object()) {
    bad(where, "must be a JSON object");
  }
  add_entries(doc, where);
}

std::vector<KeyringMatch> DockerKeyring::lookup(std::string_view image) const {
  std::vector<KeyringMatch> out;
  for (const auto& key : index_) {
    if (!urls_match(key, image)) {
      continue;
    }
    for (const auto& c : creds_.at(key)) {
      out.push_back({key, c});
    }
  }
  if (out.empty() && is_default_registry_match(image)) {
    if (const auto it = creds_.find(std::string(kDefaultRegistryHost)); it != creds_.end()) {
      for (const auto& c : it->second) {
        out.push_back({it->first, c});
      }
    }
  }
  return out;
}

// --- WWW-Authenticate ----------------------------------------------------------------------------

std::string Challenge::param(std::string_view name) const {
  const auto it = params.find(lower(name));
  return it == params.end() ? std::string() : it->second;
}

std::vector<std::string> Challenge::scopes() const {
  std::vector<std::string> out;
  const std::string scope = param("scope");
  std::size_t start = 0;
  while (start < scope.size()) {
    const auto space = scope.find(' ', start);
    const std::string part = scope.substr(start, space - start);
    if (!part.empty()) {
      out.push_back(part);
    }
    if (space == std::string::npos) {
      break;
    }
    start = space + 1;
  }
  return out;
}

std::vector<Challenge> parse_www_authenticate(std::string_view header) {
  std::vector<Challenge> out;
  ChallengeLexer lex(header);
  while (true) {
    lex.skip_ows_and_commas();
    if (lex.done()) {
      break;
    }
    const std::string_view scheme = lex.token();
    if (scheme.empty()) {
      lex.fail("expected an authentication scheme");
    }
    Challenge c;
    c.scheme = lower(scheme);
    if (lex.done() || lex.peek() == ',') {
      out.push_back(std::move(c));
      continue;
    }
    if (lex.peek() != ' ' && lex.peek() != '\t') {
      lex.fail("expected a space after the scheme");
    }
    lex.skip_ows();
    if (lex.done() || lex.peek() == ',') {
      out.push_back(std::move(c));
      continue;
    }
    // token68 when it stands alone (followed by the end or a comma).
    const std::size_t start = lex.pos();
    const std::string_view t68 = lex.token68();
    lex.skip_ows();
    if (!t68.empty() && (lex.done() || lex.peek() == ',')) {
      c.token68 = std::string(t68);
      out.push_back(std::move(c));
      continue;
    }
    lex.set_pos(start);
    // auth-param list: name BWS "=" BWS (token / quoted-string), comma-separated.
    while (true) {
      const std::string_view name = lex.token();
      if (name.empty()) {
        lex.fail("expected a parameter name");
      }
      lex.skip_ows();
      if (lex.peek() != '=') {
        lex.fail("expected '=' after a parameter name");
      }
      lex.set_pos(lex.pos() + 1);
      lex.skip_ows();
      std::string value;
      if (lex.peek() == '"') {
        value = lex.quoted_string();
      } else {
        value = std::string(lex.token());
      }
      c.params.emplace(lower(name), std::move(value));
      lex.skip_ows();
      if (lex.done()) {
        break;
      }
      if (lex.peek() != ',') {
        lex.fail("expected ',' between parameters");
      }
      lex.skip_ows_and_commas();
      if (lex.done()) {
        break;
      }
      // Another parameter (name followed by '='), or the next challenge's scheme.
      const std::size_t here = lex.pos();
      const std::string_view next = lex.token();
      lex.skip_ows();
      const bool is_param = !next.empty() && lex.peek() == '=';
      lex.set_pos(here);
      if (!is_param) {
        break;
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<Challenge> parse_www_authenticate(const std::vector<std::string>& headers) {
  std::vector<Challenge> out;
  for (const auto& h : headers) {
    auto part = parse_www_authenticate(std::string_view(h));
    out.insert(out.end(), std::make_move_iterator(part.begin()),
               std::make_move_iterator(part.end()));
  }
  return out;
}

const Challenge* find_challenge(const std::vector<Challenge>& challenges, std::string_view scheme) {
  for (const auto& c : challenges) {
    if (iequals(c.scheme, scheme)) {
      return &c;
    }
  }
  return nullptr;
}

// --- Tokens --------------------------------------------------------------------------------------

std::string repository_scope(std::string_view repository, const std::vector<std::string>& actions) {
  return fmt::format("repository:{}:{}", repository, fmt::join(actions, ","));
}

TokenRequest token_request_from(const Challenge& bearer,
                                const std::vector<std::string>& extra_scopes) {
  TokenRequest r;
  r.realm = bearer.param("realm");
  r.service = bearer.param("service");
  r.scopes = bearer.scopes();
  for (const auto& s : extra_scopes) {
    if (!s.empty() && std::find(r.scopes.begin(), r.scopes.end(), s) == r.scopes.end()) {
      r.scopes.push_back(s);
    }
  }
  return r;
}

std::string build_token_url(const TokenRequest& request) {
  std::string_view realm = request.realm;
  realm = realm.substr(0, realm.find('#'));
  std::size_t scheme_len = 0;
  if (realm.size() >= 8 && iequals(realm.substr(0, 8), "https://")) {
    scheme_len = 8;
  } else if (realm.size() >= 7 && iequals(realm.substr(0, 7), "http://")) {
    scheme_len = 7;
  }
  if (scheme_len == 0 || realm.size() == scheme_len ||
      std::strchr("/?#", realm[scheme_len]) != nullptr ||
      std::any_of(realm.begin(), realm.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) == 0x7f;
      })) {
    throw_invalid(fmt::format("token realm \"{}\" is not an http(s) URL", shown(request.realm)));
  }
  std::vector<std::string> params;
  if (!request.service.empty()) {
    params.push_back("service=" + query_escape(request.service));
  }
  for (const auto& s : request.scopes) {
    if (!s.empty()) {
      params.push_back("scope=" + query_escape(s));
    }
  }
  if (!request.account.empty()) {
    params.push_back("account=" + query_escape(request.account));
  }
  if (request.offline_token) {
    params.emplace_back("offline_token=true");
  }
  if (!request.client_id.empty()) {
    params.push_back("client_id=" + query_escape(request.client_id));
  }
  std::string url(realm);
  if (params.empty()) {
    return url;
  }
  if (url.find('?') == std::string::npos) {
    url += '?';
  } else if (url.back() != '?' && url.back() != '&') {
    url += '&';
  }
  url += fmt::format("{}", fmt::join(params, "&"));
  return url;
}

std::optional<Clock::WallTime> parse_rfc3339(std::string_view text) {
  const auto parts = parse_rfc3339_parts(text);
  if (!parts || parts->seconds < kMinWallSeconds || parts->seconds > kMaxWallSeconds) {
    return std::nullopt;
  }
  return Clock::WallTime(std::chrono::duration_cast<Clock::WallTime::duration>(
      std::chrono::seconds(parts->seconds) + std::chrono::nanoseconds(parts->nanos)));
}

TokenResponse parse_token_response(std::string_view body) {
  constexpr std::string_view where = "token response";
  const json doc = parse_json(body, where, kMaxTokenResponseBytes);
  if (!doc.is_object()) {
    bad(where, "must be a JSON object");
  }
  const auto str = [&](const char* key) {
    const json* v = member(doc, key);
    if (v == nullptr) {
      return std::string();
    }
    if (!v->is_string()) {
      bad(where, fmt::format("\"{}\" must be a string", key));
    }
    return v->get<std::string>();
  };
  TokenResponse r;
  r.token = str("token");
  const std::string access_token = str("access_token");
  if (r.token.empty()) {
    r.token = access_token;
  }
  if (r.token.empty()) {
    bad(where, "neither \"token\" nor \"access_token\" is set");
  }
  r.refresh_token = str("refresh_token");
  if (const json* e = member(doc, "expires_in")) {
    std::int64_t seconds = 0;
    if (e->is_number_unsigned()) {
      const auto u = e->get<std::uint64_t>();
      seconds = u > static_cast<std::uint64_t>(kMaxTokenLifetime.count())
                    ? kMaxTokenLifetime.count()
                    : static_cast<std::int64_t>(u);
    } else if (e->is_number_integer()) {
      seconds = e->get<std::int64_t>();
    } else {
      bad(where, "\"expires_in\" must be an integer");
    }
    r.expires_in = std::clamp(std::chrono::seconds(seconds), kMinTokenLifetime, kMaxTokenLifetime);
  }
  const std::string issued = str("issued_at");
  if (!issued.empty()) {
    const auto parts = parse_rfc3339_parts(issued);
    if (!parts) {
      bad(where, "\"issued_at\" is not an RFC 3339 time");
    }
    // Out-of-range times (Go's zero time 0001-01-01 from servers that leave it unset) count as
    // absent.
    r.issued_at = parse_rfc3339(issued);
  }
  return r;
}

Clock::TimePoint token_expiry(const TokenResponse& response, const Clock& clock) {
  const auto lifetime = std::clamp(response.expires_in, kMinTokenLifetime, kMaxTokenLifetime);
  const Clock::WallTime wall_now = clock.wall_now();
  Clock::WallTime start = response.issued_at.value_or(wall_now);
  if (start > wall_now) {
    start = wall_now;
  }
  auto remaining = std::chrono::duration_cast<Clock::Duration>(start + lifetime - wall_now);
  if (remaining < Clock::Duration::zero()) {
    remaining = Clock::Duration::zero();
  }
  return clock.now() + remaining;
}

TokenKey token_key(const TokenRequest& request) {
  return TokenKey{request.realm, request.service, fmt::format("{}", fmt::join(request.scopes, " ")),
                  request.account};
}

TokenCache::TokenCache(const Clock& clock, Clock::Duration leeway)
    : clock_(clock), leeway_(leeway) {}

std::optional<std::string> TokenCache::get(const TokenKey& key) {
  const auto now = clock_.now();
  std::lock_guard lock(mu_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) {
    return std::nullopt;
  }
  if (now + leeway_ >= it->second.expiry) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second.token;
}

void TokenCache::put(const TokenKey& key, const TokenResponse& response) {
  put(key, response.token, token_expiry(response, clock_));
}

void TokenCache::put(const TokenKey& key, std::string token, Clock::TimePoint expiry) {
  const auto now = clock_.now();
  std::lock_guard lock(mu_);
  drop_expired_locked(now);
  entries_.insert_or_assign(key, Entry{std::move(token), expiry});
}

void TokenCache::erase(const TokenKey& key) {
  std::lock_guard lock(mu_);
  entries_.erase(key);
}

void TokenCache::clear() {
  std::lock_guard lock(mu_);
  entries_.clear();
}

std::size_t TokenCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void TokenCache::drop_expired_locked(Clock::TimePoint now) {
  std::erase_if(entries_, [&](const auto& kv) { return now + leeway_ >= kv.second.expiry; });
}

}  // namespace stowage::oci
