// stowage-operator: parses flags, builds the Kubernetes client, the Operator and the probe
// server, runs the Operator on its own thread and stops it on SIGTERM or SIGINT.
#include <malloc.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <thread>

#include "api/image_cache.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/metrics.h"
#include "http/client.h"
#include "http/health_server.h"
#include "kube/client.h"
#include "kube/config.h"
#include "operator/operator.h"
#include "operator/rollout.h"

namespace {

std::string env_or(const char* name, std::string fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

// POD_NAME from the downward API, else the host name with a random suffix.
std::string default_identity() {
  if (const char* pod = std::getenv("POD_NAME"); pod != nullptr && *pod != '\0') return pod;
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  std::random_device rd;
  return std::string(host.data()) + "_" + std::to_string(rd() % 1'000'000);
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"stowage-operator: plans registries configuration and image caches for every node",
               "stowage-operator"};
  std::string kubeconfig;
  std::string namespace_ = env_or("POD_NAMESPACE", "");
  std::string max_unavailable = "10%";
  bool leader_elect = true;
  std::string leader_election_id = "stowage-operator";
  std::string metrics_addr = ":8080";
  std::string health_addr = ":8081";
  std::string refresh_interval = "10m";
  std::vector<std::string> insecure_registries;
  std::string log_level = "info";
  std::string log_format = "text";
  double kube_api_qps = 200;
  int kube_api_burst = 400;
  int concurrent_writes = 4;
  app.add_option("--kubeconfig", kubeconfig,
                 "kubeconfig file (default: $KUBECONFIG, else the pod's service account)");
  app.add_option("--namespace", namespace_,
                 "namespace of the registries ConfigMaps and the Lease (default: $POD_NAMESPACE)");
  app.add_option("--max-unavailable", max_unavailable,
                 "nodes changing registries at once: a count or a percentage")
      ->capture_default_str();
  app.add_option("--leader-elect", leader_elect, "act only while holding the Lease")
      ->capture_default_str();
  app.add_option("--leader-election-id", leader_election_id, "name of the Lease")
      ->capture_default_str();
  app.add_option("--metrics-addr", metrics_addr, "listen address of /metrics")
      ->capture_default_str();
  app.add_option("--health-addr", health_addr, "listen address of /healthz and /readyz")
      ->capture_default_str();
  app.add_option("--refresh-interval", refresh_interval,
                 "how often the whole cluster is planned again without an event (each "
                 "ImageCache re-resolves its tags every spec.refreshInterval, default 6h)")
      ->capture_default_str();
  app.add_option("--insecure-registry", insecure_registries,
                 "registry host resolved without TLS verification (repeatable)");
  app.add_option("--kube-api-qps", kube_api_qps,
                 "requests per second to the API server (client-side limit; 0: none); writing "
                 "every NodeCache of a large cluster is bounded by it")
      ->capture_default_str();
  app.add_option("--kube-api-burst", kube_api_burst,
                 "requests allowed at once above --kube-api-qps")
      ->capture_default_str();
  app.add_option("--concurrent-writes", concurrent_writes,
                 "NodeCache specs written at once (each its own request, all within "
                 "--kube-api-qps)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text or json")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  // Long-lived threads (reflectors, writers, listeners) would each get a malloc arena of their
  // own that keeps what it freed; two arenas are plenty for one reconcile loop.
  mallopt(M_ARENA_MAX, 2);
  try {
    stowage::setup_logging(stowage::parse_log_format(log_format), log_level);
    stowage::Clock& clock = stowage::real_clock();
    stowage::kube::LoadOptions load;
    load.kubeconfig = kubeconfig;
    stowage::kube::RestConfig rest = stowage::kube::load_rest_config(clock, load);
    if (namespace_.empty()) namespace_ = rest.namespace_;
    rest.qps = kube_api_qps;
    rest.burst = kube_api_burst;

    stowage::op::OperatorOptions options;
    options.namespace_ = namespace_;
    options.max_unavailable = stowage::op::MaxUnavailable::parse(max_unavailable);
    options.leader_elect = leader_elect;
    options.concurrent_writes = concurrent_writes;
    options.leader_election_id = leader_election_id;
    options.identity = default_identity();
    const auto interval = stowage::api::parse_interval(refresh_interval);
    if (!interval || interval->count() <= 0) {
      throw stowage::Error(stowage::Code::kInvalidArgument,
                           "--refresh-interval: not a duration: \"" + refresh_interval + "\"");
    }
    options.refresh_interval = *interval;
    options.insecure_registries = insecure_registries;

    // SIGTERM and SIGINT are taken by sigwait() below, in no other thread.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    stowage::http::Client kube_transport;
    stowage::http::ClientOptions registry_http;
    stowage::http::Client registry_transport(registry_http);
    stowage::kube::Client client(rest, kube_transport, clock);
    stowage::MetricsRegistry metrics;
    stowage::op::Operator op(options, client, clock, registry_transport, metrics);

    const auto render = [&metrics] { return metrics.render(); };
    const auto readiness = [&op] {
      return op.ready() ? stowage::http::Readiness{true, ""}
                        : stowage::http::Readiness{false, "informers not synced"};
    };
    stowage::http::HealthServer health(health_addr, readiness, nullptr);
    stowage::http::HealthServer metrics_server(metrics_addr, nullptr, render);
    health.start();
    metrics_server.start();
    spdlog::info("msg=\"starting\" namespace={} leader_elect={} identity={} health={} metrics={}",
                 namespace_, leader_elect, options.identity, health_addr, metrics_addr);

    std::jthread runner([&op](std::stop_token stop) { op.run(stop); });
    int received = 0;
    sigwait(&signals, &received);
    spdlog::info("msg=\"stopping\" signal={}", received);
    runner.request_stop();
    runner.join();
    metrics_server.stop();
    health.stop();
  } catch (const std::exception& e) {
    std::cerr << "stowage-operator: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
