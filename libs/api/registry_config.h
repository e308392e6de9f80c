// The RegistryConfig kind (cluster-scoped, stowage.io/v1alpha1): how selected nodes reach
// registries. The spec type and its decoder are libs/registries' (RegistryConfigSpec,
// spec_from_json), which also merge and render it; this adds metadata, the status the operator
// writes, and the JSON mapping of the whole object.
//   RegistryConfig rc = client.get(ref).get<api::RegistryConfig>();
//   nlohmann::json body = rc;
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/meta.h"
#include "registries/spec.h"

namespace stowage::api {

inline constexpr std::string_view kRegistryConfigKind = "RegistryConfig";

struct RegistryConfigNodes {
  std::int32_t matched = 0;
  std::int32_t updated = 0;
  std::int32_t failed = 0;
  bool operator==(const RegistryConfigNodes&) const = default;
};

struct NodeFailure {
  std::string node{};
  std::string message{};
  bool operator==(const NodeFailure&) const = default;
};

struct RegistryConfigStatus {
  std::int64_t observed_generation = 0;
  std::vector<Condition> conditions{};  // Ready, Progressing, Degraded
  std::string rendered_hash{};
  std::vector<std::string> machine_configs{};
  std::vector<std::string> warnings{};  // e.g. what containerd cannot express
  RegistryConfigNodes nodes{};
  std::vector<NodeFailure> failures{};  // bounded (20)
  bool operator==(const RegistryConfigStatus&) const = default;
};

struct RegistryConfig {
  ObjectMeta metadata{};
  registries::RegistryConfigSpec spec{};
  RegistryConfigStatus status{};
  bool operator==(const RegistryConfig&) const = default;
};

// The spec as JSON (what registries::spec_from_json reads back); unset and false fields are
// omitted, priority and delivery always written.
nlohmann::json registry_config_spec_to_json(const registries::RegistryConfigSpec& spec);

RegistryConfigStatus registry_config_status_from_json(const nlohmann::json& j,
                                                      std::string_view path = "status");
nlohmann::json registry_config_status_to_json(const RegistryConfigStatus& status);

// The name and spec, as the registries merge and render functions take them.
registries::NamedRegistryConfig named(const RegistryConfig& rc);

// Whole objects. Decoding checks apiVersion and kind and fails with an InvalidArgument naming the
// object and the field: `RegistryConfig "corp": spec.priority: must be an integer`.
void to_json(nlohmann::json& j, const RegistryConfig& rc);
void from_json(const nlohmann::json& j, RegistryConfig& rc);

}  // namespace stowage::api
