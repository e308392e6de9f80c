// Fuzzes the manifest, index and config parsers. Bad input must end in a stowage::Error, never a
// crash or another exception type. Invariants: parse → serialize → parse gives the same value,
// serialization is a fixed point, and platform selection on any parsed index stays in bounds.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "base/error.h"
#include "oci/manifest.h"

namespace {

namespace oci = stowage::oci;

template <typename T, typename Parse>
void check_round_trip(const T& value, Parse parse) {
  const std::string bytes = oci::serialize(value);
  T back;
  try {
    back = parse(bytes);
  } catch (const stowage::Error&) {
    __builtin_trap();  // we wrote something we refuse
  }
  if (!(back == value)) __builtin_trap();
  if (oci::serialize(back) != bytes) __builtin_trap();
}

void check_selection(const std::vector<oci::Descriptor>& manifests) {
  for (const char* p : {"linux/amd64", "linux/arm64", "linux/arm/v6", "windows/amd64",
                        "linux/arm64/v9.3", "linux/riscv64/rva22u64"}) {
    const auto wanted = oci::parse_platform(p);
    if (const auto i = oci::select_platform(manifests, wanted)) {
      if (*i >= manifests.size()) __builtin_trap();
      if (!manifests[*i].platform || oci::is_attestation(manifests[*i])) __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  for (std::string_view content_type :
       {std::string_view(), oci::media::kDockerManifest, oci::media::kOciIndex,
        std::string_view("application/json; charset=utf-8")}) {
    try {
      const auto parsed = oci::parse_manifest(text, content_type);
      if (const auto* m = std::get_if<oci::ImageManifest>(&parsed)) {
        if (oci::detect_manifest_kind(text, content_type) != oci::ManifestKind::kImageManifest) {
          __builtin_trap();
        }
        check_round_trip(*m, [](std::string_view b) { return oci::parse_image_manifest(b); });
      } else {
        const auto& x = std::get<oci::ImageIndex>(parsed);
        if (oci::detect_manifest_kind(text, content_type) != oci::ManifestKind::kImageIndex) {
          __builtin_trap();
        }
        check_round_trip(x, [](std::string_view b) { return oci::parse_image_index(b); });
        check_selection(x.manifests);
        try {
          (void)oci::choose_platform(x, oci::host_platform());
        } catch (const stowage::Error&) {
        }
      }
    } catch (const stowage::Error&) {
    }
  }

  try {
    const oci::ImageConfig c = oci::parse_image_config(text);
    check_round_trip(c, [](std::string_view b) { return oci::parse_image_config(b); });
    (void)oci::normalize_platform(c.platform());
  } catch (const stowage::Error&) {
  }

  if (size < 256) {
    try {
      const oci::Platform p = oci::parse_platform(text);
      // Normalization is idempotent and what parse_platform returns re-parses to itself.
      if (!(oci::normalize_platform(p) == p)) __builtin_trap();
      if (!(oci::parse_platform(oci::format_platform(p)) == p)) __builtin_trap();
      if (oci::platform_preferences(p).empty()) __builtin_trap();
    } catch (const stowage::Error&) {
    }
  }
  (void)oci::manifest_digest(text);
  return 0;
}
