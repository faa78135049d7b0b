// Open-loop HTTP/1.1 load at a fixed request rate, for latency "at a given load":
//
//   api_load HOST:PORT PATH [--rate=25000] [--connections=64] [--seconds=10] [--warmup=2]
//            [--method=GET] [--body=TEXT] [--label=NAME] [--server-pid=PID] [--token=TOKEN]
//
// Every request carries `Authorization: Bearer TOKEN` when a token is given (--token, or
// the environment's AUTOMAN_TOKEN, which bench/api.sh sets after logging in); without one
// it sends no credentials (public routes, or a server from before authentication).
//
// Request i is due at start + i / rate, whatever happened before (open loop). It goes out on
// an idle keep-alive connection as soon as one is free; when none is, it waits in a queue.
// Its latency runs from its *due* time to the end of its response, so a server that stalls
// is charged for every request that should have gone out meanwhile (no coordinated
// omission, unlike wrk's latency figures, which start when a connection gets to send).
// Requests due during the first `warmup` seconds are sent but not counted.
//
// One thread and epoll: pin it with taskset. Prints one text line and one JSON line:
// achieved rate, latency p50/p90/p99/p99.9/max, non-2xx answers, connection errors, and
// requests still unanswered 5 s after the last was due (counted as errors; their latency
// is not). With --server-pid, the server's CPU time per answered request (from /proc).
#include <fmt/format.h>
#include <sys/epoll.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <deque>
#include <string>
#include <vector>

#include "api_util.h"

using namespace automan::bench;

namespace {

struct Conn {
  int fd = -1;
  std::string in;
  std::string out;  // unsent part of the request
  int64_t due = 0;  // of the request in flight
  bool busy = false;
};

struct Args {
  std::string target, path = "/healthz", method = "GET", body, label, token;
  double rate = 25000, seconds = 10, warmup = 2;
  int connections = 64;
  long server_pid = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  Args a;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i], v;
    if (Flag(s, "rate", v)) {
      a.rate = std::atof(v.c_str());
    } else if (Flag(s, "connections", v)) {
      a.connections = std::atoi(v.c_str());
    } else if (Flag(s, "seconds", v)) {
      a.seconds = std::atof(v.c_str());
    } else if (Flag(s, "warmup", v)) {
      a.warmup = std::atof(v.c_str());
    } else if (Flag(s, "method", v)) {
      a.method = v;
    } else if (Flag(s, "body", v)) {
      a.body = v;
    } else if (Flag(s, "label", v)) {
      a.label = v;
    } else if (Flag(s, "server-pid", v)) {
      a.server_pid = std::atol(v.c_str());
    } else if (Flag(s, "token", v)) {
      a.token = v;
    } else if (s.rfind("--", 0) == 0) {
      std::fprintf(stderr, "api_load: unknown option %s\n", s.c_str());
      return 2;
    } else {
      pos.push_back(s);
    }
  }
  if (pos.size() != 2 || a.rate <= 0 || a.connections < 1 || a.seconds <= 0) {
    std::fprintf(stderr,
                 "usage: api_load HOST:PORT PATH [--rate=R] [--connections=N] [--seconds=S] "
                 "[--warmup=S] [--method=M] [--body=TEXT] [--label=NAME] [--server-pid=PID] "
                 "[--token=TOKEN]\n");
    return 2;
  }
  a.target = pos[0];
  a.path = pos[1];
  if (a.label.empty()) a.label = a.method + " " + a.path;
  auto [host, port] = SplitHostPort(a.target);
  RaiseNoFile(static_cast<rlim_t>(a.connections) + 64);
  const std::string request =
      HttpRequestText(a.method, a.path, host, a.body, AuthHeader(TokenFrom(a.token)));

  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Conn> conns(static_cast<size_t>(a.connections));
  std::vector<int> idle;
  auto open_conn = [&](size_t i) {
    Conn& c = conns[i];
    c = Conn{};
    c.fd = ConnectTcp(host, port);
    if (c.fd < 0) return false;
    SetNonBlocking(c.fd);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    idle.push_back(static_cast<int>(i));
    return true;
  };
  for (size_t i = 0; i < conns.size(); ++i) {
    if (!open_conn(i)) {
      std::fprintf(stderr, "api_load: cannot connect to %s\n", a.target.c_str());
      return 1;
    }
  }

  const double interval_ns = 1e9 / a.rate;
  const auto total = static_cast<int64_t>((a.warmup + a.seconds) * a.rate);
  const int64_t t0 = NowNs() + 1000000;
  const int64_t measure_from = t0 + static_cast<int64_t>(a.warmup * 1e9);
  const int64_t last_due = t0 + static_cast<int64_t>(static_cast<double>(total - 1) * interval_ns);
  auto due_of = [&](int64_t i) {
    return t0 + static_cast<int64_t>(static_cast<double>(i) * interval_ns);
  };
  int64_t next = 0;
  std::deque<int64_t> backlog;  // due times of requests waiting for a connection
  LatencyHistogram hist;
  uint64_t measured = 0, non2xx = 0, conn_errors = 0, sent = 0, answered = 0;
  const double cpu0 = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
           u.ru_stime.tv_usec / 1e6;
  }();

  auto send = [&](int ci, int64_t due) {
    Conn& c = conns[static_cast<size_t>(ci)];
    c.busy = true;
    c.due = due;
    ++sent;
    ssize_t n = ::write(c.fd, request.data(), request.size());
    if (n < 0) n = 0;
    if (static_cast<size_t>(n) < request.size()) {
      c.out = request.substr(static_cast<size_t>(n));
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT;
      ev.data.u64 = static_cast<uint64_t>(ci);
      epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
    }
  };
  auto fail = [&](size_t ci) {
    Conn& c = conns[ci];
    if (c.busy) ++conn_errors;
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    idle.erase(std::remove(idle.begin(), idle.end(), static_cast<int>(ci)), idle.end());
    if (!open_conn(ci)) ++conn_errors;
  };

  double server_cpu0 = -1;
  int64_t server_cpu0_at = 0;
  std::vector<epoll_event> events(512);
  char buf[65536];
  const int64_t give_up = last_due + 5000000000LL;
  while (true) {
    int64_t now = NowNs();
    if (a.server_pid > 0 && server_cpu0_at == 0 && now >= measure_from) {
      server_cpu0 = ProcessCpuSeconds(a.server_pid);
      server_cpu0_at = now;
    }
    while (next < total && due_of(next) <= now) backlog.push_back(due_of(next++));
    while (!backlog.empty() && !idle.empty()) {
      int ci = idle.back();
      idle.pop_back();
      send(ci, backlog.front());
      backlog.pop_front();
    }
    if (next == total && backlog.empty() && idle.size() == conns.size()) break;
    if (now > give_up) break;
    int64_t wait_ns = next < total ? std::max<int64_t>(0, due_of(next) - now) : 50000000;
    timespec ts{wait_ns / 1000000000, wait_ns % 1000000000};
    int n = epoll_pwait2(ep, events.data(), static_cast<int>(events.size()), &ts, nullptr);
    if (n < 0 && errno != EINTR) break;
    now = NowNs();
    for (int k = 0; k < n; ++k) {
      size_t ci = events[static_cast<size_t>(k)].data.u64;
      Conn& c = conns[ci];
      if (events[static_cast<size_t>(k)].events & EPOLLOUT && !c.out.empty()) {
        ssize_t w = ::write(c.fd, c.out.data(), c.out.size());
        if (w > 0) c.out.erase(0, static_cast<size_t>(w));
        if (c.out.empty()) {
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = ci;
          epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
      }
      if (!(events[static_cast<size_t>(k)].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
      ssize_t r = ::read(c.fd, buf, sizeof buf);
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        fail(ci);
        continue;
      }
      c.in.append(buf, static_cast<size_t>(r));
      int status = 0;
      long cl = 0;
      size_t head = 0;
      if (!ParseResponseHead(c.in, status, cl, head)) continue;
      if (cl < 0) cl = 0;
      if (c.in.size() < head + static_cast<size_t>(cl)) continue;
      c.in.erase(0, head + static_cast<size_t>(cl));
      if (!c.busy) continue;  // an answer nobody asked for: ignore
      ++answered;
      if (status < 200 || status > 299) ++non2xx;
      if (c.due >= measure_from) {
        hist.Add((now - c.due) / 1000);
        ++measured;
      }
      c.busy = false;
      idle.push_back(static_cast<int>(ci));
    }
  }
  double server_us = -1, server_core = -1;  // CPU per answered request; share of one core
  if (server_cpu0 >= 0 && measured > 0) {
    const double used = ProcessCpuSeconds(a.server_pid) - server_cpu0;
    server_us = used * 1e6 / static_cast<double>(measured);
    server_core = used / (static_cast<double>(NowNs() - server_cpu0_at) / 1e9);
  }
  uint64_t unanswered = sent - answered + backlog.size() + static_cast<uint64_t>(total - next);
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const double cpu = u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
                     u.ru_stime.tv_usec / 1e6 - cpu0;
  const double window = static_cast<double>(last_due - measure_from) / 1e9;
  const double achieved = window > 0 ? static_cast<double>(measured) / window : 0;
  auto ms = [&](double q) { return hist.Percentile(q) / 1000.0; };
  std::printf(
      "api_load: %s at %.0f/s over %d connections, %.0f s (+%.0f s warm-up): answered %.0f/s, "
      "latency from due time p50 %.3f ms, p90 %.3f, p99 %.3f, p99.9 %.3f, max %.3f; "
      "non-2xx %llu, connection errors %llu, unanswered %llu; server CPU %.1f µs per request "
      "(%.0f%% "
      "of a core); load generator CPU %.0f%%\n",
      a.label.c_str(), a.rate, a.connections, a.seconds, a.warmup, achieved, ms(0.5), ms(0.9),
      ms(0.99), ms(0.999), static_cast<double>(hist.max_us()) / 1000.0,
      static_cast<unsigned long long>(non2xx), static_cast<unsigned long long>(conn_errors),
      static_cast<unsigned long long>(unanswered), server_us, server_core * 100,
      100.0 * cpu / (static_cast<double>(NowNs() - t0) / 1e9));
  std::printf(
      "%s\n",
      fmt::format(
          R"({{"kind":"api_load","label":"{}","rate":{:.0f},"connections":{},"seconds":{:.1f},"answered_per_s":{:.1f},"samples":{},"p50_ms":{:.3f},"p90_ms":{:.3f},"p99_ms":{:.3f},"p999_ms":{:.3f},"max_ms":{:.3f},"non2xx":{},"conn_errors":{},"unanswered":{},"server_cpu_us_per_req":{:.1f},"server_core_pct":{:.0f}}})",
          a.label, a.rate, a.connections, a.seconds, achieved, measured, ms(0.5), ms(0.9), ms(0.99),
          ms(0.999), static_cast<double>(hist.max_us()) / 1000.0, non2xx, conn_errors, unanswered,
          server_us, server_core * 100)
          .c_str());
  return unanswered > 0 || conn_errors > 0 ? 3 : 0;
}
