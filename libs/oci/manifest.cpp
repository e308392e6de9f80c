#include "oci/manifest.h"

#include <fmt/format.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/sha256.h"
#include "reference/reference.h"

namespace stowage::oci {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

[[noreturn]] void bad(std::string_view where, std::string_view message) {
  throw_invalid(fmt::format("{}: {}", where, message));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// Parses a whole document after the size and nesting guards. Parse errors give the byte offset
// only: nlohmann's message quotes the text it read, which must not reach a log.
json parse_document(std::string_view bytes, std::string_view what, std::size_t max_bytes) {
  if (bytes.size() > max_bytes) {
    bad(what,
        fmt::format("document is {} bytes, more than the {} allowed", bytes.size(), max_bytes));
  }
  if (json_nesting_exceeds(bytes, kMaxJsonDepth)) {
    bad(what, fmt::format("JSON nested deeper than {} levels", kMaxJsonDepth));
  }
  try {
    return json::parse(bytes.begin(), bytes.end());
  } catch (const json::parse_error& e) {
    bad(what, fmt::format("invalid JSON at byte {}", e.byte));
  } catch (const json::exception&) {
    bad(what, "invalid JSON: a number is out of range");  // nlohmann's out_of_range.406
  }
}

// A member that is present and not null, or nullptr.
const json* member(const json& obj, std::string_view key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

std::string string_member(const json& obj, std::string_view key, std::string_view where,
                          bool required = false) {
  const json* v = member(obj, key);
  if (v == nullptr) {
    if (required) {
      bad(where, fmt::format("missing \"{}\"", key));
    }
    return {};
  }
  if (!v->is_string()) {
    bad(where, fmt::format("\"{}\" must be a string", key));
  }
  return v->get<std::string>();
}

std::vector<std::string> string_list(const json& v, std::string_view key, std::string_view where) {
  if (!v.is_array()) {
    bad(where, fmt::format("\"{}\" must be a list of strings", key));
  }
  std::vector<std::string> out;
  out.reserve(v.size());
  for (const auto& e : v) {
    if (!e.is_string()) {
      bad(where, fmt::format("\"{}\" must be a list of strings", key));
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::map<std::string, std::string> string_map(const json& obj, std::string_view key,
                                              std::string_view where) {
  std::map<std::string, std::string> out;
  const json* v = member(obj, key);
  if (v == nullptr) {
    return out;
  }
  if (!v->is_object()) {
    bad(where, fmt::format("\"{}\" must be an object", key));
  }
  for (const auto& [k, val] : v->items()) {
    if (!val.is_string()) {
      bad(where, fmt::format("\"{}\" value of \"{}\" must be a string", key, k));
    }
    out.emplace(k, val.get<std::string>());
  }
  return out;
}

Descriptor descriptor_at(const json& v, const std::string& where) {
  try {
    return descriptor_from_json(v);
  } catch (const Error& e) {
    throw e.wrap(where);
  }
}

// Ordered writers: members in the image-spec Go structs' order, empty optional members omitted.
ordered_json write_platform(const Platform& p) {
  ordered_json j;
  j["architecture"] = p.architecture;
  j["os"] = p.os;
  if (!p.os_version.empty()) {
    j["os.version"] = p.os_version;
  }
  if (!p.os_features.empty()) {
    j["os.features"] = p.os_features;
  }
  if (!p.variant.empty()) {
    j["variant"] = p.variant;
  }
  return j;
}

ordered_json write_descriptor(const Descriptor& d) {
  ordered_json j;
  j["mediaType"] = d.media_type;
  j["digest"] = d.digest;
  j["size"] = d.size;
  if (!d.urls.empty()) {
    j["urls"] = d.urls;
  }
  if (!d.annotations.empty()) {
    j["annotations"] = d.annotations;
  }
  if (d.platform) {
    j["platform"] = write_platform(*d.platform);
  }
  if (!d.artifact_type.empty()) {
    j["artifactType"] = d.artifact_type;
  }
  return j;
}

std::string dump(const ordered_json& j, std::string_view what) {
  try {
    return j.dump();
  } catch (const json::exception&) {
    bad(what, "a string is not valid UTF-8");
  }
}

bool is_generic_content_type(std::string_view ct) {
  return ct.empty() || ct == "application/json" || ct == "text/plain" ||
         ct == "application/octet-stream" || ct == "binary/octet-stream";
}

bool is_schema1(std::string_view mt) {
  return mt == media::kDockerManifestV1 || mt == media::kDockerManifestV1Signed;
}

[[noreturn]] void refuse_schema1(std::string_view mt) {
  bad("manifest",
      fmt::format("Docker schema 1 manifests ({}) are not supported (removed from Docker 28.2 and "
                  "containerd 2.1); push the image again with a current client",
                  mt));
}

struct Kind {
  ManifestKind kind;
  std::string media_type;
};

Kind detect(const json& doc, std::string_view content_type) {
  if (!doc.is_object()) {
    bad("manifest", "must be a JSON object");
  }
  const std::string body_type = normalize_media_type(string_member(doc, "mediaType", "manifest"));
  std::string header_type = normalize_media_type(content_type);
  if (is_generic_content_type(header_type)) {
    header_type.clear();
  }
  if (is_schema1(body_type)) {
    refuse_schema1(body_type);
  }
  if (is_schema1(header_type)) {
    refuse_schema1(header_type);
  }
  if (const json* v = member(doc, "schemaVersion");
      v != nullptr && v->is_number_integer() && v->get<std::int64_t>() == 1) {
    refuse_schema1(media::kDockerManifestV1);
  }
  if (!body_type.empty() && !header_type.empty() && body_type != header_type) {
    bad("manifest", fmt::format("mediaType \"{}\" differs from the Content-Type \"{}\"", body_type,
                                header_type));
  }
  std::string type = !body_type.empty() ? body_type : header_type;
  if (type.empty()) {
    if (doc.contains("manifests")) {
      type = media::kOciIndex;
    } else if (doc.contains("config") || doc.contains("layers")) {
      type = media::kOciManifest;
    } else if (doc.contains("fsLayers")) {
      refuse_schema1(media::kDockerManifestV1);
    } else {
      bad("manifest",
          "no mediaType, no Content-Type, and neither \"manifests\" nor \"layers\" to tell what "
          "it is");
    }
  }
  if (is_index_media_type(type)) {
    return {ManifestKind::kImageIndex, type};
  }
  if (is_manifest_media_type(type)) {
    return {ManifestKind::kImageManifest, type};
  }
  bad("manifest", fmt::format("unsupported media type \"{}\"", type));
}

int schema_version(const json& doc) {
  const json* v = member(doc, "schemaVersion");
  if (v == nullptr) {
    bad("manifest", "missing \"schemaVersion\"");
  }
  if (!v->is_number_integer()) {
    bad("manifest", "\"schemaVersion\" must be an integer");
  }
  const auto n = v->get<std::int64_t>();
  if (n != 2) {
    bad("manifest", fmt::format("unsupported schemaVersion {} (want 2)", n));
  }
  return 2;
}

std::optional<Descriptor> subject_of(const json& doc, std::string_view where) {
  const json* v = member(doc, "subject");
  if (v == nullptr) {
    return std::nullopt;
  }
  return descriptor_at(*v, fmt::format("{}: subject", where));
}

ImageManifest manifest_from(const json& doc, std::string media_type) {
  ImageManifest m;
  m.schema_version = schema_version(doc);
  m.media_type = std::move(media_type);
  m.artifact_type = string_member(doc, "artifactType", "manifest");
  const json* config = member(doc, "config");
  if (config == nullptr) {
    bad("manifest", "missing \"config\"");
  }
  m.config = descriptor_at(*config, "manifest: config");
  const json* layers = member(doc, "layers");
  if (layers == nullptr) {
    bad("manifest", "missing \"layers\"");
  }
  if (!layers->is_array()) {
    bad("manifest", "\"layers\" must be a list");
  }
  m.layers.reserve(layers->size());
  for (std::size_t i = 0; i < layers->size(); ++i) {
    m.layers.push_back(descriptor_at((*layers)[i], fmt::format("manifest: layers[{}]", i)));
  }
  m.subject = subject_of(doc, "manifest");
  m.annotations = string_map(doc, "annotations", "manifest");
  return m;
}

ImageIndex index_from(const json& doc, std::string media_type) {
  ImageIndex x;
  x.schema_version = schema_version(doc);
  x.media_type = std::move(media_type);
  x.artifact_type = string_member(doc, "artifactType", "index");
  const json* manifests = member(doc, "manifests");
  if (manifests == nullptr) {
    bad("index", "missing \"manifests\"");
  }
  if (!manifests->is_array()) {
    bad("index", "\"manifests\" must be a list");
  }
  x.manifests.reserve(manifests->size());
  for (std::size_t i = 0; i < manifests->size(); ++i) {
    x.manifests.push_back(descriptor_at((*manifests)[i], fmt::format("index: manifests[{}]", i)));
  }
  x.subject = subject_of(doc, "index");
  x.annotations = string_map(doc, "annotations", "index");
  return x;
}

// Docker's strslice: a list of strings, or one string.
std::vector<std::string> str_slice(const json& v, std::string_view key, std::string_view where) {
  if (v.is_string()) {
    return {v.get<std::string>()};
  }
  return string_list(v, key, where);
}

std::set<std::string> key_set(const json& obj, std::string_view key, std::string_view where) {
  std::set<std::string> out;
  const json* v = member(obj, key);
  if (v == nullptr) {
    return out;
  }
  if (!v->is_object()) {
    bad(where, fmt::format("\"{}\" must be an object", key));
  }
  for (const auto& [k, val] : v->items()) {
    if (!val.is_null() && !val.is_object()) {
      bad(where, fmt::format("\"{}\" value of \"{}\" must be an object", key, k));
    }
    out.insert(k);
  }
  return out;
}

std::map<std::string, std::string> extras(const json& obj,
                                          std::initializer_list<std::string_view> known) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : obj.items()) {
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      out.emplace(k, v.dump());
    }
  }
  return out;
}

void write_extras(ordered_json& j, const std::map<std::string, std::string>& extra,
                  std::string_view where) {
  for (const auto& [k, text] : extra) {
    if (j.contains(k)) {
      continue;  // a modelled field wins
    }
    try {
      j[k] = ordered_json::parse(text);
    } catch (const json::exception&) {
      bad(where, fmt::format("extra field \"{}\" is not valid JSON", k));
    }
  }
}

ContainerConfig container_config_from(const json& v) {
  constexpr std::string_view where = "config: config";
  if (!v.is_object()) {
    bad(where, "must be an object");
  }
  ContainerConfig c;
  c.user = string_member(v, "User", where);
  c.exposed_ports = key_set(v, "ExposedPorts", where);
  if (const json* env = member(v, "Env")) {
    c.env = string_list(*env, "Env", where);
  }
  if (const json* ep = member(v, "Entrypoint")) {
    c.entrypoint = str_slice(*ep, "Entrypoint", where);
  }
  if (const json* cmd = member(v, "Cmd")) {
    c.cmd = str_slice(*cmd, "Cmd", where);
  }
  c.volumes = key_set(v, "Volumes", where);
  c.working_dir = string_member(v, "WorkingDir", where);
  c.labels = string_map(v, "Labels", where);
  c.stop_signal = string_member(v, "StopSignal", where);
  if (const json* ae = member(v, "ArgsEscaped")) {
    if (!ae->is_boolean()) {
      bad(where, "\"ArgsEscaped\" must be a boolean");
    }
    c.args_escaped = ae->get<bool>();
  }
  c.extra = extras(v, {"User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
                       "Labels", "StopSignal", "ArgsEscaped"});
  return c;
}

ordered_json write_container_config(const ContainerConfig& c) {
  ordered_json j = ordered_json::object();
  const auto key_object = [](const std::set<std::string>& keys) {
    ordered_json o = ordered_json::object();
    for (const auto& k : keys) {
      o[k] = ordered_json::object();
    }
    return o;
  };
  if (!c.user.empty()) {
    j["User"] = c.user;
  }
  if (!c.exposed_ports.empty()) {
    j["ExposedPorts"] = key_object(c.exposed_ports);
  }
  if (!c.env.empty()) {
    j["Env"] = c.env;
  }
  if (c.entrypoint) {
    j["Entrypoint"] = *c.entrypoint;
  }
  if (c.cmd) {
    j["Cmd"] = *c.cmd;
  }
  if (!c.volumes.empty()) {
    j["Volumes"] = key_object(c.volumes);
  }
  if (!c.working_dir.empty()) {
    j["WorkingDir"] = c.working_dir;
  }
  if (!c.labels.empty()) {
    j["Labels"] = c.labels;
  }
  if (!c.stop_signal.empty()) {
    j["StopSignal"] = c.stop_signal;
  }
  if (c.args_escaped) {
    j["ArgsEscaped"] = *c.args_escaped;
  }
  write_extras(j, c.extra, "config: config");
  return j;
}

// --- platform helpers ---

struct ArmVersion {
  int major = 8;
  int minor = 0;
};

// arm64 variants after normalization: "" (v8.0), "v8.N", "v9" (v9.0), "v9.N".
std::optional<ArmVersion> arm64_version(std::string_view variant) {
  if (variant.empty()) {
    return ArmVersion{8, 0};
  }
  if (variant.size() < 2 || variant[0] != 'v') {
    return std::nullopt;
  }
  const std::string_view rest = variant.substr(1);
  const auto dot = rest.find('.');
  ArmVersion v;
  const std::string_view major = rest.substr(0, dot);
  if (std::from_chars(major.data(), major.data() + major.size(), v.major).ptr !=
      major.data() + major.size()) {
    return std::nullopt;
  }
  if (dot != std::string_view::npos) {
    const std::string_view minor = rest.substr(dot + 1);
    if (minor.empty() || std::from_chars(minor.data(), minor.data() + minor.size(), v.minor).ptr !=
                             minor.data() + minor.size()) {
      return std::nullopt;
    }
  }
  if ((v.major != 8 && v.major != 9) || v.minor < 0 || v.minor > 20) {
    return std::nullopt;
  }
  return v;
}

std::string arm64_variant(int major, int minor) {
  if (major == 8 && minor == 0) {
    return "";
  }
  if (minor == 0) {
    return fmt::format("v{}", major);
  }
  return fmt::format("v{}.{}", major, minor);
}

bool same_platform(const Platform& a, const Platform& b) {
  return a.os == b.os && a.architecture == b.architecture && a.variant == b.variant;
}

}  // namespace

bool json_nesting_exceeds(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return true;
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

std::string manifest_digest(std::string_view bytes) {
  return sha256_digest(bytes);
}

std::string normalize_media_type(std::string_view content_type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) {
    t.remove_prefix(1);
  }
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) {
    t.remove_suffix(1);
  }
  return lower(t);
}

ManifestKind detect_manifest_kind(std::string_view bytes, std::string_view content_type) {
  return detect(parse_document(bytes, "manifest", kMaxManifestBytes), content_type).kind;
}

ImageManifest parse_image_manifest(std::string_view bytes, std::string_view content_type) {
  const json doc = parse_document(bytes, "manifest", kMaxManifestBytes);
  Kind k = detect(doc, content_type);
  if (k.kind != ManifestKind::kImageManifest) {
    bad("manifest",
        fmt::format("expected an image manifest, got an image index ({})", k.media_type));
  }
  return manifest_from(doc, std::move(k.media_type));
}

ImageIndex parse_image_index(std::string_view bytes, std::string_view content_type) {
  const json doc = parse_document(bytes, "manifest", kMaxManifestBytes);
  Kind k = detect(doc, content_type);
  if (k.kind != ManifestKind::kImageIndex) {
    bad("manifest",
        fmt::format("expected an image index, got an image manifest ({})", k.media_type));
  }
  return index_from(doc, std::move(k.media_type));
}

std::variant<ImageManifest, ImageIndex> parse_manifest(std::string_view bytes,
                                                       std::string_view content_type) {
  const json doc = parse_document(bytes, "manifest", kMaxManifestBytes);
  Kind k = detect(doc, content_type);
  if (k.kind == ManifestKind::kImageIndex) {
    return index_from(doc, std::move(k.media_type));
  }
  return manifest_from(doc, std::move(k.media_type));
}

ImageConfig parse_image_config(std::string_view bytes) {
  const json doc = parse_document(bytes, "config", kMaxConfigBytes);
  if (!doc.is_object()) {
    bad("config", "must be a JSON object");
  }
  ImageConfig c;
  c.created = string_member(doc, "created", "config");
  c.author = string_member(doc, "author", "config");
  c.architecture = string_member(doc, "architecture", "config", true);
  if (c.architecture.empty()) {
    bad("config", "\"architecture\" must not be empty");
  }
  c.os = string_member(doc, "os", "config", true);
  if (c.os.empty()) {
    bad("config", "\"os\" must not be empty");
  }
  c.variant = string_member(doc, "variant", "config");
  c.os_version = string_member(doc, "os.version", "config");
  if (const json* f = member(doc, "os.features")) {
    c.os_features = string_list(*f, "os.features", "config");
  }
  if (const json* cc = member(doc, "config")) {
    c.config = container_config_from(*cc);
  }
  const json* rootfs = member(doc, "rootfs");
  if (rootfs == nullptr) {
    bad("config", "missing \"rootfs\"");
  }
  if (!rootfs->is_object()) {
    bad("config: rootfs", "must be an object");
  }
  c.rootfs_type = string_member(*rootfs, "type", "config: rootfs", true);
  if (const json* ids = member(*rootfs, "diff_ids")) {
    c.diff_ids = string_list(*ids, "diff_ids", "config: rootfs");
    for (std::size_t i = 0; i < c.diff_ids.size(); ++i) {
      if (!Digest::is_valid(c.diff_ids[i])) {
        bad("config: rootfs", fmt::format("diff_ids[{}] is not a valid digest", i));
      }
    }
  }
  if (const json* history = member(doc, "history")) {
    if (!history->is_array()) {
      bad("config", "\"history\" must be a list");
    }
    for (std::size_t i = 0; i < history->size(); ++i) {
      const json& h = (*history)[i];
      const std::string where = fmt::format("config: history[{}]", i);
      if (!h.is_object()) {
        bad(where, "must be an object");
      }
      HistoryEntry e;
      e.created = string_member(h, "created", where);
      e.author = string_member(h, "author", where);
      e.created_by = string_member(h, "created_by", where);
      e.comment = string_member(h, "comment", where);
      if (const json* el = member(h, "empty_layer")) {
        if (!el->is_boolean()) {
          bad(where, "\"empty_layer\" must be a boolean");
        }
        e.empty_layer = el->get<bool>();
      }
      c.history.push_back(std::move(e));
    }
  }
  c.extra = extras(doc, {"created", "author", "architecture", "variant", "os", "os.version",
                         "os.features", "config", "rootfs", "history"});
  return c;
}

Platform ImageConfig::platform() const {
  Platform p;
  p.os = os;
  p.architecture = architecture;
  p.variant = variant;
  p.os_version = os_version;
  p.os_features = os_features;
  return p;
}

std::string serialize(const ImageManifest& m) {
  ordered_json j;
  j["schemaVersion"] = m.schema_version;
  if (!m.media_type.empty()) {
    j["mediaType"] = m.media_type;
  }
  if (!m.artifact_type.empty()) {
    j["artifactType"] = m.artifact_type;
  }
  j["config"] = write_descriptor(m.config);
  j["layers"] = ordered_json::array();
  for (const auto& l : m.layers) {
    j["layers"].push_back(write_descriptor(l));
  }
  if (m.subject) {
    j["subject"] = write_descriptor(*m.subject);
  }
  if (!m.annotations.empty()) {
    j["annotations"] = m.annotations;
  }
  return dump(j, "manifest");
}

std::string serialize(const ImageIndex& x) {
  ordered_json j;
  j["schemaVersion"] = x.schema_version;
  if (!x.media_type.empty()) {
    j["mediaType"] = x.media_type;
  }
  if (!x.artifact_type.empty()) {
    j["artifactType"] = x.artifact_type;
  }
  j["manifests"] = ordered_json::array();
  for (const auto& d : x.manifests) {
    j["manifests"].push_back(write_descriptor(d));
  }
  if (x.subject) {
    j["subject"] = write_descriptor(*x.subject);
  }
  if (!x.annotations.empty()) {
    j["annotations"] = x.annotations;
  }
  return dump(j, "index");
}

std::string serialize(const ImageConfig& c) {
  ordered_json j;
  if (!c.created.empty()) {
    j["created"] = c.created;
  }
  if (!c.author.empty()) {
    j["author"] = c.author;
  }
  j["architecture"] = c.architecture;
  j["os"] = c.os;
  if (!c.os_version.empty()) {
    j["os.version"] = c.os_version;
  }
  if (!c.os_features.empty()) {
    j["os.features"] = c.os_features;
  }
  if (!c.variant.empty()) {
    j["variant"] = c.variant;
  }
  if (c.config) {
    j["config"] = write_container_config(*c.config);
  }
  j["rootfs"] = ordered_json{{"type", c.rootfs_type}, {"diff_ids", c.diff_ids}};
  if (!c.history.empty()) {
    j["history"] = ordered_json::array();
    for (const auto& h : c.history) {
      ordered_json e = ordered_json::object();
      if (!h.created.empty()) {
        e["created"] = h.created;
      }
      if (!h.author.empty()) {
        e["author"] = h.author;
      }
      if (!h.created_by.empty()) {
        e["created_by"] = h.created_by;
      }
      if (!h.comment.empty()) {
        e["comment"] = h.comment;
      }
      if (h.empty_layer) {
        e["empty_layer"] = true;
      }
      j["history"].push_back(std::move(e));
    }
  }
  write_extras(j, c.extra, "config");
  return dump(j, "config");
}

// --- Platforms -----------------------------------------------------------------------------------

Platform normalize_platform(Platform p) {
  p.os = lower(p.os);
  if (p.os == "macos") {
    p.os = "darwin";
  }
  std::string arch = lower(p.architecture);
  std::string variant = lower(p.variant);
  if (arch == "i386") {
    arch = "386";
    variant.clear();
  } else if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") {
    arch = "amd64";
    if (variant == "v1") {
      variant.clear();
    }
  } else if (arch == "aarch64" || arch == "arm64") {
    arch = "arm64";
    if (variant == "8" || variant == "v8" || variant == "v8.0") {
      variant.clear();
    } else if (variant == "9" || variant == "9.0" || variant == "v9.0") {
      variant = "v9";
    }
  } else if (arch == "armhf") {
    arch = "arm";
    variant = "v7";
  } else if (arch == "armel") {
    arch = "arm";
    variant = "v6";
  } else if (arch == "arm") {
    if (variant.empty() || variant == "7") {
      variant = "v7";
    } else if (variant == "5" || variant == "6" || variant == "8") {
      variant = "v" + variant;
    }
  }
  p.architecture = std::move(arch);
  p.variant = std::move(variant);
  return p;
}

Platform parse_platform(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto slash = text.find('/', start);
    parts.push_back(text.substr(start, slash - start));
    if (slash == std::string_view::npos) {
      break;
    }
    start = slash + 1;
  }
  const auto valid_part = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
  };
  if (parts.size() < 2 || parts.size() > 3 ||
      !std::all_of(parts.begin(), parts.end(), valid_part)) {
    std::string shown(text.substr(0, 100));
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
        c = '?';
      }
    }
    throw_invalid(fmt::format("invalid platform \"{}\": expected os/arch[/variant]", shown));
  }
  Platform p;
  p.os = parts[0];
  p.architecture = parts[1];
  if (parts.size() == 3) {
    p.variant = parts[2];
  }
  return normalize_platform(std::move(p));
}

std::string format_platform(const Platform& p) {
  std::string out = p.os + "/" + p.architecture;
  if (!p.variant.empty()) {
    out += "/" + p.variant;
  }
  return out;
}

Platform platform_from_uname(std::string_view sysname, std::string_view machine) {
  Platform p;
  p.os = lower(sysname);
  const std::string m = lower(machine);
  if (m == "x86_64" || m == "amd64") {
    p.architecture = "amd64";
  } else if (m == "i386" || m == "i486" || m == "i586" || m == "i686") {
    p.architecture = "386";
  } else if (m == "aarch64" || m == "arm64" || m == "aarch64_be") {
    p.architecture = "arm64";
  } else if (m.starts_with("armv8")) {
    p.architecture = "arm";
    p.variant = "v8";
  } else if (m.starts_with("armv7")) {
    p.architecture = "arm";
    p.variant = "v7";
  } else if (m.starts_with("armv6")) {
    p.architecture = "arm";
    p.variant = "v6";
  } else if (m.starts_with("armv5")) {
    p.architecture = "arm";
    p.variant = "v5";
  } else {
    p.architecture = m;  // ppc64le, s390x, riscv64, mips64le, loong64, ...
  }
  return normalize_platform(std::move(p));
}

Platform host_platform() {
  utsname u{};
  if (::uname(&u) != 0) {
    return Platform{"linux", "amd64", "", "", {}};
  }
  return platform_from_uname(u.sysname, u.machine);
}

std::vector<Platform> platform_preferences(const Platform& wanted_in) {
  const Platform wanted = normalize_platform(wanted_in);
  std::vector<Platform> out;
  const auto add = [&](std::string arch, std::string variant) {
    Platform p;
    p.os = wanted.os;
    p.architecture = std::move(arch);
    p.variant = std::move(variant);
    out.push_back(std::move(p));
  };
  const std::string& arch = wanted.architecture;
  if (arch == "arm64") {
    if (const auto v = arm64_version(wanted.variant)) {
      for (int minor = v->minor; minor >= 0; --minor) {
        add("arm64", arm64_variant(v->major, minor));
      }
      if (v->major == 9) {
        for (int minor = v->minor + 5; minor >= 0; --minor) {
          add("arm64", arm64_variant(8, minor));
        }
      }
    } else {
      add("arm64", wanted.variant);
      add("arm64", "");
    }
    for (const char* av : {"v8", "v7", "v6", "v5"}) {
      add("arm", av);
    }
  } else if (arch == "arm") {
    static constexpr std::string_view kChain[] = {"v8", "v7", "v6", "v5"};
    const auto* it = std::find(std::begin(kChain), std::end(kChain), wanted.variant);
    if (it == std::end(kChain)) {
      add("arm", wanted.variant);
    } else {
      for (; it != std::end(kChain); ++it) {
        add("arm", std::string(*it));
      }
    }
  } else if (arch == "amd64") {
    int level = 1;
    if (wanted.variant.size() == 2 && wanted.variant[0] == 'v' && wanted.variant[1] >= '2' &&
        wanted.variant[1] <= '4') {
      level = wanted.variant[1] - '0';
    } else if (!wanted.variant.empty()) {
      add("amd64", wanted.variant);
    }
    for (; level >= 2; --level) {
      add("amd64", fmt::format("v{}", level));
    }
    add("amd64", "");
    add("386", "");
  } else {
    add(arch, wanted.variant);
    if (!wanted.variant.empty()) {
      add(arch, "");
    }
  }
  return out;
}

bool is_attestation(const Descriptor& d) {
  if (const auto it = d.annotations.find(std::string(kDockerReferenceTypeAnnotation));
      it != d.annotations.end() && it->second == kAttestationManifest) {
    return true;
  }
  return d.platform && d.platform->os == "unknown" && d.platform->architecture == "unknown";
}

std::optional<std::size_t> select_platform(const std::vector<Descriptor>& manifests,
                                           const Platform& wanted) {
  std::vector<std::optional<Platform>> normalized;
  normalized.reserve(manifests.size());
  for (const auto& d : manifests) {
    if (!d.platform || is_attestation(d)) {
      normalized.emplace_back();
    } else {
      normalized.emplace_back(normalize_platform(*d.platform));
    }
  }
  for (const Platform& p : platform_preferences(wanted)) {
    for (std::size_t i = 0; i < manifests.size(); ++i) {
      if (normalized[i] && same_platform(*normalized[i], p)) {
        return i;
      }
    }
  }
  return std::nullopt;
}

const Descriptor& choose_platform(const ImageIndex& index, const Platform& wanted) {
  if (const auto i = select_platform(index.manifests, wanted)) {
    return index.manifests[*i];
  }
  std::vector<std::string> have;
  for (const auto& d : index.manifests) {
    if (d.platform && !is_attestation(d)) {
      have.push_back(format_platform(*d.platform));
    }
  }
  throw Error(Code::kNotFound,
              fmt::format("no image for platform {} in the index; it has {}",
                          format_platform(normalize_platform(wanted)),
                          have.empty() ? std::string("no platform entries")
                                       : fmt::format("{}", fmt::join(have, ", "))));
}

}  // namespace stowage::oci
