// Fuzzes the JSON decoders of the stowage.io/v1alpha1 kinds (RegistryConfig, ImageCache,
// NodeCache), as the operator and agent read objects from the API server. Bad input must end in a
// stowage::Error, never a crash or another exception type. A decoded object must encode to JSON
// that decodes again, and encoding is stable from then on.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "api/image_cache.h"
#include "api/node_cache.h"
#include "api/registry_config.h"
#include "base/error.h"

namespace {

template <class T>
void round_trip(const nlohmann::json& doc) {
  T decoded;
  try {
    decoded = doc.get<T>();
  } catch (const stowage::Error&) {
    return;
  }
  const nlohmann::json once = decoded;
  T again;
  try {
    again = once.get<T>();
  } catch (const stowage::Error&) {
    __builtin_trap();  // what we wrote, we must read
  }
  const nlohmann::json twice = again;
  if (once != twice) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;
  round_trip<stowage::api::RegistryConfig>(doc);
  round_trip<stowage::api::ImageCache>(doc);
  round_trip<stowage::api::NodeCache>(doc);
  return 0;
}
