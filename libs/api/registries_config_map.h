// The ConfigMap that carries one rendering of registries files from the operator to the agents:
// immutable, content-addressed, named `stowage-registries-<hash>` in the operator's namespace.
// ConfigMap keys allow only [-._a-zA-Z0-9], so the files are keyed as follows:
//   99-stowage.conf               the containers registries.conf drop-in
//   <escaped host>.hosts.toml     containerd's certs.d/<host>/hosts.toml, one per registry host
// where <escaped host> is the host with every byte outside [A-Za-z0-9.-] written as `_` and two
// lower-case hex digits ("mirror.corp:5000" -> "mirror.corp_3a5000", "_default" -> "_5fdefault").
// The operator encodes with registries_config_map_data(), the agent decodes with
// registries_files_from_config_map_data(). Pure.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registries/render.h"

namespace stowage::api {

inline constexpr std::string_view kRegistriesConfigMapPrefix = "stowage-registries-";
inline constexpr std::string_view kDropInKey = "99-stowage.conf";
inline constexpr std::string_view kHostsTomlKeySuffix = ".hosts.toml";

// "stowage-registries-<hash>".
std::string registries_config_map_name(std::string_view hash);
// The hash in a name made by registries_config_map_name(), or nullopt for another name.
std::optional<std::string> hash_from_registries_config_map_name(std::string_view name);

// The key of `host`'s hosts.toml. Throws InvalidArgument for an empty host or one whose key would
// exceed the 253 characters a ConfigMap key may have.
std::string hosts_toml_key(std::string_view host);
// The host of a key made by hosts_toml_key(), or nullopt for any other key.
std::optional<std::string> host_from_hosts_toml_key(std::string_view key);

// The files of a rendering ("99-stowage.conf", "<host>/hosts.toml") as ConfigMap data. Throws
// InvalidArgument for a path of another shape.
std::map<std::string, std::string> registries_config_map_data(
    const std::vector<registries::RenderedFile>& files);

struct RegistriesFiles {
  std::string dropin{};                             // the text of 99-stowage.conf
  std::map<std::string, std::string> hosts_toml{};  // host -> its hosts.toml text
  bool operator==(const RegistriesFiles&) const = default;
};

// The inverse of registries_config_map_data(). Throws InvalidArgument naming the ConfigMap key
// when the drop-in is missing or a key is neither form.
RegistriesFiles registries_files_from_config_map_data(
    const std::map<std::string, std::string>& data);

}  // namespace stowage::api
