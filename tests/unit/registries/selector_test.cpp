#include "registries/selector.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace stowage::registries {
namespace {

using nlohmann::json;

TEST(LabelSelector, MatchesTable) {
  const Labels worker = {{"node-role.kubernetes.io/worker", ""}, {"zone", "a"}, {"gpu", "true"}};
  const struct {
    const char* name;
    const char* selector;
    bool match;
  } cases[] = {
      {"empty selects all", "{}", true},
      {"null selects all", "null", true},
      {"matchLabels hit", R"({"matchLabels":{"zone":"a"}})", true},
      {"matchLabels empty value", R"({"matchLabels":{"node-role.kubernetes.io/worker":""}})", true},
      {"matchLabels miss value", R"({"matchLabels":{"zone":"b"}})", false},
      {"matchLabels missing key", R"({"matchLabels":{"rack":"1"}})", false},
      {"matchLabels all must hold", R"({"matchLabels":{"zone":"a","gpu":"false"}})", false},
      {"In hit", R"({"matchExpressions":[{"key":"zone","operator":"In","values":["a","b"]}]})",
       true},
      {"In miss", R"({"matchExpressions":[{"key":"zone","operator":"In","values":["b"]}]})", false},
      {"In on missing key",
       R"({"matchExpressions":[{"key":"rack","operator":"In","values":["1"]}]})", false},
      {"NotIn hit", R"({"matchExpressions":[{"key":"zone","operator":"NotIn","values":["b"]}]})",
       true},
      {"NotIn miss", R"({"matchExpressions":[{"key":"zone","operator":"NotIn","values":["a"]}]})",
       false},
      {"NotIn on missing key",
       R"({"matchExpressions":[{"key":"rack","operator":"NotIn","values":["1"]}]})", true},
      {"Exists", R"({"matchExpressions":[{"key":"gpu","operator":"Exists"}]})", true},
      {"Exists miss", R"({"matchExpressions":[{"key":"rack","operator":"Exists"}]})", false},
      {"DoesNotExist", R"({"matchExpressions":[{"key":"rack","operator":"DoesNotExist"}]})", true},
      {"DoesNotExist miss", R"({"matchExpressions":[{"key":"gpu","operator":"DoesNotExist"}]})",
       false},
      {"labels and expressions AND",
       R"({"matchLabels":{"zone":"a"},"matchExpressions":[{"key":"gpu","operator":"DoesNotExist"}]})",
       false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(
        selector_matches(selector_from_json(json::parse(c.selector), "spec.nodeSelector"), worker),
        c.match);
  }
}

TEST(LabelSelector, RefusesInvalidWithFieldPath) {
  const struct {
    const char* selector;
    const char* error;
  } cases[] = {
      {R"({"matchExpressions":[{"key":"a","operator":"Has"}]})",
       "spec.nodeSelector.matchExpressions[0].operator: Invalid value: \"Has\": not a valid "
       "selector operator (In, NotIn, Exists, DoesNotExist)"},
      {R"({"matchExpressions":[{"key":"a","operator":"In"}]})",
       "spec.nodeSelector.matchExpressions[0].values: Required value: must be specified when "
       "`operator` is 'In' or 'NotIn'"},
      {R"({"matchExpressions":[{"key":"a","operator":"Exists","values":["x"]}]})",
       "spec.nodeSelector.matchExpressions[0].values: Forbidden: may not be specified when "
       "`operator` is 'Exists' or 'DoesNotExist'"},
      {R"({"matchExpressions":[{"operator":"Exists"}]})",
       "spec.nodeSelector.matchExpressions[0].key: Required value"},
      {R"({"matchLabels":{"a":1}})", "spec.nodeSelector.matchLabels[a]: must be a string"},
      {R"({"matchLabel":{}})", "spec.nodeSelector.matchLabel: unknown field"},
      {R"([])", "spec.nodeSelector: must be an object"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.selector);
    try {
      selector_from_json(json::parse(c.selector), "spec.nodeSelector");
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), c.error);
    }
  }
}

TEST(LabelSelector, ParsesLabelFlag) {
  EXPECT_EQ(parse_labels("a=1,b=,c"), (Labels{{"a", "1"}, {"b", ""}, {"c", ""}}));
  EXPECT_EQ(parse_labels(""), Labels{});
  EXPECT_EQ(parse_labels("node-role.kubernetes.io/worker="),
            (Labels{{"node-role.kubernetes.io/worker", ""}}));
  EXPECT_THROW(parse_labels("=x"), Error);
}

}  // namespace
}  // namespace stowage::registries
