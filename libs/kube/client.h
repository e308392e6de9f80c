// The Kubernetes REST client: JSON objects over an http::Transport, with the credentials of a
// RestConfig, client-side rate limiting, one retry after a 401 with a refreshed credential, and
// retries of 429/5xx answers that carry Retry-After. Request shapes come from resource.h; answers
// that are errors become KubeError (errors.h). watch() hands the raw stream to a callback; the
// framing of events is the caller's.
//
//   Client client(rest_config, http_client, real_clock());
//   ResourceRef cm{{"", "v1", "configmaps"}, "default", "settings", ""};
//   nlohmann::json obj = client.get(cm);
//
// Thread-safe: any number of threads may call any method concurrently. The transport and clock
// are borrowed and must outlive the Client.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "http/transport.h"
#include "kube/config.h"
#include "kube/errors.h"
#include "kube/rate_limiter.h"
#include "kube/resource.h"

namespace stowage::kube {

struct ClientOptions {
  std::chrono::milliseconds request_timeout{60'000};  // every call but watch
  std::chrono::milliseconds connect_timeout{10'000};
  // Retries of a 429 or 5xx answer that says Retry-After, each wait capped at max_retry_wait.
  int max_retries = 3;
  std::chrono::seconds max_retry_wait{30};
  // Answers larger than this fail with ResourceExhausted (page large lists instead).
  std::size_t max_response_bytes = 256u << 20;
  // timeoutSeconds of a watch that does not set one (kube-rs: 290 s, below the 295 s limit some
  // proxies impose). The connection counts as dead after timeoutSeconds + watch_idle_slack
  // without a byte.
  std::chrono::seconds default_watch_timeout{290};
  std::chrono::seconds watch_idle_slack{10};
  // Requested on shutdown: waits (rate limit, Retry-After) and transfers end with Unavailable
  // ("cancelled"); watches return.
  std::stop_token stop{};
};

class Client {
 public:
  // Throws InvalidArgument for a config the transport cannot honour (no server, a
  // tls-server-name different from the server's host).
  Client(RestConfig config, http::Transport& transport, Clock& clock, ClientOptions options = {});

  nlohmann::json get(const ResourceRef& ref, const GetOptions& options = {});
  // get(), with NotFound as std::nullopt.
  std::optional<nlohmann::json> try_get(const ResourceRef& ref, const GetOptions& options = {});

  // One page: the List object, with metadata.continue when more remain.
  nlohmann::json list(const ResourceRef& collection, const ListOptions& options = {});
  // Every page of `page_size` items, following continue tokens (one consistent snapshot); each
  // page is handed to `on_page`. resourceVersion options apply to the first page only.
  void list_pages(const ResourceRef& collection, ListOptions options, std::int64_t page_size,
                  const std::function<void(nlohmann::json& page)>& on_page);
  // All pages as one List: every item, and the snapshot's metadata.resourceVersion.
  nlohmann::json list_all(const ResourceRef& collection, ListOptions options = {},
                          std::int64_t page_size = 500);

  // POST to the collection (ref.name is ignored). Returns the created object.
  nlohmann::json create(const ResourceRef& collection, const nlohmann::json& object,
                        const WriteOptions& options = {});
  // PUT of an object read earlier: its metadata.resourceVersion makes a stale write a Conflict.
  nlohmann::json update(const ResourceRef& ref, const nlohmann::json& object,
                        const WriteOptions& options = {});
  // update() of the status subresource.
  nlohmann::json update_status(const ResourceRef& ref, const nlohmann::json& object,
                               const WriteOptions& options = {});
  nlohmann::json patch(const ResourceRef& ref, PatchType type, const nlohmann::json& patch,
                       const PatchOptions& options = {});
  // Server-side apply of this field manager's whole intent (options.field_manager required);
  // ref.subresource "status" applies to the status.
  nlohmann::json apply(const ResourceRef& ref, const nlohmann::json& intent,
                       const PatchOptions& options);
  // Returns what the server answered: the object (still terminating, with finalizers) or a Status.
  nlohmann::json delete_(const ResourceRef& ref, const DeleteOptions& options = {});

  // GET of any API path, e.g. discovery ("/apis/stowage.io/v1alpha1").
  nlohmann::json get_path(std::string_view path);

  // Opens a watch on the collection and passes body chunks to `on_chunk` as they arrive (chunk
  // boundaries do not align with events). Returns when the server ends the stream (after
  // timeoutSeconds, default ClientOptions::default_watch_timeout), when `on_chunk` returns false,
  // or when `stop` (or ClientOptions::stop) is requested. An answer other than 200 throws its
  // KubeError before any chunk is delivered; a connection that breaks or goes idle for
  // timeoutSeconds + watch_idle_slack throws Unavailable / DeadlineExceeded.
  void watch(const ResourceRef& collection, ListOptions options,
             const std::function<bool(std::string_view chunk)>& on_chunk,
             const std::stop_token& stop = {});

  const RestConfig& config() const { return config_; }

 private:
  struct Call;
  http::Response execute(const ApiRequest& api, const Call& call);
  nlohmann::json execute_json(const ApiRequest& api, const std::string& context);
  http::Request build(const ApiRequest& api, const Call& call);

  const RestConfig config_;
  http::Transport& transport_;
  Clock& clock_;
  const ClientOptions options_;
  RateLimiter limiter_;
};

}  // namespace stowage::kube
