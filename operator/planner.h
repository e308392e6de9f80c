// The operator's planner: a pure function from what the cluster holds (nodes, RegistryConfigs,
// ImageCaches, the digests and sizes the operator resolved, the current NodeCaches and registries
// ConfigMaps) to what it should hold (every node's NodeCache spec, the rendered registries
// ConfigMaps, the ConfigMaps no longer needed, and the status of every RegistryConfig and
// ImageCache). The caller writes what is flagged: first the ConfigMaps to create, then the
// NodeCaches with `write`, the statuses with `changed`, and last the ConfigMaps to delete.
// Planning again after those writes yields no writes.
//   PlannerInput in{.nodes = ..., ...};
//   Plan plan = plan_cluster(in);
// No I/O and no clock of its own (`now` is an input); safe to call from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/image_cache.h"
#include "api/meta.h"
#include "api/node_cache.h"
#include "api/registry_config.h"
#include "operator/rollout.h"
#include "registries/selector.h"

namespace stowage::op {

// A Node, as the metadata informer holds it.
struct PlannerNode {
  std::string name{};
  std::string uid{};
  registries::Labels labels{};
  bool operator==(const PlannerNode&) const = default;
};

// Why an image reference has no digest yet.
struct Unresolved {
  std::string reason{};  // one CamelCase word: Unauthorized, NotFound, Unavailable, ...
  std::string message{};
  bool operator==(const Unresolved&) const = default;
};

// A pull Secret an ImageCache names that cannot be used (missing, wrong type, unreadable).
struct PullSecretProblem {
  std::string name{};     // as the ImageCache names it
  std::string message{};  // what is wrong; never credentials
  bool operator==(const PullSecretProblem&) const = default;
};

// What one ImageCache's own tag references resolved to (with its pull secrets, through the
// registries configuration of its nodes).
struct ImageCacheResolutions {
  std::map<std::string, std::string> digests{};  // reference as written -> "algorithm:hex"
  std::map<std::string, Unresolved> unresolved{};
  // Reference as written (tag or digest) -> bytes a pull downloads, for the digest above (a tag)
  // or the one it names (a digest reference); no entry when not measured.
  std::map<std::string, std::int64_t> sizes{};
  bool operator==(const ImageCacheResolutions&) const = default;
};

// A NodeCache spec shared by the nodes that have an equal one: at thousands of nodes most specs
// repeat, so the operator and the planner keep one copy of each. Never null where it appears.
using SharedSpec = std::shared_ptr<const api::NodeCacheSpec>;

// A NodeCache as it is now, as the planner reads it: its owner, its spec, and the agent's status
// (the operator keeps only the fields the planner reads: registries, runtime name, and the name,
// digest, state and message of images and exports).
struct CurrentNodeCache {
  api::ObjectMeta metadata{};
  SharedSpec spec = std::make_shared<const api::NodeCacheSpec>();
  api::NodeCacheStatus status{};
};

// `nc` as the planner reads it (its own copy of the spec).
CurrentNodeCache current_node_cache(const api::NodeCache& nc);

struct PlannerInput {
  std::vector<PlannerNode> nodes{};
  std::vector<api::RegistryConfig> registry_configs{};
  std::vector<api::ImageCache> image_caches{};
  // Tag references (as written in ImageCache spec.images.name) the operator resolved, to
  // "algorithm:hex"; references with a digest need no entry.
  std::map<std::string, std::string> digests{};
  // Tag references the operator failed to resolve. A reference in neither map is reported as
  // not resolved yet.
  std::map<std::string, Unresolved> unresolved{};
  // References (tag or digest, as written) -> bytes a pull downloads (config and layers,
  // compressed): of the digest in `digests` for a tag, of the named digest for a digest
  // reference. Planned NodeCache images carry it as sizeBytes; without an entry they keep the
  // sizeBytes the current NodeCache has for the same digest, else have none.
  std::map<std::string, std::int64_t> sizes{};
  // Per ImageCache ("namespace/name"): its own resolutions, which take precedence over
  // `digests`, `unresolved` and `sizes` for its images.
  std::map<std::string, ImageCacheResolutions> resolutions{};
  // Per ImageCache: the pull Secrets it names that cannot be used. They are left out of the
  // NodeCache pullSecrets and reported in its Degraded condition.
  std::map<std::string, std::vector<PullSecretProblem>> pull_secret_problems{};
  std::vector<CurrentNodeCache> node_caches{};  // as they are now
  std::vector<std::string> config_maps{};       // names of the stowage-registries-* ConfigMaps now
  MaxUnavailable max_unavailable{};
  // Whether the MachineConfig API is served (OpenShift): delivery Auto then means MachineConfig.
  bool machine_config_api = false;
  api::Time now{};  // for condition transition times
};

struct PlannedNodeCache {
  std::string name{};                                   // the node's
  std::vector<api::OwnerReference> owner_references{};  // the Node, controller
  // Nodes planned an equal spec share one; it is the current NodeCache's own when unchanged.
  SharedSpec spec = std::make_shared<const api::NodeCacheSpec>();
  bool write = false;                                // absent now, or its spec or owner differs
  bool operator==(const PlannedNodeCache& o) const;  // compares specs by value
};

struct PlannedConfigMap {
  std::string name{};  // stowage-registries-<hash>
  std::string hash{};
  std::map<std::string, std::string> data{};  // keys as api/registries_config_map.h
  bool create = false;                        // not among the input's config_maps
  bool operator==(const PlannedConfigMap&) const = default;
};

struct PlannedRegistryConfigStatus {
  std::string name{};
  api::RegistryConfigStatus status{};
  bool changed = false;  // differs from the input object's status
  bool operator==(const PlannedRegistryConfigStatus&) const = default;
};

struct PlannedImageCacheStatus {
  std::string namespace_{};
  std::string name{};
  api::ImageCacheStatus status{};
  bool changed = false;
  bool operator==(const PlannedImageCacheStatus&) const = default;
};

struct Plan {
  std::vector<PlannedNodeCache> node_caches{};  // one per node, by name
  // Every rendering a NodeCache spec will name or a node is headed for, by name.
  std::vector<PlannedConfigMap> config_maps{};
  // Input ConfigMaps that no desired or current NodeCache names and no node is headed for.
  std::vector<std::string> config_maps_to_delete{};
  // RegistryConfigs delivered by the agent (MachineConfig-delivered ones are not planned here).
  std::vector<PlannedRegistryConfigStatus> registry_configs{};  // by name
  std::vector<PlannedImageCacheStatus> image_caches{};          // by namespace/name
  RolloutResult rollout{};  // next[] in the order of node_caches
  bool operator==(const Plan&) const = default;
};

// The whole plan. Never throws for bad user input (it lands in statuses).
Plan plan_cluster(const PlannerInput& input);

// The Secret in the operator's namespace that holds a copy of `namespace_`/`name`:
// "stowage-pull-<namespace>.<name>" (a namespace has no '.', so distinct Secrets never share a
// copy); "stowage-pull-<hash>" when that would exceed 253 characters.
std::string synced_pull_secret_name(std::string_view namespace_, std::string_view name);

// The ordering that decides which ImageCache claimed an export file name first: creation time,
// then namespace/name.
bool claims_before(const api::ImageCache& a, const api::ImageCache& b);

// Condition reasons the planner writes.
inline constexpr std::string_view kReasonAsExpected = "AsExpected";
inline constexpr std::string_view kReasonInvalidConfig = "InvalidConfig";
inline constexpr std::string_view kReasonNodeFailed = "NodeFailed";
inline constexpr std::string_view kReasonDeliveryConflict = "DeliveryConflict";
inline constexpr std::string_view kReasonRollingOut = "RollingOut";
inline constexpr std::string_view kReasonRolloutHalted = "RolloutHalted";
inline constexpr std::string_view kReasonComplete = "Complete";
inline constexpr std::string_view kReasonImagesUnresolved = "ImagesUnresolved";
inline constexpr std::string_view kReasonPullSecretUnavailable = "PullSecretUnavailable";
inline constexpr std::string_view kReasonExportConflict = "ExportConflict";
inline constexpr std::string_view kReasonNodeFailures = "NodeFailures";
inline constexpr std::string_view kReasonPulling = "Pulling";
inline constexpr std::string_view kReasonAllNodesReady = "AllNodesReady";

}  // namespace stowage::op
