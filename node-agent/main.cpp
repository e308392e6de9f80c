// stowage-agent: parses flags, builds the Kubernetes and CRI clients and the Agent, serves
// /healthz, /readyz and /metrics, and runs until SIGTERM or SIGINT.
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <iostream>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "cri/client.h"
#include "cri/endpoint.h"
#include "http/health_server.h"
#include "http/http1_client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "node-agent/agent.h"

namespace {

struct Flags {
  std::string kubeconfig;
  std::string node_name;
  std::string namespace_ = "stowage-system";
  std::string host_root = "/";
  std::string cri_endpoint = std::string(stowage::cri::kContainerdEndpoint);
  std::string store_dir = "/var/lib/stowage";
  std::string export_dir = "/var/lib/stowage/exports";
  int max_parallel_pulls = 2;
  int prune_min_age_seconds = 120;
  std::string metrics_addr = ":9090";
  std::string health_addr = ":9091";
  std::string log_level = "info";
  std::string log_format = "text";
};

std::chrono::seconds parse_duration(const std::string& text) {
  if (text.empty()) throw CLI::ValidationError("duration", "empty");
  std::size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(text, &used);
  } catch (const std::exception&) {
    throw CLI::ValidationError("duration", "not a duration: " + text);
  }
  const std::string unit = text.substr(used);
  if (n < 0) throw CLI::ValidationError("duration", "negative: " + text);
  if (unit == "s" || unit.empty()) return std::chrono::seconds(n);
  if (unit == "m") return std::chrono::minutes(n);
  if (unit == "h") return std::chrono::hours(n);
  throw CLI::ValidationError("duration", "unit must be s, m or h: " + text);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"stowage-agent: keeps a node's registries files and images as its NodeCache says"};
  Flags f;
  std::string prune_min_age = "2m";
  app.add_option("--kubeconfig", f.kubeconfig, "kubeconfig file (default: in-cluster)");
  app.add_option("--node-name", f.node_name, "this node's name")->envname("NODE_NAME");
  app.add_option("--namespace", f.namespace_, "namespace of registries ConfigMaps and pull secrets")
      ->capture_default_str();
  app.add_option("--host-root", f.host_root, "the node's root filesystem")->capture_default_str();
  app.add_option("--cri-endpoint", f.cri_endpoint, "CRI socket")->capture_default_str();
  app.add_option("--store-dir", f.store_dir,
                 "agent state: pull record, export content store (<dir>/content), export record")
      ->capture_default_str();
  app.add_option("--export-dir", f.export_dir,
                 "where export tar files go (NodeCache spec.exports; file names stay inside)")
      ->capture_default_str();
  app.add_option("--max-parallel-pulls", f.max_parallel_pulls, "pulls at once")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--prune-min-age", prune_min_age, "never prune images pulled more recently")
      ->capture_default_str();
  app.add_option("--metrics-addr", f.metrics_addr, "/metrics listen address")
      ->capture_default_str();
  app.add_option("--health-addr", f.health_addr, "/healthz and /readyz listen address")
      ->capture_default_str();
  app.add_option("--log-level", f.log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  app.add_option("--log-format", f.log_format, "text or json")->capture_default_str();
  std::chrono::seconds min_age{0};
  try {
    app.parse(argc, argv);
    min_age = parse_duration(prune_min_age);
    if (f.node_name.empty()) throw CLI::RequiredError("--node-name (or NODE_NAME)");
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  // SIGTERM and SIGINT are taken by one thread; every other thread inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  try {
    stowage::setup_logging(stowage::parse_log_format(f.log_format), f.log_level);
    stowage::Clock& clock = stowage::real_clock();
    std::stop_source stop;
    // Blocks in sigwait (no wake-ups while idle); at the end main() sends it SIGTERM itself.
    std::jthread signal_waiter([&] {
      int sig = 0;
      if (sigwait(&signals, &sig) == 0 && !stop.stop_requested()) {
        spdlog::info("signal={} stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        stop.request_stop();
      }
    });
    // However main() leaves this scope, the waiter's sigwait ends before it is joined.
    struct WakeWaiter {
      std::jthread& thread;
      std::stop_source& stop;
      ~WakeWaiter() {
        stop.request_stop();
        pthread_kill(thread.native_handle(), SIGTERM);
      }
    } wake_waiter{signal_waiter, stop};

    stowage::http::Http1Client transport;
    stowage::kube::LoadOptions load;
    load.kubeconfig = f.kubeconfig;
    stowage::kube::ClientOptions kube_options;
    kube_options.stop = stop.get_token();
    stowage::kube::Client kube(stowage::kube::load_rest_config(clock, load), transport, clock,
                               kube_options);
    stowage::cri::ClientOptions cri_options;
    cri_options.endpoint = f.cri_endpoint;
    const stowage::cri::Client cri(cri_options);

    stowage::agent::AgentOptions options;
    options.node_name = f.node_name;
    options.namespace_ = f.namespace_;
    options.host_root = f.host_root;
    options.store_dir = f.store_dir;
    options.export_dir = f.export_dir;
    options.max_parallel_pulls = f.max_parallel_pulls;
    options.prune_min_age = min_age;
    stowage::agent::Agent agent(options, kube, cri, clock);

    stowage::http::HealthServer health(
        f.health_addr,
        [&agent] {
          const auto r = agent.readiness();
          return stowage::http::Readiness{.ready = r.ready, .message = r.message};
        },
        nullptr);
    stowage::http::HealthServer metrics(f.metrics_addr, nullptr,
                                        [&agent] { return agent.metrics_text(); });
    health.start();
    metrics.start();
    spdlog::info("node={} health={} metrics={} cri={} host_root={} store_dir={} export_dir={}",
                 f.node_name, f.health_addr, f.metrics_addr, f.cri_endpoint, f.host_root,
                 f.store_dir, f.export_dir);

    agent.run(stop.get_token());
    stop.request_stop();
    metrics.stop();
    health.stop();
    return EXIT_SUCCESS;
  } catch (const std::exception& e) {
    spdlog::critical("stowage-agent: {}", e.what());
    std::cerr << "stowage-agent: " << e.what() << "\n";
    return EXIT_FAILURE;
  }
}
