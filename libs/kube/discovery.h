// API discovery: which group-versions the server serves and which resource (plural, scope) backs
// a kind, read from /api, /apis and /api/v1 or /apis/<group>/<version>. Answers are cached for a
// TTL and refreshed on a miss (a CRD installed a moment ago), at most once per min_refresh.
//
//   Discovery discovery(client, real_clock());
//   if (!discovery.is_served("coordination.k8s.io", "v1")) ...
//   auto leases = discovery.resource_for("coordination.k8s.io", "v1", "Lease");
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "kube/client.h"

namespace stowage::kube {

// One entry of an APIResourceList (subresources such as "pods/status" are left out).
struct ApiResourceInfo {
  GroupVersionResource gvr{};
  std::string kind{};
  bool namespaced = false;
  std::vector<std::string> verbs{};

  bool operator==(const ApiResourceInfo&) const = default;
};

// "group/version" of every version in an APIGroupList (/apis), and "v" for each entry of an
// APIVersions (/api) as core "v1". Pure; malformed entries are skipped.
std::set<std::string> parse_group_versions(const nlohmann::json& api_group_list);
std::set<std::string> parse_core_versions(const nlohmann::json& api_versions);
// The resources of an APIResourceList for `group`/`version`. Pure.
std::vector<ApiResourceInfo> parse_resource_list(const nlohmann::json& list, std::string_view group,
                                                 std::string_view version);

struct DiscoveryOptions {
  std::chrono::milliseconds ttl{std::chrono::minutes(5)};
  // A miss refreshes only when the cached answer is older than this.
  std::chrono::milliseconds min_refresh{std::chrono::seconds(1)};
};

// Thread-safe; requests are made under the cache lock, so concurrent callers wait for one
// refresh instead of each sending their own. The client and clock are borrowed.
class Discovery {
 public:
  Discovery(Client& client, Clock& clock, DiscoveryOptions options = {});

  // True when the server serves `group`/`version` ("" for the core group).
  bool is_served(std::string_view group, std::string_view version);
  // The resource serving `kind` in `group`/`version`; std::nullopt when none (or the
  // group-version is not served).
  std::optional<ApiResourceInfo> resource_for(std::string_view group, std::string_view version,
                                              std::string_view kind);
  // Drops every cached answer.
  void invalidate();

 private:
  struct Versions {
    std::set<std::string> served;
    Clock::TimePoint fetched;
  };
  struct Resources {
    std::vector<ApiResourceInfo> resources;  // empty when the group-version is not served
    Clock::TimePoint fetched;
  };
  void fetch_versions_locked();
  void fetch_resources_locked(const std::string& group, const std::string& version);

  Client& client_;
  Clock& clock_;
  const DiscoveryOptions options_;
  std::mutex mu_;  // guards versions_, resources_ (and serializes discovery requests)
  std::optional<Versions> versions_;
  std::map<std::string, Resources> resources_;  // keyed by "group/version"
};

}  // namespace stowage::kube
