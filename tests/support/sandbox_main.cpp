// stowage-sandbox: starts the whole system on this machine (tests/support/sandbox.h), seeds the
// registry with small images made here, writes <work-dir>/sandbox.env (shell variables naming
// the kubeconfig, the registry and each node's files) and <work-dir>/ready, then keeps it all
// running until SIGTERM or SIGINT, when it stops every component. Used by hack/demo.sh.
//   stowage-sandbox --work-dir .demo --node node-1:nvidia.com/gpu.present=true
//       --node node-2 --seed nginx/nginx:1.25
#include <fmt/format.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "support/image_seed.h"
#include "support/sandbox.h"

namespace {

namespace fs = std::filesystem;
using stowage::test::SandboxNodeSpec;

// "name[:key=value,key=value]" → a node.
SandboxNodeSpec parse_node(const std::string& text) {
  SandboxNodeSpec spec;
  const auto colon = text.find(':');
  spec.name = text.substr(0, colon);
  if (colon == std::string::npos) return spec;
  std::string rest = text.substr(colon + 1);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string pair = rest.substr(0, comma);
    const auto eq = pair.find('=');
    spec.labels[pair.substr(0, eq)] = eq == std::string::npos ? "" : pair.substr(eq + 1);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
  }
  return spec;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Starts etcd, kube-apiserver, kube-controller-manager, a registry, simulated nodes "
      "(containerd + stowage-agent) and stowage-operator; runs until SIGTERM."};
  std::string work_dir;
  std::vector<std::string> nodes;
  std::vector<std::string> seeds;
  std::vector<std::string> agent_args;
  std::vector<std::string> operator_args;
  int operators = 1;
  app.add_option("--work-dir", work_dir, "where components keep files and logs")->required();
  app.add_option("--node", nodes, "a node: NAME[:KEY=VALUE,...] (repeat)")->required();
  app.add_option("--seed", seeds, "an image REPO:TAG to make and push to the registry (repeat)");
  app.add_option("--operators", operators, "stowage-operator replicas")->capture_default_str();
  app.add_option("--agent-arg", agent_args, "extra stowage-agent flag (repeat)");
  app.add_option("--operator-arg", operator_args, "extra stowage-operator flag (repeat)");
  CLI11_PARSE(app, argc, argv);

  // Block the stop signals before any thread starts, so only sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    if (auto reason = stowage::test::Sandbox::unavailable_reason()) {
      std::cerr << "stowage-sandbox: cannot run here: " << *reason << "\n";
      return 1;
    }
    stowage::test::SandboxOptions options;
    for (const auto& n : nodes) options.nodes.push_back(parse_node(n));
    options.operator_replicas = operators;
    options.agent_args = agent_args;
    options.operator_args = operator_args;
    options.work_dir = fs::absolute(work_dir);
    options.progress = [](const std::string& line) { std::cout << "  " << line << std::endl; };
    stowage::test::Sandbox sandbox(options);

    std::string env;
    env += "KUBECONFIG=" + shell_quote(sandbox.plane().kubeconfig_path().string()) + "\n";
    env += "REGISTRY=" + shell_quote(sandbox.registry().host()) + "\n";
    for (const auto& seed : seeds) {
      const auto colon = seed.rfind(':');
      std::cout << "  pushing " << sandbox.registry().host() << "/" << seed << std::endl;
      stowage::test::ImageSpec spec;
      spec.labels["org.opencontainers.image.title"] = seed;
      spec.layers = {{{"etc/demo/image", seed + "\n"}}};
      sandbox.registry().seed_image(seed.substr(0, colon), seed.substr(colon + 1), spec);
    }
    for (std::size_t i = 0; i < sandbox.nodes().size(); ++i) {
      const auto& n = sandbox.node(i);
      env += fmt::format(
          "NODE_{}_NAME={}\nNODE_{}_ROOT={}\nNODE_{}_CONTAINERD={}\nNODE_{}_EXPORTS={}\n", i,
          shell_quote(n.spec.name), i, shell_quote(n.host_root.string()), i,
          shell_quote(n.containerd->address()), i, shell_quote(n.export_dir.string()));
    }
    env += fmt::format("NODES={}\n", sandbox.nodes().size());
    stowage::test::write_text_file(options.work_dir / "sandbox.env", env);
    stowage::test::write_text_file(options.work_dir / "ready", "");
    std::cout << "  ready" << std::endl;

    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::cout << "  stopping" << std::endl;
    fs::remove(options.work_dir / "ready");
  } catch (const std::exception& e) {
    std::cerr << "stowage-sandbox: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
