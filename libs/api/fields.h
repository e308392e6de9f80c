// Decoding helpers shared by the stowage.io/v1alpha1 JSON mappings: typed reads of one member
// that fail with an InvalidArgument naming the field by its path (`spec.images[2].name: must be a
// string`), and the string forms of the API's enums. Pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stowage::api::fields {

using nlohmann::json;

// Throws InvalidArgument "<path>: <what>".
[[noreturn]] void fail(std::string_view path, std::string_view what);

// "spec" + "images" -> "spec.images"; "spec.images" + 2 -> "spec.images[2]".
std::string member_path(std::string_view parent, std::string_view key);
std::string index_path(std::string_view parent, std::size_t index);

// Calls `handle(key, value, path)` for each member of the object `j` whose value is not null
// (null means absent, as in Go). `handle` returns false for a key it does not know, which fails
// with "<path>: unknown field" unless `allow_unknown`.
using MemberHandler =
    std::function<bool(const std::string& key, const json& value, const std::string& path)>;
void members(const json& j, std::string_view path, const MemberHandler& handle,
             bool allow_unknown = false);

std::string string_value(const json& j, std::string_view path);
bool bool_value(const json& j, std::string_view path);
std::int64_t int_value(const json& j, std::string_view path, std::int64_t min, std::int64_t max);
std::int32_t int32_value(const json& j, std::string_view path);  // >= 0
std::int64_t int64_value(const json& j, std::string_view path);  // >= 0
std::vector<std::string> strings_value(const json& j, std::string_view path);
std::map<std::string, std::string> string_map_value(const json& j, std::string_view path);
// An RFC 3339 date-time (metav1.Time).
std::chrono::system_clock::time_point time_value(const json& j, std::string_view path);

// Decodes a JSON list item by item with `item(value, "<path>[i]")`.
template <class T, class F>
std::vector<T> list_value(const json& j, std::string_view path, F&& item) {
  if (!j.is_array()) fail(path, "must be a list");
  std::vector<T> out;
  out.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i) out.push_back(item(j[i], index_path(path, i)));
  return out;
}

// A list-map key check: fails with `<path>[i].<key_name>: Duplicate value: "<v>"` (the API
// server's wording) when two items have the same key.
template <class T, class KeyOf>
void require_unique(const std::vector<T>& items, std::string_view path, std::string_view key_name,
                    KeyOf&& key_of) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    for (std::size_t k = 0; k < i; ++k) {
      if (key_of(items[k]) == key_of(items[i])) {
        fail(member_path(index_path(path, i), key_name),
             "Duplicate value: \"" + std::string(key_of(items[i])) + "\"");
      }
    }
  }
}

// An enum's wire names, in the order of its enumerators.
template <class E>
struct EnumNames {
  std::span<const std::pair<E, std::string_view>> names;

  std::string_view name(E value) const {
    for (const auto& [v, n] : names) {
      if (v == value) return n;
    }
    return {};
  }
  std::optional<E> parse(std::string_view text) const {
    for (const auto& [v, n] : names) {
      if (n == text) return v;
    }
    return std::nullopt;
  }
  // Fails with `<path>: Unsupported value: "x": supported values: "A", "B"` (the API server's
  // wording) for a string that is not one of the names.
  E decode(const json& j, std::string_view path) const {
    const std::string text = string_value(j, path);
    if (const auto v = parse(text)) return *v;
    std::string supported;
    for (const auto& [v, n] : names) {
      supported += (supported.empty() ? "\"" : ", \"") + std::string(n) + "\"";
    }
    fail(path, "Unsupported value: \"" + text + "\": supported values: " + supported);
  }
};

}  // namespace stowage::api::fields
