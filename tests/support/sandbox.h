// The whole Stowage system on one machine, as `make demo` shows it and the e2e tier drives it: a
// real control plane (etcd, kube-apiserver, kube-controller-manager) with the CRDs and the shipped
// RBAC applied, a real docker-registry, simulated nodes (a Node object, a containerd with its own
// host root, and a stowage-agent process), and stowage-operator processes — every component
// under its own ServiceAccount token, not as admin.
//   Sandbox sandbox({.nodes = {{"node-1", {{"role", "gpu"}}}, {"node-2", {}}}});
//   sandbox.kubectl({"apply", "-f", "manifests/samples/"});
//   sandbox.agent_process(0).stop();   // or kill(SIGKILL) it, then start_agent(0)
// Not thread-safe: one test thread owns it.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/containerd_fixture.h"
#include "support/kube_fixture.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace stowage::test {

inline constexpr const char* kSandboxNamespace = "stowage-system";

struct SandboxNodeSpec {
  std::string name{};
  std::map<std::string, std::string> labels{};
};

struct SandboxOptions {
  std::vector<SandboxNodeSpec> nodes{};
  int operator_replicas = 1;
  // Extra flags for every stowage-operator / stowage-agent process.
  std::vector<std::string> operator_args{};
  std::vector<std::string> agent_args{};
  // Where the components keep their files and logs; empty: a temp dir removed at the end.
  std::filesystem::path work_dir{};
  // Called with a short line at each step of start-up (the demo prints them).
  std::function<void(const std::string&)> progress{};
};

// One simulated node: its host root (the agent writes /etc/containers/registries.conf.d and the
// containerd certs.d under it), its containerd, its agent.
struct SandboxNode {
  SandboxNodeSpec spec{};
  std::filesystem::path host_root{};
  std::filesystem::path export_dir{};
  std::unique_ptr<ContainerdFixture> containerd{};
  std::unique_ptr<Process> agent{};
  int agent_starts = 0;
};

class Sandbox {
 public:
  // Why the sandbox cannot run here (a missing binary, not root), or nullopt; `required` says
  // whether that is a failure rather than a skip (as BinaryLookup::required).
  static std::optional<std::string> unavailable_reason(bool* required = nullptr);

  // Starts everything and returns once every component runs; throws stowage::Error with the
  // failing component's log otherwise.
  explicit Sandbox(SandboxOptions options);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  ControlPlane& plane() { return *plane_; }
  RegistryFixture& registry() { return *registry_; }
  std::vector<SandboxNode>& nodes() { return nodes_; }
  SandboxNode& node(std::size_t i) { return nodes_.at(i); }
  const std::filesystem::path& dir() const { return dir_; }

  // kubectl as admin (a user applying manifests) or as one of the components' ServiceAccounts.
  RunResult kubectl(const std::vector<std::string>& args, const RunOptions& options = {}) const;
  std::filesystem::path operator_kubeconfig() const { return dir_ / "operator.kubeconfig"; }
  std::filesystem::path agent_kubeconfig() const { return dir_ / "agent.kubeconfig"; }

  // Starts (again) the agent of node `i` / operator replica `i` with the same flags and files.
  void start_agent(std::size_t i);
  void start_operator(std::size_t i);
  Process& agent_process(std::size_t i) { return *nodes_.at(i).agent; }
  Process& operator_process(std::size_t i) { return *operators_.at(i); }
  std::size_t operator_count() const { return operators_.size(); }
  // The log of a component: every start appends to one file.
  std::filesystem::path agent_log(std::size_t i) const;
  std::filesystem::path operator_log(std::size_t i) const;

  // Adds a Node object (labels as given) — no containerd, no agent (for GC tests).
  void create_node_object(const SandboxNodeSpec& spec);

 private:
  void say(const std::string& line) const;
  void apply_base();
  void write_token_kubeconfig(const std::string& service_account,
                              const std::filesystem::path& path);
  void start_node(std::size_t i);

  SandboxOptions options_;
  std::optional<TempDir> temp_;
  std::filesystem::path dir_;
  std::unique_ptr<ControlPlane> plane_;
  std::unique_ptr<RegistryFixture> registry_;
  std::vector<SandboxNode> nodes_;
  std::vector<std::unique_ptr<Process>> operators_;
};

}  // namespace stowage::test
