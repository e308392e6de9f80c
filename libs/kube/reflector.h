// The list/watch state machine behind an informer: a paged LIST, then a WATCH from the list's
// resourceVersion with bookmarks and a randomized timeout, resumed from the last seen version
// after every close or connection error (with backoff), and a fresh LIST that atomically replaces
// the store when the server says that version is gone (410 Expired/Gone, too-large RV).
// Usage: Reflector r(client, clock, store, {.collection = {{"", "v1", "configmaps"}, "ns"}});
// r.start(); ... r.stop(). The store's methods run on the reflector's one thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "base/backoff.h"
#include "base/clock.h"
#include "kube/client.h"
#include "kube/resource.h"

namespace stowage::kube {

// Receives what a Reflector sees. All three are called from the reflector thread only, one at a
// time; they must not throw (an exception ends nothing but is logged and the watch re-listed).
class ReflectorStore {
 public:
  virtual ~ReflectorStore() = default;
  // Each listed object as its page arrives, with apiVersion and kind set: returns what to hand
  // to replace() for it. A store that keeps less than the whole object trims here, so a LIST of
  // thousands of objects is never held whole.
  virtual nlohmann::json prepare(nlohmann::json object) { return object; }
  // The complete state as of `resource_version` (a LIST), each object as prepare() returned it:
  // replaces everything held before.
  virtual void replace(std::vector<nlohmann::json> objects,
                       const std::string& resource_version) = 0;
  // An object was added or modified.
  virtual void apply(nlohmann::json object) = 0;
  // An object was deleted (its last state).
  virtual void remove(nlohmann::json object) = 0;
};

struct ReflectorOptions {
  // The collection: gvr and namespace ("" for all namespaces or a cluster-scoped resource).
  ResourceRef collection{};
  std::string label_selector{};
  std::string field_selector{};
  bool metadata_only = false;  // PartialObjectMetadata objects (no spec, status, data)
  std::int64_t page_size = 500;
  // Each watch asks the server to end it after a random time in [min, max] (kube-rs: 290 s).
  std::chrono::seconds min_watch_timeout{240};
  std::chrono::seconds max_watch_timeout{290};
  // Between failed attempts (connection errors, 5xx, 429, 401/403, failed lists, very short
  // watches); reset once no failure happened for backoff_reset_after.
  BackoffPolicy backoff{};
  Clock::Duration backoff_reset_after = std::chrono::minutes(2);
  // A watch that ends sooner than this without any event counts as a failure.
  Clock::Duration short_watch = std::chrono::seconds(1);
  // When set, the first cycle skips the LIST and watches from this version (the store is then
  // not replaced until a 410 forces a LIST). For resuming from a known version, and for tests.
  std::optional<std::string> initial_resource_version{};
  std::string name{};                           // in log lines; default: describe(collection)
  std::uint64_t seed = std::random_device{}();  // watch timeouts and backoff jitter
};

// Counters for tests and metrics. All monotonic except resource_version.
struct ReflectorStats {
  int lists = 0;                   // completed LISTs (each one a replace())
  int watches = 0;                 // watch requests started
  int failures = 0;                // attempts that ended in backoff
  int expired = 0;                 // 410 / too-large answers that forced a relist
  std::string resource_version{};  // the last version seen ("" before the first list)
};

class Reflector {
 public:
  // `client`, `clock` and `store` are borrowed and must outlive the reflector. Throws
  // InvalidArgument for an empty collection resource, page_size < 1 or min > max timeout.
  Reflector(Client& client, Clock& clock, ReflectorStore& store, ReflectorOptions options);
  // Calls stop().
  ~Reflector();
  Reflector(const Reflector&) = delete;
  Reflector& operator=(const Reflector&) = delete;

  // Starts the reflector thread. Call once.
  void start();
  // Ends the watch (or backoff wait) and joins the thread. A LIST in flight is not interrupted
  // (it is bounded by ClientOptions::request_timeout; set ClientOptions::stop to cut it short).
  // Idempotent.
  void stop();

  // Ends the current watch and parks the thread before the next one; returns once parked (or at
  // once when not running). The version it resumes from stays as it was. Thread-safe.
  void pause();
  // Lets a paused reflector continue: it watches again from its last version.
  void resume();

  ReflectorStats stats() const;

 private:
  void run(std::stop_token stop);
  // Waits while paused; returns the token of this cycle (stopped by stop() or pause()), or
  // nullopt when the reflector is stopping.
  std::optional<std::stop_source> begin_cycle(const std::stop_token& stop);
  void list_and_replace();
  // One watch from the last version, until the server ends it. Throws on failure (Gone: the
  // version expired; Unavailable also for a very short watch without events).
  void watch_once(const std::stop_token& cycle);
  void back_off(const std::stop_token& cycle, std::optional<std::chrono::seconds> retry_after);
  void set_resource_version(std::string rv);

  Client& client_;
  Clock& clock_;
  ReflectorStore& store_;
  const ReflectorOptions options_;
  const std::string name_;
  // Only the reflector thread touches these.
  Backoff backoff_;
  std::mt19937_64 rng_;
  std::optional<Clock::TimePoint> last_failure_;
  bool need_list_;

  mutable std::mutex mu_;  // guards stats_, running_, paused_, parked_, cycle_, thread_
  std::condition_variable_any cv_;
  ReflectorStats stats_;
  bool running_ = false;
  bool paused_ = false;
  bool parked_ = false;
  std::stop_source cycle_{std::nostopstate};
  std::jthread thread_;
};

}  // namespace stowage::kube
