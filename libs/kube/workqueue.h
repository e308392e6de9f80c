// The work queue between watch events and reconcile workers, with client-go's guarantees: fair
// FIFO; stingy (an item is never handed out twice at once, several adds before a get yield one
// get, an item added while being processed is handed out again after done()); delayed adds; and
// per-item rate-limited requeues. Items are object keys ("ns/name"). Time comes from the injected
// Clock, so delays and rate limits run under FakeClock in tests.
// Usage: producers add(key); each worker loops `while (auto k = q.get(stop)) { ...; q.done(*k); }`.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"

namespace stowage::kube {

// Per-item exponential backoff: the n-th consecutive failure of an item (from 0) waits
// base·2ⁿ, capped at max. Plain class; not thread-safe.
class ItemExponentialBackoff {
 public:
  ItemExponentialBackoff(Clock::Duration base, Clock::Duration max);

  // The delay for this failure of `item`; counts it.
  Clock::Duration when(const std::string& item);
  // Forgets the failures of `item`: its next delay is `base` again.
  void forget(const std::string& item);
  int failures(const std::string& item) const;

 private:
  Clock::Duration base_, max_;
  std::unordered_map<std::string, int> failures_;
};

// A token bucket shared by all items (golang.org/x/time/rate semantics): holds up to `burst`
// tokens, refills at `qps`; each reservation takes one token, going into debt when empty, and
// returns how long the caller must wait for its token. Plain class; not thread-safe.
class TokenBucket {
 public:
  TokenBucket(double qps, int burst, Clock::TimePoint start);

  Clock::Duration reserve(Clock::TimePoint now);

 private:
  double qps_;
  double burst_;
  double tokens_;
  Clock::TimePoint last_;
};

struct RequeueRateLimit {
  Clock::Duration base_delay = std::chrono::milliseconds(5);
  Clock::Duration max_delay = std::chrono::seconds(1000);
  // Overall bucket; qps <= 0 turns it off (per-item backoff only).
  double qps = 10.0;
  int burst = 100;
};

// client-go's default controller rate limiter: the larger of the per-item exponential backoff and
// the overall token bucket (both consulted on every call). Not thread-safe.
class RequeueRateLimiter {
 public:
  RequeueRateLimiter(const RequeueRateLimit& options, Clock::TimePoint start);

  Clock::Duration when(const std::string& item, Clock::TimePoint now);
  void forget(const std::string& item) { per_item_.forget(item); }
  int num_requeues(const std::string& item) const { return per_item_.failures(item); }

 private:
  ItemExponentialBackoff per_item_;
  std::optional<TokenBucket> bucket_;
};

struct WorkQueueOptions {
  RequeueRateLimit rate_limit;
  // When set, kept equal to the number of items ready to be handed out (len()).
  Gauge* depth = nullptr;
};

class WorkQueue {
 public:
  // `clock` must outlive the queue. Throws InvalidArgument for unusable rate-limit options.
  explicit WorkQueue(Clock& clock, WorkQueueOptions options = {});
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // All methods are thread-safe.

  // Queues `item` unless it is already queued; if it is being processed it is queued again when
  // done() is called. Ignored after shut_down().
  void add(const std::string& item);
  // Adds `item` once `delay` has passed (at once if delay <= 0). If the item is already waiting,
  // the earlier of the two ready times is kept. Ignored after shut_down().
  void add_after(const std::string& item, Clock::Duration delay);
  // add_after(item, rate limiter delay): counts a failure of `item`.
  void add_rate_limited(const std::string& item);
  // Resets the failure count of `item` (after a success).
  void forget(const std::string& item);
  // How many times `item` was rate-limited since it was last forgotten.
  int num_requeues(const std::string& item);

  // Blocks until an item is ready and returns it, marking it as being processed; the caller must
  // call done(item) when finished. Returns nullopt at once when `stop` is requested, and when the
  // queue is shut down and holds no ready item (items queued before shut_down are still handed
  // out, so a worker pool can drain them).
  std::optional<std::string> get(const std::stop_token& stop);
  // get() without blocking: nullopt when no item is ready.
  std::optional<std::string> try_get();
  // Marks `item` as processed; queues it again if it was added meanwhile.
  void done(const std::string& item);

  // Stops accepting adds, drops delayed items not yet ready and wakes every blocked get().
  void shut_down();
  // shut_down(), then waits until no item is being processed or until `deadline` (on the clock);
  // returns whether processing finished in time.
  bool shut_down_with_drain(Clock::TimePoint deadline);
  bool shutting_down();

  // Number of items ready to be handed out.
  std::size_t len();
  // Number of items waiting for their delay to pass.
  std::size_t waiting();
  // When the earliest waiting item becomes ready; nullopt when none waits.
  std::optional<Clock::TimePoint> next_ready();

 private:
  // A thread blocked on the clock until its deadline or until another thread wakes it.
  struct Sleeper {
    std::stop_source wake;
    bool listed = true;  // still in its list (guarded by mu_)
  };
  struct Delayed {
    Clock::TimePoint ready;
    std::uint64_t seq = 0;  // insertion order among equal ready times; identifies the entry
    std::string item;
  };
  struct Waiting {
    Clock::TimePoint ready;
    std::uint64_t seq = 0;
  };

  void add_locked(const std::string& item);
  void add_after_locked(const std::string& item, Clock::Duration delay);
  void enqueue_locked(const std::string& item);
  std::string pop_locked();
  void promote_ready_locked();
  void drop_stale_top_locked();
  void compact_heap_locked();
  void shut_down_locked();
  void publish_depth_locked();
  void sleep_locked(std::unique_lock<std::mutex>& lock, std::list<Sleeper*>& sleepers,
                    Clock::TimePoint deadline, const std::stop_token& stop);
  static void wake_one(std::list<Sleeper*>& sleepers);
  static void wake_all(std::list<Sleeper*>& sleepers);

  Clock& clock_;
  Gauge* depth_;

  std::mutex mu_;                               // guards everything below
  std::deque<std::string> queue_;               // ready items, FIFO
  std::unordered_set<std::string> dirty_;       // items that need processing
  std::unordered_set<std::string> processing_;  // items handed out, not yet done()
  std::vector<Delayed> heap_;                   // min-heap on (ready, seq); may hold stale entries
  std::unordered_map<std::string, Waiting> waiting_;  // item -> its live heap entry
  std::size_t stale_ = 0;                             // heap entries no longer live
  std::uint64_t next_seq_ = 0;
  RequeueRateLimiter limiter_;
  bool shutting_down_ = false;
  std::list<Sleeper*> getters_;   // threads blocked in get()
  std::list<Sleeper*> drainers_;  // threads blocked in shut_down_with_drain()
};

}  // namespace stowage::kube
