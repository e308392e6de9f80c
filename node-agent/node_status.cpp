#include "node-agent/node_status.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "api/meta.h"

namespace stowage::agent {
namespace {

bool spec_names(const api::NodeCacheSpec& spec, const std::string& name) {
  return std::any_of(spec.images.begin(), spec.images.end(),
                     [&](const api::NodeImage& i) { return i.name == name; });
}

std::string keep_message(const PruneResult& r) {
  std::string out = "not removed: ";
  out += prune_decision_name(r.decision);
  if (!r.message.empty()) out += ": " + r.message;
  return out;
}

}  // namespace

api::NodeImageStatus image_status_from_result(const ImageResult& result) {
  api::NodeImageStatus out;
  out.name = result.name;
  out.state = result.state;
  if (result.state == api::ImageState::kPresent) {
    out.digest = result.digest;
    if (result.size_bytes) out.size_bytes = static_cast<std::int64_t>(*result.size_bytes);
  } else if (result.state == api::ImageState::kFailed) {
    out.message = std::string(image_failure_name(result.failure));
    if (!result.message.empty()) out.message += ": " + result.message;
  }
  return out;
}

std::vector<std::string> dropped_image_names(const api::NodeCacheSpec& spec,
                                             const std::vector<api::NodeImageStatus>& previous) {
  std::vector<std::string> out;
  for (const auto& p : previous) {
    if (spec_names(spec, p.name) || p.state == api::ImageState::kRemoved) continue;
    out.push_back(p.name);
  }
  return out;
}

std::vector<api::NodeImageStatus> dropped_image_statuses(
    const api::NodeCacheSpec& spec, const std::vector<api::NodeImageStatus>& previous,
    const std::vector<PruneResult>& pruned) {
  std::map<std::string, const PruneResult*> by_ref;
  for (const auto& r : pruned) by_ref.emplace(r.ref, &r);
  std::vector<api::NodeImageStatus> removed;
  std::vector<api::NodeImageStatus> kept;
  for (const auto& p : previous) {
    if (spec_names(spec, p.name)) continue;
    if (p.state == api::ImageState::kRemoved) {
      removed.push_back(p);
      continue;
    }
    const auto it = by_ref.find(p.name);
    if (it == by_ref.end()) continue;  // no prune ran for it: not reported any more
    const PruneResult& r = *it->second;
    api::NodeImageStatus entry = p;
    entry.last_transition_time.reset();
    switch (r.decision) {
      case PruneDecision::kRemoved:
      case PruneDecision::kGone:
        entry.state = api::ImageState::kRemoved;
        entry.size_bytes.reset();
        entry.message.clear();
        removed.push_back(entry);
        break;
      case PruneDecision::kNotPulledByAgent:
      case PruneDecision::kStillWanted: break;
      case PruneDecision::kInUse:
      case PruneDecision::kPinned:
      case PruneDecision::kPauseImage:
      case PruneDecision::kTooYoung:
      case PruneDecision::kRemoveFailed:
        entry.last_transition_time = p.last_transition_time;
        entry.message = keep_message(r);
        kept.push_back(entry);
        break;
    }
  }
  if (removed.size() > kMaxRemovedEntries) {
    removed.erase(removed.begin(), removed.begin() + static_cast<std::ptrdiff_t>(
                                                         removed.size() - kMaxRemovedEntries));
  }
  kept.insert(kept.end(), removed.begin(), removed.end());
  return kept;
}

api::NodeCacheStatus next_status(const api::NodeCacheSpec& spec,
                                 const api::NodeCacheStatus& previous, const SyncOutcome& outcome,
                                 api::Time now) {
  now = std::chrono::floor<std::chrono::seconds>(now);
  api::NodeCacheStatus next = previous;
  next.observed_generation = outcome.generation;

  next.registries = outcome.registries;
  if (next.registries) {
    const auto& old = previous.registries;
    const bool same = old && old->state == next.registries->state &&
                      old->applied_hash == next.registries->applied_hash;
    next.registries->last_transition_time = same ? old->last_transition_time : now;
  }

  std::map<std::string, const api::NodeImageStatus*> old_images;
  for (const auto& i : previous.images) old_images.emplace(i.name, &i);
  next.images = outcome.images;
  for (auto& i : next.images) {
    const auto it = old_images.find(i.name);
    const bool same =
        it != old_images.end() && it->second->state == i.state && it->second->digest == i.digest;
    i.last_transition_time = same ? it->second->last_transition_time : now;
  }

  next.exports = outcome.exports;
  const auto exports_failed = std::count_if(
      next.exports.begin(), next.exports.end(),
      [](const api::NodeExportStatus& e) { return e.state == api::ExportState::kFailed; });
  if (outcome.runtime) next.runtime = outcome.runtime;
  if (outcome.store) next.store = outcome.store;
  const api::ImageSummary summary = api::summarize(spec, next.images);
  next.summary = summary;

  const bool registries_failed =
      next.registries && next.registries->state == api::RegistriesState::kFailed;
  api::Condition ready{.type = std::string(api::kConditionReady),
                       .status = api::ConditionStatus::kTrue,
                       .observed_generation = outcome.generation,
                       .last_transition_time = {},
                       .reason = std::string(kReasonSynced),
                       .message = next.registries
                                      ? "registries applied, every planned image present"
                                      : "every planned image present"};
  api::Condition degraded{.type = std::string(api::kConditionDegraded),
                          .status = api::ConditionStatus::kFalse,
                          .observed_generation = outcome.generation,
                          .last_transition_time = {},
                          .reason = std::string(kReasonAsExpected),
                          .message = ""};
  if (registries_failed) {
    ready.status = api::ConditionStatus::kFalse;
    ready.reason = std::string(kReasonRegistriesFailed);
    ready.message = next.registries->message;
    degraded.status = api::ConditionStatus::kTrue;
    degraded.reason = ready.reason;
    degraded.message = ready.message;
  } else if (summary.failed > 0) {
    ready.status = api::ConditionStatus::kFalse;
    ready.reason = std::string(kReasonImagesFailed);
    ready.message =
        std::to_string(summary.failed) + " of " + std::to_string(summary.images) + " images failed";
    degraded.status = api::ConditionStatus::kTrue;
    degraded.reason = ready.reason;
    degraded.message = ready.message;
  } else if (exports_failed > 0) {
    ready.status = api::ConditionStatus::kFalse;
    ready.reason = std::string(kReasonExportsFailed);
    ready.message = std::to_string(exports_failed) + " of " + std::to_string(next.exports.size()) +
                    " exports failed";
    degraded.status = api::ConditionStatus::kTrue;
    degraded.reason = ready.reason;
    degraded.message = ready.message;
  } else if (summary.present < summary.images) {
    ready.status = api::ConditionStatus::kFalse;
    ready.reason = std::string(kReasonImagesPending);
    ready.message = std::to_string(summary.present) + " of " + std::to_string(summary.images) +
                    " images present";
  }
  if (!next.registries && spec.images.empty()) ready.message = "nothing planned";
  api::set_condition(next.conditions, std::move(ready), now);
  api::set_condition(next.conditions, std::move(degraded), now);
  return next;
}

bool status_needs_write(const api::NodeCacheStatus& current, const api::NodeCacheStatus& next) {
  return !(current == next);
}

}  // namespace stowage::agent
