// The agent's registries applier: puts the operator's rendered registries files on the node. The
// containers drop-in /etc/containers/registries.conf.d/99-stowage.conf (read by CRI-O, podman,
// skopeo) always; on containerd nodes also <config_path>/<host>/hosts.toml, under the certs.d
// directory containerd's config.toml names. Everything is validated before any file is touched,
// written atomically, the previous drop-in kept as 99-stowage.conf.bak, CRI-O reloaded and the
// drop-in rolled back when CRI-O does not come through. Every host path is under a host root.
//   RegistriesApplier applier("/host", &crio_reloader);
//   ApplyResult r = applier.apply({.dropin = text, .hosts_toml = files}, RuntimeKind::kCrio);
// Not thread-safe: one apply at a time per node.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "node-agent/runtime_reload.h"

namespace stowage::agent {

enum class RuntimeKind { kCrio, kContainerd };

// The kind for CRI Version's runtime_name ("cri-o", "containerd"), or nullopt for others.
std::optional<RuntimeKind> runtime_kind_from_name(std::string_view runtime_name);
std::string_view runtime_kind_name(RuntimeKind kind);

// Host paths the applier uses, relative to the host root.
inline constexpr std::string_view kMainRegistriesConf = "/etc/containers/registries.conf";
inline constexpr std::string_view kRegistriesDropInDir = "/etc/containers/registries.conf.d";
inline constexpr std::string_view kContainerdConfig = "/etc/containerd/config.toml";
// Beside the drop-in: the previous version, and a marker that a written drop-in still awaits a
// successful CRI-O reload (so an agent killed in between reloads on its next apply).
inline constexpr std::string_view kBackupSuffix = ".bak";
inline constexpr std::string_view kPendingSuffix = ".pending";
// In each certs.d/<host>/ directory whose hosts.toml Stowage wrote; other directories are never
// changed or removed.
inline constexpr std::string_view kOwnershipMarker = ".stowage-managed";

// The files the operator rendered for this node.
struct DesiredRegistries {
  std::string dropin;  // the text of 99-stowage.conf
  // Registry host ("quay.io", "mirror.corp:5000", "_default") -> its hosts.toml text.
  std::map<std::string, std::string> hosts_toml;
};

enum class ApplyState { kApplied, kFailed };

struct ApplyResult {
  ApplyState state = ApplyState::kApplied;
  bool changed = false;       // some file was written or removed (also when rolled back later)
  bool reloaded = false;      // CRI-O was reloaded and came through
  bool rolled_back = false;   // the previous drop-in was restored after a failed reload
  std::string message;        // "unchanged", what was done, or why it failed
  std::optional<Code> error;  // the failure's code when state is kFailed
  std::vector<std::string> warnings;  // from validation (unknown keys, deprecations)
  bool ok() const { return state == ApplyState::kApplied; }
};

// Where containerd's CRI plugin looks for hosts.toml files, as its config.toml says.
struct ContainerdRegistryPath {
  int config_version = 1;         // the file's `version` (1 when absent)
  std::string key;                // the key read for that version, for messages
  std::vector<std::string> dirs;  // config_path split at ':', empty entries dropped
};

// Reads the registry config_path from containerd's config.toml text: version 3 (containerd 2.x)
// plugins."io.containerd.cri.v1.images".registry.config_path; version 2 (containerd 1.x, and 2.x
// migrating it) plugins."io.containerd.grpc.v1.cri".registry.config_path; version 1 (containerd
// 1.x) plugins.cri.registry.config_path. `dirs` is empty when the key is not set. Throws
// InvalidArgument on bad TOML or a config_path that is not a string. Pure.
ContainerdRegistryPath containerd_registry_path(std::string_view config_toml,
                                                std::string_view source_name);

// Throws InvalidArgument unless `host` is usable as a certs.d directory name: a host, host:port,
// [ipv6]:port or _default; never empty, ".", "..", hidden, or containing '/'. Pure.
void check_hosts_dir_name(std::string_view host);

// The hosts whose directory under `certs_dir` carries the ownership marker, sorted.
std::vector<std::string> owned_hosts(const std::filesystem::path& certs_dir);

class RegistriesApplier {
 public:
  // `crio_reloader` is borrowed, may be null when the node never runs CRI-O, and must outlive
  // the applier.
  RegistriesApplier(std::filesystem::path host_root, RuntimeReloader* crio_reloader);

  // Validates, writes what differs, reloads CRI-O when the drop-in changed on a CRI-O node, and
  // rolls back when that reload fails. Never throws stowage::Error: failures come back as
  // state kFailed with the reason (a validation failure carries containers/image's message and
  // leaves every file as it was).
  ApplyResult apply(const DesiredRegistries& desired, RuntimeKind runtime);

  // `absolute` (a path as the host sees it) under the host root. Throws InvalidArgument for a
  // relative path or one that climbs out with "..".
  std::filesystem::path host_path(std::string_view absolute) const;

  std::filesystem::path dropin_path() const;

 private:
  struct Plan;
  Plan plan(const DesiredRegistries& desired, RuntimeKind runtime, ApplyResult& result) const;
  void write_dropin(const Plan& plan, const DesiredRegistries& desired) const;
  void write_hosts(const Plan& plan, const DesiredRegistries& desired) const;
  void reload_or_roll_back(const Plan& plan, ApplyResult& result) const;

  std::filesystem::path host_root_;
  RuntimeReloader* crio_reloader_;
};

}  // namespace stowage::agent
