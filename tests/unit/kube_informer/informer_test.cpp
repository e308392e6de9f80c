// Reflector and Informer against a scripted API server on a FakeClock. The reflector thread is
// synchronised with through the fake's request log, the clock's waiters and the handlers' event
// log, each waited on with a deadline; time only moves when a test advances it.
#include "kube/informer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "fake_api.h"
#include "kube/client.h"
#include "kube/reflector.h"

namespace stowage::kube {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::Scripted;
using testing::ScriptedApi;

const GroupVersionResource kConfigMaps{"", "v1", "configmaps"};
constexpr milliseconds kWait{10'000};  // real-time bound on waiting for the reflector thread

json cm(const std::string& name, const std::string& rv, json labels = json::object(),
        json data = json::object()) {
  return {{"metadata",
           {{"name", name},
            {"namespace", "ns"},
            {"resourceVersion", rv},
            {"labels", std::move(labels)},
            {"managedFields", json::array({{{"manager", "kubectl"}}})}}},
          {"data", std::move(data)}};
}

// A ConfigMapList; items carry no kind, as the API server sends them.
Scripted list_answer(const std::string& rv, const std::vector<json>& items) {
  return Scripted{.body = json{
                      {"kind", "ConfigMapList"},
                      {"apiVersion", "v1"},
                      {"metadata", {{"resourceVersion", rv}}},
                      {"items",
                       items}}.dump()};
}

std::string event(const std::string& type, json object) {
  if (type != "BOOKMARK" && type != "ERROR") {
    object["kind"] = "ConfigMap";
    object["apiVersion"] = "v1";
  }
  return json{{"type", type}, {"object", std::move(object)}}.dump() + "\n";
}

std::string bookmark(const std::string& rv) {
  return event(
      "BOOKMARK",
      {{"kind", "ConfigMap"}, {"apiVersion", "v1"}, {"metadata", {{"resourceVersion", rv}}}});
}

std::string expired_event() {
  return event("ERROR", {{"kind", "Status"},
                         {"apiVersion", "v1"},
                         {"status", "Failure"},
                         {"message", "too old resource version: 10 (15)"},
                         {"reason", "Expired"},
                         {"code", 410}});
}

Scripted watch_answer(std::vector<std::string> chunks, Clock::Duration elapse = seconds(30)) {
  return Scripted{.chunks = std::move(chunks), .elapse = elapse};
}

std::string query_value(const std::string& url, const std::string& key) {
  const auto q = url.find('?');
  if (q == std::string::npos) return "<absent>";
  std::string_view rest = std::string_view(url).substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    if (pair.starts_with(key + "=")) return std::string(pair.substr(key.size() + 1));
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return "<absent>";
}

RestConfig test_config() {
  RestConfig rc;
  rc.server = "https://k8s.test:6443";
  rc.qps = 0;
  return rc;
}

class InformerTest : public ::testing::Test {
 protected:
  InformerOptions options() {
    InformerOptions o;
    o.reflector.collection = ResourceRef{kConfigMaps, "ns", "", ""};
    o.reflector.seed = 7;
    return o;
  }

  Informer& make(InformerOptions o = {}) {
    if (!o.reflector.collection.gvr.version.size()) {
      const Transform t = o.transform;
      o = options();
      if (t) o.transform = t;
    }
    informer_ = std::make_unique<Informer>(client_, clock_, std::move(o));
    informer_->on_add([this](const json& obj) { record("add " + describe(obj)); });
    informer_->on_update([this](const json& old, const json& now) {
      record("update " + describe(now) + " from " + old["metadata"].value("resourceVersion", ""));
    });
    informer_->on_delete([this](const json& obj) { record("delete " + describe(obj)); });
    return *informer_;
  }

  static std::string describe(const json& obj) {
    return object_key(obj) + "@" + obj["metadata"].value("resourceVersion", "");
  }

  void record(std::string e) {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
    cv_.notify_all();
  }

  // Waits until `n` handler events were recorded; returns them.
  std::vector<std::string> events(std::size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, kWait, [&] { return events_.size() >= n; });
    return events_;
  }

  void TearDown() override {
    if (informer_) informer_->stop();
  }

  FakeClock clock_;
  ScriptedApi api_{clock_};
  Client client_{test_config(), api_, clock_};
  std::mutex mu_;  // guards events_
  std::condition_variable cv_;
  std::vector<std::string> events_;
  std::unique_ptr<Informer> informer_;
};

TEST_F(InformerTest, ListsThenWatchesFromTheListVersionAndTracksBookmarks) {
  api_.push(list_answer("10", {cm("a", "5")}));
  api_.push(watch_answer({event("ADDED", cm("b", "11")), bookmark("15")}));
  Informer& inf = make();
  inf.start();
  ASSERT_TRUE(api_.wait_for_requests(3, kWait));  // list, watch, the next watch (idle)

  const auto urls = api_.urls();
  EXPECT_THAT(urls[0], HasSubstr("/api/v1/namespaces/ns/configmaps?"));
  EXPECT_EQ(query_value(urls[0], "limit"), "500");
  EXPECT_EQ(query_value(urls[0], "resourceVersion"), "<absent>");  // a consistent read
  EXPECT_EQ(query_value(urls[1], "watch"), "1");
  EXPECT_EQ(query_value(urls[1], "resourceVersion"), "10");
  EXPECT_EQ(query_value(urls[1], "allowWatchBookmarks"), "true");
  const int timeout = std::stoi(query_value(urls[1], "timeoutSeconds"));
  EXPECT_GE(timeout, 240);
  EXPECT_LE(timeout, 290);
  // The normal close re-watched from the bookmark's version, without listing again.
  EXPECT_EQ(query_value(urls[2], "watch"), "1");
  EXPECT_EQ(query_value(urls[2], "resourceVersion"), "15");

  EXPECT_TRUE(inf.wait_until_synced(clock_.now()));
  EXPECT_THAT(events(2), ElementsAre("add ns/a@5", "add ns/b@11"));
  const ReflectorStats stats = inf.reflector().stats();
  EXPECT_EQ(stats.lists, 1);
  EXPECT_EQ(stats.failures, 0);
  EXPECT_EQ(stats.resource_version, "15");
  // List items get the kind and apiVersion that watch events carry.
  const ObjectPtr a = inf.get("ns", "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ((*a)["kind"], "ConfigMap");
  EXPECT_EQ((*a)["apiVersion"], "v1");
  EXPECT_EQ(inf.get("ns", "missing"), nullptr);
}

TEST_F(InformerTest, ExpiredWatchRelistsAndSwapsTheWholeCache) {
  api_.push(list_answer("10", {cm("a", "5"), cm("b", "6"), cm("c", "7")}));
  api_.push(watch_answer({event("MODIFIED", cm("a", "11")), expired_event()}));
  api_.push(list_answer("20", {cm("b", "16"), cm("c", "7"), cm("d", "18")}));
  Informer& inf = make();
  std::shared_ptr<const InformerSnapshot> before;
  bool whole_at_first_relist_event = false;
  inf.on_add([&](const json& obj) {
    if (object_key(obj) == "ns/c") before = inf.snapshot();
  });
  inf.on_delete([&](const json&) {
    // The first event of the relist already sees the complete new state.
    const auto now = inf.snapshot();
    whole_at_first_relist_event =
        now->objects.size() == 3 && !now->objects.contains("ns/a") &&
        (*now->objects.at("ns/b"))["metadata"]["resourceVersion"] == "16" &&
        now->objects.contains("ns/d");
  });
  inf.start();
  ASSERT_TRUE(api_.wait_for_requests(4, kWait));  // list, watch, list, watch

  EXPECT_THAT(events(7),
              ElementsAre("add ns/a@5", "add ns/b@6", "add ns/c@7", "update ns/a@11 from 5",
                          "delete ns/a@11", "update ns/b@16 from 6", "add ns/d@18"));
  EXPECT_TRUE(whole_at_first_relist_event);
  const auto urls = api_.urls();
  EXPECT_EQ(query_value(urls[2], "watch"), "<absent>");
  EXPECT_EQ(query_value(urls[3], "resourceVersion"), "20");
  const ReflectorStats stats = inf.reflector().stats();
  EXPECT_EQ(stats.lists, 2);
  EXPECT_EQ(stats.expired, 1);
  EXPECT_EQ(stats.failures, 0);  // an expiry relists at once, without backoff

  // A snapshot is immutable: the one taken after the first list still shows that state.
  ASSERT_NE(before, nullptr);
  EXPECT_EQ(before->objects.size(), 3u);
  EXPECT_EQ((*before->objects.at("ns/a"))["metadata"]["resourceVersion"], "5");
  const auto after = inf.snapshot();
  std::vector<std::string> keys;
  for (const auto& [k, v] : after->objects) keys.push_back(k);
  EXPECT_THAT(keys, ElementsAre("ns/b", "ns/c", "ns/d"));
  EXPECT_EQ(after->resource_version, "20");
}

TEST_F(InformerTest, ConnectionErrorsRewatchTheSameVersionAfterBackoffWithoutRelisting) {
  api_.push(list_answer("10", {cm("a", "5")}));
  api_.push(Scripted{.fail = Code::kUnavailable});  // connection refused
  api_.push(Scripted{.status = 503,
                     .body = R"({"kind":"Status","code":503,"reason":"ServiceUnavailable"})"});
  api_.push(watch_answer({event("ADDED", cm("b", "12"))}));
  Informer& inf = make();
  inf.start();

  ASSERT_TRUE(api_.wait_for_requests(2, kWait));
  ASSERT_TRUE(clock_.wait_for_waiters(1, kWait));  // backing off: 0.8 s ± 20 %
  clock_.advance(milliseconds(600));
  EXPECT_EQ(api_.urls().size(), 2u);
  clock_.advance(milliseconds(400));
  ASSERT_TRUE(api_.wait_for_requests(3, kWait));
  ASSERT_TRUE(clock_.wait_for_waiters(1, kWait));  // the 503: 1.6 s ± 20 %
  clock_.advance(milliseconds(1200));
  EXPECT_EQ(api_.urls().size(), 3u);
  clock_.advance(milliseconds(800));
  ASSERT_TRUE(api_.wait_for_requests(5, kWait));  // the watch that works, then the idle one

  EXPECT_THAT(events(2), ElementsAre("add ns/a@5", "add ns/b@12"));
  const auto urls = api_.urls();
  for (std::size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(query_value(urls[i], "watch"), "1") << urls[i];
    EXPECT_EQ(query_value(urls[i], "resourceVersion"), "10") << urls[i];
  }
  EXPECT_EQ(query_value(urls[4], "resourceVersion"), "12");
  const ReflectorStats stats = inf.reflector().stats();
  EXPECT_EQ(stats.lists, 1);
  EXPECT_EQ(stats.failures, 2);
}

TEST_F(InformerTest, AWatchClosedAtOnceWithoutEventsIsAFailureAQuietLongOneIsNot) {
  api_.push(list_answer("10", {}));
  api_.push(watch_answer({}, milliseconds(200)));  // closed after 0.2 s, nothing seen
  api_.push(watch_answer({}, seconds(240)));       // the server's timeout, nothing happened
  Informer& inf = make();
  inf.start();

  ASSERT_TRUE(api_.wait_for_requests(2, kWait));
  ASSERT_TRUE(clock_.wait_for_waiters(1, kWait));
  EXPECT_EQ(inf.reflector().stats().failures, 1);
  clock_.advance(seconds(1));
  // The quiet watch ends normally: the next one starts at once, no time passes.
  ASSERT_TRUE(api_.wait_for_requests(4, kWait));
  const ReflectorStats stats = inf.reflector().stats();
  EXPECT_EQ(stats.failures, 1);
  EXPECT_EQ(stats.lists, 1);
  const auto urls = api_.urls();
  for (std::size_t i = 1; i < urls.size(); ++i) {
    EXPECT_EQ(query_value(urls[i], "resourceVersion"), "10") << urls[i];
  }
}

TEST_F(InformerTest, ForbiddenListBacksOffAndRetries) {
  api_.push(
      Scripted{.status = 403,
               .body = R"({"kind":"Status","code":403,"reason":"Forbidden","message":"no"})"});
  api_.push(list_answer("10", {cm("a", "5")}));
  Informer& inf = make();
  inf.start();
  ASSERT_TRUE(clock_.wait_for_waiters(1, kWait));
  EXPECT_FALSE(inf.has_synced());
  clock_.advance(seconds(1));
  EXPECT_TRUE(inf.wait_until_synced(clock_.now() + seconds(5)));
  ASSERT_TRUE(api_.wait_for_requests(3, kWait));
  EXPECT_EQ(inf.reflector().stats().failures, 1);
  EXPECT_EQ(query_value(api_.urls()[2], "resourceVersion"), "10");
}

TEST_F(InformerTest, WaitUntilSyncedGivesUpAtTheDeadline) {
  Informer& inf = make();  // nothing scripted: every list fails and backs off
  inf.start();
  std::atomic<int> result{-1};
  std::jthread waiter([&] { result = inf.wait_until_synced(clock_.now() + seconds(5)) ? 1 : 0; });
  ASSERT_TRUE(clock_.wait_for_waiters(2, kWait));  // the reflector's backoff and the waiter
  clock_.advance(seconds(5));
  waiter.join();
  EXPECT_EQ(result, 0);
}

TEST_F(InformerTest, RepeatedAddIsDroppedAndAnAddOfACachedObjectIsAnUpdate) {
  api_.push(list_answer("10", {cm("a", "5")}));
  api_.push(watch_answer({event("ADDED", cm("a", "5")), event("ADDED", cm("a", "12")),
                          event("DELETED", cm("zz", "13")), event("DELETED", cm("a", "14"))}));
  make().start();
  EXPECT_THAT(events(3), ElementsAre("add ns/a@5", "update ns/a@12 from 5", "delete ns/a@14"));
  ASSERT_TRUE(api_.wait_for_requests(3, kWait));
  EXPECT_EQ(query_value(api_.urls()[2], "resourceVersion"), "14");
}

TEST_F(InformerTest, IndexesFollowUpdatesDeletesAndRelists) {
  api_.push(list_answer("10", {cm("a", "5", {{"app", "x"}}, {{"owner", "o1"}}),
                               cm("b", "6", {{"app", "y"}}, {{"owner", "o1"}})}));
  api_.push(watch_answer({event("MODIFIED", cm("a", "11", {{"app", "y"}}, {{"owner", "o2"}})),
                          event("DELETED", cm("b", "12", {{"app", "y"}}, {{"owner", "o1"}}))}));
  Informer& inf = make();
  inf.add_label_index("app");
  inf.add_index("owner", [](const json& o) {
    std::vector<std::string> v;
    if (o.contains("data") && o["data"].contains("owner")) v.push_back(o["data"]["owner"]);
    return v;
  });
  EXPECT_THROW(inf.add_index("owner", [](const json&) { return std::vector<std::string>{}; }),
               Error);
  inf.start();
  const auto names = [](const std::vector<ObjectPtr>& objects) {
    std::vector<std::string> out;
    for (const auto& o : objects) out.push_back(object_key(*o));
    return out;
  };
  events(4);
  EXPECT_THAT(names(inf.by_index("label:app", "x")), ElementsAre());
  EXPECT_THAT(names(inf.by_index("label:app", "y")), ElementsAre("ns/a"));
  EXPECT_THAT(names(inf.by_index("owner", "o1")), ElementsAre());
  EXPECT_THAT(names(inf.by_index("owner", "o2")), ElementsAre("ns/a"));
  try {
    inf.by_index("nope", "x");
    ADD_FAILURE() << "no error for an unknown index";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
  }
  EXPECT_THROW(inf.on_add([](const json&) {}), Error);  // too late: started
}

TEST_F(InformerTest, DefaultTransformDropsManagedFields) {
  api_.push(list_answer("10", {cm("a", "5", {}, {{"k", "v"}})}));
  Informer& inf = make();
  inf.start();
  ASSERT_TRUE(inf.wait_until_synced(clock_.now() + seconds(5)));
  const ObjectPtr a = inf.get("ns", "a");
  ASSERT_NE(a, nullptr);
  EXPECT_FALSE((*a)["metadata"].contains("managedFields"));
  EXPECT_EQ((*a)["data"]["k"], "v");
}

TEST_F(InformerTest, CustomTransformKeepsOnlyWhatItReturnsPlusTheIdentity) {
  api_.push(list_answer("10", {cm("a", "5", {{"app", "x"}}, {{"k", "v"}})}));
  InformerOptions o = options();
  o.transform = [](const json& obj) {
    return json{{"metadata", {{"labels", obj["metadata"]["labels"]}}}};
  };
  Informer& inf = make(std::move(o));
  inf.start();
  ASSERT_TRUE(inf.wait_until_synced(clock_.now() + seconds(5)));
  const ObjectPtr a = inf.get("ns", "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(*a, json::parse(R"({"metadata":{"labels":{"app":"x"},"name":"a","namespace":"ns",
                                           "resourceVersion":"5"}})"));
}

TEST_F(InformerTest, ListedObjectsAreTransformedPageByPageOnceEach) {
  // Two pages: the transform of page 1's objects runs before page 2 is asked for, so a large
  // LIST is never held whole before trimming, and no object is transformed twice.
  json first = json::parse(list_answer("10", {cm("a", "5"), cm("b", "6")}).body);
  first["metadata"]["continue"] = "page-2";
  api_.push(Scripted{.body = first.dump()});
  api_.push(list_answer("10", {cm("c", "7")}));
  std::atomic<int> calls{0};
  std::atomic<std::size_t> requests_at_second_call{0};
  InformerOptions o = options();
  o.transform = [&](const json& obj) {
    if (++calls == 2) requests_at_second_call = api_.urls().size();
    EXPECT_EQ(obj.value("kind", ""), "ConfigMap");  // set before the transform sees it
    return json{{"metadata", {{"uid", obj["metadata"]["name"]}}}};
  };
  Informer& inf = make(std::move(o));
  inf.start();
  ASSERT_TRUE(inf.wait_until_synced(clock_.now() + seconds(5)));
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(requests_at_second_call.load(), 1u);
  ASSERT_NE(inf.get("ns", "c"), nullptr);
  EXPECT_EQ((*inf.get("ns", "c"))["metadata"]["uid"], "c");
}

TEST_F(InformerTest, SelectorsAndMetadataOnlyReachEveryRequest) {
  api_.push(list_answer("10", {}));
  InformerOptions o = options();
  o.reflector.label_selector = "app=x";
  o.reflector.field_selector = "metadata.name=a";
  o.reflector.metadata_only = true;
  make(std::move(o)).start();
  ASSERT_TRUE(api_.wait_for_requests(2, kWait));
  const auto urls = api_.urls();
  const auto accepts = api_.accepts();
  for (const auto& url : urls) {
    EXPECT_EQ(query_value(url, "labelSelector"), "app%3Dx") << url;
    EXPECT_EQ(query_value(url, "fieldSelector"), "metadata.name%3Da") << url;
  }
  EXPECT_EQ(accepts[0], kAcceptMetadataList);
  EXPECT_EQ(accepts[1], kAcceptMetadata);
}

TEST_F(InformerTest, PauseEndsTheWatchAndResumeContinuesFromTheSameVersion) {
  api_.push(list_answer("10", {cm("a", "5")}));
  Informer& inf = make();
  inf.start();
  ASSERT_TRUE(api_.wait_for_requests(2, kWait));  // idle in the watch from 10
  inf.reflector().pause();
  EXPECT_EQ(api_.urls().size(), 2u);
  api_.push(watch_answer({expired_event()}));
  api_.push(list_answer("30", {}));
  inf.reflector().resume();
  EXPECT_THAT(events(2), ElementsAre("add ns/a@5", "delete ns/a@5"));
  ASSERT_TRUE(api_.wait_for_requests(5, kWait));
  const auto urls = api_.urls();
  EXPECT_EQ(query_value(urls[2], "resourceVersion"), "10");
  EXPECT_EQ(query_value(urls[4], "resourceVersion"), "30");
  EXPECT_EQ(inf.reflector().stats().failures, 0);
}

TEST(Reflector, InitialResourceVersionSkipsTheList) {
  FakeClock clock;
  ScriptedApi api(clock);
  Client client(test_config(), api, clock);
  struct NullStore final : ReflectorStore {
    void replace(std::vector<json>, const std::string&) override {}
    void apply(json) override {}
    void remove(json) override {}
  } store;
  ReflectorOptions o;
  o.collection = ResourceRef{kConfigMaps, "", "", ""};
  o.initial_resource_version = "42";
  Reflector r(client, clock, store, o);
  r.start();
  ASSERT_TRUE(api.wait_for_requests(1, kWait));
  EXPECT_EQ(query_value(api.urls()[0], "watch"), "1");
  EXPECT_EQ(query_value(api.urls()[0], "resourceVersion"), "42");
  r.stop();
  EXPECT_THROW((Reflector{client, clock, store, ReflectorOptions{}}), Error);
}

}  // namespace
}  // namespace stowage::kube
