// Narrow fakes for kube client unit tests: a temp dir, an http::Transport that answers from a
// script and records requests, and a Clock whose sleeps return at once and are recorded.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "base/clock.h"
#include "http/transport.h"

namespace stowage::kube::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "kube-client-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& path, const std::string& text,
                       bool executable = false) {
  std::filesystem::create_directories(path.parent_path());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
  }
  if (executable) {
    std::filesystem::permissions(path, std::filesystem::perms::owner_all |
                                           std::filesystem::perms::group_read |
                                           std::filesystem::perms::group_exec);
  }
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// One scripted answer. For stream(), `chunks` are delivered one by one when the head callback
// chose kStream; otherwise `body` is the buffered answer.
struct Answer {
  int status = 200;
  http::Headers headers;
  std::string body;
  std::vector<std::string> chunks;
};

class FakeTransport final : public http::Transport {
 public:
  void push(Answer a) {
    std::lock_guard lock(mu_);
    answers_.push_back(std::move(a));
  }
  void push(int status, std::string body, http::Headers headers = {}) {
    push(Answer{status, std::move(headers), std::move(body), {}});
  }

  http::Response send(const http::Request& request) override {
    const Answer a = next(request);
    http::Response r;
    r.status = a.status;
    r.headers = a.headers;
    r.body = a.body;
    r.method = request.method;
    r.url = request.url;
    return r;
  }

  http::Response stream(const http::Request& request,
                        const http::StreamHandlers& handlers) override {
    const Answer a = next(request);
    http::Response r;
    r.status = a.status;
    r.headers = a.headers;
    r.method = request.method;
    r.url = request.url;
    const http::BodyAction action =
        handlers.on_head ? handlers.on_head(r) : http::BodyAction::kStream;
    if (action == http::BodyAction::kBuffer) {
      r.body = a.body;
    } else if (action == http::BodyAction::kStream) {
      for (const auto& c : a.chunks) {
        if (handlers.on_body && !handlers.on_body(c)) {
          r.aborted = true;
          break;
        }
      }
    } else {
      r.aborted = true;
    }
    return r;
  }

  std::vector<http::Request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::size_t remaining() const {
    std::lock_guard lock(mu_);
    return answers_.size();
  }

 private:
  Answer next(const http::Request& request) {
    std::lock_guard lock(mu_);
    requests_.push_back(request);
    if (answers_.empty()) return Answer{599, {}, "no answer scripted", {}};
    Answer a = std::move(answers_.front());
    answers_.pop_front();
    return a;
  }

  mutable std::mutex mu_;  // guards answers_, requests_
  std::deque<Answer> answers_;
  std::vector<http::Request> requests_;
};

// Sleeps return immediately after moving time forward; each is recorded.
class SteppingClock final : public Clock {
 public:
  TimePoint now() const override {
    std::lock_guard lock(mu_);
    return TimePoint(now_);
  }
  WallTime wall_now() const override {
    std::lock_guard lock(mu_);
    return WallTime(std::chrono::seconds(1'700'000'000)) +
           std::chrono::duration_cast<WallTime::duration>(now_);
  }
  bool sleep_until(TimePoint deadline, std::stop_token stop) override {
    if (stop.stop_requested()) return false;
    std::lock_guard lock(mu_);
    if (deadline.time_since_epoch() > now_) {
      sleeps_.push_back(deadline.time_since_epoch() - now_);
      now_ = deadline.time_since_epoch();
    }
    return true;
  }
  std::vector<Duration> sleeps() const {
    std::lock_guard lock(mu_);
    return sleeps_;
  }

 private:
  mutable std::mutex mu_;  // guards now_, sleeps_
  Duration now_{0};
  std::vector<Duration> sleeps_;
};

}  // namespace stowage::kube::testing
