// Runs a reconciler over a WorkQueue of object keys with N worker threads. The reconciler returns
// an Action (requeue after a delay, or wait for the next change); a thrown exception requeues the
// key with per-key exponential backoff. The queue guarantees one key is never reconciled twice at
// once. Usage: Controller c(clock, reconcile, {.name = "nodecache", .workers = 4});
// c.start(); event handlers call c.queue().add(key); on SIGTERM c.stop().
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "kube/workqueue.h"

namespace stowage::kube {

// What a reconcile asks for next.
class Action {
 public:
  // Reconcile this key again after `delay` (resets its failure backoff).
  static Action requeue_after(Clock::Duration delay) { return Action(delay); }
  // Nothing more until the key is added again (a watch event).
  static Action await_change() { return Action(std::nullopt); }

  const std::optional<Clock::Duration>& requeue_delay() const { return delay_; }

 private:
  explicit Action(std::optional<Clock::Duration> delay) : delay_(delay) {}
  std::optional<Clock::Duration> delay_;
};

// Reconciles the object named by `key` ("ns/name"); throws on failure (stowage::Error or any
// std::exception). Runs on worker threads, several keys at once, never one key twice at once.
using Reconciler = std::function<Action(const std::string& key)>;

enum class ReconcileResult { kSuccess, kRequeueAfter, kError };

// The metric families of every controller of a process, registered once in one registry:
//   stowage_controller_reconciles_total{controller, result="success|requeue_after|error"}
//   stowage_controller_reconcile_errors_total{controller}
//   stowage_workqueue_depth{name}
struct ControllerMetrics {
  explicit ControllerMetrics(MetricsRegistry& registry);

  Family<Counter>& reconciles;
  Family<Counter>& errors;
  Family<Gauge>& depth;
};

inline constexpr int kMaxControllerWorkers = 64;

struct ControllerOptions {
  std::string name = "controller";  // in log lines and metric labels
  int workers = 1;                  // 1..kMaxControllerWorkers
  // How long stop() waits for in-flight reconciles.
  Clock::Duration stop_grace = std::chrono::seconds(30);
  WorkQueueOptions queue;  // its `depth` is set from `metrics` when given
  const ControllerMetrics* metrics = nullptr;
  // Called on the worker after each reconcile, once the queue reflects its outcome. For tests
  // and instrumentation; must be thread-safe and must not throw.
  std::function<void(const std::string& key, ReconcileResult result)> after_reconcile;
};

class Controller {
 public:
  // `clock` (and `options.metrics`) must outlive the controller. Throws InvalidArgument for a
  // worker count outside 1..kMaxControllerWorkers.
  Controller(Clock& clock, Reconciler reconcile, ControllerOptions options);
  // Calls stop(). If a reconcile outlived the grace period it waits for it to return.
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Starts the workers. Call once.
  void start();

  // Stops taking keys from the queue (idle workers exit at once, keys still queued are dropped),
  // shuts the queue down and waits up to stop_grace for in-flight reconciles to finish. Returns
  // true when they did (the workers have then exited); false when one is still running.
  // Idempotent; thread-safe.
  bool stop();

  // The queue to add keys to. Thread-safe.
  WorkQueue& queue() { return *queue_; }
  const std::string& name() const { return options_.name; }

 private:
  void work(const std::stop_token& stop);
  void reconcile_one(const std::string& key);
  void count(ReconcileResult result);

  Clock& clock_;
  Reconciler reconcile_;
  ControllerOptions options_;
  Counter* reconciles_success_ = nullptr;
  Counter* reconciles_requeue_ = nullptr;
  Counter* reconciles_error_ = nullptr;
  Counter* errors_ = nullptr;
  std::unique_ptr<WorkQueue> queue_;

  std::mutex mu_;                      // guards workers_, started_
  std::vector<std::jthread> workers_;  // reconcile workers
  bool started_ = false;
};

}  // namespace stowage::kube
