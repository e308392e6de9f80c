#include "kube/controller.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <utility>

#include "base/error.h"

namespace stowage::kube {

ControllerMetrics::ControllerMetrics(MetricsRegistry& registry)
    : reconciles(registry.counter("stowage_controller_reconciles_total",
                                  "Reconciles run, by controller and result.",
                                  {"controller", "result"})),
      errors(registry.counter("stowage_controller_reconcile_errors_total",
                              "Reconciles that failed and were requeued with backoff.",
                              {"controller"})),
      depth(registry.gauge("stowage_workqueue_depth", "Keys ready to be reconciled, by queue.",
                           {"name"})) {}

Controller::Controller(Clock& clock, Reconciler reconcile, ControllerOptions options)
    : clock_(clock), reconcile_(std::move(reconcile)), options_(std::move(options)) {
  if (options_.workers < 1 || options_.workers > kMaxControllerWorkers) {
    throw_invalid("controller " + options_.name + ": workers must be 1.." +
                  std::to_string(kMaxControllerWorkers) + ", not " +
                  std::to_string(options_.workers));
  }
  if (!reconcile_) {
    throw_invalid("controller " + options_.name + ": no reconciler");
  }
  if (options_.metrics != nullptr) {
    const ControllerMetrics& m = *options_.metrics;
    reconciles_success_ = &m.reconciles.with({options_.name, "success"});
    reconciles_requeue_ = &m.reconciles.with({options_.name, "requeue_after"});
    reconciles_error_ = &m.reconciles.with({options_.name, "error"});
    errors_ = &m.errors.with({options_.name});
    options_.queue.depth = &m.depth.with({options_.name});
  }
  queue_ = std::make_unique<WorkQueue>(clock_, options_.queue);
}

Controller::~Controller() {
  stop();
  std::lock_guard lock(mu_);
  workers_.clear();  // joins; blocks only if a reconcile outlived stop()'s grace period
}

void Controller::start() {
  std::lock_guard lock(mu_);
  if (started_) {
    throw_internal("controller " + options_.name + ": started twice");
  }
  started_ = true;
  workers_.reserve(static_cast<std::size_t>(options_.workers));
  for (int i = 0; i < options_.workers; ++i) {
    workers_.emplace_back([this](const std::stop_token& stop) { work(stop); });
  }
}

bool Controller::stop() {
  {
    std::lock_guard lock(mu_);
    for (auto& worker : workers_) {
      worker.request_stop();
    }
  }
  if (!queue_->shut_down_with_drain(clock_.now() + options_.stop_grace)) {
    spdlog::warn("controller stop: reconciles still running after the grace period controller={}",
                 options_.name);
    return false;
  }
  std::lock_guard lock(mu_);
  workers_.clear();  // joins: every worker is idle or leaving
  return true;
}

void Controller::work(const std::stop_token& stop) {
  while (const auto key = queue_->get(stop)) {
    reconcile_one(*key);
  }
}

void Controller::reconcile_one(const std::string& key) {
  std::optional<Action> action;
  try {
    action = reconcile_(key);
  } catch (const Error& e) {
    queue_->add_rate_limited(key);
    spdlog::warn("reconcile failed controller={} key={} code={} requeues={} error={}",
                 options_.name, key, code_name(e.code()), queue_->num_requeues(key), e.what());
  } catch (const std::exception& e) {
    queue_->add_rate_limited(key);
    spdlog::warn("reconcile failed controller={} key={} code=Internal requeues={} error={}",
                 options_.name, key, queue_->num_requeues(key), e.what());
  } catch (...) {
    queue_->add_rate_limited(key);
    spdlog::warn(
        "reconcile failed controller={} key={} code=Internal requeues={} error=unknown exception",
        options_.name, key, queue_->num_requeues(key));
  }

  ReconcileResult result = ReconcileResult::kError;
  if (action) {
    queue_->forget(key);
    if (const auto& delay = action->requeue_delay()) {
      queue_->add_after(key, *delay);
      result = ReconcileResult::kRequeueAfter;
    } else {
      result = ReconcileResult::kSuccess;
    }
  }
  count(result);
  queue_->done(key);
  if (options_.after_reconcile) {
    options_.after_reconcile(key, result);
  }
}

void Controller::count(ReconcileResult result) {
  if (options_.metrics == nullptr) {
    return;
  }
  switch (result) {
    case ReconcileResult::kSuccess: reconciles_success_->inc(); break;
    case ReconcileResult::kRequeueAfter: reconciles_requeue_->inc(); break;
    case ReconcileResult::kError:
      reconciles_error_->inc();
      errors_->inc();
      break;
  }
}

}  // namespace stowage::kube
