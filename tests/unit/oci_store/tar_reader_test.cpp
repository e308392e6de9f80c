// TarReader and DecompressReader on hostile input: the refusals table (absolute paths, "..",
// escaping symlinks and hardlinks, devices, size bombs, too many entries) and what must still be
// accepted (real-world layer shapes), plain and compressed.
#include "oci/tar_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "base/error.h"
#include "unit/oci_store/test_util.h"

namespace stowage::oci {
namespace {

using ::testing::HasSubstr;
using testing::TarBuilder;

// Reads every entry and all data; returns the paths seen.
std::vector<std::string> drain(TarReader& r) {
  std::vector<std::string> paths;
  char buf[4096];
  while (auto e = r.next()) {
    paths.push_back(e->path);
    while (r.read(buf, sizeof buf) > 0) {
    }
  }
  return paths;
}

struct Refusal {
  std::string name;
  std::string tar;
  std::string message;  // a part of the error text
  TarLimits limits = {};
  bool compressed_only = false;  // a ratio only grows when the input is compressed
};

void PrintTo(const Refusal& r, std::ostream* os) {
  *os << r.name;
}

class TarRefusal : public ::testing::TestWithParam<Refusal> {};

TEST_P(TarRefusal, IsInvalidArgument) {
  const Refusal& c = GetParam();
  for (const Compression comp : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    if (c.compressed_only && comp == Compression::kNone) continue;
    SCOPED_TRACE(std::string(compression_name(comp)));
    const std::string data = testing::compress(c.tar, comp);
    TarReader r = TarReader::open_memory(data, "hostile.tar", c.limits);
    try {
      drain(r);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument) << e.what();
      EXPECT_THAT(e.what(), HasSubstr(c.message));
      EXPECT_THAT(e.what(), HasSubstr("hostile.tar"));
    }
  }
}

std::vector<Refusal> refusals() {
  std::vector<Refusal> out;
  out.push_back({"absolute_path", TarBuilder().file("/etc/passwd", "x").finish(), "absolute path"});
  out.push_back({"dotdot", TarBuilder().file("../evil", "x").finish(), "contains \"..\""});
  out.push_back({"dotdot_inside", TarBuilder().file("a/../../evil", "x").finish(), "\"..\""});
  out.push_back({"dotdot_dir", TarBuilder().dir("a/..").finish(), "\"..\""});
  out.push_back({"symlink_escape", TarBuilder().symlink("a/link", "../../etc/passwd").finish(),
                 "leaves the archive root"});
  out.push_back({"symlink_absolute", TarBuilder().symlink("link", "/etc/passwd").finish(),
                 "absolute path \"/etc/passwd\" leaves the archive root"});
  out.push_back({"hardlink_escape", TarBuilder().hardlink("h", "../outside").finish(),
                 "hardlink target \"../outside\" leaves the archive root"});
  out.push_back({"hardlink_absolute", TarBuilder().hardlink("h", "/etc/shadow").finish(),
                 "leaves the archive root"});
  out.push_back({"write_through_symlink",
                 TarBuilder().symlink("d", "sub").dir("sub").file("d/f", "x").finish(),
                 "goes through the symlink \"d\""});
  out.push_back({"hardlink_through_symlink",
                 TarBuilder().symlink("d", ".").hardlink("h", "d/x").finish(),
                 "hardlink target goes through the symlink"});
  out.push_back({"char_device", TarBuilder().device("dev/null", '3').finish(), "character device"});
  out.push_back({"block_device", TarBuilder().device("dev/sda", '4').finish(), "block device"});
  out.push_back({"declared_size_bomb",
                 TarBuilder().raw("huge", '0', std::uint64_t{1} << 40, "tiny").finish(),
                 "declares 1099511627776 bytes"});
  {
    TarBuilder b;
    for (int i = 0; i < 20; ++i) b.file("f" + std::to_string(i), std::string(100, 'x'));
    out.push_back({"total_size", b.finish(), "more than 1000 bytes in total",
                   TarLimits{.max_total_size = 1000}});
  }
  {
    TarBuilder b;
    for (int i = 0; i < 11; ++i) b.file("f" + std::to_string(i), "");
    out.push_back(
        {"too_many_entries", b.finish(), "more than 10 entries", TarLimits{.max_entries = 10}});
  }
  out.push_back({"ratio_bomb", TarBuilder().file("zeros", std::string(8 << 20, '\0')).finish(),
                 "size bomb", TarLimits{.max_ratio = 50, .ratio_floor = 1 << 20}, true});
  out.push_back({"long_path", TarBuilder().file(std::string(90, 'a'), "x").finish(),
                 "path longer than 64 bytes", TarLimits{.max_path_length = 64}});
  out.push_back({"root_as_file", TarBuilder().file(".", "x").finish(), "archive root"});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Hostile, TarRefusal, ::testing::ValuesIn(refusals()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST(TarReader, RatioBombIsOnlyABombWhenCompressed) {
  // The same 8 MiB of zeros is fine uncompressed: the ratio is 1.
  const std::string tar = TarBuilder().file("zeros", std::string(8 << 20, '\0')).finish();
  TarReader r = TarReader::open_memory(tar, "plain.tar", {.max_ratio = 50, .ratio_floor = 1 << 20});
  EXPECT_EQ(drain(r).size(), 1u);
}

TEST(TarReader, AcceptsRealWorldShapes) {
  const std::string tar = TarBuilder()
                              .dir("./")
                              .dir("./usr/")
                              .dir("usr/lib")
                              .file("./usr/lib/libc.so", "elf")
                              .symlink("lib", "usr/lib")
                              .symlink("usr/lib/up", "../lib/libc.so")
                              .symlink("usr/lib/self", ".")
                              .hardlink("usr/lib/libc2.so", "usr/lib/libc.so")
                              .fifo("run/fifo")
                              .file("a//b/./c", "x")
                              .finish();
  TarReader r = TarReader::open_memory(tar, "layer.tar");
  std::vector<TarEntry> entries;
  while (auto e = r.next()) entries.push_back(*e);
  ASSERT_EQ(entries.size(), 10u);
  EXPECT_EQ(entries[0].path, "");
  EXPECT_EQ(entries[1].path, "usr");
  EXPECT_EQ(entries[3].path, "usr/lib/libc.so");
  EXPECT_EQ(entries[4].type, TarEntryType::kSymlink);
  EXPECT_EQ(entries[4].link_path, "usr/lib");
  EXPECT_EQ(entries[5].link_path, "usr/lib/libc.so");
  EXPECT_EQ(entries[6].link_path, "usr/lib");
  EXPECT_EQ(entries[7].type, TarEntryType::kHardlink);
  EXPECT_EQ(entries[7].link_path, "usr/lib/libc.so");
  EXPECT_EQ(entries[8].type, TarEntryType::kFifo);
  EXPECT_EQ(entries[9].path, "a/b/c");
}

TEST(TarReader, AbsoluteSymlinksStayInARootfs) {
  const std::string tar = TarBuilder().symlink("bin", "/usr/bin").finish();
  TarReader r = TarReader::open_memory(tar, "layer.tar", {.absolute_symlinks_stay_in_root = true});
  const auto e = r.next();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->link_path, "usr/bin");
}

TEST(TarReader, StreamsDataInChunks) {
  const std::string big = testing::random_bytes(3 << 20, 9);
  for (const Compression comp :
       {Compression::kNone, Compression::kGzip, Compression::kZstd, Compression::kXz}) {
    SCOPED_TRACE(std::string(compression_name(comp)));
    const std::string data =
        testing::compress(TarBuilder().file("big", big).file("small", "s").finish(), comp);
    TarReader r = TarReader::open_memory(data, "t.tar");
    auto e = r.next();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->size, big.size());
    std::string got;
    char buf[7000];
    for (std::size_t n; (n = r.read(buf, sizeof buf)) > 0;) got.append(buf, n);
    EXPECT_EQ(got, big);
    e = r.next();  // "small" read fully even though we skip it
    ASSERT_TRUE(e);
    EXPECT_EQ(e->path, "small");
    EXPECT_FALSE(r.next());
    EXPECT_FALSE(r.next());
    EXPECT_EQ(r.entries(), 2u);
  }
}

TEST(TarReader, SkipsUnreadDataOfAFile) {
  testing::TempDir dir;
  testing::write_whole(dir / "t.tar",
                       TarBuilder().file("a", std::string(5 << 20, 'a')).file("b", "bee").finish());
  TarReader r = TarReader::open_file(dir / "t.tar");
  ASSERT_EQ(r.next()->path, "a");
  ASSERT_EQ(r.next()->path, "b");
  char buf[8];
  EXPECT_EQ(std::string(buf, r.read(buf, sizeof buf)), "bee");
}

TEST(TarReader, MissingFileIsNotFoundAndGarbageIsInvalid) {
  try {
    TarReader::open_file("/nonexistent/x.tar");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
  }
  const std::string garbage = testing::random_bytes(4096, 5);
  try {
    TarReader r = TarReader::open_memory(garbage, "garbage");
    drain(r);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
  }
  // A truncated archive fails while reading, not silently.
  const std::string tar = TarBuilder().file("f", std::string(10000, 'x')).finish();
  const std::string cut = tar.substr(0, 3000);
  TarReader r = TarReader::open_memory(cut, "cut.tar");
  EXPECT_THROW(drain(r), Error);
}

TEST(TarReader, SourceErrorsPassThroughUnchanged) {
  const std::string tar = TarBuilder().file("f", std::string(100000, 'x')).finish();
  std::size_t pos = 0;
  TarReader r = TarReader::open_source(
      [&](char* buf, std::size_t n) -> std::size_t {
        if (pos >= 20000) throw Error(Code::kUnavailable, "connection reset");
        n = std::min(n, std::min<std::size_t>(tar.size() - pos, 10000));
        std::memcpy(buf, tar.data() + pos, n);
        pos += n;
        return n;
      },
      "stream");
  try {
    drain(r);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable);
    EXPECT_STREQ(e.what(), "connection reset");
  }
}

std::string pull_all(DecompressReader& r) {
  std::string out;
  std::vector<char> buf(100000);
  for (std::size_t n; (n = r.read(buf.data(), buf.size())) > 0;) out.append(buf.data(), n);
  return out;
}

ByteSource from(const std::string& data) {
  auto pos = std::make_shared<std::size_t>(0);
  return [&data, pos](char* buf, std::size_t n) {
    n = std::min(n, data.size() - *pos);
    std::memcpy(buf, data.data() + *pos, n);
    *pos += n;
    return n;
  };
}

TEST(DecompressReader, RoundTripsEveryFormat) {
  const std::string plain = testing::random_bytes(2 << 20, 4) + std::string(1 << 20, 'z');
  for (const Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd,
                              Compression::kBzip2, Compression::kXz}) {
    SCOPED_TRACE(std::string(compression_name(c)));
    const std::string packed = testing::compress(plain, c);
    EXPECT_EQ(detect_compression(packed), c);
    DecompressReader r(c, from(packed), "blob");
    EXPECT_EQ(pull_all(r), plain);
    EXPECT_EQ(r.output_bytes(), plain.size());
  }
}

TEST(DecompressReader, GzipMembersConcatenateAndZeroPaddingIsTolerated) {
  const std::string packed =
      testing::gzip("hello ") + testing::gzip("world") + std::string(7, '\0');
  DecompressReader r(Compression::kGzip, from(packed), "blob");
  EXPECT_EQ(pull_all(r), "hello world");
}

TEST(DecompressReader, RefusesCorruptTruncatedTrailingGarbageAndBombs) {
  const auto refuses = [](Compression c, const std::string& data, DecompressLimits limits,
                          const std::string& message) {
    try {
      DecompressReader r(c, from(data), "layer x", limits);
      pull_all(r);
      ADD_FAILURE() << "accepted: " << message;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument);
      EXPECT_THAT(e.what(), HasSubstr(message));
      EXPECT_THAT(e.what(), HasSubstr("layer x"));
    }
  };
  const std::string packed = testing::gzip(testing::random_bytes(100000, 2));
  refuses(Compression::kGzip, packed.substr(0, packed.size() / 2), {}, "unexpected end");
  refuses(Compression::kGzip, packed + "garbage!", {}, "trailing garbage");
  std::string flipped = packed;
  flipped[flipped.size() / 2] ^= 0x55;
  refuses(Compression::kGzip, flipped, {}, "gzip");
  refuses(Compression::kGzip, "", {}, "unexpected end");
  const std::string zeros = std::string(16 << 20, '\0');
  refuses(Compression::kGzip, testing::gzip(zeros), {.max_ratio = 100, .ratio_floor = 1 << 20},
          "size bomb");
  refuses(Compression::kZstd, testing::compress(zeros, Compression::kZstd),
          {.max_ratio = 100, .ratio_floor = 1 << 20}, "size bomb");
  refuses(Compression::kGzip, testing::gzip(zeros), {.max_output = 1 << 20}, "more than 1048576");
  refuses(Compression::kZstd, "not zstd at all", {}, "zstd");
}

}  // namespace
}  // namespace stowage::oci
