// A real OCI registry for integration and e2e tests: Debian's `docker-registry` (CNCF
// distribution 2.8) on 127.0.0.1 at a free port, with its storage in a temp dir. Plain HTTP by
// default; optionally HTTPS with a per-run test CA, and htpasswd Basic or Bearer token auth (with
// a TokenIssuer it owns). Construct it, use host() in references ("127.0.0.1:PORT/repo:tag"),
// let it go out of scope.
//   RegistryFixture registry;
//   const std::string digest = seed_image(registry.host(), "team/app", "1.0");
//   RegistryFixture secured({.tls = true, .auth = RegistryAuth::kToken});
//   secured.seed_image("team/app", "1.0");  // skopeo with the CA and the credentials
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "http/transport.h"
#include "support/image_seed.h"
#include "support/process.h"
#include "support/test_pki.h"
#include "support/token_issuer.h"

namespace stowage::test {

enum class RegistryAuth {
  kNone,      // anyone may pull and push
  kHtpasswd,  // auth.htpasswd: HTTP Basic against a bcrypt htpasswd file
  kToken,     // auth.token: Bearer tokens from the fixture's TokenIssuer
};

struct RegistryOptions {
  // storage.delete.enabled: allows DELETE of manifests and blobs.
  bool delete_enabled = true;
  // log.level: error, warn, info, debug. The access log is always on (it goes to the log file).
  std::string log_level = "info";
  // How long to wait for `GET /v2/` to answer (200; 401 with auth).
  std::chrono::milliseconds start_timeout = std::chrono::seconds(30);
  // Serve HTTPS (http.tls) with a server certificate for 127.0.0.1 and localhost issued by a
  // test CA made for this registry; clients trust it through ca_file()/ca_pem() or cert_dir().
  bool tls = false;
  RegistryAuth auth = RegistryAuth::kNone;
  // The one account of htpasswd and token auth.
  std::string username = "stowage";
  std::string password = "stowage-test-password";
  // Token auth: the issuer's settings. Its username and password are replaced by the two above.
  TokenIssuerOptions token = {};
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
  // "http://127.0.0.1:PORT", or "https://..." with TLS.
  std::string url() const;
  const RegistryOptions& options() const { return options_; }

  // TLS only (Error kInvalidArgument otherwise): the test CA's certificate (PEM) and a file
  // holding it; certs_d_dir() is laid out like /etc/containers/certs.d
  // (<certs_d_dir>/<host()>/ca.crt), and cert_dir() is its <host()> folder, the argument of
  // skopeo/podman --cert-dir (--src-cert-dir, --dest-cert-dir).
  const std::string& ca_pem() const;
  std::filesystem::path ca_file() const;
  std::filesystem::path certs_d_dir() const;
  std::filesystem::path cert_dir() const;
  // What an http::Request needs to reach this registry: ca_file() with TLS, else defaults.
  http::TlsOptions tls_options() const;

  // The account of htpasswd and token auth, and "user:password" for skopeo --creds.
  const std::string& username() const { return options_.username; }
  const std::string& password() const { return options_.password; }
  std::string credentials() const;
  // Writes a containers auth.json (auths.<host()>.auth) for --authfile / REGISTRY_AUTH_FILE.
  void write_auth_file(const std::filesystem::path& path) const;
  // Token auth only (Error kInvalidArgument otherwise): the issuer behind auth.token.realm.
  TokenIssuer& token_issuer();

  // Builds `spec` and pushes it as repo:tag with skopeo, using this registry's CA and
  // credentials as needed; returns the manifest digest. Throws stowage::Error with skopeo's output.
  std::string seed_image(const std::string& repo, const std::string& tag,
                         const ImageSpec& spec = {}) const;

  // The storage root (storage.filesystem.rootdirectory) and the generated config.yml.
  std::filesystem::path storage_dir() const { return dir_ / "storage"; }
  std::filesystem::path config_path() const { return dir_ / "config.yml"; }
  // Everything the registry wrote so far: application log and access log ("GET /v2/... 200").
  std::string log() const;
  // The registry process, e.g. to stop it and test how clients handle an outage.
  Process& process() { return *process_; }

 private:
  void prepare_tls();
  void prepare_htpasswd();
  bool ready() const;

  RegistryOptions options_;
  TempDir dir_;
  int port_ = 0;
  std::unique_ptr<TestCa> ca_;
  std::unique_ptr<TokenIssuer> token_issuer_;
  std::unique_ptr<Process> process_;
};

}  // namespace stowage::test
