#include "operator/rollout.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <numeric>

#include "base/error.h"

namespace stowage::op {

MaxUnavailable MaxUnavailable::parse(std::string_view text) {
  MaxUnavailable m;
  std::string_view digits = text;
  m.percent = digits.ends_with('%');
  if (m.percent) digits.remove_suffix(1);
  int value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || value < 0) {
    throw_invalid(fmt::format(
        "invalid max-unavailable \"{}\": want a count (\"3\") or a percentage (\"10%\")", text));
  }
  if (m.percent && value > 100) {
    throw_invalid(
        fmt::format("invalid max-unavailable \"{}\": a percentage is at most 100%", text));
  }
  m.value = value;
  return m;
}

int MaxUnavailable::resolve(std::size_t total) const {
  const long long n = percent ? static_cast<long long>(total) * value / 100 : value;
  return static_cast<int>(std::max(1LL, n));
}

std::string MaxUnavailable::to_string() const {
  return percent ? fmt::format("{}%", value) : fmt::format("{}", value);
}

bool moving(const RolloutNode& node) {
  return node.current && *node.current != node.applied;
}

RolloutResult pace(const std::vector<RolloutNode>& nodes, int budget) {
  RolloutResult r;
  r.budget = budget;
  r.next.resize(nodes.size());
  std::vector<std::size_t> order(nodes.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return nodes[a].name < nodes[b].name; });

  // First what does not add a moving node: keeping, retargeting a node already moving, or
  // sending a node to the hash it already runs.
  std::vector<std::size_t> candidates;
  for (const std::size_t i : order) {
    const RolloutNode& n = nodes[i];
    if (moving(n)) ++r.moving_before;
    if (n.failed) r.failed.push_back(n.name);
    r.next[i] = n.current;
    if (!n.target || n.target == n.current) continue;
    if (moving(n) || *n.target == n.applied) {
      r.next[i] = n.target;
    } else {
      candidates.push_back(i);
    }
  }
  int now_moving = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (r.next[i] && *r.next[i] != nodes[i].applied) ++now_moving;
  }
  for (const std::size_t i : candidates) {
    if (r.failed.empty() && now_moving < budget) {
      r.next[i] = nodes[i].target;
      r.started.push_back(nodes[i].name);
      ++now_moving;
    } else {
      r.waiting.push_back(nodes[i].name);
    }
  }
  r.moving_after = now_moving;
  return r;
}

}  // namespace stowage::op
