// A real Kubernetes control plane for integration and e2e tests, envtest-style: etcd,
// kube-apiserver (TLS, client-certificate authn, RBAC) and optionally kube-controller-manager, on
// free loopback ports with per-run certificates in a temp dir. Binaries come from hack/envtest.sh.
//   const BinaryLookup bins = ControlPlane::find_binaries();
//   if (!bins.dir) { if (bins.required) FAIL() << bins.problem; else GTEST_SKIP() << bins.problem;
//   } ControlPlane plane;  // ready when the constructor returns RunResult r =
//   plane.kubectl({"get", "ns", "default"});
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/transport.h"
#include "support/process.h"

namespace stowage::http {
class Client;
}

namespace stowage::test {

// Where the control plane binaries are, or why they cannot be used.
struct BinaryLookup {
  // The folder holding etcd, kube-apiserver, kube-controller-manager and kubectl; nullopt when
  // any of them is missing.
  std::optional<std::filesystem::path> dir;
  // Why `dir` is empty, ending with what to do about it.
  std::string problem;
  // A missing binary is a test failure, not a skip: STOWAGE_ENVTEST_BIN is set (the test runner
  // claims to have built them) or CI is set (non-empty and not "false").
  bool required = false;
};

struct ControlPlaneOptions {
  // Start kube-controller-manager (all controllers: garbage collector, namespace deletion,
  // service-account tokens, ...). Without it, owner-referenced objects are never collected.
  bool with_controller_manager = true;
  // false passes --watch-cache=false: lists and watches are served from etcd directly.
  bool watch_cache = true;
  // Appended to the kube-apiserver command line (later flags win over the fixture's).
  std::vector<std::string> extra_apiserver_flags;
  // Appended to the kube-controller-manager command line.
  std::vector<std::string> extra_controller_manager_flags;
  // Per component: how long to wait for etcd /health, apiserver /readyz, controller-manager
  // /healthz.
  std::chrono::milliseconds start_timeout = std::chrono::seconds(60);
  // Where the binaries are; empty: find_binaries().
  std::filesystem::path bin_dir;
};

// A client certificate issued by the control plane's CA (PEM).
struct ClientCert {
  std::string user;
  std::vector<std::string> groups;
  std::string cert_pem;
  std::string key_pem;
};

// One control plane. The constructor generates the PKI, starts the processes and returns once
// the apiserver's /readyz (and the controller-manager's /healthz) answer 200; it throws
// stowage::Error with the logs of the failing component otherwise. Ports are picked at run time;
// a start that loses a port race is retried on new ports. The destructor (and stop()) end the
// controller-manager, then the apiserver, then etcd. Not thread-safe: one test thread owns it;
// the accessors returning const data may be read from any thread while nobody calls a mutator.
class ControlPlane {
 public:
  // Finds the binaries: $STOWAGE_ENVTEST_BIN when set, else the folder that
  // `hack/envtest.sh --print-dir` names (it builds nothing).
  static BinaryLookup find_binaries();

  explicit ControlPlane(ControlPlaneOptions options = {});
  ~ControlPlane();
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  // "https://127.0.0.1:PORT". The port stays the same across restart_apiserver().
  std::string server_url() const;
  int apiserver_port() const { return apiserver_port_; }
  // "http://127.0.0.1:PORT" (plain HTTP, no auth).
  std::string etcd_url() const;
  const std::filesystem::path& bin_dir() const { return bin_dir_; }
  // A kubeconfig for `admin` (group system:masters) with all credentials inline (*-data).
  std::filesystem::path kubeconfig_path() const { return dir_ / "admin.kubeconfig"; }
  // The CA that signed the serving certificate and every client certificate.
  const std::string& ca_pem() const { return ca_cert_pem_; }
  const std::string& admin_cert_pem() const { return admin_.cert_pem; }
  const std::string& admin_key_pem() const { return admin_.key_pem; }
  const ClientCert& admin() const { return admin_; }
  // TLS settings that trust the CA and present `cert` (default: admin), for http::Request::tls.
  http::TlsOptions tls_options() const { return tls_options(admin_); }
  http::TlsOptions tls_options(const ClientCert& cert) const;
  // How long the constructor took until everything was ready.
  std::chrono::milliseconds startup_duration() const { return startup_duration_; }

  // Issues a client certificate: CN = user, one O per group. RBAC then applies to that user.
  ClientCert mint_client_cert(std::string_view user,
                              const std::vector<std::string>& groups = {}) const;
  // Writes a kubeconfig for `cert` to `path` (credentials inline), e.g. to run a component as a
  // non-admin user.
  void write_kubeconfig(const std::filesystem::path& path, const ClientCert& cert) const;

  // Runs `kubectl --kubeconfig <admin> args...` with a discovery cache in the temp dir.
  RunResult kubectl(const std::vector<std::string>& args, const RunOptions& options = {}) const;
  // The same with another kubeconfig (one from write_kubeconfig(), to act as another user).
  RunResult kubectl_as(const std::filesystem::path& kubeconfig,
                       const std::vector<std::string>& args, const RunOptions& options = {}) const;

  // Stops kube-apiserver and starts it again on the same port against the same etcd; returns once
  // /readyz answers 200. Clients see connections drop (watch-resume tests).
  void restart_apiserver();
  // Stops everything (controller-manager, apiserver, etcd). Idempotent; the temp dir stays until
  // destruction.
  void stop();

  // The running processes (null when not started or stopped), e.g. to read their logs.
  Process* etcd_process() { return etcd_.get(); }
  Process* apiserver_process() { return apiserver_.get(); }
  Process* controller_manager_process() { return controller_manager_.get(); }
  // The temp dir holding certificates, kubeconfigs, etcd data and the components' logs.
  const std::filesystem::path& dir() const { return dir_.path(); }

 private:
  struct Pki;

  void write_pki();
  void start_etcd();
  void start_apiserver(bool fixed_port);
  void start_controller_manager();
  bool apiserver_ready();
  std::vector<std::string> apiserver_argv() const;

  ControlPlaneOptions options_;
  TempDir dir_;
  std::filesystem::path bin_dir_;
  std::unique_ptr<Pki> pki_;
  std::unique_ptr<http::Client> http_;
  std::string ca_cert_pem_;
  ClientCert admin_;
  int etcd_client_port_ = 0;
  int etcd_peer_port_ = 0;
  int apiserver_port_ = 0;
  int controller_manager_port_ = 0;
  int apiserver_starts_ = 0;  // numbers the log files of restarts
  std::chrono::milliseconds startup_duration_{0};
  // Declared last so that they are destroyed first; stop() orders them explicitly anyway.
  std::unique_ptr<Process> etcd_;
  std::unique_ptr<Process> apiserver_;
  std::unique_ptr<Process> controller_manager_;
};

// Applies Stowage's CRDs (crds/, server-side) to `plane` and waits until RegistryConfig,
// ImageCache and NodeCache are Established. Returns "" or what failed, for a suite's set-up.
std::string install_stowage_crds(const ControlPlane& plane);

}  // namespace stowage::test
