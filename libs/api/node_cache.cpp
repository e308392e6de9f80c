#include "api/node_cache.h"

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

constexpr std::array<std::pair<RegistriesState, std::string_view>, 2> kRegistriesStateNames{{
    {RegistriesState::kApplied, "Applied"},
    {RegistriesState::kFailed, "Failed"},
}};
constexpr f::EnumNames<RegistriesState> kRegistriesState{kRegistriesStateNames};

constexpr std::array<std::pair<ImageState, std::string_view>, 4> kImageStateNames{{
    {ImageState::kPresent, "Present"},
    {ImageState::kPulling, "Pulling"},
    {ImageState::kFailed, "Failed"},
    {ImageState::kRemoved, "Removed"},
}};
constexpr f::EnumNames<ImageState> kImageState{kImageStateNames};

constexpr std::array<std::pair<ExportState, std::string_view>, 3> kExportStateNames{{
    {ExportState::kPending, "Pending"},
    {ExportState::kWritten, "Written"},
    {ExportState::kFailed, "Failed"},
}};
constexpr f::EnumNames<ExportState> kExportState{kExportStateNames};

void require(bool present, std::string_view path, std::string_view key) {
  if (!present) f::fail(f::member_path(path, key), "Required value");
}

NodeImage node_image_from_json(const json& j, const std::string& path) {
  NodeImage i;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    if (k == "name") {
      i.name = f::string_value(v, p);
    } else if (k == "digest") {
      i.digest = f::string_value(v, p);
    } else if (k == "pullSecrets") {
      i.pull_secrets = local_refs_from_json(v, p);
    } else if (k == "sources") {
      i.sources = f::strings_value(v, p);
    } else if (k == "sizeBytes") {
      i.size_bytes = f::int64_value(v, p);
    } else {
      return false;
    }
    return true;
  });
  require(!i.name.empty(), path, "name");
  require(!i.digest.empty(), path, "digest");
  return i;
}

NodeExport node_export_from_json(const json& j, const std::string& path) {
  NodeExport e;
  bool has_format = false;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    if (k == "fileName") {
      e.file_name = f::string_value(v, p);
      if (const auto problem = export_file_name_problem(e.file_name)) f::fail(p, *problem);
    } else if (k == "format") {
      e.format = export_format_from_json(v, p);
      has_format = true;
    } else if (k == "images") {
      e.images = f::strings_value(v, p);
    } else if (k == "source") {
      e.source = f::string_value(v, p);
    } else {
      return false;
    }
    return true;
  });
  require(!e.file_name.empty(), path, "fileName");
  require(has_format, path, "format");
  return e;
}

NodeImageStatus image_status_from_json(const json& j, const std::string& path) {
  NodeImageStatus s;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    if (k == "name") {
      s.name = f::string_value(v, p);
    } else if (k == "digest") {
      s.digest = f::string_value(v, p);
    } else if (k == "state") {
      s.state = kImageState.decode(v, p);
    } else if (k == "sizeBytes") {
      s.size_bytes = f::int64_value(v, p);
    } else if (k == "message") {
      s.message = f::string_value(v, p);
    } else if (k == "lastTransitionTime") {
      s.last_transition_time = f::time_value(v, p);
    } else {
      return false;
    }
    return true;
  });
  require(!s.name.empty(), path, "name");
  return s;
}

NodeExportStatus export_status_from_json(const json& j, const std::string& path) {
  NodeExportStatus s;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    if (k == "fileName") {
      s.file_name = f::string_value(v, p);
    } else if (k == "format") {
      s.format = export_format_from_json(v, p);
    } else if (k == "sizeBytes") {
      s.size_bytes = f::int64_value(v, p);
    } else if (k == "sha256") {
      s.sha256 = f::string_value(v, p);
    } else if (k == "state") {
      s.state = kExportState.decode(v, p);
    } else if (k == "message") {
      s.message = f::string_value(v, p);
    } else {
      return false;
    }
    return true;
  });
  require(!s.file_name.empty(), path, "fileName");
  return s;
}

}  // namespace

std::string_view to_string(RegistriesState state) {
  return kRegistriesState.name(state);
}
std::string_view to_string(ImageState state) {
  return kImageState.name(state);
}
std::string_view to_string(ExportState state) {
  return kExportState.name(state);
}

ImageSummary summarize(const NodeCacheSpec& spec, const std::vector<NodeImageStatus>& images) {
  ImageSummary s;
  s.images = static_cast<std::int32_t>(spec.images.size());
  for (const auto& want : spec.images) {
    const auto it = std::find_if(images.begin(), images.end(),
                                 [&](const NodeImageStatus& st) { return st.name == want.name; });
    if (it == images.end() || !it->state) continue;
    switch (*it->state) {
      case ImageState::kPresent:
        if (it->digest == want.digest) {
          ++s.present;
        } else {
          ++s.pulling;  // an older digest is held; the planned one is on its way
        }
        break;
      case ImageState::kPulling: ++s.pulling; break;
      case ImageState::kFailed: ++s.failed; break;
      case ImageState::kRemoved: break;
    }
  }
  return s;
}

NodeCacheSpec node_cache_spec_from_json(const json& j, std::string_view path) {
  NodeCacheSpec s;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    if (k == "registries") {
      NodeRegistries r;
      f::members(v, p, [&](const std::string& rk, const json& rv, const std::string& rp) {
        if (rk == "hash") {
          r.hash = f::string_value(rv, rp);
        } else if (rk == "configMap") {
          r.config_map = f::string_value(rv, rp);
        } else {
          return false;
        }
        return true;
      });
      require(!r.hash.empty(), p, "hash");
      require(!r.config_map.empty(), p, "configMap");
      s.registries = std::move(r);
    } else if (k == "images") {
      s.images = f::list_value<NodeImage>(v, p, node_image_from_json);
      f::require_unique(s.images, p, "name", [](const NodeImage& i) { return i.name; });
    } else if (k == "exports") {
      s.exports = f::list_value<NodeExport>(v, p, node_export_from_json);
      f::require_unique(s.exports, p, "fileName", [](const NodeExport& e) { return e.file_name; });
    } else if (k == "prune") {
      f::members(v, p, [&](const std::string& pk, const json& pv, const std::string& pp) {
        if (pk != "policy") return false;
        s.prune.policy = prune_policy_from_json(pv, pp);
        return true;
      });
    } else {
      return false;
    }
    return true;
  });
  return s;
}

json node_cache_spec_to_json(const NodeCacheSpec& s) {
  json j = json::object();
  if (s.registries) {
    j["registries"] = {{"hash", s.registries->hash}, {"configMap", s.registries->config_map}};
  }
  if (!s.images.empty()) {
    json a = json::array();
    for (const auto& i : s.images) {
      json o = {{"name", i.name}, {"digest", i.digest}};
      if (!i.pull_secrets.empty()) o["pullSecrets"] = local_refs_to_json(i.pull_secrets);
      if (!i.sources.empty()) o["sources"] = i.sources;
      if (i.size_bytes) o["sizeBytes"] = *i.size_bytes;
      a.push_back(std::move(o));
    }
    j["images"] = std::move(a);
  }
  if (!s.exports.empty()) {
    json a = json::array();
    for (const auto& e : s.exports) {
      json o = {{"fileName", e.file_name}, {"format", to_string(e.format)}};
      if (!e.images.empty()) o["images"] = e.images;
      if (!e.source.empty()) o["source"] = e.source;
      a.push_back(std::move(o));
    }
    j["exports"] = std::move(a);
  }
  j["prune"] = {{"policy", to_string(s.prune.policy)}};
  return j;
}

NodeCacheStatus node_cache_status_from_json(const json& j, std::string_view path) {
  NodeCacheStatus s;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    if (k == "observedGeneration") {
      s.observed_generation = f::int64_value(v, p);
    } else if (k == "conditions") {
      s.conditions = conditions_from_json(v, p);
    } else if (k == "registries") {
      NodeRegistriesStatus r;
      f::members(v, p, [&](const std::string& rk, const json& rv, const std::string& rp) {
        if (rk == "appliedHash") {
          r.applied_hash = f::string_value(rv, rp);
        } else if (rk == "state") {
          r.state = kRegistriesState.decode(rv, rp);
        } else if (rk == "message") {
          r.message = f::string_value(rv, rp);
        } else if (rk == "lastTransitionTime") {
          r.last_transition_time = f::time_value(rv, rp);
        } else {
          return false;
        }
        return true;
      });
      s.registries = std::move(r);
    } else if (k == "images") {
      s.images = f::list_value<NodeImageStatus>(v, p, image_status_from_json);
      f::require_unique(s.images, p, "name", [](const NodeImageStatus& i) { return i.name; });
    } else if (k == "exports") {
      s.exports = f::list_value<NodeExportStatus>(v, p, export_status_from_json);
      f::require_unique(s.exports, p, "fileName",
                        [](const NodeExportStatus& e) { return e.file_name; });
    } else if (k == "runtime") {
      RuntimeInfo r;
      f::members(v, p, [&](const std::string& rk, const json& rv, const std::string& rp) {
        if (rk == "name") {
          r.name = f::string_value(rv, rp);
        } else if (rk == "version") {
          r.version = f::string_value(rv, rp);
        } else {
          return false;
        }
        return true;
      });
      s.runtime = std::move(r);
    } else if (k == "store") {
      StoreUsage u;
      f::members(v, p, [&](const std::string& uk, const json& uv, const std::string& up) {
        if (uk == "usedBytes") {
          u.used_bytes = f::int64_value(uv, up);
        } else if (uk == "capacityBytes") {
          u.capacity_bytes = f::int64_value(uv, up);
        } else {
          return false;
        }
        return true;
      });
      s.store = u;
    } else if (k == "summary") {
      ImageSummary sum;
      f::members(v, p, [&](const std::string& sk, const json& sv, const std::string& sp) {
        if (sk == "images") {
          sum.images = f::int32_value(sv, sp);
        } else if (sk == "present") {
          sum.present = f::int32_value(sv, sp);
        } else if (sk == "pulling") {
          sum.pulling = f::int32_value(sv, sp);
        } else if (sk == "failed") {
          sum.failed = f::int32_value(sv, sp);
        } else {
          return false;
        }
        return true;
      });
      s.summary = sum;
    } else {
      return false;
    }
    return true;
  });
  return s;
}

json node_cache_status_to_json(const NodeCacheStatus& s) {
  json j = json::object();
  if (s.observed_generation != 0) j["observedGeneration"] = s.observed_generation;
  if (!s.conditions.empty()) j["conditions"] = conditions_to_json(s.conditions);
  if (s.registries) {
    const auto& r = *s.registries;
    json o = json::object();
    if (!r.applied_hash.empty()) o["appliedHash"] = r.applied_hash;
    if (r.state) o["state"] = to_string(*r.state);
    if (!r.message.empty()) o["message"] = r.message;
    if (r.last_transition_time) {
      o["lastTransitionTime"] = kube::format_rfc3339(*r.last_transition_time);
    }
    j["registries"] = std::move(o);
  }
  if (!s.images.empty()) {
    json a = json::array();
    for (const auto& i : s.images) {
      json o = {{"name", i.name}};
      if (!i.digest.empty()) o["digest"] = i.digest;
      if (i.state) o["state"] = to_string(*i.state);
      if (i.size_bytes) o["sizeBytes"] = *i.size_bytes;
      if (!i.message.empty()) o["message"] = i.message;
      if (i.last_transition_time) {
        o["lastTransitionTime"] = kube::format_rfc3339(*i.last_transition_time);
      }
      a.push_back(std::move(o));
    }
    j["images"] = std::move(a);
  }
  if (!s.exports.empty()) {
    json a = json::array();
    for (const auto& e : s.exports) {
      json o = {{"fileName", e.file_name}};
      if (e.format) o["format"] = to_string(*e.format);
      if (e.size_bytes) o["sizeBytes"] = *e.size_bytes;
      if (!e.sha256.empty()) o["sha256"] = e.sha256;
      if (e.state) o["state"] = to_string(*e.state);
      if (!e.message.empty()) o["message"] = e.message;
      a.push_back(std::move(o));
    }
    j["exports"] = std::move(a);
  }
  if (s.runtime) {
    json o = json::object();
    if (!s.runtime->name.empty()) o["name"] = s.runtime->name;
    if (!s.runtime->version.empty()) o["version"] = s.runtime->version;
    j["runtime"] = std::move(o);
  }
  if (s.store) {
    json o = json::object();
    if (s.store->used_bytes) o["usedBytes"] = *s.store->used_bytes;
    if (s.store->capacity_bytes) o["capacityBytes"] = *s.store->capacity_bytes;
    j["store"] = std::move(o);
  }
  if (s.summary) {
    j["summary"] = {{"images", s.summary->images},
                    {"present", s.summary->present},
                    {"pulling", s.summary->pulling},
                    {"failed", s.summary->failed}};
  }
  return j;
}

void to_json(json& j, const NodeCache& nc) {
  j = {{"apiVersion", kApiVersion},
       {"kind", kNodeCacheKind},
       {"metadata", object_meta_to_json(nc.metadata)},
       {"spec", node_cache_spec_to_json(nc.spec)}};
  if (nc.status != NodeCacheStatus{}) j["status"] = node_cache_status_to_json(nc.status);
}

void from_json(const json& j, NodeCache& nc) {
  check_type(j, kNodeCacheKind);
  NodeCache out;
  const std::string key = object_key_of(j);
  try {
    if (const auto m = j.find("metadata"); m != j.end() && !m->is_null()) {
      out.metadata = object_meta_from_json(*m);
    }
    if (const auto s = j.find("spec"); s != j.end() && !s->is_null()) {
      out.spec = node_cache_spec_from_json(*s);
    }
    if (const auto st = j.find("status"); st != j.end() && !st->is_null()) {
      out.status = node_cache_status_from_json(*st);
    }
  } catch (const Error& e) {
    throw e.wrap(fmt::format("{} \"{}\"", kNodeCacheKind, key));
  }
  nc = std::move(out);
}

}  // namespace stowage::api
