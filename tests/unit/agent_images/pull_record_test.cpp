// PullRecord: the durable record of the agent's pulls round-trips through its file, survives a
// reload, and a corrupt file is moved aside and reported instead of being dropped.
#include "node-agent/pull_record.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "base/error.h"
#include "base/files.h"

namespace stowage::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

const std::string kDigest = "sha256:" + std::string(64, 'a');
const std::string kId = "sha256:" + std::string(64, '1');

class PullRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("stowage-pull-record-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path file() const { return dir_ / "store" / kPullRecordFile; }

  PulledImage entry(const std::string& ref) const {
    return PulledImage{
        .ref = ref,
        .digest = kDigest,
        .image_id = kId,
        .pulled_at = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'123))};
  }

  fs::path dir_;
};

TEST_F(PullRecordTest, AbsentFileIsAnEmptyRecord) {
  const PullRecord record = PullRecord::load(file());
  EXPECT_THAT(record.entries(), IsEmpty());
  EXPECT_FALSE(fs::exists(file()));
}

TEST_F(PullRecordTest, AddWritesTheFileAndLoadReadsItBack) {
  {
    PullRecord record = PullRecord::load(file());
    record.add(entry("r.test/a:1"));
    record.add(entry("r.test/b:1"));
    record.add(entry("r.test/a:1"));  // replaces, does not duplicate
  }
  ASSERT_TRUE(fs::exists(file()));
  EXPECT_EQ(fs::status(file()).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  const PullRecord reloaded = PullRecord::load(file());
  EXPECT_THAT(reloaded.entries(), ElementsAre(entry("r.test/a:1"), entry("r.test/b:1")));
}

TEST_F(PullRecordTest, RemovePersists) {
  PullRecord record(file());
  record.add(entry("r.test/a:1"));
  record.add(entry("r.test/b:1"));
  EXPECT_TRUE(record.remove("r.test/a:1", kDigest));
  EXPECT_FALSE(record.remove("r.test/a:1", kDigest));
  EXPECT_FALSE(record.remove("r.test/b:1", "sha256:other"));
  EXPECT_THAT(PullRecord::load(file()).entries(), ElementsAre(entry("r.test/b:1")));
}

TEST_F(PullRecordTest, CorruptFileIsMovedAsideAndReported) {
  fs::create_directories(file().parent_path());
  const std::string garbage = "{\"version\": 1, \"images\": [ {\"ref\": ";
  atomic_write_file(file(), garbage);
  try {
    (void)PullRecord::load(file());
    FAIL() << "expected DataLoss";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kDataLoss);
    EXPECT_THAT(e.what(), HasSubstr(file().string()));
    EXPECT_THAT(e.what(), HasSubstr(std::string(kCorruptSuffix)));
  }
  EXPECT_FALSE(fs::exists(file()));
  int preserved = 0;
  for (const auto& f : fs::directory_iterator(file().parent_path())) {
    EXPECT_THAT(f.path().filename().string(),
                StartsWith(std::string(kPullRecordFile) + std::string(kCorruptSuffix)));
    EXPECT_EQ(read_file(f.path()), garbage);
    ++preserved;
  }
  EXPECT_EQ(preserved, 1);
  // The next start begins empty (pruning nothing it cannot prove it pulled).
  EXPECT_THAT(PullRecord::load(file()).entries(), IsEmpty());
}

TEST_F(PullRecordTest, WrongShapeIsCorruptToo) {
  fs::create_directories(file().parent_path());
  atomic_write_file(file(), R"({"version": 1, "images": [{"ref": "r.test/a:1"}]})");
  try {
    (void)PullRecord::load(file());
    FAIL() << "expected DataLoss";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kDataLoss);
    EXPECT_THAT(e.what(), HasSubstr("images[0].digest"));
  }
  EXPECT_FALSE(fs::exists(file()));
}

TEST_F(PullRecordTest, ParseRejectsOtherVersions) {
  EXPECT_THROW(PullRecord::parse(R"({"version": 2, "images": []})"), Error);
  EXPECT_THAT(PullRecord::parse(PullRecord::serialize({entry("r.test/a:1")})),
              ElementsAre(entry("r.test/a:1")));
}

}  // namespace
}  // namespace stowage::agent
