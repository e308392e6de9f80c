// Durable file writes. A reader sees either the old file or the complete new one, never a part:
// data goes to a temp file in the same directory, is fsynced, renamed over the target, and the
// directory is fsynced. A failure (disk full, kill -9) leaves at most a hidden ".tmp-" file.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace stowage {

// Writes `contents` to `path` atomically with permissions `mode`. Throws Error (ResourceExhausted
// for ENOSPC/EDQUOT, PermissionDenied, Internal otherwise) naming the path.
void atomic_write_file(const std::filesystem::path& path, std::string_view contents,
                       mode_t mode = 0644);

// Reads a whole file; std::nullopt when it does not exist. Throws on other errors.
std::optional<std::string> read_file(const std::filesystem::path& path);

// fsync() of a directory, so a rename or create inside it survives a crash.
void fsync_dir(const std::filesystem::path& dir);

// A streaming atomic write: write() chunks, then commit(). Destroyed without commit() (error,
// exception) it removes the temp file. Not thread-safe.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path, mode_t mode = 0644);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::string_view data);
  // fsync, rename over the target, fsync the directory.
  void commit();
  const std::filesystem::path& temp_path() const { return temp_; }
  std::uint64_t bytes_written() const { return written_; }

 private:
  std::filesystem::path path_;
  std::filesystem::path temp_;
  int fd_ = -1;
  std::uint64_t written_ = 0;
  bool committed_ = false;
};

// Maps an errno from an operation on `what` to a stowage::Error with a clear message.
[[noreturn]] void throw_errno(int err, std::string_view doing, const std::filesystem::path& what);

}  // namespace stowage
