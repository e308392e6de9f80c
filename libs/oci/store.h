// The local content store: an OCI image layout under a root directory (`oci-layout`, `index.json`,
// `blobs/sha256/<hex>`) written with containerd's commit discipline. Blobs stream into
// `ingest/<random>` while being hashed, are checked against the expected digest and size, fsynced
// and renamed into `blobs/` (an existing blob wins), so a reader never sees a partial or wrong
// blob. Names live in `index.json` (annotated with `io.containerd.image.name` = full reference and
// `org.opencontainers.image.ref.name` = tag), rewritten atomically under a file lock.
// All methods may be called from several threads and processes at once: the state is on disk.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "oci/types.h"

namespace stowage::oci {

inline constexpr std::string_view kAnnotationImageName = "io.containerd.image.name";
inline constexpr std::string_view kAnnotationRefName = "org.opencontainers.image.ref.name";

struct StoreOptions {
  // Wall time stamped on committed blobs and compared by prune(); nullptr: the real clock.
  Clock* clock = nullptr;
  // prune() keeps unreferenced blobs committed (or re-committed) more recently than this: an
  // import or pull in another process may be about to name them.
  std::chrono::seconds prune_grace = std::chrono::minutes(10);
};

// Streams one blob into the store. Destroyed without a successful commit() (error, exception),
// it removes its ingest file. Move-only; not thread-safe.
class BlobWriter {
 public:
  BlobWriter(BlobWriter&&) noexcept;
  BlobWriter& operator=(BlobWriter&&) noexcept;
  ~BlobWriter();

  // Appends and hashes. Throws Error(kDataLoss) past the expected size, kResourceExhausted when
  // the disk is full; the ingest file is gone after any failure.
  void write(std::string_view data);
  std::uint64_t written() const;
  // Checks size and digest (Error(kDataLoss) on a mismatch, nothing kept), fsyncs, renames into
  // blobs/ (an existing blob wins) and fsyncs the directory. Returns the digest.
  std::string commit();
  // Removes the ingest file now; the writer is unusable afterwards.
  void abort();
  const std::filesystem::path& ingest_path() const;

  struct State;

 private:
  friend class Store;
  explicit BlobWriter(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

// Reads one committed blob. Move-only; not thread-safe.
class BlobReader {
 public:
  BlobReader(BlobReader&&) noexcept;
  BlobReader& operator=(BlobReader&&) noexcept;
  ~BlobReader();

  // Up to `size` bytes; 0 at the end.
  std::size_t read(char* buffer, std::size_t size);
  std::uint64_t size() const { return size_; }
  // The open file, for copy_file_range and the like; owned by the reader.
  int fd() const { return fd_; }

 private:
  friend class Store;
  BlobReader(int fd, std::uint64_t size, std::string digest);
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::string digest_;
};

// One entry of index.json. `name` is the full reference, or empty for an unnamed root.
struct StoredImage {
  std::string name;
  Descriptor descriptor;
};

struct PruneReport {
  std::vector<std::string> removed_blobs;  // digests
  std::uint64_t removed_bytes = 0;
  std::size_t removed_ingests = 0;
};

struct VerifyReport {
  std::vector<std::string> corrupt;  // digests whose content or size does not match
  // Digests index.json reaches but absent. Children of an index may be absent (an image pulled or
  // saved for some platforms only) and are not listed.
  std::vector<std::string> missing;
  bool clean() const { return corrupt.empty() && missing.empty(); }
};

class Store {
 public:
  // Opens the layout at `root`, creating what is missing, and removes abandoned ingest files
  // (those no live writer holds; see clean_ingests()). Throws Error(kInvalidArgument) when `root`
  // holds a layout of another version.
  explicit Store(std::filesystem::path root, StoreOptions options = {});

  const std::filesystem::path& root() const { return root_; }

  // A writer for one blob. `digest` ("sha256:<hex>") and `size`, when given, are checked at
  // commit; without a digest the blob is named by what it hashes to.
  BlobWriter ingest(std::optional<std::string> digest = std::nullopt,
                    std::optional<std::uint64_t> size = std::nullopt) const;
  // ingest() + write() + commit() of a small blob (manifest, config). Returns the digest.
  std::string put(std::string_view data, std::optional<std::string> digest = std::nullopt) const;

  bool has(std::string_view digest) const;
  std::optional<std::uint64_t> size(std::string_view digest) const;
  // Where the blob lives (whether or not it exists). Throws Error(kInvalidArgument) for a digest
  // that is not "sha256:" + 64 lowercase hex.
  std::filesystem::path path(std::string_view digest) const;
  // Throws Error(kNotFound) when the blob is absent.
  BlobReader open(std::string_view digest) const;
  // The whole blob; Error(kInvalidArgument) when it is larger than `max_size`.
  std::string read(std::string_view digest, std::uint64_t max_size = 4u << 20) const;

  // Names take any reference form ("alpine", "quay.io/x/y:v1") and are stored normalized
  // ("docker.io/library/alpine:latest"). resolve() also matches a bare ref.name written by other
  // tools (e.g. a tag-only "v1").
  std::optional<Descriptor> resolve(std::string_view name) const;
  // Points `name` at `target`, replacing what it named before.
  void tag(std::string_view name, const Descriptor& target);
  // Removes `name`; false when it did not exist.
  bool untag(std::string_view name);
  // Removes every index.json entry (named or not) pointing at `digest`; returns the names removed
  // ("" for an unnamed root).
  std::vector<std::string> remove_roots(std::string_view digest);
  // Keeps `target` as a root without a name (an untagged image), once per digest.
  void add_unnamed(const Descriptor& target);
  std::vector<StoredImage> list() const;

  // Removes blobs that no index.json entry reaches (index → manifests, manifest → config and
  // layers), except those younger than prune_grace, and abandoned ingest files.
  PruneReport prune();
  // Removes ingest files that no live writer holds. A writer holds an flock on its ingest file
  // from creation to commit and the kernel drops it when the process dies (even by kill -9), so
  // no age threshold is needed and a live writer's file is never removed. Returns the count.
  std::size_t clean_ingests() const;
  // Re-hashes every blob and checks that everything index.json reaches is present and of the
  // size its descriptor says.
  VerifyReport verify() const;

 private:
  Clock& clock() const;

  std::filesystem::path root_;
  std::filesystem::path blobs_;
  std::filesystem::path ingest_;
  StoreOptions options_;
};

// "docker.io/library/alpine:latest" for "alpine"; the form names are stored in. Throws
// Error(kInvalidArgument) for an invalid reference.
std::string normalize_image_name(std::string_view name);

}  // namespace stowage::oci
