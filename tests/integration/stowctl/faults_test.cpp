// stowctl under faults: tests/support's FaultProxy in front of a real docker-registry resets a
// blob mid-body, answers 429 with Retry-After and bursts of 503, corrupts a byte, stalls, and
// holds a layer mid-body while the pull is killed with SIGKILL; a tiny tmpfs fills up during pull
// and save. After each: a clear error (or a completed pull), nothing partial visible, and `stowctl
// fsck` clean. The tmpfs cases need root (mount); they skip otherwise.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "stowctl_env.h"
#include "support/fault_proxy.h"
#include "support/image_seed.h"
#include "support/registry_fixture.h"

namespace stowage::itest {
namespace {

namespace fs = std::filesystem;
namespace t = stowage::test;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Incompressible bytes, so the layer is as large on the wire as on disk.
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

// Larger than stowctl's 1 MiB write batch, so a pull held mid-layer has written part of it.
constexpr std::size_t kLayerBytes = 2 * 1024 * 1024;

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::size_t files_in(const fs::path& dir) {
  if (!fs::exists(dir)) return 0;
  std::size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

// A tmpfs of `bytes` mounted on `dir` (created) while it lives; lazily unmounted at the end.
class SmallTmpfs {
 public:
  static std::string unavailable_reason() {
    return ::geteuid() == 0 ? "" : "needs root to mount a small tmpfs";
  }
  SmallTmpfs(fs::path dir, std::size_t bytes) : dir_(std::move(dir)) {
    fs::create_directories(dir_);
    const std::string data = fmt::format("size={},mode=0700", bytes);
    if (::mount("stowctl-test", dir_.c_str(), "tmpfs", 0, data.c_str()) != 0) {
      error_ = fmt::format("mount tmpfs on {}: {}", dir_.string(), std::strerror(errno));
    }
  }
  ~SmallTmpfs() {
    if (error_.empty()) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  SmallTmpfs(const SmallTmpfs&) = delete;
  SmallTmpfs& operator=(const SmallTmpfs&) = delete;
  const std::string& error() const { return error_; }

 private:
  fs::path dir_;
  std::string error_;
};

struct Suite {
  std::unique_ptr<t::RegistryFixture> registry;
  std::string big;    // digest of team/big:1, one layer of kLayerBytes
  std::string small;  // digest of team/small:1
  std::string error;
};

Suite& suite() {
  static Suite s;
  return s;
}

class StowctlFaultsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (registry_skip_reason()) return;
    try {
      suite().registry = std::make_unique<t::RegistryFixture>();
      t::ImageSpec big;
      big.gzip = false;
      big.layers = {{{"data.bin", noise(kLayerBytes, 3)}}};
      suite().big = suite().registry->seed_image("team/big", "1", big);
      suite().small = suite().registry->seed_image("team/small", "1");
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }
  static void TearDownTestSuite() { suite().registry.reset(); }

  void SetUp() override {
    if (auto r = registry_skip_reason()) GTEST_SKIP() << *r;
    ASSERT_EQ(suite().error, "");
    proxy_ = std::make_unique<t::FaultProxy>(suite().registry->port());
    env_.allow_insecure({proxy_->host()});
  }

  std::string big() const { return proxy_->host() + "/team/big:1"; }
  std::string small() const { return proxy_->host() + "/team/small:1"; }

  std::vector<t::ProxiedRequest> blob_gets() const {
    std::vector<t::ProxiedRequest> out;
    for (const auto& e : proxy_->requests()) {
      if (e.method == "GET" && e.target.find("/blobs/sha256:") != std::string::npos) {
        out.push_back(e);
      }
    }
    return out;
  }

  void expect_store_clean(const StowctlEnv& env) const {
    const auto fsck = env.run({"fsck"});
    EXPECT_EQ(fsck.exit_code, 0) << fsck.describe();
    EXPECT_EQ(files_in(env.root() / "ingest"), 0U);
  }

  std::unique_ptr<t::FaultProxy> proxy_;
  StowctlEnv env_;
};

TEST_F(StowctlFaultsTest, ResetMidBlobIsResumed) {
  proxy_->add_fault({.method = "GET",
                     .path = "/blobs/sha256:",
                     .skip = 0,
                     .times = 2,
                     .fault = t::ResetAfter{100'000}});
  const auto pull = env_.run({"pull", "-q", "--parallel", "1", big()});
  ASSERT_TRUE(pull.ok()) << pull.describe();
  EXPECT_EQ(trimmed(pull.out), suite().big);
  expect_store_clean(env_);
  ASSERT_TRUE(proxy_->wait_for_requests(proxy_->requests().size(), std::chrono::seconds(5)));
  int resets = 0;
  int resumed = 0;
  for (const auto& e : blob_gets()) {
    resets += e.fault == "reset" ? 1 : 0;
    if (e.range) {
      EXPECT_EQ(*e.range, "bytes=100000-");
      ++resumed;
    }
  }
  EXPECT_EQ(resets, 2);
  EXPECT_GE(resumed, 1);
}

TEST_F(StowctlFaultsTest, TooManyRequestsWithRetryAfterThenSuccess) {
  const int rule = proxy_->add_fault({.method = "",
                                      .path = "/manifests/",
                                      .skip = 0,
                                      .times = 1,
                                      .fault = t::RespondStatus{429, "1", {}}});
  const auto started = std::chrono::steady_clock::now();
  const auto pull = env_.run({"pull", "-q", small()});
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(pull.ok()) << pull.describe();
  EXPECT_EQ(trimmed(pull.out), suite().small);
  EXPECT_EQ(proxy_->fault_count(rule), 1);
  EXPECT_GE(took, std::chrono::milliseconds(900));  // waited as Retry-After said
  expect_store_clean(env_);
}

TEST_F(StowctlFaultsTest, ServiceUnavailableBurstThenSuccess) {
  const int rule = proxy_->add_fault({.method = "GET",
                                      .path = "/blobs/sha256:",
                                      .skip = 0,
                                      .times = 3,
                                      .fault = t::RespondStatus{503, "1", {}}});
  const auto pull = env_.run({"pull", "-q", "--parallel", "1", big()});
  ASSERT_TRUE(pull.ok()) << pull.describe();
  EXPECT_EQ(trimmed(pull.out), suite().big);
  EXPECT_EQ(proxy_->fault_count(rule), 3);
  expect_store_clean(env_);

  // A registry that keeps failing: a bounded number of attempts, then one clear error.
  proxy_->add_fault({.method = "",
                     .path = "/manifests/",
                     .skip = 0,
                     .times = 0,
                     .fault = t::RespondStatus{503, "1", {}}});
  const auto failed = env_.run({"--retry", "1", "pull", small()});
  EXPECT_TRUE(fails_with_one_error_line(failed));
  EXPECT_THAT(failed.err, HasSubstr("503"));
  EXPECT_THAT(failed.err, HasSubstr("team/small"));
}

TEST_F(StowctlFaultsTest, CorruptedBlobFailsAndKeepsNothing) {
  ASSERT_TRUE(env_.run({"pull", "-q", small()}).ok());
  const auto before = env_.run({"images"});
  ASSERT_TRUE(before.ok()) << before.describe();
  proxy_->add_fault({.method = "GET",
                     .path = "/blobs/sha256:",
                     .skip = 0,
                     .times = 0,
                     .fault = t::CorruptByte{12'345}});
  const auto pull = env_.run({"pull", big()});
  EXPECT_TRUE(fails_with_one_error_line(pull));
  EXPECT_THAT(pull.err, HasSubstr("team/big"));
  EXPECT_THAT(pull.err, HasSubstr("hashes to"));  // what the bytes were, not what was asked
  EXPECT_EQ(env_.run({"images"}).out, before.out);
  expect_store_clean(env_);
  // The corrupted layer is not in the store under its digest.
  const auto layer_files = files_in(env_.root() / "blobs");
  for (const auto& e : fs::recursive_directory_iterator(env_.root() / "blobs")) {
    if (e.is_regular_file()) {
      EXPECT_LT(e.file_size(), kLayerBytes) << e.path();
    }
  }
  EXPECT_GT(layer_files, 0U);
}

TEST_F(StowctlFaultsTest, StalledRegistryTimesOut) {
  proxy_->add_fault({.method = "GET",
                     .path = "/blobs/sha256:",
                     .skip = 0,
                     .times = 0,
                     .fault = t::Stall{0, std::nullopt}});
  const auto started = std::chrono::steady_clock::now();
  const auto pull = env_.run({"--stall-timeout", "2", "--retry", "1", "pull", big()}, {},
                             std::chrono::seconds(30));
  const auto took = std::chrono::steady_clock::now() - started;
  proxy_->release_stalls();
  EXPECT_TRUE(fails_with_one_error_line(pull));
  EXPECT_THAT(pull.err, AnyOf(HasSubstr("timed out"), HasSubstr("too slow")));
  EXPECT_THAT(pull.err, HasSubstr("team/big"));
  EXPECT_GE(took, std::chrono::seconds(4));  // two attempts of 2 s each
  EXPECT_LT(took, std::chrono::seconds(15));
  expect_store_clean(env_);
  EXPECT_THAT(env_.run({"images", "-q"}).out, IsEmpty());
}

TEST_F(StowctlFaultsTest, KilledMidPullThenPullCompletes) {
  // The layer's response is held after 1.5 MiB: stowctl has written most of its first MiB (it
  // writes in batches of up to 1 MiB) to an ingest file and waits for the rest when killed.
  proxy_->add_fault({.method = "GET",
                     .path = "/blobs/sha256:",
                     .skip = 0,
                     .times = 0,
                     .fault = t::Stall{kLayerBytes * 3 / 4, std::nullopt}});
  auto pull = env_.start({"pull", big()}, "killed-pull");
  ASSERT_TRUE(proxy_->wait_for_stalled(1, std::chrono::seconds(20))) << pull->describe();
  const auto partial_ingest = [&] {
    for (const auto& e : fs::directory_iterator(env_.root() / "ingest")) {
      if (e.is_regular_file() && e.file_size() >= kLayerBytes / 4) return true;
    }
    return false;
  };
  ASSERT_TRUE(t::wait_for(partial_ingest, std::chrono::seconds(10))) << pull->describe();
  ASSERT_TRUE(pull->running());
  ASSERT_EQ(::kill(pull->pid(), SIGKILL), 0);
  EXPECT_EQ(pull->wait(t::Clock::now() + std::chrono::seconds(10)), 128 + SIGKILL);
  EXPECT_TRUE(partial_ingest());  // left behind, as after a crash
  EXPECT_THAT(env_.run({"images", "-q"}).out, IsEmpty());

  proxy_->clear_faults();
  proxy_->release_stalls();
  const auto again = env_.run({"pull", "-q", big()});
  ASSERT_TRUE(again.ok()) << again.describe();
  EXPECT_EQ(trimmed(again.out), suite().big);
  expect_store_clean(env_);  // the abandoned ingest file is gone too
}

TEST_F(StowctlFaultsTest, DiskFullDuringPull) {
  if (const std::string why = SmallTmpfs::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  StowctlEnv env("stowctl-diskfull");
  env.allow_insecure({proxy_->host()});
  SmallTmpfs tmpfs(env.root(), 256 * 1024);
  if (!tmpfs.error().empty()) GTEST_SKIP() << tmpfs.error();
  const auto pull = env.run({"pull", big()});
  EXPECT_TRUE(fails_with_one_error_line(pull));
  EXPECT_THAT(pull.err, HasSubstr("No space left"));
  EXPECT_THAT(env.run({"images", "-q"}).out, IsEmpty());
  expect_store_clean(env);
  for (const auto& e : fs::recursive_directory_iterator(env.root() / "blobs")) {
    if (e.is_regular_file()) {
      EXPECT_LT(e.file_size(), kLayerBytes) << e.path();
    }
  }
  // The store still works on the space left.
  const auto small_pull = env.run({"pull", "-q", small()});
  EXPECT_TRUE(small_pull.ok()) << small_pull.describe();
}

TEST_F(StowctlFaultsTest, DiskFullDuringSave) {
  if (const std::string why = SmallTmpfs::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  ASSERT_TRUE(env_.run({"pull", "-q", big()}).ok());
  SmallTmpfs tmpfs(env_.path("out"), 128 * 1024);
  if (!tmpfs.error().empty()) GTEST_SKIP() << tmpfs.error();
  for (const char* format : {"docker-archive", "oci-archive"}) {
    SCOPED_TRACE(format);
    const fs::path out = env_.path("out") / "image.tar";
    const auto save = env_.run({"save", "--format", format, "-o", out.string(), big()});
    EXPECT_TRUE(fails_with_one_error_line(save));
    EXPECT_THAT(save.err, HasSubstr("No space left"));
    EXPECT_EQ(files_in(env_.path("out")), 0U);  // neither the tar nor a temp file
  }
  expect_store_clean(env_);
}

}  // namespace
}  // namespace stowage::itest
