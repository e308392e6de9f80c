#include "registries/conf.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"
#include "base/files.h"
#include "reference/reference.h"

namespace stowage::registries {
namespace {

[[noreturn]] void invalid(std::string message) {
  throw Error(Code::kInvalidArgument, std::move(message));
}

// Go's %q for the strings we meet here (printable ASCII and UTF-8 pass through).
std::string go_quote(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          out += fmt::format("\\x{:02x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// ---- TOML decoding -------------------------------------------------------------------------

// The Go type (%T) BurntSushi/toml decodes a TOML value into, as its type errors name it. Arrays
// and tables print differently across BurntSushi versions ("[]interface {}", later "[]any").
std::string toml_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "int64";
    case toml::node_type::floating_point: return "float64";
    case toml::node_type::boolean: return "bool";
    case toml::node_type::array: return "array";
    case toml::node_type::table: return "table";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time: return "time.Time";
    default: return "unknown";
  }
}

[[noreturn]] void type_error(const toml::node& n, std::string_view key, std::string_view want) {
  invalid(fmt::format(
      "toml: line {} (last key \"{}\"): incompatible types: TOML value has type {}; destination "
      "has type {}",
      n.source().begin.line, key, toml_type_name(n), want));
}

bool get_bool(const toml::node& n, std::string_view key) {
  if (const auto* b = n.as_boolean()) return b->get();
  type_error(n, key, "boolean");
}

std::string get_string(const toml::node& n, std::string_view key) {
  if (const auto* s = n.as_string()) return s->get();
  type_error(n, key, "string");
}

std::vector<std::string> get_string_array(const toml::node& n, std::string_view key) {
  const auto* arr = n.as_array();
  if (arr == nullptr) type_error(n, key, "slice");
  std::vector<std::string> out;
  for (const auto& e : *arr) out.push_back(get_string(e, key));
  return out;
}

Mirror decode_mirror(const toml::table& t, std::vector<std::string>& unknown) {
  Mirror m;
  for (const auto& [k, v] : t) {
    const std::string_view key = k.str();
    if (key == "location") {
      m.location = get_string(v, "registry.mirror.location");
    } else if (key == "insecure") {
      m.insecure = get_bool(v, "registry.mirror.insecure");
    } else if (key == "pull-from-mirror") {
      m.pull_from_mirror = get_string(v, "registry.mirror.pull-from-mirror");
    } else {
      unknown.push_back("registry.mirror." + std::string(key));
    }
  }
  return m;
}

Registry decode_registry(const toml::table& t, std::vector<std::string>& unknown) {
  Registry r;
  for (const auto& [k, v] : t) {
    const std::string_view key = k.str();
    if (key == "prefix") {
      r.prefix = get_string(v, "registry.prefix");
    } else if (key == "location") {
      r.location = get_string(v, "registry.location");
    } else if (key == "insecure") {
      r.insecure = get_bool(v, "registry.insecure");
    } else if (key == "blocked") {
      r.blocked = get_bool(v, "registry.blocked");
    } else if (key == "mirror-by-digest-only") {
      r.mirror_by_digest_only = get_bool(v, "registry.mirror-by-digest-only");
    } else if (key == "pull-from-mirror") {
      r.pull_from_mirror = get_string(v, "registry.pull-from-mirror");
    } else if (key == "mirror") {
      const auto* arr = v.as_array();
      if (arr == nullptr) type_error(v, "registry.mirror", "slice");
      for (const auto& e : *arr) {
        const auto* mt = e.as_table();
        if (mt == nullptr) type_error(e, "registry.mirror", "struct");
        r.mirrors.push_back(decode_mirror(*mt, unknown));
      }
    } else {
      unknown.push_back("registry." + std::string(key));
    }
  }
  return r;
}

void decode_v1(const toml::table& t, V1Config& v1, std::vector<std::string>& unknown) {
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    std::optional<std::vector<std::string>>* slot = nullptr;
    if (key == "search") slot = &v1.search;
    if (key == "insecure") slot = &v1.insecure;
    if (key == "block") slot = &v1.block;
    const auto* sub = v.as_table();
    if (slot == nullptr || sub == nullptr) {
      unknown.push_back("registries." + key);
      continue;
    }
    for (const auto& [sk, sv] : *sub) {
      if (sk.str() == "registries") {
        *slot = get_string_array(sv, "registries." + key + ".registries");
      } else {
        unknown.push_back("registries." + key + "." + std::string(sk.str()));
      }
    }
  }
}

// ---- validation helpers --------------------------------------------------------------------

std::string trim_trailing_slashes(std::string_view s) {
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return std::string(s);
}

// containers/image parseLocation: trims trailing '/', refuses URI schemes.
std::string parse_location(std::string_view input) {
  std::string trimmed = trim_trailing_slashes(input);
  if (trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
    invalid(fmt::format("invalid location '{}': URI schemes are not supported", input));
  }
  return trimmed;
}

// distribution/reference's DomainRegexp, anchored: components of [a-zA-Z0-9] with inner '-',
// joined by '.', then an optional ":<digits>".
bool is_domain(std::string_view s) {
  std::string_view host = s;
  if (const auto colon = s.find(':'); colon != std::string_view::npos) {
    const std::string_view port = s.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != std::string_view::npos) {
      return false;
    }
    host = s.substr(0, colon);
  }
  if (host.empty()) return false;
  size_t start = 0;
  while (start <= host.size()) {
    const size_t dot = std::min(host.find('.', start), host.size());
    const std::string_view comp = host.substr(start, dot - start);
    if (comp.empty() || comp.front() == '-' || comp.back() == '-') return false;
    for (const char c : comp) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    start = dot + 1;
  }
  return true;
}

bool is_wildcard(std::string_view prefix) {
  return prefix.starts_with("*.");
}

// Stricter than podman 4.3 (reference §4, §18): a tag or digest in a prefix or location never
// works, and '*' is meaningful only as the leading "*." of a prefix.
void check_strict_location(std::string_view what, std::string_view value) {
  if (value.find('*') != std::string_view::npos) {
    invalid(fmt::format("invalid {} '{}': wildcards are only allowed as a leading \"*.\" in prefix",
                        what, value));
  }
  const auto slash = value.find('/');
  const bool has_tag =
      slash != std::string_view::npos && value.find(':', slash) != std::string_view::npos;
  if (value.find('@') != std::string_view::npos || has_tag) {
    invalid(fmt::format("invalid {} '{}': a tag or digest is not allowed (it never matches)", what,
                        value));
  }
}

std::string reason_of(const Error& e) {
  // libs/reference says `invalid reference "<input>": <reason>`; containers/image prints the
  // distribution reason alone.
  const std::string msg = e.what();
  constexpr std::string_view kHead = "invalid reference \"";
  if (msg.starts_with(kHead)) {
    if (const auto end = msg.find("\": ", kHead.size()); end != std::string::npos) {
      return msg.substr(end + 3);
    }
  }
  return msg;
}

bool domain_like(std::string_view domain) {
  return domain.find_first_of(".:") != std::string_view::npos || domain == "localhost";
}

// containers/image validateShortName / parseShortNameValue; returns the error text or "".
std::string short_name_problem(const std::string& name) {
  Reference ref;
  try {
    ref = Reference::parse(name);
  } catch (const Error& e) {
    return fmt::format("cannot parse short name: {}: {}", go_quote(name), reason_of(e));
  }
  if (ref.digest)
    return fmt::format("invalid short name {}: must not contain digest", go_quote(name));
  if (ref.tag) return fmt::format("invalid short name {}: must not contain tag", go_quote(name));
  if (domain_like(ref.domain)) {
    return fmt::format("invalid short name {}: must not contain registry", go_quote(name));
  }
  return {};
}

std::string alias_value_problem(const std::string& value) {
  Reference ref;
  try {
    ref = Reference::parse(value);
  } catch (const Error& e) {
    return fmt::format("parsing alias {}: {}", go_quote(value), reason_of(e));
  }
  if (ref.digest) return fmt::format("invalid alias {}: must not contain digest", go_quote(value));
  if (ref.tag) return fmt::format("invalid alias {}: must not contain tag", go_quote(value));
  if (!domain_like(ref.domain)) {
    return fmt::format("invalid alias {}: must contain registry and repository", go_quote(value));
  }
  return {};
}

void validate_aliases(const std::map<std::string, std::string>& aliases) {
  std::vector<std::string> errs;
  for (const auto& [name, value] : aliases) {
    if (auto p = short_name_problem(name); !p.empty()) errs.push_back(std::move(p));
    if (value.empty()) continue;  // erases an earlier alias
    if (auto p = alias_value_problem(value); !p.empty()) errs.push_back(std::move(p));
  }
  if (errs.empty()) return;
  // Go wraps each further error around the earlier ones: "eN\n: ... e1".
  std::string msg = errs[0];
  for (size_t i = 1; i < errs.size(); ++i) msg = errs[i] + "\n: " + msg;
  invalid("validating short-name aliases: " + msg);
}

Config convert_v1(const V1Config& v1) {
  Config out;
  std::vector<std::string> order;
  std::map<std::string, Registry> by_location;
  auto get = [&](const std::string& raw) -> Registry& {
    const std::string loc = parse_location(raw);
    auto it = by_location.find(loc);
    if (it == by_location.end()) {
      Registry r;
      r.prefix = r.location = loc;
      it = by_location.emplace(loc, r).first;
      order.push_back(loc);
    }
    return it->second;
  };
  if (v1.block) {
    for (const auto& b : *v1.block) get(b).blocked = true;
  }
  if (v1.insecure) {
    for (const auto& i : *v1.insecure) get(i).insecure = true;
  }
  for (const auto& loc : order) out.registries.push_back(by_location[loc]);
  if (v1.search) out.unqualified_search_registries = *v1.search;
  return out;
}

}  // namespace

bool V1Config::nonempty() const {
  return (search && !search->empty()) || (insecure && !insecure->empty()) ||
         (block && !block->empty());
}

ParsedFile parse_toml(std::string_view text, std::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    invalid(fmt::format("toml: line {}: {}", e.source().begin.line, e.description()));
  }
  ParsedFile out;
  Config& c = out.v2;
  for (const auto& [k, v] : root) {
    const std::string key(k.str());
    if (key == "unqualified-search-registries") {
      c.unqualified_search_registries = get_string_array(v, key);
      out.v2_present = true;
      out.v2_nonempty |= !c.unqualified_search_registries->empty();
    } else if (key == "credential-helpers") {
      c.credential_helpers = get_string_array(v, key);
      out.v2_present = true;
    } else if (key == "short-name-mode") {
      c.short_name_mode = get_string(v, key);
      out.v2_present = true;
    } else if (key == "additional-layer-store-auth-helper") {
      c.additional_layer_store_auth_helper = get_string(v, key);
      out.v2_present = true;
    } else if (key == "registry") {
      const auto* arr = v.as_array();
      if (arr == nullptr) type_error(v, key, "slice");
      for (const auto& e : *arr) {
        const auto* t = e.as_table();
        if (t == nullptr) type_error(e, key, "struct");
        c.registries.push_back(decode_registry(*t, out.unknown_keys));
      }
      out.v2_present = true;
      out.v2_nonempty |= !c.registries.empty();
    } else if (key == "aliases") {
      const auto* t = v.as_table();
      if (t == nullptr) type_error(v, key, "map");
      for (const auto& [ak, av] : *t) {
        c.aliases[std::string(ak.str())] = get_string(av, "aliases." + std::string(ak.str()));
      }
      out.v2_present = true;
    } else if (key == "registries") {
      const auto* t = v.as_table();
      if (t == nullptr) type_error(v, key, "struct");
      decode_v1(*t, out.v1, out.unknown_keys);
    } else {
      out.unknown_keys.push_back(key);
    }
  }
  return out;
}

Config validate(ParsedFile file, FileRole role, std::vector<std::string>* warnings) {
  auto warn = [&](std::string w) {
    if (warnings != nullptr) warnings->push_back(std::move(w));
  };
  for (const auto& k : file.unknown_keys) warn(fmt::format("unknown key \"{}\" ignored", k));

  Config config = std::move(file.v2);
  if (file.v1.present()) {
    if (role == FileRole::kDropIn) invalid("registry must be in v2 format but is in v1");
    // Podman 4.3 only refuses mixing when both sides have entries; newer versions count an empty
    // array as set. We refuse the union.
    if (file.v2_present) invalid("mixing sysregistry v1/v2 is not supported");
    warn(
        "the v1 format ([registries.search], [registries.insecure], [registries.block]) is "
        "refused by containers/image v5.40 and later (Podman 6): registries.conf must be in v2 "
        "format but is in v1");
    config = convert_v1(file.v1);
  }

  std::map<std::string, std::vector<const Registry*>> by_key;
  for (auto& reg : config.registries) {
    reg.location = parse_location(reg.location);
    if (reg.prefix.empty()) {
      if (reg.location.empty()) invalid("invalid condition: both location and prefix are unset");
      reg.prefix = reg.location;
    } else {
      reg.prefix = parse_location(reg.prefix);
      if (is_wildcard(reg.prefix) && reg.prefix.find_first_of("/@:") != std::string::npos) {
        invalid(fmt::format(
            "Wildcarded prefix should be in the format: *.example.com. Current prefix {} is "
            "incorrectly formatted",
            go_quote(reg.prefix)));
      }
      if (!is_wildcard(reg.prefix) && reg.location.empty()) {
        invalid(
            "invalid condition: location is unset and prefix is not in the format: "
            "*.example.com");
      }
    }
    // Stricter rules (newer containers/image semantics; podman 4.3 accepts these).
    if (reg.prefix.find('*', is_wildcard(reg.prefix) ? 1 : 0) != std::string::npos) {
      invalid(fmt::format(
          "Wildcarded prefix should be in the format: *.example.com. Current prefix {} is "
          "incorrectly formatted",
          go_quote(reg.prefix)));
    }
    if (!is_wildcard(reg.prefix)) check_strict_location("prefix", reg.prefix);
    if (!reg.location.empty()) check_strict_location("location", reg.location);

    if (!reg.pull_from_mirror.empty()) {
      invalid(fmt::format("pull-from-mirror must not be set for a non-mirror registry {}",
                          go_quote(reg.prefix)));
    }
    for (auto& mir : reg.mirrors) {
      mir.location = parse_location(mir.location);
      if (mir.location.empty()) invalid("invalid condition: mirror location is unset");
      if (reg.mirror_by_digest_only && !mir.pull_from_mirror.empty()) {
        invalid(
            fmt::format("cannot set mirror usage mirror-by-digest-only for the registry ({}) and "
                        "pull-from-mirror for per-mirror ({}) at the same time",
                        go_quote(reg.prefix), go_quote(mir.location)));
      }
      if (!mir.pull_from_mirror.empty() && mir.pull_from_mirror != "all" &&
          mir.pull_from_mirror != "digest-only" && mir.pull_from_mirror != "tag-only") {
        invalid(fmt::format("unsupported pull-from-mirror value {} for mirror {}",
                            go_quote(mir.pull_from_mirror), go_quote(mir.location)));
      }
      check_strict_location("mirror location", mir.location);
    }
    if (is_wildcard(reg.prefix) && reg.location.empty() && !reg.mirrors.empty()) {
      invalid(fmt::format(
          "invalid condition: mirrors are set for wildcarded prefix {} without a location, so "
          "no reference can be rewritten to them",
          go_quote(reg.prefix)));
    }
    by_key[reg.location.empty() ? reg.prefix : reg.location].push_back(&reg);
  }
  for (const auto& reg : config.registries) {
    for (const Registry* other : by_key[reg.location.empty() ? reg.prefix : reg.location]) {
      if (reg.insecure != other->insecure) {
        invalid(fmt::format(
            "registry '{}' is defined multiple times with conflicting 'insecure' setting",
            reg.location));
      }
      if (reg.blocked != other->blocked) {
        invalid(fmt::format(
            "registry '{}' is defined multiple times with conflicting 'blocked' setting",
            reg.location));
      }
    }
  }
  if (config.unqualified_search_registries) {
    for (auto& s : *config.unqualified_search_registries) {
      s = parse_location(s);
      if (!is_domain(s)) {
        invalid(fmt::format("Invalid unqualified-search-registries entry {}", go_quote(s)));
      }
    }
  }
  // The first table of a prefix wins; later ones are dropped. Then sorted by prefix.
  std::set<std::string> seen;
  std::vector<Registry> deduped;
  for (auto& reg : config.registries) {
    if (seen.insert(reg.prefix).second) {
      deduped.push_back(std::move(reg));
    } else {
      warn(
          fmt::format("[[registry]] prefix \"{}\" is defined more than once: only the first "
                      "table is used",
                      reg.prefix));
    }
  }
  std::sort(deduped.begin(), deduped.end(),
            [](const Registry& a, const Registry& b) { return a.prefix < b.prefix; });
  config.registries = std::move(deduped);

  if (config.short_name_mode && !config.short_name_mode->empty()) {
    const auto& m = *config.short_name_mode;
    if (m != "enforcing" && m != "permissive" && m != "disabled") {
      invalid(fmt::format("invalid short-name mode: {}", go_quote(m)));
    }
  } else {
    config.short_name_mode.reset();
  }
  validate_aliases(config.aliases);
  return config;
}

Config load_text(std::string_view text, std::string_view name, FileRole role,
                 std::vector<std::string>* warnings) {
  const std::string context =
      role == FileRole::kMain
          ? fmt::format("loading registries configuration \"{}\"", name)
          : fmt::format("loading drop-in registries configuration \"{}\"", name);
  try {
    std::vector<std::string> local;
    Config c = validate(parse_toml(text, name), role, &local);
    if (warnings != nullptr) {
      for (auto& w : local) warnings->push_back(fmt::format("{}: {}", name, w));
    }
    return c;
  } catch (const Error& e) {
    throw e.wrap(context);
  }
}

Config load_file(const std::filesystem::path& path, FileRole role,
                 std::vector<std::string>* warnings) {
  const auto text = read_file(path);
  if (!text) {
    throw Error(
        Code::kNotFound,
        fmt::format("{} registries configuration \"{}\": no such file or directory",
                    role == FileRole::kMain ? "loading" : "loading drop-in", path.string()));
  }
  return load_text(*text, path.string(), role, warnings);
}

void merge_into(Config& base, const Config& later) {
  for (const auto& reg : later.registries) {
    auto it = std::find_if(base.registries.begin(), base.registries.end(),
                           [&](const Registry& r) { return r.prefix == reg.prefix; });
    if (it != base.registries.end()) {
      *it = reg;
    } else {
      base.registries.push_back(reg);
    }
  }
  std::sort(base.registries.begin(), base.registries.end(),
            [](const Registry& a, const Registry& b) { return a.prefix < b.prefix; });
  if (later.unqualified_search_registries) {
    base.unqualified_search_registries = later.unqualified_search_registries;
  }
  if (later.credential_helpers) base.credential_helpers = later.credential_helpers;
  if (later.short_name_mode) base.short_name_mode = later.short_name_mode;
  if (!later.additional_layer_store_auth_helper.empty()) {
    base.additional_layer_store_auth_helper = later.additional_layer_store_auth_helper;
  }
  for (const auto& [k, v] : later.aliases) {
    if (v.empty()) {
      base.aliases.erase(k);
    } else {
      base.aliases[k] = v;
    }
  }
}

namespace {

// load_config's body; `override_name` (when not empty) names a drop-in whose text is
// `override_text` instead of what is on disk.
Config load_config_impl(const std::filesystem::path& main_file,
                        const std::filesystem::path& dropin_dir, bool main_must_exist,
                        std::string_view override_name, std::string_view override_text,
                        std::vector<std::string>* warnings) {
  namespace fs = std::filesystem;
  Config merged;
  if (!main_file.empty()) {
    if (fs::exists(main_file) || main_must_exist) {
      merged = load_file(main_file, FileRole::kMain, warnings);
    }
  }
  if (dropin_dir.empty()) return merged;
  std::error_code ec;
  std::vector<fs::path> files;
  if (fs::is_directory(dropin_dir, ec)) {  // a missing dir is ignored
    for (const auto& entry : fs::directory_iterator(dropin_dir, ec)) {
      if (entry.path().extension() == ".conf" && entry.is_regular_file(ec) &&
          entry.path().filename() != override_name) {
        files.push_back(entry.path());
      }
    }
    if (ec) {
      throw Error(Code::kInternal, fmt::format("reading registries.conf.d: {}", ec.message()));
    }
  }
  if (!override_name.empty()) files.push_back(dropin_dir / override_name);
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    if (!override_name.empty() && f.filename() == override_name) {
      merge_into(merged, load_text(override_text, f.string(), FileRole::kDropIn, warnings));
      continue;
    }
    const auto text = read_file(f);
    if (!text) continue;  // vanished between listing and open
    merge_into(merged, load_text(*text, f.string(), FileRole::kDropIn, warnings));
  }
  // Aliases erased by drop-ins are gone; validate what is left as a whole.
  return merged;
}

}  // namespace

Config load_config(const std::filesystem::path& main_file, const std::filesystem::path& dropin_dir,
                   bool main_must_exist, std::vector<std::string>* warnings) {
  return load_config_impl(main_file, dropin_dir, main_must_exist, {}, {}, warnings);
}

Config load_config_with_dropin(const std::filesystem::path& main_file,
                               const std::filesystem::path& dropin_dir, bool main_must_exist,
                               std::string_view dropin_name, std::string_view dropin_text,
                               std::vector<std::string>* warnings) {
  if (dropin_name.empty() || dropin_name.find('/') != std::string_view::npos ||
      !dropin_name.ends_with(".conf")) {
    invalid(
        fmt::format("drop-in name {} must be a file name ending in .conf", go_quote(dropin_name)));
  }
  return load_config_impl(main_file, dropin_dir, main_must_exist, dropin_name, dropin_text,
                          warnings);
}

bool ref_matches_prefix(std::string_view ref, std::string_view prefix) {
  if (is_wildcard(prefix)) {
    // Only the host part: "*.example.com" matches "a.b.example.com", never "example.com".
    const auto slash = ref.find('/');
    std::string_view host = ref.substr(0, slash);
    if (const auto colon = host.find(':'); colon != std::string_view::npos) {
      host = host.substr(0, colon);
    }
    const std::string_view suffix = prefix.substr(1);  // ".example.com"
    return host.size() > suffix.size() && host.ends_with(suffix);
  }
  if (ref.size() < prefix.size()) return false;
  if (ref.size() == prefix.size()) return ref == prefix;
  if (!ref.starts_with(prefix)) return false;
  const char c = ref[prefix.size()];
  return c == ':' || c == '/' || c == '@';
}

const Registry* find_registry(const Config& config, std::string_view ref) {
  const Registry* best = nullptr;
  size_t best_len = 0;
  for (const auto& r : config.registries) {
    if (ref_matches_prefix(ref, r.prefix) && r.prefix.size() > best_len) {
      best = &r;
      best_len = r.prefix.size();
    }
  }
  return best;
}

std::string effective_short_name_mode(const Config& config) {
  return config.short_name_mode.value_or("permissive");
}

std::string podman_info_registries_json(const Config& config) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& r : config.registries) {
    nlohmann::ordered_json j;
    j["Prefix"] = r.prefix;
    j["Location"] = r.location;
    j["Insecure"] = r.insecure;
    j["PullFromMirror"] = r.pull_from_mirror;
    if (r.mirrors.empty()) {
      j["Mirrors"] = nullptr;
    } else {
      j["Mirrors"] = nlohmann::ordered_json::array();
      for (const auto& m : r.mirrors) {
        j["Mirrors"].push_back({{"Location", m.location},
                                {"Insecure", m.insecure},
                                {"PullFromMirror", m.pull_from_mirror}});
      }
    }
    j["Blocked"] = r.blocked;
    j["MirrorByDigestOnly"] = r.mirror_by_digest_only;
    out[r.prefix] = j;
  }
  if (config.unqualified_search_registries && !config.unqualified_search_registries->empty()) {
    out["search"] = *config.unqualified_search_registries;
  }
  return out.dump();
}

}  // namespace stowage::registries
