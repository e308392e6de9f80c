// Kubernetes label selectors (metav1.LabelSelector): matchLabels and matchExpressions with the
// In / NotIn / Exists / DoesNotExist operators, decoded from JSON and matched against a node's
// labels. An empty selector matches every node. Pure.
#pragma once

#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace stowage::registries {

using Labels = std::map<std::string, std::string>;

struct LabelSelectorRequirement {
  std::string key;
  std::string op;  // In, NotIn, Exists, DoesNotExist
  std::vector<std::string> values;
  bool operator==(const LabelSelectorRequirement&) const = default;
};

struct LabelSelector {
  Labels match_labels;
  std::vector<LabelSelectorRequirement> match_expressions;
  bool empty() const { return match_labels.empty() && match_expressions.empty(); }
  bool operator==(const LabelSelector&) const = default;
};

// Decodes a selector; `field` is the path used in error messages (e.g. "spec.nodeSelector").
// Throws InvalidArgument for unknown operators, values on Exists/DoesNotExist, or no values on
// In/NotIn, as the API server's validation does.
LabelSelector selector_from_json(const nlohmann::json& j, const std::string& field);

bool selector_matches(const LabelSelector& selector, const Labels& labels);

// Parses "k=v,k2=v2" (the --node-labels flag); a key without '=' has the empty value.
Labels parse_labels(const std::string& text);

}  // namespace stowage::registries
