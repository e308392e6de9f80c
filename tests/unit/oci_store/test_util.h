// Helpers shared by the content store and archive tests (unit and integration tiers): temp dirs,
// a raw ustar builder that can write what well-behaved writers refuse to (absolute paths, "..",
// devices, lying sizes), compression through libarchive, and images put straight into a Store.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "oci/store.h"
#include "oci/tar_reader.h"

namespace stowage::oci::testing {

// A fresh directory under the system temp dir, removed with its contents on destruction.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "stowage-oci");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Builds a ustar stream byte by byte. Nothing is validated: tests craft hostile archives with it.
class TarBuilder {
 public:
  TarBuilder& file(std::string_view path, std::string_view content, std::uint32_t mode = 0644);
  TarBuilder& dir(std::string_view path);
  TarBuilder& symlink(std::string_view path, std::string_view target);
  TarBuilder& hardlink(std::string_view path, std::string_view target);
  TarBuilder& device(std::string_view path, char type);  // '3' char, '4' block
  TarBuilder& fifo(std::string_view path);
  // A header declaring `declared_size` bytes followed by `data` (which may be shorter: a liar).
  TarBuilder& raw(std::string_view path, char type, std::uint64_t declared_size,
                  std::string_view data, std::string_view link = {});
  // Appends the end-of-archive blocks and returns the stream.
  std::string finish();
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

// Compresses through libarchive's "raw" writer (gzip, zstd, bzip2, xz) or returns `data`.
std::string compress(std::string_view data, Compression compression);
std::string gzip(std::string_view data);

// Deterministic pseudo-random bytes.
std::string random_bytes(std::size_t size, std::uint32_t seed);

std::string read_whole(const std::filesystem::path& path);
void write_whole(const std::filesystem::path& path, std::string_view data);

// An image put directly into a store (layers built from `layers`, one map path → content each).
struct TestImage {
  Descriptor manifest;
  std::string config_digest;
  std::string config_bytes;
  std::vector<std::string> layer_digests;  // as stored
  std::vector<std::string> diff_ids;
  std::vector<std::string> layer_tars;  // uncompressed layer bytes
};
struct TestImageSpec {
  std::vector<std::map<std::string, std::string>> layers = {{{"hello.txt", "hello\n"}}};
  Compression compression = Compression::kGzip;
  bool oci = true;  // OCI media types, else Docker schema2
  std::map<std::string, std::string> labels = {};
};
TestImage put_image(const Store& store, const TestImageSpec& spec = {});
// Commits `bytes` and returns its descriptor with `media_type`.
Descriptor put_blob(const Store& store, std::string_view media_type, std::string_view bytes);
// The uncompressed layer tar for one map of files (sorted, mtime 0, root-owned).
std::string layer_tar(const std::map<std::string, std::string>& files);

// Extracts an archive with TarReader (regular files and directories only) under `dir`.
void extract(const std::filesystem::path& archive, const std::filesystem::path& dir);
// path → content of the regular files in an archive (small test archives only).
std::map<std::string, std::string> tar_files(const std::filesystem::path& archive);

}  // namespace stowage::oci::testing
