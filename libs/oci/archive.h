// Image archives between the content store and a tar file. Writers: docker-archive (what
// `docker load` and `podman load` take: manifest.json, repositories, <config-hex>.json and
// uncompressed layers <diffid-hex>.tar) and oci-archive (an OCI layout in a tar with the blobs as
// stored, plus manifest.json for Docker). Both stream in one pass with 1 MiB buffers and write the
// file atomically: a failure (disk full) leaves no partial file. The reader takes podman save,
// docker save (≤ 24 legacy and ≥ 25 OCI layouts), containerd exports and oci-archives, plain or
// compressed, in one streaming pass: every member goes straight into the store while it is hashed.
// Functions are safe to call concurrently (the store is); each call owns its files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "oci/store.h"
#include "oci/tar_reader.h"
#include "oci/types.h"

namespace stowage::oci {

// An image to write: its manifest (an index is allowed in oci-archives only) and the names it goes
// by, in any reference form. No names: the image is written untagged.
struct ArchiveImage {
  Descriptor manifest;
  std::vector<std::string> names;
};

// How names are spelled in manifest.json RepoTags and in repositories.
enum class RepoTagStyle {
  // "docker.io/library/alpine:3", as podman save writes them. docker load normalizes this to the
  // same image; podman load reads a familiar docker.io name ("alpine:3") as localhost/alpine:3,
  // so this is the form both loaders name correctly.
  kFull,
  // "alpine:3", as docker save writes them (names outside docker.io are the same in both forms).
  kFamiliar,
};

struct DockerArchiveOptions {
  RepoTagStyle repo_tags = RepoTagStyle::kFull;
};

// Writes `images` (blobs from `store`) to `out` as a docker-archive. Layers shared between images
// are stored once; images with the same config are one manifest.json item with all their tags.
// Gzip/zstd layers are decompressed while being written and their diffIDs checked against the
// config (Error(kDataLoss) on a mismatch). Throws Error(kNotFound) for a missing blob,
// kInvalidArgument for an index, kResourceExhausted when the disk is full.
void write_docker_archive(const Store& store, const std::vector<ArchiveImage>& images,
                          const std::filesystem::path& out,
                          const DockerArchiveOptions& options = {});

// Writes `images` to `out` as an oci-archive: oci-layout, blobs/sha256/<hex> as stored, index.json
// with one entry per name (io.containerd.image.name = full reference,
// org.opencontainers.image.ref.name = tag) and a Docker manifest.json for the single-manifest
// images. Index children missing from the store are left out (an OCI layout allows that).
void write_oci_archive(const Store& store, const std::vector<ArchiveImage>& images,
                       const std::filesystem::path& out);

struct ImportOptions {
  TarLimits limits;
  DecompressLimits layer_limits;               // for computing diffIDs of compressed layers
  std::uint64_t max_metadata_size = 8u << 20;  // manifest.json, index.json, repositories, configs
  bool tag = true;  // name the images in the store (untagged ones become unnamed roots)
};

enum class ArchiveFormat { kDockerArchive, kOciLayout };

struct ImportedImage {
  Descriptor manifest;             // as stored: a synthesized schema2/OCI manifest, or the layout's
  std::string config_digest;       // empty for an index
  std::vector<std::string> names;  // normalized, e.g. "docker.io/library/busybox:latest"
};

struct ImportResult {
  ArchiveFormat format = ArchiveFormat::kDockerArchive;
  std::vector<ImportedImage> images;
};

// Reads an archive into `store`. An OCI layout (oci-layout + index.json) is preferred, as
// containerd does; otherwise manifest.json items become schema2 manifests (OCI when a layer is
// zstd) whose layers are the files as given, diffIDs verified (Error(kDataLoss) on a mismatch).
// Hostile archives are refused with Error(kInvalidArgument) (see TarReader); blobs whose content
// does not match their name give Error(kDataLoss). Blobs already ingested when a later check fails
// stay in the store unnamed until prune() removes them.
ImportResult import_archive(Store& store, const std::filesystem::path& file,
                            const ImportOptions& options = {});
ImportResult import_archive(Store& store, TarReader& reader, const ImportOptions& options = {});

}  // namespace stowage::oci
