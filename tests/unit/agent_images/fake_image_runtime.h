// A fake ImageRuntime for the reconciler's unit tests: a "registry" of pullable references, an
// image store, containers, filesystem usage, queued pull errors, and instrumentation of pulls
// (credentials used, the most pulls in flight at once). Thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "node-agent/image_reconciler.h"

namespace stowage::agent::testing {

struct Pull {
  std::string ref;
  std::optional<cri::AuthConfig> auth;
};

class FakeImageRuntime final : public ImageRuntime {
 public:
  // Makes `ref` pullable as `image`.
  void publish(const std::string& ref, cri::Image image) {
    const std::lock_guard lock(mu_);
    registry_[ref] = std::move(image);
  }
  void hold(cri::Image image) {
    const std::lock_guard lock(mu_);
    store_[image.id] = std::move(image);
  }
  void add_container(cri::Container c) {
    const std::lock_guard lock(mu_);
    containers_.push_back(std::move(c));
  }
  void set_fs(std::optional<ImageFsUsage> fs) {
    const std::lock_guard lock(mu_);
    fs_ = std::move(fs);
  }
  void fail_next_pulls(std::vector<Error> errors) {
    const std::lock_guard lock(mu_);
    for (auto& e : errors) pull_errors_.push_back(std::move(e));
  }
  // Each pull waits (up to `wait`, real time) until `n` pulls are in flight, so that a pool
  // allowing `n` concurrent pulls would reach `n`.
  void rendezvous_pulls(int n, std::chrono::milliseconds wait) {
    const std::lock_guard lock(mu_);
    rendezvous_ = n;
    rendezvous_wait_ = wait;
  }

  // Waits (really, up to `timeout`) until `n` pulls have started.
  bool wait_for_pulls(std::size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pulls_.size() >= n; });
  }
  std::vector<Pull> pulls() const {
    const std::lock_guard lock(mu_);
    return pulls_;
  }
  std::vector<std::string> removed() const {
    const std::lock_guard lock(mu_);
    return removed_;
  }
  int max_in_flight() const {
    const std::lock_guard lock(mu_);
    return max_in_flight_;
  }
  bool holds(const std::string& id) const {
    const std::lock_guard lock(mu_);
    return store_.contains(id);
  }

  std::optional<cri::Image> image_status(const std::string& image) override {
    const std::lock_guard lock(mu_);
    for (const auto& [id, img] : store_) {
      if (id == image || has(img.repo_tags, image) || has(img.repo_digests, image)) return img;
    }
    return std::nullopt;
  }

  std::string pull_image(const std::string& image, const std::optional<cri::AuthConfig>& auth,
                         std::stop_token /*stop*/) override {
    std::unique_lock lock(mu_);
    pulls_.push_back({image, auth});
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    cv_.notify_all();
    if (rendezvous_ > 0) {
      cv_.wait_for(lock, rendezvous_wait_, [&] { return in_flight_ >= rendezvous_; });
    }
    --in_flight_;
    if (!pull_errors_.empty()) {
      Error e = pull_errors_.front();
      pull_errors_.pop_front();
      throw e;
    }
    const auto it = registry_.find(image);
    if (it == registry_.end()) throw Error(Code::kNotFound, "fake: no such image " + image);
    store_[it->second.id] = it->second;
    return it->second.id;
  }

  void remove_image(const std::string& image) override {
    const std::lock_guard lock(mu_);
    removed_.push_back(image);
    store_.erase(image);
  }

  std::vector<cri::Image> list_images() override {
    const std::lock_guard lock(mu_);
    std::vector<cri::Image> out;
    for (const auto& [id, img] : store_) out.push_back(img);
    return out;
  }

  std::vector<cri::Container> list_containers() override {
    const std::lock_guard lock(mu_);
    return containers_;
  }

  std::optional<ImageFsUsage> image_fs_usage() override {
    const std::lock_guard lock(mu_);
    return fs_;
  }

 private:
  static bool has(const std::vector<std::string>& list, const std::string& v) {
    return std::find(list.begin(), list.end(), v) != list.end();
  }

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::map<std::string, cri::Image> registry_;
  std::map<std::string, cri::Image> store_;
  std::vector<cri::Container> containers_;
  std::optional<ImageFsUsage> fs_;
  std::deque<Error> pull_errors_;
  std::vector<Pull> pulls_;
  std::vector<std::string> removed_;
  int in_flight_ = 0;
  int max_in_flight_ = 0;
  int rendezvous_ = 0;
  std::chrono::milliseconds rendezvous_wait_{0};
};

}  // namespace stowage::agent::testing
