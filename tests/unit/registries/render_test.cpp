#include "registries/render.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace stowage::registries {
namespace {

Config conf(const std::string& toml) {
  return load_text(toml, "t", FileRole::kMain);
}

constexpr const char* kRich =
    "unqualified-search-registries = [\"registry.redhat.io\", \"quay.io\"]\n"
    "short-name-mode = \"enforcing\"\n"
    "credential-helpers = [\"containers-auth.json\", \"ecr-login\"]\n"
    "[[registry]]\nprefix = \"docker.io/library\"\nlocation = \"docker.io/library\"\n"
    "[[registry.mirror]]\nlocation = \"mirror.corp:5000/library\"\ninsecure = true\n"
    "pull-from-mirror = \"digest-only\"\n"
    "[[registry]]\nlocation = \"localhost:5000\"\ninsecure = true\n"
    "[[registry]]\nprefix = \"*.dev.corp\"\nblocked = true\n"
    "[[registry]]\nprefix = \"quay.io/team\"\nlocation = \"quay.io/team\"\n"
    "mirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.corp/team\"\n"
    "[aliases]\n\"nginx\" = \"quay.io/nginx\"\n\"weird\" = \"\"\n";

TEST(Render, V2RoundTripsThroughTheParser) {
  const Config c = conf(kRich);
  for (const bool full : {false, true}) {
    SCOPED_TRACE(full ? "full" : "drop-in");
    const std::string text = render_v2(c, full);
    const Config back = load_text(text, "rendered", full ? FileRole::kMain : FileRole::kDropIn);
    EXPECT_EQ(back, c) << text;
  }
}

TEST(Render, V2DropInOmitsUnsetKeysFullFileSaysThem) {
  const Config c = conf("[[registry]]\nlocation = \"a.com\"\ninsecure = true\n");
  const std::string dropin = render_v2(c, false);
  EXPECT_EQ(dropin.find("unqualified-search-registries"), std::string::npos);
  EXPECT_NE(render_v2(c, true).find("unqualified-search-registries = []"), std::string::npos);
  // A drop-in that sets an empty search list must say so: it clears earlier lists.
  EXPECT_NE(render_v2(conf("unqualified-search-registries = []\n"), false)
                .find("unqualified-search-registries = []"),
            std::string::npos);
}

TEST(Render, V2ExactBytes) {
  const Config c = conf(
      "unqualified-search-registries = [\"quay.io\"]\n"
      "[[registry]]\nlocation = \"localhost:5000\"\ninsecure = true\n"
      "[[registry]]\nlocation = \"docker.io/library\"\n[[registry.mirror]]\nlocation = "
      "\"m:5000/library\"\n"
      "pull-from-mirror = \"tag-only\"\n");
  EXPECT_EQ(render_v2(c, false),
            "# Rendered by Stowage from RegistryConfig resources. Do not edit: changes are "
            "replaced.\n"
            "unqualified-search-registries = [\"quay.io\"]\n"
            "\n[[registry]]\nprefix = \"docker.io/library\"\nlocation = \"docker.io/library\"\n"
            "\n  [[registry.mirror]]\n  location = \"m:5000/library\"\n"
            "  pull-from-mirror = \"tag-only\"\n"
            "\n[[registry]]\nprefix = \"localhost:5000\"\nlocation = \"localhost:5000\"\n"
            "insecure = true\n");
}

TEST(Render, DeterministicHash) {
  const Rendering a = render(conf(kRich), RenderFormat::kV2DropIn);
  const Rendering b = render(conf(kRich), RenderFormat::kV2DropIn);
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.hash.size(), 64u);
  ASSERT_EQ(a.files.size(), 1u);
  EXPECT_EQ(a.files[0].path, "99-stowage.conf");
  const Rendering c = render(conf("[[registry]]\nlocation = \"x.com\"\n"), RenderFormat::kV2DropIn);
  EXPECT_NE(a.hash, c.hash);
  EXPECT_NE(render(conf(kRich), RenderFormat::kV2Full).hash, a.hash);
}

TEST(Render, V1ClassicSetupRoundTrips) {
  const Config c = conf(
      "unqualified-search-registries = [\"registry.redhat.io\", \"quay.io\"]\n"
      "[[registry]]\nlocation = \"localhost:5000\"\ninsecure = true\n"
      "[[registry]]\nlocation = \"bad.com\"\nblocked = true\n");
  const Rendering r = render(c, RenderFormat::kV1);
  ASSERT_EQ(r.files.size(), 1u);
  EXPECT_NE(r.files[0].content.find("[registries.search]\nregistries = [\"registry.redhat.io\", "
                                    "\"quay.io\"]"),
            std::string::npos);
  EXPECT_NE(r.files[0].content.find("[registries.insecure]\nregistries = [\"localhost:5000\"]"),
            std::string::npos);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("v5.40"), std::string::npos);
  // Parsing the v1 output gives back the same model.
  EXPECT_EQ(load_text(r.files[0].content, "v1", FileRole::kMain), c);
}

TEST(Render, V1RefusesWhatItCannotExpressNamingTheField) {
  const struct {
    const char* toml;
    const char* error;
  } cases[] = {
      {"short-name-mode = \"enforcing\"\n",
       "cannot render v1: short-name-mode (spec.shortNameMode) has no v1 form"},
      {"[aliases]\n\"a\" = \"q.io/a\"\n",
       "cannot render v1: aliases (spec.aliases) have no v1 form"},
      {"[[registry]]\nlocation = \"a.com\"\n[[registry.mirror]]\nlocation = \"m.com\"\n",
       "cannot render v1: [[registry]] \"a.com\": mirrors (spec.registries[].mirrors) have no v1 "
       "form"},
      {"[[registry]]\nprefix = \"a.com/x\"\nlocation = \"b.com/x\"\ninsecure = true\n",
       "cannot render v1: [[registry]] \"a.com/x\": a prefix that differs from its location "
       "(spec.registries[].prefix) has no v1 form"},
      {"[[registry]]\nlocation = \"a.com\"\nmirror-by-digest-only = true\n",
       "cannot render v1: [[registry]] \"a.com\": mirror-by-digest-only "
       "(spec.registries[].mirrorByDigestOnly) has no v1 form"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.toml);
    try {
      render(conf(c.toml), RenderFormat::kV1);
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), c.error);
    }
  }
}

TEST(Render, ContainerdHostsAndWarnings) {
  const Rendering r = render(conf(kRich), RenderFormat::kContainerd);
  ASSERT_EQ(r.files.size(), 3u);
  EXPECT_EQ(r.files[0].path, "docker.io/hosts.toml");
  EXPECT_EQ(r.files[1].path, "localhost:5000/hosts.toml");
  EXPECT_EQ(r.files[2].path, "quay.io/hosts.toml");
  const std::string& hub = r.files[0].content;
  EXPECT_NE(hub.find("server = \"https://registry-1.docker.io\""), std::string::npos);
  // Insecure mirror: https without verification first, then plain http.
  const auto https = hub.find("[host.\"https://mirror.corp:5000\"]");
  const auto http = hub.find("[host.\"http://mirror.corp:5000\"]");
  ASSERT_NE(https, std::string::npos);
  ASSERT_NE(http, std::string::npos);
  EXPECT_LT(https, http);
  EXPECT_NE(hub.find("skip_verify = true"), std::string::npos);
  EXPECT_NE(r.files[1].content.find("server = \"http://localhost:5000\""), std::string::npos);
  auto warned = [&](const std::string& needle) {
    for (const auto& w : r.warnings) {
      if (w.find(needle) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(warned("unqualified-search-registries"));
  EXPECT_TRUE(warned("[aliases]"));
  EXPECT_TRUE(warned("short-name-mode"));
  EXPECT_TRUE(warned("wildcard prefix \"*.dev.corp\""));
  EXPECT_TRUE(warned("pull-from-mirror \"digest-only\""));
  EXPECT_TRUE(warned("mirror-by-digest-only for \"quay.io/team\""));
  EXPECT_TRUE(warned("\"quay.io/team\" applies to all of \"quay.io\""));
}

TEST(Render, ContainerdBlockedIsAWarning) {
  const Rendering r = render(conf("[[registry]]\nlocation = \"docker.io\"\nblocked = true\n"),
                             RenderFormat::kContainerd);
  EXPECT_TRUE(r.files.empty());
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("blocked"), std::string::npos);
}

TEST(Render, TomlQuoteEscapes) {
  EXPECT_EQ(toml_quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST(Render, ParsesFormatNames) {
  EXPECT_EQ(parse_render_format("v2"), RenderFormat::kV2DropIn);
  EXPECT_EQ(parse_render_format("v2-full"), RenderFormat::kV2Full);
  EXPECT_EQ(parse_render_format("v1"), RenderFormat::kV1);
  EXPECT_EQ(parse_render_format("containerd"), RenderFormat::kContainerd);
  EXPECT_THROW(parse_render_format("v3"), Error);
}

}  // namespace
}  // namespace stowage::registries
