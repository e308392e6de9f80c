#include "kube/leader_election.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <thread>
#include <utility>

#include "base/error.h"
#include "kube/encoding.h"

namespace stowage::kube {

namespace {

const GroupVersionResource kLeases{"coordination.k8s.io", "v1", "leases"};

std::optional<Clock::WallTime> time_field(const nlohmann::json& spec, const char* key) {
  const auto it = spec.find(key);
  if (it == spec.end() || !it->is_string()) return std::nullopt;
  return parse_rfc3339(it->get<std::string>());
}

std::int64_t int_field(const nlohmann::json& spec, const char* key) {
  const auto it = spec.find(key);
  if (it == spec.end() || !it->is_number_integer()) return 0;
  return it->get<std::int64_t>();
}

ObservedLease observed_from(nlohmann::json object) {
  ObservedLease lease;
  lease.record = lease_record_from_json(object);
  lease.resource_version = object.value("/metadata/resourceVersion"_json_pointer, std::string());
  lease.object = std::move(object);
  return lease;
}

std::int64_t whole_seconds(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

}  // namespace

LeaseRecord lease_record_from_json(const nlohmann::json& lease) {
  if (!lease.is_object()) throw_invalid("reading a Lease: not a JSON object");
  LeaseRecord record;
  const auto spec_it = lease.find("spec");
  if (spec_it == lease.end() || !spec_it->is_object()) return record;
  const nlohmann::json& spec = *spec_it;
  if (const auto it = spec.find("holderIdentity"); it != spec.end() && it->is_string()) {
    record.holder_identity = it->get<std::string>();
  }
  record.lease_duration_seconds = int_field(spec, "leaseDurationSeconds");
  record.acquire_time = time_field(spec, "acquireTime");
  record.renew_time = time_field(spec, "renewTime");
  record.lease_transitions = int_field(spec, "leaseTransitions");
  return record;
}

nlohmann::json with_lease_record(nlohmann::json object, const LeaseRecord& record) {
  nlohmann::json& spec = object["spec"];
  if (!spec.is_object()) spec = nlohmann::json::object();
  spec["holderIdentity"] = record.holder_identity;
  spec["leaseDurationSeconds"] = record.lease_duration_seconds;
  spec["leaseTransitions"] = record.lease_transitions;
  if (record.acquire_time) {
    spec["acquireTime"] = format_rfc3339_micro(*record.acquire_time);
  } else {
    spec.erase("acquireTime");
  }
  if (record.renew_time) {
    spec["renewTime"] = format_rfc3339_micro(*record.renew_time);
  } else {
    spec.erase("renewTime");
  }
  return object;
}

KubeLeaseStore::KubeLeaseStore(Client& client, std::string namespace_, std::string name)
    : client_(client), ref_{kLeases, std::move(namespace_), std::move(name), ""} {}

std::optional<ObservedLease> KubeLeaseStore::get() {
  std::optional<nlohmann::json> object = client_.try_get(ref_);
  if (!object) return std::nullopt;
  return observed_from(std::move(*object));
}

ObservedLease KubeLeaseStore::create(const LeaseRecord& record) {
  const nlohmann::json object =
      with_lease_record({{"apiVersion", "coordination.k8s.io/v1"},
                         {"kind", "Lease"},
                         {"metadata", {{"name", ref_.name}, {"namespace", ref_.namespace_}}}},
                        record);
  return observed_from(client_.create({kLeases, ref_.namespace_, "", ""}, object));
}

ObservedLease KubeLeaseStore::update(const ObservedLease& last_read, const LeaseRecord& record) {
  return observed_from(client_.update(ref_, with_lease_record(last_read.object, record)));
}

std::string KubeLeaseStore::describe() const {
  return kube::describe(ref_);
}

bool LeaderGuard::may_act() const {
  return elector_->may_act(term_);
}

void validate(const LeaderElectionConfig& config) {
  if (config.identity.empty()) throw_invalid("leader election: identity is required");
  if (config.retry_period <= std::chrono::milliseconds::zero()) {
    throw_invalid("leader election: retry period must be positive");
  }
  if (config.lease_duration <= config.renew_deadline) {
    throw_invalid(fmt::format(
        "leader election: lease duration ({} ms) must be greater than renew deadline ({} ms)",
        config.lease_duration.count(), config.renew_deadline.count()));
  }
  // renew_deadline > 1.2 × retry_period, in integers: 5 × deadline > 6 × retry.
  if (5 * config.renew_deadline.count() <= 6 * config.retry_period.count()) {
    throw_invalid(fmt::format(
        "leader election: renew deadline ({} ms) must be greater than 1.2 × retry period ({} ms)",
        config.renew_deadline.count(), config.retry_period.count()));
  }
  if (whole_seconds(config.lease_duration) < 1) {
    throw_invalid("leader election: lease duration must be at least one second");
  }
}

LeaderElector::LeaderElector(LeaseStore& store, Clock& clock, LeaderElectionConfig config)
    : store_(store),
      clock_(clock),
      config_((validate(config), std::move(config))),
      rng_(std::hash<std::string>{}(config_.identity) ^
           static_cast<std::uint64_t>(clock.now().time_since_epoch().count())) {}

LeaderElector::~LeaderElector() = default;

bool LeaderElector::may_act(std::int64_t term) const {
  std::lock_guard lock(mu_);
  return leading_ && term_ == term && clock_.now() < act_until_;
}

void LeaderElector::end_term_locked() {
  leading_ = false;
}

bool LeaderElector::is_leader() const {
  std::lock_guard lock(mu_);
  return leading_;
}

std::optional<LeaderGuard> LeaderElector::guard() const {
  std::lock_guard lock(mu_);
  if (!leading_) return std::nullopt;
  return LeaderGuard(*this, term_);
}

std::string LeaderElector::observed_holder() const {
  std::lock_guard lock(mu_);
  return observed_ ? observed_->record.holder_identity : std::string();
}

Clock::Duration LeaderElector::jittered_retry() {
  std::uniform_real_distribution<double> factor(0.0, 1.2);
  const auto base = std::chrono::duration_cast<Clock::Duration>(config_.retry_period);
  return base + std::chrono::duration_cast<Clock::Duration>(base * factor(rng_));
}

bool LeaderElector::try_acquire_or_renew() {
  {
    std::lock_guard lock(mu_);
    if (leading_ && clock_.now() >= act_until_) end_term_locked();
  }
  std::optional<ObservedLease> current = store_.get();
  const Clock::TimePoint read_at = clock_.now();

  bool holder_changed = false;
  bool was_leading = false;
  std::int64_t term = -1;
  Clock::TimePoint act_until;
  {
    std::lock_guard lock(mu_);
    if (current) {
      if (!observed_ || observed_->record != current->record) {
        holder_changed =
            !observed_ || observed_->record.holder_identity != current->record.holder_identity;
        observed_at_ = read_at;
      }
      observed_ = current;
    } else {
      observed_.reset();
    }
    was_leading = leading_;
    term = term_;
    act_until = act_until_;
  }
  if (holder_changed && config_.on_new_leader) {
    config_.on_new_leader(current->record.holder_identity);
  }

  const std::int64_t duration_s = whole_seconds(config_.lease_duration);
  if (!current) {
    const Clock::WallTime wall = clock_.wall_now();
    const LeaseRecord record{config_.identity, duration_s, wall, wall,
                             std::max<std::int64_t>(0, term + 1)};
    const Clock::TimePoint sent_at = clock_.now();
    ObservedLease created;
    try {
      created = store_.create(record);
    } catch (const Error& e) {
      if (e.code() == Code::kAlreadyExists || e.code() == Code::kConflict) return false;
      throw;
    }
    std::lock_guard lock(mu_);
    observed_ = std::move(created);
    observed_at_ = clock_.now();
    leading_ = true;
    term_ = record.lease_transitions;
    act_until_ = sent_at + config_.renew_deadline;
    return true;
  }

  const LeaseRecord& old = current->record;
  const bool ours = old.holder_identity == config_.identity;
  if (!old.holder_identity.empty() && !ours) {
    std::lock_guard lock(mu_);
    if (observed_at_ + std::chrono::seconds(old.lease_duration_seconds) > read_at) {
      end_term_locked();  // another candidate holds a valid lease
      return false;
    }
  }

  const Clock::TimePoint sent_at = clock_.now();
  const Clock::WallTime wall = clock_.wall_now();
  // Renewing keeps the term only within RenewDeadline of the last renewal; anything else is a
  // new term, and every new term increments leaseTransitions (client-go increments only when
  // the holder changes; counting every acquisition makes the term a fencing token).
  const bool same_term =
      was_leading && ours && old.lease_transitions == term && sent_at < act_until;
  LeaseRecord record;
  record.holder_identity = config_.identity;
  record.lease_duration_seconds = duration_s;
  record.renew_time = wall;
  if (same_term) {
    record.acquire_time = old.acquire_time ? old.acquire_time : wall;
    record.lease_transitions = old.lease_transitions;
  } else {
    record.acquire_time = wall;
    // Never below a term this process has held (a lease deleted and recreated restarts at 0).
    record.lease_transitions = std::max(old.lease_transitions + 1, term + 1);
  }
  ObservedLease updated;
  try {
    updated = store_.update(*current, record);
  } catch (const Error& e) {
    if (e.code() == Code::kConflict || e.code() == Code::kNotFound) return false;
    throw;
  }
  std::lock_guard lock(mu_);
  observed_ = std::move(updated);
  observed_at_ = clock_.now();
  if (!same_term) {
    leading_ = true;
    term_ = record.lease_transitions;
  }
  act_until_ = sent_at + config_.renew_deadline;
  return true;
}

bool LeaderElector::release() {
  std::optional<ObservedLease> last;
  {
    std::lock_guard lock(mu_);
    end_term_locked();
    last = observed_;
  }
  if (!last || last->record.holder_identity != config_.identity) return false;
  const Clock::WallTime wall = clock_.wall_now();
  LeaseRecord record;
  record.holder_identity = "";
  record.lease_duration_seconds = 1;
  record.acquire_time = wall;
  record.renew_time = wall;
  record.lease_transitions = last->record.lease_transitions;
  try {
    ObservedLease released = store_.update(*last, record);
    std::lock_guard lock(mu_);
    observed_ = std::move(released);
    observed_at_ = clock_.now();
    return true;
  } catch (const Error& e) {
    spdlog::warn("leader election: releasing {} failed identity={} error={}", store_.describe(),
                 config_.identity, e.what());
    return false;
  }
}

void LeaderElector::run(std::stop_token stop) {
  // Acquire.
  while (true) {
    if (stop.stop_requested()) return;
    bool acquired = false;
    try {
      acquired = try_acquire_or_renew();
    } catch (const Error& e) {
      spdlog::warn("leader election: acquiring {} failed identity={} error={}", store_.describe(),
                   config_.identity, e.what());
    }
    if (acquired) break;
    if (!clock_.sleep_for(jittered_retry(), stop)) return;
  }
  const std::optional<LeaderGuard> guard = this->guard();
  if (!guard) return;  // cannot happen: only this thread ends terms
  spdlog::info("leader election: acquired {} identity={} term={}", store_.describe(),
               config_.identity, guard->term());

  // Lead: the callback in its own thread, renewals in this one.
  std::stop_source work_stop;
  std::jthread worker;
  if (config_.on_started_leading) {
    worker = std::jthread([this, g = *guard, token = work_stop.get_token()] {
      try {
        config_.on_started_leading(g, token);
      } catch (const std::exception& e) {
        spdlog::error("leader election: leader work failed identity={} term={} error={}",
                      config_.identity, g.term(), e.what());
      }
    });
  }
  const auto retry = std::chrono::duration_cast<Clock::Duration>(config_.retry_period);
  Clock::TimePoint next = clock_.now() + retry;
  while (true) {
    Clock::TimePoint act_until;
    {
      std::lock_guard lock(mu_);
      if (!leading_ || term_ != guard->term()) break;
      act_until = act_until_;
    }
    if (!clock_.sleep_until(std::min(next, act_until), stop)) break;
    if (clock_.now() >= act_until) {
      spdlog::warn("leader election: no renewal of {} within the renew deadline identity={}",
                   store_.describe(), config_.identity);
      break;
    }
    try {
      try_acquire_or_renew();
    } catch (const Error& e) {
      spdlog::warn("leader election: renewing {} failed identity={} error={}", store_.describe(),
                   config_.identity, e.what());
    }
    next = clock_.now() + retry;
  }
  {
    std::lock_guard lock(mu_);
    end_term_locked();
  }
  work_stop.request_stop();
  if (worker.joinable()) worker.join();
  if (stop.stop_requested() && config_.release_on_cancel) release();
  spdlog::info("leader election: term ended {} identity={} term={}", store_.describe(),
               config_.identity, guard->term());
  if (config_.on_stopped_leading) config_.on_stopped_leading();
}

}  // namespace stowage::kube
