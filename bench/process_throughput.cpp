// Process-step throughput: runbooks of one `true` step run back to back by the engine
// (real supervisor shim, real SQLite store with synchronous=FULL), against raw
// posix_spawn + waitpid of /bin/true in the same process, in alternating rounds.
// Prints runs/s per round, the medians, and engine/raw.
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
  Engine engine(**store, SystemClock(), eo);
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

  std::vector<double> raw_rates, engine_rates, sup_rates;
  for (int round = 0; round < rounds; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < runs; ++i) SpawnWait({"/bin/true"});
    auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < runs; ++i) {
      auto run = engine.CreateRun(rb, *params, how);
      if (!run.ok()) return 1;
      auto done = engine.Execute(rb, *run, *params, cancel);
      if (!done.ok() || done->status != RunStatus::kSuccess) {
        std::fprintf(stderr, "run failed: %s\n",
                     done.ok() ? done->error.c_str() : done.status().ToString().c_str());
        return 1;
      }
    }
    auto t2 = std::chrono::steady_clock::now();
    for (int i = 0; i < runs; ++i) {
      if (!(*sup)->RunStep(true_cmd, null_sink, cancel).ok()) return 1;
    }
    auto t3 = std::chrono::steady_clock::now();
    raw_rates.push_back(runs / Seconds(t0, t1));
    engine_rates.push_back(runs / Seconds(t1, t2));
    sup_rates.push_back(runs / Seconds(t2, t3));
    std::printf("round %d: raw posix_spawn %.0f/s, engine %.0f runs/s, supervisor RunStep alone "
                "%.0f/s\n",
                round + 1, raw_rates.back(), engine_rates.back(), sup_rates.back());
  }
  double raw = Median(raw_rates), eng = Median(engine_rates), su = Median(sup_rates);
  std::printf("per run: raw %.0f us, supervisor step %.0f us, engine run %.0f us\n", 1e6 / raw,
              1e6 / su, 1e6 / eng);
  std::printf(
      "process_throughput: raw %.0f/s, engine %.0f runs/s (median of %d rounds of %d), "
      "engine/raw = %.0f%% (goal >= 80%%)\n",
      raw, eng, rounds, runs, 100.0 * eng / raw);
  std::filesystem::remove_all(dir);
  return 0;
}
