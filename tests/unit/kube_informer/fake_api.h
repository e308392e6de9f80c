// A narrow scripted API server for reflector and informer tests: an http::Transport answering
// LISTs (send) and WATCHes (stream) from one queue in order, recording each URL. A watch with no
// answer scripted yet blocks until one is pushed or the request is cancelled, like an idle watch.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "http/transport.h"

namespace stowage::kube::testing {

struct Scripted {
  int status = 200;
  std::string body{};                 // a LIST answer or an error Status
  std::vector<std::string> chunks{};  // a watch stream, delivered chunk by chunk
  std::optional<Code> fail{};         // throw a transport error instead (connection refused)
  Clock::Duration elapse{0};          // FakeClock time the answer takes
};

class ScriptedApi final : public http::Transport {
 public:
  explicit ScriptedApi(FakeClock& clock) : clock_(clock) {}

  void push(Scripted s) {
    std::lock_guard lock(mu_);
    script_.push_back(std::move(s));
    cv_.notify_all();
  }

  http::Response send(const http::Request& request) override {
    std::optional<Scripted> s = take(request, /*block=*/false);
    if (!s) return respond(request, Scripted{599, "no answer scripted"});
    return answer(request, *s);
  }

  http::Response stream(const http::Request& request,
                        const http::StreamHandlers& handlers) override {
    std::optional<Scripted> s = take(request, /*block=*/true);
    http::Response head = s ? answer(request, *s) : respond(request, Scripted{});
    if (!s) {
      head.aborted = true;  // cancelled while idle
      return head;
    }
    const http::BodyAction action =
        handlers.on_head ? handlers.on_head(head) : http::BodyAction::kStream;
    if (action == http::BodyAction::kBuffer) return head;
    head.body.clear();
    for (const auto& c : s->chunks) {
      if (handlers.on_body && !handlers.on_body(c)) {
        head.aborted = true;
        break;
      }
    }
    return head;
  }

  // The URLs asked so far (path and query after the server).
  std::vector<std::string> urls() const {
    std::lock_guard lock(mu_);
    return urls_;
  }
  std::vector<std::string> accepts() const {
    std::lock_guard lock(mu_);
    return accepts_;
  }
  // Waits (really) until `n` requests were made. For synchronisation with the reflector thread.
  bool wait_for_requests(std::size_t n,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return urls_.size() >= n; });
  }
  std::size_t pending() const {
    std::lock_guard lock(mu_);
    return script_.size();
  }

 private:
  std::optional<Scripted> take(const http::Request& request, bool block) {
    std::unique_lock lock(mu_);
    const auto pos = request.url.find("://");
    const auto path = request.url.find('/', pos == std::string::npos ? 0 : pos + 3);
    urls_.push_back(path == std::string::npos ? request.url : request.url.substr(path));
    accepts_.push_back(request.headers.get("Accept").value_or(""));
    cv_.notify_all();
    if (block) {
      std::stop_token stop = request.stop;
      cv_.wait(lock, stop, [&] { return !script_.empty(); });
    }
    if (script_.empty()) return std::nullopt;
    Scripted s = std::move(script_.front());
    script_.pop_front();
    return s;
  }

  http::Response answer(const http::Request& request, const Scripted& s) {
    if (s.elapse.count() > 0) clock_.advance(s.elapse);
    if (s.fail) throw Error(*s.fail, "scripted transport failure: connection refused");
    return respond(request, s);
  }

  static http::Response respond(const http::Request& request, const Scripted& s) {
    http::Response r;
    r.status = s.status;
    r.body = s.body;
    r.method = request.method;
    r.url = request.url;
    return r;
  }

  FakeClock& clock_;
  mutable std::mutex mu_;  // guards script_, urls_, accepts_
  mutable std::condition_variable_any cv_;
  std::deque<Scripted> script_;
  std::vector<std::string> urls_;
  std::vector<std::string> accepts_;
};

}  // namespace stowage::kube::testing
