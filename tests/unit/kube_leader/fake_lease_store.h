// An in-memory LeaseStore with resourceVersion checks, for leader election tests: one lease,
// shared by any number of electors (each one is a "process"), with injectable failures and a
// hook that runs a competing write just before an update.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "base/error.h"
#include "kube/leader_election.h"

namespace stowage::kube::testing {

class FakeLeaseStore final : public LeaseStore {
 public:
  std::optional<ObservedLease> get() override {
    std::lock_guard lock(mu_);
    ++gets_;
    if (fail_) throw Error(*fail_, "fake lease store: injected failure");
    return lease_;
  }

  ObservedLease create(const LeaseRecord& record) override {
    std::lock_guard lock(mu_);
    if (fail_) throw Error(*fail_, "fake lease store: injected failure");
    if (lease_) throw Error(Code::kAlreadyExists, "fake lease store: lease exists");
    return write_locked(record, nlohmann::json{{"metadata", {{"name", "lease"}}}});
  }

  ObservedLease update(const ObservedLease& last_read, const LeaseRecord& record) override {
    std::function<void()> hook;
    {
      std::lock_guard lock(mu_);
      hook = std::exchange(before_update_, nullptr);
    }
    if (hook) hook();
    std::lock_guard lock(mu_);
    if (fail_) throw Error(*fail_, "fake lease store: injected failure");
    if (!lease_) throw Error(Code::kNotFound, "fake lease store: no lease");
    if (last_read.resource_version != lease_->resource_version) {
      throw Error(Code::kConflict, "fake lease store: the object has been modified");
    }
    ++updates_;
    return write_locked(record, last_read.object);
  }

  std::string describe() const override { return "leases test/lease"; }

  // Another writer (or an admin) sets the record.
  void force(const LeaseRecord& record) {
    std::lock_guard lock(mu_);
    write_locked(record,
                 lease_ ? lease_->object : nlohmann::json{{"metadata", {{"name", "lease"}}}});
  }
  std::optional<LeaseRecord> record() const {
    std::lock_guard lock(mu_);
    if (!lease_) return std::nullopt;
    return lease_->record;
  }
  void fail_with(std::optional<Code> code) {
    std::lock_guard lock(mu_);
    fail_ = code;
  }
  void before_next_update(std::function<void()> hook) {
    std::lock_guard lock(mu_);
    before_update_ = std::move(hook);
  }
  int updates() const {
    std::lock_guard lock(mu_);
    return updates_;
  }

 private:
  ObservedLease write_locked(const LeaseRecord& record, nlohmann::json object) {
    object["metadata"]["resourceVersion"] = std::to_string(++rv_);
    ObservedLease lease;
    lease.object = with_lease_record(std::move(object), record);
    lease.record = lease_record_from_json(lease.object);
    lease.resource_version = std::to_string(rv_);
    lease_ = lease;
    return lease;
  }

  mutable std::mutex mu_;  // guards everything below
  std::optional<ObservedLease> lease_;
  long rv_ = 0;
  int gets_ = 0;
  int updates_ = 0;
  std::optional<Code> fail_;
  std::function<void()> before_update_;
};

}  // namespace stowage::kube::testing
