#include "api/meta.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <utility>

#include "api/fields.h"
#include "base/error.h"
#include "kube/encoding.h"

namespace stowage::api {
namespace {

using nlohmann::json;
namespace f = fields;

constexpr std::array<std::pair<ConditionStatus, std::string_view>, 3> kStatusNames{{
    {ConditionStatus::kTrue, "True"},
    {ConditionStatus::kFalse, "False"},
    {ConditionStatus::kUnknown, "Unknown"},
}};
constexpr f::EnumNames<ConditionStatus> kStatus{kStatusNames};

OwnerReference owner_reference_from_json(const json& j, const std::string& path) {
  OwnerReference r;
  f::members(
      j, path,
      [&](const std::string& k, const json& v, const std::string& p) {
        if (k == "apiVersion") {
          r.api_version = f::string_value(v, p);
        } else if (k == "kind") {
          r.kind = f::string_value(v, p);
        } else if (k == "name") {
          r.name = f::string_value(v, p);
        } else if (k == "uid") {
          r.uid = f::string_value(v, p);
        } else if (k == "controller") {
          r.controller = f::bool_value(v, p);
        } else if (k == "blockOwnerDeletion") {
          r.block_owner_deletion = f::bool_value(v, p);
        } else {
          return false;
        }
        return true;
      },
      /*allow_unknown=*/true);
  return r;
}

}  // namespace

kube::GroupVersionResource registry_configs_resource() {
  return {std::string(kGroup), std::string(kVersion), "registryconfigs"};
}
kube::GroupVersionResource image_caches_resource() {
  return {std::string(kGroup), std::string(kVersion), "imagecaches"};
}
kube::GroupVersionResource node_caches_resource() {
  return {std::string(kGroup), std::string(kVersion), "nodecaches"};
}

std::string_view to_string(ConditionStatus status) {
  return kStatus.name(status);
}

const Condition* find_condition(const std::vector<Condition>& conditions, std::string_view type) {
  const auto it = std::find_if(conditions.begin(), conditions.end(),
                               [&](const Condition& c) { return c.type == type; });
  return it == conditions.end() ? nullptr : &*it;
}

bool set_condition(std::vector<Condition>& conditions, Condition condition, Time now) {
  const auto it = std::find_if(conditions.begin(), conditions.end(),
                               [&](const Condition& c) { return c.type == condition.type; });
  if (it == conditions.end()) {
    if (condition.last_transition_time == Time{}) condition.last_transition_time = now;
    conditions.push_back(std::move(condition));
    return true;
  }
  if (it->status != condition.status) {
    if (condition.last_transition_time == Time{}) condition.last_transition_time = now;
  } else {
    condition.last_transition_time = it->last_transition_time;
  }
  if (*it == condition) return false;
  *it = std::move(condition);
  return true;
}

ObjectMeta object_meta_from_json(const json& j, std::string_view path) {
  ObjectMeta m;
  f::members(
      j, path,
      [&](const std::string& k, const json& v, const std::string& p) {
        if (k == "name") {
          m.name = f::string_value(v, p);
        } else if (k == "namespace") {
          m.namespace_ = f::string_value(v, p);
        } else if (k == "uid") {
          m.uid = f::string_value(v, p);
        } else if (k == "resourceVersion") {
          m.resource_version = f::string_value(v, p);
        } else if (k == "generation") {
          m.generation = f::int64_value(v, p);
        } else if (k == "creationTimestamp") {
          m.creation_timestamp = f::time_value(v, p);
        } else if (k == "deletionTimestamp") {
          m.deletion_timestamp = f::time_value(v, p);
        } else if (k == "labels") {
          m.labels = f::string_map_value(v, p);
        } else if (k == "annotations") {
          m.annotations = f::string_map_value(v, p);
        } else if (k == "ownerReferences") {
          m.owner_references = f::list_value<OwnerReference>(v, p, owner_reference_from_json);
        } else if (k == "finalizers") {
          m.finalizers = f::strings_value(v, p);
        } else {
          return false;
        }
        return true;
      },
      /*allow_unknown=*/true);
  return m;
}

json object_meta_to_json(const ObjectMeta& m) {
  json j = json::object();
  if (!m.name.empty()) j["name"] = m.name;
  if (!m.namespace_.empty()) j["namespace"] = m.namespace_;
  if (!m.uid.empty()) j["uid"] = m.uid;
  if (!m.resource_version.empty()) j["resourceVersion"] = m.resource_version;
  if (m.generation != 0) j["generation"] = m.generation;
  if (m.creation_timestamp) j["creationTimestamp"] = kube::format_rfc3339(*m.creation_timestamp);
  if (m.deletion_timestamp) j["deletionTimestamp"] = kube::format_rfc3339(*m.deletion_timestamp);
  if (!m.labels.empty()) j["labels"] = m.labels;
  if (!m.annotations.empty()) j["annotations"] = m.annotations;
  if (!m.owner_references.empty()) {
    json refs = json::array();
    for (const auto& r : m.owner_references) {
      json o = {{"apiVersion", r.api_version}, {"kind", r.kind}, {"name", r.name}, {"uid", r.uid}};
      if (r.controller) o["controller"] = true;
      if (r.block_owner_deletion) o["blockOwnerDeletion"] = true;
      refs.push_back(std::move(o));
    }
    j["ownerReferences"] = std::move(refs);
  }
  if (!m.finalizers.empty()) j["finalizers"] = m.finalizers;
  return j;
}

Condition condition_from_json(const json& j, std::string_view path) {
  Condition c;
  bool has_type = false, has_status = false, has_reason = false, has_time = false;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    if (k == "type") {
      c.type = f::string_value(v, p);
      has_type = !c.type.empty();
    } else if (k == "status") {
      c.status = kStatus.decode(v, p);
      has_status = true;
    } else if (k == "observedGeneration") {
      c.observed_generation = f::int64_value(v, p);
    } else if (k == "lastTransitionTime") {
      c.last_transition_time = f::time_value(v, p);
      has_time = true;
    } else if (k == "reason") {
      c.reason = f::string_value(v, p);
      has_reason = !c.reason.empty();
    } else if (k == "message") {
      c.message = f::string_value(v, p);
    } else {
      return false;
    }
    return true;
  });
  if (!has_type) f::fail(f::member_path(path, "type"), "Required value");
  if (!has_status) f::fail(f::member_path(path, "status"), "Required value");
  if (!has_reason) f::fail(f::member_path(path, "reason"), "Required value");
  if (!has_time) f::fail(f::member_path(path, "lastTransitionTime"), "Required value");
  return c;
}

json condition_to_json(const Condition& c) {
  json j = {{"type", c.type},
            {"status", std::string(to_string(c.status))},
            {"lastTransitionTime", kube::format_rfc3339(c.last_transition_time)},
            {"reason", c.reason},
            {"message", c.message}};
  if (c.observed_generation != 0) j["observedGeneration"] = c.observed_generation;
  return j;
}

std::vector<Condition> conditions_from_json(const json& j, std::string_view path) {
  auto out = f::list_value<Condition>(j, path, condition_from_json);
  f::require_unique(out, path, "type", [](const Condition& c) { return c.type; });
  return out;
}

json conditions_to_json(const std::vector<Condition>& conditions) {
  json a = json::array();
  for (const auto& c : conditions) a.push_back(condition_to_json(c));
  return a;
}

std::vector<LocalObjectReference> local_refs_from_json(const json& j, std::string_view path) {
  auto out = f::list_value<LocalObjectReference>(j, path, [](const json& v, const std::string& p) {
    LocalObjectReference r;
    f::members(v, p, [&](const std::string& k, const json& mv, const std::string& mp) {
      if (k != "name") return false;
      r.name = f::string_value(mv, mp);
      return true;
    });
    if (r.name.empty()) f::fail(f::member_path(p, "name"), "Required value");
    return r;
  });
  f::require_unique(out, path, "name", [](const LocalObjectReference& r) { return r.name; });
  return out;
}

json local_refs_to_json(const std::vector<LocalObjectReference>& refs) {
  json a = json::array();
  for (const auto& r : refs) a.push_back({{"name", r.name}});
  return a;
}

json label_selector_to_json(const registries::LabelSelector& selector) {
  json j = json::object();
  if (!selector.match_labels.empty()) j["matchLabels"] = selector.match_labels;
  if (!selector.match_expressions.empty()) {
    json a = json::array();
    for (const auto& r : selector.match_expressions) {
      json e = {{"key", r.key}, {"operator", r.op}};
      if (!r.values.empty()) e["values"] = r.values;
      a.push_back(std::move(e));
    }
    j["matchExpressions"] = std::move(a);
  }
  return j;
}

std::string object_key(const ObjectMeta& meta) {
  return meta.namespace_.empty() ? meta.name : meta.namespace_ + "/" + meta.name;
}

std::string object_key_of(const json& object) {
  const auto text = [](const json& o, const char* key) {
    const auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (!object.is_object()) return {};
  const auto m = object.find("metadata");
  if (m == object.end() || !m->is_object()) return {};
  ObjectMeta meta;
  meta.name = text(*m, "name");
  meta.namespace_ = text(*m, "namespace");
  return object_key(meta);
}

void check_type(const json& j, std::string_view kind) {
  if (!j.is_object())
    throw Error(Code::kInvalidArgument, fmt::format("{}: must be an object", kind));
  const auto api = j.find("apiVersion");
  const auto k = j.find("kind");
  const std::string found_api = api != j.end() && api->is_string() ? api->get<std::string>() : "";
  const std::string found_kind = k != j.end() && k->is_string() ? k->get<std::string>() : "";
  if (found_kind != kind) {
    throw Error(Code::kInvalidArgument,
                fmt::format("kind: expected \"{}\", found \"{}\"", kind, found_kind));
  }
  if (found_api != kApiVersion) {
    throw Error(Code::kInvalidArgument, fmt::format("apiVersion: {} must be \"{}\", found \"{}\"",
                                                    kind, kApiVersion, found_api));
  }
}

}  // namespace stowage::api
