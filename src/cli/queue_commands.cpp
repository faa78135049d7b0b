// `automan worker`, `automan enqueue`, `automan cancel`, `automan dlq list|show|replay`:
// the queue, straight on the store (the server's API comes later).
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "api/run_json.h"
#include "cli/cli_support.h"
#include "cli/commands.h"
#include "common/clock.h"
#include "common/duration.h"
#include "engine/engine.h"
#include "queue/queue.h"
#include "runbook/runbook.h"
#include "scheduler/scheduler.h"
#include "scheduler/sync.h"
#include "secrets/param_sealer.h"
#include "secrets/secret_store.h"
#include "worker/worker.h"

namespace automan::cli {

namespace {

using std::chrono::milliseconds;

void PrintRunLine(const Run& r) {
  fmt::print("{}  {:<10} {:<24} attempt {}/{}  {}\n", r.id, ToString(r.status), r.runbook_id,
             r.attempt, r.max_attempts,
             r.finished_at ? FormatRfc3339(*r.finished_at) : FormatRfc3339(r.created_at));
}

}  // namespace

int RunWorker(const WorkerOptionsFlags& o) {
  auto lease = DurationFlag("lease", o.lease);
  auto poll_every = DurationFlag("poll", o.poll);
  auto grace = DurationFlag("grace", o.grace, true);
  if (!lease || !poll_every || !grace) return kExitInvalidInput;
  if (*lease < milliseconds(300)) {
    fmt::print(stderr, "error: --lease {} is too short; use at least 300ms\n", o.lease);
    return kExitInvalidInput;
  }
  RetentionPolicy retention;
  if (!o.retain_age.empty()) {
    auto age = DurationFlag("retain-age", o.retain_age);
    if (!age) return kExitInvalidInput;
    retention.max_age = *age;
  }
  if (o.retain_count > 0) retention.keep_per_runbook = o.retain_count;

  auto store = OpenStore(o.store, o.fast ? Durability::kFast : Durability::kFull);
  if (!store.ok()) {
    fmt::print(stderr, "error: {}\n", store.status().message());
    return kExitFailed;
  }
  // With the server's master key, the worker opens the secret parameters of the runs it
  // claims and the secret store for runbooks that list `secrets:`.
  auto keys = LoadKeysIfPresent(o.store, o.key_file);
  if (!keys.ok()) {
    fmt::print(stderr, "error: {}\n", keys.status().message());
    return kExitFailed;
  }
  std::optional<secrets::KeySealer> sealer;
  std::optional<secrets::SecretStore> secret_store;
  QueueOptions qo;
  qo.lease = *lease;
  EngineOptions eo = EngineOptionsFor(o.store.data_dir, {o.key_file});
  eo.idle_supervisors = static_cast<size_t>(std::min(o.concurrency, 16));
  if (*keys) {
    qo.sealer = &sealer.emplace((*keys)->params);
    secret_store.emplace(**store, (*keys)->secrets, SystemClock(), auth::AuditHook());
    eo.resolve_secrets = [&secret_store](const std::vector<std::string>& names) {
      return secret_store->Resolve(names);
    };
  }
  Engine engine(**store, SystemClock(), eo, qo);
  EngineExecutor executor(engine);

  WorkerOptions wo;
  wo.owner = fmt::format("worker:{}:{}", HostName(), getpid());
  wo.concurrency = o.concurrency;
  wo.poll = *poll_every;
  wo.grace = *grace;
  wo.rescue_interval = std::max(milliseconds(100), std::min(*lease / 2, milliseconds(5000)));
  wo.retention = retention;
  Worker worker(engine.queue(), executor, wo);

  CancelSignal stop;
  CancelOnSignals on_signals(stop);
  (void)std::setvbuf(stderr, nullptr, _IOLBF, 0);
  fmt::print(stderr, "automan worker {} on {}: concurrency {}, lease {}, {} commits{}\n", wo.owner,
             RedactStoreUrl((*store)->Describe()), wo.concurrency, FormatDuration(*lease),
             o.fast ? "fast (no fsync)" : "durable",
             *keys ? "" : "; no master key file: runs with secrets fail (--key-file)");

  // The schedule loop (one per store runs; the others stand by) and the runbook files
  // whose schedules it keeps in the store.
  std::unique_ptr<Scheduler> scheduler;
  if (!o.no_scheduler) {
    SchedulerOptions so;
    so.log = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
    so.lookahead = std::chrono::seconds(2);
    scheduler = std::make_unique<Scheduler>(**store, engine.queue(), SystemClock(), so);
  }
  std::unique_ptr<ScheduleDirWatcher> watcher;
  if (!o.runbooks_dir.empty()) {
    watcher = std::make_unique<ScheduleDirWatcher>(
        **store, SystemClock(), o.runbooks_dir, milliseconds(2000),
        [&scheduler](const Result<SyncReport>& r) {
          if (!r.ok()) {
            fmt::print(stderr, "schedules: {}\n", r.status().message());
            return;
          }
          for (const std::string& e : r->errors) fmt::print(stderr, "schedules: {}\n", e);
          if (!r->added.empty() || !r->updated.empty() || !r->removed.empty()) {
            fmt::print(stderr, "schedules: {} added, {} updated, {} removed, {} unchanged\n",
                       r->added.size(), r->updated.size(), r->removed.size(), r->unchanged.size());
            if (scheduler) scheduler->Wake();
          }
        });
  }
  if (scheduler) scheduler->Start();
  Status s = worker.Run(stop);
  if (scheduler) {
    scheduler->Stop();
    const SchedulerStats ss = scheduler->stats();
    fmt::print(stderr, "schedule loop stopped: {} fired, {} late, {} skipped, {} missed\n",
               ss.fired, ss.late, ss.skipped, ss.missed);
  }
  if (!s.ok()) {
    fmt::print(stderr, "error: {}\n", s.message());
    return ExitFor(s);
  }
  const WorkerStats& st = worker.stats();
  fmt::print(stderr,
             "automan worker stopped: {} claimed, {} finished, {} lost, {} left to expire, {} "
             "rescued, {} pruned\n",
             st.claimed.load(), st.finished.load(), st.lost.load(), st.abandoned.load(),
             st.rescued.load(), st.pruned.load());
  return kExitSuccess;
}

int RunEnqueue(const EnqueueOptions& o) {
  auto store = OpenStore(o.store);
  if (!store.ok()) {
    fmt::print(stderr, "error: {}\n", store.status().message());
    return kExitFailed;
  }
  auto rb = ResolveRunbook(**store, o.runbook);
  if (!rb.ok()) {
    fmt::print(stderr, "error: {}\n", rb.status().message());
    return ExitFor(rb.status());
  }
  auto given = GatherParams(o.params, o.secret_params, SecretParamsOf(*rb));
  if (!given.ok()) {
    fmt::print(stderr, "error: {}\n", given.status().message());
    return kExitInvalidInput;
  }
  auto params = BindParams(*rb, *given);
  if (!params.ok()) {
    fmt::print(stderr, "error: {}\n", params.status().message());
    return kExitInvalidInput;
  }
  EnqueueRequest r;
  r.runbook = &*rb;
  r.params = *params;
  r.trigger = Trigger::kManual;
  r.triggered_by = "cli:" + CurrentUserName();
  r.priority = o.priority;
  if (!o.idempotency_key.empty()) r.idempotency_key = o.idempotency_key;
  if (!o.delay.empty()) {
    auto d = DurationFlag("delay", o.delay, true);
    if (!d) return kExitInvalidInput;
    r.not_before = SystemClock().Now() + *d;
  }
  if (o.max_attempts > 0) r.max_attempts = o.max_attempts;
  QueueOptions qo;
  std::optional<secrets::KeySealer> sealer;
  if (!o.secret_params.empty()) {
    auto keys = LoadKeysIfPresent(o.store, o.key_file);
    if (!keys.ok()) {
      fmt::print(stderr, "error: {}\n", keys.status().message());
      return kExitFailed;
    }
    if (*keys) qo.sealer = &sealer.emplace((*keys)->params);
  }
  Queue queue(**store, SystemClock(), qo);
  auto e = queue.Enqueue(r);
  if (!e.ok()) {
    fmt::print(stderr, "error: {}\n", e.status().message());
    return ExitFor(e.status());
  }
  if (o.json) {
    std::cout << RunToJson(e->run, {}) << "\n";
  } else {
    std::cout << e->run.id << "\n";
  }
  if (!e->created) {
    fmt::print(stderr,
               "automan: idempotency key \"{}\" was already used by run {} ({}); "
               "nothing new was queued\n",
               o.idempotency_key, e->run.id, ToString(e->run.status));
  }
  return kExitSuccess;
}

int RunCancel(const CancelOptions& o) {
  if (!o.server.url.empty()) return RunCancelViaApi(o);
  auto store = OpenStore(o.store);
  if (!store.ok()) {
    fmt::print(stderr, "error: {}\n", store.status().message());
    return kExitFailed;
  }
  Queue queue(**store, SystemClock());
  int code = kExitSuccess;
  for (const auto& id : o.run_ids) {
    auto r = queue.Cancel(id);
    if (!r.ok()) {
      fmt::print(stderr, "error: {}: {}\n", id, r.status().message());
      code = ExitFor(r.status());
      continue;
    }
    if (r->status == RunStatus::kCancelled) {
      fmt::print("{} cancelled\n", id);
    } else if (r->cancel_requested) {
      fmt::print("{} is {}: cancellation requested; its worker stops it\n", id,
                 ToString(r->status));
    } else {
      fmt::print("{} already finished ({})\n", id, ToString(r->status));
    }
  }
  return code;
}

int RunDlq(const DlqOptions& o) {
  if (!o.server.url.empty()) return RunDlqViaApi(o);
  if (o.action == "purge") {
    fmt::print(stderr,
               "error: dlq purge works through the server: pass --server URL or set "
               "AUTOMAN_SERVER\n");
    return kExitInvalidInput;
  }
  auto store = OpenStore(o.store);
  if (!store.ok()) {
    fmt::print(stderr, "error: {}\n", store.status().message());
    return kExitFailed;
  }
  Queue queue(**store, SystemClock());
  if (o.action == "list") {
    std::vector<Run> runs;
    Status s = (*store)->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      RunFilter f;
      f.status = RunStatus::kDead;
      f.limit = o.limit;
      AUTOMAN_ASSIGN_OR_RETURN(runs, tx.ListRuns(f));
      return Status::Ok();
    });
    if (!s.ok()) {
      fmt::print(stderr, "error: {}\n", s.message());
      return kExitFailed;
    }
    if (o.json) {
      std::cout << "[";
      for (size_t i = 0; i < runs.size(); ++i) {
        std::cout << (i ? "," : "") << RunToJson(runs[i], {});
      }
      std::cout << "]\n";
      return kExitSuccess;
    }
    if (runs.empty()) fmt::print("the dead-letter queue is empty\n");
    for (const auto& r : runs) {
      PrintRunLine(r);
      fmt::print("    {}\n", r.error);
    }
    return kExitSuccess;
  }
  if (o.action == "show") {
    if (o.run_ids.empty()) {
      fmt::print(stderr, "error: dlq show needs a run id\n");
      return kExitInvalidInput;
    }
    int code = kExitSuccess;
    for (const auto& id : o.run_ids) {
      Run run;
      std::vector<Attempt> attempts;
      std::vector<StepRun> steps;
      Status s = (*store)->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
        AUTOMAN_ASSIGN_OR_RETURN(run, tx.GetRun(id));
        AUTOMAN_ASSIGN_OR_RETURN(attempts, tx.ListAttempts(id));
        AUTOMAN_ASSIGN_OR_RETURN(steps, tx.ListStepRuns(id));
        return Status::Ok();
      });
      if (!s.ok()) {
        fmt::print(stderr, "error: {}: {}\n", id, s.message());
        code = ExitFor(s);
        continue;
      }
      if (o.json) {
        std::cout << RunToJson(run, steps) << "\n";
        continue;
      }
      PrintRunLine(run);
      fmt::print("  reason: {}\n", run.error);
      for (const auto& a : attempts) {
        fmt::print("  attempt {} {:<9} on {} at {}: {}\n", a.number, ToString(a.status), a.worker,
                   FormatRfc3339(a.started_at), a.error.empty() ? "-" : a.error);
      }
    }
    return code;
  }
  // replay
  std::vector<std::string> ids = o.run_ids;
  if (o.all) {
    Status s = (*store)->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      RunFilter f;
      f.status = RunStatus::kDead;
      f.limit = 1000;
      AUTOMAN_ASSIGN_OR_RETURN(std::vector<Run> runs, tx.ListRuns(f));
      for (const auto& r : runs) ids.push_back(r.id);
      return Status::Ok();
    });
    if (!s.ok()) {
      fmt::print(stderr, "error: {}\n", s.message());
      return kExitFailed;
    }
  }
  if (ids.empty()) {
    fmt::print(stderr, "error: dlq replay needs run ids or --all\n");
    return o.all ? kExitSuccess : kExitInvalidInput;
  }
  int code = kExitSuccess;
  for (const auto& id : ids) {
    auto r = queue.Replay(id, "cli:" + CurrentUserName());
    if (!r.ok()) {
      fmt::print(stderr, "error: {}: {}\n", id, r.status().message());
      code = ExitFor(r.status());
      continue;
    }
    fmt::print("{} replayed as {}\n", id, r->id);
  }
  return code;
}

}  // namespace automan::cli
