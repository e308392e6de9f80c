// Feeds arbitrary bytes to the reference and digest parsers. Refusals (stowage::Error) are
// expected; anything accepted must keep the invariants below, or the target traps.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"
#include "reference/reference.h"

namespace {

void check(bool ok) {
  if (!ok) {
    __builtin_trap();
  }
}

void check_strict(std::string_view input) {
  stowage::Reference ref;
  try {
    ref = stowage::Reference::parse(input);
  } catch (const stowage::Error&) {
    return;
  }
  check(ref.string() == input);  // strict parsing changes nothing
  check(stowage::is_short_name(input) == ref.domain.empty());
  check(stowage::Reference::parse(ref.string()) == ref);
  check(!ref.path.empty() && ref.path.size() <= stowage::kPathMaxLength);
  check(!ref.tag || ref.tag->size() <= stowage::kTagMaxLength);
  check(!ref.digest || stowage::Digest::is_valid(*ref.digest));
}

void check_normalized(std::string_view input) {
  stowage::Reference ref;
  try {
    ref = stowage::Reference::parse_normalized(input);
  } catch (const stowage::Error&) {
    return;
  }
  check(!ref.domain.empty() && ref.domain != stowage::kLegacyDefaultDomain);
  check(stowage::Reference::parse(ref.string()) == ref);  // canonical form is strict-valid
  check(stowage::Reference::parse_normalized(ref.string()) == ref);
  check(stowage::Reference::parse_normalized(ref.familiar()) == ref);
  check(ref.familiar().size() <= ref.string().size());
  const stowage::Reference tagged = ref.with_default_tag();
  check(tagged.tag || tagged.digest);
  check(stowage::Reference::parse_normalized(tagged.string()) == tagged);
}

void check_digest(std::string_view input) {
  const bool valid = stowage::Digest::is_valid(input);
  try {
    const stowage::Digest digest = stowage::Digest::parse(input);
    check(valid && digest.string() == input);
  } catch (const stowage::Error&) {
    check(!valid);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_strict(input);
  check_normalized(input);
  check_digest(input);
  return 0;
}
