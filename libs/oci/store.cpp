#include "oci/store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <variant>

#include "base/error.h"
#include "base/files.h"
#include "base/sha256.h"
#include "oci/manifest.h"
#include "reference/reference.h"

namespace stowage::oci {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::size_t kCopyBuffer = std::size_t{1} << 20;
constexpr std::string_view kIndexTmpPrefix = ".tmp-index.json-";

std::string random_hex(std::size_t bytes) {
  std::vector<std::uint8_t> buf(bytes);
  std::size_t got = 0;
  while (got < bytes) {
    const ssize_t n = ::getrandom(buf.data() + got, bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "getting random bytes for", "an ingest name");
    }
    got += static_cast<std::size_t>(n);
  }
  return to_hex(buf.data(), buf.size());
}

bool is_hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The hex part of a "sha256:<hex>" digest; Error(kInvalidArgument) for anything else.
std::string_view digest_hex(std::string_view digest) {
  if (!digest.starts_with("sha256:") || !is_hex64(digest.substr(7))) {
    throw Error(Code::kInvalidArgument,
                fmt::format("content store: unsupported or invalid digest \"{}\" (want sha256:<64 "
                            "lowercase hex>)",
                            digest.substr(0, 80)));
  }
  return digest.substr(7);
}

timespec to_timespec(Clock::WallTime t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns.count() % 1'000'000'000);
  return ts;
}

Clock::WallTime mtime_of(const struct stat& st) {
  return Clock::WallTime(std::chrono::duration_cast<Clock::WallTime::duration>(
      std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
}

void write_all(int fd, const char* data, std::size_t size, const fs::path& path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "writing", path);
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

int flock_retry(int fd, int op) {
  for (;;) {
    const int rc = ::flock(fd, op);
    if (rc == 0 || errno != EINTR) return rc;
  }
}

// An exclusive flock on <root>/index.lock, held for the object's lifetime. Serializes every
// read-modify-write of index.json across threads and processes (each lock is its own open file
// description, so threads of one process exclude each other too).
class IndexLock {
 public:
  explicit IndexLock(const fs::path& root) : path_(root / "index.lock") {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw_errno(errno, "opening lock file", path_);
    if (flock_retry(fd_, LOCK_EX) != 0) {
      const int err = errno;
      ::close(fd_);
      throw_errno(err, "locking", path_);
    }
  }
  ~IndexLock() { ::close(fd_); }  // closing drops the lock
  IndexLock(const IndexLock&) = delete;
  IndexLock& operator=(const IndexLock&) = delete;

 private:
  fs::path path_;
  int fd_ = -1;
};

json empty_index() {
  return json{{"schemaVersion", 2},
              {"mediaType", std::string(media::kOciIndex)},
              {"manifests", json::array()}};
}

json load_index(const fs::path& path) {
  const auto text = read_file(path);
  if (!text) return empty_index();
  json index = json_nesting_exceeds(*text, kMaxJsonDepth) ? json(nullptr)
                                                          : json::parse(*text, nullptr, false);
  if (index.is_discarded() || !index.is_object()) {
    throw Error(Code::kDataLoss,
                fmt::format("content store: {} is not a JSON object", path.string()));
  }
  if (!index.contains("manifests") || index["manifests"].is_null()) {
    index["manifests"] = json::array();
  }
  if (!index["manifests"].is_array()) {
    throw Error(Code::kDataLoss,
                fmt::format("content store: {}: \"manifests\" is not a list", path.string()));
  }
  return index;
}

std::string annotation(const json& entry, std::string_view key) {
  const auto a = entry.find("annotations");
  if (a == entry.end() || !a->is_object()) return {};
  const auto v = a->find(key);
  return v != a->end() && v->is_string() ? v->get<std::string>() : std::string();
}

std::optional<std::string> try_normalize(std::string_view name) {
  try {
    return normalize_image_name(name);
  } catch (const Error&) {
    return std::nullopt;
  }
}

// The name an index.json entry carries: io.containerd.image.name, else a ref.name that is a full
// reference (podman writes those), else the ref.name as written (a bare tag), else "".
std::string entry_name(const json& entry) {
  std::string name = annotation(entry, kAnnotationImageName);
  if (!name.empty()) return name;
  name = annotation(entry, kAnnotationRefName);
  if (name.empty()) return name;
  try {
    const Reference ref = Reference::parse(name);
    if (!ref.domain.empty()) return normalize_image_name(name);
  } catch (const Error&) {
  }
  return name;
}

bool entry_matches(const json& entry, std::string_view name,
                   const std::optional<std::string>& full) {
  const std::string image_name = annotation(entry, kAnnotationImageName);
  if (!image_name.empty()) return full && image_name == *full;
  const std::string ref_name = annotation(entry, kAnnotationRefName);
  if (ref_name.empty()) return false;
  if (ref_name == name) return true;
  if (!full) return false;
  try {
    return !Reference::parse(ref_name).domain.empty() && normalize_image_name(ref_name) == *full;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

std::string normalize_image_name(std::string_view name) {
  return Reference::parse_normalized(name).with_default_tag().string();
}

// ---- BlobWriter ------------------------------------------------------------------------------

struct BlobWriter::State {
  fs::path blobs;
  fs::path temp;
  Clock* clock = nullptr;
  int fd = -1;
  Sha256 hash;
  std::optional<std::string> expected_digest;
  std::optional<std::uint64_t> expected_size;
  std::uint64_t written = 0;
  bool done = false;  // committed or aborted

  ~State() { discard(); }

  void discard() {
    if (fd >= 0) {
      ::unlink(temp.c_str());  // while still holding the lock
      ::close(fd);
      fd = -1;
    }
    done = true;
  }

  [[noreturn]] void fail(Code code, std::string message) {
    discard();
    throw Error(code, std::move(message));
  }

  std::string what() const {
    return expected_digest ? "blob " + *expected_digest : "blob ingest " + temp.filename().string();
  }
};

BlobWriter::BlobWriter(std::unique_ptr<State> state) : s_(std::move(state)) {}
BlobWriter::BlobWriter(BlobWriter&&) noexcept = default;
BlobWriter& BlobWriter::operator=(BlobWriter&&) noexcept = default;
BlobWriter::~BlobWriter() = default;

void BlobWriter::write(std::string_view data) {
  State& s = *s_;
  if (s.done) throw Error(Code::kInternal, "content store: write to a finished blob writer");
  if (s.expected_size && s.written + data.size() > *s.expected_size) {
    s.fail(Code::kDataLoss, fmt::format("content store: {}: more than the expected {} bytes",
                                        s.what(), *s.expected_size));
  }
  s.hash.update(data);
  try {
    write_all(s.fd, data.data(), data.size(), s.temp);
  } catch (...) {
    s.discard();
    throw;
  }
  s.written += data.size();
}

std::uint64_t BlobWriter::written() const {
  return s_->written;
}

const fs::path& BlobWriter::ingest_path() const {
  return s_->temp;
}

void BlobWriter::abort() {
  s_->discard();
}

std::string BlobWriter::commit() {
  State& s = *s_;
  if (s.done) throw Error(Code::kInternal, "content store: commit of a finished blob writer");
  if (s.expected_size && s.written != *s.expected_size) {
    s.fail(Code::kDataLoss, fmt::format("content store: {}: got {} bytes, expected {}", s.what(),
                                        s.written, *s.expected_size));
  }
  std::string digest = "sha256:" + s.hash.finish_hex();
  if (s.expected_digest && digest != *s.expected_digest) {
    s.fail(Code::kDataLoss, fmt::format("content store: {}: content hashes to {} ({} bytes)",
                                        s.what(), digest, s.written));
  }
  const fs::path target = s.blobs / digest.substr(7);
  try {
    const timespec now = to_timespec(s.clock->wall_now());
    const timespec times[2] = {now, now};
    if (::futimens(s.fd, times) != 0) throw_errno(errno, "setting times of", s.temp);
    if (::fchmod(s.fd, 0444) != 0) throw_errno(errno, "setting mode of", s.temp);
    if (::fsync(s.fd) != 0) throw_errno(errno, "syncing", s.temp);
    int rc = ::renameat2(AT_FDCWD, s.temp.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE);
    if (rc != 0 && errno == EINVAL) {  // filesystem without RENAME_NOREPLACE
      struct stat st {};
      if (::stat(target.c_str(), &st) == 0) {
        errno = EEXIST;
      } else {
        rc = ::rename(s.temp.c_str(), target.c_str());
      }
    }
    if (rc != 0) {
      if (errno != EEXIST) throw_errno(errno, "committing", target);
      // Another writer committed the same content first: its blob wins. Refresh its time so a
      // concurrent prune sees it as new.
      ::utimensat(AT_FDCWD, target.c_str(), times, 0);
      s.discard();
      return digest;
    }
    ::close(s.fd);  // renamed: nothing to unlink any more
    s.fd = -1;
    s.done = true;
    fsync_dir(s.blobs);
  } catch (...) {
    s.discard();
    throw;
  }
  return digest;
}

// ---- BlobReader ------------------------------------------------------------------------------

BlobReader::BlobReader(int fd, std::uint64_t size, std::string digest)
    : fd_(fd), size_(size), digest_(std::move(digest)) {}

BlobReader::BlobReader(BlobReader&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), size_(other.size_), digest_(std::move(other.digest_)) {}

BlobReader& BlobReader::operator=(BlobReader&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    size_ = other.size_;
    digest_ = std::move(other.digest_);
  }
  return *this;
}

BlobReader::~BlobReader() {
  if (fd_ >= 0) ::close(fd_);
}

std::size_t BlobReader::read(char* buffer, std::size_t size) {
  for (;;) {
    const ssize_t n = ::read(fd_, buffer, size);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) throw_errno(errno, "reading blob", digest_);
  }
}

// ---- Store -----------------------------------------------------------------------------------

Store::Store(fs::path root, StoreOptions options)
    : root_(std::move(root)),
      blobs_(root_ / "blobs" / "sha256"),
      ingest_(root_ / "ingest"),
      options_(options) {
  std::error_code ec;
  fs::create_directories(blobs_, ec);
  if (!ec) fs::create_directories(ingest_, ec);
  if (ec) throw_errno(ec.value(), "creating content store", root_);

  const fs::path layout = root_ / "oci-layout";
  if (const auto text = read_file(layout)) {
    const json j = json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("imageLayoutVersion", "") != "1.0.0") {
      throw Error(Code::kInvalidArgument,
                  fmt::format("content store {}: oci-layout is not imageLayoutVersion 1.0.0",
                              root_.string()));
    }
  } else {
    atomic_write_file(layout, R"({"imageLayoutVersion":"1.0.0"})");
  }
  {
    IndexLock lock(root_);
    if (!fs::exists(root_ / "index.json")) {
      atomic_write_file(root_ / "index.json", empty_index().dump());
    }
    // Temp files of an index write that died mid-way (no writer can be active: we hold the lock).
    for (const auto& entry : fs::directory_iterator(root_, ec)) {
      if (entry.path().filename().string().starts_with(kIndexTmpPrefix)) {
        std::error_code ignored;
        fs::remove(entry.path(), ignored);
      }
    }
  }
  clean_ingests();
}

Clock& Store::clock() const {
  return options_.clock != nullptr ? *options_.clock : real_clock();
}

fs::path Store::path(std::string_view digest) const {
  return blobs_ / digest_hex(digest);
}

BlobWriter Store::ingest(std::optional<std::string> digest,
                         std::optional<std::uint64_t> size) const {
  if (digest) digest_hex(*digest);
  auto s = std::make_unique<BlobWriter::State>();
  s->blobs = blobs_;
  s->clock = &clock();
  s->expected_digest = std::move(digest);
  s->expected_size = size;
  for (int attempt = 0;; ++attempt) {
    s->temp = ingest_ / random_hex(16);
    const int fd = ::open(s->temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST && attempt < 8) continue;
      throw_errno(errno, "creating ingest file", s->temp);
    }
    if (flock_retry(fd, LOCK_EX) != 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(s->temp.c_str());
      throw_errno(err, "locking", s->temp);
    }
    // clean_ingests() in another process may have taken the lock first and removed the file:
    // then start over with a new name.
    struct stat by_fd {
    }, by_path{};
    if (::fstat(fd, &by_fd) == 0 && ::stat(s->temp.c_str(), &by_path) == 0 &&
        by_fd.st_ino == by_path.st_ino && by_fd.st_dev == by_path.st_dev) {
      s->fd = fd;
      break;
    }
    ::close(fd);
    if (attempt >= 8) throw Error(Code::kUnavailable, "content store: ingest files keep vanishing");
  }
  return BlobWriter(std::move(s));
}

std::string Store::put(std::string_view data, std::optional<std::string> digest) const {
  BlobWriter w = ingest(std::move(digest), data.size());
  w.write(data);
  return w.commit();
}

bool Store::has(std::string_view digest) const {
  struct stat st {};
  return ::stat(path(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::optional<std::uint64_t> Store::size(std::string_view digest) const {
  struct stat st {};
  if (::stat(path(digest).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<std::uint64_t>(st.st_size);
}

BlobReader Store::open(std::string_view digest) const {
  const fs::path p = path(digest);
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      throw Error(Code::kNotFound, fmt::format("content store: blob {} not found", digest));
    }
    throw_errno(errno, "opening blob", p);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw_errno(err, "inspecting blob", p);
  }
  return BlobReader(fd, static_cast<std::uint64_t>(st.st_size), std::string(digest));
}

std::string Store::read(std::string_view digest, std::uint64_t max_size) const {
  BlobReader r = open(digest);
  if (r.size() > max_size) {
    throw Error(Code::kInvalidArgument,
                fmt::format("content store: blob {} has {} bytes, more than the {} expected here",
                            digest, r.size(), max_size));
  }
  std::string out(r.size(), '\0');
  std::size_t got = 0;
  while (got < out.size()) {
    const std::size_t n = r.read(out.data() + got, out.size() - got);
    if (n == 0) break;
    got += n;
  }
  out.resize(got);
  return out;
}

std::optional<Descriptor> Store::resolve(std::string_view name) const {
  const json index = load_index(root_ / "index.json");
  const std::optional<std::string> full = try_normalize(name);
  for (const auto& entry : index["manifests"]) {
    if (entry_matches(entry, name, full)) {
      try {
        return descriptor_from_json(entry);
      } catch (const Error& e) {
        throw Error(Code::kDataLoss,
                    fmt::format("content store: index.json entry for {}: {}", name, e.what()));
      }
    }
  }
  return std::nullopt;
}

void Store::tag(std::string_view name, const Descriptor& target) {
  const Reference ref = Reference::parse_normalized(name).with_default_tag();
  const std::string full = ref.string();
  digest_hex(target.digest);
  Descriptor d = target;
  d.annotations[std::string(kAnnotationImageName)] = full;
  if (ref.tag) {
    d.annotations[std::string(kAnnotationRefName)] = *ref.tag;
  } else {
    d.annotations.erase(std::string(kAnnotationRefName));
  }
  IndexLock lock(root_);
  json index = load_index(root_ / "index.json");
  json kept = json::array();
  bool placed = false;
  for (auto& entry : index["manifests"]) {
    if (entry_matches(entry, full, full)) {
      if (!placed) kept.push_back(to_json(d));
      placed = true;
    } else {
      kept.push_back(std::move(entry));
    }
  }
  if (!placed) kept.push_back(to_json(d));
  index["manifests"] = std::move(kept);
  atomic_write_file(root_ / "index.json", index.dump());
}

bool Store::untag(std::string_view name) {
  const std::optional<std::string> full = try_normalize(name);
  IndexLock lock(root_);
  json index = load_index(root_ / "index.json");
  json kept = json::array();
  bool removed = false;
  for (auto& entry : index["manifests"]) {
    if (entry_matches(entry, name, full)) {
      removed = true;
    } else {
      kept.push_back(std::move(entry));
    }
  }
  if (removed) {
    index["manifests"] = std::move(kept);
    atomic_write_file(root_ / "index.json", index.dump());
  }
  return removed;
}

std::vector<std::string> Store::remove_roots(std::string_view digest) {
  IndexLock lock(root_);
  json index = load_index(root_ / "index.json");
  json kept = json::array();
  std::vector<std::string> removed;
  for (auto& entry : index["manifests"]) {
    if (entry.value("digest", "") == digest) {
      removed.push_back(entry_name(entry));
    } else {
      kept.push_back(std::move(entry));
    }
  }
  if (!removed.empty()) {
    index["manifests"] = std::move(kept);
    atomic_write_file(root_ / "index.json", index.dump());
  }
  return removed;
}

void Store::add_unnamed(const Descriptor& target) {
  digest_hex(target.digest);
  Descriptor d = target;
  d.annotations.erase(std::string(kAnnotationImageName));
  d.annotations.erase(std::string(kAnnotationRefName));
  IndexLock lock(root_);
  json index = load_index(root_ / "index.json");
  for (const auto& entry : index["manifests"]) {
    if (entry.value("digest", "") == d.digest && entry_name(entry).empty()) return;
  }
  index["manifests"].push_back(to_json(d));
  atomic_write_file(root_ / "index.json", index.dump());
}

std::vector<StoredImage> Store::list() const {
  const json index = load_index(root_ / "index.json");
  std::vector<StoredImage> out;
  for (const auto& entry : index["manifests"]) {
    try {
      out.push_back({entry_name(entry), descriptor_from_json(entry)});
    } catch (const Error&) {
      // An entry we cannot read (another tool's, or damaged) names nothing we can serve.
    }
  }
  return out;
}

std::size_t Store::clean_ingests() const {
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(ingest_, ec)) {
    const fs::path& p = entry.path();
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
      std::error_code ignored;
      if (errno == ELOOP || errno == EISDIR) removed += fs::remove_all(p, ignored) > 0 ? 1 : 0;
      continue;
    }
    if (flock_retry(fd, LOCK_EX | LOCK_NB) == 0) {
      // Nobody holds it: its writer is gone. Remove it only if the name still means this file.
      struct stat by_fd {
      }, by_path{};
      if (::fstat(fd, &by_fd) == 0 && ::lstat(p.c_str(), &by_path) == 0 &&
          by_fd.st_ino == by_path.st_ino && by_fd.st_dev == by_path.st_dev &&
          ::unlink(p.c_str()) == 0) {
        ++removed;
      }
    }
    ::close(fd);
  }
  return removed;
}

namespace {

struct Reached {
  Descriptor descriptor;
  bool optional = false;  // an index child: a saved or pulled index may hold some platforms only
};

// Every descriptor reachable from `roots`, each once, in walk order. Children are read from
// manifests and indexes present in the store; documents that do not parse are leaves.
std::vector<Reached> walk(const Store& store, const std::vector<Descriptor>& roots) {
  std::vector<Reached> out;
  std::set<std::string> seen;
  std::vector<Reached> stack;
  for (auto it = roots.rbegin(); it != roots.rend(); ++it) stack.push_back({*it, false});
  while (!stack.empty()) {
    Reached r = std::move(stack.back());
    stack.pop_back();
    const Descriptor& d = r.descriptor;
    if (!seen.insert(d.digest).second) continue;
    out.push_back(r);
    if (!is_index_media_type(d.media_type) && !is_manifest_media_type(d.media_type)) continue;
    try {
      if (!store.has(d.digest)) continue;
      const auto doc = parse_manifest(store.read(d.digest, kMaxManifestBytes), d.media_type);
      if (const auto* index = std::get_if<ImageIndex>(&doc)) {
        for (auto it = index->manifests.rbegin(); it != index->manifests.rend(); ++it) {
          stack.push_back({*it, true});
        }
      } else {
        const auto& manifest = std::get<ImageManifest>(doc);
        for (auto it = manifest.layers.rbegin(); it != manifest.layers.rend(); ++it) {
          stack.push_back({*it, false});
        }
        stack.push_back({manifest.config, false});
      }
    } catch (const Error&) {
      // Not a document we can read (another tool's, or not JSON): nothing to follow.
    }
  }
  return out;
}

std::vector<Descriptor> index_roots(const fs::path& root) {
  std::vector<Descriptor> roots;
  const json index = load_index(root / "index.json");
  for (const auto& entry : index["manifests"]) {
    try {
      roots.push_back(descriptor_from_json(entry));
    } catch (const Error&) {
    }
  }
  return roots;
}

}  // namespace

PruneReport Store::prune() {
  PruneReport report;
  IndexLock lock(root_);
  std::set<std::string> keep;
  for (const auto& r : walk(*this, index_roots(root_))) {
    if (r.descriptor.digest.starts_with("sha256:")) keep.insert(r.descriptor.digest.substr(7));
  }
  const Clock::WallTime cutoff = clock().wall_now() - options_.prune_grace;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(blobs_, ec)) {
    const std::string hex = entry.path().filename().string();
    if (!is_hex64(hex) || keep.contains(hex)) continue;
    struct stat st {};
    if (::lstat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (mtime_of(st) > cutoff) continue;
    if (::unlink(entry.path().c_str()) == 0) {
      report.removed_blobs.push_back("sha256:" + hex);
      report.removed_bytes += static_cast<std::uint64_t>(st.st_size);
    }
  }
  if (!report.removed_blobs.empty()) fsync_dir(blobs_);
  std::sort(report.removed_blobs.begin(), report.removed_blobs.end());
  report.removed_ingests = clean_ingests();
  return report;
}

VerifyReport Store::verify() const {
  VerifyReport report;
  std::set<std::string> corrupt;
  std::error_code ec;
  std::vector<char> buffer(kCopyBuffer);
  for (const auto& entry : fs::directory_iterator(blobs_, ec)) {
    const std::string hex = entry.path().filename().string();
    const std::string digest = "sha256:" + hex;
    if (!is_hex64(hex)) {
      corrupt.insert(digest);
      continue;
    }
    try {
      BlobReader r = open(digest);
      Sha256 h;
      for (std::size_t n; (n = r.read(buffer.data(), buffer.size())) > 0;)
        h.update(buffer.data(), n);
      if (h.finish_hex() != hex) corrupt.insert(digest);
    } catch (const Error&) {
      corrupt.insert(digest);
    }
  }
  if (ec) throw_errno(ec.value(), "listing", blobs_);
  for (const auto& [d, optional] : walk(*this, index_roots(root_))) {
    if (!d.digest.starts_with("sha256:") || !is_hex64(d.digest.substr(7))) {
      corrupt.insert(d.digest);
      continue;
    }
    const auto actual = size(d.digest);
    if (!actual) {
      if (!optional) report.missing.push_back(d.digest);
    } else if (static_cast<std::int64_t>(*actual) != d.size) {
      corrupt.insert(d.digest);
    }
  }
  report.corrupt.assign(corrupt.begin(), corrupt.end());
  return report;
}

}  // namespace stowage::oci
