#include "metrics/metrics.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "metrics/process_metrics.h"
#include "support/test_util.h"

namespace automan::metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The value of the sample line starting with `series` followed by a space; NaN if absent.
double SampleValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(series + " "))
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
  }
  return kNaN;
}

TEST(Metrics, RendersEveryKindWithLabelsAndEscaping) {
  Registry r;
  Family<Counter>& requests = r.AddCounter(
      "http_requests_total", "HTTP requests.\nBy \\ method \"quoted\".", {"method", "code"});
  requests.With({"POST", "500"}).Inc();
  requests.With({"GET", "200"}).Inc(2);
  requests.With({"GET", "200"}).Inc();
  requests.With({"a\\b\"c\nd", "404"}).Inc(0.5);

  Gauge& depth = r.AddGauge("queue_depth", "Runs waiting.").With({});
  depth.Set(1.5);
  depth.Add(-3.75);

  Histogram& steps =
      r.AddHistogram("step_duration_seconds", "Step durations.", {"runbook"}, {0.1, 1, 10})
          .With({"deploy"});
  for (double v : {0.0625, 0.5, 1.0, 100.0}) steps.Observe(v);

  r.AddCounter("idle_total", "Nothing yet.");                      // no labels: renders 0
  r.AddGauge("by_kind", "Series appear on first use.", {"kind"});  // no series yet
  r.AddHistogram("latency_seconds", "No labels.", {}, {0.5});      // zero series rendered

  EXPECT_EQ(r.Render(),
            "# HELP http_requests_total HTTP requests.\\nBy \\\\ method \"quoted\".\n"
            "# TYPE http_requests_total counter\n"
            "http_requests_total{method=\"GET\",code=\"200\"} 3\n"
            "http_requests_total{method=\"POST\",code=\"500\"} 1\n"
            "http_requests_total{method=\"a\\\\b\\\"c\\nd\",code=\"404\"} 0.5\n"
            "# HELP queue_depth Runs waiting.\n"
            "# TYPE queue_depth gauge\n"
            "queue_depth -2.25\n"
            "# HELP step_duration_seconds Step durations.\n"
            "# TYPE step_duration_seconds histogram\n"
            "step_duration_seconds_bucket{runbook=\"deploy\",le=\"0.1\"} 1\n"
            "step_duration_seconds_bucket{runbook=\"deploy\",le=\"1\"} 3\n"
            "step_duration_seconds_bucket{runbook=\"deploy\",le=\"10\"} 3\n"
            "step_duration_seconds_bucket{runbook=\"deploy\",le=\"+Inf\"} 4\n"
            "step_duration_seconds_sum{runbook=\"deploy\"} 101.5625\n"
            "step_duration_seconds_count{runbook=\"deploy\"} 4\n"
            "# HELP idle_total Nothing yet.\n"
            "# TYPE idle_total counter\n"
            "idle_total 0\n"
            "# HELP by_kind Series appear on first use.\n"
            "# TYPE by_kind gauge\n"
            "# HELP latency_seconds No labels.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{le=\"0.5\"} 0\n"
            "latency_seconds_bucket{le=\"+Inf\"} 0\n"
            "latency_seconds_sum 0\n"
            "latency_seconds_count 0\n");
}

TEST(Metrics, WithReturnsTheSameSeriesAtAStableAddress) {
  Registry r;
  Family<Counter>& f = r.AddCounter("events_total", "Events.", {"kind"});
  Counter* first = &f.With({"a"});
  for (int i = 0; i < 1000; ++i) f.With({"k" + std::to_string(i)});  // grow the map
  EXPECT_EQ(&f.With({"a"}), first);
}

TEST(Metrics, SpecialValuesRenderAsPrometheusSpellsThem) {
  Registry r;
  Family<Gauge>& g = r.AddGauge("special", "Special values.", {"v"});
  g.With({"inf"}).Set(kInf);
  g.With({"minf"}).Set(-kInf);
  g.With({"nan"}).Set(kNaN);
  g.With({"big"}).Set(1e21);
  g.With({"tiny"}).Set(1.5e-7);
  std::string text = r.Render();
  EXPECT_THAT(text, HasSubstr("special{v=\"inf\"} +Inf\n"));
  EXPECT_THAT(text, HasSubstr("special{v=\"minf\"} -Inf\n"));
  EXPECT_THAT(text, HasSubstr("special{v=\"nan\"} NaN\n"));
  EXPECT_THAT(text, HasSubstr("special{v=\"big\"} 1e+21\n"));
  EXPECT_THAT(text, HasSubstr("special{v=\"tiny\"} 1.5e-07\n"));
}

TEST(Histogram, BucketsAreCumulativeAndLeIsInclusive) {
  Registry r;
  Histogram& h = r.AddHistogram("sizes", "Sizes.", {}, {1, 2, 3}).With({});
  for (double v : {0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, -1.0}) h.Observe(v);
  h.Observe(kNaN);  // ignored
  Histogram::Snapshot s = h.Read();
  EXPECT_THAT(s.upper_bounds, ElementsAre(1, 2, 3, kInf));
  EXPECT_THAT(s.cumulative, ElementsAre(3, 5, 7, 9));
  EXPECT_EQ(s.count, 9u);
  EXPECT_EQ(s.sum, 17);
  std::string text = r.Render();
  EXPECT_THAT(text, HasSubstr("sizes_bucket{le=\"1\"} 3\nsizes_bucket{le=\"2\"} 5\n"
                              "sizes_bucket{le=\"3\"} 7\nsizes_bucket{le=\"+Inf\"} 9\n"
                              "sizes_sum 17\nsizes_count 9\n"));
}

TEST(Histogram, TrailingInfIsDroppedAndNoBucketsMeansOnlyInf) {
  Registry r;
  Histogram& a = r.AddHistogram("a_seconds", "A.", {}, {1, kInf}).With({});
  Histogram& b = r.AddHistogram("b_seconds", "B.", {}, {}).With({});
  a.Observe(5);
  b.Observe(5);
  EXPECT_THAT(a.Read().upper_bounds, ElementsAre(1, kInf));
  EXPECT_THAT(b.Read().cumulative, ElementsAre(1));
  std::string text = r.Render();
  EXPECT_THAT(text, HasSubstr("a_seconds_bucket{le=\"1\"} 0\na_seconds_bucket{le=\"+Inf\"} 1\n"
                              "a_seconds_sum 5\n"));
  EXPECT_THAT(text, HasSubstr("b_seconds_bucket{le=\"+Inf\"} 1\nb_seconds_sum 5\n"));
}

TEST(Histogram, DefaultDurationBucketsSpanAMillisecondToAnHour) {
  std::vector<double> b = DefaultDurationBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.front(), 0.001);
  EXPECT_EQ(b.back(), 3600);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
  EXPECT_EQ(std::adjacent_find(b.begin(), b.end()), b.end());
}

// Threads update shared and per-thread series, and create new series, while another
// thread renders; every total must come out exact.
TEST(Metrics, ConcurrentUpdatesAreExact) {
  constexpr int kThreads = 4;
  constexpr int kIterations = 50'000;
  Registry r;
  Family<Counter>& counts = r.AddCounter("work_total", "Work.", {"who"});
  Family<Gauge>& gauges = r.AddGauge("level", "Level.", {"who"});
  Family<Histogram>& hists = r.AddHistogram("work_seconds", "Work time.", {"who"}, {0.5});
  Counter& shared = counts.With({"shared"});
  std::atomic<bool> done{false};
  std::thread renderer([&] {
    double last = 0;
    while (!done.load()) {
      double now = SampleValue(r.Render(), "work_total{who=\"shared\"}");
      EXPECT_GE(now, last);  // monotonic as seen by scrapes
      last = now;
    }
  });
  std::vector<std::thread> workers;
  workers.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      Counter& mine = counts.With({"t" + std::to_string(t)});
      for (int i = 0; i < kIterations; ++i) {
        shared.Inc();
        mine.Inc();
        gauges.With({"shared"}).Add(i % 2 ? -1 : 2);  // +1 per pair
        hists.With({"shared"}).Observe(i % 2 ? 1 : 0.25);
        if (i % 1000 == 0) counts.With({"dyn" + std::to_string(i / 1000)}).Inc();
      }
    });
  }
  for (std::thread& w : workers) w.join();
  done = true;
  renderer.join();

  EXPECT_EQ(shared.Value(), kThreads * kIterations);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(counts.With({"t" + std::to_string(t)}).Value(), kIterations);
  }
  EXPECT_EQ(counts.With({"dyn0"}).Value(), kThreads);
  EXPECT_EQ(gauges.With({"shared"}).Value(), kThreads * kIterations / 2);
  Histogram::Snapshot s = hists.With({"shared"}).Read();
  EXPECT_THAT(s.cumulative, ElementsAre(kThreads * kIterations / 2, kThreads * kIterations));
  EXPECT_EQ(s.sum, kThreads * kIterations * 0.625);
  std::string text = r.Render();
  EXPECT_THAT(text,
              HasSubstr(fmt::format("work_total{{who=\"shared\"}} {}\n", kThreads * kIterations)));
}

TEST(MetricsDeathTest, InvalidNamesAreRefused) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry r;
  EXPECT_DEATH(r.AddCounter("1bad_total", "h"), "invalid metric name \"1bad_total\"");
  EXPECT_DEATH(r.AddGauge("bad-name", "h"), "invalid metric name");
  EXPECT_DEATH(r.AddGauge("", "h"), "invalid metric name");
  EXPECT_DEATH(r.AddCounter("requests", "h"), "counter name \"requests\" must end in \"_total\"");
  EXPECT_DEATH(r.AddGauge("g", "h", {"__reserved"}), "invalid label name \"__reserved\"");
  EXPECT_DEATH(r.AddGauge("g", "h", {"a-b"}), "invalid label name");
  EXPECT_DEATH(r.AddGauge("g", "h", {"a:b"}), "invalid label name");  // no colons in labels
  EXPECT_DEATH(r.AddGauge("g", "h", {"1a"}), "invalid label name");
  EXPECT_DEATH(r.AddGauge("g", "h", {"a", "a"}), "duplicate label name \"a\"");
  EXPECT_DEATH(r.AddHistogram("h", "h", {"le"}, {1}), "label \"le\" is reserved");
  EXPECT_DEATH(r.AddHistogram("h", "h", {}, {2, 1}), "strictly increasing");
  EXPECT_DEATH(r.AddHistogram("h", "h", {}, {1, 1}), "strictly increasing");
  EXPECT_DEATH(r.AddHistogram("h", "h", {}, {kNaN}), "finite");

  // What is valid stays valid, and those names are then taken.
  r.AddCounter("ns:ok_total", "h", {"_a1", "B"});
  r.AddGauge("_x", "h");
  r.AddHistogram("req_seconds", "h", {}, {1});
  EXPECT_DEATH(r.AddGauge("_x", "h"), "metric name \"_x\" is already registered");
  EXPECT_DEATH(r.AddGauge("req_seconds_count", "h"), "already registered");
  EXPECT_DEATH(r.AddHistogram("_x", "h", {}, {1}), "already registered");
}

TEST(MetricsDeathTest, WrongLabelCountAndNegativeIncrement) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry r;
  Family<Counter>& f = r.AddCounter("c_total", "h", {"a", "b"});
  EXPECT_DEATH(f.With({"x"}), "c_total takes 2 label values, got 1");
  Counter& c = f.With({"x", "y"});
#ifdef NDEBUG
  c.Inc(-1);
  c.Inc(kNaN);
  EXPECT_EQ(c.Value(), 0);
#else
  EXPECT_DEATH(c.Inc(-1), "negative");
#endif
}

TEST(Metrics, CollectorsRunAtEveryRender) {
  Registry r;
  Gauge& g = r.AddGauge("renders", "Renders so far.").With({});
  int calls = 0;
  r.AddCollector([&] { g.Set(++calls); });
  EXPECT_EQ(SampleValue(r.Render(), "renders"), 1);
  EXPECT_EQ(SampleValue(r.Render(), "renders"), 2);
  // A collector may register families (lazily, e.g. on first scrape).
  Gauge* late = nullptr;
  r.AddCollector([&] {
    if (late == nullptr) late = &r.AddGauge("late", "Registered by a collector.").With({});
    late->Set(7);
  });
  EXPECT_EQ(SampleValue(r.Render(), "late"), 7);
}

TEST(ProcessMetrics, PresentWithPlausibleValues) {
  Registry r;
  RegisterProcessMetrics(r);
  std::string text = r.Render();
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                           "process_start_time_seconds", "process_threads"}) {
    EXPECT_FALSE(std::isnan(SampleValue(text, name))) << name << " missing in\n" << text;
  }
  double rss = SampleValue(text, "process_resident_memory_bytes");
  EXPECT_GT(rss, 1 << 20);
  EXPECT_GE(SampleValue(text, "process_virtual_memory_bytes"), rss);
  EXPECT_GE(SampleValue(text, "process_cpu_seconds_total"), 0);
  double start = SampleValue(text, "process_start_time_seconds");
  double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 24 * 3600) << "this test process started more than a day ago?";
  double fds = SampleValue(text, "process_open_fds");
  EXPECT_GE(fds, 3);  // stdin, stdout, stderr
  EXPECT_LE(fds, SampleValue(text, "process_max_fds"));

  // Open 10 descriptors and start a thread: both readings follow.
  double threads = SampleValue(text, "process_threads");
  std::vector<int> opened;
  opened.reserve(10);
  for (int i = 0; i < 10; ++i) opened.push_back(dup(2));
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::thread parked([&] {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return release; });
  });
  text = r.Render();
  EXPECT_EQ(SampleValue(text, "process_open_fds"), fds + 10);
  // At least one more: sanitizer runtimes (TSan) start their own helper thread
  // lazily at the first pthread_create, so the rise can be two.
  EXPECT_GE(SampleValue(text, "process_threads"), threads + 1);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_one();
  parked.join();
  for (int fd : opened) close(fd);

  // CPU time is monotonic: burn some and look again.
  double cpu = SampleValue(text, "process_cpu_seconds_total");
  volatile double x = 0;
  for (int i = 0; i < 20'000'000; ++i) x = x + i;
  EXPECT_GE(SampleValue(r.Render(), "process_cpu_seconds_total"), cpu);
}

// Runs `promtool check metrics` on `text`; returns its combined output and exit status.
testing::CommandResult Promtool(const std::string& text) {
  testing::TempDir dir;
  std::string file = dir.File("metrics.txt");
  testing::WriteFile(file, text);
  return testing::RunCommand("promtool check metrics < '" + file + "' 2>&1");
}

TEST(Promtool, AcceptsTheRenderedText) {
  if (testing::RunCommand("command -v promtool >/dev/null").exit_code != 0) {
    GTEST_SKIP() << "promtool is not on PATH (Debian package `prometheus`)";
  }
  // The checker is live: it flags a counter without the _total suffix.
  testing::CommandResult bad = Promtool("# HELP foo Foo.\n# TYPE foo counter\nfoo 1\n");
  EXPECT_THAT(bad.out, HasSubstr("_total")) << "exit " << bad.exit_code << ": " << bad.out;

  Registry r;
  Family<Counter>& requests =
      r.AddCounter("automan_http_requests_total", "HTTP requests \"served\".\nBy method \\ code.",
                   {"method", "code"});
  requests.With({"GET", "200"}).Inc(3);
  requests.With({"we\"ird\\\nvalue", "500"}).Inc();
  r.AddCounter("automan_runs_total", "Runs finished.", {"status"});  // no series yet
  r.AddCounter("automan_scrapes_total", "Scrapes.").With({}).Inc();
  r.AddGauge("automan_queue_depth", "Runs waiting.", {"queue"}).With({"default"}).Set(4);
  r.AddGauge("automan_up", "Always 1.").With({}).Set(1);
  Family<Histogram>& durations =
      r.AddHistogram("automan_http_request_duration_seconds", "HTTP request durations.", {"route"},
                     DefaultDurationBuckets());
  durations.With({"/api/v1/runs"}).Observe(0.003);
  durations.With({"/api/v1/runs"}).Observe(42);
  r.AddHistogram("automan_step_duration_seconds", "Step durations.", {}, DefaultDurationBuckets())
      .With({})
      .Observe(7200);
  RegisterProcessMetrics(r);

  std::string text = r.Render();
  testing::CommandResult result = Promtool(text);
  EXPECT_EQ(result.exit_code, 0) << result.out << "\n--- input:\n" << text;
  EXPECT_EQ(result.out, "") << "promtool reported problems:\n"
                            << result.out << "\n--- input:\n"
                            << text;
}

}  // namespace
}  // namespace automan::metrics
