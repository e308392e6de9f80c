#include "registries/spec.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/text.h"

namespace stowage::registries {
namespace {

using nlohmann::json;

[[noreturn]] void invalid(std::string message) {
  throw Error(Code::kInvalidArgument, std::move(message));
}

std::string want_string(const json& j, const std::string& f) {
  if (!j.is_string()) invalid(fmt::format("{}: must be a string", f));
  return j.get<std::string>();
}

bool want_bool(const json& j, const std::string& f) {
  if (!j.is_boolean()) invalid(fmt::format("{}: must be a boolean", f));
  return j.get<bool>();
}

std::vector<std::string> want_strings(const json& j, const std::string& f) {
  if (!j.is_array()) invalid(fmt::format("{}: must be a list of strings", f));
  std::vector<std::string> out;
  for (size_t i = 0; i < j.size(); ++i)
    out.push_back(want_string(j[i], fmt::format("{}[{}]", f, i)));
  return out;
}

const json& want_object(const json& j, const std::string& f) {
  if (!j.is_object()) invalid(fmt::format("{}: must be an object", f));
  return j;
}

Mirror mirror_from_json(const json& j, const std::string& f) {
  Mirror m;
  for (const auto& [k, v] : want_object(j, f).items()) {
    const std::string fk = f + "." + k;
    if (k == "location") {
      m.location = want_string(v, fk);
    } else if (k == "insecure") {
      m.insecure = want_bool(v, fk);
    } else if (k == "pullFromMirror") {
      m.pull_from_mirror = want_string(v, fk);
    } else {
      invalid(fmt::format("{}: unknown field", fk));
    }
  }
  return m;
}

Registry registry_from_json(const json& j, const std::string& f) {
  Registry r;
  for (const auto& [k, v] : want_object(j, f).items()) {
    const std::string fk = f + "." + k;
    if (k == "prefix") {
      r.prefix = want_string(v, fk);
    } else if (k == "location") {
      r.location = want_string(v, fk);
    } else if (k == "insecure") {
      r.insecure = want_bool(v, fk);
    } else if (k == "blocked") {
      r.blocked = want_bool(v, fk);
    } else if (k == "mirrorByDigestOnly") {
      r.mirror_by_digest_only = want_bool(v, fk);
    } else if (k == "pullFromMirror") {
      invalid(fmt::format("{}: pullFromMirror is allowed only on mirrors", fk));
    } else if (k == "mirrors") {
      if (!v.is_array()) invalid(fmt::format("{}: must be a list", fk));
      for (size_t i = 0; i < v.size(); ++i) {
        r.mirrors.push_back(mirror_from_json(v[i], fmt::format("{}[{}]", fk, i)));
      }
    } else {
      invalid(fmt::format("{}: unknown field", fk));
    }
  }
  return r;
}

// Limits on hostile YAML: nesting depth (yaml-cpp's parser recurses) and the number of nodes after
// alias expansion (an anchor referenced many times, nested, grows exponentially).
constexpr int kMaxYamlDepth = 64;
constexpr std::size_t kMaxYamlNodes = 200'000;
constexpr std::size_t kMaxInputBytes = 8u << 20;

// YAML → JSON with YAML 1.2 core-schema scalars: true/false, null/~, integers; the rest strings.
json yaml_to_json(const YAML::Node& n, int depth, std::size_t& budget) {
  if (depth > kMaxYamlDepth) invalid(fmt::format("nested deeper than {} levels", kMaxYamlDepth));
  if (budget == 0)
    invalid(fmt::format("more than {} nodes (after expanding aliases)", kMaxYamlNodes));
  --budget;
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& e : n) a.push_back(yaml_to_json(e, depth + 1, budget));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) {
          invalid(fmt::format("line {}: a mapping key must be a string", kv.first.Mark().line + 1));
        }
        o[kv.first.Scalar()] = yaml_to_json(kv.second, depth + 1, budget);
      }
      return o;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted in the source: always a string
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE") return false;
      if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty()) return nullptr;
      if (!s.empty() && s.find_first_not_of("-0123456789") == std::string::npos &&
          s.find('-', 1) == std::string::npos && s != "-") {
        try {
          return std::stoll(s);
        } catch (const std::exception&) {
          return s;
        }
      }
      return s;
    }
  }
  return nullptr;
}

// A string member, or "" when absent or not a string (the caller reports what is missing).
std::string string_member(const json& obj, const char* key) {
  const auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

void collect_objects(const json& doc, std::string_view source,
                     std::vector<NamedRegistryConfig>& out) {
  if (doc.is_null()) return;
  if (!doc.is_object()) invalid(fmt::format("{}: a document is not an object", source));
  const std::string kind = string_member(doc, "kind");
  if (kind == "List" || kind.ends_with("List")) {
    if (doc.contains("items") && doc["items"].is_array()) {
      for (const auto& item : doc["items"]) collect_objects(item, source, out);
    }
    return;
  }
  if (kind != "RegistryConfig") {
    invalid(fmt::format("{}: expected kind RegistryConfig, found {}", source,
                        kind.empty() ? std::string("no kind") : "\"" + kind + "\""));
  }
  const std::string api = string_member(doc, "apiVersion");
  if (api != "stowage.io/v1alpha1") {
    invalid(fmt::format("{}: RegistryConfig apiVersion must be stowage.io/v1alpha1, found \"{}\"",
                        source, api));
  }
  NamedRegistryConfig rc;
  if (doc.contains("metadata") && doc["metadata"].is_object()) {
    rc.name = string_member(doc["metadata"], "name");
  }
  if (rc.name.empty()) invalid(fmt::format("{}: RegistryConfig without metadata.name", source));
  try {
    rc.spec = spec_from_json(doc.contains("spec") ? doc["spec"] : json::object());
  } catch (const Error& e) {
    throw e.wrap(fmt::format("RegistryConfig \"{}\"", rc.name));
  }
  out.push_back(std::move(rc));
}

}  // namespace

RegistryConfigSpec spec_from_json(const json& spec) {
  RegistryConfigSpec s;
  if (spec.is_null()) return s;
  for (const auto& [k, v] : want_object(spec, "spec").items()) {
    const std::string f = "spec." + k;
    if (v.is_null()) continue;
    if (k == "nodeSelector") {
      s.node_selector = selector_from_json(v, f);
    } else if (k == "priority") {
      if (!v.is_number_integer()) invalid(fmt::format("{}: must be an integer", f));
      const auto p = v.get<long long>();
      if (p < -1000000 || p > 1000000) {
        invalid(fmt::format("{}: must be between -1000000 and 1000000", f));
      }
      s.priority = static_cast<int>(p);
    } else if (k == "unqualifiedSearchRegistries") {
      s.unqualified_search_registries = want_strings(v, f);
    } else if (k == "insecureRegistries") {
      s.insecure_registries = want_strings(v, f);
    } else if (k == "blockedRegistries") {
      s.blocked_registries = want_strings(v, f);
    } else if (k == "shortNameMode") {
      s.short_name_mode = want_string(v, f);
      if (*s.short_name_mode != "enforcing" && *s.short_name_mode != "permissive" &&
          *s.short_name_mode != "disabled") {
        invalid(fmt::format(
            "{}: Unsupported value: \"{}\": supported values: \"enforcing\", \"permissive\", "
            "\"disabled\"",
            f, *s.short_name_mode));
      }
    } else if (k == "registries") {
      if (!v.is_array()) invalid(fmt::format("{}: must be a list", f));
      for (size_t i = 0; i < v.size(); ++i) {
        s.registries.push_back(registry_from_json(v[i], fmt::format("{}[{}]", f, i)));
      }
    } else if (k == "aliases") {
      for (const auto& [ak, av] : want_object(v, f).items()) {
        s.aliases[ak] = want_string(av, fmt::format("{}[{}]", f, ak));
      }
    } else if (k == "delivery") {
      s.delivery = want_string(v, f);
      if (s.delivery != "Auto" && s.delivery != "MachineConfig" && s.delivery != "Agent") {
        invalid(fmt::format(
            "{}: Unsupported value: \"{}\": supported values: \"Auto\", \"MachineConfig\", "
            "\"Agent\"",
            f, s.delivery));
      }
    } else if (k == "machineConfigPools") {
      s.machine_config_pools = want_strings(v, f);
    } else {
      invalid(fmt::format("{}: unknown field", f));
    }
  }
  if (!s.machine_config_pools.empty() && s.delivery == "Agent") {
    invalid("spec.machineConfigPools: Forbidden: only allowed with delivery Auto or MachineConfig");
  }
  return s;
}

std::vector<NamedRegistryConfig> read_registry_configs(std::string_view text,
                                                       std::string_view source_name) {
  std::vector<NamedRegistryConfig> out;
  if (text.size() > kMaxInputBytes) {
    invalid(fmt::format("{}: larger than {} MiB", source_name, kMaxInputBytes >> 20));
  }
  // Both parsers recurse, and yaml-cpp 0.7 misbehaves on some bytes: refuse what is unsafe first.
  if (const auto why = unsafe_yaml_reason(text, kMaxYamlDepth)) {
    invalid(fmt::format("{}: invalid YAML: {}", source_name, *why));
  }
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && (text[first] == '{' || text[first] == '[')) {
    json doc;
    try {
      doc = json::parse(text);
    } catch (const json::exception& e) {
      invalid(fmt::format("{}: invalid JSON: {}", source_name, e.what()));
    }
    collect_objects(doc, source_name, out);
    return out;
  }
  std::vector<YAML::Node> docs;
  for (const auto& doc : split_yaml_documents(text)) {
    try {
      docs.push_back(YAML::Load(doc.text));
    } catch (const YAML::Exception& e) {
      invalid(fmt::format("{}: invalid YAML: line {}: {}", source_name,
                          doc.first_line + e.mark.line + 1, e.msg));
    }
  }
  std::size_t budget = kMaxYamlNodes;
  for (const auto& d : docs) {
    json j;
    try {
      j = yaml_to_json(d, 0, budget);
    } catch (const Error& e) {
      throw e.wrap(fmt::format("{}: invalid YAML", source_name));
    } catch (const YAML::Exception& e) {
      invalid(fmt::format("{}: invalid YAML: line {}: {}", source_name, e.mark.line + 1, e.msg));
    }
    collect_objects(j, source_name, out);
  }
  return out;
}

Config spec_to_config(const NamedRegistryConfig& rc) {
  const auto& s = rc.spec;
  ParsedFile file;
  file.v2_present = true;
  Config& c = file.v2;
  c.unqualified_search_registries = s.unqualified_search_registries;
  c.short_name_mode = s.short_name_mode;
  c.aliases = s.aliases;
  c.registries = s.registries;
  // Shorthands: set the flag on the table of the same prefix, or add one.
  auto flag = [&](const std::string& host, bool Registry::*member) {
    const std::string key = host;
    auto it = std::find_if(c.registries.begin(), c.registries.end(), [&](const Registry& r) {
      return (r.prefix.empty() ? r.location : r.prefix) == key;
    });
    if (it == c.registries.end()) {
      Registry r;
      r.prefix = host;
      if (!host.starts_with("*.")) r.location = host;
      c.registries.push_back(r);
      it = std::prev(c.registries.end());
    }
    (*it).*member = true;
  };
  for (const auto& h : s.insecure_registries) flag(h, &Registry::insecure);
  for (const auto& h : s.blocked_registries) flag(h, &Registry::blocked);
  try {
    std::vector<std::string> warnings;
    return validate(std::move(file), FileRole::kDropIn, &warnings);
  } catch (const Error& e) {
    throw e.wrap(fmt::format("RegistryConfig \"{}\"", rc.name));
  }
}

Config merge_registry_configs(std::vector<NamedRegistryConfig> configs) {
  // Lowest precedence first, so each later merge overrides: priority ascending, then name
  // descending (ties go to the name that sorts first).
  std::sort(configs.begin(), configs.end(), [](const auto& a, const auto& b) {
    if (a.spec.priority != b.spec.priority) return a.spec.priority < b.spec.priority;
    return a.name > b.name;
  });
  Config merged;
  std::string names;  // highest precedence first
  for (const auto& rc : configs) {
    merge_into(merged, spec_to_config(rc));
    names = rc.name + (names.empty() ? "" : ", ") + names;
  }
  // Tables from different RegistryConfigs may now conflict (same location, different flags).
  ParsedFile file;
  file.v2 = std::move(merged);
  file.v2_present = true;
  try {
    return validate(std::move(file), FileRole::kDropIn);
  } catch (const Error& e) {
    throw e.wrap(fmt::format("merging RegistryConfigs {}", names));
  }
}

std::vector<NamedRegistryConfig> matching_configs(const std::vector<NamedRegistryConfig>& configs,
                                                  const Labels& labels) {
  std::vector<NamedRegistryConfig> out;
  for (const auto& rc : configs) {
    if (selector_matches(rc.spec.node_selector, labels)) out.push_back(rc);
  }
  return out;
}

}  // namespace stowage::registries
