#include "api/registry_config.h"

#include <fmt/format.h>

#include "api/fields.h"
#include "base/error.h"

namespace stowage::api {
namespace {

using nlohmann::json;
namespace f = fields;

json registry_to_json(const registries::Registry& r) {
  json j = json::object();
  if (!r.prefix.empty()) j["prefix"] = r.prefix;
  if (!r.location.empty()) j["location"] = r.location;
  if (r.insecure) j["insecure"] = true;
  if (r.blocked) j["blocked"] = true;
  if (r.mirror_by_digest_only) j["mirrorByDigestOnly"] = true;
  if (!r.pull_from_mirror.empty()) j["pullFromMirror"] = r.pull_from_mirror;
  if (!r.mirrors.empty()) {
    json mirrors = json::array();
    for (const auto& m : r.mirrors) {
      json mj = {{"location", m.location}};
      if (m.insecure) mj["insecure"] = true;
      if (!m.pull_from_mirror.empty()) mj["pullFromMirror"] = m.pull_from_mirror;
      mirrors.push_back(std::move(mj));
    }
    j["mirrors"] = std::move(mirrors);
  }
  return j;
}

NodeFailure node_failure_from_json(const json& j, const std::string& path) {
  NodeFailure nf;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    if (k == "node") {
      nf.node = f::string_value(v, p);
    } else if (k == "message") {
      nf.message = f::string_value(v, p);
    } else {
      return false;
    }
    return true;
  });
  if (nf.node.empty()) f::fail(f::member_path(path, "node"), "Required value");
  return nf;
}

}  // namespace

json registry_config_spec_to_json(const registries::RegistryConfigSpec& s) {
  json j = json::object();
  if (!s.node_selector.empty()) j["nodeSelector"] = label_selector_to_json(s.node_selector);
  j["priority"] = s.priority;
  if (s.unqualified_search_registries) {
    j["unqualifiedSearchRegistries"] = *s.unqualified_search_registries;
  }
  if (!s.insecure_registries.empty()) j["insecureRegistries"] = s.insecure_registries;
  if (!s.blocked_registries.empty()) j["blockedRegistries"] = s.blocked_registries;
  if (s.short_name_mode) j["shortNameMode"] = *s.short_name_mode;
  if (!s.registries.empty()) {
    json regs = json::array();
    for (const auto& r : s.registries) regs.push_back(registry_to_json(r));
    j["registries"] = std::move(regs);
  }
  if (!s.aliases.empty()) j["aliases"] = s.aliases;
  j["delivery"] = s.delivery;
  if (!s.machine_config_pools.empty()) j["machineConfigPools"] = s.machine_config_pools;
  return j;
}

RegistryConfigStatus registry_config_status_from_json(const json& j, std::string_view path) {
  RegistryConfigStatus s;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    if (k == "observedGeneration") {
      s.observed_generation = f::int64_value(v, p);
    } else if (k == "conditions") {
      s.conditions = conditions_from_json(v, p);
    } else if (k == "renderedHash") {
      s.rendered_hash = f::string_value(v, p);
    } else if (k == "machineConfigs") {
      s.machine_configs = f::strings_value(v, p);
    } else if (k == "warnings") {
      s.warnings = f::strings_value(v, p);
    } else if (k == "nodes") {
      f::members(v, p, [&](const std::string& nk, const json& nv, const std::string& np) {
        if (nk == "matched") {
          s.nodes.matched = f::int32_value(nv, np);
        } else if (nk == "updated") {
          s.nodes.updated = f::int32_value(nv, np);
        } else if (nk == "failed") {
          s.nodes.failed = f::int32_value(nv, np);
        } else {
          return false;
        }
        return true;
      });
    } else if (k == "failures") {
      s.failures = f::list_value<NodeFailure>(v, p, node_failure_from_json);
      f::require_unique(s.failures, p, "node", [](const NodeFailure& nf) { return nf.node; });
    } else {
      return false;
    }
    return true;
  });
  return s;
}

json registry_config_status_to_json(const RegistryConfigStatus& s) {
  json j = json::object();
  if (s.observed_generation != 0) j["observedGeneration"] = s.observed_generation;
  if (!s.conditions.empty()) j["conditions"] = conditions_to_json(s.conditions);
  if (!s.rendered_hash.empty()) j["renderedHash"] = s.rendered_hash;
  if (!s.machine_configs.empty()) j["machineConfigs"] = s.machine_configs;
  if (!s.warnings.empty()) j["warnings"] = s.warnings;
  if (s.nodes != RegistryConfigNodes{}) {
    j["nodes"] = {
        {"matched", s.nodes.matched}, {"updated", s.nodes.updated}, {"failed", s.nodes.failed}};
  }
  if (!s.failures.empty()) {
    json a = json::array();
    for (const auto& nf : s.failures) {
      json o = {{"node", nf.node}};
      if (!nf.message.empty()) o["message"] = nf.message;
      a.push_back(std::move(o));
    }
    j["failures"] = std::move(a);
  }
  return j;
}

registries::NamedRegistryConfig named(const RegistryConfig& rc) {
  return {rc.metadata.name, rc.spec};
}

void to_json(json& j, const RegistryConfig& rc) {
  j = {{"apiVersion", kApiVersion},
       {"kind", kRegistryConfigKind},
       {"metadata", object_meta_to_json(rc.metadata)},
       {"spec", registry_config_spec_to_json(rc.spec)}};
  if (rc.status != RegistryConfigStatus{}) j["status"] = registry_config_status_to_json(rc.status);
}

void from_json(const json& j, RegistryConfig& rc) {
  check_type(j, kRegistryConfigKind);
  RegistryConfig out;
  const std::string key = object_key_of(j);
  try {
    if (const auto m = j.find("metadata"); m != j.end() && !m->is_null()) {
      out.metadata = object_meta_from_json(*m);
    }
    if (const auto s = j.find("spec"); s != j.end()) out.spec = registries::spec_from_json(*s);
    if (const auto st = j.find("status"); st != j.end() && !st->is_null()) {
      out.status = registry_config_status_from_json(*st);
    }
  } catch (const Error& e) {
    throw e.wrap(fmt::format("{} \"{}\"", kRegistryConfigKind, key));
  }
  rc = std::move(out);
}

}  // namespace stowage::api
