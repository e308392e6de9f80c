// The operator's NodeCache cache, kept small at thousands of nodes: the informer holds each
// NodeCache with its spec replaced by a fingerprint and the agent's status trimmed to what the
// planner reads; the specs themselves are held here, one copy per distinct spec (most nodes
// share theirs with many others).
//   NodeCacheSpecs specs(clock);
//   informer_options.transform = [&](const json& o) { return specs.trim(o); };
//   std::optional<CurrentNodeCache> c = specs.current(*informer.get("", "worker-1"));
// Thread-safe: trim() runs on the informer's thread, the rest on the reconcile thread.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "base/clock.h"
#include "operator/planner.h"

namespace stowage::op {

// The member trim() puts in place of a decodable spec.
inline constexpr const char* kSpecFingerprintField = "specFingerprint";

class NodeCacheSpecs {
 public:
  // `clock` is borrowed and must outlive this.
  explicit NodeCacheSpecs(Clock& clock) : clock_(clock) {}

  // What the informer keeps of a NodeCache: apiVersion, kind, metadata (name, uid,
  // resourceVersion, ownerReferences), the spec's fingerprint (the spec is held here; a spec
  // that does not decode stays in place, so decoding reports it), and of the status only
  // registries, runtime.name, and the name, digest, state and message of images and exports.
  nlohmann::json trim(const nlohmann::json& object);

  // A trimmed NodeCache as the planner reads it; std::nullopt when its spec is no longer held
  // (dropped by retain() while the object was being stored: read the object again and trim it).
  // Throws InvalidArgument, naming the object and field, for an undecodable object.
  std::optional<CurrentNodeCache> current(const nlohmann::json& trimmed) const;

  // Drops the specs no fingerprint in `used` names and that trim() last saw longer than `grace`
  // ago (a younger one may belong to an object the informer is storing right now).
  void retain(const std::set<std::string>& used, Clock::Duration grace);

  // Distinct specs held.
  std::size_t size() const;

 private:
  struct Held {
    SharedSpec spec;
    Clock::TimePoint seen;
  };

  Clock& clock_;
  mutable std::mutex mu_;             // guards held_
  std::map<std::string, Held> held_;  // by fingerprint
};

}  // namespace stowage::op
