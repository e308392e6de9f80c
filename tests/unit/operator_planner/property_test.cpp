// Seeded random clusters: planning is deterministic (also under shuffled inputs), stable once its
// writes are done, and never lets more than maxUnavailable nodes move at once, while agents apply
// or fail at random between plans.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "fixtures.h"
#include "operator/planner.h"

namespace stowage::op {
namespace {

using namespace stowage::op::testing;

struct Random {
  std::mt19937 gen;
  int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(gen); }
  bool chance(int percent) { return below(100) < percent; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<std::size_t>(below(static_cast<int>(v.size())))];
  }
};

const std::vector<std::string> kZones = {"a", "b", "c"};
const std::vector<std::string> kHosts = {"quay.io", "docker.io", "registry.corp:5000", "q.io"};
const std::vector<std::string> kImages = {
    "quay.io/x:1", "quay.io/y:2", "docker.io/z:3",
    "quay.io/w@sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
    "q.io/v:latest"};

std::string random_rc_spec(Random& r) {
  std::string spec = fmt::format(R"({{"priority": {})", r.below(3));
  if (r.chance(60)) {
    spec += fmt::format(R"(, "nodeSelector": {{"matchLabels": {{"zone": "{}"}}}})", r.pick(kZones));
  }
  if (r.chance(50))
    spec += fmt::format(R"(, "unqualifiedSearchRegistries": ["{}"])", r.pick(kHosts));
  if (r.chance(40)) spec += fmt::format(R"(, "blockedRegistries": ["{}"])", r.pick(kHosts));
  if (r.chance(50)) {
    // Sometimes conflicting with another config's table for the same location.
    spec += fmt::format(R"(, "registries": [{{"prefix": "{}/{}", "location": "{}", "insecure": {},
        "mirrors": [{{"location": "mirror{}.corp"}}]}}])",
                        r.pick(kHosts), r.chance(50) ? "a" : "b", r.pick(kHosts),
                        r.chance(50) ? "true" : "false", r.below(3));
  }
  return spec + "}";
}

PlannerInput random_cluster(Random& r) {
  PlannerInput in;
  const int nodes = 1 + r.below(30);
  for (int i = 0; i < nodes; ++i) {
    in.nodes.push_back(node(fmt::format("n{:02}", i), {{"zone", r.pick(kZones)}}));
  }
  const int rcs = r.below(5);
  for (int i = 0; i < rcs; ++i)
    in.registry_configs.push_back(registry_config(fmt::format("rc{}", i), random_rc_spec(r)));
  const int ics = r.below(5);
  for (int i = 0; i < ics; ++i) {
    std::vector<std::string> images;
    for (const auto& img : kImages) {
      if (r.chance(40)) images.push_back(img);
    }
    if (images.empty()) images.push_back(kImages[0]);
    auto ic = image_cache(r.chance(50) ? "ns1" : "ns2", fmt::format("ic{}", i), images, r.below(3));
    if (r.chance(50))
      ic.spec.export_ =
          api::ImageExport{api::ExportFormat::kDockerArchive, r.chance(50) ? "a.tar" : "b.tar"};
    if (r.chance(30)) ic.spec.node_selector.match_labels = {{"zone", r.pick(kZones)}};
    if (r.chance(30)) ic.spec.image_pull_secrets = {{"pull"}};
    in.image_caches.push_back(std::move(ic));
  }
  const std::vector<std::string> digests = {std::string(kDigestA), std::string(kDigestB),
                                            std::string(kDigestC)};
  for (const auto& img : kImages) {
    if (r.chance(70)) {
      in.digests[img] = r.pick(digests);
    } else if (r.chance(50)) {
      in.unresolved[img] = {"Unavailable", "registry down"};
    }
  }
  in.max_unavailable = r.chance(50) ? MaxUnavailable::parse(fmt::format("{}%", 5 + r.below(40)))
                                    : MaxUnavailable::parse(fmt::format("{}", r.below(4)));
  return in;
}

// The nodes moving (spec hash != applied hash) among the planned NodeCaches.
int moving_nodes(const PlannerInput& in) {
  int n = 0;
  for (const auto& nc : in.node_caches) {
    if (!nc.spec->registries) continue;
    const std::string applied = nc.status.registries ? nc.status.registries->applied_hash : "";
    if (nc.spec->registries->hash != applied) ++n;
  }
  return n;
}

TEST(PlannerProperty, StableDeterministicAndPaced) {
  int waited = 0, halted = 0, invalid = 0;  // the runs must reach each situation
  for (unsigned seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Random r{std::mt19937(seed)};
    PlannerInput in = random_cluster(r);
    const int budget = in.max_unavailable.resolve(in.nodes.size());
    for (int round = 0; round < 12; ++round) {
      SCOPED_TRACE(::testing::Message() << "round " << round);
      const Plan plan = plan_cluster(in);
      ASSERT_EQ(plan, plan_cluster(in));

      PlannerInput shuffled = in;
      std::shuffle(shuffled.nodes.begin(), shuffled.nodes.end(), r.gen);
      std::shuffle(shuffled.registry_configs.begin(), shuffled.registry_configs.end(), r.gen);
      std::shuffle(shuffled.image_caches.begin(), shuffled.image_caches.end(), r.gen);
      std::shuffle(shuffled.node_caches.begin(), shuffled.node_caches.end(), r.gen);
      ASSERT_EQ(plan, plan_cluster(shuffled));

      waited += plan.rollout.waiting.empty() ? 0 : 1;
      halted += plan.rollout.halted() ? 1 : 0;
      for (const auto& s : plan.registry_configs) {
        const auto* d = api::find_condition(s.status.conditions, "Degraded");
        invalid += d != nullptr && d->reason == "InvalidConfig" ? 1 : 0;
      }
      const int before = moving_nodes(in);
      in = after_writes(in, plan);
      const int after = moving_nodes(in);
      ASSERT_LE(after, std::max(before, budget));
      ASSERT_LE(after, budget);  // every cluster starts with nothing moving
      const Plan again = plan_cluster(in);
      for (const auto& nc : again.node_caches) ASSERT_FALSE(nc.write) << nc.name;
      for (const auto& cm : again.config_maps) ASSERT_FALSE(cm.create) << cm.name;
      ASSERT_TRUE(again.config_maps_to_delete.empty()) << again.config_maps_to_delete[0];
      for (const auto& s : again.registry_configs) ASSERT_FALSE(s.changed) << s.name;
      for (const auto& s : again.image_caches) ASSERT_FALSE(s.changed) << s.name;

      // The agents: most moving nodes apply, a few fail, some recover; specs change sometimes.
      for (auto& nc : in.node_caches) {
        if (!nc.spec->registries) continue;
        if (!nc.status.registries) nc.status.registries.emplace();
        auto& st = *nc.status.registries;
        if (st.state == api::RegistriesState::kFailed) {
          if (r.chance(50)) st.state = api::RegistriesState::kApplied;
          continue;
        }
        if (nc.spec->registries->hash == st.applied_hash) continue;
        if (r.chance(10)) {
          st.state = api::RegistriesState::kFailed;
          st.message = "reload failed";
        } else if (r.chance(70)) {
          st.applied_hash = nc.spec->registries->hash;
          st.state = api::RegistriesState::kApplied;
        }
      }
      if (r.chance(30) && !in.registry_configs.empty()) {
        in.registry_configs[0].spec = registry_config("x", random_rc_spec(r)).spec;
      }
    }
  }
  EXPECT_GT(waited, 0);
  EXPECT_GT(halted, 0);
  EXPECT_GT(invalid, 0);
}

}  // namespace
}  // namespace stowage::op
