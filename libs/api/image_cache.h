// The ImageCache kind (namespaced, stowage.io/v1alpha1): images that selected nodes must hold,
// with pull secrets, a tag refresh interval, a prune policy and an optional tar export; and the
// status the operator folds from the nodes' reports. Decoding applies the CRD's defaults
// (refreshInterval 6h, prune OnRemoval, export format docker-archive) and checks what the CRD
// checks, so an object read from a file means what the API server would store.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/meta.h"
#include "registries/selector.h"

namespace stowage::api {

inline constexpr std::string_view kImageCacheKind = "ImageCache";

enum class PrunePolicy { kOnRemoval, kNever };
enum class ExportFormat { kDockerArchive, kOciArchive };

std::string_view to_string(PrunePolicy policy);   // "OnRemoval", "Never"
std::string_view to_string(ExportFormat format);  // "docker-archive", "oci-archive"
PrunePolicy prune_policy_from_json(const nlohmann::json& j, std::string_view path);
ExportFormat export_format_from_json(const nlohmann::json& j, std::string_view path);

// "6h", "1h30m", "90s" (hours, minutes, seconds; the CRD's pattern) as seconds; nullopt when
// malformed or too large.
std::optional<std::chrono::seconds> parse_interval(std::string_view text);
// The shortest such form: 5400s -> "1h30m", 0 -> "0s".
std::string format_interval(std::chrono::seconds interval);

inline constexpr std::chrono::seconds kDefaultRefreshInterval{6 * 3600};
inline constexpr std::chrono::seconds kMinRefreshInterval{60};

// Why `name` cannot be an export file name (a '/', "." or "..", a character outside
// [A-Za-z0-9._+-], empty, longer than 255), with the CRD's message; nullopt when it can.
std::optional<std::string> export_file_name_problem(std::string_view name);

struct CachedImage {
  std::string name{};  // a reference with a tag or digest
  bool operator==(const CachedImage&) const = default;
};

struct ImageExport {
  ExportFormat format = ExportFormat::kDockerArchive;
  std::string file_name{};
  bool operator==(const ImageExport&) const = default;
};

struct ImageCacheSpec {
  registries::LabelSelector node_selector{};  // empty: all nodes
  std::vector<CachedImage> images{};
  std::vector<LocalObjectReference> image_pull_secrets{};
  std::chrono::seconds refresh_interval = kDefaultRefreshInterval;
  PrunePolicy prune = PrunePolicy::kOnRemoval;
  std::optional<ImageExport> export_{};
  bool operator==(const ImageCacheSpec&) const = default;
};

struct ImageCacheImageStatus {
  std::string name{};
  std::string digest{};
  std::int32_t nodes_ready = 0;
  std::int32_t nodes_total = 0;
  bool operator==(const ImageCacheImageStatus&) const = default;
};

struct ImageCacheNodes {
  std::int32_t total = 0;
  std::int32_t ready = 0;
  std::int32_t pulling = 0;
  std::int32_t failed = 0;
  bool operator==(const ImageCacheNodes&) const = default;
};

struct ImageFailure {
  std::string node{};
  std::string image{};
  std::string reason{};
  std::string message{};
  bool operator==(const ImageFailure&) const = default;
};

struct ImageCacheStatus {
  std::int64_t observed_generation = 0;
  std::vector<Condition> conditions{};  // Ready, Progressing, Degraded
  std::vector<ImageCacheImageStatus> images{};
  ImageCacheNodes nodes{};
  std::vector<ImageFailure> failures{};  // bounded (20)
  bool operator==(const ImageCacheStatus&) const = default;
};

struct ImageCache {
  ObjectMeta metadata{};
  ImageCacheSpec spec{};
  ImageCacheStatus status{};
  bool operator==(const ImageCache&) const = default;
};

ImageCacheSpec image_cache_spec_from_json(const nlohmann::json& j, std::string_view path = "spec");
nlohmann::json image_cache_spec_to_json(const ImageCacheSpec& spec);
ImageCacheStatus image_cache_status_from_json(const nlohmann::json& j,
                                              std::string_view path = "status");
nlohmann::json image_cache_status_to_json(const ImageCacheStatus& status);

// Whole objects; errors name the object and the field:
// `ImageCache "ml/base": spec.export.fileName: must be a file name, without "/"`.
void to_json(nlohmann::json& j, const ImageCache& ic);
void from_json(const nlohmann::json& j, ImageCache& ic);

}  // namespace stowage::api
