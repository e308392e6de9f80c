// The agent's durable memory of the images it pulled itself: reference pulled, digest, runtime
// image ID and wall time of the pull. Prune removes only images found here, so the record is one
// JSON file under --store-dir, rewritten atomically (temp + fsync + rename) on every change and
// loaded at start, so a restarted agent still knows what it pulled.
//   PullRecord record = PullRecord::load(store_dir / kPullRecordFile);
//   record.add({.ref = "quay.io/a/b:1", .digest = d, .image_id = id, .pulled_at = now});
// A corrupt file is never dropped silently: load() moves it aside to a preserved copy and throws
// DataLoss naming that copy. Thread-safe: one mutex guards the entries and the file.
#pragma once

#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stowage::agent {

inline constexpr std::string_view kPullRecordFile = "pulled-images.json";
// Suffix (followed by the wall time in seconds) of a corrupt record moved aside.
inline constexpr std::string_view kCorruptSuffix = ".corrupt-";

struct PulledImage {
  std::string ref;       // the reference passed to PullImage ("host/repo:tag" or "host/repo@d")
  std::string digest;    // the planned manifest digest the pull was for
  std::string image_id;  // the runtime's image ID (PullImage's image_ref)
  std::chrono::system_clock::time_point pulled_at{};
  bool operator==(const PulledImage&) const = default;
};

class PullRecord {
 public:
  // An empty record that will be written to `path` on the first change.
  explicit PullRecord(std::filesystem::path path);

  // Reads `path`; an absent file gives an empty record. A file that does not parse is renamed to
  // `<path>.corrupt-<unix seconds>` and DataLoss is thrown naming both files; the next load then
  // starts empty. Other I/O errors are thrown as they come.
  static PullRecord load(const std::filesystem::path& path);

  PullRecord(PullRecord&& other) noexcept;
  PullRecord& operator=(PullRecord&&) = delete;
  PullRecord(const PullRecord&) = delete;
  PullRecord& operator=(const PullRecord&) = delete;

  // Adds or replaces the entry with the same (ref, digest), then writes the file.
  void add(const PulledImage& image);
  // Removes the entries with that (ref, digest); writes the file when one was removed.
  bool remove(std::string_view ref, std::string_view digest);
  std::vector<PulledImage> entries() const;
  const std::filesystem::path& path() const { return path_; }

  // The file's JSON text for `images`; and its parse (throws InvalidArgument on bad content).
  static std::string serialize(const std::vector<PulledImage>& images);
  static std::vector<PulledImage> parse(std::string_view text);

 private:
  void save_locked() const;

  std::filesystem::path path_;
  mutable std::mutex mu_;  // guards images_ and writes of path_
  std::vector<PulledImage> images_;
};

}  // namespace stowage::agent
