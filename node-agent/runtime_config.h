// The sandbox (pause) image of the node's runtime, read from the runtime's own configuration
// under the host root, so the agent never prunes it. containerd: sandbox_image of the CRI plugin
// in /etc/containerd/config.toml; CRI-O: pause_image of [crio.image] in /etc/crio/crio.conf and
// the drop-ins of /etc/crio/crio.conf.d (later files win); the runtime's default when unset.
//   const SandboxImage pause = read_sandbox_image(host_root, RuntimeKind::kContainerd, "1.6.20");
//   prune_options.pause_images = {pause.reference};   // "registry.k8s.io/pause:3.6"
// The parsing functions are pure; read_sandbox_image() reads the files.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "node-agent/registries_applier.h"

namespace stowage::agent {

struct SandboxImage {
  // Normalized as runtimes list their images: "registry.k8s.io/pause:3.9",
  // "docker.io/library/pause:3.9" for "pause:3.9", "quay.io/x/pause@sha256:..." for a digest.
  std::string reference;
  // Where it came from: `<file> <key>`, or "the default of containerd 1.7".
  std::string origin;
  bool operator==(const SandboxImage&) const = default;
};

// The reference as runtimes record it: docker.io and library/ added to short names, "latest"
// when it has neither tag nor digest, and only the digest when it has both (runtimes list
// "name@digest" among repo digests). Throws Error(kInvalidArgument) when it is not a reference.
std::string normalize_sandbox_reference(std::string_view reference);

// The sandbox image set in containerd's config.toml text, not normalized, or nullopt when unset:
// version 3 (containerd 2.x) plugins."io.containerd.cri.v1.images".pinned_images.sandbox;
// version 2 plugins."io.containerd.grpc.v1.cri".sandbox_image (also what containerd 2.x migrates
// from); version 1 plugins.cri.sandbox_image. Throws Error(kInvalidArgument) on bad TOML or a
// value that is not a string. `source_name` names the file in messages.
std::optional<std::string> containerd_sandbox_image(std::string_view config_toml,
                                                    std::string_view source_name);

// pause_image of [crio.image] in one CRI-O config file's text, or nullopt when unset. Throws
// Error(kInvalidArgument) on bad TOML or a value that is not a string.
std::optional<std::string> crio_pause_image(std::string_view config_toml,
                                            std::string_view source_name);

// The runtime's built-in sandbox image for `runtime_version` (CRI Version's runtime_version,
// e.g. "1.6.20~ds1", "v2.0.0", "1.31.2"): containerd 1.5 k8s.gcr.io/pause:3.5, 1.6
// registry.k8s.io/pause:3.6, 1.7 registry.k8s.io/pause:3.8, 2.x registry.k8s.io/pause:3.10; CRI-O
// before 1.27 registry.k8s.io/pause:3.6, 1.27-1.30 registry.k8s.io/pause:3.9, 1.31 and later
// registry.k8s.io/pause:3.10. A version that does not parse gets the newest default.
SandboxImage default_sandbox_image(RuntimeKind kind, std::string_view runtime_version);

// The sandbox image in effect for configuration files given as (name, text) in the order the
// runtime reads them (containerd: one file; CRI-O: crio.conf, then its drop-ins): the last one
// that sets it, else the default. Throws as the parsers above do.
SandboxImage sandbox_image_from_files(
    RuntimeKind kind, std::string_view runtime_version,
    const std::vector<std::pair<std::string, std::string>>& files);

// Reads the runtime's configuration under `host_root` (absent files are fine) and returns its
// sandbox image. Throws Error(kInvalidArgument) on a file that does not parse, Error(kUnavailable)
// on one that cannot be read; callers fall back to default_sandbox_image().
SandboxImage read_sandbox_image(const std::filesystem::path& host_root, RuntimeKind kind,
                                std::string_view runtime_version);

}  // namespace stowage::agent
