// `automan server` start-up and idle memory:
//
//   api_ready AUTOMAN --data=DIR [--starts=5] [--settle=2] [--fill=N] [--finish]
//             [--label=NAME] [-- EXTRA SERVER FLAGS...]
//       With --fill=N: first starts a server on DIR with --workers 0 and creates N runs of
//       the built-in runbook host-info, due in 2099 (so a server with workers has nothing
//       to claim), through POST /api/v1/runs/batch (10,000 per request), printing that
//       rate, and stops it. That server gets this process's environment: on a new store it
//       creates the user admin with the password AUTOMAN_ADMIN_PASSWORD, as whom this
//       program logs in for a token (a server from before authentication has no login
//       route: then it sends no credentials); 100 requests per million runs stay far below
//       the per-subject rate limit. With --finish (then) it marks every PENDING run of the
//       store finished (SUCCESS), in this process (FinishAll below), as a store that has
//       served for a while holds them. Then, once unmeasured (so the store exists), and
//       `starts` times: picks a free port, spawns
//       `AUTOMAN server --listen 127.0.0.1:PORT --data DIR EXTRA...`,
//       polls GET /healthz (a new connection every 0.2 ms) until it answers 200 (serving),
//       then GET /readyz until it does (ready: /readyz also asks the store). After `settle`
//       seconds (its CPU use meanwhile is measured) it times five more GET /readyz, reads
//       the server's VmRSS, VmHWM and thread count, then sends SIGTERM and times the exit.
//       Median, min and max of each figure; one text line and one JSON line.
//
//   api_ready --probe=DIR
//       The conditions: machine, load average, fdatasync latency of DIR (the durable
//       figures depend on it). One text line and one JSON line.
#include <fmt/format.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "api_util.h"
#include "bench_util.h"
#include "store/store.h"

using namespace automan::bench;

namespace {

pid_t SpawnServer(const std::string& automan, const std::string& data, int port,
                  const std::vector<std::string>& extra, const std::string& log) {
  std::vector<std::string> args = {
      automan, "server", "--listen", fmt::format("127.0.0.1:{}", port), "--data", data};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

// GET `path` on a new connection: true when it answered 200.
bool Answers200(int port, const char* path) {
  int fd = ConnectTcp("127.0.0.1", port);
  if (fd < 0) return false;
  const std::string req =
      std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  bool ok = false;
  if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
    char buf[512];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ok = n > 12 && std::strncmp(buf + 9, "200", 3) == 0;
  }
  ::close(fd);
  return ok;
}

struct ReadyTimes {
  double serving_ms = -1;  // the first 200 of GET /healthz (the process answers)
  double ready_ms = -1;    // the first 200 of GET /readyz after that (the store answers too)
};

// Polls /healthz (a new connection every 0.2 ms) until it answers 200, then /readyz until
// it does; times from `t0`. Both stay -1 after `limit_s` or when the process exited.
ReadyTimes WaitReady(pid_t pid, int port, int64_t t0, double limit_s) {
  ReadyTimes t;
  const int64_t give_up = t0 + static_cast<int64_t>(limit_s * 1e9);
  while (NowNs() < give_up) {
    if (t.serving_ms < 0 && Answers200(port, "/healthz")) {
      t.serving_ms = static_cast<double>(NowNs() - t0) / 1e6;
    }
    if (t.serving_ms >= 0 && Answers200(port, "/readyz")) {
      t.ready_ms = static_cast<double>(NowNs() - t0) / 1e6;
      return t;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return ReadyTimes{};
    timespec ts{0, 200000};
    nanosleep(&ts, nullptr);
  }
  return ReadyTimes{};
}

double StopServer(pid_t pid) {
  const int64_t t0 = NowNs();
  ::kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  return static_cast<double>(NowNs() - t0) / 1e6;
}

// Turns every PENDING run of the SQLite store in `data` into a finished one (SUCCESS, one
// attempt, started at creation, 50 ms long, no longer due in 2099), as a store that has
// been running for a while holds; 10 pages of 1,000 rows per transaction. The server must
// be stopped. Returns the number of runs changed. (The store is opened directly: the server's
// master key file DATA/master.key, made on its first start, is neither needed nor touched.)
automan::Result<int64_t> FinishAll(const std::string& data) {
  automan::StoreOptions so;
  so.url = "sqlite:" + data + "/automan.db";
  so.durability = automan::Durability::kFast;
  AUTOMAN_ASSIGN_OR_RETURN(std::unique_ptr<automan::Store> store, automan::Store::Open(so));
  int64_t total = 0;
  std::optional<std::string> before;  // pages by id (the primary key: no sort)
  bool more = true;
  while (more) {
    int64_t changed = 0;
    automan::Status s = store->Transact(
        automan::Store::TxMode::kWrite, [&](automan::StoreTx& tx) -> automan::Status {
          changed = 0;
          for (int page = 0; page < 10 && more; ++page) {
            automan::RunFilter f;
            f.before_id = before;
            f.limit = 1000;
            AUTOMAN_ASSIGN_OR_RETURN(std::vector<automan::Run> runs, tx.ListRuns(f));
            more = !runs.empty();
            for (automan::Run& r : runs) {
              before = r.id;
              if (r.status != automan::RunStatus::kPending) continue;
              r.status = automan::RunStatus::kSuccess;
              r.attempt = 1;
              r.not_before.reset();
              r.started_at = r.created_at;
              r.finished_at = r.created_at + std::chrono::milliseconds(50);
              AUTOMAN_RETURN_IF_ERROR(tx.UpdateRun(r));
              ++changed;
            }
          }
          return automan::Status::Ok();
        });
    if (!s.ok()) return s;
    total += changed;
  }
  return total;
}

int Probe(const std::string& dir) {
  auto [p50, p99] = FsyncProbe(dir);
  const std::string load = ReadLine("/proc/loadavg");
  std::printf("api_ready: %s; load average %s; fdatasync (4 KiB) in %s p50 %.3f ms, p99 %.3f ms\n",
              MachineLine().c_str(), load.c_str(), dir.c_str(), p50, p99);
  std::printf(
      "%s\n",
      fmt::format(
          R"({{"kind":"conditions","machine":"{}","loadavg":"{}","fsync_p50_ms":{:.3f},"fsync_p99_ms":{:.3f}}})",
          MachineLine(), load, p50, p99)
          .c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::string automan, data, label = "server", v;
  int starts = 5;
  double settle = 2;
  long fill = 0;
  bool finish = false;
  std::vector<std::string> extra;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--") {
      for (++i; i < argc; ++i) extra.emplace_back(argv[i]);
      break;
    }
    if (Flag(s, "probe", v)) return Probe(v);
    if (Flag(s, "data", v)) {
      data = v;
    } else if (Flag(s, "starts", v)) {
      starts = std::max(1, std::atoi(v.c_str()));
    } else if (Flag(s, "settle", v)) {
      settle = std::atof(v.c_str());
    } else if (Flag(s, "fill", v)) {
      fill = std::atol(v.c_str());
    } else if (Flag(s, "label", v)) {
      label = v;
    } else if (s == "--finish") {
      finish = true;
    } else if (s.rfind("--", 0) != 0 && automan.empty()) {
      automan = s;
    } else {
      std::fprintf(stderr, "api_ready: unknown option %s\n", s.c_str());
      return 2;
    }
  }
  if (automan.empty() || data.empty()) {
    std::fprintf(stderr,
                 "usage: api_ready AUTOMAN --data=DIR [--starts=5] [--settle=2] "
                 "[--fill=N] [-- SERVER FLAGS]\n       api_ready --probe=DIR\n");
    return 2;
  }
  const std::string log = data + "/api_ready-server.log";
  (void)::mkdir(data.c_str(), 0755);

  double fill_rate = 0;
  if (fill > 0) {
    int port = FreePort();
    pid_t pid = SpawnServer(automan, data, port, {"--workers", "0", "--no-scheduler"}, log);
    if (pid < 0 || WaitReady(pid, port, NowNs(), 30).ready_ms < 0) {
      std::fprintf(stderr, "api_ready: the server did not start (see %s)\n", log.c_str());
      return 1;
    }
    const char* password = std::getenv("AUTOMAN_ADMIN_PASSWORD");
    int login_status = 0;
    std::string login_error;
    const std::string token =
        LoginToken("127.0.0.1", port, "admin", password != nullptr ? password : "", &login_status,
                   &login_error);
    if (token.empty() && login_status != 404) {
      std::fprintf(stderr,
                   "api_ready: cannot log in as admin (%s); start this with "
                   "AUTOMAN_ADMIN_PASSWORD set (at least 8 bytes) and a new --data directory\n",
                   login_error.c_str());
      StopServer(pid);
      return 1;
    }
    const std::string auth = AuthHeader(token);
    // Due in 2099: a server started with workers finds nothing to claim, so the figures are
    // its start-up, not a million runs starting.
    std::string one = R"({"runbook":"host-info","params":{},"not_before":"2099-01-01T00:00:00Z"})";
    const int64_t t0 = NowNs();
    long done = 0;
    while (done < fill) {
      const long n = std::min<long>(10000, fill - done);
      std::string body = R"({"runs":[)";
      for (long i = 0; i < n; ++i) body += (i ? "," : "") + one;
      body += "]}";
      HttpReply rep = HttpCall("127.0.0.1", port, "POST", "/api/v1/runs/batch", body, auth);
      if (rep.status != 201) {
        std::fprintf(stderr, "api_ready: batch answered %d: %.300s\n", rep.status,
                     rep.body.c_str());
        StopServer(pid);
        return 1;
      }
      done += n;
    }
    fill_rate = static_cast<double>(done) / (static_cast<double>(NowNs() - t0) / 1e9);
    StopServer(pid);
    std::printf(
        "api_ready: filled %s with %ld runs (POST /api/v1/runs/batch of 10,000 on one "
        "connection, --workers 0): %.0f runs/s\n",
        data.c_str(), done, fill_rate);
  }
  if (finish) {
    const int64_t f0 = NowNs();
    auto n = FinishAll(data);
    if (!n.ok()) {
      std::fprintf(stderr, "api_ready: %s\n", n.status().message().c_str());
      return 1;
    }
    std::printf("api_ready: marked %lld PENDING runs SUCCESS in the store, in-process (%.1f s)\n",
                static_cast<long long>(*n), static_cast<double>(NowNs() - f0) / 1e9);
  }

  std::vector<double> serving, ready, readyz, idle, rss, hwm, threads, stop;
  for (int round = -1; round < starts; ++round) {
    const int port = FreePort();
    const int64_t t0 = NowNs();
    pid_t pid = SpawnServer(automan, data, port, extra, log);
    if (pid < 0) return 1;
    const ReadyTimes rt = WaitReady(pid, port, t0, 60);
    if (rt.ready_ms < 0) {
      std::fprintf(stderr, "api_ready: the server did not become ready (see %s)\n", log.c_str());
      StopServer(pid);
      return 1;
    }
    const double cpu0 = ProcessCpuSeconds(pid);
    if (settle > 0) {
      timespec ts{static_cast<time_t>(settle),
                  static_cast<long>((settle - static_cast<long>(settle)) * 1e9)};
      nanosleep(&ts, nullptr);
    }
    const double idle_cpu = settle > 0 ? (ProcessCpuSeconds(pid) - cpu0) / settle : 0;
    std::vector<double> probe;  // GET /readyz on the settled server, 5 times
    for (int i = 0; i < 5; ++i) {
      const int64_t p0 = NowNs();
      if (Answers200(port, "/readyz")) probe.push_back(static_cast<double>(NowNs() - p0) / 1e6);
    }
    const std::string status = fmt::format("/proc/{}/status", pid);
    const double r = static_cast<double>(ProcKb(status, "VmRSS"));
    const double h = static_cast<double>(ProcKb(status, "VmHWM"));
    const double t = static_cast<double>(ProcKb(status, "Threads"));
    const double s = StopServer(pid);
    if (round < 0) continue;  // the first start creates or migrates the store: not counted
    serving.push_back(rt.serving_ms);
    idle.push_back(idle_cpu * 100);
    readyz.push_back(Median(probe));
    ready.push_back(rt.ready_ms);
    rss.push_back(r / 1024);
    hwm.push_back(h / 1024);
    threads.push_back(t);
    stop.push_back(s);
  }
  auto mm = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return std::make_pair(v.front(), v.back());
  };
  std::string flags;
  for (const auto& e : extra) flags += (flags.empty() ? "" : " ") + e;
  std::printf(
      "api_ready: %s [%s]: start to GET /healthz 200 median %.1f ms (%.1f–%.1f), to GET "
      "/readyz 200 median %.1f ms (%.1f–%.1f), %d starts; one GET /readyz when settled %.1f ms; "
      "after %.0f s idle (CPU %.1f%% of a core) VmRSS %.1f MiB (%.1f–%.1f), VmHWM %.1f MiB, %.0f "
      "threads; SIGTERM to exit %.0f ms\n",
      label.c_str(), flags.c_str(), Median(serving), mm(serving).first, mm(serving).second,
      Median(ready), mm(ready).first, mm(ready).second, starts, Median(readyz), settle,
      Median(idle), Median(rss), mm(rss).first, mm(rss).second, Median(hwm), Median(threads),
      Median(stop));
  std::printf(
      "%s\n",
      fmt::format(
          R"({{"kind":"api_ready","label":"{}","flags":"{}","starts":{},"serving_ms":{:.2f},"ready_ms":{:.2f},"ready_min_ms":{:.2f},"ready_max_ms":{:.2f},"readyz_ms":{:.2f},"idle_cpu_pct":{:.1f},"rss_mib":{:.2f},"hwm_mib":{:.2f},"threads":{:.0f},"stop_ms":{:.1f},"fill":{},"fill_runs_per_s":{:.0f}}})",
          label, flags, starts, Median(serving), Median(ready), mm(ready).first, mm(ready).second,
          Median(readyz), Median(idle), Median(rss), Median(hwm), Median(threads), Median(stop),
          fill, fill_rate)
          .c_str());
  return 0;
}
