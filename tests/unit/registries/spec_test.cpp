#include "registries/spec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace stowage::registries {
namespace {

NamedRegistryConfig rc(const std::string& name, int priority, const std::string& spec_json) {
  NamedRegistryConfig out;
  out.name = name;
  out.spec = spec_from_json(nlohmann::json::parse(spec_json));
  out.spec.priority = priority;
  return out;
}

TEST(RegistryConfigSpec, ReadsYamlAsUsersWriteIt) {
  const auto got = read_registry_configs(R"(
apiVersion: stowage.io/v1alpha1
kind: RegistryConfig
metadata: {name: classic}
spec:
  priority: 5
  unqualifiedSearchRegistries: [registry.redhat.io, quay.io]
  insecureRegistries: ["localhost:5000"]
  shortNameMode: enforcing
  registries:
  - prefix: quay.io/team
    location: quay.io/team
    mirrorByDigestOnly: true
    mirrors: [{location: "mirror.corp:5000/team", insecure: true}]
  aliases: {nginx: quay.io/nginx}
---
apiVersion: stowage.io/v1alpha1
kind: RegistryConfig
metadata: {name: second}
)",
                                         "f.yaml");
  ASSERT_EQ(got.size(), 2u);
  const auto& s = got[0].spec;
  EXPECT_EQ(got[0].name, "classic");
  EXPECT_EQ(s.priority, 5);
  EXPECT_EQ(*s.unqualified_search_registries,
            (std::vector<std::string>{"registry.redhat.io", "quay.io"}));
  EXPECT_EQ(s.insecure_registries, std::vector<std::string>{"localhost:5000"});
  EXPECT_EQ(*s.short_name_mode, "enforcing");
  ASSERT_EQ(s.registries.size(), 1u);
  EXPECT_TRUE(s.registries[0].mirror_by_digest_only);
  EXPECT_TRUE(s.registries[0].mirrors[0].insecure);
  EXPECT_EQ(s.aliases.at("nginx"), "quay.io/nginx");
  EXPECT_EQ(got[1].name, "second");
  EXPECT_EQ(got[1].spec, RegistryConfigSpec{});
}

TEST(RegistryConfigSpec, JsonAndYamlDecodeTheSame) {
  const auto y = read_registry_configs(
      "apiVersion: stowage.io/v1alpha1\nkind: RegistryConfig\nmetadata: {name: a}\nspec:\n"
      "  blockedRegistries: [docker.io]\n  priority: -3\n",
      "y");
  const auto j = read_registry_configs(
      R"({"apiVersion":"stowage.io/v1alpha1","kind":"RegistryConfig","metadata":{"name":"a"},)"
      R"("spec":{"blockedRegistries":["docker.io"],"priority":-3}})",
      "j");
  ASSERT_EQ(y.size(), 1u);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(y[0].spec, j[0].spec);
  EXPECT_EQ(y[0].spec.priority, -3);
}

TEST(RegistryConfigSpec, ReadsAList) {
  const auto got = read_registry_configs(
      "apiVersion: v1\nkind: List\nitems:\n- apiVersion: stowage.io/v1alpha1\n"
      "  kind: RegistryConfig\n  metadata: {name: a}\n",
      "l");
  ASSERT_EQ(got.size(), 1u);
}

TEST(RegistryConfigSpec, QuotedYamlScalarsStayStrings) {
  const auto got = read_registry_configs(
      "apiVersion: stowage.io/v1alpha1\nkind: RegistryConfig\nmetadata: {name: a}\nspec:\n"
      "  aliases: {\"true\": \"quay.io/x\"}\n  unqualifiedSearchRegistries: [\"5000\"]\n",
      "q");
  EXPECT_EQ(got[0].spec.aliases.count("true"), 1u);
  EXPECT_EQ((*got[0].spec.unqualified_search_registries)[0], "5000");
}

TEST(RegistryConfigSpec, RefusesBadInputNamingTheField) {
  const struct {
    const char* yaml;
    const char* error;
  } cases[] = {
      {"kind: ImageCache\napiVersion: stowage.io/v1alpha1\nmetadata: {name: a}\n",
       "f: expected kind RegistryConfig, found \"ImageCache\""},
      {"kind: RegistryConfig\napiVersion: stowage.io/v1\nmetadata: {name: a}\n",
       "f: RegistryConfig apiVersion must be stowage.io/v1alpha1, found \"stowage.io/v1\""},
      {"kind: RegistryConfig\napiVersion: stowage.io/v1alpha1\n",
       "f: RegistryConfig without metadata.name"},
      {"kind: RegistryConfig\napiVersion: stowage.io/v1alpha1\nmetadata: {name: a}\nspec:\n"
       "  registries:\n  - location: a.com\n    mirrors:\n    - location: m.com\n"
       "      pullFromMirror: 3\n",
       "RegistryConfig \"a\": spec.registries[0].mirrors[0].pullFromMirror: must be a string"},
      {"kind: RegistryConfig\napiVersion: stowage.io/v1alpha1\nmetadata: {name: a}\nspec:\n"
       "  registries:\n  - location: a.com\n    pullFromMirror: all\n",
       "RegistryConfig \"a\": spec.registries[0].pullFromMirror: pullFromMirror is allowed only "
       "on mirrors"},
      {"kind: RegistryConfig\napiVersion: stowage.io/v1alpha1\nmetadata: {name: a}\nspec:\n"
       "  insecureRegistry: [a.com]\n",
       "RegistryConfig \"a\": spec.insecureRegistry: unknown field"},
      {"kind: RegistryConfig\napiVersion: stowage.io/v1alpha1\nmetadata: {name: a}\nspec:\n"
       "  shortNameMode: strict\n",
       "RegistryConfig \"a\": spec.shortNameMode: Unsupported value: \"strict\": supported "
       "values: \"enforcing\", \"permissive\", \"disabled\""},
      {"kind: RegistryConfig\napiVersion: stowage.io/v1alpha1\nmetadata: {name: a}\nspec:\n"
       "  delivery: Agent\n  machineConfigPools: [worker]\n",
       "RegistryConfig \"a\": spec.machineConfigPools: Forbidden: only allowed with delivery Auto "
       "or MachineConfig"},
      {"kind: RegistryConfig\napiVersion: stowage.io/v1alpha1\nmetadata: {name: a}\nspec:\n"
       "  priority: high\n",
       "RegistryConfig \"a\": spec.priority: must be an integer"},
      {"kind: RegistryConfig\napiVersion: stowage.io/v1alpha1\nmetadata: {name: a}\nspec:\n"
       "  insecureRegistries: a.com\n",
       "RegistryConfig \"a\": spec.insecureRegistries: must be a list of strings"},
      {"kind: [unclosed\n", nullptr},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.yaml);
    try {
      read_registry_configs(c.yaml, "f");
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument);
      if (c.error != nullptr) {
        EXPECT_EQ(std::string(e.what()), c.error);
      }
    }
  }
}

TEST(RegistryConfigSpec, ShorthandsExpandToRegistryTables) {
  const Config c = spec_to_config(rc("a", 0, R"({
    "insecureRegistries": ["localhost:5000", "both.com", "*.dev.corp"],
    "blockedRegistries": ["docker.io", "both.com"],
    "registries": [{"location": "both.com", "mirrors": [{"location": "m.com"}]}]})"));
  ASSERT_EQ(c.registries.size(), 4u);
  EXPECT_EQ(c.registries[0].prefix, "*.dev.corp");
  EXPECT_EQ(c.registries[0].location, "");
  EXPECT_TRUE(c.registries[0].insecure);
  EXPECT_EQ(c.registries[1].prefix, "both.com");  // flags land on the explicit table
  EXPECT_TRUE(c.registries[1].insecure);
  EXPECT_TRUE(c.registries[1].blocked);
  EXPECT_EQ(c.registries[1].mirrors.size(), 1u);
  EXPECT_EQ(c.registries[2].prefix, "docker.io");
  EXPECT_TRUE(c.registries[2].blocked);
  EXPECT_EQ(c.registries[3].prefix, "localhost:5000");
}

TEST(RegistryConfigSpec, SpecValidationUsesContainersImageText) {
  try {
    spec_to_config(rc("bad", 0, R"({"registries": [{"location": "https://quay.io"}]})"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "RegistryConfig \"bad\": invalid location 'https://quay.io': URI schemes are not "
              "supported");
  }
  try {
    spec_to_config(rc("bad", 0, R"({"unqualifiedSearchRegistries": ["quay.io/ns"]})"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "RegistryConfig \"bad\": Invalid unqualified-search-registries entry \"quay.io/ns\"");
  }
}

TEST(RegistryConfigMerge, HigherPriorityWinsPerPrefix) {
  const Config c = merge_registry_configs({
      rc("low", 0, R"({"unqualifiedSearchRegistries": ["a.com"],
                      "registries": [{"location": "quay.io", "mirrors": [{"location": "m1.com"}]},
                                     {"location": "only-low.com"}],
                      "aliases": {"x": "a.com/x", "y": "a.com/y"}})"),
      rc("high", 10,
         R"({"registries": [{"location": "quay.io", "mirrors": [{"location": "m2.com"}]}],
                        "aliases": {"x": "b.com/x"}})"),
  });
  ASSERT_EQ(c.registries.size(), 2u);
  EXPECT_EQ(c.registries[0].prefix, "only-low.com");
  EXPECT_EQ(c.registries[1].mirrors[0].location, "m2.com");  // whole table from "high"
  EXPECT_EQ(*c.unqualified_search_registries, std::vector<std::string>{"a.com"});  // high unset
  EXPECT_EQ(c.aliases.at("x"), "b.com/x");
  EXPECT_EQ(c.aliases.at("y"), "a.com/y");
}

TEST(RegistryConfigMerge, PresentSearchListReplacesEvenWhenEmpty) {
  const Config c = merge_registry_configs({
      rc("low", 0, R"({"unqualifiedSearchRegistries": ["a.com"], "shortNameMode": "enforcing"})"),
      rc("high", 1, R"({"unqualifiedSearchRegistries": []})"),
  });
  EXPECT_TRUE(c.unqualified_search_registries->empty());
  EXPECT_EQ(c.short_name_mode, "enforcing");
}

TEST(RegistryConfigMerge, TiesGoToTheNameThatSortsFirst) {
  const auto a = rc("aaa", 3, R"({"registries": [{"location": "q.io", "insecure": true}]})");
  const auto b = rc("bbb", 3, R"({"registries": [{"location": "q.io", "blocked": true}]})");
  for (const auto& order : {std::vector{a, b}, std::vector{b, a}}) {
    const Config c = merge_registry_configs(order);
    ASSERT_EQ(c.registries.size(), 1u);
    EXPECT_TRUE(c.registries[0].insecure);
    EXPECT_FALSE(c.registries[0].blocked);
  }
}

TEST(RegistryConfigMerge, ConflictAcrossConfigsIsReported) {
  try {
    merge_registry_configs({
        rc("one", 0,
           R"({"registries": [{"prefix": "q.io/a", "location": "q.io", "insecure": true}]})"),
        rc("two", 0, R"({"registries": [{"prefix": "q.io/b", "location": "q.io"}]})"),
    });
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "merging RegistryConfigs one, two: registry 'q.io' is defined multiple times with "
              "conflicting 'insecure' setting");
  }
}

TEST(RegistryConfigMerge, EmptyInputGivesEmptyConfig) {
  EXPECT_EQ(merge_registry_configs({}), Config{});
}

TEST(RegistryConfigMerge, MatchingBySelector) {
  const auto all = std::vector{
      rc("everyone", 0, "{}"),
      rc("workers", 0,
         R"({"nodeSelector": {"matchLabels": {"node-role.kubernetes.io/worker": ""}}})"),
      rc("gpu", 0,
         R"({"nodeSelector": {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}})"),
  };
  auto names = [](const std::vector<NamedRegistryConfig>& v) {
    std::vector<std::string> out;
    for (const auto& r : v) out.push_back(r.name);
    return out;
  };
  EXPECT_EQ(names(matching_configs(all, {})), std::vector<std::string>{"everyone"});
  EXPECT_EQ(names(matching_configs(all, {{"node-role.kubernetes.io/worker", ""}, {"gpu", "1"}})),
            (std::vector<std::string>{"everyone", "workers", "gpu"}));
}

}  // namespace
}  // namespace stowage::registries

namespace stowage::registries {
namespace {

TEST(RegistryConfigSpec, RefusesHostileYaml) {
  const std::string head =
      "apiVersion: stowage.io/v1alpha1\nkind: RegistryConfig\nmetadata: {name: a}\n";
  // Nested anchors: each level doubles; expanded it would be 2^40 nodes.
  std::string bomb = head + "spec:\n  aliases:\n    l0: &l0 [x, x]\n";
  for (int i = 1; i <= 40; ++i) {
    bomb += "    l" + std::to_string(i) + ": &l" + std::to_string(i) + " [*l" +
            std::to_string(i - 1) + ", *l" + std::to_string(i - 1) + "]\n";
  }
  const struct {
    const char* name;
    std::string text;
    const char* needle;
  } cases[] = {
      {"alias bomb", bomb, "after expanding aliases"},
      {"deep flow nesting", head + "spec: " + std::string(10'000, '[') + std::string(10'000, ']'),
       "nested deeper than 64 levels"},
      {"deep JSON", std::string(10'000, '[') + std::string(10'000, ']'), "nested deeper than 64"},
      {"non-scalar key", head + "spec:\n  ? [a, b]\n  : 1\n", "a mapping key must be a string"},
      {"too large", head + "# " + std::string(9u << 20, 'x') + "\n", "larger than 8 MiB"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    try {
      read_registry_configs(c.text, "f");
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace stowage::registries
