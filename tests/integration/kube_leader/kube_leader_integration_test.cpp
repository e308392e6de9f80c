// Leader election, events and discovery against a real kube-apiserver (ControlPlane fixture).
// The election test runs two leader_election_probe processes with their own client
// certificates, kills the leader with SIGKILL, then pauses the next leader with SIGSTOP past its
// lease and resumes it, and checks from the shared act log that terms never overlap.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "base/clock.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/discovery.h"
#include "kube/events.h"
#include "support/kube_fixture.h"
#include "support/process.h"

namespace stowage::kube {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::BinaryLookup;
using test::ControlPlane;
using test::ControlPlaneOptions;
using ::testing::IsEmpty;

const GroupVersionResource kNamespaces{"", "v1", "namespaces"};
const GroupVersionResource kConfigMaps{"", "v1", "configmaps"};
const GroupVersionResource kEvents{"events.k8s.io", "v1", "events"};
const GroupVersionResource kLeases{"coordination.k8s.io", "v1", "leases"};

// Probe timings: lease 4 s, renew deadline 3 s, retry 0.5 s (jittered up to 1.1 s).
constexpr auto kLease = 4000ms;
constexpr auto kRenew = 3000ms;
constexpr auto kRetry = 500ms;

struct SuiteState {
  BinaryLookup binaries;
  std::unique_ptr<ControlPlane> plane;
  std::string error;
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

long long monotonic_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             test::Clock::now().time_since_epoch())
      .count();
}

// One line of the probes' shared log.
struct LogLine {
  std::string what;  // "act", "lead", "lost"
  std::string identity;
  long long term = -1;
  long long ms = 0;
};

std::vector<LogLine> read_log(const std::filesystem::path& path) {
  std::vector<LogLine> out;
  std::istringstream in(test::read_text_file(path));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    LogLine l;
    std::string term;
    if (!(fields >> l.what >> l.identity >> term >> l.ms)) continue;  // a torn last line
    l.term = term == "-" ? -1 : std::stoll(term);
    out.push_back(l);
  }
  return out;
}

// The first act at or after `since_ms` by someone other than `not_identity` ("" for anyone).
std::optional<LogLine> first_act(const std::vector<LogLine>& log, long long since_ms,
                                 const std::string& not_identity = "") {
  for (const LogLine& l : log) {
    if (l.what == "act" && l.ms >= since_ms && l.identity != not_identity) return l;
  }
  return std::nullopt;
}

// The invariant: each term belongs to one identity, and every act of a term happens before every
// act of any later term (no two candidates ever act in overlapping terms).
void expect_terms_disjoint(const std::vector<LogLine>& log) {
  struct Span {
    std::string identity;
    long long first = 0, last = 0;
  };
  std::map<long long, Span> terms;
  for (const LogLine& l : log) {
    if (l.what != "act") continue;
    auto [it, fresh] = terms.try_emplace(l.term, Span{l.identity, l.ms, l.ms});
    EXPECT_EQ(it->second.identity, l.identity) << "term " << l.term << " has two holders";
    it->second.first = std::min(it->second.first, l.ms);
    it->second.last = std::max(it->second.last, l.ms);
  }
  for (auto it = terms.begin(); it != terms.end(); ++it) {
    const auto next = std::next(it);
    if (next == terms.end()) break;
    EXPECT_LT(it->second.last, next->second.first)
        << "term " << it->first << " (" << it->second.identity << ") acted until "
        << it->second.last << " ms, after term " << next->first << " (" << next->second.identity
        << ") began acting at " << next->second.first << " ms";
  }
}

class KubeLeaderIntegration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite().binaries = ControlPlane::find_binaries();
    if (!suite().binaries.dir) return;
    try {
      ControlPlaneOptions options;
      options.with_controller_manager = false;
      suite().plane = std::make_unique<ControlPlane>(options);
    } catch (const std::exception& e) {
      suite().error = e.what();
    }
  }
  static void TearDownTestSuite() { suite().plane.reset(); }

  void SetUp() override {
    const BinaryLookup& binaries = suite().binaries;
    if (!binaries.dir) {
      if (binaries.required) GTEST_FAIL() << binaries.problem;
      GTEST_SKIP() << binaries.problem;
    }
    ASSERT_THAT(suite().error, IsEmpty());
    plane_ = suite().plane.get();
    config_ =
        rest_config_from_kubeconfig(load_kubeconfig({plane_->kubeconfig_path()}), "", real_clock());
    client_ = std::make_unique<Client>(config_, http_, real_clock());
  }

  std::string make_namespace(const std::string& name) {
    try {
      client_->create(
          {kNamespaces, "", "", ""},
          {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}});
    } catch (const Error& e) {
      if (e.code() != Code::kAlreadyExists) throw;
    }
    return name;
  }

  // A probe running as its own user (a client certificate in system:masters).
  std::unique_ptr<test::Process> start_probe(const std::string& identity, const std::string& ns) {
    const std::filesystem::path kubeconfig = temp_ / (identity + ".kubeconfig");
    plane_->write_kubeconfig(kubeconfig, plane_->mint_client_cert(identity, {"system:masters"}));
    test::ProcessOptions options;
    options.argv = {LEADER_ELECTION_PROBE,
                    kubeconfig.string(),
                    ns,
                    "probe-lease",
                    identity,
                    log_path().string(),
                    std::to_string(kLease.count()),
                    std::to_string(kRenew.count()),
                    std::to_string(kRetry.count())};
    options.stdout_path = temp_ / (identity + ".log");
    options.stderr_path = options.stdout_path;
    return std::make_unique<test::Process>(options);
  }

  std::filesystem::path log_path() const { return temp_ / "acts.log"; }

  // Waits until `predicate` holds on the log; the log on failure.
  ::testing::AssertionResult wait_log(const std::function<bool(const std::vector<LogLine>&)>& pred,
                                      std::chrono::milliseconds timeout, const std::string& what) {
    if (test::wait_for([&] { return pred(read_log(log_path())); }, timeout)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "timed out waiting for " << what << "; log:\n"
                                         << test::read_text_file(log_path());
  }

  ControlPlane* plane_ = nullptr;
  RestConfig config_;
  http::Client http_{http::ClientOptions{.proxy = ""}};
  std::unique_ptr<Client> client_;
  test::TempDir temp_{"kube-leader"};
};

TEST_F(KubeLeaderIntegration, TwoProcessesNeverActInOverlappingTerms) {
  const std::string ns = make_namespace("leader-election");
  std::map<std::string, std::unique_ptr<test::Process>> probes;
  probes["a1"] = start_probe("a1", ns);
  probes["b1"] = start_probe("b1", ns);

  // 1. Someone leads.
  ASSERT_TRUE(wait_log([](const auto& log) { return first_act(log, 0).has_value(); }, 30s,
                       "a first leader"));
  const LogLine first = *first_act(read_log(log_path()), 0);
  const std::string follower1 = first.identity == "a1" ? "b1" : "a1";

  // 2. SIGKILL the leader: the other leads within the lease plus its polling delay.
  const long long killed_at = monotonic_ms();
  ASSERT_EQ(::kill(probes[first.identity]->pid(), SIGKILL), 0);
  probes[first.identity]->wait(test::Clock::now() + 10s);
  // Worst case: the follower saw the last renewal up to one jittered retry (1.1 s) after it was
  // written, and polls again up to 1.1 s after the lease expired in its view.
  const auto bound = kLease + 2 * (kRetry * 22 / 10) + 1000ms;  // + 1 s for requests
  ASSERT_TRUE(wait_log(
      [&](const auto& log) { return first_act(log, killed_at, first.identity).has_value(); },
      bound + 5s, "the follower to take over"));
  const LogLine second = *first_act(read_log(log_path()), killed_at, first.identity);
  EXPECT_EQ(second.identity, follower1);
  EXPECT_GT(second.term, first.term);
  EXPECT_LE(second.ms - killed_at, bound.count());
  std::printf("takeover after SIGKILL: %lld ms (bound %lld ms)\n", second.ms - killed_at,
              static_cast<long long>(bound.count()));

  // A replacement candidate for the killed process.
  const std::string replacement = first.identity == "a1" ? "a2" : "b2";
  probes[replacement] = start_probe(replacement, ns);

  // 3. SIGSTOP the leader past its lease; the replacement takes over meanwhile.
  const std::string paused = second.identity;
  const long long stopped_at = monotonic_ms();
  ASSERT_EQ(::kill(probes[paused]->pid(), SIGSTOP), 0);
  ASSERT_TRUE(
      wait_log([&](const auto& log) { return first_act(log, stopped_at, paused).has_value(); }, 30s,
               "the replacement to take over from the paused leader"));
  const LogLine third = *first_act(read_log(log_path()), stopped_at, paused);
  EXPECT_EQ(third.identity, replacement);
  EXPECT_GT(third.term, second.term);
  // Not before the lease the paused leader last renewed (at most one retry before the pause) ran
  // out.
  EXPECT_GE(third.ms - stopped_at, (kLease - 2 * kRetry).count());

  // 4. SIGCONT: the woken leader notices its term is over without acting.
  const long long continued_at = monotonic_ms();
  ASSERT_EQ(::kill(probes[paused]->pid(), SIGCONT), 0);
  ASSERT_TRUE(wait_log(
      [&](const auto& log) {
        for (const LogLine& l : log) {
          if (l.what == "lost" && l.identity == paused && l.ms >= continued_at) return true;
        }
        return false;
      },
      10s, "the woken leader to end its term"));
  // Let the current leader act a while longer with the woken one around.
  const long long woken_check = monotonic_ms();
  ASSERT_TRUE(wait_log(
      [&](const auto& log) {
        int n = 0;
        for (const LogLine& l : log) n += l.what == "act" && l.ms > woken_check + 1000;
        return n > 0;
      },
      10s, "acts after the wake-up"));

  // 5. The woken process leads again only in a new term, once the replacement is gone.
  const long long killed2_at = monotonic_ms();
  ASSERT_EQ(::kill(probes[replacement]->pid(), SIGKILL), 0);
  ASSERT_TRUE(wait_log(
      [&](const auto& log) {
        const auto act = first_act(log, killed2_at, replacement);
        return act && act->identity == paused;
      },
      bound + 5s, "the woken process to re-acquire"));

  const std::vector<LogLine> log = read_log(log_path());
  expect_terms_disjoint(log);
  for (const LogLine& l : log) {
    if (l.what != "act" || l.identity != paused) continue;
    if (l.term == second.term) {
      EXPECT_LT(l.ms, stopped_at) << "the paused leader acted in its old term after the pause";
    } else {
      EXPECT_GT(l.term, third.term);
      EXPECT_GT(l.ms, killed2_at);
    }
  }
  std::printf("act log: %zu lines, terms %lld -> %lld -> %lld\n", log.size(), first.term,
              second.term, third.term);

  // 6. SIGTERM releases the lease.
  probes[paused]->stop();
  const json lease = client_->get({kLeases, ns, "probe-lease", ""});
  EXPECT_EQ(lease["spec"].value("holderIdentity", ""), "");
  EXPECT_EQ(lease["spec"]["leaseDurationSeconds"], 1);
}

TEST_F(KubeLeaderIntegration, RepeatedEventsBecomeOneSeries) {
  const std::string ns = make_namespace("events");
  const json cm = client_->create({kConfigMaps, ns, "", ""},
                                  {{"apiVersion", "v1"},
                                   {"kind", "ConfigMap"},
                                   {"metadata", {{"name", "settings"}, {"namespace", ns}}}});
  KubeEventSink sink(*client_);
  EventRecorder recorder(sink, real_clock(),
                         {.reporting_controller = "stowage.io/test", .reporting_instance = "t1"});
  const ObjectReference ref = reference_to(cm);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(recorder.record(ref, EventType::kWarning, "PullFailed", "Pull", "no such image"));
  }
  ASSERT_TRUE(recorder.record(ref, EventType::kNormal, "Synced", "Sync", std::string(5000, 'n')));
  ASSERT_TRUE(recorder.flush(30s));
  EXPECT_EQ(recorder.failed(), 0u);

  const json list = client_->list({kEvents, ns, "", ""});
  std::map<std::string, json> by_reason;
  for (const json& e : list["items"]) by_reason[e["reason"]] = e;
  ASSERT_EQ(list["items"].size(), 2u) << list.dump(2);
  const json& pulls = by_reason["PullFailed"];
  EXPECT_EQ(pulls["series"]["count"], 3);
  EXPECT_EQ(pulls["regarding"]["uid"], cm["metadata"]["uid"]);
  EXPECT_EQ(pulls["type"], "Warning");
  EXPECT_EQ(pulls["reportingController"], "stowage.io/test");
  EXPECT_EQ(by_reason["Synced"]["note"].get<std::string>().size(), kMaxNoteBytes);

  const test::RunResult r =
      plane_->kubectl({"get", "events.events.k8s.io", "-n", ns, "-o", "json"});
  ASSERT_TRUE(r.ok()) << r.describe();
  const json via_kubectl = json::parse(r.out);
  int series_count = 0;
  for (const json& e : via_kubectl["items"]) {
    if (e["reason"] == "PullFailed") series_count = e["series"]["count"];
  }
  EXPECT_EQ(series_count, 3);
}

TEST_F(KubeLeaderIntegration, DiscoveryKnowsWhatIsServed) {
  Discovery discovery(*client_, real_clock());
  EXPECT_TRUE(discovery.is_served("coordination.k8s.io", "v1"));
  EXPECT_TRUE(discovery.is_served("", "v1"));
  EXPECT_FALSE(discovery.is_served("nonexistent.example.com", "v1"));
  const auto leases = discovery.resource_for("coordination.k8s.io", "v1", "Lease");
  ASSERT_TRUE(leases);
  EXPECT_EQ(leases->gvr, kLeases);
  EXPECT_TRUE(leases->namespaced);
  const auto config_maps = discovery.resource_for("", "v1", "ConfigMap");
  ASSERT_TRUE(config_maps);
  EXPECT_EQ(config_maps->gvr, kConfigMaps);
  EXPECT_FALSE(discovery.resource_for("coordination.k8s.io", "v1", "Widget"));
  EXPECT_FALSE(discovery.resource_for("nonexistent.example.com", "v1", "Thing"));
}

}  // namespace
}  // namespace stowage::kube
