#include "operator/status_text.h"

#include <fmt/format.h>

#include <utility>

namespace stowage::op {

std::string bounded(std::string message) {
  if (message.size() > kMaxMessage) {
    message.resize(kMaxMessage - 3);
    message += "...";
  }
  return message;
}

std::string list_some(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < kMaxListedItems; ++i) {
    out += (i == 0 ? "" : ", ") + items[i];
  }
  if (items.size() > kMaxListedItems) {
    out += fmt::format(" (and {} more)", items.size() - kMaxListedItems);
  }
  return out;
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::vector<std::string> q;
  q.reserve(items.size());
  for (const auto& i : items) q.push_back("\"" + i + "\"");
  return list_some(q);
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : std::string(sep)) + p;
  return out;
}

api::Condition condition(std::string_view type, bool status, std::string_view reason,
                         std::string message, std::int64_t generation) {
  api::Condition c;
  c.type = std::string(type);
  c.status = status ? api::ConditionStatus::kTrue : api::ConditionStatus::kFalse;
  c.observed_generation = generation;
  c.reason = std::string(reason);
  c.message = bounded(std::move(message));
  return c;
}

}  // namespace stowage::op
