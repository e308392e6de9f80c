// Image manifests, image indexes (manifest lists) and image configs: parse registry bytes (OCI and
// Docker schema2; schema1 is refused), validate with errors that name the field, serialize
// deterministically, and pick the manifest of an index for a platform. Pure value types and
// functions; the only outside read is host_platform() (uname). A manifest's identity is the
// sha256 of the exact bytes received (manifest_digest), never of a re-serialization.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "oci/types.h"

namespace stowage::oci {

namespace media {
// Docker schema1: refused everywhere (removed from Docker 28.2, containerd 2.1).
inline constexpr std::string_view kDockerManifestV1 =
    "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view kDockerManifestV1Signed =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
}  // namespace media

// Registries refuse larger manifests (distribution-spec: ≥ 4 MB SHOULD be accepted) and
// containers/image reads at most this much of a manifest or a config blob.
inline constexpr std::size_t kMaxManifestBytes = std::size_t{4} * 1024 * 1024;
inline constexpr std::size_t kMaxConfigBytes = std::size_t{4} * 1024 * 1024;

// The annotation BuildKit puts on attestation entries of an index, and its value.
inline constexpr std::string_view kDockerReferenceTypeAnnotation = "vnd.docker.reference.type";
inline constexpr std::string_view kAttestationManifest = "attestation-manifest";

struct ImageManifest {
  int schema_version = 2;
  // The document's media type: from the body, else from the Content-Type, else guessed.
  std::string media_type;
  std::string artifact_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;
  bool operator==(const ImageManifest&) const = default;
};

struct ImageIndex {
  int schema_version = 2;
  std::string media_type;
  std::string artifact_type;
  std::vector<Descriptor> manifests;
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;
  bool operator==(const ImageIndex&) const = default;
};

// The `config` object of an image config (image-spec config.md, Docker's container config).
// Fields this type does not model (Healthcheck, OnBuild, Shell, ...) are kept in `extra` as
// key → compact JSON text and written back, sorted by key, after the known ones.
struct ContainerConfig {
  std::string user;
  std::set<std::string> exposed_ports;                 // "80/tcp"
  std::vector<std::string> env;                        // "KEY=value"
  std::optional<std::vector<std::string>> entrypoint;  // nullopt: absent or null
  std::optional<std::vector<std::string>> cmd;
  std::set<std::string> volumes;
  std::string working_dir;
  std::map<std::string, std::string> labels;
  std::string stop_signal;
  std::optional<bool> args_escaped;
  std::map<std::string, std::string> extra;
  bool operator==(const ContainerConfig&) const = default;
};

struct HistoryEntry {
  std::string created;
  std::string author;
  std::string created_by;
  std::string comment;
  bool empty_layer = false;
  bool operator==(const HistoryEntry&) const = default;
};

struct ImageConfig {
  std::string created;  // RFC 3339 text as found; not interpreted
  std::string author;
  std::string architecture;
  std::string variant;
  std::string os;
  std::string os_version;
  std::vector<std::string> os_features;
  std::optional<ContainerConfig> config;
  std::string rootfs_type = "layers";
  std::vector<std::string> diff_ids;  // "sha256:<hex>" of the uncompressed layers
  std::vector<HistoryEntry> history;
  // Top-level fields not modelled (Docker's container, container_config, docker_version, ...).
  std::map<std::string, std::string> extra;
  bool operator==(const ImageConfig&) const = default;

  Platform platform() const;
};

// True when JSON text nests arrays/objects deeper than `max_depth` (strings are skipped). Every
// JSON reader of libs/oci checks this first: nlohmann's copy and dump recurse per level.
bool json_nesting_exceeds(std::string_view text, int max_depth);
inline constexpr int kMaxJsonDepth = 64;

// "sha256:<hex>" of exactly these bytes.
std::string manifest_digest(std::string_view bytes);

// Lowercased media type without parameters: "Application/JSON; charset=utf-8" → "application/json".
std::string normalize_media_type(std::string_view content_type);

enum class ManifestKind { kImageManifest, kImageIndex };

// Which document `bytes` is, from its mediaType, else the Content-Type (parameters ignored;
// generic types such as application/json count as absent), else its fields. Throws
// InvalidArgument when it is too large, not JSON, a schema1 manifest, of an unsupported media
// type, or when the body's mediaType differs from the Content-Type.
ManifestKind detect_manifest_kind(std::string_view bytes, std::string_view content_type = {});

// Parsers. Each throws stowage::Error(kInvalidArgument) with a message naming the offending field
// ("manifest: layers[2]: descriptor: ...") for bad input, including documents over the size
// limits above. Unknown fields are ignored (configs keep them in `extra`).
ImageManifest parse_image_manifest(std::string_view bytes, std::string_view content_type = {});
ImageIndex parse_image_index(std::string_view bytes, std::string_view content_type = {});
std::variant<ImageManifest, ImageIndex> parse_manifest(std::string_view bytes,
                                                       std::string_view content_type = {});
ImageConfig parse_image_config(std::string_view bytes);

// Compact JSON with a fixed member order (the image-spec Go structs' order), so equal values
// always give equal bytes. Throws InvalidArgument if a string is not valid UTF-8.
std::string serialize(const ImageManifest& manifest);
std::string serialize(const ImageIndex& index);
std::string serialize(const ImageConfig& config);

// --- Platforms ---------------------------------------------------------------------------------

// containerd's normalization: lowercased OS (macos → darwin); i386 → 386; x86_64/x86-64 → amd64
// (amd64/v1 → no variant); aarch64 → arm64 (v8, 8, v8.0 → no variant; 9, 9.0, v9.0 → v9);
// armhf → arm/v7, armel → arm/v6; arm with no variant or 7 → v7, 5/6/8 → v5/v6/v8.
Platform normalize_platform(Platform p);

// Parses `--platform os/arch[/variant]` and normalizes it. Throws InvalidArgument naming the input.
Platform parse_platform(std::string_view text);

// "os/arch[/variant]".
std::string format_platform(const Platform& p);

// The platform uname(2) reports, normalized: Linux x86_64 → linux/amd64, aarch64 → linux/arm64,
// armv7l → linux/arm/v7. platform_from_uname is the pure mapping.
Platform platform_from_uname(std::string_view sysname, std::string_view machine);
Platform host_platform();

// The platforms acceptable for `wanted`, best first (after normalization): the exact variant,
// then older variants of the same architecture (arm64/v8.x → v8.x-1 … v8; v9.x → v9 … v9.0,
// v8.x+5 … v8; arm/v8 → v7, v6, v5; amd64/vN → vN-1 … v1), then the 32-bit compatible
// architectures containerd allows (arm64 → arm/v8 … arm/v5; amd64 → 386), and for other
// architectures with a variant, the same architecture without one.
std::vector<Platform> platform_preferences(const Platform& wanted);

// True for entries that are not runnable images: BuildKit attestations (annotation
// vnd.docker.reference.type=attestation-manifest) and platform unknown/unknown.
bool is_attestation(const Descriptor& d);

// The position in `manifests` of the entry for `wanted`: for each preference in order, the first
// entry (index order, as image-spec asks) whose normalized platform equals it. Entries without a
// platform and attestations are skipped; OS version and features are ignored.
std::optional<std::size_t> select_platform(const std::vector<Descriptor>& manifests,
                                           const Platform& wanted);

// select_platform, or NotFound naming the wanted platform and the ones the index has.
const Descriptor& choose_platform(const ImageIndex& index, const Platform& wanted);

}  // namespace stowage::oci
