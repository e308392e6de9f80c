#include "kube/token_source.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/error.h"
#include "base/files.h"

namespace stowage::kube {
namespace {

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) {
    return {};
  }
  const auto last = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(first, last - first + 1));
}

}  // namespace

FileTokenSource::FileTokenSource(std::filesystem::path path, Clock& clock, std::string fallback,
                                 Clock::Duration period)
    : path_(std::move(path)), clock_(clock), period_(period) {
  try {
    token_ = read_token();
    next_read_ = clock_.now() + period_;
  } catch (const Error&) {
    if (fallback.empty()) {
      throw;
    }
    token_ = std::move(fallback);
    next_read_ = clock_.now() + kRetryAfterFailure;
  }
}

std::string FileTokenSource::read_token() const {
  std::optional<std::string> text;
  try {
    text = read_file(path_);
  } catch (const Error& e) {
    throw e.wrap("reading token file");
  }
  if (!text) {
    throw_not_found(fmt::format("token file {} does not exist", path_.string()));
  }
  std::string token = trim(*text);
  if (token.empty()) {
    throw Error(Code::kUnauthenticated, fmt::format("token file {} is empty", path_.string()));
  }
  return token;
}

Credential FileTokenSource::get() {
  std::lock_guard lock(mu_);
  const auto now = clock_.now();
  if (now >= next_read_) {
    try {
      token_ = read_token();
      next_read_ = now + period_;
    } catch (const Error& e) {
      // Keep the token we have: it may well still be valid for a while.
      spdlog::warn("kube token re-read failed, keeping the previous token: {}", e.what());
      next_read_ = now + std::chrono::duration_cast<Clock::Duration>(kRetryAfterFailure);
    }
  }
  return {token_, {}, {}};
}

void FileTokenSource::invalidate() {
  std::lock_guard lock(mu_);
  next_read_ = clock_.now();
}

ExecTokenSource::ExecTokenSource(ExecConfig config, std::optional<nlohmann::json> cluster,
                                 Clock& clock)
    : config_(std::move(config)), cluster_(std::move(cluster)), clock_(clock) {}

Credential ExecTokenSource::get() {
  std::lock_guard lock(mu_);
  if (cached_ && cached_->expiration && clock_.wall_now() + kExpiryLeeway >= *cached_->expiration) {
    cached_.reset();
  }
  if (!cached_) {
    cached_ = run_exec_plugin(config_, cluster_);
  }
  return {cached_->token, cached_->client_cert_pem, cached_->client_key_pem};
}

void ExecTokenSource::invalidate() {
  std::lock_guard lock(mu_);
  cached_.reset();
}

}  // namespace stowage::kube
