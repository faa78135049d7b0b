// Live log streams of `automan server` under load: many SSE subscribers on one run whose
// step prints timestamped lines, latency from the line's write to its arrival at each
// subscriber, and the server's memory meanwhile. Two modes of one program:
//
//   api_sse emit --rate=R --seconds=S [--go-file=PATH] [--go-timeout=120]
//       The step's program (bench/api.sh writes the runbook `bench-emit` that runs it).
//       Waits until PATH exists, then prints R lines per second for S seconds, each
//       "t=<CLOCK_REALTIME ns when written> i=<n>", in one write() per millisecond (or per
//       line at low rates); at the end a summary line on stderr.
//
//   api_sse subscribe HOST:PORT --runbook=bench-emit --subscribers=N --rate=R --seconds=S
//       [--background-rate=0] [--server-pid=PID] [--go-dir=/tmp] [--label=NAME]
//       [--connect-parallel=256] [--idle=0] [--timeout=S] [--token=TOKEN]
//       Creates a run of RUNBOOK (params rate, seconds, go_file) through the API and, with
//       --background-rate, a second one nobody watches (its lines are only ingested).
//       Opens N connections to /api/v1/runs/ID/stream (at most --connect-parallel connects in
//       flight), waits until every one has its 200 head (the server subscribes a stream
//       before it writes the head) and then --idle seconds more (measuring the server's CPU
//       while every stream waits), samples the server's VmRSS, creates the go file, and
//       reads every stream until its "end" event. Latency per line per subscriber = the
//       subscriber's CLOCK_REALTIME at the read() that completed the event − the stamp in
//       the line. Prints a text line and a JSON line. Every request (the runs, the streams)
//       carries `Authorization: Bearer TOKEN` when a token is given (--token, or the
//       environment's AUTOMAN_TOKEN); all streams are then one subject's, so the server needs
//       --max-streams-per-subject >= N.
//
// One thread and epoll; RLIMIT_NOFILE is raised to fit N (the server needs as many: start
// it with a large enough `ulimit -n`, and with --max-streams/--max-streams-per-subject ≥ N).
#include <fmt/format.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "api_util.h"
#include "bench_util.h"

using namespace automan::bench;

namespace {

void SleepUntil(int64_t mono_ns) {
  timespec ts{mono_ns / 1000000000, mono_ns % 1000000000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

int Emit(int argc, char** argv) {
  double rate = 1000, seconds = 10, go_timeout = 120;
  std::string go_file;
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i], v;
    if (Flag(s, "rate", v)) {
      rate = std::atof(v.c_str());
    } else if (Flag(s, "seconds", v)) {
      seconds = std::atof(v.c_str());
    } else if (Flag(s, "go-file", v)) {
      go_file = v;
    } else if (Flag(s, "go-timeout", v)) {
      go_timeout = std::atof(v.c_str());
    } else {
      std::fprintf(stderr, "api_sse emit: unknown option %s\n", s.c_str());
      return 2;
    }
  }
  if (rate <= 0 || seconds <= 0) return 2;
  if (!go_file.empty()) {
    const int64_t give_up = NowNs() + static_cast<int64_t>(go_timeout * 1e9);
    struct stat st {};
    while (::stat(go_file.c_str(), &st) != 0) {
      if (NowNs() > give_up) {
        std::fprintf(stderr, "api_sse emit: %s did not appear within %.0f s\n", go_file.c_str(),
                     go_timeout);
        return 1;
      }
      SleepUntil(NowNs() + 1000000);
    }
  }
  const auto total = static_cast<int64_t>(rate * seconds);
  const int64_t t0 = NowNs();
  int64_t sent = 0;
  std::string out;
  char line[64];
  while (sent < total) {
    const int64_t now = NowNs();
    int64_t due = std::min<int64_t>(
        total, static_cast<int64_t>(static_cast<double>(now - t0) * rate / 1e9) + 1);
    if (due > sent) {
      out.clear();
      const int64_t stamp = NowNs(CLOCK_REALTIME);
      for (; sent < due; ++sent) {
        int n = std::snprintf(line, sizeof line, "t=%" PRId64 " i=%" PRId64 "\n", stamp, sent);
        out.append(line, static_cast<size_t>(n));
      }
      size_t off = 0;
      while (off < out.size()) {
        ssize_t w = ::write(1, out.data() + off, out.size() - off);
        if (w <= 0) {
          if (w < 0 && errno == EINTR) continue;
          return 1;
        }
        off += static_cast<size_t>(w);
      }
    }
    if (sent >= total) break;
    const int64_t next_due = t0 + static_cast<int64_t>(static_cast<double>(sent) * 1e9 / rate);
    SleepUntil(std::max(next_due, NowNs() + 1000000));
  }
  const double took = static_cast<double>(NowNs() - t0) / 1e9;
  std::fprintf(stderr, "emitted %" PRId64 " lines in %.3f s (%.0f/s)\n", total, took,
               static_cast<double>(total) / took);
  return 0;
}

enum class State { kConnecting, kSent, kStreaming, kDone, kFailed };

struct Sub {
  int fd = -1;
  State state = State::kConnecting;
  std::string buf;
  size_t off = 0;  // processed up to here
  uint64_t lines = 0;
  int status = 0;
};

int Subscribe(int argc, char** argv) {
  std::string target, runbook = "bench-emit", label, go_dir = "/tmp", token_flag;
  int subscribers = 100, connect_parallel = 256;
  double rate = 1000, seconds = 10, background = 0, timeout = 0, idle_s = 0;
  long server_pid = 0;
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i], v;
    if (Flag(s, "runbook", v)) {
      runbook = v;
    } else if (Flag(s, "subscribers", v)) {
      subscribers = std::atoi(v.c_str());
    } else if (Flag(s, "rate", v)) {
      rate = std::atof(v.c_str());
    } else if (Flag(s, "seconds", v)) {
      seconds = std::atof(v.c_str());
    } else if (Flag(s, "background-rate", v)) {
      background = std::atof(v.c_str());
    } else if (Flag(s, "server-pid", v)) {
      server_pid = std::atol(v.c_str());
    } else if (Flag(s, "go-dir", v)) {
      go_dir = v;
    } else if (Flag(s, "label", v)) {
      label = v;
    } else if (Flag(s, "connect-parallel", v)) {
      connect_parallel = std::max(1, std::atoi(v.c_str()));
    } else if (Flag(s, "timeout", v)) {
      timeout = std::atof(v.c_str());
    } else if (Flag(s, "idle", v)) {
      idle_s = std::atof(v.c_str());
    } else if (Flag(s, "token", v)) {
      token_flag = v;
    } else if (s.rfind("--", 0) != 0 && target.empty()) {
      target = s;
    } else {
      std::fprintf(stderr, "api_sse subscribe: unknown option %s\n", s.c_str());
      return 2;
    }
  }
  if (target.empty() || subscribers < 1) {
    std::fprintf(stderr, "usage: api_sse subscribe HOST:PORT --subscribers=N --rate=R ...\n");
    return 2;
  }
  if (timeout <= 0) timeout = seconds + idle_s + 60 + subscribers / 500.0;
  if (label.empty()) label = fmt::format("{} subscribers, {:.0f} lines/s", subscribers, rate);
  auto [host, port] = SplitHostPort(target);
  const std::string auth = AuthHeader(TokenFrom(token_flag));
  const long nofile = RaiseNoFile(static_cast<rlim_t>(subscribers) + 256);
  if (nofile < subscribers + 32) {
    std::fprintf(stderr, "api_sse: RLIMIT_NOFILE is %ld, too low for %d subscribers\n", nofile,
                 subscribers);
    return 1;
  }
  const std::string status_path = fmt::format("/proc/{}/status", server_pid);
  auto rss = [&](const char* field) { return server_pid > 0 ? ProcKb(status_path, field) : 0LL; };
  const long long rss_before = rss("VmRSS");

  const std::string go_file = fmt::format("{}/api-sse-go-{}-{}", go_dir, getpid(), NowNs());
  auto create_run = [&](double r) -> std::string {
    std::string body = fmt::format(
        R"({{"runbook":"{}","params":{{"rate":{:.0f},"seconds":{:.0f},"go_file":"{}"}}}})", runbook,
        r, seconds, go_file);
    HttpReply rep = HttpCall(host, port, "POST", "/api/v1/runs", body, auth);
    if (rep.status != 201) {
      std::fprintf(stderr, "api_sse: POST /api/v1/runs answered %d: %s\n", rep.status,
                   rep.body.c_str());
      return "";
    }
    return JsonString(rep.body, "id");
  };
  const std::string run_id = create_run(rate);
  if (run_id.empty()) return 1;
  if (background > 0 && create_run(background).empty()) return 1;
  const std::string request = HttpRequestText("GET", "/api/v1/runs/" + run_id + "/stream", host, "",
                                              "Accept: text/event-stream\r\n" + auth);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Sub> subs(static_cast<size_t>(subscribers));
  int next_connect = 0, in_flight = 0, streaming = 0, failed = 0, done = 0;
  std::vector<int> fail_statuses;
  auto start_connect = [&](int i) {
    Sub& s = subs[static_cast<size_t>(i)];
    s.fd = ConnectTcp(host, port, /*nonblocking=*/true);
    if (s.fd < 0) {
      s.state = State::kFailed;
      ++failed;
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = static_cast<uint64_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
    ++in_flight;
  };
  auto finish = [&](Sub& s, State st) {
    if (s.state == State::kConnecting || s.state == State::kSent) --in_flight;
    if (s.state == State::kStreaming) --streaming;
    s.state = st;
    if (st == State::kFailed) ++failed;
    if (st == State::kDone) ++done;
    epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
    ::close(s.fd);
    s.fd = -1;
    std::string().swap(s.buf);
  };

  LatencyHistogram hist;
  int64_t last_line_ns = 0;  // CLOCK_REALTIME of the last line received
  std::string emitter_summary, end_event;
  int64_t go_ns = 0;  // when the go file was created (CLOCK_REALTIME)
  // Processes the complete events in s.buf; `recv_ns`: when the read that completed them
  // returned (CLOCK_REALTIME).
  auto process = [&](Sub& s, int64_t recv_ns, bool first) {
    while (true) {
      size_t end = s.buf.find("\n\n", s.off);
      if (end == std::string::npos) break;
      std::string_view ev(s.buf.data() + s.off, end - s.off);
      s.off = end + 2;
      constexpr std::string_view kText = "\"text\":\"";
      size_t p = ev.find(kText);
      if (p != std::string_view::npos) {
        p += kText.size();
        if (ev.compare(p, 2, "t=") == 0) {
          int64_t stamp = std::strtoll(ev.data() + p + 2, nullptr, 10);
          hist.Add((recv_ns - stamp) / 1000);
          ++s.lines;
          last_line_ns = recv_ns;
        } else if (first && ev.compare(p, 8, "emitted ") == 0) {
          size_t q = ev.find('"', p);
          emitter_summary = std::string(ev.substr(p, q - p));
        }
        continue;
      }
      if (ev.find("event: end") != std::string_view::npos) {
        if (first) end_event = std::string(ev.substr(ev.find("data: ") + 6));
        finish(s, State::kDone);
        return;
      }
    }
    if (s.off > 0 && (s.off == s.buf.size() || s.off > 65536)) {
      s.buf.erase(0, s.off);
      s.off = 0;
    }
  };

  const double cpu0 = SelfCpu();
  const int64_t t_connect = NowNs();
  const int64_t deadline = t_connect + static_cast<int64_t>(timeout * 1e9);
  std::vector<epoll_event> events(1024);
  char rbuf[65536];
  long long rss_idle = 0, rss_max = 0;
  double connect_s = 0;
  int64_t next_sample = 0;
  bool go = false;
  int64_t idle_from = 0;    // all subscribed; the go comes `idle_s` later
  double idle_cpu0 = -1;    // the server's CPU seconds then
  double idle_core = -1;    // its CPU use while they all wait, in cores
  double server_cpu0 = -1;  // the server's CPU seconds at the go
  while (true) {
    while (!go && in_flight < connect_parallel && next_connect < subscribers) {
      start_connect(next_connect++);
    }
    const int64_t now = NowNs();
    if (!go && idle_from == 0 && next_connect == subscribers && in_flight == 0) {
      connect_s = static_cast<double>(now - t_connect) / 1e9;
      idle_from = now;
      idle_cpu0 = server_pid > 0 ? ProcessCpuSeconds(server_pid) : -1;
    }
    if (!go && idle_from != 0 && now >= idle_from + static_cast<int64_t>(idle_s * 1e9)) {
      if (idle_s > 0 && idle_cpu0 >= 0) {
        idle_core = (ProcessCpuSeconds(server_pid) - idle_cpu0) /
                    (static_cast<double>(now - idle_from) / 1e9);
      }
      rss_idle = rss("VmRSS");
      rss_max = rss_idle;
      FILE* f = std::fopen(go_file.c_str(), "w");
      if (f == nullptr) {
        std::fprintf(stderr, "api_sse: cannot create %s\n", go_file.c_str());
        return 1;
      }
      std::fclose(f);
      go = true;
      go_ns = NowNs(CLOCK_REALTIME);
      server_cpu0 = server_pid > 0 ? ProcessCpuSeconds(server_pid) : -1;
      next_sample = now;
    }
    if (go && streaming == 0) break;
    if (now > deadline) break;
    if (go && now >= next_sample) {
      rss_max = std::max(rss_max, rss("VmRSS"));
      next_sample = now + 200000000;
    }
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    if (n < 0 && errno != EINTR) break;
    const int64_t recv_ns = NowNs(CLOCK_REALTIME);
    for (int k = 0; k < n; ++k) {
      const int i = static_cast<int>(events[static_cast<size_t>(k)].data.u64);
      Sub& s = subs[static_cast<size_t>(i)];
      if (s.fd < 0) continue;
      if (s.state == State::kConnecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 ||
            ::write(s.fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
          finish(s, State::kFailed);
          continue;
        }
        s.state = State::kSent;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = static_cast<uint64_t>(i);
        epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
        continue;
      }
      ssize_t r = ::read(s.fd, rbuf, sizeof rbuf);
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0) {
        finish(s, State::kFailed);
        continue;
      }
      s.buf.append(rbuf, static_cast<size_t>(r));
      if (s.state == State::kSent) {
        int status = 0;
        long cl = 0;
        size_t head = 0;
        if (!ParseResponseHead(s.buf, status, cl, head)) continue;
        if (status != 200) {
          fail_statuses.push_back(status);
          finish(s, State::kFailed);
          continue;
        }
        s.state = State::kStreaming;
        --in_flight;
        ++streaming;
        s.off = head;
      }
      process(s, recv_ns, i == 0);
    }
  }
  const double cpu = SelfCpu() - cpu0;
  const long long hwm = rss("VmHWM");
  rss_max = std::max(rss_max, rss("VmRSS"));
  ::unlink(go_file.c_str());
  std::vector<double> per_sub;
  for (const Sub& s : subs) {
    if (s.state == State::kDone || s.state == State::kStreaming) {
      per_sub.push_back(static_cast<double>(s.lines));
    }
  }
  std::sort(per_sub.begin(), per_sub.end());
  const double expected = rate * seconds;
  const double min_lines = per_sub.empty() ? 0 : per_sub.front();
  auto ms = [&](double q) { return hist.Percentile(q) / 1000.0; };
  std::string statuses;
  for (int st : fail_statuses) {
    if (statuses.find(std::to_string(st)) == std::string::npos) {
      if (!statuses.empty()) statuses += ',';
      statuses += std::to_string(st);
    }
  }
  const double stream_s = static_cast<double>(NowNs(CLOCK_REALTIME) - go_ns) / 1e9;
  const double delivered =
      last_line_ns > go_ns
          ? static_cast<double>(hist.count()) / (static_cast<double>(last_line_ns - go_ns) / 1e9)
          : 0;
  const double server_cpu = server_cpu0 >= 0 ? ProcessCpuSeconds(server_pid) - server_cpu0 : -1;
  const double server_us_per_line = hist.count() > 0 && server_cpu >= 0
                                        ? server_cpu * 1e6 / static_cast<double>(hist.count())
                                        : -1;
  // A run whose first attempt was abandoned and retried prints its lines twice: say so.
  int attempts = 0;
  {
    HttpReply rep = HttpCall(host, port, "GET", "/api/v1/runs/" + run_id, "", auth);
    size_t p = rep.body.find("\"attempt\":");
    if (rep.status == 200 && p != std::string::npos)
      attempts = std::atoi(rep.body.c_str() + p + 10);
  }
  const double client_cpu =
      100.0 * cpu / std::max(1e-9, static_cast<double>(NowNs() - t_connect) / 1e9);
  std::printf(
      "api_sse: %s (+%.0f lines/s unwatched): %d of %d subscribed in %.2f s (%d failed%s%s), "
      "%d saw the end, run attempts %d; lines per subscriber min %.0f / median %.0f of %.0f; "
      "latency p50 "
      "%.3f ms, p90 %.3f, p99 %.3f, p99.9 %.3f, max %.3f (%llu samples, %.0f/s delivered); "
      "server VmRSS %.1f MiB before, %.1f MiB with all subscribed, max %.1f MiB, VmHWM %.1f "
      "MiB; server CPU while all wait idle %.0f%% of a core, while streaming %.2f s (%.1f µs per "
      "line delivered); emitter: %s; client CPU %.0f%% over "
      "%.1f s\n",
      label.c_str(), background, subscribers - failed, subscribers, connect_s, failed,
      statuses.empty() ? "" : ", HTTP ", statuses.c_str(), done, attempts, min_lines,
      Median(per_sub), expected, ms(0.5), ms(0.9), ms(0.99), ms(0.999),
      static_cast<double>(hist.max_us()) / 1000.0, static_cast<unsigned long long>(hist.count()),
      delivered, rss_before / 1024.0, rss_idle / 1024.0, rss_max / 1024.0, hwm / 1024.0,
      idle_core * 100, server_cpu, server_us_per_line,
      emitter_summary.empty() ? "?" : emitter_summary.c_str(), client_cpu, stream_s);
  std::printf(
      "%s\n",
      fmt::format(
          R"({{"kind":"api_sse","label":"{}","run":"{}","subscribers":{},"rate":{:.0f},"background_rate":{:.0f},"seconds":{:.0f},"subscribed":{},"failed":{},"ended":{},"attempts":{},"connect_s":{:.3f},"lines_expected":{:.0f},"lines_min":{:.0f},"lines_median":{:.0f},"samples":{},"delivered_per_s":{:.0f},"p50_ms":{:.3f},"p90_ms":{:.3f},"p99_ms":{:.3f},"p999_ms":{:.3f},"max_ms":{:.3f},"rss_before_kb":{},"rss_subscribed_kb":{},"rss_max_kb":{},"hwm_kb":{},"idle_s":{:.0f},"idle_core_pct":{:.1f},"server_cpu_s":{:.2f},"server_us_per_line":{:.2f},"client_cpu_pct":{:.0f},"end":{}}})",
          label, run_id, subscribers, rate, background, seconds, subscribers - failed, failed, done,
          attempts, connect_s, expected, min_lines, Median(per_sub), hist.count(), delivered,
          ms(0.5), ms(0.9), ms(0.99), ms(0.999), static_cast<double>(hist.max_us()) / 1000.0,
          rss_before, rss_idle, rss_max, hwm, idle_s, idle_core * 100, server_cpu,
          server_us_per_line, client_cpu, end_event.empty() ? "null" : end_event)
          .c_str());
  return failed > 0 || done < subscribers ? 3 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "emit") return Emit(argc, argv);
  if (mode == "subscribe") return Subscribe(argc, argv);
  std::fprintf(stderr, "usage: api_sse emit|subscribe ... (see the top of bench/api_sse.cpp)\n");
  return 2;
}
