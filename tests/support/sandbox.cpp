#include "support/sandbox.h"

#include <fmt/format.h>
#include <unistd.h>

#include <set>
#include <sstream>

#include "base/error.h"

namespace stowage::test {
namespace {

namespace fs = std::filesystem;

fs::path binary(const std::string& name) {
  return fs::path(STOWAGE_BINARY_DIR) / "bin" / name;
}

// containerd's config as the node sees it: the host-root prefix taken off its paths.
std::string node_view(const std::string& config, const fs::path& host_root) {
  std::string out = config;
  const std::string prefix = host_root.string();
  for (auto pos = out.find(prefix); pos != std::string::npos; pos = out.find(prefix, pos)) {
    out.erase(pos, prefix.size());
  }
  return out;
}

// The objects of the kustomize base a sandbox applies: everything but the workloads (no kubelet
// runs their pods here; the sandbox starts the same binaries as processes).
bool sandbox_applies(const std::string& kind) {
  static const std::set<std::string> kKinds = {
      "CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole",
      "ClusterRoleBinding",       "Role",      "RoleBinding",
  };
  return kKinds.contains(kind);
}

[[noreturn]] void fail(const std::string& what, const RunResult& r) {
  throw Error(Code::kInternal, what + ": " + r.describe());
}

}  // namespace

std::optional<std::string> Sandbox::unavailable_reason(bool* required) {
  const BinaryLookup bins = ControlPlane::find_binaries();
  if (required) *required = bins.required;
  if (!bins.dir) return bins.problem;
  if (auto r = RegistryFixture::unavailable_reason()) return r;
  if (auto r = ContainerdFixture::unavailable_reason()) return r;
  for (const char* b : {"stowage-operator", "stowage-agent"}) {
    if (!fs::exists(binary(b))) return fmt::format("{} is not built", binary(b).string());
  }
  return std::nullopt;
}

Sandbox::Sandbox(SandboxOptions options) : options_(std::move(options)) {
  if (options_.work_dir.empty()) {
    temp_.emplace("stowage-sandbox");
    dir_ = temp_->path();
  } else {
    dir_ = options_.work_dir;
    fs::create_directories(dir_);
  }
  say("starting etcd, kube-apiserver and kube-controller-manager");
  plane_ = std::make_unique<ControlPlane>();
  say("applying the CRDs, the namespace and the RBAC of manifests/ (kubectl kustomize)");
  apply_base();
  write_token_kubeconfig("stowage-operator", operator_kubeconfig());
  write_token_kubeconfig("stowage-agent", agent_kubeconfig());
  say("starting a docker-registry");
  registry_ = std::make_unique<RegistryFixture>();
  nodes_.resize(options_.nodes.size());
  for (std::size_t i = 0; i < options_.nodes.size(); ++i) {
    nodes_[i].spec = options_.nodes[i];
    say(fmt::format("starting node {}: containerd and stowage-agent", nodes_[i].spec.name));
    start_node(i);
  }
  for (int i = 0; i < options_.operator_replicas; ++i) {
    operators_.emplace_back();
    say(fmt::format("starting stowage-operator replica {}", i + 1));
    start_operator(static_cast<std::size_t>(i));
  }
}

Sandbox::~Sandbox() {
  for (auto& op : operators_) {
    if (op) op->stop(std::chrono::seconds(5));
  }
  for (auto& n : nodes_) {
    if (n.agent) n.agent->stop(std::chrono::seconds(5));
    n.containerd.reset();
  }
  registry_.reset();
  plane_.reset();
}

void Sandbox::say(const std::string& line) const {
  if (options_.progress) options_.progress(line);
}

RunResult Sandbox::kubectl(const std::vector<std::string>& args, const RunOptions& options) const {
  return plane_->kubectl(args, options);
}

void Sandbox::apply_base() {
  const auto built =
      plane_->kubectl({"kustomize", (fs::path(STOWAGE_SOURCE_DIR) / "manifests").string()});
  if (!built.ok()) fail("kubectl kustomize manifests/", built);
  // Documents are kept as kustomize printed them (re-emitting YAML could change scalars' types).
  std::ostringstream out;
  std::istringstream in(built.out + "\n---\n");
  std::string doc;
  std::string kind;
  for (std::string line; std::getline(in, line);) {
    if (line == "---") {
      if (sandbox_applies(kind)) out << "---\n" << doc;
      doc.clear();
      kind.clear();
      continue;
    }
    if (line.starts_with("kind: ")) kind = line.substr(6);
    doc += line + "\n";
  }
  RunOptions stdin_options;
  stdin_options.stdin_data = out.str();
  const auto applied = plane_->kubectl({"apply", "--server-side", "-f", "-"}, stdin_options);
  if (!applied.ok()) fail("applying the base objects", applied);
  const auto waited = plane_->kubectl({"wait", "--for=condition=Established", "--timeout=60s",
                                       "crd/registryconfigs.stowage.io",
                                       "crd/imagecaches.stowage.io", "crd/nodecaches.stowage.io"});
  if (!waited.ok()) fail("waiting for the CRDs", waited);
}

void Sandbox::write_token_kubeconfig(const std::string& service_account, const fs::path& path) {
  const auto token = plane_->kubectl(
      {"create", "token", service_account, "-n", kSandboxNamespace, "--duration=24h"});
  if (!token.ok()) fail("minting a token for " + service_account, token);
  std::string t = token.out;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  write_text_file(dir_ / (service_account + "-ca.crt"), plane_->ca_pem());
  write_text_file(path,
                  fmt::format(R"(apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster:
    server: {0}
    certificate-authority: {1}
users:
- name: {2}
  user:
    token: {3}
contexts:
- name: {2}
  context: {{cluster: sandbox, user: {2}}}
current-context: {2}
)",
                              plane_->server_url(), (dir_ / (service_account + "-ca.crt")).string(),
                              service_account, t));
}

void Sandbox::create_node_object(const SandboxNodeSpec& spec) {
  // The label kubelet sets on every node, then the spec's own.
  std::string labels = fmt::format("    kubernetes.io/hostname: \"{}\"\n", spec.name);
  for (const auto& [k, v] : spec.labels) labels += fmt::format("    {}: \"{}\"\n", k, v);
  RunOptions o;
  o.stdin_data = fmt::format("apiVersion: v1\nkind: Node\nmetadata:\n  name: {}\n{}", spec.name,
                             "  labels:\n" + labels);
  const auto r = plane_->kubectl({"apply", "-f", "-"}, o);
  if (!r.ok()) fail("creating Node " + spec.name, r);
}

void Sandbox::start_node(std::size_t i) {
  SandboxNode& n = nodes_[i];
  create_node_object(n.spec);
  n.host_root = dir_ / "nodes" / n.spec.name;
  n.export_dir = n.host_root / "var/lib/stowage/exports";
  fs::create_directories(n.host_root / "etc/containers/registries.conf.d");
  fs::create_directories(n.export_dir);
  ContainerdOptions copts;
  copts.namespace_name = "k8s.io";
  copts.cri_registry_config_path = n.host_root / "etc/containerd/certs.d";
  n.containerd = std::make_unique<ContainerdFixture>(std::move(copts));
  write_text_file(n.host_root / "etc/containerd/config.toml",
                  node_view(read_text_file(n.containerd->config_file()), n.host_root));
  start_agent(i);
}

fs::path Sandbox::agent_log(std::size_t i) const {
  const SandboxNode& n = nodes_.at(i);
  return dir_ / fmt::format("agent-{}.{}.log", n.spec.name, n.agent_starts);
}

fs::path Sandbox::operator_log(std::size_t i) const {
  return dir_ / fmt::format("operator-{}.log", i + 1);
}

void Sandbox::start_agent(std::size_t i) {
  SandboxNode& n = nodes_.at(i);
  if (n.agent) n.agent->stop(std::chrono::seconds(5));
  ++n.agent_starts;
  ProcessOptions p;
  p.argv = {binary("stowage-agent").string(),
            "--kubeconfig=" + agent_kubeconfig().string(),
            "--node-name=" + n.spec.name,
            std::string("--namespace=") + kSandboxNamespace,
            "--host-root=" + n.host_root.string(),
            "--cri-endpoint=unix://" + n.containerd->address(),
            "--store-dir=" + (n.host_root / "var/lib/stowage").string(),
            "--export-dir=" + n.export_dir.string(),
            "--metrics-addr=127.0.0.1:0",
            "--health-addr=127.0.0.1:0"};
  p.argv.insert(p.argv.end(), options_.agent_args.begin(), options_.agent_args.end());
  p.stdout_path = agent_log(i);
  p.stderr_path = p.stdout_path;
  n.agent = std::make_unique<Process>(std::move(p));
}

void Sandbox::start_operator(std::size_t i) {
  auto& slot = operators_.at(i);
  if (slot) slot->stop(std::chrono::seconds(5));
  ProcessOptions p;
  p.argv = {binary("stowage-operator").string(),
            "--kubeconfig=" + operator_kubeconfig().string(),
            std::string("--namespace=") + kSandboxNamespace,
            "--leader-elect=true",
            "--metrics-addr=127.0.0.1:0",
            "--health-addr=127.0.0.1:0"};
  p.argv.insert(p.argv.end(), options_.operator_args.begin(), options_.operator_args.end());
  p.env.emplace_back("POD_NAME", fmt::format("stowage-operator-{}", i + 1));
  p.stdout_path = operator_log(i);
  p.stderr_path = p.stdout_path;
  slot = std::make_unique<Process>(std::move(p));
}

}  // namespace stowage::test
