// podman and skopeo as oracles, hermetic: `unshare -m` with an empty tmpfs over
// /etc/containers/registries.conf.d, an empty CONTAINERS_REGISTRIES_CONF, HOME, --root, --runroot
// and --tmpdir in a temp dir of its own, vfs storage. One PodmanPeer is one podman storage.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "support/process.h"

namespace stowage::test {

// Why podman oracles cannot run here ("" when they can): needs root, podman, skopeo, unshare.
std::string podman_unavailable_reason();

class PodmanPeer {
 public:
  PodmanPeer();

  RunResult podman(std::vector<std::string> args) const;
  RunResult skopeo(std::vector<std::string> args) const;
  // `podman image inspect` of one image; throws std::runtime_error when podman fails.
  nlohmann::json inspect(const std::string& name) const;
  // Every name of every image, once, sorted.
  std::vector<std::string> image_names() const;
  std::filesystem::path path(std::string_view name) const { return dir_ / name; }

 private:
  RunOptions options() const;

  TempDir dir_{"stowage-podman"};
};

}  // namespace stowage::test
