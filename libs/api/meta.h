// Object metadata and status conditions shared by the stowage.io/v1alpha1 kinds: the parts of
// metav1.ObjectMeta a controller or agent uses, owner references, local object references and
// metav1.Condition, with their JSON mapping and the condition bookkeeping of
// apimachinery's SetStatusCondition. Pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kube/resource.h"
#include "registries/selector.h"

namespace stowage::api {

using Time = std::chrono::system_clock::time_point;

inline constexpr std::string_view kGroup = "stowage.io";
inline constexpr std::string_view kVersion = "v1alpha1";
inline constexpr std::string_view kApiVersion = "stowage.io/v1alpha1";

// The resources of the three kinds, for kube::Client.
kube::GroupVersionResource registry_configs_resource();
kube::GroupVersionResource image_caches_resource();
kube::GroupVersionResource node_caches_resource();

struct OwnerReference {
  std::string api_version{};
  std::string kind{};
  std::string name{};
  std::string uid{};
  bool controller = false;
  bool block_owner_deletion = false;
  bool operator==(const OwnerReference&) const = default;
};

// What we read and write of metav1.ObjectMeta. Decoding ignores the other fields
// (managedFields, ...); encoding writes only what is set.
struct ObjectMeta {
  std::string name{};
  std::string namespace_{};
  std::string uid{};
  std::string resource_version{};
  std::int64_t generation = 0;
  std::optional<Time> creation_timestamp{};
  std::optional<Time> deletion_timestamp{};
  std::map<std::string, std::string> labels{};
  std::map<std::string, std::string> annotations{};
  std::vector<OwnerReference> owner_references{};
  std::vector<std::string> finalizers{};
  bool operator==(const ObjectMeta&) const = default;
};

// A reference to an object in the same namespace (a Secret).
struct LocalObjectReference {
  std::string name{};
  bool operator==(const LocalObjectReference&) const = default;
};

enum class ConditionStatus { kTrue, kFalse, kUnknown };
std::string_view to_string(ConditionStatus status);

// Condition types the kinds use.
inline constexpr std::string_view kConditionReady = "Ready";
inline constexpr std::string_view kConditionProgressing = "Progressing";
inline constexpr std::string_view kConditionDegraded = "Degraded";

// metav1.Condition. lastTransitionTime has whole-second precision on the wire.
struct Condition {
  std::string type{};
  ConditionStatus status = ConditionStatus::kUnknown;
  std::int64_t observed_generation = 0;
  Time last_transition_time{};
  std::string reason{};
  std::string message{};
  bool operator==(const Condition&) const = default;
};

// The condition of that type, or nullptr.
const Condition* find_condition(const std::vector<Condition>& conditions, std::string_view type);

// Adds or updates `condition` by type, as apimachinery's SetStatusCondition: the transition time
// changes only when the status does (an update that keeps the status keeps the old time; a
// default-constructed time is replaced by `now`). Returns whether anything changed.
bool set_condition(std::vector<Condition>& conditions, Condition condition, Time now);

// JSON mapping. Decoders name the field in errors, relative to `path` ("metadata",
// "status.conditions"). Encoders omit fields that are empty, zero or false.
ObjectMeta object_meta_from_json(const nlohmann::json& j, std::string_view path = "metadata");
nlohmann::json object_meta_to_json(const ObjectMeta& meta);

Condition condition_from_json(const nlohmann::json& j, std::string_view path);
nlohmann::json condition_to_json(const Condition& condition);
// A conditions list (a list-map keyed by type: duplicates are refused).
std::vector<Condition> conditions_from_json(const nlohmann::json& j, std::string_view path);
nlohmann::json conditions_to_json(const std::vector<Condition>& conditions);

std::vector<LocalObjectReference> local_refs_from_json(const nlohmann::json& j,
                                                       std::string_view path);
nlohmann::json local_refs_to_json(const std::vector<LocalObjectReference>& refs);

// A metav1.LabelSelector (decoded by registries::selector_from_json); empty parts are omitted.
nlohmann::json label_selector_to_json(const registries::LabelSelector& selector);

// "name" for a cluster-scoped object, "namespace/name" otherwise: for messages and as the key of
// an ImageCache in NodeCache sources.
std::string object_key(const ObjectMeta& meta);

// object_key() of a JSON object's metadata, read leniently ("" parts when absent): to name an
// object in a decoding error before its metadata is known to be valid.
std::string object_key_of(const nlohmann::json& object);

// Checks apiVersion and kind of a whole object; fails naming what it found.
void check_type(const nlohmann::json& j, std::string_view kind);

}  // namespace stowage::api
