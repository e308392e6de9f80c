#include "fixtures.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "registries/spec.h"

namespace stowage::op::testing {

PlannerNode node(std::string name, registries::Labels labels) {
  PlannerNode n;
  n.uid = "uid-" + name;
  n.name = std::move(name);
  n.labels = std::move(labels);
  return n;
}

api::RegistryConfig registry_config(std::string name, std::string_view spec_json,
                                    std::int64_t generation) {
  api::RegistryConfig rc;
  rc.metadata.name = std::move(name);
  rc.metadata.generation = generation;
  rc.spec = registries::spec_from_json(nlohmann::json::parse(spec_json));
  return rc;
}

api::ImageCache image_cache(std::string namespace_, std::string name,
                            std::vector<std::string> images, int created_seconds) {
  api::ImageCache ic;
  ic.metadata.namespace_ = std::move(namespace_);
  ic.metadata.name = std::move(name);
  ic.metadata.generation = 1;
  ic.metadata.creation_timestamp =
      api::Time{} + std::chrono::seconds(1'700'000'000 + created_seconds);
  for (auto& i : images) ic.spec.images.push_back({std::move(i)});
  return ic;
}

const PlannedNodeCache& planned(const Plan& plan, std::string_view node) {
  for (const auto& nc : plan.node_caches) {
    if (nc.name == node) return nc;
  }
  throw std::out_of_range("no planned NodeCache " + std::string(node));
}

const PlannedRegistryConfigStatus& rc_status(const Plan& plan, std::string_view name) {
  for (const auto& s : plan.registry_configs) {
    if (s.name == name) return s;
  }
  throw std::out_of_range("no RegistryConfig status " + std::string(name));
}

const PlannedImageCacheStatus& ic_status(const Plan& plan, std::string_view ns,
                                         std::string_view name) {
  for (const auto& s : plan.image_caches) {
    if (s.namespace_ == ns && s.name == name) return s;
  }
  throw std::out_of_range("no ImageCache status " + std::string(name));
}

const PlannedConfigMap* config_map(const Plan& plan, std::string_view hash) {
  for (const auto& cm : plan.config_maps) {
    if (cm.hash == hash) return &cm;
  }
  return nullptr;
}

const api::Condition& condition(const std::vector<api::Condition>& conditions,
                                std::string_view type) {
  const api::Condition* c = api::find_condition(conditions, type);
  if (c == nullptr) throw std::out_of_range("no condition " + std::string(type));
  return *c;
}

CurrentNodeCache* node_cache(PlannerInput& in, std::string_view node) {
  for (auto& nc : in.node_caches) {
    if (nc.metadata.name == node) return &nc;
  }
  return nullptr;
}

PlannerInput after_writes(PlannerInput in, const Plan& plan) {
  for (const auto& p : plan.node_caches) {
    if (!p.write) continue;
    CurrentNodeCache* nc = node_cache(in, p.name);
    if (nc == nullptr) {
      in.node_caches.emplace_back();
      nc = &in.node_caches.back();
      nc->metadata.name = p.name;
    }
    nc->metadata.owner_references = p.owner_references;
    nc->spec = p.spec;
  }
  for (const auto& cm : plan.config_maps) {
    if (cm.create) in.config_maps.push_back(cm.name);
  }
  std::erase_if(in.config_maps, [&](const std::string& name) {
    return std::find(plan.config_maps_to_delete.begin(), plan.config_maps_to_delete.end(), name) !=
           plan.config_maps_to_delete.end();
  });
  for (const auto& s : plan.registry_configs) {
    for (auto& rc : in.registry_configs) {
      if (rc.metadata.name == s.name && s.changed) rc.status = s.status;
    }
  }
  for (const auto& s : plan.image_caches) {
    for (auto& ic : in.image_caches) {
      if (ic.metadata.namespace_ == s.namespace_ && ic.metadata.name == s.name && s.changed) {
        ic.status = s.status;
      }
    }
  }
  return in;
}

void agent_reports(PlannerInput& in, std::string_view node, api::RegistriesState state,
                   std::string message) {
  CurrentNodeCache* nc = node_cache(in, node);
  ASSERT_NE(nc, nullptr) << node;
  ASSERT_TRUE(nc->spec->registries.has_value()) << node;
  if (!nc->status.registries) nc->status.registries.emplace();
  nc->status.registries->state = state;
  nc->status.registries->message = std::move(message);
  if (state == api::RegistriesState::kApplied) {
    nc->status.registries->applied_hash = nc->spec->registries->hash;
  }
}

void agents_apply_all(PlannerInput& in) {
  for (auto& nc : in.node_caches) {
    if (!nc.spec->registries) continue;
    if (!nc.status.registries) nc.status.registries.emplace();
    nc.status.registries->applied_hash = nc.spec->registries->hash;
    nc.status.registries->state = api::RegistriesState::kApplied;
    nc.status.registries->message.clear();
  }
}

bool has_writes(const Plan& plan) {
  const auto nc = std::any_of(plan.node_caches.begin(), plan.node_caches.end(),
                              [](const auto& p) { return p.write; });
  const auto cm = std::any_of(plan.config_maps.begin(), plan.config_maps.end(),
                              [](const auto& p) { return p.create; });
  const auto rc = std::any_of(plan.registry_configs.begin(), plan.registry_configs.end(),
                              [](const auto& p) { return p.changed; });
  const auto ic = std::any_of(plan.image_caches.begin(), plan.image_caches.end(),
                              [](const auto& p) { return p.changed; });
  return nc || cm || rc || ic || !plan.config_maps_to_delete.empty();
}

}  // namespace stowage::op::testing
