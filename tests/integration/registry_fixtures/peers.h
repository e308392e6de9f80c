// Oracles for the registry fixture tests: hermetic skopeo, podman and curl runs (temp
// registries.conf, no machine credentials or signature policy, no proxies), and small helpers.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "http/client.h"
#include "support/process.h"

namespace stowage::test::peers {

// Why skopeo / podman / curl cannot be used here, or nullopt.
std::optional<std::string> skopeo_missing();
std::optional<std::string> podman_missing();
std::optional<std::string> curl_missing();

// `skopeo --insecure-policy --registries.d <tmp> <args...>` with an empty registries.conf and no
// default auth file.
RunResult skopeo(const std::vector<std::string>& args);

// `podman --root/--runroot/--tmpdir <state> --storage-driver vfs <args...>` in a private mount
// namespace with an empty tmpfs over /etc/containers/registries.conf.d. One object per test: its
// temp dir holds podman's store.
class Podman {
 public:
  Podman();
  RunResult run(const std::vector<std::string>& args) const;
  std::string policy_path() const { return (dir_ / "policy.json").string(); }

 private:
  TempDir dir_;
};

// `curl <args...>` (proxies unset by run()).
RunResult curl(const std::vector<std::string>& args);

// A client that never uses a proxy.
http::Client& client();

// Lowercase ASCII copy, for case-insensitive message checks.
std::string lower(std::string s);

// "Basic base64(user:password)".
std::string basic_auth(const std::string& user, const std::string& password);
// base64url (JWT segments) decoded; "" on invalid input.
std::string base64url_decode(std::string_view text);

// Deterministic bytes that do not compress (for blobs whose size must be exact).
std::string noise(std::size_t size, unsigned seed);

}  // namespace stowage::test::peers
