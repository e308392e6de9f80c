#include "base/files.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "base/error.h"

namespace stowage {
namespace {
namespace fs = std::filesystem;

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("stowage-files-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  int entries() const {
    int n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++n;
    return n;
  }
  fs::path dir_;
};

TEST_F(FilesTest, AtomicWriteCreatesAndReplaces) {
  const auto p = dir_ / "99-stowage.conf";
  atomic_write_file(p, "first\n");
  EXPECT_EQ(read_file(p).value(), "first\n");
  atomic_write_file(p, "second\n", 0600);
  EXPECT_EQ(read_file(p).value(), "second\n");
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(entries(), 1);  // no temp file left behind
}

TEST_F(FilesTest, ModeIgnoresUmask) {
  const mode_t old = ::umask(077);
  atomic_write_file(dir_ / "f", "x", 0644);
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST_F(FilesTest, AbandonedWriteLeavesNothingAndKeepsOld) {
  const auto p = dir_ / "a.tar";
  atomic_write_file(p, "old");
  {
    AtomicFile f(p);
    f.write("partial new content");
    EXPECT_TRUE(fs::exists(f.temp_path()));
    EXPECT_EQ(f.bytes_written(), 19u);
  }  // destroyed without commit, like an exception mid-export
  EXPECT_EQ(read_file(p).value(), "old");
  EXPECT_EQ(entries(), 1);
}

TEST_F(FilesTest, StreamingCommit) {
  const auto p = dir_ / "b";
  AtomicFile f(p);
  for (int i = 0; i < 100; ++i) f.write("0123456789");
  EXPECT_FALSE(fs::exists(p));
  f.commit();
  EXPECT_EQ(fs::file_size(p), 1000u);
}

TEST_F(FilesTest, ReadMissingIsNullopt) {
  EXPECT_FALSE(read_file(dir_ / "missing").has_value());
}

TEST_F(FilesTest, WriteIntoMissingDirIsNotFound) {
  try {
    atomic_write_file(dir_ / "no" / "such" / "f", "x");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_NE(std::string(e.what()).find("no/such"), std::string::npos);
  }
}

TEST_F(FilesTest, DiskFullIsResourceExhaustedAndLeavesNothing) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  // A child process in its own mount namespace mounts a 64 KiB tmpfs and writes 1 MiB into it.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0) ::_exit(10);
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(11);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=64k") != 0) ::_exit(12);
    int rc = 1;
    try {
      atomic_write_file(dir_ / "big", std::string(1 << 20, 'x'));
    } catch (const Error& e) {
      rc = e.code() == Code::kResourceExhausted &&
                   std::string(e.what()).find("No space left on device") != std::string::npos &&
                   entries() == 0
               ? 0
               : 2;
    }
    ::_exit(rc);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) >= 10) GTEST_SKIP() << "cannot mount here, step " << WEXITSTATUS(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: no error raised, 2: wrong code or leftovers";
}

}  // namespace
}  // namespace stowage
