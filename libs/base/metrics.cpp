#include "base/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace stowage {

void Counter::inc(double v) {
  if (!(v >= 0)) return;
  double cur = value_.load(std::memory_order_relaxed);
  while (!value_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

void Gauge::add(double v) {
  double cur = value_.load(std::memory_order_relaxed);
  while (!value_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  std::lock_guard lock(mu_);
  ++counts_[static_cast<size_t>(it - bounds_.begin())];
  sum_ += v;
}

std::vector<std::uint64_t> Histogram::cumulative_counts() const {
  std::lock_guard lock(mu_);
  std::vector<std::uint64_t> out(counts_.size());
  std::uint64_t acc = 0;
  for (size_t i = 0; i < counts_.size(); ++i) out[i] = acc += counts_[i];
  return out;
}

double Histogram::sum() const {
  std::lock_guard lock(mu_);
  return sum_;
}

std::uint64_t Histogram::count() const {
  std::lock_guard lock(mu_);
  std::uint64_t acc = 0;
  for (const auto c : counts_) acc += c;
  return acc;
}

template <typename T>
T& Family<T>::with(const std::vector<std::string>& values) {
  if (values.size() != labels_.size()) {
    throw Error(Code::kInvalidArgument, fmt::format("metric {}: {} label values for {} labels",
                                                    name_, values.size(), labels_.size()));
  }
  std::lock_guard lock(mu_);
  auto it = children_.find(values);
  if (it == children_.end()) {
    std::unique_ptr<T> child;
    if constexpr (std::is_same_v<T, Histogram>) {
      child = std::make_unique<Histogram>(bounds_);
    } else {
      child = std::make_unique<T>();
    }
    it = children_.emplace(values, std::move(child)).first;
  }
  return *it->second;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

namespace {

bool is_name(const std::string& s, bool allow_colon) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string label_block(const std::vector<std::string>& names,
                        const std::vector<std::string>& values, const std::string& extra = {}) {
  if (names.empty() && extra.empty()) return {};
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i] + "=\"" + escape_label_value(values[i]) + "\"";
  }
  if (!extra.empty()) {
    if (!names.empty()) out += ',';
    out += extra;
  }
  out += '}';
  return out;
}

void header(std::string& out, const std::string& name, const std::string& help,
            std::string_view type) {
  std::string escaped_help;
  for (const char c : help) {
    if (c == '\\') {
      escaped_help += "\\\\";
    } else if (c == '\n') {
      escaped_help += "\\n";
    } else {
      escaped_help += c;
    }
  }
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escaped_help, name, type);
}

}  // namespace

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    return fmt::format("{}", static_cast<long long>(v));
  return fmt::format("{}", v);
}

std::string escape_label_value(const std::string& v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void MetricsRegistry::check_new_name(const std::string& name,
                                     const std::vector<std::string>& labels) const {
  if (!is_name(name, true)) {
    throw Error(Code::kInvalidArgument, "invalid metric name \"" + name + "\"");
  }
  for (const auto& l : labels) {
    if (!is_name(l, false) || l.starts_with("__") || l == "le") {
      throw Error(Code::kInvalidArgument, "metric " + name + ": invalid label name \"" + l + "\"");
    }
  }
  if (counters_.count(name) || gauges_.count(name) || histograms_.count(name)) {
    throw Error(Code::kAlreadyExists, "metric " + name + " registered twice");
  }
}

Family<Counter>& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                          std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  check_new_name(name, labels);
  auto& f = counters_[name];
  f = std::make_unique<Family<Counter>>(name, help, std::move(labels));
  return *f;
}

Family<Gauge>& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                                      std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  check_new_name(name, labels);
  auto& f = gauges_[name];
  f = std::make_unique<Family<Gauge>>(name, help, std::move(labels));
  return *f;
}

Family<Histogram>& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                              std::vector<double> bounds,
                                              std::vector<std::string> labels) {
  if (!std::is_sorted(bounds.begin(), bounds.end()) ||
      std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end()) {
    throw Error(Code::kInvalidArgument, "metric " + name + ": bucket bounds must increase");
  }
  if (!bounds.empty() && std::isinf(bounds.back())) bounds.pop_back();
  std::lock_guard lock(mu_);
  check_new_name(name, labels);
  auto& f = histograms_[name];
  f = std::make_unique<Family<Histogram>>(name, help, std::move(labels), std::move(bounds));
  return *f;
}

std::vector<double> MetricsRegistry::default_seconds_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mu_);
  // Merge the three maps by name so output is sorted regardless of kind.
  std::map<std::string, std::string> blocks;
  for (const auto& entry : counters_) {
    const std::string& name = entry.first;
    const auto& f = entry.second;
    std::string out;
    header(out, name, f->help(), "counter");
    f->for_each([&](const std::vector<std::string>& values, const Counter& c) {
      out += name + label_block(f->labels(), values) + " " + format_metric_value(c.value()) + "\n";
    });
    blocks[name] = std::move(out);
  }
  for (const auto& entry : gauges_) {
    const std::string& name = entry.first;
    const auto& f = entry.second;
    std::string out;
    header(out, name, f->help(), "gauge");
    f->for_each([&](const std::vector<std::string>& values, const Gauge& g) {
      out += name + label_block(f->labels(), values) + " " + format_metric_value(g.value()) + "\n";
    });
    blocks[name] = std::move(out);
  }
  for (const auto& entry : histograms_) {
    const std::string& name = entry.first;
    const auto& f = entry.second;
    std::string out;
    header(out, name, f->help(), "histogram");
    f->for_each([&](const std::vector<std::string>& values, const Histogram& h) {
      const auto counts = h.cumulative_counts();
      for (size_t i = 0; i < counts.size(); ++i) {
        const std::string le =
            i < h.bounds().size() ? format_metric_value(h.bounds()[i]) : std::string("+Inf");
        out += name + "_bucket" + label_block(f->labels(), values, "le=\"" + le + "\"") + " " +
               std::to_string(counts[i]) + "\n";
      }
      out += name + "_sum" + label_block(f->labels(), values) + " " + format_metric_value(h.sum()) +
             "\n";
      out += name + "_count" + label_block(f->labels(), values) + " " +
             std::to_string(counts.back()) + "\n";
    });
    blocks[name] = std::move(out);
  }
  std::string all;
  for (auto& [_, b] : blocks) all += b;
  return all;
}

}  // namespace stowage
