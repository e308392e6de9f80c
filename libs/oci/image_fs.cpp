#include "oci/image_fs.h"

#include <set>
#include <string_view>

#include "base/error.h"
#include "base/sha256.h"

namespace stowage::oci {
namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

std::string parent_of(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string() : std::string(path.substr(0, slash));
}

std::string base_of(std::string_view path) {
  const auto slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string join(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

// Removes `path` and everything below it.
void erase_tree(FsTree& tree, const std::string& path) {
  tree.erase(path);
  const std::string prefix = path + "/";
  for (auto it = tree.lower_bound(prefix); it != tree.end() && it->first.starts_with(prefix);) {
    it = tree.erase(it);
  }
}

// Removes everything below `dir` (the directory itself stays).
void erase_children(FsTree& tree, const std::string& dir) {
  if (dir.empty()) {
    tree.clear();
    return;
  }
  const std::string prefix = dir + "/";
  for (auto it = tree.lower_bound(prefix); it != tree.end() && it->first.starts_with(prefix);) {
    it = tree.erase(it);
  }
}

struct LayerChanges {
  FsTree entries;
  std::set<std::string> whiteouts;  // paths deleted from lower layers
  std::set<std::string> opaque;     // directories whose lower contents are hidden
};

LayerChanges read_layer(const Store& store, const Descriptor& layer, const TarLimits& limits) {
  LayerChanges out;
  TarReader reader = TarReader::open_file(store.path(layer.digest), limits);
  std::string buffer(1 << 20, '\0');
  while (auto e = reader.next()) {
    if (e->path.empty()) continue;  // the root directory
    const std::string name = base_of(e->path);
    if (name == kOpaqueMarker) {
      out.opaque.insert(parent_of(e->path));
      continue;
    }
    if (name.starts_with(kWhiteoutPrefix)) {
      out.whiteouts.insert(join(parent_of(e->path), name.substr(kWhiteoutPrefix.size())));
      continue;
    }
    FsEntry entry;
    entry.type = e->type;
    entry.mode = e->mode;
    entry.mtime = e->mtime;
    if (e->type == TarEntryType::kRegular) {
      Sha256 hash;
      std::uint64_t size = 0;
      for (std::size_t n; (n = reader.read(buffer.data(), buffer.size())) > 0;) {
        hash.update(buffer.data(), n);
        size += n;
      }
      entry.size = size;
      entry.digest = "sha256:" + hash.finish_hex();
    } else if (e->type == TarEntryType::kSymlink) {
      entry.link_target = e->link_target;
    } else if (e->type == TarEntryType::kHardlink) {
      entry.link_target = e->link_path;
      if (const auto it = out.entries.find(e->link_path); it != out.entries.end()) {
        entry.size = it->second.size;
        entry.digest = it->second.digest;
      }
    }
    out.entries.insert_or_assign(e->path, std::move(entry));
  }
  return out;
}

bool same_metadata(const FsEntry& a, const FsEntry& b) {
  if (a.type != b.type || a.mode != b.mode) return false;
  if (a.type == TarEntryType::kDirectory) return true;  // contents speak for themselves
  return a.mtime == b.mtime && a.size == b.size && a.link_target == b.link_target &&
         a.digest == b.digest;
}

}  // namespace

FsTree build_fs_tree(const Store& store, const std::vector<Descriptor>& layers,
                     const TarLimits& limits) {
  TarLimits tar = limits;
  tar.absolute_symlinks_stay_in_root = true;
  FsTree tree;
  for (const Descriptor& layer : layers) {
    if (!store.has(layer.digest)) {
      throw Error(Code::kNotFound, "layer " + layer.digest + " is not in the store");
    }
    LayerChanges changes = read_layer(store, layer, tar);
    for (const auto& dir : changes.opaque) erase_children(tree, dir);
    for (const auto& path : changes.whiteouts) erase_tree(tree, path);
    for (auto& [path, entry] : changes.entries) {
      // A non-directory replacing a directory hides what the lower layers had below it.
      if (entry.type != TarEntryType::kDirectory) erase_children(tree, path);
      tree.insert_or_assign(path, std::move(entry));
    }
  }
  return tree;
}

std::vector<FsChange> diff_fs_trees(const FsTree& from, const FsTree& to) {
  std::map<std::string, ChangeKind> changes;
  for (const auto& [path, entry] : to) {
    const auto old = from.find(path);
    if (old == from.end()) {
      changes.emplace(path, ChangeKind::kAdded);
    } else if (!same_metadata(old->second, entry)) {
      changes.emplace(path, ChangeKind::kChanged);
    }
  }
  for (const auto& [path, entry] : from) {
    if (to.contains(path)) continue;
    // A deleted directory is reported once, not with everything it held.
    const std::string parent = parent_of(path);
    if (!parent.empty() && from.contains(parent) && !to.contains(parent)) continue;
    changes.emplace(path, ChangeKind::kDeleted);
  }
  // A directory that kept its metadata but whose contents changed is reported as changed, as a
  // layer diff must carry it to restore its permissions.
  std::vector<std::string> touched;
  for (const auto& [path, kind] : changes) touched.push_back(path);
  for (const auto& path : touched) {
    for (std::string dir = parent_of(path); !dir.empty(); dir = parent_of(dir)) {
      if (!to.contains(dir) || !from.contains(dir)) continue;
      if (!changes.emplace(dir, ChangeKind::kChanged).second) break;
    }
  }
  std::vector<FsChange> out;
  out.reserve(changes.size());
  for (const auto& [path, kind] : changes) out.push_back({kind, "/" + path});
  return out;
}

char change_letter(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::kAdded: return 'A';
    case ChangeKind::kChanged: return 'C';
    case ChangeKind::kDeleted: return 'D';
  }
  return '?';
}

}  // namespace stowage::oci
