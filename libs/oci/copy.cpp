#include "oci/copy.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <variant>

#include "base/error.h"
#include "base/parallel.h"
#include "oci/manifest.h"

namespace stowage::oci {
namespace {

// Serializes progress calls from worker threads.
class ProgressSink {
 public:
  explicit ProgressSink(const ProgressCallback& callback) : callback_(callback) {}

  void report(const BlobProgress& p) {
    if (!callback_) return;
    std::lock_guard lock(mu_);
    callback_(p);
  }
  bool enabled() const { return static_cast<bool>(callback_); }

 private:
  const ProgressCallback& callback_;
  std::mutex mu_;  // serializes callback_ calls
};

// A stop source that also stops when `outer` does.
struct LinkedStop {
  explicit LinkedStop(std::stop_token outer) : link(outer, [this] { source.request_stop(); }) {}
  std::stop_source source;
  std::stop_callback<std::function<void()>> link;
};

Descriptor descriptor_of(std::string_view bytes, std::string media_type) {
  Descriptor d;
  d.media_type = std::move(media_type);
  d.digest = manifest_digest(bytes);
  d.size = static_cast<std::int64_t>(bytes.size());
  return d;
}

std::string ref_in_repository(const Reference& ref) {
  if (ref.digest) return *ref.digest;
  return ref.tag.value_or(std::string(kDefaultTag));
}

struct Fetched {
  std::string bytes;
  std::string media_type;
  std::string digest;
};

// A manifest by digest: from the store when it has it, else from the registry (verified).
Fetched manifest_by_digest(RegistryClient& client, const Store& store, std::string_view repository,
                           const Descriptor& d) {
  if (store.has(d.digest)) {
    Fetched f;
    f.bytes = store.read(d.digest, kMaxManifestBytes);
    f.digest = d.digest;
    f.media_type = d.media_type;
    return f;
  }
  FetchedManifest m = client.get_manifest(repository, d.digest);
  return Fetched{std::move(m.bytes), std::move(m.media_type), std::move(m.digest)};
}

PullResult pull_from(Store& store, const PullSource& source, const RegistryConnector& registries,
                     const PullOptions& options, const std::string& name) {
  LinkedStop stop(registries.options().stop);
  const auto client = registries.connect(source.reference.domain, source.insecure, std::nullopt,
                                         stop.source.get_token());
  const std::string repository = source.reference.path;
  const std::string what = fmt::format("pulling {}", source.reference.string());
  ProgressSink progress(options.progress);

  // The top document. A tag is resolved with HEAD first: a manifest the store holds is not
  // downloaded again (and a Docker Hub HEAD does not count as a pull).
  Fetched top;
  if (source.reference.digest) {
    Descriptor d;
    d.digest = *source.reference.digest;
    top = manifest_by_digest(*client, store, repository, d);
  } else {
    const ManifestInfo info =
        client->head_manifest(repository, ref_in_repository(source.reference));
    Descriptor d;
    d.digest = info.digest;
    d.media_type = info.media_type;
    top = manifest_by_digest(*client, store, repository, d);
  }
  auto top_doc = parse_manifest(top.bytes, top.media_type);
  if (top.media_type.empty()) {
    top.media_type = std::visit([](const auto& doc) { return doc.media_type; }, top_doc);
  }

  PullResult result;
  result.reference = source.reference;
  result.source_location = source.location;
  result.from_mirror = source.mirror;
  result.name = name;
  result.digest = top.digest;
  result.media_type = top.media_type;

  Fetched image = top;
  ImageManifest manifest;
  if (const auto* index = std::get_if<ImageIndex>(&top_doc)) {
    const Platform wanted = options.platform ? *options.platform : host_platform();
    const Descriptor& chosen = choose_platform(*index, wanted);
    image = manifest_by_digest(*client, store, repository, chosen);
    manifest = parse_image_manifest(
        image.bytes, image.media_type.empty() ? chosen.media_type : image.media_type);
    if (image.media_type.empty()) image.media_type = manifest.media_type;
  } else {
    manifest = std::get<ImageManifest>(top_doc);
  }
  result.image_digest = image.digest;

  std::vector<std::pair<Descriptor, BlobKind>> blobs;
  blobs.emplace_back(manifest.config, BlobKind::kConfig);
  for (const auto& layer : manifest.layers) blobs.emplace_back(layer, BlobKind::kLayer);
  run_parallel(
      blobs.size(), options.max_parallel_layers, stop.source,
      [&](std::size_t i) {
        const Descriptor& d = blobs[i].first;
        const BlobKind kind = blobs[i].second;
        const auto total = static_cast<std::uint64_t>(std::max<std::int64_t>(d.size, 0));
        if (store.has(d.digest)) {
          progress.report({d.digest, kind, total, total, true, true});
          return;
        }
        TransferProgress on_bytes;
        if (progress.enabled()) {
          on_bytes = [&progress, &d, kind](std::uint64_t done, std::uint64_t all) {
            progress.report({d.digest, kind, done, all, false, false});
          };
        }
        try {
          client->fetch_blob(repository, d, store, on_bytes);
        } catch (const Error& e) {
          const std::string part = kind == BlobKind::kConfig
                                       ? std::string("config")
                                       : fmt::format("layer {}/{}", i, blobs.size() - 1);
          throw Error(e.code(), fmt::format("{}: {}: {}", what, part, e.what()));
        }
        progress.report({d.digest, kind, total, total, false, true});
      },
      what);

  // Children before parents, then the name.
  if (image.digest != top.digest) {
    store.put(image.bytes, image.digest);
    progress.report(
        {image.digest, BlobKind::kManifest, image.bytes.size(), image.bytes.size(), false, true});
  }
  store.put(top.bytes, top.digest);
  progress.report(
      {top.digest, BlobKind::kManifest, top.bytes.size(), top.bytes.size(), false, true});
  store.tag(name, descriptor_of(top.bytes, top.media_type));
  return result;
}

}  // namespace

RegistryConnector::RegistryConnector(http::Transport& transport, Clock& clock,
                                     ConnectOptions options)
    : transport_(transport), clock_(clock), options_(std::move(options)) {}

std::unique_ptr<RegistryClient> RegistryConnector::connect(std::string_view registry, bool insecure,
                                                           std::optional<Credentials> credentials,
                                                           std::stop_token stop) const {
  RegistryClientOptions o;
  o.registry = std::string(registry);
  o.insecure = insecure;
  o.plain_http = std::find(options_.plain_http.begin(), options_.plain_http.end(), registry) !=
                 options_.plain_http.end();
  o.tls_verify = options_.tls_verify;
  o.certs_dir = options_.certs_dir;
  if (credentials) {
    o.credentials = *credentials;
  } else if (options_.credentials) {
    o.credentials = options_.credentials(registry);
  }
  o.retry = options_.retry;
  o.low_speed_time = options_.stall_timeout;
  o.stop = stop.stop_possible() ? stop : options_.stop;
  return std::make_unique<RegistryClient>(transport_, clock_, std::move(o));
}

PullResult pull_image(Store& store, const std::vector<PullSource>& sources,
                      const RegistryConnector& registries, const PullOptions& options) {
  if (sources.empty()) throw Error(Code::kInvalidArgument, "pulling: no source to pull from");
  // The name: the primary location's reference (the last source), unless given.
  std::string name = options.name;
  if (name.empty()) {
    const auto primary =
        std::find_if(sources.begin(), sources.end(), [](const PullSource& s) { return !s.mirror; });
    const Reference& ref = primary != sources.end() ? primary->reference : sources.back().reference;
    name = ref.with_default_tag().string();
  }
  std::vector<std::string> errors;
  Code last_code = Code::kInternal;
  for (const auto& source : sources) {
    try {
      PullResult result = pull_from(store, source, registries, options, name);
      result.source_errors = std::move(errors);
      return result;
    } catch (const Error& e) {
      if (registries.options().stop.stop_requested()) throw;
      last_code = e.code();
      errors.push_back(
          fmt::format("{}{}: {}", source.location, source.mirror ? " (mirror)" : "", e.what()));
      if (source.mirror) {
        spdlog::info("pull from mirror failed image={} mirror={} error=\"{}\"",
                     source.reference.string(), source.location, e.what());
      }
    }
  }
  if (errors.size() == 1) throw Error(last_code, errors.front());
  std::string message = fmt::format("pulling {}: every source failed: ", name);
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (i > 0) message += "; ";
    message += errors[i];
  }
  throw Error(last_code, std::move(message));
}

namespace {

struct PushContext {
  const Store& store;
  RegistryClient& client;
  const std::string& repository;
  const PushOptions& options;
  ProgressSink& progress;
  std::stop_source& stop;
  std::string what;
};

void push_blobs(PushContext& ctx, const ImageManifest& manifest) {
  std::vector<std::pair<Descriptor, BlobKind>> blobs;
  blobs.emplace_back(manifest.config, BlobKind::kConfig);
  for (const auto& layer : manifest.layers) blobs.emplace_back(layer, BlobKind::kLayer);
  run_parallel(
      blobs.size(), ctx.options.max_parallel_layers, ctx.stop,
      [&ctx, &blobs](std::size_t i) {
        const Descriptor& d = blobs[i].first;
        const BlobKind kind = blobs[i].second;
        UploadOptions upload;
        upload.chunk_size = ctx.options.chunk_size;
        upload.mount_from = ctx.options.mount_from;
        if (ctx.progress.enabled()) {
          upload.progress = [&ctx, &d, kind](std::uint64_t done, std::uint64_t total) {
            ctx.progress.report({d.digest, kind, done, total, false, false});
          };
        }
        UploadResult r;
        try {
          r = ctx.client.push_blob(ctx.repository, d, ctx.store, upload);
        } catch (const Error& e) {
          throw Error(e.code(), fmt::format("{}: {} {}: {}", ctx.what,
                                            kind == BlobKind::kConfig ? "config" : "layer",
                                            d.digest, e.what()));
        }
        const auto size = static_cast<std::uint64_t>(std::max<std::int64_t>(d.size, 0));
        ctx.progress.report({d.digest, kind, size, size, r != UploadResult::kUploaded, true});
      },
      ctx.what);
}

// Pushes one manifest's blobs, then the manifest under `reference`.
void push_manifest(PushContext& ctx, const Descriptor& d, std::string_view reference) {
  const std::string bytes = ctx.store.read(d.digest, kMaxManifestBytes);
  const ImageManifest manifest = parse_image_manifest(bytes, d.media_type);
  push_blobs(ctx, manifest);
  (void)ctx.client.put_manifest(ctx.repository, reference, bytes,
                                d.media_type.empty() ? manifest.media_type : d.media_type);
  ctx.progress.report({d.digest, BlobKind::kManifest, bytes.size(), bytes.size(), false, true});
}

}  // namespace

std::string push_image(const Store& store, std::string_view local_name,
                       const Reference& destination, const RegistryConnector& registries,
                       const PushOptions& options) {
  const auto top = store.resolve(local_name);
  if (!top) {
    throw Error(Code::kNotFound, fmt::format("pushing {}: no image named \"{}\" in the local store",
                                             destination.string(), local_name));
  }
  LinkedStop stop(registries.options().stop);
  const auto client = registries.connect(destination.domain, options.insecure, std::nullopt,
                                         stop.source.get_token());
  const std::string repository = destination.path;
  const std::string reference = ref_in_repository(destination);
  ProgressSink progress(options.progress);
  PushContext ctx{store,
                  *client,
                  repository,
                  options,
                  progress,
                  stop.source,
                  fmt::format("pushing {}", destination.string())};

  if (is_index_media_type(top->media_type)) {
    const std::string bytes = store.read(top->digest, kMaxManifestBytes);
    const ImageIndex index = parse_image_index(bytes, top->media_type);
    for (const auto& child : index.manifests) {
      if (!store.has(child.digest)) continue;  // a platform not pulled: the registry decides
      if (!is_manifest_media_type(child.media_type)) continue;
      push_manifest(ctx, child, child.digest);
    }
    (void)client->put_manifest(repository, reference, bytes, top->media_type);
    progress.report({top->digest, BlobKind::kManifest, bytes.size(), bytes.size(), false, true});
  } else {
    push_manifest(ctx, *top, reference);
  }
  return top->digest;
}

void login_check(const RegistryConnector& registries, std::string_view registry,
                 const Credentials& credentials, bool insecure) {
  const auto client = registries.connect(registry, insecure, credentials);
  try {
    client->ping();
  } catch (const Error& e) {
    if (e.code() == Code::kUnauthenticated) {
      throw Error(Code::kUnauthenticated,
                  fmt::format("logging in to {} as \"{}\": invalid username or password: {}",
                              registry, credentials.username, e.what()));
    }
    throw e.wrap(fmt::format("logging in to {}", registry));
  }
}

}  // namespace stowage::oci
