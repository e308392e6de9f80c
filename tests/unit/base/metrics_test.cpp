#include "base/metrics.h"

#include <gtest/gtest.h>

#include <thread>

#include "base/error.h"

namespace stowage {
namespace {

TEST(Metrics, RendersCounterGaugeHistogram) {
  MetricsRegistry r;
  auto& pulls = r.counter("stowage_pulls_total", "Image pulls by result.", {"result"});
  pulls.with({"ok"}).inc();
  pulls.with({"ok"}).inc(2);
  pulls.with({"failed"}).inc();
  r.gauge("stowage_store_bytes", "Bytes in the store.").get().set(1.5);
  auto& h = r.histogram("stowage_pull_seconds", "Pull duration.", {0.1, 1});
  h.get().observe(0.05);
  h.get().observe(0.5);
  h.get().observe(3);
  EXPECT_EQ(r.render(),
            "# HELP stowage_pull_seconds Pull duration.\n"
            "# TYPE stowage_pull_seconds histogram\n"
            "stowage_pull_seconds_bucket{le=\"0.1\"} 1\n"
            "stowage_pull_seconds_bucket{le=\"1\"} 2\n"
            "stowage_pull_seconds_bucket{le=\"+Inf\"} 3\n"
            "stowage_pull_seconds_sum 3.55\n"
            "stowage_pull_seconds_count 3\n"
            "# HELP stowage_pulls_total Image pulls by result.\n"
            "# TYPE stowage_pulls_total counter\n"
            "stowage_pulls_total{result=\"failed\"} 1\n"
            "stowage_pulls_total{result=\"ok\"} 3\n"
            "# HELP stowage_store_bytes Bytes in the store.\n"
            "# TYPE stowage_store_bytes gauge\n"
            "stowage_store_bytes 1.5\n");
}

TEST(Metrics, EscapesLabelValues) {
  MetricsRegistry r;
  r.counter("c", "h", {"image"}).with({"a\"b\\c\nd"}).inc();
  EXPECT_NE(r.render().find("c{image=\"a\\\"b\\\\c\\nd\"} 1"), std::string::npos);
}

TEST(Metrics, RefusesBadNamesAndDuplicates) {
  MetricsRegistry r;
  EXPECT_THROW(r.counter("1bad", "h"), Error);
  EXPECT_THROW(r.counter("ok", "h", {"le"}), Error);
  EXPECT_THROW(r.counter("ok", "h", {"__x"}), Error);
  r.gauge("dup", "h");
  EXPECT_THROW(r.counter("dup", "h"), Error);
  EXPECT_THROW(r.histogram("hh", "h", {1, 0.5}), Error);
  auto& f = r.counter("lbl", "h", {"a", "b"});
  EXPECT_THROW(f.with({"x"}), Error);
}

TEST(Metrics, CounterIgnoresNegativeAndIsThreadSafe) {
  MetricsRegistry r;
  auto& c = r.counter("n", "h").get();
  c.inc(-5);
  EXPECT_EQ(c.value(), 0);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 10'000; ++i) c.inc();
      });
    }
  }
  EXPECT_EQ(c.value(), 40'000);
}

TEST(Metrics, FormatsValues) {
  EXPECT_EQ(format_metric_value(3), "3");
  EXPECT_EQ(format_metric_value(0.25), "0.25");
  EXPECT_EQ(format_metric_value(1.0 / 0.0), "+Inf");
}

}  // namespace
}  // namespace stowage
