// The run model: one definition of statuses, triggers, runs, attempts, step runs and log
// lines for every module (engine, store, queue, API). Pure data, no I/O.
//
// A Run is one request to execute one runbook version with bound parameters. It moves
//   PENDING -> RUNNING -> SUCCESS | FAILED | TIMEOUT | CANCELLED | ROLLED_BACK | DEAD
// and may pause in WAITING at a gate. A run is tried in one or more attempts (retries and
// lease rescues); each attempt runs the steps, producing StepRuns and LogLines tagged
// with the attempt number. Terminal runs are never deleted by cancellation.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace automan {

enum class RunStatus {
  kPending,  // queued, including waiting for a retry's backoff
  kRunning,
  kWaiting,  // at a gate (approval, cancellation window)
  kSuccess,
  kFailed,
  kTimeout,
  kCancelled,
  kRolledBack,
  kDead,  // attempts exhausted; in the dead-letter queue
};

std::string_view ToString(RunStatus s);
std::optional<RunStatus> ParseRunStatus(std::string_view s);
bool IsTerminal(RunStatus s);

// Exit codes of `automan exec` (and later `automan run --follow`).
inline constexpr int kExitSuccess = 0;
inline constexpr int kExitFailed = 1;        // FAILED, ROLLED_BACK, DEAD, refused by a rail
inline constexpr int kExitInvalidInput = 2;  // nothing was run
inline constexpr int kExitTimeout = 3;
inline constexpr int kExitCancelled = 4;
int ExitCodeFor(RunStatus s);

enum class Trigger { kManual, kApi, kSchedule, kEvent, kWebhook, kRetry, kChain };
std::string_view ToString(Trigger t);
std::optional<Trigger> ParseTrigger(std::string_view s);

enum class StepStatus { kPending, kRunning, kSuccess, kFailed, kTimeout, kCancelled, kSkipped };
std::string_view ToString(StepStatus s);
std::optional<StepStatus> ParseStepStatus(std::string_view s);

// Where a log line came from. kSystem lines are written by Automan itself (markers such as
// "output truncated", the reason a step was killed).
enum class LogStream { kStdout, kStderr, kSystem };
std::string_view ToString(LogStream s);
std::optional<LogStream> ParseLogStream(std::string_view s);

// One concurrency rule of a run, copied from its runbook's `concurrency:` when the run is
// enqueued (docs/queue.md). At most `limit` runs holding `key` are RUNNING or WAITING at
// once (a lock is a limit of 1); with `rate_count` > 0, at most `rate_count` runs holding
// `key` start per `rate_per` (a token bucket of that capacity, refilled continuously).
struct ConcurrencyLimit {
  std::string key;
  int limit = 1;
  int rate_count = 0;  // 0: no rate limit
  std::chrono::milliseconds rate_per{0};
  bool operator==(const ConcurrencyLimit&) const = default;
};

// {step_id: {key: value}}
using RunOutputs = std::map<std::string, std::map<std::string, std::string>>;

// A bound parameter value: validated text plus the type it was validated as, so the wire
// layer can render ints and bools as JSON numbers and booleans, and redact secrets.
struct ParamValue {
  std::string type;  // "string", "int", "number", "bool", "enum", "secret"
  std::string text;  // a secret's value only in memory: the store never holds it
  // A secret's value sealed for the queue (SecretParamSealer, queue/queue.h) while its run
  // waits and runs; the queue deletes it when the run ends. Never leaves the server.
  std::string sealed;
  bool secret() const { return type == "secret"; }
  bool operator==(const ParamValue&) const = default;
};
using RunParams = std::map<std::string, ParamValue>;

struct Run {
  std::string id;  // UUIDv7
  std::string runbook_id;
  std::string runbook_version;  // content hash of the exact YAML the run executes
  RunStatus status = RunStatus::kPending;
  Trigger trigger = Trigger::kManual;
  std::string triggered_by;  // user, schedule id, rule id, "exec" ...
  RunParams params;          // secret values are never stored in clear: text is empty
  int priority = 0;
  int attempt = 0;  // number of the current/last attempt, 0 before the first
  int max_attempts = 1;
  Timestamp created_at{};
  std::optional<Timestamp> not_before;
  std::optional<Timestamp> started_at;
  std::optional<Timestamp> finished_at;
  std::optional<Timestamp> deadline_at;
  RunOutputs outputs;
  std::optional<std::string> retry_of;
  std::optional<std::string> idempotency_key;
  std::string error;  // why the run ended as it did, empty on success

  // Queue (docs/queue.md). A PENDING run is not claimed before `not_before` (the enqueue
  // delay, then each retry's backoff). `concurrency` is fixed at enqueue. Cancelling a
  // running run sets `cancel_requested`; its worker sees it and kills the process tree.
  std::vector<ConcurrencyLimit> concurrency;
  bool cancel_requested = false;

  // Lease: who may write to this run now, until when. Every claim increases `fence`; a
  // writer whose fence is stale is refused (kAborted).
  std::string lease_owner;
  std::optional<Timestamp> lease_expires_at;
  int64_t fence = 0;

  bool operator==(const Run&) const = default;
};

struct Attempt {
  std::string run_id;
  int number = 1;
  RunStatus status = RunStatus::kRunning;
  std::string worker;  // lease owner that ran it
  Timestamp started_at{};
  std::optional<Timestamp> finished_at;
  std::string error;
  bool operator==(const Attempt&) const = default;
};

struct StepRun {
  std::string run_id;
  int attempt = 1;
  std::string step_id;
  int index = 0;  // position in the runbook's steps
  StepStatus status = StepStatus::kPending;
  std::optional<int> exit_code;
  std::optional<int> signal;  // the signal that ended the step's main process
  std::optional<Timestamp> started_at;
  std::optional<Timestamp> finished_at;
  std::string error;
  std::map<std::string, std::string> outputs;
  // What confined the step, in words ("namespaces: mount, PID, IPC, UTS; ..."), or why
  // nothing did ("none: the runbook sets sandbox: off"); empty before it started.
  std::string sandbox;
  bool operator==(const StepRun&) const = default;
};

struct LogLine {
  std::string run_id;
  int attempt = 1;
  std::string step_id;
  LogStream stream = LogStream::kStdout;
  int64_t seq = 0;  // per (run, attempt), strictly increasing from 1
  Timestamp ts{};
  std::string text;      // without the trailing newline
  bool partial = false;  // a piece of a line longer than the line cap; continues
  bool operator==(const LogLine&) const = default;
};

}  // namespace automan
