// The schedule loop: decides every occurrence of every stored schedule exactly once, and
// enqueues a run for each occurrence it fires. docs/schedules.md is the user-facing
// description; this comment is the contract.
//
// Leadership
//   One loop is active per store (Store::TryLead("scheduler")): the others stand by and
//   retry every `leadership_retry`. Correctness does not rest on leadership alone: the
//   ledger's unique (schedule, nominal) row is written in the same transaction as the
//   run, so even two loops (a lost PostgreSQL session) never create a second run for one
//   nominal fire time.
//
// Deciding an occurrence (in one transaction per batch of schedules)
//   For each schedule whose next occurrence is due (nominal - lead + jitter <= now):
//   AdvanceScheduleCursor(id, generation, nominal) — refused when the definition changed
//   since the loop read it, so a paused, edited or deleted schedule never fires its old
//   definition — then one ledger row per occurrence, and for a fire the run, enqueued
//   with the idempotency key "schedule:<id>@<nominal µs>#<generation>".
//   Lateness = decision time - due. An occurrence is:
//   - missed    when lateness > max_lateness (timing.h: default one period): stale fires
//               never run (after 100 such rows in one pass, the rest are summarised);
//   - a misfire when lateness > misfire_after (the loop was down or stalled): the
//               schedule's misfire policy says what happens — skip: skipped "misfire";
//               run_once: only the latest misfired occurrence runs ("late"), the others
//               are skipped; run_all: each runs ("late");
//   - on time   otherwise: "fired" with its delay.
//   Paused schedules record "skipped: paused"; inactive ones (`active: false`) record
//   nothing. DST skips record "skipped: dst_gap" / "skipped: dst_repeat" (timing.h).
//
// Deciding ahead
//   With `lookahead` > 0, occurrences of schedules with overlap `allow` are decided up to
//   `lookahead` before they are due: the ledger row is written and the run queued with
//   not_before = the due time, so it becomes claimable exactly when due, however many
//   schedules share that instant. Changes to a schedule withdraw such early decisions
//   (changes.h). Other overlap policies need the state at the due time and are decided
//   then.
//
// Overlap policy (when a run of the schedule is still PENDING, RUNNING or WAITING)
//   allow: run anyway. skip: skipped "overlap". queue_one: queue at most one run behind the
//   running one (a second one is skipped "overlap"); runs of the schedule share the
//   concurrency key "schedule:<id>" with limit 1, so the queued run starts when the
//   previous one ends. cancel_previous: cancel the active runs, then queue the new one on
//   the same key.
//
// Waking up
//   The loop sleeps until the earliest due time (a timer on the injected clock, not a
//   poll), or until Wake() (a change in this process), and re-reads the schedules
//   revision at least every `revision_poll` to see changes other processes made.
//
// Thread safety: Tick() must not run concurrently with itself; Start() runs it on a thread
// of the Scheduler's own. Wake() and stats() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "queue/queue.h"
#include "scheduler/definition.h"
#include "scheduler/timing.h"
#include "store/store.h"

namespace automan {

struct SchedulerOptions {
  // Lateness beyond which an occurrence is a misfire (see the header comment).
  Duration misfire_after = std::chrono::seconds(5);
  // See "Deciding ahead"; 0: decide every occurrence at its due time.
  Duration lookahead{0};
  std::chrono::milliseconds revision_poll{1000};
  std::chrono::milliseconds leadership_retry{2000};
  int batch = 256;               // schedules decided per transaction
  int max_rows_per_pass = 1000;  // ledger rows per schedule per transaction
  // Called after each commit for every ledger row it wrote, with the commit time (a
  // fire's run is claimable from max(committed_at, due)); for metrics and benchmarks.
  std::function<void(const FireRecord&, Timestamp committed_at)> on_decided;
  // Where messages go (one line each, no newline); null: stderr.
  std::function<void(const std::string&)> log;
};

struct SchedulerStats {
  int64_t fired = 0;
  int64_t late = 0;
  int64_t skipped = 0;
  int64_t missed = 0;
  int64_t schedules = 0;  // loaded, active or paused
  int64_t errors = 0;     // schedules that could not be loaded (bad definition, runbook)
  bool leader = false;
};

class Scheduler {
 public:
  Scheduler(Store& store, Queue& queue, const Clock& clock, SchedulerOptions options = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // One pass: take or check leadership, reload changed schedules, decide every due
  // occurrence (and those within the lookahead). Returns when the next pass is needed:
  // the earliest due time, less the lookahead where it applies (nullopt: nothing is
  // scheduled, or standing by).
  Result<std::optional<Timestamp>> Tick();

  // Runs Tick on a thread until Stop() (which waits for it). Errors are logged and
  // retried after a short pause.
  void Start();
  void Stop();
  void Wake();

  SchedulerStats stats() const;

 private:
  struct Entry;
  struct Decision;

  Status EnsureLeadership();
  Status Reload();
  Status LoadEntry(const ScheduleRecord& rec, Entry& e);
  void ComputeNext(Entry& e);
  void SetNextDue(Entry& e, std::optional<Timestamp> due);
  Duration AheadFor(const Entry& e) const;
  Status DecideBatch(std::vector<Entry*>& batch, Timestamp now);
  Status DecideInTx(StoreTx& tx, Entry& e, Timestamp now, Decision& d);
  void Log(const std::string& line) const;

  Store& store_;
  Queue& queue_;
  const Clock& clock_;
  SchedulerOptions options_;

  std::unique_ptr<Leadership> leadership_;
  std::chrono::steady_clock::time_point next_lead_attempt_{};
  std::optional<int64_t> revision_;
  std::chrono::steady_clock::time_point last_revision_check_{};
  std::map<std::string, std::unique_ptr<Entry>> entries_;  // by schedule id
  // Entries with a next occurrence, by when the loop must decide it: a pass with nothing
  // due costs O(log n), not a walk over every schedule.
  std::set<std::pair<Timestamp, Entry*>> wake_;
  std::map<std::string, std::shared_ptr<const Runbook>> runbooks_;  // by version

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  bool woken_ = false;     // guarded by mu_
  SchedulerStats stats_;   // guarded by mu_
  std::thread thread_;
};

}  // namespace automan
