#include "base/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "base/error.h"

namespace stowage {
namespace fs = std::filesystem;

void throw_errno(int err, std::string_view doing, const fs::path& what) {
  Code code = Code::kInternal;
  switch (err) {
    case ENOSPC:
    case EDQUOT: code = Code::kResourceExhausted; break;
    case EACCES:
    case EPERM:
    case EROFS: code = Code::kPermissionDenied; break;
    case ENOENT: code = Code::kNotFound; break;
    case EEXIST: code = Code::kAlreadyExists; break;
    case EIO: code = Code::kDataLoss; break;
    default: break;
  }
  throw Error(code, std::string(doing) + " " + what.string() + ": " + std::strerror(err));
}

namespace {

std::string random_suffix() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(10, 'x');
  for (auto& c : s) c = kAlphabet[rng() % (sizeof kAlphabet - 1)];
  return s;
}

void write_all(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "writing", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno(errno, "opening directory", dir);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw_errno(err, "syncing directory", dir);
}

AtomicFile::AtomicFile(fs::path path, mode_t mode) : path_(std::move(path)) {
  const fs::path dir = path_.has_parent_path() ? path_.parent_path() : fs::path(".");
  temp_ = dir / (".tmp-" + path_.filename().string() + "-" + random_suffix());
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd_ < 0) throw_errno(errno, "creating", temp_);
  // open() applies the umask; the caller asked for exactly `mode`.
  if (::fchmod(fd_, mode) != 0) {
    const int err = errno;
    ::close(fd_);
    ::unlink(temp_.c_str());
    throw_errno(err, "setting mode of", temp_);
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(std::string_view data) {
  write_all(fd_, data, path_);
  written_ += data.size();
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) throw_errno(errno, "syncing", path_);
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw_errno(errno, "closing", path_);
  if (::rename(temp_.c_str(), path_.c_str()) != 0) throw_errno(errno, "renaming into", path_);
  committed_ = true;
  fsync_dir(path_.has_parent_path() ? path_.parent_path() : fs::path("."));
}

void atomic_write_file(const fs::path& path, std::string_view contents, mode_t mode) {
  AtomicFile file(path, mode);
  file.write(contents);
  file.commit();
}

std::optional<std::string> read_file(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno(errno, "opening", path);
  }
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw_errno(err, "reading", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace stowage
