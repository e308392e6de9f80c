// Registry faults injected by tests/support's FaultProxy in front of a real docker-registry: a
// connection reset mid-blob resumed with Range, 503 with Retry-After then success, a corrupted
// byte rejected with nothing kept, and a registry that stays down failing after bounded attempts.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "common.h"
#include "oci/copy.h"
#include "oci/registry_client.h"
#include "oci/store.h"
#include "support/fault_proxy.h"
#include "support/image_seed.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace stowage::oci {
namespace {

namespace t = stowage::test;
using ::testing::HasSubstr;

std::string noise(std::size_t size, unsigned seed) {
  std::string out(size, '\0');
  std::uint32_t x = seed * 2654435761U + 7;
  for (auto& c : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x & 0xff);
  }
  return out;
}

struct Suite {
  std::unique_ptr<t::RegistryFixture> registry;
  std::string digest;
  std::string error;
};

Suite& suite() {
  static Suite s;
  return s;
}

class RegistryFaultsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (itest::skip_reason()) return;
    try {
      suite().registry = std::make_unique<t::RegistryFixture>();
      t::ImageSpec spec;
      spec.gzip = false;
      spec.layers = {{{"data.bin", noise(400 * 1024, 5)}}};
      suite().digest = suite().registry->seed_image("team/big", "1.0", spec);
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }
  static void TearDownTestSuite() { suite().registry.reset(); }

  void SetUp() override {
    if (auto r = itest::skip_reason()) GTEST_SKIP() << *r;
    ASSERT_EQ(suite().error, "");
    proxy_ = std::make_unique<t::FaultProxy>(suite().registry->port());
    connector_ = itest::connector({proxy_->host()});
  }

  std::vector<PullSource> sources() const {
    return itest::sources(proxy_->host() + "/team/big:1.0");
  }
  // Blob GETs seen by the proxy.
  std::vector<t::ProxiedRequest> blob_gets() const {
    std::vector<t::ProxiedRequest> out;
    for (const auto& e : proxy_->requests()) {
      if (e.method == "GET" && e.target.find("/blobs/sha256:") != std::string::npos) {
        out.push_back(e);
      }
    }
    return out;
  }

  std::unique_ptr<t::FaultProxy> proxy_;
  std::unique_ptr<RegistryConnector> connector_;
  t::TempDir dir_{"oci-faults-test"};
};

TEST_F(RegistryFaultsTest, ConnectionResetMidBlobResumesWithRange) {
  proxy_->add_fault({.method = "GET",
                     .path = "/blobs/sha256:",
                     .skip = 0,
                     .times = 2,
                     .fault = t::ResetAfter{100'000}});
  Store store(dir_ / "store");
  PullOptions options;
  options.max_parallel_layers = 1;
  const PullResult r = pull_image(store, sources(), *connector_, options);
  EXPECT_EQ(r.digest, suite().digest);
  EXPECT_TRUE(store.verify().clean());
  ASSERT_TRUE(proxy_->wait_for_requests(proxy_->requests().size(), std::chrono::seconds(5)));
  int resets = 0;
  int resumed = 0;
  for (const auto& e : blob_gets()) {
    if (e.fault == "reset") ++resets;
    if (e.range) {
      EXPECT_EQ(*e.range, "bytes=100000-");
      EXPECT_EQ(e.status, 206);
      ++resumed;
    }
  }
  EXPECT_EQ(resets, 2);
  EXPECT_GE(resumed, 1);
}

TEST_F(RegistryFaultsTest, ServiceUnavailableWithRetryAfterThenSuccess) {
  const int rule = proxy_->add_fault({.method = "GET",
                                      .path = "/manifests/",
                                      .skip = 0,
                                      .times = 1,
                                      .fault = t::RespondStatus{503, "1", {}}});
  Store store(dir_ / "store");
  const auto started = std::chrono::steady_clock::now();
  const PullResult r = pull_image(store, sources(), *connector_);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(r.digest, suite().digest);
  EXPECT_TRUE(store.verify().clean());
  EXPECT_EQ(proxy_->fault_count(rule), 1);
  EXPECT_GE(took, std::chrono::milliseconds(900));  // Retry-After: 1, not the 50 ms backoff
  int manifest_gets = 0;
  for (const auto& e : proxy_->requests()) {
    if (e.method == "GET" && e.target.find("/manifests/") != std::string::npos) ++manifest_gets;
  }
  EXPECT_EQ(manifest_gets, 2);
}

TEST_F(RegistryFaultsTest, CorruptedBlobIsRejectedAndNothingKept) {
  proxy_->add_fault({.method = "GET",
                     .path = "/blobs/sha256:",
                     .skip = 0,
                     .times = 0,
                     .fault = t::CorruptByte{12'345}});
  Store store(dir_ / "store");
  try {
    pull_image(store, sources(), *connector_);
    FAIL() << "corrupted blob accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kDataLoss);
    EXPECT_THAT(e.what(), HasSubstr("team/big"));
  }
  EXPECT_TRUE(store.list().empty());
  std::size_t blobs = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(dir_ / "store" / "blobs")) {
    if (entry.is_regular_file()) ++blobs;
  }
  // Only the manifest, if at all: the corrupted config or layer is not there.
  EXPECT_LE(blobs, 1U);
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "store" / "ingest"));
  EXPECT_TRUE(store.verify().clean());
}

TEST_F(RegistryFaultsTest, PersistentFailuresEndAfterBoundedAttempts) {
  const int rule = proxy_->add_fault({.method = "",
                                      .path = "/manifests/",
                                      .skip = 0,
                                      .times = 0,
                                      .fault = t::RespondStatus{502, std::nullopt, {}}});
  Store store(dir_ / "store");
  try {
    pull_image(store, sources(), *connector_);
    FAIL() << "pulled through a broken registry";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable);
    EXPECT_THAT(e.what(), HasSubstr("502"));
  }
  EXPECT_EQ(proxy_->fault_count(rule), itest::fast_retry().max_attempts);
}

}  // namespace
}  // namespace stowage::oci
