#include "operator/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "api/registries_config_map.h"
#include "base/error.h"
#include "base/sha256.h"
#include "operator/delivery.h"
#include "operator/status_text.h"
#include "reference/reference.h"
#include "registries/render.h"
#include "registries/spec.h"

namespace stowage::op {
namespace {

constexpr std::size_t kMaxFailures = 20;  // status.failures of both kinds
constexpr std::size_t kMaxWarnings = 32;  // RegistryConfig status.warnings
constexpr std::size_t kMaxSecretName = 253;
constexpr std::string_view kPullSecretPrefix = "stowage-pull-";
constexpr std::string_view kReasonApplied = "Applied";
constexpr std::string_view kReasonNotResolvedYet = "NotResolvedYet";
constexpr std::string_view kReasonInvalidReference = "InvalidReference";
constexpr std::string_view kReasonInvalidDigest = "InvalidDigest";
constexpr std::string_view kReasonPullFailed = "PullFailed";
constexpr std::string_view kReasonExportFailed = "ExportFailed";

using registries::RenderedFile;

// One merged and rendered configuration: the files of every runtime in one ConfigMap.
struct Rendered {
  bool ok = false;
  std::string hash{};
  std::map<std::string, std::string> data{};
  std::string error{};
};

Rendered render_group(const std::vector<const api::RegistryConfig*>& configs) {
  Rendered r;
  try {
    std::vector<registries::NamedRegistryConfig> named;
    named.reserve(configs.size());
    for (const auto* rc : configs) named.push_back(api::named(*rc));
    const registries::Config merged = registries::merge_registry_configs(std::move(named));
    std::vector<RenderedFile> files =
        registries::render(merged, registries::RenderFormat::kV2DropIn).files;
    for (auto& f : registries::render(merged, registries::RenderFormat::kContainerd).files) {
      files.push_back(std::move(f));
    }
    std::sort(files.begin(), files.end(),
              [](const RenderedFile& a, const RenderedFile& b) { return a.path < b.path; });
    Sha256 h;
    for (const auto& f : files) {
      h.update(f.path);
      h.update(std::string_view("\0", 1));
      h.update(f.content);
      h.update(std::string_view("\0", 1));
    }
    r.hash = h.finish_hex();
    r.data = api::registries_config_map_data(files);
    r.ok = true;
  } catch (const Error& e) {
    r.error = e.what();
  }
  return r;
}

// One RegistryConfig alone: whether it is valid, and what containerd cannot express of it.
struct OwnCheck {
  std::string error{};
  std::vector<std::string> containerd_warnings{};
};

OwnCheck check_own(const api::RegistryConfig& rc) {
  OwnCheck c;
  try {
    const registries::Config config = registries::spec_to_config(api::named(rc));
    c.containerd_warnings =
        registries::render(config, registries::RenderFormat::kContainerd).warnings;
  } catch (const Error& e) {
    c.error = e.what();
  }
  return c;
}

// Where an ImageCache image's digest comes from.
struct Resolution {
  std::optional<std::string> digest{};
  std::optional<std::int64_t> size{};  // bytes a pull of `digest` downloads, when measured
  std::string reason{};
  std::string message{};
  std::string repository{};  // the name without tag or digest, for export entries
};

Resolution resolve(const std::string& name, const std::string& image_cache,
                   const PlannerInput& in) {
  Resolution r;
  Reference ref;
  try {
    ref = Reference::parse(name);
  } catch (const Error& e) {
    r.reason = kReasonInvalidReference;
    r.message = e.what();
    return r;
  }
  r.repository = ref.name();
  const auto own = in.resolutions.find(image_cache);
  // A size is taken from the map its digest came from; a negative one is no measurement.
  const auto size_in = [&name](const std::map<std::string, std::int64_t>& sizes) {
    const auto it = sizes.find(name);
    return it != sizes.end() && it->second >= 0 ? std::optional<std::int64_t>(it->second)
                                                : std::nullopt;
  };
  if (ref.digest) {
    r.digest = ref.digest;
    if (own != in.resolutions.end()) r.size = size_in(own->second.sizes);
    if (!r.size) r.size = size_in(in.sizes);
    return r;
  }
  // The ImageCache's own result first, then the cluster-wide maps.
  const std::string* digest = nullptr;
  const Unresolved* failure = nullptr;
  std::optional<std::int64_t> size;
  if (own != in.resolutions.end()) {
    if (const auto it = own->second.digests.find(name); it != own->second.digests.end()) {
      digest = &it->second;
      size = size_in(own->second.sizes);
    } else if (const auto u = own->second.unresolved.find(name);
               u != own->second.unresolved.end()) {
      failure = &u->second;
    }
  }
  if (digest == nullptr && failure == nullptr) {
    if (const auto it = in.digests.find(name); it != in.digests.end()) {
      digest = &it->second;
      size = size_in(in.sizes);
    } else if (const auto u = in.unresolved.find(name); u != in.unresolved.end()) {
      failure = &u->second;
    }
  }
  if (digest != nullptr) {
    if (Digest::is_valid(*digest)) {
      r.digest = *digest;
      r.size = size;
    } else {
      r.reason = kReasonInvalidDigest;
      r.message = fmt::format("resolved to an invalid digest \"{}\"", *digest);
    }
    return r;
  }
  if (failure != nullptr) {
    r.reason = failure->reason.empty() ? std::string(kReasonNotResolvedYet) : failure->reason;
    r.message = failure->message;
    return r;
  }
  r.reason = kReasonNotResolvedYet;
  r.message = "the tag has not been resolved to a digest yet";
  return r;
}

void sort_unique(std::vector<std::string>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

// What the node-level pass learns about one RegistryConfig.
struct RegistryConfigFacts {
  std::vector<std::string> matched{};         // node names
  std::set<std::string> merge_errors{};       // of its nodes' merged configurations
  std::vector<std::string> conflict_nodes{};  // also under MachineConfig delivery
  std::set<std::string> conflict_with{};      // those MachineConfig RegistryConfigs
};

// An export a later ImageCache could not have on one node.
struct ExportConflict {
  std::string file_name{};
  std::string first{};  // the ImageCache that claimed it
  std::string node{};
};

struct ImageCacheFacts {
  std::vector<std::string> selected{};    // node names
  std::vector<Resolution> resolutions{};  // per spec image
  std::vector<ExportConflict> conflicts{};
  std::set<std::string> exporting_nodes{};  // nodes where its export is planned
};

// The per-node state the statuses read.
struct NodeState {
  const PlannerNode* node = nullptr;
  const CurrentNodeCache* current = nullptr;
  bool agent_registries = false;        // registries delivered by the agent
  std::optional<std::string> target{};  // the rendering it should end up with
  std::size_t rollout_index = 0;        // into the rollout's nodes when agent_registries
};

bool node_failed(const CurrentNodeCache* nc) {
  return nc != nullptr && nc->status.registries && nc->status.registries->state &&
         *nc->status.registries->state == api::RegistriesState::kFailed;
}

std::string applied_hash(const CurrentNodeCache* nc) {
  return nc != nullptr && nc->status.registries ? nc->status.registries->applied_hash : "";
}

bool runs_crio(const CurrentNodeCache* nc) {
  return nc != nullptr && nc->status.runtime && nc->status.runtime->name == "cri-o";
}

const api::NodeImageStatus* image_status(const CurrentNodeCache* nc, const std::string& name) {
  if (nc == nullptr) return nullptr;
  for (const auto& s : nc->status.images) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const api::NodeExportStatus* export_status(const CurrentNodeCache* nc, const std::string& file) {
  if (nc == nullptr) return nullptr;
  for (const auto& s : nc->status.exports) {
    if (s.file_name == file) return &s;
  }
  return nullptr;
}

api::RegistryConfigStatus registry_config_status(const api::RegistryConfig& rc,
                                                 const RegistryConfigFacts& facts,
                                                 const OwnCheck& own,
                                                 const std::map<std::string, NodeState>& nodes,
                                                 const RolloutResult& rollout, api::Time now) {
  const std::int64_t gen = rc.metadata.generation;
  api::RegistryConfigStatus st;
  st.observed_generation = gen;
  st.conditions = rc.status.conditions;
  st.machine_configs = rc.status.machine_configs;
  st.nodes.matched = static_cast<std::int32_t>(facts.matched.size());

  std::map<std::string, int> target_counts;
  bool all_crio = !facts.matched.empty();
  std::vector<std::string> failed_nodes;
  int pending = 0;
  for (const auto& name : facts.matched) {
    const NodeState& ns = nodes.at(name);
    if (!runs_crio(ns.current)) all_crio = false;
    if (!ns.agent_registries) continue;
    if (ns.target) ++target_counts[*ns.target];
    if (node_failed(ns.current)) {
      ++st.nodes.failed;
      failed_nodes.push_back(name);
      if (st.failures.size() < kMaxFailures) {
        st.failures.push_back({name, ns.current->status.registries->message});
      }
    } else if (ns.target && applied_hash(ns.current) == *ns.target) {
      ++st.nodes.updated;
    } else {
      ++pending;
    }
  }
  for (const auto& [hash, count] : target_counts) {
    if (st.rendered_hash.empty() || count > target_counts.at(st.rendered_hash))
      st.rendered_hash = hash;
  }
  if (!all_crio) {
    st.warnings = own.containerd_warnings;
    sort_unique(st.warnings);
    if (st.warnings.size() > kMaxWarnings) st.warnings.resize(kMaxWarnings);
  }

  std::vector<std::string> degraded;
  std::string_view reason;
  if (!own.error.empty() || !facts.merge_errors.empty()) {
    reason = kReasonInvalidConfig;
    if (!own.error.empty()) degraded.push_back(own.error);
    for (const auto& e : facts.merge_errors) {
      if (e != own.error) degraded.push_back(e);
    }
  }
  if (!facts.conflict_nodes.empty()) {
    if (reason.empty()) reason = kReasonDeliveryConflict;
    degraded.push_back(fmt::format(
        "nodes {} also get registries configuration through MachineConfig from RegistryConfig {}: "
        "the agent does not write registries files there",
        list_some(facts.conflict_nodes),
        quoted_list({facts.conflict_with.begin(), facts.conflict_with.end()})));
  }
  if (!failed_nodes.empty()) {
    if (reason.empty()) reason = kReasonNodeFailed;
    const NodeState& first = nodes.at(failed_nodes.front());
    degraded.push_back(fmt::format(
        "node \"{}\" failed to apply the registries configuration: {}{}; rollout stopped",
        failed_nodes.front(), first.current->status.registries->message,
        failed_nodes.size() > 1 ? fmt::format(" ({} nodes failed)", failed_nodes.size()) : ""));
  }
  const bool is_degraded = !degraded.empty();
  api::set_condition(st.conditions,
                     condition(api::kConditionDegraded, is_degraded,
                               is_degraded ? reason : kReasonAsExpected, join(degraded, "; "), gen),
                     now);
  if (pending > 0 && rollout.halted()) {
    api::set_condition(
        st.conditions,
        condition(api::kConditionProgressing, false, kReasonRolloutHalted,
                  fmt::format("{} of {} nodes updated; rollout stopped while nodes {} report "
                              "Failed",
                              st.nodes.updated, st.nodes.matched, list_some(rollout.failed)),
                  gen),
        now);
  } else if (pending > 0) {
    api::set_condition(
        st.conditions,
        condition(api::kConditionProgressing, true, kReasonRollingOut,
                  fmt::format("{} of {} nodes updated", st.nodes.updated, st.nodes.matched), gen),
        now);
  } else {
    api::set_condition(
        st.conditions,
        condition(api::kConditionProgressing, false, kReasonComplete,
                  fmt::format("{} of {} nodes updated", st.nodes.updated, st.nodes.matched), gen),
        now);
  }
  const bool ready = !is_degraded && pending == 0;
  api::set_condition(
      st.conditions,
      condition(api::kConditionReady, ready,
                ready ? kReasonApplied : (is_degraded ? reason : kReasonRollingOut),
                fmt::format("{} of {} nodes updated", st.nodes.updated, st.nodes.matched), gen),
      now);
  return st;
}

api::ImageCacheStatus image_cache_status(const api::ImageCache& ic, const ImageCacheFacts& facts,
                                         const std::map<std::string, NodeState>& nodes,
                                         const std::map<std::string, SharedSpec>& specs,
                                         const std::vector<PullSecretProblem>& secret_problems,
                                         api::Time now) {
  const std::int64_t gen = ic.metadata.generation;
  api::ImageCacheStatus st;
  st.observed_generation = gen;
  st.conditions = ic.status.conditions;
  st.nodes.total = static_cast<std::int32_t>(facts.selected.size());
  for (std::size_t i = 0; i < ic.spec.images.size(); ++i) {
    st.images.push_back(
        {ic.spec.images[i].name, facts.resolutions[i].digest.value_or(""), 0, st.nodes.total});
  }
  std::vector<api::ImageFailure> failures;
  std::vector<std::string> failed_nodes;
  for (const auto& node : facts.selected) {
    const CurrentNodeCache* nc = nodes.at(node).current;
    const api::NodeCacheSpec& spec = *specs.at(node);
    bool ready = true;
    bool failed = false;
    for (std::size_t i = 0; i < ic.spec.images.size(); ++i) {
      const std::string& name = ic.spec.images[i].name;
      const auto planned = std::find_if(spec.images.begin(), spec.images.end(),
                                        [&](const api::NodeImage& m) { return m.name == name; });
      const api::NodeImageStatus* s = image_status(nc, name);
      if (planned != spec.images.end() && s != nullptr && s->state &&
          *s->state == api::ImageState::kPresent && s->digest == planned->digest) {
        ++st.images[i].nodes_ready;
        continue;
      }
      ready = false;
      if (planned != spec.images.end() && s != nullptr && s->state &&
          *s->state == api::ImageState::kFailed) {
        failed = true;
        failures.push_back({node, name, std::string(kReasonPullFailed), s->message});
      }
    }
    if (ic.spec.export_ && facts.exporting_nodes.contains(node)) {
      const api::NodeExportStatus* s = export_status(nc, ic.spec.export_->file_name);
      if (s == nullptr || !s->state || *s->state != api::ExportState::kWritten) ready = false;
      if (s != nullptr && s->state && *s->state == api::ExportState::kFailed) {
        failed = true;
        failures.push_back(
            {node, ic.spec.export_->file_name, std::string(kReasonExportFailed), s->message});
      }
    }
    if (failed) {
      ++st.nodes.failed;
      failed_nodes.push_back(node);
    } else if (ready) {
      ++st.nodes.ready;
    } else {
      ++st.nodes.pulling;
    }
  }
  std::sort(failures.begin(), failures.end(), [](const auto& a, const auto& b) {
    return std::tie(a.node, a.image) < std::tie(b.node, b.image);
  });
  st.failures.assign(failures.begin(), failures.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                              failures.size(), kMaxFailures)));

  std::vector<std::string> degraded;
  std::string_view reason;
  if (!facts.conflicts.empty()) {
    reason = kReasonExportConflict;
    const ExportConflict& c = facts.conflicts.front();
    std::vector<std::string> on;
    for (const auto& x : facts.conflicts) on.push_back(x.node);
    degraded.push_back(fmt::format(
        "export fileName \"{}\" is already claimed by ImageCache \"{}\" on nodes {}: no export "
        "is written there for this ImageCache",
        c.file_name, c.first, list_some(on)));
  }
  if (!secret_problems.empty()) {
    if (reason.empty()) reason = kReasonPullSecretUnavailable;
    std::vector<std::string> parts;
    for (const auto& p : secret_problems) parts.push_back(p.message);
    degraded.push_back(fmt::format("pull secrets not used: {}", list_some(parts)));
  }
  std::vector<std::string> unresolved;
  for (std::size_t i = 0; i < ic.spec.images.size(); ++i) {
    const Resolution& r = facts.resolutions[i];
    if (r.digest) continue;
    unresolved.push_back(fmt::format("{}: {}{}", ic.spec.images[i].name, r.reason,
                                     r.message.empty() ? "" : ": " + r.message));
  }
  if (!unresolved.empty()) {
    if (reason.empty()) reason = kReasonImagesUnresolved;
    degraded.push_back(fmt::format("images without a digest: {}", list_some(unresolved)));
  }
  if (!failed_nodes.empty()) {
    if (reason.empty()) reason = kReasonNodeFailures;
    const auto& f = failures.front();
    degraded.push_back(fmt::format("{} of {} nodes failed: node \"{}\": \"{}\": {}",
                                   failed_nodes.size(), st.nodes.total, f.node, f.image,
                                   f.message));
  }
  const bool is_degraded = !degraded.empty();
  api::set_condition(st.conditions,
                     condition(api::kConditionDegraded, is_degraded,
                               is_degraded ? reason : kReasonAsExpected, join(degraded, "; "), gen),
                     now);
  const std::string counts =
      fmt::format("{} of {} nodes ready, {} pulling, {} failed", st.nodes.ready, st.nodes.total,
                  st.nodes.pulling, st.nodes.failed);
  api::set_condition(
      st.conditions,
      condition(api::kConditionProgressing, st.nodes.pulling > 0,
                st.nodes.pulling > 0 ? kReasonPulling : kReasonComplete, counts, gen),
      now);
  const bool ready = !is_degraded && st.nodes.ready == st.nodes.total;
  api::set_condition(
      st.conditions,
      condition(api::kConditionReady, ready,
                ready ? kReasonAllNodesReady : (is_degraded ? reason : kReasonPulling), counts,
                gen),
      now);
  return st;
}

// One copy of each distinct planned spec.
class SpecPool {
 public:
  // `spec`, or an equal one planned before, or `current` when equal (a node whose plan does not
  // change keeps sharing what it shares now).
  SharedSpec intern(api::NodeCacheSpec spec, const SharedSpec& current) {
    if (current != nullptr && *current == spec) return current;
    const std::size_t h = hash_of(spec);
    const auto [first, last] = by_hash_.equal_range(h);
    for (auto it = first; it != last; ++it) {
      if (*it->second == spec) return it->second;
    }
    auto shared = std::make_shared<const api::NodeCacheSpec>(std::move(spec));
    by_hash_.emplace(h, shared);
    return shared;
  }

 private:
  static std::size_t hash_of(const api::NodeCacheSpec& spec) {
    std::size_t h = 0;
    const auto mix = [&h](std::string_view v) {
      h ^= std::hash<std::string_view>{}(v) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    };
    if (spec.registries) mix(spec.registries->hash);
    for (const auto& image : spec.images) {
      mix(image.name);
      mix(image.digest);
      for (const auto& source : image.sources) mix(source);
    }
    for (const auto& e : spec.exports) mix(e.file_name);
    return h;
  }

  std::unordered_multimap<std::size_t, SharedSpec> by_hash_;
};

}  // namespace

std::string synced_pull_secret_name(std::string_view namespace_, std::string_view name) {
  std::string out = fmt::format("{}{}.{}", kPullSecretPrefix, namespace_, name);
  if (out.size() <= kMaxSecretName) return out;
  return std::string(kPullSecretPrefix) +
         sha256_hex(fmt::format("{}/{}", namespace_, name)).substr(0, 40);
}

bool claims_before(const api::ImageCache& a, const api::ImageCache& b) {
  return std::tie(a.metadata.creation_timestamp, a.metadata.namespace_, a.metadata.name) <
         std::tie(b.metadata.creation_timestamp, b.metadata.namespace_, b.metadata.name);
}

Plan plan_cluster(const PlannerInput& in) {
  Plan plan;

  // Inputs in a deterministic order.
  std::vector<const PlannerNode*> nodes;
  for (const auto& n : in.nodes) nodes.push_back(&n);
  std::sort(nodes.begin(), nodes.end(),
            [](const auto* a, const auto* b) { return a->name < b->name; });
  std::map<std::string, const CurrentNodeCache*> current;
  for (const auto& nc : in.node_caches) current[nc.metadata.name] = &nc;

  std::vector<const api::RegistryConfig*> agent_configs;
  std::vector<const api::RegistryConfig*> machine_configs;
  for (const auto& rc : in.registry_configs) {
    if (rc.metadata.deletion_timestamp) continue;
    (machine_config_delivery(rc.spec, in.machine_config_api) ? machine_configs : agent_configs)
        .push_back(&rc);
  }
  const auto by_name = [](const auto* a, const auto* b) {
    return a->metadata.name < b->metadata.name;
  };
  std::sort(agent_configs.begin(), agent_configs.end(), by_name);
  std::sort(machine_configs.begin(), machine_configs.end(), by_name);

  std::vector<const api::ImageCache*> caches;
  for (const auto& ic : in.image_caches) {
    if (!ic.metadata.deletion_timestamp) caches.push_back(&ic);
  }
  std::sort(caches.begin(), caches.end(),
            [](const auto* a, const auto* b) { return claims_before(*a, *b); });

  // Registries: per node the agent-delivered RegistryConfigs it matches, merged and rendered
  // once per distinct set.
  std::map<std::string, RegistryConfigFacts> rc_facts;
  std::map<std::string, Rendered> renderings;  // by the joined names of the set
  std::map<std::string, const Rendered*> by_hash;
  std::map<std::string, NodeState> states;
  std::vector<RolloutNode> rollout_nodes;
  for (const PlannerNode* node : nodes) {
    NodeState& ns = states[node->name];
    ns.node = node;
    const auto cur = current.find(node->name);
    ns.current = cur == current.end() ? nullptr : cur->second;

    std::vector<const api::RegistryConfig*> matched;
    std::string key;
    for (const auto* rc : agent_configs) {
      if (!registries::selector_matches(rc->spec.node_selector, node->labels)) continue;
      matched.push_back(rc);
      key += rc->metadata.name + '\n';
      rc_facts[rc->metadata.name].matched.push_back(node->name);
    }
    std::vector<std::string> mc_matched;
    for (const auto* rc : machine_configs) {
      if (registries::selector_matches(rc->spec.node_selector, node->labels)) {
        mc_matched.push_back(rc->metadata.name);
      }
    }
    if (!mc_matched.empty()) {
      for (const auto* rc : matched) {
        auto& f = rc_facts[rc->metadata.name];
        f.conflict_nodes.push_back(node->name);
        f.conflict_with.insert(mc_matched.begin(), mc_matched.end());
      }
      continue;
    }
    auto it = renderings.find(key);
    if (it == renderings.end()) it = renderings.emplace(key, render_group(matched)).first;
    const Rendered& rendered = it->second;
    std::optional<std::string> spec_hash;
    if (ns.current != nullptr && ns.current->spec->registries) {
      spec_hash = ns.current->spec->registries->hash;
    }
    if (rendered.ok) {
      ns.target = rendered.hash;
      by_hash.emplace(rendered.hash, &rendered);
    } else {
      ns.target = spec_hash;  // an invalid configuration never reaches a node
      for (const auto* rc : matched)
        rc_facts[rc->metadata.name].merge_errors.insert(rendered.error);
    }
    ns.agent_registries = true;
    ns.rollout_index = rollout_nodes.size();
    rollout_nodes.push_back(
        {node->name, spec_hash, ns.target, applied_hash(ns.current), node_failed(ns.current)});
  }
  plan.rollout = pace(rollout_nodes, in.max_unavailable.resolve(rollout_nodes.size()));

  // Images and exports, per node.
  std::map<std::string, ImageCacheFacts> ic_facts;
  for (const auto* ic : caches) {
    auto& f = ic_facts[api::object_key(ic->metadata)];
    for (const auto& img : ic->spec.images) {
      f.resolutions.push_back(resolve(img.name, api::object_key(ic->metadata), in));
    }
  }
  std::map<std::string, SharedSpec> specs;
  SpecPool pool;
  std::set<std::string> referenced;  // hashes a NodeCache names now or will
  for (const auto& nc : in.node_caches) {
    // A NodeCache without a node keeps its rendering until it is garbage-collected; the others
    // name what they are planned to name.
    if (nc.spec->registries && !states.contains(nc.metadata.name)) {
      referenced.insert(nc.spec->registries->hash);
    }
  }
  for (const PlannerNode* node : nodes) {
    const NodeState& ns = states.at(node->name);
    api::NodeCacheSpec spec;
    if (ns.agent_registries) {
      if (const auto& next = plan.rollout.next[ns.rollout_index]) {
        spec.registries = api::NodeRegistries{*next, api::registries_config_map_name(*next)};
        referenced.insert(*next);
      }
      if (ns.target) referenced.insert(*ns.target);
    }

    std::map<std::string, api::NodeImage> images;
    std::map<std::string, std::string> claimed;  // export file name -> ImageCache
    bool never_prune = false;
    for (const auto* ic : caches) {
      if (!registries::selector_matches(ic->spec.node_selector, node->labels)) continue;
      const std::string source = api::object_key(ic->metadata);
      ImageCacheFacts& facts = ic_facts[source];
      facts.selected.push_back(node->name);
      if (ic->spec.prune == api::PrunePolicy::kNever) never_prune = true;
      std::vector<api::LocalObjectReference> secrets;
      const auto problems = in.pull_secret_problems.find(source);
      for (const auto& s : ic->spec.image_pull_secrets) {
        if (problems != in.pull_secret_problems.end() &&
            std::any_of(problems->second.begin(), problems->second.end(),
                        [&](const PullSecretProblem& p) { return p.name == s.name; })) {
          continue;  // unusable: the node pulls without it, as kubelet does
        }
        secrets.push_back({synced_pull_secret_name(ic->metadata.namespace_, s.name)});
      }
      std::vector<std::string> export_images;
      for (std::size_t i = 0; i < ic->spec.images.size(); ++i) {
        const std::string& name = ic->spec.images[i].name;
        const Resolution& r = facts.resolutions[i];
        std::optional<std::string> digest = r.digest;
        std::optional<std::int64_t> size = r.size;
        if (ns.current != nullptr) {
          for (const auto& prev : ns.current->spec->images) {
            if (prev.name != name || prev.digest.empty()) continue;
            // Keep what the node was told before rather than dropping (and pruning) the image;
            // a size measured for a digest stays with it while no new measure comes.
            if (!digest) digest = prev.digest;
            if (!size && prev.digest == *digest) size = prev.size_bytes;
          }
        }
        if (!digest) continue;
        api::NodeImage& entry = images[name];
        if (entry.name.empty()) {
          entry.name = name;
          entry.digest = *digest;
        }
        if (!entry.size_bytes && entry.digest == *digest) entry.size_bytes = size;
        entry.sources.push_back(source);
        entry.pull_secrets.insert(entry.pull_secrets.end(), secrets.begin(), secrets.end());
        if (!r.repository.empty()) {
          std::string item = r.repository + "@" + entry.digest;
          if (std::find(export_images.begin(), export_images.end(), item) == export_images.end()) {
            export_images.push_back(std::move(item));
          }
        }
      }
      if (ic->spec.export_) {
        const std::string& file = ic->spec.export_->file_name;
        const auto [it, inserted] = claimed.emplace(file, source);
        if (!inserted) {
          facts.conflicts.push_back({file, it->second, node->name});
        } else {
          facts.exporting_nodes.insert(node->name);
          spec.exports.push_back(
              {file, ic->spec.export_->format, std::move(export_images), source});
        }
      }
    }
    for (auto& [name, entry] : images) {
      sort_unique(entry.sources);
      std::sort(entry.pull_secrets.begin(), entry.pull_secrets.end(),
                [](const auto& a, const auto& b) { return a.name < b.name; });
      entry.pull_secrets.erase(std::unique(entry.pull_secrets.begin(), entry.pull_secrets.end()),
                               entry.pull_secrets.end());
      spec.images.push_back(std::move(entry));
    }
    std::sort(spec.exports.begin(), spec.exports.end(),
              [](const auto& a, const auto& b) { return a.file_name < b.file_name; });
    spec.prune.policy = never_prune ? api::PrunePolicy::kNever : api::PrunePolicy::kOnRemoval;

    PlannedNodeCache out;
    out.name = node->name;
    api::OwnerReference owner;
    owner.api_version = "v1";
    owner.kind = "Node";
    owner.name = node->name;
    owner.uid = node->uid;
    owner.controller = true;
    out.owner_references.push_back(std::move(owner));
    out.spec = pool.intern(std::move(spec), ns.current != nullptr ? ns.current->spec : nullptr);
    out.write = ns.current == nullptr ||
                (ns.current->spec != out.spec && *ns.current->spec != *out.spec) ||
                ns.current->metadata.owner_references != out.owner_references;
    specs.emplace(node->name, out.spec);
    plan.node_caches.push_back(std::move(out));
  }

  // ConfigMaps: every rendering in use or headed for; the rest of ours go.
  std::set<std::string> existing;
  for (const auto& name : in.config_maps) existing.insert(name);
  for (const auto& [hash, rendered] : by_hash) {
    if (!referenced.contains(hash)) continue;
    PlannedConfigMap cm;
    cm.name = api::registries_config_map_name(hash);
    cm.hash = hash;
    cm.data = rendered->data;
    cm.create = !existing.contains(cm.name);
    plan.config_maps.push_back(std::move(cm));
  }
  for (const auto& name : existing) {
    const auto hash = api::hash_from_registries_config_map_name(name);
    if (hash && !referenced.contains(*hash)) plan.config_maps_to_delete.push_back(name);
  }

  // Statuses.
  for (const auto* rc : agent_configs) {
    const RegistryConfigFacts& facts = rc_facts[rc->metadata.name];
    PlannedRegistryConfigStatus out;
    out.name = rc->metadata.name;
    out.status = registry_config_status(*rc, facts, check_own(*rc), states, plan.rollout, in.now);
    out.changed = out.status != rc->status;
    plan.registry_configs.push_back(std::move(out));
  }
  std::sort(caches.begin(), caches.end(), [](const auto* a, const auto* b) {
    return std::tie(a->metadata.namespace_, a->metadata.name) <
           std::tie(b->metadata.namespace_, b->metadata.name);
  });
  for (const auto* ic : caches) {
    PlannedImageCacheStatus out;
    out.namespace_ = ic->metadata.namespace_;
    out.name = ic->metadata.name;
    const std::string key = api::object_key(ic->metadata);
    const auto problems = in.pull_secret_problems.find(key);
    out.status = image_cache_status(*ic, ic_facts.at(key), states, specs,
                                    problems == in.pull_secret_problems.end()
                                        ? std::vector<PullSecretProblem>{}
                                        : problems->second,
                                    in.now);
    out.changed = out.status != ic->status;
    plan.image_caches.push_back(std::move(out));
  }
  return plan;
}

bool PlannedNodeCache::operator==(const PlannedNodeCache& o) const {
  return name == o.name && owner_references == o.owner_references && write == o.write &&
         (spec == o.spec || (spec != nullptr && o.spec != nullptr && *spec == *o.spec));
}

CurrentNodeCache current_node_cache(const api::NodeCache& nc) {
  return {nc.metadata, std::make_shared<const api::NodeCacheSpec>(nc.spec), nc.status};
}

}  // namespace stowage::op
