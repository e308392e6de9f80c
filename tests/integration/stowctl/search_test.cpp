// stowctl search: the catalog of the real docker-registry (REGISTRY/term, and a bare term through
// unqualified-search-registries), and Docker Hub's /v1/search API served by
// tests/support/search_server.h (a stand-in: no Debian package serves that API), with
// `podman search` 4.3 pointed at the same servers as the oracle for which names come back under
// --limit and --filter, and for the table and JSON formats.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "stowctl_env.h"
#include "support/podman_peer.h"
#include "support/registry_fixture.h"
#include "support/search_server.h"

namespace stowage::itest {
namespace {

namespace t = stowage::test;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string insecure_conf(const std::string& host, const std::string& extra = {}) {
  return fmt::format("{}[[registry]]\nlocation = \"{}\"\ninsecure = true\n", extra, host);
}

class StowctlSearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto r = registry_skip_reason()) GTEST_SKIP() << *r;
  }
};

TEST_F(StowctlSearchTest, CatalogOfDockerRegistry) {
  t::RegistryFixture registry;
  const std::string host = registry.host();
  for (const char* repo : {"team/app", "team/tools", "other/thing"}) {
    registry.seed_image(repo, "1");
  }
  StowctlEnv env;
  env.allow_insecure({host});
  const auto qualified = env.run({"search", host + "/team"});
  ASSERT_TRUE(qualified.ok()) << qualified.describe();
  EXPECT_THAT(first_column(qualified.out), ElementsAre(host + "/team/app", host + "/team/tools"));
  EXPECT_TRUE(lines(qualified.out).at(0).starts_with("NAME "));

  // A bare term searches the unqualified-search-registries.
  env.write_registries_conf(
      insecure_conf(host, fmt::format("unqualified-search-registries = [\"{}\"]\n", host)));
  const auto unqualified = env.run({"search", "thing"});
  ASSERT_TRUE(unqualified.ok()) << unqualified.describe();
  EXPECT_THAT(first_column(unqualified.out), ElementsAre(host + "/other/thing"));

  // Without search registries a bare term is an error that says what to do.
  env.allow_insecure({host});
  const auto none = env.run({"search", "thing"});
  EXPECT_TRUE(fails_with_one_error_line(none));
  EXPECT_THAT(none.err, HasSubstr("unqualified-search-registries"));

  if (const std::string why = t::podman_unavailable_reason(); !why.empty()) {
    GTEST_SKIP() << "podman oracle: " << why;
  }
  t::PodmanPeer podman;
  t::write_text_file(podman.path("registries.conf"), insecure_conf(host));
  const auto oracle = podman.podman({"search", host + "/team"});
  ASSERT_TRUE(oracle.ok()) << oracle.describe();
  EXPECT_EQ(qualified.out, oracle.out);
}

class StowctlSearchApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = t::podman_unavailable_reason(); !why.empty()) {
      GTEST_SKIP() << why;
    }
    env_.allow_insecure({server_.host()});
    t::write_text_file(podman_.path("registries.conf"), insecure_conf(server_.host()));
  }

  std::pair<t::RunResult, t::RunResult> both(const std::vector<std::string>& options,
                                             const std::string& term = "stow") {
    std::vector<std::string> args = {"search"};
    args.insert(args.end(), options.begin(), options.end());
    args.push_back(server_.host() + "/" + term);
    return {env_.run(args), podman_.podman(args)};
  }

  t::SearchServer server_;
  StowctlEnv env_;
  t::PodmanPeer podman_;
};

TEST_F(StowctlSearchApiTest, SameNamesAsPodmanUnderLimitsAndFilters) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"--limit", "3"},
      {"--filter", "is-official=true"},
      {"--filter", "stars=100"},
      {"--filter", "is-automated=false"},
      {"--filter", "is-official=true", "--limit", "3"},
      {"--filter", "is-automated=true", "--limit", "5"},
      {"--filter", "stars=10", "--filter", "is-automated=false", "--limit", "6"},
  };
  for (const auto& options : cases) {
    SCOPED_TRACE(t::join_command(options));
    const auto [ours, theirs] = both(options);
    ASSERT_TRUE(ours.ok()) << ours.describe();
    ASSERT_TRUE(theirs.ok()) << theirs.describe();
    EXPECT_EQ(first_column(ours.out), first_column(theirs.out));
    EXPECT_FALSE(first_column(ours.out).empty());
  }
  // The limit goes to the server as n, and applies before the filters: of the first 3 results
  // only the official ones remain.
  const auto requests = server_.requests();
  EXPECT_TRUE(std::any_of(requests.begin(), requests.end(), [](const std::string& target) {
    return target.find("n=3") != std::string::npos && target.find("q=stow") != std::string::npos;
  }));
  const auto [limited, oracle] = both({"--filter", "is-official=true", "--limit", "3"});
  EXPECT_THAT(first_column(limited.out),
              ElementsAre(server_.host() + "/stowage", server_.host() + "/stow"));
}

TEST_F(StowctlSearchApiTest, TableAndJsonAsPodmanPrintsThem) {
  // Default table: NAME and DESCRIPTION, descriptions cut at 44 characters, newlines flattened.
  const auto [table, podman_table] = both({});
  ASSERT_TRUE(table.ok()) << table.describe();
  ASSERT_TRUE(podman_table.ok()) << podman_table.describe();
  EXPECT_EQ(table.out, podman_table.out);
  EXPECT_THAT(lines(table.out).at(0), ::testing::MatchesRegex("NAME +DESCRIPTION"));
  EXPECT_THAT(table.out, HasSubstr("The Stowage operator and node agent in one i..."));

  const auto [full, podman_full] = both({"--no-trunc"});
  ASSERT_TRUE(full.ok()) << full.describe();
  EXPECT_EQ(full.out, podman_full.out);
  EXPECT_THAT(full.out, HasSubstr("built from the release branch"));

  const auto [js, podman_js] = both({"--format", "json", "--limit", "4"});
  ASSERT_TRUE(js.ok()) << js.describe();
  ASSERT_TRUE(podman_js.ok()) << podman_js.describe();
  EXPECT_EQ(json::parse(js.out), json::parse(podman_js.out));
  EXPECT_EQ(json::parse(js.out).size(), 4U);

  // Nothing found: both print nothing at all.
  const auto [empty, podman_empty] = both({}, "no-such-image");
  ASSERT_TRUE(empty.ok()) << empty.describe();
  ASSERT_TRUE(podman_empty.ok()) << podman_empty.describe();
  EXPECT_EQ(empty.out, podman_empty.out);
  EXPECT_THAT(empty.out, IsEmpty());
}

}  // namespace
}  // namespace stowage::itest
