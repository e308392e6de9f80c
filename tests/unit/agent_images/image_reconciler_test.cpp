// ImageReconciler against FakeImageRuntime: what it pulls, with which credentials, how it
// verifies, refuses, retries and bounds its pulls, and which recorded images prune removes.
#include "node-agent/image_reconciler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <semaphore>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "fake_image_runtime.h"
#include "oci/auth.h"

namespace stowage::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::ElementsAre;
using testing::FakeImageRuntime;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

const std::string kDigestA = "sha256:" + std::string(64, 'a');
const std::string kDigestB = "sha256:" + std::string(64, 'b');
const std::string kDigestC = "sha256:" + std::string(64, 'c');
const std::string kIdA = "sha256:" + std::string(64, '1');
const std::string kIdB = "sha256:" + std::string(64, '2');
const std::string kIdC = "sha256:" + std::string(64, '3');

cri::Image image(const std::string& id, const std::string& tag, const std::string& digest_ref,
                 std::uint64_t size = 1000) {
  cri::Image i;
  i.id = id;
  if (!tag.empty()) i.repo_tags = {tag};
  if (!digest_ref.empty()) i.repo_digests = {digest_ref};
  i.size = size;
  return i;
}

DesiredImage desired(const std::string& name, const std::string& digest) {
  return DesiredImage{.name = name, .digest = digest};
}

std::string secret_for(const std::string& key, const std::string& user) {
  return R"({"auths":{")" + key + R"(":{"auth":")" +
         oci::base64_encode(user + ":" + user + "-password") + R"("}}})";
}

// A temp store dir per test.
class ReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("stowage-agent-images-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    record_ = std::make_unique<PullRecord>(dir_ / kPullRecordFile);
  }
  void TearDown() override { fs::remove_all(dir_); }

  ImageReconciler make(ReconcilerOptions options = {}) {
    return ImageReconciler(runtime_, *record_, clock_, std::move(options));
  }

  fs::path dir_;
  FakeImageRuntime runtime_;
  FakeClock clock_;
  std::unique_ptr<PullRecord> record_;
};

TEST(PullReference, KeepsTagOrDigestAndAddsDigestToBareName) {
  EXPECT_EQ(pull_reference(desired("r.test:5000/a/b:1.0", kDigestA)), "r.test:5000/a/b:1.0");
  EXPECT_EQ(pull_reference(desired("r.test/a/b@" + kDigestA, kDigestA)), "r.test/a/b@" + kDigestA);
  EXPECT_EQ(pull_reference(desired("r.test:5000/a/b", kDigestA)), "r.test:5000/a/b@" + kDigestA);
}

TEST(HoldsDigest, MatchesTheDigestPartOnly) {
  const cri::Image i = image(kIdA, "", "r.test/a@" + kDigestA);
  EXPECT_TRUE(holds_digest(i, kDigestA));
  EXPECT_FALSE(holds_digest(i, kDigestB));
  EXPECT_FALSE(holds_digest(i, ""));
}

TEST_F(ReconcilerTest, PresentImageIsNotPulled) {
  runtime_.hold(image(kIdA, "r.test/a:1", "r.test/a@" + kDigestA, 4242));
  auto reconciler = make();
  const auto results = reconciler.reconcile({desired("r.test/a:1", kDigestA)});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].state, api::ImageState::kPresent);
  EXPECT_FALSE(results[0].pulled);
  EXPECT_EQ(results[0].image_id, kIdA);
  EXPECT_EQ(results[0].size_bytes, 4242u);
  EXPECT_THAT(runtime_.pulls(), IsEmpty());
  EXPECT_THAT(record_->entries(), IsEmpty());
}

TEST_F(ReconcilerTest, AbsentImageIsPulledWithMostSpecificSecret) {
  runtime_.publish("r.test/team/app:1",
                   image(kIdA, "r.test/team/app:1", "r.test/team/app@" + kDigestA));
  auto reconciler = make();
  DesiredImage d = desired("r.test/team/app:1", kDigestA);
  d.pull_secrets = {secret_for("r.test", "host-wide"), secret_for("r.test/team", "team")};
  std::vector<ImageResult> pulling;
  ReconcilerOptions options;
  options.on_pulling = [&](const ImageResult& r) { pulling.push_back(r); };
  auto observed = make(options);
  const auto results = observed.reconcile({d});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].state, api::ImageState::kPresent) << results[0].message;
  EXPECT_TRUE(results[0].pulled);
  EXPECT_EQ(results[0].attempts, 1);
  const auto pulls = runtime_.pulls();
  ASSERT_EQ(pulls.size(), 1u);
  EXPECT_EQ(pulls[0].ref, "r.test/team/app:1");
  ASSERT_TRUE(pulls[0].auth.has_value());
  EXPECT_EQ(pulls[0].auth->username, "team");
  EXPECT_EQ(pulls[0].auth->password, "team-password");
  ASSERT_EQ(pulling.size(), 1u);
  EXPECT_EQ(pulling[0].state, api::ImageState::kPulling);

  const auto entries = record_->entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].ref, "r.test/team/app:1");
  EXPECT_EQ(entries[0].digest, kDigestA);
  EXPECT_EQ(entries[0].image_id, kIdA);
  EXPECT_EQ(entries[0].pulled_at, clock_.wall_now());
}

TEST_F(ReconcilerTest, SecretForAnotherRegistryIsNotSent) {
  runtime_.publish("r.test/a:1", image(kIdA, "r.test/a:1", "r.test/a@" + kDigestA));
  auto reconciler = make();
  DesiredImage d = desired("r.test/a:1", kDigestA);
  d.pull_secrets = {secret_for("other.test", "other")};
  const auto results = reconciler.reconcile({d});
  EXPECT_EQ(results[0].state, api::ImageState::kPresent);
  ASSERT_EQ(runtime_.pulls().size(), 1u);
  EXPECT_FALSE(runtime_.pulls()[0].auth.has_value());
}

TEST_F(ReconcilerTest, FallsBackToLessSpecificSecretWhenRefused) {
  runtime_.publish("r.test/team/app:1",
                   image(kIdA, "r.test/team/app:1", "r.test/team/app@" + kDigestA));
  runtime_.fail_next_pulls({Error(Code::kInternal, "401 Unauthorized")});
  auto reconciler = make();
  DesiredImage d = desired("r.test/team/app:1", kDigestA);
  d.pull_secrets = {secret_for("r.test", "host-wide"), secret_for("r.test/team", "team")};
  const auto results = reconciler.reconcile({d});
  EXPECT_EQ(results[0].state, api::ImageState::kPresent) << results[0].message;
  const auto pulls = runtime_.pulls();
  ASSERT_EQ(pulls.size(), 2u);
  EXPECT_EQ(pulls[0].auth->username, "team");
  EXPECT_EQ(pulls[1].auth->username, "host-wide");
}

TEST_F(ReconcilerTest, BadPullSecretFailsWithoutPulling) {
  auto reconciler = make();
  DesiredImage d = desired("r.test/a:1", kDigestA);
  d.pull_secrets = {"{not json"};
  const auto results = reconciler.reconcile({d});
  EXPECT_EQ(results[0].state, api::ImageState::kFailed);
  EXPECT_EQ(results[0].failure, ImageFailure::kBadPullSecret);
  EXPECT_THAT(runtime_.pulls(), IsEmpty());
}

TEST_F(ReconcilerTest, DigestMismatchFailsButIsRecorded) {
  runtime_.publish("r.test/a:1", image(kIdB, "r.test/a:1", "r.test/a@" + kDigestB));
  auto reconciler = make();
  const auto results = reconciler.reconcile({desired("r.test/a:1", kDigestA)});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].state, api::ImageState::kFailed);
  EXPECT_EQ(results[0].failure, ImageFailure::kDigestMismatch);
  EXPECT_EQ(image_failure_name(results[0].failure), "DigestMismatch");
  EXPECT_THAT(results[0].message, HasSubstr(kDigestB));
  EXPECT_THAT(results[0].message, HasSubstr(kDigestA));
  ASSERT_EQ(record_->entries().size(), 1u);  // pulled by us, so prunable later
  EXPECT_EQ(record_->entries()[0].image_id, kIdB);
}

TEST_F(ReconcilerTest, PresentAtOtherDigestIsPulledAgain) {
  runtime_.hold(image(kIdB, "r.test/a:1", "r.test/a@" + kDigestB));
  runtime_.publish("r.test/a:1", image(kIdA, "r.test/a:1", "r.test/a@" + kDigestA));
  auto reconciler = make();
  const auto results = reconciler.reconcile({desired("r.test/a:1", kDigestA)});
  EXPECT_EQ(results[0].state, api::ImageState::kPresent);
  EXPECT_EQ(results[0].image_id, kIdA);
  EXPECT_EQ(runtime_.pulls().size(), 1u);
}

TEST_F(ReconcilerTest, RefusesPullWithoutTwiceTheSizeFree) {
  runtime_.publish("r.test/a:1", image(kIdA, "r.test/a:1", "r.test/a@" + kDigestA));
  runtime_.set_fs(
      ImageFsUsage{.mountpoint = "/var/lib/containerd", .used_bytes = 900, .capacity_bytes = 1000});
  auto reconciler = make();
  DesiredImage d = desired("r.test/a:1", kDigestA);
  d.size_bytes = 60;  // needs 120, 100 free
  const auto refused = reconciler.reconcile({d});
  EXPECT_EQ(refused[0].state, api::ImageState::kFailed);
  EXPECT_EQ(refused[0].failure, ImageFailure::kInsufficientSpace);
  EXPECT_THAT(refused[0].message, HasSubstr("needs 120 bytes"));
  EXPECT_THAT(runtime_.pulls(), IsEmpty());

  d.size_bytes = 50;  // needs exactly 100
  const auto allowed = reconciler.reconcile({d});
  EXPECT_EQ(allowed[0].state, api::ImageState::kPresent) << allowed[0].message;
}

TEST_F(ReconcilerTest, WithoutCapacityMeasuresTheMountpointWithTheProbe) {
  runtime_.publish("r.test/a:1", image(kIdA, "r.test/a:1", "r.test/a@" + kDigestA));
  runtime_.set_fs(ImageFsUsage{
      .mountpoint = "/var/lib/containerd", .used_bytes = 900, .capacity_bytes = std::nullopt});
  std::vector<fs::path> probed;
  std::uint64_t available = 150;
  ReconcilerOptions options;
  options.free_space = [&](const fs::path& p) -> std::optional<std::uint64_t> {
    probed.push_back(p);
    return available;
  };
  auto reconciler = make(options);
  DesiredImage d = desired("r.test/a:1", kDigestA);
  d.size_bytes = 100;
  EXPECT_EQ(reconciler.reconcile({d})[0].failure, ImageFailure::kInsufficientSpace);
  EXPECT_THAT(probed, ElementsAre(fs::path("/var/lib/containerd")));
  available = 200;
  EXPECT_EQ(reconciler.reconcile({d})[0].state, api::ImageState::kPresent);
}

TEST_F(ReconcilerTest, RetriesRetryableErrorsWithBackoffOnTheClock) {
  runtime_.publish("r.test/a:1", image(kIdA, "r.test/a:1", "r.test/a@" + kDigestA));
  runtime_.fail_next_pulls(
      {Error(Code::kUnavailable, "connection refused"), Error(Code::kDeadlineExceeded, "slow")});
  ReconcilerOptions options;
  options.backoff = {.initial = std::chrono::seconds(1),
                     .max = std::chrono::seconds(10),
                     .factor = 2.0,
                     .jitter = 0.0};
  auto reconciler = make(options);
  auto done = std::async(std::launch::async,
                         [&] { return reconciler.reconcile({desired("r.test/a:1", kDigestA)}); });
  ASSERT_TRUE(clock_.wait_for_waiters(1, std::chrono::seconds(10)));
  EXPECT_EQ(runtime_.pulls().size(), 1u);
  clock_.advance(std::chrono::milliseconds(999));
  EXPECT_EQ(runtime_.pulls().size(), 1u);  // still waiting out the first delay
  clock_.advance(std::chrono::milliseconds(1));
  // The second attempt fails too; its delay is 2 s.
  ASSERT_TRUE(runtime_.wait_for_pulls(2, std::chrono::seconds(10)));
  ASSERT_TRUE(clock_.wait_for_waiters(1, std::chrono::seconds(10)));
  EXPECT_EQ(runtime_.pulls().size(), 2u);
  clock_.advance(std::chrono::seconds(2));
  ASSERT_EQ(done.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  const auto results = done.get();
  EXPECT_EQ(results[0].state, api::ImageState::kPresent) << results[0].message;
  EXPECT_EQ(results[0].attempts, 3);
}

TEST_F(ReconcilerTest, NonRetryableErrorFailsAtOnce) {
  runtime_.fail_next_pulls({Error(Code::kInternal, "manifest unknown")});
  auto reconciler = make();
  const auto results = reconciler.reconcile({desired("r.test/a:1", kDigestA)});
  EXPECT_EQ(results[0].state, api::ImageState::kFailed);
  EXPECT_EQ(results[0].failure, ImageFailure::kPullFailed);
  EXPECT_EQ(results[0].attempts, 1);
  EXPECT_THAT(results[0].message, HasSubstr("manifest unknown"));
  EXPECT_THAT(record_->entries(), IsEmpty());
}

TEST_F(ReconcilerTest, GivesUpAfterMaxAttempts) {
  runtime_.fail_next_pulls({Error(Code::kUnavailable, "1"), Error(Code::kUnavailable, "2")});
  ReconcilerOptions options;
  options.max_attempts = 2;
  options.backoff = {.initial = std::chrono::seconds(1),
                     .max = std::chrono::seconds(1),
                     .factor = 1.0,
                     .jitter = 0.0};
  auto reconciler = make(options);
  auto done = std::async(std::launch::async,
                         [&] { return reconciler.reconcile({desired("r.test/a:1", kDigestA)}); });
  ASSERT_TRUE(clock_.wait_for_waiters(1, std::chrono::seconds(10)));
  clock_.advance(std::chrono::seconds(1));
  ASSERT_EQ(done.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  const auto results = done.get();
  EXPECT_EQ(results[0].failure, ImageFailure::kPullFailed);
  EXPECT_EQ(results[0].attempts, 2);
}

// A stop request cancels a pull in flight: the result says Stopped, nothing is recorded.
TEST_F(ReconcilerTest, StopCancelsAPullInFlight) {
  class BlockingPull final : public ImageRuntime {
   public:
    std::optional<cri::Image> image_status(const std::string&) override { return std::nullopt; }
    std::string pull_image(const std::string&, const std::optional<cri::AuthConfig>&,
                           std::stop_token stop) override {
      started.release();
      std::mutex mu;
      std::condition_variable_any cv;
      std::unique_lock lock(mu);
      cv.wait(lock, stop, [] { return false; });  // returns once stop is requested
      throw Error(Code::kUnavailable, "CRI PullImage: CANCELLED: Cancelled");
    }
    void remove_image(const std::string&) override {}
    std::vector<cri::Image> list_images() override { return {}; }
    std::vector<cri::Container> list_containers() override { return {}; }
    std::optional<ImageFsUsage> image_fs_usage() override { return std::nullopt; }
    std::binary_semaphore started{0};
  } blocking;
  ImageReconciler reconciler(blocking, *record_, clock_);
  std::stop_source stop;
  std::vector<ImageResult> results;
  std::thread worker(
      [&] { results = reconciler.reconcile({desired("r.test/a:1", kDigestA)}, stop.get_token()); });
  blocking.started.acquire();
  stop.request_stop();
  worker.join();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].failure, ImageFailure::kStopped);
  EXPECT_FALSE(results[0].pulled);
  EXPECT_THAT(record_->entries(), IsEmpty());
}

TEST_F(ReconcilerTest, NeverMorePullsInFlightThanMaxParallel) {
  std::vector<DesiredImage> plan;
  for (int i = 0; i < 6; ++i) {
    const std::string ref = "r.test/img" + std::to_string(i) + ":1";
    const std::string digest = "sha256:" + std::string(63, 'd') + std::to_string(i);
    runtime_.publish(ref, image("sha256:id" + std::to_string(i), ref,
                                "r.test/img" + std::to_string(i) + "@" + digest));
    plan.push_back(desired(ref, digest));
  }
  runtime_.rendezvous_pulls(
      3, std::chrono::milliseconds(200));  // would pass in threes if the bound allowed it
  ReconcilerOptions options;
  options.max_parallel = 2;
  auto reconciler = make(options);
  const auto results = reconciler.reconcile(plan);
  for (const auto& r : results) EXPECT_EQ(r.state, api::ImageState::kPresent) << r.message;
  EXPECT_EQ(runtime_.pulls().size(), 6u);
  EXPECT_EQ(runtime_.max_in_flight(), 2);
}

// ---- prune

class PruneTest : public ReconcilerTest {
 protected:
  // Records `ref` as pulled by the agent `age` ago and puts it in the store.
  void pulled(const std::string& ref, const std::string& digest, const std::string& id,
              std::chrono::seconds age = std::chrono::hours(1)) {
    const std::string repo = ref.substr(0, ref.rfind(':'));
    runtime_.hold(image(id, ref, repo + "@" + digest));
    record_->add(
        {.ref = ref, .digest = digest, .image_id = id, .pulled_at = clock_.wall_now() - age});
  }
  PruneOptions options() const {
    return PruneOptions{.min_age = std::chrono::minutes(2), .pause_images = {}, .dropped = {}};
  }
  static PruneResult only(const std::vector<PruneResult>& results) {
    EXPECT_EQ(results.size(), 1u);
    return results.empty() ? PruneResult{} : results.front();
  }
};

TEST_F(PruneTest, RemovesUnwantedImageItPulled) {
  pulled("r.test/a:1", kDigestA, kIdA);
  auto reconciler = make();
  const PruneResult r = only(reconciler.prune({}, options()));
  EXPECT_EQ(r.decision, PruneDecision::kRemoved) << r.message;
  EXPECT_EQ(prune_decision_name(r.decision), "Removed");
  EXPECT_THAT(runtime_.removed(), ElementsAre(kIdA));
  EXPECT_FALSE(runtime_.holds(kIdA));
  EXPECT_THAT(record_->entries(), IsEmpty());
}

TEST_F(PruneTest, KeepsImageStillWanted) {
  pulled("r.test/a:1", kDigestA, kIdA);
  auto reconciler = make();
  const PruneResult r = only(reconciler.prune({desired("r.test/a:1", kDigestA)}, options()));
  EXPECT_EQ(r.decision, PruneDecision::kStillWanted);
  EXPECT_THAT(runtime_.removed(), IsEmpty());
  EXPECT_EQ(record_->entries().size(), 1u);
}

TEST_F(PruneTest, KeepsImageWantedUnderAnotherNameOfTheSameImage) {
  pulled("r.test/a:1", kDigestA, kIdA);
  auto reconciler = make();
  // Another plan entry names the same runtime image by its tag (digest planned differently).
  const PruneResult r = only(reconciler.prune({desired("r.test/a:1", kDigestC)}, options()));
  EXPECT_EQ(r.decision, PruneDecision::kStillWanted);
  EXPECT_THAT(runtime_.removed(), IsEmpty());
}

TEST_F(PruneTest, SkipsImageUsedByContainerOnContainerd16) {
  pulled("r.test/a:1", kDigestA, kIdA);
  // containerd 1.6: image as created, image ID in image_ref, image_id empty; exited.
  runtime_.add_container({.id = "c1",
                          .pod_sandbox_id = "s1",
                          .name = "app",
                          .attempt = 0,
                          .image = "some-alias:latest",
                          .image_ref = kIdA,
                          .image_id = "",
                          .state = cri::ContainerState::kExited,
                          .created_at_ns = 1,
                          .labels = {},
                          .annotations = {}});
  auto reconciler = make();
  const PruneResult r = only(reconciler.prune({}, options()));
  EXPECT_EQ(r.decision, PruneDecision::kInUse);
  EXPECT_EQ(prune_decision_name(r.decision), "InUse");
  EXPECT_THAT(r.message, HasSubstr("c1"));
  EXPECT_THAT(r.message, HasSubstr("exited"));
  EXPECT_THAT(runtime_.removed(), IsEmpty());
}

TEST_F(PruneTest, SkipsImageUsedByContainerNamingItsRepoDigestOrTag) {
  pulled("r.test/a:1", kDigestA, kIdA);
  pulled("r.test/b:1", kDigestB, kIdB);
  runtime_.add_container({.id = "c1",
                          .pod_sandbox_id = "s1",
                          .name = "a",
                          .attempt = 0,
                          .image = "other",
                          .image_ref = "r.test/a@" + kDigestA,
                          .image_id = "",
                          .state = cri::ContainerState::kRunning,
                          .created_at_ns = 1,
                          .labels = {},
                          .annotations = {}});
  runtime_.add_container({.id = "c2",
                          .pod_sandbox_id = "s1",
                          .name = "b",
                          .attempt = 0,
                          .image = "r.test/b:1",
                          .image_ref = "",
                          .image_id = "",
                          .state = cri::ContainerState::kCreated,
                          .created_at_ns = 1,
                          .labels = {},
                          .annotations = {}});
  auto reconciler = make();
  const auto results = reconciler.prune({}, options());
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].decision, PruneDecision::kInUse);
  EXPECT_EQ(results[1].decision, PruneDecision::kInUse);
  EXPECT_THAT(runtime_.removed(), IsEmpty());
}

TEST_F(PruneTest, SkipsPinnedImage) {
  pulled("r.test/a:1", kDigestA, kIdA);
  cri::Image pinned = image(kIdA, "r.test/a:1", "r.test/a@" + kDigestA);
  pinned.pinned = true;
  runtime_.hold(pinned);
  auto reconciler = make();
  EXPECT_EQ(only(reconciler.prune({}, options())).decision, PruneDecision::kPinned);
  EXPECT_THAT(runtime_.removed(), IsEmpty());
}

TEST_F(PruneTest, SkipsPauseImage) {
  pulled("r.test/pause:3.9", kDigestA, kIdA);
  auto reconciler = make();
  PruneOptions o = options();
  o.pause_images = {"r.test/pause:3.9"};
  EXPECT_EQ(only(reconciler.prune({}, o)).decision, PruneDecision::kPauseImage);
  EXPECT_THAT(runtime_.removed(), IsEmpty());
}

TEST_F(PruneTest, SkipsImageYoungerThanMinAgeThenRemovesIt) {
  pulled("r.test/a:1", kDigestA, kIdA, std::chrono::seconds(30));
  auto reconciler = make();
  const PruneResult young = only(reconciler.prune({}, options()));
  EXPECT_EQ(young.decision, PruneDecision::kTooYoung);
  EXPECT_THAT(young.message, HasSubstr("30s"));
  EXPECT_THAT(runtime_.removed(), IsEmpty());
  clock_.advance(std::chrono::seconds(90));
  EXPECT_EQ(only(reconciler.prune({}, options())).decision, PruneDecision::kRemoved);
}

TEST_F(PruneTest, ReportsDroppedImageItDidNotPull) {
  runtime_.hold(image(kIdC, "r.test/c:1", "r.test/c@" + kDigestC));
  auto reconciler = make();
  // Seen in an earlier plan, present before the agent came: not pulled by it.
  reconciler.reconcile({desired("r.test/c:1", kDigestC)});
  const PruneResult r = only(reconciler.prune({}, options()));
  EXPECT_EQ(r.ref, "r.test/c:1");
  EXPECT_EQ(r.decision, PruneDecision::kNotPulledByAgent);
  EXPECT_TRUE(runtime_.holds(kIdC));
  EXPECT_THAT(runtime_.removed(), IsEmpty());

  PruneOptions o = options();
  o.dropped = {"r.test/other:1"};
  const auto results = reconciler.prune({}, o);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].decision, PruneDecision::kNotPulledByAgent);
  EXPECT_EQ(results[1].decision, PruneDecision::kNotPulledByAgent);
}

TEST_F(PruneTest, ForgetsRecordedImageTheRuntimeNoLongerHolds) {
  record_->add({.ref = "r.test/a:1",
                .digest = kDigestA,
                .image_id = kIdA,
                .pulled_at = clock_.wall_now() - std::chrono::hours(1)});
  auto reconciler = make();
  EXPECT_EQ(only(reconciler.prune({}, options())).decision, PruneDecision::kGone);
  EXPECT_THAT(runtime_.removed(), IsEmpty());
  EXPECT_THAT(record_->entries(), IsEmpty());
}

TEST_F(PruneTest, RestartedAgentStillPrunesWhatItPulled) {
  runtime_.publish("r.test/a:1", image(kIdA, "r.test/a:1", "r.test/a@" + kDigestA));
  {
    auto first = make();
    ASSERT_EQ(first.reconcile({desired("r.test/a:1", kDigestA)})[0].state,
              api::ImageState::kPresent);
  }
  clock_.advance(std::chrono::minutes(5));
  PullRecord reloaded = PullRecord::load(dir_ / kPullRecordFile);
  ASSERT_EQ(reloaded.entries().size(), 1u);
  ImageReconciler second(runtime_, reloaded, clock_);
  const auto results = second.prune({}, options());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].decision, PruneDecision::kRemoved) << results[0].message;
  EXPECT_FALSE(runtime_.holds(kIdA));
  EXPECT_THAT(PullRecord::load(dir_ / kPullRecordFile).entries(), IsEmpty());
}

TEST_F(PruneTest, RemoveFailureIsReportedAndKeepsTheRecord) {
  pulled("r.test/a:1", kDigestA, kIdA);
  class FailingRemove final : public ImageRuntime {
   public:
    explicit FailingRemove(ImageRuntime& inner) : inner_(inner) {}
    std::optional<cri::Image> image_status(const std::string& i) override {
      return inner_.image_status(i);
    }
    std::string pull_image(const std::string& i, const std::optional<cri::AuthConfig>& a,
                           std::stop_token stop) override {
      return inner_.pull_image(i, a, stop);
    }
    void remove_image(const std::string&) override {
      throw Error(Code::kUnavailable, "runtime went away");
    }
    std::vector<cri::Image> list_images() override { return inner_.list_images(); }
    std::vector<cri::Container> list_containers() override { return inner_.list_containers(); }
    std::optional<ImageFsUsage> image_fs_usage() override { return inner_.image_fs_usage(); }

   private:
    ImageRuntime& inner_;
  } failing(runtime_);
  ImageReconciler reconciler(failing, *record_, clock_);
  const PruneResult r = only(reconciler.prune({}, options()));
  EXPECT_EQ(r.decision, PruneDecision::kRemoveFailed);
  EXPECT_THAT(r.message, HasSubstr("runtime went away"));
  EXPECT_EQ(record_->entries().size(), 1u);
}

}  // namespace
}  // namespace stowage::agent
