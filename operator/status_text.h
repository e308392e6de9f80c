// Text and conditions of the statuses the operator writes, shared by the planner and the
// MachineConfig planner so both bound and phrase their messages the same way. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "api/meta.h"

namespace stowage::op {

inline constexpr std::size_t kMaxMessage = 4096;   // a condition message
inline constexpr std::size_t kMaxListedItems = 5;  // names given in one message part

// `message`, cut to kMaxMessage bytes with "..." when longer.
std::string bounded(std::string message);
// `a, b, c (and 4 more)`: at most kMaxListedItems of `items`, in their order.
std::string list_some(const std::vector<std::string>& items);
// The same with each item in double quotes: `"a", "b" (and 4 more)`.
std::string quoted_list(const std::vector<std::string>& items);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
// A condition with a bounded message.
api::Condition condition(std::string_view type, bool status, std::string_view reason,
                         std::string message, std::int64_t generation);

}  // namespace stowage::op
