#include "operator/pull_secret_sync.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <utility>

#include "base/error.h"
#include "oci/auth.h"

namespace stowage::op {
namespace {

std::string key_of(std::string_view namespace_, std::string_view name) {
  return fmt::format("{}/{}", namespace_, name);
}

// The decoded payload of a usable Secret, or the problem with it.
struct Checked {
  std::optional<std::string> payload{};
  std::string problem{};
};

Checked check(const SecretObject* secret, std::string_view namespace_, std::string_view name,
              const std::map<std::string, std::string>& read_errors) {
  Checked c;
  if (const auto err = read_errors.find(key_of(namespace_, name)); err != read_errors.end()) {
    c.problem = fmt::format("Secret \"{}\" in namespace \"{}\" could not be read: {}", name,
                            namespace_, err->second);
    return c;
  }
  if (secret == nullptr) {
    c.problem = fmt::format("Secret \"{}\" not found in namespace \"{}\"", name, namespace_);
    return c;
  }
  if (secret->type != kDockerConfigJsonType) {
    c.problem = fmt::format("Secret \"{}\" in namespace \"{}\" is of type \"{}\", not {}", name,
                            namespace_, secret->type, kDockerConfigJsonType);
    return c;
  }
  const auto data = secret->data.find(std::string(kDockerConfigJsonKey));
  if (data == secret->data.end()) {
    c.problem = fmt::format("Secret \"{}\" in namespace \"{}\" has no {} key", name, namespace_,
                            kDockerConfigJsonKey);
    return c;
  }
  const std::optional<std::string> payload = oci::base64_decode(data->second);
  if (!payload) {
    c.problem = fmt::format("Secret \"{}\" in namespace \"{}\": {} is not base64", name, namespace_,
                            kDockerConfigJsonKey);
    return c;
  }
  try {
    oci::DockerKeyring keyring;
    keyring.add_dockerconfigjson(*payload);  // messages never show the payload
  } catch (const std::exception& e) {
    c.problem = fmt::format("Secret \"{}\" in namespace \"{}\": {}: {}", name, namespace_,
                            kDockerConfigJsonKey, e.what());
    return c;
  }
  c.payload = *payload;
  return c;
}

std::map<std::string, std::string> copy_labels(const std::string& source_namespace) {
  return {{std::string(kManagedByLabel), std::string(kManagedByValue)},
          {std::string(kSourceNamespaceLabel), source_namespace}};
}

// Whether `existing` carries `wanted` (other labels or annotations someone added are kept).
bool contains_all(const std::map<std::string, std::string>& existing,
                  const std::map<std::string, std::string>& wanted) {
  return std::all_of(wanted.begin(), wanted.end(), [&](const auto& kv) {
    const auto it = existing.find(kv.first);
    return it != existing.end() && it->second == kv.second;
  });
}

}  // namespace

bool owned_copy(const SecretObject& secret, std::string_view namespace_) {
  if (secret.namespace_ != namespace_) return false;
  const auto managed = secret.labels.find(std::string(kManagedByLabel));
  return managed != secret.labels.end() && managed->second == kManagedByValue &&
         secret.labels.contains(std::string(kSourceNamespaceLabel)) &&
         secret.annotations.contains(std::string(kSourceAnnotation));
}

PullSecretSyncPlan plan_pull_secrets(const PullSecretSyncInput& in) {
  PullSecretSyncPlan plan;
  std::map<std::string, const SecretObject*> sources;
  for (const auto& s : in.sources) sources.emplace(key_of(s.namespace_, s.name), &s);
  std::map<std::string, const SecretObject*> owned;  // by name
  for (const auto& s : in.copies) {
    if (owned_copy(s, in.namespace_)) owned.emplace(s.name, &s);
  }

  std::map<std::string, PlannedSecretCopy> wanted;  // by copy name
  std::map<std::string, Checked> checked;           // by source key
  for (const auto& ic : in.image_caches) {
    if (ic.metadata.deletion_timestamp) continue;
    const std::string ic_key = key_of(ic.metadata.namespace_, ic.metadata.name);
    std::set<std::string> seen;
    for (const auto& ref : ic.spec.image_pull_secrets) {
      if (ref.name.empty() || !seen.insert(ref.name).second) continue;
      const std::string source_key = key_of(ic.metadata.namespace_, ref.name);
      auto it = checked.find(source_key);
      if (it == checked.end()) {
        const auto found = sources.find(source_key);
        it = checked
                 .emplace(source_key, check(found == sources.end() ? nullptr : found->second,
                                            ic.metadata.namespace_, ref.name, in.read_errors))
                 .first;
      }
      const Checked& c = it->second;
      if (!c.payload) {
        plan.problems[ic_key].push_back({ref.name, c.problem});
        continue;
      }
      plan.payloads[ic_key].push_back(*c.payload);
      const std::string name = synced_pull_secret_name(ic.metadata.namespace_, ref.name);
      if (wanted.contains(name)) continue;
      PlannedSecretCopy copy;
      copy.name = name;
      copy.source_namespace = ic.metadata.namespace_;
      copy.source_name = ref.name;
      copy.type = std::string(kDockerConfigJsonType);
      copy.labels = copy_labels(ic.metadata.namespace_);
      copy.annotations = {{std::string(kSourceAnnotation), source_key}};
      copy.data = sources.at(source_key)->data;
      const auto current = owned.find(name);
      if (current == owned.end()) {
        copy.action = CopyAction::kCreate;
      } else if (current->second->type != copy.type) {
        copy.action = CopyAction::kReplace;
      } else if (current->second->data != copy.data ||
                 !contains_all(current->second->labels, copy.labels) ||
                 !contains_all(current->second->annotations, copy.annotations)) {
        copy.action = CopyAction::kUpdate;
      }
      wanted.emplace(name, std::move(copy));
    }
  }
  for (auto& [name, copy] : wanted) plan.copies.push_back(std::move(copy));
  for (const auto& [name, secret] : owned) {
    if (!wanted.contains(name)) plan.to_delete.push_back(name);
  }
  return plan;
}

}  // namespace stowage::op
