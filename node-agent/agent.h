// The node agent: watches its own NodeCache (and nothing else), and on every change, and every
// resync period, applies the registries files the spec names, pulls the planned images, prunes
// dropped ones when the policy says OnRemoval, writes the export tar files the spec names
// (node-agent/exporter.h), and writes the NodeCache status (status subresource, only on change,
// rate-limited). Learns the runtime from CRI Version once at start.
//   Agent agent({.node_name = "worker-1", .namespace_ = "stowage-system", ...}, kube, cri, clock);
//   std::jthread t([&](std::stop_token s) { agent.run(s); });  // returns once `s` is requested
// readiness() and metrics_text() may be called from any thread while run() works.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "api/node_cache.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "cri/client.h"
#include "http/transport.h"
#include "kube/client.h"
#include "node-agent/exporter.h"
#include "node-agent/image_reconciler.h"
#include "node-agent/node_status.h"
#include "node-agent/registries_applier.h"

namespace stowage::agent {

inline constexpr std::string_view kAgentFieldManager = "stowage-agent";

struct AgentOptions {
  std::string node_name;
  // Where the registries ConfigMaps and the synced pull Secrets are.
  std::string namespace_;
  // The node's root filesystem as this process sees it ("/host" in the pod).
  std::filesystem::path host_root = "/";
  // Holds the pull record (images this agent pulled), the content store exports are written from
  // (<store_dir>/content) and the record of the export files written.
  std::filesystem::path store_dir;
  // Where export tar files go; empty: planned exports are reported Failed.
  std::filesystem::path export_dir = {};
  // Registry access for exports the node's content stores cannot serve (borrowed); nullptr: the
  // agent's own HTTP client (proxies from the environment).
  http::Transport* registry_transport = nullptr;
  int max_parallel_pulls = 2;
  std::chrono::seconds prune_min_age = std::chrono::minutes(2);
  // How often the NodeCache is reconciled again without a change.
  Clock::Duration resync_period = std::chrono::minutes(5);
  // Least time between two status writes.
  Clock::Duration status_min_interval = std::chrono::seconds(1);
  // Retries of a failed sync back off from the first to the second.
  Clock::Duration retry_base = std::chrono::seconds(1);
  Clock::Duration retry_max = std::chrono::minutes(5);
};

struct AgentReadiness {
  bool ready = false;
  std::string message;
};

class Agent {
 public:
  // `kube`, `cri` and `clock` are borrowed and must outlive the agent.
  Agent(AgentOptions options, kube::Client& kube, const cri::Client& cri, Clock& clock);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Works until `stop` is requested: pulls waiting to start are not started, pulls in flight are
  // cancelled (the runtime drops them), exports stop, no status is written for an interrupted
  // sync.
  // Throws stowage::Error only for what no retry can fix (an unreadable store directory).
  void run(std::stop_token stop);

  // Ready once a sync succeeded.
  AgentReadiness readiness() const;
  // The agent's metrics in the Prometheus text format.
  std::string metrics_text() const;
  // Syncs that completed (successful or not); for tests and logs.
  int syncs() const { return syncs_.load(); }

 private:
  struct Runtime;
  struct Metrics;
  enum class SyncResult { kOk, kRetry, kStopped };

  SyncResult sync(Runtime& rt, std::stop_token stop);
  api::NodeRegistriesStatus apply_registries(Runtime& rt, const api::NodeRegistries& spec,
                                             const api::NodeCacheStatus& previous, bool& retry);
  // Writes the status with `pulling` in state Pulling (from a pull thread; see Runtime).
  void report_pulling(Runtime& rt, const ImageResult& pulling);
  // Waits until status_min_interval passed since the last write, except for a final status right
  // after a progress write. Throws stowage::Error.
  void write_status(const api::NodeCacheStatus& status, std::stop_token stop,
                    bool progress = false);
  // Writes the spec's exports into `outcome`; false when `stop` interrupted them.
  bool run_exports(Runtime& rt, const api::NodeCacheSpec& spec, const std::vector<HeldImage>& held,
                   SyncOutcome& outcome, bool& retry, std::stop_token stop);

  AgentOptions options_;
  kube::Client& kube_;
  const cri::Client& cri_;
  Clock& clock_;
  std::unique_ptr<MetricsRegistry> registry_;
  std::unique_ptr<Metrics> metrics_;
  std::atomic<bool> ready_{false};
  std::atomic<int> syncs_{0};
  mutable std::mutex mu_;  // guards not_ready_
  std::string not_ready_ = "no sync yet";
  // run()'s thread, and pull threads (serialized) while run()'s thread waits for them.
  std::optional<Clock::TimePoint> last_write_;
  bool last_write_was_progress_ = false;  // as last_write_
};

}  // namespace stowage::agent
