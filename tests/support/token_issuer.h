// A test token issuer for registry Bearer auth (distribution's token spec): an HTTP server on
// 127.0.0.1 that checks Basic credentials and answers `GET /token?service=&scope=` (and the OAuth2
// `POST /token` form) with a JWT that distribution 2.8 accepts. Grants are exactly the requested
// actions that the policy allows, per repository, so tests can provoke `insufficient_scope`.
// It counts and logs every request, so tests can assert that a client reuses its tokens.
//   TokenIssuer issuer({.username = "u", .password = "p"});
//   registry config: auth.token {realm: issuer.realm(), service, issuer, rootcertbundle:
//                    issuer.signing_cert_pem() written to a file}
// RegistryFixture (auth = kToken) owns one and writes that config itself.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "support/test_pki.h"

namespace stowage::test {

namespace wire {
class Conn;
class Server;
struct RequestHead;
}  // namespace wire

// How the JWT header names its signing key. Distribution 2.8 takes x5c first (the chain must
// verify against rootcertbundle), else kid (the libtrust fingerprint of a rootcertbundle key).
enum class TokenKeyHeader { kX5c, kKid, kBoth };

struct TokenIssuerOptions {
  // The one account accepted with HTTP Basic (GET) or grant_type=password (POST).
  std::string username = "stowage";
  std::string password = "stowage-test-password";
  // Token audience (the registry's auth.token.service) and issuer (auth.token.issuer).
  std::string service = "stowage-test-registry";
  std::string issuer = "stowage-test-issuer";
  // JWS algorithm: ES256 with an EC P-256 key, or RS256 with an RSA 2048 key.
  KeyAlgorithm key = KeyAlgorithm::kEcP256;
  TokenKeyHeader key_header = TokenKeyHeader::kX5c;
  // Reported as expires_in. The token's exp is issued_at + token_lifetime (default: expires_in);
  // distribution allows 60 s of leeway, so a lifetime below -60 s makes tokens it rejects.
  std::chrono::seconds expires_in{300};
  std::optional<std::chrono::seconds> token_lifetime = std::nullopt;
  // What the user may do: per repository name, the allowed actions ("pull", "push", "delete",
  // or "*" for any); repositories not listed get default_actions.
  std::map<std::string, std::set<std::string>> repository_actions = {};
  std::set<std::string> default_actions = {"pull", "push", "delete"};
  // `registry:catalog:*` for the user.
  bool allow_catalog = true;
  // Requests without credentials: a token with these grants (like Docker Hub, an empty access
  // list by default) when true; 401 when false.
  bool allow_anonymous = true;
  std::map<std::string, std::set<std::string>> anonymous_repository_actions = {};
};

// One token request as the issuer saw it.
struct TokenRequest {
  std::string method;                // GET or POST
  std::string user;                  // authenticated user; "" when anonymous or refused
  std::string service;               // as requested
  std::vector<std::string> scopes;   // as requested, one per scope
  std::string grant_type;            // POST only: password, refresh_token
  bool offline_token = false;        // refresh token asked for
  int status = 0;                    // what the issuer answered
  std::vector<std::string> granted;  // "repository:team/app:pull,push" per access entry
};

class TokenIssuer {
 public:
  // Generates the signing key and certificate and starts serving. Throws stowage::Error.
  explicit TokenIssuer(TokenIssuerOptions options = {});
  ~TokenIssuer();
  TokenIssuer(const TokenIssuer&) = delete;
  TokenIssuer& operator=(const TokenIssuer&) = delete;

  int port() const;
  // "http://127.0.0.1:PORT/token": the registry's auth.token.realm.
  std::string realm() const;
  const std::string& service() const { return options_.service; }
  const std::string& issuer() const { return options_.issuer; }
  // The signing certificate (PEM): the registry's auth.token.rootcertbundle.
  const std::string& signing_cert_pem() const { return signing_.cert_pem; }
  // The libtrust key ID of the signing key (what a `kid` header carries).
  const std::string& key_id() const { return key_id_; }

  // Changes the policy for later requests. Thread-safe.
  void set_repository_actions(const std::string& repository, std::set<std::string> actions);
  void set_password(std::string password);

  // Token requests answered so far (any status), and tokens issued (status 200). Thread-safe.
  int requests() const;
  int tokens_issued() const;
  std::vector<TokenRequest> request_log() const;
  void clear_log();
  // Waits until at least n requests were answered; false at the deadline.
  bool wait_for_requests(int n, std::chrono::milliseconds timeout) const;

  // A signed token for the configured user with exactly these grants ("repository:x:pull,push"),
  // without an HTTP round trip: for tests of clients that hold a token already. Thread-safe.
  std::string make_token(const std::vector<std::string>& access) const;

 private:
  struct Grant {
    std::string type;
    std::string name;
    std::vector<std::string> actions;
  };
  void serve(wire::Conn& conn);
  std::string handle(const wire::RequestHead& head, const std::string& body, TokenRequest& log);
  std::vector<Grant> grant(const std::string& user, const std::vector<std::string>& scopes) const;
  std::string sign(const std::string& subject, const std::vector<Grant>& grants,
                   std::int64_t issued_at) const;

  TokenIssuerOptions options_;
  TestCertificate signing_;
  std::string key_id_;
  mutable std::mutex mutex_;  // guards options_ policy fields, log_, refresh_tokens_
  mutable std::condition_variable changed_;
  std::vector<TokenRequest> log_;
  int issued_ = 0;
  std::map<std::string, std::string> refresh_tokens_;  // token -> user
  std::unique_ptr<wire::Server> server_;
};

}  // namespace stowage::test
