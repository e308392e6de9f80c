#include "registries/render.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "base/error.h"
#include "base/sha256.h"

namespace stowage::registries {
namespace {

constexpr const char* kHeader =
    "# Rendered by Stowage from RegistryConfig resources. Do not edit: changes are replaced.\n";

[[noreturn]] void invalid(std::string message) {
  throw Error(Code::kInvalidArgument, std::move(message));
}

std::string toml_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += toml_quote(items[i]);
  }
  return out + "]";
}

std::string host_of(const std::string& location) {
  return location.substr(0, location.find('/'));
}
std::string path_of(const std::string& location) {
  const auto slash = location.find('/');
  return slash == std::string::npos ? "" : location.substr(slash + 1);
}

}  // namespace

std::string toml_quote(const std::string& s) {
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
          out += fmt::format("\\u{:04X}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

RenderFormat parse_render_format(const std::string& text) {
  if (text == "v2") return RenderFormat::kV2DropIn;
  if (text == "v2-full") return RenderFormat::kV2Full;
  if (text == "v1") return RenderFormat::kV1;
  if (text == "containerd") return RenderFormat::kContainerd;
  invalid(fmt::format("invalid format \"{}\": want v2, v2-full, v1 or containerd", text));
}

std::string render_v2(const Config& c, bool full_file) {
  std::string out = kHeader;
  if (c.unqualified_search_registries) {
    out += "unqualified-search-registries = " + toml_list(*c.unqualified_search_registries) + "\n";
  } else if (full_file) {
    out += "unqualified-search-registries = []\n";
  }
  if (c.short_name_mode) out += "short-name-mode = " + toml_quote(*c.short_name_mode) + "\n";
  if (c.credential_helpers) {
    out += "credential-helpers = " + toml_list(*c.credential_helpers) + "\n";
  }
  if (!c.additional_layer_store_auth_helper.empty()) {
    out +=
        "additional-layer-store-auth-helper = " + toml_quote(c.additional_layer_store_auth_helper) +
        "\n";
  }
  for (const auto& r : c.registries) {
    out += "\n[[registry]]\n";
    out += "prefix = " + toml_quote(r.prefix) + "\n";
    if (!r.location.empty()) out += "location = " + toml_quote(r.location) + "\n";
    if (r.insecure) out += "insecure = true\n";
    if (r.blocked) out += "blocked = true\n";
    if (r.mirror_by_digest_only) out += "mirror-by-digest-only = true\n";
    for (const auto& m : r.mirrors) {
      out += "\n  [[registry.mirror]]\n";
      out += "  location = " + toml_quote(m.location) + "\n";
      if (m.insecure) out += "  insecure = true\n";
      if (!m.pull_from_mirror.empty()) {
        out += "  pull-from-mirror = " + toml_quote(m.pull_from_mirror) + "\n";
      }
    }
  }
  if (!c.aliases.empty()) {
    out += "\n[aliases]\n";
    for (const auto& [k, v] : c.aliases) out += toml_quote(k) + " = " + toml_quote(v) + "\n";
  }
  return out;
}

std::string render_v1(const Config& c) {
  if (c.short_name_mode) {
    invalid("cannot render v1: short-name-mode (spec.shortNameMode) has no v1 form");
  }
  if (!c.aliases.empty()) invalid("cannot render v1: aliases (spec.aliases) have no v1 form");
  if (c.credential_helpers) invalid("cannot render v1: credential-helpers have no v1 form");
  std::vector<std::string> insecure, block;
  for (const auto& r : c.registries) {
    const std::string what = fmt::format("cannot render v1: [[registry]] \"{}\"", r.prefix);
    if (!r.mirrors.empty()) invalid(what + ": mirrors (spec.registries[].mirrors) have no v1 form");
    if (r.mirror_by_digest_only) {
      invalid(what +
              ": mirror-by-digest-only (spec.registries[].mirrorByDigestOnly) has no v1 form");
    }
    if (r.prefix != r.location) {
      invalid(what +
              ": a prefix that differs from its location (spec.registries[].prefix) has "
              "no v1 form");
    }
    if (!r.insecure && !r.blocked) {
      invalid(what + ": a table that is neither insecure nor blocked has no v1 form");
    }
    if (r.insecure) insecure.push_back(r.location);
    if (r.blocked) block.push_back(r.location);
  }
  std::string out = kHeader;
  out += "# Legacy v1 format: refused by containers/image v5.40 and later (Podman 6).\n";
  out += "\n[registries.search]\nregistries = " +
         toml_list(c.unqualified_search_registries.value_or(std::vector<std::string>{})) + "\n";
  out += "\n[registries.insecure]\nregistries = " + toml_list(insecure) + "\n";
  out += "\n[registries.block]\nregistries = " + toml_list(block) + "\n";
  return out;
}

std::vector<RenderedFile> render_containerd(const Config& c, std::vector<std::string>& warnings) {
  if (c.unqualified_search_registries && !c.unqualified_search_registries->empty()) {
    warnings.push_back(
        "containerd cannot express unqualified-search-registries: short names are not resolved "
        "through a search list on containerd nodes");
  }
  if (!c.aliases.empty()) {
    warnings.push_back("containerd cannot express [aliases]: short-name aliases are ignored");
  }
  if (c.short_name_mode) {
    warnings.push_back("containerd cannot express short-name-mode");
  }
  // containerd configures whole hosts; pick one table per host: the host-level one if present,
  // else the shortest namespaced prefix (with a warning).
  std::map<std::string, const Registry*> by_host;
  for (const auto& r : c.registries) {
    if (r.prefix.starts_with("*.")) {
      warnings.push_back(fmt::format(
          "containerd cannot express wildcard prefix \"{}\": no hosts.toml is written for it",
          r.prefix));
      continue;
    }
    if (r.blocked) {
      warnings.push_back(fmt::format(
          "containerd cannot express blocked registries: \"{}\" is not blocked on containerd "
          "nodes",
          r.prefix));
    }
    const std::string host = host_of(r.prefix);
    auto& slot = by_host[host];
    if (slot == nullptr || r.prefix.size() < slot->prefix.size()) slot = &r;
  }
  std::vector<RenderedFile> files;
  for (const auto& [host, r] : by_host) {
    if (r->mirrors.empty() && !r->insecure && r->location == r->prefix) {
      continue;  // nothing containerd would do differently from its defaults
    }
    if (r->prefix != host) {
      warnings.push_back(fmt::format(
          "containerd applies registry settings per host: \"{}\" applies to all of \"{}\"",
          r->prefix, host));
    }
    if (r->mirror_by_digest_only) {
      warnings.push_back(fmt::format(
          "containerd cannot express mirror-by-digest-only for \"{}\": its mirrors serve tag "
          "pulls too",
          r->prefix));
    }
    std::string out = kHeader;
    const std::string loc_host = host_of(r->location);
    if (loc_host != host || path_of(r->location) != path_of(r->prefix)) {
      warnings.push_back(
          fmt::format("containerd cannot rewrite \"{}\" to location \"{}\": only the host is used",
                      r->prefix, r->location));
    }
    const std::string server_host =
        loc_host == "docker.io" ? std::string("registry-1.docker.io") : loc_host;
    out += fmt::format("server = {}\n",
                       toml_quote((r->insecure ? "http://" : "https://") + server_host));
    for (const auto& m : r->mirrors) {
      if (!m.pull_from_mirror.empty() && m.pull_from_mirror != "all") {
        warnings.push_back(fmt::format(
            "containerd cannot express pull-from-mirror \"{}\" for mirror \"{}\": it serves all "
            "pulls",
            m.pull_from_mirror, m.location));
      }
      if (path_of(m.location) != path_of(r->prefix)) {
        warnings.push_back(fmt::format(
            "containerd cannot express the path of mirror \"{}\" for \"{}\": only its host is used",
            m.location, r->prefix));
      }
      const std::string mh = host_of(m.location);
      // An insecure mirror may speak TLS with an untrusted certificate or plain HTTP, as in
      // containers/image: try https without verification first, then http.
      out += fmt::format("\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
                         toml_quote("https://" + mh));
      if (m.insecure) {
        out += "  skip_verify = true\n";
        out += fmt::format("\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
                           toml_quote("http://" + mh));
      }
    }
    if (r->insecure) {
      out += fmt::format(
          "\n[host.{}]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  skip_verify = true\n",
          toml_quote("https://" + server_host));
      out += fmt::format("\n[host.{}]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n",
                         toml_quote("http://" + server_host));
    }
    files.push_back({host + "/hosts.toml", std::move(out)});
  }
  return files;
}

Rendering render(const Config& config, RenderFormat format) {
  Rendering out;
  switch (format) {
    case RenderFormat::kV2DropIn:
      out.files.push_back({kDropInFileName, render_v2(config, false)});
      break;
    case RenderFormat::kV2Full:
      out.files.push_back({"registries.conf", render_v2(config, true)});
      break;
    case RenderFormat::kV1:
      out.files.push_back({"registries.conf", render_v1(config)});
      out.warnings.push_back(
          "the v1 format is refused by containers/image v5.40 and later (Podman 6): "
          "registries.conf "
          "must be in v2 format but is in v1");
      break;
    case RenderFormat::kContainerd: out.files = render_containerd(config, out.warnings); break;
  }
  std::sort(out.files.begin(), out.files.end(),
            [](const RenderedFile& a, const RenderedFile& b) { return a.path < b.path; });
  Sha256 h;
  for (const auto& f : out.files) {
    h.update(f.path);
    h.update(std::string_view("\0", 1));
    h.update(f.content);
    h.update(std::string_view("\0", 1));
  }
  out.hash = h.finish_hex();
  return out;
}

}  // namespace stowage::registries
