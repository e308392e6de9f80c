#include "kube/resource.h"

#include <fmt/format.h>

#include "base/error.h"

namespace stowage::kube {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxFieldManager = 128;

bool unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

void append_escaped(std::string& out, std::string_view s, bool path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const char c : s) {
    // In a path segment RFC 3986 also allows sub-delims, ':' and '@' (RBAC names use ':').
    if (unreserved(c) || (path && (c == ':' || c == '@' || c == '!' || c == '$' || c == '&' ||
                                   c == '\'' || c == '(' || c == ')' || c == '*' || c == '+' ||
                                   c == ',' || c == ';' || c == '='))) {
      out += c;
    } else {
      const auto u = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
}

void check_segment(std::string_view value, std::string_view what) {
  if (value.empty()) {
    throw_invalid(fmt::format("{} is empty", what));
  }
  if (value == "." || value == "..") {
    throw_invalid(fmt::format("{} \"{}\" may not be \".\" or \"..\"", what, value));
  }
  if (value.find('/') != std::string_view::npos || value.find('%') != std::string_view::npos) {
    throw_invalid(fmt::format("{} \"{}\" may not contain '/' or '%'", what, value));
  }
}

void append_segment(std::string& out, std::string_view value, std::string_view what) {
  check_segment(value, what);
  out += '/';
  append_escaped(out, value, true);
}

class Query {
 public:
  void add(std::string_view key, std::string_view value) {
    out_ += out_.empty() ? '?' : '&';
    out_ += key;
    out_ += '=';
    append_escaped(out_, value, false);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

void check_field_manager(const std::string& manager) {
  if (manager.size() > kMaxFieldManager) {
    throw_invalid(fmt::format("fieldManager is longer than {} characters", kMaxFieldManager));
  }
  for (const char c : manager) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      throw_invalid("fieldManager must be printable ASCII");
    }
  }
}

std::string metadata_string(const json& object, const char* key) {
  if (!object.is_object()) {
    return {};
  }
  const auto m = object.find("metadata");
  if (m == object.end() || !m->is_object()) {
    return {};
  }
  const auto v = m->find(key);
  return v != m->end() && v->is_string() ? v->get<std::string>() : std::string();
}

// The object's namespace may be unset, but not different from the ref's.
void check_namespace(const ResourceRef& ref, const json& object, std::string_view verb) {
  const std::string ns = metadata_string(object, "namespace");
  if (!ns.empty() && ns != ref.namespace_) {
    throw_invalid(
        fmt::format("{} {}: object has metadata.namespace \"{}\"", verb, describe(ref), ns));
  }
}

void check_name(const ResourceRef& ref, const json& object, std::string_view verb) {
  const std::string name = metadata_string(object, "name");
  if (name != ref.name) {
    throw_invalid(fmt::format("{} {}: object has metadata.name \"{}\"", verb, describe(ref), name));
  }
}

std::string dump(const json& j) {
  try {
    return j.dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::exception& e) {
    throw_invalid(fmt::format("the body cannot be written as JSON: {}", e.what()));
  }
}

ResourceRef without_name(const ResourceRef& ref) {
  ResourceRef c = ref;
  c.name.clear();
  c.subresource.clear();
  return c;
}

void add_write_options(Query& q, const std::string& field_manager, bool dry_run) {
  if (dry_run) {
    q.add("dryRun", "All");
  }
  if (!field_manager.empty()) {
    check_field_manager(field_manager);
    q.add("fieldManager", field_manager);
  }
}

void require_object(const json& object, std::string_view verb, const ResourceRef& ref) {
  if (!object.is_object()) {
    throw_invalid(fmt::format("{} {}: the body must be a JSON object", verb, describe(ref)));
  }
}

}  // namespace

std::string GroupVersionResource::api_version() const {
  return group.empty() ? version : group + "/" + version;
}

GroupVersionResource gvr_from_api_version(std::string_view api_version, std::string resource) {
  GroupVersionResource gvr;
  const auto slash = api_version.find('/');
  if (slash == std::string_view::npos) {
    gvr.version = std::string(api_version);
  } else {
    gvr.group = std::string(api_version.substr(0, slash));
    gvr.version = std::string(api_version.substr(slash + 1));
  }
  gvr.resource = std::move(resource);
  return gvr;
}

ResourceRef ref_of(const GroupVersionResource& gvr, const json& object) {
  return ResourceRef{gvr, metadata_string(object, "namespace"), metadata_string(object, "name"),
                     ""};
}

std::string resource_path(const ResourceRef& ref) {
  std::string out;
  if (ref.gvr.group.empty()) {
    out = "/api";
  } else {
    out = "/apis";
    append_segment(out, ref.gvr.group, "API group");
  }
  append_segment(out, ref.gvr.version, "API version");
  if (!ref.namespace_.empty()) {
    out += "/namespaces";
    append_segment(out, ref.namespace_, "namespace");
  }
  append_segment(out, ref.gvr.resource, "resource");
  if (!ref.name.empty()) {
    append_segment(out, ref.name, "name");
  }
  if (!ref.subresource.empty()) {
    if (ref.name.empty()) {
      throw_invalid(
          fmt::format("subresource \"{}\" of {} needs a name", ref.subresource, ref.gvr.resource));
    }
    append_segment(out, ref.subresource, "subresource");
  }
  return out;
}

std::string_view patch_content_type(PatchType type) {
  switch (type) {
    case PatchType::kMerge: return "application/merge-patch+json";
    case PatchType::kJson: return "application/json-patch+json";
    case PatchType::kStrategicMerge: return "application/strategic-merge-patch+json";
    case PatchType::kApply: return "application/apply-patch+yaml";
  }
  return "application/merge-patch+json";
}

std::string list_query(const ListOptions& o, bool watch) {
  Query q;
  if (watch) {
    q.add("watch", "1");
  }
  if (!o.label_selector.empty()) {
    q.add("labelSelector", o.label_selector);
  }
  if (!o.field_selector.empty()) {
    q.add("fieldSelector", o.field_selector);
  }
  if (o.limit) {
    if (*o.limit <= 0) {
      throw_invalid(fmt::format("limit must be positive, got {}", *o.limit));
    }
    q.add("limit", std::to_string(*o.limit));
  }
  if (!o.continue_token.empty()) {
    q.add("continue", o.continue_token);
  }
  if (o.resource_version) {
    q.add("resourceVersion", *o.resource_version);
  }
  if (!o.resource_version_match.empty()) {
    if (o.resource_version_match != "NotOlderThan" && o.resource_version_match != "Exact") {
      throw_invalid(fmt::format("resourceVersionMatch \"{}\" is not NotOlderThan or Exact",
                                o.resource_version_match));
    }
    const bool streaming = watch && o.send_initial_events;
    if (!streaming && (!o.resource_version || o.resource_version->empty())) {
      throw_invalid("resourceVersionMatch needs a resourceVersion");
    }
    if (o.resource_version_match == "Exact" && o.resource_version == "0") {
      throw_invalid("resourceVersionMatch Exact is not allowed with resourceVersion \"0\"");
    }
    q.add("resourceVersionMatch", o.resource_version_match);
  }
  if (o.allow_watch_bookmarks) {
    if (!watch) {
      throw_invalid("allowWatchBookmarks applies only to a watch");
    }
    q.add("allowWatchBookmarks", "true");
  }
  if (o.send_initial_events) {
    if (!watch) {
      throw_invalid("sendInitialEvents applies only to a watch");
    }
    q.add("sendInitialEvents", "true");
  }
  if (o.timeout_seconds) {
    if (*o.timeout_seconds <= 0) {
      throw_invalid(fmt::format("timeoutSeconds must be positive, got {}", *o.timeout_seconds));
    }
    q.add("timeoutSeconds", std::to_string(*o.timeout_seconds));
  }
  return q.take();
}

ApiRequest get_request(const ResourceRef& ref, const GetOptions& options) {
  if (ref.name.empty()) {
    throw_invalid(fmt::format("get {}: no name", describe(ref)));
  }
  Query q;
  if (!options.resource_version.empty()) {
    q.add("resourceVersion", options.resource_version);
  }
  ApiRequest r;
  r.method = "GET";
  r.path = resource_path(ref) + q.take();
  if (options.metadata_only) {
    r.accept = kAcceptMetadata;
  }
  return r;
}

ApiRequest list_request(const ResourceRef& collection, const ListOptions& options) {
  ApiRequest r;
  r.method = "GET";
  r.path = resource_path(without_name(collection)) + list_query(options, false);
  if (options.metadata_only) {
    r.accept = kAcceptMetadataList;
  }
  return r;
}

ApiRequest watch_request(const ResourceRef& collection, const ListOptions& options) {
  ApiRequest r;
  r.method = "GET";
  r.path = resource_path(without_name(collection)) + list_query(options, true);
  if (options.metadata_only) {
    r.accept = kAcceptMetadata;
  }
  return r;
}

ApiRequest create_request(const ResourceRef& collection, const json& object,
                          const WriteOptions& options) {
  const ResourceRef c = without_name(collection);
  require_object(object, "create", c);
  check_namespace(c, object, "create");
  Query q;
  add_write_options(q, options.field_manager, options.dry_run);
  ApiRequest r;
  r.method = "POST";
  r.path = resource_path(c) + q.take();
  r.content_type = "application/json";
  r.body = dump(object);
  return r;
}

ApiRequest update_request(const ResourceRef& ref, const json& object, const WriteOptions& options) {
  if (ref.name.empty()) {
    throw_invalid(fmt::format("update {}: no name", describe(ref)));
  }
  require_object(object, "update", ref);
  check_name(ref, object, "update");
  check_namespace(ref, object, "update");
  if (metadata_string(object, "resourceVersion").empty()) {
    throw_invalid(
        fmt::format("update {}: object has no metadata.resourceVersion (read it first; "
                    "an update without one could overwrite a concurrent change)",
                    describe(ref)));
  }
  Query q;
  add_write_options(q, options.field_manager, options.dry_run);
  ApiRequest r;
  r.method = "PUT";
  r.path = resource_path(ref) + q.take();
  r.content_type = "application/json";
  r.body = dump(object);
  return r;
}

ApiRequest patch_request(const ResourceRef& ref, PatchType type, const json& patch,
                         const PatchOptions& options) {
  if (ref.name.empty()) {
    throw_invalid(fmt::format("patch {}: no name", describe(ref)));
  }
  if (type == PatchType::kApply) {
    return apply_request(ref, patch, options);
  }
  if (options.force) {
    throw_invalid(fmt::format("patch {}: force applies only to apply", describe(ref)));
  }
  if (type == PatchType::kJson ? !patch.is_array() : !patch.is_object()) {
    throw_invalid(fmt::format("patch {}: a {} must be a JSON {}", describe(ref),
                              patch_content_type(type),
                              type == PatchType::kJson ? "array" : "object"));
  }
  Query q;
  add_write_options(q, options.field_manager, options.dry_run);
  ApiRequest r;
  r.method = "PATCH";
  r.path = resource_path(ref) + q.take();
  r.content_type = std::string(patch_content_type(type));
  r.body = dump(patch);
  return r;
}

ApiRequest apply_request(const ResourceRef& ref, const json& intent, const PatchOptions& options) {
  if (ref.name.empty()) {
    throw_invalid(fmt::format("apply {}: no name", describe(ref)));
  }
  if (options.field_manager.empty()) {
    throw_invalid(fmt::format("apply {}: a field manager is required", describe(ref)));
  }
  require_object(intent, "apply", ref);
  for (const char* key : {"apiVersion", "kind"}) {
    const auto it = intent.find(key);
    if (it == intent.end() || !it->is_string() || it->get<std::string>().empty()) {
      throw_invalid(fmt::format("apply {}: the intent has no {}", describe(ref), key));
    }
  }
  check_name(ref, intent, "apply");
  check_namespace(ref, intent, "apply");
  Query q;
  if (options.dry_run) {
    q.add("dryRun", "All");
  }
  check_field_manager(options.field_manager);
  q.add("fieldManager", options.field_manager);
  if (options.force) {
    q.add("force", "true");
  }
  ApiRequest r;
  r.method = "PATCH";
  r.path = resource_path(ref) + q.take();
  r.content_type = std::string(patch_content_type(PatchType::kApply));
  r.body = dump(intent);
  return r;
}

ApiRequest delete_request(const ResourceRef& ref, const DeleteOptions& options) {
  if (ref.name.empty()) {
    throw_invalid(fmt::format("delete {}: no name", describe(ref)));
  }
  json body = {{"apiVersion", "v1"}, {"kind", "DeleteOptions"}};
  bool any = false;
  if (options.uid || options.resource_version) {
    json pre = json::object();
    if (options.uid) {
      pre["uid"] = *options.uid;
    }
    if (options.resource_version) {
      pre["resourceVersion"] = *options.resource_version;
    }
    body["preconditions"] = std::move(pre);
    any = true;
  }
  if (!options.propagation_policy.empty()) {
    const auto& p = options.propagation_policy;
    if (p != "Orphan" && p != "Background" && p != "Foreground") {
      throw_invalid(
          fmt::format("delete {}: propagationPolicy \"{}\" is not Orphan, Background "
                      "or Foreground",
                      describe(ref), p));
    }
    body["propagationPolicy"] = p;
    any = true;
  }
  if (options.grace_period_seconds) {
    if (*options.grace_period_seconds < 0) {
      throw_invalid(fmt::format("delete {}: gracePeriodSeconds is negative", describe(ref)));
    }
    body["gracePeriodSeconds"] = *options.grace_period_seconds;
    any = true;
  }
  if (options.dry_run) {
    body["dryRun"] = json::array({"All"});
    any = true;
  }
  ApiRequest r;
  r.method = "DELETE";
  r.path = resource_path(ref);
  if (any) {
    r.content_type = "application/json";
    r.body = dump(body);
  }
  return r;
}

std::string query_escape(std::string_view value) {
  std::string out;
  append_escaped(out, value, false);
  return out;
}

std::string describe(const ResourceRef& ref) {
  std::string out = ref.gvr.resource;
  if (!ref.gvr.group.empty()) {
    out += "." + ref.gvr.group;
  }
  if (!ref.subresource.empty()) {
    out += "/" + ref.subresource;
  }
  if (ref.name.empty()) {
    if (!ref.namespace_.empty()) {
      out += " in " + ref.namespace_;
    }
  } else {
    out += ' ';
    out += ref.namespace_.empty() ? ref.name : ref.namespace_ + "/" + ref.name;
  }
  return out;
}

}  // namespace stowage::kube
