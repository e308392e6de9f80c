// Streaming readers for hostile input: TarReader walks a tar archive (plain, gzip, zstd, bzip2 or
// xz, detected from the bytes) one entry at a time and refuses what an importer must never act on:
// absolute paths, ".." components, links that leave the archive root, paths that go through a
// symlink, device files, size bombs and too many entries. DecompressReader turns one compressed
// stream into its plain bytes under the same kind of limits. Neither ever holds an entry or a
// layer in memory; callers pull data in chunks. One object per stream; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace stowage::oci {

// Pulls up to `size` bytes into `buffer`; returns how many, 0 at the end. May throw.
using ByteSource = std::function<std::size_t(char* buffer, std::size_t size)>;

// Bounds on what one archive may make the reader do. A refusal is an Error(kInvalidArgument)
// naming the entry.
struct TarLimits {
  std::uint64_t max_entries = 1'000'000;
  std::uint64_t max_entry_size = std::uint64_t{64} << 30;   // declared size of one entry
  std::uint64_t max_total_size = std::uint64_t{256} << 30;  // sum of declared entry sizes
  // Size bomb guard: the plain tar stream may grow to at most max_ratio times the input read so
  // far, once it is past ratio_floor bytes. 0 disables the ratio check.
  std::uint64_t max_ratio = 1024;
  std::uint64_t ratio_floor = std::uint64_t{256} << 20;
  std::size_t max_path_length = 4096;
  // Image layers are unpacked into a root of their own, where an absolute symlink target names a
  // path inside that root; in an archive of files an absolute target leaves it. False refuses
  // absolute symlink targets.
  bool absolute_symlinks_stay_in_root = false;
};

enum class TarEntryType { kRegular, kDirectory, kSymlink, kHardlink, kFifo };

struct TarEntry {
  // Cleaned: relative, no "." or empty components, no trailing '/'; "" only for the root dir.
  std::string path;
  TarEntryType type = TarEntryType::kRegular;
  // Symlinks and hardlinks: the target as written, and the path inside the root it names
  // (symlinks resolve from the link's directory, hardlinks from the root).
  std::string link_target;
  std::string link_path;
  std::uint64_t size = 0;  // declared data size
  std::uint32_t mode = 0;  // permission bits
  std::int64_t mtime = 0;
};

class TarReader {
 public:
  // `name` is used in messages only. open_memory() does not copy: `data` must outlive the reader.
  static TarReader open_file(const std::filesystem::path& path, TarLimits limits = {});
  static TarReader open_memory(std::string_view data, std::string name, TarLimits limits = {});
  static TarReader open_source(ByteSource source, std::string name, TarLimits limits = {});

  TarReader(TarReader&&) noexcept;
  TarReader& operator=(TarReader&&) noexcept;
  ~TarReader();

  // The next entry, or nullopt after the last one. Unread data of the previous entry is skipped.
  // Throws Error(kInvalidArgument) for a refused entry or a corrupt archive; errors thrown by the
  // source pass through unchanged.
  std::optional<TarEntry> next();
  // Reads data of the current entry; 0 at its end.
  std::size_t read(char* buffer, std::size_t size);

  // Entries returned so far, and bytes consumed from the (possibly compressed) input.
  std::uint64_t entries() const;
  std::uint64_t input_bytes() const;
  const std::string& name() const;

  struct Impl;

 private:
  explicit TarReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

enum class Compression { kNone, kGzip, kZstd, kBzip2, kXz };

// The compression of a stream starting with `head` (a few bytes suffice; 6 for xz).
Compression detect_compression(std::string_view head);
std::string_view compression_name(Compression c);

struct DecompressLimits {
  std::uint64_t max_output = std::uint64_t{256} << 30;
  std::uint64_t max_ratio = 1024;  // 0 disables; applies once past ratio_floor output bytes
  std::uint64_t ratio_floor = std::uint64_t{256} << 20;
};

// The plain bytes of a compressed stream pulled from `source`. kNone passes bytes through. Throws
// Error(kInvalidArgument) naming `name` for corrupt input, trailing garbage or a limit exceeded;
// errors thrown by the source pass through unchanged.
class DecompressReader {
 public:
  DecompressReader(Compression compression, ByteSource source, std::string name,
                   DecompressLimits limits = {});
  DecompressReader(DecompressReader&&) noexcept;
  DecompressReader& operator=(DecompressReader&&) noexcept;
  ~DecompressReader();

  std::size_t read(char* buffer, std::size_t size);
  std::uint64_t output_bytes() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace stowage::oci
