// Pull-secret sync, the pure part: from the ImageCaches, the Secrets they name and the copies
// already in the operator's namespace, decides which copies must exist with what content, which
// copies go, which named Secrets cannot be used (and why), and the credentials each ImageCache
// resolves its tags with. The operator writes the copies before the NodeCaches naming them and
// deletes the unreferenced ones last; agents then read pull Secrets only in that namespace.
// Ownership: a Secret cannot carry an ownerReference to an object in another namespace, so a copy
// is owned through metadata instead: the managed-by label, kSourceNamespaceLabel (the source's
// namespace) and kSourceAnnotation ("<namespace>/<name>" of the source). Only Secrets carrying
// all of them are ever updated or deleted here.
//   PullSecretSyncPlan plan = plan_pull_secrets({.namespace_ = "stowage-system", ...});
// No I/O; safe to call from any thread. Plans and inputs hold credentials: never log them.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "api/image_cache.h"
#include "operator/planner.h"

namespace stowage::op {

inline constexpr std::string_view kDockerConfigJsonType = "kubernetes.io/dockerconfigjson";
inline constexpr std::string_view kDockerConfigJsonKey = ".dockerconfigjson";
inline constexpr std::string_view kSourceNamespaceLabel = "stowage.io/pull-secret-source-namespace";
inline constexpr std::string_view kSourceAnnotation = "stowage.io/pull-secret-source";
inline constexpr std::string_view kManagedByLabel = "app.kubernetes.io/managed-by";
inline constexpr std::string_view kManagedByValue = "stowage";

// A Secret as read from the API (data values base64 as on the wire).
struct SecretObject {
  std::string namespace_{};
  std::string name{};
  std::string type{};
  std::map<std::string, std::string> data{};
  std::map<std::string, std::string> labels{};
  std::map<std::string, std::string> annotations{};
  bool operator==(const SecretObject&) const = default;
};

struct PullSecretSyncInput {
  std::string namespace_{};  // the operator's: where copies live
  std::vector<api::ImageCache> image_caches{};
  // The Secrets ImageCaches name that exist, of any type; a named Secret not listed is missing.
  std::vector<SecretObject> sources{};
  // Secrets in the operator's namespace; only those owned as the header says are considered.
  std::vector<SecretObject> copies{};
  // Secrets that could not be read, by "namespace/name": the error (no credentials in it).
  std::map<std::string, std::string> read_errors{};
};

enum class CopyAction {
  kNone,     // the copy exists with this content
  kCreate,   // no Secret of that name is owned here
  kUpdate,   // owned, but its data or ownership metadata differ
  kReplace,  // owned, but of another type (immutable): delete, then create
};

struct PlannedSecretCopy {
  std::string name{};  // synced_pull_secret_name(source namespace, source name)
  std::string source_namespace{};
  std::string source_name{};
  std::string type{};  // always kDockerConfigJsonType
  std::map<std::string, std::string> labels{};
  std::map<std::string, std::string> annotations{};
  std::map<std::string, std::string> data{};  // the source's, base64 as on the wire
  CopyAction action = CopyAction::kNone;
  bool operator==(const PlannedSecretCopy&) const = default;
};

struct PullSecretSyncPlan {
  std::vector<PlannedSecretCopy> copies{};  // every copy that must exist, by name
  std::vector<std::string> to_delete{};     // owned copies no live ImageCache can use, by name
  // Per ImageCache ("namespace/name"): the Secrets it names that cannot be used, in spec order.
  std::map<std::string, std::vector<PullSecretProblem>> problems{};
  // Per ImageCache: the decoded .dockerconfigjson payloads of its usable Secrets, in spec order
  // (credentials: for tag resolution only).
  std::map<std::string, std::vector<std::string>> payloads{};
  bool operator==(const PullSecretSyncPlan&) const = default;
};

// Whether `secret` is a copy this sync owns in `namespace_` (labels and annotation as above).
bool owned_copy(const SecretObject& secret, std::string_view namespace_);

// The whole plan. ImageCaches being deleted reference nothing. A named Secret is usable when it
// exists, has type kubernetes.io/dockerconfigjson and a .dockerconfigjson key that decodes to a
// valid Docker config; any other case is a problem whose message says which, and the Secret is
// neither copied nor used. Never throws for bad input.
PullSecretSyncPlan plan_pull_secrets(const PullSecretSyncInput& input);

}  // namespace stowage::op
