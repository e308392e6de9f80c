// Small OCI images for tests, built in C++ without Docker or network: write_oci_layout() writes an
// OCI image layout (tar layers from in-memory files, config, manifest, index.json), and
// seed_image() pushes such an image into a test registry with `skopeo copy` over plain HTTP.
// Images are deterministic: the same ImageSpec gives the same digests on every run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace stowage::test {

struct LayerFile {
  std::string path;  // relative, e.g. "etc/app/greeting"; parent directories are added
  std::string content;
  std::uint32_t mode = 0644;
};

struct ImageSpec {
  // One entry per layer, bottom first.
  std::vector<std::vector<LayerFile>> layers = {{{"hello.txt", "hello from stowage\n"}}};
  std::string os = "linux";
  std::string architecture = {};  // empty: the host's, as Go names it (amd64, arm64, ...)
  bool gzip = true;               // layer media type ...tar+gzip, else uncompressed ...tar
  // Config labels (config.Labels); a cheap way to make images with distinct digests.
  std::map<std::string, std::string> labels = {};
  // config.Entrypoint and config.Cmd, what a runtime runs by default; left out when empty.
  std::vector<std::string> entrypoint = {};
  std::vector<std::string> cmd = {};
};

struct BuiltImage {
  std::string manifest_digest;  // "sha256:<hex>"
  std::uint64_t manifest_size = 0;
  std::string manifest_media_type;  // application/vnd.oci.image.manifest.v1+json
  std::string config_digest;
  std::vector<std::string> layer_digests;  // as stored (compressed when gzip)
  std::vector<std::string> diff_ids;       // uncompressed tar digests
};

// The host architecture as Go (and so containerd's default platform) names it.
std::string host_architecture();

// Writes the image into the OCI layout at `dir` (created if needed; other images already in its
// index.json are kept, one with the same tag is replaced) and tags it `tag`
// (org.opencontainers.image.ref.name). Throws stowage::Error.
BuiltImage write_oci_layout(const std::filesystem::path& dir, const std::string& tag,
                            const ImageSpec& spec = {});

// Why seed_image() cannot run here (skopeo missing), or nullopt.
std::optional<std::string> seed_unavailable_reason();

// Builds `spec` and copies it to `registry_host`/`repo`:`tag` (plain HTTP, no credentials, no
// signature policy, no registries.conf of the machine). Returns the manifest digest the registry
// stored. Throws stowage::Error with skopeo's output on failure.
std::string seed_image(const std::string& registry_host, const std::string& repo,
                       const std::string& tag, const ImageSpec& spec = {});

}  // namespace stowage::test
