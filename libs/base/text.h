// Small text checks for outside input.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace stowage {

// The offset of the first byte that does not start or continue a well-formed UTF-8 sequence
// (overlong forms, surrogates and code points past U+10FFFF are ill-formed), or nullopt.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

}  // namespace stowage
