#include "oci/archive.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
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
using nlohmann::ordered_json;

namespace {

constexpr std::size_t kBuffer = std::size_t{1} << 20;
// Written data is handed to writeback in steps of this size, so that the fsync at commit waits
// for the tail only instead of the whole archive.
constexpr std::uint64_t kWritebackStep = std::uint64_t{8} << 20;
constexpr std::string_view kLayoutVersion = R"({"imageLayoutVersion":"1.0.0"})";
// containerd's uncompressed Docker layer type (no constant in types.h).
constexpr std::string_view kDockerLayerTar = "application/vnd.docker.image.rootfs.diff.tar";

[[noreturn]] void invalid(std::string message) {
  throw Error(Code::kInvalidArgument, std::move(message));
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

std::string hex_of(std::string_view digest) {
  return std::string(digest.substr(7));
}

// ---- tar output ------------------------------------------------------------------------------

// Writes a ustar stream into an AtomicFile. Data goes through a second descriptor of the temp file
// so that a streamed member's header can be patched with its size once known (pwrite) and blobs
// can be copied in the kernel (copy_file_range); writeback starts every kWritebackStep while
// writing; AtomicFile's commit() then fsyncs the inode, renames and fsyncs the directory, and its
// destructor removes the temp file after a failure.
class TarOut {
 public:
  explicit TarOut(const fs::path& path) : path_(path), file_(path, 0644), buffer_(kBuffer) {
    fd_ = ::open(file_.temp_path().c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0) throw_errno(errno, "opening", file_.temp_path());
  }
  ~TarOut() {
    if (fd_ >= 0) ::close(fd_);
  }
  TarOut(const TarOut&) = delete;
  TarOut& operator=(const TarOut&) = delete;

  void add_directory(const std::string& name) { put_header(name + "/", '5', 0755, 0); }

  void add_bytes(const std::string& name, std::string_view data) {
    put_header(name, '0', 0644, data.size());
    put(data);
    pad();
  }

  // Copies a whole blob, in the kernel where the filesystems allow.
  void add_blob(const std::string& name, BlobReader& blob) {
    put_header(name, '0', 0644, blob.size());
    flush();
    std::uint64_t left = blob.size();
    bool kernel_copy = true;
    while (left > 0) {
      ssize_t n = -1;
      if (kernel_copy) {
        n = ::copy_file_range(blob.fd(), nullptr, fd_, nullptr, left, 0);
        if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
                      errno == EBADF)) {
          kernel_copy = false;
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno(errno, "writing", path_);
      } else {
        n = static_cast<ssize_t>(blob.read(buffer_.data(), std::min<std::uint64_t>(left, kBuffer)));
        write_all(fd_, buffer_.data(), static_cast<std::size_t>(n), path_);
      }
      if (n == 0) {
        throw Error(Code::kDataLoss, fmt::format("writing {}: blob for {} ended {} bytes early",
                                                 path_.string(), name, left));
      }
      left -= static_cast<std::uint64_t>(n);
      flushed_ += static_cast<std::uint64_t>(n);
      offset_ += static_cast<std::uint64_t>(n);
      start_writeback();
    }
    pad();
  }

  // A member whose size is known only at its end: begin(), fill()/append(), end().
  void begin(const std::string& name) {
    header_offset_ = offset_;
    member_name_ = name;
    put_header(name, '0', 0644, 0);
    data_start_ = offset_;
  }
  // Lets `produce` write up to the free space of the buffer in place; returns what it produced.
  std::size_t fill(const std::function<std::size_t(char*, std::size_t)>& produce) {
    if (kBuffer - used_ < (kBuffer / 4)) flush();
    const std::size_t n = produce(buffer_.data() + used_, kBuffer - used_);
    used_ += n;
    offset_ += n;
    return n;
  }
  std::uint64_t end() {
    const std::uint64_t size = offset_ - data_start_;
    const auto header = make_header(member_name_, '0', 0644, size);
    if (header_offset_ >= flushed_) {
      std::memcpy(buffer_.data() + (header_offset_ - flushed_), header.data(), header.size());
    } else {
      std::size_t done = 0;
      while (done < header.size()) {
        const ssize_t n = ::pwrite(fd_, header.data() + done, header.size() - done,
                                   static_cast<off_t>(header_offset_ + done));
        if (n < 0) {
          if (errno == EINTR) continue;
          throw_errno(errno, "writing", path_);
        }
        done += static_cast<std::size_t>(n);
      }
    }
    pad();
    return size;
  }

  // The end-of-archive blocks, then fsync, rename and directory fsync.
  void finish() {
    static const char kZeros[1024] = {};
    put({kZeros, sizeof kZeros});
    flush();
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) throw_errno(errno, "closing", path_);
    file_.commit();
  }

 private:
  static std::array<char, 512> make_header(const std::string& name, char type, std::uint32_t mode,
                                           std::uint64_t size) {
    std::array<char, 512> h{};
    std::string_view prefix;
    std::string_view base = name;
    if (name.size() > 100) {
      // ustar splits long names at a '/' into prefix (≤ 155) and name (≤ 100).
      const auto slash = name.rfind('/', 155);
      if (slash == std::string::npos || name.size() - slash - 1 > 100 || slash == 0) {
        throw Error(Code::kInternal, fmt::format("tar member name too long: {}", name));
      }
      prefix = std::string_view(name).substr(0, slash);
      base = std::string_view(name).substr(slash + 1);
    }
    std::memcpy(h.data(), base.data(), base.size());
    const auto octal = [&](std::size_t at, std::size_t width, std::uint64_t value) {
      const std::uint64_t max = (std::uint64_t{1} << (3 * (width - 1))) - 1;
      if (value <= max) {
        for (std::size_t i = width - 1; i-- > 0;) {
          h[at + i] = static_cast<char>('0' + (value & 7));
          value >>= 3;
        }
        h[at + width - 1] = '\0';
      } else {  // GNU base-256, read by libarchive, GNU tar and Go's archive/tar
        h[at] = static_cast<char>(0x80);
        for (std::size_t i = width - 1; i > 0; --i) {
          h[at + i] = static_cast<char>(value & 0xff);
          value >>= 8;
        }
      }
    };
    octal(100, 8, mode);
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, size);
    octal(136, 12, 0);
    std::memset(h.data() + 148, ' ', 8);
    h[156] = type;
    std::memcpy(h.data() + 257,
                "ustar\0"
                "00",
                8);
    std::memcpy(h.data() + 265, "root", 4);
    std::memcpy(h.data() + 297, "root", 4);
    if (!prefix.empty()) std::memcpy(h.data() + 345, prefix.data(), prefix.size());
    unsigned sum = 0;
    for (const char c : h) sum += static_cast<unsigned char>(c);
    std::snprintf(h.data() + 148, 8, "%06o", sum & 0777777);
    h[155] = ' ';
    return h;
  }

  void put_header(const std::string& name, char type, std::uint32_t mode, std::uint64_t size) {
    const auto h = make_header(name, type, mode, size);
    put({h.data(), h.size()});
  }

  void pad() {
    static const char kZeros[512] = {};
    const std::size_t rem = static_cast<std::size_t>(offset_ % 512);
    if (rem != 0) put({kZeros, 512 - rem});
  }

  void put(std::string_view data) {
    if (data.empty()) return;
    if (used_ + data.size() > kBuffer) flush();
    if (data.size() >= kBuffer) {
      write_all(fd_, data.data(), data.size(), path_);
      flushed_ += data.size();
      start_writeback();
    } else {
      std::memcpy(buffer_.data() + used_, data.data(), data.size());
      used_ += data.size();
    }
    offset_ += data.size();
  }

  void flush() {
    if (used_ == 0) return;
    write_all(fd_, buffer_.data(), used_, path_);
    flushed_ += used_;
    used_ = 0;
    start_writeback();
  }

  // A hint to the kernel: a failure here shows again at the fsync.
  void start_writeback() {
    if (flushed_ - writeback_ < kWritebackStep) return;
    (void)::sync_file_range(fd_, static_cast<off_t>(writeback_),
                            static_cast<off_t>(flushed_ - writeback_), SYNC_FILE_RANGE_WRITE);
    writeback_ = flushed_;
  }

  fs::path path_;
  AtomicFile file_;
  int fd_ = -1;
  std::vector<char> buffer_;
  std::size_t used_ = 0;         // bytes in buffer_
  std::uint64_t flushed_ = 0;    // bytes in the file
  std::uint64_t writeback_ = 0;  // bytes handed to writeback
  std::uint64_t offset_ = 0;     // flushed_ + used_
  std::uint64_t header_offset_ = 0;
  std::uint64_t data_start_ = 0;
  std::string member_name_;
};

// ---- reading the store -----------------------------------------------------------------------

Compression sniff(BlobReader& blob) {
  char head[8] = {};
  std::size_t got = 0;
  while (got < sizeof head) {
    const ssize_t n = ::pread(blob.fd(), head + got, sizeof head - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  return detect_compression({head, got});
}

std::variant<ImageManifest, ImageIndex> read_manifest(const Store& store, const Descriptor& d) {
  try {
    return parse_manifest(store.read(d.digest, kMaxManifestBytes), d.media_type);
  } catch (const Error& e) {
    throw e.wrap(fmt::format("reading manifest {}", d.digest));
  }
}

ImageConfig read_config(const Store& store, const std::string& digest) {
  try {
    return parse_image_config(store.read(digest, kMaxConfigBytes));
  } catch (const Error& e) {
    throw e.wrap(fmt::format("reading config {}", digest));
  }
}

// Names for manifest.json RepoTags; digest-only names have no place there.
std::vector<std::string> repo_tags(const std::vector<std::string>& names, RepoTagStyle style) {
  std::vector<std::string> out;
  for (const auto& n : names) {
    Reference ref = Reference::parse_normalized(n).with_default_tag();
    if (!ref.tag) continue;
    ref.digest.reset();
    out.push_back(style == RepoTagStyle::kFamiliar ? ref.familiar() : ref.string());
  }
  return out;
}

std::string chain_id(const std::vector<std::string>& diff_ids) {
  std::string chain;
  for (const auto& d : diff_ids) {
    chain = chain.empty() ? d : sha256_digest(chain.append(" ").append(d));
  }
  return chain;
}

}  // namespace

// ---- docker-archive writer ---------------------------------------------------------------------

void write_docker_archive(const Store& store, const std::vector<ArchiveImage>& images,
                          const fs::path& out, const DockerArchiveOptions& options) {
  struct Item {
    std::string config_digest;
    std::string config_bytes;
    std::vector<std::string> diff_ids;
    std::vector<Descriptor> layers;
    std::vector<std::string> tags;
  };
  // Plan first (small reads only) so that a missing blob fails before a byte is written.
  std::vector<Item> items;
  std::map<std::string, std::size_t> by_config;
  for (const auto& image : images) {
    const std::string what =
        fmt::format("saving {}", image.names.empty() ? image.manifest.digest : image.names.front());
    const auto doc = read_manifest(store, image.manifest);
    const auto* manifest = std::get_if<ImageManifest>(&doc);
    if (manifest == nullptr) {
      invalid(
          fmt::format("{}: {} is an image index; a docker-archive holds single-platform "
                      "images, choose a platform first",
                      what, image.manifest.digest));
    }
    const std::string config_bytes = store.read(manifest->config.digest, kMaxConfigBytes);
    const ImageConfig config = parse_image_config(config_bytes);
    if (config.diff_ids.size() != manifest->layers.size()) {
      invalid(fmt::format("{}: the manifest has {} layers but the config {} diff_ids", what,
                          manifest->layers.size(), config.diff_ids.size()));
    }
    for (std::size_t i = 0; i < manifest->layers.size(); ++i) {
      if (!store.has(manifest->layers[i].digest)) {
        throw Error(Code::kNotFound, fmt::format("{}: layer {} ({}) is not in the store", what,
                                                 i + 1, manifest->layers[i].digest));
      }
    }
    auto [it, fresh] = by_config.emplace(manifest->config.digest, items.size());
    if (fresh) {
      items.push_back(
          {manifest->config.digest, config_bytes, config.diff_ids, manifest->layers, {}});
    }
    for (auto& t : repo_tags(image.names, options.repo_tags)) {
      auto& tags = items[it->second].tags;
      if (std::find(tags.begin(), tags.end(), t) == tags.end()) tags.push_back(std::move(t));
    }
  }

  TarOut tar(out);
  std::set<std::string> written;
  std::vector<char> plain(kBuffer);
  for (const auto& item : items) {
    for (std::size_t i = 0; i < item.layers.size(); ++i) {
      const std::string& diff_id = item.diff_ids[i];
      if (!written.insert(diff_id).second) continue;
      const std::string name = hex_of(diff_id) + ".tar";
      const Descriptor& layer = item.layers[i];
      BlobReader blob = store.open(layer.digest);
      const Compression compression = sniff(blob);
      if (compression == Compression::kNone) {
        if (layer.digest != diff_id) {
          throw Error(Code::kDataLoss,
                      fmt::format("saving config {}: layer {} is uncompressed but its digest {} "
                                  "is not its diffID {}",
                                  item.config_digest, i + 1, layer.digest, diff_id));
        }
        tar.add_blob(name, blob);
        continue;
      }
      DecompressReader plain_reader(
          compression, [&](char* buf, std::size_t n) { return blob.read(buf, n); },
          fmt::format("layer {}", layer.digest));
      Sha256 hash;
      tar.begin(name);
      while (tar.fill([&](char* buf, std::size_t n) {
        const std::size_t got = plain_reader.read(buf, n);
        hash.update(buf, got);
        return got;
      }) > 0) {
      }
      tar.end();
      const std::string actual = "sha256:" + hash.finish_hex();
      if (actual != diff_id) {
        throw Error(Code::kDataLoss,
                    fmt::format("saving config {}: layer {} ({}) decompresses to {}, but the "
                                "config says {}",
                                item.config_digest, i + 1, layer.digest, actual, diff_id));
      }
    }
    tar.add_bytes(hex_of(item.config_digest) + ".json", item.config_bytes);
  }

  ordered_json manifest_json = ordered_json::array();
  ordered_json repositories = ordered_json::object();
  for (const auto& item : items) {
    ordered_json layers = ordered_json::array();
    for (const auto& d : item.diff_ids) layers.push_back(hex_of(d) + ".tar");
    manifest_json.push_back({{"Config", hex_of(item.config_digest) + ".json"},
                             {"RepoTags", item.tags},
                             {"Layers", std::move(layers)}});
    if (item.diff_ids.empty()) continue;
    // Legacy loaders map repository → tag → top layer ID; the chain ID is unique per history.
    const std::string top = hex_of(chain_id(item.diff_ids));
    for (const auto& t : item.tags) {
      const Reference ref = Reference::parse_normalized(t);
      Reference repo = ref;
      repo.tag.reset();
      repositories[options.repo_tags == RepoTagStyle::kFamiliar ? repo.familiar() : repo.string()]
                  [*ref.tag] = top;
    }
  }
  tar.add_bytes("manifest.json", manifest_json.dump());
  tar.add_bytes("repositories", repositories.dump());
  tar.finish();
}

// ---- oci-archive writer ------------------------------------------------------------------------

void write_oci_archive(const Store& store, const std::vector<ArchiveImage>& images,
                       const fs::path& out) {
  std::vector<std::string> blobs;  // in write order, each once
  std::set<std::string> seen;
  json index_entries = json::array();
  ordered_json manifest_json = ordered_json::array();

  // Adds the tree under `d`; false (nothing added) when an optional subtree is incomplete.
  std::function<bool(const Descriptor&, bool)> add_tree = [&](const Descriptor& d,
                                                              bool required) -> bool {
    if (seen.contains(d.digest)) return true;
    if (!store.has(d.digest)) {
      if (!required) return false;
      throw Error(Code::kNotFound,
                  fmt::format("saving oci-archive: {} is not in the store", d.digest));
    }
    if (is_index_media_type(d.media_type) || is_manifest_media_type(d.media_type)) {
      const auto doc = read_manifest(store, d);
      if (const auto* index = std::get_if<ImageIndex>(&doc)) {
        for (const auto& child : index->manifests) add_tree(child, false);
      } else {
        const auto& manifest = std::get<ImageManifest>(doc);
        std::vector<const Descriptor*> parts = {&manifest.config};
        for (const auto& l : manifest.layers) parts.push_back(&l);
        for (const auto* p : parts) {
          if (!store.has(p->digest)) {
            if (!required) return false;
            throw Error(Code::kNotFound,
                        fmt::format("saving oci-archive: {} of manifest {} is not in the store",
                                    p->digest, d.digest));
          }
        }
        for (const auto* p : parts) {
          if (seen.insert(p->digest).second) blobs.push_back(p->digest);
        }
      }
    }
    if (seen.insert(d.digest).second) blobs.push_back(d.digest);
    return true;
  };

  for (const auto& image : images) {
    add_tree(image.manifest, true);
    Descriptor plain = image.manifest;
    plain.annotations.erase(std::string(kAnnotationImageName));
    plain.annotations.erase(std::string(kAnnotationRefName));
    if (image.names.empty()) index_entries.push_back(to_json(plain));
    for (const auto& name : image.names) {
      const Reference ref = Reference::parse_normalized(name).with_default_tag();
      Descriptor named = plain;
      named.annotations[std::string(kAnnotationImageName)] = ref.string();
      if (ref.tag) named.annotations[std::string(kAnnotationRefName)] = *ref.tag;
      index_entries.push_back(to_json(named));
    }
    if (is_manifest_media_type(image.manifest.media_type)) {
      const auto manifest = std::get<ImageManifest>(read_manifest(store, image.manifest));
      ordered_json layers = ordered_json::array();
      for (const auto& l : manifest.layers) layers.push_back("blobs/sha256/" + hex_of(l.digest));
      manifest_json.push_back({{"Config", "blobs/sha256/" + hex_of(manifest.config.digest)},
                               {"RepoTags", repo_tags(image.names, RepoTagStyle::kFull)},
                               {"Layers", std::move(layers)}});
    }
  }

  TarOut tar(out);
  tar.add_bytes("oci-layout", kLayoutVersion);
  tar.add_directory("blobs");
  tar.add_directory("blobs/sha256");
  for (const auto& digest : blobs) {
    BlobReader blob = store.open(digest);
    tar.add_blob("blobs/sha256/" + hex_of(digest), blob);
  }
  const json index = {{"schemaVersion", 2},
                      {"mediaType", std::string(media::kOciIndex)},
                      {"manifests", std::move(index_entries)}};
  tar.add_bytes("index.json", index.dump());
  if (!manifest_json.empty()) tar.add_bytes("manifest.json", manifest_json.dump());
  tar.finish();
}

// ---- reader ------------------------------------------------------------------------------------

namespace {

// One regular file of the archive, now a blob in the store.
struct Member {
  std::string digest;
  std::uint64_t size = 0;
  Compression compression = Compression::kNone;
  std::string plain_digest;  // digest of the decompressed bytes, when computed
  std::string plain_error;   // why decompressing failed, when it did
};

bool is_hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool is_metadata(std::string_view path) {
  return path == "manifest.json" || path == "index.json" || path == "oci-layout" ||
         path == "repositories";
}

// Legacy per-layer files of docker save ≤ 24 and podman: "<id>/VERSION", "<id>/json".
bool is_legacy_layer_metadata(std::string_view path) {
  const auto slash = path.find('/');
  if (slash == std::string_view::npos || path.find('/', slash + 1) != std::string_view::npos) {
    return false;
  }
  const std::string_view base = path.substr(slash + 1);
  return base == "VERSION" || base == "json";
}

std::string read_small(TarReader& tar, const std::string& path, std::uint64_t limit) {
  std::string out;
  char buf[65536];
  for (std::size_t n; (n = tar.read(buf, sizeof buf)) > 0;) {
    if (out.size() + n > limit) {
      invalid(fmt::format("{}: {} is larger than {} bytes", tar.name(), path, limit));
    }
    out.append(buf, n);
  }
  return out;
}

Member ingest_member(Store& store, TarReader& tar, const TarEntry& entry, std::vector<char>& buffer,
                     const ImportOptions& options) {
  std::optional<std::string> expected;
  bool layout_blob = false;
  if (entry.path.starts_with("blobs/sha256/") && is_hex64(entry.path.substr(13))) {
    expected = "sha256:" + entry.path.substr(13);
    layout_blob = true;
  }
  BlobWriter writer = store.ingest(expected, entry.size);
  // The first bytes tell the compression.
  char head[16];
  std::size_t head_size = 0;
  while (head_size < 8) {
    const std::size_t n = tar.read(head + head_size, sizeof head - head_size);
    if (n == 0) break;
    head_size += n;
  }
  writer.write({head, head_size});
  Member m;
  m.compression = detect_compression({head, head_size});

  // Layout blobs are named by their stored digest; diffIDs are checked when they are unpacked.
  // Other compressed members may be docker-archive layers: their diffID is computed in the same
  // pass, teeing the raw bytes into the store while the decompressor consumes them.
  if (m.compression != Compression::kNone && !layout_blob) {
    std::size_t head_pos = 0;
    bool source_failed = false;
    ByteSource source = [&](char* buf, std::size_t n) -> std::size_t {
      if (head_pos < head_size) {
        const std::size_t k = std::min(n, head_size - head_pos);
        std::memcpy(buf, head + head_pos, k);
        head_pos += k;
        return k;
      }
      try {
        const std::size_t k = tar.read(buf, n);
        writer.write({buf, k});
        return k;
      } catch (...) {
        source_failed = true;
        throw;
      }
    };
    try {
      DecompressReader plain(m.compression, source, fmt::format("{}: {}", tar.name(), entry.path),
                             options.layer_limits);
      Sha256 hash;
      for (std::size_t n; (n = plain.read(buffer.data(), buffer.size())) > 0;) {
        hash.update(buffer.data(), n);
      }
      m.plain_digest = "sha256:" + hash.finish_hex();
    } catch (const Error& e) {
      if (source_failed) throw;
      m.plain_error = e.what();
    }
  }
  for (std::size_t n; (n = tar.read(buffer.data(), buffer.size())) > 0;) {
    writer.write({buffer.data(), n});
  }
  m.size = writer.written();
  m.digest = writer.commit();
  if (m.compression == Compression::kNone) m.plain_digest = m.digest;
  return m;
}

// The plain digest of a compressed blob already in the store (members the single pass did not
// decompress: layout blobs referenced from a manifest.json).
std::string plain_digest_of(const Store& store, const std::string& digest,
                            const DecompressLimits& limits) {
  BlobReader blob = store.open(digest);
  const Compression c = sniff(blob);
  if (c == Compression::kNone) return digest;
  DecompressReader plain(
      c, [&](char* buf, std::size_t n) { return blob.read(buf, n); }, "blob " + digest, limits);
  Sha256 hash;
  std::vector<char> buffer(kBuffer);
  for (std::size_t n; (n = plain.read(buffer.data(), buffer.size())) > 0;) {
    hash.update(buffer.data(), n);
  }
  return "sha256:" + hash.finish_hex();
}

json parse_metadata(const std::string& text, const std::string& what) {
  if (json_nesting_exceeds(text, kMaxJsonDepth)) {
    invalid(fmt::format("{}: JSON nested deeper than {} levels", what, kMaxJsonDepth));
  }
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) invalid(what + ": not valid JSON");
  return doc;
}

struct Contents {
  std::string name;  // the archive, for messages
  std::map<std::string, Member> members;
  std::map<std::string, std::string> links;  // link path → path it names
  std::map<std::string, std::string> metadata;

  // The member a path in manifest.json names, following links.
  const Member& member(const std::string& raw, const std::string& what) const {
    std::string path;
    {
      // Clean the path as TarReader cleans entry paths; ".." and absolute paths name nothing.
      std::string_view rest = raw;
      if (rest.starts_with('/'))
        invalid(fmt::format("{}: {}: absolute path \"{}\"", name, what, raw));
      while (!rest.empty()) {
        const auto slash = rest.find('/');
        const std::string_view part = rest.substr(0, slash);
        rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
        if (part.empty() || part == ".") continue;
        if (part == "..")
          invalid(fmt::format("{}: {}: path \"{}\" contains \"..\"", name, what, raw));
        if (!path.empty()) path.push_back('/');
        path.append(part);
      }
    }
    for (int hops = 0; hops < 16; ++hops) {
      if (const auto it = members.find(path); it != members.end()) return it->second;
      const auto link = links.find(path);
      if (link == links.end()) break;
      path = link->second;
    }
    invalid(fmt::format("{}: {}: \"{}\" is not a file in the archive", name, what, raw));
  }
};

std::vector<std::string> oci_entry_names(const Descriptor& d, const std::string& what) {
  std::vector<std::string> out;
  const auto image_name = d.annotations.find(std::string(kAnnotationImageName));
  const auto ref_name = d.annotations.find(std::string(kAnnotationRefName));
  try {
    if (image_name != d.annotations.end()) {
      out.push_back(normalize_image_name(image_name->second));
    } else if (ref_name != d.annotations.end()) {
      // podman writes the full name here; Docker and containerd only the tag, which podman
      // then names localhost/<tag>:latest. Do the same.
      bool full = false;
      try {
        full = !Reference::parse(ref_name->second).domain.empty();
      } catch (const Error&) {
      }
      out.push_back(
          normalize_image_name(full ? ref_name->second : "localhost/" + ref_name->second));
    }
  } catch (const Error& e) {
    throw e.wrap(what);
  }
  return out;
}

void check_tree(const Store& store, const Descriptor& d, const std::string& what, int depth) {
  const auto size = store.size(d.digest);
  if (!size) {
    throw Error(Code::kNotFound, fmt::format("{}: blob {} is neither in the archive nor in the "
                                             "store",
                                             what, d.digest));
  }
  if (static_cast<std::int64_t>(*size) != d.size) {
    throw Error(Code::kDataLoss, fmt::format("{}: blob {} has {} bytes, the descriptor says {}",
                                             what, d.digest, *size, d.size));
  }
  if (!is_index_media_type(d.media_type) && !is_manifest_media_type(d.media_type)) return;
  if (depth > 8) invalid(fmt::format("{}: indexes nested too deep", what));
  const auto doc = read_manifest(store, d);
  if (const auto* index = std::get_if<ImageIndex>(&doc)) {
    // A saved multi-platform image may hold only some platforms: children may be missing.
    for (const auto& child : index->manifests) {
      if (store.has(child.digest)) check_tree(store, child, what, depth + 1);
    }
    return;
  }
  const auto& manifest = std::get<ImageManifest>(doc);
  check_tree(store, manifest.config, what, depth + 1);
  for (const auto& l : manifest.layers) check_tree(store, l, what, depth + 1);
}

void name_image(Store& store, const ImportedImage& image, const ImportOptions& options) {
  if (!options.tag) return;
  if (image.names.empty()) {
    store.add_unnamed(image.manifest);
    return;
  }
  for (const auto& n : image.names) store.tag(n, image.manifest);
}

ImportResult import_oci_layout(Store& store, const Contents& c, const ImportOptions& options) {
  const json layout = parse_metadata(c.metadata.at("oci-layout"), c.name + ": oci-layout");
  if (!layout.is_object() || layout.value("imageLayoutVersion", json()) != "1.0.0") {
    invalid(c.name + ": oci-layout: imageLayoutVersion must be \"1.0.0\"");
  }
  const auto index_text = c.metadata.find("index.json");
  if (index_text == c.metadata.end()) invalid(c.name + ": OCI layout without index.json");
  const ImageIndex index = [&] {
    try {
      return parse_image_index(index_text->second, media::kOciIndex);
    } catch (const Error& e) {
      throw e.wrap(c.name + ": index.json");
    }
  }();
  ImportResult result;
  result.format = ArchiveFormat::kOciLayout;
  std::map<std::string, std::size_t> by_digest;
  for (std::size_t i = 0; i < index.manifests.size(); ++i) {
    const Descriptor& d = index.manifests[i];
    const std::string what = fmt::format("{}: index.json manifests[{}]", c.name, i);
    check_tree(store, d, what, 0);
    auto [it, fresh] = by_digest.emplace(d.digest, result.images.size());
    if (fresh) {
      ImportedImage image;
      image.manifest = d;
      image.manifest.annotations.erase(std::string(kAnnotationImageName));
      image.manifest.annotations.erase(std::string(kAnnotationRefName));
      if (is_manifest_media_type(d.media_type)) {
        image.config_digest = std::get<ImageManifest>(read_manifest(store, d)).config.digest;
      }
      result.images.push_back(std::move(image));
    }
    for (auto& n : oci_entry_names(d, what)) {
      auto& names = result.images[it->second].names;
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(std::move(n));
    }
  }
  for (const auto& image : result.images) name_image(store, image, options);
  return result;
}

ImportResult import_docker_archive(Store& store, const Contents& c, const ImportOptions& options) {
  const json items = parse_metadata(c.metadata.at("manifest.json"), c.name + ": manifest.json");
  if (!items.is_array() || items.empty()) {
    invalid(c.name + ": manifest.json must be a non-empty list");
  }
  ImportResult result;
  result.format = ArchiveFormat::kDockerArchive;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const json& item = items[i];
    const std::string what = fmt::format("{}: manifest.json item {}", c.name, i);
    if (!item.is_object()) invalid(what + ": must be an object");
    const auto config_path = item.find("Config");
    if (config_path == item.end() || !config_path->is_string()) {
      invalid(what + ": \"Config\" must be a string");
    }
    const auto layer_paths = item.find("Layers");
    if (layer_paths == item.end() || !layer_paths->is_array()) {
      invalid(what + ": \"Layers\" must be a list");
    }
    std::vector<std::string> names;
    if (const auto tags = item.find("RepoTags"); tags != item.end() && !tags->is_null()) {
      if (!tags->is_array()) invalid(what + ": \"RepoTags\" must be a list");
      for (const auto& t : *tags) {
        if (!t.is_string()) invalid(what + ": \"RepoTags\" must be a list of strings");
        Reference ref;
        try {
          ref = Reference::parse_normalized(t.get<std::string>());
        } catch (const Error& e) {
          throw e.wrap(what + ": RepoTags");
        }
        if (!ref.tag || ref.digest) {
          invalid(fmt::format("{}: invalid tag \"{}\"", what, t.get<std::string>()));
        }
        names.push_back(ref.string());
      }
    }

    const std::string config_name = config_path->get<std::string>();
    const Member& config_member = c.member(config_name, what + ": Config");
    const std::string base = fs::path(config_name).filename().string();
    if (base.size() == 69 && base.ends_with(".json") && is_hex64(base.substr(0, 64)) &&
        config_member.digest != "sha256:" + base.substr(0, 64)) {
      throw Error(Code::kDataLoss, fmt::format("{}: config {} hashes to {}", what, config_name,
                                               config_member.digest));
    }
    const ImageConfig config = read_config(store, config_member.digest);
    if (config.diff_ids.size() != layer_paths->size()) {
      invalid(fmt::format("{}: {} layers but the config lists {} diff_ids", what,
                          layer_paths->size(), config.diff_ids.size()));
    }

    ImageManifest manifest;
    bool oci = false;
    for (std::size_t j = 0; j < layer_paths->size(); ++j) {
      const json& p = (*layer_paths)[j];
      if (!p.is_string()) invalid(what + ": \"Layers\" must be a list of strings");
      const std::string layer_what = fmt::format("{}: layer {}", what, j + 1);
      const Member& m = c.member(p.get<std::string>(), layer_what);
      std::string plain = m.plain_digest;
      if (plain.empty()) {
        if (!m.plain_error.empty()) invalid(layer_what + ": " + m.plain_error);
        plain = plain_digest_of(store, m.digest, options.layer_limits);
      }
      if (plain != config.diff_ids[j]) {
        throw Error(Code::kDataLoss, fmt::format("{}: invalid diffID: the layer is {}, the "
                                                 "config says {}",
                                                 layer_what, plain, config.diff_ids[j]));
      }
      Descriptor layer;
      layer.digest = m.digest;
      layer.size = static_cast<std::int64_t>(m.size);
      switch (m.compression) {
        case Compression::kNone: layer.media_type = kDockerLayerTar; break;
        case Compression::kGzip: layer.media_type = media::kDockerLayerGzip; break;
        case Compression::kZstd:
          layer.media_type = media::kOciLayerZstd;
          oci = true;
          break;
        default:
          invalid(fmt::format("{}: {} layers have no OCI media type", layer_what,
                              compression_name(m.compression)));
      }
      manifest.layers.push_back(std::move(layer));
    }
    // Schema2 as containerd synthesizes it; OCI when a layer has no Docker media type.
    manifest.media_type = oci ? media::kOciManifest : media::kDockerManifest;
    manifest.config.media_type = oci ? media::kOciConfig : media::kDockerConfig;
    manifest.config.digest = config_member.digest;
    manifest.config.size = static_cast<std::int64_t>(config_member.size);
    if (oci) {
      for (auto& l : manifest.layers) {
        if (l.media_type == kDockerLayerTar) l.media_type = media::kOciLayer;
        if (l.media_type == media::kDockerLayerGzip) l.media_type = media::kOciLayerGzip;
      }
    }
    const std::string bytes = serialize(manifest);
    ImportedImage image;
    image.manifest.media_type = manifest.media_type;
    image.manifest.digest = store.put(bytes);
    image.manifest.size = static_cast<std::int64_t>(bytes.size());
    image.config_digest = config_member.digest;
    image.names = std::move(names);
    name_image(store, image, options);
    result.images.push_back(std::move(image));
  }
  return result;
}

}  // namespace

ImportResult import_archive(Store& store, TarReader& tar, const ImportOptions& options) {
  Contents c;
  c.name = tar.name();
  std::vector<char> buffer(kBuffer);
  while (auto entry = tar.next()) {
    switch (entry->type) {
      case TarEntryType::kDirectory:
      case TarEntryType::kFifo: continue;
      case TarEntryType::kSymlink:
      case TarEntryType::kHardlink:
        c.members.erase(entry->path);
        c.metadata.erase(entry->path);
        c.links[entry->path] = entry->link_path;
        continue;
      case TarEntryType::kRegular: break;
    }
    c.links.erase(entry->path);
    if (is_metadata(entry->path)) {
      c.metadata[entry->path] = read_small(tar, entry->path, options.max_metadata_size);
      continue;
    }
    if (is_legacy_layer_metadata(entry->path)) continue;
    c.members[entry->path] = ingest_member(store, tar, *entry, buffer, options);
  }
  if (c.metadata.contains("oci-layout")) return import_oci_layout(store, c, options);
  if (c.metadata.contains("manifest.json")) return import_docker_archive(store, c, options);
  invalid(c.name + ": not an image archive: neither oci-layout nor manifest.json found");
}

ImportResult import_archive(Store& store, const fs::path& file, const ImportOptions& options) {
  TarReader tar = TarReader::open_file(file, options.limits);
  return import_archive(store, tar, options);
}

}  // namespace stowage::oci
