// Engine: executes one run of a runbook on this host, recording everything in the store.
//
// The engine walks the steps in order. Each step runs under the run's supervisor shim
// (sandbox/supervisor.h), sandboxed by the runbook's profile (EngineSandboxOptions), with a
// clean environment: an allowlist of the engine's variables
// (PATH, HOME, USER, LOGNAME, LANG, LC_*, TZ, TMPDIR), the step's `env`, and
//   AUTOMAN_RUN_ID, AUTOMAN_ATTEMPT, AUTOMAN_RUNBOOK_ID, AUTOMAN_STEP_ID,
//   AUTOMAN_WORK_DIR, AUTOMAN_OUTPUT, AUTOMAN_PARAM_<NAME>, AUTOMAN_OUT_<STEP>_<KEY>
// Parameter values only ever travel in the environment; shell text is never templated.
//
// A step writes `key=value` lines to $AUTOMAN_OUTPUT; after it exits they become its
// outputs, visible to later steps as AUTOMAN_OUT_<STEP>_<KEY>. A step that exits 0 but does
// not write a key it promised in `outputs` fails.
//
// Outcomes: the run is SUCCESS when every step succeeded (or failed with
// continue_on_error); FAILED when a step failed; TIMEOUT when a step or the whole run
// exceeded its timeout; CANCELLED when the CancelSignal fired. After FAILED or TIMEOUT the
// `rollback` steps run: the run ends ROLLED_BACK if they all succeed, FAILED otherwise.
// Step `retries` re-run a failed step within the attempt; run-level `retries` start a new
// attempt (attempt numbers count from 1; AUTOMAN_ATTEMPT tells steps which one they are in).
//
// Logs: every line is stored with (run, attempt, step, stream, seq, ts) by a background
// writer that batches inserts, so a step flooding output never waits for an fsync per line.
// Lines longer than kMaxLineBytes are split and marked partial; a run that prints more than
// max_log_bytes has the rest discarded after a marker line. Values of secret params are
// replaced by "***" in stored and printed lines.
//
// Thread-safety: an Engine may run several runs concurrently from different threads
// (each Execute call is independent). The observer is called on the calling thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "core/run.h"
#include "engine/work_dirs.h"
#include "queue/queue.h"
#include "runbook/runbook.h"
#include "sandbox/supervisor.h"
#include "sandbox/supervisor_pool.h"
#include "store/store.h"

namespace automan {

// The sandbox every step runs in unless its runbook says `sandbox: off`
// (src/sandbox/README.md, docs/runbooks.md#sandbox). Each step's record says what was in
// force (StepRun::sandbox).
struct EngineSandboxOptions {
  // false: no step is sandboxed (for a host that cannot build one, e.g. a server not
  // running as root); steps record why.
  bool enabled = true;
  // Paths steps must not see, besides the work root (always hidden, except each run's own
  // directory): the data directory, the master key, the config file.
  std::vector<std::string> hidden;
  // Limits for what a runbook's profile does not set; 0: none.
  uint64_t memory_bytes = uint64_t{2} << 30;
  uint32_t max_processes = 1024;
  uint64_t open_files = 8192;
  uint64_t file_size_bytes = uint64_t{16} << 30;
  std::chrono::seconds cpu_time{4 * 3600};
};

struct EngineOptions {
  SupervisorOptions supervisor;
  EngineSandboxOptions sandbox;
  // Shims kept ready between runs (a run takes one from the pool and gives it back), so a
  // short run does not pay for exec'ing a new shim.
  size_t idle_supervisors = 2;
  // Each run attempt's steps run in an empty private directory under this one
  // (see work_dirs.h).
  std::string work_root = "./automan-data/work";
  std::chrono::milliseconds kill_grace{5000};
  uint64_t max_log_bytes = 64ull << 20;  // per run attempt
  size_t log_batch_lines = 8192;         // lines per store transaction at most
  std::chrono::milliseconds log_flush_interval{100};
  uint64_t max_output_bytes = 1 << 20;  // size cap of a step's $AUTOMAN_OUTPUT file
  // The values of the secrets a runbook lists under `secrets:` (the server's secret store,
  // secrets/secret_store.h). Unset: a runbook that lists secrets fails with a message.
  std::function<Result<std::map<std::string, std::string>>(const std::vector<std::string>&)>
      resolve_secrets;
};

// Live view of a run for printers (`automan exec`) and, later, streams.
class RunObserver {
 public:
  virtual ~RunObserver() = default;
  virtual void OnStepStarted(const Step& /*step*/, const StepRun& /*record*/) {}
  virtual void OnStepFinished(const Step& /*step*/, const StepRun& /*record*/) {}
  virtual void OnLog(const LogLine& /*line*/) {}
  virtual void OnRetry(int /*next_attempt*/, std::chrono::milliseconds /*delay*/) {}
};

struct NewRun {
  Trigger trigger = Trigger::kManual;
  std::string triggered_by;
  std::string lease_owner;  // who executes it, e.g. "exec:host:pid"
  std::optional<Timestamp> deadline_at;
  std::optional<std::string> idempotency_key;
};

class Engine {
 public:
  Engine(Store& store, const Clock& clock, EngineOptions options, QueueOptions queue_options = {});

  // Runs one attempt of a claimed run (run.attempt, run.fence): every step, then the
  // rollback steps if needed. Records step runs and log lines under the run's fence and
  // adds step outputs to run.outputs; the caller records the outcome (Queue::Finish).
  // A non-OK Status means the store failed or refused the fence (kAborted: the lease was
  // lost); the process tree is cleaned up either way.
  Result<AttemptOutcome> ExecuteAttempt(const Runbook& rb, Run& run, const RunParams& params,
                                        const CancelSignal& cancel,
                                        RunObserver* observer = nullptr);

  // For `automan exec`: enqueues the run already claimed by how.lease_owner
  // (Queue::EnqueueClaimed), in one transaction. `params` may contain secret values; the
  // store never keeps them.
  Result<Run> CreateRun(const Runbook& rb, const RunParams& params, const NewRun& how);

  // Executes a run made by CreateRun to a terminal status under its lease: heartbeats it,
  // runs attempt after attempt as the runbook's `retries` allow (waiting out each backoff
  // while keeping the lease), and records each outcome with Queue::Finish. A cancellation
  // requested through the store (Queue::Cancel) fires `cancel`. Returns the final run; a
  // non-OK Status means the store failed or the lease was lost (kAborted).
  Result<Run> Execute(const Runbook& rb, Run run, const RunParams& params, CancelSignal& cancel,
                      RunObserver* observer = nullptr);

  Queue& queue() { return queue_; }

 private:
  class AttemptRunner;
  Store& store_;
  const Clock& clock_;
  EngineOptions options_;
  Queue queue_;
  SupervisorPool supervisors_;
  WorkDirPool work_dirs_;
};

}  // namespace automan
