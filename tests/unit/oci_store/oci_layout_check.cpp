#include "unit/oci_store/oci_layout_check.h"

#include <fmt/format.h>

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string_view>

#include "base/sha256.h"

namespace stowage::oci::testing {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kIndexType = "application/vnd.oci.image.index.v1+json";

std::optional<std::string> slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool is_hex(const std::string& s, std::size_t size) {
  return s.size() == size && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// The image-layout grammar of org.opencontainers.image.ref.name: components of alphanumerics
// joined by one of -._:@+ or "--", components separated by "/".
bool valid_ref_name(std::string_view name) {
  const auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  std::size_t i = 0;
  while (true) {
    // One component.
    while (true) {
      const std::size_t start = i;
      while (i < name.size() && alnum(name[i])) ++i;
      if (i == start) return false;
      if (i == name.size() || name[i] == '/') break;
      if (name.substr(i, 2) == "--") {
        i += 2;
      } else if (std::string_view("-._:@+").find(name[i]) != std::string_view::npos) {
        ++i;
      } else {
        return false;
      }
    }
    if (i == name.size()) return true;
    ++i;  // '/'
  }
}

bool valid_descriptor(const json& d, std::string& why) {
  if (!d.is_object()) return why = "not an object", false;
  if (!d.contains("mediaType") || !d["mediaType"].is_string()) return why = "no mediaType", false;
  if (!d.contains("digest") || !d["digest"].is_string()) return why = "no digest", false;
  if (!d.contains("size") || !d["size"].is_number_integer() || d["size"].get<long long>() < 0) {
    return why = "no valid size", false;
  }
  const std::string digest = d["digest"];
  const auto colon = digest.find(':');
  if (colon == std::string::npos || colon == 0) return why = "malformed digest " + digest, false;
  if (digest.starts_with("sha256:") && !is_hex(digest.substr(7), 64)) {
    return why = "malformed sha256 digest " + digest, false;
  }
  return true;
}

bool is_manifest(const std::string& mt) {
  return mt == "application/vnd.oci.image.manifest.v1+json" ||
         mt == "application/vnd.docker.distribution.manifest.v2+json";
}

bool is_index(const std::string& mt) {
  return mt == kIndexType || mt == "application/vnd.docker.distribution.manifest.list.v2+json";
}

}  // namespace

std::vector<std::string> oci_layout_problems(const fs::path& dir,
                                             const LayoutCheckOptions& options) {
  std::vector<std::string> problems;
  const auto problem = [&](std::string p) { problems.push_back(std::move(p)); };

  // oci-layout
  if (const auto text = slurp(dir / "oci-layout")) {
    const json j = json::parse(*text, nullptr, false);
    if (!j.is_object() || !j.contains("imageLayoutVersion") || j["imageLayoutVersion"] != "1.0.0") {
      problem("oci-layout: imageLayoutVersion is not \"1.0.0\"");
    }
  } else {
    problem("oci-layout: missing");
  }

  // blobs: every file is blobs/<alg>/<encoded> and hashes to its name.
  std::set<std::string> present;
  if (!fs::is_directory(dir / "blobs")) {
    problem("blobs/: missing or not a directory");
  } else {
    for (const auto& alg : fs::directory_iterator(dir / "blobs")) {
      if (!alg.is_directory()) {
        problem(
            fmt::format("blobs/{}: not an algorithm directory", alg.path().filename().string()));
        continue;
      }
      const std::string a = alg.path().filename().string();
      for (const auto& blob : fs::directory_iterator(alg.path())) {
        const std::string name = blob.path().filename().string();
        const std::string rel = fmt::format("blobs/{}/{}", a, name);
        if (!blob.is_regular_file()) {
          problem(rel + ": not a regular file");
          continue;
        }
        if (a == "sha256") {
          if (!is_hex(name, 64)) {
            problem(rel + ": name is not 64 lowercase hex");
            continue;
          }
          Sha256 h;
          std::ifstream in(blob.path(), std::ios::binary);
          std::vector<char> buf(1 << 20);
          while (in) {
            in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
            h.update(buf.data(), static_cast<std::size_t>(in.gcount()));
          }
          if (h.finish_hex() != name) problem(rel + ": content does not hash to its name");
        }
        present.insert(a + ":" + name);
      }
    }
  }

  // index.json and everything it reaches.
  const auto index_text = slurp(dir / "index.json");
  if (!index_text) {
    problem("index.json: missing");
    return problems;
  }
  const json index = json::parse(*index_text, nullptr, false);
  if (!index.is_object()) {
    problem("index.json: not a JSON object");
    return problems;
  }
  if (index.value("schemaVersion", 0) != 2) problem("index.json: schemaVersion is not 2");
  if (index.contains("mediaType") && index["mediaType"] != kIndexType) {
    problem("index.json: mediaType is not the OCI index type");
  }
  if (!index.contains("manifests") || !index["manifests"].is_array()) {
    problem("index.json: manifests is not a list");
    return problems;
  }
  std::vector<std::pair<json, std::string>> stack;
  for (std::size_t i = 0; i < index["manifests"].size(); ++i) {
    const json& d = index["manifests"][i];
    const std::string where = fmt::format("index.json manifests[{}]", i);
    std::string why;
    if (!valid_descriptor(d, why)) {
      problem(where + ": " + why);
      continue;
    }
    if (d.contains("annotations")) {
      const json& a = d["annotations"];
      if (!a.is_object()) {
        problem(where + ": annotations is not an object");
      } else {
        for (const auto& [k, v] : a.items()) {
          if (!v.is_string()) problem(fmt::format("{}: annotation {} is not a string", where, k));
        }
        if (a.contains("org.opencontainers.image.ref.name") &&
            (!a["org.opencontainers.image.ref.name"].is_string() ||
             !valid_ref_name(a["org.opencontainers.image.ref.name"].get<std::string>()))) {
          problem(where + ": org.opencontainers.image.ref.name does not follow the grammar");
        }
      }
    }
    stack.emplace_back(d, where);
  }
  std::set<std::string> seen;
  while (!stack.empty()) {
    auto [d, where] = std::move(stack.back());
    stack.pop_back();
    const std::string digest = d["digest"];
    if (!seen.insert(digest).second) continue;
    const fs::path p =
        dir / "blobs" / digest.substr(0, digest.find(':')) / digest.substr(digest.find(':') + 1);
    if (!present.contains(digest)) {
      if (options.require_complete) problem(fmt::format("{}: blob {} is missing", where, digest));
      continue;
    }
    if (static_cast<long long>(fs::file_size(p)) != d["size"].get<long long>()) {
      problem(fmt::format("{}: blob {} has {} bytes, the descriptor says {}", where, digest,
                          fs::file_size(p), d["size"].get<long long>()));
    }
    const std::string mt = d["mediaType"];
    if (!is_manifest(mt) && !is_index(mt)) continue;
    const json doc = json::parse(slurp(p).value_or(""), nullptr, false);
    if (!doc.is_object() || doc.value("schemaVersion", 0) != 2) {
      problem(fmt::format("{}: {} is not a schemaVersion 2 document", where, digest));
      continue;
    }
    const auto push = [&](const json& child, const std::string& child_where) {
      std::string why;
      if (!valid_descriptor(child, why)) {
        problem(child_where + ": " + why);
      } else {
        stack.emplace_back(child, child_where);
      }
    };
    if (is_manifest(mt)) {
      if (!doc.contains("config")) problem(fmt::format("{}: {} has no config", where, digest));
      if (!doc.contains("layers") || !doc["layers"].is_array()) {
        problem(fmt::format("{}: {} has no layers list", where, digest));
        continue;
      }
      push(doc["config"], fmt::format("{} → {} config", where, digest.substr(0, 19)));
      for (std::size_t i = 0; i < doc["layers"].size(); ++i) {
        push(doc["layers"][i], fmt::format("{} → {} layers[{}]", where, digest.substr(0, 19), i));
      }
    } else {
      if (!doc.contains("manifests") || !doc["manifests"].is_array()) {
        problem(fmt::format("{}: {} has no manifests list", where, digest));
        continue;
      }
      for (std::size_t i = 0; i < doc["manifests"].size(); ++i) {
        // Children of an index may be missing (a single platform saved).
        const json& child = doc["manifests"][i];
        if (child.is_object() && child.contains("digest") && child["digest"].is_string() &&
            !present.contains(child["digest"].get<std::string>())) {
          continue;
        }
        push(child, fmt::format("{} → {} manifests[{}]", where, digest.substr(0, 19), i));
      }
    }
  }
  return problems;
}

}  // namespace stowage::oci::testing
