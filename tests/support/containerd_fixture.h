// A real containerd (Debian 1.6) for integration and e2e tests, fully inside a temp dir: root,
// state, gRPC/ttrpc sockets, the CRI plugin's certs.d (registry config_path), CNI dirs and opt dir.
// No debug or metrics listener, no TCP. Snapshotter "native" (no overlay or kernel features).
//   ContainerdFixture containerd;
//   RunResult r = containerd.ctr({"images", "pull", "--hosts-dir", dir, "example.test/a:1"});
// Needs root. Runs no containers by itself; tests that start tasks must remove them before the
// fixture ends (containerd 1.6 shims leave the process group and use /run/containerd/s).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/process.h"

namespace stowage::test {

struct ContainerdOptions {
  // The namespace ctr() uses.
  std::string namespace_name = "stowage-test";
  // Load the CRI plugin (io.containerd.grpc.v1.cri) and require it to start; false disables it.
  bool enable_cri = true;
  // The CRI plugin's registry config_path (certs.d). Empty: <dir>/certs.d, created empty.
  std::filesystem::path cri_registry_config_path;
  // Plugins not loaded: snapshotters other than native, which need kernel features or disks.
  std::vector<std::string> disabled_plugins = {
      "io.containerd.snapshotter.v1.aufs",      "io.containerd.snapshotter.v1.btrfs",
      "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
      "io.containerd.snapshotter.v1.overlayfs",
  };
  std::string log_level = "info";
  // The CRI plugin's sandbox_image (the pause image every pod sandbox runs). Empty: containerd's
  // default, which needs the internet; tests that run sandboxes seed their own.
  std::string sandbox_image = {};
  // `key = value` lines put in the CRI plugin's own table (extra_config cannot reopen it), e.g.
  // "restrict_oom_score_adj = true" where the fixture may not lower oom_score_adj (needed to
  // run pod sandboxes in unprivileged test environments), "stats_collect_period = 1".
  std::vector<std::string> cri_settings = {};
  // TOML appended to the generated config.toml (e.g. more [plugins."..."] tables).
  std::string extra_config;
  // How long to wait for the gRPC socket to accept connections.
  std::chrono::milliseconds start_timeout = std::chrono::seconds(30);
};

// One entry of `ctr images ls`.
struct CtrImage {
  std::string ref;
  std::string media_type;
  std::string digest;
  std::string platforms;
};

// One containerd process with its own config.toml. Starts in the constructor (throws
// stowage::Error with containerd's log if it does not come up) and stops in the destructor
// (SIGTERM, then SIGKILL; leftover mounts under its root are detached). Not thread-safe; ctr()
// may be called from several threads at once.
class ContainerdFixture {
 public:
  // Why the fixture cannot run here (containerd or ctr missing, not root), or nullopt.
  static std::optional<std::string> unavailable_reason();

  explicit ContainerdFixture(ContainerdOptions options = {});
  ~ContainerdFixture();
  ContainerdFixture(const ContainerdFixture&) = delete;
  ContainerdFixture& operator=(const ContainerdFixture&) = delete;

  // The gRPC unix socket, as passed to `ctr --address` or a CRI client ("unix://" + address()).
  std::string address() const { return (dir_ / "containerd.sock").string(); }
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::filesystem::path config_file() const { return dir_ / "config.toml"; }
  // The CRI plugin's registry config_path.
  const std::filesystem::path& cri_certs_dir() const { return certs_dir_; }
  const std::string& namespace_name() const { return options_.namespace_name; }

  // Runs `ctr --address <socket> --namespace <ns> args...` with CONTAINERD_SNAPSHOTTER=native.
  RunResult ctr(const std::vector<std::string>& args,
                std::chrono::milliseconds timeout = std::chrono::seconds(120)) const;
  // `ctr images ls`, parsed. Throws stowage::Error when ctr fails.
  std::vector<CtrImage> images() const;
  // The image named `ref`, or nullopt.
  std::optional<CtrImage> image(const std::string& ref) const;

  // containerd's log so far.
  std::string log() const;
  Process& process() { return *process_; }

 private:
  std::string render_config() const;
  void detach_leftover_mounts() const;

  ContainerdOptions options_;
  TempDir dir_;
  std::filesystem::path certs_dir_;
  std::unique_ptr<Process> process_;
};

}  // namespace stowage::test
