// Whole-image transfers between registries and the local content store: pull_image (manifest →
// platform selection → config and layers in parallel, skipping blobs the store has, then the
// name), push_image (blobs, then manifests, children before their index) and login_check.
// Pulls try the sources resolve.h gives (mirrors, then the primary location) in order and say
// what each one answered. A RegistryConnector holds what every registry client needs (transport,
// clock, certs.d, credentials), so that a pull can open clients for its mirrors.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "http/transport.h"
#include "oci/auth.h"
#include "oci/registry_client.h"
#include "oci/resolve.h"
#include "oci/store.h"
#include "oci/types.h"
#include "reference/reference.h"

namespace stowage::oci {

struct ConnectOptions {
  // containers certs.d root (<certs_dir>/<host>/ca.crt, client.cert, client.key); empty: none.
  std::string certs_dir;
  // false: no TLS verification anywhere (--tls-verify=false).
  bool tls_verify = true;
  // Registries reached over plain HTTP from the start ("127.0.0.1:5000"); others marked
  // insecure try HTTPS first.
  std::vector<std::string> plain_http;
  // The credentials for a registry host; unset or empty result: anonymous.
  std::function<Credentials(std::string_view registry)> credentials;
  RetryPolicy retry;
  // A transfer that receives nothing for this long fails (and is retried as `retry` says).
  std::chrono::seconds stall_timeout{60};
  // Cancels every request of every client this connector makes.
  std::stop_token stop;
};

// Makes RegistryClients. Thread-safe; the transport and clock must outlive it and its clients.
class RegistryConnector {
 public:
  RegistryConnector(http::Transport& transport, Clock& clock, ConnectOptions options = {});

  // A client for `registry` ("host[:port]"); `credentials` replace the looked-up ones when set.
  // `stop` (if stoppable) cancels this client instead of the connector's stop token.
  std::unique_ptr<RegistryClient> connect(std::string_view registry, bool insecure,
                                          std::optional<Credentials> credentials = std::nullopt,
                                          std::stop_token stop = {}) const;

  const ConnectOptions& options() const { return options_; }

 private:
  http::Transport& transport_;
  Clock& clock_;
  ConnectOptions options_;
};

enum class BlobKind { kManifest, kConfig, kLayer };

// Progress of one blob. Calls for one blob come in order; calls for different blobs may come
// from different worker threads, but never at the same time (the callback need not lock).
struct BlobProgress {
  std::string digest;
  BlobKind kind = BlobKind::kLayer;
  std::uint64_t done = 0;
  std::uint64_t total = 0;
  bool skipped = false;   // already present (pull: in the store; push: in the registry or mounted)
  bool finished = false;  // the last call for this blob
};
using ProgressCallback = std::function<void(const BlobProgress&)>;

struct PullOptions {
  // The platform to select from an index; nullopt: the host's (host_platform()).
  std::optional<Platform> platform;
  int max_parallel_layers = 4;
  ProgressCallback progress;
  // The name to give the image in the store; empty: the primary source's reference (tagged
  // "latest" when it has neither tag nor digest).
  std::string name;
};

struct PullResult {
  Reference reference;          // what was asked of the source that served it
  std::string source_location;  // that source's registries.conf location
  bool from_mirror = false;
  std::string name;          // the name given in the store
  std::string digest;        // the manifest or index the reference resolved to
  std::string media_type;    // of that document
  std::string image_digest;  // the platform's image manifest (== digest for a manifest)
  // What the sources tried before the one that served said, "<location>: <error>" each.
  std::vector<std::string> source_errors;
};

// Pulls into `store` from the first source that works (pull_sources() order). Throws the last
// source's error code with a message listing what every source answered.
PullResult pull_image(Store& store, const std::vector<PullSource>& sources,
                      const RegistryConnector& registries, const PullOptions& options = {});

struct PushOptions {
  // 0: monolithic uploads; else chunked PATCH uploads of this size.
  std::uint64_t chunk_size = 0;
  // Repositories of the destination registry to mount blobs from before uploading them.
  std::vector<std::string> mount_from;
  int max_parallel_layers = 4;
  bool insecure = false;
  ProgressCallback progress;
};

// Pushes the image the store names `local_name` to `destination` (its tag, else its digest,
// else "latest"). For an index, the children present in the store are pushed first. Returns the
// digest of the top manifest or index. NotFound when the store has no such image.
std::string push_image(const Store& store, std::string_view local_name,
                       const Reference& destination, const RegistryConnector& registries,
                       const PushOptions& options = {});

// Checks `credentials` against `registry` as `podman login` does: GET /v2/ with them (for Bearer
// registries: a token obtained with them). Error kUnauthenticated, naming the registry and the
// user, when they are refused.
void login_check(const RegistryConnector& registries, std::string_view registry,
                 const Credentials& credentials, bool insecure = false);

}  // namespace stowage::oci
