#include "kube/workqueue.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "base/error.h"

namespace stowage::kube {
namespace {

// Idle get() calls wake at least this often; a safety net, not needed for correctness.
constexpr Clock::Duration kHeartbeat = std::chrono::seconds(10);
// Stale heap entries are swept when they are this many and outnumber the live ones.
constexpr std::size_t kCompactMinStale = 64;

// Heap order for std::push_heap (a max-heap): "a comes after b".
constexpr auto kLater = [](const auto& a, const auto& b) {
  return a.ready != b.ready ? a.ready > b.ready : a.seq > b.seq;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Rate limiters

ItemExponentialBackoff::ItemExponentialBackoff(Clock::Duration base, Clock::Duration max)
    : base_(base), max_(max) {}

Clock::Duration ItemExponentialBackoff::when(const std::string& item) {
  int& count = failures_[item];
  const int exponent = count;
  if (count < std::numeric_limits<int>::max()) {
    ++count;
  }
  const double delay =
      static_cast<double>(base_.count()) * std::ldexp(1.0, std::min(exponent, 1023));
  if (delay >= static_cast<double>(max_.count())) {
    return max_;
  }
  return Clock::Duration(static_cast<Clock::Duration::rep>(delay));
}

void ItemExponentialBackoff::forget(const std::string& item) {
  failures_.erase(item);
}

int ItemExponentialBackoff::failures(const std::string& item) const {
  const auto it = failures_.find(item);
  return it == failures_.end() ? 0 : it->second;
}

TokenBucket::TokenBucket(double qps, int burst, Clock::TimePoint start)
    : qps_(qps), burst_(burst), tokens_(burst), last_(start) {}

Clock::Duration TokenBucket::reserve(Clock::TimePoint now) {
  if (now > last_) {
    const double elapsed_ns = static_cast<double>((now - last_).count());
    tokens_ = std::min(burst_, tokens_ + elapsed_ns * qps_ / 1e9);
    last_ = now;
  }
  tokens_ -= 1.0;
  if (tokens_ >= 0.0) {
    return Clock::Duration::zero();
  }
  const double wait_ns = -tokens_ * 1e9 / qps_;
  if (wait_ns >= static_cast<double>(Clock::Duration::max().count())) {
    return Clock::Duration::max();
  }
  return Clock::Duration(std::llround(wait_ns));
}

RequeueRateLimiter::RequeueRateLimiter(const RequeueRateLimit& options, Clock::TimePoint start)
    : per_item_(options.base_delay, options.max_delay) {
  if (options.base_delay < Clock::Duration::zero() || options.max_delay < options.base_delay) {
    throw_invalid("work queue rate limit: need 0 <= base_delay <= max_delay");
  }
  if (options.qps > 0.0) {
    if (options.burst < 1 || !std::isfinite(options.qps)) {
      throw_invalid("work queue rate limit: the token bucket needs a finite qps and burst >= 1");
    }
    bucket_.emplace(options.qps, options.burst, start);
  }
}

Clock::Duration RequeueRateLimiter::when(const std::string& item, Clock::TimePoint now) {
  const Clock::Duration per_item = per_item_.when(item);
  const Clock::Duration overall = bucket_ ? bucket_->reserve(now) : Clock::Duration::zero();
  return std::max(per_item, overall);
}

// ---------------------------------------------------------------------------------------------
// WorkQueue

WorkQueue::WorkQueue(Clock& clock, WorkQueueOptions options)
    : clock_(clock), depth_(options.depth), limiter_(options.rate_limit, clock.now()) {
  publish_depth_locked();  // no other thread can see the queue yet
}

void WorkQueue::add(const std::string& item) {
  std::lock_guard lock(mu_);
  if (shutting_down_) {
    return;
  }
  add_locked(item);
}

void WorkQueue::add_after(const std::string& item, Clock::Duration delay) {
  std::lock_guard lock(mu_);
  if (shutting_down_) {
    return;
  }
  add_after_locked(item, delay);
}

void WorkQueue::add_rate_limited(const std::string& item) {
  std::lock_guard lock(mu_);
  if (shutting_down_) {
    return;
  }
  add_after_locked(item, limiter_.when(item, clock_.now()));
}

void WorkQueue::add_after_locked(const std::string& item, Clock::Duration delay) {
  if (delay <= Clock::Duration::zero()) {
    add_locked(item);
    return;
  }
  const Clock::TimePoint now = clock_.now();
  const Clock::TimePoint ready =
      delay >= Clock::TimePoint::max() - now ? Clock::TimePoint::max() : now + delay;
  const auto it = waiting_.find(item);
  if (it != waiting_.end()) {
    if (it->second.ready <= ready) {
      return;  // the earlier ready time wins
    }
    ++stale_;  // its heap entry is superseded by the one below
  }
  const std::uint64_t seq = next_seq_++;
  waiting_[item] = Waiting{ready, seq};
  heap_.push_back(Delayed{ready, seq, item});
  std::push_heap(heap_.begin(), heap_.end(), kLater);
  drop_stale_top_locked();
  if (heap_.front().seq == seq) {
    wake_one(getters_);  // a new earliest deadline for sleepers
  }
  compact_heap_locked();
}

void WorkQueue::forget(const std::string& item) {
  std::lock_guard lock(mu_);
  limiter_.forget(item);
}

int WorkQueue::num_requeues(const std::string& item) {
  std::lock_guard lock(mu_);
  return limiter_.num_requeues(item);
}

std::optional<std::string> WorkQueue::get(const std::stop_token& stop) {
  std::unique_lock lock(mu_);
  while (!stop.stop_requested()) {
    promote_ready_locked();
    if (!queue_.empty()) {
      return pop_locked();
    }
    if (shutting_down_) {
      break;
    }
    Clock::TimePoint deadline = clock_.now() + kHeartbeat;
    if (!heap_.empty()) {
      deadline = std::min(deadline, heap_.front().ready);
    }
    sleep_locked(lock, getters_, deadline, stop);
  }
  // Leaving without an item: a wake-up meant for a getter may have landed here; pass it on.
  if (!queue_.empty() || !heap_.empty()) {
    wake_one(getters_);
  }
  return std::nullopt;
}

std::optional<std::string> WorkQueue::try_get() {
  std::lock_guard lock(mu_);
  promote_ready_locked();
  if (queue_.empty()) {
    return std::nullopt;
  }
  return pop_locked();
}

void WorkQueue::done(const std::string& item) {
  std::lock_guard lock(mu_);
  if (processing_.erase(item) == 0) {
    return;
  }
  if (dirty_.contains(item)) {
    enqueue_locked(item);
  }
  if (processing_.empty()) {
    wake_all(drainers_);
  }
}

void WorkQueue::shut_down() {
  std::lock_guard lock(mu_);
  shut_down_locked();
}

bool WorkQueue::shut_down_with_drain(Clock::TimePoint deadline) {
  std::unique_lock lock(mu_);
  shut_down_locked();
  while (!processing_.empty()) {
    if (clock_.now() >= deadline) {
      return false;
    }
    sleep_locked(lock, drainers_, deadline, std::stop_token());
  }
  return true;
}

bool WorkQueue::shutting_down() {
  std::lock_guard lock(mu_);
  return shutting_down_;
}

std::size_t WorkQueue::len() {
  std::lock_guard lock(mu_);
  promote_ready_locked();
  return queue_.size();
}

std::size_t WorkQueue::waiting() {
  std::lock_guard lock(mu_);
  promote_ready_locked();
  return waiting_.size();
}

std::optional<Clock::TimePoint> WorkQueue::next_ready() {
  std::lock_guard lock(mu_);
  promote_ready_locked();
  if (heap_.empty()) {
    return std::nullopt;
  }
  return heap_.front().ready;
}

void WorkQueue::add_locked(const std::string& item) {
  if (!dirty_.insert(item).second) {
    return;  // already queued or to be queued at done()
  }
  if (processing_.contains(item)) {
    return;
  }
  enqueue_locked(item);
}

void WorkQueue::enqueue_locked(const std::string& item) {
  queue_.push_back(item);
  publish_depth_locked();
  wake_one(getters_);
}

std::string WorkQueue::pop_locked() {
  std::string item = std::move(queue_.front());
  queue_.pop_front();
  dirty_.erase(item);
  processing_.insert(item);
  publish_depth_locked();
  return item;
}

void WorkQueue::promote_ready_locked() {
  if (heap_.empty()) {
    return;
  }
  const Clock::TimePoint now = clock_.now();
  while (!heap_.empty() && heap_.front().ready <= now) {
    std::pop_heap(heap_.begin(), heap_.end(), kLater);
    Delayed entry = std::move(heap_.back());
    heap_.pop_back();
    const auto it = waiting_.find(entry.item);
    if (it != waiting_.end() && it->second.seq == entry.seq) {
      waiting_.erase(it);
      add_locked(entry.item);
    } else {
      --stale_;
    }
  }
  drop_stale_top_locked();
}

// Keeps the heap's top live, so heap_.front().ready is the next real deadline.
void WorkQueue::drop_stale_top_locked() {
  while (!heap_.empty()) {
    const Delayed& top = heap_.front();
    const auto it = waiting_.find(top.item);
    if (it != waiting_.end() && it->second.seq == top.seq) {
      return;
    }
    std::pop_heap(heap_.begin(), heap_.end(), kLater);
    heap_.pop_back();
    --stale_;
  }
}

// Re-adding earlier leaves stale entries behind; sweep them before they outnumber live ones.
void WorkQueue::compact_heap_locked() {
  if (stale_ < kCompactMinStale || stale_ <= heap_.size() / 2) {
    return;
  }
  std::erase_if(heap_, [&](const Delayed& d) {
    const auto it = waiting_.find(d.item);
    return it == waiting_.end() || it->second.seq != d.seq;
  });
  std::make_heap(heap_.begin(), heap_.end(), kLater);
  stale_ = 0;
}

void WorkQueue::shut_down_locked() {
  if (!shutting_down_) {
    shutting_down_ = true;
    heap_.clear();
    waiting_.clear();
    stale_ = 0;
  }
  wake_all(getters_);
}

void WorkQueue::publish_depth_locked() {
  if (depth_ != nullptr) {
    depth_->set(static_cast<double>(queue_.size()));
  }
}

void WorkQueue::sleep_locked(std::unique_lock<std::mutex>& lock, std::list<Sleeper*>& sleepers,
                             Clock::TimePoint deadline, const std::stop_token& stop) {
  Sleeper self;
  const auto it = sleepers.insert(sleepers.end(), &self);
  lock.unlock();
  {
    std::stop_callback forward(stop, [&self] { self.wake.request_stop(); });
    clock_.sleep_until(deadline, self.wake.get_token());
  }
  lock.lock();
  if (self.listed) {
    sleepers.erase(it);
  }
}

void WorkQueue::wake_one(std::list<Sleeper*>& sleepers) {
  while (!sleepers.empty()) {
    Sleeper* s = sleepers.front();
    sleepers.pop_front();
    s->listed = false;
    if (s->wake.request_stop()) {
      return;  // else it was already awake (stopped); try the next
    }
  }
}

void WorkQueue::wake_all(std::list<Sleeper*>& sleepers) {
  for (Sleeper* s : sleepers) {
    s->listed = false;
    s->wake.request_stop();
  }
  sleepers.clear();
}

}  // namespace stowage::kube
