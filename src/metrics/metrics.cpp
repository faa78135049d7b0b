#include "metrics/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include "common/status.h"

namespace automan::metrics {
namespace {

// A bad name or label count is a programming error (see the header): say why, then abort.
[[noreturn]] void Die(const Status& s) {
  fmt::print(stderr, "automan::metrics: {}\n", s.message());
  (void)std::fflush(stderr);
  std::abort();
}

bool IsNameChar(char c, bool first, bool colon_ok) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (c == ':') return colon_ok;
  return !first && c >= '0' && c <= '9';
}

bool Matches(std::string_view name, bool colon_ok) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!IsNameChar(name[i], i == 0, colon_ok)) return false;
  }
  return true;
}

// The sample names a family of `type` called `name` renders.
std::vector<std::string> SampleNames(std::string_view type, const std::string& name) {
  if (type == "histogram") return {name, name + "_bucket", name + "_sum", name + "_count"};
  return {name};
}

Status CheckFamily(std::string_view type, const std::string& name,
                   const std::vector<std::string>& label_names, const std::vector<double>& bounds) {
  if (!Matches(name, /*colon_ok=*/true)) {
    return Error(ErrorCode::kInvalidArgument,
                 "invalid metric name \"{}\": must match [a-zA-Z_:][a-zA-Z0-9_:]*", name);
  }
  if (type == "counter" && !name.ends_with("_total")) {
    return Error(ErrorCode::kInvalidArgument, "counter name \"{}\" must end in \"_total\"", name);
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& l = label_names[i];
    if (!Matches(l, /*colon_ok=*/false) || l.starts_with("__")) {
      return Error(ErrorCode::kInvalidArgument,
                   "invalid label name \"{}\" in {}: must match [a-zA-Z_][a-zA-Z0-9_]* and "
                   "not start with \"__\"",
                   l, name);
    }
    if (type == "histogram" && l == "le") {
      return Error(ErrorCode::kInvalidArgument, "label \"le\" is reserved in histogram {}", name);
    }
    for (size_t j = 0; j < i; ++j) {
      if (label_names[j] == l) {
        return Error(ErrorCode::kInvalidArgument, "duplicate label name \"{}\" in {}", l, name);
      }
    }
  }
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i - 1] < bounds[i]))) {
      return Error(ErrorCode::kInvalidArgument,
                   "buckets of {} must be finite and strictly increasing", name);
    }
  }
  return Status::Ok();
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);  // shortest representation that round-trips
}

// Label values escape backslash, double quote and newline; help text only the first and
// the last (format 0.0.4).
void AppendEscaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// `name{a="x",b="y"[,le="0.5"]} value\n`; no braces when there are no labels at all.
void AppendSample(std::string& out, std::string_view name, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, std::string_view le, double value) {
  out += name;
  if (!names.empty() || !le.empty()) {
    out += '{';
    for (size_t i = 0; i < names.size(); ++i) {
      if (i > 0) out += ',';
      out += names[i];
      out += "=\"";
      AppendEscaped(out, values[i], /*quote=*/true);
      out += '"';
    }
    if (!le.empty()) {
      if (!names.empty()) out += ',';
      out += "le=\"";
      out += le;
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  out += FormatValue(value);
  out += '\n';
}

void AppendSeries(std::string& out, const std::string& name, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, const Counter& c) {
  AppendSample(out, name, names, values, {}, c.Value());
}

void AppendSeries(std::string& out, const std::string& name, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, const Gauge& g) {
  AppendSample(out, name, names, values, {}, g.Value());
}

void AppendSeries(std::string& out, const std::string& name, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, const Histogram& h) {
  Histogram::Snapshot s = h.Read();
  const std::string bucket = name + "_bucket";
  for (size_t i = 0; i < s.upper_bounds.size(); ++i) {
    AppendSample(out, bucket, names, values, FormatValue(s.upper_bounds[i]),
                 static_cast<double>(s.cumulative[i]));
  }
  AppendSample(out, name + "_sum", names, values, {}, s.sum);
  AppendSample(out, name + "_count", names, values, {}, static_cast<double>(s.count));
}

template <class M>
constexpr std::string_view kTypeName = std::is_same_v<M, Counter> ? "counter"
                                       : std::is_same_v<M, Gauge> ? "gauge"
                                                                  : "histogram";

}  // namespace

void Counter::Inc(double v) {
  assert(v >= 0 && "Counter::Inc with a negative or NaN increment");
  if (!(v >= 0)) return;  // also false for NaN
  value_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), counts_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  // The first bound >= v: `le` is inclusive. Past the end is the +Inf bucket.
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.upper_bounds = bounds_;
  s.upper_bounds.push_back(INFINITY);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(total);
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

template <class M>
Family<M>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds)
    : FamilyBase(std::move(name), std::move(help), std::move(label_names)),
      bounds_(std::move(bounds)) {}

template <class M>
M& Family<M>::With(const std::vector<std::string>& label_values) {
  if (label_values.size() != label_names_.size()) {
    Die(Error(ErrorCode::kInvalidArgument, "{} takes {} label values, got {}", name_,
              label_names_.size(), label_values.size()));
  }
  std::lock_guard lock(mu_);
  auto it = series_.find(label_values);
  if (it == series_.end()) {
    std::unique_ptr<M> m;
    if constexpr (std::is_same_v<M, Histogram>) {
      m.reset(new M(bounds_));  // dependent, so only checked for Histogram
    } else {
      m.reset(new M());
    }
    it = series_.emplace(label_values, std::move(m)).first;
  }
  return *it->second;
}

template <class M>
void Family<M>::RenderTo(std::string& out) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  AppendEscaped(out, help_, /*quote=*/false);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += kTypeName<M>;
  out += '\n';
  std::lock_guard lock(mu_);
  for (const auto& [values, series] : series_) {
    AppendSeries(out, name_, label_names_, values, *series);
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

template <class M>
Family<M>& Registry::Add(std::string name, std::string help, std::vector<std::string> label_names,
                         std::vector<double> bounds) {
  if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) bounds.pop_back();
  if (Status s = CheckFamily(kTypeName<M>, name, label_names, bounds); !s.ok()) Die(s);
  std::vector<std::string> samples = SampleNames(kTypeName<M>, name);
  std::unique_ptr<Family<M>> family(
      new Family<M>(std::move(name), std::move(help), std::move(label_names), std::move(bounds)));
  // Created before the family is published, so no Render() sees it without its one series.
  if (family->label_names().empty()) family->With({});
  std::lock_guard lock(mu_);
  for (const std::string& s : samples) {
    if (taken_.contains(s)) {
      Die(Error(ErrorCode::kAlreadyExists, "metric name \"{}\" is already registered", s));
    }
  }
  taken_.insert(samples.begin(), samples.end());
  Family<M>& ref = *family;
  families_.push_back(std::move(family));
  return ref;
}

Family<Counter>& Registry::AddCounter(std::string name, std::string help,
                                      std::vector<std::string> label_names) {
  return Add<Counter>(std::move(name), std::move(help), std::move(label_names), {});
}

Family<Gauge>& Registry::AddGauge(std::string name, std::string help,
                                  std::vector<std::string> label_names) {
  return Add<Gauge>(std::move(name), std::move(help), std::move(label_names), {});
}

Family<Histogram>& Registry::AddHistogram(std::string name, std::string help,
                                          std::vector<std::string> label_names,
                                          std::vector<double> buckets) {
  return Add<Histogram>(std::move(name), std::move(help), std::move(label_names),
                        std::move(buckets));
}

void Registry::AddCollector(std::function<void()> collect) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collect));
}

std::string Registry::Render() const {
  std::lock_guard render_lock(render_mu_);
  // Copies taken under mu_ and used without it, so collectors may register families.
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard lock(mu_);
    collectors = collectors_;
  }
  for (const auto& collect : collectors) collect();
  std::vector<const detail::FamilyBase*> families;
  {
    std::lock_guard lock(mu_);
    for (const auto& f : families_) families.push_back(f.get());
  }
  std::string out;
  for (const detail::FamilyBase* f : families) f->RenderTo(out);
  return out;
}

std::vector<double> DefaultDurationBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,
          2.5,   5,      10,    30,   60,    120,  300, 600,  1800, 3600};
}

}  // namespace automan::metrics
