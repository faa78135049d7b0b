// EventHub: rings only for watched runs, ring coverage and gaps, coalesced wake-ups,
// activity ring with epochs, stream admission caps.
#include "api/hub.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "api/wire.h"

namespace automan::api {
namespace {

LogLine Line(const std::string& run, int attempt, int64_t seq) {
  LogLine l;
  l.run_id = run;
  l.attempt = attempt;
  l.seq = seq;
  l.step_id = "s";
  l.text = "line " + std::to_string(seq);
  return l;
}

TEST(EventHubTest, KeepsLinesOnlyForWatchedRuns) {
  EventHub hub;
  hub.PublishLog(Line("r1", 1, 1));
  std::vector<EventHub::LiveLine> out;
  EXPECT_FALSE(hub.ReadLogs("r1", 1, 0, 10, out));  // nobody watched: read the store
  auto sub = hub.Subscribe("r1", [] {});
  hub.PublishLog(Line("r1", 1, 2));
  EXPECT_FALSE(hub.ReadLogs("r1", 1, 0, 10, out)) << "the ring starts at seq 2, not 1";
  EXPECT_TRUE(hub.ReadLogs("r1", 1, 1, 10, out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].seq, 2);
  out.clear();
  EXPECT_TRUE(hub.ReadLogs("r1", 1, 2, 10, out)) << "covered, nothing new";
  EXPECT_TRUE(out.empty());
  sub.reset();
  EXPECT_FALSE(hub.ReadLogs("r1", 1, 1, 10, out)) << "the ring goes with the last watcher";
}

TEST(EventHubTest, RingIsBoundedAndRestartsOnANewAttempt) {
  EventHub::Options o;
  o.ring_lines = 100;
  EventHub hub(o);
  auto sub = hub.Subscribe("r", [] {});
  for (int i = 1; i <= 250; ++i) hub.PublishLog(Line("r", 1, i));
  std::vector<EventHub::LiveLine> out;
  EXPECT_FALSE(hub.ReadLogs("r", 1, 100, 1000, out)) << "lines 101..150 were dropped";
  EXPECT_TRUE(hub.ReadLogs("r", 1, 150, 1000, out));
  ASSERT_EQ(out.size(), 100u);
  EXPECT_EQ(out.front().seq, 151);
  EXPECT_EQ(out.back().seq, 250);
  hub.PublishLog(Line("r", 2, 1));
  out.clear();
  EXPECT_FALSE(hub.ReadLogs("r", 1, 250, 10, out)) << "attempt 1 is no longer in the ring";
  EXPECT_TRUE(hub.ReadLogs("r", 2, 0, 10, out));
  ASSERT_EQ(out.size(), 1u);
  hub.PublishLog(Line("r", 1, 251));  // a late line of an older attempt is ignored
  out.clear();
  EXPECT_TRUE(hub.ReadLogs("r", 2, 1, 10, out));
  EXPECT_TRUE(out.empty());
}

TEST(EventHubTest, RingRestartsAtAGapSoItNeverSkipsLines) {
  EventHub hub;
  auto sub = hub.Subscribe("r", [] {});
  hub.PublishLog(Line("r", 1, 1));
  hub.PublishLog(Line("r", 1, 2));
  hub.PublishLog(Line("r", 1, 5));  // 3 and 4 never reached the hub
  std::vector<EventHub::LiveLine> out;
  EXPECT_FALSE(hub.ReadLogs("r", 1, 2, 10, out)) << "a reader at 2 must go to the store for 3";
  EXPECT_TRUE(hub.ReadLogs("r", 1, 4, 10, out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].seq, 5);
}

TEST(EventHubTest, LinesAreRenderedOnceAsTheirJson) {
  EventHub hub;
  auto sub = hub.Subscribe("r", [] {});
  LogLine l = Line("r", 1, 1);
  l.text = "say \"hi\"\n";
  hub.PublishLog(l);
  std::vector<EventHub::LiveLine> out;
  ASSERT_TRUE(hub.ReadLogs("r", 1, 0, 10, out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].json, json::serialize(LogLineJson(l)));
}

TEST(EventHubTest, RunViewsAreSharedUntilTheRunChangesOrTheyAge) {
  EventHub hub;
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  const std::chrono::milliseconds age(1000);
  auto view = std::make_shared<EventHub::RunView>();
  view->json = "{}";
  hub.StoreRunView("r", 0, t0, view);
  EXPECT_EQ(hub.CachedRunView("r", 0, t0, age), nullptr) << "nobody watches r: nothing kept";

  auto sub = hub.Subscribe("r", [] {});
  hub.StoreRunView("r", 0, t0, view);
  EXPECT_EQ(hub.CachedRunView("r", 0, t0 + std::chrono::milliseconds(999), age), view);
  EXPECT_EQ(hub.CachedRunView("r", 0, t0 + age, age), nullptr) << "aged: read the store again";
  hub.PublishStep("r");
  EXPECT_EQ(hub.CachedRunView("r", hub.RunVersion("r"), t0, age), nullptr)
      << "the run changed: read the store again";

  auto fresh = std::make_shared<EventHub::RunView>();
  hub.StoreRunView("r", 1, t0 + std::chrono::milliseconds(10), fresh);
  hub.StoreRunView("r", 0, t0 + std::chrono::milliseconds(20), view);  // an older version
  hub.StoreRunView("r", 1, t0 + std::chrono::milliseconds(5), view);   // read earlier
  EXPECT_EQ(hub.CachedRunView("r", 1, t0 + std::chrono::milliseconds(10), age), fresh)
      << "a slower reader does not replace a fresher view";
}

TEST(EventHubTest, WakeUpsAreCoalescedUntilRearmed) {
  EventHub hub;
  std::atomic<int> wakes{0};
  auto sub = hub.Subscribe("r", [&] { ++wakes; });
  for (int i = 1; i <= 10; ++i) hub.PublishLog(Line("r", 1, i));
  EXPECT_EQ(wakes.load(), 1);
  sub->Arm();
  hub.PublishStep("r");
  EXPECT_EQ(wakes.load(), 2);
  EXPECT_EQ(hub.RunVersion("r"), 1u);
  automan::Run run;
  run.id = "r";
  sub->Arm();
  hub.PublishRun(run);
  EXPECT_EQ(wakes.load(), 3);
  EXPECT_EQ(hub.RunVersion("r"), 2u);
  auto other = hub.Subscribe("other", [&] { wakes += 100; });
  hub.PublishLog(Line("r", 1, 11));
  EXPECT_EQ(wakes.load(), 3) << "not re-armed, and the other run was not touched";
}

TEST(EventHubTest, ActivityRingResumesOrReportsTheGap) {
  EventHub::Options o;
  o.activity_ring = 5;
  EventHub hub(o);
  std::atomic<int> wakes{0};
  auto sub = hub.Subscribe("", [&] { ++wakes; });
  for (int i = 0; i < 8; ++i) {
    automan::Run r;
    r.id = "run" + std::to_string(i);
    hub.PublishRun(r);
  }
  EXPECT_EQ(hub.ActivityHead(), 8u);
  EXPECT_EQ(wakes.load(), 1);
  std::vector<EventHub::Activity> out;
  EXPECT_FALSE(hub.ReadActivity(2, 10, out)) << "events 3 was dropped";
  EXPECT_TRUE(hub.ReadActivity(3, 10, out));
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out.front().seq, 4u);
  EXPECT_NE(out.back().json.find("\"run7\""), std::string::npos);
  out.clear();
  EXPECT_TRUE(hub.ReadActivity(8, 10, out));
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(hub.ReadActivity(9, 10, out)) << "a cursor from the future is another epoch";
  EventHub other;
  EXPECT_NE(hub.epoch(), other.epoch());
}

TEST(EventHubTest, AdmissionCapsPerSubjectAndInAll) {
  EventHub hub;
  auto a1 = hub.AdmitStream("a", 3, 2);
  auto a2 = hub.AdmitStream("a", 3, 2);
  EXPECT_TRUE(a1 && a2);
  EXPECT_EQ(hub.AdmitStream("a", 3, 2), nullptr) << "per subject";
  auto b1 = hub.AdmitStream("b", 3, 2);
  EXPECT_TRUE(b1);
  EXPECT_EQ(hub.AdmitStream("c", 3, 2), nullptr) << "in all";
  EXPECT_EQ(hub.open_streams(), 3);
  a1.reset();
  EXPECT_NE(hub.AdmitStream("a", 3, 2), nullptr);
  EXPECT_EQ(hub.open_streams(), 2) << "the temporary slot was released";
}

TEST(EventHubTest, PublishersAndSubscribersOnManyThreads) {
  EventHub hub;
  std::atomic<bool> done{false};
  std::atomic<int64_t> woken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      const std::string run = "run" + std::to_string(t);
      for (int i = 1; i <= 2000; ++i) hub.PublishLog(Line(run, 1, i));
    });
  }
  threads.emplace_back([&] {
    while (!done.load()) {
      auto sub = hub.Subscribe("run1", [&] { ++woken; });
      std::vector<EventHub::LiveLine> out;
      (void)hub.ReadLogs("run1", 1, 0, 50, out);
      for (size_t i = 1; i < out.size(); ++i) ASSERT_EQ(out[i].seq, out[i - 1].seq + 1);
      auto slot = hub.AdmitStream("x", 10, 10);
    }
  });
  for (int t = 0; t < 3; ++t) threads[static_cast<size_t>(t)].join();
  done = true;
  threads.back().join();
  EXPECT_EQ(hub.open_streams(), 0);
}

}  // namespace
}  // namespace automan::api
