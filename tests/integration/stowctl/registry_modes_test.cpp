// stowctl pull, push, login and logout against the real docker-registry in its four modes: plain
// HTTP (insecure in registries.conf), TLS with a test CA given through --cert-dir, htpasswd Basic
// auth and Bearer tokens from the test token issuer. Also: credentials never reach stdout or
// stderr, even at --log-level debug and trace.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "stowctl_env.h"
#include "support/registry_fixture.h"

namespace stowage::itest {
namespace {

namespace t = stowage::test;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

t::ImageSpec small_image(const std::string& label) {
  t::ImageSpec spec;
  spec.layers = {{{"app/hello.txt", "hello from " + label + "\n"}}};
  spec.labels = {{"test", label}};
  return spec;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// None of `secrets` appears in what the command printed.
::testing::AssertionResult no_secrets(const t::RunResult& r,
                                      const std::vector<std::string>& secrets) {
  for (const auto& s : secrets) {
    if (r.out.find(s) != std::string::npos || r.err.find(s) != std::string::npos) {
      return ::testing::AssertionFailure() << "\"" << s << "\" printed by " << r.describe();
    }
  }
  return ::testing::AssertionSuccess();
}

json read_json(const std::filesystem::path& path) {
  const std::string text = t::read_text_file(path);
  return text.empty() ? json::object() : json::parse(text);
}

class StowctlRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto r = registry_skip_reason()) GTEST_SKIP() << *r;
  }
};

TEST_F(StowctlRegistryTest, PlainHttpPullAndPushWhenMarkedInsecure) {
  t::RegistryFixture registry;
  const std::string host = registry.host();
  const std::string digest = registry.seed_image("team/app", "1", small_image("plain"));
  StowctlEnv env;
  env.allow_insecure({host});

  const auto pull = env.run({"pull", "-q", host + "/team/app:1"});
  ASSERT_TRUE(pull.ok()) << pull.describe();
  EXPECT_EQ(trimmed(pull.out), digest);
  const auto push = env.run({"push", "-q", host + "/team/app:1", host + "/team/copy:2"});
  ASSERT_TRUE(push.ok()) << push.describe();
  EXPECT_EQ(trimmed(push.out), digest);

  // What was pushed comes back from the registry into a fresh store, same digest.
  StowctlEnv other;
  other.allow_insecure({host});
  const auto back = other.run({"pull", "-q", host + "/team/copy:2"});
  ASSERT_TRUE(back.ok()) << back.describe();
  EXPECT_EQ(trimmed(back.out), digest);
}

TEST_F(StowctlRegistryTest, PlainHttpRegistryNotMarkedInsecureIsRefused) {
  t::RegistryFixture registry;
  registry.seed_image("team/app", "1", small_image("plain"));
  StowctlEnv env;  // empty registries.conf: HTTPS only
  // --retry 0: the failed TLS handshake is retried like a network error otherwise (15 s).
  const auto pull = env.run({"--retry", "0", "pull", registry.host() + "/team/app:1"});
  EXPECT_TRUE(fails_with_one_error_line(pull));
  EXPECT_THAT(pull.err, HasSubstr("https://" + registry.host()));  // no silent plain HTTP
  EXPECT_TRUE(std::filesystem::is_empty(env.root() / "blobs" / "sha256"));
}

TEST_F(StowctlRegistryTest, TlsWithTestCaFromCertDir) {
  t::RegistryFixture registry({.tls = true});
  const std::string host = registry.host();
  const std::string digest = registry.seed_image("team/app", "1", small_image("tls"));

  // Not trusted yet: a verification error, not a silent downgrade.
  StowctlEnv env;
  const auto untrusted = env.run({"pull", host + "/team/app:1"});
  EXPECT_TRUE(fails_with_one_error_line(untrusted));
  EXPECT_THAT(untrusted.err, HasSubstr("certificate"));

  env.trust_ca(host, registry.ca_pem());
  const auto pull = env.run({"pull", "-q", host + "/team/app:1"});
  ASSERT_TRUE(pull.ok()) << pull.describe();
  EXPECT_EQ(trimmed(pull.out), digest);
  const auto push = env.run({"push", "-q", host + "/team/app:1", host + "/team/pushed:tls"});
  ASSERT_TRUE(push.ok()) << push.describe();
  EXPECT_EQ(trimmed(push.out), digest);
}

TEST_F(StowctlRegistryTest, HtpasswdLoginPullPushLogout) {
  t::RegistryFixture registry({.auth = t::RegistryAuth::kHtpasswd});
  const std::string host = registry.host();
  const std::string digest = registry.seed_image("team/app", "1", small_image("basic"));
  StowctlEnv env;
  env.allow_insecure({host});
  const std::vector<std::string> secrets = {
      registry.password(), base64(registry.username() + ":" + registry.password())};

  const auto anonymous = env.run({"pull", host + "/team/app:1"});
  EXPECT_TRUE(fails_with_one_error_line(anonymous));

  const std::string wrong = "not-the-" + registry.password();
  const auto refused =
      env.run({"login", "-u", registry.username(), "--password-stdin", host}, wrong + "\n");
  EXPECT_TRUE(fails_with_one_error_line(refused));
  EXPECT_TRUE(no_secrets(refused, {wrong, base64(registry.username() + ":" + wrong)}));
  EXPECT_FALSE(read_json(env.authfile()).value("auths", json::object()).contains(host));

  const auto login = env.run({"login", "-u", registry.username(), "--password-stdin", host},
                             registry.password() + "\n");
  ASSERT_TRUE(login.ok()) << login.describe();
  EXPECT_THAT(login.out, HasSubstr("Login Succeeded"));
  EXPECT_TRUE(no_secrets(login, secrets));
  EXPECT_EQ(read_json(env.authfile())["auths"][host]["auth"],
            base64(registry.username() + ":" + registry.password()));
  const auto who = env.run({"login", "--get-login", host});
  ASSERT_TRUE(who.ok()) << who.describe();
  EXPECT_EQ(trimmed(who.out), registry.username());

  const auto pull = env.run({"pull", "-q", host + "/team/app:1"});
  ASSERT_TRUE(pull.ok()) << pull.describe();
  EXPECT_EQ(trimmed(pull.out), digest);
  const auto push = env.run({"push", "-q", host + "/team/app:1", host + "/team/pushed:basic"});
  ASSERT_TRUE(push.ok()) << push.describe();
  EXPECT_EQ(trimmed(push.out), digest);

  const auto logout = env.run({"logout", host});
  ASSERT_TRUE(logout.ok()) << logout.describe();
  EXPECT_FALSE(read_json(env.authfile()).value("auths", json::object()).contains(host));
  EXPECT_THAT(t::read_text_file(env.authfile()), Not(HasSubstr(secrets[1])));
  const auto after = env.run({"pull", host + "/team/app:1"});
  EXPECT_TRUE(fails_with_one_error_line(after));
  EXPECT_TRUE(fails_with_one_error_line(env.run({"logout", host})));
}

TEST_F(StowctlRegistryTest, BearerTokenLoginPullPush) {
  t::RegistryFixture registry({.auth = t::RegistryAuth::kToken});
  const std::string host = registry.host();
  const std::string digest = registry.seed_image("team/app", "1", small_image("token"));
  StowctlEnv env;
  env.allow_insecure({host});

  const auto refused =
      env.run({"login", "-u", registry.username(), "--password-stdin", host}, "wrong-password\n");
  EXPECT_TRUE(fails_with_one_error_line(refused));
  EXPECT_THAT(refused.err, Not(HasSubstr("wrong-password")));

  registry.token_issuer().clear_log();
  const auto login = env.run({"login", "-u", registry.username(), "--password-stdin", host},
                             registry.password() + "\n");
  ASSERT_TRUE(login.ok()) << login.describe();
  const auto pull = env.run({"pull", "-q", host + "/team/app:1"});
  ASSERT_TRUE(pull.ok()) << pull.describe();
  EXPECT_EQ(trimmed(pull.out), digest);
  const auto push = env.run({"push", "-q", host + "/team/app:1", host + "/team/pushed:token"});
  ASSERT_TRUE(push.ok()) << push.describe();
  EXPECT_EQ(trimmed(push.out), digest);

  // Every token went to our user, and the push asked for push rights on its repository.
  const auto log = registry.token_issuer().request_log();
  ASSERT_FALSE(log.empty());
  bool push_scope = false;
  for (const auto& r : log) {
    EXPECT_EQ(r.user, registry.username());
    EXPECT_EQ(r.status, 200);
    for (const auto& s : r.scopes)
      push_scope |=
          s.find("team/pushed:") != std::string::npos && s.find("push") != std::string::npos;
  }
  EXPECT_TRUE(push_scope);
}

// --log-level debug and trace print what the commands do, but never the password, the Basic
// credentials or a token (every token of the issuer is a JWT, so begins "eyJ").
TEST_F(StowctlRegistryTest, CredentialsNeverInDebugOrTraceOutput) {
  for (const auto auth : {t::RegistryAuth::kHtpasswd, t::RegistryAuth::kToken}) {
    SCOPED_TRACE(auth == t::RegistryAuth::kToken ? "token" : "htpasswd");
    t::RegistryFixture registry({.auth = auth});
    const std::string host = registry.host();
    registry.seed_image("team/app", "1", small_image("secrets"));
    const std::vector<std::string> secrets = {
        registry.password(), base64(registry.username() + ":" + registry.password()), "eyJ"};
    for (const std::string level : {"debug", "trace"}) {
      SCOPED_TRACE(level);
      StowctlEnv env;
      env.allow_insecure({host});
      const std::vector<t::RunResult> runs = {
          env.run(
              {"--log-level", level, "login", "-u", registry.username(), "--password-stdin", host},
              registry.password() + "\n"),
          env.run({"--log-level", level, "pull", host + "/team/app:1"}),
          env.run({"--log-level", level, "push", host + "/team/app:1", host + "/team/logs:1"}),
          env.run({"--log-level", level, "search", host + "/team"}),
      };
      std::size_t logged = 0;
      for (const auto& r : runs) {
        EXPECT_TRUE(r.ok()) << r.describe();
        EXPECT_TRUE(no_secrets(r, secrets));
        logged += r.err.size();
      }
      // The log level took effect: the requests were logged.
      EXPECT_GT(logged, 500U);
      EXPECT_THAT(runs[1].err, HasSubstr("/v2/team/app/manifests/1"));
    }
  }
}

}  // namespace
}  // namespace stowage::itest
