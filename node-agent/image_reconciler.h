// The agent's image reconciler: makes the node's runtime hold the planned images and, on request,
// removes images the agent pulled that no plan wants any more. For each planned image: CRI
// ImageStatus; if absent, a free-space check, then PullImage of the planned reference with the
// credentials kubelet's keyring would pick from the image's pull secrets, retried with backoff;
// then the runtime's repo digests must contain the planned digest. Pulls run on a bounded pool.
//   CriImageRuntime runtime(client);
//   ImageReconciler reconciler(runtime, record, clock, {.max_parallel = 2});
//   std::vector<ImageResult> r = reconciler.reconcile(images, stop);
//   std::vector<PruneResult> p = reconciler.prune(images, {.min_age = std::chrono::minutes(2)});
// Not thread-safe: one reconcile or prune at a time (they share the pull record's writer).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "api/node_cache.h"
#include "base/backoff.h"
#include "base/clock.h"
#include "cri/client.h"
#include "cri/types.h"
#include "node-agent/pull_record.h"

namespace stowage::agent {

// Usage of the filesystem holding the runtime's images. capacity_bytes is nullopt when the
// runtime does not say (CRI ImageFsInfo reports only used bytes).
struct ImageFsUsage {
  std::string mountpoint;
  std::uint64_t used_bytes = 0;
  std::optional<std::uint64_t> capacity_bytes;
};

// The image calls of a CRI runtime the reconciler needs; the seam tests replace.
class ImageRuntime {
 public:
  virtual ~ImageRuntime() = default;
  // nullopt when the runtime does not hold `image` (reference, digest reference or ID).
  virtual std::optional<cri::Image> image_status(const std::string& image) = 0;
  // Pulls `image` as given; returns the runtime's image ID. A request on `stop` cancels it.
  virtual std::string pull_image(const std::string& image,
                                 const std::optional<cri::AuthConfig>& auth,
                                 std::stop_token stop) = 0;
  // Idempotent removal of the image and its tags.
  virtual void remove_image(const std::string& image) = 0;
  virtual std::vector<cri::Image> list_images() = 0;
  // Every container, running or exited.
  virtual std::vector<cri::Container> list_containers() = 0;
  // The first image filesystem; nullopt when the runtime reports none.
  virtual std::optional<ImageFsUsage> image_fs_usage() = 0;
};

// ImageRuntime over a cri::Client (borrowed, must outlive this). Thread-safe as the client is.
class CriImageRuntime final : public ImageRuntime {
 public:
  explicit CriImageRuntime(const cri::Client& client) : client_(client) {}
  std::optional<cri::Image> image_status(const std::string& image) override;
  std::string pull_image(const std::string& image, const std::optional<cri::AuthConfig>& auth,
                         std::stop_token stop) override;
  void remove_image(const std::string& image) override;
  std::vector<cri::Image> list_images() override;
  std::vector<cri::Container> list_containers() override;
  std::optional<ImageFsUsage> image_fs_usage() override;

 private:
  const cri::Client& client_;
};

// One planned image.
struct DesiredImage {
  std::string name;    // reference as planned: "host/repo:tag", or "host/repo@sha256:..."
  std::string digest;  // the manifest digest the node must end up holding
  // kubernetes.io/dockerconfigjson payloads of the image's pull secrets, in spec order.
  std::vector<std::string> pull_secrets = {};
  // Expected size in the store when known, for the free-space check.
  std::optional<std::uint64_t> size_bytes = std::nullopt;
};

// The reference to pull: `name` when it carries a tag or digest, else `name@digest`.
std::string pull_reference(const DesiredImage& image);
// True when some repo digest of `image` is `<repo>@<digest>`.
bool holds_digest(const cri::Image& image, std::string_view digest);

// Why an image is not Present.
enum class ImageFailure {
  kNone,
  kDigestMismatch,     // the runtime holds the image, but not at the planned digest
  kInsufficientSpace,  // the free-space check refused the pull
  kPullFailed,         // PullImage failed (after retries when retryable)
  kRuntimeError,       // ImageStatus or ImageFsInfo failed
  kBadPullSecret,      // a pull secret is not a valid dockerconfigjson
  kStopped,            // reconcile was asked to stop before the image was done
};
std::string_view image_failure_name(ImageFailure failure);  // "DigestMismatch", ...

struct ImageResult {
  std::string name;
  std::string digest;  // planned
  api::ImageState state = api::ImageState::kPulling;
  ImageFailure failure = ImageFailure::kNone;
  std::string message;   // why it failed; never a credential
  std::string image_id;  // when the runtime holds it
  std::optional<std::uint64_t> size_bytes;
  bool pulled = false;  // this reconcile pulled it
  int attempts = 0;     // PullImage calls made
  bool operator==(const ImageResult&) const = default;
};

enum class PruneDecision {
  kRemoved,
  kGone,              // already absent from the runtime; dropped from the record
  kStillWanted,       // a plan still wants its digest or image
  kNotPulledByAgent,  // no longer planned, but the agent did not pull it
  kInUse,             // a container (running or exited) uses it
  kPinned,            // the runtime marks it pinned
  kPauseImage,        // it is the sandbox (pause) image
  kTooYoung,          // pulled less than min_age ago
  kRemoveFailed,      // RemoveImage failed
};
std::string_view prune_decision_name(PruneDecision decision);  // "Removed", "InUse", ...

struct PruneResult {
  std::string ref;
  std::string digest;
  std::string image_id;
  PruneDecision decision = PruneDecision::kStillWanted;
  std::string message;
  bool operator==(const PruneResult&) const = default;
};

struct PruneOptions {
  std::chrono::seconds min_age = std::chrono::minutes(2);
  // References of the sandbox (pause) image(s); matched against tags, digests and IDs.
  std::vector<std::string> pause_images = {};
  // References dropped from the plan that the caller knows of, reported NotPulledByAgent when
  // the record does not have them (names of earlier plans seen by this reconciler count too).
  std::vector<std::string> dropped = {};
};

// Available bytes of the filesystem holding `path`, or nullopt when it cannot be measured.
using FreeSpaceProbe = std::function<std::optional<std::uint64_t>(const std::filesystem::path&)>;
// statvfs(2): f_bavail * f_frsize.
std::optional<std::uint64_t> statvfs_available(const std::filesystem::path& path);

struct ReconcilerOptions {
  int max_parallel = 2;
  // PullImage attempts per image (retryable errors only are retried).
  int max_attempts = 4;
  BackoffPolicy backoff = {};
  // A pull needs size × factor free bytes.
  std::uint64_t space_factor = 2;
  // Where to measure free space when the runtime reports no capacity; empty: the image
  // filesystem's mountpoint as the runtime reports it.
  std::filesystem::path space_path = {};
  // Measures free space at a path; defaults to statvfs_available.
  FreeSpaceProbe free_space = {};
  // Called (from pool threads, serialized) when an image starts pulling.
  std::function<void(const ImageResult&)> on_pulling = {};
};

class ImageReconciler {
 public:
  // `runtime`, `record` and `clock` are borrowed and must outlive the reconciler.
  ImageReconciler(ImageRuntime& runtime, PullRecord& record, Clock& clock,
                  ReconcilerOptions options = {});

  // Brings every planned image to Present or Failed; results in the order of `images`.
  // Never throws stowage::Error: failures are results. Blocks until all are done or `stop`.
  std::vector<ImageResult> reconcile(const std::vector<DesiredImage>& images,
                                     std::stop_token stop = {});

  // Removes recorded images no entry of `wanted` wants, under the rules of PruneOptions; one
  // result per recorded image (and per dropped reference not recorded). Never forces. Throws
  // stowage::Error when the runtime cannot be listed.
  std::vector<PruneResult> prune(const std::vector<DesiredImage>& wanted,
                                 const PruneOptions& options);

 private:
  ImageResult reconcile_one(const DesiredImage& image, std::stop_token stop);
  std::optional<ImageResult> check_space(const DesiredImage& image, ImageResult result);
  void release_space(std::uint64_t bytes);

  ImageRuntime& runtime_;
  PullRecord& record_;
  Clock& clock_;
  ReconcilerOptions options_;
  std::mutex mu_;                     // guards reserved_bytes_, seen_names_, on_pulling_ calls
  std::uint64_t reserved_bytes_ = 0;  // space promised to pulls in flight
  std::set<std::string> seen_names_;  // references of every plan reconciled so far
};

}  // namespace stowage::agent
