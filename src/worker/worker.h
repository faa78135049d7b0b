// Worker: a pool that claims runs from the queue and executes them (`automan worker`, and
// later inside `automan server`). docs/queue.md describes what users see.
//
// Threads
// - the dispatcher (the thread that calls Run): claims up to the free capacity in one
//   transaction, hands each run to an executor thread, and otherwise sleeps on the
//   queue's listener until an enqueue anywhere wakes it, the next delayed run is due, or
//   the polling backstop (`poll`) passes. It also runs the rescue scan every
//   `rescue_interval` and one retention batch every `prune_interval`;
// - `concurrency` executor threads, each running one attempt at a time through the
//   RunExecutor and recording the outcome (Queue::Finish);
// - the LeaseKeeper's heartbeat thread (queue/lease_keeper.h), which renews the leases
//   and turns a lost lease or a cancellation request into the run's CancelSignal.
//
// Stopping: when `stop` fires the dispatcher stops claiming; running attempts get
// `grace` to finish (and are recorded normally); after that their process trees are
// killed and their leases are left to expire, so another worker rescues them.
//
// A lost lease (another worker took the run over) kills the attempt's processes and
// records nothing more: the fence would refuse it anyway.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "queue/queue.h"
#include "sandbox/supervisor.h"

namespace automan {

// What a worker does with a claimed run. Implementations must be thread-safe (several
// executor threads call Execute at once) and must return promptly once `cancel` fires.
class RunExecutor {
 public:
  virtual ~RunExecutor() = default;
  struct Result {
    AttemptOutcome outcome;
    std::optional<RetryPolicy> policy;  // the runbook's run-level `retries`
    Status status;                      // not OK: the store failed or refused the fence
  };
  // `run` is the claimed run; its outputs may be updated.
  virtual Result Execute(Run& run, const CancelSignal& cancel) = 0;
};

struct WorkerOptions {
  std::string owner;  // lease owner, e.g. "worker:HOST:PID"; unique per process
  int concurrency = 4;
  int max_claim_batch = 64;
  std::chrono::milliseconds poll{1000};
  std::chrono::milliseconds rescue_interval{5000};
  std::chrono::milliseconds grace{30'000};
  std::chrono::milliseconds heartbeat{0};  // 0: a third of the lease
  std::chrono::milliseconds cancel_poll{250};
  RetentionPolicy retention;
  std::chrono::milliseconds prune_interval{60'000};
};

struct WorkerStats {
  std::atomic<uint64_t> claimed{0};
  std::atomic<uint64_t> finished{0};   // outcomes recorded
  std::atomic<uint64_t> lost{0};       // leases lost mid-run
  std::atomic<uint64_t> abandoned{0};  // killed at shutdown, left to expire
  std::atomic<uint64_t> rescued{0};    // expired leases this worker moved
  std::atomic<uint64_t> pruned{0};
};

class Worker {
 public:
  Worker(Queue& queue, RunExecutor& executor, WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Reconciles the store (Queue::Reconcile), then works until `stop` fires, then drains
  // (see Stopping). Returns an error only when the store is unusable at start.
  Status Run(const CancelSignal& stop);

  const WorkerStats& stats() const { return stats_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  WorkerStats stats_;
};

// The RunExecutor of real runs: reads the run's exact runbook version from the store
// (parsed versions are cached), and runs one attempt with the Engine.
class Engine;
class RunObserver;
class EngineExecutor final : public RunExecutor {
 public:
  // `observer` (optional, shared by every run; must be thread-safe) sees each attempt's
  // steps and log lines as they happen: the server's live streams and step metrics.
  explicit EngineExecutor(Engine& engine, RunObserver* observer = nullptr);
  ~EngineExecutor() override;
  Result Execute(Run& run, const CancelSignal& cancel) override;

 private:
  // The run's params with secret values opened (the queue's sealer); the values live
  // only in this copy, for the attempt.
  ::automan::Result<RunParams> OpenSecretParams(const Run& run) const;

  struct Cache;
  Engine& engine_;
  RunObserver* observer_;
  std::unique_ptr<Cache> cache_;
};

}  // namespace automan
