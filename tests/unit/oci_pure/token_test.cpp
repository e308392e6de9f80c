#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "oci/auth.h"

namespace stowage::oci {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return {};
}

Clock::WallTime at(std::int64_t seconds, std::int64_t nanos = 0) {
  return Clock::WallTime(std::chrono::duration_cast<Clock::WallTime::duration>(
      std::chrono::seconds(seconds) + std::chrono::nanoseconds(nanos)));
}

TEST(Scope, BuildsRepositoryScopes) {
  EXPECT_EQ(repository_scope("library/nginx", {"pull"}), "repository:library/nginx:pull");
  EXPECT_EQ(repository_scope("a/b", {"pull", "push"}), "repository:a/b:pull,push");
  EXPECT_EQ(repository_scope("x", {"*"}), "repository:x:*");
}

TEST(TokenUrl, BuildsQueries) {
  struct Case {
    TokenRequest request;
    std::string want;
  };
  const Case cases[] = {
      {{"https://auth.docker.io/token",
        "registry.docker.io",
        {"repository:samalba/my-app:pull,push"},
        "",
        false,
        ""},
       "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Asamalba%2Fmy-"
       "app%3Apull%2Cpush"},
      {{"https://r/token", "svc", {"repository:a:pull", "repository:b:push"}, "alice", true, "cid"},
       "https://r/token?service=svc&scope=repository%3Aa%3Apull&scope=repository%3Ab%3Apush&"
       "account=alice&offline_token=true&client_id=cid"},
      {{"https://r/token?x=1", "s", {}, "", false, ""}, "https://r/token?x=1&service=s"},
      {{"https://r/token?", "s", {}, "", false, ""}, "https://r/token?service=s"},
      {{"https://r/token?x=1&", "s", {}, "", false, ""}, "https://r/token?x=1&service=s"},
      {{"https://r/token#frag", "", {"registry:catalog:*"}, "", false, ""},
       "https://r/token?scope=registry%3Acatalog%3A%2A"},
      {{"HTTP://r:8080/t", "", {}, "", false, ""}, "HTTP://r:8080/t"},
      {{"https://r/t", "my service", {""}, "a b+c", false, ""},
       "https://r/t?service=my+service&account=a+b%2Bc"},
  };
  for (const auto& c : cases) EXPECT_EQ(build_token_url(c.request), c.want) << c.request.realm;
  for (const char* bad : {"", "auth.docker.io/token", "ftp://x/token", "https://", "https:///x",
                          "https://a b/token", "javascript:alert(1)"}) {
    TokenRequest r;
    r.realm = bad;
    EXPECT_THAT(error_of([&] { build_token_url(r); }), HasSubstr("is not an http(s) URL")) << bad;
  }
}

TEST(TokenUrl, RequestFromChallengeMergesScopes) {
  const auto challenges = parse_www_authenticate(
      R"(Bearer realm="https://r/t",service="s",scope="repository:a:pull repository:b:pull")");
  const TokenRequest r =
      token_request_from(challenges[0], {"repository:b:pull", "repository:c:push", ""});
  EXPECT_EQ(r.realm, "https://r/t");
  EXPECT_EQ(r.service, "s");
  EXPECT_EQ(r.scopes, (std::vector<std::string>{"repository:a:pull", "repository:b:pull",
                                                "repository:c:push"}));
  const TokenKey k = token_key(r);
  EXPECT_EQ(k.scope, "repository:a:pull repository:b:pull repository:c:push");
  EXPECT_EQ(k.realm, "https://r/t");
  EXPECT_EQ(k.service, "s");
  EXPECT_EQ(k.account, "");
}

TEST(Rfc3339, ParsesTimes) {
  struct Case {
    std::string text;
    std::optional<Clock::WallTime> want;
  };
  const Case cases[] = {
      {"1970-01-01T00:00:00Z", at(0)},
      {"2023-11-14T22:13:20Z", at(1'700'000'000)},
      {"2023-11-14T22:13:20.5Z", at(1'700'000'000, 500'000'000)},
      {"2023-11-14T22:13:20.123456789Z", at(1'700'000'000, 123'456'789)},
      {"2023-11-14T22:13:20.1234567891Z", at(1'700'000'000, 123'456'789)},
      {"2023-11-15T00:13:20+02:00", at(1'700'000'000)},
      {"2023-11-14T20:13:20-02:00", at(1'700'000'000)},
      {"2023-11-14t22:13:20z", at(1'700'000'000)},
      {"2024-02-29T00:00:00Z", at(1'709'164'800)},
      {"2023-02-29T00:00:00Z", std::nullopt},
      {"2023-13-01T00:00:00Z", std::nullopt},
      {"2023-11-14T24:00:00Z", std::nullopt},
      {"2023-11-14T22:13:60Z", std::nullopt},
      {"2023-11-14T22:13:20", std::nullopt},
      {"2023-11-14 22:13:20Z", std::nullopt},
      {"2023-11-14T22:13:20.Z", std::nullopt},
      {"2023-11-14T22:13:20+0200", std::nullopt},
      {"2023-11-14T22:13:20Zjunk", std::nullopt},
      {"0001-01-01T00:00:00Z", std::nullopt},  // outside WallTime's range
      {"", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(parse_rfc3339(c.text), c.want) << c.text;
}

TEST(TokenResponse, ParsesEveryShape) {
  struct Case {
    std::string body;
    TokenResponse want;
  };
  const Case cases[] = {
      {R"({"token":"t1"})", {"t1", "", 60s, std::nullopt}},
      {R"({"access_token":"a1"})", {"a1", "", 60s, std::nullopt}},
      {R"({"token":"t1","access_token":"a1","expires_in":300})", {"t1", "", 300s, std::nullopt}},
      {R"({"token":"","access_token":"a1"})", {"a1", "", 60s, std::nullopt}},
      {R"({"token":"t","expires_in":10})", {"t", "", 60s, std::nullopt}},
      {R"({"token":"t","expires_in":-5})", {"t", "", 60s, std::nullopt}},
      {R"({"token":"t","expires_in":18446744073709551615})", {"t", "", 86400s, std::nullopt}},
      {R"({"token":"t","expires_in":172800})", {"t", "", 86400s, std::nullopt}},
      {R"({"token":"t","expires_in":null,"refresh_token":"r"})", {"t", "r", 60s, std::nullopt}},
      {R"({"token":"t","issued_at":"2023-11-14T22:13:20Z"})", {"t", "", 60s, at(1'700'000'000)}},
      {R"({"token":"t","issued_at":"0001-01-01T00:00:00Z"})", {"t", "", 60s, std::nullopt}},
      {R"({"token":"t","scope":"x","extra":{"a":[1]}})", {"t", "", 60s, std::nullopt}},
  };
  for (const auto& c : cases) EXPECT_EQ(parse_token_response(c.body), c.want) << c.body;
}

TEST(TokenResponse, RefusesBadBodiesWithoutEchoingTokens) {
  const std::pair<std::string, std::string> cases[] = {
      {"[]", "must be a JSON object"},
      {"{}", "neither \"token\" nor \"access_token\" is set"},
      {R"({"token":""})", "neither \"token\" nor \"access_token\" is set"},
      {R"({"token":5})", "\"token\" must be a string"},
      {R"({"token":"secret-tok","access_token":5})", "\"access_token\" must be a string"},
      {R"({"token":"secret-tok","expires_in":"60"})", "\"expires_in\" must be an integer"},
      {R"({"token":"secret-tok","expires_in":1.5})", "\"expires_in\" must be an integer"},
      {R"({"token":"secret-tok","expires_in":99999999999999999999})",
       "\"expires_in\" must be an integer"},
      {R"({"token":"secret-tok","issued_at":"yesterday"})", "\"issued_at\" is not an RFC 3339"},
      {R"({"token":"secret-tok","refresh_token":[]})", "\"refresh_token\" must be a string"},
      {R"({"token":"secret-tok)", "invalid JSON at byte"},
      {R"({"token":"secret-tok","expires_in":1e400})", "invalid JSON: a number is out of range"},
  };
  for (const auto& [body, want] : cases) {
    const std::string msg = error_of([&] { parse_token_response(body); });
    EXPECT_THAT(msg, HasSubstr("token response: " + want)) << body;
    EXPECT_THAT(msg, Not(HasSubstr("secret-tok")));
  }
  std::string big = R"({"token":")" + std::string(kMaxTokenResponseBytes, 'x') + "\"}";
  EXPECT_THAT(error_of([&] { parse_token_response(big); }), HasSubstr("more than the 1048576"));
}

TEST(TokenExpiry, CountsFromIssuedAtOrNow) {
  FakeClock clock(at(1'700'000'000));
  clock.advance(1h);  // wall time is now 1'700'003'600
  const auto now = clock.now();
  TokenResponse r{"t", "", 300s, std::nullopt};
  EXPECT_EQ(token_expiry(r, clock), now + 300s);
  r.issued_at = at(1'700'003'600 - 100);
  EXPECT_EQ(token_expiry(r, clock), now + 200s);
  r.issued_at = at(1'700'003'600 + 1000);  // in the future (clock skew): counts as now
  EXPECT_EQ(token_expiry(r, clock), now + 300s);
  r.issued_at = at(1'600'000'000);  // long ago: already expired
  EXPECT_EQ(token_expiry(r, clock), now);
  r = TokenResponse{"t", "", 5s, std::nullopt};  // constructed by hand: still at least 60 s
  EXPECT_EQ(token_expiry(r, clock), now + 60s);
}

TEST(TokenCache, ServesTokensUntilTheyExpire) {
  FakeClock clock;
  TokenCache cache(clock, 5s);
  const TokenKey pull{"https://auth/token", "reg", "repository:a:pull", ""};
  const TokenKey push{"https://auth/token", "reg", "repository:a:pull,push", ""};
  EXPECT_EQ(cache.get(pull), std::nullopt);
  cache.put(pull, parse_token_response(R"({"token":"p1","expires_in":60})"));
  cache.put(push, "p2", clock.now() + 120s);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.get(pull), "p1");
  EXPECT_EQ(cache.get(push), "p2");
  clock.advance(54s);
  EXPECT_EQ(cache.get(pull), "p1");
  clock.advance(1s);  // 55 s: within the 5 s leeway of expiry
  EXPECT_EQ(cache.get(pull), std::nullopt);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.get(push), "p2");
  clock.advance(70s);
  EXPECT_EQ(cache.get(push), std::nullopt);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(TokenCache, KeysKeepRealmsServicesScopesAndAccountsApart) {
  FakeClock clock;
  TokenCache cache(clock);
  const TokenKey base{"https://a/token", "s", "repository:x:pull", ""};
  std::vector<TokenKey> keys{base, base, base, base, base};
  keys[1].realm = "https://b/token";
  keys[2].service = "other";
  keys[3].scope = "repository:y:pull";
  keys[4].account = "alice";
  for (std::size_t i = 0; i < keys.size(); ++i) {
    cache.put(keys[i], "t" + std::to_string(i), clock.now() + 1h);
  }
  for (std::size_t i = 0; i < keys.size(); ++i)
    EXPECT_EQ(cache.get(keys[i]), "t" + std::to_string(i));
  cache.put(base, "replaced", clock.now() + 1h);
  EXPECT_EQ(cache.get(base), "replaced");
  cache.erase(base);
  EXPECT_EQ(cache.get(base), std::nullopt);
  EXPECT_EQ(cache.size(), 4u);
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
}

TEST(TokenCache, PutDropsExpiredEntries) {
  FakeClock clock;
  TokenCache cache(clock, 0s);
  cache.put({"r", "s", "a", ""}, "old", clock.now() + 10s);
  clock.advance(11s);
  cache.put({"r", "s", "b", ""}, "new", clock.now() + 10s);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(TokenCache, IsSafeAcrossThreads) {
  FakeClock clock;
  TokenCache cache(clock);
  std::vector<std::jthread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, &clock, t] {
      for (int i = 0; i < 500; ++i) {
        const TokenKey k{"r", "s", "scope" + std::to_string(i % 16), std::to_string(t)};
        cache.put(k, "v", clock.now() + 1h);
        EXPECT_EQ(cache.get(k), "v");
      }
    });
  }
  threads.clear();
  EXPECT_EQ(cache.size(), 64u);
}

}  // namespace
}  // namespace stowage::oci
