// Pacing of registries changes across nodes: a node "moves" while the registries hash of its
// NodeCache spec differs from the hash its agent reports applied. pace() decides which nodes get
// their target hash now, so that at most maxUnavailable nodes move at once and no node starts
// moving while some node reports Failed. Deterministic (nodes are taken in name order) and pure.
//   RolloutResult r = pace(nodes, MaxUnavailable::parse("10%").resolve(nodes.size()));
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stowage::op {

// The --max-unavailable flag: a count ("3") or a percentage of the rolled-out nodes ("10%").
struct MaxUnavailable {
  int value = 10;
  bool percent = true;

  // Throws InvalidArgument for anything but a non-negative integer, optionally followed by '%'
  // (at most 100%).
  static MaxUnavailable parse(std::string_view text);
  // The number of nodes that may move at once among `total`: a percentage rounds down; never
  // less than 1.
  int resolve(std::size_t total) const;
  std::string to_string() const;
  bool operator==(const MaxUnavailable&) const = default;
};

struct RolloutNode {
  std::string name{};
  std::optional<std::string> current{};  // the hash in the NodeCache spec now, if any
  std::optional<std::string> target{};   // the hash it should end up with; nullopt: keep current
  std::string applied{};                 // the hash the agent reports applied ("" if none)
  bool failed = false;                   // the agent reports registries state Failed
  bool operator==(const RolloutNode&) const = default;
};

// A node is moving while its spec hash differs from what its agent applied.
bool moving(const RolloutNode& node);

struct RolloutResult {
  // Per node, in the order given: the hash to put in its spec (nullopt: none, as before).
  std::vector<std::optional<std::string>> next{};
  int budget = 0;                      // nodes allowed to move at once
  int moving_before = 0;               // moving nodes in the input
  int moving_after = 0;                // moving nodes once `next` is written
  std::vector<std::string> started{};  // nodes that start moving now, by name
  std::vector<std::string> waiting{};  // nodes that need to move but must wait, by name
  std::vector<std::string> failed{};   // nodes reporting Failed, by name
  bool halted() const { return !failed.empty(); }
  bool operator==(const RolloutResult&) const = default;
};

// Decides the next spec hash of every node. A node already moving is retargeted freely (it
// moves either way); so is a node whose target is what it already applied. Any other node whose
// target differs from its spec starts moving only while fewer than `budget` nodes move and no
// node reports Failed, taking nodes in name order.
RolloutResult pace(const std::vector<RolloutNode>& nodes, int budget);

}  // namespace stowage::op
