// `automan exec FILE [-p name=value]... [--data DIR] [--db URL] [--json] [--dry-run]`
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "api/run_json.h"
#include "cli/cli_support.h"
#include "cli/commands.h"
#include "common/clock.h"
#include "common/duration.h"
#include "engine/engine.h"
#include "runbook/runbook.h"
#include "store/store.h"

namespace automan::cli {

namespace {

// Prints each log line live as "[step] line" and step results as they finish.
class Printer final : public RunObserver {
 public:
  explicit Printer(FILE* out) : out_(out) {}
  void OnLog(const LogLine& l) override {
    const char* prefix = l.stream == LogStream::kSystem ? "automan: " : "";
    fmt::print(out_, "[{}] {}{}\n", l.step_id, prefix, l.text);
  }
  void OnRetry(int next_attempt, std::chrono::milliseconds delay) override {
    fmt::print(out_, "automan: attempt failed; starting attempt {} in {}\n", next_attempt,
               FormatDuration(delay));
  }

 private:
  FILE* out_;
};

std::string Elapsed(const Run& run) {
  if (!run.started_at || !run.finished_at) return "";
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(*run.finished_at - *run.started_at);
  return fmt::format(" in {:.2f}s", ms.count() / 1000.0);
}

void PrintSummary(FILE* out, const Run& run, const std::vector<StepRun>& steps) {
  fmt::print(out, "run {} {}{} (runbook {}, attempt {}/{})\n", run.id, ToString(run.status),
             Elapsed(run), run.runbook_id, run.attempt, run.max_attempts);
  for (const auto& s : steps) {
    if (s.attempt != run.attempt) continue;
    std::string detail;
    if (s.exit_code) detail = fmt::format("exit {}", *s.exit_code);
    if (s.signal) detail = fmt::format("signal {}", *s.signal);
    if (!s.error.empty() && s.status != StepStatus::kSuccess) detail = s.error;
    fmt::print(out, "  {:<20} {:<9} {}\n", s.step_id, ToString(s.status), detail);
  }
  if (!run.error.empty() && run.status != RunStatus::kSuccess) {
    fmt::print(out, "error: {}\n", run.error);
  }
}

std::string DescribeParam(const ParamSpec* spec, const ParamValue& v) {
  if (v.secret()) return "*** (secret)";
  return v.text +
         (spec && spec->default_value && *spec->default_value == v.text ? " (default)" : "");
}

int DryRun(const Runbook& rb, const RunParams& params) {
  fmt::print("dry run of {} ({}): nothing is executed or recorded\n", rb.id, rb.version);
  fmt::print("params:\n");
  if (params.empty()) fmt::print("  (none)\n");
  for (const auto& [name, v] : params) {
    fmt::print("  {} = {}  -> $AUTOMAN_PARAM_{}\n", name, DescribeParam(rb.FindParam(name), v),
               EnvName(name));
  }
  auto print_steps = [](const std::vector<Step>& steps) {
    int i = 1;
    for (const auto& s : steps) {
      std::string extra;
      if (s.timeout) extra += ", timeout " + FormatDuration(*s.timeout);
      if (s.retries) extra += fmt::format(", {} retries", s.retries->count);
      if (s.continue_on_error) extra += ", continue_on_error";
      if (!s.outputs.empty()) extra += fmt::format(", outputs: {}", fmt::join(s.outputs, " "));
      fmt::print("  {}. {} ({}{})\n", i++, s.id, s.shell ? "shell" : "argv", extra);
      if (s.shell) {
        std::string_view text = *s.shell;
        while (!text.empty()) {
          size_t nl = text.find('\n');
          fmt::print("     | {}\n", text.substr(0, nl));
          if (nl == std::string_view::npos) break;
          text.remove_prefix(nl + 1);
        }
      } else {
        fmt::print("     $ {}\n", fmt::join(s.argv, " "));
      }
    }
  };
  fmt::print("steps:\n");
  print_steps(rb.steps);
  if (!rb.rollback.empty()) {
    fmt::print("rollback:\n");
    print_steps(rb.rollback);
  }
  if (rb.timeout) fmt::print("run timeout: {}\n", FormatDuration(*rb.timeout));
  return kExitSuccess;
}

}  // namespace

int RunExec(const ExecOptions& options) {
  FILE* const human = options.json ? stderr : stdout;
  ParseResult parsed = LoadRunbookFile(options.file);
  if (!parsed.ok()) {
    for (const auto& d : parsed.diagnostics) std::cerr << d.ToString() << "\n";
    return kExitInvalidInput;
  }
  const Runbook& rb = *parsed.runbook;

  auto given = GatherParams(options.params, options.secret_params, SecretParamsOf(rb));
  if (!given.ok()) {
    fmt::print(stderr, "error: {}\n", given.status().message());
    return kExitInvalidInput;
  }
  auto params = BindParams(rb, *given);
  if (!params.ok()) {
    fmt::print(stderr, "error: {}\n", params.status().message());
    return kExitInvalidInput;
  }
  if (options.dry_run) return DryRun(rb, *params);

  auto store = OpenStore(options.store);
  if (!store.ok()) {
    fmt::print(stderr, "error: {}\n", store.status().message());
    return kExitFailed;
  }

  Engine engine(**store, SystemClock(), EngineOptionsFor(options.store.data_dir));

  NewRun how;
  how.trigger = Trigger::kManual;
  how.triggered_by = "exec:" + CurrentUserName();
  how.lease_owner = fmt::format("exec:{}:{}", HostName(), getpid());

  CancelSignal cancel;
  CancelOnSignals on_signals(cancel);
  // The run is claimed by this process as it is enqueued; a full concurrency key makes it
  // wait here, as a queued run would wait in the queue.
  Result<Run> run = engine.CreateRun(rb, *params, how);
  bool said_waiting = false;
  while (!run.ok() && run.status().code() == ErrorCode::kResourceExhausted && !cancel.cancelled()) {
    if (!said_waiting) {
      fmt::print(stderr, "automan: waiting: {}\n", run.status().message());
      said_waiting = true;
    }
    pollfd p{cancel.fd(), POLLIN, 0};
    (void)poll(&p, 1, 250);
    run = engine.CreateRun(rb, *params, how);
  }
  if (!run.ok()) {
    if (cancel.cancelled()) {
      fmt::print(stderr, "automan: cancelled before the run started; nothing was recorded\n");
      return kExitCancelled;
    }
    fmt::print(stderr, "error: recording the run: {}\n", run.status().message());
    return kExitFailed;
  }

  // Live output: each line reaches a pipe (tee, CI logs, a test) as soon as it is printed.
  (void)std::setvbuf(human, nullptr, _IOLBF, 0);
  Printer printer(human);
  fmt::print(human, "run {} of {} started\n", run->id, rb.id);
  (void)std::fflush(human);
  auto done = engine.Execute(rb, *run, *params, cancel, &printer);
  if (!done.ok()) {
    fmt::print(stderr, "error: {}\n", done.status().message());
    return kExitFailed;
  }
  std::vector<StepRun> steps;
  Status s = (*store)->Transact(Store::TxMode::kRead, [&](StoreTx& tx) {
    AUTOMAN_ASSIGN_OR_RETURN(steps, tx.ListStepRuns(done->id));
    return Status::Ok();
  });
  if (!s.ok()) fmt::print(stderr, "warning: reading step results: {}\n", s.message());
  PrintSummary(human, *done, steps);
  if (options.json) {
    std::cout << RunToJson(*done, steps) << "\n";
  }
  (void)std::fflush(nullptr);
  return ExitCodeFor(done->status);
}

}  // namespace automan::cli
