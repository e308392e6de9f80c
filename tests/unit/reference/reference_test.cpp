#include "reference/reference.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "base/error.h"

namespace stowage {
namespace {

const std::string kHex64 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string kHex128 =
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";
const std::string kSha256 = "sha256:" + kHex64;
const std::string kSha512 = "sha512:" + kHex128;
const std::string kUpperHex64 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";

// The message of the stowage::Error `f` throws (checking its code), or nullopt if it returns.
template <typename F>
std::optional<std::string> error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    return std::string(e.what());
  }
  return std::nullopt;
}

struct Accepted {
  std::string input;
  std::string domain;
  std::string path;
  std::optional<std::string> tag;
  std::optional<std::string> digest;
};

void check_accepted(const std::vector<Accepted>& cases) {
  for (const Accepted& c : cases) {
    SCOPED_TRACE(c.input);
    Reference ref;
    ASSERT_NO_THROW(ref = Reference::parse(c.input));
    EXPECT_EQ(ref.domain, c.domain);
    EXPECT_EQ(ref.path, c.path);
    EXPECT_EQ(ref.tag, c.tag);
    EXPECT_EQ(ref.digest, c.digest);
    EXPECT_EQ(ref.string(), c.input);  // strict parsing changes nothing
    EXPECT_EQ(is_short_name(c.input), c.domain.empty());
  }
}

struct Refused {
  std::string input;
  std::string reason;  // expected in the message
};

TEST(Reference, ParsesNamesAndDomains) {
  check_accepted({
      {"ubuntu", "", "ubuntu", {}, {}},
      {"library/ubuntu", "", "library/ubuntu", {}, {}},
      {"bitnami/redis/sub/path", "", "bitnami/redis/sub/path", {}, {}},
      {"0/1", "", "0/1", {}, {}},
      {"docker.io/ubuntu", "docker.io", "ubuntu", {}, {}},
      {"docker.io/library/ubuntu", "docker.io", "library/ubuntu", {}, {}},
      {"index.docker.io/foo/bar", "index.docker.io", "foo/bar", {}, {}},
      {"registry-1.docker.io/library/nginx", "registry-1.docker.io", "library/nginx", {}, {}},
      {"quay.io/team/app", "quay.io", "team/app", {}, {}},
      {"my-registry.example.com/a/b/c/d", "my-registry.example.com", "a/b/c/d", {}, {}},
      {"localhost/app", "localhost", "app", {}, {}},
      {"localhost:5000/app", "localhost:5000", "app", {}, {}},
      {"myregistry:5000/app", "myregistry:5000", "app", {}, {}},
      {"127.0.0.1/app", "127.0.0.1", "app", {}, {}},
      {"127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", {}, {}},
      {"[::1]/app", "[::1]", "app", {}, {}},
      {"[::1]:5000/app", "[::1]:5000", "app", {}, {}},
      {"[2001:DB8::1]:443/app", "[2001:DB8::1]:443", "app", {}, {}},
      {"LOCALDOMAIN/fooo", "LOCALDOMAIN", "fooo", {}, {}},
      {"Registry.Example.COM/app", "Registry.Example.COM", "app", {}, {}},
      {"a/b", "", "a/b", {}, {}},
      // Without a '/', nothing is a domain: "localhost:5000" is localhost tagged 5000.
      {"localhost", "", "localhost", {}, {}},
      {"localhost:5000", "", "localhost", "5000", {}},
      {"example.com", "", "example.com", {}, {}},
      {"localhostx/app", "", "localhostx/app", {}, {}},
  });
}

TEST(Reference, ParsesPathSeparators) {
  check_accepted({
      {"foo/a.b", "", "foo/a.b", {}, {}},
      {"foo/a_b", "", "foo/a_b", {}, {}},
      {"foo/a__b", "", "foo/a__b", {}, {}},
      {"foo/a-b", "", "foo/a-b", {}, {}},
      {"foo/a---b", "", "foo/a---b", {}, {}},
      {"foo/a.b_c__d-e--f9", "", "foo/a.b_c__d-e--f9", {}, {}},
      {"quay.io/a.b/c_d/e__f/g-h", "quay.io", "a.b/c_d/e__f/g-h", {}, {}},
  });
}

TEST(Reference, ParsesTags) {
  check_accepted({
      {"ubuntu:22.04", "", "ubuntu", "22.04", {}},
      {"quay.io/team/app:v1.2.3", "quay.io", "team/app", "v1.2.3", {}},
      {"localhost:5000/app:dev", "localhost:5000", "app", "dev", {}},
      {"[::1]:5000/app:v1", "[::1]:5000", "app", "v1", {}},
      {"a/b:TAG_with.Mixed-Case", "", "a/b", "TAG_with.Mixed-Case", {}},
      {"a:_tag", "", "a", "_tag", {}},
      {"a:0", "", "a", "0", {}},
      {"a:" + std::string(128, 'x'), "", "a", std::string(128, 'x'), {}},
  });
}

TEST(Reference, ParsesDigestOnly) {
  check_accepted({
      {"a@" + kSha256, "", "a", {}, kSha256},
      {"quay.io/a/b@" + kSha512, "quay.io", "a/b", {}, kSha512},
      {"localhost:5000/app@" + kSha256, "localhost:5000", "app", {}, kSha256},
      {"a@blake3:" + kHex64, "", "a", {}, "blake3:" + kHex64},
      // Unregistered algorithms that fit the grammar pass (image-spec asks for that).
      {"a@foo+bar.baz:" + std::string(32, 'a'), "", "a", {}, "foo+bar.baz:" + std::string(32, 'a')},
      {"a@x:" + kUpperHex64, "", "a", {}, "x:" + kUpperHex64},
  });
}

TEST(Reference, ParsesTagAndDigest) {
  check_accepted({
      {"a:v1@" + kSha256, "", "a", "v1", kSha256},
      {"localhost:5000/app:v1@" + kSha256, "localhost:5000", "app", "v1", kSha256},
      {"quay.io/a/b:latest@" + kSha512, "quay.io", "a/b", "latest", kSha512},
  });
}

TEST(Reference, AcceptsLengthLimits) {
  const std::string path255 = std::string(127, 'a') + "/" + std::string(127, 'b');
  const std::string long_domain = std::string(200, 'r') + ".example.com";
  check_accepted({
      {path255, "", path255, {}, {}},
      {std::string(255, 'a'), "", std::string(255, 'a'), {}, {}},
      // Only the path counts (distribution/reference since v0.6.0).
      {long_domain + "/" + path255, long_domain, path255, {}, {}},
  });
}

TEST(Reference, RefusesInvalidReferences) {
  const std::vector<Refused> cases = {
      {"", "repository name must have at least one component"},
      {":tag", "repository name must have at least one component"},
      {"@" + kSha256, "repository name must have at least one component"},
      {"localhost/", "repository name must have at least one component"},
      {"quay.io/", "repository name must have at least one component"},
      // Uppercase.
      {"Foo", "repository name must be lowercase"},
      {"foo/Bar", "repository name must be lowercase"},
      {"quay.io/team/App:v1", "repository name must be lowercase"},
      // Path components and separators.
      {"foo//bar", "empty path component"},
      {"/foo", "empty path component"},
      {"foo/", "empty path component"},
      {"foo/-bar", "path component \"-bar\""},
      {"foo/bar-", "path component \"bar-\""},
      {"foo/_a", "path component"},
      {"foo/a_", "path component"},
      {"foo/a___b", "path component \"a___b\""},
      {"foo/a..b", "path component"},
      {"foo/a._b", "path component"},
      {"foo/a_-b", "path component"},
      {"foo/a.", "path component"},
      {"foo/a b", "path component"},
      {"foo/a+b", "path component"},
      {"f\xc3\xb6o", "path component"},
      {"foo/BAR-", "path component \"BAR-\""},              // not only uppercase: a format error
      {"docker.io/a:5000/b", "path component \"a:5000\""},  // only the first component is a domain
      // Domains.
      {"foo:bar/baz", "registry \"foo:bar\""},
      {"localhost:port/foo", "registry"},
      {"localhost:/foo", "registry"},
      {"localhost:5000:1/foo", "registry"},
      {"-bad.com/foo", "registry"},
      {"bad-.com/foo", "registry"},
      {"a..b/foo", "registry"},
      {".a/foo", "registry"},
      {"a_b.com/foo", "registry"},
      {"[::1/foo", "registry"},
      {"[]:5000/foo", "registry"},
      {"[::g]/foo", "registry"},
      {"[::1]x/foo", "registry"},
      {"[::1]:/foo", "registry"},
      // Tags.
      {"foo:", "invalid tag format: tag is empty"},
      {"foo:-tag", "invalid tag format"},
      {"foo:.tag", "invalid tag format"},
      {"foo:ta g", "invalid tag format"},
      {"foo:tag+1", "invalid tag format"},
      {"a/b:v1:v2", "invalid tag format"},
      {"a:" + std::string(129, 'x'), "tag must not be more than 128 characters"},
      // Digests.
      {"foo@", "invalid checksum digest format"},
      {"foo@sha256", "invalid checksum digest format"},
      {"foo@sha256:" + kHex64.substr(1), "invalid checksum digest length"},
      {"foo@sha256:" + kHex64 + "0", "invalid checksum digest length"},
      {"foo@sha256:" + kUpperHex64, "invalid checksum digest format"},
      {"foo@sha512:" + kHex64, "invalid checksum digest length"},
      {"foo@blake3:" + kHex128, "invalid checksum digest length"},
      {"foo@Sha256:" + kHex64, "bad algorithm"},
      {"foo@sha256-:" + kHex64, "bad algorithm"},
      {"foo@" + kSha256 + "@x", "bad encoded part"},
      {"foo@" + kSha256 + ":x", "bad encoded part"},
      {"foo@1sha:" + std::string(32, 'a'), "must start with a letter"},
      {"foo@a.1b:" + std::string(32, 'a'), "must start with a letter"},
      {"foo@foo:" + std::string(31, 'a'), "at least 32 hex characters"},
      {"foo@foo:" + std::string(32, 'z'), "at least 32 hex characters"},
      {"foo@sha256:abc/bar", "bad encoded part"},
      // Lengths.
      {std::string(256, 'a'), "repository name must not be more than 255 characters"},
      {"quay.io/" + std::string(128, 'a') + "/" + std::string(127, 'b'),
       "repository name must not be more than 255 characters"},
  };
  for (const Refused& c : cases) {
    SCOPED_TRACE(c.input);
    const auto message = error_of([&] { Reference::parse(c.input); });
    ASSERT_TRUE(message.has_value());
    EXPECT_NE(message->find(c.reason), std::string::npos) << *message;
    // Whatever strict parsing refuses, normalization refuses too.
    EXPECT_TRUE(error_of([&] { Reference::parse_normalized(c.input); }).has_value());
  }
}

struct Normalized {
  std::string input;
  std::string canonical;
  std::string familiar;
};

TEST(Reference, NormalizesDockerHubNames) {
  const std::vector<Normalized> cases = {
      {"ubuntu", "docker.io/library/ubuntu", "ubuntu"},
      {"ubuntu:22.04", "docker.io/library/ubuntu:22.04", "ubuntu:22.04"},
      {"library/ubuntu", "docker.io/library/ubuntu", "ubuntu"},
      {"docker.io/ubuntu", "docker.io/library/ubuntu", "ubuntu"},
      {"docker.io/library/ubuntu", "docker.io/library/ubuntu", "ubuntu"},
      {"index.docker.io/ubuntu", "docker.io/library/ubuntu", "ubuntu"},
      {"index.docker.io/bitnami/redis:7", "docker.io/bitnami/redis:7", "bitnami/redis:7"},
      {"bitnami/redis", "docker.io/bitnami/redis", "bitnami/redis"},
      {"library/foo/bar", "docker.io/library/foo/bar", "library/foo/bar"},
      {"nginx@" + kSha256, "docker.io/library/nginx@" + kSha256, "nginx@" + kSha256},
      {"nginx:1.25@" + kSha256, "docker.io/library/nginx:1.25@" + kSha256, "nginx:1.25@" + kSha256},
      // Bare names are Hub names even when they look like hosts (distribution's FIXME).
      {"localhost", "docker.io/library/localhost", "localhost"},
      {"localhost:5000", "docker.io/library/localhost:5000", "localhost:5000"},
      {"example.com", "docker.io/library/example.com", "example.com"},
      {"docker.io", "docker.io/library/docker.io", "docker.io"},
      // Other registries are left as given.
      {"registry-1.docker.io/library/nginx", "registry-1.docker.io/library/nginx",
       "registry-1.docker.io/library/nginx"},
      {"localhost/app", "localhost/app", "localhost/app"},
      {"localhost:5000/app:dev", "localhost:5000/app:dev", "localhost:5000/app:dev"},
      {"quay.io/team/app@" + kSha256, "quay.io/team/app@" + kSha256, "quay.io/team/app@" + kSha256},
      {"LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo"},
      {"[::1]:5000/app", "[::1]:5000/app", "[::1]:5000/app"},
      {"127.0.0.1/app", "127.0.0.1/app", "127.0.0.1/app"},
      // The familiar form keeps docker.io where dropping it would name another image.
      {"docker.io/foo.com/bar", "docker.io/foo.com/bar", "docker.io/foo.com/bar"},
      {"docker.io/localhost/bar", "docker.io/localhost/bar", "docker.io/localhost/bar"},
      {kHex64 + ":v1", "docker.io/library/" + kHex64 + ":v1", "library/" + kHex64 + ":v1"},
  };
  for (const Normalized& c : cases) {
    SCOPED_TRACE(c.input);
    Reference ref;
    ASSERT_NO_THROW(ref = Reference::parse_normalized(c.input));
    EXPECT_EQ(ref.string(), c.canonical);
    EXPECT_EQ(ref.familiar(), c.familiar);
    EXPECT_EQ(Reference::parse_normalized(ref.familiar()), ref);
    EXPECT_EQ(Reference::parse(ref.string()), ref);
  }
}

TEST(Reference, RefusesInvalidNormalized) {
  const std::vector<Refused> cases = {
      {kHex64, "cannot specify 64-byte hexadecimal strings"},
      {"Ubuntu", "repository name must be lowercase"},
      {"docker.io/Ubuntu", "repository name must be lowercase"},
      {"index.docker.io/library/Ubuntu:1", "repository name must be lowercase"},
      // 250 characters are a fine path until "library/" is added.
      {std::string(250, 'a'), "must not be more than 255 characters"},
      {"", "at least one component"},
  };
  for (const Refused& c : cases) {
    SCOPED_TRACE(c.input);
    const auto message = error_of([&] { Reference::parse_normalized(c.input); });
    ASSERT_TRUE(message.has_value());
    EXPECT_NE(message->find(c.reason), std::string::npos) << *message;
  }
  // Strict parsing takes what normalization refuses for its additions.
  EXPECT_NO_THROW(Reference::parse(kHex64));
  EXPECT_NO_THROW(Reference::parse(std::string(250, 'a')));
}

TEST(Reference, AddsDefaultTagOnlyWithoutTagOrDigest) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ubuntu", "docker.io/library/ubuntu:latest"},
      {"ubuntu:22.04", "docker.io/library/ubuntu:22.04"},
      {"ubuntu@" + kSha256, "docker.io/library/ubuntu@" + kSha256},
      {"ubuntu:1@" + kSha256, "docker.io/library/ubuntu:1@" + kSha256},
      {"quay.io/a/b", "quay.io/a/b:latest"},
  };
  for (const auto& [input, want] : cases) {
    SCOPED_TRACE(input);
    EXPECT_EQ(Reference::parse_normalized(input).with_default_tag().string(), want);
  }
  EXPECT_EQ(Reference::parse("ubuntu").with_default_tag().string(), "ubuntu:latest");
}

TEST(Reference, NamesAreDomainSlashPath) {
  EXPECT_EQ(Reference::parse("ubuntu:1").name(), "ubuntu");
  EXPECT_EQ(Reference::parse_normalized("ubuntu:1").name(), "docker.io/library/ubuntu");
  EXPECT_EQ(Reference::parse("localhost:5000/a/b:1@" + kSha256).name(), "localhost:5000/a/b");
}

TEST(Reference, SplitsDomain) {
  struct Case {
    std::string input;
    std::string domain;
    std::string remainder;
  };
  const std::vector<Case> cases = {
      {"ubuntu", "", "ubuntu"},
      {"ubuntu:22.04", "", "ubuntu:22.04"},
      {"library/ubuntu", "", "library/ubuntu"},
      {"localhost", "", "localhost"},
      {"localhost:5000", "", "localhost:5000"},
      {"localhostx/a", "", "localhostx/a"},
      {"localhost/a", "localhost", "a"},
      {"localhost:5000/a:b", "localhost:5000", "a:b"},
      {"docker.io/a", "docker.io", "a"},
      {"quay.io/a/b@" + kSha256, "quay.io", "a/b@" + kSha256},
      {"Foo/bar", "Foo", "bar"},
      {"[::1]/a", "[::1]", "a"},
      {"", "", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.input);
    const DomainSplit split = split_domain(c.input);
    EXPECT_EQ(split.domain, c.domain);
    EXPECT_EQ(split.remainder, c.remainder);
    EXPECT_EQ(is_short_name(c.input), c.domain.empty());
  }
}

TEST(Reference, ErrorsNameTheInput) {
  EXPECT_EQ(error_of([] { Reference::parse("foo/Bar"); }),
            "invalid reference \"foo/Bar\": repository name must be lowercase");
  // Odd bytes are escaped and long inputs cut, so messages stay one readable line.
  const auto escaped = error_of([] { Reference::parse("a\n\"b"); });
  ASSERT_TRUE(escaped.has_value());
  EXPECT_NE(escaped->find(R"("a\x0a\"b")"), std::string::npos) << *escaped;
  const auto cut = error_of([] { Reference::parse(std::string(5000, 'a')); });
  ASSERT_TRUE(cut.has_value());
  EXPECT_LT(cut->size(), 400u);
  EXPECT_NE(cut->find("(5000 bytes)"), std::string::npos) << *cut;
}

TEST(Digest, ParsesValidDigests) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {kSha256, "sha256"},
      {kSha512, "sha512"},
      {"blake3:" + kHex64, "blake3"},
      // Unregistered algorithms only need the OCI grammar (image-spec descriptor.md examples).
      {"multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", "multihash+base58"},
      {"sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", "sha256+b64u"},
      {"a.b_c-d+e:x=", "a.b_c-d+e"},
      {"1:2", "1"},
  };
  for (const auto& [input, algorithm] : cases) {
    SCOPED_TRACE(input);
    Digest digest;
    ASSERT_NO_THROW(digest = Digest::parse(input));
    EXPECT_EQ(digest.algorithm, algorithm);
    EXPECT_EQ(digest.string(), input);
    EXPECT_TRUE(Digest::is_valid(input));
  }
}

TEST(Digest, RefusesInvalidDigests) {
  const std::vector<Refused> cases = {
      {"", "invalid checksum digest format"},
      {"sha256", "invalid checksum digest format"},
      {":" + kHex64, "bad algorithm"},
      {"sha256:", "bad encoded part"},
      {"sha256:" + kHex64.substr(1), "invalid checksum digest length"},
      {"sha256:" + kHex64 + "a", "invalid checksum digest length"},
      {"sha256:" + kUpperHex64, "invalid checksum digest format"},
      {"sha256:" + kHex64.substr(1) + "g", "invalid checksum digest format"},
      {"sha512:" + kHex64, "invalid checksum digest length"},
      {"sha512:" + kHex128.substr(1) + "Z", "invalid checksum digest format"},
      {"blake3:" + kHex64.substr(2), "invalid checksum digest length"},
      {"SHA256:" + kHex64, "bad algorithm"},
      {"sha256-:x", "bad algorithm"},
      {"-sha:x", "bad algorithm"},
      {"sha..256:x", "bad algorithm"},
      {"sha 256:x", "bad algorithm"},
      {"foo:a b", "bad encoded part"},
      {"foo:a/b", "bad encoded part"},
      {"foo:abc:def", "bad encoded part"},
  };
  for (const Refused& c : cases) {
    SCOPED_TRACE(c.input);
    const auto message = error_of([&] { Digest::parse(c.input); });
    ASSERT_TRUE(message.has_value());
    EXPECT_NE(message->find(c.reason), std::string::npos) << *message;
    EXPECT_EQ(message->rfind("invalid digest \"", 0), 0u) << *message;
    EXPECT_FALSE(Digest::is_valid(c.input));
  }
}

}  // namespace
}  // namespace stowage
