// A metrics registry rendered in the Prometheus text exposition format (version 0.0.4).
// Families are created once at start-up; children (one per label-value tuple) are looked up on
// use. All operations are thread-safe; returned references stay valid for the registry's life.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace stowage {

class Counter {
 public:
  // Adds `v` (must be >= 0; negative values are ignored: counters only go up).
  void inc(double v = 1.0);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double v);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // Cumulative counts per bound (the last entry is +Inf), sum, count.
  std::vector<std::uint64_t> cumulative_counts() const;
  double sum() const;
  std::uint64_t count() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;              // guards counts_, sum_
  std::vector<std::uint64_t> counts_;  // per bucket, non-cumulative; last is +Inf
  double sum_ = 0.0;
};

enum class MetricType { kCounter, kGauge, kHistogram };

// One metric name with its help text and label names; children per label-value tuple.
template <typename T>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : name_(std::move(name)),
        help_(std::move(help)),
        labels_(std::move(labels)),
        bounds_(std::move(bounds)) {}

  // The child for these label values (as many as label names; throws InvalidArgument if not).
  T& with(const std::vector<std::string>& values);
  // The child of a family without labels.
  T& get() { return with({}); }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& labels() const { return labels_; }
  // Calls fn(label values, child) for each child in label order.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    std::lock_guard lock(mu_);
    for (const auto& [values, child] : children_) fn(values, *child);
  }

 private:
  std::string name_, help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_;
  mutable std::mutex mu_;  // guards children_
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

class MetricsRegistry {
 public:
  // Throws InvalidArgument for an invalid metric or label name, or a name registered twice.
  Family<Counter>& counter(const std::string& name, const std::string& help,
                           std::vector<std::string> labels = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help,
                       std::vector<std::string> labels = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help,
                               std::vector<double> bounds, std::vector<std::string> labels = {});

  // The whole registry in the Prometheus text format, families sorted by name.
  std::string render() const;

  // Default buckets for durations in seconds.
  static std::vector<double> default_seconds_buckets();

 private:
  void check_new_name(const std::string& name, const std::vector<std::string>& labels) const;

  mutable std::mutex mu_;  // guards the three maps
  std::map<std::string, std::unique_ptr<Family<Counter>>> counters_;
  std::map<std::string, std::unique_ptr<Family<Gauge>>> gauges_;
  std::map<std::string, std::unique_ptr<Family<Histogram>>> histograms_;
};

// Formats a sample value as Prometheus does: integers without a fraction, +Inf/-Inf/NaN.
std::string format_metric_value(double v);
// Escapes a label value (\\, \", \n).
std::string escape_label_value(const std::string& v);

}  // namespace stowage
