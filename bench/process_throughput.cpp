// Process-step throughput: runbooks of one `true` step run back to back by the engine
// (real supervisor shim, real SQLite store with synchronous=FULL), against raw
// posix_spawn + waitpid of /bin/true in the same process, in alternating rounds.
// Prints runs/s per round, the medians, and engine/raw.
//
// The sandbox's cost, in the same rounds: the engine with the sandbox on (the default) and
// off, and one supervisor RunStep with and without a SandboxSpec. The sandboxed runs hide
// /var/lib/apt, as a server whose data directory is in /var/lib would hide it (the jail
// rebuilds /var/lib's listing without it for every step), when it exists.
//
//   build/release/bench/process_throughput [runs-per-round] [rounds] [full|fast]
#include <fcntl.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "bench_util.h"
#include "engine/engine.h"
#include "sandbox/supervisor.h"

using namespace automan;
using namespace automan::bench;

int main(int argc, char** argv) {
  if (argc > 1 && kSupervisorCommand == argv[1]) return SupervisorMain(argc, argv);
  const int runs = argc > 1 ? std::atoi(argv[1]) : 300;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  const bool fast = argc > 3 && std::string(argv[3]) == "fast";

  char tmpl[] = "/tmp/automan-bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  StoreOptions so;
  so.url = "sqlite:" + dir + "/automan.db";
  so.durability = fast ? Durability::kFast : Durability::kFull;
  auto store = Store::Open(so);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  ParseResult parsed =
      ParseRunbook("id: one-true\nsteps:\n  - id: t\n    argv: [/bin/true]\n", "bench");
  if (!parsed.ok()) return 1;
  const Runbook& rb = *parsed.runbook;
  auto params = BindParams(rb, {});
  EngineOptions eo;
  eo.work_root = dir + "/work";
  const std::string realistic_hidden = "/var/lib/apt";
  if (std::filesystem::exists(realistic_hidden)) eo.sandbox.hidden = {realistic_hidden};
  Engine engine(**store, SystemClock(), eo);
  EngineOptions plain_eo = eo;
  plain_eo.sandbox.enabled = false;
  plain_eo.work_root = dir + "/work-plain";
  Engine plain_engine(**store, SystemClock(), plain_eo);
  CancelSignal cancel;
  NewRun how;
  how.lease_owner = "bench";

  // The supervisor alone (a running shim, one RunStep each): what the engine adds on top
  // of this is store writes, the step's work directory and output file, and the log writer.
  auto sup = RunSupervisor::Start();
  if (!sup.ok()) return 1;
  class NullSink final : public LineSink {
    void OnLine(LogStream, std::string_view, bool) override {}
  } null_sink;
  StepCommand true_cmd;
  true_cmd.argv = {"/bin/true"};
  true_cmd.env = {"PATH=/usr/bin:/bin"};
  std::filesystem::create_directories(dir + "/jail-work");
  StepCommand jailed_cmd = true_cmd;
  jailed_cmd.sandbox = SandboxSpec{};
  jailed_cmd.sandbox->writable = {dir + "/jail-work"};
  jailed_cmd.sandbox->hidden = eo.sandbox.hidden;
  jailed_cmd.sandbox->memory_bytes = eo.sandbox.memory_bytes;
  jailed_cmd.sandbox->max_processes = eo.sandbox.max_processes;
  jailed_cmd.sandbox->open_files = eo.sandbox.open_files;

  auto run_engine = [&](Engine& e) {
    for (int i = 0; i < runs; ++i) {
      auto run = e.CreateRun(rb, *params, how);
      if (!run.ok()) return false;
      auto done = e.Execute(rb, *run, *params, cancel);
      if (!done.ok() || done->status != RunStatus::kSuccess) {
        std::fprintf(stderr, "run failed: %s\n",
                     done.ok() ? done->error.c_str() : done.status().ToString().c_str());
        return false;
      }
    }
    return true;
  };
  std::vector<double> raw_rates, engine_rates, sup_rates, plain_engine_rates, jailed_rates;
  for (int round = 0; round < rounds; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < runs; ++i) SpawnWait({"/bin/true"});
    auto t1 = std::chrono::steady_clock::now();
    if (!run_engine(engine)) return 1;
    auto t2 = std::chrono::steady_clock::now();
    for (int i = 0; i < runs; ++i) {
      if (!(*sup)->RunStep(true_cmd, null_sink, cancel).ok()) return 1;
    }
    auto t3 = std::chrono::steady_clock::now();
    if (!run_engine(plain_engine)) return 1;
    auto t4 = std::chrono::steady_clock::now();
    for (int i = 0; i < runs; ++i) {
      auto r = (*sup)->RunStep(jailed_cmd, null_sink, cancel);
      if (!r.ok() || r->kind != StepExit::Kind::kExited || r->exit_code != 0) {
        std::fprintf(stderr, "sandboxed step failed: %s\n",
                     r.ok() ? r->error.c_str() : r.status().ToString().c_str());
        return 1;
      }
    }
    auto t5 = std::chrono::steady_clock::now();
    raw_rates.push_back(runs / Seconds(t0, t1));
    engine_rates.push_back(runs / Seconds(t1, t2));
    sup_rates.push_back(runs / Seconds(t2, t3));
    plain_engine_rates.push_back(runs / Seconds(t3, t4));
    jailed_rates.push_back(runs / Seconds(t4, t5));
    std::printf(
        "round %d: raw posix_spawn %.0f/s, engine %.0f runs/s (sandbox off: %.0f), "
        "supervisor RunStep alone %.0f/s (sandboxed: %.0f)\n",
        round + 1, raw_rates.back(), engine_rates.back(), plain_engine_rates.back(),
        sup_rates.back(), jailed_rates.back());
  }
  double plain = Median(plain_engine_rates), jailed = Median(jailed_rates);
  double raw = Median(raw_rates), eng = Median(engine_rates), su = Median(sup_rates);
  std::printf("per run: raw %.0f us, supervisor step %.0f us, engine run %.0f us\n", 1e6 / raw,
              1e6 / su, 1e6 / eng);
  std::printf(
      "process_throughput: raw %.0f/s, engine %.0f runs/s (median of %d rounds of %d), "
      "engine/raw = %.0f%% (goal >= 80%%)\n",
      raw, eng, rounds, runs, 100.0 * eng / raw);
  std::printf(
      "sandbox: engine %.0f runs/s sandboxed vs %.0f unsandboxed = %.0f%% (goal >= 50%%); "
      "supervisor step %.0f us sandboxed vs %.0f us plain = %.0f%%\n",
      eng, plain, 100.0 * eng / plain, 1e6 / jailed, 1e6 / su, 100.0 * jailed / su);
  std::filesystem::remove_all(dir);
  return 0;
}
