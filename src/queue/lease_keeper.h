// LeaseKeeper: the heartbeat of a lease owner (a worker process, or `automan exec`).
//
// One thread renews every registered lease in one transaction each `heartbeat` interval
// and, more often (`cancel_poll`), asks the store which of the owner's runs someone asked
// to cancel. It reports a lost lease (fence moved on, run gone) or a cancellation request
// once per run through the callback, on its own thread. Because this thread only talks to
// the store, a run flooding its output or a slow step never delays a heartbeat.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "queue/queue.h"

namespace automan {

class LeaseKeeper {
 public:
  enum class Event { kLost, kCancelRequested };
  using Callback = std::function<void(const std::string& run_id, Event event)>;

  struct Options {
    std::string owner;                       // whose cancellation requests to poll
    std::chrono::milliseconds heartbeat{0};  // 0: a third of the queue's lease
    std::chrono::milliseconds cancel_poll{250};
  };

  LeaseKeeper(Queue& queue, Options options, Callback callback);
  ~LeaseKeeper();  // stops the thread
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  void Add(const LeaseRef& lease);
  void Remove(const std::string& run_id);

 private:
  void Loop();

  Queue& queue_;
  Options options_;
  Callback callback_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                      // guarded by mu_
  std::map<std::string, int64_t> leases_;  // run id -> fence; guarded by mu_
  std::set<std::string> cancel_reported_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace automan
