#include "operator/node_cache_specs.h"

#include <initializer_list>
#include <memory>
#include <utility>

#include "api/meta.h"
#include "api/node_cache.h"
#include "base/error.h"
#include "base/sha256.h"
#include "kube/informer.h"

namespace stowage::op {
namespace {

using nlohmann::json;

json trim_status(const json& status) {
  json kept = json::object();
  if (const auto r = status.find("registries"); r != status.end()) {
    kept["registries"] = kube::pick_fields(*r, {"appliedHash", "state", "message"});
  }
  if (const auto r = status.find("runtime"); r != status.end()) {
    kept["runtime"] = kube::pick_fields(*r, {"name"});
  }
  const auto keep_list = [&](const char* list, std::initializer_list<const char*> fields) {
    const auto items = status.find(list);
    if (items == status.end() || !items->is_array()) return;
    json a = json::array();
    for (const json& item : *items) a.push_back(kube::pick_fields(item, fields));
    kept[list] = std::move(a);
  };
  keep_list("images", {"name", "digest", "state", "message"});
  keep_list("exports", {"fileName", "state", "message"});
  return kept;
}

}  // namespace

json NodeCacheSpecs::trim(const json& object) {
  json out = kube::pick_fields(object, {"apiVersion", "kind"});
  if (const auto m = object.find("metadata"); m != object.end()) {
    out["metadata"] = kube::pick_fields(*m, {"name", "uid", "resourceVersion", "ownerReferences"});
  }
  if (const auto spec = object.find("spec"); spec != object.end() && !spec->is_null()) {
    // The stored spec, not a decoded one, is hashed: equal objects share without a re-encode.
    std::string fingerprint = sha256_hex(spec->dump());
    bool held;
    {
      std::lock_guard lock(mu_);
      const auto it = held_.find(fingerprint);
      held = it != held_.end();
      if (held) it->second.seen = clock_.now();
    }
    if (!held) {
      try {
        auto decoded =
            std::make_shared<const api::NodeCacheSpec>(api::node_cache_spec_from_json(*spec));
        std::lock_guard lock(mu_);
        held_.insert_or_assign(fingerprint, Held{std::move(decoded), clock_.now()});
        held = true;
      } catch (const Error&) {
        out["spec"] = *spec;  // decoding it again reports what is wrong
      }
    }
    if (held) out[kSpecFingerprintField] = std::move(fingerprint);
  }
  if (const auto status = object.find("status"); status != object.end() && status->is_object()) {
    out["status"] = trim_status(*status);
  }
  return out;
}

std::optional<CurrentNodeCache> NodeCacheSpecs::current(const json& trimmed) const {
  json shape = trimmed;
  std::string fingerprint;
  if (const auto f = trimmed.find(kSpecFingerprintField); f != trimmed.end()) {
    fingerprint = f->get<std::string>();
    shape.erase(kSpecFingerprintField);
  }
  // Decoded as a whole object, so errors name it (`NodeCache "worker-1": status.images[0]...`).
  api::NodeCache nc = shape.get<api::NodeCache>();
  CurrentNodeCache out;
  out.metadata = std::move(nc.metadata);
  out.status = std::move(nc.status);
  if (fingerprint.empty()) {
    out.spec = std::make_shared<const api::NodeCacheSpec>(std::move(nc.spec));
    return out;
  }
  std::lock_guard lock(mu_);
  const auto held = held_.find(fingerprint);
  if (held == held_.end()) return std::nullopt;
  out.spec = held->second.spec;
  return out;
}

void NodeCacheSpecs::retain(const std::set<std::string>& used, Clock::Duration grace) {
  const Clock::TimePoint now = clock_.now();
  std::lock_guard lock(mu_);
  std::erase_if(held_, [&](const auto& entry) {
    return !used.contains(entry.first) && now - entry.second.seen > grace;
  });
}

std::size_t NodeCacheSpecs::size() const {
  std::lock_guard lock(mu_);
  return held_.size();
}

}  // namespace stowage::op
