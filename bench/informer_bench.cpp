// Informer on Nodes against a real kube-apiserver: sync time, RSS delta and event throughput, in
// metadata-only and full mode. Usage: informer_bench [--nodes N] [--threads T]
#include <fmt/format.h>
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/parallel.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/informer.h"
#include "support/kube_fixture.h"

namespace {

using nlohmann::json;
using stowage::real_clock;
using namespace stowage::kube;
using Steady = std::chrono::steady_clock;

const GroupVersionResource kNodes{"", "v1", "nodes"};

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

long settled_rss_kib() {
  malloc_trim(0);
  return rss_kib();
}

double seconds_since(Steady::time_point start) {
  return std::chrono::duration<double>(Steady::now() - start).count();
}

// A Node shaped like a kubelet's: labels, annotations, capacity, conditions, addresses, images.
json make_node(int i) {
  const std::string name = fmt::format("bench-node-{:05d}", i);
  json labels = {{"kubernetes.io/hostname", name},
                 {"kubernetes.io/os", "linux"},
                 {"kubernetes.io/arch", "amd64"},
                 {"node.kubernetes.io/instance-type", "m5.2xlarge"},
                 {"topology.kubernetes.io/region", "eu-west-1"},
                 {"topology.kubernetes.io/zone", fmt::format("eu-west-1{}", "abc"[i % 3])},
                 {"node-role.kubernetes.io/worker", ""},
                 {"pool", fmt::format("pool-{}", i % 7)},
                 {"bench/rev", "0"}};
  json annotations = {{"node.alpha.kubernetes.io/ttl", "0"},
                      {"volumes.kubernetes.io/controller-managed-attach-detach", "true"},
                      {"csi.volume.kubernetes.io/nodeid",
                       fmt::format(R"({{"ebs.csi.aws.com":"i-{:017x}"}})", 0xabc000 + i)},
                      {"bench/notes", std::string(300, 'x')}};
  json conditions = json::array();
  for (const char* type : {"MemoryPressure", "DiskPressure", "PIDPressure", "Ready"}) {
    const bool ready = std::string(type) == "Ready";
    conditions.push_back({{"type", type},
                          {"status", ready ? "True" : "False"},
                          {"lastHeartbeatTime", "2024-05-01T10:00:00Z"},
                          {"lastTransitionTime", "2024-04-01T10:00:00Z"},
                          {"reason", ready ? "KubeletReady" : fmt::format("KubeletHasNo{}", type)},
                          {"message", ready ? "kubelet is posting ready status"
                                            : "kubelet has sufficient resources available"}});
  }
  json images = json::array();
  for (int k = 0; k < 15; ++k) {
    images.push_back(
        {{"names",
          {fmt::format("registry.example.com/team{}/service-{}@sha256:{:064x}", k % 4, k, k + i),
           fmt::format("registry.example.com/team{}/service-{}:v1.{}.{}", k % 4, k, k, i % 10)}},
         {"sizeBytes", 10'000'000 + k * 1'234'567}});
  }
  json resources = {{"cpu", "8"},
                    {"memory", "32386544Ki"},
                    {"pods", "110"},
                    {"ephemeral-storage", "104845292Ki"},
                    {"hugepages-2Mi", "0"}};
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", name}, {"labels", labels}, {"annotations", annotations}}},
          {"spec",
           {{"podCIDR", fmt::format("10.{}.{}.0/24", i / 256, i % 256)},
            {"providerID", fmt::format("aws:///eu-west-1a/i-{:017x}", 0xabc000 + i)}}},
          {"status",
           {{"capacity", resources},
            {"allocatable", resources},
            {"conditions", conditions},
            {"addresses",
             {{{"type", "InternalIP"}, {"address", fmt::format("10.{}.{}.10", i / 256, i % 256)}},
              {{"type", "Hostname"}, {"address", name}}}},
            {"daemonEndpoints", {{"kubeletEndpoint", {{"Port", 10250}}}}},
            {"nodeInfo",
             {{"machineID", fmt::format("{:032x}", i)},
              {"systemUUID", fmt::format("ec2{:029x}", i)},
              {"bootID", fmt::format("{:032x}", i * 7)},
              {"kernelVersion", "6.1.0-18-cloud-amd64"},
              {"osImage", "Debian GNU/Linux 12 (bookworm)"},
              {"containerRuntimeVersion", "containerd://1.7.13"},
              {"kubeletVersion", "v1.30.0"},
              {"kubeProxyVersion", "v1.30.0"},
              {"operatingSystem", "linux"},
              {"architecture", "amd64"}}},
            {"images", images}}}};
}

struct Row {
  std::string mode;
  double sync_s = 0;
  long rss_delta_kib = 0;
  double patch_s = 0;
  double seen_s = 0;
  double events_per_s = 0;
};

Row run(Client& client, int n, int threads, bool metadata_only, int rev) {
  Row row;
  row.mode = metadata_only ? "metadata-only" : "full";
  const long before = settled_rss_kib();
  std::atomic<int> updates{0};
  auto informer = std::make_unique<Informer>(client, real_clock(), [&] {
    InformerOptions options;
    options.reflector.collection = ResourceRef{kNodes, "", "", ""};
    options.reflector.metadata_only = metadata_only;
    return options;
  }());
  const std::string want = std::to_string(rev);
  informer->on_update([&](const json&, const json& now) {
    if (now["metadata"]["labels"].value("bench/rev", "") == want) ++updates;
  });
  const auto start = Steady::now();
  informer->start();
  if (!informer->wait_until_synced(real_clock().now() + std::chrono::minutes(5))) {
    throw std::runtime_error("informer did not sync");
  }
  row.sync_s = seconds_since(start);
  row.rss_delta_kib = settled_rss_kib() - before;
  if (static_cast<int>(informer->list().size()) < n) {
    throw std::runtime_error(fmt::format("cache holds {} nodes", informer->list().size()));
  }

  const auto patch_start = Steady::now();
  std::stop_source patch_stop;
  stowage::run_parallel(
      static_cast<std::size_t>(n), threads, patch_stop,
      [&](std::size_t i) {
        client.patch({kNodes, "", fmt::format("bench-node-{:05d}", i), ""}, PatchType::kMerge,
                     {{"metadata", {{"labels", {{"bench/rev", want}}}}}});
      },
      "patching nodes");
  row.patch_s = seconds_since(patch_start);
  const auto deadline = Steady::now() + std::chrono::minutes(5);
  while (updates.load() < n && Steady::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  row.seen_s = seconds_since(patch_start);
  row.events_per_s = updates.load() / row.seen_s;
  if (updates.load() < n) fmt::print(stderr, "only {} of {} updates seen\n", updates.load(), n);
  informer->stop();
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 5000;
  int threads = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--nodes")
      n = std::atoi(argv[i + 1]);
    else if (arg == "--threads")
      threads = std::atoi(argv[i + 1]);
    else {
      std::cerr << "usage: informer_bench [--nodes N] [--threads T]\n";
      return 2;
    }
  }
  try {
    const auto bins = stowage::test::ControlPlane::find_binaries();
    if (!bins.dir) {
      std::cerr << bins.problem << "\n";
      return 1;
    }
    stowage::test::ControlPlaneOptions plane_options;
    plane_options.with_controller_manager = false;  // no node lifecycle controller touching nodes
    stowage::test::ControlPlane plane(plane_options);
    RestConfig config =
        rest_config_from_kubeconfig(load_kubeconfig({plane.kubeconfig_path()}), "", real_clock());
    config.qps = 0;  // unlimited: the apiserver is the bottleneck, not the client
    stowage::http::Client http(stowage::http::ClientOptions{.proxy = ""});
    Client client(config, http, real_clock());

    const auto create_start = Steady::now();
    std::stop_source create_stop;
    stowage::run_parallel(
        static_cast<std::size_t>(n), threads, create_stop,
        [&](std::size_t i) {
          client.create({kNodes, "", "", ""}, make_node(static_cast<int>(i)));
        },
        "creating nodes");
    const double create_s = seconds_since(create_start);
    const std::size_t node_bytes = client.get({kNodes, "", "bench-node-00000", ""}).dump().size();
    fmt::print(
        "control plane up in {} ms; created {} nodes ({} bytes of JSON each as stored, "
        "{} threads) in {:.1f} s ({:.0f}/s)\n",
        plane.startup_duration().count(), n, node_bytes, threads, create_s, n / create_s);

    std::vector<Row> rows;
    rows.push_back(run(client, n, threads, /*metadata_only=*/true, 1));
    rows.push_back(run(client, n, threads, /*metadata_only=*/false, 2));

    fmt::print("\n{:<14} {:>9} {:>14} {:>10} {:>12} {:>10}\n", "mode", "sync (s)", "RSS delta",
               "patch (s)", "all seen (s)", "events/s");
    for (const Row& r : rows) {
      fmt::print("{:<14} {:>9.2f} {:>11.1f} MiB {:>10.2f} {:>12.2f} {:>10.0f}\n", r.mode, r.sync_s,
                 r.rss_delta_kib / 1024.0, r.patch_s, r.seen_s, r.events_per_s);
    }
  } catch (const std::exception& e) {
    std::cerr << "informer_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
