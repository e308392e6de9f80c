// A real OCI registry for integration and e2e tests: Debian's `docker-registry` (CNCF
// distribution 2.8) serving plain HTTP on 127.0.0.1 at a free port, with its storage in a temp dir.
// Construct it, use host() in references ("127.0.0.1:PORT/repo:tag"), let it go out of scope.
//   RegistryFixture registry;
//   const std::string digest = seed_image(registry.host(), "team/app", "1.0");
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "support/process.h"

namespace stowage::test {

struct RegistryOptions {
  // storage.delete.enabled: allows DELETE of manifests and blobs.
  bool delete_enabled = true;
  // log.level: error, warn, info, debug. The access log is always on (it goes to the log file).
  std::string log_level = "info";
  // How long to wait for `GET /v2/` to answer 200.
  std::chrono::milliseconds start_timeout = std::chrono::seconds(30);
  // Not implemented yet, and the place for them: TLS (http.tls certificate/key from a test CA,
  // host() served as https) and htpasswd basic auth (auth.htpasswd realm/path). Both change the
  // readiness probe, which today is a plain-HTTP GET expecting 200.
};

// One registry process. Starts in the constructor (retrying on a new port when the chosen one was
// taken meanwhile) and stops (SIGTERM, then SIGKILL) in the destructor. Throws stowage::Error with
// the registry's log when it does not come up. Not thread-safe; the registry itself serves any
// number of concurrent clients.
class RegistryFixture {
 public:
  // Why the fixture cannot run on this machine (docker-registry missing), or nullopt.
  static std::optional<std::string> unavailable_reason();

  explicit RegistryFixture(RegistryOptions options = {});
  ~RegistryFixture();
  RegistryFixture(const RegistryFixture&) = delete;
  RegistryFixture& operator=(const RegistryFixture&) = delete;

  // "127.0.0.1:PORT", as written in image references and registries.conf locations.
  std::string host() const;
  int port() const { return port_; }
  // "http://127.0.0.1:PORT".
  std::string url() const;
  // The storage root (storage.filesystem.rootdirectory) and the generated config.yml.
  std::filesystem::path storage_dir() const { return dir_ / "storage"; }
  std::filesystem::path config_path() const { return dir_ / "config.yml"; }
  // Everything the registry wrote so far: application log and access log ("GET /v2/... 200").
  std::string log() const;
  // The registry process, e.g. to stop it and test how clients handle an outage.
  Process& process() { return *process_; }

 private:
  RegistryOptions options_;
  TempDir dir_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace stowage::test
