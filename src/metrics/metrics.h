// Metrics: a small, thread-safe Prometheus registry and its text exposition (format 0.0.4).
//
// A Registry owns families; a family is one metric name with a fixed, ordered list of label
// names given at registration, and one series per distinct list of label values, created on
// first use by Family::With(). The HTTP server serves Registry::Render() on /metrics.
//
//   Registry registry;
//   Family<Counter>& requests = registry.AddCounter(
//       "automan_http_requests_total", "HTTP requests served.", {"method", "code"});
//   requests.With({"GET", "200"}).Inc();
//
// Ownership: the Registry owns every family and every series. References returned by Add*()
// and With() stay valid (stable addresses) for the Registry's lifetime; nothing is ever
// removed. The Registry must outlive every user of those references.
//
// Thread-safety: every method of every class here may be called from any thread.
// Counter/Gauge/Histogram updates are lock-free atomics (the hot path). With() takes the
// family's mutex for the lookup (and creation), so code on a hot path with fixed label values
// should call With() once and keep the reference. Render() runs the collectors, then reads
// each series; concurrent updates may or may not be included in a given Render.
//
// Names are programming constants, so a bad one is a broken invariant, not an expected
// failure: Add*() with an invalid metric or label name, a name already taken, or unsorted
// buckets, and With() with the wrong number of label values, print the reason to stderr and
// abort the process (in every build type), before anything can be scraped.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace automan::metrics {

// The Content-Type to serve Render()'s text with.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

template <class M>
class Family;

// A monotonically increasing value (events, bytes, seconds spent).
class Counter {
 public:
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds v. A negative or NaN increment is a caller bug: asserts in debug builds, is
  // ignored in release builds (a counter never goes down).
  void Inc(double v = 1);
  double Value() const { return value_.load(std::memory_order_relaxed); }

  // Reserved for collectors that mirror a counter kept elsewhere (e.g. CPU seconds read
  // from /proc): sets the value to an absolute reading. The source must itself be monotonic;
  // do not mix with Inc() on the same series.
  void SetFromReading(double v) { value_.store(v, std::memory_order_relaxed); }

 private:
  friend class Family<Counter>;
  Counter() = default;
  std::atomic<double> value_{0};
};

// A value that goes up and down (queue depth, bytes in use, a timestamp).
class Gauge {
 public:
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  friend class Family<Gauge>;
  Gauge() = default;
  std::atomic<double> value_{0};
};

// Counts observations into buckets fixed by the family (upper bounds, inclusive: `le`).
class Histogram {
 public:
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Lock-free: one atomic increment for the bucket, one atomic add for the sum.
  // NaN observations are ignored (they would poison _sum forever).
  void Observe(double v);

  struct Snapshot {
    std::vector<double> upper_bounds;  // the family's buckets, then +Inf
    std::vector<uint64_t> cumulative;  // per upper bound: observations <= it
    double sum = 0;
    uint64_t count = 0;  // == cumulative.back(), by construction
  };
  // Not atomic across buckets: concurrent Observe() calls may be partly included.
  Snapshot Read() const;

 private:
  friend class Family<Histogram>;
  explicit Histogram(const std::vector<double>& bounds);
  const std::vector<double>& bounds_;  // owned by the family; finite, strictly increasing
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket (not cumulative), +Inf last
  std::atomic<double> sum_{0};
};

namespace detail {
// What the Registry stores and renders; one per metric name.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Appends "# HELP", "# TYPE" and every series, sorted by label values.
  virtual void RenderTo(std::string& out) const = 0;

 protected:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
};
}  // namespace detail

// One metric name and its series. M is Counter, Gauge or Histogram.
template <class M>
class Family final : public detail::FamilyBase {
 public:
  // The series for these label values (one per label name, in registration order; any
  // UTF-8, escaped at render), created on first use. Costs a mutex and a map lookup:
  // keep the reference where the values are fixed. Aborts if the count is wrong.
  M& With(const std::vector<std::string>& label_values);

  void RenderTo(std::string& out) const override;

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds);

  std::vector<double> bounds_;  // Histogram only: upper bounds without +Inf
  mutable std::mutex mu_;       // guards series_ (the map, not the values)
  std::map<std::vector<std::string>, std::unique_ptr<M>> series_;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Metric names match [a-zA-Z_:][a-zA-Z0-9_:]* and counters' end in "_total"; label names
  // match [a-zA-Z_][a-zA-Z0-9_]*, do not start with "__" and are distinct. A name is taken
  // if any family already renders a sample of that name (a histogram "x" takes x, x_bucket,
  // x_sum and x_count). A family without labels gets its one series now, so it renders 0.
  Family<Counter>& AddCounter(std::string name, std::string help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(std::string name, std::string help,
                          std::vector<std::string> label_names = {});
  // `buckets`: finite upper bounds, strictly increasing; "+Inf" is always added (a trailing
  // +Inf given here is accepted and dropped). Label "le" is reserved.
  Family<Histogram>& AddHistogram(std::string name, std::string help,
                                  std::vector<std::string> label_names,
                                  std::vector<double> buckets);

  // `collect` runs at the start of every Render(), under Render's lock (so collectors never
  // run concurrently with each other), typically to set gauges from a store query or /proc.
  // It may call With() and Add*(); it must not call Render() or throw.
  void AddCollector(std::function<void()> collect);

  // The text exposition format 0.0.4: families in registration order, series sorted by
  // label values, floats in shortest round-trip form ("+Inf", "-Inf", "NaN" spelled out).
  std::string Render() const;

 private:
  template <class M>
  Family<M>& Add(std::string name, std::string help, std::vector<std::string> label_names,
                 std::vector<double> bounds);

  mutable std::mutex render_mu_;  // one Render() at a time; taken before mu_
  mutable std::mutex mu_;         // guards the three members below
  std::vector<std::unique_ptr<detail::FamilyBase>> families_;
  std::set<std::string, std::less<>> taken_;  // every sample name the families render
  std::vector<std::function<void()>> collectors_;
};

// Seconds, 1 ms .. 1 h: suits HTTP requests as well as step and run durations.
std::vector<double> DefaultDurationBuckets();

}  // namespace automan::metrics
