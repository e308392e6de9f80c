// The content store: commit discipline (verify, fsync, rename, existing wins), names in index.json
// under a file lock, prune, verify, and the faults of DESIGN.md §6 (disk full mid-ingest,
// kill -9 mid-ingest, two processes on one store). Cross-process cases fork real processes.
#include "oci/store.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/clock.h"
#include "base/error.h"
#include "base/sha256.h"
#include "unit/oci_store/oci_layout_check.h"
#include "unit/oci_store/test_util.h"

namespace stowage::oci {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::TempDir;
using ::testing::UnorderedElementsAre;

// Runs `body` in a forked child; its return value is the exit code (99 for an exception).
// Returns the child's exit code, or 128 + signal.
pid_t spawn(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 99;
    try {
      rc = body();
    } catch (...) {
    }
    ::_exit(rc);
  }
  return pid;
}

int wait_child(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int in_child(const std::function<int()>& body) {
  return wait_child(spawn(body));
}

std::size_t count_entries(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

Code code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no stowage::Error thrown";
  return Code::kInternal;
}

TEST(Store, CreatesAValidEmptyLayout) {
  TempDir dir;
  Store store(dir / "store");
  EXPECT_TRUE(fs::is_directory(dir / "store" / "blobs" / "sha256"));
  EXPECT_THAT(testing::oci_layout_problems(dir / "store"), IsEmpty());
  EXPECT_THAT(store.list(), IsEmpty());
  Store again(dir / "store");  // reopening keeps it
  EXPECT_THAT(again.list(), IsEmpty());
}

TEST(LayoutCheck, CatchesRefNamesOutsideTheGrammar) {
  // The checker is an oracle for other tests, so it must be able to fail.
  TempDir dir;
  Store store(dir / "store");
  const auto image = testing::put_image(store);
  for (const std::string name : {"v1", "1.0--rc", "example.com/app:v1", "a/b@c+d"}) {
    store.tag("example.com/x:1", image.manifest);
    nlohmann::json index = nlohmann::json::parse(std::ifstream(dir / "store" / "index.json"));
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = name;
    std::ofstream(dir / "store" / "index.json") << index.dump();
    EXPECT_THAT(testing::oci_layout_problems(dir / "store"), IsEmpty()) << name;
  }
  for (const std::string name : {"", "-v1", "v1-", "a//b", "a/", "v 1", "a---b", "a..b"}) {
    nlohmann::json index = nlohmann::json::parse(std::ifstream(dir / "store" / "index.json"));
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = name;
    std::ofstream(dir / "store" / "index.json") << index.dump();
    EXPECT_THAT(testing::oci_layout_problems(dir / "store"),
                Contains(HasSubstr("does not follow the grammar")))
        << name;
  }
}

TEST(Store, RefusesALayoutOfAnotherVersion) {
  TempDir dir;
  testing::write_whole(dir / "s" / "oci-layout", R"({"imageLayoutVersion":"2.0.0"})");
  EXPECT_EQ(code_of([&] { Store s(dir / "s"); }), Code::kInvalidArgument);
}

TEST(Store, IngestHashesWhileWritingAndCommitsReadOnly) {
  TempDir dir;
  Store store(dir.path());
  const std::string data = testing::random_bytes(3 << 20, 1);
  const std::string digest = sha256_digest(data);
  BlobWriter w = store.ingest(digest, data.size());
  EXPECT_EQ(w.ingest_path().parent_path(), dir / "ingest");
  for (std::size_t off = 0; off < data.size(); off += 100'000) {
    w.write(std::string_view(data).substr(off, 100'000));
  }
  EXPECT_FALSE(store.has(digest));  // uncommitted content is invisible
  EXPECT_EQ(w.commit(), digest);
  EXPECT_TRUE(store.has(digest));
  EXPECT_EQ(store.size(digest), data.size());
  EXPECT_EQ(testing::read_whole(store.path(digest)), data);
  struct stat st {};
  ASSERT_EQ(::stat(store.path(digest).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  EXPECT_EQ(count_entries(dir / "ingest"), 0u);
  BlobReader r = store.open(digest);
  EXPECT_EQ(r.size(), data.size());
}

TEST(Store, IngestWithoutExpectationNamesTheBlobByItsHash) {
  TempDir dir;
  Store store(dir.path());
  EXPECT_EQ(store.put("abc"), sha256_digest("abc"));
  EXPECT_EQ(store.read(sha256_digest("abc")), "abc");
}

TEST(Store, DigestMismatchIsDataLossAndKeepsNothing) {
  TempDir dir;
  Store store(dir.path());
  const std::string claimed = sha256_digest("the real content");
  BlobWriter w = store.ingest(claimed, 14);
  w.write("something else");
  EXPECT_EQ(code_of([&] { w.commit(); }), Code::kDataLoss);
  EXPECT_FALSE(store.has(claimed));
  EXPECT_FALSE(store.has(sha256_digest("something else")));
  EXPECT_EQ(count_entries(dir / "blobs" / "sha256"), 0u);
  EXPECT_EQ(count_entries(dir / "ingest"), 0u);
}

TEST(Store, SizeMismatchIsDataLoss) {
  TempDir dir;
  Store store(dir.path());
  {
    BlobWriter w = store.ingest(std::nullopt, 10);
    w.write("short");
    EXPECT_EQ(code_of([&] { w.commit(); }), Code::kDataLoss);
  }
  {
    BlobWriter w = store.ingest(std::nullopt, 3);
    EXPECT_EQ(code_of([&] { w.write("too long"); }), Code::kDataLoss);  // refused at once
  }
  EXPECT_EQ(count_entries(dir / "blobs" / "sha256"), 0u);
  EXPECT_EQ(count_entries(dir / "ingest"), 0u);
}

TEST(Store, AbandonedWriterLeavesNothing) {
  TempDir dir;
  Store store(dir.path());
  {
    BlobWriter w = store.ingest();
    w.write("partial");
    EXPECT_EQ(count_entries(dir / "ingest"), 1u);
  }
  EXPECT_EQ(count_entries(dir / "ingest"), 0u);
  EXPECT_EQ(count_entries(dir / "blobs" / "sha256"), 0u);
}

TEST(Store, ExistingBlobWins) {
  TempDir dir;
  Store store(dir.path());
  const std::string digest = store.put("same");
  struct stat before {};
  ASSERT_EQ(::stat(store.path(digest).c_str(), &before), 0);
  EXPECT_EQ(store.put("same", digest), digest);
  struct stat after {};
  ASSERT_EQ(::stat(store.path(digest).c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);  // the first blob stayed
  EXPECT_EQ(count_entries(dir / "ingest"), 0u);
}

TEST(Store, RefusesDigestsThatAreNotSha256Hex) {
  TempDir dir;
  Store store(dir.path());
  for (const std::string& bad : std::vector<std::string>{
           "sha256:../../../etc/passwd", "sha256:ABCDEF", "sha512:" + std::string(128, 'a'),
           "md5:d41d8cd98f00b204e9800998ecf8427e", std::string("sha256:") + std::string(63, 'a')}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(code_of([&] { store.path(bad); }), Code::kInvalidArgument);
    EXPECT_EQ(code_of([&] { store.ingest(bad); }), Code::kInvalidArgument);
    EXPECT_EQ(code_of([&] { store.has(bad); }), Code::kInvalidArgument);
  }
}

TEST(Store, OpenOfAMissingBlobIsNotFound) {
  TempDir dir;
  Store store(dir.path());
  EXPECT_EQ(code_of([&] { store.open(sha256_digest("nope")); }), Code::kNotFound);
  EXPECT_FALSE(store.size(sha256_digest("nope")));
}

TEST(Store, TwoProcessesIngestingTheSameBlobNeverCorruptIt) {
  TempDir dir;
  Store store(dir.path());
  const std::string data = testing::random_bytes(4 << 20, 7);
  const std::string digest = sha256_digest(data);
  for (int round = 0; round < 5; ++round) {
    std::vector<pid_t> children;
    for (int i = 0; i < 2; ++i) {
      children.push_back(spawn([&] {
        Store s(dir.path());
        BlobWriter w = s.ingest(digest, data.size());
        for (std::size_t off = 0; off < data.size(); off += 65536) {
          w.write(std::string_view(data).substr(off, 65536));
        }
        return w.commit() == digest ? 0 : 1;
      }));
    }
    for (const pid_t c : children) EXPECT_EQ(wait_child(c), 0);
    EXPECT_EQ(sha256_digest(testing::read_whole(store.path(digest))), digest);
    EXPECT_EQ(count_entries(dir / "ingest"), 0u);
    ::unlink(store.path(digest).c_str());
  }
}

TEST(Store, TagResolveUntagAndList) {
  TempDir dir;
  Store store(dir.path());
  const auto image = testing::put_image(store);
  store.tag("alpine", image.manifest);
  store.tag("quay.io/team/app:v1", image.manifest);

  const auto resolved = store.resolve("docker.io/library/alpine:latest");
  ASSERT_TRUE(resolved);
  EXPECT_EQ(resolved->digest, image.manifest.digest);
  EXPECT_EQ(resolved->annotations.at(std::string(kAnnotationImageName)),
            "docker.io/library/alpine:latest");
  EXPECT_EQ(resolved->annotations.at(std::string(kAnnotationRefName)), "latest");
  EXPECT_TRUE(store.resolve("alpine:latest"));
  EXPECT_EQ(store.resolve("quay.io/team/app:v1")->annotations.at(std::string(kAnnotationRefName)),
            "v1");
  EXPECT_FALSE(store.resolve("quay.io/team/app:v2"));

  std::vector<std::string> names;
  for (const auto& i : store.list()) names.push_back(i.name);
  EXPECT_THAT(names, ElementsAre("docker.io/library/alpine:latest", "quay.io/team/app:v1"));

  // Re-tagging replaces in place; untag removes.
  const auto other = testing::put_image(store, {.labels = {{"v", "2"}}});
  store.tag("alpine:latest", other.manifest);
  EXPECT_EQ(store.resolve("alpine")->digest, other.manifest.digest);
  EXPECT_EQ(store.list().size(), 2u);
  EXPECT_TRUE(store.untag("alpine"));
  EXPECT_FALSE(store.untag("alpine"));
  EXPECT_FALSE(store.resolve("alpine"));
  EXPECT_EQ(code_of([&] { store.tag("Not A Name", image.manifest); }), Code::kInvalidArgument);
  EXPECT_THAT(testing::oci_layout_problems(dir.path()), IsEmpty());
}

TEST(Store, ResolvesTagOnlyRefNamesWrittenByOtherTools) {
  TempDir dir;
  Store store(dir.path());
  const auto image = testing::put_image(store);
  nlohmann::json index = nlohmann::json::parse(testing::read_whole(dir / "index.json"));
  index["manifests"].push_back({{"mediaType", image.manifest.media_type},
                                {"digest", image.manifest.digest},
                                {"size", image.manifest.size},
                                {"annotations", {{"org.opencontainers.image.ref.name", "v1"}}}});
  testing::write_whole(dir / "index.json", index.dump());
  EXPECT_EQ(store.resolve("v1")->digest, image.manifest.digest);
  ASSERT_EQ(store.list().size(), 1u);
  EXPECT_EQ(store.list()[0].name, "v1");
  EXPECT_TRUE(store.untag("v1"));
}

TEST(Store, UnnamedRootsAreKeptOncePerDigest) {
  TempDir dir;
  Store store(dir.path());
  const auto image = testing::put_image(store);
  store.add_unnamed(image.manifest);
  store.add_unnamed(image.manifest);
  ASSERT_EQ(store.list().size(), 1u);
  EXPECT_EQ(store.list()[0].name, "");
  EXPECT_THAT(store.prune().removed_blobs, IsEmpty());
}

TEST(Store, ConcurrentTagsFromTwoProcessesLoseNoUpdate) {
  TempDir dir;
  Store store(dir.path());
  const auto image = testing::put_image(store);
  constexpr int kPerChild = 60;
  std::vector<pid_t> children;
  for (int c = 0; c < 2; ++c) {
    children.push_back(spawn([&, c] {
      Store s(dir.path());
      for (int i = 0; i < kPerChild; ++i)
        s.tag(fmt::format("example.com/p{}/img:{}", c, i), image.manifest);
      // Untag half of them again, interleaved with the other process's tags.
      for (int i = 0; i < kPerChild; i += 2) {
        if (!s.untag(fmt::format("example.com/p{}/img:{}", c, i))) return 1;
      }
      return 0;
    }));
  }
  for (const pid_t c : children) EXPECT_EQ(wait_child(c), 0);
  EXPECT_EQ(store.list().size(), static_cast<std::size_t>(kPerChild));
  EXPECT_TRUE(store.resolve("example.com/p0/img:1"));
  EXPECT_TRUE(store.resolve("example.com/p1/img:59"));
  EXPECT_FALSE(store.resolve("example.com/p1/img:58"));
  EXPECT_THAT(testing::oci_layout_problems(dir.path()), IsEmpty());
}

TEST(Store, PruneRemovesWhatNoNameReaches) {
  TempDir dir;
  FakeClock clock(std::chrono::system_clock::now());
  Store store(dir.path(), {.clock = &clock, .prune_grace = std::chrono::minutes(10)});
  const auto kept = testing::put_image(store, {.layers = {{{"a", "1"}}, {{"b", "2"}}}});
  const auto child2 = testing::put_image(store, {.labels = {{"arch", "arm64"}}});
  const auto dropped = testing::put_image(store, {.layers = {{{"c", "3"}}}});
  // An index naming two manifests keeps both trees.
  nlohmann::json idx = {{"schemaVersion", 2},
                        {"mediaType", media::kOciIndex},
                        {"manifests", {to_json(kept.manifest), to_json(child2.manifest)}}};
  const std::string idx_bytes = idx.dump();
  const Descriptor index = testing::put_blob(store, media::kOciIndex, idx_bytes);
  store.tag("example.com/multi:1", index);
  const std::string stray = store.put("unreferenced");

  // Young blobs survive: a pull in another process may be about to name them.
  EXPECT_THAT(store.prune().removed_blobs, IsEmpty());
  clock.advance(std::chrono::minutes(11));
  {
    BlobWriter live = store.ingest();
    live.write("in progress");
    const PruneReport report = store.prune();
    std::vector<std::string> expect = {dropped.manifest.digest, dropped.config_digest,
                                       dropped.layer_digests[0], stray};
    EXPECT_THAT(report.removed_blobs,
                UnorderedElementsAre(expect[0], expect[1], expect[2], expect[3]));
    EXPECT_EQ(report.removed_ingests, 0u);  // a live writer's file stays
    EXPECT_EQ(live.commit(), sha256_digest("in progress"));
  }
  for (const auto& d : {kept.manifest.digest, kept.config_digest, kept.layer_digests[0],
                        kept.layer_digests[1], child2.manifest.digest, index.digest}) {
    EXPECT_TRUE(store.has(d)) << d;
  }
  EXPECT_TRUE(store.verify().clean());
  EXPECT_THAT(testing::oci_layout_problems(dir.path()), IsEmpty());
}

TEST(Store, VerifyReportsCorruptAndMissingBlobs) {
  TempDir dir;
  Store store(dir.path());
  const auto image = testing::put_image(store, {.layers = {{{"a", "1"}}, {{"b", "2"}}}});
  store.tag("example.com/x:1", image.manifest);
  EXPECT_TRUE(store.verify().clean());
  // Bit rot in one layer, another layer lost.
  const fs::path rotten = store.path(image.layer_digests[0]);
  fs::permissions(rotten, fs::perms::owner_write, fs::perm_options::add);
  testing::write_whole(rotten, "rotten");
  fs::remove(store.path(image.layer_digests[1]));
  const VerifyReport report = store.verify();
  EXPECT_THAT(report.corrupt, ElementsAre(image.layer_digests[0]));
  EXPECT_THAT(report.missing, ElementsAre(image.layer_digests[1]));
  EXPECT_FALSE(testing::oci_layout_problems(dir.path()).empty());
}

TEST(Store, DiskFullMidIngestIsResourceExhaustedAndLeavesNoBlob) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  TempDir dir;
  // A child in its own mount namespace puts the store on a 1 MiB tmpfs and ingests 4 MiB.
  const int rc = in_child([&] {
    if (::unshare(CLONE_NEWNS) != 0) return 10;
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 11;
    if (::mount("tmpfs", dir.path().c_str(), "tmpfs", 0, "size=1m") != 0) return 12;
    Store store(dir / "store");
    const std::string data = testing::random_bytes(4 << 20, 3);
    try {
      BlobWriter w = store.ingest(sha256_digest(data), data.size());
      for (std::size_t off = 0; off < data.size(); off += 65536) {
        w.write(std::string_view(data).substr(off, 65536));
      }
      w.commit();
    } catch (const Error& e) {
      if (e.code() != Code::kResourceExhausted) return 2;
      if (count_entries(dir / "store" / "blobs" / "sha256") != 0) return 3;
      if (count_entries(dir / "store" / "ingest") != 0) return 4;
      // The store still works once space is back.
      return store.put("small") == sha256_digest("small") && store.verify().clean() ? 0 : 5;
    }
    return 1;
  });
  if (rc >= 10 && rc < 20) GTEST_SKIP() << "cannot mount here, step " << rc;
  EXPECT_EQ(rc, 0)
      << "1: no error, 2: wrong code, 3: blob visible, 4: ingest left, 5: store broken";
}

TEST(Store, IngestOfAWriterKilledMidWayIsCleanedOnReopen) {
  TempDir dir;
  { Store init(dir.path()); }
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = spawn([&] {
    Store s(dir.path());
    BlobWriter w = s.ingest(sha256_digest("never finished"), 14);
    w.write("never");
    (void)!::write(ready[1], "x", 1);
    ::pause();  // ingesting slowly, until killed
    return 0;
  });
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);
  // While the writer lives, opening the store and pruning leave its ingest alone.
  {
    Store live(dir.path());
    EXPECT_EQ(count_entries(dir / "ingest"), 1u);
    EXPECT_EQ(live.prune().removed_ingests, 0u);
    EXPECT_EQ(count_entries(dir / "ingest"), 1u);
  }
  ::kill(child, SIGKILL);
  EXPECT_EQ(wait_child(child), 128 + SIGKILL);
  Store reopened(dir.path());
  EXPECT_EQ(count_entries(dir / "ingest"), 0u);
  EXPECT_FALSE(reopened.has(sha256_digest("never finished")));
  EXPECT_TRUE(reopened.verify().clean());
  EXPECT_THAT(testing::oci_layout_problems(dir.path()), IsEmpty());
}

TEST(Store, StaleIndexTempFilesAreRemovedOnOpen) {
  TempDir dir;
  { Store init(dir.path()); }
  testing::write_whole(dir / ".tmp-index.json-abandoned", "{");
  Store store(dir.path());
  EXPECT_FALSE(fs::exists(dir / ".tmp-index.json-abandoned"));
}

TEST(Store, ThreadsTaggingAtOnceLoseNothing) {
  TempDir dir;
  Store store(dir.path());
  const auto image = testing::put_image(store);
  std::vector<std::jthread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i)
        store.tag(fmt::format("example.com/t{}:{}", t, i), image.manifest);
    });
  }
  threads.clear();
  EXPECT_EQ(store.list().size(), 80u);
}

}  // namespace
}  // namespace stowage::oci
