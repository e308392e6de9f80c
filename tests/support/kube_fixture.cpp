#include "support/kube_fixture.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>

#include "base/error.h"
#include "http/client.h"

#ifndef STOWAGE_SOURCE_DIR
#error "STOWAGE_SOURCE_DIR must name the source tree (it holds hack/envtest.sh)"
#endif

namespace stowage::test {
namespace {

using std::chrono::milliseconds;

constexpr int kPortAttempts = 5;
constexpr const char* kServiceClusterIpRange = "10.0.0.0/24";
const std::vector<std::string> kRequiredBinaries = {"etcd", "kube-apiserver",
                                                    "kube-controller-manager", "kubectl"};

// ---- OpenSSL ----------------------------------------------------------------------------------

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

// Throws with OpenSSL's queued error reasons.
[[noreturn]] void throw_openssl(std::string_view doing) {
  std::string reasons;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    reasons += reasons.empty() ? "" : "; ";
    reasons += buf;
  }
  throw Error(Code::kInternal,
              fmt::format("{}: {}", doing, reasons.empty() ? "unknown OpenSSL error" : reasons));
}

void check(int ok, std::string_view doing) {
  if (ok <= 0) throw_openssl(doing);
}

PkeyPtr generate_ec_key() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) throw_openssl("generating an EC P-256 key");
  return key;
}

PkeyPtr generate_rsa_key() {
  PkeyPtr key(EVP_RSA_gen(2048));
  if (!key) throw_openssl("generating an RSA 2048 key");
  return key;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string private_key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
        "writing a private key as PEM");
  return bio_text(bio.get());
}

std::string public_key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_PUBKEY(bio.get(), key), "writing a public key as PEM");
  return bio_text(bio.get());
}

std::string cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_X509(bio.get(), cert), "writing a certificate as PEM");
  return bio_text(bio.get());
}

std::string base64(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

struct CertSpec {
  std::string common_name;
  std::vector<std::string> organizations;
  bool is_ca = false;
  std::string key_usage;           // keyUsage extension value
  std::string extended_key_usage;  // extendedKeyUsage; empty: none
  std::string subject_alt_names;   // subjectAltName; empty: none
};

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (ext == nullptr)
    throw_openssl(fmt::format("building extension {}={}", OBJ_nid2sn(nid), value));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  check(ok, "adding a certificate extension");
}

// A certificate for `key`, signed by `issuer_key` as `issuer` (both null: self-signed).
X509Ptr make_cert(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  if (!cert) throw_openssl("allocating a certificate");
  check(X509_set_version(cert.get(), 2), "setting the certificate version");

  // A random positive 127-bit serial (RFC 5280: at most 20 octets, positive).
  BnPtr serial(BN_new());
  check(BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY), "drawing a serial");
  if (BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    throw_openssl("setting the serial");
  }
  // Valid from an hour ago (clock skew) for a week: longer than any test run.
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7L * 24 * 3600) == nullptr) {
    throw_openssl("setting the validity");
  }

  X509_NAME* name = X509_get_subject_name(cert.get());
  const auto add_name = [&](const char* field, const std::string& value) {
    check(X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                     0),
          fmt::format("adding {}={} to a subject", field, value));
  };
  for (const auto& o : spec.organizations) add_name("O", o);
  add_name("CN", spec.common_name);
  check(X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name),
        "setting the issuer");
  check(X509_set_pubkey(cert.get(), key), "setting the public key");

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  add_extension(cert.get(), &ctx, NID_basic_constraints,
                spec.is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_extension(cert.get(), &ctx, NID_key_usage, "critical," + spec.key_usage);
  if (!spec.extended_key_usage.empty()) {
    add_extension(cert.get(), &ctx, NID_ext_key_usage, spec.extended_key_usage);
  }
  add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  add_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (!spec.subject_alt_names.empty()) {
    add_extension(cert.get(), &ctx, NID_subject_alt_name, spec.subject_alt_names);
  }

  check(X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()),
        fmt::format("signing the certificate for {}", spec.common_name));
  return cert;
}

// ---- processes and ports ----------------------------------------------------------------------

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}

// CI is set to something other than "false" (GitHub Actions, GitLab and others set CI=true).
bool running_in_ci() {
  const char* v = std::getenv("CI");
  return v != nullptr && *v != '\0' && std::string_view(v) != "false";
}

// Whether 127.0.0.1:`port` can be listened on right now (SO_REUSEADDR, as Go's net.Listen).
bool port_bindable(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// A free port that is none of `taken`; adds it to `taken`.
int pick_port(std::set<int>& taken) {
  for (;;) {
    const int port = free_port();
    if (taken.insert(port).second) return port;
  }
}

std::unique_ptr<Process> launch(std::vector<std::string> argv, const std::filesystem::path& log) {
  std::error_code ec;
  std::filesystem::remove(log, ec);
  ProcessOptions po;
  po.argv = std::move(argv);
  po.stdout_path = log;
  po.stderr_path = log;
  // The components read no kubeconfig from the environment, but kubectl-like libraries would.
  po.unset_env.push_back("KUBECONFIG");
  return std::make_unique<Process>(std::move(po));
}

// The process exited because one of its ports was taken meanwhile (a free_port() race).
bool lost_port_race(Process& process) {
  return !process.running() &&
         read_text_file(process.options().stderr_path).find("address already in use") !=
             std::string::npos;
}

}  // namespace

struct ControlPlane::Pki {
  PkeyPtr ca_key;
  X509Ptr ca_cert;
};

// ---- binaries ---------------------------------------------------------------------------------

BinaryLookup ControlPlane::find_binaries() {
  BinaryLookup out;
  std::filesystem::path dir;
  std::string origin;
  if (env_set("STOWAGE_ENVTEST_BIN")) {
    dir = std::getenv("STOWAGE_ENVTEST_BIN");
    origin = fmt::format("STOWAGE_ENVTEST_BIN={}", dir.string());
    out.required = true;
  } else {
    out.required = running_in_ci();
    const std::string script = std::string(STOWAGE_SOURCE_DIR) + "/hack/envtest.sh";
    RunOptions ro;
    ro.timeout = std::chrono::seconds(30);
    const RunResult r = run({"bash", script, "--print-dir"}, ro);
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) dir = line;
    }
    if (!r.ok() || dir.empty()) {
      out.problem = fmt::format(
          "cannot locate the control plane binaries ({}); run hack/envtest.sh", r.describe());
      return out;
    }
    origin = fmt::format("{} (from hack/envtest.sh --print-dir)", dir.string());
  }
  std::vector<std::string> missing;
  for (const auto& name : kRequiredBinaries) {
    if (!find_executable((dir / name).string())) missing.push_back(name);
  }
  if (!missing.empty()) {
    std::string names;
    for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
    std::string why_required;
    if (env_set("STOWAGE_ENVTEST_BIN")) {
      why_required = " (a failure, not a skip: STOWAGE_ENVTEST_BIN says they were built)";
    } else if (out.required) {
      why_required = " (a failure, not a skip, because CI is set)";
    }
    out.problem =
        fmt::format("{} missing in {}: run hack/envtest.sh{}", names, origin, why_required);
    return out;
  }
  out.dir = dir;
  return out;
}

// ---- lifecycle --------------------------------------------------------------------------------

ControlPlane::ControlPlane(ControlPlaneOptions options)
    : options_(std::move(options)), dir_("stowage-kube") {
  const auto started = Clock::now();
  if (options_.bin_dir.empty()) {
    const BinaryLookup lookup = find_binaries();
    if (!lookup.dir) throw Error(Code::kNotFound, "starting a control plane: " + lookup.problem);
    bin_dir_ = *lookup.dir;
  } else {
    bin_dir_ = options_.bin_dir;
  }
  http::ClientOptions client_options;
  client_options.proxy = "";  // loopback only, whatever the environment says
  client_options.max_idle_handles = 4;
  http_ = std::make_unique<http::Client>(std::move(client_options));

  write_pki();
  try {
    start_etcd();
    start_apiserver(/*fixed_port=*/false);
    if (options_.with_controller_manager) start_controller_manager();
  } catch (...) {
    stop();
    throw;
  }
  startup_duration_ = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
}

ControlPlane::~ControlPlane() {
  stop();
}

void ControlPlane::stop() {
  // Order matters: an apiserver whose etcd is gone retries for minutes before it exits.
  if (controller_manager_) controller_manager_->stop(std::chrono::seconds(5));
  controller_manager_.reset();
  if (apiserver_) apiserver_->stop(std::chrono::seconds(15));
  apiserver_.reset();
  if (etcd_) etcd_->stop(std::chrono::seconds(5));
  etcd_.reset();
}

void ControlPlane::write_pki() {
  pki_ = std::make_unique<Pki>();
  pki_->ca_key = generate_ec_key();
  pki_->ca_cert = make_cert({.common_name = "stowage-test-ca",
                             .organizations = {"stowage-test"},
                             .is_ca = true,
                             .key_usage = "keyCertSign,cRLSign,digitalSignature",
                             .extended_key_usage = {},
                             .subject_alt_names = {}},
                            pki_->ca_key.get(), nullptr, nullptr);
  ca_cert_pem_ = cert_pem(pki_->ca_cert.get());

  const PkeyPtr serving_key = generate_ec_key();
  const X509Ptr serving_cert = make_cert(
      {.common_name = "kube-apiserver",
       .organizations = {},
       .is_ca = false,
       .key_usage = "digitalSignature,keyEncipherment",
       .extended_key_usage = "serverAuth",
       .subject_alt_names = "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
                            "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,"
                            "IP:127.0.0.1,IP:10.0.0.1"},
      serving_key.get(), pki_->ca_cert.get(), pki_->ca_key.get());

  // The service-account token key pair: RSA, as every Kubernetes version accepts it.
  const PkeyPtr sa_key = generate_rsa_key();

  const auto pki = dir_ / "pki";
  write_text_file(pki / "ca.crt", ca_cert_pem_);
  write_text_file(pki / "ca.key", private_key_pem(pki_->ca_key.get()));
  write_text_file(pki / "apiserver.crt", cert_pem(serving_cert.get()));
  write_text_file(pki / "apiserver.key", private_key_pem(serving_key.get()));
  write_text_file(pki / "sa.key", private_key_pem(sa_key.get()));
  write_text_file(pki / "sa.pub", public_key_pem(sa_key.get()));

  admin_ = mint_client_cert("admin", {"system:masters"});
  write_text_file(pki / "admin.crt", admin_.cert_pem);
  write_text_file(pki / "admin.key", admin_.key_pem);
}

void ControlPlane::start_etcd() {
  std::string last_failure;
  for (int attempt = 1; attempt <= kPortAttempts; ++attempt) {
    std::set<int> taken;
    etcd_client_port_ = pick_port(taken);
    etcd_peer_port_ = pick_port(taken);
    const std::string client_url = etcd_url();
    const std::string peer_url = fmt::format("http://127.0.0.1:{}", etcd_peer_port_);
    // A fresh data dir per attempt: a half-bootstrapped member remembers its old peer URL.
    const auto data_dir = dir_ / fmt::format("etcd-data-{}", attempt);
    etcd_ =
        launch({(bin_dir_ / "etcd").string(), "--name=default", "--data-dir=" + data_dir.string(),
                "--listen-client-urls=" + client_url, "--advertise-client-urls=" + client_url,
                "--listen-peer-urls=" + peer_url, "--initial-advertise-peer-urls=" + peer_url,
                "--initial-cluster=default=" + peer_url, "--initial-cluster-state=new",
                "--unsafe-no-fsync=true", "--log-level=warn"},
               dir_ / "etcd.log");
    const bool ready = wait_for(
        [&] { return !etcd_->running() || http_get_status(etcd_client_port_, "/health") == 200; },
        options_.start_timeout);
    if (ready && etcd_->running()) return;
    last_failure = etcd_->describe();
    const bool retry = lost_port_race(*etcd_);
    etcd_->stop();
    etcd_.reset();
    if (!retry) break;
  }
  throw Error(Code::kUnavailable,
              fmt::format("starting etcd: GET /health did not answer 200 within {} ms: {}",
                          options_.start_timeout.count(), last_failure));
}

std::vector<std::string> ControlPlane::apiserver_argv() const {
  const auto pki = dir_ / "pki";
  std::vector<std::string> argv = {
      (bin_dir_ / "kube-apiserver").string(),
      "--etcd-servers=" + etcd_url(),
      "--bind-address=127.0.0.1",
      fmt::format("--secure-port={}", apiserver_port_),
      "--cert-dir=" + (dir_ / "apiserver-certs").string(),
      "--tls-cert-file=" + (pki / "apiserver.crt").string(),
      "--tls-private-key-file=" + (pki / "apiserver.key").string(),
      "--client-ca-file=" + (pki / "ca.crt").string(),
      fmt::format("--service-cluster-ip-range={}", kServiceClusterIpRange),
      fmt::format("--service-account-issuer=https://127.0.0.1:{}/", apiserver_port_),
      "--service-account-key-file=" + (pki / "sa.pub").string(),
      "--service-account-signing-key-file=" + (pki / "sa.key").string(),
      "--authorization-mode=RBAC",
      "--allow-privileged=true",
      "--disable-admission-plugins=ServiceAccount",
      "--advertise-address=127.0.0.1",
      "--endpoint-reconciler-type=none",
      // On SIGTERM, end open watches (at >= 200/s) instead of leaving them to net/http's
      // Shutdown, which otherwise waits up to a minute for the controller-manager's watches.
      "--shutdown-watch-termination-grace-period=5s",
  };
  if (!options_.watch_cache) argv.emplace_back("--watch-cache=false");
  argv.insert(argv.end(), options_.extra_apiserver_flags.begin(),
              options_.extra_apiserver_flags.end());
  return argv;
}

bool ControlPlane::apiserver_ready() {
  http::Request request;
  request.url = server_url() + "/readyz";
  request.tls = tls_options();
  request.connect_timeout = std::chrono::seconds(2);
  request.timeout = std::chrono::seconds(5);
  try {
    return http_->send(request).status == 200;
  } catch (const std::exception&) {
    return false;  // not listening yet, or the TLS handshake failed mid-start
  }
}

void ControlPlane::start_apiserver(bool fixed_port) {
  std::string last_failure;
  for (int attempt = 1; attempt <= kPortAttempts; ++attempt) {
    if (fixed_port) {
      // The old process released the port; someone else may hold it for a moment.
      if (!wait_for([&] { return port_bindable(apiserver_port_); }, options_.start_timeout)) {
        throw Error(Code::kUnavailable,
                    fmt::format("restarting kube-apiserver: 127.0.0.1:{} stayed taken for {} ms",
                                apiserver_port_, options_.start_timeout.count()));
      }
    } else {
      std::set<int> taken = {etcd_client_port_, etcd_peer_port_};
      apiserver_port_ = pick_port(taken);
    }
    write_kubeconfig(kubeconfig_path(), admin_);
    apiserver_ =
        launch(apiserver_argv(), dir_ / fmt::format("kube-apiserver-{}.log", ++apiserver_starts_));
    const bool ready = wait_for([&] { return !apiserver_->running() || apiserver_ready(); },
                                options_.start_timeout);
    if (ready && apiserver_->running()) return;
    last_failure = apiserver_->describe();
    const bool retry = lost_port_race(*apiserver_);
    apiserver_->stop();
    apiserver_.reset();
    if (!retry) break;
  }
  throw Error(Code::kUnavailable,
              fmt::format("starting kube-apiserver on 127.0.0.1:{}: GET /readyz did not answer "
                          "200 within {} ms: {}",
                          apiserver_port_, options_.start_timeout.count(), last_failure));
}

void ControlPlane::start_controller_manager() {
  const auto pki = dir_ / "pki";
  const std::string kubeconfig = kubeconfig_path().string();
  std::string last_failure;
  for (int attempt = 1; attempt <= kPortAttempts; ++attempt) {
    std::set<int> taken = {etcd_client_port_, etcd_peer_port_, apiserver_port_};
    controller_manager_port_ = pick_port(taken);
    std::vector<std::string> argv = {
        (bin_dir_ / "kube-controller-manager").string(),
        "--kubeconfig=" + kubeconfig,
        "--authentication-kubeconfig=" + kubeconfig,
        "--authorization-kubeconfig=" + kubeconfig,
        "--bind-address=127.0.0.1",
        fmt::format("--secure-port={}", controller_manager_port_),
        "--cert-dir=" + (dir_ / "controller-manager-certs").string(),
        "--service-account-private-key-file=" + (pki / "sa.key").string(),
        "--root-ca-file=" + (pki / "ca.crt").string(),
        "--use-service-account-credentials=true",
        "--leader-elect=false",
        "--cluster-signing-cert-file=" + (pki / "ca.crt").string(),
        "--cluster-signing-key-file=" + (pki / "ca.key").string(),
        fmt::format("--service-cluster-ip-range={}", kServiceClusterIpRange),
        "--controllers=*",
    };
    argv.insert(argv.end(), options_.extra_controller_manager_flags.begin(),
                options_.extra_controller_manager_flags.end());
    controller_manager_ = launch(std::move(argv), dir_ / "kube-controller-manager.log");

    // Its serving certificate is self-signed in --cert-dir; /healthz needs no credentials.
    http::Request request;
    request.url = fmt::format("https://127.0.0.1:{}/healthz", controller_manager_port_);
    request.tls.insecure = true;
    request.connect_timeout = std::chrono::seconds(2);
    request.timeout = std::chrono::seconds(5);
    const auto healthy = [&] {
      try {
        return http_->send(request).status == 200;
      } catch (const std::exception&) {
        return false;
      }
    };
    const bool ready = wait_for([&] { return !controller_manager_->running() || healthy(); },
                                options_.start_timeout);
    if (ready && controller_manager_->running()) return;
    last_failure = controller_manager_->describe();
    const bool retry = lost_port_race(*controller_manager_);
    controller_manager_->stop();
    controller_manager_.reset();
    if (!retry) break;
  }
  throw Error(Code::kUnavailable,
              fmt::format("starting kube-controller-manager: GET /healthz did not answer 200 "
                          "within {} ms: {}",
                          options_.start_timeout.count(), last_failure));
}

void ControlPlane::restart_apiserver() {
  if (!etcd_) throw Error(Code::kInternal, "restart_apiserver: the control plane is stopped");
  if (apiserver_) apiserver_->stop(std::chrono::seconds(15));
  apiserver_.reset();
  start_apiserver(/*fixed_port=*/true);
}

// ---- accessors and helpers --------------------------------------------------------------------

std::string ControlPlane::server_url() const {
  return fmt::format("https://127.0.0.1:{}", apiserver_port_);
}

std::string ControlPlane::etcd_url() const {
  return fmt::format("http://127.0.0.1:{}", etcd_client_port_);
}

http::TlsOptions ControlPlane::tls_options(const ClientCert& cert) const {
  http::TlsOptions tls;
  tls.ca_pem = ca_cert_pem_;
  tls.client_cert_pem = cert.cert_pem;
  tls.client_key_pem = cert.key_pem;
  return tls;
}

ClientCert ControlPlane::mint_client_cert(std::string_view user,
                                          const std::vector<std::string>& groups) const {
  const PkeyPtr key = generate_ec_key();
  const X509Ptr cert = make_cert({.common_name = std::string(user),
                                  .organizations = groups,
                                  .is_ca = false,
                                  .key_usage = "digitalSignature,keyEncipherment",
                                  .extended_key_usage = "clientAuth",
                                  .subject_alt_names = {}},
                                 key.get(), pki_->ca_cert.get(), pki_->ca_key.get());
  return ClientCert{.user = std::string(user),
                    .groups = groups,
                    .cert_pem = cert_pem(cert.get()),
                    .key_pem = private_key_pem(key.get())};
}

void ControlPlane::write_kubeconfig(const std::filesystem::path& path,
                                    const ClientCert& cert) const {
  // Base64 never contains characters that need YAML quoting; the user name is quoted (JSON
  // string syntax is valid YAML) in case it holds ':' or similar.
  std::string quoted_user = "\"";
  for (const char c : cert.user) {
    if (c == '"' || c == '\\') quoted_user += '\\';
    quoted_user += c;
  }
  quoted_user += '"';
  write_text_file(path, fmt::format("# Generated by stowage_test_support (ControlPlane).\n"
                                    "apiVersion: v1\n"
                                    "kind: Config\n"
                                    "clusters:\n"
                                    "- name: stowage-test\n"
                                    "  cluster:\n"
                                    "    server: {0}\n"
                                    "    certificate-authority-data: {1}\n"
                                    "users:\n"
                                    "- name: {2}\n"
                                    "  user:\n"
                                    "    client-certificate-data: {3}\n"
                                    "    client-key-data: {4}\n"
                                    "contexts:\n"
                                    "- name: stowage-test\n"
                                    "  context:\n"
                                    "    cluster: stowage-test\n"
                                    "    user: {2}\n"
                                    "current-context: stowage-test\n",
                                    server_url(), base64(ca_cert_pem_), quoted_user,
                                    base64(cert.cert_pem), base64(cert.key_pem)));
}

RunResult ControlPlane::kubectl(const std::vector<std::string>& args,
                                const RunOptions& options) const {
  return kubectl_as(kubeconfig_path(), args, options);
}

RunResult ControlPlane::kubectl_as(const std::filesystem::path& kubeconfig,
                                   const std::vector<std::string>& args,
                                   const RunOptions& options) const {
  std::vector<std::string> argv = {(bin_dir_ / "kubectl").string(),
                                   "--kubeconfig=" + kubeconfig.string(),
                                   "--cache-dir=" + (dir_ / "kubectl-cache").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions ro = options;
  ro.unset_env.push_back("KUBECONFIG");
  return run(std::move(argv), ro);
}

std::string install_stowage_crds(const ControlPlane& plane) {
  const auto applied =
      plane.kubectl({"apply", "--server-side", "-f",
                     (std::filesystem::path(STOWAGE_SOURCE_DIR) / "crds").string()});
  if (!applied.ok()) return applied.describe();
  const auto waited = plane.kubectl({"wait", "--for=condition=Established", "--timeout=60s",
                                     "crd/registryconfigs.stowage.io", "crd/imagecaches.stowage.io",
                                     "crd/nodecaches.stowage.io"});
  return waited.ok() ? "" : waited.describe();
}

}  // namespace stowage::test
