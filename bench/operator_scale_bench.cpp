// The stowage-operator binary at scale against a real kube-apiserver (DESIGN.md §7): N Nodes,
// M ImageCaches written by digest (no registry needed) and 2 RegistryConfigs. Measures the time
// to plan every NodeCache at start, the time until every NodeCache spec carries the new
// registries hash after one RegistryConfig change, and the operator's RSS (VmRSS, VmHWM).
// A second run paces the change (--max-unavailable 10%) with simulated agents that acknowledge
// each hash by writing the NodeCache status. Usage:
//   operator_scale_bench [--nodes N] [--image-caches M] [--threads T] [--max-unavailable P]
//                        [--paced-max-unavailable P|none] [--settle S] [--operator PATH]
#include <fmt/format.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "api/meta.h"
#include "base/clock.h"
#include "base/parallel.h"
#include "base/sha256.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/informer.h"
#include "support/kube_fixture.h"
#include "support/process.h"

namespace {

using nlohmann::json;
using stowage::real_clock;
using namespace stowage::kube;
using Steady = std::chrono::steady_clock;

const GroupVersionResource kNodes{"", "v1", "nodes"};
const GroupVersionResource kNamespaces{"", "v1", "namespaces"};
const std::string kOperatorNamespace = "stowage-system";
const std::string kZoneLabel = "topology.kubernetes.io/zone";
constexpr int kPools = 50;
constexpr int kTeams = 4;

double seconds_since(Steady::time_point start) {
  return std::chrono::duration<double>(Steady::now() - start).count();
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return fmt::format("{} {} {}", a, b, c);
}

// ---- The cluster's shape -------------------------------------------------------------------

std::string node_name(int i) {
  return fmt::format("node-{:05d}", i);
}
std::string zone_of(int i) {
  return fmt::format("zone-{}", "abcd"[i % 4]);
}
std::string pool_of(int i, int n) {
  // Contiguous pools of n / kPools nodes.
  const int per_pool = std::max(1, n / kPools);
  return fmt::format("pool-{:02d}", (i / per_pool) % kPools);
}
bool gpu(int i) {
  return i % 10 == 0;
}

json make_node(int i, int n) {
  json labels = {{"kubernetes.io/hostname", node_name(i)},
                 {"kubernetes.io/os", "linux"},
                 {"kubernetes.io/arch", "amd64"},
                 {"node-role.kubernetes.io/worker", ""},
                 {"node.kubernetes.io/instance-type", gpu(i) ? "p4d.24xlarge" : "m5.2xlarge"},
                 {kZoneLabel, zone_of(i)},
                 {"pool", pool_of(i, n)}};
  if (gpu(i)) labels["gpu"] = "true";
  json annotations = {{"node.alpha.kubernetes.io/ttl", "0"},
                      {"volumes.kubernetes.io/controller-managed-attach-detach", "true"}};
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", node_name(i)}, {"labels", labels}, {"annotations", annotations}}},
          {"spec", {{"podCIDR", fmt::format("10.{}.{}.0/24", i / 256, i % 256)}}}};
}

// ImageCache k: its namespace, its selector, and which nodes it selects (the same rule).
struct CacheShape {
  std::string namespace_;
  std::string name;
  json selector;
  std::function<bool(int)> selects;
  std::vector<std::string> images;
};

// `registry`: the host of every image; a loopback port nothing listens on, so that an operator
// that asks the registry about digest references gets a prompt refusal and stays on loopback.
CacheShape cache_shape(int k, int n, const std::string& registry) {
  CacheShape c;
  c.namespace_ = fmt::format("team-{}", k % kTeams);
  c.name = fmt::format("ic-{:03d}", k);
  if (k < 2) {  // base images on every worker
    c.selector = {{"matchExpressions",
                   {{{"key", "node-role.kubernetes.io/worker"}, {"operator", "Exists"}}}}};
    c.selects = [](int) { return true; };
  } else if (k < 10) {  // per zone
    const std::string zone = fmt::format("zone-{}", "abcd"[(k - 2) % 4]);
    c.selector = {{"matchLabels", {{kZoneLabel, zone}}}};
    c.selects = [zone](int i) { return zone_of(i) == zone; };
  } else if (k < 30) {  // GPU nodes
    c.selector = {{"matchLabels", {{"gpu", "true"}}}};
    c.selects = [](int i) { return gpu(i); };
  } else {  // per pool; every fifth also narrowed to two zones
    const std::string pool = fmt::format("pool-{:02d}", (k - 30) % kPools);
    c.selector = {{"matchLabels", {{"pool", pool}}}};
    if (k % 5 == 0) {
      c.selector["matchExpressions"] = {
          {{"key", kZoneLabel}, {"operator", "In"}, {"values", {"zone-a", "zone-b"}}}};
      c.selects = [pool, n](int i) {
        return pool_of(i, n) == pool && (zone_of(i) == "zone-a" || zone_of(i) == "zone-b");
      };
    } else {
      c.selects = [pool, n](int i) { return pool_of(i, n) == pool; };
    }
  }
  const int count = 2 + k % 4;  // 2 to 5 images, all by digest
  for (int j = 0; j < count; ++j) {
    const std::string repo = fmt::format("{}/team-{}/app-{:03d}-{}", registry, k % kTeams, k, j);
    c.images.push_back(repo + "@sha256:" + stowage::sha256_hex(repo));
  }
  return c;
}

json image_cache_object(const CacheShape& c) {
  json images = json::array();
  for (const auto& name : c.images) images.push_back({{"name", name}});
  return {{"apiVersion", "stowage.io/v1alpha1"},
          {"kind", "ImageCache"},
          {"metadata", {{"name", c.name}, {"namespace", c.namespace_}}},
          {"spec", {{"nodeSelector", c.selector}, {"images", images}}}};
}

json cluster_registry_config() {
  return {{"apiVersion", "stowage.io/v1alpha1"},
          {"kind", "RegistryConfig"},
          {"metadata", {{"name", "cluster"}}},
          {"spec",
           {{"nodeSelector", json::object()},
            {"priority", 0},
            {"unqualifiedSearchRegistries", {"registry.example.com", "quay.io"}},
            {"shortNameMode", "enforcing"},
            {"registries",
             {{{"location", "registry.example.com"},
               {"mirrors", {{{"location", "mirror-1.example.com/registry"}}}}}}}}}};
}

json gpu_registry_config() {
  return {{"apiVersion", "stowage.io/v1alpha1"},
          {"kind", "RegistryConfig"},
          {"metadata", {{"name", "gpu"}}},
          {"spec",
           {{"nodeSelector", {{"matchLabels", {{"gpu", "true"}}}}},
            {"priority", 10},
            {"registries",
             {{{"location", "nvcr.io"},
               {"mirrors", {{{"location", "mirror-gpu.example.com/nvcr"}}}}}}}}}};
}

// ---- Watching NodeCaches from the outside ---------------------------------------------------

// What the bench's own NodeCache informer sees, and how many nodes meet the current goal.
// Optionally acts as every node's agent: acknowledges each spec hash in status.
class Observer {
 public:
  enum class Goal { kComplete, kChanged };

  Observer(Client& client, std::map<std::string, std::size_t> expected_images)
      : client_(client), expected_(std::move(expected_images)) {
    InformerOptions options;
    options.reflector.collection = ResourceRef{stowage::api::node_caches_resource(), "", "", ""};
    informer_ = std::make_unique<Informer>(client_, real_clock(), std::move(options));
    informer_->on_add([this](const json& o) { seen(o); });
    informer_->on_update([this](const json&, const json& o) { seen(o); });
  }
  ~Observer() {
    stop_agents();
    informer_->stop();
  }

  void start() {
    informer_->start();
    if (!informer_->wait_until_synced(real_clock().now() + std::chrono::minutes(2))) {
      throw std::runtime_error("NodeCache informer did not sync");
    }
  }

  // Sets the goal and recounts. kChanged: spec hash set and different from the one recorded by
  // remember_hashes().
  void set_goal(Goal goal) {
    std::lock_guard lock(mu_);
    goal_ = goal;
    first_event_.reset();
    satisfied_ = 0;
    for (auto& [name, v] : views_) {
      v.ok = meets(name, v);
      if (v.ok) ++satisfied_;
    }
  }
  void remember_hashes() {
    std::lock_guard lock(mu_);
    old_hash_.clear();
    for (const auto& [name, v] : views_) old_hash_[name] = v.hash;
  }
  std::set<std::string> distinct_hashes() {
    std::lock_guard lock(mu_);
    std::set<std::string> out;
    for (const auto& [name, v] : views_) out.insert(v.hash);
    return out;
  }
  std::size_t satisfied() {
    std::lock_guard lock(mu_);
    return satisfied_;
  }
  std::size_t unacknowledged() {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& [name, v] : views_) n += v.hash != v.applied ? 1 : 0;
    return n;
  }
  // When the first NodeCache met the goal after set_goal().
  std::optional<Steady::time_point> first_event() {
    std::lock_guard lock(mu_);
    return first_event_;
  }
  // Waits until `n` nodes meet the goal; false on timeout.
  bool wait_all(std::size_t n, std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return satisfied_ >= n; });
  }
  // The specs of up to `count` NodeCaches, as stored.
  std::vector<json> sample_specs(std::size_t count) {
    std::vector<json> out;
    for (const auto& o : informer_->list()) {
      if (out.size() >= count) break;
      if (o->contains("spec")) out.push_back((*o)["spec"]);
    }
    return out;
  }
  std::size_t stored_bytes() {
    std::size_t total = 0;
    const auto all = informer_->list();
    for (const auto& o : all) total += o->dump().size();
    return all.empty() ? 0 : total / all.size();
  }

  // Simulated agents: every NodeCache whose spec hash differs from its status appliedHash gets
  // status.registries {appliedHash, state: Applied}, from `threads` writers.
  void start_agents(int threads) {
    {
      std::lock_guard lock(mu_);
      agents_on_ = true;
      for (const auto& [name, v] : views_) {
        if (!v.hash.empty() && v.hash != v.applied) enqueue_locked(name);
      }
    }
    for (int t = 0; t < threads; ++t) {
      agents_.emplace_back([this](std::stop_token stop) { agent_loop(stop); });
    }
  }
  void stop_agents() {
    {
      std::lock_guard lock(mu_);
      agents_on_ = false;
    }
    for (auto& a : agents_) a.request_stop();
    agent_cv_.notify_all();
    agents_.clear();
  }
  std::int64_t acks() const { return acks_.load(); }

 private:
  struct View {
    std::string hash;
    std::string applied;
    std::size_t images = 0;
    bool ok = false;
  };

  bool meets(const std::string& name, const View& v) const {
    const auto e = expected_.find(name);
    if (e == expected_.end() || v.hash.empty() || v.images != e->second) return false;
    if (goal_ == Goal::kComplete) return true;
    const auto old = old_hash_.find(name);
    return old == old_hash_.end() || old->second != v.hash;
  }

  void seen(const json& o) {
    const std::string name = o["metadata"].value("name", "");
    View v;
    v.hash = o.value("/spec/registries/hash"_json_pointer, "");
    v.applied = o.value("/status/registries/appliedHash"_json_pointer, "");
    if (const auto spec = o.find("spec"); spec != o.end() && spec->contains("images")) {
      v.images = (*spec)["images"].size();
    }
    std::lock_guard lock(mu_);
    View& slot = views_[name];
    const bool was = slot.ok;
    v.ok = meets(name, v);
    slot = v;
    if (v.ok && !was) {
      ++satisfied_;
      if (!first_event_) first_event_ = Steady::now();
      cv_.notify_all();
    } else if (!v.ok && was) {
      --satisfied_;
    }
    if (agents_on_ && !v.hash.empty() && v.hash != v.applied) enqueue_locked(name);
  }

  void enqueue_locked(const std::string& name) {
    if (queued_.insert(name).second) {
      queue_.push_back(name);
      agent_cv_.notify_one();
    }
  }

  void agent_loop(std::stop_token stop) {
    while (true) {
      std::string name;
      std::string hash;
      {
        std::unique_lock lock(mu_);
        agent_cv_.wait(lock, [&] { return stop.stop_requested() || !queue_.empty(); });
        if (stop.stop_requested()) return;
        name = queue_.front();
        queue_.pop_front();
        queued_.erase(name);
        const View& v = views_[name];
        if (v.hash.empty() || v.hash == v.applied) continue;
        hash = v.hash;
      }
      try {
        client_.patch({stowage::api::node_caches_resource(), "", name, "status"}, PatchType::kMerge,
                      {{"status",
                        {{"registries",
                          {{"appliedHash", hash},
                           {"state", "Applied"},
                           {"lastTransitionTime", "2024-05-01T10:00:00Z"}}}}}});
        ++acks_;
      } catch (const std::exception& e) {
        fmt::print(stderr, "agent ack {}: {}\n", name, e.what());
      }
    }
  }

  Client& client_;
  const std::map<std::string, std::size_t> expected_;
  std::unique_ptr<Informer> informer_;
  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::condition_variable agent_cv_;
  std::unordered_map<std::string, View> views_;
  std::unordered_map<std::string, std::string> old_hash_;
  Goal goal_ = Goal::kComplete;
  std::size_t satisfied_ = 0;
  std::optional<Steady::time_point> first_event_;
  bool agents_on_ = false;
  std::deque<std::string> queue_;
  std::set<std::string> queued_;
  std::vector<std::jthread> agents_;
  std::atomic<std::int64_t> acks_{0};
};

// ---- The operator process -------------------------------------------------------------------

struct Rss {
  long rss_kib = 0;
  long hwm_kib = 0;
};

Rss read_rss(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  Rss r;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) r.rss_kib = std::strtol(line.c_str() + 6, nullptr, 10);
    if (line.rfind("VmHWM:", 0) == 0) r.hwm_kib = std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return r;
}

double mib(long kib) {
  return kib / 1024.0;
}

// Sum of every sample of `name` (any labels) in a Prometheus text exposition.
double metric_sum(const std::string& text, const std::string& name,
                  const std::string& label_filter = "") {
  double total = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#' || line.rfind(name, 0) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;
    if (!label_filter.empty() && line.find(label_filter) == std::string::npos) continue;
    const std::size_t space = line.rfind(' ');
    total += std::strtod(line.c_str() + space + 1, nullptr);
  }
  return total;
}

// One stowage-operator process with an RSS sampler.
class OperatorRun {
 public:
  OperatorRun(const std::filesystem::path& binary, const std::filesystem::path& kubeconfig,
              const std::filesystem::path& dir, const std::string& max_unavailable)
      : log_(dir / fmt::format("operator-{}.log", max_unavailable == "100%" ? "full" : "paced")),
        health_port_(stowage::test::free_port()),
        metrics_port_(stowage::test::free_port()) {
    stowage::test::ProcessOptions options;
    options.argv = {binary.string(),     "--kubeconfig",
                    kubeconfig.string(), "--namespace",
                    kOperatorNamespace,  "--leader-elect=false",
                    "--max-unavailable", max_unavailable,
                    "--health-addr",     fmt::format("127.0.0.1:{}", health_port_),
                    "--metrics-addr",    fmt::format("127.0.0.1:{}", metrics_port_),
                    "--log-level",       "info"};
    options.stdout_path = log_;
    options.stderr_path = log_;
    started_ = Steady::now();
    process_ = std::make_unique<stowage::test::Process>(std::move(options));
    sampler_ = std::jthread([this](std::stop_token stop) {
      while (!stop.stop_requested()) {
        const Rss r = read_rss(process_->pid());
        if (r.rss_kib > 0) {
          std::lock_guard lock(mu_);
          last_ = r;
          peak_rss_kib_ = std::max(peak_rss_kib_, r.rss_kib);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  }
  ~OperatorRun() { stop(); }

  Steady::time_point started() const { return started_; }
  pid_t pid() const { return process_->pid(); }
  const std::filesystem::path& log() const { return log_; }

  // Seconds from start until /readyz answers 200.
  double wait_ready() {
    if (!stowage::test::wait_for(
            [&] {
              if (!process_->running()) throw std::runtime_error(process_->describe());
              return stowage::test::http_get_status(health_port_, "/readyz") == 200;
            },
            std::chrono::minutes(3))) {
      throw std::runtime_error("operator not ready: " + process_->describe());
    }
    return seconds_since(started_);
  }

  std::string metrics() {
    stowage::http::Request request;
    request.url = fmt::format("http://127.0.0.1:{}/metrics", metrics_port_);
    return http_.send(request).body;
  }

  // Waits until at least one reconcile finished and the operator's writes and reconciles then
  // stay unchanged for `quiet`.
  void wait_quiet(std::chrono::seconds quiet) {
    double last_writes = -1, last_reconciles = -1;
    auto since = Steady::now();
    const auto deadline = Steady::now() + std::chrono::minutes(5);
    while (Steady::now() < deadline) {
      const std::string m = metrics();
      const double w = metric_sum(m, "stowage_operator_writes_total");
      const double r = metric_sum(m, "stowage_operator_reconciles_total");
      if (r < 1 || w != last_writes || r != last_reconciles) {
        last_writes = w;
        last_reconciles = r;
        since = Steady::now();
      } else if (Steady::now() - since >= quiet) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }

  Rss now() {
    std::lock_guard lock(mu_);
    return last_;
  }
  long peak_rss_kib() {
    std::lock_guard lock(mu_);
    return peak_rss_kib_;
  }
  bool running() { return process_->running(); }

  void stop() {
    if (sampler_.joinable()) {
      sampler_.request_stop();
      sampler_.join();
    }
    if (process_) process_->stop();
  }

 private:
  std::filesystem::path log_;
  int health_port_;
  int metrics_port_;
  Steady::time_point started_;
  std::unique_ptr<stowage::test::Process> process_;
  stowage::http::Client http_{stowage::http::ClientOptions{.proxy = ""}};
  std::mutex mu_;  // guards last_, peak_rss_kib_
  Rss last_;
  long peak_rss_kib_ = 0;
  std::jthread sampler_;
};

// Seconds since midnight UTC of an operator log line ("2024-05-01T10:00:00.123Z ..."), or -1.
double log_time(const std::string& line) {
  if (line.size() < 24 || line[10] != 'T' || line[23] != 'Z') return -1;
  return std::stoi(line.substr(11, 2)) * 3600.0 + std::stoi(line.substr(14, 2)) * 60.0 +
         std::stod(line.substr(17, 6));
}

double wall_seconds_of_day() {
  const auto now = std::chrono::system_clock::now();
  const auto day = std::chrono::floor<std::chrono::days>(now);
  return std::chrono::duration<double>(now - day).count();
}

// What the operator's log says between two byte offsets: NodeCache applies and their span.
struct LogSpan {
  int applies = 0;
  int paced_lines = 0;
  int errors = 0;
  double first = -1;
  double last = -1;
};

LogSpan scan_log(const std::filesystem::path& path, std::size_t from, std::size_t to) {
  std::ifstream in(path);
  in.seekg(static_cast<std::streamoff>(from));
  LogSpan span;
  std::string line;
  std::size_t at = from;
  while (at < to && std::getline(in, line)) {
    at += line.size() + 1;
    if (line.find("msg=\"applied NodeCache specs\"") != std::string::npos) {
      // One line per reconcile that wrote: count=N seconds=S, logged when the last was done.
      const auto field = [&](std::string_view key) {
        const auto at_key = line.find(key);
        return at_key == std::string::npos ? 0.0 : std::atof(line.c_str() + at_key + key.size());
      };
      span.applies += static_cast<int>(field(" count="));
      const double t = log_time(line);
      if (span.first < 0) span.first = t - field(" seconds=");
      span.last = t;
    } else if (line.find("registries rollout paced") != std::string::npos) {
      ++span.paced_lines;
    } else if (line.find("reconcile failed") != std::string::npos) {
      ++span.errors;
    }
  }
  return span;
}

std::size_t log_size(const std::filesystem::path& p) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(p, ec);
  return ec ? 0 : static_cast<std::size_t>(n);
}

// NodeCache requests the apiserver served, by verb (and subresource), from its /metrics.
std::string nodecache_requests(const stowage::test::ControlPlane& plane) {
  const auto r = plane.kubectl({"get", "--raw", "/metrics"});
  if (!r.ok()) return "(apiserver /metrics unreadable)";
  std::map<std::string, double> by;
  std::size_t pos = 0;
  const std::string& text = r.out;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("apiserver_request_total{", 0) != 0) continue;
    if (line.find("resource=\"nodecaches\"") == std::string::npos) continue;
    const auto label = [&](const std::string& key) {
      const auto at = line.find(key + "=\"");
      if (at == std::string::npos) return std::string();
      const auto start = at + key.size() + 2;
      return line.substr(start, line.find('"', start) - start);
    };
    std::string key = label("verb");
    if (const std::string sub = label("subresource"); !sub.empty()) key += "/" + sub;
    by[key] += std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
  }
  std::string out;
  for (const auto& [k, v] : by) out += fmt::format("{}{}={:.0f}", out.empty() ? "" : " ", k, v);
  return out;
}

// The apiserver's own pace for what the operator does per node: a server-side apply of a NodeCache
// spec as planned, to new objects, one request at a time from each of `threads` threads, with no
// client-side rate limit. Applies per second.
double apply_rate(Client& client, const std::vector<json>& specs, int threads) {
  const PatchOptions options{.field_manager = "bench-probe", .force = true, .dry_run = false};
  const auto start = Steady::now();
  std::stop_source stop;
  stowage::run_parallel(
      specs.size(), threads, stop,
      [&](std::size_t i) {
        const std::string name = fmt::format("probe-{}-{:05d}", threads, i);
        client.apply({stowage::api::node_caches_resource(), "", name, ""},
                     {{"apiVersion", "stowage.io/v1alpha1"},
                      {"kind", "NodeCache"},
                      {"metadata", {{"name", name}}},
                      {"spec", specs[i]}},
                     options);
      },
      "applying probe NodeCaches");
  return static_cast<double>(specs.size()) / seconds_since(start);
}

struct Options {
  int nodes = 5000;
  int image_caches = 200;
  int threads = 8;
  std::string max_unavailable = "100%";
  std::string paced = "10%";
  int settle_s = 10;
  std::filesystem::path operator_binary =
      std::filesystem::path(STOWAGE_BINARY_DIR) / "bin" / "stowage-operator";
};

struct ChangeResult {
  double first_s = -1;  // change until the first NodeCache carried the new hash
  double all_s = -1;    // change until all did
  bool done = false;
  LogSpan log;
  double log_first_write_s = -1;  // change until the first write of a reconcile that wrote
  std::string requests_before;
  std::string requests_after;
};

// Patches the "cluster" RegistryConfig (every node) and waits for every NodeCache to carry a
// new hash.
ChangeResult change_and_wait(Client& client, Observer& observer, OperatorRun& op,
                             const stowage::test::ControlPlane& plane, int n, int rev) {
  ChangeResult r;
  observer.remember_hashes();
  observer.set_goal(Observer::Goal::kChanged);
  r.requests_before = nodecache_requests(plane);
  const std::size_t log_from = log_size(op.log());
  const double wall = wall_seconds_of_day();
  const auto start = Steady::now();
  client.patch(
      {stowage::api::registry_configs_resource(), "", "cluster", ""}, PatchType::kMerge,
      {{"spec", {{"insecureRegistries", {fmt::format("registry-{}.example.com:5000", rev)}}}}});
  r.done = observer.wait_all(static_cast<std::size_t>(n), std::chrono::minutes(10));
  r.all_s = seconds_since(start);
  if (const auto first = observer.first_event()) {
    r.first_s = std::chrono::duration<double>(*first - start).count();
  }
  r.requests_after = nodecache_requests(plane);
  r.log = scan_log(op.log(), log_from, log_size(op.log()));
  if (r.log.first >= 0) r.log_first_write_s = r.log.first - wall;
  return r;
}

void print_change(const char* label, const ChangeResult& r) {
  fmt::print(
      "{}: all {} in {:.2f} s (first NodeCache after {:.2f} s); operator log: {} NodeCache "
      "applies, first {:.2f} s after the change, spanning {:.2f} s ({:.0f}/s); {} paced "
      "reconciles logged, {} reconcile errors\n",
      label, r.done ? "done" : "NOT done", r.all_s, r.first_s, r.log.applies, r.log_first_write_s,
      r.log.last - r.log.first,
      r.log.last > r.log.first ? r.log.applies / (r.log.last - r.log.first) : 0.0,
      r.log.paced_lines, r.log.errors);
  fmt::print("  apiserver nodecaches requests before: {}\n", r.requests_before);
  fmt::print("  apiserver nodecaches requests after:  {}\n", r.requests_after);
}

void print_operator_metrics(OperatorRun& op) {
  const std::string m = op.metrics();
  fmt::print(
      "  operator /metrics: reconciles_total={:.0f} (errors {:.0f}) writes_total={:.0f} "
      "nodes_planned={:.0f}; reconcile duration {:.2f} s in all over {:.0f} reconciles\n",
      metric_sum(m, "stowage_operator_reconciles_total"),
      metric_sum(m, "stowage_operator_reconcile_errors_total"),
      metric_sum(m, "stowage_operator_writes_total"),
      metric_sum(m, "stowage_operator_nodes_planned"),
      metric_sum(m, "stowage_operator_reconcile_duration_seconds_sum"),
      metric_sum(m, "stowage_operator_reconcile_duration_seconds_count"));
}

const char* verdict(bool ok) {
  return ok ? "PASS" : "FAIL";
}

int run(const Options& opt) {
  const auto bins = stowage::test::ControlPlane::find_binaries();
  if (!bins.dir) {
    std::cerr << bins.problem << "\n";
    return 1;
  }
  if (!std::filesystem::exists(opt.operator_binary)) {
    std::cerr << "no stowage-operator at " << opt.operator_binary << ": build it first\n";
    return 1;
  }
  fmt::print("load average at start: {} ({} CPUs)\n", load_average(),
             std::thread::hardware_concurrency());
  stowage::test::ControlPlaneOptions plane_options;
  plane_options.with_controller_manager = false;
  stowage::test::ControlPlane plane(plane_options);
  const auto crds = plane.kubectl({"apply", "--server-side", "-f",
                                   (std::filesystem::path(STOWAGE_SOURCE_DIR) / "crds").string()});
  if (!crds.ok()) throw std::runtime_error(crds.describe());
  const auto established = plane.kubectl(
      {"wait", "--for=condition=Established", "--timeout=60s", "crd/registryconfigs.stowage.io",
       "crd/imagecaches.stowage.io", "crd/nodecaches.stowage.io"});
  if (!established.ok()) throw std::runtime_error(established.describe());

  RestConfig config =
      rest_config_from_kubeconfig(load_kubeconfig({plane.kubeconfig_path()}), "", real_clock());
  config.qps = 0;  // the bench's own client is not what is measured
  stowage::http::Client http(stowage::http::ClientOptions{.proxy = ""});
  Client client(config, http, real_clock());

  for (int t = -1; t < kTeams; ++t) {
    const std::string ns = t < 0 ? kOperatorNamespace : fmt::format("team-{}", t);
    client.create({kNamespaces, "", "", ""},
                  {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}});
  }

  // Seed the cluster.
  const int n = opt.nodes;
  auto seed_start = Steady::now();
  std::stop_source seed_stop;
  stowage::run_parallel(
      static_cast<std::size_t>(n), opt.threads, seed_stop,
      [&](std::size_t i) {
        client.create({kNodes, "", "", ""}, make_node(static_cast<int>(i), n));
      },
      "creating Nodes");
  const double nodes_s = seconds_since(seed_start);
  std::vector<CacheShape> caches;
  const std::string registry = fmt::format("127.0.0.1:{}", stowage::test::free_port());
  for (int k = 0; k < opt.image_caches; ++k) caches.push_back(cache_shape(k, n, registry));
  seed_start = Steady::now();
  stowage::run_parallel(
      caches.size(), opt.threads, seed_stop,
      [&](std::size_t k) {
        client.create({stowage::api::image_caches_resource(), caches[k].namespace_, "", ""},
                      image_cache_object(caches[k]));
      },
      "creating ImageCaches");
  const double caches_s = seconds_since(seed_start);
  client.create({stowage::api::registry_configs_resource(), "", "", ""}, cluster_registry_config());
  client.create({stowage::api::registry_configs_resource(), "", "", ""}, gpu_registry_config());

  std::map<std::string, std::size_t> expected;
  std::size_t total_images = 0;
  for (int i = 0; i < n; ++i) {
    std::size_t count = 0;
    for (const auto& c : caches) count += c.selects(i) ? c.images.size() : 0;
    expected[node_name(i)] = count;
    total_images += count;
  }
  fmt::print(
      "control plane up in {} ms; seeded {} Nodes in {:.1f} s ({:.0f}/s, {} threads), {} "
      "ImageCaches in {:.2f} s, 2 RegistryConfigs; {:.1f} images per NodeCache on average\n",
      plane.startup_duration().count(), n, nodes_s, n / nodes_s, opt.threads, opt.image_caches,
      caches_s, static_cast<double>(total_images) / n);

  malloc_trim(0);
  const long bench_before_kib = read_rss(getpid()).rss_kib;
  Observer observer(client, expected);
  observer.start();
  stowage::test::TempDir dir("operator-scale-bench");

  // Run 1: --max-unavailable 100% (default), no agents: pacing does not hide planning time.
  fmt::print("\n== run 1: --max-unavailable {}, no agents; load average {}\n", opt.max_unavailable,
             load_average());
  auto op = std::make_unique<OperatorRun>(opt.operator_binary, plane.kubeconfig_path(), dir.path(),
                                          opt.max_unavailable);
  observer.set_goal(Observer::Goal::kComplete);
  const double ready_s = op->wait_ready();
  const bool initial_done =
      observer.wait_all(static_cast<std::size_t>(n), std::chrono::minutes(10));
  const double initial_s = seconds_since(op->started());
  const Rss after_initial = op->now();
  const LogSpan initial_log = scan_log(op->log(), 0, log_size(op->log()));
  fmt::print(
      "operator ready (informers synced) after {:.2f} s; all {} NodeCaches complete {} {:.2f} s "
      "after start; RSS then {:.1f} MiB (HWM {:.1f} MiB); {} NodeCache applies logged over "
      "{:.2f} s\n",
      ready_s, n, initial_done ? "at" : "NOT done at", initial_s, mib(after_initial.rss_kib),
      mib(after_initial.hwm_kib), initial_log.applies, initial_log.last - initial_log.first);
  op->wait_quiet(std::chrono::seconds(3));
  fmt::print("  NodeCache as stored: {} bytes of JSON on average; distinct hashes: {}\n",
             observer.stored_bytes(), observer.distinct_hashes().size());
  print_operator_metrics(*op);
  malloc_trim(0);
  fmt::print(
      "  for comparison, this process's own full NodeCache informer (same transform as the "
      "operator's) grew its RSS by {:.1f} MiB\n",
      mib(read_rss(getpid()).rss_kib - bench_before_kib));
  const Rss before_change = op->now();

  fmt::print("load average before the change: {}\n", load_average());
  const ChangeResult change = change_and_wait(client, observer, *op, plane, n, 1);
  print_change("RegistryConfig change", change);
  const std::size_t new_hashes = observer.distinct_hashes().size();
  op->wait_quiet(std::chrono::seconds(3));
  // Steady: after the operator has been quiet for --settle seconds.
  std::this_thread::sleep_for(std::chrono::seconds(opt.settle_s));
  const Rss steady = op->now();
  const long peak_kib = std::max(steady.hwm_kib, op->peak_rss_kib());
  fmt::print(
      "RSS: before change {:.1f} MiB, steady ({} s quiet after the change) {:.1f} MiB, peak "
      "(VmHWM) {:.1f} MiB; distinct hashes now {}\n",
      mib(before_change.rss_kib), opt.settle_s, mib(steady.rss_kib), mib(peak_kib), new_hashes);
  print_operator_metrics(*op);
  op->stop();
  op.reset();

  // Run 2: paced, with simulated agents acknowledging every hash.
  std::optional<ChangeResult> paced;
  double paced_peak_mib = -1, paced_steady_mib = -1, restart_ready_s = -1, ack_s = -1;
  if (opt.paced != "none") {
    fmt::print("\n== run 2: --max-unavailable {}, simulated agents; load average {}\n", opt.paced,
               load_average());
    const auto ack_start = Steady::now();
    observer.start_agents(4);
    stowage::test::wait_for([&] { return observer.unacknowledged() == 0; },
                            std::chrono::minutes(5));
    ack_s = seconds_since(ack_start);
    fmt::print("agents acknowledged the current hashes of {} NodeCaches in {:.1f} s\n",
               observer.acks(), ack_s);
    op = std::make_unique<OperatorRun>(opt.operator_binary, plane.kubeconfig_path(), dir.path(),
                                       opt.paced);
    restart_ready_s = op->wait_ready();
    op->wait_quiet(std::chrono::seconds(3));
    fmt::print(
        "operator restarted over {} planned NodeCaches: ready after {:.2f} s, quiet after "
        "{:.2f} s\n",
        n, restart_ready_s, seconds_since(op->started()) - 3);
    print_operator_metrics(*op);
    fmt::print("load average before the change: {}\n", load_average());
    paced = change_and_wait(client, observer, *op, plane, n, 2);
    print_change("paced RegistryConfig change", *paced);
    fmt::print("  agent acknowledgements so far: {}\n", observer.acks());
    op->wait_quiet(std::chrono::seconds(3));
    const Rss s = op->now();
    paced_steady_mib = mib(s.rss_kib);
    paced_peak_mib = mib(std::max(s.hwm_kib, op->peak_rss_kib()));
    fmt::print("RSS: after the paced change {:.1f} MiB, peak (VmHWM) {:.1f} MiB\n",
               paced_steady_mib, paced_peak_mib);
    print_operator_metrics(*op);
    observer.stop_agents();
    op->stop();
  }

  // What the apiserver sustains for the operator's kind of write, without a client rate limit.
  const std::vector<json> specs = observer.sample_specs(500);
  fmt::print(
      "\napiserver floor (operator stopped; load average {}): server-side apply of {} "
      "NodeCache specs as planned, no client rate limit: {:.0f}/s from 1 thread, ",
      load_average(), specs.size(), apply_rate(client, specs, 1));
  fmt::print("{:.0f}/s from 4 threads\n", apply_rate(client, specs, 4));

  fmt::print("\nload average at the end: {}\n", load_average());
  fmt::print("\n{:<58} {:>10} {:>10}  {}\n", "result", "value", "target", "");
  const auto row = [](const std::string& what, const std::string& value, const std::string& target,
                      const char* word) {
    fmt::print("{:<58} {:>10} {:>10}  {}\n", what, value, target, word);
  };
  row(fmt::format("initial plan of {} NodeCaches (operator start to done)", n),
      fmt::format("{:.1f} s", initial_s), "-", initial_done ? "" : "NOT DONE");
  row(fmt::format("plan a RegistryConfig change, {} nodes ({})", n, opt.max_unavailable),
      fmt::format("{:.1f} s", change.all_s), "< 30 s", verdict(change.done && change.all_s < 30.0));
  row("operator peak RSS (VmHWM), run 1", fmt::format("{:.1f} MiB", mib(peak_kib)), "< 100 MiB",
      verdict(mib(peak_kib) < 100.0));
  row("operator steady RSS, run 1", fmt::format("{:.1f} MiB", mib(steady.rss_kib)), "< 100 MiB",
      verdict(mib(steady.rss_kib) < 100.0));
  if (paced) {
    row(fmt::format("paced change ({}, simulated agents), all nodes", opt.paced),
        fmt::format("{:.1f} s", paced->all_s), "-", paced->done ? "" : "NOT DONE");
    row("operator peak RSS (VmHWM), run 2", fmt::format("{:.1f} MiB", paced_peak_mib), "< 100 MiB",
        verdict(paced_peak_mib < 100.0));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Options opt;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    const std::string value = argv[i + 1];
    if (arg == "--nodes") {
      opt.nodes = std::atoi(value.c_str());
    } else if (arg == "--image-caches") {
      opt.image_caches = std::atoi(value.c_str());
    } else if (arg == "--threads") {
      opt.threads = std::atoi(value.c_str());
    } else if (arg == "--max-unavailable") {
      opt.max_unavailable = value;
    } else if (arg == "--paced-max-unavailable") {
      opt.paced = value;
    } else if (arg == "--settle") {
      opt.settle_s = std::atoi(value.c_str());
    } else if (arg == "--operator") {
      opt.operator_binary = value;
    } else {
      std::cerr << "usage: operator_scale_bench [--nodes N] [--image-caches M] [--threads T] "
                   "[--max-unavailable P] [--paced-max-unavailable P|none] [--settle S] "
                   "[--operator PATH]\n";
      return 2;
    }
  }
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::cerr << "operator_scale_bench: " << e.what() << "\n";
    return 1;
  }
}
