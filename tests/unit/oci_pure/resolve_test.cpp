#include "oci/resolve.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/error.h"
#include "registries/conf.h"

namespace stowage::oci {
namespace {

using ::testing::HasSubstr;
namespace reg = registries;

const std::string kDigest = "sha256:" + std::string(64, 'f');

reg::Config load(std::string_view toml) {
  return reg::load_text(toml, "test.conf", reg::FileRole::kMain);
}

std::vector<std::string> strings(const std::vector<Reference>& refs) {
  std::vector<std::string> out;
  for (const auto& r : refs) out.push_back(r.string());
  return out;
}

const char* kResolveConf = R"(
unqualified-search-registries = ["registry.fedoraproject.org", "quay.io", "docker.io"]
short-name-mode = "enforcing"
[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
"nginx" = "docker.io/library/nginx"
"library/busybox" = "quay.io/prometheus/busybox"
"erased" = "quay.io/erased/app"
)";

TEST(ShortNameMode, Parses) {
  EXPECT_EQ(parse_short_name_mode("disabled"), ShortNameMode::kDisabled);
  EXPECT_EQ(parse_short_name_mode("permissive"), ShortNameMode::kPermissive);
  EXPECT_EQ(parse_short_name_mode("enforcing"), ShortNameMode::kEnforcing);
  try {
    parse_short_name_mode("Enforcing\n");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "invalid short-name mode: \"Enforcing\\n\"");
  }
}

TEST(Resolve, UsesFullyQualifiedNamesAsTheyAre) {
  const reg::Config config = load(kResolveConf);
  const std::pair<std::string, std::string> cases[] = {
      {"quay.io/a/b", "quay.io/a/b:latest"},
      {"quay.io/a/b:1.0", "quay.io/a/b:1.0"},
      {"docker.io/alpine", "docker.io/library/alpine:latest"},
      {"index.docker.io/alpine:3", "docker.io/library/alpine:3"},
      {"docker.io/user/app", "docker.io/user/app:latest"},
      {"localhost/app", "localhost/app:latest"},
      {"localhost:5000/app@" + kDigest, "localhost:5000/app@" + kDigest},
      {"registry.example.com:8443/a/b/c:t@" + kDigest,
       "registry.example.com:8443/a/b/c:t@" + kDigest},
  };
  for (const auto& [input, want] : cases) {
    const ResolvedName r = resolve_image_name(input, config);
    EXPECT_EQ(strings(r.candidates), std::vector<std::string>{want}) << input;
    EXPECT_EQ(r.rationale, Rationale::kFullyQualified);
    EXPECT_FALSE(r.needs_selection);
    EXPECT_EQ(r.description, "");
  }
}

TEST(Resolve, AliasesAlwaysWin) {
  const reg::Config config = load(kResolveConf);
  const std::pair<std::string, std::string> cases[] = {
      {"fedora", "registry.fedoraproject.org/fedora:latest"},
      {"fedora:39", "registry.fedoraproject.org/fedora:39"},
      {"fedora@" + kDigest, "registry.fedoraproject.org/fedora@" + kDigest},
      {"fedora:39@" + kDigest, "registry.fedoraproject.org/fedora:39@" + kDigest},
      {"nginx:1.25", "docker.io/library/nginx:1.25"},
      {"library/busybox", "quay.io/prometheus/busybox:latest"},
  };
  for (const auto& [input, want] : cases) {
    // Even in enforcing mode without a TTY: an alias is never ambiguous.
    const ResolvedName r = resolve_image_name(input, config);
    EXPECT_EQ(strings(r.candidates), std::vector<std::string>{want}) << input;
    EXPECT_EQ(r.rationale, Rationale::kAlias);
    EXPECT_FALSE(r.needs_selection);
  }
  EXPECT_EQ(resolve_image_name("fedora:39", config).description,
            "Resolved \"fedora\" as an alias (/etc/containers/registries.conf)");
}

TEST(Resolve, ErasedAliasFallsBackToSearchRegistries) {
  reg::Config config = load(kResolveConf);
  config.aliases["erased"] = "";  // what a later drop-in's `erased = ""` leaves
  ResolveOptions options;
  options.mode = ShortNameMode::kPermissive;
  const ResolvedName r = resolve_image_name("erased", config, options);
  EXPECT_EQ(r.rationale, Rationale::kSearchRegistries);
  EXPECT_EQ(r.candidates.size(), 3u);
}

TEST(Resolve, ShortNameModesDecideAmbiguity) {
  const reg::Config config = load(kResolveConf);  // enforcing, three search registries
  const std::vector<std::string> all{"registry.fedoraproject.org/ubuntu:22.04",
                                     "quay.io/ubuntu:22.04", "docker.io/library/ubuntu:22.04"};
  struct Case {
    std::optional<ShortNameMode> mode;
    bool tty;
    bool error;
    bool needs_selection;
  };
  const Case cases[] = {
      {std::nullopt, false, true, false},  // enforcing from the config
      {std::nullopt, true, false, true},
      {ShortNameMode::kEnforcing, false, true, false},
      {ShortNameMode::kEnforcing, true, false, true},
      {ShortNameMode::kPermissive, false, false, false},
      {ShortNameMode::kPermissive, true, false, true},
      {ShortNameMode::kDisabled, false, false, false},
      {ShortNameMode::kDisabled, true, false, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "mode=" << (c.mode ? static_cast<int>(*c.mode) : -1) << " tty=" << c.tty);
    ResolveOptions options;
    options.mode = c.mode;
    options.tty = c.tty;
    if (c.error) {
      try {
        resolve_image_name("ubuntu:22.04", config, options);
        ADD_FAILURE() << "resolved";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::kInvalidArgument);
        EXPECT_STREQ(e.what(), "short-name resolution enforced but cannot prompt without a TTY");
      }
      continue;
    }
    const ResolvedName r = resolve_image_name("ubuntu:22.04", config, options);
    EXPECT_EQ(strings(r.candidates), all);
    EXPECT_EQ(r.rationale, Rationale::kSearchRegistries);
    EXPECT_EQ(r.needs_selection, c.needs_selection);
    EXPECT_EQ(r.description,
              "Resolving \"ubuntu\" using unqualified-search registries "
              "(/etc/containers/registries.conf)");
  }
}

TEST(Resolve, OneSearchRegistryIsNeverAmbiguous) {
  const reg::Config config = load(R"(
unqualified-search-registries = ["registry.example.com:5000"]
short-name-mode = "enforcing"
)");
  const ResolvedName r = resolve_image_name("team/app@" + kDigest, config);
  EXPECT_EQ(strings(r.candidates),
            std::vector<std::string>{"registry.example.com:5000/team/app@" + kDigest});
  EXPECT_FALSE(r.needs_selection);
  // docker.io as the search registry gets library/ for single-component names.
  const ResolvedName hub =
      resolve_image_name("busybox", load(R"(unqualified-search-registries = ["docker.io"])"));
  EXPECT_EQ(strings(hub.candidates), std::vector<std::string>{"docker.io/library/busybox:latest"});
}

TEST(Resolve, ErrorsUseContainersImageTexts) {
  const reg::Config empty = load("");
  struct Case {
    std::string input;
    reg::Config config;
    ConfigOrigin origin;
    std::string want;
  };
  ConfigOrigin none;
  none.search_registries_origin.clear();
  ConfigOrigin dropin;
  dropin.search_registries_origin = "/etc/containers/registries.conf.d/01-search.conf";
  reg::Config bad_search;
  bad_search.unqualified_search_registries = std::vector<std::string>{"Bad Registry"};
  reg::Config bad_mode;
  bad_mode.short_name_mode = "bogus";
  const Case cases[] = {
      {"ubuntu:22.04", empty, ConfigOrigin{},
       "short-name \"ubuntu:22.04\" did not resolve to an alias and no unqualified-search "
       "registries are defined in \"/etc/containers/registries.conf\""},
      {"ubuntu", empty, dropin,
       "short-name \"ubuntu\" did not resolve to an alias and no unqualified-search registries "
       "are defined in \"/etc/containers/registries.conf.d/01-search.conf\""},
      {"ubuntu", empty, none,
       "short-name \"ubuntu\" did not resolve to an alias and no containers-registries.conf(5) "
       "was found"},
      {"UPPER", empty, ConfigOrigin{}, "cannot parse input: \"UPPER\": invalid reference"},
      {"", empty, ConfigOrigin{}, "cannot parse input: \"\": invalid reference"},
      {"app", bad_search, ConfigOrigin{},
       "creating reference with unqualified-search registry \"Bad Registry\": "},
      {"app", bad_mode, ConfigOrigin{}, "invalid short-name mode: \"bogus\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    ResolveOptions options;
    options.origin = c.origin;
    try {
      resolve_image_name(c.input, c.config, options);
      ADD_FAILURE() << "resolved";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument);
      EXPECT_THAT(e.what(), HasSubstr(c.want));
    }
  }
}

// --- Pull sources ---

const char* kMirrorConf = R"(
[[registry]]
prefix = "docker.io/library"
location = "docker.io/library"
[[registry.mirror]]
location = "mirror.corp:5000/library"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tags.corp/library"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "any.corp/hub"
insecure = true
pull-from-mirror = "all"

[[registry]]
prefix = "quay.io/team"
location = "internal.example.com/quay-team"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m1.example.com/team"
[[registry.mirror]]
location = "m2.example.com/team"
insecure = true

[[registry]]
prefix = "quay.io/team/blocked"
location = "quay.io/team/blocked"
blocked = true

[[registry]]
location = "localhost:5000"
insecure = true

[[registry]]
location = "blocked.example.com"
blocked = true

[[registry]]
prefix = "*.edge.example.com"

[[registry]]
prefix = "*.rewrite.example.com"
location = "central.example.com/all"
[[registry.mirror]]
location = "cache.example.com"

[[registry]]
prefix = "quay.io/hub"
location = "docker.io"
)";

struct Want {
  std::string reference;
  std::string location;
  bool insecure;
  bool mirror;
};

std::vector<Want> wants(const std::vector<PullSource>& sources) {
  std::vector<Want> out;
  for (const auto& s : sources)
    out.push_back({s.reference.string(), s.location, s.insecure, s.mirror});
  return out;
}

bool operator==(const Want& a, const Want& b) {
  return a.reference == b.reference && a.location == b.location && a.insecure == b.insecure &&
         a.mirror == b.mirror;
}

void PrintTo(const Want& w, std::ostream* os) {
  *os << "{" << w.reference << ", " << w.location << ", insecure=" << w.insecure
      << ", mirror=" << w.mirror << "}";
}

TEST(PullSources, OrderMirrorsThenPrimary) {
  const reg::Config config = load(kMirrorConf);
  const std::string d = "@" + kDigest;
  struct Case {
    std::string ref;
    std::vector<Want> want;
  };
  const Case cases[] = {
      {"docker.io/library/nginx:latest",
       {{"tags.corp/library/nginx:latest", "tags.corp/library", false, true},
        {"any.corp/hub/nginx:latest", "any.corp/hub", true, true},
        {"docker.io/library/nginx:latest", "docker.io/library", false, false}}},
      {"docker.io/library/nginx" + d,
       {{"mirror.corp:5000/library/nginx" + d, "mirror.corp:5000/library", false, true},
        {"any.corp/hub/nginx" + d, "any.corp/hub", true, true},
        {"docker.io/library/nginx" + d, "docker.io/library", false, false}}},
      // name:tag@digest counts as a digest reference.
      {"docker.io/library/nginx:1" + d,
       {{"mirror.corp:5000/library/nginx:1" + d, "mirror.corp:5000/library", false, true},
        {"any.corp/hub/nginx:1" + d, "any.corp/hub", true, true},
        {"docker.io/library/nginx:1" + d, "docker.io/library", false, false}}},
      // docker.io references are normalized before matching.
      {"docker.io/nginx:1",
       {{"tags.corp/library/nginx:1", "tags.corp/library", false, true},
        {"any.corp/hub/nginx:1", "any.corp/hub", true, true},
        {"docker.io/library/nginx:1", "docker.io/library", false, false}}},
      {"docker.io/user/app:1", {{"docker.io/user/app:1", "docker.io", false, false}}},
      {"docker.io/libraryx/app:1", {{"docker.io/libraryx/app:1", "docker.io", false, false}}},
      // mirror-by-digest-only: tags go to the primary only.
      {"quay.io/team/app:1",
       {{"internal.example.com/quay-team/app:1", "internal.example.com/quay-team", false, false}}},
      {"quay.io/team/sub/app" + d,
       {{"m1.example.com/team/sub/app" + d, "m1.example.com/team", false, true},
        {"m2.example.com/team/sub/app" + d, "m2.example.com/team", true, true},
        {"internal.example.com/quay-team/sub/app" + d, "internal.example.com/quay-team", false,
         false}}},
      {"quay.io/teamx/app:1", {{"quay.io/teamx/app:1", "quay.io", false, false}}},
      {"localhost:5000/app:1", {{"localhost:5000/app:1", "localhost:5000", true, false}}},
      {"localhost:5001/app:1", {{"localhost:5001/app:1", "localhost:5001", false, false}}},
      // A *.host prefix without a location keeps the reference.
      {"a.edge.example.com/ns/app:1",
       {{"a.edge.example.com/ns/app:1", "a.edge.example.com", false, false}}},
      {"edge.example.com/ns/app:1",
       {{"edge.example.com/ns/app:1", "edge.example.com", false, false}}},
      // With a location, a *.host prefix covers the host (not its port).
      {"x.rewrite.example.com/ns/app:1",
       {{"cache.example.com/ns/app:1", "cache.example.com", false, true},
        {"central.example.com/all/ns/app:1", "central.example.com/all", false, false}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.ref);
    EXPECT_EQ(wants(pull_sources(Reference::parse(c.ref), config)), c.want);
  }
}

TEST(PullSources, RefusesBlockedRegistries) {
  const reg::Config config = load(kMirrorConf);
  ConfigOrigin origin;
  origin.conf_path = "/home/u/.config/containers/registries.conf";
  origin.conf_dir = "/home/u/.config/containers/registries.conf.d";
  const std::pair<std::string, std::string> cases[] = {
      {"blocked.example.com/x/y:1",
       "registry blocked.example.com is blocked in /etc/containers/registries.conf or "
       "/etc/containers/registries.conf.d"},
      // The longest prefix wins: quay.io/team's mirrors do not apply to its blocked namespace.
      {"quay.io/team/blocked/app@" + kDigest,
       "registry quay.io/team/blocked is blocked in /etc/containers/registries.conf or "
       "/etc/containers/registries.conf.d"},
  };
  for (const auto& [ref, want] : cases) {
    try {
      pull_sources(Reference::parse(ref), config);
      ADD_FAILURE() << "not blocked: " << ref;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kPermissionDenied);
      EXPECT_EQ(e.what(), want);
    }
  }
  try {
    pull_sources(Reference::parse("blocked.example.com/x"), config, origin);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "registry blocked.example.com is blocked in "
                 "/home/u/.config/containers/registries.conf or "
                 "/home/u/.config/containers/registries.conf.d");
  }
}

TEST(PullSources, RefusesShortNamesAndBadRewrites) {
  const reg::Config config = load(kMirrorConf);
  try {
    pull_sources(Reference::parse("ubuntu"), config);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_THAT(e.what(), HasSubstr("is not fully qualified"));
  }
  try {
    // quay.io/hub → docker.io: "docker.io/alpine" is not canonical (docker.io/library/alpine).
    pull_sources(Reference::parse("quay.io/hub/alpine:3"), config);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_STREQ(e.what(), "rewriting reference: repository name must be canonical");
  }
  EXPECT_EQ(pull_sources(Reference::parse("quay.io/hub/ns/app:3"), config)[0].reference.string(),
            "docker.io/ns/app:3");
  try {
    // A *.host prefix covers the host but not its port, which lands after the location
    // (containers/image does the same): "central.example.com/all:8443/app" is no reference.
    pull_sources(Reference::parse("x.rewrite.example.com:8443/app:1"), config);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("rewriting reference: invalid reference"));
  }
}

TEST(PullSources, WorkOnHandBuiltConfigs) {
  // Mirrors under a wildcard prefix without a location (podman 4.3 accepts it; our validator
  // does not, but pull_sources takes any Config).
  reg::Config config;
  reg::Registry r;
  r.prefix = "*.example.net";
  r.mirrors.push_back({"mirror.example.net/cache", false, ""});
  config.registries.push_back(r);
  EXPECT_EQ(
      wants(pull_sources(Reference::parse("a.example.net/x:1"), config)),
      (std::vector<Want>{{"mirror.example.net/cache/x:1", "mirror.example.net/cache", false, true},
                         {"a.example.net/x:1", "a.example.net", false, false}}));
  config.registries[0].prefix = "plain.example.net";
  EXPECT_THROW(pull_sources(Reference::parse("plain.example.net/x:1"), config), Error);
}

TEST(GoQuote, EscapesLikeStrconvQuote) {
  EXPECT_EQ(go_quote("plain"), "\"plain\"");
  EXPECT_EQ(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(go_quote("\n\t\r\x01\x7f"), "\"\\n\\t\\r\\x01\\x7f\"");
}

}  // namespace
}  // namespace stowage::oci
