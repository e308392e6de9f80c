// Exec credential plugins (client.authentication.k8s.io/v1 and v1beta1), as kubeconfig `exec`
// users configure them: the command runs with its args and env plus KUBERNETES_EXEC_INFO, and
// prints an ExecCredential whose status carries a bearer token or a client certificate and key.
// Building the input and parsing the output are pure; run_exec_plugin() starts the process.
// ExecTokenSource (token_source.h) caches the result until it expires.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stowage::kube {

inline constexpr std::string_view kExecApiV1 = "client.authentication.k8s.io/v1";
inline constexpr std::string_view kExecApiV1Beta1 = "client.authentication.k8s.io/v1beta1";

struct ExecEnvVar {
  std::string name{};
  std::string value{};
  bool operator==(const ExecEnvVar&) const = default;
};

struct ExecConfig {
  std::string api_version{};  // kExecApiV1 or kExecApiV1Beta1
  // A path (relative ones were resolved against the kubeconfig's folder) or a name on PATH.
  std::string command{};
  std::vector<std::string> args{};
  std::vector<ExecEnvVar> env{};  // added to the inherited environment
  std::string install_hint{};     // shown when the command cannot be found
  bool provide_cluster_info = false;
  std::string interactive_mode{};  // Never | IfAvailable | Always ("" is IfAvailable, v1beta1 only)
  // The plugin is killed and the attempt fails after this long.
  std::chrono::milliseconds timeout{60'000};

  bool operator==(const ExecConfig&) const = default;
};

// What a plugin answered.
struct ExecCredential {
  std::string token{};
  std::string client_cert_pem{};
  std::string client_key_pem{};
  std::optional<std::chrono::system_clock::time_point> expiration{};
};

// Refuses what cannot work: an unknown apiVersion (v1alpha1 is gone), no command, v1 without an
// interactiveMode, an unknown mode, and Always (we never have a terminal). Messages name the
// field under `where` ("user.exec").
void validate_exec_config(const ExecConfig& config, std::string_view where);

// The value of KUBERNETES_EXEC_INFO: an ExecCredential with spec.interactive=false and, when the
// config asks for it, spec.cluster = `cluster` (server, certificate-authority-data, ... as the
// plugin API names them).
std::string exec_info(const ExecConfig& config, const std::optional<nlohmann::json>& cluster);

// Parses a plugin's stdout. Requires kind ExecCredential of the config's apiVersion and a status
// with a token or both clientCertificateData and clientKeyData; expirationTimestamp is RFC 3339.
// Throws Unauthenticated naming the command and the problem (never the credential).
ExecCredential parse_exec_credential(std::string_view output, const ExecConfig& config);

// Runs the plugin and parses what it printed. Throws Unauthenticated when it cannot be started,
// exits non-zero (the message carries the end of its stderr and, when it was not found, the
// install hint) or prints no valid ExecCredential; DeadlineExceeded after config.timeout.
ExecCredential run_exec_plugin(const ExecConfig& config,
                               const std::optional<nlohmann::json>& cluster);

}  // namespace stowage::kube
