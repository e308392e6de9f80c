#include "oci/resolve.h"

#include <fmt/format.h>

#include "base/error.h"

namespace stowage::oci {
namespace {

bool is_wildcard(std::string_view prefix) {
  return prefix.starts_with("*.");
}

// containers/image refMatchingPrefix: how much of `ref` the prefix covers, or npos. For `*.host`
// that is the host without its port.
std::size_t matching_prefix_length(std::string_view ref, std::string_view prefix) {
  if (!registries::ref_matches_prefix(ref, prefix)) {
    return std::string_view::npos;
  }
  if (!is_wildcard(prefix)) {
    return prefix.size();
  }
  const std::string_view host = ref.substr(0, ref.find('/'));
  return host.substr(0, host.find(':')).size();
}

Reference rewrite(const Reference& ref, std::string_view prefix, std::string_view location) {
  const std::string text = ref.string();
  const std::size_t len = matching_prefix_length(text, prefix);
  if (len == std::string_view::npos) {
    throw_invalid(fmt::format("invalid prefix '{}' for reference '{}'", prefix, text));
  }
  if (location.empty()) {
    if (!is_wildcard(prefix)) {
      throw_invalid(fmt::format(
          "invalid prefix '{}' for empty location, should be in the format: *.example.com",
          prefix));
    }
    return ref;
  }
  const std::string rewritten = std::string(location) + text.substr(len);
  try {
    Reference out = Reference::parse(rewritten);
    if (out.domain.empty() || Reference::parse_normalized(rewritten).string() != rewritten) {
      throw_invalid("repository name must be canonical");
    }
    return out;
  } catch (const Error& e) {
    throw e.wrap("rewriting reference");
  }
}

}  // namespace

std::string go_quote(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\x{:02x}", c);
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

ShortNameMode parse_short_name_mode(std::string_view text) {
  if (text == "disabled") {
    return ShortNameMode::kDisabled;
  }
  if (text == "permissive") {
    return ShortNameMode::kPermissive;
  }
  if (text == "enforcing") {
    return ShortNameMode::kEnforcing;
  }
  throw_invalid(fmt::format("invalid short-name mode: {}", go_quote(text)));
}

ResolvedName resolve_image_name(std::string_view input, const registries::Config& config,
                                const ResolveOptions& options) {
  const ShortNameMode mode =
      options.mode ? *options.mode
                   : parse_short_name_mode(registries::effective_short_name_mode(config));
  Reference parsed;
  try {
    parsed = Reference::parse(input);
  } catch (const Error& e) {
    throw e.wrap(fmt::format("cannot parse input: {}", go_quote(input)));
  }
  ResolvedName out;
  if (!is_short_name(input)) {
    out.candidates.push_back(Reference::parse_normalized(input).with_default_tag());
    return out;
  }

  // Aliases are keyed by the bare repository; the input's tag and digest are carried over.
  const std::string& short_repo = parsed.path;
  if (const auto it = config.aliases.find(short_repo);
      it != config.aliases.end() && !it->second.empty()) {
    Reference alias;
    try {
      alias = Reference::parse_normalized(it->second);
    } catch (const Error& e) {
      throw e.wrap(fmt::format("alias {}", go_quote(short_repo)));
    }
    alias.tag = parsed.tag;
    alias.digest = parsed.digest;
    out.candidates.push_back(alias.with_default_tag());
    out.rationale = Rationale::kAlias;
    out.description = fmt::format("Resolved {} as an alias ({})", go_quote(short_repo),
                                  options.origin.aliases_origin);
    return out;
  }

  out.rationale = Rationale::kSearchRegistries;
  const std::vector<std::string> search =
      config.unqualified_search_registries.value_or(std::vector<std::string>{});
  if (search.empty()) {
    if (options.origin.search_registries_origin.empty()) {
      throw_invalid(fmt::format(
          "short-name {} did not resolve to an alias and no containers-registries.conf(5) was "
          "found",
          go_quote(input)));
    }
    throw_invalid(fmt::format(
        "short-name {} did not resolve to an alias and no unqualified-search registries are "
        "defined in {}",
        go_quote(input), go_quote(options.origin.search_registries_origin)));
  }
  for (const auto& registry : search) {
    try {
      out.candidates.push_back(
          Reference::parse_normalized(registry + "/" + std::string(input)).with_default_tag());
    } catch (const Error& e) {
      throw e.wrap(fmt::format("creating reference with unqualified-search registry {}",
                               go_quote(registry)));
    }
  }
  out.description = fmt::format("Resolving {} using unqualified-search registries ({})",
                                go_quote(short_repo), options.origin.search_registries_origin);
  if (mode == ShortNameMode::kDisabled || out.candidates.size() == 1) {
    return out;
  }
  if (!options.tty) {
    if (mode == ShortNameMode::kEnforcing) {
      throw_invalid("short-name resolution enforced but cannot prompt without a TTY");
    }
    return out;  // permissive: try every candidate
  }
  out.needs_selection = true;
  return out;
}

std::vector<PullSource> pull_sources(const Reference& ref_in, const registries::Config& config,
                                     const ConfigOrigin& origin) {
  if (ref_in.domain.empty()) {
    throw_invalid(fmt::format("pull sources: {} is not fully qualified; resolve it first",
                              go_quote(ref_in.string())));
  }
  const Reference ref = Reference::parse_normalized(ref_in.string());
  const registries::Registry* reg = registries::find_registry(config, ref.name());
  if (reg == nullptr) {
    return {PullSource{ref, ref.domain, false, false}};
  }
  if (reg->blocked) {
    throw Error(Code::kPermissionDenied,
                fmt::format("registry {} is blocked in {} or {}", reg->prefix, origin.conf_path,
                            origin.conf_dir));
  }
  const bool digested = ref.digest.has_value();
  std::vector<PullSource> out;
  const auto add = [&](const std::string& location, bool insecure, bool mirror) {
    PullSource s;
    s.reference = rewrite(ref, reg->prefix, location);
    s.location = location.empty() ? s.reference.domain : location;
    s.insecure = insecure;
    s.mirror = mirror;
    out.push_back(std::move(s));
  };
  if (reg->mirror_by_digest_only) {
    if (digested) {
      for (const auto& m : reg->mirrors) {
        add(m.location, m.insecure, true);
      }
    }
  } else {
    for (const auto& m : reg->mirrors) {
      if (m.pull_from_mirror == "digest-only" && !digested) {
        continue;
      }
      if (m.pull_from_mirror == "tag-only" && digested) {
        continue;
      }
      add(m.location, m.insecure, true);
    }
  }
  add(reg->location, reg->insecure, false);
  return out;
}

}  // namespace stowage::oci
