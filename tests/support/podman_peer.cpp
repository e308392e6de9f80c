#include "support/podman_peer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <set>
#include <stdexcept>

namespace stowage::test {

namespace fs = std::filesystem;
using nlohmann::json;

std::string podman_unavailable_reason() {
  if (::geteuid() != 0) return "needs root (unshare -m, tmpfs mount, podman storage)";
  for (const char* tool : {"podman", "skopeo", "unshare"}) {
    if (!find_executable(tool)) return fmt::format("{} is not installed", tool);
  }
  if (!fs::is_directory("/etc/containers/registries.conf.d")) {
    return "/etc/containers/registries.conf.d is missing (nothing to mount the empty tmpfs on)";
  }
  return "";
}

PodmanPeer::PodmanPeer() {
  fs::create_directories(dir_ / "home");
  fs::create_directories(dir_ / "tmp");
  write_text_file(dir_ / "registries.conf", "");
}

RunResult PodmanPeer::podman(std::vector<std::string> args) const {
  // Paths arrive as $1..$3, never inside the script.
  static constexpr const char* kScript =
      "mount -t tmpfs none /etc/containers/registries.conf.d && r=$1 rr=$2 t=$3 && shift 3 && "
      "exec podman --root \"$r\" --runroot \"$rr\" --tmpdir \"$t\" --storage-driver vfs "
      "--cgroup-manager cgroupfs --events-backend file \"$@\"";
  std::vector<std::string> argv = {"unshare",
                                   "-m",
                                   "sh",
                                   "-c",
                                   kScript,
                                   "sh",
                                   (dir_ / "root").string(),
                                   (dir_ / "runroot").string(),
                                   (dir_ / "tmp").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, options());
}

RunResult PodmanPeer::skopeo(std::vector<std::string> args) const {
  args.insert(args.begin(), "skopeo");
  return run(args, options());
}

json PodmanPeer::inspect(const std::string& name) const {
  const auto r = podman({"image", "inspect", "--format", "json", name});
  if (!r.ok()) throw std::runtime_error(r.describe());
  return json::parse(r.out).at(0);
}

std::vector<std::string> PodmanPeer::image_names() const {
  const auto r = podman({"images", "--format", "json"});
  if (!r.ok()) throw std::runtime_error(r.describe());
  std::set<std::string> out;
  for (const auto& image : json::parse(r.out)) {
    for (const auto& n : image.value("Names", json::array())) out.insert(n.get<std::string>());
  }
  return {out.begin(), out.end()};
}

RunOptions PodmanPeer::options() const {
  RunOptions o;
  o.env = {{"HOME", (dir_ / "home").string()},
           {"TMPDIR", (dir_ / "tmp").string()},
           {"CONTAINERS_REGISTRIES_CONF", (dir_ / "registries.conf").string()}};
  o.timeout = std::chrono::seconds(180);
  return o;
}

}  // namespace stowage::test
