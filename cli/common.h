// What every image command of stowctl shares: the global flags, the local store, finding an image
// in it by name or ID, and the human formats of sizes and times.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/auth.h"
#include "oci/manifest.h"
#include "oci/store.h"
#include "oci/types.h"

namespace stowctl {

struct GlobalOptions {
  std::string root;             // empty: $XDG_DATA_HOME/stowage or ~/.local/share/stowage
  std::string registries_conf;  // empty: the containers defaults (CONTAINERS_REGISTRIES_CONF, ...)
  std::string authfile;         // empty: REGISTRY_AUTH_FILE, then the containers defaults
  std::string cert_dir;         // empty: /etc/containers/certs.d and /etc/docker/certs.d
  std::optional<bool> tls_verify;
  std::string log_level = "warn";
  int retry = 4;           // retries of a failed registry request (RetryPolicy: attempts - 1)
  int stall_timeout = 60;  // seconds without a byte before a transfer fails
  std::string platform;    // empty: the host's
  // A node's CRI runtime ("unix:///run/containerd/containerd.sock"): images, pull and rmi then
  // work on that runtime's store instead of the local one.
  std::string cri_endpoint;
  // Sandbox (pause) images of that runtime, protected from rmi like images in use.
  std::vector<std::string> sandbox_images;
};

// Registers the global flags on `app` (they are accepted before or after the command).
void add_global_flags(CLI::App& app, GlobalOptions& options);
// Applies --log-level; call at the start of each command.
void apply_log_level(const GlobalOptions& options);

// The credentials of the first auth file (--authfile, REGISTRY_AUTH_FILE, then the containers
// defaults) that has some for `registry` ("quay.io", "localhost:5000"); empty when none does. A
// credential helper named for it is warned about on stderr and skipped.
stowage::oci::Credentials lookup_credentials(const GlobalOptions& options,
                                             std::string_view registry);

std::filesystem::path store_root(const GlobalOptions& options);
std::unique_ptr<stowage::oci::Store> open_store(const GlobalOptions& options);

// One image of the store, resolved to a single-platform manifest.
struct LocalImage {
  std::vector<std::string> names;      // every name pointing at `top` (may be empty)
  std::string matched;                 // find_local_image: the stored name that matched, or ""
  stowage::oci::Descriptor top;        // what index.json holds: a manifest or an index
  stowage::oci::Descriptor manifest;   // the manifest for the platform (== top for a manifest)
  stowage::oci::ImageManifest parsed;  // of `manifest`
  stowage::oci::ImageConfig config;
  std::string id;          // config digest hex: podman's image ID
  std::uint64_t size = 0;  // manifest + config + layers as stored
};

// Every image of the store, one per distinct `top` digest, names sorted. Index entries whose
// platform manifest is not held locally are skipped.
std::vector<LocalImage> list_local_images(const stowage::oci::Store& store,
                                          const stowage::oci::Platform& platform);

// Finds an image by name ("alpine", "quay.io/a/b:1"), by ID or digest prefix (at least 3 hex
// digits, "sha256:" optional) or by full manifest digest. Throws Error(kNotFound) naming `ref`;
// Error(kInvalidArgument) when an ID prefix is ambiguous.
LocalImage find_local_image(const stowage::oci::Store& store, const std::string& ref,
                            const stowage::oci::Platform& platform);
// True when `ref` reads as an ID or digest rather than a name.
bool looks_like_id(const std::string& ref);

stowage::oci::Platform chosen_platform(const GlobalOptions& options);

// "7.05 MB": three significant digits, decimal units, as podman prints sizes.
std::string human_size(std::uint64_t bytes);
// "3 days ago", "About an hour ago", as podman prints ages; "" for an unparseable time.
std::string human_age(const std::string& rfc3339, std::chrono::system_clock::time_point now);

// The repository and tag columns of a stored name: "docker.io/library/alpine:3" →
// {"docker.io/library/alpine", "3"}; a digest-only name gives tag "<none>".
std::pair<std::string, std::string> split_name(const std::string& name);

}  // namespace stowctl
