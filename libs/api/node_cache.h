// The NodeCache kind (cluster-scoped, stowage.io/v1alpha1, one per node, same name as the Node):
// the operator's plan for one node (spec: registries files, images at resolved digests, exports,
// prune policy) and that node's agent's report (status). The operator is the only writer of spec,
// the agent the only writer of status.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/image_cache.h"
#include "api/meta.h"

namespace stowage::api {

inline constexpr std::string_view kNodeCacheKind = "NodeCache";

enum class RegistriesState { kApplied, kFailed };
enum class ImageState { kPresent, kPulling, kFailed, kRemoved };
enum class ExportState { kPending, kWritten, kFailed };

std::string_view to_string(RegistriesState state);  // "Applied", "Failed"
std::string_view to_string(ImageState state);       // "Present", "Pulling", "Failed", "Removed"
std::string_view to_string(ExportState state);      // "Pending", "Written", "Failed"

// The rendered registries files: an immutable ConfigMap named after their hash.
struct NodeRegistries {
  std::string hash{};
  std::string config_map{};
  bool operator==(const NodeRegistries&) const = default;
};

struct NodeImage {
  std::string name{};                                // the reference to pull, with its tag
  std::string digest{};                              // what the node must end up holding
  std::vector<LocalObjectReference> pull_secrets{};  // in the operator's namespace
  std::vector<std::string> sources{};                // "namespace/name" of the ImageCaches
  // Bytes a pull downloads (config and layers, compressed), as the operator measured them;
  // absent when unknown. The agent wants twice this free before pulling.
  std::optional<std::int64_t> size_bytes{};
  bool operator==(const NodeImage&) const = default;
};

struct NodeExport {
  std::string file_name{};
  ExportFormat format = ExportFormat::kDockerArchive;
  std::vector<std::string> images{};  // "name@digest"
  std::string source{};               // "namespace/name" of the ImageCache
  bool operator==(const NodeExport&) const = default;
};

struct NodePrune {
  PrunePolicy policy = PrunePolicy::kOnRemoval;
  bool operator==(const NodePrune&) const = default;
};

struct NodeCacheSpec {
  std::optional<NodeRegistries> registries{};  // absent under MachineConfig delivery
  std::vector<NodeImage> images{};
  std::vector<NodeExport> exports{};
  NodePrune prune{};
  bool operator==(const NodeCacheSpec&) const = default;
};

struct NodeRegistriesStatus {
  std::string applied_hash{};
  std::optional<RegistriesState> state{};
  std::string message{};
  std::optional<Time> last_transition_time{};
  bool operator==(const NodeRegistriesStatus&) const = default;
};

struct NodeImageStatus {
  std::string name{};
  std::string digest{};
  std::optional<ImageState> state{};
  std::optional<std::int64_t> size_bytes{};
  std::string message{};
  std::optional<Time> last_transition_time{};
  bool operator==(const NodeImageStatus&) const = default;
};

struct NodeExportStatus {
  std::string file_name{};
  std::optional<ExportFormat> format{};
  std::optional<std::int64_t> size_bytes{};
  std::string sha256{};  // of the file, hex
  std::optional<ExportState> state{};
  std::string message{};
  bool operator==(const NodeExportStatus&) const = default;
};

struct RuntimeInfo {
  std::string name{};
  std::string version{};
  bool operator==(const RuntimeInfo&) const = default;
};

struct StoreUsage {
  std::optional<std::int64_t> used_bytes{};
  std::optional<std::int64_t> capacity_bytes{};
  bool operator==(const StoreUsage&) const = default;
};

// Counts over spec.images, shown by `kubectl get nodecaches`.
struct ImageSummary {
  std::int32_t images = 0;
  std::int32_t present = 0;
  std::int32_t pulling = 0;
  std::int32_t failed = 0;
  bool operator==(const ImageSummary&) const = default;
};

struct NodeCacheStatus {
  std::int64_t observed_generation = 0;
  std::vector<Condition> conditions{};  // Ready, Degraded
  std::optional<NodeRegistriesStatus> registries{};
  std::vector<NodeImageStatus> images{};
  std::vector<NodeExportStatus> exports{};
  std::optional<RuntimeInfo> runtime{};
  std::optional<StoreUsage> store{};
  std::optional<ImageSummary> summary{};
  bool operator==(const NodeCacheStatus&) const = default;
};

struct NodeCache {
  ObjectMeta metadata{};
  NodeCacheSpec spec{};
  NodeCacheStatus status{};
  bool operator==(const NodeCache&) const = default;
};

// The summary of `images` against `spec`: an image of the spec counts as present when the status
// has it Present at the planned digest, pulling when Pulling, failed when Failed.
ImageSummary summarize(const NodeCacheSpec& spec, const std::vector<NodeImageStatus>& images);

NodeCacheSpec node_cache_spec_from_json(const nlohmann::json& j, std::string_view path = "spec");
nlohmann::json node_cache_spec_to_json(const NodeCacheSpec& spec);
NodeCacheStatus node_cache_status_from_json(const nlohmann::json& j,
                                            std::string_view path = "status");
nlohmann::json node_cache_status_to_json(const NodeCacheStatus& status);

// Whole objects; errors name the object and the field:
// `NodeCache "worker-1": status.images[0].state: Unsupported value: "Gone": ...`.
void to_json(nlohmann::json& j, const NodeCache& nc);
void from_json(const nlohmann::json& j, NodeCache& nc);

}  // namespace stowage::api
