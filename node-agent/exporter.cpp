#include "node-agent/exporter.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>
#include <variant>

#include "base/error.h"
#include "base/files.h"
#include "base/sha256.h"
#include "oci/archive.h"
#include "oci/auth.h"
#include "oci/copy.h"
#include "oci/manifest.h"
#include "oci/resolve.h"
#include "reference/reference.h"
#include "registries/conf.h"

namespace stowage::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::size_t kCopyChunk = std::size_t{1} << 20;

// The repository and digest of "name@digest", normalized; nullopt when malformed.
std::optional<std::pair<std::string, std::string>> split_entry(std::string_view entry) {
  try {
    const Reference ref = Reference::parse_normalized(entry);
    if (!ref.digest) return std::nullopt;
    return std::make_pair(ref.name(), *ref.digest);
  } catch (const Error&) {
    return std::nullopt;
  }
}

// "host/repo:tag" of a planned name, without a digest; nullopt when it has no tag.
std::optional<std::string> tag_name(const Reference& ref) {
  if (!ref.tag) return std::nullopt;
  return ref.name() + ":" + *ref.tag;
}

struct RecordEntry {
  std::string key;
  std::string sha256;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
};

std::map<std::string, RecordEntry> load_record(const fs::path& path) {
  std::map<std::string, RecordEntry> out;
  std::optional<std::string> text;
  try {
    text = read_file(path);
  } catch (const Error& e) {
    spdlog::warn("reading export record {}: {}; files will be written again", path.string(),
                 e.what());
    return out;
  }
  if (!text) return out;
  try {
    const json j = json::parse(*text);
    for (const auto& [name, v] : j.at("files").items()) {
      out[name] = RecordEntry{.key = v.at("key").get<std::string>(),
                              .sha256 = v.at("sha256").get<std::string>(),
                              .size = v.at("sizeBytes").get<std::uint64_t>(),
                              .mtime_ns = v.at("mtimeNs").get<std::int64_t>()};
    }
  } catch (const std::exception& e) {
    spdlog::warn("export record {} does not parse ({}); files will be written again", path.string(),
                 e.what());
    out.clear();
  }
  return out;
}

void save_record(const fs::path& path, const std::map<std::string, RecordEntry>& record) {
  json files = json::object();
  for (const auto& [name, e] : record) {
    files[name] = {
        {"key", e.key}, {"sha256", e.sha256}, {"sizeBytes", e.size}, {"mtimeNs", e.mtime_ns}};
  }
  atomic_write_file(path, json{{"files", files}}.dump(2) + "\n", 0600);
}

struct FileFacts {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
};

// Size and modification time of a regular file (not followed through a symlink); nullopt else.
std::optional<FileFacts> file_facts(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return FileFacts{.size = static_cast<std::uint64_t>(st.st_size),
                   .mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                               st.st_mtim.tv_nsec};
}

std::string hash_file(const fs::path& path, std::uint64_t& size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_errno(errno, "opening", path);
  Sha256 hash;
  std::string buffer(kCopyChunk, '\0');
  size = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw_errno(err, "reading", path);
    }
    if (n == 0) break;
    hash.update(buffer.data(), static_cast<std::size_t>(n));
    size += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  return hash.finish_hex();
}

// Removes `prefix`* regular files of `dir`; returns how many.
int remove_temps(const fs::path& dir, const std::string& prefix) {
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    if (fs::remove(it->path(), type_ec)) ++removed;
  }
  return removed;
}

std::string containerd_blob_path(const fs::path& blobs, std::string_view digest) {
  return (blobs / std::string(digest.substr(std::string_view("sha256:").size()))).string();
}

bool is_sha256(std::string_view digest) {
  return digest.size() == 71 && digest.substr(0, 7) == "sha256:" &&
         std::all_of(digest.begin() + 7, digest.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

std::string_view blob_source_name(BlobSource source) {
  switch (source) {
    case BlobSource::kAgentStore: return "store";
    case BlobSource::kContainerd: return "containerd";
    case BlobSource::kRegistry: return "registry";
  }
  return "unknown";
}

std::string_view export_outcome_name(ExportOutcome outcome) {
  switch (outcome) {
    case ExportOutcome::kWritten: return "Written";
    case ExportOutcome::kUnchanged: return "Unchanged";
    case ExportOutcome::kPending: return "Pending";
    case ExportOutcome::kFailed: return "Failed";
  }
  return "Unknown";
}

void check_export_file_name(std::string_view name) {
  auto refuse = [&](std::string_view why) {
    std::string shown(name.substr(0, 80));
    std::replace(shown.begin(), shown.end(), '\0', '?');
    throw Error(Code::kInvalidArgument,
                "export file name \"" + shown + "\" " + std::string(why) +
                    ": it must be a plain file name inside the export directory");
  };
  if (name.empty()) refuse("is empty");
  if (name == "." || name == "..") refuse("names a directory");
  if (name.find('/') != std::string_view::npos) refuse("contains '/'");
  if (name.find('\0') != std::string_view::npos) refuse("contains a NUL byte");
  if (name.front() == '.') refuse("is hidden (starts with '.')");
  if (name.size() > 255) refuse("is longer than 255 bytes");
}

std::string containerd_root_from_config(std::string_view config_toml,
                                        std::string_view source_name) {
  toml::table table;
  try {
    table = toml::parse(config_toml, source_name);
  } catch (const toml::parse_error& e) {
    throw Error(Code::kInvalidArgument, "parsing containerd config " + std::string(source_name) +
                                            ": " + std::string(e.description()));
  }
  const auto node = table["root"];
  if (!node) return std::string(kContainerdDefaultRoot);
  const auto root = node.value<std::string>();
  if (!root || root->empty() || root->front() != '/') {
    throw Error(Code::kInvalidArgument,
                "containerd config " + std::string(source_name) + ": root is not an absolute path");
  }
  return *root;
}

ExportPlan plan_export(const api::NodeExport& exp, const std::vector<HeldImage>& held) {
  ExportPlan plan;
  try {
    check_export_file_name(exp.file_name);
  } catch (const Error& e) {
    plan.readiness = ExportReadiness::kFailed;
    plan.message = e.what();
    return plan;
  }
  if (exp.images.empty()) {
    plan.readiness = ExportReadiness::kFailed;
    plan.message = "export names no images";
    return plan;
  }
  std::vector<std::string> pending;
  for (const auto& entry : exp.images) {
    const auto split = split_entry(entry);
    if (!split) {
      plan.readiness = ExportReadiness::kFailed;
      plan.message = "export image \"" + entry + "\" is not of the form name@digest";
      return plan;
    }
    ExportImage image{.repository = split->first, .digest = split->second};
    if (std::any_of(plan.images.begin(), plan.images.end(), [&](const ExportImage& i) {
          return i.repository == image.repository && i.digest == image.digest;
        })) {
      continue;
    }
    bool planned = false;
    bool present = true;
    std::string why;
    for (const auto& h : held) {
      if (h.digest != image.digest) continue;
      Reference ref;
      try {
        ref = Reference::parse_normalized(h.name);
      } catch (const Error&) {
        continue;
      }
      if (ref.name() != image.repository) continue;
      planned = true;
      if (h.state != api::ImageState::kPresent) {
        present = false;
        why = h.state ? std::string(api::to_string(*h.state)) : std::string("not checked yet");
        if (!h.message.empty()) why += ": " + h.message;
      }
      if (const auto tag = tag_name(ref)) {
        if (std::find(image.names.begin(), image.names.end(), *tag) == image.names.end()) {
          image.names.push_back(*tag);
        }
      }
      for (const auto& s : h.pull_secrets) {
        if (std::find(image.pull_secrets.begin(), image.pull_secrets.end(), s) ==
            image.pull_secrets.end()) {
          image.pull_secrets.push_back(s);
        }
      }
    }
    if (!planned) {
      plan.readiness = ExportReadiness::kFailed;
      plan.message = "export image " + entry + " is not among the node's planned images";
      return plan;
    }
    std::sort(image.names.begin(), image.names.end());
    if (!present) pending.push_back(entry + " (" + why + ")");
    plan.images.push_back(std::move(image));
  }
  if (!pending.empty()) {
    plan.readiness = ExportReadiness::kPending;
    plan.message = "waiting for images to be present on the node: ";
    for (std::size_t i = 0; i < pending.size(); ++i) {
      if (i > 0) plan.message += ", ";
      plan.message += pending[i];
    }
  }
  return plan;
}

std::vector<BlobSource> plan_blob_sources(const std::vector<std::string>& blobs,
                                          const std::set<std::string>& in_store,
                                          const std::set<std::string>& in_containerd) {
  const bool containerd_whole =
      !blobs.empty() && std::all_of(blobs.begin(), blobs.end(), [&](const std::string& d) {
        return in_containerd.contains(d);
      });
  std::vector<BlobSource> out;
  out.reserve(blobs.size());
  for (const auto& d : blobs) {
    if (in_store.contains(d)) {
      out.push_back(BlobSource::kAgentStore);
    } else if (containerd_whole) {
      out.push_back(BlobSource::kContainerd);
    } else {
      out.push_back(BlobSource::kRegistry);
    }
  }
  return out;
}

std::string export_content_key(api::ExportFormat format, const std::vector<ExportImage>& images) {
  json list = json::array();
  for (const auto& i : images) list.push_back({{"digest", i.digest}, {"names", i.names}});
  return json{{"format", std::string(api::to_string(format))}, {"images", list}}.dump();
}

// --- Exporter ----------------------------------------------------------------------------------

// An image whose blobs are all in the agent's store.
struct Exporter::Prepared {
  oci::Descriptor top;    // the manifest or index the node holds
  oci::Descriptor image;  // the platform's manifest (== top for a manifest)
};

Exporter::Exporter(ExporterOptions options, Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  if (options_.export_dir.empty()) throw Error(Code::kInvalidArgument, "exporter: no export dir");
  if (options_.store_dir.empty()) throw Error(Code::kInvalidArgument, "exporter: no store dir");
  std::error_code ec;
  fs::create_directories(options_.export_dir, ec);
  if (ec) {
    throw Error(Code::kPermissionDenied,
                "creating export dir " + options_.export_dir.string() + ": " + ec.message());
  }
  fs::create_directories(options_.store_dir, ec);
  if (ec) {
    throw Error(Code::kPermissionDenied,
                "creating store dir " + options_.store_dir.string() + ": " + ec.message());
  }
  store_ = std::make_unique<oci::Store>(options_.store_dir / kContentDir,
                                        oci::StoreOptions{.clock = &clock_});
  // Only this agent writes here, one export at a time: every temp file is an interrupted write.
  if (const int n = remove_temps(options_.export_dir, std::string(kTempPrefix)); n > 0) {
    spdlog::info("export dir={} removed {} temp files of interrupted writes",
                 options_.export_dir.string(), n);
  }
}

Exporter::~Exporter() = default;

fs::path Exporter::record_path() const {
  return options_.store_dir / kExportRecordFile;
}

fs::path Exporter::containerd_content() const {
  std::string root(kContainerdDefaultRoot);
  const fs::path config = options_.host_root / "etc/containerd/config.toml";
  if (const auto text = read_file(config)) {
    root = containerd_root_from_config(*text, config.string());
  }
  return options_.host_root / fs::path(root).relative_path() / kContainerdContentDir / "blobs" /
         "sha256";
}

void Exporter::fetch_from_registry(const ExportImage& image, ExportResult& result,
                                   std::stop_token stop) {
  const std::string what = image.repository + "@" + image.digest;
  if (options_.transport == nullptr) {
    throw Error(Code::kUnavailable, "the node's content stores do not hold every blob of " + what +
                                        ", and no registry access is configured");
  }
  const fs::path etc = options_.host_root / "etc/containers";
  const registries::Config config =
      registries::load_config(etc / "registries.conf", etc / "registries.conf.d", false);
  const Reference ref = Reference::parse_normalized(what);
  const std::vector<oci::PullSource> sources = oci::pull_sources(ref, config);

  auto keyring = std::make_shared<oci::DockerKeyring>();
  for (const auto& payload : image.pull_secrets) keyring->add_dockerconfigjson(payload);
  oci::ConnectOptions connect;
  const fs::path certs = etc / "certs.d";
  if (fs::is_directory(certs)) connect.certs_dir = certs.string();
  const std::string path = ref.path;
  connect.credentials = [keyring, path](std::string_view registry) {
    const auto matches = keyring->lookup(std::string(registry) + "/" + path);
    return matches.empty() ? oci::Credentials{} : matches.front().credentials;
  };
  connect.retry.max_attempts = std::max(1, options_.registry_attempts);
  connect.stop = stop;
  oci::RegistryConnector connector(*options_.transport, clock_, std::move(connect));

  oci::PullOptions pull;
  pull.platform = options_.platform;
  pull.name = image.names.empty() ? what : image.names.front();
  std::uint64_t bytes = 0;
  pull.progress = [&bytes](const oci::BlobProgress& p) {
    if (p.finished && !p.skipped) bytes += p.total;
  };
  const oci::PullResult r = oci::pull_image(*store_, sources, connector, pull);
  result.blob_bytes[BlobSource::kRegistry] += bytes;
  spdlog::info("export image={} fetched from registry location={}{} bytes={}", what,
               r.source_location, r.from_mirror ? " (mirror)" : "", bytes);
}

Exporter::Prepared Exporter::prepare_image(const ExportImage& image, ExportResult& result,
                                           std::stop_token stop) {
  const std::string what = image.repository + "@" + image.digest;
  if (!is_sha256(image.digest)) {
    throw Error(Code::kInvalidArgument, "exporting " + what + ": not a sha256 digest");
  }
  fs::path containerd;
  try {
    containerd = containerd_content();
  } catch (const Error& e) {
    spdlog::warn("export image={}: containerd content store not used: {}", what, e.what());
  }
  auto in_containerd = [&](std::string_view digest) {
    std::error_code ec;
    return !containerd.empty() && is_sha256(digest) &&
           fs::is_regular_file(containerd_blob_path(containerd, digest), ec);
  };

  // A manifest or index from the agent's store, else from containerd (verified), else nullopt.
  struct Doc {
    std::string bytes;
    std::string media_type;
  };
  auto local_doc = [&](const std::string& digest) -> std::optional<Doc> {
    if (store_->has(digest)) return Doc{store_->read(digest, oci::kMaxManifestBytes), ""};
    if (!in_containerd(digest)) return std::nullopt;
    const fs::path p = containerd_blob_path(containerd, digest);
    const auto facts = file_facts(p);
    if (!facts || facts->size > oci::kMaxManifestBytes) return std::nullopt;
    auto bytes = read_file(p);
    if (!bytes || oci::manifest_digest(*bytes) != digest) {
      spdlog::warn("export image={}: containerd blob {} does not match its digest; not used", what,
                   digest);
      return std::nullopt;
    }
    return Doc{std::move(*bytes), ""};
  };

  struct Layout {
    Doc top;
    oci::Descriptor top_desc;
    std::optional<Doc> image;  // the platform's manifest of an index
    oci::Descriptor image_desc;
    std::vector<oci::Descriptor> blobs;  // config and layers
  };
  auto discover = [&]() -> std::optional<Layout> {
    Layout l;
    auto top = local_doc(image.digest);
    if (!top) return std::nullopt;
    l.top = std::move(*top);
    auto doc = oci::parse_manifest(l.top.bytes);
    l.top_desc.digest = image.digest;
    l.top_desc.size = static_cast<std::int64_t>(l.top.bytes.size());
    oci::ImageManifest manifest;
    if (const auto* index = std::get_if<oci::ImageIndex>(&doc)) {
      l.top_desc.media_type = index->media_type;
      const oci::Platform wanted = options_.platform ? *options_.platform : oci::host_platform();
      const oci::Descriptor& chosen = oci::choose_platform(*index, wanted);
      auto child = local_doc(chosen.digest);
      if (!child) return std::nullopt;
      manifest = oci::parse_image_manifest(child->bytes, chosen.media_type);
      l.image = std::move(*child);
      l.image_desc = chosen;
      l.image_desc.platform.reset();
      l.image_desc.annotations.clear();
      l.image_desc.size = static_cast<std::int64_t>(l.image->bytes.size());
      if (l.image_desc.media_type.empty()) l.image_desc.media_type = manifest.media_type;
    } else {
      manifest = std::get<oci::ImageManifest>(doc);
      l.top_desc.media_type = manifest.media_type;
      l.image_desc = l.top_desc;
    }
    l.blobs.push_back(manifest.config);
    for (const auto& layer : manifest.layers) l.blobs.push_back(layer);
    return l;
  };

  std::optional<Layout> layout = discover();
  std::vector<BlobSource> sources;
  std::vector<std::string> digests;
  auto plan = [&] {
    digests.clear();
    digests.push_back(layout->top_desc.digest);
    if (layout->image) digests.push_back(layout->image_desc.digest);
    for (const auto& b : layout->blobs) digests.push_back(b.digest);
    std::set<std::string> store_has;
    std::set<std::string> containerd_has;
    for (const auto& d : digests) {
      if (store_->has(d)) store_has.insert(d);
      if (in_containerd(d)) containerd_has.insert(d);
    }
    sources = plan_blob_sources(digests, store_has, containerd_has);
  };
  auto needs_registry = [&] {
    return std::find(sources.begin(), sources.end(), BlobSource::kRegistry) != sources.end();
  };
  if (layout) plan();

  bool fetched = false;
  if (layout && !needs_registry()) {
    // Copy what the store lacks from containerd, verified on the way in.
    try {
      std::size_t blob_index = 0;
      for (std::size_t i = 0; i < digests.size(); ++i) {
        const bool is_doc = i < (layout->image ? 2u : 1u);
        const oci::Descriptor* desc = is_doc ? nullptr : &layout->blobs[blob_index++];
        if (sources[i] != BlobSource::kContainerd) continue;
        if (stop.stop_requested()) throw Error(Code::kUnavailable, "stopping");
        if (is_doc) {
          const Doc& d = i == 0 ? layout->top : *layout->image;
          store_->put(d.bytes, digests[i]);
          result.blob_bytes[BlobSource::kContainerd] += d.bytes.size();
          continue;
        }
        const fs::path p = containerd_blob_path(containerd, desc->digest);
        const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw_errno(errno, "opening", p);
        try {
          oci::BlobWriter w = store_->ingest(
              desc->digest, static_cast<std::uint64_t>(std::max<std::int64_t>(desc->size, 0)));
          std::string buffer(kCopyChunk, '\0');
          for (;;) {
            if (stop.stop_requested()) throw Error(Code::kUnavailable, "stopping");
            const ssize_t n = ::read(fd, buffer.data(), buffer.size());
            if (n < 0) {
              if (errno == EINTR) continue;
              throw_errno(errno, "reading", p);
            }
            if (n == 0) break;
            w.write(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
          }
          w.commit();
        } catch (...) {
          ::close(fd);
          throw;
        }
        ::close(fd);
        result.blob_bytes[BlobSource::kContainerd] +=
            static_cast<std::uint64_t>(std::max<std::int64_t>(desc->size, 0));
      }
    } catch (const Error& e) {
      if (stop.stop_requested() || e.code() != Code::kDataLoss) throw;
      // containerd's copy is not what its name says: never trusted, the registry decides.
      spdlog::warn("export image={}: containerd content does not verify ({}); using the registry",
                   what, e.what());
      fetch_from_registry(image, result, stop);
      fetched = true;
    }
  } else {
    fetch_from_registry(image, result, stop);
    fetched = true;
  }
  if (fetched) {
    layout = discover();
    if (!layout) {
      throw Error(Code::kInternal, "exporting " + what + ": pulled, but not in the store");
    }
    plan();
    if (needs_registry()) {
      throw Error(Code::kInternal,
                  "exporting " + what + ": pulled, but blobs are still missing from the store");
    }
  }
  // Children before parents, then the names that keep the image in the store.
  if (layout->image && !store_->has(layout->image_desc.digest)) {
    store_->put(layout->image->bytes, layout->image_desc.digest);
  }
  if (!store_->has(layout->top_desc.digest)) store_->put(layout->top.bytes, image.digest);
  if (image.names.empty()) {
    store_->add_unnamed(layout->top_desc);
  } else {
    for (const auto& name : image.names) store_->tag(name, layout->top_desc);
  }
  return Prepared{.top = layout->top_desc, .image = layout->image_desc};
}

ExportResult Exporter::run(const api::NodeExport& exp, const std::vector<HeldImage>& held,
                           std::stop_token stop) {
  ExportResult result;
  result.status.file_name = exp.file_name;
  result.status.format = exp.format;
  const ExportPlan plan = plan_export(exp, held);
  if (plan.readiness == ExportReadiness::kFailed) {
    result.outcome = ExportOutcome::kFailed;
    result.status.state = api::ExportState::kFailed;
    result.status.message = plan.message;
    return result;
  }
  if (plan.readiness == ExportReadiness::kPending) {
    result.outcome = ExportOutcome::kPending;
    result.status.state = api::ExportState::kPending;
    result.status.message = plan.message;
    return result;
  }
  const fs::path path = options_.export_dir / exp.file_name;
  const std::string key = export_content_key(exp.format, plan.images);
  try {
    auto record = load_record(record_path());
    if (const auto it = record.find(exp.file_name); it != record.end() && it->second.key == key) {
      const auto facts = file_facts(path);
      if (facts && facts->size == it->second.size && facts->mtime_ns == it->second.mtime_ns) {
        result.outcome = ExportOutcome::kUnchanged;
        result.status.state = api::ExportState::kWritten;
        result.status.size_bytes = static_cast<std::int64_t>(it->second.size);
        result.status.sha256 = it->second.sha256;
        return result;
      }
    }
    remove_temps(options_.export_dir, std::string(kTempPrefix) + exp.file_name + "-");

    std::vector<oci::ArchiveImage> images;
    for (const auto& image : plan.images) {
      if (stop.stop_requested()) break;
      try {
        const Prepared p = prepare_image(image, result, stop);
        images.push_back(oci::ArchiveImage{
            .manifest = exp.format == api::ExportFormat::kDockerArchive ? p.image : p.top,
            .names = image.names});
      } catch (const Error& e) {
        if (stop.stop_requested()) break;
        throw e.wrap(image.repository + "@" + image.digest);
      }
    }
    if (stop.stop_requested()) {
      result.stopped = true;
      result.outcome = ExportOutcome::kPending;
      result.status.state = api::ExportState::kPending;
      result.status.message = "interrupted: the agent is stopping";
      return result;
    }
    // The file name was checked; a symlink in its place is replaced, never followed.
    if (exp.format == api::ExportFormat::kDockerArchive) {
      oci::write_docker_archive(*store_, images, path);
    } else {
      oci::write_oci_archive(*store_, images, path);
    }
    std::uint64_t size = 0;
    const std::string sha = hash_file(path, size);
    const auto facts = file_facts(path);
    record = load_record(record_path());
    record[exp.file_name] = RecordEntry{
        .key = key, .sha256 = sha, .size = size, .mtime_ns = facts ? facts->mtime_ns : 0};
    save_record(record_path(), record);
    result.outcome = ExportOutcome::kWritten;
    result.bytes_written = size;
    result.status.state = api::ExportState::kWritten;
    result.status.size_bytes = static_cast<std::int64_t>(size);
    result.status.sha256 = sha;
  } catch (const Error& e) {
    result.outcome = ExportOutcome::kFailed;
    result.retry = e.code() != Code::kInvalidArgument && e.code() != Code::kPermissionDenied;
    result.status.state = api::ExportState::kFailed;
    result.status.message = "writing " + exp.file_name + ": " + e.what();
  } catch (const std::exception& e) {
    result.outcome = ExportOutcome::kFailed;
    result.retry = true;
    result.status.state = api::ExportState::kFailed;
    result.status.message = "writing " + exp.file_name + ": " + e.what();
  }
  return result;
}

void Exporter::retain(const std::vector<ExportImage>& keep) {
  std::set<std::string> wanted;
  for (const auto& i : keep) wanted.insert(i.digest);
  bool removed = false;
  for (const auto& entry : store_->list()) {
    if (wanted.contains(entry.descriptor.digest)) continue;
    store_->remove_roots(entry.descriptor.digest);
    removed = true;
  }
  const oci::PruneReport r = store_->prune();
  if (removed || !r.removed_blobs.empty()) {
    spdlog::info("export store pruned blobs={} bytes={}", r.removed_blobs.size(), r.removed_bytes);
  }
}

}  // namespace stowage::agent
