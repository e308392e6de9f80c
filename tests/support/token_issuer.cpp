#include "support/token_issuer.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/sha256.h"
#include "support/http_wire.h"

namespace stowage::test {
namespace {

using nlohmann::json;

constexpr const char* kTokenPath = "/token";

std::string base64(std::string_view data, bool url) {
  static constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const char* alphabet = url ? kUrl : kStd;
  std::string out;
  std::size_t i = 0;
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(data[k]); };
  for (; i + 3 <= data.size(); i += 3) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == data.size()) {
    const unsigned v = byte(i) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (!url) out += "==";
  } else if (i + 2 == data.size()) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (!url) out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::string out;
  unsigned v = 0;
  int bits = 0;
  for (const char c : text) {
    int d;
    if (c >= 'A' && c <= 'Z') {
      d = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      d = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      d = c - '0' + 52;
    } else if (c == '+' || c == '-') {
      d = 62;
    } else if (c == '/' || c == '_') {
      d = 63;
    } else if (c == '=') {
      break;
    } else {
      return std::nullopt;
    }
    v = (v << 6) | static_cast<unsigned>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((v >> bits) & 0xFF);
    }
  }
  return out;
}

// libtrust's key ID: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32 (RFC 4648
// alphabet, no padding) in twelve groups of four joined by ':'.
std::string libtrust_key_id(const std::string& spki_der) {
  static constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  Sha256 sha;
  sha.update(spki_der);
  const auto digest = sha.finish();
  std::string encoded;
  unsigned v = 0;
  int bits = 0;
  for (std::size_t i = 0; i < 30; ++i) {
    v = (v << 8) | digest[i];
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      encoded += kBase32[(v >> bits) & 31];
    }
  }
  std::string out;
  for (std::size_t i = 0; i < encoded.size(); i += 4) {
    if (!out.empty()) out += ':';
    out += encoded.substr(i, 4);
  }
  return out;
}

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

PkeyPtr load_private_key(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) throw Error(Code::kInternal, "token issuer: reading the signing key");
  return PkeyPtr(key);
}

std::string spki_der(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key, &der);
  if (len <= 0) throw Error(Code::kInternal, "token issuer: encoding the public key");
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

// A JWS signature over `input`: PKCS#1 v1.5 for RSA; for EC the raw r||s pair (32 bytes each),
// not the DER that OpenSSL produces.
std::string jws_sign(EVP_PKEY* key, std::string_view input, bool ec) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t len = 0;
  std::string sig;
  bool ok = ctx != nullptr && EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                        reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) throw Error(Code::kInternal, "token issuer: signing a token");
  if (!ec) return sig;
  const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* ecdsa = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
  if (ecdsa == nullptr) throw Error(Code::kInternal, "token issuer: decoding an ECDSA signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(ecdsa, &r, &s);
  std::string raw(64, '\0');
  BN_bn2binpad(r, reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(s, reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(ecdsa);
  return raw;
}

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    throw Error(Code::kInternal, "token issuer: RAND_bytes");
  }
  return to_hex(reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size());
}

std::string rfc3339(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const auto at = s.find(sep, start);
    const auto piece =
        s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start);
    if (!piece.empty()) out.emplace_back(piece);
    if (at == std::string_view::npos) break;
    start = at + 1;
  }
  return out;
}

std::string error_body(std::string_view code, std::string_view message) {
  return json{{"errors", json::array({{{"code", code}, {"message", message}}})}}.dump();
}

}  // namespace

TokenIssuer::TokenIssuer(TokenIssuerOptions options) : options_(std::move(options)) {
  CertificateRequest request;
  request.common_name = options_.issuer;
  request.key = options_.key;
  request.server_auth = false;
  signing_ = self_signed_certificate(request);
  const PkeyPtr key = load_private_key(signing_.key_pem);
  key_id_ = libtrust_key_id(spki_der(key.get()));
  server_ = std::make_unique<wire::Server>(
      [this](wire::Conn& conn, const std::stop_token&, wire::SocketSet&) { serve(conn); });
}

TokenIssuer::~TokenIssuer() {
  server_->stop();
}

int TokenIssuer::port() const {
  return server_->port();
}

std::string TokenIssuer::realm() const {
  return fmt::format("http://127.0.0.1:{}{}", server_->port(), kTokenPath);
}

void TokenIssuer::set_repository_actions(const std::string& repository,
                                         std::set<std::string> actions) {
  std::lock_guard lock(mutex_);
  options_.repository_actions[repository] = std::move(actions);
}

void TokenIssuer::set_password(std::string password) {
  std::lock_guard lock(mutex_);
  options_.password = std::move(password);
}

int TokenIssuer::requests() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(log_.size());
}

int TokenIssuer::tokens_issued() const {
  std::lock_guard lock(mutex_);
  return issued_;
}

std::vector<TokenRequest> TokenIssuer::request_log() const {
  std::lock_guard lock(mutex_);
  return log_;
}

void TokenIssuer::clear_log() {
  std::lock_guard lock(mutex_);
  log_.clear();
  issued_ = 0;
}

bool TokenIssuer::wait_for_requests(int n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return static_cast<int>(log_.size()) >= n; });
}

std::string TokenIssuer::make_token(const std::vector<std::string>& access) const {
  std::vector<Grant> grants;
  for (const auto& a : access) {
    const auto first = a.find(':');
    const auto last = a.rfind(':');
    if (first == std::string::npos || last == first) {
      throw Error(Code::kInvalidArgument, fmt::format("make_token: invalid access \"{}\"", a));
    }
    grants.push_back({a.substr(0, first), a.substr(first + 1, last - first - 1),
                      split(std::string_view(a).substr(last + 1), ',')});
  }
  std::string user;
  {
    std::lock_guard lock(mutex_);
    user = options_.username;
  }
  return sign(user, grants, static_cast<std::int64_t>(std::time(nullptr)));
}

std::vector<TokenIssuer::Grant> TokenIssuer::grant(const std::string& user,
                                                   const std::vector<std::string>& scopes) const {
  std::vector<Grant> out;
  std::lock_guard lock(mutex_);
  for (const auto& scope : scopes) {
    // type:name:actions, where the name may hold ':' (host:port).
    const auto first = scope.find(':');
    const auto last = scope.rfind(':');
    if (first == std::string::npos || last == first) continue;
    Grant g{scope.substr(0, first), scope.substr(first + 1, last - first - 1), {}};
    const std::vector<std::string> requested = split(std::string_view(scope).substr(last + 1), ',');
    std::set<std::string> allowed;
    if (g.type == "repository") {
      const auto& table =
          user.empty() ? options_.anonymous_repository_actions : options_.repository_actions;
      if (const auto it = table.find(g.name); it != table.end()) {
        allowed = it->second;
      } else if (!user.empty()) {
        allowed = options_.default_actions;
      }
    } else if (g.type == "registry" && g.name == "catalog" && !user.empty() &&
               options_.allow_catalog) {
      allowed = {"*"};
    }
    for (const auto& action : requested) {
      const bool ok = allowed.contains("*") || allowed.contains(action);
      if (ok && std::find(g.actions.begin(), g.actions.end(), action) == g.actions.end()) {
        g.actions.push_back(action);
      }
    }
    if (!g.actions.empty()) out.push_back(std::move(g));
  }
  return out;
}

std::string TokenIssuer::sign(const std::string& subject, const std::vector<Grant>& grants,
                              std::int64_t issued_at) const {
  std::int64_t lifetime;
  {
    std::lock_guard lock(mutex_);
    lifetime = options_.token_lifetime.value_or(options_.expires_in).count();
  }
  const bool ec = options_.key == KeyAlgorithm::kEcP256;
  json header = {{"typ", "JWT"}, {"alg", ec ? "ES256" : "RS256"}};
  if (options_.key_header != TokenKeyHeader::kX5c) header["kid"] = key_id_;
  if (options_.key_header != TokenKeyHeader::kKid) {
    header["x5c"] = json::array({base64(signing_.cert_der, /*url=*/false)});
  }
  json access = json::array();
  for (const auto& g : grants) {
    access.push_back({{"type", g.type}, {"name", g.name}, {"actions", g.actions}});
  }
  const json claims = {{"iss", options_.issuer},      {"sub", subject},   {"aud", options_.service},
                       {"exp", issued_at + lifetime}, {"nbf", issued_at}, {"iat", issued_at},
                       {"jti", random_hex(16)},       {"access", access}};
  const std::string input =
      base64(header.dump(), /*url=*/true) + "." + base64(claims.dump(), /*url=*/true);
  const PkeyPtr key = load_private_key(signing_.key_pem);
  return input + "." + base64(jws_sign(key.get(), input, ec), /*url=*/true);
}

void TokenIssuer::serve(wire::Conn& conn) {
  while (true) {
    const auto head = wire::read_request_head(conn);
    if (!head) return;
    const auto framing = wire::request_framing(*head);
    std::optional<std::string> body;
    if (framing) body = wire::read_body(conn, *framing, std::size_t{1024} * 1024);
    TokenRequest entry;
    entry.method = head->method;
    std::string response;
    if (!body) {
      entry.status = 400;
      response = wire::simple_response(400, error_body("INVALID", "unreadable request body"),
                                       {{"Content-Type", "application/json"}}, /*close=*/true);
    } else {
      response = handle(*head, *body, entry);
    }
    {
      std::lock_guard lock(mutex_);
      log_.push_back(entry);
      if (entry.status == 200) ++issued_;
    }
    changed_.notify_all();
    if (!conn.write_all(response) || !body || !wire::keep_alive(head->version, head->headers)) {
      return;
    }
  }
}

std::string TokenIssuer::handle(const wire::RequestHead& head, const std::string& body,
                                TokenRequest& log) {
  const auto reply = [&](int status, const std::string& text,
                         std::vector<std::pair<std::string, std::string>> headers = {}) {
    log.status = status;
    headers.emplace_back("Content-Type", "application/json");
    return wire::simple_response(status, text, headers);
  };
  if (head.path() != kTokenPath) return reply(404, error_body("NOT_FOUND", "no such endpoint"));
  if (head.method != "GET" && head.method != "POST") {
    return reply(405, error_body("UNSUPPORTED", "GET or POST"), {{"Allow", "GET, POST"}});
  }
  const auto params = wire::parse_form(head.method == "GET" ? head.query() : body);
  const auto param = [&](std::string_view name) {
    for (const auto& [k, v] : params) {
      if (k == name) return v;
    }
    return std::string();
  };
  for (const auto& [k, v] : params) {
    if (k == "scope") {
      for (auto& s : split(v, ' ')) log.scopes.push_back(std::move(s));
    }
  }
  log.service = param("service");

  std::string username;
  std::string password;
  std::string expected_user;
  std::string expected_password;
  bool anonymous = true;
  bool allow_anonymous;
  {
    std::lock_guard lock(mutex_);
    expected_user = options_.username;
    expected_password = options_.password;
    allow_anonymous = options_.allow_anonymous;
  }
  std::string authenticated;
  const auto unauthorized = [&] {
    return reply(401, error_body("UNAUTHORIZED", "authentication required"),
                 {{"WWW-Authenticate", fmt::format("Basic realm=\"{}\"", options_.issuer)}});
  };
  if (head.method == "GET") {
    log.offline_token = param("offline_token") == "true";
    if (const auto auth = head.headers.get("Authorization")) {
      if (!auth->starts_with("Basic ")) return unauthorized();
      const auto decoded = base64_decode(std::string_view(*auth).substr(6));
      const auto colon = decoded ? decoded->find(':') : std::string::npos;
      if (colon == std::string::npos) return unauthorized();
      username = decoded->substr(0, colon);
      password = decoded->substr(colon + 1);
      anonymous = false;
    }
  } else {
    log.grant_type = param("grant_type");
    log.offline_token = param("access_type") == "offline";
    if (log.grant_type == "password") {
      username = param("username");
      password = param("password");
      anonymous = false;
    } else if (log.grant_type == "refresh_token") {
      std::lock_guard lock(mutex_);
      const auto it = refresh_tokens_.find(param("refresh_token"));
      if (it == refresh_tokens_.end()) {
        log.status = 401;
        return wire::simple_response(401, error_body("UNAUTHORIZED", "unknown refresh token"),
                                     {{"Content-Type", "application/json"}});
      }
      authenticated = it->second;
    } else {
      return reply(400, error_body("UNSUPPORTED", "grant_type must be password or refresh_token"));
    }
  }
  if (!anonymous) {
    if (username != expected_user || password != expected_password) return unauthorized();
    authenticated = username;
  } else if (authenticated.empty() && !allow_anonymous) {
    return unauthorized();
  }
  log.user = authenticated;

  const auto grants = grant(authenticated, log.scopes);
  for (const auto& g : grants) {
    std::string actions;
    for (const auto& a : g.actions) actions += (actions.empty() ? "" : ",") + a;
    log.granted.push_back(fmt::format("{}:{}:{}", g.type, g.name, actions));
  }
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  const std::string token = sign(authenticated, grants, now);
  std::int64_t expires_in;
  {
    std::lock_guard lock(mutex_);
    expires_in = options_.expires_in.count();
  }
  json out = {{"token", token},
              {"access_token", token},
              {"expires_in", expires_in},
              {"issued_at", rfc3339(now)}};
  if (head.method == "POST") {
    std::string scope;
    for (const auto& s : log.scopes) scope += (scope.empty() ? "" : " ") + s;
    out["scope"] = scope;
  }
  if (log.offline_token && !authenticated.empty()) {
    const std::string refresh = random_hex(24);
    {
      std::lock_guard lock(mutex_);
      refresh_tokens_[refresh] = authenticated;
    }
    out["refresh_token"] = refresh;
  }
  return reply(200, out.dump());
}

}  // namespace stowage::test
