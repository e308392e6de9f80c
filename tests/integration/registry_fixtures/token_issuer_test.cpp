// TokenIssuer with the real registry as the judge: its grants are exactly the requested actions
// the policy allows (so a pull-only repository answers pushes with insufficient_scope), it counts
// requests (so tests can prove a client reuses tokens), it refuses bad credentials, serves the
// OAuth2 POST form with refresh tokens, and the registry rejects foreign and expired tokens.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "peers.h"
#include "support/registry_fixture.h"

namespace stowage::test {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr const char* kManifestAccept =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

#define SKIP_UNLESS_AVAILABLE()                                             \
  do {                                                                      \
    if (auto r = RegistryFixture::unavailable_reason()) GTEST_SKIP() << *r; \
    if (auto r = peers::skopeo_missing()) GTEST_SKIP() << *r;               \
  } while (false)

std::string url_encode(const std::string& s) {
  std::string out;
  for (const unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// GET <realm>?service=..&scope=.. with Basic credentials when `auth` is set.
http::Response get_token(TokenIssuer& issuer, const std::vector<std::string>& scopes,
                         const std::optional<std::string>& auth, const std::string& extra = "") {
  std::string url = issuer.realm() + "?service=" + url_encode(issuer.service());
  for (const auto& s : scopes) url += "&scope=" + url_encode(s);
  url += extra;
  http::Request request;
  request.url = url;
  request.timeout = std::chrono::seconds(10);
  if (auth) request.headers.set("Authorization", *auth);
  return peers::client().send(request);
}

std::string token_of(const http::Response& response) {
  const json body = json::parse(response.body);
  EXPECT_EQ(body.at("token"), body.at("access_token"));
  return body.at("token").get<std::string>();
}

// The JWT's header and claims.
std::pair<json, json> decode(const std::string& token) {
  const auto dot1 = token.find('.');
  const auto dot2 = token.find('.', dot1 + 1);
  return {json::parse(peers::base64url_decode(token.substr(0, dot1))),
          json::parse(peers::base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1)))};
}

http::Response registry_call(const RegistryFixture& registry, const std::string& method,
                             const std::string& path, const std::string& token) {
  http::Request request;
  request.method = method;
  request.url = registry.url() + path;
  request.timeout = std::chrono::seconds(10);
  request.headers.set("Accept", kManifestAccept);
  if (!token.empty()) request.headers.set("Authorization", "Bearer " + token);
  return peers::client().send(request);
}

class TokenIssuerTest : public ::testing::Test {
 protected:
  std::optional<std::string> user_auth(const RegistryFixture& registry) {
    return peers::basic_auth(registry.username(), registry.password());
  }
};

TEST_F(TokenIssuerTest, GrantsExactlyTheAllowedActionsAndTheRegistryEnforcesThem) {
  SKIP_UNLESS_AVAILABLE();
  RegistryFixture registry({.auth = RegistryAuth::kToken});
  TokenIssuer& issuer = registry.token_issuer();
  registry.seed_image("team/app", "1.0");
  registry.seed_image("team/readonly", "1.0");
  issuer.set_repository_actions("team/readonly", {"pull"});

  const auto response =
      get_token(issuer, {"repository:team/readonly:pull,push"}, user_auth(registry));
  ASSERT_EQ(response.status, 200) << response.body;
  const json body = json::parse(response.body);
  EXPECT_EQ(body.at("expires_in"), 300);
  EXPECT_THAT(body.at("issued_at").get<std::string>(),
              ::testing::MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"));
  const std::string token = token_of(response);
  const auto [header, claims] = decode(token);
  EXPECT_EQ(header.at("alg"), "ES256");
  EXPECT_EQ(header.at("x5c").size(), 1U);
  EXPECT_EQ(claims.at("aud"), issuer.service());
  EXPECT_EQ(claims.at("iss"), issuer.issuer());
  EXPECT_EQ(claims.at("sub"), registry.username());
  EXPECT_EQ(claims.at("access"),
            json::parse(R"([{"type":"repository","name":"team/readonly","actions":["pull"]}])"));

  // The registry honours the grant: pull yes, push no (insufficient_scope names what was asked).
  EXPECT_EQ(registry_call(registry, "HEAD", "/v2/team/readonly/manifests/1.0", token).status, 200);
  const auto push = registry_call(registry, "POST", "/v2/team/readonly/blobs/uploads/", token);
  EXPECT_EQ(push.status, 401);
  const std::string challenge = push.headers.get("WWW-Authenticate").value_or("");
  EXPECT_THAT(challenge, HasSubstr("error=\"insufficient_scope\""));
  // distribution lists the actions in map order: either way round.
  EXPECT_THAT(challenge,
              ::testing::AnyOf(HasSubstr("scope=\"repository:team/readonly:pull,push\""),
                               HasSubstr("scope=\"repository:team/readonly:push,pull\"")));
  // Another repository is not covered by the token at all.
  EXPECT_EQ(registry_call(registry, "HEAD", "/v2/team/app/manifests/1.0", token).status, 401);

  // Several scopes in one request: each judged on its own.
  const auto both =
      get_token(issuer, {"repository:team/app:pull,push", "repository:team/readonly:push"},
                user_auth(registry));
  ASSERT_EQ(both.status, 200);
  EXPECT_EQ(decode(token_of(both)).second.at("access"),
            json::parse(R"([{"type":"repository","name":"team/app","actions":["pull","push"]}])"));
  EXPECT_EQ(issuer.request_log().back().granted,
            std::vector<std::string>{"repository:team/app:pull,push"});

  // The oracle agrees: skopeo cannot push to the pull-only repository, and still can elsewhere.
  EXPECT_THROW(registry.seed_image("team/readonly", "2.0"), Error);
  EXPECT_NO_THROW(registry.seed_image("team/app", "2.0"));
}

TEST_F(TokenIssuerTest, CountsRequestsSoTestsCanProveTokenReuse) {
  SKIP_UNLESS_AVAILABLE();
  RegistryFixture registry({.auth = RegistryAuth::kToken});
  TokenIssuer& issuer = registry.token_issuer();
  registry.seed_image("team/app", "1.0");
  issuer.clear_log();

  const std::string token =
      token_of(get_token(issuer, {"repository:team/app:pull"}, user_auth(registry)));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(registry_call(registry, "GET", "/v2/team/app/manifests/1.0", token).status, 200);
  }
  EXPECT_TRUE(issuer.wait_for_requests(1, std::chrono::seconds(1)));
  EXPECT_EQ(issuer.requests(), 1);
  EXPECT_EQ(issuer.tokens_issued(), 1);
  const auto log = issuer.request_log();
  ASSERT_EQ(log.size(), 1U);
  EXPECT_EQ(log[0].method, "GET");
  EXPECT_EQ(log[0].user, registry.username());
  EXPECT_EQ(log[0].scopes, std::vector<std::string>{"repository:team/app:pull"});
  EXPECT_EQ(log[0].granted, std::vector<std::string>{"repository:team/app:pull"});

  // A client without a token asks again: the count moves.
  get_token(issuer, {"repository:team/app:pull"}, user_auth(registry));
  EXPECT_EQ(issuer.requests(), 2);
}

TEST_F(TokenIssuerTest, RefusesBadCredentialsAndGivesAnonymousNoAccess) {
  SKIP_UNLESS_AVAILABLE();
  RegistryFixture registry({.auth = RegistryAuth::kToken});
  TokenIssuer& issuer = registry.token_issuer();
  registry.seed_image("team/app", "1.0");

  const auto wrong = get_token(issuer, {"repository:team/app:pull"},
                               peers::basic_auth(registry.username(), "wrong"));
  EXPECT_EQ(wrong.status, 401);
  EXPECT_THAT(wrong.headers.get("WWW-Authenticate").value_or(""), HasSubstr("Basic realm="));
  EXPECT_THAT(wrong.body, HasSubstr("UNAUTHORIZED"));

  const auto anonymous = get_token(issuer, {"repository:team/app:pull"}, std::nullopt);
  ASSERT_EQ(anonymous.status, 200);
  const std::string token = token_of(anonymous);
  EXPECT_EQ(decode(token).second.at("access"), json::array());
  EXPECT_EQ(issuer.request_log().back().user, "");
  const auto denied = registry_call(registry, "GET", "/v2/team/app/manifests/1.0", token);
  EXPECT_EQ(denied.status, 401);
  EXPECT_THAT(denied.headers.get("WWW-Authenticate").value_or(""),
              HasSubstr("error=\"insufficient_scope\""));

  // A changed password takes effect for later requests.
  issuer.set_password("rotated");
  EXPECT_EQ(get_token(issuer, {}, user_auth(registry)).status, 401);
  EXPECT_EQ(get_token(issuer, {}, peers::basic_auth(registry.username(), "rotated")).status, 200);
}

TEST_F(TokenIssuerTest, AnonymousCanBeRefusedOrGrantedPerRepository) {
  TokenIssuer closed({.allow_anonymous = false});
  EXPECT_EQ(get_token(closed, {"repository:a:pull"}, std::nullopt).status, 401);

  TokenIssuerOptions options;
  options.anonymous_repository_actions = {{"public/app", {"pull"}}};
  TokenIssuer open(options);
  const auto r = get_token(open, {"repository:public/app:pull,push", "repository:private/x:pull"},
                           std::nullopt);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(decode(token_of(r)).second.at("access"),
            json::parse(R"([{"type":"repository","name":"public/app","actions":["pull"]}])"));
  // Names with a port keep their colons; the catalog scope is granted to the user only.
  const auto named = get_token(open, {"repository:127.0.0.1:5000/x:pull", "registry:catalog:*"},
                               peers::basic_auth(options.username, options.password));
  ASSERT_EQ(named.status, 200);
  EXPECT_EQ(decode(token_of(named)).second.at("access"),
            json::parse(R"([{"type":"repository","name":"127.0.0.1:5000/x","actions":["pull"]},
                            {"type":"registry","name":"catalog","actions":["*"]}])"));
}

TEST_F(TokenIssuerTest, ServesTheOAuthPostFormAndRefreshTokens) {
  SKIP_UNLESS_AVAILABLE();
  RegistryFixture registry({.auth = RegistryAuth::kToken});
  TokenIssuer& issuer = registry.token_issuer();
  registry.seed_image("team/app", "1.0");

  const auto post = [&](const std::string& form) {
    http::Request request;
    request.method = "POST";
    request.url = issuer.realm();
    request.timeout = std::chrono::seconds(10);
    request.headers.set("Content-Type", "application/x-www-form-urlencoded");
    request.body = form;
    return peers::client().send(request);
  };
  const auto first =
      post(fmt::format("grant_type=password&service={}&client_id=stowage-test&access_type=offline&"
                       "scope={}&username={}&password={}",
                       url_encode(issuer.service()), url_encode("repository:team/app:pull"),
                       url_encode(registry.username()), url_encode(registry.password())));
  ASSERT_EQ(first.status, 200) << first.body;
  const json body = json::parse(first.body);
  EXPECT_EQ(body.at("scope"), "repository:team/app:pull");
  const std::string refresh = body.at("refresh_token").get<std::string>();
  EXPECT_EQ(registry_call(registry, "GET", "/v2/team/app/manifests/1.0",
                          body.at("access_token").get<std::string>())
                .status,
            200);

  const auto refreshed = post(fmt::format(
      "grant_type=refresh_token&service={}&client_id=stowage-test&scope={}&refresh_token={}",
      url_encode(issuer.service()), url_encode("repository:team/app:pull"), refresh));
  ASSERT_EQ(refreshed.status, 200) << refreshed.body;
  EXPECT_EQ(registry_call(registry, "GET", "/v2/team/app/manifests/1.0",
                          json::parse(refreshed.body).at("access_token").get<std::string>())
                .status,
            200);
  EXPECT_EQ(issuer.request_log().back().grant_type, "refresh_token");
  EXPECT_EQ(post("grant_type=refresh_token&refresh_token=unknown").status, 401);
  EXPECT_EQ(post("grant_type=password&username=x&password=y").status, 401);

  // GET with offline_token=true returns one too.
  const auto offline = get_token(issuer, {"repository:team/app:pull"}, user_auth(registry),
                                 "&offline_token=true&client_id=stowage-test");
  ASSERT_EQ(offline.status, 200);
  EXPECT_TRUE(json::parse(offline.body).contains("refresh_token"));
}

TEST_F(TokenIssuerTest, RegistryRejectsForeignAndExpiredTokens) {
  SKIP_UNLESS_AVAILABLE();
  RegistryFixture registry({.auth = RegistryAuth::kToken});
  registry.seed_image("team/app", "1.0");
  const std::vector<std::string> access = {"repository:team/app:pull"};
  // Control: a token made by the registry's own issuer works.
  EXPECT_EQ(registry_call(registry, "GET", "/v2/team/app/manifests/1.0",
                          registry.token_issuer().make_token(access))
                .status,
            200);
  // Same names, another key: the signature does not verify against rootcertbundle.
  TokenIssuer stranger;
  EXPECT_EQ(
      registry_call(registry, "GET", "/v2/team/app/manifests/1.0", stranger.make_token(access))
          .status,
      401);

  // Tokens that expired beyond distribution's 60 s leeway.
  RegistryOptions expired_options;
  expired_options.auth = RegistryAuth::kToken;
  expired_options.token.token_lifetime = std::chrono::seconds(-120);
  RegistryFixture expired(expired_options);
  const auto response = get_token(expired.token_issuer(), {"repository:team/app:pull"},
                                  peers::basic_auth(expired.username(), expired.password()));
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(json::parse(response.body).at("expires_in"), 300);
  EXPECT_EQ(registry_call(expired, "GET", "/v2/", token_of(response)).status, 401);
}

}  // namespace
}  // namespace stowage::test
