#include "unit/oci_store/test_util.h"

#include <archive.h>
#include <archive_entry.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "base/error.h"
#include "base/sha256.h"
#include "oci/types.h"

namespace stowage::oci::testing {
namespace fs = std::filesystem;

TempDir::TempDir(std::string_view prefix) {
  std::string pattern = (fs::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

void put_octal(char* field, std::size_t width, std::uint64_t value) {
  // Zero-padded to width - 1 digits plus the NUL; values here always fit.
  std::string digits(width - 1, '0');
  for (std::size_t i = width - 1; i > 0 && value != 0; --i, value >>= 3) {
    digits[i - 1] = static_cast<char>('0' + (value & 7));
  }
  std::memcpy(field, digits.c_str(), width);
}

std::string header(std::string_view path, char type, std::uint64_t size, std::string_view link,
                   std::uint32_t mode) {
  char h[512] = {};
  if (!path.empty()) std::memcpy(h, path.data(), std::min<std::size_t>(path.size(), 100));
  put_octal(h + 100, 8, mode);
  put_octal(h + 108, 8, 0);
  put_octal(h + 116, 8, 0);
  if (size < (std::uint64_t{1} << 33)) {
    put_octal(h + 124, 12, size);
  } else {
    h[124] = static_cast<char>(0x80);
    std::uint64_t v = size;
    for (int i = 11; i > 0; --i) {
      h[124 + i] = static_cast<char>(v & 0xff);
      v >>= 8;
    }
  }
  put_octal(h + 136, 12, 0);
  std::memset(h + 148, ' ', 8);
  h[156] = type;
  if (!link.empty()) std::memcpy(h + 157, link.data(), std::min<std::size_t>(link.size(), 100));
  std::memcpy(h + 257,
              "ustar\0"
              "00",
              8);
  std::memcpy(h + 265, "root", 4);
  std::memcpy(h + 297, "root", 4);
  unsigned sum = 0;
  for (const char c : h) sum += static_cast<unsigned char>(c);
  std::snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  return std::string(h, sizeof h);
}

}  // namespace

TarBuilder& TarBuilder::raw(std::string_view path, char type, std::uint64_t declared_size,
                            std::string_view data, std::string_view link) {
  out_ += header(path, type, declared_size, link, type == '5' ? 0755 : 0644);
  out_.append(data);
  if (data.size() % 512 != 0) out_.append(512 - data.size() % 512, '\0');
  return *this;
}

TarBuilder& TarBuilder::file(std::string_view path, std::string_view content, std::uint32_t mode) {
  out_ += header(path, '0', content.size(), {}, mode);
  out_.append(content);
  if (content.size() % 512 != 0) out_.append(512 - content.size() % 512, '\0');
  return *this;
}

TarBuilder& TarBuilder::dir(std::string_view path) {
  return raw(path, '5', 0, {});
}
TarBuilder& TarBuilder::symlink(std::string_view path, std::string_view target) {
  return raw(path, '2', 0, {}, target);
}
TarBuilder& TarBuilder::hardlink(std::string_view path, std::string_view target) {
  return raw(path, '1', 0, {}, target);
}
TarBuilder& TarBuilder::device(std::string_view path, char type) {
  return raw(path, type, 0, {});
}
TarBuilder& TarBuilder::fifo(std::string_view path) {
  return raw(path, '6', 0, {});
}

std::string TarBuilder::finish() {
  out_.append(1024, '\0');
  return out_;
}

namespace {

la_ssize_t append_cb(archive*, void* client, const void* buf, size_t n) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

}  // namespace

std::string compress(std::string_view data, Compression compression) {
  if (compression == Compression::kNone) return std::string(data);
  std::string out;
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(),
                                                            &archive_write_free);
  int rc = ARCHIVE_OK;
  switch (compression) {
    case Compression::kGzip: rc = archive_write_add_filter_gzip(a.get()); break;
    case Compression::kZstd: rc = archive_write_add_filter_zstd(a.get()); break;
    case Compression::kBzip2: rc = archive_write_add_filter_bzip2(a.get()); break;
    case Compression::kXz: rc = archive_write_add_filter_xz(a.get()); break;
    case Compression::kNone: break;
  }
  if (rc != ARCHIVE_OK || archive_write_set_format_raw(a.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a.get(), 1) != ARCHIVE_OK ||
      archive_write_open(a.get(), &out, nullptr, &append_cb, nullptr) != ARCHIVE_OK) {
    throw std::runtime_error(std::string("compress: ") + archive_error_string(a.get()));
  }
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(),
                                                                  &archive_entry_free);
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_pathname(e.get(), "data");
  archive_entry_set_size(e.get(), static_cast<la_int64_t>(data.size()));
  if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK ||
      (!data.empty() && archive_write_data(a.get(), data.data(), data.size()) < 0) ||
      archive_write_close(a.get()) != ARCHIVE_OK) {
    throw std::runtime_error(std::string("compress: ") + archive_error_string(a.get()));
  }
  return out;
}

std::string gzip(std::string_view data) {
  return compress(data, Compression::kGzip);
}

std::string random_bytes(std::size_t size, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

std::string read_whole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_whole(const fs::path& path, std::string_view data) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string layer_tar(const std::map<std::string, std::string>& files) {
  TarBuilder b;
  for (const auto& [path, content] : files) b.file(path, content);
  return b.finish();
}

TestImage put_image(const Store& store, const TestImageSpec& spec) {
  using nlohmann::json;
  TestImage image;
  json layers = json::array();
  for (const auto& files : spec.layers) {
    std::string tar = layer_tar(files);
    image.diff_ids.push_back(sha256_digest(tar));
    const std::string blob = compress(tar, spec.compression);
    image.layer_digests.push_back(store.put(blob));
    std::string type;
    if (spec.oci) {
      type = spec.compression == Compression::kGzip   ? media::kOciLayerGzip
             : spec.compression == Compression::kZstd ? media::kOciLayerZstd
                                                      : media::kOciLayer;
    } else {
      type = spec.compression == Compression::kGzip
                 ? std::string(media::kDockerLayerGzip)
                 : std::string("application/vnd.docker.image.rootfs.diff.tar");
    }
    layers.push_back(
        {{"mediaType", type}, {"digest", image.layer_digests.back()}, {"size", blob.size()}});
    image.layer_tars.push_back(std::move(tar));
  }
  json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"created", "1970-01-01T00:00:00Z"},
                 {"config", json::object()},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", image.diff_ids}}}};
  if (!spec.labels.empty()) config["config"]["Labels"] = spec.labels;
  image.config_bytes = config.dump();
  image.config_digest = store.put(image.config_bytes);
  const json manifest = {{"schemaVersion", 2},
                         {"mediaType", spec.oci ? media::kOciManifest : media::kDockerManifest},
                         {"config",
                          {{"mediaType", spec.oci ? media::kOciConfig : media::kDockerConfig},
                           {"digest", image.config_digest},
                           {"size", image.config_bytes.size()}}},
                         {"layers", layers}};
  const std::string bytes = manifest.dump();
  image.manifest.media_type = spec.oci ? media::kOciManifest : media::kDockerManifest;
  image.manifest.digest = store.put(bytes);
  image.manifest.size = static_cast<std::int64_t>(bytes.size());
  return image;
}

Descriptor put_blob(const Store& store, std::string_view media_type, std::string_view bytes) {
  Descriptor d;
  d.media_type = std::string(media_type);
  d.digest = store.put(bytes);
  d.size = static_cast<std::int64_t>(bytes.size());
  return d;
}

void extract(const fs::path& archive_path, const fs::path& dir) {
  TarReader r = TarReader::open_file(archive_path);
  std::vector<char> buf(1 << 20);
  while (auto e = r.next()) {
    const fs::path target = dir / e->path;
    if (e->type == TarEntryType::kDirectory) {
      fs::create_directories(target);
      continue;
    }
    if (e->type != TarEntryType::kRegular) continue;
    fs::create_directories(target.parent_path());
    std::ofstream out(target, std::ios::binary | std::ios::trunc);
    for (std::size_t n; (n = r.read(buf.data(), buf.size())) > 0;) {
      out.write(buf.data(), static_cast<std::streamsize>(n));
    }
    if (!out) throw std::runtime_error("cannot write " + target.string());
  }
}

std::map<std::string, std::string> tar_files(const fs::path& archive_path) {
  std::map<std::string, std::string> out;
  TarReader r = TarReader::open_file(archive_path);
  char buf[65536];
  while (auto e = r.next()) {
    if (e->type != TarEntryType::kRegular) continue;
    std::string content;
    for (std::size_t n; (n = r.read(buf, sizeof buf)) > 0;) content.append(buf, n);
    out[e->path] = std::move(content);
  }
  return out;
}

}  // namespace stowage::oci::testing
