#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <string>
#include <vector>

#include "base/error.h"
#include "oci/manifest.h"

namespace stowage::oci {
namespace {

using ::testing::HasSubstr;

Platform P(std::string os, std::string arch, std::string variant = {}) {
  Platform p;
  p.os = std::move(os);
  p.architecture = std::move(arch);
  p.variant = std::move(variant);
  return p;
}

TEST(Platform, NormalizesLikeContainerd) {
  struct Case {
    Platform in;
    std::string want;
  };
  const Case cases[] = {
      {P("Linux", "x86_64"), "linux/amd64"},
      {P("linux", "x86-64"), "linux/amd64"},
      {P("linux", "AMD64", "V1"), "linux/amd64"},
      {P("linux", "amd64", "v3"), "linux/amd64/v3"},
      {P("linux", "i386", "whatever"), "linux/386"},
      {P("linux", "aarch64"), "linux/arm64"},
      {P("linux", "arm64", "v8"), "linux/arm64"},
      {P("linux", "arm64", "8"), "linux/arm64"},
      {P("linux", "arm64", "v8.0"), "linux/arm64"},
      {P("linux", "arm64", "v8.2"), "linux/arm64/v8.2"},
      {P("linux", "arm64", "9"), "linux/arm64/v9"},
      {P("linux", "arm64", "9.0"), "linux/arm64/v9"},
      {P("linux", "arm64", "v9.0"), "linux/arm64/v9"},
      {P("linux", "armhf"), "linux/arm/v7"},
      {P("linux", "armel"), "linux/arm/v6"},
      {P("linux", "arm"), "linux/arm/v7"},
      {P("linux", "arm", "7"), "linux/arm/v7"},
      {P("linux", "arm", "5"), "linux/arm/v5"},
      {P("linux", "arm", "6"), "linux/arm/v6"},
      {P("linux", "arm", "8"), "linux/arm/v8"},
      {P("linux", "arm", "v6"), "linux/arm/v6"},
      {P("macos", "arm64"), "darwin/arm64"},
      {P("Windows", "amd64"), "windows/amd64"},
      {P("linux", "ppc64le"), "linux/ppc64le"},
      {P("linux", "riscv64", "rva20u64"), "linux/riscv64/rva20u64"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.want);
    EXPECT_EQ(format_platform(normalize_platform(c.in)), c.want);
  }
}

TEST(Platform, ParsesPlatformFlag) {
  const std::pair<std::string, std::string> ok[] = {
      {"linux/amd64", "linux/amd64"},       {"linux/arm64/v8", "linux/arm64"},
      {"linux/arm/v7", "linux/arm/v7"},     {"linux/arm", "linux/arm/v7"},
      {"LINUX/X86_64", "linux/amd64"},      {"windows/amd64", "windows/amd64"},
      {"linux/s390x", "linux/s390x"},       {"linux/arm64/v8.2", "linux/arm64/v8.2"},
      {"linux/amd64/v2", "linux/amd64/v2"},
  };
  for (const auto& [in, want] : ok) EXPECT_EQ(format_platform(parse_platform(in)), want) << in;
  for (const char* bad : {"", "linux", "linux/", "/amd64", "linux/amd64/", "linux/amd64/v2/x",
                          "linux//amd64", "linux/am d64", "linux/amd64\n"}) {
    try {
      parse_platform(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument);
      EXPECT_THAT(e.what(), HasSubstr("expected os/arch[/variant]"));
    }
  }
}

TEST(Platform, MapsUname) {
  struct Case {
    const char* sysname;
    const char* machine;
    std::string want;
  };
  const Case cases[] = {
      {"Linux", "x86_64", "linux/amd64"},  {"Linux", "aarch64", "linux/arm64"},
      {"Linux", "armv7l", "linux/arm/v7"}, {"Linux", "armv6l", "linux/arm/v6"},
      {"Linux", "armv8l", "linux/arm/v8"}, {"Linux", "armv5tel", "linux/arm/v5"},
      {"Linux", "i686", "linux/386"},      {"Linux", "ppc64le", "linux/ppc64le"},
      {"Linux", "s390x", "linux/s390x"},   {"Linux", "riscv64", "linux/riscv64"},
      {"Darwin", "arm64", "darwin/arm64"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(format_platform(platform_from_uname(c.sysname, c.machine)), c.want) << c.machine;
  }
}

TEST(Platform, HostPlatformComesFromUname) {
  utsname u{};
  ASSERT_EQ(::uname(&u), 0);
  EXPECT_EQ(host_platform(), platform_from_uname(u.sysname, u.machine));
  EXPECT_EQ(host_platform().os, "linux");
}

std::vector<std::string> prefs(const std::string& wanted) {
  std::vector<std::string> out;
  for (const auto& p : platform_preferences(parse_platform(wanted)))
    out.push_back(format_platform(p));
  return out;
}

TEST(Platform, PreferenceVectors) {
  using V = std::vector<std::string>;
  EXPECT_EQ(prefs("linux/amd64"), (V{"linux/amd64", "linux/386"}));
  EXPECT_EQ(prefs("linux/amd64/v3"),
            (V{"linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"}));
  EXPECT_EQ(prefs("linux/386"), (V{"linux/386"}));
  EXPECT_EQ(prefs("linux/arm64"),
            (V{"linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"}));
  EXPECT_EQ(prefs("linux/arm64/v8.2"),
            (V{"linux/arm64/v8.2", "linux/arm64/v8.1", "linux/arm64", "linux/arm/v8",
               "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"}));
  EXPECT_EQ(prefs("linux/arm64/v9"),
            (V{"linux/arm64/v9", "linux/arm64/v8.5", "linux/arm64/v8.4", "linux/arm64/v8.3",
               "linux/arm64/v8.2", "linux/arm64/v8.1", "linux/arm64", "linux/arm/v8",
               "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"}));
  EXPECT_EQ(prefs("linux/arm64/v9.1")[0], "linux/arm64/v9.1");
  EXPECT_EQ(prefs("linux/arm64/v9.1")[1], "linux/arm64/v9");
  EXPECT_EQ(prefs("linux/arm64/v9.1")[2], "linux/arm64/v8.6");
  EXPECT_EQ(prefs("linux/arm/v8"),
            (V{"linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"}));
  EXPECT_EQ(prefs("linux/arm/v7"), (V{"linux/arm/v7", "linux/arm/v6", "linux/arm/v5"}));
  EXPECT_EQ(prefs("linux/arm/v6"), (V{"linux/arm/v6", "linux/arm/v5"}));
  EXPECT_EQ(prefs("linux/arm/v5"), (V{"linux/arm/v5"}));
  EXPECT_EQ(prefs("linux/ppc64le"), (V{"linux/ppc64le"}));
  EXPECT_EQ(prefs("linux/ppc64le/power9"), (V{"linux/ppc64le/power9", "linux/ppc64le"}));
  EXPECT_EQ(prefs("linux/riscv64/rva20u64"), (V{"linux/riscv64/rva20u64", "linux/riscv64"}));
}

Descriptor entry(const std::string& platform, std::map<std::string, std::string> annotations = {}) {
  Descriptor d;
  d.media_type = media::kOciManifest;
  d.digest = "sha256:" + std::string(64, 'a');
  d.size = 1;
  d.annotations = std::move(annotations);
  if (!platform.empty()) {
    // Keep the spelling as a registry might write it: no normalization here.
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (true) {
      const auto slash = platform.find('/', start);
      parts.push_back(platform.substr(start, slash - start));
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    d.platform = P(parts[0], parts[1], parts.size() > 2 ? parts[2] : "");
  }
  return d;
}

TEST(Platform, SelectsFromIndex) {
  const std::map<std::string, std::string> attestation{
      {std::string(kDockerReferenceTypeAnnotation), std::string(kAttestationManifest)}};
  struct Case {
    std::string name;
    std::vector<Descriptor> manifests;
    std::string wanted;
    std::optional<std::size_t> want;
  };
  const Case cases[] = {
      {"exact", {entry("linux/ppc64le"), entry("linux/amd64")}, "linux/amd64", 1},
      {"first of duplicates", {entry("linux/amd64"), entry("linux/amd64")}, "linux/amd64", 0},
      {"arm64 beats earlier arm/v7",
       {entry("linux/arm/v7"), entry("linux/arm64/v8")},
       "linux/arm64",
       1},
      {"arm64 falls back to arm/v7",
       {entry("linux/amd64"), entry("linux/arm/v7")},
       "linux/arm64",
       1},
      {"arm64 v8 spelled aarch64", {entry("linux/aarch64")}, "linux/arm64/v8", 0},
      {"arm/v7 takes v6", {entry("linux/arm/v6"), entry("linux/amd64")}, "linux/arm/v7", 0},
      {"arm/v7 prefers v7 over earlier v6",
       {entry("linux/arm/v6"), entry("linux/arm/v7")},
       "linux/arm/v7",
       1},
      {"arm/v6 never takes v7", {entry("linux/arm/v7")}, "linux/arm/v6", std::nullopt},
      {"arm without variant is v7", {entry("linux/arm")}, "linux/arm/v7", 0},
      {"arm without variant is not v6", {entry("linux/arm")}, "linux/arm/v6", std::nullopt},
      {"amd64 spelled x86_64", {entry("linux/x86_64")}, "linux/amd64", 0},
      {"amd64 falls back to 386", {entry("linux/386")}, "linux/amd64", 0},
      {"amd64/v3 takes v2 before v1",
       {entry("linux/amd64"), entry("linux/amd64/v2")},
       "linux/amd64/v3",
       1},
      {"amd64 never takes v2", {entry("linux/amd64/v2")}, "linux/amd64", std::nullopt},
      {"os must match", {entry("windows/amd64")}, "linux/amd64", std::nullopt},
      {"attestation skipped",
       {entry("linux/amd64", attestation), entry("linux/amd64")},
       "linux/amd64",
       1},
      {"unknown/unknown skipped",
       {entry("unknown/unknown"), entry("linux/amd64")},
       "linux/amd64",
       1},
      {"entries without platform skipped", {entry(""), entry("linux/amd64")}, "linux/amd64", 1},
      {"nothing matches", {entry("linux/s390x")}, "linux/amd64", std::nullopt},
      {"empty index", {}, "linux/amd64", std::nullopt},
      {"variant of other arch falls back", {entry("linux/ppc64le")}, "linux/ppc64le/power9", 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(select_platform(c.manifests, parse_platform(c.wanted)), c.want);
  }
}

TEST(Platform, ChooseNamesWhatTheIndexHas) {
  ImageIndex x;
  x.manifests = {entry("linux/s390x"), entry("linux/arm/v7"), entry("unknown/unknown")};
  try {
    choose_platform(x, parse_platform("linux/amd64"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_STREQ(
        e.what(),
        "no image for platform linux/amd64 in the index; it has linux/s390x, linux/arm/v7");
  }
  EXPECT_EQ(&choose_platform(x, parse_platform("linux/arm64")), &x.manifests[1]);
}

TEST(Platform, RecognisesAttestations) {
  EXPECT_TRUE(is_attestation(
      entry("linux/amd64", {{"vnd.docker.reference.type", "attestation-manifest"}})));
  EXPECT_TRUE(is_attestation(entry("unknown/unknown")));
  EXPECT_FALSE(is_attestation(entry("linux/amd64", {{"vnd.docker.reference.type", "other"}})));
  EXPECT_FALSE(is_attestation(entry("linux/amd64")));
  EXPECT_FALSE(is_attestation(entry("")));
}

}  // namespace
}  // namespace stowage::oci
