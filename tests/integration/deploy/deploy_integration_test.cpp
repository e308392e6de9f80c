// The deploy artefacts as a user meets them. Without a server: `kubectl kustomize` builds the base
// and the OpenShift overlay, `helm lint --strict` is clean, the chart's crds/ equal crds/ byte for
// byte. Against a real kube-apiserver (one control plane per test process, the stowage-system
// namespace and the CRDs installed first, as `kubectl apply -k` needs them for a dry run):
// server-side dry runs of manifests/, manifests/openshift (with a minimal SCC CRD written for the
// test, testdata/scc-crd.yaml) and the rendered chart; the operator pod admitted by Pod Security
// `restricted`; the shipped RBAC, applied for real, checked with `kubectl auth can-i` for both
// ServiceAccounts; and the real stowage-operator binary running with a token of its own
// ServiceAccount (not as admin), planning a NodeCache and a registries ConfigMap with no request
// forbidden.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "api/image_cache.h"
#include "api/node_cache.h"
#include "api/registry_config.h"
#include "base/clock.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "support/kube_fixture.h"
#include "support/process.h"

namespace stowage::deploy {
namespace {

namespace fs = std::filesystem;
using kube::Client;
using kube::GroupVersionResource;
using nlohmann::json;
using test::BinaryLookup;
using test::ControlPlane;
using test::RunResult;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr std::chrono::seconds kDeadline{60};
const std::string kNamespace = "stowage-system";
const std::string kAgentSa = "system:serviceaccount:stowage-system:stowage-agent";
const std::string kOperatorSa = "system:serviceaccount:stowage-system:stowage-operator";
const GroupVersionResource kNodes{"", "v1", "nodes"};
const GroupVersionResource kConfigMaps{"", "v1", "configmaps"};
const GroupVersionResource kLeases{"coordination.k8s.io", "v1", "leases"};

fs::path source(const std::string& relative) {
  return fs::path(STOWAGE_SOURCE_DIR) / relative;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// Skips (or fails, when the binaries are required) when the upstream binaries are missing.
#define REQUIRE_BINARIES(lookup)                               \
  do {                                                         \
    if (!(lookup).dir) {                                       \
      if ((lookup).required) GTEST_FAIL() << (lookup).problem; \
      GTEST_SKIP() << (lookup).problem;                        \
    }                                                          \
  } while (false)

// ---------------------------------------------------------------------------------------------
// Rendering, no server.

class DeployRender : public ::testing::Test {
 protected:
  void SetUp() override {
    binaries_ = ControlPlane::find_binaries();
    REQUIRE_BINARIES(binaries_);
  }
  RunResult tool(const std::string& name, std::vector<std::string> args) const {
    args.insert(args.begin(), (*binaries_.dir / name).string());
    return test::run(std::move(args));
  }
  BinaryLookup binaries_;
};

TEST_F(DeployRender, KustomizeBuildsBaseAndOpenShiftOverlay) {
  const RunResult base = tool("kubectl", {"kustomize", source("manifests").string()});
  ASSERT_TRUE(base.ok()) << base.describe();
  for (const char* expected :
       {"kind: CustomResourceDefinition", "name: nodecaches.stowage.io", "kind: Namespace",
        "kind: DaemonSet", "kind: Deployment", "kind: PodDisruptionBudget",
        "image: ghcr.io/stowage/stowage-operator:0.1.0",
        "image: ghcr.io/stowage/stowage-agent:0.1.0",
        "--cri-endpoint=unix:///host/run/containerd/containerd.sock", "hostPID: true",
        "priorityClassName: system-node-critical",
        "pod-security.kubernetes.io/enforce: privileged"}) {
    EXPECT_THAT(base.out, HasSubstr(expected));
  }
  EXPECT_THAT(base.out, Not(HasSubstr("SecurityContextConstraints")));

  const RunResult openshift =
      tool("kubectl", {"kustomize", source("manifests/openshift").string()});
  ASSERT_TRUE(openshift.ok()) << openshift.describe();
  for (const char* expected :
       {"kind: SecurityContextConstraints", "--cri-endpoint=unix:///host/run/crio/crio.sock",
        "mountPath: /host/etc/crio", "privileged: true", "machineconfiguration.openshift.io",
        "security.openshift.io/scc.podSecurityLabelSync: \"false\""}) {
    EXPECT_THAT(openshift.out, HasSubstr(expected));
  }
  EXPECT_THAT(openshift.out, Not(HasSubstr("/run/containerd")));
  EXPECT_THAT(openshift.out, Not(HasSubstr("io.containerd.content.v1.content")));
}

TEST_F(DeployRender, HelmLintIsCleanAndChartCrdsEqualRepositoryCrds) {
  for (const std::vector<std::string>& values :
       {std::vector<std::string>{},
        {"--set", "openshift.enabled=true", "--set", "metrics.serviceMonitor.enabled=true"}}) {
    std::vector<std::string> args = {"lint", "--strict", source("helm/stowage").string()};
    args.insert(args.end(), values.begin(), values.end());
    const RunResult lint = tool("helm", args);
    EXPECT_TRUE(lint.ok()) << lint.describe();
    EXPECT_THAT(lint.out, HasSubstr("0 chart(s) failed"));
    EXPECT_THAT(lint.out + lint.err, Not(HasSubstr("[WARNING]")));
    EXPECT_THAT(lint.out + lint.err, Not(HasSubstr("[ERROR]")));
  }
  // The chart carries copies of the CRDs (helm installs crds/ before templates); they must not
  // drift from the repository's.
  std::vector<std::string> repo_files;
  for (const auto& entry : fs::directory_iterator(source("crds"))) {
    if (entry.path().extension() == ".yaml") repo_files.push_back(entry.path().filename());
  }
  std::vector<std::string> chart_files;
  for (const auto& entry : fs::directory_iterator(source("helm/stowage/crds"))) {
    chart_files.push_back(entry.path().filename());
  }
  std::sort(repo_files.begin(), repo_files.end());
  std::sort(chart_files.begin(), chart_files.end());
  ASSERT_EQ(repo_files.size(), 3u);
  EXPECT_EQ(chart_files, repo_files);
  for (const std::string& name : repo_files) {
    const std::string repo = test::read_text_file(source("crds") / name);
    ASSERT_FALSE(repo.empty()) << name;
    EXPECT_TRUE(repo == test::read_text_file(source("helm/stowage/crds") / name))
        << "helm/stowage/crds/" << name << " differs from crds/" << name
        << ": cp crds/*.yaml helm/stowage/crds/";
  }
}

// ---------------------------------------------------------------------------------------------
// Against a real kube-apiserver.

struct SuiteState {
  BinaryLookup binaries;
  std::unique_ptr<ControlPlane> plane;
  std::string error;
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

// What `kubectl apply -k` of a fresh cluster needs to exist before a server-side dry run can pass:
// the namespace (objects are dry-run created inside it) and the CRDs. Plus the test's SCC CRD.
std::string prepare(ControlPlane& plane) {
  for (const fs::path& file : {source("manifests/base/namespace.yaml"), source("crds"),
                               source("tests/integration/deploy/testdata/scc-crd.yaml")}) {
    const RunResult r = plane.kubectl({"apply", "--server-side", "-f", file.string()});
    if (!r.ok()) return r.describe();
  }
  const RunResult waited = plane.kubectl({"wait", "--for=condition=Established", "--timeout=60s",
                                          "crd/registryconfigs.stowage.io",
                                          "crd/imagecaches.stowage.io", "crd/nodecaches.stowage.io",
                                          "crd/securitycontextconstraints.security.openshift.io"});
  return waited.ok() ? "" : waited.describe();
}

class DeployServer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite().binaries = ControlPlane::find_binaries();
    if (!suite().binaries.dir) return;
    try {
      test::ControlPlaneOptions options;
      options.with_controller_manager = false;  // no pods run; nothing is garbage-collected
      suite().plane = std::make_unique<ControlPlane>(options);
      suite().error = prepare(*suite().plane);
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }
  static void TearDownTestSuite() { suite().plane.reset(); }

  void SetUp() override {
    REQUIRE_BINARIES(suite().binaries);
    ASSERT_THAT(suite().error, IsEmpty());
    plane_ = suite().plane.get();
  }

  RunResult kubectl(const std::vector<std::string>& args, const std::string& stdin_data = "") {
    test::RunOptions options;
    options.stdin_data = stdin_data;
    return plane_->kubectl(args, options);
  }

  RunResult helm_template(const std::vector<std::string>& values) {
    std::vector<std::string> argv = {(*suite().binaries.dir / "helm").string(),
                                     "template",
                                     "stowage",
                                     source("helm/stowage").string(),
                                     "--namespace",
                                     kNamespace,
                                     "--include-crds"};
    argv.insert(argv.end(), values.begin(), values.end());
    return test::run(argv);
  }

  // Applies the shipped base for real (what the RBAC tests and the operator run rely on).
  void apply_base() {
    const RunResult r = kubectl({"apply", "--server-side", "-k", source("manifests").string()});
    ASSERT_TRUE(r.ok()) << r.describe();
  }

  // `kubectl auth can-i` as `user` must answer `expected` ("yes": exit 0, "no": exit 1).
  // `resource` may be "plural.group" or "plural.group/name"; `subresource` e.g. "status".
  void expect_can(bool expected, const std::string& user, const std::string& verb,
                  const std::string& resource, const std::string& namespace_ = "",
                  const std::string& subresource = "") {
    std::vector<std::string> args = {"auth", "can-i", verb, resource, "--as=" + user};
    if (!namespace_.empty()) args.push_back("--namespace=" + namespace_);
    if (!subresource.empty()) args.push_back("--subresource=" + subresource);
    const RunResult r = kubectl(args);
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1) << r.describe();
    EXPECT_EQ(r.exit_code == 0, expected) << r.describe();
  }

  // The same question as a SubjectAccessReview, for API groups this server does not serve
  // (OpenShift's): `kubectl auth can-i` answers "no" for resource types discovery does not know.
  void expect_review(bool expected, const std::string& user, const std::string& verb,
                     const std::string& group, const std::string& resource,
                     const std::string& name = "") {
    const json review = {
        {"apiVersion", "authorization.k8s.io/v1"},
        {"kind", "SubjectAccessReview"},
        {"spec",
         {{"user", user},
          {"groups",
           {"system:serviceaccounts", "system:serviceaccounts:stowage-system",
            "system:authenticated"}},
          {"resourceAttributes",
           {{"verb", verb}, {"group", group}, {"resource", resource}, {"name", name}}}}}};
    const RunResult r = kubectl({"create", "-f", "-", "-o", "json"}, review.dump());
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(json::parse(r.out).value("/status/allowed"_json_pointer, false), expected)
        << user << " " << verb << " " << resource << "." << group << "/" << name << ": " << r.out;
  }

  ControlPlane* plane_ = nullptr;
};

TEST_F(DeployServer, ManifestsAndOverlayPassServerDryRunAndOperatorPodIsRestricted) {
  const RunResult base =
      kubectl({"apply", "-k", source("manifests").string(), "--dry-run=server", "-o", "json"});
  ASSERT_TRUE(base.ok()) << base.describe();
  const RunResult openshift =
      kubectl({"apply", "-k", source("manifests/openshift").string(), "--dry-run=server"});
  ASSERT_TRUE(openshift.ok()) << openshift.describe();
  EXPECT_THAT(openshift.out,
              HasSubstr("securitycontextconstraints.security.openshift.io/stowage-agent"));

  // The operator's pod, as the Deployment would create it, in a namespace enforcing `restricted`.
  const json list = json::parse(base.out);
  json pod_template;
  for (const json& item : list.at("items")) {
    if (item.at("kind") == "Deployment" && item.at("metadata").at("name") == "stowage-operator") {
      pod_template = item.at("spec").at("template");
    }
  }
  ASSERT_TRUE(pod_template.is_object()) << "no stowage-operator Deployment in " << base.out;
  ASSERT_TRUE(kubectl({"create", "namespace", "restricted-check"}).ok());
  ASSERT_TRUE(kubectl({"label", "namespace", "restricted-check",
                       "pod-security.kubernetes.io/enforce=restricted"})
                  .ok());
  const json pod = {{"apiVersion", "v1"},
                    {"kind", "Pod"},
                    {"metadata", {{"name", "operator"}, {"namespace", "restricted-check"}}},
                    {"spec", pod_template.at("spec")}};
  const RunResult admitted =
      kubectl({"create", "--dry-run=server", "-f", "-", "-o", "name"}, pod.dump());
  EXPECT_TRUE(admitted.ok()) << admitted.describe();
  EXPECT_THAT(admitted.err, Not(HasSubstr("violate")));
  // ...and the check bites: the agent's pod is refused there.
  json agent_template;
  for (const json& item : list.at("items")) {
    if (item.at("kind") == "DaemonSet") agent_template = item.at("spec").at("template");
  }
  ASSERT_TRUE(agent_template.is_object());
  json agent_pod = pod;
  agent_pod["metadata"]["name"] = "agent";
  agent_pod["spec"] = agent_template.at("spec");
  const RunResult refused =
      kubectl({"create", "--dry-run=server", "-f", "-", "-o", "name"}, agent_pod.dump());
  EXPECT_FALSE(refused.ok()) << refused.describe();
  EXPECT_THAT(refused.err, HasSubstr("hostPID"));
}

TEST_F(DeployServer, HelmTemplateOutputPassesServerDryRun) {
  for (const std::vector<std::string>& values :
       {std::vector<std::string>{},
        {"--set", "openshift.enabled=true", "--set", "operator.insecureRegistries={a:5000}"}}) {
    const RunResult rendered = helm_template(values);
    ASSERT_TRUE(rendered.ok()) << rendered.describe();
    const RunResult applied = kubectl({"apply", "--dry-run=server", "-f", "-"}, rendered.out);
    EXPECT_TRUE(applied.ok()) << applied.describe();
    EXPECT_THAT(applied.out, HasSubstr("daemonset.apps/stowage-agent"));
    EXPECT_THAT(applied.out, HasSubstr("deployment.apps/stowage-operator"));
    EXPECT_THAT(applied.out, HasSubstr("customresourcedefinition.apiextensions.k8s.io/"
                                       "nodecaches.stowage.io"));
    const bool openshift = !values.empty();
    EXPECT_EQ(applied.out.find("securitycontextconstraints") != std::string::npos, openshift)
        << applied.out;
    EXPECT_EQ(rendered.out.find("unix:///host/run/crio/crio.sock") != std::string::npos, openshift)
        << rendered.out;
  }
}

TEST_F(DeployServer, ShippedRbacIsLeastPrivilege) {
  apply_base();
  // Agent: reads NodeCaches, writes only their status, reads ConfigMaps/Secrets only in its
  // namespace.
  expect_can(true, kAgentSa, "get", "nodecaches.stowage.io");
  expect_can(true, kAgentSa, "watch", "nodecaches.stowage.io");
  expect_can(true, kAgentSa, "patch", "nodecaches.stowage.io", "", "status");
  expect_can(true, kAgentSa, "update", "nodecaches.stowage.io", "", "status");
  expect_can(false, kAgentSa, "update", "nodecaches.stowage.io");
  expect_can(false, kAgentSa, "patch", "nodecaches.stowage.io");
  expect_can(false, kAgentSa, "create", "nodecaches.stowage.io");
  expect_can(false, kAgentSa, "delete", "nodecaches.stowage.io");
  expect_can(true, kAgentSa, "get", "secrets", kNamespace);
  expect_can(true, kAgentSa, "watch", "configmaps", kNamespace);
  expect_can(false, kAgentSa, "get", "secrets", "default");
  expect_can(false, kAgentSa, "list", "secrets", "kube-system");
  expect_can(false, kAgentSa, "create", "secrets", kNamespace);
  expect_can(false, kAgentSa, "create", "configmaps", kNamespace);
  expect_can(false, kAgentSa, "get", "registryconfigs.stowage.io");
  expect_can(false, kAgentSa, "get", "nodes");
  expect_can(false, kAgentSa, "delete", "nodes");
  expect_can(false, kAgentSa, "create", "pods", kNamespace);
  expect_can(true, kAgentSa, "create", "events.events.k8s.io", "default");

  // Operator: reads its inputs, owns NodeCache specs, writes statuses, manages its ConfigMaps,
  // synced Secrets and Lease only in its namespace.
  expect_can(true, kOperatorSa, "watch", "registryconfigs.stowage.io");
  expect_can(true, kOperatorSa, "list", "imagecaches.stowage.io", "team-a");
  expect_can(true, kOperatorSa, "patch", "imagecaches.stowage.io", "team-a", "status");
  expect_can(true, kOperatorSa, "update", "registryconfigs.stowage.io", "", "status");
  expect_can(false, kOperatorSa, "update", "registryconfigs.stowage.io");
  expect_can(false, kOperatorSa, "delete", "imagecaches.stowage.io", "team-a");
  expect_can(true, kOperatorSa, "create", "nodecaches.stowage.io");
  expect_can(true, kOperatorSa, "delete", "nodecaches.stowage.io");
  expect_can(false, kOperatorSa, "patch", "nodecaches.stowage.io", "", "status");
  expect_can(true, kOperatorSa, "watch", "nodes");
  expect_can(false, kOperatorSa, "patch", "nodes");
  expect_can(false, kOperatorSa, "delete", "nodes");
  expect_can(true, kOperatorSa, "get", "secrets", "team-a");
  expect_can(false, kOperatorSa, "create", "secrets", "team-a");
  expect_can(false, kOperatorSa, "delete", "secrets", "team-a");
  expect_can(true, kOperatorSa, "create", "secrets", kNamespace);
  expect_can(true, kOperatorSa, "delete", "secrets", kNamespace);
  expect_can(true, kOperatorSa, "create", "configmaps", kNamespace);
  expect_can(true, kOperatorSa, "delete", "configmaps", kNamespace);
  expect_can(false, kOperatorSa, "update", "configmaps", kNamespace);
  expect_can(false, kOperatorSa, "create", "configmaps", "default");
  expect_can(true, kOperatorSa, "update", "leases.coordination.k8s.io", kNamespace);
  expect_can(false, kOperatorSa, "update", "leases.coordination.k8s.io", "kube-system");
  expect_can(true, kOperatorSa, "create", "events.events.k8s.io", "team-a");
  expect_can(false, kOperatorSa, "create", "pods", kNamespace);
  expect_review(false, kOperatorSa, "create", "machineconfiguration.openshift.io",
                "machineconfigs");

  // The OpenShift overlay adds MachineConfig delivery for the operator and one SCC for the agent.
  const RunResult overlay =
      kubectl({"apply", "--server-side", "-k", source("manifests/openshift").string()});
  ASSERT_TRUE(overlay.ok()) << overlay.describe();
  expect_review(true, kOperatorSa, "create", "machineconfiguration.openshift.io", "machineconfigs");
  expect_review(true, kOperatorSa, "delete", "machineconfiguration.openshift.io", "machineconfigs");
  expect_review(true, kOperatorSa, "watch", "machineconfiguration.openshift.io",
                "machineconfigpools");
  expect_review(false, kOperatorSa, "update", "machineconfiguration.openshift.io",
                "machineconfigpools");
  expect_review(true, kOperatorSa, "patch", "operator.openshift.io", "machineconfigurations",
                "cluster");
  expect_review(false, kOperatorSa, "patch", "operator.openshift.io", "machineconfigurations",
                "other");
  expect_can(true, kAgentSa, "use",
             "securitycontextconstraints.security.openshift.io/stowage-agent", kNamespace);
  expect_can(false, kAgentSa, "use", "securitycontextconstraints.security.openshift.io/privileged",
             kNamespace);
  expect_can(false, kOperatorSa, "use",
             "securitycontextconstraints.security.openshift.io/stowage-agent", kNamespace);
}

TEST_F(DeployServer, OperatorRunsUnderItsOwnServiceAccountToken) {
  apply_base();
  // A token of the operator's ServiceAccount and a kubeconfig carrying only that.
  const RunResult token =
      kubectl({"create", "token", "stowage-operator", "-n", kNamespace, "--duration=1h"});
  ASSERT_TRUE(token.ok()) << token.describe();
  std::string bearer = token.out;
  while (!bearer.empty() && std::isspace(static_cast<unsigned char>(bearer.back()))) {
    bearer.pop_back();
  }
  ASSERT_FALSE(bearer.empty());
  test::TempDir dir("stowage-deploy");
  test::write_text_file(dir / "ca.crt", plane_->ca_pem());
  test::write_text_file(
      dir / "operator.kubeconfig",
      fmt::format(R"(apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {}
    certificate-authority: {}
users:
- name: stowage-operator
  user:
    token: {}
contexts:
- name: operator
  context: {{cluster: test, user: stowage-operator, namespace: {}}}
current-context: operator
)",
                  plane_->server_url(), (dir / "ca.crt").string(), bearer, kNamespace));
  // The kubeconfig really is the ServiceAccount, not admin.
  const RunResult whoami = plane_->kubectl_as(dir / "operator.kubeconfig", {"auth", "whoami"});
  ASSERT_TRUE(whoami.ok()) << whoami.describe();
  EXPECT_THAT(whoami.out, HasSubstr(kOperatorSa));
  const RunResult denied =
      plane_->kubectl_as(dir / "operator.kubeconfig", {"get", "pods", "-n", "kube-system"});
  ASSERT_FALSE(denied.ok());
  EXPECT_THAT(denied.err, HasSubstr("forbidden"));

  http::Client http;
  Client admin(kube::rest_config_from_kubeconfig(kube::load_kubeconfig({plane_->kubeconfig_path()}),
                                                 "", real_clock()),
               http, real_clock());
  admin.create({kNodes, "", "", ""},
               {{"apiVersion", "v1"},
                {"kind", "Node"},
                {"metadata", {{"name", "node-1"}, {"labels", {{"pool", "a"}}}}}});
  admin.create({api::registry_configs_resource(), "", "", ""},
               {{"apiVersion", "stowage.io/v1alpha1"},
                {"kind", "RegistryConfig"},
                {"metadata", {{"name", "search"}}},
                {"spec",
                 {{"nodeSelector", json::object()},
                  {"delivery", "Agent"},
                  {"unqualifiedSearchRegistries", {"registry.example"}}}}});
  // Digest-only: nothing to resolve, so no registry is involved.
  const std::string image = "registry.example/team/app@sha256:" + std::string(64, 'c');
  admin.create({api::image_caches_resource(), "default", "", ""},
               {{"apiVersion", "stowage.io/v1alpha1"},
                {"kind", "ImageCache"},
                {"metadata", {{"name", "app"}, {"namespace", "default"}}},
                {"spec", {{"nodeSelector", json::object()}, {"images", {{{"name", image}}}}}}});

  test::ProcessOptions options;
  options.argv = {
      STOWAGE_OPERATOR_BINARY,      "--kubeconfig=" + (dir / "operator.kubeconfig").string(),
      "--namespace=" + kNamespace,  "--leader-elect=true",
      "--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0",
      "--log-level=debug"};
  options.stdout_path = dir / "operator.log";
  options.stderr_path = dir / "operator.log";
  test::Process op(options);

  std::string config_map;
  const bool planned = test::wait_for(
      [&] {
        const auto nc = admin.try_get({api::node_caches_resource(), "", "node-1", ""});
        if (!nc) return false;
        config_map = nc->value("/spec/registries/configMap"_json_pointer, "");
        const json images = nc->value("/spec/images"_json_pointer, json::array());
        return !config_map.empty() && images.size() == 1 &&
               images[0].value("digest", "") == "sha256:" + std::string(64, 'c');
      },
      kDeadline);
  ASSERT_TRUE(planned) << "no NodeCache node-1 with the image and a registries ConfigMap\n"
                       << op.describe();
  const auto cm = admin.try_get({kConfigMaps, kNamespace, config_map, ""});
  ASSERT_TRUE(cm.has_value()) << config_map;
  EXPECT_THAT(cm->at("data").dump(), HasSubstr("registry.example"));
  // Status subresources written, and the Lease taken, under the same token.
  EXPECT_TRUE(test::wait_for(
      [&] {
        const auto ic = admin.try_get({api::image_caches_resource(), "default", "app", ""});
        const auto rc = admin.try_get({api::registry_configs_resource(), "", "search", ""});
        return ic && rc && ic->value("/status/observedGeneration"_json_pointer, 0) >= 1 &&
               rc->value("/status/observedGeneration"_json_pointer, 0) >= 1;
      },
      kDeadline))
      << op.describe();
  const auto lease = admin.try_get({kLeases, kNamespace, "stowage-operator", ""});
  ASSERT_TRUE(lease.has_value());
  EXPECT_FALSE(lease->value("/spec/holderIdentity"_json_pointer, "").empty());

  EXPECT_TRUE(op.running()) << op.describe();
  op.stop();
  const std::string log = test::read_text_file(dir / "operator.log");
  EXPECT_THAT(log, HasSubstr("applied NodeCache spec"));
  EXPECT_THAT(lower(log), Not(HasSubstr("forbidden"))) << log;
  EXPECT_THAT(log, Not(HasSubstr(bearer)));
}

}  // namespace
}  // namespace stowage::deploy
