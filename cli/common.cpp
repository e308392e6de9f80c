#include "common.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>

#include "base/error.h"
#include "base/log.h"
#include "oci/auth.h"
#include "reference/reference.h"

namespace stowctl {

namespace fs = std::filesystem;
namespace oci = stowage::oci;
using stowage::Code;
using stowage::Error;

void add_global_flags(CLI::App& app, GlobalOptions& options) {
  app.add_option("--root", options.root,
                 "Directory of the local image store (default: $XDG_DATA_HOME/stowage or "
                 "~/.local/share/stowage)")
      ->envname("STOWAGE_ROOT");
  app.add_option("--registries-conf", options.registries_conf,
                 "registries.conf to use instead of the containers defaults "
                 "(/etc/containers/registries.conf and its .d directory)")
      ->envname("CONTAINERS_REGISTRIES_CONF");
  app.add_option("--authfile", options.authfile,
                 "Credentials file (default: REGISTRY_AUTH_FILE, then "
                 "${XDG_RUNTIME_DIR}/containers/auth.json)");
  app.add_option("--cert-dir", options.cert_dir,
                 "Directory of per-registry certificates <host>/ca.crt, *.cert, *.key (default: "
                 "/etc/containers/certs.d)");
  app.add_option("--tls-verify", options.tls_verify,
                 "Require HTTPS and verify certificates (default: as registries.conf says)")
      ->expected(0, 1)
      ->default_str("true");
  app.add_option("--retry", options.retry,
                 "Times a failed registry request is retried, with growing delays (default 4)")
      ->check(CLI::Range(0, 20));
  app.add_option("--stall-timeout", options.stall_timeout,
                 "Seconds a registry transfer may go without receiving a byte before it fails "
                 "(default 60)")
      ->check(CLI::Range(1, 3600));
  app.add_option("--log-level", options.log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--platform", options.platform,
                 "OS/ARCH[/VARIANT] of images to pick from a multi-platform image (default: the "
                 "host's)");
  app.add_option("--cri-endpoint", options.cri_endpoint,
                 "Work on a node's CRI runtime store instead of the local one, e.g. "
                 "unix:///run/containerd/containerd.sock (images, pull and rmi only)");
  app.add_option("--sandbox-image", options.sandbox_images,
                 "With --cri-endpoint: the runtime's sandbox (pause) image, which rmi refuses "
                 "like an image in use (repeatable; default: the registry.k8s.io/pause and "
                 "k8s.gcr.io/pause images the runtime holds)");
}

void apply_log_level(const GlobalOptions& options) {
  stowage::setup_logging(stowage::LogFormat::kText, options.log_level);
}

oci::Credentials lookup_credentials(const GlobalOptions& options, std::string_view registry) {
  for (const auto& location :
       oci::auth_read_locations(oci::AuthEnvironment::from_process(), options.authfile)) {
    const auto file = oci::load_auth_file(location);
    if (!file) continue;
    const auto match = file->find_registry(registry);
    if (!match) continue;
    if (!match->helper.empty()) {
      std::cerr << fmt::format(
          "warning: {} names credential helper {} for {}; helpers are not supported, "
          "continuing without credentials\n",
          location.path.string(), match->helper, registry);
      return {};
    }
    if (!match->credentials.empty()) return match->credentials;
  }
  return {};
}

fs::path store_root(const GlobalOptions& options) {
  if (!options.root.empty()) return options.root;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg != '\0') {
    return fs::path(xdg) / "stowage";
  }
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') {
    throw Error(Code::kInvalidArgument, "HOME is not set: give the store directory with --root");
  }
  return fs::path(home) / ".local" / "share" / "stowage";
}

std::unique_ptr<oci::Store> open_store(const GlobalOptions& options) {
  return std::make_unique<oci::Store>(store_root(options));
}

oci::Platform chosen_platform(const GlobalOptions& options) {
  return options.platform.empty() ? oci::host_platform() : oci::parse_platform(options.platform);
}

namespace {

std::optional<LocalImage> load_image(const oci::Store& store, const oci::Descriptor& top,
                                     const oci::Platform& platform) {
  LocalImage image;
  image.top = top;
  image.manifest = top;
  if (oci::is_index_media_type(top.media_type)) {
    const auto index = oci::parse_image_index(store.read(top.digest), top.media_type);
    // The best platform match the store holds.
    std::vector<oci::Descriptor> held;
    for (const auto& d : index.manifests) {
      if (store.has(d.digest) && !oci::is_attestation(d)) held.push_back(d);
    }
    const auto chosen = oci::select_platform(held, platform);
    if (!chosen) return std::nullopt;
    image.manifest = held[*chosen];
  }
  if (!store.has(image.manifest.digest)) return std::nullopt;
  image.parsed =
      oci::parse_image_manifest(store.read(image.manifest.digest), image.manifest.media_type);
  if (!store.has(image.parsed.config.digest)) return std::nullopt;
  image.config = oci::parse_image_config(store.read(image.parsed.config.digest));
  image.id = image.parsed.config.digest.substr(image.parsed.config.digest.find(':') + 1);
  image.size = static_cast<std::uint64_t>(image.manifest.size + image.parsed.config.size);
  for (const auto& layer : image.parsed.layers)
    image.size += static_cast<std::uint64_t>(layer.size);
  return image;
}

std::string strip_sha256(const std::string& ref) {
  return ref.starts_with("sha256:") ? ref.substr(7) : ref;
}

}  // namespace

std::vector<LocalImage> list_local_images(const oci::Store& store, const oci::Platform& platform) {
  std::map<std::string, LocalImage> by_digest;
  std::vector<std::string> order;
  for (const auto& stored : store.list()) {
    auto it = by_digest.find(stored.descriptor.digest);
    if (it == by_digest.end()) {
      auto image = load_image(store, stored.descriptor, platform);
      if (!image) continue;
      it = by_digest.emplace(stored.descriptor.digest, std::move(*image)).first;
      order.push_back(stored.descriptor.digest);
    }
    if (!stored.name.empty()) it->second.names.push_back(stored.name);
  }
  std::vector<LocalImage> out;
  for (const auto& digest : order) {
    LocalImage& image = by_digest.at(digest);
    std::sort(image.names.begin(), image.names.end());
    out.push_back(std::move(image));
  }
  return out;
}

bool looks_like_id(const std::string& ref) {
  const std::string hex = strip_sha256(ref);
  if (hex.size() < 3 || hex.size() > 64) return false;
  return std::all_of(hex.begin(), hex.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f');
  });
}

LocalImage find_local_image(const oci::Store& store, const std::string& ref,
                            const oci::Platform& platform) {
  if (ref.empty()) throw Error(Code::kInvalidArgument, "an image name or ID is required");
  // A name first: podman lets a name that looks like hex win over an ID prefix.
  std::optional<std::string> normalized;
  try {
    normalized = oci::normalize_image_name(ref);
  } catch (const Error&) {
    if (!looks_like_id(ref)) throw;
  }
  if (normalized) {
    if (const auto d = store.resolve(ref)) {
      auto image = load_image(store, *d, platform);
      if (!image) {
        throw Error(Code::kNotFound, fmt::format("{}: the image's content for {} is not in the "
                                                 "store (run 'stowctl pull' again)",
                                                 ref, oci::format_platform(platform)));
      }
      for (const auto& s : store.list()) {
        if (s.descriptor.digest == d->digest && !s.name.empty()) image->names.push_back(s.name);
      }
      std::sort(image->names.begin(), image->names.end());
      image->matched = *normalized;
      return std::move(*image);
    }
  }
  const auto images = list_local_images(store, platform);
  if (looks_like_id(ref)) {
    const std::string prefix = strip_sha256(ref);
    std::vector<const LocalImage*> found;
    for (const auto& image : images) {
      const std::string manifest_hex = strip_sha256(image.top.digest);
      if (image.id.starts_with(prefix) || manifest_hex.starts_with(prefix)) {
        found.push_back(&image);
      }
    }
    if (found.size() == 1) return *found.front();
    if (found.size() > 1) {
      throw Error(Code::kInvalidArgument,
                  fmt::format("{}: ambiguous image ID prefix: {} images match", ref, found.size()));
    }
  }
  // A short name podman-style: any stored repository ending in "/<name>".
  if (normalized && stowage::is_short_name(ref)) {
    const auto parsed = stowage::Reference::parse(ref).with_default_tag();
    const std::string suffix = "/" + parsed.string();
    std::vector<std::pair<std::string, const LocalImage*>> found;
    for (const auto& image : images) {
      for (const auto& name : image.names) {
        if (name.ends_with(suffix)) found.emplace_back(name, &image);
      }
    }
    if (found.size() == 1) {
      LocalImage image = *found.front().second;
      image.matched = found.front().first;
      return image;
    }
    if (found.size() > 1) {
      std::string names;
      for (const auto& [name, image] : found) names += (names.empty() ? "" : ", ") + name;
      throw Error(Code::kInvalidArgument,
                  fmt::format("{}: short name matches several images ({}): give the full name", ref,
                              names));
    }
  }
  throw Error(Code::kNotFound, fmt::format("{}: image not known", ref));
}

std::string human_size(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1000.0 && unit + 1 < std::size(kUnits)) {
    value /= 1000.0;
    ++unit;
  }
  return fmt::format("{:.3g} {}", value, kUnits[unit]);
}

std::string human_age(const std::string& rfc3339, std::chrono::system_clock::time_point now) {
  const auto when = oci::parse_rfc3339(rfc3339);
  if (!when) return "";
  using namespace std::chrono;
  const auto d = now - *when;
  const auto secs = duration_cast<seconds>(d).count();
  if (secs < 1) return "Less than a second ago";
  if (secs < 60) return fmt::format("{} seconds ago", secs);
  const auto mins = secs / 60;
  if (mins < 60) return mins == 1 ? "About a minute ago" : fmt::format("{} minutes ago", mins);
  const auto hours = mins / 60;
  if (hours < 48) return hours == 1 ? "About an hour ago" : fmt::format("{} hours ago", hours);
  const auto days = hours / 24;
  if (days < 14) return fmt::format("{} days ago", days);
  if (days < 60) return fmt::format("{} weeks ago", days / 7);
  if (days < 730) return fmt::format("{} months ago", days / 30);
  return fmt::format("{} years ago", days / 365);
}

std::pair<std::string, std::string> split_name(const std::string& name) {
  const auto at = name.find('@');
  const std::string without_digest = at == std::string::npos ? name : name.substr(0, at);
  const auto colon = without_digest.rfind(':');
  const auto slash = without_digest.rfind('/');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    return {without_digest.substr(0, colon), without_digest.substr(colon + 1)};
  }
  return {without_digest, "<none>"};
}

}  // namespace stowctl
