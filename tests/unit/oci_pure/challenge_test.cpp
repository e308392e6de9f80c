#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/error.h"
#include "oci/auth.h"

namespace stowage::oci {
namespace {

using ::testing::HasSubstr;
using Params = std::map<std::string, std::string>;

Challenge Ch(std::string scheme, Params params = {}, std::string token68 = {}) {
  return Challenge{std::move(scheme), std::move(params), std::move(token68)};
}

TEST(WwwAuthenticate, ParsesChallenges) {
  struct Case {
    std::string header;
    std::vector<Challenge> want;
  };
  const Case cases[] = {
      {R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push")",
       {Ch("bearer", {{"realm", "https://auth.docker.io/token"},
                      {"service", "registry.docker.io"},
                      {"scope", "repository:samalba/my-app:pull,push"}})}},
      {R"(Basic realm="Registry Realm")", {Ch("basic", {{"realm", "Registry Realm"}})}},
      {R"(BASIC Realm="x")", {Ch("basic", {{"realm", "x"}})}},
      {R"(bEaReR REALM="https://a/token", Service=reg)",
       {Ch("bearer", {{"realm", "https://a/token"}, {"service", "reg"}})}},
      {R"(Basic realm="a", Bearer realm="b",service="s")",
       {Ch("basic", {{"realm", "a"}}), Ch("bearer", {{"realm", "b"}, {"service", "s"}})}},
      {R"(Negotiate, Basic realm="x")", {Ch("negotiate"), Ch("basic", {{"realm", "x"}})}},
      {R"(Negotiate abc123==, Basic realm="x")",
       {Ch("negotiate", {}, "abc123=="), Ch("basic", {{"realm", "x"}})}},
      {"Negotiate YII+/w==", {Ch("negotiate", {}, "YII+/w==")}},
      {"Bearer realm", {Ch("bearer", {}, "realm")}},  // a lone word is a token68
      {R"(Bearer realm="quo\"ted\\back",error="insufficient_scope")",
       {Ch("bearer", {{"realm", R"(quo"ted\back)"}, {"error", "insufficient_scope"}})}},
      {R"(Bearer realm = "spaced" , service= "s" ,, scope ="a b")",
       {Ch("bearer", {{"realm", "spaced"}, {"service", "s"}, {"scope", "a b"}})}},
      {R"(Bearer realm="a,b",scope="")", {Ch("bearer", {{"realm", "a,b"}, {"scope", ""}})}},
      {R"(Bearer realm="first",realm="second")", {Ch("bearer", {{"realm", "first"}})}},
      {"Bearer", {Ch("bearer")}},
      {"  ,Bearer  , ", {Ch("bearer")}},
      {"", {}},
      {"   ", {}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.header);
    EXPECT_EQ(parse_www_authenticate(c.header), c.want);
  }
}

TEST(WwwAuthenticate, RefusesMalformedHeaders) {
  const std::pair<std::string, std::string> cases[] = {
      {R"(Bearer realm="unterminated)", "unterminated quoted string"},
      {R"(Bearer realm="x\)", "unterminated quoted string"},
      {"Bearer realm service=x", "expected '=' after a parameter name"},
      {"Bearer realm=https://a", "expected ',' between parameters"},
      {R"(Bearer realm="x" service="y")", "expected ',' between parameters"},
      {"=x", "expected an authentication scheme"},
      {"Bearer\"x\"", "expected a space after the scheme"},
      {R"(Bearer ="x")", "expected a parameter name"},
  };
  for (const auto& [header, want] : cases) {
    try {
      parse_www_authenticate(header);
      ADD_FAILURE() << "accepted " << header;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument);
      EXPECT_THAT(e.what(), HasSubstr("WWW-Authenticate: " + want)) << header;
    }
  }
}

TEST(WwwAuthenticate, JoinsHeadersAndFindsSchemes) {
  const auto all = parse_www_authenticate(
      std::vector<std::string>{R"(Basic realm="b")", R"(Bearer realm="r",service="s")"});
  ASSERT_EQ(all.size(), 2u);
  const Challenge* bearer = find_challenge(all, "BEARER");
  ASSERT_NE(bearer, nullptr);
  EXPECT_EQ(bearer->param("Realm"), "r");
  EXPECT_EQ(bearer->param("missing"), "");
  EXPECT_EQ(find_challenge(all, "basic"), &all[0]);
  EXPECT_EQ(find_challenge(all, "digest"), nullptr);
}

TEST(WwwAuthenticate, SplitsScopes) {
  const auto c = parse_www_authenticate(
      R"(Bearer realm="r",scope="repository:a:pull  repository:localhost:5000/b:pull,push ")");
  EXPECT_EQ(c[0].scopes(), (std::vector<std::string>{"repository:a:pull",
                                                     "repository:localhost:5000/b:pull,push"}));
  EXPECT_TRUE(Ch("bearer").scopes().empty());
}

}  // namespace
}  // namespace stowage::oci
