#include "kube/reflector.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <utility>

#include "base/error.h"
#include "kube/errors.h"
#include "kube/watch_framer.h"

namespace stowage::kube {

using nlohmann::json;

namespace {

std::string default_name(const ReflectorOptions& o) {
  std::string name = describe(o.collection);
  if (!o.label_selector.empty()) name += " labels=" + o.label_selector;
  if (!o.field_selector.empty()) name += " fields=" + o.field_selector;
  return name;
}

std::string object_resource_version(const json& object) {
  if (const auto m = object.find("metadata"); m != object.end() && m->is_object()) {
    if (const auto rv = m->find("resourceVersion"); rv != m->end() && rv->is_string()) {
      return *rv;
    }
  }
  return {};
}

long long millis(Clock::Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

Reflector::Reflector(Client& client, Clock& clock, ReflectorStore& store, ReflectorOptions options)
    : client_(client),
      clock_(clock),
      store_(store),
      options_(std::move(options)),
      name_(options_.name.empty() ? default_name(options_) : options_.name),
      backoff_(options_.backoff, options_.seed),
      rng_(options_.seed ^ 0x9e3779b97f4a7c15ULL),
      need_list_(!options_.initial_resource_version.has_value()) {
  if (options_.collection.gvr.resource.empty() || options_.collection.gvr.version.empty()) {
    throw_invalid("reflector: the collection has no resource or version");
  }
  if (options_.page_size < 1) {
    throw_invalid(fmt::format("reflector {}: page_size must be positive", name_));
  }
  if (options_.min_watch_timeout.count() < 1 ||
      options_.min_watch_timeout > options_.max_watch_timeout) {
    throw_invalid(fmt::format("reflector {}: watch timeouts must satisfy 1 <= min <= max", name_));
  }
  if (options_.initial_resource_version) {
    stats_.resource_version = *options_.initial_resource_version;
  }
}

Reflector::~Reflector() {
  stop();
}

void Reflector::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) throw_internal(fmt::format("reflector {}: started twice", name_));
  running_ = true;
  thread_ = std::jthread([this](std::stop_token stop) { run(std::move(stop)); });
}

void Reflector::stop() {
  std::jthread thread;
  {
    std::lock_guard lock(mu_);
    thread = std::move(thread_);
  }
  if (thread.joinable()) {
    thread.request_stop();
    thread.join();
  }
}

void Reflector::pause() {
  std::unique_lock lock(mu_);
  paused_ = true;
  if (cycle_.stop_possible()) cycle_.request_stop();
  cv_.wait(lock, [&] { return parked_ || !running_; });
}

void Reflector::resume() {
  std::lock_guard lock(mu_);
  paused_ = false;
  cv_.notify_all();
}

ReflectorStats Reflector::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Reflector::set_resource_version(std::string rv) {
  std::lock_guard lock(mu_);
  stats_.resource_version = std::move(rv);
}

std::optional<std::stop_source> Reflector::begin_cycle(const std::stop_token& stop) {
  std::unique_lock lock(mu_);
  if (paused_) {
    parked_ = true;
    cv_.notify_all();
    cv_.wait(lock, stop, [&] { return !paused_; });
    parked_ = false;
  }
  if (stop.stop_requested()) return std::nullopt;
  cycle_ = std::stop_source();
  return cycle_;
}

void Reflector::run(std::stop_token stop) {
  int expired_in_a_row = 0;
  while (!stop.stop_requested()) {
    std::optional<std::stop_source> source = begin_cycle(stop);
    if (!source) break;
    const std::stop_callback forward(stop, [s = *source]() mutable { s.request_stop(); });
    const std::stop_token cycle = source->get_token();
    const bool listing = need_list_;
    try {
      if (listing) {
        list_and_replace();
      } else {
        watch_once(cycle);
        expired_in_a_row = 0;  // the version was accepted
      }
    } catch (const std::exception& e) {
      if (cycle.stop_requested()) continue;  // stop() or pause() cut the call short
      const auto* error = dynamic_cast<const Error*>(&e);
      const auto* kube_error = dynamic_cast<const KubeError*>(&e);
      const Code code = error != nullptr ? error->code() : Code::kInternal;
      if (code == Code::kGone) {
        // The version is gone from history (or not yet known): only a new LIST can resync.
        need_list_ = true;
        {
          std::lock_guard lock(mu_);
          ++stats_.expired;
        }
        spdlog::info("reflector relisting name={} reason=\"{}\"", name_, e.what());
        // A relist that is at once expired again must not spin: back off from the second one.
        if (!listing && ++expired_in_a_row < 2) continue;
      } else if (code == Code::kUnauthenticated || code == Code::kPermissionDenied) {
        spdlog::error(
            "reflector not allowed to list/watch, check the credentials and RBAC name={} "
            "error=\"{}\"",
            name_, e.what());
      } else {
        spdlog::warn("reflector {} failed name={} error=\"{}\"", listing ? "list" : "watch", name_,
                     e.what());
      }
      // A broken stream or a store failure may have lost an event: resync by listing. Errors of
      // the connection or the server keep the version and watch again from it.
      if (code == Code::kDataLoss || code == Code::kInternal) need_list_ = true;
      {
        std::lock_guard lock(mu_);
        ++stats_.failures;
      }
      back_off(cycle, kube_error != nullptr ? kube_error->retry_after() : std::nullopt);
    }
  }
  std::lock_guard lock(mu_);
  running_ = false;
  parked_ = false;
  cv_.notify_all();
}

void Reflector::back_off(const std::stop_token& cycle,
                         std::optional<std::chrono::seconds> retry_after) {
  const Clock::TimePoint now = clock_.now();
  if (last_failure_ && now - *last_failure_ >= options_.backoff_reset_after) backoff_.reset();
  last_failure_ = now;
  Clock::Duration delay = backoff_.next();
  if (retry_after && *retry_after > delay) delay = *retry_after;
  spdlog::debug("reflector backing off name={} delay_ms={}", name_, millis(delay));
  clock_.sleep_for(delay, cycle);
}

void Reflector::list_and_replace() {
  ListOptions options;
  options.label_selector = options_.label_selector;
  options.field_selector = options_.field_selector;
  options.metadata_only = options_.metadata_only;
  // resourceVersion unset: a consistent read of the latest state. "0" would let a watch cache
  // (possibly one that is behind, e.g. a restarted apiserver) answer, and a relist after 410
  // must never go back in time.
  std::vector<json> items;
  std::string rv;
  client_.list_pages(options_.collection, options, options_.page_size, [&](json& page) {
    if (const auto m = page.find("metadata"); m != page.end() && m->is_object()) {
      if (const auto v = m->find("resourceVersion"); v != m->end() && v->is_string()) rv = *v;
    }
    std::string item_kind;
    const std::string kind = page.value("kind", "");
    if (kind.size() > 4 && kind.ends_with("List")) item_kind = kind.substr(0, kind.size() - 4);
    const std::string item_api_version = page.value("apiVersion", "");
    const auto it = page.find("items");
    if (it == page.end() || !it->is_array()) return;
    for (auto& item : *it) {
      if (!item.is_object()) {
        throw Error(Code::kDataLoss, fmt::format("list {}: an item is not an object", name_));
      }
      // List items carry no apiVersion/kind; watch events do. Make cached objects look alike.
      if (!item_kind.empty() && !item.contains("kind")) {
        item["kind"] = item_kind;
        item["apiVersion"] = item_api_version;
      }
      items.push_back(store_.prepare(std::move(item)));
    }
  });
  if (rv.empty()) {
    throw Error(Code::kDataLoss,
                fmt::format("list {}: the answer has no metadata.resourceVersion", name_));
  }
  const std::size_t count = items.size();
  store_.replace(std::move(items), rv);
  need_list_ = false;
  {
    std::lock_guard lock(mu_);
    ++stats_.lists;
    stats_.resource_version = rv;
  }
  spdlog::info("reflector listed name={} objects={} resource_version={}", name_, count, rv);
}

void Reflector::watch_once(const std::stop_token& cycle) {
  ListOptions options;
  options.label_selector = options_.label_selector;
  options.field_selector = options_.field_selector;
  options.metadata_only = options_.metadata_only;
  options.allow_watch_bookmarks = true;
  options.timeout_seconds = std::uniform_int_distribution<std::int64_t>(
      options_.min_watch_timeout.count(), options_.max_watch_timeout.count())(rng_);
  {
    std::lock_guard lock(mu_);
    options.resource_version = stats_.resource_version;
    ++stats_.watches;
  }
  const std::string context = "watch " + name_;

  WatchFramer framer;
  std::exception_ptr failure;
  int events = 0;
  const auto sink = [&](WatchEvent&& event) {
    if (failure) return;
    try {
      if (event.type == WatchEventType::kError) {
        const std::optional<ApiStatus> status = parse_status(event.object);
        if (!status) {
          throw Error(Code::kDataLoss, context + ": an ERROR event without a Status");
        }
        throw error_from_status(*status, context);
      }
      std::string rv = object_resource_version(event.object);
      if (rv.empty()) {
        throw Error(Code::kDataLoss, fmt::format("{}: a {} event without metadata.resourceVersion",
                                                 context, watch_event_type_name(event.type)));
      }
      ++events;
      switch (event.type) {
        case WatchEventType::kAdded:
        case WatchEventType::kModified: store_.apply(std::move(event.object)); break;
        case WatchEventType::kDeleted: store_.remove(std::move(event.object)); break;
        case WatchEventType::kBookmark:
        case WatchEventType::kError: break;
      }
      set_resource_version(std::move(rv));
    } catch (...) {
      failure = std::current_exception();
    }
  };

  const Clock::TimePoint started = clock_.now();
  client_.watch(
      options_.collection, options,
      [&](std::string_view chunk) {
        framer.feed(chunk, sink);
        return !failure;
      },
      cycle);
  if (failure) std::rethrow_exception(failure);
  if (cycle.stop_requested()) return;
  framer.finish();
  const Clock::Duration lasted = clock_.now() - started;
  if (events == 0 && lasted < options_.short_watch) {
    throw Error(Code::kUnavailable, fmt::format("{}: the server closed the watch after {} ms "
                                                "without any event",
                                                context, millis(lasted)));
  }
  spdlog::debug("reflector watch ended name={} events={} resource_version={}", name_, events,
                stats().resource_version);
}

}  // namespace stowage::kube
