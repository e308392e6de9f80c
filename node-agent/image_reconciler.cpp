#include "node-agent/image_reconciler.h"

#include <fmt/format.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>

#include "base/error.h"
#include "cri/image_use.h"
#include "oci/auth.h"

namespace stowage::agent {
namespace {

// The repository part of a reference: without its digest or tag.
std::string repository_of(std::string_view ref) {
  if (const auto at = ref.find('@'); at != std::string_view::npos) ref = ref.substr(0, at);
  const auto slash = ref.rfind('/');
  const auto colon = ref.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    ref = ref.substr(0, colon);
  }
  return std::string(ref);
}

bool contains(const std::vector<std::string>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// The runtime image a recorded pull refers to: by image ID, else by repo@digest, else by tag.
const cri::Image* find_recorded(const std::vector<cri::Image>& images, const PulledImage& entry) {
  for (const auto& image : images) {
    if (!entry.image_id.empty() && image.id == entry.image_id) return &image;
  }
  const std::string by_digest = repository_of(entry.ref) + "@" + entry.digest;
  for (const auto& image : images) {
    if (contains(image.repo_digests, by_digest)) return &image;
  }
  for (const auto& image : images) {
    if (contains(image.repo_tags, entry.ref)) return &image;
  }
  return nullptr;
}

std::string join(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& item : list) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out.empty() ? "none" : out;
}

ImageResult failed(ImageResult result, ImageFailure failure, std::string message) {
  result.state = api::ImageState::kFailed;
  result.failure = failure;
  result.message = std::move(message);
  return result;
}

cri::AuthConfig to_auth_config(const oci::Credentials& c) {
  return cri::AuthConfig{.username = c.username,
                         .password = c.password,
                         .auth = "",
                         .server_address = "",
                         .identity_token = c.identity_token,
                         .registry_token = ""};
}

}  // namespace

// ---- CriImageRuntime

std::optional<cri::Image> CriImageRuntime::image_status(const std::string& image) {
  return client_.image_status(image);
}

std::string CriImageRuntime::pull_image(const std::string& image,
                                        const std::optional<cri::AuthConfig>& auth,
                                        std::stop_token stop) {
  return client_.pull_image(image, auth, std::nullopt, stop);
}

void CriImageRuntime::remove_image(const std::string& image) {
  client_.remove_image(image);
}

std::vector<cri::Image> CriImageRuntime::list_images() {
  return client_.list_images();
}

std::vector<cri::Container> CriImageRuntime::list_containers() {
  return client_.list_containers();
}

std::optional<ImageFsUsage> CriImageRuntime::image_fs_usage() {
  const cri::ImageFsInfo info = client_.image_fs_info();
  if (info.image_filesystems.empty()) return std::nullopt;
  const cri::FilesystemUsage& fs = info.image_filesystems.front();
  return ImageFsUsage{
      .mountpoint = fs.mountpoint, .used_bytes = fs.used_bytes, .capacity_bytes = std::nullopt};
}

// ---- free functions

std::string pull_reference(const DesiredImage& image) {
  if (image.name.find('@') != std::string::npos) return image.name;
  if (repository_of(image.name) != image.name) return image.name;  // has a tag
  return image.name + "@" + image.digest;
}

bool holds_digest(const cri::Image& image, std::string_view digest) {
  if (digest.empty()) return false;
  return std::any_of(
      image.repo_digests.begin(), image.repo_digests.end(), [&](const std::string& d) {
        const auto at = d.rfind('@');
        return at != std::string::npos && std::string_view(d).substr(at + 1) == digest;
      });
}

std::optional<std::uint64_t> statvfs_available(const std::filesystem::path& path) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(st.f_bavail) * static_cast<std::uint64_t>(st.f_frsize);
}

std::string_view image_failure_name(ImageFailure failure) {
  switch (failure) {
    case ImageFailure::kNone: return "";
    case ImageFailure::kDigestMismatch: return "DigestMismatch";
    case ImageFailure::kInsufficientSpace: return "InsufficientSpace";
    case ImageFailure::kPullFailed: return "PullFailed";
    case ImageFailure::kRuntimeError: return "RuntimeError";
    case ImageFailure::kBadPullSecret: return "BadPullSecret";
    case ImageFailure::kStopped: return "Stopped";
  }
  return "Unknown";
}

std::string_view prune_decision_name(PruneDecision decision) {
  switch (decision) {
    case PruneDecision::kRemoved: return "Removed";
    case PruneDecision::kGone: return "Gone";
    case PruneDecision::kStillWanted: return "StillWanted";
    case PruneDecision::kNotPulledByAgent: return "NotPulledByAgent";
    case PruneDecision::kInUse: return "InUse";
    case PruneDecision::kPinned: return "Pinned";
    case PruneDecision::kPauseImage: return "PauseImage";
    case PruneDecision::kTooYoung: return "TooYoung";
    case PruneDecision::kRemoveFailed: return "RemoveFailed";
  }
  return "Unknown";
}

// ---- ImageReconciler

ImageReconciler::ImageReconciler(ImageRuntime& runtime, PullRecord& record, Clock& clock,
                                 ReconcilerOptions options)
    : runtime_(runtime), record_(record), clock_(clock), options_(std::move(options)) {
  if (options_.max_parallel < 1) options_.max_parallel = 1;
  if (options_.max_attempts < 1) options_.max_attempts = 1;
  if (!options_.free_space) options_.free_space = statvfs_available;
}

std::vector<ImageResult> ImageReconciler::reconcile(const std::vector<DesiredImage>& images,
                                                    std::stop_token stop) {
  {
    const std::lock_guard lock(mu_);
    for (const auto& image : images) seen_names_.insert(image.name);
  }
  std::vector<ImageResult> results(images.size());
  std::atomic<std::size_t> next{0};
  const auto work = [&] {
    for (std::size_t i = next++; i < images.size(); i = next++) {
      results[i] = reconcile_one(images[i], stop);
    }
  };
  const std::size_t workers =
      std::min(images.size(), static_cast<std::size_t>(options_.max_parallel));
  {
    std::vector<std::jthread> pool;  // the pull pool; joined at the end of this scope
    pool.reserve(workers);
    for (std::size_t i = 0; i < workers; ++i) pool.emplace_back(work);
  }
  return results;
}

std::optional<ImageResult> ImageReconciler::check_space(const DesiredImage& image,
                                                        ImageResult result) {
  if (!image.size_bytes) return std::nullopt;
  const std::uint64_t need = *image.size_bytes * options_.space_factor;
  std::optional<ImageFsUsage> usage;
  try {
    usage = runtime_.image_fs_usage();
  } catch (const Error& e) {
    return failed(std::move(result), ImageFailure::kRuntimeError,
                  fmt::format("checking free space before pulling {}: {}", image.name, e.what()));
  }
  std::optional<std::uint64_t> available;
  std::string where;
  if (usage && usage->capacity_bytes) {
    available =
        *usage->capacity_bytes > usage->used_bytes ? *usage->capacity_bytes - usage->used_bytes : 0;
    where = usage->mountpoint;
  } else {
    const std::filesystem::path path =
        !options_.space_path.empty()
            ? options_.space_path
            : (usage ? std::filesystem::path(usage->mountpoint) : std::filesystem::path());
    if (!path.empty()) available = options_.free_space(path);
    where = path.string();
  }
  if (!available) return std::nullopt;  // nothing to measure: let the runtime decide
  const std::lock_guard lock(mu_);
  const std::uint64_t free_now = *available > reserved_bytes_ ? *available - reserved_bytes_ : 0;
  if (free_now < need) {
    return failed(std::move(result), ImageFailure::kInsufficientSpace,
                  fmt::format("not pulling {}: needs {} bytes free (size {} x {}), {} available "
                              "on {} ({} reserved by pulls in flight)",
                              image.name, need, *image.size_bytes, options_.space_factor,
                              *available, where, reserved_bytes_));
  }
  reserved_bytes_ += need;
  return std::nullopt;
}

void ImageReconciler::release_space(std::uint64_t bytes) {
  const std::lock_guard lock(mu_);
  reserved_bytes_ -= std::min(bytes, reserved_bytes_);
}

ImageResult ImageReconciler::reconcile_one(const DesiredImage& image, std::stop_token stop) {
  ImageResult result{.name = image.name,
                     .digest = image.digest,
                     .state = api::ImageState::kPulling,
                     .failure = ImageFailure::kNone,
                     .message = "",
                     .image_id = "",
                     .size_bytes = std::nullopt,
                     .pulled = false,
                     .attempts = 0};
  if (stop.stop_requested()) {
    result.failure = ImageFailure::kStopped;
    result.message = "stopped before it was checked";
    return result;
  }
  const std::string ref = pull_reference(image);

  try {
    if (auto existing = runtime_.image_status(ref);
        existing && holds_digest(*existing, image.digest)) {
      result.state = api::ImageState::kPresent;
      result.image_id = existing->id;
      result.size_bytes = existing->size;
      return result;
    }
  } catch (const Error& e) {
    return failed(std::move(result), ImageFailure::kRuntimeError,
                  fmt::format("checking {}: {}", ref, e.what()));
  }

  // Credentials as kubelet picks them: every matching entry, most specific first.
  std::vector<std::optional<cri::AuthConfig>> candidates;
  try {
    oci::DockerKeyring keyring;
    for (const auto& payload : image.pull_secrets) keyring.add_dockerconfigjson(payload);
    for (const auto& match : keyring.lookup(ref)) {
      candidates.emplace_back(to_auth_config(match.credentials));
    }
  } catch (const Error& e) {
    return failed(std::move(result), ImageFailure::kBadPullSecret,
                  fmt::format("reading the pull secrets of {}: {}", image.name, e.what()));
  }
  if (candidates.empty()) candidates.emplace_back(std::nullopt);

  if (auto refused = check_space(image, result)) return std::move(*refused);
  const std::uint64_t reserved = image.size_bytes ? *image.size_bytes * options_.space_factor : 0;
  if (options_.on_pulling) {
    const std::lock_guard lock(mu_);
    options_.on_pulling(result);
  }

  Backoff backoff(options_.backoff);
  std::string image_id;
  std::optional<Error> last;
  for (int attempt = 1; attempt <= options_.max_attempts && image_id.empty(); ++attempt) {
    last.reset();
    for (const auto& auth : candidates) {
      try {
        ++result.attempts;
        image_id = runtime_.pull_image(ref, auth, stop);
        break;
      } catch (const Error& e) {
        last = e;
        if (e.retryable()) break;  // not about these credentials: retry the same later
      }
    }
    if (image_id.empty() && stop.stop_requested()) {
      release_space(reserved);
      result.failure = ImageFailure::kStopped;
      result.message = fmt::format("stopped while pulling {}", ref);
      return result;
    }
    if (!image_id.empty() || !last || !last->retryable() || attempt == options_.max_attempts) {
      break;
    }
    if (!clock_.sleep_for(backoff.next(), stop)) {
      release_space(reserved);
      result.failure = ImageFailure::kStopped;
      result.message =
          fmt::format("stopped while waiting to retry pulling {}: {}", ref, last->what());
      return result;
    }
  }
  release_space(reserved);
  if (image_id.empty()) {
    return failed(std::move(result), ImageFailure::kPullFailed,
                  fmt::format("pulling {} ({} attempt{}): {}", ref, result.attempts,
                              result.attempts == 1 ? "" : "s",
                              last ? last->what() : "no image reference returned"));
  }
  result.pulled = true;
  result.image_id = image_id;

  std::string record_error;
  try {
    record_.add(PulledImage{
        .ref = ref, .digest = image.digest, .image_id = image_id, .pulled_at = clock_.wall_now()});
  } catch (const Error& e) {
    record_error = fmt::format("; recording the pull failed, it will not be pruned: {}", e.what());
  }

  std::optional<cri::Image> pulled;
  try {
    pulled = runtime_.image_status(image_id);
  } catch (const Error& e) {
    return failed(std::move(result), ImageFailure::kRuntimeError,
                  fmt::format("checking {} after pulling it: {}{}", ref, e.what(), record_error));
  }
  if (!pulled) {
    return failed(std::move(result), ImageFailure::kPullFailed,
                  fmt::format("pulled {} but the runtime does not hold image {}{}", ref, image_id,
                              record_error));
  }
  result.size_bytes = pulled->size;
  if (!holds_digest(*pulled, image.digest)) {
    return failed(std::move(result), ImageFailure::kDigestMismatch,
                  fmt::format("pulled {}: the runtime holds digests [{}], not the planned {}{}",
                              ref, join(pulled->repo_digests), image.digest, record_error));
  }
  result.state = api::ImageState::kPresent;
  result.message = record_error.empty() ? "" : record_error.substr(2);
  return result;
}

std::vector<PruneResult> ImageReconciler::prune(const std::vector<DesiredImage>& wanted,
                                                const PruneOptions& options) {
  const std::vector<cri::Image> images = runtime_.list_images();
  const std::vector<cri::Container> containers = runtime_.list_containers();

  std::set<std::string> wanted_digests;
  std::set<std::string> wanted_ids;
  std::set<std::string> wanted_names;
  for (const auto& w : wanted) {
    wanted_digests.insert(w.digest);
    wanted_names.insert(w.name);
    const std::string ref = pull_reference(w);
    for (const auto& image : images) {
      if (contains(image.repo_tags, ref) ||
          contains(image.repo_digests, repository_of(ref) + "@" + w.digest)) {
        wanted_ids.insert(image.id);
      }
    }
  }
  std::vector<PruneResult> results;
  std::set<std::string> recorded_refs;
  const auto now = clock_.wall_now();
  for (const PulledImage& entry : record_.entries()) {
    recorded_refs.insert(entry.ref);
    PruneResult r{.ref = entry.ref,
                  .digest = entry.digest,
                  .image_id = entry.image_id,
                  .decision = PruneDecision::kStillWanted,
                  .message = ""};
    const cri::Image* image = find_recorded(images, entry);
    if (wanted_digests.contains(entry.digest) || (image && wanted_ids.contains(image->id))) {
      r.message = "a plan still wants this image";
    } else if (!image) {
      r.decision = PruneDecision::kGone;
      r.message = "the runtime no longer holds it";
      record_.remove(entry.ref, entry.digest);
    } else if (const cri::ImageUse use = cri::image_use(*image, containers, options.pause_images);
               use.pinned) {
      r.decision = PruneDecision::kPinned;
      r.message = fmt::format("image {} is pinned by the runtime", image->id);
    } else if (use.sandbox_image) {
      r.decision = PruneDecision::kPauseImage;
      r.message = fmt::format("image {} is the sandbox (pause) image", image->id);
    } else if (use.in_use()) {
      const cri::Container& c = use.containers.front();
      r.decision = PruneDecision::kInUse;
      r.message = fmt::format("container {} ({}, {}) uses image {}", c.id, c.name,
                              cri::container_state_name(c.state), image->id);
    } else if (const auto age = now - entry.pulled_at; age < options.min_age) {
      r.decision = PruneDecision::kTooYoung;
      r.message = fmt::format("pulled {}s ago, younger than the minimum age {}s",
                              std::chrono::duration_cast<std::chrono::seconds>(age).count(),
                              options.min_age.count());
    } else {
      try {
        runtime_.remove_image(image->id);
        r.decision = PruneDecision::kRemoved;
        r.message = fmt::format("removed image {}", image->id);
        record_.remove(entry.ref, entry.digest);
      } catch (const Error& e) {
        r.decision = PruneDecision::kRemoveFailed;
        r.message = fmt::format("removing {} ({}): {}", entry.ref, image->id, e.what());
      }
    }
    results.push_back(std::move(r));
  }

  std::set<std::string> dropped(options.dropped.begin(), options.dropped.end());
  {
    const std::lock_guard lock(mu_);
    dropped.insert(seen_names_.begin(), seen_names_.end());
  }
  for (const auto& name : dropped) {
    if (wanted_names.contains(name) || recorded_refs.contains(name)) continue;
    results.push_back(PruneResult{.ref = name,
                                  .digest = "",
                                  .image_id = "",
                                  .decision = PruneDecision::kNotPulledByAgent,
                                  .message = "no longer planned, but not pulled by this agent"});
  }
  return results;
}

}  // namespace stowage::agent
