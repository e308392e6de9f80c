// The CRDs under crds/ checked against the C++ types and the docs, without a server: every field
// is described, enums and defaults agree with libs/api, list-map keys are required, and
// docs/api.md lists exactly the fields each CRD has. tests/integration/crds checks them against a
// real kube-apiserver.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "api/image_cache.h"
#include "api/node_cache.h"
#include "api/registry_config.h"
#include "base/error.h"
#include "yaml_json.h"

namespace stowage::api {
namespace {

using nlohmann::json;

json load_crd(const std::string& plural) {
  const auto docs =
      testing::load_yaml_file(testing::source_path("crds/stowage.io_" + plural + ".yaml"));
  EXPECT_EQ(docs.size(), 1u);
  return docs.at(0);
}

const json& schema(const json& crd) {
  return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
}

// The schema at a dotted path ("spec.export.fileName"); array items are stepped through.
json at(const json& crd, const std::string& path) {
  json node = schema(crd);
  std::stringstream in(path);
  std::string part;
  while (std::getline(in, part, '.')) {
    while (node.value("type", "") == "array") node = node["items"];
    node = node["properties"][part];
  }
  return node;
}

// Every property's dotted path, depth first; `skip_children_of` names fields documented as a
// whole (metav1.LabelSelector, metav1.Condition).
void collect(const json& node, const std::string& path, std::vector<std::string>& out,
             const std::set<std::string>& skip_children_of) {
  const json* n = &node;
  while (n->value("type", "") == "array") n = &(*n)["items"];
  if (!n->contains("properties")) return;
  for (const auto& [name, child] : (*n)["properties"].items()) {
    const std::string p = path.empty() ? name : path + "." + name;
    out.push_back(p);
    if (!skip_children_of.contains(name)) collect(child, p, out, skip_children_of);
  }
}

std::vector<std::string> paths(const json& crd, const std::set<std::string>& skip = {}) {
  std::vector<std::string> out;
  collect(schema(crd), "", out, skip);
  return out;
}

std::vector<std::string> enum_of(const json& crd, const std::string& path) {
  return at(crd, path)["enum"].get<std::vector<std::string>>();
}

TEST(Crds, NamesScopesAndCategories) {
  const struct {
    const char* plural;
    const char* kind;
    const char* scope;
    const char* short_name;
  } want[] = {{"registryconfigs", "RegistryConfig", "Cluster", "regcfg"},
              {"imagecaches", "ImageCache", "Namespaced", "ic"},
              {"nodecaches", "NodeCache", "Cluster", "nc"}};
  for (const auto& w : want) {
    SCOPED_TRACE(w.plural);
    const json crd = load_crd(w.plural);
    EXPECT_EQ(crd["metadata"]["name"], std::string(w.plural) + ".stowage.io");
    EXPECT_EQ(crd["spec"]["group"], "stowage.io");
    EXPECT_EQ(crd["spec"]["scope"], w.scope);
    EXPECT_EQ(crd["spec"]["names"]["kind"], w.kind);
    EXPECT_EQ(crd["spec"]["names"]["shortNames"], json::array({w.short_name}));
    EXPECT_EQ(crd["spec"]["names"]["categories"], json::array({"stowage"}));
    const json& version = crd["spec"]["versions"][0];
    EXPECT_EQ(version["name"], "v1alpha1");
    EXPECT_EQ(version["subresources"], json({{"status", json::object()}}));
    EXPECT_GE(version["additionalPrinterColumns"].size(), 4u);
  }
}

TEST(Crds, EveryFieldHasADescription) {
  for (const char* plural : {"registryconfigs", "imagecaches", "nodecaches"}) {
    const json crd = load_crd(plural);
    for (const auto& p : paths(crd)) {
      if (p == "metadata") continue;  // ObjectMeta: kubectl explain knows it
      EXPECT_FALSE(at(crd, p).value("description", "").empty()) << plural << ": " << p;
    }
  }
}

// Keys of a list-map must be required (or defaulted), else the API server refuses the CRD.
void check_list_maps(const json& node, const std::string& path) {
  if (node.value("x-kubernetes-list-type", "") == "map") {
    const auto required = node["items"].value("required", std::vector<std::string>{});
    for (const auto& key : node["x-kubernetes-list-map-keys"]) {
      EXPECT_THAT(required, ::testing::Contains(key.get<std::string>())) << path;
    }
  }
  if (node.contains("items")) check_list_maps(node["items"], path + "[]");
  if (node.contains("properties")) {
    for (const auto& [k, v] : node["properties"].items()) check_list_maps(v, path + "." + k);
  }
}

TEST(Crds, ListMapKeysAreRequired) {
  for (const char* plural : {"registryconfigs", "imagecaches", "nodecaches"}) {
    check_list_maps(schema(load_crd(plural)), plural);
  }
}

TEST(Crds, EnumsAreTheCxxNames) {
  const json ic = load_crd("imagecaches");
  const json nc = load_crd("nodecaches");
  const std::vector<std::string> prune = {std::string(to_string(PrunePolicy::kOnRemoval)),
                                          std::string(to_string(PrunePolicy::kNever))};
  const std::vector<std::string> formats = {std::string(to_string(ExportFormat::kDockerArchive)),
                                            std::string(to_string(ExportFormat::kOciArchive))};
  EXPECT_EQ(enum_of(ic, "spec.prune"), prune);
  EXPECT_EQ(enum_of(nc, "spec.prune.policy"), prune);
  EXPECT_EQ(enum_of(ic, "spec.export.format"), formats);
  EXPECT_EQ(enum_of(nc, "spec.exports.format"), formats);
  EXPECT_EQ(enum_of(nc, "status.exports.format"), formats);
  EXPECT_EQ(enum_of(nc, "status.registries.state"),
            (std::vector<std::string>{std::string(to_string(RegistriesState::kApplied)),
                                      std::string(to_string(RegistriesState::kFailed))}));
  std::vector<std::string> image_states;
  for (auto s :
       {ImageState::kPresent, ImageState::kPulling, ImageState::kFailed, ImageState::kRemoved}) {
    image_states.emplace_back(to_string(s));
  }
  EXPECT_EQ(enum_of(nc, "status.images.state"), image_states);
  std::vector<std::string> export_states;
  for (auto s : {ExportState::kPending, ExportState::kWritten, ExportState::kFailed}) {
    export_states.emplace_back(to_string(s));
  }
  EXPECT_EQ(enum_of(nc, "status.exports.state"), export_states);
  for (const char* plural : {"registryconfigs", "imagecaches", "nodecaches"}) {
    EXPECT_EQ(enum_of(load_crd(plural), "status.conditions.status"),
              (std::vector<std::string>{"True", "False", "Unknown"}));
  }
}

TEST(Crds, RegistryConfigEnumsAreWhatLibsRegistriesAccepts) {
  const json rc = load_crd("registryconfigs");
  for (const char* field : {"delivery", "shortNameMode"}) {
    for (const auto& value : enum_of(rc, std::string("spec.") + field)) {
      EXPECT_NO_THROW(registries::spec_from_json({{field, value}})) << field << "=" << value;
    }
    EXPECT_THROW(registries::spec_from_json({{field, "Other"}}), Error) << field;
  }
  for (const auto& value : enum_of(rc, "spec.registries.mirrors.pullFromMirror")) {
    registries::NamedRegistryConfig n{
        "a", registries::spec_from_json(
                 {{"registries",
                   json::array({{{"location", "q.io/a"},
                                 {"mirrors", json::array({{{"location", "m.io/a"},
                                                           {"pullFromMirror", value}}})}}})}})};
    EXPECT_NO_THROW(registries::spec_to_config(n)) << value;
  }
}

TEST(Crds, DefaultsAreTheCxxDefaults) {
  const json rc = load_crd("registryconfigs");
  const json ic = load_crd("imagecaches");
  const json nc = load_crd("nodecaches");
  EXPECT_EQ(at(rc, "spec.delivery")["default"], registries::RegistryConfigSpec{}.delivery);
  EXPECT_EQ(at(rc, "spec.priority")["default"], registries::RegistryConfigSpec{}.priority);
  const ImageCacheSpec ics;
  EXPECT_EQ(at(ic, "spec.refreshInterval")["default"], format_interval(ics.refresh_interval));
  EXPECT_EQ(at(ic, "spec.prune")["default"], to_string(ics.prune));
  EXPECT_EQ(at(ic, "spec.export.format")["default"], to_string(ImageExport{}.format));
  EXPECT_EQ(at(nc, "spec.prune.policy")["default"], to_string(NodePrune{}.policy));
}

TEST(Crds, RegistryConfigSpecFieldsAreTheParsersFields) {
  // Every spec field of the CRD is one libs/registries decodes (it refuses unknown fields).
  const json rc = load_crd("registryconfigs");
  const json sample = {
      {"nodeSelector", {{"matchLabels", {{"a", "b"}}}}},
      {"priority", 1},
      {"unqualifiedSearchRegistries", {"quay.io"}},
      {"insecureRegistries", {"localhost:5000"}},
      {"blockedRegistries", {"docker.io"}},
      {"shortNameMode", "enforcing"},
      {"registries", json::array({{{"prefix", "quay.io/a"},
                                   {"location", "quay.io/a"},
                                   {"insecure", false},
                                   {"blocked", false},
                                   {"mirrorByDigestOnly", false},
                                   {"mirrors", json::array({{{"location", "m.io/a"},
                                                             {"insecure", false},
                                                             {"pullFromMirror", "all"}}})}}})},
      {"aliases", {{"nginx", "quay.io/nginx"}}},
      {"delivery", "Auto"},
      {"machineConfigPools", {"worker"}},
  };
  std::set<std::string> crd_fields;
  for (const auto& p : paths(rc, {"nodeSelector"})) {
    if (p.starts_with("spec.")) crd_fields.insert(p.substr(5));
  }
  std::set<std::string> sample_fields;
  for (const auto& [k, v] : sample.items()) {
    sample_fields.insert(k);
    if (k == "registries") {
      for (const auto& [rk, rv] : v[0].items()) {
        sample_fields.insert("registries." + rk);
        if (rk == "mirrors") {
          for (const auto& [mk, mv] : rv[0].items())
            sample_fields.insert("registries.mirrors." + mk);
        }
      }
    }
  }
  // pullFromMirror on a registry is declared only to be refused with a clear message.
  sample_fields.insert("registries.pullFromMirror");
  EXPECT_EQ(crd_fields, sample_fields);
  EXPECT_NO_THROW(registries::spec_from_json(sample));
  EXPECT_THROW(
      registries::spec_from_json(
          {{"registries", json::array({{{"location", "q.io"}, {"pullFromMirror", "all"}}})}}),
      Error);
}

// The section of docs/api.md about one kind: from "## <Kind>" to the next "## ".
std::string doc_section(const std::string& kind) {
  std::ifstream in(testing::source_path("docs/api.md"));
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const auto start = doc.find("\n## " + kind + "\n");
  if (start == std::string::npos) return {};
  const auto end = doc.find("\n## ", start + 4);
  return doc.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// Field paths in the first column of a section's tables: "| `spec.export.fileName` | ...".
std::set<std::string> documented_paths(const std::string& section) {
  std::set<std::string> out;
  std::stringstream in(section);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("| `")) continue;
    const auto end = line.find('`', 3);
    if (end != std::string::npos) out.insert(line.substr(3, end - 3));
  }
  return out;
}

TEST(Docs, ApiReferenceListsExactlyTheCrdFields) {
  const struct {
    const char* plural;
    const char* kind;
  } kinds[] = {{"registryconfigs", "RegistryConfig"},
               {"imagecaches", "ImageCache"},
               {"nodecaches", "NodeCache"}};
  for (const auto& k : kinds) {
    SCOPED_TRACE(k.kind);
    const std::string section = doc_section(k.kind);
    ASSERT_FALSE(section.empty()) << "docs/api.md has no \"## " << k.kind << "\" section";
    std::set<std::string> want;
    for (const auto& p : paths(load_crd(k.plural), {"nodeSelector", "conditions"})) {
      if (p.starts_with("spec.") || p.starts_with("status.")) want.insert(p);
    }
    EXPECT_EQ(documented_paths(section), want);
  }
}

}  // namespace
}  // namespace stowage::api
