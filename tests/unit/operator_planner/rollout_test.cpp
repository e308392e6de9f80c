// Rollout pacing: the max-unavailable flag, pace() on its own, and whole rollouts through the
// planner with agents applying (or failing) between plans.
#include "operator/rollout.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "fixtures.h"
#include "operator/planner.h"

namespace stowage::op {
namespace {

using namespace stowage::op::testing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(MaxUnavailable, ParsesCountsAndPercentages) {
  EXPECT_EQ(MaxUnavailable::parse("10%"), (MaxUnavailable{10, true}));
  EXPECT_EQ(MaxUnavailable::parse("3"), (MaxUnavailable{3, false}));
  EXPECT_EQ(MaxUnavailable::parse("0%"), (MaxUnavailable{0, true}));
  EXPECT_EQ(MaxUnavailable::parse("100%").to_string(), "100%");
  for (const auto* bad : {"", "%", "x", "-1", "10 %", "101%", "1.5", "3x", "99999999999"}) {
    EXPECT_THROW(MaxUnavailable::parse(bad), Error) << bad;
  }
}

TEST(MaxUnavailable, PercentRoundsDownWithAMinimumOfOne) {
  struct Case {
    const char* flag;
    std::size_t total;
    int want;
  };
  for (const auto& c : {Case{"10%", 10, 1}, Case{"10%", 25, 2}, Case{"10%", 5, 1},
                        Case{"10%", 0, 1}, Case{"10%", 5000, 500}, Case{"0%", 100, 1},
                        Case{"100%", 7, 7}, Case{"3", 2, 3}, Case{"0", 10, 1}}) {
    EXPECT_EQ(MaxUnavailable::parse(c.flag).resolve(c.total), c.want)
        << c.flag << " of " << c.total;
  }
  EXPECT_EQ(MaxUnavailable{}.to_string(), "10%");  // the default
}

RolloutNode rn(std::string name, std::optional<std::string> current, std::string target,
               std::string applied, bool failed = false) {
  RolloutNode n;
  n.name = std::move(name);
  n.current = std::move(current);
  n.target = std::move(target);
  n.applied = std::move(applied);
  n.failed = failed;
  return n;
}

TEST(Pace, StartsNodesInNameOrderUpToTheBudget) {
  const std::vector<RolloutNode> nodes = {rn("c", "h1", "h2", "h1"), rn("a", "h1", "h2", "h1"),
                                          rn("b", "h1", "h2", "h1")};
  const RolloutResult r = pace(nodes, 2);
  EXPECT_THAT(r.started, ElementsAre("a", "b"));
  EXPECT_THAT(r.waiting, ElementsAre("c"));
  EXPECT_EQ(r.next, (std::vector<std::optional<std::string>>{"h1", "h2", "h2"}));
  EXPECT_EQ(r.moving_before, 0);
  EXPECT_EQ(r.moving_after, 2);
}

TEST(Pace, MovingNodesUseTheBudget) {
  const std::vector<RolloutNode> nodes = {rn("a", "h2", "h2", "h1"), rn("b", "h1", "h2", "h1")};
  const RolloutResult r = pace(nodes, 1);
  EXPECT_THAT(r.started, IsEmpty());
  EXPECT_THAT(r.waiting, ElementsAre("b"));
  EXPECT_EQ(r.moving_after, 1);
}

TEST(Pace, ANodeAlreadyMovingIsRetargetedEvenWhenHalted) {
  const std::vector<RolloutNode> nodes = {rn("a", "h2", "h3", "h1", /*failed=*/true),
                                          rn("b", "h1", "h3", "h1")};
  const RolloutResult r = pace(nodes, 5);
  EXPECT_EQ(r.next[0], "h3");  // the fix reaches the failed node
  EXPECT_EQ(r.next[1], "h1");  // but nobody else starts
  EXPECT_TRUE(r.halted());
  EXPECT_THAT(r.failed, ElementsAre("a"));
  EXPECT_THAT(r.waiting, ElementsAre("b"));
}

TEST(Pace, GoingBackToTheAppliedHashIsFreeAndFreesBudget) {
  const std::vector<RolloutNode> nodes = {rn("a", "h2", "h1", "h1"), rn("b", "h1", "h3", "h1")};
  const RolloutResult r = pace(nodes, 1);
  EXPECT_EQ(r.next[0], "h1");
  EXPECT_EQ(r.next[1], "h3");
  EXPECT_EQ(r.moving_before, 1);
  EXPECT_EQ(r.moving_after, 1);
}

TEST(Pace, NoTargetKeepsTheCurrentSpec) {
  RolloutNode keep = rn("a", "h1", "", "h1");
  keep.target.reset();
  RolloutNode none = rn("b", std::nullopt, "", "");
  none.target.reset();
  const RolloutResult r = pace({keep, none}, 1);
  EXPECT_EQ(r.next[0], "h1");
  EXPECT_EQ(r.next[1], std::nullopt);
}

TEST(Pace, ANewNodeCountsAsMovingUntilItReports) {
  const std::vector<RolloutNode> nodes = {rn("a", std::nullopt, "h1", ""),
                                          rn("b", std::nullopt, "h1", "")};
  const RolloutResult r = pace(nodes, 1);
  EXPECT_THAT(r.started, ElementsAre("a"));
  EXPECT_EQ(r.next[1], std::nullopt);
}

// Runs a whole rollout through the planner: after each plan, every moving node applies. Returns
// the number of nodes that moved at once in each round.
std::vector<int> rollout_rounds(int nodes, const char* max_unavailable) {
  PlannerInput in;
  for (int i = 0; i < nodes; ++i) in.nodes.push_back(node(fmt::format("node-{:02}", i)));
  in.max_unavailable = MaxUnavailable::parse("100%");
  in.registry_configs = {registry_config("r", R"({"unqualifiedSearchRegistries": ["a.io"]})")};
  in = after_writes(in, plan_cluster(in));
  agents_apply_all(in);
  in = after_writes(in, plan_cluster(in));

  in.max_unavailable = MaxUnavailable::parse(max_unavailable);
  in.registry_configs[0].spec.unqualified_search_registries = std::vector<std::string>{"b.io"};
  std::vector<int> moving;
  for (int round = 0; round < 100; ++round) {
    const Plan plan = plan_cluster(in);
    int writes = 0;
    for (const auto& nc : plan.node_caches) writes += nc.write ? 1 : 0;
    if (writes == 0) break;
    moving.push_back(plan.rollout.moving_after);
    EXPECT_EQ(static_cast<int>(plan.rollout.started.size()), writes);
    in = after_writes(in, plan);
    // Before the agents report, planning again starts nobody.
    EXPECT_THAT(plan_cluster(in).rollout.started, IsEmpty());
    agents_apply_all(in);
  }
  return moving;
}

TEST(Rollout, TenNodesAtTenPercentMoveOneAtATime) {
  EXPECT_EQ(rollout_rounds(10, "10%"), std::vector<int>(10, 1));
}

TEST(Rollout, TwentyFiveNodesAtTenPercentMoveTwoAtATime) {
  std::vector<int> want(12, 2);
  want.push_back(1);
  EXPECT_EQ(rollout_rounds(25, "10%"), want);
}

TEST(Rollout, AFailedNodeHaltsTheRolloutAndDegradesTheConfig) {
  PlannerInput in;
  for (int i = 0; i < 10; ++i) in.nodes.push_back(node(fmt::format("node-{:02}", i)));
  in.registry_configs = {registry_config("r", R"({"unqualifiedSearchRegistries": ["a.io"]})")};
  in.max_unavailable = MaxUnavailable::parse("100%");
  in = after_writes(in, plan_cluster(in));
  agents_apply_all(in);
  in = after_writes(in, plan_cluster(in));
  in.max_unavailable = MaxUnavailable::parse("2");
  in.registry_configs[0].spec.unqualified_search_registries = std::vector<std::string>{"b.io"};

  Plan plan = plan_cluster(in);
  EXPECT_THAT(plan.rollout.started, ElementsAre("node-00", "node-01"));
  in = after_writes(in, plan);
  agent_reports(in, "node-00", api::RegistriesState::kApplied);
  agent_reports(in, "node-01", api::RegistriesState::kFailed,
                "validating registries: invalid location");
  for (int i = 0; i < 3; ++i) {
    plan = plan_cluster(in);
    EXPECT_THAT(plan.rollout.started, IsEmpty());
    EXPECT_TRUE(plan.rollout.halted());
    EXPECT_EQ(plan.rollout.waiting.size(), 8u);
    in = after_writes(in, plan);
  }
  const auto& st = rc_status(plan, "r").status;
  const auto* degraded = api::find_condition(st.conditions, "Degraded");
  ASSERT_NE(degraded, nullptr);
  EXPECT_EQ(degraded->status, api::ConditionStatus::kTrue);
  EXPECT_EQ(degraded->reason, "NodeFailed");
  EXPECT_THAT(degraded->message, HasSubstr("node-01"));
  EXPECT_THAT(degraded->message, HasSubstr("validating registries: invalid location"));

  // The node recovers: the rollout resumes.
  agent_reports(in, "node-01", api::RegistriesState::kApplied);
  plan = plan_cluster(in);
  EXPECT_THAT(plan.rollout.started, ElementsAre("node-02", "node-03"));
  EXPECT_EQ(condition(rc_status(plan, "r").status.conditions, "Degraded").status,
            api::ConditionStatus::kFalse);
}

}  // namespace
}  // namespace stowage::op
