// ControlPlane against the real components: the apiserver is ready and serves kubectl, RBAC
// denies a non-admin client certificate, kube-controller-manager's garbage collector deletes a
// dependent whose owner is gone, and restart_apiserver() keeps what etcd stores. One control
// plane per test process (ctest runs each case in its own process, so each starts one).
#include "support/kube_fixture.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>

#include "http/client.h"
#include "support/process.h"

namespace stowage::test {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct SuiteState {
  BinaryLookup binaries;
  std::unique_ptr<ControlPlane> plane;
  std::string error;  // why the control plane did not start
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

class KubeFixtureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite().binaries = ControlPlane::find_binaries();
    if (!suite().binaries.dir) return;
    try {
      suite().plane = std::make_unique<ControlPlane>();
      std::cout << "kube_fixture: control plane ready in "
                << suite().plane->startup_duration().count() << " ms at "
                << suite().plane->server_url() << "\n";
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
    RecordProperty("control_plane_ready_ms", std::to_string(plane_->startup_duration().count()));
  }

  // A request to the apiserver as `cert` (default: admin).
  http::Response send(const std::string& method, const std::string& path,
                      const ClientCert* cert = nullptr) {
    http::Request request;
    request.method = method;
    request.url = plane_->server_url() + path;
    request.tls = plane_->tls_options(cert != nullptr ? *cert : plane_->admin());
    request.timeout = std::chrono::seconds(30);
    return http_.send(request);
  }

  // `kubectl apply -f -` of `manifest`; asserts success.
  void apply(const std::string& manifest) {
    RunOptions ro;
    ro.stdin_data = manifest;
    const RunResult r = plane_->kubectl({"apply", "-f", "-"}, ro);
    ASSERT_TRUE(r.ok()) << r.describe();
  }

  ControlPlane* plane_ = nullptr;
  http::Client http_{http::ClientOptions{.proxy = ""}};
};

std::string config_map(const std::string& name, const std::string& extra = "") {
  return fmt::format(
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n  namespace: default\n{}"
      "data:\n  greeting: hello\n",
      name, extra);
}

TEST_F(KubeFixtureTest, ApiserverAnswersReadyz) {
  const http::Response r = send("GET", "/readyz");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "ok");
  std::cout << "kube_fixture: time to ready " << plane_->startup_duration().count() << " ms\n";
}

TEST_F(KubeFixtureTest, KubectlGetsDefaultNamespace) {
  const RunResult r =
      plane_->kubectl({"get", "namespace", "default", "-o", "jsonpath={.status.phase}"});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "Active");
}

TEST_F(KubeFixtureTest, RbacForbidsNonAdminClientCert) {
  const ClientCert alice = plane_->mint_client_cert("alice", {"stowage-testers"});
  const http::Response denied = send("GET", "/api/v1/secrets", &alice);
  EXPECT_EQ(denied.status, 403) << denied.body;
  // Authenticated as alice (not anonymous), then denied by RBAC.
  EXPECT_THAT(denied.body, HasSubstr("User \\\"alice\\\" cannot list resource \\\"secrets\\\""));

  const http::Response allowed = send("GET", "/api/v1/secrets");
  EXPECT_EQ(allowed.status, 200) << allowed.body;

  // A kubeconfig written for alice carries the same identity.
  TempDir dir("stowage-kubeconfig");
  plane_->write_kubeconfig(dir / "alice.kubeconfig", alice);
  const RunResult whoami = plane_->kubectl_as(
      dir / "alice.kubeconfig", {"auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"});
  ASSERT_TRUE(whoami.ok()) << whoami.describe();
  EXPECT_EQ(whoami.out, "alice");
  const RunResult can_i =
      plane_->kubectl_as(dir / "alice.kubeconfig", {"auth", "can-i", "list", "secrets", "-A"});
  EXPECT_EQ(can_i.out, "no\n") << can_i.describe();
}

TEST_F(KubeFixtureTest, ControllerManagerCollectsOrphanedDependent) {
  ASSERT_NO_FATAL_FAILURE(apply(config_map("gc-owner")));
  const RunResult uid = plane_->kubectl(
      {"get", "configmap", "gc-owner", "-n", "default", "-o", "jsonpath={.metadata.uid}"});
  ASSERT_TRUE(uid.ok()) << uid.describe();
  ASSERT_FALSE(uid.out.empty());
  ASSERT_NO_FATAL_FAILURE(apply(config_map("gc-dependent", fmt::format("  ownerReferences:\n"
                                                                       "  - apiVersion: v1\n"
                                                                       "    kind: ConfigMap\n"
                                                                       "    name: gc-owner\n"
                                                                       "    uid: {}\n",
                                                                       uid.out))));
  ASSERT_EQ(send("GET", "/api/v1/namespaces/default/configmaps/gc-dependent").status, 200);

  const RunResult del = plane_->kubectl({"delete", "configmap", "gc-owner", "-n", "default"});
  ASSERT_TRUE(del.ok()) << del.describe();

  const auto started = Clock::now();
  int last_status = 0;
  const bool collected = wait_for(
      [&] {
        last_status = send("GET", "/api/v1/namespaces/default/configmaps/gc-dependent").status;
        return last_status == 404;
      },
      std::chrono::seconds(90));
  EXPECT_TRUE(collected) << "gc-dependent still there (last GET " << last_status << "); "
                         << plane_->controller_manager_process()->describe();
  std::cout << "kube_fixture: garbage collected in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count()
            << " ms\n";
}

TEST_F(KubeFixtureTest, RestartApiserverKeepsDataAndPort) {
  ASSERT_NO_FATAL_FAILURE(apply(config_map("survivor")));
  const std::string url = plane_->server_url();

  const auto started = Clock::now();
  plane_->restart_apiserver();
  std::cout << "kube_fixture: apiserver restarted in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count()
            << " ms\n";

  EXPECT_EQ(plane_->server_url(), url);
  const http::Response r = send("GET", "/api/v1/namespaces/default/configmaps/survivor");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr("\"greeting\":\"hello\""));
  const RunResult get = plane_->kubectl(
      {"get", "configmap", "survivor", "-n", "default", "-o", "jsonpath={.data.greeting}"});
  ASSERT_TRUE(get.ok()) << get.describe();
  EXPECT_EQ(get.out, "hello");
}

// Not part of the suite's shared control plane: it starts its own with the options changed.
TEST(KubeFixtureOptions, StartsWithoutControllerManagerOrWatchCache) {
  const BinaryLookup binaries = ControlPlane::find_binaries();
  if (!binaries.dir) {
    if (binaries.required) GTEST_FAIL() << binaries.problem;
    GTEST_SKIP() << binaries.problem;
  }
  ControlPlaneOptions options;
  options.with_controller_manager = false;
  options.watch_cache = false;
  options.extra_apiserver_flags = {"--v=1"};
  ControlPlane plane(options);
  std::cout << "kube_fixture: apiserver and etcd alone ready in "
            << plane.startup_duration().count() << " ms\n";

  EXPECT_EQ(plane.controller_manager_process(), nullptr);
  ASSERT_NE(plane.apiserver_process(), nullptr);
  const auto& argv = plane.apiserver_process()->options().argv;
  EXPECT_THAT(argv, ::testing::Contains("--watch-cache=false"));
  EXPECT_EQ(argv.back(), "--v=1");

  RunOptions ro;
  ro.stdin_data = config_map("plain");
  const RunResult created = plane.kubectl({"create", "-f", "-"}, ro);
  ASSERT_TRUE(created.ok()) << created.describe();
  const RunResult got = plane.kubectl({"get", "configmap", "plain", "-n", "default", "-o", "name"});
  ASSERT_TRUE(got.ok()) << got.describe();
  EXPECT_EQ(got.out, "configmap/plain\n");

  plane.stop();
  EXPECT_EQ(plane.etcd_process(), nullptr);
  plane.stop();  // idempotent
}

}  // namespace
}  // namespace stowage::test
