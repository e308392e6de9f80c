// Registry credentials without the network: auth.json / Docker config.json (locations, lookup,
// login/logout writes), Kubernetes pull secrets with kubelet's keyring matching, WWW-Authenticate
// challenges, token request URLs and responses, and a per-scope token cache for the HTTP token
// flow. Secrets never reach messages: Credentials print redacted, parse errors give byte offsets.
// Pure except the file functions (load/save/find_credentials, check_runtime_dir, from_process).
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <compare>
#include <cstddef>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/text.h"
#include "reference/reference.h"

namespace stowage::oci {

// --- Credentials ---------------------------------------------------------------------------------

struct Credentials {
  std::string username;
  std::string password;
  std::string identity_token;  // OAuth2 refresh token ("identitytoken" in auth files)

  bool empty() const { return username.empty() && password.empty() && identity_token.empty(); }
  bool operator==(const Credentials&) const = default;
};

// "<redacted>" for a non-empty secret, "" for an empty one.
std::string redact(std::string_view secret);
// An Authorization header value with its credentials hidden: "Bearer eyJ..." → "Bearer <redacted>".
std::string redact_authorization(std::string_view value);
// `username="u" password=<redacted> identity_token=<none>`; never prints a secret.
std::string to_string(const Credentials& c);
std::ostream& operator<<(std::ostream& os, const Credentials& c);

// Standard base64 (padding optional on input, CR/LF ignored); decode gives nullopt on bad input.
using ::stowage::base64_encode;
std::optional<std::string> base64_decode(std::string_view text);

// base64("user:password"), as in the `auth` field and after "Basic ".
std::string encode_auth_field(const Credentials& c);
// "Basic base64(user:password)".
std::string basic_authorization(const Credentials& c);
// Splits a decoded `auth` value at the first ':' and trims NUL bytes from the password (as
// containers/image does); nullopt when there is no ':'. Throws InvalidArgument for bad base64
// (the message does not show the value).
std::optional<Credentials> decode_auth_field(std::string_view auth);

// --- auth.json / config.json ---------------------------------------------------------------------

inline constexpr std::size_t kMaxAuthFileBytes = std::size_t{4} * 1024 * 1024;
inline constexpr std::string_view kDockerHubAuthKey = "https://index.docker.io/v1/";

enum class AuthFileFormat {
  kContainers,       // containers-auth.json(5): {"auths": {...}, "credHelpers": {...}}
  kDocker,           // Docker config.json: same shape; Docker Hub written as kDockerHubAuthKey
  kDockerCfgLegacy,  // ~/.dockercfg: the bare {"<host>": {...}} map; only host keys count
};

struct AuthFileLocation {
  std::filesystem::path path;
  AuthFileFormat format = AuthFileFormat::kContainers;
  bool operator==(const AuthFileLocation&) const = default;
};

// The environment the file locations depend on; injected so the rules are testable.
struct AuthEnvironment {
  std::string registry_auth_file;  // $REGISTRY_AUTH_FILE
  std::string docker_config;       // $DOCKER_CONFIG
  std::string xdg_runtime_dir;     // $XDG_RUNTIME_DIR
  std::string xdg_config_home;     // $XDG_CONFIG_HOME
  std::string home;                // $HOME
  unsigned uid = 0;

  static AuthEnvironment from_process();
};

// The files searched for credentials, in order. An explicit file (`authfile` from --authfile,
// else $REGISTRY_AUTH_FILE, else $DOCKER_CONFIG/config.json, in that precedence) is the only one.
// Otherwise: ${XDG_RUNTIME_DIR}/containers/auth.json (or /run/containers/<uid>/auth.json),
// ${XDG_CONFIG_HOME:-$HOME/.config}/containers/auth.json, $HOME/.docker/config.json,
// $HOME/.dockercfg (legacy). Entries needing $HOME are left out when it is empty.
std::vector<AuthFileLocation> auth_read_locations(const AuthEnvironment& env,
                                                  std::string_view authfile = {});
// The file `login`/`logout` modify: the explicit file as above, else the primary
// ${XDG_RUNTIME_DIR}/containers/auth.json (or /run/containers/<uid>/auth.json).
AuthFileLocation auth_write_location(const AuthEnvironment& env, std::string_view authfile = {});
// containers/image refuses to use a $XDG_RUNTIME_DIR that does not exist rather than create it:
// throws NotFound with its message when the variable is set and the directory is missing.
void check_runtime_dir(const AuthEnvironment& env);

// Refuses keys login would never write (containers/image validateKey): a http(s):// scheme, '@',
// or ':' after the first '/'. Returns whether the key names a namespace or repository.
bool validate_auth_key(std::string_view key);

// What a lookup found: credentials stored under `key`, or `helper` when credHelpers names a
// credential helper for the registry (run docker-credential-<helper>; credentials are empty).
struct AuthMatch {
  std::string key;
  Credentials credentials;
  std::string helper;
  std::filesystem::path file;  // set by find_credentials
  bool operator==(const AuthMatch&) const = default;
};

// One auth file, kept as a JSON document so that writes preserve fields this code does not model
// (credsStore, HttpHeaders, proxies, per-entry email, ...). Not thread-safe.
class AuthFile {
 public:
  explicit AuthFile(AuthFileFormat format = AuthFileFormat::kContainers);

  // Throws InvalidArgument naming `source` (and a byte offset, never text) on bad JSON or types,
  // or when the text is larger than kMaxAuthFileBytes.
  static AuthFile parse(std::string_view text, AuthFileFormat format = AuthFileFormat::kContainers,
                        std::string_view source = "auth.json");
  // Tab-indented JSON as containers/image writes it (keys sorted).
  std::string serialize() const;

  AuthFileFormat format() const { return format_; }
  // The keys of "auths" (sorted).
  std::vector<std::string> keys() const;
  // The credentials under exactly `key`; nullopt when there is no such key. Entries without usable
  // credentials (Docker's `{}` helper marker, an `auth` without ':') give empty Credentials.
  // `auth` wins over plaintext username/password; identitytoken is returned as found.
  std::optional<Credentials> get(std::string_view key) const;
  // Login: stores `auth` (and identitytoken if set) under `key`, replacing any earlier secret
  // fields of that entry but keeping its other fields. In kDocker files, docker.io is written as
  // kDockerHubAuthKey. Throws InvalidArgument for keys validate_auth_key refuses.
  void set(std::string_view key, const Credentials& credentials);
  // Logout: removes `key` (or its normalized Docker Hub form); false when it was not there.
  bool remove(std::string_view key);
  // credHelpers[registry], if any.
  std::optional<std::string> credential_helper(std::string_view registry) const;
  // Docker's default helper ("credsStore"), empty when unset.
  std::string creds_store() const;

  // containers/image findCredentialsInFile for an image: credHelpers[registry] first; then the
  // exact keys from most to least specific ("quay.io/a/b", "quay.io/a", "quay.io"; legacy
  // files only the host); then every key normalized (scheme stripped and cut at the first '/',
  // if it had a scheme; docker.io and registry-1.docker.io read as index.docker.io) compared with
  // the registry. The first key found decides, even if its entry is empty.
  std::optional<AuthMatch> find(const Reference& image) const;
  // The same for a registry alone ("quay.io", "localhost:5000"): helpers, the exact key, then
  // normalized keys.
  std::optional<AuthMatch> find_registry(std::string_view registry) const;

 private:
  std::optional<AuthMatch> find_keys(std::string_view registry,
                                     const std::vector<std::string>& keys) const;

  nlohmann::json doc_;
  AuthFileFormat format_;
};

// Reads one file; nullopt when it does not exist. Throws InvalidArgument for bad content.
std::optional<AuthFile> load_auth_file(const AuthFileLocation& location);
// Writes atomically with mode 0600, creating the directory with mode 0700 if needed.
void save_auth_file(const AuthFileLocation& location, const AuthFile& file);
// Looks up `image` in each file in order; the first file giving non-empty credentials or a
// helper wins (an empty entry falls through to the next file, as containers/image does).
std::optional<AuthMatch> find_credentials(const std::vector<AuthFileLocation>& locations,
                                          const Reference& image);

// --- Kubernetes image-pull secrets ---------------------------------------------------------------

struct KeyringMatch {
  std::string key;  // "host" or "host/path", scheme and /v1/ or /v2/ removed
  Credentials credentials;
  bool operator==(const KeyringMatch&) const = default;
};

// kubelet's BasicDockerKeyring (pkg/credentialprovider/keyring.go): credentials indexed by
// location, matched against an image by host glob (`*.example.com`, per dot-separated label, same
// label count), equal port, and key path as a string prefix of the image path; scheme ignored.
// Add pod secrets first, then node credentials. Not thread-safe; copy per pod.
class DockerKeyring {
 public:
  // Adds one location; false (and nothing added) when it does not parse as a URL.
  bool add(std::string_view location, const Credentials& credentials);
  // A kubernetes.io/dockerconfigjson payload ({"auths": {...}}) or a kubernetes.io/dockercfg
  // payload (the bare map). Entry fields: username, password, auth (wins), email. Throws
  // InvalidArgument for bad JSON or an `auth` that is not base64("user:password").
  void add_dockerconfigjson(std::string_view payload);
  void add_dockercfg(std::string_view payload);

  // All matching credentials, most specific key first (keys reverse-sorted), for rotation; if
  // none match and the image is a Docker Hub name, the index.docker.io credentials.
  std::vector<KeyringMatch> lookup(std::string_view image) const;

 private:
  void add_entries(const nlohmann::json& auths, std::string_view source);

  std::vector<std::string> index_;  // unique keys, reverse-sorted
  std::map<std::string, std::vector<Credentials>> creds_;
};

// filepath.Match for one pattern (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes; `*` does not cross
// '/'). A malformed pattern matches nothing.
bool glob_match(std::string_view pattern, std::string_view name);

// --- WWW-Authenticate ----------------------------------------------------------------------------

struct Challenge {
  std::string scheme;                         // lowercased: "basic", "bearer", ...
  std::map<std::string, std::string> params;  // names lowercased, quoted-string unescaped
  std::string token68;                        // "Negotiate abc==" style credentials, if any

  // The parameter's value, "" when absent.
  std::string param(std::string_view name) const;
  // The space-separated scopes of the "scope" parameter.
  std::vector<std::string> scopes() const;
  bool operator==(const Challenge&) const = default;
};

// RFC 7235 challenges of one header value (several may be comma-separated), or of every
// WWW-Authenticate field of a response. Throws InvalidArgument on malformed syntax.
std::vector<Challenge> parse_www_authenticate(std::string_view header);
std::vector<Challenge> parse_www_authenticate(const std::vector<std::string>& headers);
// The first challenge of that scheme (case-insensitive), or nullptr.
const Challenge* find_challenge(const std::vector<Challenge>& challenges, std::string_view scheme);

// --- Tokens --------------------------------------------------------------------------------------

inline constexpr std::size_t kMaxTokenResponseBytes =
    std::size_t{1024} * 1024;  // containers/image's limit
inline constexpr std::chrono::seconds kMinTokenLifetime{60};
// Longer lifetimes are cut to this (a refresh a day costs nothing; no time arithmetic overflows).
inline constexpr std::chrono::seconds kMaxTokenLifetime{24 * 3600};

// "repository:<name>:<a>,<b>", e.g. repository_scope("library/nginx", {"pull"}).
std::string repository_scope(std::string_view repository, const std::vector<std::string>& actions);

struct TokenRequest {
  std::string realm;                // from the Bearer challenge
  std::string service;              // omitted when empty
  std::vector<std::string> scopes;  // one `scope` parameter each, in order
  std::string account;              // containers/image sends the username
  bool offline_token = false;       // ask for a refresh_token
  std::string client_id;
};

// A request built from a Bearer challenge: realm, service and its scopes, then `extra_scopes`
// not already present.
TokenRequest token_request_from(const Challenge& bearer,
                                const std::vector<std::string>& extra_scopes = {});

// GET URL: realm + "?service=…&scope=…&scope=…[&account=…][&offline_token=true][&client_id=…]"
// (appended with '&' when the realm has a query; values form-encoded; any fragment dropped).
// Throws InvalidArgument when the realm is not an http(s) URL with a host.
std::string build_token_url(const TokenRequest& request);

struct TokenResponse {
  std::string token;  // `token`, else `access_token`
  std::string refresh_token;
  std::chrono::seconds expires_in = kMinTokenLifetime;  // clamped to [60 s, 24 h]
  std::optional<Clock::WallTime> issued_at;
  bool operator==(const TokenResponse&) const = default;
};

// Parses a token endpoint answer (at most kMaxTokenResponseBytes). Throws InvalidArgument when
// neither token nor access_token is set or a field has the wrong type or format (RFC 3339
// issued_at). The message never contains a token.
TokenResponse parse_token_response(std::string_view body);

// Parses RFC 3339 ("2024-05-01T10:00:00.5+02:00"); nullopt when malformed.
std::optional<Clock::WallTime> parse_rfc3339(std::string_view text);

// When a token stops being usable on `clock`'s monotonic scale: (issued_at, else now) +
// expires_in; an issued_at in the future counts as now, one long past as already expired.
Clock::TimePoint token_expiry(const TokenResponse& response, const Clock& clock);

// What a token is good for. `account` keeps tokens of different identities apart (empty for
// anonymous): a token fetched with one pull secret must not serve a pull made with another.
struct TokenKey {
  std::string realm;
  std::string service;
  std::string scope;  // the scopes joined with ' ', in request order
  std::string account;
  auto operator<=>(const TokenKey&) const = default;
};

// The cache key of a request: its realm, service, scopes joined with ' ', and account.
TokenKey token_key(const TokenRequest& request);

// Bearer tokens per TokenKey until they expire (minus `leeway`, so a token does not expire in
// flight). Thread-safe.
class TokenCache {
 public:
  explicit TokenCache(const Clock& clock, Clock::Duration leeway = std::chrono::seconds(5));

  // The token, or nullopt when absent or expiring within the leeway (then it is dropped).
  std::optional<std::string> get(const TokenKey& key);
  void put(const TokenKey& key, const TokenResponse& response);
  void put(const TokenKey& key, std::string token, Clock::TimePoint expiry);
  void erase(const TokenKey& key);
  void clear();
  std::size_t size() const;

 private:
  struct Entry {
    std::string token;
    Clock::TimePoint expiry;
  };
  void drop_expired_locked(Clock::TimePoint now);

  const Clock& clock_;
  const Clock::Duration leeway_;
  mutable std::mutex mu_;  // guards entries_
  std::map<TokenKey, Entry> entries_;
};

}  // namespace stowage::oci

template <>
struct fmt::formatter<stowage::oci::Credentials> {
  constexpr auto parse(format_parse_context& ctx) { return ctx.begin(); }
  template <typename FormatContext>
  auto format(const stowage::oci::Credentials& c, FormatContext& ctx) const {
    return fmt::format_to(ctx.out(), "{}", stowage::oci::to_string(c));
  }
};
