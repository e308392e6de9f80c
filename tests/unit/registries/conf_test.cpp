#include "registries/conf.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/files.h"

namespace stowage::registries {
namespace {

struct InvalidCase {
  const char* name;
  const char* toml;
  const char* error;  // exact containers/image text (unwrapped)
};

// Every validation rule, with the exact message containers/image prints.
const InvalidCase kInvalid[] = {
    {"scheme in location", "[[registry]]\nlocation = \"http://foo.com\"\n",
     "invalid location 'http://foo.com': URI schemes are not supported"},
    {"https scheme with trailing slash", "[[registry]]\nlocation = \"https://foo.com/\"\n",
     "invalid location 'https://foo.com/': URI schemes are not supported"},
    {"scheme in prefix", "[[registry]]\nprefix = \"https://a.com\"\nlocation = \"a.com\"\n",
     "invalid location 'https://a.com': URI schemes are not supported"},
    {"scheme in mirror",
     "[[registry]]\nlocation = \"a.com\"\n[[registry.mirror]]\nlocation = \"http://m.com\"\n",
     "invalid location 'http://m.com': URI schemes are not supported"},
    {"scheme in search", "unqualified-search-registries = [\"https://quay.io\"]\n",
     "invalid location 'https://quay.io': URI schemes are not supported"},
    {"both unset", "[[registry]]\ninsecure = true\n",
     "invalid condition: both location and prefix are unset"},
    {"location unset, plain prefix", "[[registry]]\nprefix = \"foo.com\"\n",
     "invalid condition: location is unset and prefix is not in the format: *.example.com"},
    {"pull-from-mirror on registry",
     "[[registry]]\nlocation = \"a.com\"\npull-from-mirror = \"all\"\n",
     "pull-from-mirror must not be set for a non-mirror registry \"a.com\""},
    {"empty mirror location",
     "[[registry]]\nlocation = \"a.com\"\n[[registry.mirror]]\nlocation = \"\"\n",
     "invalid condition: mirror location is unset"},
    {"digest-only and pull-from-mirror",
     "[[registry]]\nlocation = \"a.com\"\nmirror-by-digest-only = true\n[[registry.mirror]]\n"
     "location = \"m.com\"\npull-from-mirror = \"all\"\n",
     "cannot set mirror usage mirror-by-digest-only for the registry (\"a.com\") and "
     "pull-from-mirror for per-mirror (\"m.com\") at the same time"},
    {"unknown pull-from-mirror",
     "[[registry]]\nlocation = \"a.com\"\n[[registry.mirror]]\nlocation = \"m.com\"\n"
     "pull-from-mirror = \"sometimes\"\n",
     "unsupported pull-from-mirror value \"sometimes\" for mirror \"m.com\""},
    {"conflicting insecure",
     "[[registry]]\nlocation = \"a.com\"\ninsecure = true\n[[registry]]\nprefix = \"a.com/b\"\n"
     "location = \"a.com\"\n",
     "registry 'a.com' is defined multiple times with conflicting 'insecure' setting"},
    {"conflicting blocked",
     "[[registry]]\nlocation = \"a.com\"\nblocked = true\n[[registry]]\nprefix = \"a.com/b\"\n"
     "location = \"a.com\"\n",
     "registry 'a.com' is defined multiple times with conflicting 'blocked' setting"},
    {"namespace in search", "unqualified-search-registries = [\"quay.io/ns\"]\n",
     "Invalid unqualified-search-registries entry \"quay.io/ns\""},
    {"bad short-name mode", "short-name-mode = \"bogus\"\n", "invalid short-name mode: \"bogus\""},
    {"wildcard prefix with path", "[[registry]]\nprefix = \"*.a.com/foo\"\n",
     "Wildcarded prefix should be in the format: *.example.com. Current prefix \"*.a.com/foo\" is "
     "incorrectly formatted"},
    {"wildcard prefix with port", "[[registry]]\nprefix = \"*.a.com:5000\"\n",
     "Wildcarded prefix should be in the format: *.example.com. Current prefix \"*.a.com:5000\" "
     "is incorrectly formatted"},
    {"wildcard in the middle (stricter than podman 4.3)",
     "[[registry]]\nprefix = \"foo.*.example.com\"\nlocation = \"foo.example.com\"\n",
     "Wildcarded prefix should be in the format: *.example.com. Current prefix "
     "\"foo.*.example.com\" is incorrectly formatted"},
    {"double wildcard", "[[registry]]\nprefix = \"**.example.com\"\nlocation = \"example.com\"\n",
     "Wildcarded prefix should be in the format: *.example.com. Current prefix \"**.example.com\" "
     "is incorrectly formatted"},
    {"wildcard as location (stricter)", "[[registry]]\nlocation = \"*.example.com\"\n",
     "invalid location '*.example.com': wildcards are only allowed as a leading \"*.\" in prefix"},
    {"digest in prefix (stricter)",
     "[[registry]]\nprefix = \"quay.io/a@sha256:1234\"\nlocation = \"quay.io/a\"\n",
     "invalid prefix 'quay.io/a@sha256:1234': a tag or digest is not allowed (it never matches)"},
    {"tag in location (stricter)", "[[registry]]\nlocation = \"quay.io/a:v1\"\n",
     "invalid prefix 'quay.io/a:v1': a tag or digest is not allowed (it never matches)"},
    {"mirrors under wildcard without location (stricter)",
     "[[registry]]\nprefix = \"*.a.com\"\n[[registry.mirror]]\nlocation = \"m.com\"\n",
     "invalid condition: mirrors are set for wildcarded prefix \"*.a.com\" without a location, so "
     "no reference can be rewritten to them"},
    {"alias key with registry", "[aliases]\n\"quay.io/x\" = \"quay.io/x\"\n",
     "validating short-name aliases: invalid short name \"quay.io/x\": must not contain registry"},
    {"alias key localhost", "[aliases]\n\"localhost/x\" = \"quay.io/x\"\n",
     "validating short-name aliases: invalid short name \"localhost/x\": must not contain "
     "registry"},
    {"alias key with tag", "[aliases]\n\"x:1\" = \"quay.io/x\"\n",
     "validating short-name aliases: invalid short name \"x:1\": must not contain tag"},
    {"alias key uppercase", "[aliases]\n\"X\" = \"quay.io/x\"\n",
     "validating short-name aliases: cannot parse short name: \"X\": repository name must be "
     "lowercase"},
    {"alias value without registry", "[aliases]\n\"x\" = \"nginx\"\n",
     "validating short-name aliases: invalid alias \"nginx\": must contain registry and "
     "repository"},
    {"alias value with tag", "[aliases]\n\"x\" = \"quay.io/x:1\"\n",
     "validating short-name aliases: invalid alias \"quay.io/x:1\": must not contain tag"},
    {"alias value with digest",
     "[aliases]\n\"x\" = "
     "\"quay.io/x@sha256:0123456789012345678901234567890123456789012345678901234567890123\"\n",
     "validating short-name aliases: invalid alias "
     "\"quay.io/x@sha256:0123456789012345678901234567890123456789012345678901234567890123\": "
     "must not contain digest"},
    {"two bad aliases reported together", "[aliases]\n\"a\" = \"nginx\"\n\"b:1\" = \"quay.io/b\"\n",
     "validating short-name aliases: invalid short name \"b:1\": must not contain tag\n: invalid "
     "alias \"nginx\": must contain registry and repository"},
    {"v1 and v2 mixed",
     "unqualified-search-registries = [\"a.com\"]\n[registries.search]\n"
     "registries = [\"b.com\"]\n",
     "mixing sysregistry v1/v2 is not supported"},
    {"v1 and v2 mixed with empty arrays (stricter than podman 4.3)",
     "unqualified-search-registries = []\n[registries.search]\nregistries = []\n",
     "mixing sysregistry v1/v2 is not supported"},
    {"v1 insecure with scheme", "[registries.insecure]\nregistries = [\"http://a.com\"]\n",
     "invalid location 'http://a.com': URI schemes are not supported"},
    {"type error", "[[registry]]\nlocation = \"a.com\"\ninsecure = \"yes\"\n",
     "toml: line 3 (last key \"registry.insecure\"): incompatible types: TOML value has type "
     "string; destination has type boolean"},
};

TEST(RegistriesConf, RefusesInvalidWithContainersImageText) {
  for (const auto& c : kInvalid) {
    SCOPED_TRACE(c.name);
    try {
      load_text(c.toml, "/etc/containers/registries.conf", FileRole::kMain);
      ADD_FAILURE() << "accepted: " << c.toml;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument);
      EXPECT_EQ(
          std::string(e.what()),
          std::string("loading registries configuration \"/etc/containers/registries.conf\": ") +
              c.error);
    }
  }
}

TEST(RegistriesConf, SyntaxErrorIsWrappedAndNamesTheLine) {
  try {
    load_text("a = 1\nunqualified-search-registries = [\"a.com\"\n", "x.conf", FileRole::kMain);
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_TRUE(msg.starts_with("loading registries configuration \"x.conf\": toml: line ")) << msg;
  }
}

TEST(RegistriesConf, DropInRefusesV1AndIsWrappedAsDropIn) {
  try {
    load_text("[registries.search]\nregistries = [\"a.com\"]\n", "/d/01.conf", FileRole::kDropIn);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "loading drop-in registries configuration \"/d/01.conf\": registry must be in v2 "
              "format but is in v1");
  }
}

TEST(RegistriesConf, NormalizesPrefixesAndSorts) {
  const Config c = load_text(
      "unqualified-search-registries = [\"quay.io/\", \"registry.redhat.io\"]\n"
      "[[registry]]\nlocation = \"z.com/\"\n"
      "[[registry]]\nprefix = \"a.com/team\"\nlocation = \"mirror.a.com/team\"\n"
      "[[registry.mirror]]\nlocation = \"m.a.com/\"\n",
      "f", FileRole::kMain);
  ASSERT_EQ(c.registries.size(), 2u);
  EXPECT_EQ(c.registries[0].prefix, "a.com/team");
  EXPECT_EQ(c.registries[0].mirrors[0].location, "m.a.com");
  EXPECT_EQ(c.registries[1].prefix, "z.com");
  EXPECT_EQ(c.registries[1].location, "z.com");
  EXPECT_EQ(*c.unqualified_search_registries,
            (std::vector<std::string>{"quay.io", "registry.redhat.io"}));
}

TEST(RegistriesConf, DuplicatePrefixFirstWinsWithWarning) {
  std::vector<std::string> warnings;
  const Config c = load_text(
      "[[registry]]\nprefix = \"a.com\"\nlocation = \"one.com\"\n"
      "[[registry]]\nprefix = \"a.com\"\nlocation = \"two.com\"\n",
      "f", FileRole::kMain, &warnings);
  ASSERT_EQ(c.registries.size(), 1u);
  EXPECT_EQ(c.registries[0].location, "one.com");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("defined more than once"), std::string::npos);
}

TEST(RegistriesConf, UnknownKeysAreWarningsNotErrors) {
  std::vector<std::string> warnings;
  const Config c = load_text(
      "insecure-registries = [\"a\"]\n[[registry]]\nlocation = \"a.com\"\n"
      "secure = true\n",
      "f", FileRole::kMain, &warnings);
  EXPECT_EQ(c.registries.size(), 1u);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("insecure-registries"), std::string::npos);
  EXPECT_NE(warnings[1].find("registry.secure"), std::string::npos);
}

TEST(RegistriesConf, V1ConvertsToV2WithWarning) {
  std::vector<std::string> warnings;
  const Config c = load_text(
      "[registries.search]\nregistries = [\"registry.redhat.io\", \"quay.io\"]\n"
      "[registries.insecure]\nregistries = ['localhost:5000', 'both.com']\n"
      "[registries.block]\nregistries = ['both.com']\n",
      "f", FileRole::kMain, &warnings);
  ASSERT_EQ(c.registries.size(), 2u);
  EXPECT_EQ(c.registries[0].prefix, "both.com");
  EXPECT_TRUE(c.registries[0].insecure);
  EXPECT_TRUE(c.registries[0].blocked);
  EXPECT_EQ(c.registries[1].prefix, "localhost:5000");
  EXPECT_TRUE(c.registries[1].insecure);
  EXPECT_FALSE(c.registries[1].blocked);
  EXPECT_EQ(c.unqualified_search_registries->size(), 2u);
  ASSERT_FALSE(warnings.empty());
  EXPECT_NE(warnings.back().find("registries.conf must be in v2 format but is in v1"),
            std::string::npos);
}

TEST(RegistriesConf, EmptyAliasValueIsAllowed) {
  const Config c = load_text("[aliases]\n\"nginx\" = \"\"\n", "f", FileRole::kDropIn);
  EXPECT_EQ(c.aliases.at("nginx"), "");
}

TEST(RegistriesConf, PrefixMatching) {
  const struct {
    const char* ref;
    const char* prefix;
    bool match;
  } cases[] = {
      {"docker.io/library/busybox", "docker.io/library", true},
      {"docker.io/libraryy/busybox", "docker.io/library", false},
      {"docker.io/library", "docker.io/library", true},
      {"docker.io/library:tag", "docker.io/library", true},
      {"docker.io/library@sha256:x", "docker.io/library", true},
      {"example.com:5000/x", "example.com", true},  // documented as unintended upstream
      {"a.example.com/x", "*.example.com", true},
      {"foo.bar.example.com/x", "*.example.com", true},
      {"example.com/x", "*.example.com", false},
      {"another.example.com/namespace.com/x", "*.namespace.com", false},
      {"a.example.com:5000/x", "*.example.com", true},
      {"docker.io", "docker.io/library", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.ref) + " ~ " + c.prefix);
    EXPECT_EQ(ref_matches_prefix(c.ref, c.prefix), c.match);
  }
}

TEST(RegistriesConf, LongestPrefixWinsAndShadows) {
  const Config c = load_text(
      "[[registry]]\nlocation = \"quay.io\"\n[[registry.mirror]]\nlocation = \"m.com\"\n"
      "[[registry]]\nlocation = \"quay.io/team\"\nblocked = true\n"
      "[[registry]]\nprefix = \"*.corp.com\"\ninsecure = true\n",
      "f", FileRole::kMain);
  const Registry* r = find_registry(c, "quay.io/team/app:1");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->prefix, "quay.io/team");
  EXPECT_TRUE(r->mirrors.empty());  // the shorter prefix's mirrors are not inherited
  EXPECT_EQ(find_registry(c, "quay.io/other/app")->prefix, "quay.io");
  EXPECT_EQ(find_registry(c, "reg.corp.com/x")->prefix, "*.corp.com");
  EXPECT_EQ(find_registry(c, "docker.io/library/x"), nullptr);
}

TEST(RegistriesConf, MergeRulesOfDropIns) {
  Config base = load_text(
      "unqualified-search-registries = [\"a.com\"]\nshort-name-mode = \"enforcing\"\n"
      "[[registry]]\nlocation = \"a.com\"\n[[registry.mirror]]\nlocation = \"m.com\"\n"
      "[[registry]]\nlocation = \"b.com\"\n[aliases]\n\"x\" = \"a.com/x\"\n\"y\" = \"a.com/y\"\n",
      "main", FileRole::kMain);
  // A later file replaces a.com as a whole table (mirror gone), erases alias y, keeps the
  // search list (key absent) and the mode.
  merge_into(base, load_text("[[registry]]\nlocation = \"a.com\"\ninsecure = true\n"
                             "[aliases]\n\"y\" = \"\"\n\"z\" = \"b.com/z\"\n",
                             "d1", FileRole::kDropIn));
  ASSERT_EQ(base.registries.size(), 2u);
  EXPECT_TRUE(base.registries[0].insecure);
  EXPECT_TRUE(base.registries[0].mirrors.empty());
  EXPECT_EQ(*base.unqualified_search_registries, std::vector<std::string>{"a.com"});
  EXPECT_EQ(base.short_name_mode, "enforcing");
  EXPECT_EQ(base.aliases, (std::map<std::string, std::string>{{"x", "a.com/x"}, {"z", "b.com/z"}}));
  // An empty search list in a drop-in clears it.
  merge_into(base, load_text("unqualified-search-registries = []\n", "d2", FileRole::kDropIn));
  EXPECT_TRUE(base.unqualified_search_registries->empty());
}

TEST(RegistriesConf, LoadsDropInDirectoryInLexicalOrder) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("stowage-dropin-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "sub.conf");  // directories are skipped
  atomic_write_file(dir / "10-b.conf", "unqualified-search-registries = [\"b.com\"]\n");
  atomic_write_file(dir / "02-a.conf", "unqualified-search-registries = [\"a.com\"]\n");
  atomic_write_file(dir / "99-ignored.txt", "not toml at all [[[");
  const Config c = load_config({}, dir, false);
  EXPECT_EQ(*c.unqualified_search_registries, std::vector<std::string>{"b.com"});
  atomic_write_file(dir / "50-bad.conf", "[registries.search]\nregistries = []\n");
  try {
    load_config({}, dir, false);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("loading drop-in registries configuration"),
              std::string::npos);
    EXPECT_NE(std::string(e.what()).find("50-bad.conf"), std::string::npos);
  }
  fs::remove_all(dir);
}

TEST(RegistriesConf, LoadsWithCandidateDropInInPlaceOfFileOnDisk) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("stowage-candidate-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  atomic_write_file(dir / "10-a.conf", "unqualified-search-registries = [\"a.com\"]\n");
  atomic_write_file(dir / "99-stowage.conf", "[registries.search]\nregistries = []\n");
  atomic_write_file(dir / "99-z.conf", "short-name-mode = \"permissive\"\n");
  // The broken file on disk is replaced by the candidate, which merges in lexical order.
  Config c = load_config_with_dropin({}, dir, false, "99-stowage.conf",
                                     "unqualified-search-registries = [\"s.com\"]\n");
  EXPECT_EQ(*c.unqualified_search_registries, std::vector<std::string>{"s.com"});
  EXPECT_EQ(c.short_name_mode, "permissive");
  // A name that sorts first is overridden by later files.
  fs::remove(dir / "99-stowage.conf");
  c = load_config_with_dropin({}, dir, false, "00-new.conf",
                              "unqualified-search-registries = [\"n.com\"]\n");
  EXPECT_EQ(*c.unqualified_search_registries, std::vector<std::string>{"a.com"});
  try {
    load_config_with_dropin({}, dir / "absent", false, "99-stowage.conf",
                            "[registries.search]\nregistries = []\n");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "loading drop-in registries configuration \"" +
                                         (dir / "absent" / "99-stowage.conf").string() +
                                         "\": registry must be in v2 format but is in v1");
  }
  EXPECT_THROW(load_config_with_dropin({}, dir, false, "../x.conf", ""), Error);
  fs::remove_all(dir);
}

TEST(RegistriesConf, MissingMainFileNamedExplicitlyIsAnError) {
  EXPECT_THROW(load_config("/nonexistent/registries.conf", {}, true), Error);
  EXPECT_NO_THROW(load_config("/nonexistent/registries.conf", {}, false));
}

TEST(RegistriesConf, PodmanInfoJsonShape) {
  const Config c = load_text(
      "unqualified-search-registries = [\"quay.io\"]\n"
      "[[registry]]\nlocation = \"localhost:5000\"\ninsecure = true\n"
      "[[registry]]\nprefix = \"docker.io/library\"\nlocation = \"docker.io/library\"\n"
      "[[registry.mirror]]\nlocation = \"m:5000/library\"\npull-from-mirror = \"digest-only\"\n",
      "f", FileRole::kMain);
  const auto j = nlohmann::json::parse(podman_info_registries_json(c));
  EXPECT_EQ(j["search"], nlohmann::json::array({"quay.io"}));
  EXPECT_EQ(j["localhost:5000"]["Insecure"], true);
  EXPECT_TRUE(j["localhost:5000"]["Mirrors"].is_null());
  EXPECT_EQ(j["docker.io/library"]["Mirrors"][0]["PullFromMirror"], "digest-only");
}

}  // namespace
}  // namespace stowage::registries
