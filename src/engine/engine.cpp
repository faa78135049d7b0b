#include "engine/engine.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/duration.h"
#include "common/ids.h"
#include "engine/log_writer.h"
#include "engine/step_env.h"
#include "queue/lease_keeper.h"
#include "runbook/backoff.h"
#include "secrets/redactor.h"

extern char** environ;

namespace automan {

namespace {

using std::chrono::milliseconds;

// Waits up to `d` unless `cancel` fires first. Returns false when cancelled.
bool SleepUnlessCancelled(milliseconds d, const CancelSignal& cancel) {
  auto end = std::chrono::steady_clock::now() + d;
  while (!cancel.cancelled()) {
    auto left = std::chrono::duration_cast<milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return true;
    pollfd p{cancel.fd(), POLLIN, 0};
    int timeout = static_cast<int>(std::min<int64_t>(left.count(), 1000));
    if (poll(&p, 1, timeout) < 0 && errno != EINTR) return true;
  }
  return false;
}

std::string DescribeExit(const StepExit& e) {
  // For exits and signals, `error` is a sandbox limit that explains them.
  const std::string why = e.error.empty() ? "" : ": " + e.error;
  switch (e.kind) {
    case StepExit::Kind::kExited:
      return fmt::format("exited with code {}{}", e.exit_code, why);
    case StepExit::Kind::kSignaled:
      return fmt::format("killed by signal {}{}", e.signal, why);
    case StepExit::Kind::kTimedOut:
      return "timed out";
    case StepExit::Kind::kCancelled:
      return "cancelled";
    case StepExit::Kind::kSpawnFailed:
      return "could not start: " + e.error;
  }
  return "ended";
}

class StepSink final : public LineSink {
 public:
  StepSink(LogWriter& w, const std::string& step_id) : w_(w), step_id_(step_id) {}
  void OnLine(LogStream stream, std::string_view text, bool partial) override {
    w_.Append(step_id_, stream, text, partial);
  }

 private:
  LogWriter& w_;
  const std::string& step_id_;
};

// What one step (after its own retries) came to.
enum class StepVerdict { kSuccess, kFailed, kTimeout, kCancelled };

}  // namespace

// Runs one attempt: every step, then the rollback steps if needed.
class Engine::AttemptRunner {
 public:
  AttemptRunner(Engine& engine, const Runbook& rb, Run& run, const RunParams& params,
                const CancelSignal& cancel, RunObserver* observer)
      : e_(engine), rb_(rb), run_(run), params_(params), cancel_(cancel), obs_(observer) {}

  // Returns the attempt's status; Status errors are store failures.
  Result<RunStatus> Run(std::string& error) {
    attempt_started_ = e_.clock_.SteadyNow();
    auto dir = e_.work_dirs_.Acquire();
    if (!dir.ok()) {
      error = dir.status().message();
      return RunStatus::kFailed;
    }
    work_dir_ = std::move(dir).value();
    std::vector<std::string> secret_values;
    for (const auto& [name, v] : params_) {
      if (v.secret()) secret_values.push_back(v.text);
    }
    if (!rb_.secrets.empty()) {
      auto values = e_.options_.resolve_secrets
                        ? e_.options_.resolve_secrets(rb_.secrets)
                        : Result<std::map<std::string, std::string>>(Status(
                              ErrorCode::kFailedPrecondition,
                              "this runbook lists secrets, which only a server's secret store "
                              "holds: run it through automan server"));
      if (!values.ok()) {
        e_.work_dirs_.Release(work_dir_);
        error = "secrets: " + values.status().message();
        return RunStatus::kFailed;
      }
      secret_env_ = std::move(*values);
      for (const auto& [name, v] : secret_env_) secret_values.push_back(v);
    }
    redactor_ = secrets::Redactor(secret_values);
    LogWriterOptions lo;
    lo.max_bytes = e_.options_.max_log_bytes;
    lo.batch_lines = e_.options_.log_batch_lines;
    lo.flush_interval = e_.options_.log_flush_interval;
    log_.emplace(e_.store_, e_.clock_, run_.id, run_.attempt, run_.fence, lo, &redactor_, obs_);

    RunStatus status = RunSteps(error);
    // Errors may quote what a step printed: they are redacted like its log lines.
    if (!redactor_.empty()) error = redactor_.Redact(error);
    e_.supervisors_.Release(std::move(supervisor_));
    Status store_error = log_->Finish();
    e_.work_dirs_.Release(work_dir_);
    if (!store_status_.ok()) return store_status_;
    if (!store_error.ok()) return store_error;
    return status;
  }

 private:
  RunStatus RunSteps(std::string& error) {
    auto sup = e_.supervisors_.Acquire();
    if (!sup.ok()) {
      error = "cannot start the run supervisor: " + sup.status().message();
      return RunStatus::kFailed;
    }
    supervisor_ = std::move(sup).value();

    RunStatus status = RunStatus::kSuccess;
    int index = 0;
    for (const Step& step : rb_.steps) {
      StepVerdict v = RunOneStep(step, index++, error);
      if (!store_status_.ok()) return RunStatus::kFailed;
      if (v == StepVerdict::kSuccess) continue;
      if (v == StepVerdict::kCancelled) return RunStatus::kCancelled;
      if (step.continue_on_error) {
        SystemLine(step.id, fmt::format("step {} failed; continuing (continue_on_error)", step.id));
        error.clear();
        continue;
      }
      status = v == StepVerdict::kTimeout ? RunStatus::kTimeout : RunStatus::kFailed;
      break;
    }
    if (status == RunStatus::kSuccess || rb_.rollback.empty()) return status;

    SystemLine(
        rb_.rollback.front().id,
        fmt::format("run {}; running {} rollback step(s)",
                    status == RunStatus::kTimeout ? "timed out" : "failed", rb_.rollback.size()));
    std::string rollback_error;
    in_rollback_ = true;
    for (const Step& step : rb_.rollback) {
      StepVerdict v = RunOneStep(step, index++, rollback_error);
      if (!store_status_.ok()) return RunStatus::kFailed;
      if (v == StepVerdict::kCancelled) return RunStatus::kCancelled;
      if (v != StepVerdict::kSuccess && !step.continue_on_error) {
        error += "; rollback failed: " + rollback_error;
        return RunStatus::kFailed;
      }
    }
    error += "; rolled back";
    return RunStatus::kRolledBack;
  }

  // Time left before the run's timeout, if it has one.
  std::optional<milliseconds> RunTimeLeft() const {
    if (!rb_.timeout || in_rollback_) return std::nullopt;
    auto used = std::chrono::duration_cast<milliseconds>(e_.clock_.SteadyNow() - attempt_started_);
    return std::max(milliseconds(0), *rb_.timeout - used);
  }

  void SystemLine(const std::string& step_id, std::string_view text) {
    log_->Append(step_id, LogStream::kSystem, text, false);
  }

  void Record(const StepRun& rec) {
    if (!store_status_.ok()) return;
    store_status_ = e_.store_.Transact(Store::TxMode::kWriteProgress, [&](StoreTx& tx) {
      AUTOMAN_RETURN_IF_ERROR(tx.CheckFence(run_.id, run_.fence));
      return tx.UpsertStepRun(rec);
    });
  }

  StepVerdict RunOneStep(const Step& step, int index, std::string& error) {
    StepRun rec;
    rec.run_id = run_.id;
    rec.attempt = run_.attempt;
    rec.step_id = step.id;
    rec.index = index;
    rec.status = StepStatus::kRunning;
    rec.started_at = e_.clock_.Now();
    Record(rec);
    if (obs_ != nullptr) obs_->OnStepStarted(step, rec);

    const int tries = 1 + (step.retries ? step.retries->count : 0);
    StepVerdict verdict = StepVerdict::kFailed;
    for (int attempt_of_step = 1; attempt_of_step <= tries; ++attempt_of_step) {
      std::string why;
      verdict = TryStep(step, rec, why);
      if (verdict == StepVerdict::kSuccess || verdict == StepVerdict::kCancelled) break;
      rec.error = why;
      bool no_retry = rec.exit_code && step.retries &&
                      std::find(step.retries->no_retry_exit_codes.begin(),
                                step.retries->no_retry_exit_codes.end(),
                                *rec.exit_code) != step.retries->no_retry_exit_codes.end();
      auto left = RunTimeLeft();
      if (attempt_of_step == tries || no_retry || (left && left->count() == 0)) break;
      milliseconds delay = BackoffDelay(*step.retries, attempt_of_step);
      SystemLine(step.id, fmt::format("step {} {}; retry {}/{} in {}", step.id, why,
                                      attempt_of_step, tries - 1, FormatDuration(delay)));
      if (!SleepUnlessCancelled(delay, cancel_)) {
        verdict = StepVerdict::kCancelled;
        break;
      }
    }

    switch (verdict) {
      case StepVerdict::kSuccess:
        rec.status = StepStatus::kSuccess;
        rec.error.clear();
        break;
      case StepVerdict::kFailed:
        rec.status = StepStatus::kFailed;
        break;
      case StepVerdict::kTimeout:
        rec.status = StepStatus::kTimeout;
        break;
      case StepVerdict::kCancelled:
        rec.status = StepStatus::kCancelled;
        rec.error = "cancelled";
        break;
    }
    rec.finished_at = e_.clock_.Now();
    if (verdict != StepVerdict::kSuccess) {
      error = fmt::format("step {}: {}", step.id, rec.error);
      if (!step.continue_on_error && !in_rollback_) failed_exit_code_ = rec.exit_code;
    } else {
      if (!rec.outputs.empty()) run_.outputs[step.id] = rec.outputs;
      outputs_env_.Add(step.id, rec.outputs);
    }
    Record(rec);
    if (obs_ != nullptr) obs_->OnStepFinished(step, rec);
    return verdict;
  }

  StepVerdict TryStep(const Step& step, StepRun& rec, std::string& why) {
    rec.exit_code.reset();
    rec.signal.reset();
    rec.outputs.clear();
    // The step creates the file when it writes an output (`>> "$AUTOMAN_OUTPUT"`); a
    // retry starts without what the failed try wrote.
    const std::string output_file = work_dir_ + "/.automan-output-" + step.id;
    if (unlink(output_file.c_str()) != 0 && errno != ENOENT) {
      why = fmt::format("cannot reset {}: {}", output_file, ErrnoText(errno));
      return StepVerdict::kFailed;
    }

    StepCommand cmd;
    if (step.shell) {
      cmd.argv = {"/bin/sh", "-e", "-c", *step.shell, step.id};
    } else {
      cmd.argv = step.argv;
    }
    StepEnvContext ctx{rb_, run_, params_, step, work_dir_, output_file, &secret_env_};
    cmd.env = BuildStepEnv(ctx, outputs_env_, environ);
    cmd.cwd = step.cwd.empty()     ? work_dir_
              : step.cwd[0] == '/' ? step.cwd
                                   : work_dir_ + "/" + step.cwd;
    cmd.kill_grace = e_.options_.kill_grace;
    cmd.sandbox = SandboxFor();
    auto left = RunTimeLeft();
    bool run_deadline_binds = false;
    cmd.timeout = step.timeout;
    if (left && (!cmd.timeout || *left < *cmd.timeout)) {
      cmd.timeout = *left;
      run_deadline_binds = true;
    }
    if (left && left->count() == 0) {
      why = fmt::format("run timeout of {} reached before the step started",
                        FormatDuration(*rb_.timeout));
      return StepVerdict::kTimeout;
    }

    StepSink sink(*log_, step.id);
    auto result = supervisor_->RunStep(cmd, sink, cancel_);
    if (result.ok()) {
      rec.sandbox = cmd.sandbox           ? result->protections
                    : rb_.sandbox.enabled ? "none: sandboxing is disabled on this server"
                                          : "none: the runbook sets sandbox: off";
    }
    if (!result.ok()) {
      why = "supervisor failed: " + result.status().message();
      SystemLine(step.id, fmt::format("step {} {}", step.id, why));
      if (!supervisor_->IsHealthy()) {
        // The shim is gone; take a fresh one so later steps (rollback) can still run.
        e_.supervisors_.Release(std::move(supervisor_));
        auto sup = e_.supervisors_.Acquire();
        if (!sup.ok()) return StepVerdict::kFailed;
        supervisor_ = std::move(sup).value();
      }
      return StepVerdict::kFailed;
    }
    const StepExit& ex = *result;
    switch (ex.kind) {
      case StepExit::Kind::kExited:
        rec.exit_code = ex.exit_code;
        break;
      case StepExit::Kind::kSignaled:
        rec.signal = ex.signal;
        why = DescribeExit(ex);
        return StepVerdict::kFailed;
      case StepExit::Kind::kTimedOut:
        why = run_deadline_binds
                  ? fmt::format("run timeout of {} reached", FormatDuration(*rb_.timeout))
                  : fmt::format("timed out after {}", FormatDuration(*step.timeout));
        SystemLine(step.id, fmt::format("step {} {}; its processes were terminated", step.id, why));
        return StepVerdict::kTimeout;
      case StepExit::Kind::kCancelled:
        SystemLine(step.id,
                   fmt::format("step {} cancelled; its processes were terminated", step.id));
        return StepVerdict::kCancelled;
      case StepExit::Kind::kSpawnFailed:
        why = DescribeExit(ex);
        SystemLine(step.id, fmt::format("step {} {}", step.id, why));
        return StepVerdict::kFailed;
    }

    auto outputs = ReadStepOutputs(output_file, e_.options_.max_output_bytes);
    if (!outputs.ok()) {
      why = outputs.status().message();
      SystemLine(step.id, why);
      return StepVerdict::kFailed;
    }
    rec.outputs = std::move(outputs).value();
    if (ex.exit_code != 0) {
      why = DescribeExit(ex);
      return StepVerdict::kFailed;
    }
    for (const auto& key : step.outputs) {
      if (!rec.outputs.contains(key)) {
        why = fmt::format(
            "promised output \"{}\" but did not write it; add `echo \"{}=...\" >> "
            "\"$AUTOMAN_OUTPUT\"` to the step",
            key, key);
        SystemLine(step.id, fmt::format("step {} {}", step.id, why));
        return StepVerdict::kFailed;
      }
    }
    return StepVerdict::kSuccess;
  }

  // How this runbook's steps are confined; unset when they are not.
  std::optional<SandboxSpec> SandboxFor() const {
    const EngineSandboxOptions& o = e_.options_.sandbox;
    const SandboxProfile& p = rb_.sandbox;
    if (!o.enabled || !p.enabled) return std::nullopt;
    SandboxSpec sb;
    sb.private_pids = p.pid != "host";
    sb.no_network = p.network == "none";
    sb.writable.reserve(1 + p.writable.size());
    sb.writable.push_back(work_dir_);
    sb.writable.insert(sb.writable.end(), p.writable.begin(), p.writable.end());
    sb.hidden.reserve(1 + o.hidden.size());
    sb.hidden.push_back(e_.work_dirs_.root());
    sb.hidden.insert(sb.hidden.end(), o.hidden.begin(), o.hidden.end());
    sb.run_as = p.run_as;
    sb.memory_bytes = p.memory.value_or(o.memory_bytes);
    sb.max_processes = p.processes.value_or(o.max_processes);
    sb.open_files = p.open_files.value_or(o.open_files);
    sb.file_size_bytes = p.file_size.value_or(o.file_size_bytes);
    sb.cpu_seconds =
        p.cpu_time
            ? static_cast<uint64_t>(std::chrono::ceil<std::chrono::seconds>(*p.cpu_time).count())
            : static_cast<uint64_t>(o.cpu_time.count());
    return sb;
  }

  Engine& e_;
  const Runbook& rb_;
  automan::Run& run_;
  const RunParams& params_;
  const CancelSignal& cancel_;
  RunObserver* obs_;
  std::chrono::steady_clock::time_point attempt_started_;
  std::string work_dir_;
  std::map<std::string, std::string> secret_env_;  // the runbook's secrets, by name
  secrets::Redactor redactor_;                     // declared before log_, which uses it
  std::optional<LogWriter> log_;
  std::unique_ptr<RunSupervisor> supervisor_;
  OutputsEnv outputs_env_;
  Status store_status_;
  bool in_rollback_ = false;

 public:
  std::optional<int> failed_exit_code_;  // of the step that failed the attempt
};

Engine::Engine(Store& store, const Clock& clock, EngineOptions options, QueueOptions queue_options)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      queue_(store, clock, queue_options),
      supervisors_(SupervisorPool::Options{options_.supervisor, options_.idle_supervisors}),
      // Steps run with the work directory as cwd: every path handed to them is absolute.
      work_dirs_(std::filesystem::absolute(options_.work_root).lexically_normal().string(),
                 options_.idle_supervisors) {}

Result<AttemptOutcome> Engine::ExecuteAttempt(const Runbook& rb, Run& run, const RunParams& params,
                                              const CancelSignal& cancel, RunObserver* observer) {
  std::string error;
  AttemptRunner runner(*this, rb, run, params, cancel, observer);
  AUTOMAN_ASSIGN_OR_RETURN(RunStatus status, runner.Run(error));
  AttemptOutcome out;
  out.status = status;
  out.error = status == RunStatus::kSuccess ? "" : error;
  out.exit_code = runner.failed_exit_code_;
  return out;
}

Result<Run> Engine::CreateRun(const Runbook& rb, const RunParams& params, const NewRun& how) {
  EnqueueRequest r;
  r.runbook = &rb;
  r.params = params;
  for (auto& [name, value] : r.params) {
    // Never stored, not even sealed (this is automan exec's own run: Execute gets the
    // real values); a worker refuses the run should it ever be rescued.
    if (value.secret()) value.text.clear();
  }
  r.trigger = how.trigger;
  r.triggered_by = how.triggered_by;
  r.deadline_at = how.deadline_at;
  r.idempotency_key = how.idempotency_key;
  return queue_.EnqueueClaimed(r, how.lease_owner);
}

Result<Run> Engine::Execute(const Runbook& rb, Run run, const RunParams& params,
                            CancelSignal& cancel, RunObserver* observer) {
  std::atomic<bool> lost{false};
  LeaseKeeper keeper(queue_, LeaseKeeper::Options{run.lease_owner, {}, {}},
                     [&](const std::string&, LeaseKeeper::Event event) {
                       if (event == LeaseKeeper::Event::kLost) lost = true;
                       cancel.Cancel();
                     });
  keeper.Add({run.id, run.fence});
  while (true) {
    Result<AttemptOutcome> outcome = ExecuteAttempt(rb, run, params, cancel, observer);
    if (lost || (!outcome.ok() && outcome.status().code() == ErrorCode::kAborted)) {
      return Error(ErrorCode::kAborted,
                   "run {}: this process lost its lease (another worker took the run over); "
                   "its processes were stopped",
                   run.id);
    }
    AUTOMAN_RETURN_IF_ERROR(outcome.status());
    AUTOMAN_ASSIGN_OR_RETURN(run,
                             queue_.Finish(run, *outcome, rb.retries, Queue::FinishOptions{true}));
    if (run.status != RunStatus::kRunning) return run;

    // A retry is due at run.not_before; this process keeps the lease meanwhile.
    auto delay = std::chrono::duration_cast<milliseconds>(*run.not_before - clock_.Now());
    if (observer != nullptr) observer->OnRetry(run.attempt, std::max(delay, milliseconds(0)));
    if (!SleepUnlessCancelled(delay, cancel)) {
      AttemptOutcome cancelled;
      cancelled.status = RunStatus::kCancelled;
      cancelled.error = "cancelled while waiting to retry";
      return queue_.Finish(run, cancelled, rb.retries);
    }
  }
}

}  // namespace automan
