// RegistryClient's decisions against a scripted fake Transport (a narrow seam; the same
// behaviours run against the real docker-registry in tests/integration/oci_registry): retries
// with Retry-After on an injected clock, the Bearer token flow and token reuse, redirects that
// must not carry Authorization to another host, resume with Range after a reset, digest checks,
// and that secrets never reach error messages.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>

#include "base/error.h"
#include "base/sha256.h"
#include "oci/registry_client.h"
#include "oci/store.h"

namespace stowage::oci {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A clock whose sleeps return at once, advancing time by what was asked.
class AutoClock final : public Clock {
 public:
  TimePoint now() const override {
    std::lock_guard lock(mu_);
    return TimePoint(now_);
  }
  WallTime wall_now() const override {
    std::lock_guard lock(mu_);
    return WallTime(std::chrono::seconds(1'700'000'000)) +
           std::chrono::duration_cast<WallTime::duration>(now_);
  }
  bool sleep_until(TimePoint deadline, std::stop_token) override {
    std::lock_guard lock(mu_);
    if (deadline.time_since_epoch() > now_) {
      slept_ += deadline.time_since_epoch() - now_;
      now_ = deadline.time_since_epoch();
    }
    return true;
  }
  Duration slept() const {
    std::lock_guard lock(mu_);
    return slept_;
  }

 private:
  mutable std::mutex mu_;  // guards now_, slept_
  Duration now_{0};
  Duration slept_{0};
};

// Answers each request with handler(request). A response header "X-Fake-Reset-After: N" makes
// stream() deliver N body bytes and then fail as a connection reset does.
class FakeTransport final : public http::Transport {
 public:
  using Handler = std::function<http::Response(const http::Request&)>;
  explicit FakeTransport(Handler handler) : handler_(std::move(handler)) {}

  http::Response send(const http::Request& request) override {
    http::Response r;
    {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
      r = handler_(request);
    }
    r.method = request.method;
    r.url = request.url;
    if (request.method == "HEAD") r.body.clear();
    return r;
  }

  http::Response stream(const http::Request& request,
                        const http::StreamHandlers& handlers) override {
    http::Response r = send(request);
    std::string body = std::move(r.body);
    r.body.clear();
    const auto reset = r.headers.get("X-Fake-Reset-After");
    r.headers.remove("X-Fake-Reset-After");
    const auto action = handlers.on_head ? handlers.on_head(r) : http::BodyAction::kStream;
    if (action == http::BodyAction::kAbort) {
      r.aborted = true;
      return r;
    }
    if (action == http::BodyAction::kBuffer) {
      r.body = std::move(body);
      return r;
    }
    const std::size_t limit = reset ? std::stoul(*reset) : body.size();
    for (std::size_t off = 0; off < std::min(limit, body.size()); off += 64) {
      const auto chunk = std::string_view(body).substr(off, std::min<std::size_t>(64, limit - off));
      if (handlers.on_body && !handlers.on_body(chunk)) {
        r.aborted = true;
        return r;
      }
    }
    if (limit < body.size()) {
      throw Error(Code::kUnavailable, "GET " + request.url + ": Connection reset by peer");
    }
    return r;
  }

  std::vector<http::Request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  mutable std::mutex mu_;  // guards requests_ and serializes handler_
  Handler handler_;
  std::vector<http::Request> requests_;
};

http::Response respond(int status, std::string body = {}, http::Headers headers = {}) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

RegistryClientOptions options(std::string registry = "registry.test") {
  RegistryClientOptions o;
  o.registry = std::move(registry);
  o.retry.max_attempts = 3;
  return o;
}

std::string auth_of(const http::Request& r) {
  return r.headers.get("Authorization").value_or("");
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("oci-registry-client-" + std::to_string(::getpid()) + "-" +
             std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

constexpr const char* kManifest =
    R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
    R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:)"
    R"(44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]})";

TEST(RegistryClientLogic, RetriesUnavailableHonouringRetryAfter) {
  int calls = 0;
  FakeTransport transport([&](const http::Request&) {
    return ++calls == 1 ? respond(503, "", {{"Retry-After", "7"}}) : respond(200, "{}");
  });
  AutoClock clock;
  RegistryClient client(transport, clock, options());
  client.ping();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(clock.slept(), std::chrono::seconds(7));
}

TEST(RegistryClientLogic, GivesUpAfterMaxAttempts) {
  FakeTransport transport([](const http::Request&) {
    return respond(503, R"({"errors":[{"code":"UNAVAILABLE","message":"overloaded"}]})");
  });
  AutoClock clock;
  RegistryClient client(transport, clock, options());
  try {
    client.ping();
    FAIL() << "ping succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable);
    EXPECT_THAT(e.what(), HasSubstr("registry registry.test"));
    EXPECT_THAT(e.what(), HasSubstr("overloaded"));
  }
  EXPECT_EQ(transport.requests().size(), 3U);
}

TEST(RegistryClientLogic, RetryAfterBeyondTheLimitFailsAtOnce) {
  FakeTransport transport([](const http::Request&) {
    return respond(429, "", {{"Retry-After", "3600"}});
  });
  AutoClock clock;
  RegistryClient client(transport, clock, options());
  try {
    client.ping();
    FAIL() << "ping succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kResourceExhausted);
  }
  EXPECT_EQ(transport.requests().size(), 1U);
  EXPECT_EQ(clock.slept(), Clock::Duration(0));
}

// A registry with Bearer auth whose token endpoint hands out `token` for valid credentials.
FakeTransport::Handler bearer_registry(const std::string& token, int& token_calls,
                                       std::vector<std::string>& token_urls) {
  return [token, &token_calls, &token_urls](const http::Request& r) {
    if (r.url.starts_with("https://auth.test/token")) {
      ++token_calls;
      token_urls.push_back(r.url);
      if (auth_of(r) != basic_authorization({"alice", "hunter2", ""})) return respond(401);
      return respond(200, R"({"token":")" + token + R"(","expires_in":300})");
    }
    if (auth_of(r) == "Bearer " + token) {
      return respond(200, kManifest,
                     {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}});
    }
    return respond(
        401, R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})",
        {{"WWW-Authenticate",
          R"(Bearer realm="https://auth.test/token",service="svc",scope="repository:team/app:pull")"}});
  };
}

TEST(RegistryClientLogic, BearerTokenIsFetchedOncePerScope) {
  int token_calls = 0;
  std::vector<std::string> token_urls;
  FakeTransport transport(bearer_registry("tok-1", token_calls, token_urls));
  AutoClock clock;
  auto o = options();
  o.credentials = {"alice", "hunter2", ""};
  RegistryClient client(transport, clock, o);
  const auto m1 = client.get_manifest("team/app", "1.0");
  const auto m2 = client.get_manifest("team/app", "1.0");
  EXPECT_EQ(m1.digest, sha256_digest(kManifest));
  EXPECT_EQ(m1.media_type, "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(token_calls, 1);
  EXPECT_EQ(client.token_requests(), 1);
  ASSERT_EQ(token_urls.size(), 1U);
  EXPECT_THAT(token_urls[0], HasSubstr("service=svc"));
  EXPECT_THAT(token_urls[0], HasSubstr("scope=repository%3Ateam%2Fapp%3Apull"));
  EXPECT_THAT(token_urls[0], HasSubstr("account=alice"));
  // 401, token, retry; then the cached token straight away.
  const auto seen = transport.requests();
  ASSERT_EQ(seen.size(), 4U);
  EXPECT_EQ(auth_of(seen[0]), "");
  EXPECT_EQ(auth_of(seen[2]), "Bearer tok-1");
  EXPECT_EQ(auth_of(seen[3]), "Bearer tok-1");
}

TEST(RegistryClientLogic, BadPasswordIsUnauthenticatedWithoutSecrets) {
  int token_calls = 0;
  std::vector<std::string> token_urls;
  FakeTransport transport(bearer_registry("SECRET-TOKEN-42", token_calls, token_urls));
  AutoClock clock;
  auto o = options();
  o.credentials = {"alice", "wrong-password-77", ""};
  RegistryClient client(transport, clock, o);
  try {
    client.get_manifest("team/app", "1.0");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnauthenticated);
    EXPECT_THAT(e.what(), HasSubstr("alice"));
    EXPECT_THAT(e.what(), HasSubstr("registry.test"));
    EXPECT_THAT(e.what(), Not(HasSubstr("wrong-password-77")));
    EXPECT_THAT(e.what(), Not(HasSubstr(base64_encode("alice:wrong-password-77"))));
  }
}

TEST(RegistryClientLogic, RegistryRefusingTheTokenNamesNoToken) {
  FakeTransport transport([](const http::Request& r) {
    if (r.url.starts_with("https://auth.test/token")) {
      return respond(200, R"({"token":"SECRET-TOKEN-42"})");
    }
    return respond(
        401, R"({"errors":[{"code":"UNAUTHORIZED","message":"nope"}]})",
        {{"WWW-Authenticate",
          R"(Bearer realm="https://auth.test/token",service="svc",error="insufficient_scope")"}});
  });
  AutoClock clock;
  auto o = options();
  o.credentials = {"alice", "hunter2", ""};
  RegistryClient client(transport, clock, o);
  try {
    client.get_manifest("team/app", "1.0");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnauthenticated);
    EXPECT_THAT(e.what(), HasSubstr("team/app"));
    EXPECT_THAT(e.what(), Not(HasSubstr("SECRET-TOKEN-42")));
    EXPECT_THAT(e.what(), Not(HasSubstr("hunter2")));
  }
  // Anonymous, then one token and one retry, then one fresh token and a last retry: bounded.
  EXPECT_LE(transport.requests().size(), 5U);
}

TEST(RegistryClientLogic, RedirectToAnotherHostCarriesNoAuthorization) {
  const std::string blob(300, 'x');
  const std::string digest = sha256_digest(blob);
  FakeTransport transport([&](const http::Request& r) {
    if (r.url.starts_with("https://storage.test/")) return respond(200, blob);
    if (auth_of(r).empty()) {
      return respond(401, "", {{"WWW-Authenticate", R"(Basic realm="registry")"}});
    }
    return respond(307, "", {{"Location", "https://storage.test/blob?X-Amz-Signature=abc"}});
  });
  AutoClock clock;
  auto o = options();
  o.credentials = {"alice", "hunter2", ""};
  RegistryClient client(transport, clock, o);
  TempDir dir;
  Store store(dir.path() / "store");
  client.fetch_blob("team/app", Descriptor{"application/octet-stream", digest, 300, {}, {}, {}, ""},
                    store);
  EXPECT_TRUE(store.has(digest));
  const auto seen = transport.requests();
  ASSERT_EQ(seen.size(), 3U);
  EXPECT_EQ(auth_of(seen[1]), basic_authorization({"alice", "hunter2", ""}));
  EXPECT_EQ(seen[2].url, "https://storage.test/blob?X-Amz-Signature=abc");
  EXPECT_EQ(auth_of(seen[2]), "");
}

TEST(RegistryClientLogic, ResumesWithRangeAfterAReset) {
  std::string blob;
  for (int i = 0; i < 1000; ++i) blob += static_cast<char>('a' + i % 26);
  const std::string digest = sha256_digest(blob);
  FakeTransport transport([&](const http::Request& r) {
    const auto range = r.headers.get("Range");
    if (!range) return respond(200, blob, {{"X-Fake-Reset-After", "400"}});
    EXPECT_EQ(*range, "bytes=400-");  // what arrived before the reset
    return respond(206, blob.substr(400), {{"Content-Range", "bytes 400-999/1000"}});
  });
  AutoClock clock;
  RegistryClient client(transport, clock, options());
  TempDir dir;
  Store store(dir.path() / "store");
  std::uint64_t last_done = 0;
  client.fetch_blob("team/app",
                    Descriptor{"application/octet-stream", digest, 1000, {}, {}, {}, ""}, store,
                    [&](std::uint64_t done, std::uint64_t total) {
                      EXPECT_EQ(total, 1000U);
                      last_done = done;
                    });
  EXPECT_EQ(last_done, 1000U);
  EXPECT_EQ(store.read(digest), blob);
  EXPECT_EQ(transport.requests().size(), 2U);
  EXPECT_TRUE(store.verify().clean());
}

TEST(RegistryClientLogic, RestartsWhenTheRangeIsIgnored) {
  const std::string blob(1000, 'q');
  const std::string digest = sha256_digest(blob);
  int calls = 0;
  FakeTransport transport([&](const http::Request&) {
    return ++calls == 1 ? respond(200, blob, {{"X-Fake-Reset-After", "200"}}) : respond(200, blob);
  });
  AutoClock clock;
  RegistryClient client(transport, clock, options());
  TempDir dir;
  Store store(dir.path() / "store");
  client.fetch_blob("team/app",
                    Descriptor{"application/octet-stream", digest, 1000, {}, {}, {}, ""}, store);
  EXPECT_EQ(store.read(digest), blob);
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(transport.requests()[1].headers.contains("Range"));
}

TEST(RegistryClientLogic, CorruptBlobIsRejectedAndNothingKept) {
  const std::string blob(500, 'z');
  const std::string digest = sha256_digest(blob);
  std::string corrupt = blob;
  corrupt[100] = 'Z';
  FakeTransport transport([&](const http::Request&) { return respond(200, corrupt); });
  AutoClock clock;
  RegistryClient client(transport, clock, options());
  TempDir dir;
  Store store(dir.path() / "store");
  try {
    client.fetch_blob("team/app",
                      Descriptor{"application/octet-stream", digest, 500, {}, {}, {}, ""}, store);
    FAIL() << "corrupt blob accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kDataLoss);
    EXPECT_THAT(e.what(), HasSubstr("team/app"));
  }
  EXPECT_FALSE(store.has(digest));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path() / "store" / "ingest"));
}

TEST(RegistryClientLogic, ManifestByDigestIsVerified) {
  FakeTransport transport([](const http::Request&) {
    return respond(200, kManifest,
                   {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}});
  });
  AutoClock clock;
  RegistryClient client(transport, clock, options());
  const std::string other = sha256_digest("something else");
  try {
    client.get_manifest("team/app", other);
    FAIL() << "mismatch accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kDataLoss);
  }
  EXPECT_EQ(client.get_manifest("team/app", sha256_digest(kManifest)).digest,
            sha256_digest(kManifest));
  const auto seen = transport.requests();
  EXPECT_THAT(seen[0].headers.get("Accept").value_or(""),
              HasSubstr("application/vnd.docker.distribution.manifest.list.v2+json"));
  EXPECT_THAT(seen[0].headers.get("Accept").value_or(""),
              HasSubstr("application/vnd.oci.image.index.v1+json"));
}

TEST(RegistryClientLogic, TagsFollowLinkPagination) {
  FakeTransport transport([](const http::Request& r) {
    if (r.url.find("last=b") != std::string::npos) {
      return respond(200, R"({"name":"team/app","tags":["c"]})");
    }
    return respond(200, R"({"name":"team/app","tags":["a","b"]})",
                   {{"Link", R"(</v2/team/app/tags/list?last=b&n=2>; rel="next")"}});
  });
  AutoClock clock;
  RegistryClient client(transport, clock, options());
  EXPECT_THAT(client.list_tags("team/app", 2), ::testing::ElementsAre("a", "b", "c"));
  const auto seen = transport.requests();
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[0].url, "https://registry.test/v2/team/app/tags/list?n=2");
  EXPECT_EQ(seen[1].url, "https://registry.test/v2/team/app/tags/list?last=b&n=2");
}

TEST(RegistryClientLogic, SearchWithoutV1ApiIsNotFound) {
  FakeTransport transport([](const http::Request&) { return respond(404, "404 page not found"); });
  AutoClock clock;
  RegistryClient client(transport, clock, options());
  try {
    client.search_v1("nginx", 5);
    FAIL() << "search succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_THAT(e.what(), HasSubstr("does not offer the search API"));
  }
  EXPECT_EQ(transport.requests()[0].url, "https://registry.test/v1/search?q=nginx&n=5");
}

TEST(RegistryClientLogic, DockerHubUsesItsApiAndIndexHosts) {
  FakeTransport transport([](const http::Request& r) {
    if (r.url.find("/v1/search") != std::string::npos) {
      return respond(200, R"({"results":[{"name":"library/nginx","star_count":3}]})");
    }
    return respond(200, "{}");
  });
  AutoClock clock;
  RegistryClient client(transport, clock, options("docker.io"));
  client.ping();
  const auto results = client.search_v1("nginx", 1);
  ASSERT_EQ(results.size(), 1U);
  EXPECT_EQ(results[0].star_count, 3U);
  EXPECT_EQ(transport.requests()[0].url, "https://registry-1.docker.io/v2/");
  EXPECT_EQ(transport.requests()[1].url, "https://index.docker.io/v1/search?q=nginx&n=1");
}

}  // namespace
}  // namespace stowage::oci

namespace stowage::oci {
namespace {

void write(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

TEST(CertsDir, ReadsCasAndTheClientKeyPairOfTheRegistry) {
  TempDir dir;
  const auto host = dir.path() / "registry.test:5000";
  write(host / "ca.crt", "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----");
  write(host / "other.crt", "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n");
  write(host / "client.cert", "cert");
  write(host / "client.key", "key");
  const http::TlsOptions tls =
      tls_options_from_certs_dir(dir.path().string(), "registry.test:5000");
  EXPECT_EQ(tls.ca_pem,
            "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n"
            "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n");
  EXPECT_TRUE(tls.also_trust_system_store);
  EXPECT_EQ(tls.client_cert_file, (host / "client.cert").string());
  EXPECT_EQ(tls.client_key_file, (host / "client.key").string());
  EXPECT_FALSE(tls.insecure);

  const http::TlsOptions none = tls_options_from_certs_dir(dir.path().string(), "elsewhere.test");
  EXPECT_TRUE(none.ca_pem.empty());
  EXPECT_TRUE(none.client_cert_file.empty());
  EXPECT_TRUE(tls_options_from_certs_dir(dir.path().string(), "../x").ca_pem.empty());
}

TEST(CertsDir, CertificateWithoutKeyIsRefused) {
  TempDir dir;
  write(dir.path() / "registry.test" / "client.cert", "cert");
  try {
    (void)tls_options_from_certs_dir(dir.path().string(), "registry.test");
    FAIL() << "accepted a certificate without its key";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_THAT(e.what(), HasSubstr("client.key"));
  }
}

}  // namespace
}  // namespace stowage::oci
