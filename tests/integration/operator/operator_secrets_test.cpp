// Pull secrets and tag resolution of the Operator (operator/operator.h) against a real
// kube-apiserver and a real docker-registry behind Bearer token auth (tests/support
// token_issuer): an image behind auth is reported Unauthorized without a pull secret, a named
// Secret that is missing is reported, and with the Secret the tag resolves to the registry's
// digest, also through a mirror of the nodes' registries configuration; the Secret is copied
// into the operator's namespace with the same data, updated with its source and deleted once no
// ImageCache names it; a blocked registry is reported Blocked; events record each transition
// (ImageCache images and pull secrets, a RegistryConfig rollout completing or turning Degraded)
// and carry no credentials.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "api/meta.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "oci/auth.h"
#include "operator/operator.h"
#include "support/kube_fixture.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace stowage::op {
namespace {

using kube::Client;
using kube::GroupVersionResource;
using nlohmann::json;
using test::BinaryLookup;
using test::ControlPlane;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr std::chrono::seconds kDeadline{30};
const std::string kOperatorNs = "stowage-system";
const std::string kTeam = "team";
const GroupVersionResource kNodes{"", "v1", "nodes"};
const GroupVersionResource kSecrets{"", "v1", "secrets"};
const GroupVersionResource kNamespaces{"", "v1", "namespaces"};
const GroupVersionResource kEvents{"events.k8s.io", "v1", "events"};

struct SuiteState {
  BinaryLookup binaries;
  std::optional<std::string> registry_problem;
  std::unique_ptr<ControlPlane> plane;
  std::unique_ptr<test::RegistryFixture> registry;
  std::string digest;  // of private/app:1.0
  std::string error;
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

// A .dockerconfigjson payload with the registry's account (and an unrelated extra entry).
std::string docker_config(const std::string& host, const std::string& credentials,
                          const std::string& extra_host = "") {
  json auths = {{host, {{"auth", oci::base64_encode(credentials)}}}};
  if (!extra_host.empty()) auths[extra_host] = {{"auth", oci::base64_encode("x:y")}};
  return json{{"auths", auths}}.dump();
}

class OperatorSecrets : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite().binaries = ControlPlane::find_binaries();
    if (!suite().binaries.dir) return;
    suite().registry_problem = test::RegistryFixture::unavailable_reason();
    if (!suite().registry_problem) suite().registry_problem = test::seed_unavailable_reason();
    if (suite().registry_problem) return;
    try {
      test::ControlPlaneOptions options;
      options.with_controller_manager = false;
      suite().plane = std::make_unique<ControlPlane>(options);
      suite().error = test::install_stowage_crds(*suite().plane);
      test::RegistryOptions registry;
      registry.auth = test::RegistryAuth::kToken;
      registry.token.anonymous_repository_actions = {};  // anonymous: a token without access
      suite().registry = std::make_unique<test::RegistryFixture>(registry);
      suite().digest = suite().registry->seed_image("private/app", "1.0");
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }
  static void TearDownTestSuite() {
    suite().registry.reset();
    suite().plane.reset();
  }

  void SetUp() override {
    const BinaryLookup& binaries = suite().binaries;
    if (!binaries.dir) {
      if (binaries.required) GTEST_FAIL() << binaries.problem;
      GTEST_SKIP() << binaries.problem;
    }
    if (suite().registry_problem) GTEST_SKIP() << *suite().registry_problem;
    ASSERT_THAT(suite().error, IsEmpty());
    client_ = std::make_unique<Client>(
        kube::rest_config_from_kubeconfig(kube::load_kubeconfig({suite().plane->kubeconfig_path()}),
                                          "", real_clock()),
        http_, real_clock());
    for (const std::string& ns : {kOperatorNs, kTeam}) {
      if (!client_->try_get({kNamespaces, "", ns, ""})) {
        client_->create(
            {kNamespaces, "", "", ""},
            {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}});
      }
    }
  }

  json image_cache_status(const std::string& name) {
    const json ic = client_->get({api::image_caches_resource(), kTeam, name, ""});
    return ic.value("status", json::object());
  }

  std::string degraded_message(const std::string& name) {
    for (const auto& c : image_cache_status(name).value("conditions", json::array())) {
      if (c.value("type", "") == "Degraded" && c.value("status", "") == "True") {
        return c.value("reason", "") + ": " + c.value("message", "");
      }
    }
    return "";
  }

  std::optional<json> copy(const std::string& name) {
    return client_->try_get({kSecrets, kOperatorNs, name, ""});
  }

  void eventually(const std::string& what, const std::function<bool()>& predicate) {
    EXPECT_TRUE(test::wait_for(predicate, kDeadline)) << "never: " << what;
  }

  http::Client http_;
  std::unique_ptr<Client> client_;
};

TEST_F(OperatorSecrets, ResolvesWithThePullSecretAndSyncsItsCopy) {
  test::RegistryFixture& registry = *suite().registry;
  const std::string host = registry.host();
  const std::string image = host + "/private/app:1.0";
  const std::string credentials = registry.credentials();
  client_->create({kNodes, "", "", ""},
                  {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", "node-s"}}}});
  client_->create({api::registry_configs_resource(), "", "", ""},
                  {{"apiVersion", "stowage.io/v1alpha1"},
                   {"kind", "RegistryConfig"},
                   {"metadata", {{"name", "corp"}}},
                   // The fixture serves plain HTTP: insecure, for the registry and as a mirror.
                   {"spec",
                    {{"nodeSelector", json::object()},
                     {"insecureRegistries", {host}},
                     {"blockedRegistries", {"blocked.example"}},
                     {"registries",
                      {{{"location", "mirrored.example/team"},
                        {"mirrors", {{{"location", host + "/private"}, {"insecure", true}}}}}}}}}});
  const auto image_cache = [&](const std::string& name, const std::string& ref) {
    return json{{"apiVersion", "stowage.io/v1alpha1"},
                {"kind", "ImageCache"},
                {"metadata", {{"name", name}, {"namespace", kTeam}}},
                {"spec", {{"nodeSelector", json::object()}, {"images", {{{"name", ref}}}}}}};
  };
  client_->create({api::image_caches_resource(), kTeam, "", ""}, image_cache("private", image));
  client_->create({api::image_caches_resource(), kTeam, "", ""},
                  image_cache("blocked", "blocked.example/x:1"));

  MetricsRegistry metrics;
  OperatorOptions options;
  options.namespace_ = kOperatorNs;
  options.max_unavailable = MaxUnavailable::parse("100%");
  options.leader_elect = false;
  options.identity = "secrets-test";
  options.unresolved_retry = std::chrono::seconds(1);
  auto op = std::make_unique<Operator>(options, *client_, real_clock(), http_, metrics);
  std::jthread runner([&op](std::stop_token stop) { op->run(stop); });

  // 1. No pull secret: the registry refuses, and the image is reported, not dropped.
  eventually("the private image is reported Unauthorized", [&] {
    return degraded_message("private").find(image + ": Unauthorized") != std::string::npos;
  });
  const json reported = image_cache_status("private");
  EXPECT_EQ(reported.value("/images/0/name"_json_pointer, ""), image);
  EXPECT_EQ(reported.value("/images/0/digest"_json_pointer, ""), "");
  eventually("the blocked registry is reported Blocked", [&] {
    return degraded_message("blocked").find("blocked.example/x:1: Blocked") != std::string::npos;
  });

  // 2. The ImageCache names a Secret that does not exist yet.
  client_->patch({api::image_caches_resource(), kTeam, "private", ""}, kube::PatchType::kMerge,
                 {{"spec", {{"imagePullSecrets", {{{"name", "corp-pull"}}}}}}});
  eventually("the missing Secret is reported", [&] {
    return degraded_message("private").find(
               "PullSecretUnavailable: pull secrets not used: "
               "Secret \"corp-pull\" not found in namespace "
               "\"team\"") != std::string::npos;
  });

  // 3. The Secret appears: the tag resolves with it, and its copy lands in the operator's
  // namespace with the same data, named by the NodeCache.
  const std::string payload = docker_config(host, credentials);
  client_->create({kSecrets, kTeam, "", ""},
                  {{"apiVersion", "v1"},
                   {"kind", "Secret"},
                   {"metadata", {{"name", "corp-pull"}, {"namespace", kTeam}}},
                   {"type", "kubernetes.io/dockerconfigjson"},
                   {"data", {{".dockerconfigjson", oci::base64_encode(payload)}}}});
  eventually("the private image resolves to the registry's digest", [&] {
    return image_cache_status("private").value("/images/0/digest"_json_pointer, "") ==
           suite().digest;
  });
  const std::string copy_name = "stowage-pull-team.corp-pull";
  eventually("node-s holds the digest with the synced secret", [&] {
    const auto nc = client_->try_get({api::node_caches_resource(), "", "node-s", ""});
    if (!nc) return false;
    for (const auto& entry : nc->value("/spec/images"_json_pointer, json::array())) {
      if (entry.value("name", "") == image && entry.value("digest", "") == suite().digest &&
          entry.value("/pullSecrets/0/name"_json_pointer, "") == copy_name) {
        return true;
      }
    }
    return false;
  });
  // An image behind a mirror: resolved at the mirror, with the mirror's credentials.
  const std::string mirrored = "mirrored.example/team/app:1.0";
  json through_mirror = image_cache("mirrored", mirrored);
  through_mirror["spec"]["imagePullSecrets"] = {{{"name", "corp-pull"}}};
  client_->create({api::image_caches_resource(), kTeam, "", ""}, through_mirror);
  eventually("the mirrored image resolves at its mirror", [&] {
    return image_cache_status("mirrored").value("/images/0/digest"_json_pointer, "") ==
           suite().digest;
  });
  std::optional<json> synced = copy(copy_name);
  ASSERT_TRUE(synced);
  EXPECT_EQ(synced->value("type", ""), "kubernetes.io/dockerconfigjson");
  EXPECT_EQ(synced->value("/data/.dockerconfigjson"_json_pointer, ""), oci::base64_encode(payload));
  EXPECT_EQ(synced->value("/metadata/labels/app.kubernetes.io~1managed-by"_json_pointer, ""),
            "stowage");
  EXPECT_EQ(
      synced->value("/metadata/labels/stowage.io~1pull-secret-source-namespace"_json_pointer, ""),
      kTeam);
  EXPECT_EQ(synced->value("/metadata/annotations/stowage.io~1pull-secret-source"_json_pointer, ""),
            "team/corp-pull");
  EXPECT_EQ(degraded_message("private"), "");

  // 4. The source changes: the copy follows.
  const std::string changed = docker_config(host, credentials, "other.example");
  client_->patch({kSecrets, kTeam, "corp-pull", ""}, kube::PatchType::kMerge,
                 {{"data", {{".dockerconfigjson", oci::base64_encode(changed)}}}});
  eventually("the copy is updated with its source", [&] {
    const auto c = copy(copy_name);
    return c && c->value("/data/.dockerconfigjson"_json_pointer, "") == oci::base64_encode(changed);
  });
  const std::int64_t writes_after_update = op->stats().writes;

  // 5. No ImageCache names it any more: the copy goes, and the image is refused again.
  client_->patch({api::image_caches_resource(), kTeam, "private", ""}, kube::PatchType::kMerge,
                 {{"spec", {{"imagePullSecrets", nullptr}}}});
  client_->delete_({api::image_caches_resource(), kTeam, "mirrored", ""});
  eventually("the unreferenced copy is deleted", [&] { return !copy(copy_name); });
  eventually("without the secret the image is Unauthorized again", [&] {
    return degraded_message("private").find(image + ": Unauthorized") != std::string::npos;
  });
  EXPECT_GT(op->stats().writes, writes_after_update);

  // 6. RegistryConfig transitions: node-s reports the rendering applied (as its agent would),
  // then failed.
  const auto report = [&](const std::string& state, const std::string& message) {
    const json nc = client_->get({api::node_caches_resource(), "", "node-s", ""});
    client_->patch({api::node_caches_resource(), "", "node-s", "status"}, kube::PatchType::kMerge,
                   {{"status",
                     {{"registries",
                       {{"appliedHash", nc.value("/spec/registries/hash"_json_pointer, "")},
                        {"state", state},
                        {"message", message},
                        {"lastTransitionTime", "2026-01-01T00:00:00Z"}}}}}});
  };
  const auto registry_config_events = [&] {
    std::set<std::string> out;
    const json list = client_->list({kEvents, "default", "", ""});
    for (const auto& e : list.value("items", json::array())) {
      if (e.value("reportingController", "") == "stowage-operator" &&
          e.value("/regarding/kind"_json_pointer, "") == "RegistryConfig" &&
          e.value("/regarding/name"_json_pointer, "") == "corp") {
        out.insert(e.value("reason", "") + ": " + e.value("note", ""));
      }
    }
    return out;
  };
  report("Applied", "");
  eventually("the rollout of RegistryConfig corp completes with an event", [&] {
    for (const auto& e : registry_config_events()) {
      if (e.starts_with("RolloutComplete: ")) return true;
    }
    return false;
  });
  report("Failed", "drop-in rejected by the test");
  eventually("RegistryConfig corp turns Degraded with an event", [&] {
    for (const auto& e : registry_config_events()) {
      if (e.starts_with("Degraded: NodeFailed: ") &&
          e.find("drop-in rejected by the test") != std::string::npos) {
        return true;
      }
    }
    return false;
  });

  // 7. ImageCache events for each transition, from the operator, without credentials.
  std::set<std::string> reasons;
  eventually("the events are recorded", [&] {
    reasons.clear();
    const json list = client_->list({kEvents, kTeam, "", ""});
    for (const auto& e : list.value("items", json::array())) {
      if (e.value("reportingController", "") != "stowage-operator") continue;
      reasons.insert(e.value("reason", ""));
      const std::string note = e.value("note", "");
      EXPECT_THAT(note, Not(HasSubstr(registry.password())));
      EXPECT_THAT(note, Not(HasSubstr(oci::base64_encode(credentials))));
    }
    return reasons.contains("ImageUnresolved") && reasons.contains("PullSecretUnavailable") &&
           reasons.contains("ImageResolved");
  });
  EXPECT_GE(op->stats().events, 6);

  runner.request_stop();
  runner.join();
  EXPECT_EQ(op->stats().errors, 0);
}

}  // namespace
}  // namespace stowage::op
