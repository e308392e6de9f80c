#include "node-agent/registries_applier.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <system_error>
#include <utility>

#include "base/files.h"
#include "registries/conf.h"
#include "registries/render.h"

namespace stowage::agent {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMarkerText =
    "This directory's hosts.toml is written by stowage-agent, which removes both when the\n"
    "registry is no longer configured. Other files here are left alone.\n";

Error from_filesystem(const fs::filesystem_error& e) {
  const std::error_code ec = e.code();
  Code code = Code::kInternal;
  if (ec == std::errc::permission_denied || ec == std::errc::operation_not_permitted ||
      ec == std::errc::read_only_file_system) {
    code = Code::kPermissionDenied;
  } else if (ec == std::errc::no_space_on_device) {
    code = Code::kResourceExhausted;
  }
  return Error(code, e.what());
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

std::string describe_paths(const std::vector<std::string>& hosts) {
  std::string out;
  for (const auto& h : hosts) {
    if (!out.empty()) out += ", ";
    out += h;
  }
  return out;
}

}  // namespace

std::optional<RuntimeKind> runtime_kind_from_name(std::string_view runtime_name) {
  if (runtime_name == "cri-o") return RuntimeKind::kCrio;
  if (runtime_name == "containerd") return RuntimeKind::kContainerd;
  return std::nullopt;
}

std::string_view runtime_kind_name(RuntimeKind kind) {
  return kind == RuntimeKind::kCrio ? "cri-o" : "containerd";
}

ContainerdRegistryPath containerd_registry_path(std::string_view config_toml,
                                                std::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(config_toml, source_name);
  } catch (const toml::parse_error& e) {
    throw Error(Code::kInvalidArgument,
                fmt::format("parsing containerd config {}: toml: line {}: {}", source_name,
                            e.source().begin.line, e.description()));
  }
  ContainerdRegistryPath out;
  if (const auto v = root["version"]; v) {
    const auto n = v.value<std::int64_t>();
    if (!n || !v.is_integer()) {
      throw Error(Code::kInvalidArgument,
                  fmt::format("containerd config {}: version must be an integer", source_name));
    }
    out.config_version = static_cast<int>(*n);
  }
  std::string plugin;
  if (out.config_version >= 3) {
    plugin = "io.containerd.cri.v1.images";
  } else if (out.config_version == 2) {
    plugin = "io.containerd.grpc.v1.cri";
  } else {
    plugin = "cri";
  }
  out.key = plugin.find('.') == std::string::npos
                ? fmt::format("plugins.{}.registry.config_path", plugin)
                : fmt::format("plugins.\"{}\".registry.config_path", plugin);
  const auto node = root["plugins"][plugin]["registry"]["config_path"];
  if (!node) return out;
  const auto text = node.value<std::string>();
  if (!node.is_string() || !text) {
    throw Error(Code::kInvalidArgument,
                fmt::format("containerd config {}: {} must be a string", source_name, out.key));
  }
  std::string_view rest = *text;
  while (!rest.empty()) {
    const auto colon = rest.find(':');
    const std::string_view part = rest.substr(0, colon);
    if (!part.empty()) out.dirs.emplace_back(part);
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return out;
}

void check_hosts_dir_name(std::string_view host) {
  const auto bad = [&](std::string_view why) {
    throw Error(Code::kInvalidArgument,
                fmt::format("registry host \"{}\" cannot name a certs.d directory: {}", host, why));
  };
  if (host.empty()) bad("it is empty");
  if (host.size() > 255) bad("it is longer than 255 characters");
  if (host.front() == '.') bad("it starts with '.'");
  for (const char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
    if (!ok) bad(fmt::format("character '{}' is not allowed", c == '\0' ? ' ' : c));
  }
}

std::vector<std::string> owned_hosts(const fs::path& certs_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(certs_dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(certs_dir, ec)) {
    std::error_code entry_ec;
    if (entry.is_directory(entry_ec) && !entry.is_symlink(entry_ec) &&
        is_file(entry.path() / kOwnershipMarker)) {
      out.push_back(entry.path().filename().string());
    }
  }
  if (ec) {
    throw Error(Code::kInternal, fmt::format("listing {}: {}", certs_dir.string(), ec.message()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct RegistriesApplier::Plan {
  fs::path dropin;
  fs::path backup;
  fs::path pending;
  std::optional<std::string> previous;    // the drop-in on disk now
  std::optional<std::string> restore_to;  // what a rollback puts back (nullopt: no drop-in)
  bool crio = false;
  bool dropin_differs = false;
  bool reload_pending = false;  // an earlier apply wrote the drop-in but never saw CRI-O reload
  bool manage_hosts = false;
  fs::path certs_dir;
  std::vector<std::string> hosts_to_write;
  std::vector<std::string> hosts_to_remove;
};

RegistriesApplier::RegistriesApplier(fs::path host_root, RuntimeReloader* crio_reloader)
    : host_root_(std::move(host_root)), crio_reloader_(crio_reloader) {}

fs::path RegistriesApplier::host_path(std::string_view absolute) const {
  const fs::path p(absolute);
  if (!p.is_absolute()) {
    throw Error(Code::kInvalidArgument, fmt::format("host path \"{}\" is not absolute", absolute));
  }
  for (const auto& part : p) {
    if (part == "..") {
      throw Error(Code::kInvalidArgument,
                  fmt::format("host path \"{}\" must not contain \"..\"", absolute));
    }
  }
  return host_root_ / p.lexically_normal().relative_path();
}

fs::path RegistriesApplier::dropin_path() const {
  return host_path(kRegistriesDropInDir) / registries::kDropInFileName;
}

RegistriesApplier::Plan RegistriesApplier::plan(const DesiredRegistries& desired,
                                                RuntimeKind runtime, ApplyResult& result) const {
  Plan p;
  if (runtime == RuntimeKind::kCrio && crio_reloader_ == nullptr) {
    throw Error(Code::kInternal,
                "no CRI-O reloader was given: cannot apply registries on a "
                "CRI-O node");
  }
  // The drop-in, merged with the node's main file and other drop-ins as containers/image would.
  const fs::path dropin_dir = host_path(kRegistriesDropInDir);
  registries::load_config_with_dropin(host_path(kMainRegistriesConf), dropin_dir, false,
                                      registries::kDropInFileName, desired.dropin,
                                      &result.warnings);
  for (const auto& [host, text] : desired.hosts_toml) {
    check_hosts_dir_name(host);
    try {
      (void)toml::parse(text, host + "/hosts.toml");
    } catch (const toml::parse_error& e) {
      throw Error(Code::kInvalidArgument, fmt::format("hosts.toml for {}: toml: line {}: {}", host,
                                                      e.source().begin.line, e.description()));
    }
  }

  p.crio = runtime == RuntimeKind::kCrio;
  p.dropin = dropin_dir / registries::kDropInFileName;
  p.backup = fs::path(p.dropin.string() + std::string(kBackupSuffix));
  p.pending = fs::path(p.dropin.string() + std::string(kPendingSuffix));
  p.previous = read_file(p.dropin);
  p.dropin_differs = p.previous != desired.dropin;
  p.reload_pending = p.crio && is_file(p.pending);
  p.restore_to = p.dropin_differs ? p.previous : read_file(p.backup);

  if (runtime != RuntimeKind::kContainerd) return p;

  const fs::path config_file = host_path(kContainerdConfig);
  const std::optional<std::string> config_text = read_file(config_file);
  if (!config_text) {
    if (desired.hosts_toml.empty()) return p;
    throw Error(Code::kNotFound,
                fmt::format("containerd config {} does not exist: containerd reads hosts.toml "
                            "files only from the registry config_path its config sets",
                            config_file.string()));
  }
  const ContainerdRegistryPath reg = containerd_registry_path(*config_text, config_file.string());
  if (reg.dirs.empty()) {
    if (desired.hosts_toml.empty()) return p;
    throw Error(Code::kInvalidArgument,
                fmt::format("containerd config {} (version {}) does not set {}: containerd would "
                            "ignore hosts.toml files; set it (e.g. to \"/etc/containerd/certs.d\") "
                            "and restart containerd",
                            config_file.string(), reg.config_version, reg.key));
  }
  p.manage_hosts = true;
  p.certs_dir = host_path(reg.dirs.front());
  for (const auto& [host, text] : desired.hosts_toml) {
    const fs::path dir = p.certs_dir / host;
    const bool owned = is_file(dir / kOwnershipMarker);
    const std::optional<std::string> existing = read_file(dir / "hosts.toml");
    if (existing && !owned) {
      throw Error(Code::kConflict,
                  fmt::format("{} was not written by Stowage (no {} beside it): refusing to "
                              "replace it",
                              (dir / "hosts.toml").string(), kOwnershipMarker));
    }
    if (!owned || existing != text) p.hosts_to_write.push_back(host);
  }
  for (const auto& host : owned_hosts(p.certs_dir)) {
    if (!desired.hosts_toml.contains(host)) p.hosts_to_remove.push_back(host);
  }
  return p;
}

void RegistriesApplier::write_dropin(const Plan& p, const DesiredRegistries& desired) const {
  const fs::path dir = p.dropin.parent_path();
  if (!fs::exists(dir)) {
    fs::create_directories(dir);
    fsync_dir(dir.parent_path());
  }
  if (p.previous) {
    atomic_write_file(p.backup, *p.previous);
  } else if (fs::remove(p.backup)) {
    fsync_dir(dir);  // no previous version: a stale backup must not be restored later
  }
  if (p.crio && !p.reload_pending) {
    // Written before the drop-in, removed after CRI-O reloaded: survives a kill in between.
    atomic_write_file(p.pending, "");
  }
  atomic_write_file(p.dropin, desired.dropin);
}

void RegistriesApplier::write_hosts(const Plan& p, const DesiredRegistries& desired) const {
  if (!p.manage_hosts) return;
  if (!p.hosts_to_write.empty() && !fs::exists(p.certs_dir)) {
    fs::create_directories(p.certs_dir);
    fsync_dir(p.certs_dir.parent_path());
  }
  for (const auto& host : p.hosts_to_write) {
    const fs::path dir = p.certs_dir / host;
    if (fs::create_directory(dir)) fsync_dir(p.certs_dir);
    if (!is_file(dir / kOwnershipMarker)) atomic_write_file(dir / kOwnershipMarker, kMarkerText);
    atomic_write_file(dir / "hosts.toml", desired.hosts_toml.at(host));
  }
  for (const auto& host : p.hosts_to_remove) {
    const fs::path dir = p.certs_dir / host;
    fs::remove(dir / "hosts.toml");
    fs::remove(dir / kOwnershipMarker);
    std::error_code ec;
    if (!fs::remove(dir, ec)) fsync_dir(dir);  // others' files remain: keep the directory
  }
  if (!p.hosts_to_remove.empty()) fsync_dir(p.certs_dir);
}

void RegistriesApplier::reload_or_roll_back(const Plan& p, ApplyResult& result) const {
  std::string reason;
  Code code = Code::kInternal;
  try {
    crio_reloader_->reload();
    fs::remove(p.pending);
    result.reloaded = true;
    result.message =
        p.dropin_differs
            ? fmt::format("applied: wrote {} and reloaded CRI-O", p.dropin.string())
            : fmt::format("applied: {} was already written; reloaded CRI-O", p.dropin.string());
    return;
  } catch (const Error& e) {
    reason = e.what();
    code = e.code();
  }
  result.state = ApplyState::kFailed;
  result.error = code;
  const std::string what =
      fmt::format("reloading CRI-O after writing {}: {}", p.dropin.string(), reason);
  try {
    if (p.restore_to) {
      atomic_write_file(p.dropin, *p.restore_to);
    } else if (fs::remove(p.dropin)) {
      fsync_dir(p.dropin.parent_path());
    }
  } catch (const std::exception& e) {
    result.message =
        fmt::format("{}; restoring the previous drop-in failed too: {}", what, e.what());
    return;
  }
  result.rolled_back = true;
  const std::string restored = p.restore_to ? "restored the previous drop-in"
                                            : "removed the drop-in (there was none before)";
  try {
    crio_reloader_->reload();
    fs::remove(p.pending);
    result.message = fmt::format("{}; {} and reloaded CRI-O", what, restored);
  } catch (const std::exception& e) {
    result.message =
        fmt::format("{}; {}, but reloading CRI-O again failed too: {}", what, restored, e.what());
  }
}

ApplyResult RegistriesApplier::apply(const DesiredRegistries& desired, RuntimeKind runtime) {
  ApplyResult result;
  const auto fail = [&](Code code, std::string message) {
    result.state = ApplyState::kFailed;
    result.error = code;
    result.message = std::move(message);
    return result;
  };
  Plan p;
  try {
    p = plan(desired, runtime, result);
  } catch (const Error& e) {
    return fail(e.code(), e.what());
  } catch (const fs::filesystem_error& e) {
    const Error err = from_filesystem(e);
    return fail(err.code(), err.what());
  }
  const bool hosts_change = !p.hosts_to_write.empty() || !p.hosts_to_remove.empty();
  const bool needs_reload = runtime == RuntimeKind::kCrio && (p.dropin_differs || p.reload_pending);
  if (!p.dropin_differs && !hosts_change && !needs_reload) {
    result.message = "unchanged";
    return result;
  }

  try {
    if (p.dropin_differs) {
      result.changed = true;
      write_dropin(p, desired);
    }
    if (hosts_change) {
      result.changed = true;
      write_hosts(p, desired);
    }
  } catch (const Error& e) {
    return fail(e.code(), fmt::format("writing registries files: {}", e.what()));
  } catch (const fs::filesystem_error& e) {
    const Error err = from_filesystem(e);
    return fail(err.code(), fmt::format("writing registries files: {}", err.what()));
  }

  if (needs_reload) {
    try {
      reload_or_roll_back(p, result);
    } catch (const fs::filesystem_error& e) {
      const Error err = from_filesystem(e);
      return fail(err.code(), err.what());
    }
    return result;
  }
  std::string done;
  if (p.dropin_differs) done = fmt::format("wrote {}", p.dropin.string());
  if (!p.hosts_to_write.empty()) {
    if (!done.empty()) done += "; ";
    done += fmt::format("wrote hosts.toml under {} for {}", p.certs_dir.string(),
                        describe_paths(p.hosts_to_write));
  }
  if (!p.hosts_to_remove.empty()) {
    if (!done.empty()) done += "; ";
    done += fmt::format("removed hosts.toml under {} for {}", p.certs_dir.string(),
                        describe_paths(p.hosts_to_remove));
  }
  result.message = fmt::format("applied: {}", done);
  if (runtime == RuntimeKind::kContainerd && hosts_change) {
    result.message += " (containerd reads hosts.toml on each pull: no reload needed)";
  }
  return result;
}

}  // namespace stowage::agent
