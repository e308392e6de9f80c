#include "common.h"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <mutex>

#include "support/image_seed.h"
#include "support/registry_fixture.h"

namespace stowage::oci::itest {

http::Client& transport() {
  static http::Client client(http::ClientOptions{"stowage-test/0.1", 16, std::string(), 0});
  return client;
}

RetryPolicy fast_retry() {
  RetryPolicy p;
  p.max_attempts = 3;
  p.backoff =
      BackoffPolicy{std::chrono::milliseconds(50), std::chrono::milliseconds(200), 2.0, 0.1};
  p.max_retry_after = std::chrono::seconds(5);
  return p;
}

std::unique_ptr<RegistryConnector> connector(std::vector<std::string> plain_http_hosts,
                                             Credentials credentials, std::string certs_dir) {
  ConnectOptions o;
  o.plain_http = std::move(plain_http_hosts);
  o.certs_dir = std::move(certs_dir);
  if (!credentials.empty()) {
    o.credentials = [credentials](std::string_view) { return credentials; };
  }
  o.retry = fast_retry();
  return std::make_unique<RegistryConnector>(transport(), real_clock(), std::move(o));
}

std::vector<PullSource> sources(const std::string& reference, bool insecure) {
  PullSource s;
  s.reference = Reference::parse(reference);
  s.location = s.reference.domain;
  s.insecure = insecure;
  s.mirror = false;
  return {s};
}

std::optional<std::string> skip_reason() {
  if (auto r = test::RegistryFixture::unavailable_reason()) return r;
  if (auto r = test::seed_unavailable_reason()) return r;
  return std::nullopt;
}

struct LogCapture::State {
  std::ostringstream out;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink;
  std::shared_ptr<spdlog::logger> previous;
};

LogCapture::LogCapture() : state_(std::make_unique<State>()) {
  state_->sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(state_->out);
  state_->previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>("capture", state_->sink);
  logger->set_level(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

LogCapture::~LogCapture() {
  spdlog::set_default_logger(state_->previous);
}

std::string LogCapture::text() const {
  state_->sink->flush();
  return state_->out.str();
}

}  // namespace stowage::oci::itest
