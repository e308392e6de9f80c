// Fuzzes registries.conf parsing and validation. Invariant: whatever validates renders as v2 and
// the rendering parses back to the same model (render ∘ parse is the identity on valid input).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "registries/conf.h"
#include "registries/render.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace reg = stowage::registries;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  reg::Config c;
  try {
    c = reg::load_text(text, "fuzz.conf", reg::FileRole::kMain);
  } catch (const stowage::Error&) {
    return 0;
  }
  const std::string rendered = reg::render_v2(c, false);
  reg::Config back;
  try {
    back = reg::load_text(rendered, "rendered.conf", reg::FileRole::kMain);
  } catch (const stowage::Error&) {
    __builtin_trap();  // we rendered something we refuse
  }
  if (!(back == c)) __builtin_trap();
  try {
    (void)reg::render(c, reg::RenderFormat::kContainerd);
    (void)reg::render(c, reg::RenderFormat::kV1);
  } catch (const stowage::Error&) {
  }
  return 0;
}
