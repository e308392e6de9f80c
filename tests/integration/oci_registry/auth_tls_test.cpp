// Authentication and TLS against the real docker-registry: htpasswd Basic, Bearer tokens from the
// test token issuer (reused per scope, bad password → Unauthenticated, insufficient scope), TLS
// with a test CA from a containers certs.d folder, and that neither the password nor any bearer
// token reaches an error message or a log line.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "common.h"
#include "oci/copy.h"
#include "oci/registry_client.h"
#include "oci/store.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace stowage::oci {
namespace {

namespace t = stowage::test;
using ::testing::HasSubstr;
using ::testing::Not;

// A JWT (the test issuer's tokens) always starts with base64url('{"').
constexpr const char* kJwtPrefix = "eyJ";

class AuthTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto r = itest::skip_reason()) GTEST_SKIP() << *r;
  }
  t::TempDir dir_{"oci-auth-test"};
};

TEST_F(AuthTlsTest, HtpasswdBasicAuth) {
  t::RegistryFixture registry({.auth = t::RegistryAuth::kHtpasswd});
  const std::string digest = registry.seed_image("team/app", "1.0");
  const Credentials good{registry.username(), registry.password(), ""};
  const Credentials bad{registry.username(), "not-the-password", ""};

  auto with_creds = itest::connector({registry.host()}, good);
  login_check(*with_creds, registry.host(), good);
  Store store(dir_ / "store");
  EXPECT_EQ(
      pull_image(store, itest::sources(registry.host() + "/team/app:1.0"), *with_creds).digest,
      digest);
  EXPECT_TRUE(store.verify().clean());
  EXPECT_EQ(push_image(store, registry.host() + "/team/app:1.0",
                       Reference::parse(registry.host() + "/team/pushed:1"), *with_creds),
            digest);

  try {
    login_check(*with_creds, registry.host(), bad);
    FAIL() << "bad password accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnauthenticated);
    EXPECT_THAT(e.what(), HasSubstr(registry.host()));
    EXPECT_THAT(e.what(), HasSubstr(registry.username()));
    EXPECT_THAT(e.what(), Not(HasSubstr("not-the-password")));
  }
  auto anonymous = itest::connector({registry.host()});
  Store other(dir_ / "other");
  try {
    pull_image(other, itest::sources(registry.host() + "/team/app:1.0"), *anonymous);
    FAIL() << "anonymous pull from an htpasswd registry";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnauthenticated);
    EXPECT_THAT(e.what(), HasSubstr("team/app"));
  }
  EXPECT_TRUE(other.list().empty());
}

TEST_F(AuthTlsTest, TokenAuthReusesTokensAndRefusesBadPasswords) {
  t::RegistryFixture registry({.auth = t::RegistryAuth::kToken});
  const std::string digest = registry.seed_image("team/app", "1.0");
  const Credentials good{registry.username(), registry.password(), ""};
  auto connector = itest::connector({registry.host()}, good);

  login_check(*connector, registry.host(), good);
  auto client = connector->connect(registry.host(), false);
  registry.token_issuer().clear_log();
  const auto info = client->head_manifest("team/app", "1.0");
  EXPECT_EQ(info.digest, digest);
  (void)client->get_manifest("team/app", digest);
  (void)client->list_tags("team/app");
  // One token for repository:team/app:pull, reused by the two later requests.
  EXPECT_EQ(registry.token_issuer().requests(), 1);
  const auto log = registry.token_issuer().request_log();
  ASSERT_EQ(log.size(), 1U);
  EXPECT_EQ(log[0].user, registry.username());
  EXPECT_EQ(log[0].scopes, std::vector<std::string>{"repository:team/app:pull"});

  Store store(dir_ / "store");
  EXPECT_EQ(pull_image(store, itest::sources(registry.host() + "/team/app:1.0"), *connector).digest,
            digest);
  EXPECT_TRUE(store.verify().clean());
  EXPECT_EQ(push_image(store, registry.host() + "/team/app:1.0",
                       Reference::parse(registry.host() + "/team/pushed:1"), *connector,
                       PushOptions{0, {"team/app"}, 4, false, {}}),
            digest);

  const Credentials bad{registry.username(), "wrong-password-123", ""};
  try {
    login_check(*connector, registry.host(), bad);
    FAIL() << "bad password accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnauthenticated);
    EXPECT_THAT(e.what(), HasSubstr(registry.host()));
    EXPECT_THAT(e.what(), Not(HasSubstr("wrong-password-123")));
  }
}

TEST_F(AuthTlsTest, SecretsNeverReachMessagesOrLogs) {
  t::RegistryFixture registry({.auth = t::RegistryAuth::kToken});
  registry.seed_image("team/app", "1.0");
  registry.seed_image("team/secret", "1.0");
  registry.token_issuer().set_repository_actions("team/secret", {});
  const Credentials good{registry.username(), registry.password(), ""};
  const Credentials bad{registry.username(), "wrong-password-123", ""};
  std::string messages;
  std::string logged;
  {
    itest::LogCapture capture;
    auto connector = itest::connector({registry.host()}, good);
    Store store(dir_ / "store");
    (void)pull_image(store, itest::sources(registry.host() + "/team/app:1.0"), *connector);
    // A valid token without the scope: the registry refuses it.
    try {
      pull_image(store, itest::sources(registry.host() + "/team/secret:1.0"), *connector);
      ADD_FAILURE() << "pulled without permission";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kUnauthenticated);
      messages += e.what();
    }
    auto wrong = itest::connector({registry.host()}, bad);
    try {
      pull_image(store, itest::sources(registry.host() + "/team/app:1.0"), *wrong);
      ADD_FAILURE() << "bad password accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kUnauthenticated);
      messages += e.what();
    }
    logged = capture.text();
  }
  // The capture saw the client's lines, token requests included.
  EXPECT_THAT(logged, HasSubstr("registry token request"));
  for (const std::string& text : {messages, logged}) {
    EXPECT_THAT(text, Not(HasSubstr(registry.password())));
    EXPECT_THAT(text, Not(HasSubstr("wrong-password-123")));
    EXPECT_THAT(text, Not(HasSubstr(kJwtPrefix)));
    EXPECT_THAT(text, Not(HasSubstr(base64_encode(registry.username() + ":"))));
    EXPECT_THAT(text, Not(HasSubstr("Bearer ")));
  }
  EXPECT_THAT(messages, HasSubstr("team/secret"));
}

TEST_F(AuthTlsTest, TlsWithACustomCaFromCertsDir) {
  t::RegistryFixture registry({.tls = true});
  const std::string digest = registry.seed_image("team/app", "1.0");
  auto trusted = itest::connector({}, {}, registry.certs_d_dir().string());
  Store store(dir_ / "store");
  const PullResult r =
      pull_image(store, itest::sources(registry.host() + "/team/app:1.0"), *trusted);
  EXPECT_EQ(r.digest, digest);
  EXPECT_TRUE(store.verify().clean());
  auto client = trusted->connect(registry.host(), false);
  EXPECT_THAT(client->base_url(), HasSubstr("https://"));

  // Without the CA the certificate does not verify; nothing is kept.
  auto untrusted = itest::connector({});
  Store other(dir_ / "other");
  try {
    pull_image(other, itest::sources(registry.host() + "/team/app:1.0"), *untrusted);
    FAIL() << "unverified TLS accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnauthenticated);
    EXPECT_THAT(e.what(), HasSubstr(registry.host()));
  }
  EXPECT_TRUE(other.list().empty());

  // An insecure registry skips verification.
  Store insecure(dir_ / "insecure");
  EXPECT_EQ(
      pull_image(insecure, itest::sources(registry.host() + "/team/app:1.0", true), *untrusted)
          .digest,
      digest);
}

}  // namespace
}  // namespace stowage::oci
