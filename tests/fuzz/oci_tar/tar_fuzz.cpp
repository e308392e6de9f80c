// Feeds arbitrary bytes to the tar reader and the archive importer. Refusals (stowage::Error) are
// expected; the target traps when an accepted entry breaks the reader's promises (a clean relative
// path, links that stay inside, sizes within the limits) or when the import leaves anything but
// content-store files under its temp root. Limits are small so that no input can make the target
// allocate or write much (libFuzzer's -rss_limit_mb and -malloc_limit_mb catch the rest).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "base/error.h"
#include "oci/archive.h"
#include "oci/store.h"
#include "oci/tar_reader.h"

namespace {

namespace fs = std::filesystem;
using stowage::oci::TarEntryType;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

constexpr stowage::oci::TarLimits kLimits{.max_entries = 256,
                                          .max_entry_size = 1 << 20,
                                          .max_total_size = 8 << 20,
                                          .max_ratio = 100,
                                          .ratio_floor = 1 << 20,
                                          .max_path_length = 1024};

bool clean_path(std::string_view p, bool root_allowed) {
  if (p.empty()) return root_allowed;
  if (p.front() == '/' || p.back() == '/') return false;
  std::size_t start = 0;
  while (start <= p.size()) {
    const std::size_t end = std::min(p.find('/', start), p.size());
    const std::string_view part = p.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

void read_entries(std::string_view input) {
  try {
    auto reader = stowage::oci::TarReader::open_memory(input, "fuzz.tar", kLimits);
    std::uint64_t total = 0;
    char buf[65536];
    while (auto e = reader.next()) {
      check(clean_path(e->path, e->type == TarEntryType::kDirectory));
      check(e->size <= kLimits.max_entry_size);
      if (e->type == TarEntryType::kSymlink || e->type == TarEntryType::kHardlink) {
        check(!e->link_target.empty());
        check(clean_path(e->link_path, e->type == TarEntryType::kSymlink));
      }
      std::uint64_t got = 0;
      for (std::size_t n; (n = reader.read(buf, sizeof buf)) > 0;) got += n;
      check(got <= e->size || e->type == TarEntryType::kHardlink);
      total += got;
      check(total <= kLimits.max_total_size);
    }
    check(reader.entries() <= kLimits.max_entries);
  } catch (const stowage::Error&) {
  }
}

// A per-process root on tmpfs when there is one (fsync is free there), created for each input and
// removed after it, so nothing is left behind however libFuzzer ends the process.
const fs::path& temp_root() {
  static const fs::path root =
      (fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path()) /
      ("stowage-tar-fuzz-" + std::to_string(::getpid()));
  return root;
}

bool is_hex64(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Only content-store files may exist under the root after an import, accepted or refused.
void check_only_store_files(const fs::path& store) {
  for (const auto& e : fs::directory_iterator(temp_root())) check(e.path() == store);
  for (const auto& e : fs::directory_iterator(store)) {
    const std::string name = e.path().filename().string();
    check(name == "blobs" || name == "ingest" || name == "oci-layout" || name == "index.json" ||
          name == "index.lock");
  }
  for (const auto& e : fs::directory_iterator(store / "blobs")) {
    check(e.path().filename() == "sha256");
  }
  for (const auto& e : fs::directory_iterator(store / "blobs" / "sha256")) {
    check(e.is_regular_file() && !e.is_symlink() && is_hex64(e.path().filename().string()));
  }
  check(fs::is_empty(store / "ingest"));
}

void import(std::string_view input) {
  fs::create_directories(temp_root());
  const fs::path store_dir = temp_root() / "store";
  {
    stowage::oci::Store store(store_dir);
    stowage::oci::ImportOptions options;
    options.limits = kLimits;
    options.layer_limits = {.max_output = 8 << 20, .max_ratio = 100, .ratio_floor = 1 << 20};
    options.max_metadata_size = 256 << 10;
    try {
      auto reader = stowage::oci::TarReader::open_memory(input, "fuzz.tar", kLimits);
      const auto result = stowage::oci::import_archive(store, reader, options);
      for (const auto& image : result.images) check(store.has(image.manifest.digest));
      check(store.verify().corrupt.empty());  // nothing that fails its digest was committed
    } catch (const stowage::Error&) {
    }
  }
  check_only_store_files(store_dir);
  fs::remove_all(temp_root());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  read_entries(input);
  import(input);
  return 0;
}
