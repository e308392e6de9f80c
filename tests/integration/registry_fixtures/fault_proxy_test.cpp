// FaultProxy in front of a real docker-registry, observed with curl (the binary) and
// http::Client: clean pass-through (keep-alive, Range/206, HEAD, chunked both ways, a skopeo push),
// then each fault: a reset mid-body and the Range resume that completes the blob, 429 with
// Retry-After, a 503 burst, one corrupted byte, a stall that trips a low-speed timeout, a
// bandwidth cap, and a stop() that ends stalled connections.
#include "support/fault_proxy.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/error.h"
#include "base/sha256.h"
#include "http/errors.h"
#include "peers.h"
#include "support/registry_fixture.h"

namespace stowage::test {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kRepo = "team/app";
constexpr std::size_t kLayerFileSize = std::size_t{300} * 1024;
constexpr int kTags = 20;                       // chunked tag list: 20 names of 120 characters
constexpr std::uint64_t kCut = 100'000;         // reset point
constexpr std::uint64_t kOffset = 123'457;      // corrupted byte
constexpr std::uint64_t kRate = 256ULL * 1024;  // throttle, bytes/s
constexpr const char* kManifestAccept = "application/vnd.oci.image.manifest.v1+json";

// One registry and image for the whole suite; each test has its own proxy.
struct Suite {
  std::unique_ptr<RegistryFixture> registry;
  std::string manifest_digest;
  std::string blob_digest;  // the one layer: an uncompressed tar of incompressible bytes
  std::string blob;         // its bytes
  std::string error;
};

Suite& suite() {
  static Suite s;
  return s;
}

http::Response send(const std::string& method, const std::string& url,
                    const http::Headers& headers = {}) {
  http::Request request;
  request.method = method;
  request.url = url;
  request.headers = headers;
  request.timeout = std::chrono::seconds(20);
  return peers::client().send(request);
}

class FaultProxyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (RegistryFixture::unavailable_reason() || peers::skopeo_missing()) return;
    Suite& s = suite();
    try {
      s.registry = std::make_unique<RegistryFixture>();
      ImageSpec spec;
      spec.gzip = false;
      spec.layers = {{{"data.bin", peers::noise(kLayerFileSize, 7)}}};
      s.manifest_digest = s.registry->seed_image(kRepo, "1.0", spec);
      const auto manifest =
          send("GET", fmt::format("{}/v2/{}/manifests/1.0", s.registry->url(), kRepo),
               {{"Accept", kManifestAccept}});
      s.blob_digest = json::parse(manifest.body).at("layers").at(0).at("digest");
      s.blob = send("GET", blob_url(s.registry->url())).body;
      if (sha256_digest(s.blob) != s.blob_digest) s.error = "the blob read back has another digest";
    } catch (const std::exception& e) {
      s.error = e.what();
    }
  }
  static void TearDownTestSuite() { suite().registry.reset(); }

  void SetUp() override {
    if (auto r = RegistryFixture::unavailable_reason()) GTEST_SKIP() << *r;
    if (auto r = peers::skopeo_missing()) GTEST_SKIP() << *r;
    if (auto r = peers::curl_missing()) GTEST_SKIP() << *r;
    ASSERT_EQ(suite().error, "");
    proxy_ = std::make_unique<FaultProxy>(suite().registry->port());
  }

  static std::string blob_url(const std::string& base) {
    return fmt::format("{}/v2/{}/blobs/{}", base, kRepo, suite().blob_digest);
  }
  std::string proxied_blob_url() const { return blob_url(proxy_->url()); }
  // The log once it has n entries: an exchange is logged just after its last byte went out, so
  // a client can see its response a moment before.
  std::vector<ProxiedRequest> logged(std::size_t n) const {
    EXPECT_TRUE(proxy_->wait_for_requests(n, std::chrono::seconds(5))) << "fewer than " << n;
    return proxy_->requests();
  }
  const std::string& blob() const { return suite().blob; }

  std::unique_ptr<FaultProxy> proxy_;
  TempDir dir_;
};

TEST_F(FaultProxyTest, PassesThroughKeepAliveRangeHeadAndChunkedBodies) {
  // Keep-alive: one client, three GETs, one connection.
  for (int i = 0; i < 3; ++i) {
    const auto r = send("GET", proxied_blob_url());
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(sha256_digest(r.body), suite().blob_digest);
  }
  EXPECT_EQ(proxy_->connections_accepted(), 1);

  const auto part = send("GET", proxied_blob_url(), {{"Range", "bytes=1000-1999"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.headers.get("Content-Range").value_or(""),
            fmt::format("bytes 1000-1999/{}", blob().size()));
  EXPECT_EQ(part.body, blob().substr(1000, 1000));

  const auto head = send("HEAD", proxied_blob_url());
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers.get("Content-Length").value_or(""), std::to_string(blob().size()));
  EXPECT_EQ(head.headers.get("Docker-Content-Digest").value_or(""), suite().blob_digest);
  EXPECT_EQ(head.body, "");

  const auto log = logged(5);
  ASSERT_EQ(log.size(), 5U);
  EXPECT_EQ(log[3].range, "bytes=1000-1999");
  EXPECT_EQ(log[3].status, 206);
  EXPECT_EQ(log[3].body_bytes, 1000U);
  for (const auto& e : log) {
    EXPECT_TRUE(e.complete);
    EXPECT_EQ(e.fault, "");
  }

  // A chunked request body: a blob upload streamed without a length (POST, PATCH, PUT).
  const std::string data = peers::noise(std::size_t{70} * 1024, 11);
  const auto start = send("POST", fmt::format("{}/v2/team/upload/blobs/uploads/", proxy_->url()));
  ASSERT_EQ(start.status, 202) << start.body;
  std::string location = start.headers.get("Location").value_or("");
  // The registry built Location from the Host header, so it points at the proxy.
  EXPECT_THAT(location, HasSubstr(proxy_->host()));
  http::Request patch;
  patch.method = "PATCH";
  patch.url = location;
  patch.headers.set("Content-Type", "application/octet-stream");
  std::size_t offset = 0;
  patch.body = http::BodySource{
      [&](std::span<char> buffer) {
        const std::size_t n = std::min({buffer.size(), data.size() - offset, std::size_t{8192}});
        std::copy_n(data.data() + offset, n, buffer.data());
        offset += n;
        return n;
      },
      std::nullopt};
  const auto patched = peers::client().send(patch);
  ASSERT_EQ(patched.status, 202) << patched.body;
  location = patched.headers.get("Location").value_or("");
  const std::string digest = sha256_digest(data);
  const auto put = send(
      "PUT", location + (location.find('?') == std::string::npos ? "?" : "&") + "digest=" + digest);
  ASSERT_EQ(put.status, 201) << put.body;
  EXPECT_EQ(
      send("GET", fmt::format("{}/v2/team/upload/blobs/{}", suite().registry->url(), digest)).body,
      data);

  // A chunked response: a tag list longer than the 2 KiB Go's net/http buffers before it falls
  // back from Content-Length to chunked (20 tags of 120 characters).
  const std::string manifest =
      send("GET", fmt::format("{}/v2/{}/manifests/1.0", suite().registry->url(), kRepo),
           {{"Accept", kManifestAccept}})
          .body;
  for (int i = 0; i < kTags; ++i) {
    http::Request tag;
    tag.method = "PUT";
    tag.url = fmt::format("{}/v2/team/tags/manifests/{}-{:04}", suite().registry->url(),
                          std::string(115, 't'), i);
    tag.headers.set("Content-Type", kManifestAccept);
    tag.body = manifest;
    // Blobs must exist in team/tags: mount them from kRepo first, once.
    if (i == 0) {
      const auto m = json::parse(manifest);
      for (const auto& d : {m.at("config").at("digest").get<std::string>(), suite().blob_digest}) {
        const auto mount =
            send("POST", fmt::format("{}/v2/team/tags/blobs/uploads/?mount={}&from={}",
                                     suite().registry->url(), d, kRepo));
        ASSERT_EQ(mount.status, 201) << mount.body;
      }
    }
    ASSERT_EQ(peers::client().send(tag).status, 201);
  }
  proxy_->clear_requests();
  const auto direct =
      send("GET", fmt::format("{}/v2/team/tags/tags/list", suite().registry->url()));
  const auto proxied = send("GET", fmt::format("{}/v2/team/tags/tags/list", proxy_->url()));
  EXPECT_EQ(proxied.status, 200);
  EXPECT_EQ(proxied.body, direct.body);
  EXPECT_EQ(json::parse(proxied.body).at("tags").size(), static_cast<std::size_t>(kTags));
  ASSERT_EQ(logged(1).size(), 1U);
  EXPECT_TRUE(proxy_->requests()[0].chunked) << "the registry answered with a Content-Length";
}

TEST_F(FaultProxyTest, SkopeoPushesAndInspectsThroughIt) {
  ImageSpec spec;
  spec.labels = {{"via", "proxy"}};
  const std::string digest = seed_image(proxy_->host(), "team/proxied", "1.0", spec);
  RunResult r = peers::skopeo({"inspect", "--tls-verify=false", "--no-creds",
                               fmt::format("docker://{}/team/proxied:1.0", proxy_->host())});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(json::parse(r.out).at("Digest"), digest);
  const auto log = logged(1);
  EXPECT_TRUE(std::any_of(log.begin(), log.end(), [](const auto& e) {
    return e.method == "PUT" && e.target.find("/manifests/1.0") != std::string::npos &&
           e.status == 201;
  }));
}

TEST_F(FaultProxyTest, ResetMidBodyThenRangeResumeCompletesTheBlob) {
  const int rule =
      proxy_->add_fault({.method = "GET", .path = "/blobs/sha256:", .fault = ResetAfter{kCut}});
  const auto first_file = dir_ / "first";
  const RunResult first = peers::curl({"-sS", "-o", first_file.string(), proxied_blob_url()});
  EXPECT_EQ(first.exit_code, 56) << first.describe();  // CURLE_RECV_ERROR: connection reset
  EXPECT_THAT(first.err, HasSubstr("reset"));
  const std::string got = read_text_file(first_file);
  ASSERT_EQ(got.size(), kCut) << "the client reads every byte sent before the reset";
  EXPECT_EQ(got, blob().substr(0, kCut));

  // Resume: Range from what arrived, 206 with exactly the rest.
  const auto rest_file = dir_ / "rest";
  const RunResult rest =
      peers::curl({"-sS", "-o", rest_file.string(), "-w", "%{http_code}", "-H",
                   fmt::format("Range: bytes={}-", got.size()), proxied_blob_url()});
  ASSERT_TRUE(rest.ok()) << rest.describe();
  EXPECT_EQ(rest.out, "206");
  EXPECT_EQ(sha256_digest(got + read_text_file(rest_file)), suite().blob_digest);

  const auto log = logged(2);
  ASSERT_EQ(log.size(), 2U);
  EXPECT_EQ(log[0].fault, "reset");
  EXPECT_EQ(log[0].rule, rule);
  EXPECT_EQ(log[0].status, 200);
  EXPECT_EQ(log[0].body_bytes, kCut);
  EXPECT_FALSE(log[0].complete);
  EXPECT_EQ(log[1].range, fmt::format("bytes={}-", kCut));
  EXPECT_EQ(log[1].status, 206);
  EXPECT_EQ(log[1].fault, "");
  EXPECT_TRUE(log[1].complete);
  EXPECT_EQ(proxy_->fault_count(rule), 1);

  // http::Client sees the reset as a retryable Unavailable error.
  proxy_->add_fault({.method = "GET", .path = "/blobs/", .fault = ResetAfter{10}});
  try {
    send("GET", proxied_blob_url());
    ADD_FAILURE() << "no error for a reset transfer";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable) << e.what();
  }
}

TEST_F(FaultProxyTest, TooManyRequestsCarriesRetryAfterOnce) {
  proxy_->add_fault({.method = "GET",
                     .path = "/manifests/",
                     .fault = RespondStatus{.status = 429, .retry_after = "7"}});
  const std::string url = fmt::format("{}/v2/{}/manifests/1.0", proxy_->url(), kRepo);
  const RunResult limited =
      peers::curl({"-sS", "-i", "-H", std::string("Accept: ") + kManifestAccept, url});
  ASSERT_TRUE(limited.ok()) << limited.describe();
  EXPECT_THAT(limited.out, ::testing::StartsWith("HTTP/1.1 429"));
  EXPECT_THAT(limited.out, HasSubstr("Retry-After: 7\r\n"));
  EXPECT_THAT(limited.out, HasSubstr("TOOMANYREQUESTS"));

  // The next one passes; http::Client's error mapping sees the 429 as it would in production.
  const auto ok = send("GET", url, {{"Accept", kManifestAccept}});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.headers.get("Docker-Content-Digest").value_or(""), suite().manifest_digest);
  proxy_->add_fault(
      {.path = "/manifests/", .fault = RespondStatus{.status = 429, .retry_after = "3"}});
  try {
    http::raise_for_status(send("HEAD", url, {{"Accept", kManifestAccept}}), "resolving");
    ADD_FAILURE() << "no 429";
  } catch (const http::HttpStatusError& e) {
    EXPECT_EQ(e.code(), Code::kResourceExhausted);
    EXPECT_EQ(e.retry_after(), "3");
  }
  const auto log = logged(3);
  ASSERT_EQ(log.size(), 3U);
  EXPECT_EQ(log[0].status, 429);
  EXPECT_EQ(log[1].status, 200);
  EXPECT_EQ(log[2].method, "HEAD");
  EXPECT_EQ(log[2].status, 429);
}

TEST_F(FaultProxyTest, ServiceUnavailableBurstThenRecovery) {
  // The first matching request passes (skip), the next three get 503, then all pass.
  const int rule = proxy_->add_fault(
      {.method = "GET", .path = "^/v2/.*/blobs/", .skip = 1, .times = 3, .fault = RespondStatus{}});
  std::vector<int> statuses;
  statuses.reserve(6);
  for (int i = 0; i < 6; ++i) statuses.push_back(send("GET", proxied_blob_url()).status);
  EXPECT_EQ(statuses, (std::vector<int>{200, 503, 503, 503, 200, 200}));
  EXPECT_EQ(proxy_->fault_count(rule), 3);
  // Requests that do not match never count: a HEAD passes.
  EXPECT_EQ(send("HEAD", proxied_blob_url()).status, 200);
  // The 503s were answered on the kept-alive connection without reaching the registry.
  EXPECT_EQ(proxy_->connections_accepted(), 1);
  const RunResult curl =
      peers::curl({"-sS", "-o", "/dev/null", "-w", "%{http_code}", proxied_blob_url()});
  EXPECT_EQ(curl.out, "200");
}

TEST_F(FaultProxyTest, CorruptedByteChangesTheDigestButNotTheLength) {
  proxy_->add_fault({.method = "GET", .path = "/blobs/", .fault = CorruptByte{kOffset}});
  const auto file = dir_ / "corrupt";
  const RunResult r =
      peers::curl({"-sS", "-o", file.string(), "-w", "%{http_code}", proxied_blob_url()});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "200");
  const std::string got = read_text_file(file);
  ASSERT_EQ(got.size(), blob().size());
  EXPECT_NE(sha256_digest(got), suite().blob_digest);
  std::vector<std::size_t> differing;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i] != blob()[i]) differing.push_back(i);
  }
  EXPECT_EQ(differing, std::vector<std::size_t>{kOffset});
  // Only once: the next download is intact.
  EXPECT_EQ(sha256_digest(send("GET", proxied_blob_url()).body), suite().blob_digest);
  EXPECT_EQ(logged(2).at(0).fault, "corrupt");
  EXPECT_TRUE(proxy_->requests().at(0).complete);
}

TEST_F(FaultProxyTest, StallTripsLowSpeedTimeoutsUntilReleased) {
  proxy_->add_fault({.method = "GET", .path = "/blobs/", .times = 2, .fault = Stall{}});
  // curl: headers arrive, then nothing; --speed-time gives up (CURLE_OPERATION_TIMEDOUT).
  const auto started = SteadyClock::now();
  const RunResult r = peers::curl(
      {"-sS", "-o", "/dev/null", "--speed-limit", "1000", "--speed-time", "1", proxied_blob_url()});
  EXPECT_EQ(r.exit_code, 28) << r.describe();
  EXPECT_LT(SteadyClock::now() - started, std::chrono::seconds(10));
  EXPECT_EQ(proxy_->stalled(), 1);

  // http::Client's low-speed limit maps to DeadlineExceeded.
  http::Request request;
  request.url = proxied_blob_url();
  request.low_speed_limit = 1000;
  request.low_speed_time = std::chrono::seconds(1);
  try {
    peers::client().send(request);
    ADD_FAILURE() << "no timeout from a stalled transfer";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kDeadlineExceeded) << e.what();
  }
  EXPECT_TRUE(proxy_->wait_for_stalled(2, std::chrono::seconds(5)));
  proxy_->release_stalls();
  EXPECT_TRUE(proxy_->wait_for_requests(2, std::chrono::seconds(5)));
  EXPECT_EQ(proxy_->stalled(), 0);
  for (const auto& e : proxy_->requests()) {
    EXPECT_EQ(e.fault, "stall");
    EXPECT_FALSE(e.complete);  // the clients had gone
  }

  // A stall with a duration ends by itself and the transfer completes.
  proxy_->add_fault(
      {.path = "/blobs/",
       .fault = Stall{.after_body_bytes = 4096, .duration = std::chrono::milliseconds(300)}});
  const auto t0 = SteadyClock::now();
  const auto body = send("GET", proxied_blob_url()).body;
  EXPECT_GE(SteadyClock::now() - t0, std::chrono::milliseconds(300));
  EXPECT_EQ(sha256_digest(body), suite().blob_digest);
}

TEST_F(FaultProxyTest, ThrottleCapsTheTransferRate) {
  proxy_->add_fault({.path = "/blobs/", .fault = Throttle{kRate}});
  const auto t0 = SteadyClock::now();
  const auto r = send("GET", proxied_blob_url(), {{"Range", "bytes=0-131071"}});
  const auto elapsed = SteadyClock::now() - t0;
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, blob().substr(0, 131072));
  // 128 KiB at 256 KiB/s: about half a second (the first slice goes out at once).
  EXPECT_GE(elapsed, std::chrono::milliseconds(450));
  EXPECT_EQ(logged(1).at(0).fault, "throttle");
  // Unthrottled afterwards.
  EXPECT_EQ(send("GET", proxied_blob_url(), {{"Range", "bytes=0-131071"}}).body,
            blob().substr(0, 131072));
}

TEST_F(FaultProxyTest, StopEndsStalledAndIdleConnections) {
  proxy_->add_fault({.path = "/blobs/", .fault = Stall{}});
  // An idle kept-alive connection, and a transfer stalled after its headers.
  EXPECT_EQ(send("GET", fmt::format("{}/v2/", proxy_->url())).status, 200);
  auto stalled = std::async(std::launch::async, [&] {
    try {
      send("GET", proxied_blob_url());
      return std::string("completed");
    } catch (const Error& e) {
      return std::string(code_name(e.code()));
    }
  });
  ASSERT_TRUE(proxy_->wait_for_stalled(1, std::chrono::seconds(5)));
  const auto t0 = SteadyClock::now();
  proxy_->stop();
  EXPECT_LT(SteadyClock::now() - t0, std::chrono::seconds(2));
  ASSERT_EQ(stalled.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(stalled.get(), "Unavailable");
  proxy_->stop();  // idempotent
  EXPECT_FALSE(http_get_status(proxy_->port(), "/v2/", std::chrono::milliseconds(500)));
}

}  // namespace
}  // namespace stowage::test
