#include "base/text.h"

#include <gtest/gtest.h>

namespace stowage {
namespace {

TEST(Text, FindsInvalidUtf8) {
  const struct {
    std::string_view text;
    std::optional<std::size_t> bad;
  } cases[] = {
      {"plain ascii", std::nullopt},
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa6", std::nullopt},  // é € 📦
      {"a\xff", 1},
      {"\xc0\xaf", 0},               // overlong '/'
      {"\xe0\x80\xaf", 0},           // overlong
      {"\xed\xa0\x80", 0},           // surrogate
      {"\xf4\x90\x80\x80", 0},       // past U+10FFFF
      {"ab\xe2\x82", 2},             // truncated
      {"\xc3\x28", 0},               // bad continuation
      {"x\xf0\x9f\x93\xa6\x80", 5},  // stray continuation
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.text));
    EXPECT_EQ(find_invalid_utf8(c.text), c.bad);
  }
}

}  // namespace
}  // namespace stowage
