// Where a Client's credentials come from, refreshed as they rotate: a static token, a token file
// re-read every minute and after a 401 (projected service-account tokens), or an exec credential
// plugin (cached until it expires). Client calls get() before each request and invalidate() after
// a 401. Implementations are thread-safe.
#pragma once

#include <chrono>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "base/clock.h"
#include "kube/exec_credential.h"

namespace stowage::kube {

// A bearer token, or (exec plugins only) a client certificate and key in PEM, or both empty.
struct Credential {
  std::string token{};
  std::string client_cert_pem{};
  std::string client_key_pem{};
};

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // The credential to use now. May read a file or run a plugin; throws Error when no credential
  // can be had at all.
  virtual Credential get() = 0;
  // The server refused the last credential (401): the next get() fetches a fresh one.
  virtual void invalidate() = 0;
};

class StaticTokenSource final : public TokenSource {
 public:
  explicit StaticTokenSource(std::string token) : token_(std::move(token)) {}
  Credential get() override { return {token_, {}, {}}; }
  void invalidate() override {}

 private:
  const std::string token_{};
};

// Re-reads `path` when `period` has passed since the last read, and on the first get() after
// invalidate(). Re-opens the path each time (projected tokens are symlinks swapped atomically).
// Surrounding whitespace is trimmed. When a re-read fails or finds an empty file, the previous
// token stays in use and the read is retried after kRetryAfterFailure.
class FileTokenSource final : public TokenSource {
 public:
  static constexpr std::chrono::seconds kDefaultPeriod{60};
  static constexpr std::chrono::seconds kRetryAfterFailure{10};

  // Reads the file now. Without a usable file, `fallback` (a kubeconfig's token beside its
  // tokenFile) is used; if that is empty too, throws the read error (NotFound, PermissionDenied,
  // or Unauthenticated for an empty file) naming the path.
  FileTokenSource(std::filesystem::path path, Clock& clock, std::string fallback = {},
                  Clock::Duration period = kDefaultPeriod);

  Credential get() override;
  void invalidate() override;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::string read_token() const;  // throws on failure

  const std::filesystem::path path_{};
  Clock& clock_;
  const Clock::Duration period_;
  std::mutex mu_{};  // guards token_, next_read_
  std::string token_{};
  Clock::TimePoint next_read_;
};

// Runs an exec plugin on first use, again once its credential expires (10 s early) and after
// invalidate(). Concurrent callers wait for one run. A failed run throws; nothing is cached then.
class ExecTokenSource final : public TokenSource {
 public:
  static constexpr std::chrono::seconds kExpiryLeeway{10};

  // `cluster`: the plugin API's view of the cluster, passed when config.provide_cluster_info.
  ExecTokenSource(ExecConfig config, std::optional<nlohmann::json> cluster, Clock& clock);

  Credential get() override;
  void invalidate() override;
  const ExecConfig& config() const { return config_; }

 private:
  const ExecConfig config_;
  const std::optional<nlohmann::json> cluster_{};
  Clock& clock_;
  std::mutex mu_{};  // guards cached_; held while the plugin runs
  std::optional<ExecCredential> cached_{};
};

}  // namespace stowage::kube
