// Fuzzes the credential parsers: auth.json / config.json / .dockercfg, Kubernetes pull-secret
// payloads, WWW-Authenticate challenges, token responses and the small text helpers. Bad input
// must end in a stowage::Error, never a crash or another exception type. Invariants: an auth file
// that parses re-parses from its serialization with the same keys and credentials; a login (set)
// is read back; rendered challenges parse back to the same challenges; base64 round-trips.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "oci/auth.h"

namespace {

namespace oci = stowage::oci;
using stowage::Reference;

// What get() gives for a key: credentials, or that it refused the entry.
std::optional<oci::Credentials> get_or_refused(const oci::AuthFile& f, const std::string& key,
                                               bool& refused) {
  refused = false;
  try {
    return f.get(key);
  } catch (const stowage::Error&) {
    refused = true;
    return std::nullopt;
  }
}

void check_auth_file(std::string_view text, oci::AuthFileFormat format) {
  oci::AuthFile f;
  try {
    f = oci::AuthFile::parse(text, format, "fuzz");
  } catch (const stowage::Error&) {
    return;
  }
  std::string bytes;
  try {
    bytes = f.serialize();
  } catch (const stowage::Error&) {
    return;  // keys or values that are not UTF-8 cannot be written
  }
  oci::AuthFile back;
  try {
    back = oci::AuthFile::parse(bytes, format, "fuzz-serialized");
  } catch (const stowage::Error&) {
    __builtin_trap();
  }
  if (back.keys() != f.keys()) __builtin_trap();
  for (const auto& key : f.keys()) {
    bool refused_a = false, refused_b = false;
    const auto a = get_or_refused(f, key, refused_a);
    const auto b = get_or_refused(back, key, refused_b);
    if (refused_a != refused_b || a != b) __builtin_trap();
  }
  for (const char* image : {"quay.io/a/b:1", "docker.io/library/nginx", "localhost:5000/x"}) {
    try {
      (void)f.find(Reference::parse_normalized(image));
      (void)f.find_registry(Reference::parse_normalized(image).domain);
    } catch (const stowage::Error&) {
    }
  }
  (void)f.credential_helper("gcr.io");
  (void)f.creds_store();
  if (format == oci::AuthFileFormat::kDockerCfgLegacy) return;
  const oci::Credentials creds{"fuzz-user", "p:w", "tok"};
  f.set("registry.example.com/ns", creds);
  f.set("docker.io", creds);
  try {
    const oci::AuthFile again = oci::AuthFile::parse(f.serialize(), format, "fuzz-set");
    if (again.get("registry.example.com/ns") != creds) __builtin_trap();
    (void)again.find(Reference::parse_normalized("registry.example.com/ns/app"));
  } catch (const stowage::Error&) {
    // serialize() may refuse non-UTF-8 text kept from the input; anything else is a bug.
  }
  (void)f.remove("docker.io");
}

std::string render_quoted(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void check_challenges(std::string_view text) {
  std::vector<oci::Challenge> challenges;
  try {
    challenges = oci::parse_www_authenticate(text);
  } catch (const stowage::Error&) {
    return;
  }
  std::string rendered;
  for (const auto& c : challenges) {
    if (c.scheme.empty()) __builtin_trap();
    if (!rendered.empty()) rendered += ", ";
    rendered += c.scheme;
    if (!c.token68.empty()) {
      if (!c.params.empty()) __builtin_trap();
      rendered += " " + c.token68;
      continue;
    }
    bool first = true;
    for (const auto& [k, v] : c.params) {
      rendered += first ? " " : ",";
      first = false;
      rendered += k + "=" + render_quoted(v);
    }
    (void)c.scopes();
    try {
      (void)oci::build_token_url(oci::token_request_from(c, {"repository:x:pull"}));
    } catch (const stowage::Error&) {
    }
  }
  std::vector<oci::Challenge> back;
  try {
    back = oci::parse_www_authenticate(rendered);
  } catch (const stowage::Error&) {
    __builtin_trap();
  }
  if (back != challenges) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  check_auth_file(text, oci::AuthFileFormat::kContainers);
  check_auth_file(text, oci::AuthFileFormat::kDocker);
  check_auth_file(text, oci::AuthFileFormat::kDockerCfgLegacy);

  for (int legacy = 0; legacy < 2; ++legacy) {
    oci::DockerKeyring keyring;
    try {
      legacy ? keyring.add_dockercfg(text) : keyring.add_dockerconfigjson(text);
    } catch (const stowage::Error&) {
    }
    for (const char* image : {"quay.io/a/b", "nginx", "a.example.com:5000/x", "[::1]:5000/y"}) {
      (void)keyring.lookup(image);
    }
  }

  check_challenges(text);

  try {
    const oci::TokenResponse r = oci::parse_token_response(text);
    if (r.token.empty()) __builtin_trap();
    if (r.expires_in < oci::kMinTokenLifetime || r.expires_in > oci::kMaxTokenLifetime) {
      __builtin_trap();
    }
    stowage::FakeClock clock;
    const auto expiry = oci::token_expiry(r, clock);
    if (expiry < clock.now() || expiry > clock.now() + oci::kMaxTokenLifetime) __builtin_trap();
    oci::TokenCache cache(clock);
    cache.put({"r", "s", "scope", ""}, r);
  } catch (const stowage::Error&) {
  }

  if (size < 512) {
    // Small text helpers on raw input: split at the first newline for two-argument ones.
    const auto nl = text.find('\n');
    const std::string_view a = text.substr(0, nl);
    const std::string_view b =
        nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    (void)oci::glob_match(a, b);
    oci::DockerKeyring k;
    if (k.add(a, {"u", "p", ""})) (void)k.lookup(b);
    (void)oci::parse_rfc3339(text);
    try {
      oci::TokenRequest req;
      req.realm = std::string(a);
      req.service = std::string(b);
      req.scopes = {std::string(b)};
      (void)oci::build_token_url(req);
    } catch (const stowage::Error&) {
    }
    try {
      (void)oci::validate_auth_key(text);
    } catch (const stowage::Error&) {
    }
    try {
      (void)oci::decode_auth_field(text);
    } catch (const stowage::Error&) {
    }
    if (oci::base64_decode(oci::base64_encode(text)) != text) __builtin_trap();
    (void)oci::redact_authorization(text);
  }
  return 0;
}
