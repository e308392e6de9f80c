// RegistryClient: the OCI distribution API of one registry host over an http::Transport — ping,
// manifests, blobs (streamed into the content store, resumed with Range after a reset), uploads
// (mount, monolithic, chunked), tags, catalog and Docker Hub style search. It authenticates as
// registries ask (anonymous first; Basic; Bearer tokens per scope from the token endpoint, cached
// and reused), retries 408/429/5xx and connection failures with backoff honouring Retry-After,
// and follows redirects itself so that Authorization never reaches another host.
//   RegistryClient client(transport, real_clock(), {.registry = "quay.io", ...});
//   auto m = client.get_manifest("team/app", "1.0");
// Thread-safe: layers of one image are fetched through one client from several threads.
// Errors are stowage::Error naming the registry and repository; credentials and tokens never
// appear in a message or a log line.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "base/backoff.h"
#include "base/clock.h"
#include "http/transport.h"
#include "oci/auth.h"
#include "oci/distribution.h"
#include "oci/manifest.h"
#include "oci/store.h"

namespace stowage::oci {

// The manifest media types a client accepts, in the order sent in Accept.
std::string manifest_accept_header();

struct RetryPolicy {
  // Attempts per request (the first included). A blob download that made progress before a
  // failure resumes without using one up.
  int max_attempts = 5;
  BackoffPolicy backoff{std::chrono::milliseconds(1000), std::chrono::milliseconds(30'000), 2.0,
                        0.1};
  // A Retry-After asking for longer than this is not waited for: the request fails.
  std::chrono::seconds max_retry_after{120};
};

struct RegistryClientOptions {
  // "quay.io", "127.0.0.1:5000", "docker.io" (served by registry-1.docker.io).
  std::string registry;
  // registries.conf `insecure`: TLS is not verified, and plain HTTP is used when the registry does
  // not answer HTTPS.
  bool insecure = false;
  // Talk plain HTTP from the start (a registry known to serve only HTTP, as in tests).
  bool plain_http = false;
  // false skips TLS verification (only when told: --tls-verify=false).
  bool tls_verify = true;
  // The containers certs.d root (e.g. /etc/containers/certs.d): <certs_dir>/<registry>/*.crt are
  // CAs trusted besides the system store, and a *.cert with its *.key is the client certificate.
  // Empty: none.
  std::string certs_dir;
  Credentials credentials;
  RetryPolicy retry;
  // Per request: connect timeout, and the low-speed limit that ends a stalled transfer.
  std::chrono::milliseconds connect_timeout{30'000};
  std::uint32_t low_speed_limit = 1;
  std::chrono::seconds low_speed_time{60};
  // Small requests (manifests, lists, tokens): whole-transfer timeout.
  std::chrono::milliseconds request_timeout{120'000};
  // Aborts requests in flight and retry waits (Error kUnavailable "cancelled").
  std::stop_token stop;
};

struct ManifestInfo {
  std::string digest;
  std::string media_type;
  std::int64_t size = 0;
};

struct FetchedManifest {
  std::string bytes;
  std::string media_type;  // normalized Content-Type, else the body's mediaType
  std::string digest;      // sha256 of bytes (verified against a digest reference)
};

// Bytes of one blob moved so far. total is 0 when unknown.
using TransferProgress = std::function<void(std::uint64_t done, std::uint64_t total)>;

struct UploadOptions {
  // 0: monolithic upload (POST, then one PUT with the body); else PATCH chunks of this size.
  std::uint64_t chunk_size = 0;
  // Repositories of the same registry the blob may be mounted from, tried in order.
  std::vector<std::string> mount_from;
  TransferProgress progress;
};

enum class UploadResult { kExisted, kMounted, kUploaded };

class RegistryClient {
 public:
  RegistryClient(http::Transport& transport, Clock& clock, RegistryClientOptions options);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  const std::string& registry() const { return options_.registry; }
  // "https://host" or "http://host" as decided so far.
  std::string base_url() const;

  // GET /v2/: checks the registry answers the distribution API and that the credentials (if any)
  // are accepted (for Bearer registries: a token can be had with them). Unauthenticated on bad
  // credentials or when the registry demands credentials none were given for.
  void ping();

  // HEAD manifest (falls back to GET when the registry omits the digest). NotFound when absent.
  ManifestInfo head_manifest(std::string_view repository, std::string_view reference);
  // GET manifest with every supported type in Accept (at most kMaxManifestBytes). A digest
  // `reference` is verified against the bytes; else Docker-Content-Digest, when sent.
  FetchedManifest get_manifest(std::string_view repository, std::string_view reference);
  // PUT manifest; returns its digest (checked against Docker-Content-Digest when sent).
  std::string put_manifest(std::string_view repository, std::string_view reference,
                           std::string_view bytes, std::string_view media_type);

  // HEAD blob: its size, or nullopt when the repository does not have it.
  std::optional<std::uint64_t> blob_size(std::string_view repository, std::string_view digest);
  // A small blob (a config) in memory, verified against `digest`; InvalidArgument past max_bytes.
  std::string get_blob(std::string_view repository, std::string_view digest,
                       std::size_t max_bytes = kMaxConfigBytes);
  // Streams a blob into `store` (hashing while writing; the store refuses a mismatch and keeps
  // nothing, Error kDataLoss). After a connection failure mid-blob it asks for the rest with
  // `Range: bytes=N-`; a registry answering 200 instead of 206 restarts the blob.
  void fetch_blob(std::string_view repository, const Descriptor& blob, const Store& store,
                  const TransferProgress& progress = {});

  // Pushes a blob of `store` unless the repository has it: HEAD, then a mount from
  // options.mount_from, then an upload. Restarts the upload after a retryable failure.
  UploadResult push_blob(std::string_view repository, const Descriptor& blob, const Store& store,
                         const UploadOptions& options = {});
  // The same for bytes in memory (configs, tests).
  UploadResult push_blob_data(std::string_view repository, std::string_view data,
                              const UploadOptions& options = {});
  // POST ?mount=<digest>&from=<from>: true when the registry mounted it (201); false when it
  // started a normal upload instead (which is cancelled) or refused.
  bool mount_blob(std::string_view repository, std::string_view digest, std::string_view from);

  // Every tag, following Link pagination; page_size > 0 sends n=<page_size>.
  std::vector<std::string> list_tags(std::string_view repository, int page_size = 0);
  // Every repository of /v2/_catalog, following Link pagination.
  std::vector<std::string> catalog(int page_size = 0);
  // Docker Hub's GET /v1/search?q=<term>&n=<limit>. NotFound when the registry does not offer it.
  std::vector<SearchResult> search_v1(std::string_view term, int limit = 25);

  // How many token requests this client made (for tests of token reuse).
  int token_requests() const;

  // A blob being uploaded, read sequentially (the store's BlobReader, or bytes in memory).
  struct BlobSource {
    virtual ~BlobSource() = default;
    virtual std::size_t read(char* buffer, std::size_t size) = 0;
  };

 private:
  struct Auth;

  http::Request new_request(std::string method, std::string url) const;
  // Sends with authentication for `scopes` and retries; the response may be any status.
  http::Response execute(http::Request request, const std::vector<std::string>& scopes,
                         std::string_view what, bool retry_statuses = true);
  // One authenticated exchange (no retries): adds Authorization, answers one 401 challenge.
  http::Response exchange(http::Request& request, const std::vector<std::string>& scopes,
                          const http::StreamHandlers* handlers);
  // The Authorization value for `scopes` under the known challenge, fetching a token if needed.
  std::optional<std::string> authorization(const std::vector<std::string>& scopes,
                                           bool force_refresh);
  std::string fetch_token(const std::vector<std::string>& scopes);
  // Learns the challenge from a 401; true when a retry with (new) credentials makes sense.
  bool learn_challenge(const http::Response& response, bool had_authorization);
  void ensure_scheme();
  [[noreturn]] void fail(const http::Response& response, std::string_view what) const;
  void wait_before_retry(Backoff& backoff, const std::optional<std::string>& retry_after,
                         std::string_view what, const std::string& reason);
  UploadResult push(std::string_view repository, std::string_view digest, std::uint64_t size,
                    const std::function<std::unique_ptr<BlobSource>()>& open,
                    const UploadOptions& options);
  void upload(std::string_view repository, std::string_view digest, std::uint64_t size,
              BlobSource& source, const UploadOptions& options);
  std::vector<std::string> list_pages(std::string url, const std::vector<std::string>& scopes,
                                      std::string_view what, bool tags);
  std::string describe(std::string_view repository) const;

  http::Transport& transport_;
  Clock& clock_;
  RegistryClientOptions options_;
  std::string api_host_;  // registry-1.docker.io for docker.io
  http::TlsOptions tls_;
  std::unique_ptr<Auth> auth_;
  mutable std::mutex scheme_mu_;  // guards scheme_
  std::string scheme_;            // "https" or "http"; empty until decided
};

// Reads <certs_dir>/<registry>/ as containers' certs.d: every *.crt appended to ca_pem (system
// store kept), the first *.cert with a matching *.key as client certificate. Missing folder: the
// defaults. Throws InvalidArgument for a *.cert without its *.key (or the reverse).
http::TlsOptions tls_options_from_certs_dir(const std::string& certs_dir,
                                            std::string_view registry);

}  // namespace stowage::oci
