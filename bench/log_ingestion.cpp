// Log ingestion: one step printing 1,000,000 short lines (`seq`), stored through the
// engine into SQLite (synchronous=FULL). The figure is lines stored per second, from run
// start to the last line committed, median of several runs; the same `seq` to /dev/null
// is printed as a baseline for what the machine can produce.
//
//   build/release/bench/log_ingestion [lines] [rounds]
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
  const long lines = argc > 1 ? std::atol(argv[1]) : 1'000'000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;

  char tmpl[] = "/tmp/automan-bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  std::vector<double> rates, raw_rates;
  for (int round = 0; round < rounds; ++round) {
    StoreOptions so;
    so.url = "sqlite:" + dir + "/automan-" + std::to_string(round) + ".db";
    auto store = Store::Open(so);
    if (!store.ok()) return 1;
    std::string yaml = "id: lines\nsteps:\n  - id: print\n    argv: [seq, \"1\", \"" +
                       std::to_string(lines) + "\"]\n";
    ParseResult parsed = ParseRunbook(yaml, "bench");
    if (!parsed.ok()) return 1;
    auto params = BindParams(*parsed.runbook, {});
    EngineOptions eo;
    eo.work_root = dir + "/work";
    eo.max_log_bytes = 1ull << 30;
    Engine engine(**store, SystemClock(), eo);
    CancelSignal cancel;
    NewRun how;
    how.lease_owner = "bench";

    auto t0 = std::chrono::steady_clock::now();
    SpawnWait({"/usr/bin/seq", "1", std::to_string(lines)});
    auto t1 = std::chrono::steady_clock::now();
    auto run = engine.CreateRun(*parsed.runbook, *params, how);
    if (!run.ok()) return 1;
    auto done = engine.Execute(*parsed.runbook, *run, *params, cancel);
    auto t2 = std::chrono::steady_clock::now();
    if (!done.ok() || done->status != RunStatus::kSuccess) return 1;

    int64_t stored = 0;
    (void)(*store)->Transact(Store::TxMode::kRead, [&](StoreTx& tx) {
      LogQuery q;
      q.run_id = done->id;
      q.after_seq = lines - 1;
      q.limit = 10;
      auto got = tx.ReadLogLines(q);
      if (got.ok() && !got->empty()) stored = got->back().seq;
      return Status::Ok();
    });
    if (stored != lines) {
      std::fprintf(stderr, "expected %ld lines stored, found %ld\n", lines, (long)stored);
      return 1;
    }
    raw_rates.push_back(lines / Seconds(t0, t1));
    rates.push_back(lines / Seconds(t1, t2));
    std::printf("round %d: seq>/dev/null %.0f lines/s, stored by the engine %.0f lines/s\n",
                round + 1, raw_rates.back(), rates.back());
  }
  std::printf(
      "log_ingestion: %.0f lines/s stored (median of %d runs of %ld lines; goal >= "
      "100000), seq to /dev/null %.0f lines/s\n",
      Median(rates), rounds, lines, Median(raw_rates));
  std::filesystem::remove_all(dir);
  return 0;
}
