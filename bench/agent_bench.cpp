// The node agent's pre-cache against `ctr images pull` of the same image alone, and the idle
// agent's footprint (DESIGN.md §7). Starts only what it needs: etcd and kube-apiserver (no
// controller-manager) with the CRDs, one docker-registry holding a 4 × 64 MiB image of random
// bytes, one containerd (native snapshotter, namespace k8s.io) and the built stowage-agent with
// the admin kubeconfig. Each round, in rotating order and each from the same empty store:
//   (a) `ctr -n k8s.io images pull --plain-http <ref>` (wall time of the command);
//   (b) the agent: NodeCache spec.images set to [{name, digest}], until a watch delivers a status
//       with that image Present at observedGeneration >= the written generation;
//   (c) for reference, CRI PullImage of the same reference (what the agent asks containerd).
// Then the agent idles: VmRSS/VmHWM, RssAnon/RssFile, Pss/USS, the resident memory of each mapped
// file (largest first) and utime+stime over a quiet window.
// Usage: agent_bench [--rounds N] [--layers L] [--layer-mib M] [--uncompressed]
//                    [--idle-settle S] [--idle-window S] [--agent PATH] [--agent-log-level L]
//                    [--keep-logs DIR]
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api/meta.h"
#include "base/clock.h"
#include "cri/client.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/informer.h"
#include "support/containerd_fixture.h"
#include "support/image_seed.h"
#include "support/kube_fixture.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using stowage::real_clock;
using Steady = std::chrono::steady_clock;
using stowage::test::ContainerdFixture;
using stowage::test::ControlPlane;
using stowage::test::Process;
using stowage::test::RegistryFixture;
using stowage::test::TempDir;

constexpr const char* kNode = "bench-node";
constexpr const char* kRepo = "bench/big";
constexpr const char* kTag = "v1";
constexpr double kTargetRatio = 1.05;
constexpr double kTargetRssMiB = 15.0;

struct Options {
  int rounds = 6;
  int layers = 4;
  int layer_mib = 64;
  bool gzip = true;
  int idle_settle_s = 20;
  int idle_window_s = 10;
  fs::path agent = fs::path(STOWAGE_BINARY_DIR) / "bin" / "stowage-agent";
  std::string agent_log_level = "info";
  fs::path keep_logs = {};  // copies agent.log and containerd.log here at the end
};

double seconds(Steady::duration d) {
  return std::chrono::duration<double>(d).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return fmt::format("{} {} {} (on {} CPUs)", a, b, c, std::thread::hardware_concurrency());
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what);
}

// Random-looking, incompressible bytes (splitmix64), the same on every run.
std::string random_bytes(std::size_t size, std::uint64_t seed) {
  std::string out(size, '\0');
  std::uint64_t x = seed;
  for (std::size_t i = 0; i + 8 <= size; i += 8) {
    x += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    std::memcpy(out.data() + i, &z, 8);
  }
  return out;
}

// /proc/<pid>/status fields in KiB, and utime+stime in clock ticks.
struct ProcSample {
  long rss_kib = -1;
  long hwm_kib = -1;
  long anon_kib = -1;  // RssAnon: heap, stacks, written pages
  long file_kib = -1;  // RssFile: mapped files (the binary and its shared libraries)
  long threads = -1;
  long long cpu_ticks = -1;
};

ProcSample sample_process(pid_t pid) {
  ProcSample s;
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = std::strtol(line.c_str() + 6, nullptr, 10);
    if (line.rfind("VmHWM:", 0) == 0) s.hwm_kib = std::strtol(line.c_str() + 6, nullptr, 10);
    if (line.rfind("RssAnon:", 0) == 0) s.anon_kib = std::strtol(line.c_str() + 8, nullptr, 10);
    if (line.rfind("RssFile:", 0) == 0) s.file_kib = std::strtol(line.c_str() + 8, nullptr, 10);
    if (line.rfind("Threads:", 0) == 0) s.threads = std::strtol(line.c_str() + 8, nullptr, 10);
  }
  std::ifstream stat_file(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // Fields after the command (which may hold spaces) start after the last ')': state is field 3,
  // utime field 14, stime field 15.
  const auto close = stat.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(stat.substr(close + 2));
    std::vector<std::string> f;
    std::string tok;
    while (rest >> tok) f.push_back(tok);
    if (f.size() > 12) s.cpu_ticks = std::stoll(f[11]) + std::stoll(f[12]);
  }
  return s;
}

// Pss and Private_Clean + Private_Dirty (USS) from /proc/<pid>/smaps_rollup, in KiB.
std::pair<long, long> pss_uss_kib(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/smaps_rollup", pid));
  std::string line;
  long pss = -1, uss = 0;
  while (std::getline(in, line)) {
    auto value = [&](std::size_t skip) { return std::strtol(line.c_str() + skip, nullptr, 10); };
    if (line.rfind("Pss:", 0) == 0) pss = value(4);
    if (line.rfind("Private_Clean:", 0) == 0) uss += value(14);
    if (line.rfind("Private_Dirty:", 0) == 0) uss += value(14);
  }
  return {pss, uss};
}

// Resident memory of the mappings of one file (or of all anonymous ones), in KiB, from
// /proc/<pid>/smaps.
struct MappingUse {
  std::string name;  // file name; "[anonymous]", "[heap]", "[stack]" for the rest
  long rss = 0;
  long pss = 0;
  long private_kib = 0;  // Private_Clean + Private_Dirty: what only this process holds
  long anonymous = 0;    // copied-on-write or never file-backed (counted in RssAnon)
  int mappings = 0;
};

// Every mapped file's (and the anonymous memory's) use, largest Rss first.
std::vector<MappingUse> mapping_use(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/smaps", pid));
  std::map<std::string, MappingUse> by_name;
  MappingUse* current = nullptr;
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    const auto dash = line.find('-');
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        dash != std::string::npos && colon > dash) {
      // "start-end perms offset dev inode [path]": the path is the 6th field.
      std::istringstream fields(line);
      std::string f, name;
      for (int i = 0; i < 5 && fields >> f; ++i) {
      }
      std::getline(fields >> std::ws, name);
      if (name.empty()) name = "[anonymous]";
      if (name.front() != '[') name = fs::path(name).filename().string();
      current = &by_name[name];
      current->name = name;
      ++current->mappings;
      continue;
    }
    if (current == nullptr || colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    const long kib = std::strtol(line.c_str() + colon + 1, nullptr, 10);
    if (key == "Rss") current->rss += kib;
    if (key == "Pss") current->pss += kib;
    if (key == "Private_Clean" || key == "Private_Dirty") current->private_kib += kib;
    if (key == "Anonymous") current->anonymous += kib;
  }
  std::vector<MappingUse> out;
  for (auto& [name, use] : by_name) out.push_back(std::move(use));
  std::sort(out.begin(), out.end(),
            [](const MappingUse& a, const MappingUse& b) { return a.rss > b.rss; });
  return out;
}

bool is_shared_library(const std::string& name) {
  return name.ends_with(".so") || name.find(".so.") != std::string::npos;
}

// Every NodeCache event the bench's own watch delivers, with the time it arrived.
class StatusWatch {
 public:
  struct Event {
    Steady::time_point at;
    json object;
  };

  void push(const json& object) {
    std::lock_guard lock(mu_);
    events_.push_back({Steady::now(), object});
    cv_.notify_all();
  }
  std::size_t mark() {
    std::lock_guard lock(mu_);
    return events_.size();
  }
  Steady::time_point last_event_at() {
    std::lock_guard lock(mu_);
    return events_.empty() ? Steady::time_point{} : events_.back().at;
  }
  // The first event from index `from` on that satisfies `pred`, or nullopt at the deadline.
  std::optional<Event> wait(std::size_t from, const std::function<bool(const json&)>& pred,
                            std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    const auto deadline = Steady::now() + timeout;
    std::size_t next = from;
    for (;;) {
      for (; next < events_.size(); ++next) {
        if (pred(events_[next].object)) return events_[next];
      }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && next == events_.size()) {
        return std::nullopt;
      }
    }
  }
  std::vector<Event> since(std::size_t from) {
    std::lock_guard lock(mu_);
    return {events_.begin() + static_cast<long>(std::min(from, events_.size())), events_.end()};
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> events_;
};

std::int64_t observed_generation(const json& nc) {
  const auto st = nc.find("status");
  if (st == nc.end() || !st->is_object()) return 0;
  return st->value("observedGeneration", std::int64_t{0});
}

std::string image_state(const json& nc, const std::string& name, const std::string& digest) {
  const auto st = nc.find("status");
  if (st == nc.end() || !st->is_object()) return "";
  for (const auto& i : st->value("images", json::array())) {
    if (i.value("name", "") == name && (digest.empty() || i.value("digest", "") == digest)) {
      return i.value("state", "");
    }
  }
  return "";
}

std::string install_crds(ControlPlane& plane) {
  const auto applied = plane.kubectl(
      {"apply", "--server-side", "-f", (fs::path(STOWAGE_SOURCE_DIR) / "crds").string()});
  if (!applied.ok()) return applied.describe();
  const auto waited = plane.kubectl({"wait", "--for=condition=Established", "--timeout=60s",
                                     "crd/nodecaches.stowage.io", "crd/imagecaches.stowage.io",
                                     "crd/registryconfigs.stowage.io"});
  return waited.ok() ? "" : waited.describe();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// Brings containerd's k8s.io namespace back to empty: every image removed with a synchronous GC,
// then checks that no content and no snapshot is left and that the CRI no longer reports `ref`.
void empty_store(const ContainerdFixture& containerd, const stowage::cri::Client& cri,
                 const std::string& ref) {
  const auto ls = containerd.ctr({"images", "ls", "-q"});
  if (!ls.ok()) fail("listing images: " + ls.describe());
  std::vector<std::string> rm = {"images", "rm", "--sync"};
  for (const auto& l : lines_of(ls.out)) rm.push_back(l);
  if (rm.size() > 3) {
    const auto r = containerd.ctr(rm);
    if (!r.ok()) fail("removing images: " + r.describe());
  }
  const auto content = containerd.ctr({"content", "ls", "-q"});
  const auto snaps = containerd.ctr({"snapshots", "ls"});
  const std::size_t blobs = lines_of(content.out).size();
  const std::size_t snapshots = lines_of(snaps.out).size() > 0 ? lines_of(snaps.out).size() - 1 : 0;
  if (blobs != 0 || snapshots != 0) {
    fail(
        fmt::format("containerd store not empty after removing every image: {} blobs, {} "
                    "snapshots",
                    blobs, snapshots));
  }
  if (!stowage::test::wait_for([&] { return !cri.image_status(ref).has_value(); },
                               std::chrono::seconds(10))) {
    fail("the CRI still reports " + ref + " after removal");
  }
  ::sync();
}

long metric_value(int port, const std::string& name) {
  stowage::http::Client http(stowage::http::ClientOptions{.proxy = ""});
  stowage::http::Request req;
  req.method = "GET";
  req.url = fmt::format("http://127.0.0.1:{}/metrics", port);
  const auto resp = http.send(req);
  for (const auto& line : lines_of(resp.body)) {
    if (line.rfind(name + " ", 0) == 0)
      return std::strtol(line.c_str() + name.size() + 1, nullptr, 10);
  }
  return 0;
}

void usage() {
  std::cerr << "usage: agent_bench [--rounds N] [--layers L] [--layer-mib M] [--uncompressed]\n"
               "                   [--idle-settle S] [--idle-window S] [--agent PATH]\n"
               "                   [--agent-log-level L] [--keep-logs DIR]\n";
}

int run(const Options& opt) {
  const auto bins = ControlPlane::find_binaries();
  if (!bins.dir) fail(bins.problem);
  if (auto r = RegistryFixture::unavailable_reason()) fail(*r);
  if (auto r = stowage::test::seed_unavailable_reason()) fail(*r);
  if (auto r = ContainerdFixture::unavailable_reason()) fail(*r);
  if (!fs::exists(opt.agent)) fail(opt.agent.string() + " is not built");

  fmt::print("load average at start: {}\n", load_average());
  TempDir work("stowage-agent-bench");

  // The image: `layers` layers of one file of random bytes each.
  auto t = Steady::now();
  RegistryFixture registry;
  stowage::test::ImageSpec spec;
  spec.layers.clear();
  spec.gzip = opt.gzip;
  for (int i = 0; i < opt.layers; ++i) {
    spec.layers.push_back({{fmt::format("data/layer-{}.bin", i),
                            random_bytes(static_cast<std::size_t>(opt.layer_mib) << 20,
                                         0x5eed0000 + static_cast<std::uint64_t>(i))}});
  }
  const std::string digest = registry.seed_image(kRepo, kTag, spec);
  spec.layers.clear();
  const std::string ref = fmt::format("{}/{}:{}", registry.host(), kRepo, kTag);
  fmt::print("seeded {} ({} layers x {} MiB random, {}) digest {} in {:.1f} s\n", ref, opt.layers,
             opt.layer_mib, opt.gzip ? "tar+gzip level 6" : "uncompressed tar", digest,
             seconds(Steady::now() - t));

  // Control plane without controller-manager, CRDs, the agent's namespace.
  t = Steady::now();
  stowage::test::ControlPlaneOptions plane_options;
  plane_options.with_controller_manager = false;
  ControlPlane plane(plane_options);
  if (auto e = install_crds(plane); !e.empty()) fail("installing the CRDs: " + e);
  plane.kubectl({"create", "namespace", "stowage-system"});
  stowage::kube::RestConfig config = stowage::kube::rest_config_from_kubeconfig(
      stowage::kube::load_kubeconfig({plane.kubeconfig_path()}), "", real_clock());
  stowage::http::Client http(stowage::http::ClientOptions{.proxy = ""});
  stowage::kube::Client kube(config, http, real_clock());
  fmt::print("control plane with CRDs up in {:.1f} s\n", seconds(Steady::now() - t));

  // One containerd, its CRI registry config_path under the node's host root. The registry is
  // plain HTTP: a hosts.toml says so to the CRI plugin, --plain-http says so to ctr.
  const fs::path host_root = work / "host";
  const fs::path certs_d = host_root / "etc/containerd/certs.d";
  stowage::test::write_text_file(
      certs_d / registry.host() / "hosts.toml",
      fmt::format("server = \"http://{0}\"\n\n[host.\"http://{0}\"]\n  capabilities = "
                  "[\"pull\", \"resolve\"]\n",
                  registry.host()));
  stowage::test::ContainerdOptions copts;
  copts.namespace_name = "k8s.io";
  copts.cri_registry_config_path = certs_d;
  ContainerdFixture containerd(copts);
  {
    // containerd's config as the node sees it (the agent reads the sandbox image from it).
    std::string conf = stowage::test::read_text_file(containerd.config_file());
    const std::string prefix = host_root.string();
    for (auto pos = conf.find(prefix); pos != std::string::npos; pos = conf.find(prefix, pos)) {
      conf.erase(pos, prefix.size());
    }
    stowage::test::write_text_file(host_root / "etc/containerd/config.toml", conf);
  }
  const stowage::cri::Client cri(
      stowage::cri::ClientOptions{.endpoint = "unix://" + containerd.address(),
                                  .timeout = std::chrono::seconds(10),
                                  .pull_timeout = std::chrono::minutes(5),
                                  .max_receive_message_bytes = 16 * 1024 * 1024});

  // The NodeCache as the operator writes it: no registries, images by digest, prune Never (the
  // bench empties the store itself, the same way for every path).
  const stowage::kube::ResourceRef collection{stowage::api::node_caches_resource(), "", "", ""};
  const stowage::kube::ResourceRef object_ref{stowage::api::node_caches_resource(), "", kNode, ""};
  kube.create(collection,
              {{"apiVersion", "stowage.io/v1alpha1"},
               {"kind", "NodeCache"},
               {"metadata", {{"name", kNode}}},
               {"spec", {{"images", json::array()}, {"prune", {{"policy", "Never"}}}}}});

  StatusWatch watch;
  stowage::kube::InformerOptions informer_options;
  informer_options.reflector.collection = collection;
  informer_options.reflector.field_selector = std::string("metadata.name=") + kNode;
  stowage::kube::Informer informer(kube, real_clock(), informer_options);
  informer.on_add([&](const json& o) { watch.push(o); });
  informer.on_update([&](const json&, const json& o) { watch.push(o); });
  informer.start();
  if (!informer.wait_until_synced(real_clock().now() + std::chrono::seconds(30))) {
    fail("the bench's NodeCache watch did not sync");
  }

  const int metrics_port = stowage::test::free_port();
  stowage::test::ProcessOptions agent_options;
  agent_options.argv = {opt.agent.string(),
                        "--kubeconfig=" + plane.kubeconfig_path().string(),
                        std::string("--node-name=") + kNode,
                        "--namespace=stowage-system",
                        "--host-root=" + host_root.string(),
                        "--cri-endpoint=unix://" + containerd.address(),
                        "--store-dir=" + (host_root / "var/lib/stowage").string(),
                        "--export-dir=" + (host_root / "var/lib/stowage/exports").string(),
                        fmt::format("--metrics-addr=127.0.0.1:{}", metrics_port),
                        "--health-addr=127.0.0.1:0",
                        "--log-level=" + opt.agent_log_level};
  agent_options.stdout_path = work / "agent.log";
  agent_options.stderr_path = agent_options.stdout_path;
  Process agent(agent_options);
  const auto started = watch.wait(
      0, [](const json& o) { return o.contains("status") && o["status"].contains("runtime"); },
      std::chrono::seconds(60));
  if (!started) fail("the agent wrote no status: " + agent.describe());
  const ProcSample fresh = sample_process(agent.pid());
  fmt::print("stowage-agent pid {} running; first status after its start; RSS {:.1f} MiB\n",
             agent.pid(), fresh.rss_kib / 1024.0);

  const json image_entry = {{"name", ref}, {"digest", digest}};
  auto set_images = [&](const json& images) {
    const json r =
        kube.patch(object_ref, stowage::kube::PatchType::kMerge, {{"spec", {{"images", images}}}});
    return r["metadata"].value("generation", std::int64_t{0});
  };

  std::vector<double> ctr_s, agent_s, cri_s, pulling_s;
  fmt::print("\nload average before the rounds: {}\n", load_average());
  fmt::print("{:>5} {:>10} {:>12} {:>14} {:>16}\n", "round", "ctr (s)", "agent (s)", "CRI pull (s)",
             "agent Pulling (s)");
  for (int round = 0; round < opt.rounds; ++round) {
    double a = 0, b = 0, c = 0, p = -1;
    auto do_ctr = [&] {
      empty_store(containerd, cri, ref);
      const auto start = Steady::now();
      const auto r =
          containerd.ctr({"images", "pull", "--plain-http", ref}, std::chrono::minutes(5));
      a = seconds(Steady::now() - start);
      if (!r.ok()) fail("ctr pull: " + r.describe());
    };
    auto do_cri = [&] {
      empty_store(containerd, cri, ref);
      const auto start = Steady::now();
      cri.pull_image(ref);
      c = seconds(Steady::now() - start);
    };
    auto do_agent = [&] {
      // Back to an empty plan, acknowledged by the agent, then the store emptied. The last state
      // seen counts: the plan may be empty already (no new generation, no event).
      const std::size_t reset_from = watch.mark() - 1;
      const auto reset_gen = set_images(json::array());
      if (!watch.wait(
              reset_from, [&](const json& o) { return observed_generation(o) >= reset_gen; },
              std::chrono::seconds(60))) {
        fail("the agent did not acknowledge the empty plan");
      }
      empty_store(containerd, cri, ref);
      // The agent spaces status writes by at least 1 s (its status_min_interval): start only
      // once its last write is 1.5 s old, as a spec change arriving at a quiet agent would.
      const auto quiet_from = watch.last_event_at() + std::chrono::milliseconds(1500);
      if (Steady::now() < quiet_from) std::this_thread::sleep_until(quiet_from);
      const long pulls_before = metric_value(metrics_port, "stowage_agent_image_pulls_total");

      const std::size_t from = watch.mark();
      const auto start = Steady::now();
      const auto gen = set_images(json::array({image_entry}));
      const auto present = watch.wait(
          from,
          [&](const json& o) {
            return observed_generation(o) >= gen && image_state(o, ref, digest) == "Present";
          },
          std::chrono::minutes(5));
      if (!present) fail("no Present status within 5 minutes: " + agent.describe());
      b = seconds(present->at - start);
      for (const auto& e : watch.since(from)) {
        if (image_state(e.object, ref, "") == "Pulling") {
          p = seconds(e.at - start);
          break;
        }
      }
      const long pulls_after = metric_value(metrics_port, "stowage_agent_image_pulls_total");
      if (pulls_after != pulls_before + 1) {
        fail(fmt::format("the agent reported Present with {} pulls instead of 1",
                         pulls_after - pulls_before));
      }
    };
    // Each path takes each place in the order in turn (rounds in multiples of 3 balance them).
    const std::function<void()> paths[] = {do_ctr, do_agent, do_cri};
    for (int k = 0; k < 3; ++k) paths[(round + k) % 3]();
    ctr_s.push_back(a);
    agent_s.push_back(b);
    cri_s.push_back(c);
    if (p >= 0) pulling_s.push_back(p);
    fmt::print("{:>5} {:>10.3f} {:>12.3f} {:>14.3f} {:>16}\n", round + 1, a, b, c,
               p >= 0 ? fmt::format("{:.3f}", p) : std::string("not seen"));
  }
  const double ma = median(ctr_s), mb = median(agent_s), mc = median(cri_s);
  const double ratio = mb / ma;
  fmt::print(
      "\nmedians of {}: ctr images pull {:.3f} s, agent spec->Present {:.3f} s, CRI "
      "PullImage {:.3f} s\n",
      opt.rounds, ma, mb, mc);
  fmt::print("agent / ctr = {:.3f} (target <= {:.2f}): {}\n", ratio, kTargetRatio,
             ratio <= kTargetRatio ? "PASS" : "FAIL");
  fmt::print("agent / CRI PullImage = {:.3f}; CRI PullImage / ctr = {:.3f}\n", mb / mc, mc / ma);
  fmt::print("load average after the rounds: {}\n", load_average());

  // Idle: nothing changes; the agent's next resync is minutes away.
  fmt::print("\nidling {} s, then sampling for {} s\n", opt.idle_settle_s, opt.idle_window_s);
  std::this_thread::sleep_for(std::chrono::seconds(opt.idle_settle_s));
  const ProcSample before = sample_process(agent.pid());
  long max_rss = before.rss_kib;
  const std::size_t idle_from = watch.mark();
  for (int i = 0; i < opt.idle_window_s; ++i) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    max_rss = std::max(max_rss, sample_process(agent.pid()).rss_kib);
  }
  const ProcSample after = sample_process(agent.pid());
  max_rss = std::max(max_rss, after.rss_kib);
  const long long idle_ticks = after.cpu_ticks - before.cpu_ticks;
  fmt::print(
      "idle agent: VmRSS {:.2f} MiB (max over the window {:.2f} MiB), VmHWM {:.2f} MiB, "
      "{} threads\n",
      after.rss_kib / 1024.0, max_rss / 1024.0, after.hwm_kib / 1024.0, after.threads);
  const auto [pss, uss] = pss_uss_kib(agent.pid());
  fmt::print("idle agent: RssAnon {:.2f} MiB, RssFile {:.2f} MiB; Pss {:.2f} MiB, USS {:.2f} MiB\n",
             after.anon_kib / 1024.0, after.file_kib / 1024.0, pss / 1024.0, uss / 1024.0);
  const auto uses = mapping_use(agent.pid());
  long library_rss = 0;
  int libraries = 0;
  for (const auto& u : uses) {
    if (is_shared_library(u.name)) {
      ++libraries;
      library_rss += u.rss;
    }
  }
  fmt::print("idle agent: {} shared libraries mapped holding {:.2f} MiB resident\n", libraries,
             library_rss / 1024.0);
  fmt::print("largest resident mappings (KiB):\n  {:>6} {:>6} {:>7} {:>6} {:>5}  {}\n", "Rss",
             "Pss", "Private", "Anon", "maps", "file");
  for (std::size_t i = 0; i < uses.size() && i < 20; ++i) {
    const auto& u = uses[i];
    fmt::print("  {:>6} {:>6} {:>7} {:>6} {:>5}  {}\n", u.rss, u.pss, u.private_kib, u.anonymous,
               u.mappings, u.name);
  }
  fmt::print("idle RSS {:.2f} MiB vs target < {:.0f} MiB: {}\n", max_rss / 1024.0, kTargetRssMiB,
             max_rss / 1024.0 < kTargetRssMiB ? "PASS" : "FAIL");
  fmt::print(
      "idle CPU: {} ticks (utime+stime, {} ticks/s) over {} s; total CPU since start {} "
      "ticks; NodeCache events during the window: {}\n",
      idle_ticks, sysconf(_SC_CLK_TCK), opt.idle_window_s, after.cpu_ticks,
      watch.since(idle_from).size());
  fmt::print("load average at the end: {}\n", load_average());

  informer.stop();
  agent.stop(std::chrono::seconds(5));
  if (!opt.keep_logs.empty()) {
    fs::create_directories(opt.keep_logs);
    fs::copy_file(work / "agent.log", opt.keep_logs / "agent.log",
                  fs::copy_options::overwrite_existing);
    stowage::test::write_text_file(opt.keep_logs / "containerd.log", containerd.log());
    fmt::print("logs in {}\n", opt.keep_logs.string());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--rounds")
      opt.rounds = std::atoi(value().c_str());
    else if (arg == "--layers")
      opt.layers = std::atoi(value().c_str());
    else if (arg == "--layer-mib")
      opt.layer_mib = std::atoi(value().c_str());
    else if (arg == "--uncompressed")
      opt.gzip = false;
    else if (arg == "--idle-settle")
      opt.idle_settle_s = std::atoi(value().c_str());
    else if (arg == "--idle-window")
      opt.idle_window_s = std::atoi(value().c_str());
    else if (arg == "--agent")
      opt.agent = value();
    else if (arg == "--agent-log-level")
      opt.agent_log_level = value();
    else if (arg == "--keep-logs")
      opt.keep_logs = value();
    else {
      usage();
      return 2;
    }
  }
  if (opt.rounds < 1 || opt.layers < 1 || opt.layer_mib < 1) {
    usage();
    return 2;
  }
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::cerr << "agent_bench: " << e.what() << "\n";
    return 1;
  }
}
