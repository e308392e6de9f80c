#include "api/image_cache.h"

#include <fmt/format.h>

#include <array>
#include <limits>
#include <utility>

#include "api/fields.h"
#include "base/error.h"

namespace stowage::api {
namespace {

using nlohmann::json;
namespace f = fields;

constexpr std::array<std::pair<PrunePolicy, std::string_view>, 2> kPruneNames{{
    {PrunePolicy::kOnRemoval, "OnRemoval"},
    {PrunePolicy::kNever, "Never"},
}};
constexpr f::EnumNames<PrunePolicy> kPrune{kPruneNames};

constexpr std::array<std::pair<ExportFormat, std::string_view>, 2> kFormatNames{{
    {ExportFormat::kDockerArchive, "docker-archive"},
    {ExportFormat::kOciArchive, "oci-archive"},
}};
constexpr f::EnumNames<ExportFormat> kFormat{kFormatNames};

ImageExport export_from_json(const json& j, const std::string& path) {
  ImageExport e;
  bool has_name = false;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    if (k == "format") {
      e.format = kFormat.decode(v, p);
    } else if (k == "fileName") {
      e.file_name = f::string_value(v, p);
      if (const auto problem = export_file_name_problem(e.file_name)) f::fail(p, *problem);
      has_name = true;
    } else {
      return false;
    }
    return true;
  });
  if (!has_name) f::fail(f::member_path(path, "fileName"), "Required value");
  return e;
}

template <class T>
T string_members(const json& j, const std::string& path,
                 std::initializer_list<std::pair<const char*, std::string T::*>> keys) {
  T out;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    for (const auto& [name, member] : keys) {
      if (k == name) {
        out.*member = f::string_value(v, p);
        return true;
      }
    }
    return false;
  });
  return out;
}

ImageCacheImageStatus image_status_from_json(const json& j, const std::string& path) {
  ImageCacheImageStatus s;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    if (k == "name") {
      s.name = f::string_value(v, p);
    } else if (k == "digest") {
      s.digest = f::string_value(v, p);
    } else if (k == "nodesReady") {
      s.nodes_ready = f::int32_value(v, p);
    } else if (k == "nodesTotal") {
      s.nodes_total = f::int32_value(v, p);
    } else {
      return false;
    }
    return true;
  });
  if (s.name.empty()) f::fail(f::member_path(path, "name"), "Required value");
  return s;
}

}  // namespace

std::string_view to_string(PrunePolicy policy) {
  return kPrune.name(policy);
}
std::string_view to_string(ExportFormat format) {
  return kFormat.name(format);
}
PrunePolicy prune_policy_from_json(const json& j, std::string_view path) {
  return kPrune.decode(j, path);
}
ExportFormat export_format_from_json(const json& j, std::string_view path) {
  return kFormat.decode(j, path);
}

std::optional<std::chrono::seconds> parse_interval(std::string_view text) {
  if (text.empty() || text.size() > 32) return std::nullopt;
  std::int64_t total = 0;
  std::int64_t number = 0;
  bool have_digits = false;
  for (const char c : text) {
    if (c >= '0' && c <= '9') {
      if (number > (std::numeric_limits<std::int32_t>::max() - (c - '0')) / 10) {
        return std::nullopt;
      }
      number = number * 10 + (c - '0');
      have_digits = true;
      continue;
    }
    if (!have_digits) return std::nullopt;
    const std::int64_t unit = c == 'h' ? 3600 : c == 'm' ? 60 : c == 's' ? 1 : 0;
    if (unit == 0) return std::nullopt;
    total += number * unit;
    if (total > std::numeric_limits<std::int32_t>::max()) return std::nullopt;
    number = 0;
    have_digits = false;
  }
  if (have_digits) return std::nullopt;  // a number without a unit
  return std::chrono::seconds(total);
}

std::string format_interval(std::chrono::seconds interval) {
  std::int64_t s = interval.count();
  if (s <= 0) return "0s";
  std::string out;
  if (s >= 3600) out += fmt::format("{}h", s / 3600);
  s %= 3600;
  if (s >= 60) out += fmt::format("{}m", s / 60);
  s %= 60;
  if (s > 0) out += fmt::format("{}s", s);
  return out;
}

std::optional<std::string> export_file_name_problem(std::string_view name) {
  if (name.empty()) return "Required value";
  if (name.size() > 255) return "must be at most 255 characters";
  if (name.find('/') != std::string_view::npos) return "must be a file name, without \"/\"";
  if (name == "." || name == "..") return "must not be \".\" or \"..\"";
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '+' || c == '-';
    if (!ok) return "may contain only letters, digits and . _ + -";
  }
  return std::nullopt;
}

ImageCacheSpec image_cache_spec_from_json(const json& j, std::string_view path) {
  ImageCacheSpec s;
  bool has_images = false;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    if (k == "nodeSelector") {
      s.node_selector = registries::selector_from_json(v, p);
    } else if (k == "images") {
      s.images = f::list_value<CachedImage>(v, p, [](const json& iv, const std::string& ip) {
        auto image = string_members<CachedImage>(iv, ip, {{"name", &CachedImage::name}});
        if (image.name.empty()) f::fail(f::member_path(ip, "name"), "Required value");
        return image;
      });
      f::require_unique(s.images, p, "name", [](const CachedImage& i) { return i.name; });
      has_images = true;
    } else if (k == "imagePullSecrets") {
      s.image_pull_secrets = local_refs_from_json(v, p);
    } else if (k == "refreshInterval") {
      const std::string text = f::string_value(v, p);
      const auto interval = parse_interval(text);
      if (!interval) {
        f::fail(p, fmt::format("Invalid value: \"{}\": must be hours, minutes and seconds such "
                               "as 6h, 1h30m or 90s",
                               text));
      }
      if (*interval < kMinRefreshInterval) f::fail(p, "must be at least 1m");
      s.refresh_interval = *interval;
    } else if (k == "prune") {
      s.prune = kPrune.decode(v, p);
    } else if (k == "export") {
      s.export_ = export_from_json(v, p);
    } else {
      return false;
    }
    return true;
  });
  if (!has_images || s.images.empty()) {
    f::fail(f::member_path(path, "images"), "Required value: at least one image");
  }
  return s;
}

json image_cache_spec_to_json(const ImageCacheSpec& s) {
  json j = json::object();
  if (!s.node_selector.empty()) j["nodeSelector"] = label_selector_to_json(s.node_selector);
  json images = json::array();
  for (const auto& i : s.images) images.push_back({{"name", i.name}});
  j["images"] = std::move(images);
  if (!s.image_pull_secrets.empty()) {
    j["imagePullSecrets"] = local_refs_to_json(s.image_pull_secrets);
  }
  j["refreshInterval"] = format_interval(s.refresh_interval);
  j["prune"] = to_string(s.prune);
  if (s.export_) {
    j["export"] = {{"format", to_string(s.export_->format)}, {"fileName", s.export_->file_name}};
  }
  return j;
}

ImageCacheStatus image_cache_status_from_json(const json& j, std::string_view path) {
  ImageCacheStatus s;
  f::members(j, path, [&](const std::string& k, const json& v, const std::string& p) {
    if (k == "observedGeneration") {
      s.observed_generation = f::int64_value(v, p);
    } else if (k == "conditions") {
      s.conditions = conditions_from_json(v, p);
    } else if (k == "images") {
      s.images = f::list_value<ImageCacheImageStatus>(v, p, image_status_from_json);
      f::require_unique(s.images, p, "name", [](const ImageCacheImageStatus& i) { return i.name; });
    } else if (k == "nodes") {
      f::members(v, p, [&](const std::string& nk, const json& nv, const std::string& np) {
        if (nk == "total") {
          s.nodes.total = f::int32_value(nv, np);
        } else if (nk == "ready") {
          s.nodes.ready = f::int32_value(nv, np);
        } else if (nk == "pulling") {
          s.nodes.pulling = f::int32_value(nv, np);
        } else if (nk == "failed") {
          s.nodes.failed = f::int32_value(nv, np);
        } else {
          return false;
        }
        return true;
      });
    } else if (k == "failures") {
      s.failures = f::list_value<ImageFailure>(v, p, [](const json& fv, const std::string& fp) {
        auto failure = string_members<ImageFailure>(fv, fp,
                                                    {{"node", &ImageFailure::node},
                                                     {"image", &ImageFailure::image},
                                                     {"reason", &ImageFailure::reason},
                                                     {"message", &ImageFailure::message}});
        if (failure.node.empty()) f::fail(f::member_path(fp, "node"), "Required value");
        if (failure.image.empty()) f::fail(f::member_path(fp, "image"), "Required value");
        return failure;
      });
      f::require_unique(s.failures, p, "node",
                        [](const ImageFailure& x) { return x.node + "\", image \"" + x.image; });
    } else {
      return false;
    }
    return true;
  });
  return s;
}

json image_cache_status_to_json(const ImageCacheStatus& s) {
  json j = json::object();
  if (s.observed_generation != 0) j["observedGeneration"] = s.observed_generation;
  if (!s.conditions.empty()) j["conditions"] = conditions_to_json(s.conditions);
  if (!s.images.empty()) {
    json a = json::array();
    for (const auto& i : s.images) {
      json o = {{"name", i.name}, {"nodesReady", i.nodes_ready}, {"nodesTotal", i.nodes_total}};
      if (!i.digest.empty()) o["digest"] = i.digest;
      a.push_back(std::move(o));
    }
    j["images"] = std::move(a);
  }
  if (s.nodes != ImageCacheNodes{}) {
    j["nodes"] = {{"total", s.nodes.total},
                  {"ready", s.nodes.ready},
                  {"pulling", s.nodes.pulling},
                  {"failed", s.nodes.failed}};
  }
  if (!s.failures.empty()) {
    json a = json::array();
    for (const auto& x : s.failures) {
      json o = {{"node", x.node}, {"image", x.image}};
      if (!x.reason.empty()) o["reason"] = x.reason;
      if (!x.message.empty()) o["message"] = x.message;
      a.push_back(std::move(o));
    }
    j["failures"] = std::move(a);
  }
  return j;
}

void to_json(json& j, const ImageCache& ic) {
  j = {{"apiVersion", kApiVersion},
       {"kind", kImageCacheKind},
       {"metadata", object_meta_to_json(ic.metadata)},
       {"spec", image_cache_spec_to_json(ic.spec)}};
  if (ic.status != ImageCacheStatus{}) j["status"] = image_cache_status_to_json(ic.status);
}

void from_json(const json& j, ImageCache& ic) {
  check_type(j, kImageCacheKind);
  ImageCache out;
  const std::string key = object_key_of(j);
  try {
    if (const auto m = j.find("metadata"); m != j.end() && !m->is_null()) {
      out.metadata = object_meta_from_json(*m);
    }
    const auto s = j.find("spec");
    out.spec = image_cache_spec_from_json(s != j.end() ? *s : json::object());
    if (const auto st = j.find("status"); st != j.end() && !st->is_null()) {
      out.status = image_cache_status_from_json(*st);
    }
  } catch (const Error& e) {
    throw e.wrap(fmt::format("{} \"{}\"", kImageCacheKind, key));
  }
  ic = std::move(out);
}

}  // namespace stowage::api
