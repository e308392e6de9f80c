// A Client whose RestConfig reads a projected-style token file (FileTokenSource) keeps working
// when the file is rotated under it: the kubelet's atomic `..data` symlink swap replaces token A
// (ServiceAccount `a`) with token B (ServiceAccount `b`), and the same Client then authenticates
// as `b`, either once the re-read period passed (FakeClock of the token source advanced 61 s) or
// after A is refused with 401 (account `a` deleted): one re-read of the file and a retry.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "base/clock.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/errors.h"
#include "kube/token_source.h"
#include "support/kube_fixture.h"
#include "support/process.h"

namespace stowage::kube {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::BinaryLookup;
using test::ControlPlane;
using test::ControlPlaneOptions;
using ::testing::IsEmpty;

const GroupVersionResource kSelfSubjectReviews{"authentication.k8s.io", "v1", "selfsubjectreviews"};
const GroupVersionResource kConfigMaps{"", "v1", "configmaps"};

struct SuiteState {
  BinaryLookup binaries;
  std::unique_ptr<ControlPlane> plane;
  std::string error;
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

// A kubelet-style projected volume: <dir>/token -> ..data/token, ..data -> ..<generation>/.
// rotate() writes the new generation and renames a fresh symlink over ..data (atomic).
class ProjectedTokenDir {
 public:
  explicit ProjectedTokenDir(fs::path dir) : dir_(std::move(dir)) { fs::create_directories(dir_); }
  fs::path token_path() const { return dir_ / "token"; }

  void write(const std::string& token) {
    const std::string generation = "..gen_" + std::to_string(++generation_);
    fs::create_directories(dir_ / generation);
    std::ofstream(dir_ / generation / "token") << token << "\n";
    const fs::path tmp = dir_ / "..data_tmp";
    fs::remove(tmp);
    fs::create_directory_symlink(generation, tmp);
    fs::rename(tmp, dir_ / "..data");  // rename(2) replaces the old symlink atomically
    if (!fs::is_symlink(token_path())) fs::create_symlink("..data/token", token_path());
  }

 private:
  fs::path dir_;
  int generation_ = 0;
};

class KubeTokenRotation : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite().binaries = ControlPlane::find_binaries();
    if (!suite().binaries.dir) return;
    try {
      ControlPlaneOptions options;
      options.with_controller_manager = false;  // TokenRequest needs only the apiserver
      suite().plane = std::make_unique<ControlPlane>(options);
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }
  static void TearDownTestSuite() { suite().plane.reset(); }

  void SetUp() override {
    const BinaryLookup& binaries = suite().binaries;
    if (!binaries.dir) {
      if (binaries.required) GTEST_FAIL() << binaries.problem;
      GTEST_SKIP() << binaries.problem;
    }
    ASSERT_THAT(suite().error, IsEmpty());
    plane_ = suite().plane.get();
  }

  void kubectl(const std::vector<std::string>& args) {
    const test::RunResult r = plane_->kubectl(args);
    ASSERT_TRUE(r.ok()) << r.describe();
  }

  // Namespace `ns` with ServiceAccounts a and b, both allowed to get configmaps there, and a
  // configmap `probe`.
  void make_accounts(const std::string& ns) {
    kubectl({"create", "namespace", ns});
    kubectl({"-n", ns, "create", "serviceaccount", "a"});
    kubectl({"-n", ns, "create", "serviceaccount", "b"});
    kubectl({"-n", ns, "create", "role", "cm-reader", "--verb=get", "--resource=configmaps"});
    kubectl({"-n", ns, "create", "rolebinding", "cm-reader", "--role=cm-reader",
             "--serviceaccount=" + ns + ":a", "--serviceaccount=" + ns + ":b"});
    kubectl({"-n", ns, "create", "configmap", "probe", "--from-literal=k=v"});
  }

  std::string mint_token(const std::string& ns, const std::string& sa) {
    const test::RunResult r = plane_->kubectl({"-n", ns, "create", "token", sa});
    EXPECT_TRUE(r.ok()) << r.describe();
    std::string token = r.out;
    while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) token.pop_back();
    return token;
  }

  // The Client under test: the fixture's CA, and the token file read through `token_clock`.
  std::unique_ptr<Client> make_client(const fs::path& token_file, Clock& token_clock) {
    RestConfig config;
    config.server = plane_->server_url();
    config.tls.ca_pem = plane_->ca_pem();
    config.token_source = std::make_shared<FileTokenSource>(token_file, token_clock);
    return std::make_unique<Client>(config, http_, real_clock());
  }

  // Who the server says the client is (SelfSubjectReview).
  static std::string whoami(Client& client) {
    const json review =
        client.create({kSelfSubjectReviews, "", "", ""},
                      {{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "SelfSubjectReview"}});
    return review.at("status").at("userInfo").value("username", "");
  }

  ControlPlane* plane_ = nullptr;
  http::Client http_{http::ClientOptions{.proxy = ""}};
};

TEST_F(KubeTokenRotation, PeriodicReReadPicksUpSwappedFile) {
  const std::string ns = "rot-period";
  make_accounts(ns);
  const std::string token_a = mint_token(ns, "a");
  const std::string token_b = mint_token(ns, "b");
  ASSERT_FALSE(token_a.empty());
  ASSERT_FALSE(token_b.empty());

  ProjectedTokenDir dir(plane_->dir() / "projected-period");
  dir.write(token_a);
  FakeClock token_clock;
  auto client = make_client(dir.token_path(), token_clock);

  EXPECT_EQ(whoami(*client), "system:serviceaccount:" + ns + ":a");
  EXPECT_EQ(client->get({kConfigMaps, ns, "probe", ""})["data"]["k"], "v");

  dir.write(token_b);
  // Within the period the cached token stays in use (A is still valid: no 401).
  token_clock.advance(std::chrono::seconds(30));
  EXPECT_EQ(whoami(*client), "system:serviceaccount:" + ns + ":a");

  // Past the 60 s period the file is re-read: the same client is now B.
  token_clock.advance(std::chrono::seconds(31));
  EXPECT_EQ(whoami(*client), "system:serviceaccount:" + ns + ":b");
  EXPECT_EQ(client->get({kConfigMaps, ns, "probe", ""})["data"]["k"], "v");
}

TEST_F(KubeTokenRotation, UnauthorizedForcesReReadAndRetry) {
  const std::string ns = "rot-401";
  make_accounts(ns);
  const std::string token_a = mint_token(ns, "a");
  const std::string token_b = mint_token(ns, "b");
  ASSERT_FALSE(token_a.empty());
  ASSERT_FALSE(token_b.empty());

  ProjectedTokenDir dir(plane_->dir() / "projected-401");
  dir.write(token_a);
  FakeClock token_clock;  // never advanced: only a 401 can make the source re-read the file
  auto client = make_client(dir.token_path(), token_clock);
  EXPECT_EQ(whoami(*client), "system:serviceaccount:" + ns + ":a");

  dir.write(token_b);
  EXPECT_EQ(whoami(*client), "system:serviceaccount:" + ns + ":a");  // cached, still valid

  // Deleting `a` invalidates A (bound token, service-account lookup): the server answers 401, the
  // client invalidates its source, re-reads the file, and retries the call with B.
  kubectl({"-n", ns, "delete", "serviceaccount", "a", "--wait=true"});
  std::string user;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  do {
    user = whoami(*client);  // must never throw: the 401 is absorbed by the retry
    if (user != "system:serviceaccount:" + ns + ":a") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(user, "system:serviceaccount:" + ns + ":b");
  EXPECT_EQ(client->get({kConfigMaps, ns, "probe", ""})["data"]["k"], "v");

  // A really is refused now: a client pinned to A gets 401.
  RestConfig pinned;
  pinned.server = plane_->server_url();
  pinned.tls.ca_pem = plane_->ca_pem();
  pinned.token_source = std::make_shared<StaticTokenSource>(token_a);
  Client pinned_client(pinned, http_, real_clock());
  try {
    whoami(pinned_client);
    ADD_FAILURE() << "token A still accepted after deleting ServiceAccount a";
  } catch (const KubeError& e) {
    EXPECT_EQ(e.http_status(), 401);
  }
}

}  // namespace
}  // namespace stowage::kube
