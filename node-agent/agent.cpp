#include "node-agent/agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <utility>

#include "api/meta.h"
#include "api/registries_config_map.h"
#include "base/error.h"
#include "http/http1_client.h"
#include "kube/informer.h"
#include "kube/workqueue.h"
#include "node-agent/pull_record.h"
#include "node-agent/runtime_config.h"
#include "node-agent/runtime_reload.h"
#include "oci/auth.h"

namespace stowage::agent {
namespace {

using nlohmann::json;

constexpr std::string_view kDockerConfigJsonType = "kubernetes.io/dockerconfigjson";
constexpr std::string_view kDockerConfigJsonKey = ".dockerconfigjson";

kube::GroupVersionResource config_maps() {
  return {"", "v1", "configmaps"};
}
kube::GroupVersionResource secrets() {
  return {"", "v1", "secrets"};
}

std::int64_t generation_of(const json& object) {
  const auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return 0;
  return meta->value("generation", std::int64_t{0});
}

}  // namespace

struct Agent::Metrics {
  explicit Metrics(MetricsRegistry& r)
      : pulls(r.counter("stowage_agent_image_pulls_total", "Images pulled by the agent.")),
        failures(r.counter("stowage_agent_image_failures_total",
                           "Planned images that ended a sync Failed, by reason.", {"reason"})),
        prunes(
            r.counter("stowage_agent_image_prunes_total", "Images removed by the agent's prune.")),
        syncs(r.counter("stowage_agent_syncs_total", "NodeCache syncs, by result.", {"result"})),
        registries(r.counter("stowage_agent_registries_applies_total",
                             "Registries applies, by state.", {"state"})),
        status_writes(r.counter("stowage_agent_status_writes_total", "NodeCache status writes.")),
        exports(r.counter("stowage_agent_exports_total",
                          "Export files handled by a sync, by outcome (Written, Unchanged, "
                          "Pending, Failed).",
                          {"outcome"})),
        export_bytes(
            r.counter("stowage_agent_export_bytes_total", "Bytes of export files written.")),
        export_blob_bytes(r.counter("stowage_agent_export_blob_bytes_total",
                                    "Blob bytes copied into the agent's content store for exports, "
                                    "by source (containerd, registry).",
                                    {"source"})) {}
  Family<Counter>& pulls;
  Family<Counter>& failures;
  Family<Counter>& prunes;
  Family<Counter>& syncs;
  Family<Counter>& registries;
  Family<Counter>& status_writes;
  Family<Counter>& exports;
  Family<Counter>& export_bytes;
  Family<Counter>& export_blob_bytes;
};

// What run() builds once the runtime is known.
struct Agent::Runtime {
  cri::VersionInfo version;
  std::optional<RuntimeKind> kind;
  std::unique_ptr<CrioReloader> reloader;
  std::unique_ptr<RegistriesApplier> applier;
  std::unique_ptr<PullRecord> record;
  std::unique_ptr<CriImageRuntime> images;
  std::unique_ptr<ImageReconciler> reconciler;
  std::unique_ptr<kube::Informer> informer;
  std::unique_ptr<http::Http1Client> registry_http;  // when no registry transport was given
  std::unique_ptr<Exporter> exporter;                // made at the first planned export
  std::vector<std::string> pause_images;             // the runtime's sandbox image: never pruned
  // While reconcile() pulls: the status last written or read, updated with each image that
  // starts pulling (on_pulling runs serialized on pull threads while run()'s thread waits).
  std::optional<api::NodeCacheStatus> live_status;
  std::stop_token live_stop;
  // When the next sync is due sooner than the resync period (an image too young to prune).
  std::optional<Clock::Duration> sync_again_after;
};

Agent::Agent(AgentOptions options, kube::Client& kube, const cri::Client& cri, Clock& clock)
    : options_(std::move(options)),
      kube_(kube),
      cri_(cri),
      clock_(clock),
      registry_(std::make_unique<MetricsRegistry>()),
      metrics_(std::make_unique<Metrics>(*registry_)) {
  if (options_.node_name.empty()) throw Error(Code::kInvalidArgument, "agent: no node name");
  if (options_.namespace_.empty()) throw Error(Code::kInvalidArgument, "agent: no namespace");
  if (options_.store_dir.empty()) throw Error(Code::kInvalidArgument, "agent: no store dir");
}

Agent::~Agent() = default;

AgentReadiness Agent::readiness() const {
  if (ready_.load()) return {.ready = true, .message = ""};
  std::lock_guard lock(mu_);
  return {.ready = false, .message = not_ready_};
}

std::string Agent::metrics_text() const {
  return registry_->render();
}

void Agent::run(std::stop_token stop) {
  Runtime rt;
  // The runtime: asked once, retried until it answers.
  Backoff backoff;
  for (;;) {
    try {
      rt.version = cri_.version();
      break;
    } catch (const Error& e) {
      spdlog::warn("node={} asking the CRI runtime its version: {}", options_.node_name, e.what());
      {
        std::lock_guard lock(mu_);
        not_ready_ = std::string("CRI runtime not answering: ") + e.what();
      }
      if (!clock_.sleep_for(backoff.next(), stop)) return;
    }
  }
  rt.kind = runtime_kind_from_name(rt.version.runtime_name);
  spdlog::info("node={} runtime={} version={}", options_.node_name, rt.version.runtime_name,
               rt.version.runtime_version);
  if (rt.kind == RuntimeKind::kCrio) {
    rt.reloader =
        std::make_unique<CrioReloader>(CrioReloadOptions{.endpoint = cri_.options().endpoint,
                                                         .settle = std::chrono::milliseconds(300),
                                                         .deadline = std::chrono::seconds(10),
                                                         .call_timeout = std::chrono::seconds(2)},
                                       clock_);
  }
  rt.applier = std::make_unique<RegistriesApplier>(options_.host_root, rt.reloader.get());
  if (rt.kind) {
    SandboxImage pause = default_sandbox_image(*rt.kind, rt.version.runtime_version);
    try {
      pause = read_sandbox_image(options_.host_root, *rt.kind, rt.version.runtime_version);
    } catch (const Error& e) {
      spdlog::warn("node={} reading the runtime's sandbox image: {}; assuming {}",
                   options_.node_name, e.what(), pause.reference);
    }
    spdlog::info("node={} sandbox image={} ({}): never pruned", options_.node_name, pause.reference,
                 pause.origin);
    rt.pause_images.push_back(pause.reference);
  }

  std::filesystem::create_directories(options_.store_dir);
  const auto record_path = options_.store_dir / kPullRecordFile;
  try {
    rt.record = std::make_unique<PullRecord>(PullRecord::load(record_path));
  } catch (const Error& e) {
    if (e.code() != Code::kDataLoss) throw;
    spdlog::error("node={} {}; starting with an empty pull record", options_.node_name, e.what());
    rt.record = std::make_unique<PullRecord>(PullRecord::load(record_path));
  }
  rt.images = std::make_unique<CriImageRuntime>(cri_);
  ReconcilerOptions reconciler_options;
  reconciler_options.max_parallel = std::max(1, options_.max_parallel_pulls);
  // The runtime names its image filesystem as the node sees it: measure it under the host root,
  // at the nearest folder this process can see (the pod mounts only some host folders; those on
  // the node's disk share its filesystem).
  reconciler_options.free_space = [root = options_.host_root](const std::filesystem::path& path) {
    std::filesystem::path p = root / path.relative_path();
    std::error_code ec;
    while (!std::filesystem::exists(p, ec) && p.has_relative_path() && p != root) {
      p = p.parent_path();
    }
    return statvfs_available(p);
  };
  reconciler_options.on_pulling = [this, &rt](const ImageResult& r) { report_pulling(rt, r); };
  rt.reconciler =
      std::make_unique<ImageReconciler>(*rt.images, *rt.record, clock_, reconciler_options);

  kube::WorkQueue queue(clock_, {.rate_limit = {.base_delay = options_.retry_base,
                                                .max_delay = options_.retry_max,
                                                .qps = 0,
                                                .burst = 1},
                                 .depth = nullptr});
  const std::string key = options_.node_name;
  kube::InformerOptions informer_options;
  informer_options.reflector.collection = {api::node_caches_resource(), "", "", ""};
  informer_options.reflector.field_selector = "metadata.name=" + options_.node_name;
  informer_options.reflector.name = "nodecache/" + options_.node_name;
  rt.informer = std::make_unique<kube::Informer>(kube_, clock_, std::move(informer_options));
  rt.informer->on_add([&](const json&) { queue.add(key); });
  // Status writes (the agent's own among them) do not bump the generation: only spec changes
  // wake the agent; the resync covers the rest.
  rt.informer->on_update([&](const json& old, const json& now) {
    if (generation_of(old) != generation_of(now)) queue.add(key);
  });
  rt.informer->on_delete([&](const json&) { queue.add(key); });
  rt.informer->start();
  while (!rt.informer->wait_until_synced(clock_.now() + std::chrono::seconds(30), stop)) {
    if (stop.stop_requested()) {
      rt.informer->stop();
      return;
    }
    spdlog::warn("node={} NodeCache watch not synced yet", options_.node_name);
  }
  queue.add(key);

  std::stop_callback wake(stop, [&] { queue.shut_down(); });
  while (auto item = queue.get(stop)) {
    const SyncResult result = sync(rt, stop);
    queue.done(*item);
    ++syncs_;
    if (result == SyncResult::kStopped || stop.stop_requested()) break;
    if (result == SyncResult::kOk) {
      metrics_->syncs.with({"ok"}).inc();
      queue.forget(*item);
      queue.add_after(*item, std::min(options_.resync_period,
                                      rt.sync_again_after.value_or(options_.resync_period)));
    } else {
      metrics_->syncs.with({"retry"}).inc();
      queue.add_rate_limited(*item);
    }
  }
  rt.informer->stop();
  spdlog::info("node={} agent stopped", options_.node_name);
}

api::NodeRegistriesStatus Agent::apply_registries(Runtime& rt, const api::NodeRegistries& spec,
                                                  const api::NodeCacheStatus& previous,
                                                  bool& retry) {
  api::NodeRegistriesStatus out;
  const std::string previous_hash = previous.registries ? previous.registries->applied_hash : "";
  auto failed = [&](std::string message) {
    out.applied_hash = previous_hash;
    out.state = api::RegistriesState::kFailed;
    out.message = std::move(message);
    metrics_->registries.with({"Failed"}).inc();
    spdlog::warn("node={} registries hash={} failed: {}", options_.node_name, spec.hash,
                 out.message);
    return out;
  };
  if (!rt.kind) {
    return failed("runtime \"" + rt.version.runtime_name +
                  "\" is neither cri-o nor containerd: registries files not written");
  }
  std::optional<json> cm;
  try {
    cm = kube_.try_get({config_maps(), options_.namespace_, spec.config_map, ""});
  } catch (const Error& e) {
    retry = true;
    return failed("reading ConfigMap " + options_.namespace_ + "/" + spec.config_map + ": " +
                  e.what());
  }
  if (!cm) {
    retry = true;
    return failed("ConfigMap " + options_.namespace_ + "/" + spec.config_map + " not found");
  }
  api::RegistriesFiles files;
  try {
    std::map<std::string, std::string> data;
    const auto found = cm->find("data");
    if (found != cm->end() && found->is_object()) {
      for (auto it = found->begin(); it != found->end(); ++it) {
        if (it->is_string()) data[it.key()] = it->get<std::string>();
      }
    }
    files = api::registries_files_from_config_map_data(data);
  } catch (const Error& e) {
    return failed("ConfigMap " + options_.namespace_ + "/" + spec.config_map + ": " + e.what());
  }
  const ApplyResult r = rt.applier->apply(
      DesiredRegistries{.dropin = files.dropin, .hosts_toml = files.hosts_toml}, *rt.kind);
  if (!r.ok()) return failed(r.message);
  metrics_->registries.with({"Applied"}).inc();
  if (r.changed) {
    spdlog::info("node={} registries hash={} applied: {}", options_.node_name, spec.hash,
                 r.message);
  }
  for (const auto& w : r.warnings) {
    spdlog::warn("node={} registries hash={}: {}", options_.node_name, spec.hash, w);
  }
  out.applied_hash = spec.hash;
  out.state = api::RegistriesState::kApplied;
  return out;
}

Agent::SyncResult Agent::sync(Runtime& rt, std::stop_token stop) {
  const std::string& node = options_.node_name;
  rt.sync_again_after.reset();
  const kube::ObjectPtr object = rt.informer->get("", node);
  if (!object) {
    spdlog::info("node={} no NodeCache yet", node);
    ready_ = true;
    return SyncResult::kOk;
  }
  api::NodeCache nc;
  try {
    api::from_json(*object, nc);
  } catch (const Error& e) {
    spdlog::error("node={} NodeCache does not decode: {}", node, e.what());
    std::lock_guard lock(mu_);
    not_ready_ = e.what();
    return SyncResult::kRetry;
  }
  bool retry = false;
  SyncOutcome outcome;
  outcome.generation = nc.metadata.generation;
  outcome.runtime =
      api::RuntimeInfo{.name = rt.version.runtime_name, .version = rt.version.runtime_version};
  if (nc.spec.registries) {
    outcome.registries = apply_registries(rt, *nc.spec.registries, nc.status, retry);
  }
  if (stop.stop_requested()) return SyncResult::kStopped;

  // Images: pull secrets first; an image whose secret cannot be read fails without a pull.
  std::map<std::string, api::NodeImageStatus> by_name;
  std::vector<DesiredImage> desired;
  std::vector<DesiredImage> wanted;
  for (const auto& image : nc.spec.images) {
    DesiredImage d{.name = image.name, .digest = image.digest};
    // The operator's measure of the download, for the free-space check (absent: no check).
    if (image.size_bytes) d.size_bytes = static_cast<std::uint64_t>(*image.size_bytes);
    std::string problem;
    for (const auto& secret : image.pull_secrets) {
      try {
        const auto s = kube_.try_get({secrets(), options_.namespace_, secret.name, ""});
        if (!s) {
          problem =
              "pull secret \"" + secret.name + "\" not found in namespace " + options_.namespace_;
          retry = true;
          break;
        }
        const auto payload = s->value("data", json::object()).value(kDockerConfigJsonKey, "");
        const auto decoded = oci::base64_decode(payload);
        if (s->value("type", "") != kDockerConfigJsonType || !decoded) {
          problem = "pull secret \"" + secret.name + "\" is not of type " +
                    std::string(kDockerConfigJsonType) + " with a base64 " +
                    std::string(kDockerConfigJsonKey);
          break;
        }
        d.pull_secrets.push_back(*decoded);
      } catch (const Error& e) {
        problem = "reading pull secret \"" + secret.name + "\": " + e.what();
        retry = true;
        break;
      }
    }
    wanted.push_back(d);
    if (problem.empty()) {
      desired.push_back(std::move(d));
    } else {
      by_name[image.name] = api::NodeImageStatus{.name = image.name,
                                                 .digest = "",
                                                 .state = api::ImageState::kFailed,
                                                 .size_bytes = std::nullopt,
                                                 .message = "PullSecretUnavailable: " + problem,
                                                 .last_transition_time = std::nullopt};
    }
  }
  rt.live_status = nc.status;
  rt.live_stop = stop;
  const std::vector<ImageResult> results = rt.reconciler->reconcile(desired, stop);
  rt.live_status.reset();
  if (stop.stop_requested()) return SyncResult::kStopped;
  for (const auto& r : results) {
    if (r.pulled) metrics_->pulls.get().inc();
    if (r.state == api::ImageState::kFailed) {
      metrics_->failures.with({std::string(image_failure_name(r.failure))}).inc();
      retry = true;
      spdlog::warn("node={} image={} failed: {}: {}", node, r.name, image_failure_name(r.failure),
                   r.message);
    } else if (r.pulled) {
      spdlog::info("node={} image={} pulled digest={}", node, r.name, r.digest);
    }
    by_name[r.name] = image_status_from_result(r);
  }
  for (const auto& image : nc.spec.images) {
    auto it = by_name.find(image.name);
    if (it != by_name.end()) outcome.images.push_back(it->second);
  }

  // Prune what the plan dropped.
  std::vector<PruneResult> pruned;
  if (nc.spec.prune.policy == api::PrunePolicy::kOnRemoval) {
    try {
      pruned = rt.reconciler->prune(
          wanted, PruneOptions{.min_age = options_.prune_min_age,
                               .pause_images = rt.pause_images,
                               .dropped = dropped_image_names(nc.spec, nc.status.images)});
    } catch (const Error& e) {
      spdlog::warn("node={} prune: {}", node, e.what());
      retry = true;
    }
    for (const auto& p : pruned) {
      // Too young now: look again once it is old enough (at the latest), not a resync later.
      if (p.decision == PruneDecision::kTooYoung) {
        rt.sync_again_after = std::chrono::duration_cast<Clock::Duration>(options_.prune_min_age) +
                              std::chrono::seconds(1);
      }
      if (p.decision == PruneDecision::kRemoved) {
        metrics_->prunes.get().inc();
        spdlog::info("node={} image={} pruned digest={}", node, p.ref, p.digest);
      } else if (p.decision != PruneDecision::kStillWanted) {
        spdlog::info("node={} image={} prune: {} {}", node, p.ref, prune_decision_name(p.decision),
                     p.message);
      }
    }
  }
  for (auto& s : dropped_image_statuses(nc.spec, nc.status.images, pruned)) {
    outcome.images.push_back(std::move(s));
  }
  try {
    if (auto usage = rt.images->image_fs_usage()) {
      api::StoreUsage store;
      store.used_bytes = static_cast<std::int64_t>(usage->used_bytes);
      if (usage->capacity_bytes) {
        store.capacity_bytes = static_cast<std::int64_t>(*usage->capacity_bytes);
      }
      outcome.store = store;
    }
  } catch (const Error& e) {
    spdlog::warn("node={} image filesystem usage: {}", node, e.what());
  }
  if (!nc.spec.exports.empty() || rt.exporter) {
    std::vector<HeldImage> held;
    for (const auto& image : nc.spec.images) {
      HeldImage h{.name = image.name, .digest = image.digest};
      if (const auto it = by_name.find(image.name); it != by_name.end()) {
        h.state = it->second.state;
        h.message = it->second.message;
      }
      for (const auto& w : wanted) {
        if (w.name == image.name) h.pull_secrets = w.pull_secrets;
      }
      held.push_back(std::move(h));
    }
    if (!run_exports(rt, nc.spec, held, outcome, retry, stop)) return SyncResult::kStopped;
  }

  const api::NodeCacheStatus next = next_status(nc.spec, nc.status, outcome, clock_.wall_now());
  if (status_needs_write(nc.status, next)) {
    try {
      write_status(next, stop);
    } catch (const Error& e) {
      if (stop.stop_requested()) return SyncResult::kStopped;
      spdlog::warn("node={} writing NodeCache status: {}", node, e.what());
      std::lock_guard lock(mu_);
      not_ready_ = std::string("writing NodeCache status: ") + e.what();
      return SyncResult::kRetry;
    }
  }
  ready_ = true;
  return retry ? SyncResult::kRetry : SyncResult::kOk;
}

bool Agent::run_exports(Runtime& rt, const api::NodeCacheSpec& spec,
                        const std::vector<HeldImage>& held, SyncOutcome& outcome, bool& retry,
                        std::stop_token stop) {
  const std::string& node = options_.node_name;
  std::string unusable;
  if (options_.export_dir.empty()) unusable = "this agent has no export directory (--export-dir)";
  if (!rt.exporter && unusable.empty()) {
    http::Transport* transport = options_.registry_transport;
    if (transport == nullptr) {
      if (!rt.registry_http) rt.registry_http = std::make_unique<http::Http1Client>();
      transport = rt.registry_http.get();
    }
    try {
      rt.exporter = std::make_unique<Exporter>(ExporterOptions{.export_dir = options_.export_dir,
                                                               .store_dir = options_.store_dir,
                                                               .host_root = options_.host_root,
                                                               .transport = transport},
                                               clock_);
    } catch (const Error& e) {
      unusable = e.what();
      retry = true;
    }
  }
  std::vector<ExportImage> keep;
  for (const auto& exp : spec.exports) {
    if (stop.stop_requested()) return false;
    ExportResult r;
    if (!unusable.empty()) {
      r.status = api::NodeExportStatus{.file_name = exp.file_name,
                                       .format = exp.format,
                                       .size_bytes = std::nullopt,
                                       .sha256 = "",
                                       .state = api::ExportState::kFailed,
                                       .message = unusable};
      r.outcome = ExportOutcome::kFailed;
    } else {
      r = rt.exporter->run(exp, held, stop);
      if (r.stopped || stop.stop_requested()) return false;
      const ExportPlan plan = plan_export(exp, held);
      keep.insert(keep.end(), plan.images.begin(), plan.images.end());
    }
    metrics_->exports.with({std::string(export_outcome_name(r.outcome))}).inc();
    if (r.bytes_written > 0) {
      metrics_->export_bytes.get().inc(static_cast<double>(r.bytes_written));
    }
    for (const auto& [source, bytes] : r.blob_bytes) {
      metrics_->export_blob_bytes.with({std::string(blob_source_name(source))})
          .inc(static_cast<double>(bytes));
    }
    if (r.outcome == ExportOutcome::kFailed) {
      if (r.retry) retry = true;
      spdlog::warn("node={} export={} failed: {}", node, exp.file_name, r.status.message);
    } else if (r.outcome == ExportOutcome::kWritten) {
      spdlog::info("node={} export={} format={} written bytes={} sha256={}", node, exp.file_name,
                   api::to_string(exp.format), r.bytes_written, r.status.sha256);
    } else if (r.outcome == ExportOutcome::kPending) {
      spdlog::info("node={} export={} pending: {}", node, exp.file_name, r.status.message);
    }
    outcome.exports.push_back(std::move(r.status));
  }
  if (rt.exporter) {
    try {
      rt.exporter->retain(keep);
    } catch (const Error& e) {
      spdlog::warn("node={} pruning the export content store: {}", node, e.what());
    }
  }
  return true;
}

void Agent::report_pulling(Runtime& rt, const ImageResult& pulling) {
  if (!rt.live_status) return;
  // A Pulling state is news, not a must: skipped rather than delaying the pull when a status
  // was written less than status_min_interval ago.
  if (last_write_ && clock_.now() < *last_write_ + options_.status_min_interval) return;
  api::NodeCacheStatus& status = *rt.live_status;
  auto it = std::find_if(status.images.begin(), status.images.end(),
                         [&](const api::NodeImageStatus& i) { return i.name == pulling.name; });
  if (it == status.images.end()) {
    status.images.push_back(api::NodeImageStatus{.name = pulling.name});
    it = status.images.end() - 1;
  }
  if (it->state == api::ImageState::kPulling && it->digest == pulling.digest) return;
  it->digest = pulling.digest;
  it->state = api::ImageState::kPulling;
  it->message = "";
  it->last_transition_time = clock_.wall_now();
  try {
    write_status(status, rt.live_stop, /*progress=*/true);
  } catch (const Error& e) {
    spdlog::warn("node={} writing NodeCache status (pulling {}): {}", options_.node_name,
                 pulling.name, e.what());
  }
}

void Agent::write_status(const api::NodeCacheStatus& status, std::stop_token stop, bool progress) {
  // The status that ends a sync follows a progress write (Pulling) at once: the spacing bounds
  // writes per sync, it must not delay the result of a fast pull.
  if (last_write_ && !(last_write_was_progress_ && !progress)) {
    const auto earliest = *last_write_ + options_.status_min_interval;
    if (clock_.now() < earliest && !clock_.sleep_until(earliest, stop)) {
      throw Error(Code::kUnavailable, "status write cancelled: stopping");
    }
  }
  const json intent = {{"apiVersion", std::string(api::kApiVersion)},
                       {"kind", std::string(api::kNodeCacheKind)},
                       {"metadata", {{"name", options_.node_name}}},
                       {"status", api::node_cache_status_to_json(status)}};
  kube_.apply({api::node_caches_resource(), "", options_.node_name, "status"}, intent,
              {.field_manager = std::string(kAgentFieldManager), .force = true, .dry_run = false});
  last_write_ = clock_.now();
  last_write_was_progress_ = progress;
  metrics_->status_writes.get().inc();
  spdlog::info("node={} status written generation={}", options_.node_name,
               status.observed_generation);
}

}  // namespace stowage::agent
