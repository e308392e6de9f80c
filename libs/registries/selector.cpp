#include "registries/selector.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace stowage::registries {
namespace {

[[noreturn]] void invalid(std::string message) {
  throw Error(Code::kInvalidArgument, std::move(message));
}

std::string expect_string(const nlohmann::json& j, const std::string& field) {
  if (!j.is_string()) invalid(fmt::format("{}: must be a string", field));
  return j.get<std::string>();
}

}  // namespace

LabelSelector selector_from_json(const nlohmann::json& j, const std::string& field) {
  LabelSelector s;
  if (j.is_null()) return s;
  if (!j.is_object()) invalid(fmt::format("{}: must be an object", field));
  for (const auto& [k, v] : j.items()) {
    if (k == "matchLabels") {
      if (v.is_null()) continue;
      if (!v.is_object()) invalid(fmt::format("{}.matchLabels: must be an object", field));
      for (const auto& [lk, lv] : v.items()) {
        s.match_labels[lk] = expect_string(lv, fmt::format("{}.matchLabels[{}]", field, lk));
      }
    } else if (k == "matchExpressions") {
      if (v.is_null()) continue;
      if (!v.is_array()) invalid(fmt::format("{}.matchExpressions: must be a list", field));
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string f = fmt::format("{}.matchExpressions[{}]", field, i);
        const auto& e = v[i];
        if (!e.is_object()) invalid(fmt::format("{}: must be an object", f));
        LabelSelectorRequirement r;
        for (const auto& [ek, ev] : e.items()) {
          if (ek == "key") {
            r.key = expect_string(ev, f + ".key");
          } else if (ek == "operator") {
            r.op = expect_string(ev, f + ".operator");
          } else if (ek == "values") {
            if (ev.is_null()) continue;
            if (!ev.is_array()) invalid(fmt::format("{}.values: must be a list", f));
            for (size_t vi = 0; vi < ev.size(); ++vi) {
              r.values.push_back(expect_string(ev[vi], fmt::format("{}.values[{}]", f, vi)));
            }
          } else {
            invalid(fmt::format("{}.{}: unknown field", f, ek));
          }
        }
        if (r.key.empty()) invalid(fmt::format("{}.key: Required value", f));
        if (r.op == "In" || r.op == "NotIn") {
          if (r.values.empty()) {
            invalid(fmt::format(
                "{}.values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                f));
          }
        } else if (r.op == "Exists" || r.op == "DoesNotExist") {
          if (!r.values.empty()) {
            invalid(fmt::format(
                "{}.values: Forbidden: may not be specified when `operator` is 'Exists' or "
                "'DoesNotExist'",
                f));
          }
        } else {
          invalid(fmt::format(
              "{}.operator: Invalid value: \"{}\": not a valid selector operator (In, NotIn, "
              "Exists, DoesNotExist)",
              f, r.op));
        }
        s.match_expressions.push_back(std::move(r));
      }
    } else {
      invalid(fmt::format("{}.{}: unknown field", field, k));
    }
  }
  return s;
}

bool selector_matches(const LabelSelector& selector, const Labels& labels) {
  for (const auto& [k, v] : selector.match_labels) {
    const auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  for (const auto& r : selector.match_expressions) {
    const auto it = labels.find(r.key);
    const bool has = it != labels.end();
    const bool in_values =
        has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
    if (r.op == "In" && !in_values) return false;
    if (r.op == "NotIn" && in_values) return false;
    if (r.op == "Exists" && !has) return false;
    if (r.op == "DoesNotExist" && has) return false;
  }
  return true;
}

Labels parse_labels(const std::string& text) {
  Labels out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    if (!item.empty()) {
      const auto eq = item.find('=');
      const std::string key = item.substr(0, eq);
      if (key.empty()) invalid(fmt::format("invalid label \"{}\": empty key", item));
      out[key] = eq == std::string::npos ? "" : item.substr(eq + 1);
    }
    start = comma + 1;
  }
  return out;
}

}  // namespace stowage::registries
