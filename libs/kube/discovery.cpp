#include "kube/discovery.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/error.h"

namespace stowage::kube {

namespace {

std::string gv_key(std::string_view group, std::string_view version) {
  return group.empty() ? std::string(version) : fmt::format("{}/{}", group, version);
}

std::string gv_path(std::string_view group, std::string_view version) {
  return group.empty() ? fmt::format("/api/{}", version)
                       : fmt::format("/apis/{}/{}", group, version);
}

// A discovery path segment must not change the path's shape.
bool valid_segment(std::string_view s) {
  return !s.empty() && s != "." && s != ".." && s.find_first_of("/?#% ") == std::string_view::npos;
}

}  // namespace

std::set<std::string> parse_group_versions(const nlohmann::json& list) {
  std::set<std::string> out;
  const auto groups = list.find("groups");
  if (!list.is_object() || groups == list.end() || !groups->is_array()) return out;
  for (const auto& group : *groups) {
    const auto versions = group.find("versions");
    if (!group.is_object() || versions == group.end() || !versions->is_array()) continue;
    for (const auto& v : *versions) {
      if (v.is_object() && v.contains("groupVersion") && v["groupVersion"].is_string()) {
        out.insert(v["groupVersion"].get<std::string>());
      }
    }
  }
  return out;
}

std::set<std::string> parse_core_versions(const nlohmann::json& api_versions) {
  std::set<std::string> out;
  const auto versions = api_versions.find("versions");
  if (!api_versions.is_object() || versions == api_versions.end() || !versions->is_array()) {
    return out;
  }
  for (const auto& v : *versions) {
    if (v.is_string()) out.insert(v.get<std::string>());
  }
  return out;
}

std::vector<ApiResourceInfo> parse_resource_list(const nlohmann::json& list, std::string_view group,
                                                 std::string_view version) {
  std::vector<ApiResourceInfo> out;
  const auto resources = list.find("resources");
  if (!list.is_object() || resources == list.end() || !resources->is_array()) return out;
  for (const auto& r : *resources) {
    if (!r.is_object()) continue;
    const std::string name = r.value("name", std::string());
    const std::string kind = r.value("kind", std::string());
    if (name.empty() || kind.empty() || name.find('/') != std::string::npos) continue;
    ApiResourceInfo info;
    info.gvr = {std::string(group), std::string(version), name};
    info.kind = kind;
    info.namespaced = r.value("namespaced", false);
    if (const auto verbs = r.find("verbs"); verbs != r.end() && verbs->is_array()) {
      for (const auto& verb : *verbs) {
        if (verb.is_string()) info.verbs.push_back(verb.get<std::string>());
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

Discovery::Discovery(Client& client, Clock& clock, DiscoveryOptions options)
    : client_(client), clock_(clock), options_(options) {}

void Discovery::invalidate() {
  std::lock_guard lock(mu_);
  versions_.reset();
  resources_.clear();
}

void Discovery::fetch_versions_locked() {
  Versions fresh;
  fresh.fetched = clock_.now();
  for (const std::string& v : parse_core_versions(client_.get_path("/api"))) fresh.served.insert(v);
  const std::set<std::string> groups = parse_group_versions(client_.get_path("/apis"));
  fresh.served.insert(groups.begin(), groups.end());
  versions_ = std::move(fresh);
}

void Discovery::fetch_resources_locked(const std::string& group, const std::string& version) {
  Resources fresh;
  fresh.fetched = clock_.now();
  try {
    fresh.resources =
        parse_resource_list(client_.get_path(gv_path(group, version)), group, version);
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound) throw;
  }
  resources_[gv_key(group, version)] = std::move(fresh);
}

bool Discovery::is_served(std::string_view group, std::string_view version) {
  if ((!group.empty() && !valid_segment(group)) || !valid_segment(version)) return false;
  const std::string key = gv_key(group, version);
  std::lock_guard lock(mu_);
  const Clock::TimePoint now = clock_.now();
  if (!versions_ || now - versions_->fetched >= options_.ttl) fetch_versions_locked();
  if (versions_->served.contains(key)) return true;
  if (now - versions_->fetched >= options_.min_refresh) {
    fetch_versions_locked();
    return versions_->served.contains(key);
  }
  return false;
}

std::optional<ApiResourceInfo> Discovery::resource_for(std::string_view group,
                                                       std::string_view version,
                                                       std::string_view kind) {
  if ((!group.empty() && !valid_segment(group)) || !valid_segment(version)) return std::nullopt;
  const std::string g(group);
  const std::string v(version);
  const std::string key = gv_key(group, version);
  std::lock_guard lock(mu_);
  const auto find = [&]() -> std::optional<ApiResourceInfo> {
    const auto& list = resources_.at(key).resources;
    const auto it = std::find_if(list.begin(), list.end(),
                                 [&](const ApiResourceInfo& r) { return r.kind == kind; });
    if (it == list.end()) return std::nullopt;
    return *it;
  };
  const Clock::TimePoint now = clock_.now();
  auto it = resources_.find(key);
  if (it == resources_.end() || now - it->second.fetched >= options_.ttl) {
    fetch_resources_locked(g, v);
  }
  if (auto found = find()) return found;
  if (now - resources_.at(key).fetched >= options_.min_refresh) {
    fetch_resources_locked(g, v);
    return find();
  }
  return std::nullopt;
}

}  // namespace stowage::kube
