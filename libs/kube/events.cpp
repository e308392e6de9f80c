#include "kube/events.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "base/error.h"
#include "kube/encoding.h"

namespace stowage::kube {

namespace {

const GroupVersionResource kEvents{"events.k8s.io", "v1", "events"};

std::string event_namespace(const ObjectReference& regarding) {
  return regarding.namespace_.empty() ? std::string("default") : regarding.namespace_;
}

// Events equal in everything but time are one series.
std::string isomorphism_key(const EventInfo& info) {
  const ObjectReference& r = info.regarding;
  nlohmann::json key = {r.api_version,
                        r.kind,
                        r.namespace_,
                        r.name,
                        r.uid,
                        r.field_path,
                        event_type_name(info.type),
                        info.reason,
                        info.action,
                        info.note};
  return key.dump();
}

void normalize(EventInfo& info) {
  info.reason = truncate_utf8(info.reason, kMaxFieldBytes);
  info.action = truncate_utf8(info.action, kMaxFieldBytes);
  info.note = truncate_utf8(info.note, kMaxNoteBytes);
}

}  // namespace

nlohmann::json ObjectReference::to_json() const {
  nlohmann::json out = nlohmann::json::object();
  const auto put = [&](const char* key, const std::string& value) {
    if (!value.empty()) out[key] = value;
  };
  put("apiVersion", api_version);
  put("kind", kind);
  put("namespace", namespace_);
  put("name", name);
  put("uid", uid);
  put("resourceVersion", resource_version);
  put("fieldPath", field_path);
  return out;
}

ObjectReference reference_to(const nlohmann::json& object) {
  ObjectReference ref;
  const auto str = [&](const nlohmann::json::json_pointer& p) {
    return object.value(p, std::string());
  };
  ref.api_version = str("/apiVersion"_json_pointer);
  ref.kind = str("/kind"_json_pointer);
  ref.namespace_ = str("/metadata/namespace"_json_pointer);
  ref.name = str("/metadata/name"_json_pointer);
  ref.uid = str("/metadata/uid"_json_pointer);
  ref.resource_version = str("/metadata/resourceVersion"_json_pointer);
  return ref;
}

std::string_view event_type_name(EventType type) {
  return type == EventType::kWarning ? "Warning" : "Normal";
}

std::string truncate_utf8(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  std::size_t end = max_bytes;
  // Back up over continuation bytes (10xxxxxx) to the start of the cut sequence.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

nlohmann::json build_event(const EventInfo& raw, std::string_view reporting_controller,
                           std::string_view reporting_instance, Clock::WallTime now) {
  EventInfo info = raw;
  normalize(info);
  const auto nanos =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  const std::string name = fmt::format("{}.{:x}", info.regarding.name, nanos);
  return {
      {"apiVersion", "events.k8s.io/v1"},
      {"kind", "Event"},
      {"metadata", {{"name", name}, {"namespace", event_namespace(info.regarding)}}},
      {"eventTime", format_rfc3339_micro(now)},
      {"reportingController", truncate_utf8(reporting_controller, kMaxFieldBytes)},
      {"reportingInstance", truncate_utf8(reporting_instance, kMaxFieldBytes)},
      {"action", info.action},
      {"reason", info.reason},
      {"regarding", info.regarding.to_json()},
      {"note", info.note},
      {"type", event_type_name(info.type)},
  };
}

void KubeEventSink::create(const nlohmann::json& event) {
  client_.create({kEvents, event.at("metadata").at("namespace").get<std::string>(), "", ""}, event);
}

void KubeEventSink::patch(const std::string& namespace_, const std::string& name,
                          const nlohmann::json& merge_patch) {
  client_.patch({kEvents, namespace_, name, ""}, PatchType::kMerge, merge_patch);
}

EventRecorder::EventRecorder(EventSink& sink, Clock& clock, EventRecorderOptions options)
    : sink_(sink), clock_(clock), options_(std::move(options)) {
  if (options_.reporting_controller.empty() || options_.reporting_instance.empty()) {
    throw_invalid("event recorder: reporting controller and instance are required");
  }
  sender_ = std::jthread([this](std::stop_token stop) { send_loop(std::move(stop)); });
}

EventRecorder::~EventRecorder() {
  sender_.request_stop();
  cv_.notify_all();
}

bool EventRecorder::record(const ObjectReference& regarding, EventType type, std::string reason,
                           std::string action, std::string note) {
  return record(EventInfo{regarding, type, std::move(reason), std::move(action), std::move(note)});
}

bool EventRecorder::record(EventInfo info) {
  normalize(info);  // bounds what the queue holds
  std::lock_guard lock(mu_);
  if (queue_.size() >= options_.queue_capacity) {
    ++dropped_;
    return false;
  }
  queue_.push_back({std::move(info), clock_.wall_now(), clock_.now()});
  cv_.notify_all();
  return true;
}

bool EventRecorder::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return queue_.empty() && !busy_; });
}

std::uint64_t EventRecorder::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

std::uint64_t EventRecorder::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

void EventRecorder::send_loop(std::stop_token stop) {
  while (true) {
    Queued item;
    {
      std::unique_lock lock(mu_);
      busy_ = false;
      cv_.notify_all();
      if (!cv_.wait(lock, stop, [&] { return !queue_.empty(); })) return;
      item = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    send(item, stop);
  }
}

bool EventRecorder::with_retries(const std::function<void()>& call, std::stop_token stop,
                                 std::string_view what) {
  for (int attempt = 1;; ++attempt) {
    try {
      call();
      return true;
    } catch (const Error& e) {
      if (e.code() == Code::kNotFound || e.code() == Code::kAlreadyExists) throw;
      if (!e.retryable() || attempt >= options_.max_attempts) {
        spdlog::warn("event recorder: {} failed after {} attempts code={} error={}", what, attempt,
                     code_name(e.code()), e.what());
        return false;
      }
    }
    if (!clock_.sleep_for(options_.retry_interval, stop)) return false;
  }
}

void EventRecorder::send(const Queued& item, std::stop_token stop) {
  const std::string key = isomorphism_key(item.info);
  // Forget series whose last occurrence is older than the window (client-go finishes them).
  std::erase_if(series_, [&](const auto& entry) {
    return item.at - entry.second.last_observed >= options_.series_window;
  });
  bool ok = false;
  try {
    bool create = true;
    if (auto it = series_.find(key); it != series_.end()) {
      Series& series = it->second;
      const nlohmann::json patch = {
          {"series",
           {{"count", series.count + 1}, {"lastObservedTime", format_rfc3339_micro(item.wall)}}}};
      try {
        create = false;
        ok = with_retries([&] { sink_.patch(series.namespace_, series.name, patch); }, stop,
                          fmt::format("updating event {}/{}", series.namespace_, series.name));
        if (ok) {
          ++series.count;
          series.last_observed = item.at;
        }
      } catch (const Error&) {
        series_.erase(it);  // the event is gone (NotFound): start a new one
        create = true;
      }
    }
    if (create) {
      const nlohmann::json event = build_event(item.info, options_.reporting_controller,
                                               options_.reporting_instance, item.wall);
      const std::string ns = event["metadata"]["namespace"];
      const std::string name = event["metadata"]["name"];
      ok = with_retries([&] { sink_.create(event); }, stop,
                        fmt::format("creating event {}/{}", ns, name));
      if (ok) series_[key] = Series{ns, name, 1, item.at};
    }
  } catch (const Error& e) {
    spdlog::warn("event recorder: sending event failed code={} error={}", code_name(e.code()),
                 e.what());
    ok = false;
  }
  if (!ok) {
    std::lock_guard lock(mu_);
    ++failed_;
  }
}

}  // namespace stowage::kube
