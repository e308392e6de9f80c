// Informer against a real kube-apiserver (the ControlPlane fixture with --watch-cache=false, admin
// via its kubeconfig). One control plane per test process (ctest runs each case in its own
// process); each case works in its own namespace. The invariant checked everywhere: once quiet,
// the cache equals a fresh LIST exactly, and the handlers saw a consistent event sequence.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/clock.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/informer.h"
#include "support/kube_fixture.h"
#include "support/process.h"

namespace stowage::kube {
namespace {

using nlohmann::json;
using test::BinaryLookup;
using test::ControlPlane;
using test::ControlPlaneOptions;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const GroupVersionResource kNamespaces{"", "v1", "namespaces"};
const GroupVersionResource kConfigMaps{"", "v1", "configmaps"};
constexpr std::chrono::seconds kSettle{60};

struct SuiteState {
  BinaryLookup binaries;
  std::unique_ptr<ControlPlane> plane;
  std::string error;
};

SuiteState& suite() {
  static SuiteState state;
  return state;
}

json config_map(const std::string& ns, const std::string& name, const std::string& value) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"data", {{"k", value}}}};
}

// What the handlers saw, as "add|update|delete key@rv", and the consistency of that sequence.
class EventLog {
 public:
  void attach(Informer& informer) {
    informer.on_add([this](const json& o) { record("add", o); });
    informer.on_update([this](const json&, const json& o) { record("update", o); });
    informer.on_delete([this](const json& o) { record("delete", o); });
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }
  // Broken rules: an add of a live object, an update or delete of an object not live, an update
  // repeating the version already seen.
  std::vector<std::string> problems() const {
    std::lock_guard lock(mu_);
    return problems_;
  }

 private:
  void record(const std::string& type, const json& o) {
    const std::string key = object_key(o);
    const std::string rv = o["metadata"].value("resourceVersion", "");
    std::lock_guard lock(mu_);
    lines_.push_back(fmt::format("{} {}@{}", type, key, rv));
    const auto it = live_.find(key);
    if (type == "add") {
      if (it != live_.end()) problems_.push_back("duplicate add of " + key + "@" + rv);
      live_[key] = rv;
    } else if (it == live_.end()) {
      problems_.push_back(type + " of an object not live: " + key + "@" + rv);
    } else if (type == "update") {
      if (it->second == rv) problems_.push_back("update repeating " + key + "@" + rv);
      it->second = rv;
    } else {
      live_.erase(it);
    }
  }

  mutable std::mutex mu_;  // guards lines_, problems_, live_
  std::vector<std::string> lines_;
  std::vector<std::string> problems_;
  std::map<std::string, std::string> live_;
};

class KubeInformerIntegration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite().binaries = ControlPlane::find_binaries();
    if (!suite().binaries.dir) return;
    try {
      ControlPlaneOptions options;
      options.with_controller_manager = false;
      options.watch_cache = false;  // watches read etcd: compaction expires their versions
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

  void TearDown() override {
    if (informer_) informer_->stop();
  }

  std::string make_namespace(const std::string& name) {
    client_->create({kNamespaces, "", "", ""},
                    {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}});
    return name;
  }

  Informer& start_informer(const std::string& ns) {
    InformerOptions options;
    options.reflector.collection = ResourceRef{kConfigMaps, ns, "", ""};
    informer_ = std::make_unique<Informer>(*client_, real_clock(), std::move(options));
    log_.attach(*informer_);
    informer_->start();
    EXPECT_TRUE(informer_->wait_until_synced(real_clock().now() + std::chrono::seconds(30)));
    return *informer_;
  }

  // A write that may meet a connection the restarted apiserver closed: retried while Unavailable.
  json write(const std::function<json()>& fn) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      try {
        return fn();
      } catch (const Error& e) {
        if (e.code() != Code::kUnavailable || std::chrono::steady_clock::now() > deadline) throw;
      }
    }
  }
  json create(const std::string& ns, const std::string& name, const std::string& value) {
    return write([&] {
      return client_->create({kConfigMaps, ns, "", ""}, config_map(ns, name, value));
    });
  }
  json set_value(const std::string& ns, const std::string& name, const std::string& value) {
    return write([&] {
      return client_->patch({kConfigMaps, ns, name, ""}, PatchType::kMerge,
                            {{"data", {{"k", value}}}});
    });
  }
  void remove(const std::string& ns, const std::string& name) {
    write([&] { return client_->delete_({kConfigMaps, ns, name, ""}); });
  }

  // "" when the cache equals a fresh LIST (each item as the informer keeps it), else the first
  // difference.
  std::string cache_vs_list(const std::string& ns) {
    json list = client_->list_all({kConfigMaps, ns, "", ""});
    std::map<std::string, json> want;
    for (auto& item : list["items"]) {
      item["kind"] = "ConfigMap";
      item["apiVersion"] = "v1";
      want[object_key(item)] = strip_managed_fields(item);
    }
    const auto snapshot = informer_->snapshot();
    for (const auto& [key, object] : snapshot->objects) {
      const auto it = want.find(key);
      if (it == want.end()) return "cached but not listed: " + key;
      if (it->second != *object) {
        return fmt::format("{} differs: cached {} listed {}", key, object->dump(),
                           it->second.dump());
      }
    }
    for (const auto& [key, object] : want) {
      if (!snapshot->objects.contains(key)) return "listed but not cached: " + key;
    }
    return "";
  }

  // Waits until the cache equals a fresh LIST; returns the last difference otherwise.
  std::string settle(const std::string& ns) {
    std::string diff;
    test::wait_for(
        [&] {
          try {
            diff = cache_vs_list(ns);
          } catch (const Error& e) {
            diff = e.what();
          }
          return diff.empty();
        },
        kSettle);
    return diff;
  }

  ControlPlane* plane_ = nullptr;
  http::Client http_{http::ClientOptions{.proxy = ""}};
  RestConfig config_;
  std::unique_ptr<Client> client_;
  EventLog log_;
  std::unique_ptr<Informer> informer_;
};

TEST_F(KubeInformerIntegration, SyncsAndSeesCreateUpdateDelete) {
  const std::string ns = make_namespace("informer-crud");
  const json first = create(ns, "first", "1");
  Informer& inf = start_informer(ns);
  ASSERT_NE(inf.get(ns, "first"), nullptr);
  EXPECT_EQ((*inf.get(ns, "first"))["data"]["k"], "1");

  const json second = create(ns, "second", "a");
  const json updated = set_value(ns, "first", "2");
  remove(ns, "second");
  EXPECT_EQ(settle(ns), "");
  const std::string rv = [](const json& o) {
    return o["metadata"]["resourceVersion"].get<std::string>();
  }(first);
  EXPECT_THAT(
      log_.lines(),
      ElementsAre(
          "add " + ns + "/first@" + rv,
          "add " + ns + "/second@" + second["metadata"]["resourceVersion"].get<std::string>(),
          "update " + ns + "/first@" + updated["metadata"]["resourceVersion"].get<std::string>(),
          ::testing::StartsWith("delete " + ns + "/second@")));
  EXPECT_THAT(log_.problems(), IsEmpty());
  EXPECT_FALSE(inf.get(ns, "first")->at("metadata").contains("managedFields"));
  EXPECT_EQ(inf.reflector().stats().lists, 1);
}

TEST_F(KubeInformerIntegration, ResumesAfterApiserverRestartWithoutLosingOrRepeatingEvents) {
  const std::string ns = make_namespace("informer-restart");
  for (const char* name : {"c1", "c2", "c3"}) create(ns, name, "0");
  Informer& inf = start_informer(ns);
  set_value(ns, "c3", "1");
  ASSERT_EQ(settle(ns), "");

  plane_->restart_apiserver();
  // Changes right after the restart, while the informer is still reconnecting.
  create(ns, "c4", "0");
  set_value(ns, "c1", "1");
  remove(ns, "c2");
  set_value(ns, "c3", "2");

  EXPECT_EQ(settle(ns), "");
  EXPECT_THAT(log_.problems(), IsEmpty());
  const ReflectorStats stats = inf.reflector().stats();
  EXPECT_EQ(stats.lists, 1) << "the watch was resumed by relisting";
  EXPECT_EQ(stats.expired, 0);
  EXPECT_GE(stats.watches, 2);
  const auto lines = log_.lines();
  EXPECT_EQ(
      std::count_if(lines.begin(), lines.end(),
                    [&](const std::string& l) { return l.starts_with("add " + ns + "/c4@"); }),
      1);
}

TEST_F(KubeInformerIntegration, RelistsWhenEtcdCompactedTheWatchedVersion) {
  const std::string ns = make_namespace("informer-expired");
  for (const char* name : {"a", "b", "c"}) create(ns, name, "0");
  Informer& inf = start_informer(ns);
  ASSERT_EQ(settle(ns), "");

  inf.reflector().pause();  // no watch open; it will resume from this version
  const std::string old_rv = inf.reflector().stats().resource_version;
  const std::size_t seen = log_.lines().size();
  remove(ns, "a");
  const json b = set_value(ns, "b", "1");
  const json d = create(ns, "d", "0");
  const std::string latest = d["metadata"]["resourceVersion"];

  // Compact etcd's history up to the latest write: the old version is gone.
  http::Request compact;
  compact.method = "POST";
  compact.url = plane_->etcd_url() + "/v3/kv/compaction";
  compact.headers.set("Content-Type", "application/json");
  compact.body = json{{"revision", latest}, {"physical", true}}.dump();
  compact.timeout = std::chrono::seconds(30);
  const http::Response r = http_.send(compact);
  ASSERT_EQ(r.status, 200) << r.body;

  inf.reflector().resume();
  EXPECT_EQ(settle(ns), "");
  const ReflectorStats stats = inf.reflector().stats();
  EXPECT_GE(stats.expired, 1) << "old version " << old_rv << " was not reported gone";
  EXPECT_EQ(stats.lists, 2);
  const auto lines = log_.lines();
  EXPECT_THAT(
      std::vector<std::string>(lines.begin() + static_cast<std::ptrdiff_t>(seen), lines.end()),
      ElementsAre(::testing::StartsWith("delete " + ns + "/a@"),
                  "update " + ns + "/b@" + b["metadata"]["resourceVersion"].get<std::string>(),
                  "add " + ns + "/d@" + latest));
  EXPECT_THAT(log_.problems(), IsEmpty());
}

}  // namespace
}  // namespace stowage::kube
