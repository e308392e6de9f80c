#include "support/image_seed.h"

#include <archive.h>
#include <archive_entry.h>
#include <fmt/format.h>
#include <sys/utsname.h>
#include <zlib.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"
#include "base/sha256.h"
#include "support/process.h"

namespace stowage::test {
namespace {

using nlohmann::json;

constexpr const char* kManifestType = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kConfigType = "application/vnd.oci.image.config.v1+json";
constexpr const char* kLayerTarType = "application/vnd.oci.image.layer.v1.tar";
constexpr const char* kLayerGzipType = "application/vnd.oci.image.layer.v1.tar+gzip";
constexpr const char* kRefNameAnnotation = "org.opencontainers.image.ref.name";

[[noreturn]] void fail(std::string message) {
  throw Error(Code::kInternal, std::move(message));
}

la_ssize_t append_to_string(struct archive* /*a*/, void* client, const void* buffer,
                            size_t length) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buffer), length);
  return static_cast<la_ssize_t>(length);
}

// A ustar archive of `files` plus their parent directories, owned by root, mtime 0, sorted.
std::string make_tar(const std::vector<LayerFile>& files) {
  std::set<std::string> dirs;
  for (const auto& f : files) {
    if (f.path.empty() || f.path.front() == '/' || f.path.back() == '/') {
      fail(fmt::format("building a test layer: invalid file path \"{}\"", f.path));
    }
    for (auto slash = f.path.find('/'); slash != std::string::npos;
         slash = f.path.find('/', slash + 1)) {
      dirs.insert(f.path.substr(0, slash));
    }
  }
  std::string out;
  std::unique_ptr<struct archive, decltype(&archive_write_free)> a(archive_write_new(),
                                                                   &archive_write_free);
  if (!a || archive_write_set_format_ustar(a.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a.get(), 1) != ARCHIVE_OK ||
      archive_write_open(a.get(), &out, nullptr, &append_to_string, nullptr) != ARCHIVE_OK) {
    fail(fmt::format("building a test layer: libarchive: {}",
                     a ? archive_error_string(a.get()) : "out of memory"));
  }
  const auto add = [&](const std::string& path, mode_t type, std::uint32_t mode,
                       const std::string* content) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(),
                                                                    &archive_entry_free);
    archive_entry_set_pathname(e.get(), type == AE_IFDIR ? (path + "/").c_str() : path.c_str());
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), mode);
    archive_entry_set_size(e.get(), content ? static_cast<la_int64_t>(content->size()) : 0);
    archive_entry_set_mtime(e.get(), 0, 0);
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    archive_entry_set_uname(e.get(), "root");
    archive_entry_set_gname(e.get(), "root");
    if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK ||
        (content && !content->empty() &&
         archive_write_data(a.get(), content->data(), content->size()) !=
             static_cast<la_ssize_t>(content->size()))) {
      fail(fmt::format("building a test layer: {}: {}", path, archive_error_string(a.get())));
    }
  };
  for (const auto& d : dirs) add(d, AE_IFDIR, 0755, nullptr);
  std::vector<const LayerFile*> sorted;
  sorted.reserve(files.size());
  for (const auto& f : files) sorted.push_back(&f);
  std::sort(sorted.begin(), sorted.end(),
            [](const LayerFile* x, const LayerFile* y) { return x->path < y->path; });
  for (const auto* f : sorted) add(f->path, AE_IFREG, f->mode, &f->content);
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    fail(fmt::format("building a test layer: {}", archive_error_string(a.get())));
  }
  return out;
}

// gzip with a zero mtime in the header, so the bytes depend on the input only.
std::string gzip(const std::string& data) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    fail("building a test layer: deflateInit2 failed");
  }
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    char buf[16384];
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = deflate(&zs, Z_FINISH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      deflateEnd(&zs);
      fail("building a test layer: deflate failed");
    }
    out.append(buf, sizeof buf - zs.avail_out);
  }
  deflateEnd(&zs);
  return out;
}

// Stores `data` as a blob of the layout; returns its digest.
std::string put_blob(const std::filesystem::path& layout, const std::string& data) {
  const std::string hex = sha256_hex(data);
  const auto path = layout / "blobs" / "sha256" / hex;
  if (!std::filesystem::exists(path)) write_text_file(path, data);
  return "sha256:" + hex;
}

json descriptor(const std::string& media_type, const std::string& digest, std::uint64_t size) {
  return json{{"mediaType", media_type}, {"digest", digest}, {"size", size}};
}

}  // namespace

std::string host_architecture() {
  utsname u{};
  if (::uname(&u) != 0) fail("uname failed");
  std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64" || m == "arm64") return "arm64";
  if (m.starts_with("armv")) return "arm";
  if (m == "i386" || m == "i686") return "386";
  return m;  // ppc64le, s390x, riscv64 are spelled the same
}

BuiltImage write_oci_layout(const std::filesystem::path& dir, const std::string& tag,
                            const ImageSpec& spec) {
  BuiltImage image;
  json layers = json::array();
  for (const auto& files : spec.layers) {
    const std::string tar = make_tar(files);
    image.diff_ids.push_back(sha256_digest(tar));
    const std::string blob = spec.gzip ? gzip(tar) : tar;
    image.layer_digests.push_back(put_blob(dir, blob));
    layers.push_back(descriptor(spec.gzip ? kLayerGzipType : kLayerTarType,
                                image.layer_digests.back(), blob.size()));
  }
  json config = {
      {"architecture", spec.architecture.empty() ? host_architecture() : spec.architecture},
      {"os", spec.os},
      {"created", "1970-01-01T00:00:00Z"},
      {"config", json::object()},
      {"rootfs", {{"type", "layers"}, {"diff_ids", image.diff_ids}}},
  };
  if (!spec.labels.empty()) config["config"]["Labels"] = spec.labels;
  if (!spec.entrypoint.empty()) config["config"]["Entrypoint"] = spec.entrypoint;
  if (!spec.cmd.empty()) config["config"]["Cmd"] = spec.cmd;
  const std::string config_bytes = config.dump();
  image.config_digest = put_blob(dir, config_bytes);

  const json manifest = {
      {"schemaVersion", 2},
      {"mediaType", kManifestType},
      {"config", descriptor(kConfigType, image.config_digest, config_bytes.size())},
      {"layers", layers},
  };
  const std::string manifest_bytes = manifest.dump();
  image.manifest_digest = put_blob(dir, manifest_bytes);
  image.manifest_size = manifest_bytes.size();
  image.manifest_media_type = kManifestType;

  write_text_file(dir / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  json index = {{"schemaVersion", 2}, {"manifests", json::array()}};
  if (const std::string existing = read_text_file(dir / "index.json"); !existing.empty()) {
    index = json::parse(existing);
  }
  json kept = json::array();
  for (const auto& m : index.value("manifests", json::array())) {
    const auto annotations = m.value("annotations", json::object());
    if (annotations.value(kRefNameAnnotation, "") != tag) kept.push_back(m);
  }
  json entry = descriptor(kManifestType, image.manifest_digest, image.manifest_size);
  entry["annotations"] = {{kRefNameAnnotation, tag}};
  kept.push_back(entry);
  index["manifests"] = kept;
  write_text_file(dir / "index.json", index.dump());
  return image;
}

std::optional<std::string> seed_unavailable_reason() {
  if (!find_executable("skopeo")) return "skopeo not found on PATH (Debian package skopeo)";
  return std::nullopt;
}

std::string seed_image(const std::string& registry_host, const std::string& repo,
                       const std::string& tag, const ImageSpec& spec) {
  TempDir dir("stowage-seed");
  const auto layout = dir / "layout";
  const BuiltImage image = write_oci_layout(layout, tag, spec);
  // Only this run's settings count: no machine registries.conf (mirrors, blocks), no
  // registries.d, no signature policy, no credentials.
  write_text_file(dir / "registries.conf", "");
  std::filesystem::create_directories(dir / "registries.d");
  const std::string destination = fmt::format("docker://{}/{}:{}", registry_host, repo, tag);
  RunOptions options;
  options.env = {{"CONTAINERS_REGISTRIES_CONF", (dir / "registries.conf").string()},
                 {"TMPDIR", dir.path().string()}};
  options.timeout = std::chrono::seconds(120);
  const RunResult r =
      run({"skopeo", "--insecure-policy", "--registries.d", (dir / "registries.d").string(), "copy",
           "--dest-tls-verify=false", "--dest-no-creds", "--digestfile", (dir / "digest").string(),
           fmt::format("oci:{}:{}", layout.string(), tag), destination},
          options);
  if (!r.ok()) {
    throw Error(Code::kUnavailable, fmt::format("seeding {}: {}", destination, r.describe()));
  }
  std::string digest = read_text_file(dir / "digest");
  while (!digest.empty() && (digest.back() == '\n' || digest.back() == ' ')) digest.pop_back();
  if (!digest.starts_with("sha256:")) {
    fail(fmt::format("seeding {}: skopeo wrote no digest (built {})", destination,
                     image.manifest_digest));
  }
  return digest;
}

}  // namespace stowage::test
