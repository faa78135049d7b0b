// Queue: the one durable road every run takes, from enqueue to its completion record.
// docs/queue.md is the user-facing description; this comment is the contract.
//
// The queue is the `runs` table itself: a run exists iff it is queued, because enqueue
// inserts the run row (status PENDING) and its concurrency keys in one transaction, after
// putting the exact runbook version it will execute (content-addressed, stored once).
//
// Enqueue
//   Fields: priority (higher first, FIFO within a priority), not_before (a delay),
//   idempotency key (a second enqueue with the same key within `idempotency_window`
//   returns the existing run and creates nothing; the key is locked for the check, so
//   racing processes create one run), concurrency keys (from the runbook), max attempts.
//   "Enqueued" means committed durably (the store's kWrite; group commit shares one fsync
//   between concurrent enqueues).
//
// Claim
//   A worker claims up to N claimable runs (Store's ListClaimable: pending, due, not
//   held back by a full key) in one transaction. A claim sets status RUNNING, a lease
//   (owner, expires_at = now + lease), increments `attempt` and the fencing token
//   `fence`, takes the run's key slots and records the new attempt (RUNNING). Every later
//   write for that attempt (heartbeat, step runs, log lines, outputs, completion) carries
//   the fence and is refused (kAborted) once another claim has moved it on, so a worker
//   that lost its lease (paused past expiry, partitioned) can never overwrite the newer
//   attempt's records. A worker that sees kAborted kills the attempt's processes and
//   drops the run.
//
// Heartbeat
//   The owner renews each lease well before it expires (worker: every lease/3, from its
//   own thread that a run's output cannot block). Renewal answers whether cancellation was
//   requested.
//
// Finish (exactly-once completion record)
//   Execution is at least once; the completion record is written at most once per
//   attempt and at most once per run, because Finish is fenced. Outcomes:
//   - SUCCESS, CANCELLED, ROLLED_BACK: terminal.
//   - FAILED or TIMEOUT with a retry policy, attempts left and an exit code not in
//     `no_retry_exit_codes`: back to PENDING with not_before = now + backoff (with
//     jitter). The backoff is persisted, so a restart during it honours it.
//   - FAILED or TIMEOUT with a retry policy but no attempts left: DEAD (the dead-letter
//     queue), with the reason. Without a retry policy: FAILED / TIMEOUT, terminal.
//   Finish releases the run's key slots.
//
// Rescue
//   A lease that expires (its worker died, was kill -9ed or paused) is found by the
//   rescue scan (every worker runs one) and its attempt is recorded as lost. The run goes
//   back to PENDING at once when attempts are left (rescues and failures share the
//   attempt budget), or DEAD with the reason otherwise. So no run stays RUNNING once
//   every worker that could own it is gone: it is re-queued within lease + scan interval.
//   Reconcile() does a rescue pass and recounts key slots; workers call it at start.
//
// Attempt budget
//   max_attempts = 1 + the runbook's `retries.count`, and never below
//   `QueueOptions::min_attempts` (3), so that a worker crash does not bury a run that never
//   failed. Failures are retried only when the runbook has a `retries` policy.
//
// Cancel
//   A PENDING run becomes CANCELLED at once and is never claimed. A RUNNING or WAITING run
//   gets cancel_requested; its worker polls for that (WorkerOptions::cancel_poll) and
//   kills the process tree, then Finish records CANCELLED. A terminal run is left as is.
//
// Limits
//   Global concurrency is the worker's; per-key limits and token-bucket rates come from
//   the runbook's `concurrency:` (a per-runbook limit is a key named after the runbook).
//   Runs over a limit wait in the queue, and never block the runs behind them.
//
// Cooldown
//   A runbook with `cooldown: D` gets no new run until D after the creation of its
//   previous run (runs cancelled before they started do not count; until agents exist
//   the target is this host, so the key is the runbook). A refused enqueue is
//   kFailedPrecondition naming when it may run again (CooldownEnds). The check and the
//   insert share one transaction under the key lock "cooldown:<runbook>", so racing
//   enqueues create one run. It applies to every new run (API, CLI, schedules, replays,
//   automan exec), not to the retries of an attempt, which are the same run. An enqueue
//   that an idempotency key answers with an existing run is not refused.
//
// Dead-letter queue
//   DEAD runs keep their attempts, logs and reason. Replay enqueues a new run of the same
//   runbook version with the same params, `retry_of` pointing at the dead run and trigger
//   `retry`.
//
// Retention
//   Prune deletes terminal runs older than an age and/or beyond a count per runbook, in
//   batches of `batch` runs per transaction so the queue never stalls.
//
// Thread safety: a Queue may be used from many threads; each call is independent.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "core/run.h"
#include "runbook/runbook.h"
#include "store/store.h"

namespace automan {

// Seals the value of a secret run parameter while its queued run waits and runs, so the
// store never holds it in clear (secrets/param_sealer.h: secretbox under a key derived
// from the master key). The queue seals at enqueue and deletes the sealed value when the
// run ends; the worker's EngineExecutor opens it for each attempt. Thread-safe.
class SecretParamSealer {
 public:
  virtual ~SecretParamSealer() = default;
  virtual std::string Seal(std::string_view value) const = 0;
  // kDataLoss when `sealed` was not sealed under this key or was altered.
  virtual Result<std::string> Open(std::string_view sealed) const = 0;
};

struct QueueOptions {
  std::chrono::milliseconds lease{30'000};
  std::chrono::milliseconds idempotency_window{24 * 3600 * 1000};
  int min_attempts = 3;
  // Null: runs with a secret parameter value are refused (kFailedPrecondition).
  const SecretParamSealer* sealer = nullptr;
};

struct EnqueueRequest {
  const Runbook* runbook = nullptr;  // required; its version is stored with the run
  RunParams params;                  // bound (BindParams); secret values are sealed
  Trigger trigger = Trigger::kManual;
  std::string triggered_by;
  int priority = 0;  // -1000..1000
  std::optional<Timestamp> not_before;
  std::optional<std::string> idempotency_key;  // 1..200 bytes
  std::optional<int> max_attempts;             // 1..1000; default: see "Attempt budget"
  std::optional<Timestamp> deadline_at;
  std::optional<std::string> retry_of;
  // Keys added to the runbook's own (the scheduler's overlap policies serialise a
  // schedule's runs on one).
  std::vector<ConcurrencyLimit> extra_concurrency;
};

struct Enqueued {
  Run run;
  bool created = true;  // false: the idempotency key returned an existing run
};

// How one attempt ended, as the executor saw it.
struct AttemptOutcome {
  RunStatus status = RunStatus::kSuccess;  // SUCCESS FAILED TIMEOUT CANCELLED ROLLED_BACK
  std::string error;
  std::optional<int> exit_code;  // of the step that failed, for no_retry_exit_codes
  RunOutputs outputs;
};

struct LeaseRef {
  std::string run_id;
  int64_t fence = 0;
};

struct HeartbeatResult {
  std::vector<std::string> lost;              // fence moved on or run gone: stop working
  std::vector<std::string> cancel_requested;  // kill the tree, then Finish as CANCELLED
};

struct RetentionPolicy {
  std::optional<std::chrono::milliseconds> max_age;
  std::optional<int> keep_per_runbook;
  int batch = 200;
};

class Queue {
 public:
  Queue(Store& store, const Clock& clock, QueueOptions options = {});

  const QueueOptions& options() const { return options_; }
  Store& store() { return store_; }

  // Called inside the transaction of an enqueue or cancel, with its result, so the caller
  // can write rows that commit with it or not at all (the API's audit entries).
  using EnqueueHook = std::function<Status(StoreTx&, const std::vector<Enqueued>&)>;
  using RunHook = std::function<Status(StoreTx&, const Run&)>;

  // Validates and enqueues (see the header comment). kInvalidArgument for bad fields.
  Result<Enqueued> Enqueue(const EnqueueRequest& request, const EnqueueHook& also = {});
  // Several in one transaction: all or none.
  Result<std::vector<Enqueued>> EnqueueMany(std::span<const EnqueueRequest> requests,
                                            const EnqueueHook& also = {});
  // Enqueues and claims for `owner` in one transaction (automan exec runs its own run
  // under a lease like any worker). Returns the claimed run.
  Result<Run> EnqueueClaimed(const EnqueueRequest& request, std::string_view owner);

  // When `rb`'s cooldown ends after its latest run (see "Cooldown"); nullopt when the
  // runbook has no cooldown or may run now.
  Result<std::optional<Timestamp>> CooldownEnds(StoreTx& tx, const Runbook& rb, Timestamp now);

  // Claims up to `max` (1..1000) runs for `owner`, best first.
  Result<std::vector<Run>> Claim(std::string_view owner, int max);

  // Renews the leases in one transaction.
  Result<HeartbeatResult> Heartbeat(std::span<const LeaseRef> leases);

  struct FinishOptions {
    // automan exec: when a retry is due, keep the run RUNNING under this lease with
    // `attempt` + 1 and not_before = the retry time; the caller waits and runs it.
    bool keep_lease_for_retry = false;
  };
  // Records the end of run.attempt (see Finish above); `run` is the claimed run (its
  // fence). `policy` is the runbook's run-level retries. kAborted when the fence is stale.
  Result<Run> Finish(const Run& run, const AttemptOutcome& outcome,
                     const std::optional<RetryPolicy>& policy, FinishOptions options);
  Result<Run> Finish(const Run& run, const AttemptOutcome& outcome,
                     const std::optional<RetryPolicy>& policy) {
    return Finish(run, outcome, policy, FinishOptions{});
  }

  // See Cancel above. Returns the run as it now is. kNotFound.
  Result<Run> Cancel(std::string_view run_id, const RunHook& also = {});

  // Enqueue and Cancel inside the caller's kWrite transaction, so that other rows commit
  // with them or not at all (the scheduler's ledger row and its run). Call Notify() after
  // the transaction commits.
  Result<Enqueued> EnqueueInTx(StoreTx& tx, const EnqueueRequest& request) {
    return EnqueueInTx(tx, request, clock_.Now());
  }
  Result<Run> CancelInTx(StoreTx& tx, std::string_view run_id);

  // Rescues up to `limit` expired leases; returns how many runs it moved.
  Result<int> Rescue(int limit = 500);
  // Start-up: rescue every expired lease and recount key slots.
  Status Reconcile();

  // Enqueues a replay of DEAD (or any terminal) runs; see "Dead-letter queue".
  Result<Run> Replay(std::string_view run_id, std::string_view triggered_by,
                     const EnqueueHook& also = {});

  // One batch of retention; returns how many runs it deleted (0: nothing left to do).
  Result<int> PruneBatch(const RetentionPolicy& policy);

  // Wakes this process's dispatchers at once and notifies other processes.
  void Notify();
  // Dispatchers wait here (see QueueListener); created on first use.
  Result<QueueListener*> Listener();

  // Called with the run as committed after every change this Queue makes to a run
  // (enqueue, claim, finish, cancel, rescue, replay), on the calling thread, after the
  // transaction. Not for EnqueueInTx/CancelInTx, whose caller commits. The server feeds
  // its live streams and metrics from it. Set once, before the Queue is shared.
  using RunObserverFn = std::function<void(const Run&)>;
  void SetObserver(RunObserverFn observer) { observer_ = std::move(observer); }

 private:
  // `versions_put`: the runbook versions put in this transaction so far (EnqueueMany puts
  // each distinct version once, and none that stored_versions_ has); null to always put.
  Result<Enqueued> EnqueueInTx(StoreTx& tx, const EnqueueRequest& request, Timestamp now,
                               std::vector<std::string>* versions_put = nullptr,
                               bool* used_cache = nullptr);
  Status ClaimInTx(StoreTx& tx, Run& run, std::string_view owner, Timestamp now);

  void Observe(const Run& run) const {
    if (observer_) observer_(run);
  }

  Store& store_;
  const Clock& clock_;
  QueueOptions options_;
  RunObserverFn observer_;
  std::mutex listener_mu_;
  std::unique_ptr<QueueListener> listener_;  // guarded by listener_mu_ until set
  // Runbook versions this Queue saw committed to the store. Versions are content-addressed
  // and never deleted, so enqueueing another run of one needs no PutRunbookVersion (two
  // statements, two round trips on PostgreSQL). Should one vanish anyway, InsertRun
  // answers kNotFound and EnqueueMany forgets these and tries once more.
  std::mutex versions_mu_;
  std::set<std::string> stored_versions_;  // guarded by versions_mu_
};

}  // namespace automan
