// Store write path: group commit and the queue's dispatch cycle on SQLite, durable
// (synchronous=FULL) unless `fast` is given. Prints its figures; never a test.
//
//   store_commit commit [seconds] [fast]
//       N threads (1, 8, 32) each committing small kWrite transactions (one run insert)
//       for `seconds`: commits/s. With group commit, concurrent commits share fsyncs.
//   store_commit cycle [runs] [batch] [fast] [drop=INDEX,INDEX...]
//       one thread, `batch` runs per transaction (1: one run at a time) through enqueue,
//       claim and finish: CPU time and bytes written (/proc/self/io wchar: WAL frames,
//       mostly) per run of each stage. Repeatable figures for the cost of each index.
//   store_commit dispatch [runs] [fast] [enqueuers=4] [workers=8] [drop=INDEX,INDEX...]
//       the queue's road through the store primitives: enqueuer threads (one run per
//       transaction) and worker threads that claim up to 16 runs per transaction
//       (ListClaimable + AcquireSlots + UpdateRun + UpsertAttempt) and finish each in its
//       own transaction (UpdateRun + UpsertAttempt + ReleaseSlots): runs/s from the first
//       enqueue to the last completion. `drop=` removes indexes first, to measure their
//       cost.
#include <sqlite3.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "common/ids.h"
#include "store/store.h"

using namespace automan;
using namespace automan::bench;
using Steady = std::chrono::steady_clock;

namespace {

RunbookVersion Version() {
  RunbookVersion v;
  v.version = "sha256:bench";
  v.runbook_id = "bench";
  v.yaml = "id: bench\nsteps: []\n";
  v.source = "bench.yaml";
  v.created_at = SystemClock().Now();
  return v;
}

Run NewRun(const RunbookVersion& v) {
  Run r;
  r.id = NewId(SystemClock());
  r.runbook_id = v.runbook_id;
  r.runbook_version = v.version;
  r.created_at = SystemClock().Now();
  r.params = {{"host", {"string", "db-01"}}};
  return r;
}

std::unique_ptr<Store> OpenStore(const std::string& path, bool fast) {
  auto s = Store::Open({.url = "sqlite:" + path,
                        .durability = fast ? Durability::kFast : Durability::kFull,
                        .busy_timeout = std::chrono::seconds(60)});
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(s).value();
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

double Commits(const std::string& dir, int threads, double seconds, bool fast) {
  const std::string path = dir + "/commit-" + std::to_string(threads) + ".db";
  auto store = OpenStore(path, fast);
  RunbookVersion v = Version();
  Check(
      store->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return tx.PutRunbookVersion(v); }),
      "seed");
  std::atomic<bool> stop{false};
  std::atomic<long> commits{0};
  std::vector<std::thread> pool;
  const auto t0 = Steady::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      while (!stop) {
        Run r = NewRun(v);
        Check(store->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return tx.InsertRun(r); }),
              "insert");
        ++commits;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : pool) t.join();
  return commits / Seconds(t0, Steady::now());
}

// Bytes this process has written (write/pwrite) so far: the WAL frames, mostly.
long WrittenBytes() {
  FILE* f = std::fopen("/proc/self/io", "r");
  if (f == nullptr) return 0;
  char line[128];
  long out = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, "wchar:", 6) == 0) out = std::atol(line + 6);
  }
  std::fclose(f);
  return out;
}

Status Enqueue(StoreTx& tx, const RunbookVersion& v, const Run& r) {
  AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(v));
  return tx.InsertRun(r);
}

// Claims up to `max` runs for `owner` into `claimed`, as the queue's Claim does.
Status ClaimRuns(StoreTx& tx, const std::string& owner, int max, std::vector<Run>& claimed) {
  claimed.clear();
  const Timestamp now = SystemClock().Now();
  AUTOMAN_ASSIGN_OR_RETURN(auto list, tx.ListClaimable(now, max));
  for (Run& r : list) {
    AUTOMAN_ASSIGN_OR_RETURN(bool got, tx.AcquireSlots(r, now));
    if (!got) continue;
    Run next = r;
    next.status = RunStatus::kRunning;
    next.attempt += 1;
    next.fence += 1;
    next.lease_owner = owner;
    next.lease_expires_at = now + std::chrono::seconds(30);
    next.started_at = now;
    AUTOMAN_RETURN_IF_ERROR(tx.UpdateRunAdvancingFence(next, r.fence));
    AUTOMAN_RETURN_IF_ERROR(
        tx.UpsertAttempt({.run_id = r.id, .number = 1, .worker = owner, .started_at = now}));
    claimed.push_back(std::move(next));
  }
  return Status::Ok();
}

Status FinishRun(StoreTx& tx, const std::string& owner, const Run& r) {
  const Timestamp now = SystemClock().Now();
  Run done = r;
  done.status = RunStatus::kSuccess;
  done.finished_at = now;
  AUTOMAN_RETURN_IF_ERROR(tx.UpdateRun(done));
  AUTOMAN_RETURN_IF_ERROR(tx.UpsertAttempt({.run_id = r.id,
                                            .number = 1,
                                            .status = RunStatus::kSuccess,
                                            .worker = owner,
                                            .started_at = *r.started_at,
                                            .finished_at = now}));
  return tx.ReleaseSlots(r);
}

// Opens a fresh store at `path` and drops `drop` (index names) behind its back.
std::unique_ptr<Store> OpenDropped(const std::string& path, bool fast,
                                   const std::vector<std::string>& drop) {
  auto store = OpenStore(path, fast);
  if (!drop.empty()) {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    for (const std::string& index : drop) {
      // "DROP INDEX x", or (for experiments) any SQL given as sql=... on the command line.
      const std::string sql = index.rfind("sql:", 0) == 0 ? index.substr(4) : "DROP INDEX " + index;
      char* err = nullptr;
      if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::fprintf(stderr, "%s: %s\n", sql.c_str(), err);
        std::exit(1);
      }
    }
    sqlite3_close(db);
  }
  return store;
}

struct Stage {
  double seconds = 0;
  long bytes = 0;
};

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// One thread, `batch` runs per transaction (what group commit makes of `batch` concurrent
// callers): enqueue them, claim them, finish them. The figures are per run and repeatable:
// CPU time and bytes written of each stage.
void Cycle(const std::string& dir, int runs, int batch, bool fast,
           const std::vector<std::string>& drop, int round, Stage stages[3]) {
  auto store = OpenDropped(dir + "/cycle-" + std::to_string(round) + ".db", fast, drop);
  RunbookVersion v = Version();
  std::vector<Run> claimed;
  auto timed = [&](Stage& st, const std::function<Status(StoreTx&)>& fn) {
    const long b0 = WrittenBytes();
    const double t0 = CpuSeconds();
    Check(store->Transact(Store::TxMode::kWrite, fn), "cycle");
    st.seconds += CpuSeconds() - t0;
    st.bytes += WrittenBytes() - b0;
  };
  for (int i = 0; i < runs; i += batch) {
    std::vector<Run> fresh;
    for (int k = 0; k < batch; ++k) {
      fresh.push_back(NewRun(v));
      if ((i + k) % 4 == 0) fresh.back().concurrency = {{.key = "db", .limit = 1000}};
    }
    timed(stages[0], [&](StoreTx& tx) -> Status {
      for (const Run& r : fresh) AUTOMAN_RETURN_IF_ERROR(Enqueue(tx, v, r));
      return Status::Ok();
    });
    timed(stages[1], [&](StoreTx& tx) { return ClaimRuns(tx, "w", batch, claimed); });
    if (claimed.size() != static_cast<size_t>(batch)) {
      std::fprintf(stderr, "claimed %zu runs of %d\n", claimed.size(), batch);
      std::exit(1);
    }
    timed(stages[2], [&](StoreTx& tx) -> Status {
      for (const Run& r : claimed) AUTOMAN_RETURN_IF_ERROR(FinishRun(tx, "w", r));
      return Status::Ok();
    });
  }
}

int kEnqueuers = 4, kWorkers = 8;

double Dispatch(const std::string& dir, int runs, bool fast, const std::vector<std::string>& drop,
                int round) {
  auto store = OpenDropped(dir + "/dispatch-" + std::to_string(round) + ".db", fast, drop);
  RunbookVersion v = Version();
  constexpr int kClaim = 16;
  std::atomic<int> enqueued{0}, finished{0};
  std::vector<std::thread> pool;
  const auto t0 = Steady::now();
  for (int e = 0; e < kEnqueuers; ++e) {
    pool.emplace_back([&] {
      while (enqueued.fetch_add(1) < runs) {
        Run r = NewRun(v);
        if (r.id.back() % 4 == 0) r.concurrency = {{.key = "db", .limit = 50}};
        Check(
            store->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return Enqueue(tx, v, r); }),
            "enqueue");
      }
    });
  }
  for (int w = 0; w < kWorkers; ++w) {
    pool.emplace_back([&, w] {
      const std::string owner = "worker-" + std::to_string(w);
      std::vector<Run> claimed;
      while (finished < runs) {
        Check(store->Transact(Store::TxMode::kWrite,
                              [&](StoreTx& tx) { return ClaimRuns(tx, owner, kClaim, claimed); }),
              "claim");
        if (claimed.empty()) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          continue;
        }
        for (const Run& r : claimed) {
          Check(store->Transact(Store::TxMode::kWrite,
                                [&](StoreTx& tx) { return FinishRun(tx, owner, r); }),
                "finish");
          ++finished;
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  return runs / Seconds(t0, Steady::now());
}

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "commit";
  bool fast = false;
  std::vector<std::string> drop;
  std::vector<std::string> rest;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "fast") {
      fast = true;
    } else if (a.rfind("enqueuers=", 0) == 0) {
      kEnqueuers = std::atoi(a.c_str() + 10);
    } else if (a.rfind("workers=", 0) == 0) {
      kWorkers = std::atoi(a.c_str() + 8);
    } else if (a.rfind("sql=", 0) == 0) {
      drop.push_back("sql:" + a.substr(4));
    } else if (a.rfind("drop=", 0) == 0) {
      for (size_t p = 5; p <= a.size();) {
        size_t q = a.find(',', p);
        if (q == std::string::npos) q = a.size();
        if (q > p) drop.push_back(a.substr(p, q - p));
        p = q + 1;
      }
    } else {
      rest.push_back(a);
    }
  }
  char tmpl[] = "/tmp/automan-bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  if (mode == "commit") {
    const double seconds = rest.empty() ? 3 : std::atof(rest[0].c_str());
    for (int threads : {1, 8, 32}) {
      std::printf("commit: %2d threads, %s: %8.0f commits/s\n", threads, fast ? "fast" : "full",
                  Commits(dir, threads, seconds, fast));
    }
  } else if (mode == "dispatch") {
    const int runs = rest.empty() ? 20000 : std::atoi(rest[0].c_str());
    std::vector<double> rates;
    for (int round = 0; round < 3; ++round) rates.push_back(Dispatch(dir, runs, fast, drop, round));
    std::printf(
        "dispatch: %d runs, %d enqueuers, %d workers, %s, dropped [%s]: %.0f runs/s median "
        "(%.0f..%.0f)\n",
        runs, kEnqueuers, kWorkers, fast ? "fast" : "full", Joined(drop).c_str(), Median(rates),
        *std::min_element(rates.begin(), rates.end()),
        *std::max_element(rates.begin(), rates.end()));
  } else if (mode == "cycle") {
    const int runs = rest.empty() ? 2000 : std::atoi(rest[0].c_str());
    const int batch = rest.size() < 2 ? 1 : std::atoi(rest[1].c_str());
    constexpr int kRounds = 3;
    std::vector<double> per_run[3];
    long bytes[3] = {0, 0, 0};
    for (int round = 0; round < kRounds; ++round) {
      Stage stages[3];
      Cycle(dir, runs, batch, fast, drop, round, stages);
      for (int i = 0; i < 3; ++i) {
        per_run[i].push_back(stages[i].seconds / runs * 1e6);
        bytes[i] += stages[i].bytes;
      }
    }
    const char* names[3] = {"enqueue", "claim", "finish"};
    double total = 0;
    for (int i = 0; i < 3; ++i) {
      total += Median(per_run[i]);
      std::printf("cycle %s batch %d dropped [%s] %-8s %6.1f us CPU/run  %6ld bytes written/run\n",
                  fast ? "fast" : "full", batch, Joined(drop).c_str(), names[i], Median(per_run[i]),
                  bytes[i] / (runs * kRounds));
    }
    std::printf("cycle %s batch %d dropped [%s] total    %6.1f us CPU/run\n",
                fast ? "fast" : "full", batch, Joined(drop).c_str(), total);
  } else {
    std::fprintf(stderr, "usage: store_commit commit|dispatch|cycle ...\n");
    return 2;
  }
  std::filesystem::remove_all(dir);
  return 0;
}
