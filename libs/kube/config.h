// Where a Client connects and how it authenticates (RestConfig), loaded from kubeconfig files or
// from the pod's service account (in-cluster). Parsing a kubeconfig text, merging files and
// choosing a context are pure; the loaders read files (certificates, keys, tokens) and build the
// token sources. Errors name the file and the field; credentials never appear in them.
//
//   stowage::kube::RestConfig rc = stowage::kube::load_rest_config(clock, {.context = "dev"});
//   stowage::kube::Client client(rc, transport, clock);
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "http/transport.h"
#include "kube/exec_credential.h"
#include "kube/token_source.h"

namespace stowage::kube {

// Impersonate-User / -Uid / -Group / -Extra-<key> headers (kubeconfig as, as-uid, as-groups,
// as-user-extra).
struct Impersonation {
  std::string user{};
  std::string uid{};
  std::vector<std::string> groups{};
  std::map<std::string, std::vector<std::string>> extra{};

  bool empty() const { return user.empty() && uid.empty() && groups.empty() && extra.empty(); }
  bool operator==(const Impersonation&) const = default;
};

struct RestConfig {
  // "https://10.0.0.1:6443"; may carry a path prefix (a proxy); no trailing slash.
  std::string server{};
  // CA and client certificate/key as PEM data, and insecure-skip-tls-verify.
  http::TlsOptions tls{};
  // The name to verify the server certificate against instead of the URL's host.
  std::string tls_server_name{};
  // Bearer token or exec-plugin credentials; null for none (client certificates only). Shared by
  // every copy of this config and every Client made from it; thread-safe.
  std::shared_ptr<TokenSource> token_source{};
  Impersonation impersonate{};
  // The namespace of the chosen context, or the pod's own; "default" when neither says.
  std::string namespace_ = "default";
  // The kubeconfig cluster's proxy-url, for the http::ClientOptions of the transport.
  std::string proxy_url{};
  std::string user_agent = "stowage/0.1";
  // Client-side rate limit of requests (token bucket). Zero or negative qps: unlimited.
  double qps = 50;
  int burst = 100;
};

// --- kubeconfig: the parsed form (pure) --------------------------------------------------------

struct KubeconfigCluster {
  std::string server{};
  std::string tls_server_name{};
  bool insecure_skip_tls_verify = false;
  std::string certificate_authority{};       // a path, absolute or against the file's folder
  std::string certificate_authority_data{};  // PEM, decoded from base64
  std::string proxy_url{};
  bool disable_compression = false;
  // extensions[name=client.authentication.k8s.io/exec].extension, passed to exec plugins.
  std::optional<nlohmann::json> exec_extension{};
  std::string origin{};  // "<file>: clusters[0]", for messages

  bool operator==(const KubeconfigCluster&) const = default;
};

struct KubeconfigUser {
  std::string client_certificate{};  // paths, absolute or against the file's folder
  std::string client_key{};
  std::string client_certificate_data{};  // PEM, decoded from base64
  std::string client_key_data{};
  std::string token{};
  std::string token_file{};
  std::string username{};  // basic authentication: parsed to refuse it clearly
  std::string password{};
  std::string auth_provider{};  // the name of a legacy auth-provider: refused
  std::optional<ExecConfig> exec{};
  Impersonation impersonate{};
  std::string origin{};

  bool operator==(const KubeconfigUser&) const = default;
};

struct KubeconfigContext {
  std::string cluster{};
  std::string user{};
  std::string namespace_{};
  std::string origin{};

  bool operator==(const KubeconfigContext&) const = default;
};

struct Kubeconfig {
  std::map<std::string, KubeconfigCluster> clusters{};
  std::map<std::string, KubeconfigUser> users{};
  std::map<std::string, KubeconfigContext> contexts{};
  std::string current_context{};
  std::vector<std::string> files{};  // where it was read from, in merge order
};

// Parses one kubeconfig (YAML or JSON). `file` names it in messages and anchors relative paths
// (certificate-authority, client-certificate, client-key, tokenFile, an exec command with a '/').
// *-data fields are base64-decoded. Unknown fields are ignored, as kubectl does. Hostile text
// (control characters, deep nesting, alias bombs, many megabytes) is refused with
// InvalidArgument, like every other problem: "<file>: users[1] \"alice\": user.client-key-data:
// invalid base64".
Kubeconfig parse_kubeconfig(std::string_view text, const std::filesystem::path& file);

// Merges `later` into `into` by the kubeconfig rule: the first file to set a map key wins (whole
// named clusters, users and contexts, and current-context).
void merge_kubeconfig(Kubeconfig& into, const Kubeconfig& later);

// The kubeconfig files to read: the KUBECONFIG path list (':'-separated, empty entries and
// repeats dropped) when set and non-empty, else <home>/.kube/config, else none.
std::vector<std::filesystem::path> kubeconfig_paths(
    const std::optional<std::string>& kubeconfig_env, const std::optional<std::string>& home);

// The context chosen for a connection, with its cluster and user.
struct SelectedContext {
  std::string name{};
  KubeconfigContext context;
  std::string cluster_name{};
  KubeconfigCluster cluster;
  std::string user_name{};  // "" when the context names no user
  KubeconfigUser user;
};

// Chooses `context` (or current-context when empty) and checks it can be used: NotFound for a
// missing context, cluster or user; InvalidArgument for a cluster without a server, a CA together
// with insecure-skip-tls-verify, a certificate without its key, more than one authentication
// method, basic authentication and legacy auth-providers (both gone from Kubernetes).
SelectedContext select_context(const Kubeconfig& config, std::string_view context);

// --- loaders (read files) -----------------------------------------------------------------------

// Reads and merges `files` in order; missing files are skipped (as with KUBECONFIG lists).
// Throws NotFound when none exists, InvalidArgument for a file that does not parse.
Kubeconfig load_kubeconfig(const std::vector<std::filesystem::path>& files);

// The RestConfig of `context` (current-context when empty): reads CA, certificate and key files,
// and sets the token source (exec plugin, else tokenFile with token as fallback, else token).
RestConfig rest_config_from_kubeconfig(const Kubeconfig& config, std::string_view context,
                                       Clock& clock);

// Environment lookups, injectable for tests.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
std::optional<std::string> process_env(const std::string& name);

inline constexpr std::string_view kServiceAccountDir =
    "var/run/secrets/kubernetes.io/serviceaccount";

struct InClusterOptions {
  // Prefix of /var/run/secrets/kubernetes.io/serviceaccount (a temp dir in tests).
  std::filesystem::path root = "/";
  EnvLookup env = process_env;
};

// The pod's own config: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (IPv6 bracketed),
// the service account's CA, its token (a FileTokenSource: rotation is followed) and namespace.
// Throws NotFound when the variables are unset (not in a pod) or the token file is missing.
RestConfig in_cluster_config(Clock& clock, const InClusterOptions& options = {});

struct LoadOptions {
  std::string kubeconfig{};  // --kubeconfig: this file only
  std::string context{};     // --context
  std::filesystem::path in_cluster_root = "/";
  EnvLookup env = process_env;
};

// What a binary uses: --kubeconfig; else $KUBECONFIG; else in-cluster when
// KUBERNETES_SERVICE_HOST is set; else ~/.kube/config.
RestConfig load_rest_config(Clock& clock, const LoadOptions& options = {});

}  // namespace stowage::kube
