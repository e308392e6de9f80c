// Fuzzes RegistryConfig YAML/JSON decoding, merging and rendering. Bad input must end in a
// stowage::Error, never a crash or another exception type.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "registries/render.h"
#include "registries/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace reg = stowage::registries;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto configs = reg::read_registry_configs(text, "fuzz.yaml");
    const reg::Config c = reg::merge_registry_configs(std::move(configs));
    const std::string v2 = reg::render_v2(c, false);
    const reg::Config back = reg::load_text(v2, "rendered", reg::FileRole::kDropIn);
    if (!(back == c)) __builtin_trap();
  } catch (const stowage::Error&) {
  }
  return 0;
}
