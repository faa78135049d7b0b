#include "worker/worker.h"

#include <fmt/format.h>
#include <poll.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "queue/lease_keeper.h"

namespace automan {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Why an attempt's CancelSignal fired.
enum class StopReason { kNone, kCancelRequested, kLeaseLost, kShutdown };

struct Job {
  Run run;
  CancelSignal cancel;
  std::atomic<StopReason> reason{StopReason::kNone};

  void Stop(StopReason why) {
    StopReason expected = StopReason::kNone;
    reason.compare_exchange_strong(expected, why);
    cancel.Cancel();
  }
};

}  // namespace

struct Worker::Impl {
  Impl(Queue& q, RunExecutor& e, WorkerOptions o, WorkerStats& s)
      : queue(q), executor(e), options(std::move(o)), stats(s) {}

  Queue& queue;
  RunExecutor& executor;
  WorkerOptions options;
  WorkerStats& stats;
  QueueListener* listener = nullptr;
  std::unique_ptr<LeaseKeeper> keeper;

  std::mutex mu;
  std::condition_variable work_cv;                     // executors wait for jobs
  std::condition_variable idle_cv;                     // the drain waits for active == 0
  std::deque<std::shared_ptr<Job>> pending;            // guarded by mu
  std::map<std::string, std::shared_ptr<Job>> active;  // by run id; guarded by mu
  bool executors_stop = false;                         // guarded by mu
  std::vector<std::thread> executors;

  void OnKeeperEvent(const std::string& run_id, LeaseKeeper::Event event) {
    std::shared_ptr<Job> job;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = active.find(run_id);
      if (it == active.end()) return;
      job = it->second;
    }
    job->Stop(event == LeaseKeeper::Event::kLost ? StopReason::kLeaseLost
                                                 : StopReason::kCancelRequested);
  }

  void ExecutorLoop() {
    while (true) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu);
        work_cv.wait(lock, [&] { return executors_stop || !pending.empty(); });
        if (pending.empty()) return;
        job = std::move(pending.front());
        pending.pop_front();
      }
      RunOne(*job);
      {
        std::lock_guard<std::mutex> lock(mu);
        active.erase(job->run.id);
      }
      idle_cv.notify_all();
      listener->Wake();  // capacity came free
    }
  }

  void RunOne(Job& job) {
    RunExecutor::Result r = executor.Execute(job.run, job.cancel);
    keeper->Remove(job.run.id);
    const StopReason reason = job.reason.load();
    if (reason == StopReason::kLeaseLost || r.status.code() == ErrorCode::kAborted) {
      stats.lost++;
      fmt::print(stderr,
                 "automan worker: run {} attempt {}: lease lost (another worker took the run "
                 "over); its processes were stopped and nothing more is recorded\n",
                 job.run.id, job.run.attempt);
      return;
    }
    if (reason == StopReason::kShutdown) {
      stats.abandoned++;
      return;  // the lease expires and a worker rescues the run
    }
    if (!r.status.ok()) {
      fmt::print(stderr,
                 "automan worker: run {} attempt {}: {}; leaving its lease to expire so that "
                 "the run is retried\n",
                 job.run.id, job.run.attempt, r.status.ToString());
      return;
    }
    AttemptOutcome outcome = std::move(r.outcome);
    if (reason == StopReason::kCancelRequested) {
      outcome.status = RunStatus::kCancelled;
      if (outcome.error.empty() || outcome.error.find("cancel") == std::string::npos) {
        outcome.error = "cancelled on request";
      }
    }
    auto finished = queue.Finish(job.run, outcome, r.policy);
    if (!finished.ok()) {
      if (finished.status().code() == ErrorCode::kAborted) {
        // The fence moved on after the last step was recorded: the same lost lease as
        // above, so say so the same way (only the completion record was refused).
        stats.lost++;
        fmt::print(stderr,
                   "automan worker: run {} attempt {}: lease lost (another worker took the run "
                   "over); its outcome was not recorded\n",
                   job.run.id, job.run.attempt);
      } else {
        fmt::print(stderr, "automan worker: run {}: recording the outcome failed: {}\n", job.run.id,
                   finished.status().ToString());
      }
      return;
    }
    stats.finished++;
  }

  size_t ActiveCount() {
    std::lock_guard<std::mutex> lock(mu);
    return active.size();
  }

  void Dispatch(const CancelSignal& stop) {
    auto next_rescue = steady_clock::now();
    auto next_prune = steady_clock::now() + options.prune_interval;
    const bool prune = options.retention.max_age || options.retention.keep_per_runbook;
    while (!stop.cancelled()) {
      const int free = options.concurrency - static_cast<int>(ActiveCount());
      bool full_batch = false;
      bool claimed_none = true;
      if (free > 0) {
        const int want = std::min(free, options.max_claim_batch);
        auto claimed = queue.Claim(options.owner, want);
        if (!claimed.ok()) {
          fmt::print(stderr, "automan worker: claiming runs failed: {}\n",
                     claimed.status().ToString());
        } else {
          claimed_none = claimed->empty();
          full_batch = static_cast<int>(claimed->size()) == want;
          Hand(std::move(claimed).value());
        }
      }
      const auto now = steady_clock::now();
      if (now >= next_rescue) {
        next_rescue = now + options.rescue_interval;
        auto moved = queue.Rescue();
        if (moved.ok()) {
          stats.rescued += static_cast<uint64_t>(*moved);
        } else {
          fmt::print(stderr, "automan worker: rescue scan failed: {}\n", moved.status().ToString());
        }
      }
      if (prune && now >= next_prune) {
        auto n = queue.PruneBatch(options.retention);
        // A full batch means more to delete: come back soon, without stalling claims.
        next_prune = now + (n.ok() && *n >= options.retention.batch ? milliseconds(50)
                                                                    : options.prune_interval);
        if (n.ok()) stats.pruned += static_cast<uint64_t>(*n);
      }
      if (full_batch) continue;  // more may be waiting

      milliseconds timeout = options.poll;
      timeout = std::min(
          timeout, std::chrono::duration_cast<milliseconds>(next_rescue - steady_clock::now()));
      if (free > 0 && claimed_none) {
        std::optional<Timestamp> due;
        Status s = queue.store().Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
          AUTOMAN_ASSIGN_OR_RETURN(due, tx.NextNotBefore(SystemClock().Now()));
          return Status::Ok();
        });
        if (s.ok() && due) {
          auto until = std::chrono::duration_cast<milliseconds>(*due - SystemClock().Now()) +
                       milliseconds(1);
          timeout = std::min(timeout, until);
        }
      }
      listener->Wait(std::max(timeout, milliseconds(0)));
    }
  }

  void Hand(std::vector<automan::Run> runs) {
    if (runs.empty()) return;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (automan::Run& run : runs) {
        auto job = std::make_shared<Job>();
        job->run = std::move(run);
        keeper->Add({job->run.id, job->run.fence});
        active[job->run.id] = job;
        pending.push_back(std::move(job));
        stats.claimed++;
      }
    }
    // One wake-up per job: notify_all would wake every idle executor for a batch of one
    // (futex traffic measured by bench/queue.cpp, process_c32).
    for (size_t i = 0; i < runs.size(); ++i) work_cv.notify_one();
  }

  void Drain() {
    {
      std::unique_lock<std::mutex> lock(mu);
      if (!idle_cv.wait_for(lock, options.grace, [&] { return active.empty(); })) {
        fmt::print(stderr,
                   "automan worker: {} run(s) still going after the {} ms grace period; "
                   "stopping their processes and leaving their leases to expire\n",
                   active.size(), options.grace.count());
        for (auto& [id, job] : active) job->Stop(StopReason::kShutdown);
      }
      idle_cv.wait(lock, [&] { return active.empty(); });
      executors_stop = true;
    }
    work_cv.notify_all();
    for (auto& t : executors) t.join();
    executors.clear();
  }
};

Worker::Worker(Queue& queue, RunExecutor& executor, WorkerOptions options)
    : impl_(std::make_unique<Impl>(queue, executor, std::move(options), stats_)) {}

Worker::~Worker() = default;

Status Worker::Run(const CancelSignal& stop) {
  Impl& w = *impl_;
  if (w.options.concurrency < 1 || w.options.concurrency > 10000) {
    return Error(ErrorCode::kInvalidArgument, "worker concurrency {} is out of range; use 1..10000",
                 w.options.concurrency);
  }
  if (w.options.owner.empty()) {
    return Error(ErrorCode::kInvalidArgument, "a worker needs a lease owner name");
  }
  AUTOMAN_RETURN_IF_ERROR(w.queue.Reconcile().WithContext("reconciling the queue at start"));
  AUTOMAN_ASSIGN_OR_RETURN(w.listener, w.queue.Listener());
  w.keeper = std::make_unique<LeaseKeeper>(
      w.queue, LeaseKeeper::Options{w.options.owner, w.options.heartbeat, w.options.cancel_poll},
      [&w](const std::string& id, LeaseKeeper::Event e) { w.OnKeeperEvent(id, e); });
  for (int i = 0; i < w.options.concurrency; ++i) {
    w.executors.emplace_back([&w] { w.ExecutorLoop(); });
  }
  // Turns `stop` into a wake-up of the dispatcher's wait.
  std::atomic<bool> done{false};
  std::thread stop_watch([&] {
    while (!done) {
      pollfd p{stop.fd(), POLLIN, 0};
      if (poll(&p, 1, 100) > 0 || stop.cancelled()) {
        w.listener->Wake();
        return;
      }
    }
  });
  w.Dispatch(stop);
  done = true;
  stop_watch.join();
  w.Drain();
  w.keeper.reset();
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------

struct EngineExecutor::Cache {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<const Runbook>> by_version;  // guarded by mu
};

EngineExecutor::EngineExecutor(Engine& engine, RunObserver* observer)
    : engine_(engine), observer_(observer), cache_(std::make_unique<Cache>()) {}

EngineExecutor::~EngineExecutor() = default;

::automan::Result<RunParams> EngineExecutor::OpenSecretParams(const Run& run) const {
  RunParams params = run.params;
  for (auto& [name, value] : params) {
    if (!value.secret()) continue;
    if (value.sealed.empty()) {
      // Kept nowhere: a run `automan exec` started (it holds the value in memory only),
      // rescued after that process died. Running it with an empty secret could do harm.
      return Error(ErrorCode::kFailedPrecondition,
                   "secret parameter \"{}\": its value was never kept (the run was started "
                   "by automan exec, which holds it in memory only); start a new run",
                   name);
    }
    const SecretParamSealer* sealer = engine_.queue().options().sealer;
    if (sealer == nullptr) {
      return Error(ErrorCode::kFailedPrecondition,
                   "secret parameter \"{}\": this worker has no key to open it (start it "
                   "with the server's master key: --key-file)",
                   name);
    }
    auto opened = sealer->Open(value.sealed);
    if (!opened.ok()) {
      return Error(ErrorCode::kDataLoss,
                   "secret parameter \"{}\" does not open with this worker's key (another "
                   "key file, or an altered row)",
                   name);
    }
    value.text = std::move(opened).value();
    value.sealed.clear();
  }
  return params;
}

RunExecutor::Result EngineExecutor::Execute(Run& run, const CancelSignal& cancel) {
  Result result;
  std::shared_ptr<const Runbook> rb;
  {
    std::lock_guard<std::mutex> lock(cache_->mu);
    auto it = cache_->by_version.find(run.runbook_version);
    if (it != cache_->by_version.end()) rb = it->second;
  }
  if (!rb) {
    RunbookVersion v;
    result.status =
        engine_.queue().store().Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
          AUTOMAN_ASSIGN_OR_RETURN(v, tx.GetRunbookVersion(run.runbook_version));
          return Status::Ok();
        });
    if (!result.status.ok()) return result;
    ParseResult parsed = ParseRunbook(v.yaml, v.source);
    if (!parsed.ok()) {
      result.outcome.status = RunStatus::kFailed;
      result.outcome.error = fmt::format("runbook version {} does not parse: {}", v.version,
                                         parsed.diagnostics.front().ToString());
      return result;
    }
    rb = std::make_shared<const Runbook>(std::move(*parsed.runbook));
    std::lock_guard<std::mutex> lock(cache_->mu);
    if (cache_->by_version.size() >= 256) cache_->by_version.clear();
    cache_->by_version[run.runbook_version] = rb;
  }
  result.policy = rb->retries;
  auto params = OpenSecretParams(run);
  if (!params.ok()) {
    result.outcome.status = RunStatus::kFailed;
    result.outcome.error = params.status().message();
    return result;
  }
  auto outcome = engine_.ExecuteAttempt(*rb, run, *params, cancel, observer_);
  if (!outcome.ok()) {
    result.status = outcome.status();
    return result;
  }
  result.outcome = std::move(outcome).value();
  return result;
}

}  // namespace automan
