#include "node-agent/pull_record.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>

#include "base/error.h"
#include "base/files.h"

namespace stowage::agent {
namespace fs = std::filesystem;

namespace {

constexpr int kFormatVersion = 1;

std::string required_string(const nlohmann::json& entry, const char* key, std::size_t index) {
  const auto it = entry.find(key);
  if (it == entry.end() || !it->is_string() || it->get<std::string>().empty()) {
    throw Error(Code::kInvalidArgument,
                fmt::format("images[{}].{}: must be a non-empty string", index, key));
  }
  return it->get<std::string>();
}

}  // namespace

PullRecord::PullRecord(fs::path path) : path_(std::move(path)) {}

PullRecord::PullRecord(PullRecord&& other) noexcept : path_(std::move(other.path_)) {
  const std::lock_guard lock(other.mu_);
  images_ = std::move(other.images_);
}

std::string PullRecord::serialize(const std::vector<PulledImage>& images) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& image : images) {
    list.push_back({
        {"ref", image.ref},
        {"digest", image.digest},
        {"imageId", image.image_id},
        {"pulledAt",
         std::chrono::duration_cast<std::chrono::seconds>(image.pulled_at.time_since_epoch())
             .count()},
    });
  }
  const nlohmann::json doc = {{"version", kFormatVersion}, {"images", std::move(list)}};
  return doc.dump(2) + "\n";
}

std::vector<PulledImage> PullRecord::parse(std::string_view text) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(Code::kInvalidArgument, fmt::format("not JSON at byte {}", e.byte));
  }
  if (!doc.is_object()) throw Error(Code::kInvalidArgument, "not a JSON object");
  const auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() ||
      version->get<int>() != kFormatVersion) {
    throw Error(Code::kInvalidArgument, fmt::format("version: must be {}", kFormatVersion));
  }
  const auto list = doc.find("images");
  if (list == doc.end() || !list->is_array()) {
    throw Error(Code::kInvalidArgument, "images: must be an array");
  }
  std::vector<PulledImage> out;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const auto& entry = (*list)[i];
    if (!entry.is_object()) {
      throw Error(Code::kInvalidArgument, fmt::format("images[{}]: must be an object", i));
    }
    PulledImage image{.ref = required_string(entry, "ref", i),
                      .digest = required_string(entry, "digest", i),
                      .image_id = required_string(entry, "imageId", i),
                      .pulled_at = {}};
    const auto at = entry.find("pulledAt");
    if (at == entry.end() || !at->is_number_integer()) {
      throw Error(Code::kInvalidArgument,
                  fmt::format("images[{}].pulledAt: must be an integer", i));
    }
    image.pulled_at =
        std::chrono::system_clock::time_point(std::chrono::seconds(at->get<std::int64_t>()));
    out.push_back(std::move(image));
  }
  return out;
}

PullRecord PullRecord::load(const fs::path& path) {
  PullRecord record(path);
  const std::optional<std::string> text = read_file(path);
  if (!text) return record;
  try {
    record.images_ = parse(*text);
  } catch (const Error& e) {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    fs::path preserved = path;
    preserved += fmt::format("{}{}", kCorruptSuffix, now);
    std::error_code ec;
    fs::rename(path, preserved, ec);
    if (ec) {
      throw Error(Code::kDataLoss,
                  fmt::format("loading pull record {}: {}; could not move it aside: {}",
                              path.string(), e.what(), ec.message()));
    }
    fsync_dir(path.parent_path().empty() ? fs::path(".") : path.parent_path());
    throw Error(Code::kDataLoss,
                fmt::format("loading pull record {}: {}; kept as {}, starting with an empty record",
                            path.string(), e.what(), preserved.string()));
  }
  return record;
}

void PullRecord::add(const PulledImage& image) {
  const std::lock_guard lock(mu_);
  const auto it = std::find_if(images_.begin(), images_.end(), [&](const PulledImage& p) {
    return p.ref == image.ref && p.digest == image.digest;
  });
  if (it != images_.end()) {
    *it = image;
  } else {
    images_.push_back(image);
  }
  save_locked();
}

bool PullRecord::remove(std::string_view ref, std::string_view digest) {
  const std::lock_guard lock(mu_);
  const auto removed = std::erase_if(
      images_, [&](const PulledImage& p) { return p.ref == ref && p.digest == digest; });
  if (removed == 0) return false;
  save_locked();
  return true;
}

std::vector<PulledImage> PullRecord::entries() const {
  const std::lock_guard lock(mu_);
  return images_;
}

void PullRecord::save_locked() const {
  if (!path_.parent_path().empty()) {
    std::error_code ec;
    fs::create_directories(path_.parent_path(), ec);
    if (ec) throw_errno(ec.value(), "creating the store directory for", path_.parent_path());
  }
  atomic_write_file(path_, serialize(images_), 0600);
}

}  // namespace stowage::agent
