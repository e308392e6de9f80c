// Small text checks for outside input, and the guards every YAML reader applies before yaml-cpp
// sees hostile text (yaml-cpp 0.7 recurses on nesting, can loop on control characters, and its
// LoadAll can allocate without bound, so streams are split here and loaded one document at a time).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stowage {

// Standard base64 with padding (RFC 4648 section 4).
std::string base64_encode(std::string_view data);

// The offset of the first byte that does not start or continue a well-formed UTF-8 sequence
// (overlong forms, surrogates and code points past U+10FFFF are ill-formed), or nullopt.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

// Why `text` must not reach a YAML parser, or nullopt: a C0 control character other than tab, LF
// and CR, or DEL (not YAML c-printable); ill-formed UTF-8; or flow collections (`[`, `{` outside
// quoted scalars) nested deeper than `max_flow_depth`. The reason names the byte offset.
std::optional<std::string> unsafe_yaml_reason(std::string_view text, int max_flow_depth);

// One document of a YAML stream: its text, and the 0-based line of the stream where it starts.
struct YamlDocument {
  std::string text;
  int first_line = 0;
};

// Splits a YAML stream into documents at `---` and `...` lines, as kubectl does; documents with
// no content are dropped. Content after a `---` on the same line stays in its column.
std::vector<YamlDocument> split_yaml_documents(std::string_view text);

}  // namespace stowage
