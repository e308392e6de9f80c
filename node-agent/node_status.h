// The agent's NodeCache status, computed from what one sync found: registries and image outcomes
// become status entries, transition times carry over while a state holds, conditions say why the
// node is or is not Ready, and a write happens only when the result differs from what the server
// has. Pure: the agent feeds it a sync's outcome and the wall time.
//   SyncOutcome o{.generation = nc.metadata.generation, .images = ...};
//   api::NodeCacheStatus next = next_status(nc.spec, nc.status, o, clock.wall_now());
//   if (status_needs_write(nc.status, next)) write(next);
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/node_cache.h"
#include "node-agent/image_reconciler.h"

namespace stowage::agent {

// Condition reasons the agent writes.
inline constexpr std::string_view kReasonSynced = "Synced";
inline constexpr std::string_view kReasonAsExpected = "AsExpected";
inline constexpr std::string_view kReasonRegistriesFailed = "RegistriesFailed";
inline constexpr std::string_view kReasonImagesFailed = "ImagesFailed";
inline constexpr std::string_view kReasonImagesPending = "ImagesPending";
inline constexpr std::string_view kReasonExportsFailed = "ExportsFailed";

// Removed entries kept in status.images after their prune, oldest dropped first.
inline constexpr std::size_t kMaxRemovedEntries = 64;

// What one sync found. Entries carry no transition times: next_status() sets them.
struct SyncOutcome {
  std::int64_t generation = 0;
  // nullopt: the spec names no registries files (MachineConfig delivery).
  std::optional<api::NodeRegistriesStatus> registries = std::nullopt;
  // One per spec image, plus the dropped images still reported (being removed or removed).
  std::vector<api::NodeImageStatus> images = {};
  std::optional<api::RuntimeInfo> runtime = std::nullopt;
  std::optional<api::StoreUsage> store = std::nullopt;
  // One per spec export, in spec order.
  std::vector<api::NodeExportStatus> exports = {};
};

// The status entry for a reconcile result: Present with the held digest and size, or Failed with
// "<Reason>: <message>".
api::NodeImageStatus image_status_from_result(const ImageResult& result);

// Entries for the images of `previous` that `spec` no longer names, after a prune that gave
// `pruned` (empty when the policy is Never): Removed once gone from the runtime; kept with a
// message while a rule keeps the image (in use, too young, ...); left out when the image was never
// the agent's to remove or no prune ran. Earlier Removed entries stay, at most kMaxRemovedEntries.
std::vector<api::NodeImageStatus> dropped_image_statuses(
    const api::NodeCacheSpec& spec, const std::vector<api::NodeImageStatus>& previous,
    const std::vector<PruneResult>& pruned);

// The names of `previous` entries that `spec` no longer names and that are not Removed yet: what
// the prune is asked about.
std::vector<std::string> dropped_image_names(const api::NodeCacheSpec& spec,
                                             const std::vector<api::NodeImageStatus>& previous);

// The status to write after a sync: outcome entries with transition times kept from `previous`
// while state (and, for registries, the hash) is unchanged, else `now` (whole seconds, as the wire
// keeps them); the outcome's export entries; Ready and Degraded conditions (a Failed export makes
// the node Degraded and not Ready once registries and images are fine); the summary over `spec`.
api::NodeCacheStatus next_status(const api::NodeCacheSpec& spec,
                                 const api::NodeCacheStatus& previous, const SyncOutcome& outcome,
                                 api::Time now);

// True when `next` differs from `current` (the status the server holds).
bool status_needs_write(const api::NodeCacheStatus& current, const api::NodeCacheStatus& next);

}  // namespace stowage::agent
