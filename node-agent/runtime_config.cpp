#include "node-agent/runtime_config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <system_error>

#include "base/error.h"
#include "base/files.h"
#include "reference/reference.h"

namespace stowage::agent {
namespace {

namespace fs = std::filesystem;

toml::table parse_toml(std::string_view text, std::string_view source_name, std::string_view what) {
  try {
    return toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    throw Error(Code::kInvalidArgument,
                fmt::format("parsing {} {}: toml: line {}: {}", what, source_name,
                            e.source().begin.line, e.description()));
  }
}

// The string at `node`, nullopt when absent; throws when it is something else.
std::optional<std::string> string_at(toml::node_view<const toml::node> node,
                                     std::string_view source_name, std::string_view key) {
  if (!node) return std::nullopt;
  const auto text = node.value<std::string>();
  if (!node.is_string() || !text) {
    throw Error(Code::kInvalidArgument, fmt::format("{}: {} must be a string", source_name, key));
  }
  return *text;
}

// (major, minor) of "1.6.20~ds1", "v2.0.0", "1.31.2-rc.1"; nullopt when it does not start so.
std::optional<std::pair<int, int>> major_minor(std::string_view version) {
  if (!version.empty() && (version.front() == 'v' || version.front() == 'V')) {
    version.remove_prefix(1);
  }
  const auto number = [&]() -> std::optional<int> {
    if (version.empty() || !std::isdigit(static_cast<unsigned char>(version.front()))) {
      return std::nullopt;
    }
    int n = 0;
    while (!version.empty() && std::isdigit(static_cast<unsigned char>(version.front()))) {
      n = n * 10 + (version.front() - '0');
      if (n > 100000) return std::nullopt;
      version.remove_prefix(1);
    }
    return n;
  };
  const auto major = number();
  if (!major || version.empty() || version.front() != '.') return std::nullopt;
  version.remove_prefix(1);
  const auto minor = number();
  if (!minor) return std::nullopt;
  return std::pair<int, int>{*major, *minor};
}

}  // namespace

std::string normalize_sandbox_reference(std::string_view reference) {
  Reference ref = Reference::parse_normalized(reference);
  if (ref.digest) ref.tag.reset();
  return ref.with_default_tag().string();
}

std::optional<std::string> containerd_sandbox_image(std::string_view config_toml,
                                                    std::string_view source_name) {
  const toml::table root = parse_toml(config_toml, source_name, "containerd config");
  int version = 1;
  if (const auto v = root["version"]; v) {
    const auto n = v.value<std::int64_t>();
    if (!n || !v.is_integer()) {
      throw Error(Code::kInvalidArgument,
                  fmt::format("containerd config {}: version must be an integer", source_name));
    }
    version = static_cast<int>(*n);
  }
  const auto plugins = root["plugins"];
  if (version >= 3) {
    // containerd 2.x; a version 3 file has no grpc.v1.cri sandbox_image to migrate.
    return string_at(plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"],
                     source_name, "plugins.\"io.containerd.cri.v1.images\".pinned_images.sandbox");
  }
  if (version == 2) {
    return string_at(plugins["io.containerd.grpc.v1.cri"]["sandbox_image"], source_name,
                     "plugins.\"io.containerd.grpc.v1.cri\".sandbox_image");
  }
  return string_at(plugins["cri"]["sandbox_image"], source_name, "plugins.cri.sandbox_image");
}

std::optional<std::string> crio_pause_image(std::string_view config_toml,
                                            std::string_view source_name) {
  const toml::table root = parse_toml(config_toml, source_name, "CRI-O config");
  return string_at(root["crio"]["image"]["pause_image"], source_name, "[crio.image] pause_image");
}

SandboxImage default_sandbox_image(RuntimeKind kind, std::string_view runtime_version) {
  const auto v = major_minor(runtime_version);
  const auto at_least = [&](int major, int minor) {
    return !v || v->first > major || (v->first == major && v->second >= minor);
  };
  std::string reference;
  std::string origin;
  if (kind == RuntimeKind::kContainerd) {
    if (at_least(2, 0)) {
      reference = "registry.k8s.io/pause:3.10";
    } else if (at_least(1, 7)) {
      reference = "registry.k8s.io/pause:3.8";
    } else if (at_least(1, 6)) {
      reference = "registry.k8s.io/pause:3.6";
    } else {
      reference = "k8s.gcr.io/pause:3.5";
    }
    origin = "containerd";
  } else {
    if (at_least(1, 31)) {
      reference = "registry.k8s.io/pause:3.10";
    } else if (at_least(1, 27)) {
      reference = "registry.k8s.io/pause:3.9";
    } else {
      reference = "registry.k8s.io/pause:3.6";
    }
    origin = "CRI-O";
  }
  origin = v ? fmt::format("the default of {} {}.{}", origin, v->first, v->second)
             : fmt::format("the default of the newest {} known", origin);
  return SandboxImage{.reference = std::move(reference), .origin = std::move(origin)};
}

SandboxImage sandbox_image_from_files(
    RuntimeKind kind, std::string_view runtime_version,
    const std::vector<std::pair<std::string, std::string>>& files) {
  std::optional<SandboxImage> found;
  for (const auto& [name, text] : files) {
    const std::optional<std::string> value = kind == RuntimeKind::kContainerd
                                                 ? containerd_sandbox_image(text, name)
                                                 : crio_pause_image(text, name);
    // An empty value means unset to both runtimes (their defaults apply).
    if (!value || value->empty()) continue;
    std::string reference;
    try {
      reference = normalize_sandbox_reference(*value);
    } catch (const Error& e) {
      throw Error(Code::kInvalidArgument,
                  fmt::format("{}: sandbox image \"{}\": {}", name, *value, e.what()));
    }
    found = SandboxImage{
        .reference = std::move(reference),
        .origin = fmt::format("{} {}", name,
                              kind == RuntimeKind::kContainerd ? "sandbox_image" : "pause_image")};
  }
  if (found) return *found;
  return default_sandbox_image(kind, runtime_version);
}

SandboxImage read_sandbox_image(const fs::path& host_root, RuntimeKind kind,
                                std::string_view runtime_version) {
  std::vector<std::pair<std::string, std::string>> files;
  const auto add = [&](const fs::path& host_path) {
    std::optional<std::string> text;
    try {
      text = read_file(host_root / host_path.relative_path());
    } catch (const Error& e) {
      throw Error(Code::kUnavailable, fmt::format("reading {}: {}", host_path.string(), e.what()));
    }
    if (text) files.emplace_back(host_path.string(), std::move(*text));
  };
  if (kind == RuntimeKind::kContainerd) {
    add("/etc/containerd/config.toml");
  } else {
    add("/etc/crio/crio.conf");
    // Drop-ins in lexical order, each overriding what came before.
    const fs::path dropins = "/etc/crio/crio.conf.d";
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(host_root / dropins.relative_path(), ec), end; !ec && it != end;
         it.increment(ec)) {
      std::error_code type_ec;
      if (it->is_regular_file(type_ec)) names.push_back(it->path().filename().string());
    }
    if (ec && ec != std::errc::no_such_file_or_directory) {
      throw Error(Code::kUnavailable,
                  fmt::format("listing {}: {}", dropins.string(), ec.message()));
    }
    std::sort(names.begin(), names.end());
    for (const auto& name : names) add(dropins / name);
  }
  return sandbox_image_from_files(kind, runtime_version, files);
}

}  // namespace stowage::agent
