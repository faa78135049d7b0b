#include "queue/queue.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <random>

#include "common/duration.h"
#include "common/ids.h"
#include "runbook/backoff.h"

namespace automan {

namespace {

using std::chrono::milliseconds;

constexpr int kMaxPriority = 1000;
constexpr size_t kMaxIdempotencyKeyBytes = 200;
constexpr int kMaxAttempts = 1000;

// A listener that only hears this process (the fallback when the store offers none).
class InProcessListener final : public QueueListener {
 public:
  bool Wait(milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(mu_);
    bool woke = cv_.wait_for(lock, timeout, [&] { return pending_; });
    pending_ = false;
    return woke;
  }
  void Wake() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;
};

// Backoff with "equal jitter": half the policy's delay, plus a random part of the other
// half, so that runs failing together do not retry in lockstep.
milliseconds JitteredBackoff(const RetryPolicy& policy, int retry) {
  milliseconds d = BackoffDelay(policy, retry);
  if (d.count() < 2) return d;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int64_t> half(0, d.count() / 2);
  return milliseconds(d.count() - d.count() / 2 + half(rng));
}

bool ExitCodeNeverRetried(const RetryPolicy& policy, const std::optional<int>& exit_code) {
  return exit_code &&
         std::find(policy.no_retry_exit_codes.begin(), policy.no_retry_exit_codes.end(),
                   *exit_code) != policy.no_retry_exit_codes.end();
}

Status ValidateRequest(const EnqueueRequest& r, const SecretParamSealer* sealer) {
  if (r.runbook == nullptr) return Error(ErrorCode::kInvalidArgument, "no runbook to enqueue");
  if (r.priority < -kMaxPriority || r.priority > kMaxPriority) {
    return Error(ErrorCode::kInvalidArgument, "priority {} is out of range; use {}..{}", r.priority,
                 -kMaxPriority, kMaxPriority);
  }
  if (r.idempotency_key &&
      (r.idempotency_key->empty() || r.idempotency_key->size() > kMaxIdempotencyKeyBytes)) {
    return Error(ErrorCode::kInvalidArgument, "idempotency key must be 1..{} bytes (got {} bytes)",
                 kMaxIdempotencyKeyBytes, r.idempotency_key->size());
  }
  if (r.max_attempts && (*r.max_attempts < 1 || *r.max_attempts > kMaxAttempts)) {
    return Error(ErrorCode::kInvalidArgument, "max attempts {} is out of range; use 1..{}",
                 *r.max_attempts, kMaxAttempts);
  }
  for (const auto& [name, value] : r.params) {
    if (value.secret() && !value.text.empty() && sealer == nullptr) {
      return Error(ErrorCode::kFailedPrecondition,
                   "parameter \"{}\" of runbook {} is a secret, and this process has no key "
                   "to seal it with while the run is queued: enqueue it through the server "
                   "(automan run --secret-param {}), or give automan enqueue the master key "
                   "(--key-file)",
                   name, r.runbook->id, name);
    }
  }
  return Status::Ok();
}

// A run that ended keeps no secret value: its sealed parameters are deleted with the
// write that ends it (so a replay cannot reuse them either).
void ForgetSecretValues(Run& run) {
  for (auto& [name, value] : run.params) {
    value.sealed.clear();
    if (value.secret()) value.text.clear();
  }
}

}  // namespace

Queue::Queue(Store& store, const Clock& clock, QueueOptions options)
    : store_(store), clock_(clock), options_(options) {}

Result<Enqueued> Queue::EnqueueInTx(StoreTx& tx, const EnqueueRequest& r, Timestamp now,
                                    std::vector<std::string>* versions_put, bool* used_cache) {
  AUTOMAN_RETURN_IF_ERROR(ValidateRequest(r, options_.sealer));
  const Runbook& rb = *r.runbook;
  if (r.idempotency_key) {
    AUTOMAN_RETURN_IF_ERROR(tx.LockKey("idempotency:" + *r.idempotency_key));
    AUTOMAN_ASSIGN_OR_RETURN(
        std::optional<Run> existing,
        tx.FindRunByIdempotencyKey(*r.idempotency_key, now - options_.idempotency_window));
    if (existing) return Enqueued{std::move(*existing), false};
  }

  if (rb.cooldown) {
    AUTOMAN_RETURN_IF_ERROR(tx.LockKey("cooldown:" + rb.id));
    AUTOMAN_ASSIGN_OR_RETURN(std::optional<Timestamp> ends, CooldownEnds(tx, rb, now));
    if (ends) {
      return Error(ErrorCode::kFailedPrecondition,
                   "runbook {} is cooling down (cooldown {} after its previous run): it may "
                   "run again at {}",
                   rb.id, FormatDuration(*rb.cooldown), FormatRfc3339(*ends));
    }
  }

  // Putting an already stored version costs two statements (two round trips on
  // PostgreSQL; bench/queue.cpp, add and add_bulk): see stored_versions_.
  bool put = true;
  if (versions_put != nullptr) {
    if (std::find(versions_put->begin(), versions_put->end(), rb.version) != versions_put->end()) {
      put = false;
    } else {
      std::lock_guard<std::mutex> lock(versions_mu_);
      if (stored_versions_.count(rb.version) != 0) {
        put = false;
        if (used_cache != nullptr) *used_cache = true;
      }
    }
  }
  if (put) {
    RunbookVersion v;
    v.version = rb.version;
    v.runbook_id = rb.id;
    v.yaml = rb.yaml;
    v.source = rb.source;
    v.created_at = now;
    AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(v));
    if (versions_put != nullptr) versions_put->push_back(rb.version);
  }

  Run run;
  run.id = NewId(clock_);
  run.runbook_id = rb.id;
  run.runbook_version = rb.version;
  run.status = RunStatus::kPending;
  run.trigger = r.trigger;
  run.triggered_by = r.triggered_by;
  run.params = r.params;
  for (auto& [name, value] : run.params) {
    if (!value.secret()) continue;
    // Without a sealer the text is empty (ValidateRequest): the value is not kept, and a
    // worker that gets this run refuses to run it without (EngineExecutor).
    if (options_.sealer != nullptr) value.sealed = options_.sealer->Seal(value.text);
    value.text.clear();
  }
  run.priority = r.priority;
  run.attempt = 0;
  run.max_attempts = r.max_attempts.value_or(
      std::max(options_.min_attempts, 1 + (rb.retries ? rb.retries->count : 0)));
  run.created_at = now;
  run.not_before = r.not_before;
  run.deadline_at = r.deadline_at;
  run.retry_of = r.retry_of;
  run.idempotency_key = r.idempotency_key;
  run.concurrency = rb.concurrency;
  run.concurrency.insert(run.concurrency.end(), r.extra_concurrency.begin(),
                         r.extra_concurrency.end());
  AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(run));
  return Enqueued{std::move(run), true};
}

Result<std::optional<Timestamp>> Queue::CooldownEnds(StoreTx& tx, const Runbook& rb,
                                                     Timestamp now) {
  if (!rb.cooldown) return std::optional<Timestamp>();
  RunFilter f;
  f.runbook_id = rb.id;
  f.limit = 20;
  AUTOMAN_ASSIGN_OR_RETURN(std::vector<Run> recent, tx.ListRuns(f));  // newest first
  for (const Run& r : recent) {
    if (r.status == RunStatus::kCancelled && !r.started_at) continue;  // never acted
    const Timestamp ends = r.created_at + *rb.cooldown;
    return ends > now ? std::optional<Timestamp>(ends) : std::optional<Timestamp>();
  }
  return std::optional<Timestamp>();
}

Result<Enqueued> Queue::Enqueue(const EnqueueRequest& request, const EnqueueHook& also) {
  AUTOMAN_ASSIGN_OR_RETURN(std::vector<Enqueued> out, EnqueueMany({&request, 1}, also));
  return std::move(out.front());
}

Result<std::vector<Enqueued>> Queue::EnqueueMany(std::span<const EnqueueRequest> requests,
                                                 const EnqueueHook& also) {
  std::vector<Enqueued> out;
  std::vector<std::string> versions_put;
  bool used_cache = false;
  auto enqueue = [&](StoreTx& tx) -> Status {
    out.clear();
    versions_put.clear();
    used_cache = false;
    const Timestamp now = clock_.Now();
    for (const EnqueueRequest& r : requests) {
      AUTOMAN_ASSIGN_OR_RETURN(Enqueued e, EnqueueInTx(tx, r, now, &versions_put, &used_cache));
      out.push_back(std::move(e));
    }
    return also ? also(tx, out) : Status::Ok();
  };
  Status s = store_.Transact(Store::TxMode::kWrite, enqueue);
  if (s.code() == ErrorCode::kNotFound && used_cache) {
    // A version this Queue saw stored is gone (see stored_versions_): put them all again.
    {
      std::lock_guard<std::mutex> lock(versions_mu_);
      stored_versions_.clear();
    }
    s = store_.Transact(Store::TxMode::kWrite, enqueue);
  }
  AUTOMAN_RETURN_IF_ERROR(s);
  if (!versions_put.empty()) {
    std::lock_guard<std::mutex> lock(versions_mu_);
    stored_versions_.insert(versions_put.begin(), versions_put.end());
  }
  Notify();
  for (const Enqueued& e : out) {
    if (e.created) Observe(e.run);
  }
  return out;
}

Status Queue::ClaimInTx(StoreTx& tx, Run& run, std::string_view owner, Timestamp now) {
  const int64_t expected = run.fence;
  run.status = RunStatus::kRunning;
  run.attempt += 1;
  run.fence += 1;
  run.lease_owner = std::string(owner);
  run.lease_expires_at = now + options_.lease;
  if (!run.started_at) run.started_at = now;
  AUTOMAN_RETURN_IF_ERROR(tx.UpdateRunAdvancingFence(run, expected));
  Attempt a;
  a.run_id = run.id;
  a.number = run.attempt;
  a.status = RunStatus::kRunning;
  a.worker = run.lease_owner;
  a.started_at = now;
  return tx.UpsertAttempt(a);
}

Result<Run> Queue::EnqueueClaimed(const EnqueueRequest& request, std::string_view owner) {
  Run claimed;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    const Timestamp now = clock_.Now();
    AUTOMAN_ASSIGN_OR_RETURN(Enqueued e, EnqueueInTx(tx, request, now));
    if (!e.created) {
      return Error(ErrorCode::kAlreadyExists, "run {} already has idempotency key \"{}\"", e.run.id,
                   *request.idempotency_key);
    }
    AUTOMAN_ASSIGN_OR_RETURN(bool slots, tx.AcquireSlots(e.run, now));
    if (!slots) {
      std::vector<std::string> keys;
      for (const auto& c : e.run.concurrency) keys.push_back(c.key);
      return Error(ErrorCode::kResourceExhausted,
                   "concurrency key(s) {} of runbook {} allow no more runs now",
                   fmt::join(keys, ", "), e.run.runbook_id);
    }
    claimed = std::move(e.run);
    return ClaimInTx(tx, claimed, owner, now);
  }));
  Observe(claimed);
  return claimed;
}

Result<std::vector<Run>> Queue::Claim(std::string_view owner, int max) {
  if (max < 1 || max > 1000) {
    return Error(ErrorCode::kInvalidArgument, "claim batch {} is out of range; use 1..1000", max);
  }
  std::vector<Run> out;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    out.clear();
    const Timestamp now = clock_.Now();
    AUTOMAN_ASSIGN_OR_RETURN(std::vector<Run> candidates, tx.ListClaimable(now, max));
    for (Run& run : candidates) {
      AUTOMAN_ASSIGN_OR_RETURN(bool slots, tx.AcquireSlots(run, now));
      if (!slots) continue;  // a key filled up earlier in this batch
      AUTOMAN_RETURN_IF_ERROR(ClaimInTx(tx, run, owner, now));
      out.push_back(std::move(run));
    }
    return Status::Ok();
  }));
  for (const Run& r : out) Observe(r);
  return out;
}

Result<HeartbeatResult> Queue::Heartbeat(std::span<const LeaseRef> leases) {
  HeartbeatResult result;
  if (leases.empty()) return result;
  // Losing a renewal to a power cut is harmless (the lease is simply shorter).
  AUTOMAN_RETURN_IF_ERROR(
      store_.Transact(Store::TxMode::kWriteProgress, [&](StoreTx& tx) -> Status {
        result = HeartbeatResult{};
        const Timestamp expires = clock_.Now() + options_.lease;
        for (const LeaseRef& l : leases) {
          Result<bool> r = tx.RenewLease(l.run_id, l.fence, expires);
          if (r.ok()) {
            if (*r) result.cancel_requested.push_back(l.run_id);
          } else if (r.status().code() == ErrorCode::kAborted ||
                     r.status().code() == ErrorCode::kNotFound) {
            result.lost.push_back(l.run_id);
          } else {
            return r.status();
          }
        }
        return Status::Ok();
      }));
  return result;
}

Result<Run> Queue::Finish(const Run& claimed, const AttemptOutcome& outcome,
                          const std::optional<RetryPolicy>& policy, FinishOptions options) {
  Run run = claimed;
  for (const auto& [step, values] : outcome.outputs) run.outputs[step] = values;
  bool notify = false;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    run = claimed;
    for (const auto& [step, values] : outcome.outputs) run.outputs[step] = values;
    const Timestamp now = clock_.Now();
    // At most once per attempt: the fence alone does not say that this attempt is still
    // the run's current one (Finish keeps the fence), so a second Finish of an attempt
    // that was already recorded (ended, sent back for a retry) is refused here, before it
    // could overwrite the record. (tests/queue: FinishIsRecordedAtMostOncePerAttempt)
    AUTOMAN_ASSIGN_OR_RETURN(const Run stored, tx.GetRun(claimed.id));
    if (stored.fence == claimed.fence &&
        ((stored.status != RunStatus::kRunning && stored.status != RunStatus::kWaiting) ||
         stored.attempt != claimed.attempt)) {
      return Error(ErrorCode::kAborted,
                   "run {} attempt {}: its outcome was already recorded (the run is {} at "
                   "attempt {})",
                   claimed.id, claimed.attempt, ToString(stored.status), stored.attempt);
    }
    Attempt a;
    a.run_id = run.id;
    a.number = run.attempt;
    a.status = outcome.status;
    a.worker = run.lease_owner;
    a.started_at = run.lease_expires_at ? *run.lease_expires_at - options_.lease : now;
    a.finished_at = now;
    a.error = outcome.error;

    const bool failed =
        outcome.status == RunStatus::kFailed || outcome.status == RunStatus::kTimeout;
    const bool retryable =
        failed && policy.has_value() && !ExitCodeNeverRetried(*policy, outcome.exit_code);
    run.error = outcome.status == RunStatus::kSuccess ? "" : outcome.error;
    // A run whose cancellation was requested is never retried: cancel-requested runs are
    // not claimable, so a retry would stay PENDING for ever. It ends CANCELLED instead.
    // (tests/queue: CancelRequestedRunIsNotRetried)
    // The policy's count bounds retries after failures; max_attempts bounds failures and
    // rescues together.
    const bool attempts_left =
        retryable && run.attempt < std::min(run.max_attempts, 1 + policy->count);
    const bool cancelled_retry = attempts_left && stored.cancel_requested;
    if (attempts_left && !cancelled_retry) {
      const milliseconds delay = JitteredBackoff(*policy, run.attempt);
      run.not_before = now + delay;
      if (options.keep_lease_for_retry) {
        run.attempt += 1;
        run.lease_expires_at = *run.not_before + options_.lease;
      } else {
        run.status = RunStatus::kPending;
        run.lease_owner.clear();
        run.lease_expires_at.reset();
        AUTOMAN_RETURN_IF_ERROR(tx.ReleaseSlots(run));
        notify = true;
      }
    } else {
      if (cancelled_retry) {
        run.status = RunStatus::kCancelled;
        run.error = "cancelled on request; the last attempt failed: " + outcome.error;
      } else if (retryable) {
        run.status = RunStatus::kDead;
        run.error = fmt::format("attempt {} of {} failed and no retry is left: {}", run.attempt,
                                run.max_attempts, outcome.error);
      } else {
        run.status = outcome.status;
      }
      run.finished_at = now;
      run.lease_expires_at.reset();
      ForgetSecretValues(run);
      AUTOMAN_RETURN_IF_ERROR(tx.ReleaseSlots(run));
      notify = !run.concurrency.empty();  // a slot came free
    }
    AUTOMAN_RETURN_IF_ERROR(tx.UpdateRun(run));
    AUTOMAN_RETURN_IF_ERROR(tx.UpsertAttempt(a));
    if (options.keep_lease_for_retry && run.status == RunStatus::kRunning) {
      Attempt next;
      next.run_id = run.id;
      next.number = run.attempt;
      next.status = RunStatus::kRunning;
      next.worker = run.lease_owner;
      next.started_at = *run.not_before;
      AUTOMAN_RETURN_IF_ERROR(tx.UpsertAttempt(next));
    }
    return Status::Ok();
  }));
  if (notify) Notify();
  Observe(run);
  return run;
}

Result<Run> Queue::CancelInTx(StoreTx& tx, std::string_view run_id) {
  AUTOMAN_ASSIGN_OR_RETURN(Run run, tx.GetRun(run_id));
  if (run.status == RunStatus::kPending) {
    run.status = RunStatus::kCancelled;
    run.finished_at = clock_.Now();
    run.error = "cancelled before it started";
    ForgetSecretValues(run);
    AUTOMAN_RETURN_IF_ERROR(tx.UpdateRun(run));
  } else if (run.status == RunStatus::kRunning || run.status == RunStatus::kWaiting) {
    AUTOMAN_RETURN_IF_ERROR(tx.RequestCancel(run.id));
    run.cancel_requested = true;
  }
  return run;
}

Result<Run> Queue::Cancel(std::string_view run_id, const RunHook& also) {
  // A claim may move the fence between our read and our write (PostgreSQL runs them
  // concurrently); then the run is running and the next pass asks its worker instead.
  for (int pass = 0;; ++pass) {
    Run run;
    Status s = store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(run, CancelInTx(tx, run_id));
      return also ? also(tx, run) : Status::Ok();
    });
    if (s.code() == ErrorCode::kAborted && pass < 3) continue;
    AUTOMAN_RETURN_IF_ERROR(s);
    Observe(run);
    return run;
  }
}

Result<int> Queue::Rescue(int limit) {
  int moved = 0;
  bool notify = false;
  std::vector<Run> rescued;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    moved = 0;
    notify = false;
    rescued.clear();
    const Timestamp now = clock_.Now();
    AUTOMAN_ASSIGN_OR_RETURN(std::vector<Run> expired, tx.ListExpiredLeases(now, limit));
    for (Run& run : expired) {
      const std::string reason =
          fmt::format("attempt {} lost: worker {} stopped renewing its lease (expired {})",
                      run.attempt, run.lease_owner.empty() ? "?" : run.lease_owner,
                      run.lease_expires_at ? FormatRfc3339(*run.lease_expires_at) : "?");
      Attempt a;
      a.run_id = run.id;
      a.number = run.attempt;
      a.status = RunStatus::kFailed;
      a.worker = run.lease_owner;
      a.started_at =
          run.lease_expires_at ? std::min(now, *run.lease_expires_at - options_.lease) : now;
      a.finished_at = now;
      a.error = reason;
      AUTOMAN_RETURN_IF_ERROR(tx.UpsertAttempt(a));
      AUTOMAN_RETURN_IF_ERROR(tx.ReleaseSlots(run));

      const int64_t expected = run.fence;
      run.fence += 1;  // whatever the lost worker still writes is refused from now on
      run.lease_expires_at.reset();
      if (run.cancel_requested) {
        run.status = RunStatus::kCancelled;
        run.finished_at = now;
        run.error = "cancelled; " + reason;
      } else if (run.attempt < run.max_attempts) {
        run.status = RunStatus::kPending;
        run.not_before = now;
        run.lease_owner.clear();
        run.error = reason;
        notify = true;
      } else {
        run.status = RunStatus::kDead;
        run.finished_at = now;
        run.error = fmt::format("all {} attempts used; the last one: {}", run.max_attempts, reason);
      }
      if (IsTerminal(run.status)) ForgetSecretValues(run);
      AUTOMAN_RETURN_IF_ERROR(tx.UpdateRunAdvancingFence(run, expected));
      ++moved;
      if (observer_) rescued.push_back(run);
    }
    return Status::Ok();
  }));
  if (notify) Notify();
  for (const Run& r : rescued) Observe(r);
  return moved;
}

Status Queue::Reconcile() {
  while (true) {
    AUTOMAN_ASSIGN_OR_RETURN(int moved, Rescue());
    if (moved == 0) break;
  }
  return store_.Transact(Store::TxMode::kWrite, [](StoreTx& tx) { return tx.RecountSlots(); });
}

Result<Run> Queue::Replay(std::string_view run_id, std::string_view triggered_by,
                          const EnqueueHook& also) {
  Run old;
  RunbookVersion version;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(old, tx.GetRun(run_id));
    AUTOMAN_ASSIGN_OR_RETURN(version, tx.GetRunbookVersion(old.runbook_version));
    return Status::Ok();
  }));
  if (!IsTerminal(old.status)) {
    return Error(ErrorCode::kFailedPrecondition,
                 "run {} is {}; only a finished run can be replayed", old.id, ToString(old.status));
  }
  ParseResult parsed = ParseRunbook(version.yaml, version.source);
  if (!parsed.ok()) {
    return Error(ErrorCode::kDataLoss, "run {}: its runbook version {} no longer parses: {}",
                 old.id, old.runbook_version, parsed.diagnostics.front().ToString());
  }
  for (const auto& [name, value] : old.params) {
    if (value.secret()) {
      return Error(ErrorCode::kFailedPrecondition,
                   "run {} had a secret parameter \"{}\", whose value was deleted when the "
                   "run ended; enqueue a new run with the value instead",
                   old.id, name);
    }
  }
  EnqueueRequest r;
  r.runbook = &*parsed.runbook;
  r.params = old.params;
  r.trigger = Trigger::kRetry;
  r.triggered_by = std::string(triggered_by);
  r.priority = old.priority;
  r.retry_of = old.id;
  AUTOMAN_ASSIGN_OR_RETURN(Enqueued e, Enqueue(r, also));
  return e.run;
}

Result<int> Queue::PruneBatch(const RetentionPolicy& policy) {
  if (!policy.max_age && !policy.keep_per_runbook) return 0;
  int deleted = 0;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    std::optional<Timestamp> before;
    if (policy.max_age) before = clock_.Now() - *policy.max_age;
    AUTOMAN_ASSIGN_OR_RETURN(
        std::vector<std::string> ids,
        tx.ListPrunable(before, policy.keep_per_runbook, std::clamp(policy.batch, 1, 10000)));
    AUTOMAN_RETURN_IF_ERROR(tx.DeleteRuns(ids));
    deleted = static_cast<int>(ids.size());
    return Status::Ok();
  }));
  return deleted;
}

void Queue::Notify() {
  {
    std::lock_guard<std::mutex> lock(listener_mu_);
    if (listener_) listener_->Wake();
  }
  (void)store_.NotifyQueue();  // best effort: other processes also poll
}

Result<QueueListener*> Queue::Listener() {
  std::lock_guard<std::mutex> lock(listener_mu_);
  if (!listener_) {
    auto l = store_.ListenQueue();
    if (l.ok()) {
      listener_ = std::move(l).value();
    } else {
      listener_ = std::make_unique<InProcessListener>();
    }
  }
  return listener_.get();
}

}  // namespace automan
