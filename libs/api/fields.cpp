#include "api/fields.h"

#include <fmt/format.h>

#include <limits>

#include "base/error.h"
#include "kube/encoding.h"

namespace stowage::api::fields {

void fail(std::string_view path, std::string_view what) {
  throw Error(Code::kInvalidArgument, fmt::format("{}: {}", path, what));
}

std::string member_path(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return fmt::format("{}.{}", parent, key);
}

std::string index_path(std::string_view parent, std::size_t index) {
  return fmt::format("{}[{}]", parent, index);
}

void members(const json& j, std::string_view path, const MemberHandler& handle,
             bool allow_unknown) {
  if (!j.is_object()) fail(path, "must be an object");
  for (const auto& [key, value] : j.items()) {
    if (value.is_null()) continue;
    const std::string p = member_path(path, key);
    if (!handle(key, value, p) && !allow_unknown) fail(p, "unknown field");
  }
}

std::string string_value(const json& j, std::string_view path) {
  if (!j.is_string()) fail(path, "must be a string");
  return j.get<std::string>();
}

bool bool_value(const json& j, std::string_view path) {
  if (!j.is_boolean()) fail(path, "must be a boolean");
  return j.get<bool>();
}

std::int64_t int_value(const json& j, std::string_view path, std::int64_t min, std::int64_t max) {
  if (!j.is_number_integer()) fail(path, "must be an integer");
  if (j.is_number_unsigned() &&
      j.get<std::uint64_t>() >
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    fail(path, fmt::format("must be between {} and {}", min, max));
  }
  const auto v = j.get<std::int64_t>();
  if (v < min || v > max) fail(path, fmt::format("must be between {} and {}", min, max));
  return v;
}

std::int32_t int32_value(const json& j, std::string_view path) {
  return static_cast<std::int32_t>(int_value(j, path, 0, std::numeric_limits<std::int32_t>::max()));
}

std::int64_t int64_value(const json& j, std::string_view path) {
  return int_value(j, path, 0, std::numeric_limits<std::int64_t>::max());
}

std::vector<std::string> strings_value(const json& j, std::string_view path) {
  return list_value<std::string>(
      j, path, [](const json& v, const std::string& p) { return string_value(v, p); });
}

std::map<std::string, std::string> string_map_value(const json& j, std::string_view path) {
  if (!j.is_object()) fail(path, "must be an object");
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : j.items()) out[k] = string_value(v, fmt::format("{}[{}]", path, k));
  return out;
}

std::chrono::system_clock::time_point time_value(const json& j, std::string_view path) {
  const std::string text = string_value(j, path);
  // system_clock counts nanoseconds in 64 bits: years outside 1678..2261 do not fit.
  const bool year_fits =
      text.size() >= 4 && text.substr(0, 4) >= "1678" && text.substr(0, 4) <= "2261";
  const auto t = year_fits ? kube::parse_rfc3339(text) : std::nullopt;
  if (!t) fail(path, fmt::format("Invalid value: \"{}\": must be an RFC 3339 date-time", text));
  return *t;
}

}  // namespace stowage::api::fields
