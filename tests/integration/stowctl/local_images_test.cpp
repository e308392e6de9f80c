// stowctl's local image commands on images pulled from a real docker-registry: images (podman's
// columns), tag, inspect, rmi by name, by ID (refused with several names unless --force) and -a;
// and bad input: every invalid invocation ends with one "Error: ..." line (or CLI11's usage
// message) and a non-zero exit, never a crash.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "stowctl_env.h"
#include "support/image_seed.h"
#include "support/registry_fixture.h"

namespace stowage::itest {
namespace {

namespace t = stowage::test;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

t::ImageSpec image_spec(const std::string& label) {
  t::ImageSpec spec;
  spec.layers = {{{"etc/base", "base\n"}}, {{"app/" + label, label + "\n"}}};
  spec.labels = {{"test", label}};
  return spec;
}

struct Suite {
  std::unique_ptr<t::RegistryFixture> registry;
  std::string config_a;  // image IDs (config digest hex)
  std::string config_b;
  std::string error;
};

Suite& suite() {
  static Suite s;
  return s;
}

class StowctlLocalImagesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (registry_skip_reason()) return;
    try {
      suite().registry = std::make_unique<t::RegistryFixture>();
      t::TempDir dir("stowctl-layouts");
      suite().config_a =
          t::write_oci_layout(dir / "a", "1", image_spec("a")).config_digest.substr(7);
      suite().config_b =
          t::write_oci_layout(dir / "b", "1", image_spec("b")).config_digest.substr(7);
      suite().registry->seed_image("team/a", "1", image_spec("a"));
      suite().registry->seed_image("team/b", "1", image_spec("b"));
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }
  static void TearDownTestSuite() { suite().registry.reset(); }

  void SetUp() override {
    if (auto r = registry_skip_reason()) GTEST_SKIP() << *r;
    ASSERT_EQ(suite().error, "");
    env_.allow_insecure({host()});
  }

  static std::string host() { return suite().registry->host(); }
  static std::string a() { return host() + "/team/a:1"; }
  static std::string b() { return host() + "/team/b:1"; }

  void pull(const std::string& ref) {
    const auto r = env_.run({"pull", "-q", ref});
    ASSERT_TRUE(r.ok()) << r.describe();
  }
  // "REPO:TAG" of every row of `stowctl images`.
  std::vector<std::string> listed() const {
    const auto r = env_.run({"images"});
    EXPECT_TRUE(r.ok()) << r.describe();
    std::vector<std::string> out;
    const auto all = lines(r.out);
    for (std::size_t i = 1; i < all.size(); ++i) {
      std::istringstream in(all[i]);
      std::string repo, tag;
      in >> repo >> tag;
      out.push_back(repo + ":" + tag);
    }
    return out;
  }

  StowctlEnv env_;
};

TEST_F(StowctlLocalImagesTest, ImagesTagAndInspect) {
  pull(a());
  const auto images = env_.run({"images"});
  ASSERT_TRUE(images.ok()) << images.describe();
  const auto rows = lines(images.out);
  ASSERT_EQ(rows.size(), 2U) << images.out;
  EXPECT_THAT(rows[0], ::testing::MatchesRegex("REPOSITORY +TAG +IMAGE ID +CREATED +SIZE"));
  EXPECT_THAT(rows[1], ::testing::StartsWith(host() + "/team/a "));
  EXPECT_THAT(rows[1], HasSubstr(" " + suite().config_a.substr(0, 12) + " "));

  const auto tag = env_.run({"tag", a(), "localhost/extra:2"});
  ASSERT_TRUE(tag.ok()) << tag.describe();
  EXPECT_THAT(listed(), UnorderedElementsAre(host() + "/team/a:1", "localhost/extra:2"));

  const auto inspect = env_.run({"inspect", "localhost/extra:2"});
  ASSERT_TRUE(inspect.ok()) << inspect.describe();
  const json doc = json::parse(inspect.out);
  ASSERT_EQ(doc.size(), 1U);
  EXPECT_EQ(doc[0]["Id"], suite().config_a);
  EXPECT_THAT(doc[0]["RepoTags"].get<std::vector<std::string>>(),
              UnorderedElementsAre(a(), "localhost/extra:2"));
  // By ID prefix the same image.
  const auto by_id = env_.run({"inspect", suite().config_a.substr(0, 12)});
  ASSERT_TRUE(by_id.ok()) << by_id.describe();
  EXPECT_EQ(json::parse(by_id.out)[0]["Id"], suite().config_a);
}

TEST_F(StowctlLocalImagesTest, RmiByNameUntagsOnlyThatName) {
  pull(a());
  ASSERT_TRUE(env_.run({"tag", a(), "localhost/x:1", "localhost/y:1"}).ok());
  const auto rmi = env_.run({"rmi", "localhost/x:1"});
  ASSERT_TRUE(rmi.ok()) << rmi.describe();
  EXPECT_THAT(rmi.out, HasSubstr("Untagged: localhost/x:1"));
  EXPECT_THAT(rmi.out, Not(HasSubstr("Deleted")));
  EXPECT_THAT(listed(), UnorderedElementsAre(a(), "localhost/y:1"));
  const auto inspect = env_.run({"inspect", "localhost/y:1"});
  ASSERT_TRUE(inspect.ok()) << inspect.describe();
  EXPECT_TRUE(env_.run({"fsck"}).ok());
}

TEST_F(StowctlLocalImagesTest, RmiByIdWithSeveralNamesNeedsForce) {
  pull(a());
  pull(b());
  ASSERT_TRUE(env_.run({"tag", a(), "localhost/x:1"}).ok());
  const std::string id = suite().config_a.substr(0, 12);
  const auto refused = env_.run({"rmi", id});
  EXPECT_TRUE(fails_with_one_error_line(refused));
  EXPECT_THAT(refused.err, HasSubstr("--force"));
  EXPECT_THAT(listed(), UnorderedElementsAre(a(), "localhost/x:1", b()));

  const auto forced = env_.run({"rmi", "--force", id});
  ASSERT_TRUE(forced.ok()) << forced.describe();
  EXPECT_THAT(forced.out, HasSubstr("Deleted: " + suite().config_a));
  EXPECT_THAT(listed(), ElementsAre(b()));
  // The other image is whole.
  const auto fsck = env_.run({"fsck"});
  EXPECT_TRUE(fsck.ok()) << fsck.describe();
}

TEST_F(StowctlLocalImagesTest, RmiAllRemovesEverything) {
  pull(a());
  pull(b());
  ASSERT_TRUE(env_.run({"tag", b(), "localhost/z:1"}).ok());
  const auto rmi = env_.run({"rmi", "-a"});
  ASSERT_TRUE(rmi.ok()) << rmi.describe();
  EXPECT_THAT(listed(), IsEmpty());
  const auto quiet = env_.run({"images", "-q"});
  ASSERT_TRUE(quiet.ok()) << quiet.describe();
  EXPECT_THAT(quiet.out, IsEmpty());
}

TEST_F(StowctlLocalImagesTest, BadInputGivesOneErrorLine) {
  pull(a());
  const std::vector<std::vector<std::string>> invalid = {
      {"pull", "Bad//Reference"},
      {"pull", host() + "/team/a:bad tag"},
      {"save", "--format", "tarball", "-o", env_.path("out.tar").string(), a()},
      {"load", "-i", env_.path("missing.tar").string()},
      {"rmi", "localhost/never-was:1"},
      {"rmi", "-a", a()},
      {"inspect", "localhost/never-was:1"},
      {"tag", a(), "Invalid//Name"},
      {"images", "--format", "yaml"},
      {"diff", a(), "localhost/never-was:1"},
      {"push", a(), "no-registry-here"},
      {"search", "--filter", "stars=many", host() + "/team"},
      {"login", "--password-stdin", host()},
  };
  for (const auto& args : invalid) {
    SCOPED_TRACE(t::join_command(args));
    EXPECT_TRUE(fails_with_one_error_line(env_.run(args)));
  }
  // Not a tar on standard input.
  EXPECT_TRUE(fails_with_one_error_line(env_.run({"load"}, "this is not an archive\n")));
  EXPECT_FALSE(std::filesystem::exists(env_.path("out.tar")));

  // Usage errors are CLI11's: a message naming what is missing, exit 2.
  const std::vector<std::vector<std::string>> usage_errors = {
      {"save", a()}, {"pull"}, {"no-such-command"}, {"images", "--bogus"}};
  for (const auto& args : usage_errors) {
    SCOPED_TRACE(t::join_command(args));
    const auto r = env_.run(args);
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_FALSE(r.err.empty());
    EXPECT_THAT(r.err, Not(HasSubstr("terminate called")));
  }
  EXPECT_THAT(env_.run({"save", a()}).err, HasSubstr("--output is required"));
  // Nothing of that changed the store.
  EXPECT_THAT(listed(), ElementsAre(a()));
}

}  // namespace
}  // namespace stowage::itest
