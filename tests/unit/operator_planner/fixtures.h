// Builders for planner inputs, and a simulation of the writes a Plan asks for, shared by the
// operator planner tests.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "operator/planner.h"

namespace stowage::op::testing {

inline constexpr std::string_view kDigestA =
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
inline constexpr std::string_view kDigestB =
    "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
inline constexpr std::string_view kDigestC =
    "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

PlannerNode node(std::string name, registries::Labels labels = {});
// A RegistryConfig from its spec as JSON text (what a user writes under `spec:`).
api::RegistryConfig registry_config(std::string name, std::string_view spec_json,
                                    std::int64_t generation = 1);
api::ImageCache image_cache(std::string namespace_, std::string name,
                            std::vector<std::string> images, int created_seconds = 0);

const PlannedNodeCache& planned(const Plan& plan, std::string_view node);
const PlannedRegistryConfigStatus& rc_status(const Plan& plan, std::string_view name);
const PlannedImageCacheStatus& ic_status(const Plan& plan, std::string_view ns,
                                         std::string_view name);
const PlannedConfigMap* config_map(const Plan& plan, std::string_view hash);
const api::Condition& condition(const std::vector<api::Condition>& conditions,
                                std::string_view type);

// `in` after the caller performed every write `plan` asks for: NodeCache specs and owners,
// ConfigMaps created and deleted, statuses. Node statuses stay as they were.
PlannerInput after_writes(PlannerInput in, const Plan& plan);
// Every node's agent reports it applied its spec's registries hash (state Applied).
void agents_apply_all(PlannerInput& in);
// That node's agent reports `state` for its spec's hash (Failed keeps the old applied hash).
void agent_reports(PlannerInput& in, std::string_view node, api::RegistriesState state,
                   std::string message = {});
CurrentNodeCache* node_cache(PlannerInput& in, std::string_view node);

// Whether the plan asks for any write at all.
bool has_writes(const Plan& plan);

}  // namespace stowage::op::testing
