#include "oci/registry_client.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "base/error.h"
#include "base/sha256.h"
#include "http/errors.h"
#include "http/redact.h"
#include "oci/manifest.h"
#include "reference/reference.h"

namespace stowage::oci {
namespace fs = std::filesystem;

namespace {

constexpr int kMaxRedirects = 10;
constexpr int kMaxPages = 100'000;
constexpr int kMaxResumes = 1000;
// curl hands a body over in pieces of at most 16 KiB; blobs go to the store in pieces this big.
constexpr std::size_t kBlobWriteBatch = std::size_t{1} << 20;

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool transport_retryable(const Error& e) {
  return e.code() == Code::kUnavailable || e.code() == Code::kDeadlineExceeded;
}

std::string short_digest(std::string_view digest) {
  const auto colon = digest.find(':');
  if (colon == std::string_view::npos) return std::string(digest.substr(0, 16));
  return std::string(digest.substr(0, std::min(digest.size(), colon + 13)));
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(Code::kInvalidArgument, fmt::format("reading {}: cannot open", path.string()));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> merge_scopes(std::vector<std::string> scopes,
                                      const std::vector<std::string>& more) {
  for (const auto& s : more) {
    if (std::find(scopes.begin(), scopes.end(), s) == scopes.end()) scopes.push_back(s);
  }
  return scopes;
}

std::vector<std::string> pull_scope(std::string_view repository) {
  return {repository_scope(repository, {"pull"})};
}

std::vector<std::string> push_scope(std::string_view repository) {
  return {repository_scope(repository, {"pull", "push"})};
}

bool is_digest(std::string_view reference) {
  return reference.find(':') != std::string_view::npos && Digest::is_valid(reference);
}

}  // namespace

std::string manifest_accept_header() {
  return fmt::format("{}, {}, {}, {}", media::kOciManifest, media::kOciIndex,
                     media::kDockerManifest, media::kDockerManifestList);
}

http::TlsOptions tls_options_from_certs_dir(const std::string& certs_dir,
                                            std::string_view registry) {
  http::TlsOptions tls;
  if (certs_dir.empty() || registry.empty() || registry.find('/') != std::string_view::npos ||
      registry == "." || registry == "..") {
    return tls;
  }
  const fs::path dir = fs::path(certs_dir) / std::string(registry);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return tls;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file(ec)) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    const std::string ext = file.extension().string();
    if (ext == ".crt") {
      std::string pem = read_file(file);
      if (!pem.empty() && pem.back() != '\n') pem += '\n';
      tls.ca_pem += pem;
    } else if (ext == ".cert") {
      fs::path key = file;
      key.replace_extension(".key");
      if (!fs::exists(key, ec)) {
        throw Error(Code::kInvalidArgument, fmt::format("certificate {} has no matching key {}",
                                                        file.string(), key.filename().string()));
      }
      if (tls.client_cert_file.empty()) {
        tls.client_cert_file = file.string();
        tls.client_key_file = key.string();
      }
    } else if (ext == ".key") {
      fs::path cert = file;
      cert.replace_extension(".cert");
      if (!fs::exists(cert, ec)) {
        throw Error(Code::kInvalidArgument, fmt::format("key {} has no matching certificate {}",
                                                        file.string(), cert.filename().string()));
      }
    }
  }
  if (!tls.ca_pem.empty()) tls.also_trust_system_store = true;
  return tls;
}

// ---- Authentication state -------------------------------------------------------------------

struct RegistryClient::Auth {
  explicit Auth(const Clock& clock) : tokens(clock) {}

  std::mutex mu;  // guards challenge and token_requests
  // The registry's last Bearer or Basic challenge, scope parameter removed.
  std::optional<Challenge> challenge;
  int token_requests = 0;
  TokenCache tokens;
};

namespace {

class StoreSource final : public RegistryClient::BlobSource {
 public:
  explicit StoreSource(BlobReader reader) : reader_(std::move(reader)) {}
  std::size_t read(char* buffer, std::size_t size) override { return reader_.read(buffer, size); }

 private:
  BlobReader reader_;
};

class MemorySource final : public RegistryClient::BlobSource {
 public:
  explicit MemorySource(std::string_view data) : data_(data) {}
  std::size_t read(char* buffer, std::size_t size) override {
    const std::size_t n = std::min(size, data_.size());
    std::copy_n(data_.data(), n, buffer);
    data_.remove_prefix(n);
    return n;
  }

 private:
  std::string_view data_;
};

}  // namespace

// ---- RegistryClient -------------------------------------------------------------------------

RegistryClient::RegistryClient(http::Transport& transport, Clock& clock,
                               RegistryClientOptions options)
    : transport_(transport),
      clock_(clock),
      options_(std::move(options)),
      auth_(std::make_unique<Auth>(clock)) {
  if (options_.registry.empty() || options_.registry.find('/') != std::string::npos) {
    throw Error(Code::kInvalidArgument,
                fmt::format("registry client: invalid registry host \"{}\"", options_.registry));
  }
  api_host_ = options_.registry == kDefaultDomain || options_.registry == kLegacyDefaultDomain
                  ? std::string("registry-1.docker.io")
                  : options_.registry;
  tls_ = tls_options_from_certs_dir(options_.certs_dir, options_.registry);
  if (options_.insecure || !options_.tls_verify) tls_.insecure = true;
  if (options_.plain_http) scheme_ = "http";
  if (options_.retry.max_attempts < 1) options_.retry.max_attempts = 1;
}

RegistryClient::~RegistryClient() = default;

std::string RegistryClient::base_url() const {
  std::lock_guard lock(scheme_mu_);
  return (scheme_.empty() ? std::string("https") : scheme_) + "://" + api_host_;
}

std::string RegistryClient::describe(std::string_view repository) const {
  if (repository.empty()) return fmt::format("registry {}", options_.registry);
  return fmt::format("registry {}: repository {}", options_.registry, repository);
}

int RegistryClient::token_requests() const {
  std::lock_guard lock(auth_->mu);
  return auth_->token_requests;
}

http::Request RegistryClient::new_request(std::string method, std::string url) const {
  http::Request r;
  r.method = std::move(method);
  r.url = std::move(url);
  r.headers.set("Docker-Distribution-API-Version", "registry/2.0");
  r.connect_timeout = options_.connect_timeout;
  r.low_speed_limit = options_.low_speed_limit;
  r.low_speed_time = options_.low_speed_time;
  r.timeout = options_.request_timeout;
  r.stop = options_.stop;
  if (r.url.starts_with("https://")) {
    if (same_origin(r.url, "https://" + api_host_)) {
      r.tls = tls_;
    } else {
      r.tls.insecure = tls_.insecure;
    }
  }
  return r;
}

void RegistryClient::ensure_scheme() {
  std::lock_guard lock(scheme_mu_);
  if (!scheme_.empty()) return;
  if (!options_.insecure) {
    scheme_ = "https";
    return;
  }
  // An insecure registry: HTTPS without verification if it answers it, else plain HTTP.
  http::Request probe;
  probe.url = "https://" + api_host_ + "/v2/";
  probe.tls.insecure = true;
  probe.connect_timeout = options_.connect_timeout;
  probe.timeout =
      std::min<std::chrono::milliseconds>(options_.request_timeout, std::chrono::seconds(30));
  probe.stop = options_.stop;
  try {
    (void)transport_.send(probe);
    scheme_ = "https";
  } catch (const Error& e) {
    if (options_.stop.stop_requested()) throw;
    spdlog::debug("registry https probe failed, using http registry={} error={}", options_.registry,
                  e.what());
    scheme_ = "http";
  }
}

[[noreturn]] void RegistryClient::fail(const http::Response& response,
                                       std::string_view what) const {
  const auto entries = parse_error_body(response.body);
  std::string message = describe_registry_failure(what, response.status, response.body);
  if (response.status == 401) {
    message += options_.credentials.username.empty()
                   ? " (authentication required; no credentials were given)"
                   : fmt::format(" (the credentials of user \"{}\" were not accepted)",
                                 options_.credentials.username);
  }
  throw http::HttpStatusError(code_for_registry_error(response.status, entries), std::move(message),
                              response.status, response.headers.get("Retry-After"));
}

void RegistryClient::wait_before_retry(Backoff& backoff,
                                       const std::optional<std::string>& retry_after,
                                       std::string_view what, const std::string& reason) {
  std::chrono::milliseconds delay = backoff.next();
  if (retry_after) {
    if (const auto asked = parse_retry_after_value(*retry_after, clock_.wall_now())) {
      if (*asked > options_.retry.max_retry_after) {
        throw Error(
            Code::kResourceExhausted,
            fmt::format("{}: {}; the registry asks to retry after {} s, longer than the "
                        "{} s this client waits",
                        what, reason, asked->count(), options_.retry.max_retry_after.count()));
      }
      delay = *asked;
    }
  }
  spdlog::info(
      "registry request retry registry={} request=\"{}\" attempt={} delay_ms={} "
      "reason=\"{}\"",
      options_.registry, what, backoff.attempts(), delay.count(), reason);
  if (!clock_.sleep_for(delay, options_.stop)) {
    throw Error(Code::kUnavailable, fmt::format("{}: cancelled", what));
  }
}

std::optional<std::string> RegistryClient::authorization(const std::vector<std::string>& scopes,
                                                         bool force_refresh) {
  std::optional<Challenge> challenge;
  {
    std::lock_guard lock(auth_->mu);
    challenge = auth_->challenge;
  }
  if (!challenge) return std::nullopt;
  const Credentials& creds = options_.credentials;
  if (challenge->scheme == "basic") {
    if (creds.username.empty() && creds.password.empty()) return std::nullopt;
    return basic_authorization(creds);
  }
  TokenRequest request = token_request_from(*challenge, scopes);
  request.account = creds.username;
  const TokenKey key = token_key(request);
  if (!force_refresh) {
    if (auto token = auth_->tokens.get(key)) return "Bearer " + *token;
  } else {
    auth_->tokens.erase(key);
  }
  return "Bearer " + fetch_token(scopes);
}

std::string RegistryClient::fetch_token(const std::vector<std::string>& scopes) {
  Challenge challenge;
  {
    std::lock_guard lock(auth_->mu);
    if (!auth_->challenge) throw_internal("fetch_token without a challenge");
    challenge = *auth_->challenge;
    ++auth_->token_requests;
  }
  const Credentials& creds = options_.credentials;
  TokenRequest request = token_request_from(challenge, scopes);
  request.account = creds.username;
  const std::string url = build_token_url(request);
  const std::string what = fmt::format("{}: requesting a token from {}", describe({}),
                                       http::redact_url(challenge.param("realm")));
  http::Request r = new_request("GET", url);
  r.headers.remove("Docker-Distribution-API-Version");
  r.headers.set("Accept", "application/json");
  if (!creds.username.empty() || !creds.password.empty()) {
    r.headers.set("Authorization", basic_authorization(creds));
  }
  r.max_body_bytes = kMaxTokenResponseBytes;
  spdlog::debug("registry token request registry={} realm={} service={} scopes=\"{}\" user={}",
                options_.registry, http::redact_url(challenge.param("realm")),
                challenge.param("service"), fmt::join(request.scopes, " "),
                creds.username.empty() ? "<anonymous>" : creds.username);
  const http::Response response = transport_.send(r);
  if (response.status == 401 || response.status == 403) {
    const std::string who =
        creds.username.empty()
            ? std::string(
                  "anonymous access was refused; credentials are "
                  "required")
            : fmt::format("the credentials of user \"{}\" were refused", creds.username);
    throw Error(Code::kUnauthenticated, fmt::format("{}: HTTP {}: {}", what, response.status, who));
  }
  if (!response.ok()) fail(response, what);
  TokenResponse token;
  try {
    token = parse_token_response(response.body);
  } catch (const Error& e) {
    throw e.wrap(what);
  }
  auth_->tokens.put(token_key(request), token);
  return token.token;
}

bool RegistryClient::learn_challenge(const http::Response& response, bool had_authorization) {
  std::vector<Challenge> challenges;
  try {
    challenges = parse_www_authenticate(response.headers.get_all("WWW-Authenticate"));
  } catch (const Error& e) {
    spdlog::debug("registry sent an unreadable challenge registry={} error={}", options_.registry,
                  e.what());
    return false;
  }
  const Challenge* chosen = find_challenge(challenges, "bearer");
  if (chosen == nullptr) chosen = find_challenge(challenges, "basic");
  if (chosen == nullptr) return false;
  Challenge kept = *chosen;
  kept.params.erase("scope");
  kept.params.erase("error");
  {
    std::lock_guard lock(auth_->mu);
    auth_->challenge = kept;
  }
  if (kept.scheme == "basic") {
    const Credentials& creds = options_.credentials;
    return !had_authorization && !(creds.username.empty() && creds.password.empty());
  }
  // Bearer: a first token, or one retry with a fresh token for the scopes the registry named.
  return true;
}

http::Response RegistryClient::exchange(http::Request& request,
                                        const std::vector<std::string>& scopes,
                                        const http::StreamHandlers* handlers) {
  auto send = [&] {
    return handlers != nullptr ? transport_.stream(request, *handlers) : transport_.send(request);
  };
  std::optional<std::string> auth = authorization(scopes, false);
  if (auth) request.headers.set("Authorization", *auth);
  http::Response response = send();
  if (response.status != 401) return response;
  const bool had = auth.has_value();
  if (!learn_challenge(response, had)) return response;
  if (std::holds_alternative<http::BodySource>(request.body)) return response;  // not replayable
  std::vector<std::string> wanted = scopes;
  try {
    const auto challenges = parse_www_authenticate(response.headers.get_all("WWW-Authenticate"));
    if (const Challenge* bearer = find_challenge(challenges, "bearer")) {
      wanted = merge_scopes(wanted, bearer->scopes());
    }
  } catch (const Error&) {
  }
  auth = authorization(wanted, had);
  if (!auth) return response;
  request.headers.set("Authorization", *auth);
  return send();
}

http::Response RegistryClient::execute(http::Request request,
                                       const std::vector<std::string>& scopes,
                                       std::string_view what, bool retry_statuses) {
  const bool replayable = !std::holds_alternative<http::BodySource>(request.body);
  Backoff backoff(options_.retry.backoff);
  for (int attempt = 1;; ++attempt) {
    const bool last = attempt >= options_.retry.max_attempts || !replayable;
    try {
      http::Request r = request;
      http::Response response = exchange(r, scopes, nullptr);
      if (retry_statuses && !last && retryable_status(response.status)) {
        wait_before_retry(backoff, response.headers.get("Retry-After"), what,
                          describe_registry_failure("", response.status, response.body));
        continue;
      }
      return response;
    } catch (const http::HttpStatusError& e) {
      // A token endpoint that failed: retry it like the request itself.
      if (last || options_.stop.stop_requested() || !retryable_status(e.status())) throw;
      wait_before_retry(backoff, e.retry_after(), what, e.what());
    } catch (const Error& e) {
      if (last || options_.stop.stop_requested() || !transport_retryable(e)) throw;
      wait_before_retry(backoff, std::nullopt, what, e.what());
    }
  }
}

void RegistryClient::ping() {
  ensure_scheme();
  const std::string what = fmt::format("{}: GET /v2/", describe({}));
  const http::Response response = execute(new_request("GET", base_url() + "/v2/"), {}, what);
  if (!response.ok()) fail(response, what);
}

ManifestInfo RegistryClient::head_manifest(std::string_view repository,
                                           std::string_view reference) {
  ensure_scheme();
  const std::string what = fmt::format("{}: HEAD manifest {}", describe(repository), reference);
  http::Request r =
      new_request("HEAD", fmt::format("{}/v2/{}/manifests/{}", base_url(), repository, reference));
  r.headers.set("Accept", manifest_accept_header());
  const http::Response response = execute(std::move(r), pull_scope(repository), what);
  if (response.status == 404) {
    // A HEAD answer has no error body to say what is missing.
    throw http::HttpStatusError(Code::kNotFound,
                                describe_registry_failure(what, 404, "") + ": manifest unknown",
                                404, std::nullopt);
  }
  if (response.status == 405 ||
      (response.ok() && !response.headers.contains("Docker-Content-Digest"))) {
    const FetchedManifest m = get_manifest(repository, reference);
    return ManifestInfo{m.digest, m.media_type, static_cast<std::int64_t>(m.bytes.size())};
  }
  if (!response.ok()) fail(response, what);
  ManifestInfo info;
  info.digest = *response.headers.get("Docker-Content-Digest");
  if (!Digest::is_valid(info.digest)) {
    throw Error(Code::kInvalidArgument, fmt::format("{}: invalid Docker-Content-Digest \"{}\"",
                                                    what, info.digest.substr(0, 80)));
  }
  if (is_digest(reference) && info.digest != reference) {
    throw Error(Code::kDataLoss,
                fmt::format("{}: the registry answered with digest {}", what, info.digest));
  }
  info.media_type = normalize_media_type(response.headers.get("Content-Type").value_or(""));
  const std::string length = response.headers.get("Content-Length").value_or("-1");
  try {
    info.size = std::stoll(length);
  } catch (const std::exception&) {
    info.size = -1;
  }
  return info;
}

FetchedManifest RegistryClient::get_manifest(std::string_view repository,
                                             std::string_view reference) {
  ensure_scheme();
  const std::string what = fmt::format("{}: GET manifest {}", describe(repository), reference);
  http::Request r =
      new_request("GET", fmt::format("{}/v2/{}/manifests/{}", base_url(), repository, reference));
  r.headers.set("Accept", manifest_accept_header());
  r.max_body_bytes = kMaxManifestBytes;
  http::Response response = execute(std::move(r), pull_scope(repository), what);
  if (!response.ok()) fail(response, what);
  FetchedManifest m;
  m.bytes = std::move(response.body);
  m.digest = manifest_digest(m.bytes);
  if (is_digest(reference)) {
    if (m.digest != reference) {
      throw Error(Code::kDataLoss,
                  fmt::format("{}: the manifest received hashes to {}, not the digest asked for",
                              what, m.digest));
    }
  } else if (const auto header = response.headers.get("Docker-Content-Digest");
             header && header->starts_with("sha256:") && *header != m.digest) {
    throw Error(Code::kDataLoss,
                fmt::format("{}: the manifest received hashes to {}, but the registry says {}",
                            what, m.digest, header->substr(0, 80)));
  }
  const std::string content_type = response.headers.get("Content-Type").value_or("");
  try {
    const auto parsed = parse_manifest(m.bytes, content_type);
    m.media_type = std::visit([](const auto& doc) { return doc.media_type; }, parsed);
  } catch (const Error& e) {
    throw e.wrap(what);
  }
  return m;
}

std::string RegistryClient::put_manifest(std::string_view repository, std::string_view reference,
                                         std::string_view bytes, std::string_view media_type) {
  ensure_scheme();
  const std::string what = fmt::format("{}: PUT manifest {}", describe(repository), reference);
  http::Request r =
      new_request("PUT", fmt::format("{}/v2/{}/manifests/{}", base_url(), repository, reference));
  r.headers.set("Content-Type", std::string(media_type));
  r.body = std::string(bytes);
  const http::Response response = execute(std::move(r), push_scope(repository), what);
  if (response.status != 201 && !response.ok()) fail(response, what);
  const std::string digest = manifest_digest(bytes);
  if (const auto header = response.headers.get("Docker-Content-Digest");
      header && header->starts_with("sha256:") && *header != digest) {
    throw Error(Code::kDataLoss,
                fmt::format("{}: the registry stored digest {} for a manifest hashing to {}", what,
                            header->substr(0, 80), digest));
  }
  return digest;
}

std::optional<std::uint64_t> RegistryClient::blob_size(std::string_view repository,
                                                       std::string_view digest) {
  ensure_scheme();
  const std::string what =
      fmt::format("{}: HEAD blob {}", describe(repository), short_digest(digest));
  const http::Response response =
      execute(new_request("HEAD", fmt::format("{}/v2/{}/blobs/{}", base_url(), repository, digest)),
              pull_scope(repository), what);
  if (response.status == 404) return std::nullopt;
  if (is_redirect(response.status)) return 0;  // present, served from elsewhere
  if (!response.ok()) fail(response, what);
  try {
    return std::stoull(response.headers.get("Content-Length").value_or("0"));
  } catch (const std::exception&) {
    return 0;
  }
}

namespace {

// Wraps handlers so that a redirect's body is never read and error bodies are buffered.
http::StreamHandlers redirect_aware(const http::StreamHandlers& inner) {
  http::StreamHandlers h;
  h.on_head = [&inner](const http::Response& head) {
    if (is_redirect(head.status)) return http::BodyAction::kAbort;
    if (!head.ok()) return http::BodyAction::kBuffer;
    return inner.on_head ? inner.on_head(head) : http::BodyAction::kStream;
  };
  h.on_body = inner.on_body;
  return h;
}

// Streams GET <blob> with `headers`, following redirects; Authorization goes only to the
// registry's own origin.
http::Response blob_get(
    http::Transport& transport, const std::function<http::Request(std::string)>& make,
    const std::function<http::Response(http::Request&, const http::StreamHandlers&)>& authenticated,
    std::string url, const http::Headers& headers, const http::StreamHandlers& handlers,
    std::string_view what) {
  const http::StreamHandlers wrapped = redirect_aware(handlers);
  bool with_auth = true;
  for (int hops = 0;; ++hops) {
    http::Request r = make(url);
    for (const auto& [name, value] : headers) r.headers.set(name, value);
    r.timeout = std::chrono::milliseconds(0);
    http::Response response = with_auth ? authenticated(r, wrapped) : transport.stream(r, wrapped);
    if (!is_redirect(response.status)) return response;
    const auto location = response.headers.get("Location");
    if (!location || hops >= kMaxRedirects) {
      throw Error(Code::kInvalidArgument,
                  fmt::format("{}: HTTP {} {}", what, response.status,
                              location ? "redirects too many times" : "without a Location"));
    }
    const std::string next = resolve_url(url, *location);
    if (!same_origin(url, next)) with_auth = false;
    spdlog::debug("registry blob redirect from={} to={}", http::redact_url(url),
                  http::redact_url(next));
    url = next;
  }
}

}  // namespace

std::string RegistryClient::get_blob(std::string_view repository, std::string_view digest,
                                     std::size_t max_bytes) {
  ensure_scheme();
  const std::string what =
      fmt::format("{}: GET blob {}", describe(repository), short_digest(digest));
  const auto scopes = pull_scope(repository);
  auto make = [this](std::string url) { return new_request("GET", std::move(url)); };
  auto authed = [this, &scopes](http::Request& r, const http::StreamHandlers& h) {
    return exchange(r, scopes, &h);
  };
  Backoff backoff(options_.retry.backoff);
  for (int attempt = 1;; ++attempt) {
    const bool last = attempt >= options_.retry.max_attempts;
    std::string data;
    http::StreamHandlers handlers;
    handlers.on_body = [&](std::string_view chunk) {
      if (data.size() + chunk.size() > max_bytes) {
        throw Error(Code::kInvalidArgument,
                    fmt::format("{}: larger than the {} byte limit", what, max_bytes));
      }
      data.append(chunk);
      return true;
    };
    try {
      const http::Response response = blob_get(
          transport_, make, authed,
          fmt::format("{}/v2/{}/blobs/{}", base_url(), repository, digest), {}, handlers, what);
      if (!response.ok()) {
        if (!last && retryable_status(response.status)) {
          wait_before_retry(backoff, response.headers.get("Retry-After"), what,
                            describe_registry_failure("", response.status, response.body));
          continue;
        }
        fail(response, what);
      }
    } catch (const http::HttpStatusError&) {
      throw;
    } catch (const Error& e) {
      if (last || options_.stop.stop_requested() || !transport_retryable(e)) throw;
      wait_before_retry(backoff, std::nullopt, what, e.what());
      continue;
    }
    if (sha256_digest(data) != digest) {
      throw Error(Code::kDataLoss,
                  fmt::format("{}: the content received does not match its digest", what));
    }
    return data;
  }
}

void RegistryClient::fetch_blob(std::string_view repository, const Descriptor& blob,
                                const Store& store, const TransferProgress& progress) {
  ensure_scheme();
  const std::string what =
      fmt::format("{}: GET blob {}", describe(repository), short_digest(blob.digest));
  const auto scopes = pull_scope(repository);
  const std::optional<std::uint64_t> size =
      blob.size >= 0 ? std::optional<std::uint64_t>(static_cast<std::uint64_t>(blob.size))
                     : std::nullopt;
  const std::uint64_t total = size.value_or(0);
  auto make = [this](std::string url) { return new_request("GET", std::move(url)); };
  auto authed = [this, &scopes](http::Request& r, const http::StreamHandlers& h) {
    return exchange(r, scopes, &h);
  };
  const std::string url = fmt::format("{}/v2/{}/blobs/{}", base_url(), repository, blob.digest);

  BlobWriter writer = store.ingest(blob.digest, size);
  std::uint64_t done = 0;  // received; written once `pending` is flushed
  std::string pending;
  pending.reserve(kBlobWriteBatch);
  auto flush = [&] {
    if (pending.empty()) return;
    try {
      writer.write(pending);
    } catch (...) {
      pending.clear();  // the writer is gone: a flush on the way out must not mask this error
      throw;
    }
    pending.clear();
  };
  Backoff backoff(options_.retry.backoff);
  int failures = 0;
  int resumes = 0;
  for (;;) {
    http::Headers headers;
    if (done > 0) headers.set("Range", fmt::format("bytes={}-", done));
    const std::uint64_t before = done;
    http::StreamHandlers handlers;
    handlers.on_head = [&](const http::Response& head) {
      if (done > 0) {
        const auto range = parse_content_range(head.headers.get("Content-Range").value_or(""));
        if (head.status != 206 || !range || range->first != done) {
          // The registry ignored the Range (200) or sent another one: start over.
          spdlog::info(
              "registry blob restart registry={} repository={} digest={} status={} "
              "reason=\"range not honoured\"",
              options_.registry, repository, blob.digest, head.status);
          writer.abort();
          writer = store.ingest(blob.digest, size);
          pending.clear();
          done = 0;
          if (head.status == 206) return http::BodyAction::kAbort;
        }
      }
      return http::BodyAction::kStream;
    };
    handlers.on_body = [&](std::string_view chunk) {
      if (pending.size() + chunk.size() > kBlobWriteBatch) flush();
      if (chunk.size() >= kBlobWriteBatch) {
        writer.write(chunk);
      } else {
        pending.append(chunk);
      }
      done += chunk.size();
      if (progress) progress(done, total);
      return true;
    };
    try {
      http::Response response;
      try {
        response = blob_get(transport_, make, authed, url, headers, handlers, what);
      } catch (const Error&) {
        flush();  // what arrived before the failure counts for the resume
        throw;
      }
      flush();
      if (response.status == 416 && before > 0) {
        writer.abort();
        writer = store.ingest(blob.digest, size);
        done = 0;
        continue;
      }
      if (!response.ok()) {
        if (failures + 1 < options_.retry.max_attempts && retryable_status(response.status)) {
          ++failures;
          wait_before_retry(backoff, response.headers.get("Retry-After"), what,
                            describe_registry_failure("", response.status, response.body));
          continue;
        }
        fail(response, what);
      }
      if (response.aborted) {
        if (++resumes > kMaxResumes) {
          throw Error(Code::kUnavailable, fmt::format("{}: too many restarts", what));
        }
        continue;  // a mismatched 206: restart without Range
      }
      break;
    } catch (const http::HttpStatusError&) {
      throw;
    } catch (const Error& e) {
      if (options_.stop.stop_requested() || !transport_retryable(e)) {
        throw Error(e.code(), fmt::format("{}: {}", what, e.what()));
      }
      if (done > before) {
        failures = 0;
        backoff.reset();
      } else {
        ++failures;
      }
      if (failures >= options_.retry.max_attempts || ++resumes > kMaxResumes) {
        throw Error(e.code(),
                    fmt::format("{}: giving up after {} bytes: {}", what, done, e.what()));
      }
      spdlog::info(
          "registry blob resume registry={} repository={} digest={} offset={} "
          "error=\"{}\"",
          options_.registry, repository, blob.digest, done, e.what());
      if (done == before) wait_before_retry(backoff, std::nullopt, what, e.what());
    }
  }
  try {
    writer.commit();
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("{}: {}", what, e.what()));
  }
}

// ---- Push -----------------------------------------------------------------------------------

bool RegistryClient::mount_blob(std::string_view repository, std::string_view digest,
                                std::string_view from) {
  ensure_scheme();
  const std::string what =
      fmt::format("{}: mounting blob {} from {}", describe(repository), short_digest(digest), from);
  std::string url = fmt::format("{}/v2/{}/blobs/uploads/", base_url(), repository);
  url = append_query(url, "mount", digest);
  url = append_query(url, "from", from);
  http::Request r = new_request("POST", url);
  r.body = std::string();
  const auto scopes = merge_scopes(push_scope(repository), {repository_scope(from, {"pull"})});
  const http::Response response = execute(std::move(r), scopes, what);
  if (response.status == 201) return true;
  if (response.status == 202) {
    // A normal upload was started instead: cancel it (failures do not matter).
    if (const auto location = response.headers.get("Location")) {
      try {
        const std::string upload = resolve_url(url, *location);
        if (same_origin(upload, base_url())) {
          http::Request cancel = new_request("DELETE", upload);
          (void)exchange(cancel, push_scope(repository), nullptr);
        }
      } catch (const Error& e) {
        spdlog::debug("registry upload cancel failed registry={} error={}", options_.registry,
                      e.what());
      }
    }
    return false;
  }
  spdlog::debug("registry mount refused registry={} repository={} from={} status={}",
                options_.registry, repository, from, response.status);
  return false;
}

void RegistryClient::upload(std::string_view repository, std::string_view digest,
                            std::uint64_t size, BlobSource& source, const UploadOptions& options) {
  const std::string what =
      fmt::format("{}: uploading blob {}", describe(repository), short_digest(digest));
  const auto scopes = push_scope(repository);
  const std::string start_url = fmt::format("{}/v2/{}/blobs/uploads/", base_url(), repository);
  http::Request post = new_request("POST", start_url);
  post.body = std::string();
  const http::Response started = execute(std::move(post), scopes, what);
  if (started.status != 202) fail(started, what);
  auto next_location = [&](const http::Response& response, const std::string& base) {
    const auto location = response.headers.get("Location");
    if (!location) {
      throw Error(Code::kInvalidArgument,
                  fmt::format("{}: HTTP {} without an upload Location", what, response.status));
    }
    return resolve_url(base, *location);
  };
  std::string location = next_location(started, start_url);
  auto send_to_upload = [&](http::Request& r) {
    // Credentials only to the registry itself; an upload elsewhere goes without them.
    return same_origin(r.url, base_url()) ? exchange(r, scopes, nullptr) : transport_.send(r);
  };

  std::uint64_t sent = 0;
  auto body_of = [&](std::uint64_t length) {
    auto remaining = std::make_shared<std::uint64_t>(length);
    return http::BodySource{
        [&source, &sent, &options, size, remaining, &what](std::span<char> buffer) -> std::size_t {
          if (*remaining == 0) return 0;
          const std::size_t want =
              static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), *remaining));
          const std::size_t n = source.read(buffer.data(), want);
          if (n == 0) {
            throw Error(Code::kDataLoss,
                        fmt::format("{}: the local blob ended {} bytes early", what, *remaining));
          }
          *remaining -= n;
          sent += n;
          if (options.progress) options.progress(sent, size);
          return n;
        },
        length};
  };

  if (options.chunk_size > 0) {
    while (sent < size) {
      const std::uint64_t length = std::min(options.chunk_size, size - sent);
      http::Request patch = new_request("PATCH", location);
      patch.timeout = std::chrono::milliseconds(0);
      patch.headers.set("Content-Type", "application/octet-stream");
      patch.headers.set("Content-Range", format_upload_range(sent, sent + length - 1));
      patch.body = body_of(length);
      const http::Response response = send_to_upload(patch);
      if (response.status != 202) fail(response, what);
      location = next_location(response, location);
    }
    http::Request put = new_request("PUT", append_query(location, "digest", digest));
    put.body = std::string();
    const http::Response response = send_to_upload(put);
    if (response.status != 201) fail(response, what);
    return;
  }
  http::Request put = new_request("PUT", append_query(location, "digest", digest));
  put.timeout = std::chrono::milliseconds(0);
  put.headers.set("Content-Type", "application/octet-stream");
  put.body = body_of(size);
  const http::Response response = send_to_upload(put);
  if (response.status != 201) fail(response, what);
}

UploadResult RegistryClient::push(std::string_view repository, std::string_view digest,
                                  std::uint64_t size,
                                  const std::function<std::unique_ptr<BlobSource>()>& open,
                                  const UploadOptions& options) {
  ensure_scheme();
  if (blob_size(repository, digest)) {
    if (options.progress) options.progress(size, size);
    return UploadResult::kExisted;
  }
  for (const auto& from : options.mount_from) {
    if (from == repository) continue;
    if (mount_blob(repository, digest, from)) {
      if (options.progress) options.progress(size, size);
      return UploadResult::kMounted;
    }
  }
  const std::string what =
      fmt::format("{}: uploading blob {}", describe(repository), short_digest(digest));
  Backoff backoff(options_.retry.backoff);
  for (int attempt = 1;; ++attempt) {
    try {
      const auto source = open();
      upload(repository, digest, size, *source, options);
      return UploadResult::kUploaded;
    } catch (const http::HttpStatusError& e) {
      if (attempt >= options_.retry.max_attempts || !retryable_status(e.status())) throw;
      wait_before_retry(backoff, e.retry_after(), what, e.what());
    } catch (const Error& e) {
      if (attempt >= options_.retry.max_attempts || options_.stop.stop_requested() ||
          !transport_retryable(e)) {
        throw;
      }
      wait_before_retry(backoff, std::nullopt, what, e.what());
    }
  }
}

UploadResult RegistryClient::push_blob(std::string_view repository, const Descriptor& blob,
                                       const Store& store, const UploadOptions& options) {
  const std::uint64_t size = store.size(blob.digest).value_or(0);
  if (!store.has(blob.digest)) {
    throw Error(Code::kNotFound, fmt::format("pushing to {}: blob {} is not in the local store",
                                             describe(repository), blob.digest));
  }
  return push(
      repository, blob.digest, size,
      [&store, &blob]() -> std::unique_ptr<BlobSource> {
        return std::make_unique<StoreSource>(store.open(blob.digest));
      },
      options);
}

UploadResult RegistryClient::push_blob_data(std::string_view repository, std::string_view data,
                                            const UploadOptions& options) {
  const std::string digest = sha256_digest(data);
  return push(
      repository, digest, data.size(),
      [data]() -> std::unique_ptr<BlobSource> { return std::make_unique<MemorySource>(data); },
      options);
}

// ---- Lists ----------------------------------------------------------------------------------

std::vector<std::string> RegistryClient::list_pages(std::string url,
                                                    const std::vector<std::string>& scopes,
                                                    std::string_view what, bool tags) {
  std::vector<std::string> out;
  std::vector<std::string> seen;
  for (int page = 0; page < kMaxPages; ++page) {
    http::Request r = new_request("GET", url);
    r.headers.set("Accept", "application/json");
    r.max_body_bytes = kMaxListBytes;
    const http::Response response = execute(std::move(r), scopes, what);
    if (!response.ok()) fail(response, what);
    std::vector<std::string> items;
    try {
      items = tags ? parse_tags_list(response.body) : parse_catalog(response.body);
    } catch (const Error& e) {
      throw e.wrap(what);
    }
    out.insert(out.end(), items.begin(), items.end());
    const auto next = parse_link_next(response.headers.get_all("Link"));
    if (!next) return out;
    std::string next_url = resolve_url(url, *next);
    if (!same_origin(next_url, base_url())) {
      throw Error(Code::kInvalidArgument,
                  fmt::format("{}: the next page link points to another host", what));
    }
    if (std::find(seen.begin(), seen.end(), next_url) != seen.end() || items.empty()) {
      return out;  // a registry looping on itself
    }
    seen.push_back(next_url);
    url = std::move(next_url);
  }
  throw Error(Code::kResourceExhausted, fmt::format("{}: more than {} pages", what, kMaxPages));
}

std::vector<std::string> RegistryClient::list_tags(std::string_view repository, int page_size) {
  ensure_scheme();
  std::string url = fmt::format("{}/v2/{}/tags/list", base_url(), repository);
  if (page_size > 0) url = append_query(url, "n", std::to_string(page_size));
  return list_pages(url, pull_scope(repository),
                    fmt::format("{}: listing tags", describe(repository)), true);
}

std::vector<std::string> RegistryClient::catalog(int page_size) {
  ensure_scheme();
  std::string url = base_url() + "/v2/_catalog";
  if (page_size > 0) url = append_query(url, "n", std::to_string(page_size));
  return list_pages(url, {"registry:catalog:*"},
                    fmt::format("{}: listing repositories", describe({})), false);
}

std::vector<SearchResult> RegistryClient::search_v1(std::string_view term, int limit) {
  ensure_scheme();
  const std::string what = fmt::format("{}: searching for \"{}\"", describe({}), term);
  std::string host = api_host_;
  if (options_.registry == kDefaultDomain || options_.registry == kLegacyDefaultDomain) {
    host = "index.docker.io";
  }
  std::string scheme = base_url().substr(0, base_url().find(':'));
  std::string url = append_query(scheme + "://" + host + "/v1/search", "q", term);
  if (limit > 0) url = append_query(url, "n", std::to_string(limit));
  http::Request r = new_request("GET", url);
  r.headers.set("Accept", "application/json");
  r.max_body_bytes = kMaxListBytes;
  const http::Response response = execute(std::move(r), {}, what);
  if (response.status == 404 || response.status == 405 || response.status == 501) {
    throw Error(Code::kNotFound,
                fmt::format("{}: the registry does not offer the search API (GET /v1/search "
                            "answered HTTP {})",
                            what, response.status));
  }
  if (!response.ok()) fail(response, what);
  try {
    return parse_search_results(response.body);
  } catch (const Error& e) {
    throw e.wrap(what);
  }
}

}  // namespace stowage::oci
