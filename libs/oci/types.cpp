#include "oci/types.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "reference/reference.h"

namespace stowage::oci {
namespace {

using nlohmann::json;

[[noreturn]] void invalid(std::string message) {
  throw Error(Code::kInvalidArgument, std::move(message));
}

// `what` names the object in messages: "descriptor", "platform".
std::string str_field(const json& j, const char* key, bool required,
                      const char* what = "descriptor") {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) invalid(fmt::format("{}: missing \"{}\"", what, key));
    return {};
  }
  if (!it->is_string()) invalid(fmt::format("{}: \"{}\" must be a string", what, key));
  return it->get<std::string>();
}

}  // namespace

json to_json(const Platform& p) {
  json j = {{"architecture", p.architecture}, {"os", p.os}};
  if (!p.os_version.empty()) j["os.version"] = p.os_version;
  if (!p.os_features.empty()) j["os.features"] = p.os_features;
  if (!p.variant.empty()) j["variant"] = p.variant;
  return j;
}

Platform platform_from_json(const json& j) {
  if (!j.is_object()) invalid("platform: must be an object");
  Platform p;
  p.architecture = str_field(j, "architecture", true, "platform");
  p.os = str_field(j, "os", true, "platform");
  p.variant = str_field(j, "variant", false, "platform");
  p.os_version = str_field(j, "os.version", false, "platform");
  if (const auto it = j.find("os.features"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) invalid("platform: \"os.features\" must be a list");
    for (const auto& f : *it) {
      if (!f.is_string()) invalid("platform: \"os.features\" must be a list of strings");
      p.os_features.push_back(f.get<std::string>());
    }
  }
  return p;
}

json to_json(const Descriptor& d) {
  json j = {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
  if (!d.urls.empty()) j["urls"] = d.urls;
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  if (d.platform) j["platform"] = to_json(*d.platform);
  if (!d.artifact_type.empty()) j["artifactType"] = d.artifact_type;
  return j;
}

Descriptor descriptor_from_json(const json& j) {
  if (!j.is_object()) invalid("descriptor: must be an object");
  Descriptor d;
  d.media_type = str_field(j, "mediaType", true);
  d.digest = str_field(j, "digest", true);
  if (!Digest::is_valid(d.digest))
    invalid(fmt::format("descriptor: invalid digest \"{}\"", d.digest));
  const auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer())
    invalid("descriptor: \"size\" must be an integer");
  d.size = size->get<std::int64_t>();
  if (d.size < 0) invalid("descriptor: \"size\" must not be negative");
  if (const auto it = j.find("urls"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) invalid("descriptor: \"urls\" must be a list");
    for (const auto& u : *it) {
      if (!u.is_string()) invalid("descriptor: \"urls\" must be a list of strings");
      d.urls.push_back(u.get<std::string>());
    }
  }
  if (const auto it = j.find("annotations"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) invalid("descriptor: \"annotations\" must be an object");
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string()) invalid(fmt::format("descriptor: annotation \"{}\" must be a string", k));
      d.annotations[k] = v.get<std::string>();
    }
  }
  if (const auto it = j.find("platform"); it != j.end() && !it->is_null()) {
    try {
      d.platform = platform_from_json(*it);
    } catch (const Error& e) {
      throw e.wrap("descriptor");
    }
  }
  d.artifact_type = str_field(j, "artifactType", false);
  return d;
}

bool is_index_media_type(std::string_view m) {
  return m == media::kOciIndex || m == media::kDockerManifestList;
}

bool is_manifest_media_type(std::string_view m) {
  return m == media::kOciManifest || m == media::kDockerManifest;
}

}  // namespace stowage::oci
