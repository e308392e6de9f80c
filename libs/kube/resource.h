// Pure request building for the Kubernetes REST API: which resource (GroupVersionResource,
// ResourceRef) becomes which URL path, list/watch and write options become which query string,
// and each verb becomes which method, content type, Accept header and body (ApiRequest).
// No I/O: Client (client.h) adds the server, credentials and TLS and sends what these build.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace stowage::kube {

struct GroupVersionResource {
  std::string group{};     // "" for the core group
  std::string version{};   // "v1", "v1alpha1"
  std::string resource{};  // the plural, lower case: "configmaps", "nodecaches"

  // "v1" for the core group, "apps/v1" otherwise (an object's apiVersion).
  std::string api_version() const;
  bool operator==(const GroupVersionResource&) const = default;
};

// The resource of an apiVersion ("v1", "stowage.io/v1alpha1") and a plural.
GroupVersionResource gvr_from_api_version(std::string_view api_version, std::string resource);

// One object, or a collection when name is empty.
struct ResourceRef {
  GroupVersionResource gvr{};
  std::string namespace_{};   // "" for cluster-scoped resources, or a list across all namespaces
  std::string name{};         // "" for the collection
  std::string subresource{};  // "status", "scale", ...; needs a name

  bool operator==(const ResourceRef&) const = default;
};

// The ref of `object` (its metadata.namespace and metadata.name) under `gvr`.
ResourceRef ref_of(const GroupVersionResource& gvr, const nlohmann::json& object);

// "/api/v1/namespaces/ns/configmaps/name", "/apis/stowage.io/v1alpha1/nodecaches/n/status".
// Throws InvalidArgument for an empty group-version or resource, a subresource without a name, or
// a segment that is ".", ".." or contains '/' or '%' (what the API server refuses as a path
// segment name). Other characters are percent-encoded.
std::string resource_path(const ResourceRef& ref);

// Accept headers that make the server answer with metav1.PartialObjectMetadata(List): metadata
// only, so a cache of Nodes never holds their status. JSON is the fallback for servers without it.
inline constexpr std::string_view kAcceptJson = "application/json";
inline constexpr std::string_view kAcceptMetadataList =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
inline constexpr std::string_view kAcceptMetadata =
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

struct GetOptions {
  std::string resource_version{};  // "" unset: the most recent
  bool metadata_only = false;
};

struct ListOptions {
  std::string label_selector{};
  std::string field_selector{};
  std::optional<std::int64_t> limit{};  // page size; > 0
  std::string continue_token{};
  // "" unset (most recent, quorum read), "0" (any, from the watch cache), or an opaque version.
  std::optional<std::string> resource_version{};
  std::string resource_version_match{};  // "", "NotOlderThan", "Exact"; needs resource_version
  // Watch only: ask for BOOKMARK events, and how long the server keeps the watch open.
  bool allow_watch_bookmarks = false;
  std::optional<std::int64_t> timeout_seconds{};
  bool send_initial_events = false;  // watch only (KEP-3157 streaming list)
  bool metadata_only = false;        // PartialObjectMetadata(List) answers
};

// Options of create and update (PUT).
struct WriteOptions {
  std::string field_manager{};  // optional; at most 128 printable characters
  bool dry_run = false;
};

enum class PatchType {
  kMerge,           // application/merge-patch+json (RFC 7386)
  kJson,            // application/json-patch+json (RFC 6902)
  kStrategicMerge,  // application/strategic-merge-patch+json (built-in types only)
  kApply,           // application/apply-patch+yaml (server-side apply; JSON is valid YAML)
};

std::string_view patch_content_type(PatchType type);

struct PatchOptions {
  std::string field_manager{};  // required for kApply
  bool force = false;           // kApply only: take ownership of conflicting fields
  bool dry_run = false;
};

struct DeleteOptions {
  // Preconditions: the delete fails with 409 unless the object still has this uid / version.
  std::optional<std::string> uid{};
  std::optional<std::string> resource_version{};
  std::string propagation_policy{};  // "", "Orphan", "Background", "Foreground"
  std::optional<std::int64_t> grace_period_seconds{};
  bool dry_run = false;
};

// A request as the API sees it, before the server address, credentials and TLS are added.
struct ApiRequest {
  std::string method{};
  std::string path{};  // with the query: "/api/v1/namespaces/a/configmaps?limit=10"
  std::string accept{kAcceptJson};
  std::string content_type{};  // "" when there is no body
  std::string body{};

  bool operator==(const ApiRequest&) const = default;
};

// "?labelSelector=app%3Dx&limit=5" (or "" with no options). `watch` adds watch=1 and allows the
// watch-only options; without it they are refused. Throws InvalidArgument for inconsistent
// options (resourceVersionMatch without resourceVersion, Exact with "0", limit <= 0, ...).
std::string list_query(const ListOptions& options, bool watch);

// Each verb. `ref` names the object (get, update, patch, apply, delete) or the collection (list,
// watch, create; a name in it is ignored). Bodies are compact JSON. Throws InvalidArgument for
// what the server would refuse anyway and for what would silently do the wrong thing: an update
// without metadata.resourceVersion, an object whose name or namespace contradicts `ref`, apply
// without a field manager or without apiVersion/kind/metadata.name, force outside apply.
ApiRequest get_request(const ResourceRef& ref, const GetOptions& options = {});
ApiRequest list_request(const ResourceRef& collection, const ListOptions& options = {});
ApiRequest watch_request(const ResourceRef& collection, const ListOptions& options = {});
ApiRequest create_request(const ResourceRef& collection, const nlohmann::json& object,
                          const WriteOptions& options = {});
ApiRequest update_request(const ResourceRef& ref, const nlohmann::json& object,
                          const WriteOptions& options = {});
ApiRequest patch_request(const ResourceRef& ref, PatchType type, const nlohmann::json& patch,
                         const PatchOptions& options = {});
ApiRequest apply_request(const ResourceRef& ref, const nlohmann::json& intent,
                         const PatchOptions& options);
ApiRequest delete_request(const ResourceRef& ref, const DeleteOptions& options = {});

// Percent-encodes everything but RFC 3986 unreserved characters (a query value).
std::string query_escape(std::string_view value);

// "configmaps ns/name", "nodecaches.stowage.io/status n", "configmaps in ns": for messages.
std::string describe(const ResourceRef& ref);

}  // namespace stowage::kube
