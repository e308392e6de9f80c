// The whole system, driven as a user would: one Sandbox (tests/support/sandbox.h) — a real
// control plane with the shipped CRDs and RBAC, a real docker-registry, three simulated nodes
// (containerd + stowage-agent each) and two stowage-operator replicas, every component under its
// own ServiceAccount — and kubectl to apply resources and read what they report. The tests run in
// the order written and share the sandbox; each ends with the system settled.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/image_seed.h"
#include "support/podman_peer.h"
#include "support/process.h"
#include "support/sandbox.h"

namespace stowage::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr std::chrono::seconds kSettle{90};
const std::vector<std::string> kNodes = {"node-1", "node-2", "node-3"};

struct SuiteState {
  std::unique_ptr<Sandbox> sandbox;
  std::unique_ptr<RegistryFixture> private_registry;  // token auth
  std::string skip;
  bool skip_is_failure = false;
  std::string error;
  std::string reg;                             // registry host
  std::map<std::string, std::string> digests;  // repo:tag -> digest
};

SuiteState& suite() {
  static SuiteState s;
  return s;
}

Sandbox& sb() {
  return *suite().sandbox;
}

std::string ref(const std::string& repo_tag) {
  return suite().reg + "/" + repo_tag;
}

RunResult kubectl(const std::vector<std::string>& args, const std::string& stdin_data = {}) {
  RunOptions o;
  o.stdin_data = stdin_data;
  return sb().kubectl(args, o);
}

void apply(const std::string& yaml) {
  const auto r = kubectl({"apply", "-f", "-"}, yaml);
  ASSERT_TRUE(r.ok()) << r.describe();
}

std::optional<json> get_json(const std::vector<std::string>& args) {
  std::vector<std::string> a = {"get"};
  a.insert(a.end(), args.begin(), args.end());
  a.push_back("-o");
  a.push_back("json");
  const auto r = kubectl(a);
  if (!r.ok()) return std::nullopt;
  try {
    return json::parse(r.out);
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

// The value at `pointer` in `j`, or `fallback` when `j` is not an object or has no such value.
template <typename T>
T field(const json& j, const char* pointer, T fallback) {
  if (!j.is_object()) return fallback;
  const json::json_pointer p(pointer);
  if (!j.contains(p) || j.at(p).is_null()) return fallback;
  try {
    return j.at(p).get<T>();
  } catch (const json::exception&) {
    return fallback;
  }
}

json node_cache(const std::string& node) {
  return get_json({"nodecache", node}).value_or(json());
}

// Waits for `pred` (re-evaluated every 200 ms); fails the test with `what` and `detail()` if it
// does not hold within `timeout`.
::testing::AssertionResult eventually(const std::string& what, const std::function<bool()>& pred,
                                      const std::function<std::string()>& detail = {},
                                      std::chrono::seconds timeout = kSettle) {
  if (wait_for(pred, std::chrono::duration_cast<std::chrono::milliseconds>(timeout))) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "timed out waiting for " << what << (detail ? "\n" + detail() : std::string());
}

std::string dump_state() {
  const auto r = kubectl({"get", "nodecaches,imagecaches,registryconfigs", "-A", "-o", "yaml"});
  std::string logs;
  for (std::size_t i = 0; i < sb().operator_count(); ++i) {
    auto text = read_text_file(sb().operator_log(i));
    if (text.size() > 3000) text = text.substr(text.size() - 3000);
    logs += fmt::format("--- operator {} log (tail)\n{}\n", i + 1, text);
  }
  for (std::size_t i = 0; i < sb().nodes().size(); ++i) {
    auto text = read_text_file(sb().agent_log(i));
    if (text.size() > 2000) text = text.substr(text.size() - 2000);
    logs += fmt::format("--- agent {} log (tail)\n{}\n", sb().node(i).spec.name, text);
  }
  return r.out + logs;
}

// The image entry of a NodeCache status, or null.
json status_image(const json& nc, const std::string& name) {
  for (const auto& i : field(nc, "/status/images", json::array())) {
    if (i.value("name", "") == name) return i;
  }
  return json::object();
}

bool image_state(const std::string& node, const std::string& name, const std::string& state) {
  return status_image(node_cache(node), name).value("state", "") == state;
}

bool containerd_holds(std::size_t node, const std::string& name) {
  const auto img = sb().node(node).containerd->image(name);
  return img.has_value();
}

std::string spec_hash(const json& nc) {
  return field(nc, "/spec/registries/hash", std::string());
}
std::string applied_hash(const json& nc) {
  return field(nc, "/status/registries/appliedHash", std::string());
}

// Every node's registries hash is the one its agent applied, and the RegistryConfig is Ready.
bool registries_settled(const std::string& regcfg) {
  const auto list = get_json({"nodecaches"});
  if (!list) return false;
  for (const auto& nc : (*list)["items"]) {
    if (spec_hash(nc) != applied_hash(nc)) return false;
    if (field(nc, "/status/registries/state", std::string()) != "Applied") return false;
  }
  const auto rc = get_json({"registryconfig", regcfg});
  if (!rc) return false;
  for (const auto& c : field(*rc, "/status/conditions", json::array())) {
    if (c.value("type", "") == "Ready") {
      return c.value("status", "") == "True" &&
             c.value("observedGeneration", -1) == field(*rc, "/metadata/generation", -2);
    }
  }
  return false;
}

// Counts nodes moving to a new registries hash (spec hash != applied hash) while a rollout runs,
// polling the API as fast as kubectl answers; max() is the most seen at once.
class RolloutWatcher {
 public:
  RolloutWatcher()
      : thread_([this](std::stop_token stop) {
          while (!stop.stop_requested()) {
            const auto list = get_json({"nodecaches"});
            if (!list) continue;  // the apiserver may be restarting
            int moving = 0;
            for (const auto& nc : (*list)["items"]) {
              if (spec_hash(nc) != applied_hash(nc)) ++moving;
            }
            ++samples_;
            if (moving > max_.load()) max_ = moving;
          }
        }) {}
  int max() const { return max_.load(); }
  int samples() const { return samples_.load(); }

 private:
  std::atomic<int> max_{0};
  std::atomic<int> samples_{0};
  std::jthread thread_;
};

std::string registry_config_yaml(const std::vector<std::string>& search) {
  std::string list;
  for (const auto& s : search) list += fmt::format("\"{}\", ", s);
  if (!list.empty()) list.resize(list.size() - 2);
  return fmt::format(R"(apiVersion: stowage.io/v1alpha1
kind: RegistryConfig
metadata: {{name: cluster}}
spec:
  unqualifiedSearchRegistries: [{}]
  insecureRegistries: ["{}"]
)",
                     list, suite().reg);
}

std::string image_cache_yaml(const std::string& name, const std::string& label,
                             const std::vector<std::string>& images,
                             const std::string& export_file = {}) {
  std::string list;
  for (const auto& i : images) list += fmt::format("  - name: {}\n", i);
  std::string exp =
      export_file.empty()
          ? ""
          : fmt::format("  export: {{format: docker-archive, fileName: {}}}\n", export_file);
  return fmt::format(R"(apiVersion: stowage.io/v1alpha1
kind: ImageCache
metadata: {{name: {}, namespace: default}}
spec:
  nodeSelector: {{matchLabels: {{{}: "true"}}}}
  prune: OnRemoval
  images:
{}{})",
                     name, label, list, exp);
}

class SystemE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    bool required = false;
    if (auto reason = Sandbox::unavailable_reason(&required)) {
      suite().skip = *reason;
      suite().skip_is_failure = required;
      return;
    }
    if (auto reason = seed_unavailable_reason()) {
      suite().skip = *reason;
      return;
    }
    try {
      SandboxOptions o;
      o.nodes = {{kNodes[0], {{"gpu", "true"}, {"base", "true"}}},
                 {kNodes[1], {{"base", "true"}}},
                 {kNodes[2], {{"base", "true"}}}};
      o.operator_replicas = 2;
      o.operator_args = {"--max-unavailable=1", "--refresh-interval=5s"};
      o.agent_args = {"--prune-min-age=2s"};
      suite().sandbox = std::make_unique<Sandbox>(o);
      suite().reg = sb().registry().host();
      for (const char* name : {"app/one:1.0", "app/two:1.0", "app/three:1.0"}) {
        ImageSpec spec;
        spec.labels["name"] = name;
        const std::string n = name;
        suite().digests[n] =
            sb().registry().seed_image(n.substr(0, n.find(':')), n.substr(n.find(':') + 1), spec);
      }
      // A larger image (uncompressed random-looking bytes) so that a pull takes a while.
      ImageSpec big;
      std::string bytes(96u << 20, '\0');
      std::uint64_t x = 0x9e3779b97f4a7c15ULL;
      for (std::size_t i = 0; i < bytes.size(); i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::memcpy(&bytes[i], &x, 8);
      }
      big.gzip = false;
      big.layers = {{{"data/a", bytes.substr(0, bytes.size() / 2)}},
                    {{"data/b", bytes.substr(bytes.size() / 2)}}};
      suite().digests["app/big:1.0"] = sb().registry().seed_image("app/big", "1.0", big);
      RegistryOptions private_options;
      private_options.auth = RegistryAuth::kToken;
      suite().private_registry = std::make_unique<RegistryFixture>(private_options);
      ImageSpec secret;
      secret.labels["name"] = "private";
      suite().digests["private/app:1.0"] =
          suite().private_registry->seed_image("private/app", "1.0", secret);
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }
  static void TearDownTestSuite() {
    suite().private_registry.reset();
    suite().sandbox.reset();
  }

  void SetUp() override {
    if (!suite().skip.empty()) {
      if (suite().skip_is_failure) GTEST_FAIL() << suite().skip;
      GTEST_SKIP() << suite().skip;
    }
    ASSERT_THAT(suite().error, IsEmpty());
  }
};

// The sample flow: a RegistryConfig for every node and an ImageCache (with an export) for the gpu
// node: the node holds the images at the resolved digests, the tar loads in podman with the same
// image, and the statuses say so.
TEST_F(SystemE2e, ImageCacheIsCachedAndExportedOnSelectedNodes) {
  apply(registry_config_yaml({"registry.example"}));
  apply(image_cache_yaml("gpu-images", "gpu", {ref("app/one:1.0"), ref("app/two:1.0")},
                         "gpu-images.tar"));
  ASSERT_TRUE(eventually(
      "both images Present on node-1",
      [] {
        return image_state("node-1", ref("app/one:1.0"), "Present") &&
               image_state("node-1", ref("app/two:1.0"), "Present");
      },
      dump_state));
  const json nc = node_cache("node-1");
  EXPECT_EQ(status_image(nc, ref("app/one:1.0")).value("digest", ""),
            suite().digests["app/one:1.0"]);
  EXPECT_GT(status_image(nc, ref("app/one:1.0")).value("sizeBytes", 0), 0);
  EXPECT_TRUE(containerd_holds(0, ref("app/one:1.0")));
  EXPECT_TRUE(containerd_holds(0, ref("app/two:1.0")));
  EXPECT_FALSE(containerd_holds(1, ref("app/one:1.0")));
  EXPECT_THAT(field(node_cache("node-2"), "/spec/images", json::array()), IsEmpty());

  // The registries drop-in reached every node.
  for (const auto& n : sb().nodes()) {
    const auto dropin = n.host_root / "etc/containers/registries.conf.d/99-stowage.conf";
    ASSERT_TRUE(fs::exists(dropin)) << n.spec.name;
    EXPECT_THAT(read_text_file(dropin), HasSubstr("registry.example")) << n.spec.name;
  }

  // The export: written atomically, reported with size and sha256, loadable by podman.
  ASSERT_TRUE(eventually(
      "the export Written on node-1",
      [] {
        const auto exports = field(node_cache("node-1"), "/status/exports", json());
        return exports.is_array() && !exports.empty() && exports[0].value("state", "") == "Written";
      },
      dump_state));
  const json exp = node_cache("node-1")["status"]["exports"][0];
  const fs::path tar = sb().node(0).export_dir / "gpu-images.tar";
  ASSERT_TRUE(fs::exists(tar));
  EXPECT_EQ(exp.value("sizeBytes", std::uint64_t{0}), fs::file_size(tar));
  if (podman_unavailable_reason().empty()) {
    PodmanPeer podman;
    const auto loaded = podman.podman({"load", "-i", tar.string()});
    ASSERT_TRUE(loaded.ok()) << loaded.describe();
    EXPECT_THAT(podman.image_names(), Contains(HasSubstr("app/one:1.0")));
    EXPECT_THAT(podman.image_names(), Contains(HasSubstr("app/two:1.0")));
  }

  ASSERT_TRUE(eventually(
      "ImageCache gpu-images Ready",
      [] {
        const auto ic = get_json({"imagecache", "gpu-images", "-n", "default"});
        if (!ic) return false;
        for (const auto& c : field(*ic, "/status/conditions", json::array())) {
          if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
        }
        return false;
      },
      dump_state));
}

// Three kinds of image on two nodes with their own host roots and containerd: one by tag, one by
// digest, one private behind token auth (its ImageCache names a pull secret, which the operator
// resolves with and copies for the agents). Each runtime holds all three; statuses say Present
// with sizes.
TEST_F(SystemE2e, TagDigestAndPrivateImagesOnTwoNodes) {
  const std::string host = suite().private_registry->host();
  const auto secret = kubectl({"create", "secret", "docker-registry", "private-pull", "-n",
                               "default", "--docker-server=" + host,
                               "--docker-username=" + suite().private_registry->username(),
                               "--docker-password=" + suite().private_registry->password()});
  ASSERT_TRUE(secret.ok()) << secret.describe();
  apply(fmt::format(R"(apiVersion: stowage.io/v1alpha1
kind: RegistryConfig
metadata: {{name: private-registry}}
spec:
  insecureRegistries: ["{}"]
)",
                    host));
  const std::string by_tag = ref("app/three:1.0");
  const std::string by_digest = suite().reg + "/app/two@" + suite().digests["app/two:1.0"];
  const std::string private_ref = host + "/private/app:1.0";
  apply(fmt::format(R"(apiVersion: stowage.io/v1alpha1
kind: ImageCache
metadata: {{name: three-kinds, namespace: default}}
spec:
  nodeSelector: {{matchExpressions: [{{key: kubernetes.io/hostname, operator: In, values: [node-1, node-2]}}]}}
  imagePullSecrets: [{{name: private-pull}}]
  prune: OnRemoval
  images:
  - name: {}
  - name: {}
  - name: {}
)",
                    by_tag, by_digest, private_ref));
  for (std::size_t i = 0; i < 2; ++i) {
    const std::string node = kNodes[i];
    ASSERT_TRUE(eventually(
        "three images Present on " + node,
        [&] {
          return image_state(node, by_tag, "Present") && image_state(node, by_digest, "Present") &&
                 image_state(node, private_ref, "Present");
        },
        dump_state));
    const json nc = node_cache(node);
    EXPECT_EQ(status_image(nc, private_ref).value("digest", ""),
              suite().digests["private/app:1.0"]);
    for (const auto& name : {by_tag, by_digest, private_ref}) {
      EXPECT_GT(status_image(nc, name).value("sizeBytes", 0), 0) << node << " " << name;
    }
    const auto listed = sb().node(i).containerd->ctr({"images", "ls", "-q"});
    ASSERT_TRUE(listed.ok()) << listed.describe();
    EXPECT_THAT(listed.out, HasSubstr(by_tag)) << node;
    EXPECT_THAT(listed.out, HasSubstr(by_digest)) << node;
    EXPECT_THAT(listed.out, HasSubstr(private_ref)) << node;
  }
  EXPECT_FALSE(containerd_holds(2, private_ref));
  // The agents read the copy in the operator's namespace, never the source Secret.
  EXPECT_TRUE(
      kubectl({"get", "secret", "-n", kSandboxNamespace, "stowage-pull-default.private-pull"})
          .ok());
  ASSERT_TRUE(kubectl({"delete", "imagecache", "three-kinds", "-n", "default"}).ok());
  ASSERT_TRUE(kubectl({"delete", "registryconfig", "private-registry"}).ok());
}

// Relabelling a node moves it into an ImageCache (pulled) and out of it again (pruned).
TEST_F(SystemE2e, RelabellingMovesANodeInAndOut) {
  apply(image_cache_yaml("gpu-images", "gpu", {ref("app/one:1.0"), ref("app/two:1.0")},
                         "gpu-images.tar"));
  ASSERT_TRUE(kubectl({"label", "node", "node-2", "gpu=true", "--overwrite"}).ok());
  ASSERT_TRUE(eventually(
      "app/one Present on node-2",
      [] { return image_state("node-2", ref("app/one:1.0"), "Present"); }, dump_state));
  EXPECT_TRUE(containerd_holds(1, ref("app/one:1.0")));
  ASSERT_TRUE(kubectl({"label", "node", "node-2", "gpu-"}).ok());
  ASSERT_TRUE(eventually(
      "app/one pruned from node-2", [] { return !containerd_holds(1, ref("app/one:1.0")); },
      dump_state));
  EXPECT_TRUE(containerd_holds(0, ref("app/one:1.0")));  // node-1 still wants it
}

// Deleting an ImageCache prunes its images where no other ImageCache wants them.
TEST_F(SystemE2e, DeletingAnImageCachePrunesWhatNobodyElseWants) {
  apply(image_cache_yaml("base-images", "base", {ref("app/three:1.0"), ref("app/one:1.0")}));
  ASSERT_TRUE(eventually(
      "app/three Present on every node",
      [] {
        for (const auto& n : kNodes) {
          if (!image_state(n, ref("app/three:1.0"), "Present")) return false;
        }
        return true;
      },
      dump_state));
  ASSERT_TRUE(kubectl({"delete", "imagecache", "base-images", "-n", "default"}).ok());
  ASSERT_TRUE(eventually(
      "app/three pruned everywhere, app/one pruned where only base-images wanted it",
      [] {
        for (std::size_t i = 0; i < kNodes.size(); ++i) {
          if (containerd_holds(i, ref("app/three:1.0"))) return false;
        }
        return !containerd_holds(1, ref("app/one:1.0")) && !containerd_holds(2, ref("app/one:1.0"));
      },
      dump_state));
  EXPECT_TRUE(containerd_holds(0, ref("app/one:1.0")));  // gpu-images still wants it on node-1
}

// A RegistryConfig change rolls out one node at a time (--max-unavailable=1); an invalid one is
// reported Degraded and never reaches a node.
TEST_F(SystemE2e, RegistriesRolloutIsPacedAndInvalidConfigNeverReachesANode) {
  {
    RolloutWatcher watcher;
    apply(registry_config_yaml({"registry.example", "second.example"}));
    ASSERT_TRUE(eventually(
        "the rollout to finish", [] { return registries_settled("cluster"); }, dump_state));
    EXPECT_LE(watcher.max(), 1) << "samples: " << watcher.samples();
  }
  for (const auto& n : sb().nodes()) {
    EXPECT_THAT(read_text_file(n.host_root / "etc/containers/registries.conf.d/99-stowage.conf"),
                HasSubstr("second.example"));
  }
  std::set<std::string> before;
  for (const auto& n : kNodes) before.insert(spec_hash(node_cache(n)));

  // Valid for the schema, refused by the registries rules: an alias that is not a reference.
  apply(fmt::format(R"(apiVersion: stowage.io/v1alpha1
kind: RegistryConfig
metadata: {{name: broken}}
spec:
  priority: 5
  aliases: {{"bad": "Not A/Reference::"}}
)"));
  ASSERT_TRUE(eventually(
      "RegistryConfig broken Degraded",
      [] {
        const auto rc = get_json({"registryconfig", "broken"});
        if (!rc) return false;
        for (const auto& c : field(*rc, "/status/conditions", json::array())) {
          if (c.value("type", "") == "Degraded") return c.value("status", "") == "True";
        }
        return false;
      },
      dump_state));
  std::set<std::string> after;
  for (const auto& n : kNodes) after.insert(spec_hash(node_cache(n)));
  EXPECT_EQ(before, after);
  ASSERT_TRUE(kubectl({"delete", "registryconfig", "broken"}).ok());
}

// The leader is killed (-9) in the middle of a rollout; the other replica takes over when the
// Lease expires and finishes it, still one node at a time.
TEST_F(SystemE2e, LeaderFailoverMidRollout) {
  const auto lease = get_json({"lease", "stowage-operator", "-n", kSandboxNamespace});
  ASSERT_TRUE(lease.has_value());
  const std::string holder = field(*lease, "/spec/holderIdentity", std::string());
  ASSERT_THAT(holder, HasSubstr("stowage-operator-"));
  const std::size_t leader = std::stoul(holder.substr(holder.rfind('-') + 1)) - 1;
  RolloutWatcher watcher;
  {
    // The agents are paused so that the rollout cannot end before the leader dies (three quick
    // agents can apply it within the moment between the apply and the kill): it starts, one
    // node's spec moves, and waits for that node's agent.
    struct Paused {
      Paused() {
        for (std::size_t i = 0; i < kNodes.size(); ++i) {
          ::kill(sb().agent_process(i).pid(), SIGSTOP);
        }
      }
      ~Paused() {
        for (std::size_t i = 0; i < kNodes.size(); ++i) {
          ::kill(sb().agent_process(i).pid(), SIGCONT);
        }
      }
    } paused;
    apply(registry_config_yaml({"registry.example", "third.example"}));
    ASSERT_TRUE(eventually(
        "the rollout to start under the first leader",
        [] {
          for (const auto& n : kNodes) {
            const auto nc = node_cache(n);
            if (spec_hash(nc) != applied_hash(nc)) return true;
          }
          return false;
        },
        dump_state, std::chrono::seconds(60)));
    ::kill(sb().operator_process(leader).pid(), SIGKILL);
  }
  ASSERT_TRUE(eventually(
      "the rollout to finish under the new leader", [] { return registries_settled("cluster"); },
      dump_state, std::chrono::seconds(120)));
  EXPECT_LE(watcher.max(), 1) << "samples: " << watcher.samples();
  const auto after = get_json({"lease", "stowage-operator", "-n", kSandboxNamespace});
  ASSERT_TRUE(after.has_value());
  EXPECT_NE(field(*after, "/spec/holderIdentity", std::string()), holder);
  sb().start_operator(leader);  // back to two replicas
}

// kube-apiserver restarts in the middle of a rollout: everyone resumes and the rollout ends.
TEST_F(SystemE2e, ApiserverRestartMidRollout) {
  RolloutWatcher watcher;
  apply(registry_config_yaml({"registry.example", "fourth.example"}));
  sb().plane().restart_apiserver();
  ASSERT_TRUE(eventually(
      "the rollout to finish after the restart", [] { return registries_settled("cluster"); },
      dump_state, std::chrono::seconds(120)));
  EXPECT_LE(watcher.max(), 1) << "samples: " << watcher.samples();
}

// The agent is killed (-9) while it pulls a large image; restarted, it completes the pull.
TEST_F(SystemE2e, AgentKilledMidPullCompletesAfterRestart) {
  apply(image_cache_yaml("big", "gpu", {ref("app/big:1.0")}));
  ASSERT_TRUE(eventually(
      "node-1 to report app/big Pulling",
      [] { return image_state("node-1", ref("app/big:1.0"), "Pulling"); }, dump_state));
  ::kill(sb().agent_process(0).pid(), SIGKILL);
  sb().agent_process(0).wait(std::chrono::steady_clock::now() + std::chrono::seconds(10));
  sb().start_agent(0);
  ASSERT_TRUE(eventually(
      "app/big Present on node-1 after the restart",
      [] { return image_state("node-1", ref("app/big:1.0"), "Present"); }, dump_state));
  EXPECT_EQ(status_image(node_cache("node-1"), ref("app/big:1.0")).value("digest", ""),
            suite().digests["app/big:1.0"]);
  EXPECT_TRUE(containerd_holds(0, ref("app/big:1.0")));
  ASSERT_TRUE(kubectl({"delete", "imagecache", "big", "-n", "default"}).ok());
}

// A Node deleted: its NodeCache is garbage-collected (owner reference to the Node).
TEST_F(SystemE2e, DeletedNodeLosesItsNodeCache) {
  sb().create_node_object({"node-gone", {{"base", "true"}}});
  ASSERT_TRUE(eventually(
      "a NodeCache for node-gone",
      [] {
        return get_json({"nodecache", "node-gone"}).has_value();
      },
      dump_state));
  ASSERT_TRUE(kubectl({"delete", "node", "node-gone"}).ok());
  ASSERT_TRUE(eventually(
      "the NodeCache of node-gone collected",
      [] {
        return !get_json({"nodecache", "node-gone"}).has_value();
      },
      dump_state));
}

}  // namespace
}  // namespace stowage::test
