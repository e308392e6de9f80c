// The YAML text guards added to base/text.h for the kubeconfig parser (shared with any other
// YAML reader).
#include <gtest/gtest.h>

#include "base/text.h"

namespace stowage {
namespace {

TEST(UnsafeYamlReason, RefusesControlCharactersBadUtf8AndDeepFlow) {
  EXPECT_EQ(unsafe_yaml_reason("a: b\n\tc: 'd'\r\n", 4), std::nullopt);
  EXPECT_EQ(unsafe_yaml_reason(std::string("a: \x01", 4), 4), "control character 0x01 at byte 3");
  EXPECT_EQ(unsafe_yaml_reason("a: \x7f", 4), "control character 0x7f at byte 3");
  EXPECT_EQ(unsafe_yaml_reason("a: \xc3\x28", 4), "not UTF-8 at byte 3");
  EXPECT_EQ(unsafe_yaml_reason("[[[[]]]]", 4), std::nullopt);
  EXPECT_EQ(unsafe_yaml_reason("[[[{[]}]]]", 4), "nested deeper than 4 levels at byte 4");
  EXPECT_EQ(unsafe_yaml_reason("a: '[[[[[[' \nb: \"{{{{{{\"", 4), std::nullopt);  // quoted
}

TEST(SplitYamlDocuments, SplitsAtMarkersAndKeepsLines) {
  const auto docs = split_yaml_documents("# head\na: 1\n---\nb: 2\n--- {c: 3}\n...\n# only\n---\n");
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "# head\na: 1\n");
  EXPECT_EQ(docs[0].first_line, 0);
  EXPECT_EQ(docs[1].text, "b: 2\n");
  EXPECT_EQ(docs[1].first_line, 3);
  EXPECT_EQ(docs[2].text, "    {c: 3}\n");
  EXPECT_EQ(docs[2].first_line, 4);
  EXPECT_TRUE(split_yaml_documents("").empty());
  EXPECT_TRUE(split_yaml_documents("# nothing\n---\n\n").empty());
  EXPECT_EQ(split_yaml_documents("----\n").size(), 1u);  // not a marker
}

}  // namespace
}  // namespace stowage
