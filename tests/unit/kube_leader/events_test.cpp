#include "kube/events.h"

#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "kube/encoding.h"

namespace stowage::kube {
namespace {

using namespace std::chrono_literals;

constexpr auto kDeadline = 10s;

struct SinkCall {
  std::string verb;  // "create" or "patch"
  std::string namespace_;
  std::string name;
  nlohmann::json body;
};

class FakeEventSink final : public EventSink {
 public:
  void create(const nlohmann::json& event) override {
    std::lock_guard lock(mu_);
    calls_.push_back({"create", event["metadata"]["namespace"], event["metadata"]["name"], event});
  }
  void patch(const std::string& ns, const std::string& name, const nlohmann::json& p) override {
    std::lock_guard lock(mu_);
    calls_.push_back({"patch", ns, name, p});
    if (patch_not_found_) throw Error(Code::kNotFound, "events gone");
  }
  std::vector<SinkCall> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  void patch_not_found(bool v) {
    std::lock_guard lock(mu_);
    patch_not_found_ = v;
  }

 private:
  std::mutex mu_;  // guards calls_, patch_not_found_
  std::vector<SinkCall> calls_;
  bool patch_not_found_ = false;
};

ObjectReference config_map_ref() {
  return {"v1", "ConfigMap", "ns1", "settings", "uid-1", "7", ""};
}

EventRecorderOptions options() {
  return {.reporting_controller = "stowage.io/operator", .reporting_instance = "pod-1"};
}

TEST(Events, BuildsAnEventsV1Object) {
  const Clock::WallTime t = Clock::WallTime(1'700'000'000s) + 1234567us;
  const nlohmann::json e =
      build_event({config_map_ref(), EventType::kWarning, "PullFailed", "Pull", "no such image"},
                  "stowage.io/operator", "pod-1", t);
  EXPECT_EQ(e["apiVersion"], "events.k8s.io/v1");
  EXPECT_EQ(e["kind"], "Event");
  EXPECT_EQ(e["metadata"]["namespace"], "ns1");
  EXPECT_EQ(e["metadata"]["name"], "settings.17979cfe7fbfff58");  // 1700000001234567000 in hex
  EXPECT_EQ(e["eventTime"], "2023-11-14T22:13:21.234567Z");
  EXPECT_EQ(e["type"], "Warning");
  EXPECT_EQ(e["reason"], "PullFailed");
  EXPECT_EQ(e["action"], "Pull");
  EXPECT_EQ(e["note"], "no such image");
  EXPECT_EQ(e["reportingController"], "stowage.io/operator");
  EXPECT_EQ(e["reportingInstance"], "pod-1");
  EXPECT_EQ(e["regarding"], (nlohmann::json{{"apiVersion", "v1"},
                                            {"kind", "ConfigMap"},
                                            {"namespace", "ns1"},
                                            {"name", "settings"},
                                            {"uid", "uid-1"},
                                            {"resourceVersion", "7"}}));
  EXPECT_FALSE(e.contains("series"));
}

TEST(Events, ClusterScopedObjectsReportToDefault) {
  ObjectReference node{"v1", "Node", "", "n1", "", "", ""};
  EXPECT_EQ(build_event({node, EventType::kNormal, "R", "A", ""}, "c", "i",
                        Clock::WallTime(1s))["metadata"]["namespace"],
            "default");
}

TEST(Events, TruncatesNoteToOneKilobyteOnACharacterBoundary) {
  EXPECT_EQ(truncate_utf8("abc", 5), "abc");
  EXPECT_EQ(truncate_utf8("abcdef", 3), "abc");
  EXPECT_EQ(truncate_utf8("a\xc3\xa9", 2), "a");  // é is two bytes: not cut in half
  const std::string note = std::string(1023, 'x') + "\xc3\xa9" + "tail";
  const nlohmann::json e = build_event({config_map_ref(), EventType::kNormal, "R", "A", note}, "c",
                                       "i", Clock::WallTime(1s));
  EXPECT_EQ(e["note"].get<std::string>(), std::string(1023, 'x'));
  EXPECT_EQ(build_event({config_map_ref(), EventType::kNormal, std::string(300, 'r'), "A", ""}, "c",
                        "i", Clock::WallTime(1s))["reason"]
                .get<std::string>()
                .size(),
            128u);
}

TEST(EventRecorder, IsomorphicRepeatsBecomeASeriesPatch) {
  FakeClock clock;
  FakeEventSink sink;
  EventRecorder recorder(sink, clock, options());
  ASSERT_TRUE(recorder.record(config_map_ref(), EventType::kWarning, "PullFailed", "Pull", "x"));
  ASSERT_TRUE(recorder.flush(kDeadline));
  clock.advance(1min);
  ASSERT_TRUE(recorder.record(config_map_ref(), EventType::kWarning, "PullFailed", "Pull", "x"));
  ASSERT_TRUE(recorder.flush(kDeadline));
  clock.advance(1min);
  ASSERT_TRUE(recorder.record(config_map_ref(), EventType::kWarning, "PullFailed", "Pull", "x"));
  // A different note is another event.
  ASSERT_TRUE(recorder.record(config_map_ref(), EventType::kWarning, "PullFailed", "Pull", "y"));
  ASSERT_TRUE(recorder.flush(kDeadline));
  const std::vector<SinkCall> calls = sink.calls();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0].verb, "create");
  EXPECT_EQ(calls[1].verb, "patch");
  EXPECT_EQ(calls[1].name, calls[0].name);
  EXPECT_EQ(calls[1].namespace_, "ns1");
  EXPECT_EQ(calls[1].body["series"]["count"], 2);
  EXPECT_EQ(calls[1].body["series"]["lastObservedTime"],
            format_rfc3339_micro(clock.wall_now() - 1min));
  EXPECT_EQ(calls[2].verb, "patch");
  EXPECT_EQ(calls[2].body["series"]["count"], 3);
  EXPECT_EQ(calls[3].verb, "create");
  EXPECT_NE(calls[3].name, calls[0].name);
}

TEST(EventRecorder, RepeatAfterTheWindowOrOfADeletedEventIsANewEvent) {
  FakeClock clock;
  FakeEventSink sink;
  EventRecorder recorder(sink, clock, options());
  recorder.record(config_map_ref(), EventType::kNormal, "Synced", "Sync", "ok");
  ASSERT_TRUE(recorder.flush(kDeadline));
  clock.advance(6min);
  recorder.record(config_map_ref(), EventType::kNormal, "Synced", "Sync", "ok");
  ASSERT_TRUE(recorder.flush(kDeadline));
  sink.patch_not_found(true);
  clock.advance(1s);
  recorder.record(config_map_ref(), EventType::kNormal, "Synced", "Sync", "ok");
  ASSERT_TRUE(recorder.flush(kDeadline));
  const std::vector<SinkCall> calls = sink.calls();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0].verb, "create");
  EXPECT_EQ(calls[1].verb, "create");
  EXPECT_EQ(calls[2].verb, "patch");   // series of the second event…
  EXPECT_EQ(calls[3].verb, "create");  // …which was gone: a new one
  EXPECT_EQ(recorder.failed(), 0u);
}

// A sink that blocks until released, to fill the queue.
class BlockingSink final : public EventSink {
 public:
  void create(const nlohmann::json&) override {
    std::unique_lock lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  void patch(const std::string&, const std::string&, const nlohmann::json&) override {}
  bool wait_entered() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return entered_; });
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool open_ = false;
};

TEST(EventRecorder, RecordNeverBlocksAndDropsWhenTheQueueIsFull) {
  FakeClock clock;
  BlockingSink sink;
  EventRecorderOptions o = options();
  o.queue_capacity = 2;
  EventRecorder recorder(sink, clock, o);
  ASSERT_TRUE(recorder.record(config_map_ref(), EventType::kNormal, "R", "A", "0"));
  ASSERT_TRUE(sink.wait_entered());  // the sender is stuck in the first create
  EXPECT_TRUE(recorder.record(config_map_ref(), EventType::kNormal, "R", "A", "1"));
  EXPECT_TRUE(recorder.record(config_map_ref(), EventType::kNormal, "R", "A", "2"));
  EXPECT_FALSE(recorder.record(config_map_ref(), EventType::kNormal, "R", "A", "3"));
  EXPECT_EQ(recorder.dropped(), 1u);
  sink.open();
  EXPECT_TRUE(recorder.flush(kDeadline));
}

TEST(EventRecorder, RequiresReportingControllerAndInstance) {
  FakeClock clock;
  FakeEventSink sink;
  EXPECT_THROW(EventRecorder(sink, clock, {}), Error);
}

}  // namespace
}  // namespace stowage::kube
