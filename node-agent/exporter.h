// The agent's exporter: writes the images one NodeCache export names into one tar file under the
// export dir, at the exact digests the node holds. Blobs come, in order, from the agent's own
// content store (<store-dir>/content), from containerd's content store under the host root when
// it holds every blob of the image, and only then from the registry by digest (mirrors and
// insecure registries from the node's registries.conf, credentials from the image's pull
// secrets). Every blob is verified against its digest while it is copied into the agent's store;
// the tar is written from there to a hidden temp file, fsynced and renamed. A record under
// --store-dir remembers what each file holds, so an unchanged export is not written again.
//   Exporter exporter({.export_dir = "/var/lib/stowage/exports", .store_dir = ..., ...}, clock);
//   ExportResult r = exporter.run(spec.exports[0], held_images, stop);
// Not thread-safe: one export at a time per export dir (the agent's sync thread).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "api/node_cache.h"
#include "base/clock.h"
#include "http/transport.h"
#include "oci/store.h"
#include "oci/types.h"

namespace stowage::agent {

// Under --store-dir: the agent's content store, and the record of the files written.
inline constexpr std::string_view kContentDir = "content";
inline constexpr std::string_view kExportRecordFile = "exports.json";
// containerd's default root, and its content store below a root.
inline constexpr std::string_view kContainerdDefaultRoot = "/var/lib/containerd";
inline constexpr std::string_view kContainerdContentDir = "io.containerd.content.v1.content";
// Hidden files of the export dir that an interrupted write leaves (base/files.h AtomicFile).
inline constexpr std::string_view kTempPrefix = ".tmp-";

// --- Pure planning ---------------------------------------------------------------------------

enum class BlobSource { kAgentStore, kContainerd, kRegistry };
std::string_view blob_source_name(BlobSource source);  // "store", "containerd", "registry"

// Throws Error(kInvalidArgument) unless `name` is a plain file name that stays in the export dir:
// not empty, not "." or "..", no '/' or NUL, not hidden (a leading '.' is the temp files'
// namespace), at most 255 bytes.
void check_export_file_name(std::string_view name);

// `root = ...` of containerd's config.toml (any config version), or kContainerdDefaultRoot when
// unset. Throws Error(kInvalidArgument) on bad TOML or a root that is not an absolute path.
std::string containerd_root_from_config(std::string_view config_toml, std::string_view source_name);

// A planned image of the node as the current sync found it.
struct HeldImage {
  std::string name;    // as planned: "host/repo:tag" or "host/repo@sha256:..."
  std::string digest;  // planned
  std::optional<api::ImageState> state = std::nullopt;
  std::string message = {};                    // why it is not Present
  std::vector<std::string> pull_secrets = {};  // dockerconfigjson payloads
};

// One image of an export, matched against the plan.
struct ExportImage {
  std::string repository;  // "host/repo", normalized
  std::string digest;      // the manifest or index the node holds
  // The tags the tar names it by ("host/repo:tag"), from every planned image at that digest;
  // empty for an image planned by digest only (written untagged).
  std::vector<std::string> names = {};
  std::vector<std::string> pull_secrets = {};
};

enum class ExportReadiness { kReady, kPending, kFailed };

struct ExportPlan {
  ExportReadiness readiness = ExportReadiness::kReady;
  std::string message = {};  // why not ready
  std::vector<ExportImage> images = {};
};

// Matches each "name@digest" of `exp` with the planned images of that repository and digest.
// Failed for a bad file name, a malformed entry, or an entry no planned image has; Pending while
// one of them is not Present on the node.
ExportPlan plan_export(const api::NodeExport& exp, const std::vector<HeldImage>& held);

// Where each of an image's blobs comes from: the agent's store for what it has; for the rest,
// containerd when containerd holds every blob of the image, else the registry.
std::vector<BlobSource> plan_blob_sources(const std::vector<std::string>& blobs,
                                          const std::set<std::string>& in_store,
                                          const std::set<std::string>& in_containerd);

// What a written file holds, as the record keeps it: format and images (digest and names). Two
// exports with the same key give the same tar.
std::string export_content_key(api::ExportFormat format, const std::vector<ExportImage>& images);

// --- I/O ---------------------------------------------------------------------------------------

struct ExporterOptions {
  std::filesystem::path export_dir = {};
  std::filesystem::path store_dir = {};
  std::filesystem::path host_root = "/";
  // For the registry fallback (borrowed); nullptr: no registry is asked.
  http::Transport* transport = nullptr;
  // The platform chosen from an index; nullopt: the host's.
  std::optional<oci::Platform> platform = std::nullopt;
  // Registry attempts per request.
  int registry_attempts = 3;
};

enum class ExportOutcome { kWritten, kUnchanged, kPending, kFailed };
std::string_view export_outcome_name(ExportOutcome outcome);  // "Written", "Unchanged", ...

struct ExportResult {
  api::NodeExportStatus status;
  ExportOutcome outcome = ExportOutcome::kFailed;
  bool retry = false;    // failed for a reason a later attempt may not meet
  bool stopped = false;  // `stop` was requested before the file was written
  std::uint64_t bytes_written = 0;
  std::map<BlobSource, std::uint64_t> blob_bytes = {};  // bytes copied into the store, by source
};

class Exporter {
 public:
  // Creates the export dir and the content store, and removes temp files an interrupted write
  // left in the export dir. Throws stowage::Error when a directory cannot be made.
  Exporter(ExporterOptions options, Clock& clock);
  ~Exporter();
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // Writes (or keeps, when the record and the file say it is already there) one export. Never
  // throws stowage::Error: failures are results.
  ExportResult run(const api::NodeExport& exp, const std::vector<HeldImage>& held,
                   std::stop_token stop = {});

  // Keeps in the content store only the images of `keep` (roots named by digest) and prunes
  // unreferenced blobs (past the store's grace period). Throws stowage::Error.
  void retain(const std::vector<ExportImage>& keep);

  const oci::Store& store() const { return *store_; }
  std::filesystem::path record_path() const;

 private:
  struct Prepared;
  Prepared prepare_image(const ExportImage& image, ExportResult& result, std::stop_token stop);
  void fetch_from_registry(const ExportImage& image, ExportResult& result, std::stop_token stop);
  std::filesystem::path containerd_content() const;

  ExporterOptions options_;
  Clock& clock_;
  std::unique_ptr<oci::Store> store_;
};

}  // namespace stowage::agent
