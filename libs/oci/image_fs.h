// The root filesystem an image's layers build, as metadata (no file is written to disk), and the
// differences between two of them: what `stowctl diff` prints. Layers are applied bottom first
// with the OCI whiteout rules: ".wh.<name>" deletes <name> of the lower layers, ".wh..wh..opq"
// hides everything the lower layers put in its directory. Each layer is streamed once; regular
// files are hashed so that equal sizes with different bytes still count as a change.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "oci/store.h"
#include "oci/tar_reader.h"
#include "oci/types.h"

namespace stowage::oci {

struct FsEntry {
  TarEntryType type = TarEntryType::kRegular;
  std::uint32_t mode = 0;
  std::int64_t mtime = 0;
  std::uint64_t size = 0;
  std::string link_target;  // symlinks and hardlinks
  std::string digest;       // regular files: sha256 of the content
  bool operator==(const FsEntry&) const = default;
};

// Path ("etc/passwd", relative, cleaned) → entry.
using FsTree = std::map<std::string, FsEntry>;

// Applies `layers` (descriptors of blobs in `store`, bottom first; gzip/zstd/plain) in order.
// Absolute symlink targets are allowed (they name paths inside the image). Throws
// Error(kNotFound) for a missing blob, kInvalidArgument for a hostile or corrupt layer.
FsTree build_fs_tree(const Store& store, const std::vector<Descriptor>& layers,
                     const TarLimits& limits = {});

enum class ChangeKind { kAdded, kChanged, kDeleted };

struct FsChange {
  ChangeKind kind = ChangeKind::kAdded;
  std::string path;  // absolute, "/etc/passwd"
  bool operator==(const FsChange&) const = default;
};

// What turns `from` into `to`, sorted by path, with podman's conventions: an added directory is
// reported with everything below it, a deleted one once; a directory whose contents changed is
// reported as changed (a layer diff carries it), its own mtime and size are not compared.
std::vector<FsChange> diff_fs_trees(const FsTree& from, const FsTree& to);

// "A", "C" or "D", podman's letters.
char change_letter(ChangeKind kind);

}  // namespace stowage::oci
