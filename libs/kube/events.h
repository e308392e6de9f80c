// An events.k8s.io/v1 event recorder in the manner of client-go's tools/events: record() queues
// and returns at once; a sender thread creates the Event, and an isomorphic repeat (same
// regarding object, type, reason, action, note, reporter) within six minutes of the last one
// becomes a series update (PATCH series.count / lastObservedTime) instead of a new object.
//
//   KubeEventSink sink(client);
//   EventRecorder events(sink, real_clock(), {.reporting_controller = "stowage.io/operator",
//                                             .reporting_instance = pod_name});
//   events.record(ref, EventType::kWarning, "PullFailed", "Pull", "pulling x: ...");
//
// The note is truncated to 1 kB; callers must not put credentials in it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>

#include "base/clock.h"
#include "kube/client.h"

namespace stowage::kube {

// core/v1 ObjectReference: what an event is about.
struct ObjectReference {
  std::string api_version{};  // "v1", "stowage.io/v1alpha1"
  std::string kind{};
  std::string namespace_{};  // "" for cluster-scoped objects (their events go to "default")
  std::string name{};
  std::string uid{};
  std::string resource_version{};
  std::string field_path{};

  nlohmann::json to_json() const;  // empty fields omitted
};

// The reference to `object` (apiVersion, kind, metadata namespace/name/uid/resourceVersion).
ObjectReference reference_to(const nlohmann::json& object);

enum class EventType { kNormal, kWarning };
std::string_view event_type_name(EventType type);

// What a caller reports.
struct EventInfo {
  ObjectReference regarding{};
  EventType type = EventType::kNormal;
  std::string reason{};  // CamelCase, ≤ 128
  std::string action{};  // what was done or failed, ≤ 128
  std::string note{};    // human-readable, truncated to kMaxNoteBytes
};

inline constexpr std::size_t kMaxNoteBytes = 1024;
inline constexpr std::size_t kMaxFieldBytes = 128;

// `text` cut to at most `max_bytes`, never inside a UTF-8 sequence.
std::string truncate_utf8(std::string_view text, std::size_t max_bytes);

// The new Event object (pure): name "<regarding.name>.<unix nanoseconds, hex>", namespace the
// regarding object's (or "default"), eventTime `now` as MicroTime, fields truncated.
nlohmann::json build_event(const EventInfo& info, std::string_view reporting_controller,
                           std::string_view reporting_instance, Clock::WallTime now);

// Where events go: the seam between the recorder and the API server. Errors are stowage::Error.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Creates `event` in its metadata.namespace.
  virtual void create(const nlohmann::json& event) = 0;
  // Merge-patches events/`name` in `namespace_`; kNotFound when it is gone.
  virtual void patch(const std::string& namespace_, const std::string& name,
                     const nlohmann::json& merge_patch) = 0;
};

// An EventSink on events.k8s.io/v1 through a kube::Client (borrowed; thread-safe as it is).
class KubeEventSink final : public EventSink {
 public:
  explicit KubeEventSink(Client& client) : client_(client) {}
  void create(const nlohmann::json& event) override;
  void patch(const std::string& namespace_, const std::string& name,
             const nlohmann::json& merge_patch) override;

 private:
  Client& client_;
};

struct EventRecorderOptions {
  std::string reporting_controller{};  // required: "stowage.io/operator"
  std::string reporting_instance{};    // required: the pod or node name (truncated to 128)
  std::size_t queue_capacity = 1000;   // record() drops events beyond it
  std::chrono::minutes series_window{6};
  int max_attempts = 12;  // per event, retrying retryable errors
  std::chrono::milliseconds retry_interval{1000};
};

// Thread-safe: record() may be called from any thread and never blocks on I/O. Owns its sender
// thread ("event sender"); the destructor stops it, abandoning queued events. The sink and clock
// are borrowed.
class EventRecorder {
 public:
  // Throws InvalidArgument when the reporting controller or instance is empty.
  EventRecorder(EventSink& sink, Clock& clock, EventRecorderOptions options);
  ~EventRecorder();
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;

  // Queues an event; false (and counted in dropped()) when the queue is full.
  bool record(const ObjectReference& regarding, EventType type, std::string reason,
              std::string action, std::string note);
  bool record(EventInfo info);

  // Blocks until the queue is empty and the sender idle, or `timeout` (real time) passes.
  bool flush(std::chrono::milliseconds timeout);
  std::uint64_t dropped() const;
  std::uint64_t failed() const;  // events given up after max_attempts or a non-retryable error

 private:
  struct Series {
    std::string namespace_;
    std::string name;
    std::int64_t count = 1;
    Clock::TimePoint last_observed;  // local time of the last occurrence
  };
  struct Queued {
    EventInfo info;
    Clock::WallTime wall;
    Clock::TimePoint at;
  };

  void send_loop(std::stop_token stop);
  void send(const Queued& item, std::stop_token stop);
  bool with_retries(const std::function<void()>& call, std::stop_token stop, std::string_view what);

  EventSink& sink_;
  Clock& clock_;
  const EventRecorderOptions options_;

  mutable std::mutex mu_;  // guards queue_, busy_, dropped_, failed_
  std::condition_variable_any cv_;
  std::deque<Queued> queue_;
  bool busy_ = false;
  std::uint64_t dropped_ = 0;
  std::uint64_t failed_ = 0;

  std::map<std::string, Series> series_;  // sender thread only; keyed by the isomorphism key
  std::jthread sender_;                   // last: started after everything it uses
};

}  // namespace stowage::kube
