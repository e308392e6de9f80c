#include "operator/operator.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <initializer_list>
#include <limits>
#include <utility>
#include <variant>

#include "api/image_cache.h"
#include "api/meta.h"
#include "api/node_cache.h"
#include "api/registries_config_map.h"
#include "api/registry_config.h"
#include "base/error.h"
#include "base/parallel.h"
#include "base/sha256.h"
#include "oci/auth.h"
#include "oci/manifest.h"
#include "oci/registry_client.h"
#include "oci/resolve.h"
#include "reference/reference.h"
#include "registries/spec.h"

namespace stowage::op {
namespace {

using nlohmann::json;

const std::string kClusterKey = "cluster";
const kube::GroupVersionResource kNodes{"", "v1", "nodes"};
const kube::GroupVersionResource kConfigMaps{"", "v1", "configmaps"};
const kube::GroupVersionResource kSecrets{"", "v1", "secrets"};
constexpr std::string_view kReasonBlocked = "Blocked";

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

json pick_metadata(const json& object, std::initializer_list<const char*> fields) {
  const auto m = object.find("metadata");
  return {{"metadata", m == object.end() ? json::object() : kube::pick_fields(*m, fields)}};
}

// What the Secret informer keeps: identity, labels and annotations, type and data.
json trim_secret(const json& object) {
  json out = pick_metadata(
      object, {"name", "namespace", "uid", "resourceVersion", "labels", "annotations"});
  if (const auto t = object.find("type"); t != object.end()) out["type"] = *t;
  if (const auto d = object.find("data"); d != object.end()) out["data"] = *d;
  return out;
}

// What the Node informer keeps: what the planner matches selectors on and owns NodeCaches by.
json trim_node(const json& object) {
  return pick_metadata(object, {"name", "uid", "resourceVersion", "labels"});
}

std::map<std::string, std::string> string_map(const json& object, std::string_view field) {
  std::map<std::string, std::string> out;
  if (const auto it = object.find(field); it != object.end() && it->is_object()) {
    for (const auto& [k, v] : it->items()) {
      if (v.is_string()) out[k] = v.get<std::string>();
    }
  }
  return out;
}

SecretObject secret_object(const json& object) {
  SecretObject s;
  const json meta = object.value("metadata", json::object());
  s.namespace_ = meta.value("namespace", "");
  s.name = meta.value("name", "");
  s.type = object.value("type", "Opaque");
  s.data = string_map(object, "data");
  s.labels = string_map(meta, "labels");
  s.annotations = string_map(meta, "annotations");
  return s;
}

kube::ObjectReference reference_of(std::string_view kind, const api::ObjectMeta& meta) {
  kube::ObjectReference ref;
  ref.api_version = std::string(api::kApiVersion);
  ref.kind = std::string(kind);
  ref.namespace_ = meta.namespace_;
  ref.name = meta.name;
  ref.uid = meta.uid;
  return ref;
}

bool is_true(const api::Condition* c) {
  return c != nullptr && c->status == api::ConditionStatus::kTrue;
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
      queue_depth_(metrics
                       .gauge("stowage_operator_queue_depth",
                              "Reconciles waiting to run (events coalesce into one).", {})
                       .get()),
      reconcile_seconds_(metrics
                             .histogram("stowage_operator_reconcile_duration_seconds",
                                        "Time of one reconcile of the whole cluster: resolving, "
                                        "planning and writing.",
                                        MetricsRegistry::default_seconds_buckets(), {})
                             .get()),
      node_cache_specs_(clock),
      queue_(clock, {.rate_limit = {}, .depth = &queue_depth_}),
      event_sink_(client) {
  registry_configs_ = std::make_unique<kube::Informer>(
      client_, clock_, informer_options(api::registry_configs_resource(), "", "", false));
  image_caches_ = std::make_unique<kube::Informer>(
      client_, clock_, informer_options(api::image_caches_resource(), "", "", false));
  kube::InformerOptions node_cache_options =
      informer_options(api::node_caches_resource(), "", "", false);
  node_cache_options.transform = [this](const json& object) {
    return node_cache_specs_.trim(object);
  };
  node_caches_ = std::make_unique<kube::Informer>(client_, clock_, std::move(node_cache_options));
  kube::InformerOptions node_options = informer_options(kNodes, "", "", true);
  node_options.transform = trim_node;
  nodes_ = std::make_unique<kube::Informer>(client_, clock_, std::move(node_options));
  config_maps_ = std::make_unique<kube::Informer>(
      client_, clock_,
      informer_options(kConfigMaps, options_.namespace_, managed_by_selector(), true));
  // Every kubernetes.io/dockerconfigjson Secret: the sources ImageCaches name (their namespaces
  // are not known in advance) and the copies in the operator's namespace.
  kube::InformerOptions secret_options = informer_options(kSecrets, "", "", false);
  secret_options.reflector.field_selector = "type=" + std::string(kDockerConfigJsonType);
  secret_options.transform = trim_secret;
  secrets_ = std::make_unique<kube::Informer>(client_, clock_, std::move(secret_options));
  kube::EventRecorderOptions event_options;
  event_options.reporting_controller = std::string(kFieldManager);
  event_options.reporting_instance =
      options_.identity.empty() ? std::string(kFieldManager) : options_.identity;
  events_ = std::make_unique<kube::EventRecorder>(event_sink_, clock_, std::move(event_options));
  machine_configs_ = std::make_unique<MachineConfigController>(
      client_, clock_, [this] { queue_.add(kClusterKey); }, events_.get());
  for (kube::Informer* informer : {registry_configs_.get(), image_caches_.get(), node_caches_.get(),
                                   nodes_.get(), config_maps_.get(), secrets_.get()}) {
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
         node_caches_->has_synced() && nodes_->has_synced() && config_maps_->has_synced() &&
         secrets_->has_synced();
}

OperatorStats Operator::stats() const {
  std::lock_guard lock(stats_mu_);
  return stats_;
}

void Operator::run(std::stop_token stop) {
  std::vector<kube::Informer*> informers = {registry_configs_.get(), image_caches_.get(),
                                            node_caches_.get(),      nodes_.get(),
                                            config_maps_.get(),      secrets_.get()};
  for (kube::Informer* informer : informers) informer->start();
  const char* const names[] = {"registryconfigs", "imagecaches", "nodecaches",
                               "nodes",           "configmaps",  "secrets"};
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
  machine_configs_->stop();
}

void Operator::lead(const std::optional<kube::LeaderGuard>& guard, std::stop_token stop) {
  leading_ = true;
  leader_.set(1);
  {
    std::lock_guard lock(pending_mu_);
    pending_writes_.clear();  // a new term reads what the informer shows
  }
  std::jthread size_fetcher([this](std::stop_token s) { fetch_sizes(std::move(s)); });
  spdlog::info("msg=\"reconciling as leader\" identity={} term={}", options_.identity,
               guard ? guard->term() : 0);
  queue_.add(kClusterKey);
  while (!stop.stop_requested()) {
    const std::optional<std::string> key = queue_.get(stop);
    if (!key) break;
    const Clock::TimePoint started = clock_.now();
    try {
      const Clock::Duration next = reconcile(guard);
      reconcile_seconds_.observe(std::chrono::duration<double>(clock_.now() - started).count());
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
    // A reconcile at thousands of nodes builds and drops tens of MiB of plans and requests;
    // hand the freed pages back rather than keep them as the process's floor.
    malloc_trim(0);
    std::lock_guard lock(stats_mu_);
    ++stats_.reconciles;
  }
  size_fetcher.request_stop();
  size_fetcher.join();
  {
    std::lock_guard lock(sizes_mu_);
    sizes_queued_.clear();
    sizes_pending_.clear();
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
  in.node_caches = current_node_caches();
  for (const kube::ObjectPtr& cm : config_maps_->list()) {
    const std::string name = (*cm)["metadata"].value("name", "");
    if (api::hash_from_registries_config_map_name(name)) in.config_maps.push_back(name);
  }
  in.max_unavailable = options_.max_unavailable;
  in.now = clock_.wall_now();
  return in;
}

std::vector<CurrentNodeCache> Operator::current_node_caches() {
  std::vector<CurrentNodeCache> out;
  std::set<std::string> used;
  for (const kube::ObjectPtr& object : node_caches_->list()) {
    try {
      std::optional<CurrentNodeCache> nc = node_cache_specs_.current(*object);
      if (!nc) {
        // Its spec was dropped as unused while the informer stored it: read it again.
        const std::optional<json> fresh =
            client_.try_get({api::node_caches_resource(), "", kube::object_key(*object), ""});
        if (!fresh) continue;  // deleted meanwhile
        nc = node_cache_specs_.current(node_cache_specs_.trim(*fresh));
        if (!nc) continue;
      }
      out.push_back(std::move(*nc));
    } catch (const Error& e) {
      if (e.code() != Code::kInvalidArgument) throw;
      spdlog::warn("msg=\"skipping undecodable object\" kind=NodeCache key={} error=\"{}\"",
                   kube::object_key(*object), e.what());
      continue;
    } catch (const json::exception& e) {
      spdlog::warn("msg=\"skipping undecodable object\" kind=NodeCache key={} error=\"{}\"",
                   kube::object_key(*object), e.what());
      continue;
    }
    if (const auto f = object->find(kSpecFingerprintField); f != object->end()) {
      used.insert(f->get<std::string>());
    }
  }
  // Specs no NodeCache has had for a while go; a young one may be an object being stored now.
  node_cache_specs_.retain(used, std::chrono::minutes(5));

  versions_seen_.clear();
  std::set<std::string> names;
  for (const CurrentNodeCache& nc : out) {
    versions_seen_[nc.metadata.name] = nc.metadata.resource_version;
    names.insert(nc.metadata.name);
  }
  const Clock::TimePoint now = clock_.now();
  std::lock_guard lock(pending_mu_);
  std::erase_if(pending_writes_,
                [&](const auto& entry) { return now - entry.second.at > std::chrono::minutes(1); });
  for (CurrentNodeCache& nc : out) {
    const auto p = pending_writes_.find(nc.metadata.name);
    if (p == pending_writes_.end()) continue;
    if (nc.metadata.resource_version != p->second.version_before) {
      pending_writes_.erase(p);  // the informer shows the write (or a later one)
      continue;
    }
    nc.spec = p->second.spec;
    nc.metadata.owner_references = p->second.owners;
  }
  for (const auto& [name, write] : pending_writes_) {
    if (!write.version_before.empty() || names.contains(name)) continue;
    CurrentNodeCache created;  // created by this process, not in the informer yet
    created.metadata.name = name;
    created.metadata.owner_references = write.owners;
    created.spec = write.spec;
    out.push_back(std::move(created));
  }
  return out;
}

struct Operator::ResolveJob {
  std::string name{};      // as written in the ImageCaches
  bool by_digest = false;  // a digest reference: only its size is asked for
  // Distinct pull routes (each: mirrors, then the primary), the most common first.
  std::vector<std::vector<oci::PullSource>> routes{};
  std::vector<std::string> payloads{};  // .dockerconfigjson of the pull secrets
  Clock::Duration interval{};           // the shortest of the ImageCaches asking
};

namespace {

// A route's identity in a resolution key.
std::string route_signature(const std::vector<oci::PullSource>& route) {
  std::string out;
  for (const auto& s : route) {
    out += fmt::format("{}|{}|{}|{};", s.location, s.reference.string(), s.insecure, s.mirror);
  }
  return out;
}

// The credentials to try for one source: the keyring's entries for the source's own reference,
// then (for a mirror) those for the image as written, as CRI-O passes one auth for every source;
// anonymous when none match.
std::vector<oci::Credentials> credentials_for(const oci::DockerKeyring& keyring,
                                              const oci::PullSource& source,
                                              const Reference& image) {
  std::vector<oci::Credentials> out;
  const auto add = [&out](const std::vector<oci::KeyringMatch>& matches) {
    for (const auto& m : matches) {
      if (std::find(out.begin(), out.end(), m.credentials) == out.end()) {
        out.push_back(m.credentials);
      }
    }
  };
  add(keyring.lookup(source.reference.string()));
  if (source.mirror) add(keyring.lookup(image.string()));
  if (out.empty()) out.emplace_back();
  return out;
}

bool auth_failure(Code code) {
  return code == Code::kUnauthenticated || code == Code::kPermissionDenied;
}

// Bytes a pull of `m` downloads: its config and layers as the manifest states them (compressed).
std::optional<std::int64_t> pull_size(const oci::ImageManifest& m) {
  std::int64_t total = 0;
  const auto add = [&total](std::int64_t size) {
    if (size < 0 || total > std::numeric_limits<std::int64_t>::max() - size) return false;
    total += size;
    return true;
  };
  if (!add(m.config.size)) return std::nullopt;
  for (const oci::Descriptor& layer : m.layers) {
    if (!add(layer.size)) return std::nullopt;
  }
  return total;
}

// The size of the image `m` names (fetched from `repository` through `registry`): its own for an
// image manifest; for an index, that of the entry for the operator's platform, fetched by digest
// (`extra_requests` counts it). nullopt, with the reason in `why`, when it cannot be learned.
std::optional<std::int64_t> measure(oci::RegistryClient& registry, std::string_view repository,
                                    const oci::FetchedManifest& m, int& extra_requests,
                                    std::string& why) {
  try {
    const auto parsed = oci::parse_manifest(m.bytes, m.media_type);
    if (const auto* manifest = std::get_if<oci::ImageManifest>(&parsed)) {
      return pull_size(*manifest);
    }
    const oci::Descriptor& entry =
        oci::choose_platform(std::get<oci::ImageIndex>(parsed), oci::host_platform());
    ++extra_requests;
    const oci::FetchedManifest child = registry.get_manifest(repository, entry.digest);
    return pull_size(oci::parse_image_manifest(child.bytes, child.media_type));
  } catch (const Error& e) {
    why = e.what();
  }
  return std::nullopt;
}

}  // namespace

Operator::Resolved Operator::resolve_one(const ResolveJob& job, const Resolved* previous) {
  Resolved r;
  std::vector<std::string> answers;  // "<location>: <error>" per source tried
  std::optional<Code> last_code;
  std::string last_message;
  std::set<std::string> tried;
  int extra_requests = 0;  // GETs for the size only
  std::string size_unknown;
  try {
    Reference image = Reference::parse_normalized(job.name);
    if (!image.digest) image = image.with_default_tag();
    oci::DockerKeyring keyring;
    for (const auto& payload : job.payloads) keyring.add_dockerconfigjson(payload);
    for (const auto& route : job.routes) {
      for (const auto& source : route) {
        if (!tried.insert(route_signature({source})).second) continue;
        const std::string& repository = source.reference.path;
        const std::string wanted = source.reference.digest
                                       ? *source.reference.digest
                                       : source.reference.tag.value_or(std::string(kDefaultTag));
        for (const oci::Credentials& credentials : credentials_for(keyring, source, image)) {
          oci::RegistryClientOptions options;
          options.registry = source.reference.domain;
          options.insecure = source.insecure;
          options.credentials = credentials;
          options.retry.max_attempts = 2;
          options.request_timeout = std::chrono::seconds(30);
          options.connect_timeout = std::chrono::seconds(10);
          try {
            oci::RegistryClient registry(registry_transport_, clock_, options);
            // One GET gives the digest (of the bytes) and what the size is summed from.
            std::optional<oci::FetchedManifest> manifest;
            try {
              if (job.by_digest) ++extra_requests;  // a digest reference is GET for its size
              manifest = registry.get_manifest(repository, wanted);
              r.digest = manifest->digest;
            } catch (const Error& e) {
              // A document this library does not read (schema1, an unknown media type): a tag
              // still resolves by HEAD, without a size.
              if (e.code() != Code::kInvalidArgument || job.by_digest) throw;
              size_unknown = e.what();
              r.digest = registry.head_manifest(repository, wanted).digest;
            }
            if (previous != nullptr && previous->digest == r.digest && previous->size) {
              r.size = previous->size;
            } else if (manifest) {
              r.size = measure(registry, repository, *manifest, extra_requests, size_unknown);
            }
            if (!job.by_digest) resolutions_ok_.inc();
            break;
          } catch (const Error& e) {
            last_code = e.code();
            last_message = e.what();
            answers.push_back(fmt::format("{}: {}", source.location, e.what()));
            if (!auth_failure(e.code())) break;  // other credentials would not help
          }
        }
        if (r.digest) break;
      }
      if (r.digest) break;
    }
    if (!r.digest) {
      if (!job.by_digest) resolutions_failed_.inc();
      r.failure = Unresolved{
          reason_of(last_code.value_or(Code::kInternal)),
          answers.size() == 1 ? last_message : fmt::format("{}", fmt::join(answers, "; "))};
    }
  } catch (const Error& e) {
    r.failure = Unresolved{reason_of(e.code()), e.what()};
    if (!job.by_digest) resolutions_failed_.inc();
  } catch (const std::exception& e) {
    r.failure = Unresolved{"ResolveFailed", e.what()};
    if (!job.by_digest) resolutions_failed_.inc();
  }
  if (r.digest && !r.size && !size_unknown.empty()) {
    spdlog::info("msg=\"image size unknown\" image={} digest={} error=\"{}\"", job.name, *r.digest,
                 size_unknown);
  }
  std::lock_guard lock(stats_mu_);
  if (!job.by_digest) ++stats_.resolutions;
  stats_.size_requests += extra_requests;
  return r;
}

Clock::Duration Operator::resolve_tags(PlannerInput& in, const PullSecretSyncPlan& secrets) {
  // The merged registries configuration of every node (RegistryConfigs of either delivery),
  // computed once per distinct set of matching RegistryConfigs.
  std::vector<const api::RegistryConfig*> live;
  for (const api::RegistryConfig& rc : in.registry_configs) {
    if (!rc.metadata.deletion_timestamp) live.push_back(&rc);
  }
  std::sort(live.begin(), live.end(),
            [](const auto* a, const auto* b) { return a->metadata.name < b->metadata.name; });
  std::map<std::string, registries::Config> merged;  // by the joined names of the set
  std::map<std::string, std::string> set_of_node;
  const auto config_set = [&](const registries::Labels& labels) {
    std::string key;
    std::vector<registries::NamedRegistryConfig> named;
    for (const auto* rc : live) {
      if (!registries::selector_matches(rc->spec.node_selector, labels)) continue;
      key += rc->metadata.name + '\n';
      named.push_back(api::named(*rc));
    }
    if (!merged.contains(key)) {
      try {
        merged.emplace(key, registries::merge_registry_configs(std::move(named)));
      } catch (const Error& e) {
        // The planner reports it; the nodes keep what they had, unknown here.
        merged.emplace(key, registries::Config{});
      }
    }
    return key;
  };
  for (const PlannerNode& node : in.nodes) set_of_node[node.name] = config_set(node.labels);
  const std::set<std::string> flag_insecure(options_.insecure_registries.begin(),
                                            options_.insecure_registries.end());

  // Every (reference, credentials, routes) wanted, with the shortest refresh interval asking.
  std::map<std::string, ResolveJob> wanted;
  std::map<std::string, std::map<std::string, std::string>> job_of;  // ic key -> name -> job
  for (const api::ImageCache& ic : in.image_caches) {
    if (ic.metadata.deletion_timestamp) continue;
    const std::string ic_key = api::object_key(ic.metadata);
    const Clock::Duration interval =
        std::max<Clock::Duration>(ic.spec.refresh_interval, std::chrono::seconds(1));
    // The configurations of its nodes, the most common first (ties by key); none selected: the
    // configuration of a node no RegistryConfig matches.
    std::map<std::string, int> counts;
    for (const PlannerNode& node : in.nodes) {
      if (registries::selector_matches(ic.spec.node_selector, node.labels)) {
        ++counts[set_of_node.at(node.name)];
      }
    }
    if (counts.empty()) counts[config_set({})] = 1;
    std::vector<std::pair<int, std::string>> groups;
    for (const auto& [key, count] : counts) groups.emplace_back(-count, key);
    std::sort(groups.begin(), groups.end());

    const auto payloads = secrets.payloads.find(ic_key);
    std::string fingerprint;
    if (payloads != secrets.payloads.end()) {
      Sha256 h;
      for (const auto& p : payloads->second) {
        h.update(p);
        h.update(std::string_view("\0", 1));
      }
      fingerprint = h.finish_hex();
    }
    for (const api::CachedImage& image : ic.spec.images) {
      Reference ref;
      try {
        ref = Reference::parse_normalized(image.name);
        if (!ref.digest) ref = ref.with_default_tag();
      } catch (const Error&) {
        continue;  // the planner reports the invalid reference
      }
      ResolveJob job;
      job.name = image.name;
      job.by_digest = ref.digest.has_value();
      job.interval = interval;
      std::optional<Unresolved> refused;
      for (const auto& group : groups) {
        const registries::Config& config = merged.at(group.second);
        try {
          std::vector<oci::PullSource> route = oci::pull_sources(ref, config);
          for (auto& source : route) {
            if (flag_insecure.contains(source.reference.domain)) source.insecure = true;
          }
          if (std::find(job.routes.begin(), job.routes.end(), route) == job.routes.end()) {
            job.routes.push_back(std::move(route));
          }
        } catch (const Error& e) {
          if (e.code() == Code::kPermissionDenied) {
            const registries::Registry* reg = registries::find_registry(config, ref.name());
            refused = Unresolved{
                std::string(kReasonBlocked),
                fmt::format("registry {} is blocked by the RegistryConfigs of the nodes ImageCache "
                            "{} selects",
                            reg != nullptr ? reg->prefix : ref.domain, ic_key)};
          } else {
            refused = Unresolved{reason_of(e.code()), e.what()};
          }
        }
      }
      if (job.routes.empty()) {
        if (!job.by_digest) {  // a digest reference needs no resolution, only its size is lost
          in.resolutions[ic_key].unresolved[image.name] =
              refused.value_or(Unresolved{"ResolveFailed", "no registry to resolve the tag at"});
        }
        continue;
      }
      std::string key = image.name + '\n' + fingerprint + '\n';
      for (const auto& route : job.routes) key += route_signature(route) + '\n';
      job_of[ic_key][image.name] = key;
      if (payloads != secrets.payloads.end()) job.payloads = payloads->second;
      auto [it, inserted] = wanted.emplace(key, std::move(job));
      if (!inserted) it->second.interval = std::min(it->second.interval, interval);
    }
  }
  std::erase_if(resolved_, [&](const auto& entry) { return !wanted.contains(entry.first); });

  {
    std::lock_guard lock(sizes_mu_);
    for (auto& [key, done] : sizes_done_) {
      if (wanted.contains(key)) resolved_.insert_or_assign(key, std::move(done));
    }
    sizes_done_.clear();
  }
  const Clock::TimePoint now = clock_.now();
  Clock::Duration next = options_.refresh_interval;
  for (const auto& want : wanted) {
    const std::string& key = want.first;
    const ResolveJob& job = want.second;
    auto it = resolved_.find(key);
    // A digest reference's content cannot change: once its size is known it is not asked again.
    if (job.by_digest && it != resolved_.end() && it->second.size) continue;
    const auto due = [&](const Resolved& r) {
      const Clock::Duration wait =
          r.failure && !job.by_digest
              ? std::min<Clock::Duration>(job.interval, options_.unresolved_retry)
              : job.interval;
      return r.at + wait;
    };
    const bool is_due = it == resolved_.end() || due(it->second) <= now;
    if (is_due && job.by_digest) {
      queue_size_fetch(key, job);  // its result queues a reconcile
      continue;
    }
    if (is_due) {
      Resolved fresh = resolve_one(job, it == resolved_.end() ? nullptr : &it->second);
      fresh.at = clock_.now();
      fresh.interval = job.interval;
      if (fresh.digest) {
        spdlog::info("msg=\"resolved tag\" image={} digest={} size={}", job.name, *fresh.digest,
                     fresh.size ? std::to_string(*fresh.size) : std::string("unknown"));
      } else {
        spdlog::warn("msg=\"tag not resolved\" image={} reason={} error=\"{}\"", job.name,
                     fresh.failure->reason, fresh.failure->message);
        // Keep the last digest known (and its size) rather than forgetting it on a transient
        // failure.
        if (it != resolved_.end() && it->second.digest && fresh.failure->reason != "NotFound" &&
            fresh.failure->reason != "Unauthorized") {
          fresh.digest = it->second.digest;
          fresh.size = it->second.size;
        }
      }
      it = resolved_.insert_or_assign(key, std::move(fresh)).first;
    }
    next = std::min(
        next, std::max<Clock::Duration>(due(it->second) - clock_.now(), std::chrono::seconds(1)));
  }
  for (const auto& [ic_key, names] : job_of) {
    for (const auto& [name, key] : names) {
      const auto found = resolved_.find(key);
      if (found == resolved_.end()) continue;  // a size not fetched yet
      const Resolved& r = found->second;
      ImageCacheResolutions& own = in.resolutions[ic_key];
      if (r.size) own.sizes[name] = *r.size;
      if (wanted.at(key).by_digest) continue;  // its digest is in its name
      if (r.digest) {
        own.digests[name] = *r.digest;
      } else if (r.failure) {
        own.unresolved[name] = *r.failure;
      }
    }
  }
  return next;
}

void Operator::queue_size_fetch(const std::string& key, const ResolveJob& job) {
  std::lock_guard lock(sizes_mu_);
  if (!sizes_pending_.insert(key).second) return;  // queued or being fetched already
  sizes_queued_.emplace_back(key, std::make_shared<const ResolveJob>(job));
  sizes_cv_.notify_one();
}

void Operator::fetch_sizes(std::stop_token stop) {
  // Registries that did not answer: for a minute, the other digests they serve are not asked
  // (hundreds of images on one unreachable registry fail at once, not one slow attempt each).
  std::map<std::string, std::pair<Clock::TimePoint, std::string>> unreachable;
  while (true) {
    std::pair<std::string, std::shared_ptr<const ResolveJob>> next;
    {
      std::unique_lock lock(sizes_mu_);
      if (!sizes_cv_.wait(lock, stop, [&] { return !sizes_queued_.empty(); })) return;
      next = std::move(sizes_queued_.front());
      sizes_queued_.pop_front();
    }
    const ResolveJob& job = *next.second;
    std::set<std::string> hosts;
    for (const auto& route : job.routes) {
      for (const auto& source : route) hosts.insert(source.reference.domain);
    }
    const Clock::TimePoint started = clock_.now();
    const bool skip = !hosts.empty() && std::all_of(hosts.begin(), hosts.end(), [&](const auto& h) {
      const auto u = unreachable.find(h);
      return u != unreachable.end() && u->second.first > started;
    });
    Resolved fresh;
    if (skip) {
      fresh.failure = Unresolved{
          "Unavailable", fmt::format("{} did not answer a moment ago: {}", fmt::join(hosts, ", "),
                                     unreachable.at(*hosts.begin()).second)};
    } else {
      fresh = resolve_one(job, nullptr);
      if (fresh.failure && fresh.failure->reason == "Unavailable") {
        for (const auto& h : hosts) {
          unreachable[h] = {clock_.now() + std::chrono::minutes(1), fresh.failure->message};
        }
      }
    }
    fresh.at = clock_.now();
    fresh.interval = job.interval;
    if (fresh.failure) {
      spdlog::info("msg=\"image size unknown\" image={} reason={} error=\"{}\"", job.name,
                   fresh.failure->reason, fresh.failure->message);
    }
    {
      std::lock_guard lock(sizes_mu_);
      sizes_pending_.erase(next.first);
      sizes_done_.insert_or_assign(next.first, std::move(fresh));
    }
    // Results arriving one after another share one reconcile.
    queue_.add_after(kClusterKey, std::chrono::seconds(5));
  }
}

PullSecretSyncInput Operator::build_secret_input(const PlannerInput& in) {
  PullSecretSyncInput out;
  out.namespace_ = options_.namespace_;
  out.image_caches = in.image_caches;
  std::set<std::pair<std::string, std::string>> referenced;
  for (const api::ImageCache& ic : in.image_caches) {
    if (ic.metadata.deletion_timestamp) continue;
    for (const auto& ref : ic.spec.image_pull_secrets) {
      if (!ref.name.empty()) referenced.emplace(ic.metadata.namespace_, ref.name);
    }
  }
  for (const auto& [namespace_, name] : referenced) {
    if (const kube::ObjectPtr cached = secrets_->get(namespace_, name)) {
      out.sources.push_back(secret_object(*cached));
      continue;
    }
    // Not a dockerconfigjson Secret the informer holds: read it to tell a missing Secret from
    // one of another type (or one created a moment ago).
    try {
      if (const auto found = client_.try_get({kSecrets, namespace_, name, ""})) {
        out.sources.push_back(secret_object(trim_secret(*found)));
      }
    } catch (const Error& e) {
      out.read_errors[namespace_ + "/" + name] = e.what();
    }
  }
  for (const kube::ObjectPtr& secret : secrets_->list()) {
    if ((*secret)["metadata"].value("namespace", "") == options_.namespace_) {
      out.copies.push_back(secret_object(*secret));
    }
  }
  return out;
}

void Operator::apply_secret_copies(const PullSecretSyncPlan& plan,
                                   const std::optional<kube::LeaderGuard>& guard) {
  const kube::PatchOptions apply_options{
      .field_manager = std::string(kFieldManager), .force = true, .dry_run = false};
  for (const PlannedSecretCopy& copy : plan.copies) {
    if (copy.action == CopyAction::kNone) continue;
    if (copy.action == CopyAction::kReplace) {
      check_may_act(guard);
      try {
        client_.delete_({kSecrets, options_.namespace_, copy.name, ""});
        count_write();
      } catch (const Error& e) {
        if (e.code() != Code::kNotFound) throw;
      }
    }
    const json intent = {{"apiVersion", "v1"},
                         {"kind", "Secret"},
                         {"metadata",
                          {{"name", copy.name},
                           {"namespace", options_.namespace_},
                           {"labels", copy.labels},
                           {"annotations", copy.annotations}}},
                         {"type", copy.type},
                         {"data", copy.data}};
    check_may_act(guard);
    client_.apply({kSecrets, options_.namespace_, copy.name, ""}, intent, apply_options);
    count_write();
    spdlog::info("msg=\"synced pull secret\" key={}/{} source={}/{} action={}", options_.namespace_,
                 copy.name, copy.source_namespace, copy.source_name,
                 copy.action == CopyAction::kCreate ? "create" : "update");
  }
}

void Operator::delete_secret_copies(const PullSecretSyncPlan& plan,
                                    const std::optional<kube::LeaderGuard>& guard) {
  for (const std::string& name : plan.to_delete) {
    check_may_act(guard);
    try {
      client_.delete_({kSecrets, options_.namespace_, name, ""});
      count_write();
      spdlog::info("msg=\"deleted unreferenced pull secret copy\" key={}/{}", options_.namespace_,
                   name);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
    }
  }
}

void Operator::record(const kube::ObjectReference& regarding, kube::EventType type,
                      std::string reason, std::string action, std::string note) {
  spdlog::info("msg=\"event\" key={}{}{} type={} reason={} note=\"{}\"", regarding.namespace_,
               regarding.namespace_.empty() ? "" : "/", regarding.name, kube::event_type_name(type),
               reason, note);
  events_->record(regarding, type, std::move(reason), std::move(action), std::move(note));
  std::lock_guard lock(stats_mu_);
  ++stats_.events;
}

void Operator::record_events(const PlannerInput& in, const Plan& plan,
                             const PullSecretSyncPlan& secrets) {
  // RegistryConfigs: becoming Degraded, a rollout completing. From the status before and after.
  std::map<std::string, const api::RegistryConfig*> rcs;
  for (const auto& rc : in.registry_configs) rcs[rc.metadata.name] = &rc;
  for (const PlannedRegistryConfigStatus& st : plan.registry_configs) {
    const auto found = rcs.find(st.name);
    if (!st.changed || found == rcs.end()) continue;
    const api::RegistryConfig& rc = *found->second;
    const kube::ObjectReference ref = reference_of(api::kRegistryConfigKind, rc.metadata);
    const api::Condition* degraded =
        api::find_condition(st.status.conditions, api::kConditionDegraded);
    if (is_true(degraded) &&
        !is_true(api::find_condition(rc.status.conditions, api::kConditionDegraded))) {
      record(ref, kube::EventType::kWarning, "Degraded", "Plan",
             degraded->reason + ": " + degraded->message);
    }
    const api::Condition* was =
        api::find_condition(rc.status.conditions, api::kConditionProgressing);
    const api::Condition* now =
        api::find_condition(st.status.conditions, api::kConditionProgressing);
    if (is_true(was) && now != nullptr && !is_true(now) && now->reason == kReasonComplete) {
      record(ref, kube::EventType::kNormal, "RolloutComplete", "Rollout",
             "registries configuration rolled out: " + now->message);
    }
  }

  // ImageCaches: an image resolved to a new digest or not resolved; a pull secret unusable.
  std::map<std::string, std::string> states;
  std::set<std::string> problems;
  for (const api::ImageCache& ic : in.image_caches) {
    if (ic.metadata.deletion_timestamp) continue;
    const std::string key = api::object_key(ic.metadata);
    const kube::ObjectReference ref = reference_of(api::kImageCacheKind, ic.metadata);
    const auto own = in.resolutions.find(key);
    for (const api::CachedImage& image : ic.spec.images) {
      std::string state;
      std::string note;
      if (own != in.resolutions.end()) {
        if (const auto d = own->second.digests.find(image.name); d != own->second.digests.end()) {
          state = "digest:" + d->second;
        } else if (const auto u = own->second.unresolved.find(image.name);
                   u != own->second.unresolved.end()) {
          state = "unresolved:" + u->second.reason;
          note = fmt::format("{}: {}: {}", image.name, u->second.reason, u->second.message);
        }
      }
      if (state.empty()) continue;  // a digest reference, or not resolved yet
      const std::string state_key = key + '\n' + image.name;
      auto previous = image_states_.find(state_key);
      if (previous == image_states_.end()) {
        // First sight since start: what the status already reports counts as said.
        std::string seeded;
        for (const auto& s : ic.status.images) {
          if (s.name == image.name && !s.digest.empty()) seeded = "digest:" + s.digest;
        }
        previous = image_states_.emplace(state_key, seeded).first;
      }
      if (previous->second != state) {
        if (state.starts_with("digest:")) {
          const std::string was = previous->second.starts_with("digest:")
                                      ? " (was " + previous->second.substr(7) + ")"
                                      : "";
          record(ref, kube::EventType::kNormal, "ImageResolved", "Resolve",
                 fmt::format("{} resolved to {}{}", image.name, state.substr(7), was));
        } else {
          record(ref, kube::EventType::kWarning, "ImageUnresolved", "Resolve", note);
        }
      }
      states[state_key] = state;
    }
    if (const auto p = secrets.problems.find(key); p != secrets.problems.end()) {
      for (const PullSecretProblem& problem : p->second) {
        const std::string problem_key = key + '\n' + problem.message;
        if (!secret_problems_reported_.contains(problem_key)) {
          record(ref, kube::EventType::kWarning, "PullSecretUnavailable", "SyncPullSecret",
                 problem.message);
        }
        problems.insert(problem_key);
      }
    }
  }
  image_states_ = std::move(states);
  secret_problems_reported_ = std::move(problems);
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
  // 2. NodeCache specs, several at once: after a registries change every node's spec moves, and
  // one apply at a time leaves the API server waiting on this process between requests.
  std::vector<const PlannedNodeCache*> writes;
  for (const PlannedNodeCache& nc : plan.node_caches) {
    if (nc.write) writes.push_back(&nc);
  }
  const Clock::TimePoint writes_from = clock_.now();
  std::stop_source writes_stop;
  run_parallel(
      writes.size(), options_.concurrent_writes, writes_stop,
      [&](std::size_t i) {
        const PlannedNodeCache& nc = *writes[i];
        api::ObjectMeta meta;
        meta.name = nc.name;
        meta.owner_references = nc.owner_references;
        const json intent = {{"apiVersion", std::string(api::kApiVersion)},
                             {"kind", std::string(api::kNodeCacheKind)},
                             {"metadata", api::object_meta_to_json(meta)},
                             {"spec", api::node_cache_spec_to_json(*nc.spec)}};
        check_may_act(guard);
        client_.apply({api::node_caches_resource(), "", nc.name, ""}, intent, apply_options);
        count_write();
        const auto seen = versions_seen_.find(nc.name);
        std::lock_guard lock(pending_mu_);
        pending_writes_[nc.name] = {seen == versions_seen_.end() ? "" : seen->second, nc.spec,
                                    nc.owner_references, clock_.now()};
        spdlog::debug("msg=\"applied NodeCache spec\" key={} images={} registries={}", nc.name,
                      nc.spec->images.size(), nc.spec->registries ? nc.spec->registries->hash : "");
      },
      "applying NodeCache specs");
  if (!writes.empty()) {
    spdlog::info("msg=\"applied NodeCache specs\" count={} seconds={:.2f}", writes.size(),
                 std::chrono::duration<double>(clock_.now() - writes_from).count());
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
  // Where a reconcile's time goes, logged at debug level: reading the caches, resolving,
  // planning, writing.
  Clock::TimePoint mark = clock_.now();
  const auto lap = [&] {
    const Clock::TimePoint now = clock_.now();
    return std::chrono::duration<double>(now - std::exchange(mark, now)).count();
  };
  // Discovery is cached; the planner and the MachineConfig controller must agree on it.
  const bool machine_config_api = machine_configs_->discover();
  PlannerInput in = build_input();
  in.machine_config_api = machine_config_api;
  const PullSecretSyncPlan secrets = plan_pull_secrets(build_secret_input(in));
  in.pull_secret_problems = secrets.problems;
  const double input_s = lap();
  const Clock::Duration next = resolve_tags(in, secrets);
  const double resolve_s = lap();
  const Plan plan = plan_cluster(in);
  const double plan_s = lap();
  // Copies first (NodeCaches are about to name them), unreferenced copies last.
  apply_secret_copies(secrets, guard);
  apply_plan(plan, guard);
  delete_secret_copies(secrets, guard);
  spdlog::debug(
      "msg=\"reconciled\" nodes={} input_s={:.3f} resolve_s={:.3f} plan_s={:.3f} "
      "write_s={:.3f}",
      plan.node_caches.size(), input_s, resolve_s, plan_s, lap());
  if (machine_config_api) {
    const MachineConfigResult mc = machine_configs_->reconcile(in.registry_configs, in.now, guard);
    for (std::int64_t i = 0; i < mc.writes; ++i) count_write();
  }
  record_events(in, plan, secrets);
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
