// The RegistryConfig custom resource's spec (stowage.io/v1alpha1) as users write it, decoded
// from YAML or JSON; several that match one node merge by priority (higher wins per registry
// prefix, ties by name) into one effective registries.conf Config. Pure.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registries/conf.h"
#include "registries/selector.h"

namespace stowage::registries {

struct RegistryConfigSpec {
  LabelSelector node_selector;  // empty: all nodes
  int priority = 0;
  std::optional<std::vector<std::string>> unqualified_search_registries;
  std::vector<std::string> insecure_registries;  // shorthand: [[registry]] insecure = true
  std::vector<std::string> blocked_registries;   // shorthand: [[registry]] blocked = true
  std::optional<std::string> short_name_mode;
  std::vector<Registry> registries;
  std::map<std::string, std::string> aliases;
  std::string delivery = "Auto";  // Auto | MachineConfig | Agent
  std::vector<std::string> machine_config_pools;
  bool operator==(const RegistryConfigSpec&) const = default;
};

struct NamedRegistryConfig {
  std::string name;
  RegistryConfigSpec spec;
};

// Decodes `spec` (the object under .spec); errors name the field, e.g.
// `spec.registries[1].mirrors[0].pullFromMirror: must be a string`.
RegistryConfigSpec spec_from_json(const nlohmann::json& spec);

// Reads one or more RegistryConfig objects from YAML (a multi-document stream, or a List with
// items) or JSON. Objects of another kind are refused with an error naming them.
std::vector<NamedRegistryConfig> read_registry_configs(std::string_view text,
                                                       std::string_view source_name);

// The spec as a registries.conf Config, validated with the same rules as a file (shorthand lists
// expand to [[registry]] tables). Errors are prefixed with `RegistryConfig "<name>": `.
Config spec_to_config(const NamedRegistryConfig& rc);

// Merges the RegistryConfigs that apply to one node into one validated Config.
Config merge_registry_configs(std::vector<NamedRegistryConfig> configs);

// Those of `configs` whose nodeSelector matches `labels`.
std::vector<NamedRegistryConfig> matching_configs(const std::vector<NamedRegistryConfig>& configs,
                                                  const Labels& labels);

}  // namespace stowage::registries
