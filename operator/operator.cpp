#include "operator/operator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <utility>

#include "api/image_cache.h"
#include "api/meta.h"
#include "api/node_cache.h"
#include "api/registries_config_map.h"
#include "api/registry_config.h"
#include "base/error.h"
#include "oci/registry_client.h"
#include "reference/reference.h"

namespace stowage::op {
namespace {

using nlohmann::json;

const std::string kClusterKey = "cluster";
const kube::GroupVersionResource kNodes{"", "v1", "nodes"};
const kube::GroupVersionResource kConfigMaps{"", "v1", "configmaps"};

std::string managed_by_selector() {
  return std::string(kManagedByLabel) + "=" + std::string(kManagedByValue);
}

kube::InformerOptions informer_options(kube::GroupVersionResource gvr, std::string namespace_,
                                       std::string label_selector, bool metadata_only) {
  kube::InformerOptions options;
  options.reflector.collection.gvr = std::move(gvr);
  options.reflector.collection.namespace_ = std::move(namespace_);
  options.reflector.label_selector = std::move(label_selector);
  options.reflector.metadata_only = metadata_only;
  return options;
}

// One CamelCase word for the planner's Unresolved reason.
std::string reason_of(Code code) {
  switch (code) {
    case Code::kNotFound: return "NotFound";
    case Code::kUnauthenticated:
    case Code::kPermissionDenied: return "Unauthorized";
    case Code::kUnavailable:
    case Code::kDeadlineExceeded:
    case Code::kResourceExhausted: return "Unavailable";
    case Code::kInvalidArgument: return "InvalidReference";
    default: return "ResolveFailed";
  }
}

// The host part of a registries.conf location or prefix ("host:5000/path" -> "host:5000").
std::string host_of(std::string_view location) {
  const auto slash = location.find('/');
  return std::string(location.substr(0, slash));
}

template <typename T>
std::vector<T> decode_all(const kube::Informer& informer, std::string_view kind) {
  std::vector<T> out;
  for (const kube::ObjectPtr& object : informer.list()) {
    try {
      out.push_back(object->get<T>());
    } catch (const std::exception& e) {
      spdlog::warn("msg=\"skipping undecodable object\" kind={} key={} error=\"{}\"", kind,
                   kube::object_key(*object), e.what());
    }
  }
  return out;
}

}  // namespace

Operator::Operator(OperatorOptions options, kube::Client& client, Clock& clock,
                   http::Transport& registry_transport, MetricsRegistry& metrics)
    : options_(std::move(options)),
      client_(client),
      clock_(clock),
      registry_transport_(registry_transport),
      reconciles_family_(metrics.counter("stowage_operator_reconciles_total",
                                         "Reconciles of the whole cluster, by result.",
                                         {"result"})),
      resolutions_family_(metrics.counter("stowage_operator_tag_resolutions_total",
                                          "Registry HEADs resolving a tag to a digest, by result.",
                                          {"result"})),
      reconciles_ok_(reconciles_family_.with({"success"})),
      reconciles_error_(reconciles_family_.with({"error"})),
      errors_(metrics
                  .counter("stowage_operator_reconcile_errors_total",
                           "Reconciles that failed (retried with backoff).", {})
                  .get()),
      writes_(metrics
                  .counter("stowage_operator_writes_total",
                           "API writes: ConfigMaps, NodeCache specs, statuses.", {})
                  .get()),
      resolutions_ok_(resolutions_family_.with({"success"})),
      resolutions_failed_(resolutions_family_.with({"error"})),
      nodes_planned_(metrics
                         .gauge("stowage_operator_nodes_planned",
                                "Nodes the last successful reconcile planned a NodeCache for.", {})
                         .get()),
      leader_(metrics
                  .gauge("stowage_operator_leader",
                         "1 while this process holds the leader Lease (or runs without one).", {})
                  .get()),
      queue_(clock) {
  registry_configs_ = std::make_unique<kube::Informer>(
      client_, clock_, informer_options(api::registry_configs_resource(), "", "", false));
  image_caches_ = std::make_unique<kube::Informer>(
      client_, clock_, informer_options(api::image_caches_resource(), "", "", false));
  node_caches_ = std::make_unique<kube::Informer>(
      client_, clock_, informer_options(api::node_caches_resource(), "", "", false));
  nodes_ =
      std::make_unique<kube::Informer>(client_, clock_, informer_options(kNodes, "", "", true));
  config_maps_ = std::make_unique<kube::Informer>(
      client_, clock_,
      informer_options(kConfigMaps, options_.namespace_, managed_by_selector(), true));
  for (kube::Informer* informer : {registry_configs_.get(), image_caches_.get(), node_caches_.get(),
                                   nodes_.get(), config_maps_.get()}) {
    informer->on_add([this](const json&) { queue_.add(kClusterKey); });
    informer->on_update([this](const json&, const json&) { queue_.add(kClusterKey); });
    informer->on_delete([this](const json&) { queue_.add(kClusterKey); });
  }
}

Operator::~Operator() {
  queue_.shut_down();
}

bool Operator::ready() const {
  return registry_configs_->has_synced() && image_caches_->has_synced() &&
         node_caches_->has_synced() && nodes_->has_synced() && config_maps_->has_synced();
}

OperatorStats Operator::stats() const {
  std::lock_guard lock(stats_mu_);
  return stats_;
}

void Operator::run(std::stop_token stop) {
  std::vector<kube::Informer*> informers = {registry_configs_.get(), image_caches_.get(),
                                            node_caches_.get(), nodes_.get(), config_maps_.get()};
  for (kube::Informer* informer : informers) informer->start();
  const char* const names[] = {"registryconfigs", "imagecaches", "nodecaches", "nodes",
                               "configmaps"};
  for (std::size_t i = 0; i < informers.size(); ++i) {
    while (!stop.stop_requested() &&
           !informers[i]->wait_until_synced(clock_.now() + std::chrono::seconds(30), stop)) {
      spdlog::warn("msg=\"informer not synced yet\" informer={}", names[i]);
    }
  }
  queue_.add(kClusterKey);
  if (!stop.stop_requested()) {
    if (!options_.leader_elect) {
      lead(std::nullopt, stop);
    } else {
      kube::KubeLeaseStore store(client_, options_.namespace_, options_.leader_election_id);
      kube::LeaderElectionConfig config;
      config.identity = options_.identity;
      config.lease_duration = options_.lease_duration;
      config.renew_deadline = options_.renew_deadline;
      config.retry_period = options_.retry_period;
      config.on_started_leading = [this](kube::LeaderGuard guard, std::stop_token term) {
        lead(guard, std::move(term));
      };
      config.on_new_leader = [this](const std::string& holder) {
        spdlog::info("msg=\"leader observed\" lease={}/{} holder={} self={}", options_.namespace_,
                     options_.leader_election_id, holder, options_.identity);
      };
      kube::LeaderElector elector(store, clock_, std::move(config));
      while (!stop.stop_requested()) elector.run(stop);
    }
  }
  for (kube::Informer* informer : informers) informer->stop();
}

void Operator::lead(const std::optional<kube::LeaderGuard>& guard, std::stop_token stop) {
  leading_ = true;
  leader_.set(1);
  spdlog::info("msg=\"reconciling as leader\" identity={} term={}", options_.identity,
               guard ? guard->term() : 0);
  queue_.add(kClusterKey);
  while (!stop.stop_requested()) {
    const std::optional<std::string> key = queue_.get(stop);
    if (!key) break;
    try {
      const Clock::Duration next = reconcile(guard);
      queue_.forget(*key);
      queue_.done(*key);
      queue_.add_after(*key, next);
      reconciles_ok_.inc();
    } catch (const std::exception& e) {
      spdlog::error("msg=\"reconcile failed\" key={} error=\"{}\"", *key, e.what());
      reconciles_error_.inc();
      errors_.inc();
      {
        std::lock_guard lock(stats_mu_);
        ++stats_.errors;
      }
      queue_.done(*key);
      queue_.add_rate_limited(*key);
    }
    std::lock_guard lock(stats_mu_);
    ++stats_.reconciles;
  }
  leader_.set(0);
  leading_ = false;
  spdlog::info("msg=\"stopped reconciling\" identity={}", options_.identity);
}

void Operator::check_may_act(const std::optional<kube::LeaderGuard>& guard) const {
  if (guard && !guard->may_act()) {
    throw Error(Code::kUnavailable, "leadership lost before writing; the plan is not applied");
  }
}

void Operator::count_write() {
  writes_.inc();
  std::lock_guard lock(stats_mu_);
  ++stats_.writes;
}

PlannerInput Operator::build_input() {
  PlannerInput in;
  for (const kube::ObjectPtr& node : nodes_->list()) {
    const json& meta = (*node)["metadata"];
    PlannerNode n;
    n.name = meta.value("name", "");
    n.uid = meta.value("uid", "");
    if (const auto labels = meta.find("labels"); labels != meta.end() && labels->is_object()) {
      for (const auto& [k, v] : labels->items()) {
        if (v.is_string()) n.labels[k] = v.get<std::string>();
      }
    }
    in.nodes.push_back(std::move(n));
  }
  in.registry_configs = decode_all<api::RegistryConfig>(*registry_configs_, "RegistryConfig");
  in.image_caches = decode_all<api::ImageCache>(*image_caches_, "ImageCache");
  // An ImageCache that leaves refreshInterval unset gets the operator's default.
  for (api::ImageCache& ic : in.image_caches) {
    const kube::ObjectPtr raw = image_caches_->get(ic.metadata.namespace_, ic.metadata.name);
    if (raw && !(*raw).contains("spec")) continue;
    if (raw && !(*raw)["spec"].contains("refreshInterval")) {
      ic.spec.refresh_interval = options_.refresh_interval;
    }
  }
  in.node_caches = decode_all<api::NodeCache>(*node_caches_, "NodeCache");
  for (const kube::ObjectPtr& cm : config_maps_->list()) {
    const std::string name = (*cm)["metadata"].value("name", "");
    if (api::hash_from_registries_config_map_name(name)) in.config_maps.push_back(name);
  }
  in.max_unavailable = options_.max_unavailable;
  in.machine_config_api = options_.machine_config_api;
  in.now = clock_.wall_now();
  return in;
}

Operator::Resolved Operator::resolve_one(const std::string& name,
                                         const std::set<std::string>& insecure) {
  Resolved r;
  try {
    const Reference ref = Reference::parse_normalized(name).with_default_tag();
    oci::RegistryClientOptions options;
    options.registry = ref.domain;
    options.insecure = insecure.contains(ref.domain);
    options.retry.max_attempts = 2;
    options.request_timeout = std::chrono::seconds(30);
    options.connect_timeout = std::chrono::seconds(10);
    oci::RegistryClient registry(registry_transport_, clock_, options);
    r.digest = registry.head_manifest(ref.path, ref.tag.value_or(std::string(kDefaultTag))).digest;
    resolutions_ok_.inc();
  } catch (const Error& e) {
    r.failure = Unresolved{reason_of(e.code()), e.what()};
    resolutions_failed_.inc();
  } catch (const std::exception& e) {
    r.failure = Unresolved{"ResolveFailed", e.what()};
    resolutions_failed_.inc();
  }
  std::lock_guard lock(stats_mu_);
  ++stats_.resolutions;
  return r;
}

Clock::Duration Operator::resolve_tags(PlannerInput& in) {
  // Registry hosts to reach without TLS verification: the flag's, and what any RegistryConfig
  // marks insecure.
  std::set<std::string> insecure(options_.insecure_registries.begin(),
                                 options_.insecure_registries.end());
  for (const api::RegistryConfig& rc : in.registry_configs) {
    if (rc.metadata.deletion_timestamp) continue;
    for (const std::string& location : rc.spec.insecure_registries)
      insecure.insert(host_of(location));
    for (const registries::Registry& reg : rc.spec.registries) {
      if (reg.insecure) insecure.insert(host_of(reg.location.empty() ? reg.prefix : reg.location));
    }
  }

  // Every tag reference, with the shortest refresh interval of the ImageCaches naming it.
  std::map<std::string, Clock::Duration> wanted;
  for (const api::ImageCache& ic : in.image_caches) {
    if (ic.metadata.deletion_timestamp) continue;
    const Clock::Duration interval =
        std::max<Clock::Duration>(ic.spec.refresh_interval, std::chrono::seconds(1));
    for (const api::CachedImage& image : ic.spec.images) {
      try {
        if (Reference::parse_normalized(image.name).digest) continue;
      } catch (const Error&) {
        continue;  // the planner reports the invalid reference
      }
      auto [it, inserted] = wanted.emplace(image.name, interval);
      if (!inserted) it->second = std::min(it->second, interval);
    }
  }
  std::erase_if(resolved_, [&](const auto& entry) { return !wanted.contains(entry.first); });

  const Clock::TimePoint now = clock_.now();
  Clock::Duration next = options_.refresh_interval;
  for (const auto& want : wanted) {
    const std::string& name = want.first;
    const Clock::Duration interval = want.second;
    auto it = resolved_.find(name);
    const auto due = [&](const Resolved& r) {
      const Clock::Duration wait =
          r.failure ? std::min<Clock::Duration>(interval, options_.unresolved_retry) : interval;
      return r.at + wait;
    };
    if (it == resolved_.end() || due(it->second) <= now) {
      Resolved fresh = resolve_one(name, insecure);
      fresh.at = clock_.now();
      fresh.interval = interval;
      if (fresh.digest) {
        spdlog::info("msg=\"resolved tag\" image={} digest={}", name, *fresh.digest);
      } else {
        spdlog::warn("msg=\"tag not resolved\" image={} reason={} error=\"{}\"", name,
                     fresh.failure->reason, fresh.failure->message);
        // Keep the last digest known rather than forgetting it on a transient failure.
        if (it != resolved_.end() && it->second.digest && fresh.failure->reason != "NotFound") {
          fresh.digest = it->second.digest;
        }
      }
      it = resolved_.insert_or_assign(name, std::move(fresh)).first;
    }
    if (it->second.digest) {
      in.digests[name] = *it->second.digest;
    } else if (it->second.failure) {
      in.unresolved[name] = *it->second.failure;
    }
    next = std::min(
        next, std::max<Clock::Duration>(due(it->second) - clock_.now(), std::chrono::seconds(1)));
  }
  return next;
}

void Operator::apply_plan(const Plan& plan, const std::optional<kube::LeaderGuard>& guard) {
  const kube::PatchOptions apply_options{
      .field_manager = std::string(kFieldManager), .force = true, .dry_run = false};
  // 1. The ConfigMaps NodeCaches are about to name.
  for (const PlannedConfigMap& cm : plan.config_maps) {
    if (!cm.create) continue;
    json object = {{"apiVersion", "v1"},
                   {"kind", "ConfigMap"},
                   {"metadata",
                    {{"name", cm.name},
                     {"namespace", options_.namespace_},
                     {"labels",
                      {{std::string(kManagedByLabel), std::string(kManagedByValue)},
                       {std::string(kHashLabel), cm.hash.substr(0, 63)}}}}},
                   {"immutable", true},
                   {"data", cm.data}};
    check_may_act(guard);
    try {
      client_.create({kConfigMaps, options_.namespace_, "", ""}, object,
                     {.field_manager = std::string(kFieldManager), .dry_run = false});
      count_write();
      spdlog::info("msg=\"created registries ConfigMap\" key={}/{}", options_.namespace_, cm.name);
    } catch (const Error& e) {
      if (e.code() != Code::kAlreadyExists) throw;
    }
  }
  // 2. NodeCache specs.
  for (const PlannedNodeCache& nc : plan.node_caches) {
    if (!nc.write) continue;
    api::ObjectMeta meta;
    meta.name = nc.name;
    meta.owner_references = nc.owner_references;
    const json intent = {{"apiVersion", std::string(api::kApiVersion)},
                         {"kind", std::string(api::kNodeCacheKind)},
                         {"metadata", api::object_meta_to_json(meta)},
                         {"spec", api::node_cache_spec_to_json(nc.spec)}};
    check_may_act(guard);
    client_.apply({api::node_caches_resource(), "", nc.name, ""}, intent, apply_options);
    count_write();
    spdlog::info("msg=\"applied NodeCache spec\" key={} images={} registries={}", nc.name,
                 nc.spec.images.size(), nc.spec.registries ? nc.spec.registries->hash : "");
  }
  // 3. Statuses that changed.
  for (const PlannedRegistryConfigStatus& st : plan.registry_configs) {
    if (!st.changed) continue;
    const json intent = {{"apiVersion", std::string(api::kApiVersion)},
                         {"kind", std::string(api::kRegistryConfigKind)},
                         {"metadata", {{"name", st.name}}},
                         {"status", api::registry_config_status_to_json(st.status)}};
    check_may_act(guard);
    try {
      client_.apply({api::registry_configs_resource(), "", st.name, "status"}, intent,
                    apply_options);
      count_write();
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;  // deleted meanwhile
    }
  }
  for (const PlannedImageCacheStatus& st : plan.image_caches) {
    if (!st.changed) continue;
    const json intent = {{"apiVersion", std::string(api::kApiVersion)},
                         {"kind", std::string(api::kImageCacheKind)},
                         {"metadata", {{"name", st.name}, {"namespace", st.namespace_}}},
                         {"status", api::image_cache_status_to_json(st.status)}};
    check_may_act(guard);
    try {
      client_.apply({api::image_caches_resource(), st.namespace_, st.name, "status"}, intent,
                    apply_options);
      count_write();
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
    }
  }
  // 4. ConfigMaps nothing names any more.
  for (const std::string& name : plan.config_maps_to_delete) {
    check_may_act(guard);
    try {
      client_.delete_({kConfigMaps, options_.namespace_, name, ""});
      count_write();
      spdlog::info("msg=\"deleted registries ConfigMap\" key={}/{}", options_.namespace_, name);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
    }
  }
}

Clock::Duration Operator::reconcile(const std::optional<kube::LeaderGuard>& guard) {
  check_may_act(guard);
  PlannerInput in = build_input();
  const Clock::Duration next = resolve_tags(in);
  const Plan plan = plan_cluster(in);
  apply_plan(plan, guard);
  nodes_planned_.set(static_cast<double>(plan.node_caches.size()));
  {
    std::lock_guard lock(stats_mu_);
    stats_.nodes_planned = static_cast<std::int64_t>(plan.node_caches.size());
  }
  if (!plan.rollout.waiting.empty() || plan.rollout.halted()) {
    spdlog::info("msg=\"registries rollout paced\" moving={} waiting={} failed={}",
                 plan.rollout.moving_after, plan.rollout.waiting.size(),
                 plan.rollout.failed.size());
  }
  return next;
}

}  // namespace stowage::op
