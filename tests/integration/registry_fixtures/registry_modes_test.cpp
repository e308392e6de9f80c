// RegistryFixture's modes against real clients: skopeo (and podman for token auth) must push and
// inspect through TLS with the fixture's test CA only, through htpasswd Basic auth with the
// fixture's account only, and through the Bearer token flow of the fixture's TokenIssuer.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "peers.h"
#include "support/registry_fixture.h"

namespace stowage::test {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

#define SKIP_UNLESS_AVAILABLE()                                             \
  do {                                                                      \
    if (auto r = RegistryFixture::unavailable_reason()) GTEST_SKIP() << *r; \
    if (auto r = peers::skopeo_missing()) GTEST_SKIP() << *r;               \
  } while (false)

// The digest skopeo reports for docker://<ref>, or "" when inspect failed (result in `out`).
std::string inspect_digest(const std::vector<std::string>& args, RunResult& out) {
  std::vector<std::string> argv = {"inspect"};
  argv.insert(argv.end(), args.begin(), args.end());
  out = peers::skopeo(argv);
  if (!out.ok()) return "";
  return nlohmann::json::parse(out.out).value("Digest", "");
}

http::Response get_v2(const RegistryFixture& registry, bool with_ca) {
  http::Request request;
  request.url = registry.url() + "/v2/";
  request.timeout = std::chrono::seconds(10);
  if (with_ca) request.tls = registry.tls_options();
  return peers::client().send(request);
}

TEST(RegistryFixturePlain, KeepsServingPlainHttpWithoutAuth) {
  SKIP_UNLESS_AVAILABLE();
  RegistryFixture registry;
  EXPECT_EQ(registry.url(), "http://" + registry.host());
  EXPECT_EQ(get_v2(registry, false).status, 200);
  EXPECT_THROW(registry.ca_file(), Error);
  EXPECT_THROW(registry.token_issuer(), Error);
  const std::string digest = registry.seed_image("team/app", "1.0");
  RunResult r;
  EXPECT_EQ(inspect_digest({"--tls-verify=false", "--no-creds",
                            fmt::format("docker://{}/team/app:1.0", registry.host())},
                           r),
            digest)
      << r.describe();
}

TEST(RegistryFixtureTls, SkopeoTrustsTheRegistryOnlyWithTheTestCa) {
  SKIP_UNLESS_AVAILABLE();
  RegistryFixture registry({.tls = true});
  EXPECT_EQ(registry.url(), "https://" + registry.host());
  // certs.d layout: <certs_d_dir>/<host:port>/ca.crt, holding the CA.
  EXPECT_EQ(registry.cert_dir(), registry.certs_d_dir() / registry.host());
  EXPECT_EQ(read_text_file(registry.cert_dir() / "ca.crt"), registry.ca_pem());
  EXPECT_EQ(read_text_file(registry.ca_file()), registry.ca_pem());
  EXPECT_THAT(registry.ca_pem(), StartsWith("-----BEGIN CERTIFICATE-----"));

  const std::string digest = registry.seed_image("team/app", "1.0");
  const std::string ref = fmt::format("docker://{}/team/app:1.0", registry.host());

  RunResult without_ca;
  EXPECT_EQ(inspect_digest({"--no-creds", ref}, without_ca), "");
  EXPECT_THAT(peers::lower(without_ca.err), HasSubstr("certificate"))
      << "skopeo should fail on the unknown CA: " << without_ca.describe();

  RunResult with_ca;
  EXPECT_EQ(
      inspect_digest({"--no-creds", "--cert-dir", registry.cert_dir().string(), ref}, with_ca),
      digest)
      << with_ca.describe();

  // The same for libcurl through http::Client: verification fails without the CA.
  EXPECT_EQ(get_v2(registry, true).status, 200);
  try {
    get_v2(registry, false);
    ADD_FAILURE() << "TLS verification passed without the test CA";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnauthenticated) << e.what();
  }
}

TEST(RegistryFixtureHtpasswd, AcceptsTheAccountAndRefusesAWrongPassword) {
  SKIP_UNLESS_AVAILABLE();
  RegistryFixture registry({.auth = RegistryAuth::kHtpasswd});
  const auto challenge = get_v2(registry, false);
  EXPECT_EQ(challenge.status, 401);
  EXPECT_THAT(challenge.headers.get("WWW-Authenticate").value_or(""), StartsWith("Basic realm="));

  const std::string digest = registry.seed_image("team/app", "1.0");
  const std::string ref = fmt::format("docker://{}/team/app:1.0", registry.host());
  RunResult r;
  EXPECT_EQ(inspect_digest({"--tls-verify=false", "--creds", registry.credentials(), ref}, r),
            digest)
      << r.describe();

  EXPECT_EQ(
      inspect_digest({"--tls-verify=false", "--creds", registry.username() + ":wrong", ref}, r),
      "");
  EXPECT_THAT(peers::lower(r.err), HasSubstr("unauthorized")) << r.describe();
  EXPECT_EQ(inspect_digest({"--tls-verify=false", "--no-creds", ref}, r), "");
  EXPECT_THAT(peers::lower(r.err), HasSubstr("unauthorized")) << r.describe();
  EXPECT_THAT(registry.log(), HasSubstr("401"));

  // An auth.json written by the fixture works as --authfile.
  TempDir dir;
  registry.write_auth_file(dir / "auth.json");
  EXPECT_EQ(
      inspect_digest({"--tls-verify=false", "--authfile", (dir / "auth.json").string(), ref}, r),
      digest)
      << r.describe();
}

TEST(RegistryFixtureToken, SkopeoPushesAndInspectsThroughTheTokenFlow) {
  SKIP_UNLESS_AVAILABLE();
  RegistryFixture registry({.auth = RegistryAuth::kToken});
  TokenIssuer& issuer = registry.token_issuer();
  const auto challenge = get_v2(registry, false);
  EXPECT_EQ(challenge.status, 401);
  EXPECT_EQ(challenge.headers.get("WWW-Authenticate").value_or(""),
            fmt::format("Bearer realm=\"{}\",service=\"{}\"", issuer.realm(), issuer.service()));

  const std::string digest = registry.seed_image("team/app", "1.0");
  bool push_granted = false;
  for (const auto& req : issuer.request_log()) {
    EXPECT_EQ(req.status, 200);
    EXPECT_EQ(req.user, registry.username());
    EXPECT_EQ(req.service, issuer.service());
    for (const auto& g : req.granted) push_granted |= g == "repository:team/app:pull,push";
  }
  EXPECT_TRUE(push_granted) << "no push grant seen during the push";

  issuer.clear_log();
  const std::string ref = fmt::format("docker://{}/team/app:1.0", registry.host());
  RunResult r;
  EXPECT_EQ(inspect_digest({"--tls-verify=false", "--creds", registry.credentials(), ref}, r),
            digest)
      << r.describe();
  ASSERT_GE(issuer.requests(), 1);
  EXPECT_EQ(issuer.tokens_issued(), issuer.requests());
  EXPECT_THAT(issuer.request_log().front().scopes, ::testing::Contains("repository:team/app:pull"));

  issuer.clear_log();
  EXPECT_EQ(
      inspect_digest({"--tls-verify=false", "--creds", registry.username() + ":wrong", ref}, r),
      "");
  EXPECT_THAT(peers::lower(r.err), HasSubstr("unauthorized")) << r.describe();
  ASSERT_GE(issuer.requests(), 1);
  EXPECT_EQ(issuer.request_log().back().status, 401);
  EXPECT_EQ(issuer.tokens_issued(), 0);
}

TEST(RegistryFixtureToken, KidHeaderAndRs256AreAcceptedToo) {
  SKIP_UNLESS_AVAILABLE();
  RegistryOptions options;
  options.auth = RegistryAuth::kToken;
  options.token.key = KeyAlgorithm::kRsa2048;
  options.token.key_header = TokenKeyHeader::kKid;
  RegistryFixture registry(options);
  // libtrust fingerprint: 12 groups of 4 base32 characters.
  EXPECT_THAT(registry.token_issuer().key_id(),
              ::testing::MatchesRegex("([A-Z2-7]{4}:){11}[A-Z2-7]{4}"));
  const std::string digest = registry.seed_image("team/app", "1.0");
  RunResult r;
  EXPECT_EQ(inspect_digest({"--tls-verify=false", "--creds", registry.credentials(),
                            fmt::format("docker://{}/team/app:1.0", registry.host())},
                           r),
            digest)
      << r.describe();
}

TEST(RegistryFixtureToken, CombinesWithTls) {
  SKIP_UNLESS_AVAILABLE();
  RegistryFixture registry({.tls = true, .auth = RegistryAuth::kToken});
  const std::string digest = registry.seed_image("team/app", "1.0");
  RunResult r;
  EXPECT_EQ(
      inspect_digest({"--cert-dir", registry.cert_dir().string(), "--creds", registry.credentials(),
                      fmt::format("docker://{}/team/app:1.0", registry.host())},
                     r),
      digest)
      << r.describe();
  EXPECT_GE(registry.token_issuer().tokens_issued(), 2);  // push, then inspect
}

// podman over TLS (the fixture's certs.d folder as --cert-dir) and the token flow.
TEST(RegistryFixtureToken, PodmanLogsInAndPullsOverTls) {
  SKIP_UNLESS_AVAILABLE();
  if (auto r = peers::podman_missing()) GTEST_SKIP() << *r;
  RegistryFixture registry({.tls = true, .auth = RegistryAuth::kToken});
  const std::string digest = registry.seed_image("team/app", "1.0");
  TokenIssuer& issuer = registry.token_issuer();
  issuer.clear_log();

  peers::Podman podman;
  TempDir dir;
  const std::string authfile = (dir / "auth.json").string();
  const std::string cert_dir = registry.cert_dir().string();
  RunResult bad = podman.run({"login", "--cert-dir", cert_dir, "--authfile", authfile, "-u",
                              registry.username(), "-p", "wrong", registry.host()});
  EXPECT_FALSE(bad.ok()) << bad.describe();
  RunResult untrusted = podman.run({"login", "--authfile", authfile, "-u", registry.username(),
                                    "-p", registry.password(), registry.host()});
  EXPECT_FALSE(untrusted.ok()) << untrusted.describe();
  EXPECT_THAT(peers::lower(untrusted.err), HasSubstr("certificate")) << untrusted.describe();
  RunResult login = podman.run({"login", "--cert-dir", cert_dir, "--authfile", authfile, "-u",
                                registry.username(), "-p", registry.password(), registry.host()});
  ASSERT_TRUE(login.ok()) << login.describe();
  EXPECT_THAT(read_text_file(authfile), HasSubstr(registry.host()));
  const int after_login = issuer.requests();
  EXPECT_GE(after_login, 2);

  const std::string ref = fmt::format("{}/team/app:1.0", registry.host());
  RunResult pull = podman.run({"pull", "--cert-dir", cert_dir, "--authfile", authfile,
                               "--signature-policy", podman.policy_path(), ref});
  ASSERT_TRUE(pull.ok()) << pull.describe();
  EXPECT_GT(issuer.requests(), after_login);
  RunResult digest_out = podman.run({"image", "inspect", "--format", "{{.Digest}}", ref});
  ASSERT_TRUE(digest_out.ok()) << digest_out.describe();
  EXPECT_THAT(digest_out.out, HasSubstr(digest));
}

}  // namespace
}  // namespace stowage::test
