// EventHub: the in-process fan-out of live activity to streams (SSE and WebSocket).
//
// Publishers: the engine (log lines as they are produced, before the log writer makes them
// durable, and step starts/ends, through HubObserver) and the queue (every committed run
// change of this process, through Queue's observer). Readers: the run and activity streams
// (streams.h), which read the store for everything older than what the hub holds, so a
// stream never misses a line: the hub only makes the newest ones arrive sooner.
//
// - Log rings: the newest lines of the current attempt of each run that has a subscriber
//   (bounded in lines and bytes), each rendered to its JSON once, when published, however
//   many streams send it. Runs nobody watches cost nothing.
// - Run views: the watched run's state as its streams show it, read from the store by one
//   stream and shared by the others until the run changes or the view ages (changes made
//   by other processes reach the hub only through the store).
// - Activity: a ring of the last `activity_ring` run changes, numbered from 1 in this
//   process; with the process epoch they form the global stream's event ids, so a client
//   resuming with an id from another process (a restart) is told to reload.
// - Wake-ups are coalesced: a subscription is woken at most once between two Arm() calls.
// - Stream admission: global and per-subject caps on open streams.
//
// Thread-safety: every method may be called from any thread. Wakers run on the
// publisher's thread and must not block (the transport's post a timer cancel).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/run.h"

namespace automan::api {

class EventHub {
 public:
  struct Options {
    size_t ring_lines = 2048;        // per watched run
    size_t ring_bytes = 512 * 1024;  // per watched run
    size_t activity_ring = 10000;
  };
  EventHub();
  explicit EventHub(Options options);
  ~EventHub();

  // ---- publishers
  void PublishLog(const LogLine& line);
  void PublishRun(const Run& run);              // a committed change
  void PublishStep(const std::string& run_id);  // a step started or ended

  // ---- subscriptions
  class Subscription {
   public:
    ~Subscription();
    // Re-enables the next wake-up; call before reading what the hub or store holds.
    void Arm() { armed_.store(true, std::memory_order_release); }

   private:
    friend class EventHub;
    EventHub* hub_ = nullptr;
    std::string run_id_;  // empty: all activity
    std::function<void()> wake_;
    std::atomic<bool> armed_{true};
    void Fire() {
      if (armed_.exchange(false, std::memory_order_acq_rel)) wake_();
    }
  };
  // `run_id` empty: woken on every activity event.
  std::unique_ptr<Subscription> Subscribe(const std::string& run_id, std::function<void()> wake);

  // A log line as streams send it: its sequence and LogLineJson, serialised.
  struct LiveLine {
    int64_t seq = 0;
    std::string json;
  };
  // Lines of `run_id`, attempt `attempt`, with seq > after_seq, at most `max`, appended to
  // `out`. False when the ring does not hold the line after `after_seq` (read the store).
  bool ReadLogs(const std::string& run_id, int attempt, int64_t after_seq, size_t max,
                std::vector<LiveLine>& out) const;
  // Bumped on every PublishRun/PublishStep of the run (0: none seen).
  uint64_t RunVersion(const std::string& run_id) const;

  // What a run stream shows of its run, shared by all the streams of a watched run.
  struct RunView {
    std::string json;  // RunJson with the steps, serialised
    int attempt = 1;
    bool terminal = false;
    std::string status;
  };
  using SteadyTime = std::chrono::steady_clock::time_point;
  // The view stored for `run_id` at `version` less than `max_age` before `now`, else
  // nullptr: then read the store and StoreRunView what you read.
  std::shared_ptr<const RunView> CachedRunView(const std::string& run_id, uint64_t version,
                                               SteadyTime now,
                                               std::chrono::milliseconds max_age) const;
  // `version` is RunVersion() read before the store was.
  void StoreRunView(const std::string& run_id, uint64_t version, SteadyTime read_at,
                    std::shared_ptr<const RunView> view);

  struct Activity {
    uint64_t seq = 0;
    std::string runbook_id;  // streams show a subject only the runs it may see
    std::string json;        // {"type":"run","run":{...}} without secrets
  };
  const std::string& epoch() const { return epoch_; }
  // Events with seq > after_seq (at most `max`). False when events after `after_seq`
  // were already dropped from the ring (the client must reload).
  bool ReadActivity(uint64_t after_seq, size_t max, std::vector<Activity>& out) const;
  uint64_t ActivityHead() const;

  // ---- stream admission
  class StreamSlot {
   public:
    ~StreamSlot();

   private:
    friend class EventHub;
    EventHub* hub_ = nullptr;
    std::string subject_;
  };
  // nullptr when `max_total` streams are open, or `max_per_subject` for this subject.
  std::unique_ptr<StreamSlot> AdmitStream(const std::string& subject, int max_total,
                                          int max_per_subject);
  int64_t open_streams() const { return open_streams_.load(); }

 private:
  struct Ring {
    int attempt = 0;
    std::deque<LiveLine> lines;
    size_t bytes = 0;
    uint64_t version = 0;
    std::vector<Subscription*> subs;
    std::shared_ptr<const RunView> view;
    uint64_t view_version = 0;
    SteadyTime view_read_at{};
  };
  void Unsubscribe(Subscription* s);
  void ReleaseSlot(const std::string& subject);

  Options options_;
  std::string epoch_;
  mutable std::mutex mu_;
  std::map<std::string, Ring, std::less<>> runs_;  // watched runs only
  std::vector<Subscription*> activity_subs_;
  std::deque<Activity> activity_;
  uint64_t activity_head_ = 0;
  std::map<std::string, int> slots_;
  std::atomic<int64_t> open_streams_{0};
};

}  // namespace automan::api
