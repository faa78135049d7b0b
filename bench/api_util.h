// Helpers of the API server benchmarks (api_load, api_sse, api_ready): plain-socket HTTP/1.1
// client pieces, a latency histogram, clocks. No Asio: these programs must stay small and
// cheap to build, and their own cost must be easy to see.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace automan::bench {

// Reads `--NAME=VALUE` into `out`; false when `a` is another flag.
inline bool Flag(const std::string& a, const char* name, std::string& out) {
  std::string p = std::string("--") + name + "=";
  if (a.rfind(p, 0) != 0) return false;
  out = a.substr(p.size());
  return true;
}

inline int64_t NowNs(clockid_t clock = CLOCK_MONOTONIC) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// "127.0.0.1:8080" -> {"127.0.0.1", 8080}; port -1 when malformed.
inline std::pair<std::string, int> SplitHostPort(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) return {s, -1};
  return {s.substr(0, colon), std::atoi(s.c_str() + colon + 1)};
}

// A TCP connection to an IPv4 address, TCP_NODELAY; -1 on failure. `nonblocking`: the
// connect is started and the socket returned at once (check SO_ERROR when writable).
inline int ConnectTcp(const std::string& host, int port, bool nonblocking = false) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) return -1;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 &&
      !(nonblocking && errno == EINPROGRESS)) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// User + system CPU seconds of process `pid` so far (all its threads), from /proc; -1 if
// unreadable.
inline double ProcessCpuSeconds(long pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return -1;
  char buf[1024];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');  // the command name may hold spaces
  if (p == nullptr) return -1;
  unsigned long long utime = 0, stime = 0;
  // After ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
  // utime(14) stime(15).
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) !=
      2) {
    return -1;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

inline void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// A port nobody listens on right now (bound, read and released: a small race, fine here).
inline int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Raises the soft RLIMIT_NOFILE to the hard limit (and the hard one to `want` when allowed).
// Returns the soft limit in effect.
inline long RaiseNoFile(rlim_t want) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_max < want) {
    rlimit up{want, want};
    if (setrlimit(RLIMIT_NOFILE, &up) == 0) return static_cast<long>(want);
  }
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  return static_cast<long>(rl.rlim_cur);
}

inline std::string HttpRequestText(std::string_view method, std::string_view path,
                                   std::string_view host, std::string_view body,
                                   std::string_view extra_headers = "") {
  std::string r;
  r.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ").append(host);
  r.append("\r\n").append(extra_headers);
  if (!body.empty() || method == "POST" || method == "PUT") {
    r.append("Content-Type: application/json\r\nContent-Length: ")
        .append(std::to_string(body.size()))
        .append("\r\n");
  }
  r.append("\r\n").append(body);
  return r;
}

// Parses the head of a response at the start of `buf`. False until the whole head is
// there; then `status`, `content_length` (-1 when absent) and `head_len` (up to and with the
// blank line) are set.
inline bool ParseResponseHead(std::string_view buf, int& status, long& content_length,
                              size_t& head_len) {
  size_t end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) return false;
  head_len = end + 4;
  status = buf.size() > 12 ? std::atoi(buf.data() + 9) : 0;
  content_length = -1;
  size_t pos = buf.find("\r\n");
  while (pos < end) {
    size_t next = buf.find("\r\n", pos + 2);
    std::string_view line = buf.substr(pos + 2, next - pos - 2);
    constexpr std::string_view kCl = "content-length:";
    if (line.size() > kCl.size() && strncasecmp(line.data(), kCl.data(), kCl.size()) == 0) {
      content_length = std::atol(std::string(line.substr(kCl.size())).c_str());
    }
    pos = next;
  }
  return true;
}

struct HttpReply {
  int status = -1;  // -1: no answer (connect or read failed)
  std::string body;
};

// One request on a fresh blocking connection, with "Connection: close". `extra_headers`:
// more header lines, each ending in "\r\n" (AuthHeader below).
inline HttpReply HttpCall(const std::string& host, int port, std::string_view method,
                          std::string_view path, std::string_view body = "",
                          std::string_view extra_headers = "") {
  HttpReply reply;
  int fd = ConnectTcp(host, port);
  if (fd < 0) return reply;
  std::string req = HttpRequestText(method, path, host, body,
                                    std::string("Connection: close\r\n").append(extra_headers));
  size_t off = 0;
  while (off < req.size()) {
    ssize_t n = ::write(fd, req.data() + off, req.size() - off);
    if (n <= 0) {
      ::close(fd);
      return reply;
    }
    off += static_cast<size_t>(n);
  }
  std::string in;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  int status = 0;
  long cl = -1;
  size_t head = 0;
  if (!ParseResponseHead(in, status, cl, head)) return reply;
  reply.status = status;
  reply.body = in.substr(head);
  return reply;
}

// The string value of `"key":"..."` in a JSON text (first occurrence, no unescaping).
inline std::string JsonString(std::string_view json, std::string_view key) {
  std::string pat = "\"";
  pat.append(key).append("\":\"");
  size_t p = json.find(pat);
  if (p == std::string_view::npos) return "";
  p += pat.size();
  size_t e = json.find('"', p);
  return e == std::string_view::npos ? "" : std::string(json.substr(p, e - p));
}

// The API token the load generators send: `flag` (--token=) when given, else the
// environment's AUTOMAN_TOKEN (what `automan` itself reads), else "" (no credentials: a
// server from before authentication, or public routes only).
inline std::string TokenFrom(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("AUTOMAN_TOKEN");
  return env != nullptr ? std::string(env) : std::string();
}

// "Authorization: Bearer TOKEN\r\n", or "" without a token.
inline std::string AuthHeader(const std::string& token) {
  return token.empty() ? std::string() : "Authorization: Bearer " + token + "\r\n";
}

// `s` as a JSON string literal (quotes, backslashes and control characters escaped).
inline std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", c);
      out.append(esc);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

// POST /api/v1/auth/login as `username` asking for a token. The token on 200; "" with
// `*status` 404 from a server that predates authentication (no login route: send nothing);
// "" with the status (-1: no answer) and `*error` set otherwise.
inline std::string LoginToken(const std::string& host, int port, std::string_view username,
                              std::string_view password, int* status, std::string* error) {
  const std::string body = "{\"username\":" + JsonQuote(username) +
                           ",\"password\":" + JsonQuote(password) + ",\"token\":true}";
  HttpReply rep = HttpCall(host, port, "POST", "/api/v1/auth/login", body);
  *status = rep.status;
  if (rep.status == 200) {
    std::string token = JsonString(rep.body, "token");
    if (!token.empty()) return token;
    *error = "the login answer has no token: " + rep.body.substr(0, 300);
  } else if (rep.status != 404) {
    *error = "POST /api/v1/auth/login answered " + std::to_string(rep.status) + ": " +
             rep.body.substr(0, 300);
  }
  return {};
}

// Latencies in microseconds, log-linear buckets (exact below 1024 µs, then 512 buckets per
// power of two: < 0.2% error), so hundreds of millions of samples cost a few hundred KiB.
class LatencyHistogram {
 public:
  LatencyHistogram() : counts_(1024 + 54 * 512, 0) {}
  void Add(int64_t us) {
    if (us < 0) us = 0;
    ++counts_[Index(static_cast<uint64_t>(us))];
    ++n_;
    max_ = std::max(max_, us);
  }
  void Merge(const LatencyHistogram& o) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    n_ += o.n_;
    max_ = std::max(max_, o.max_);
  }
  uint64_t count() const { return n_; }
  int64_t max_us() const { return max_; }
  // The q-quantile (nearest rank) in µs: the upper edge of its bucket; 0 for no samples.
  double Percentile(double q) const {
    if (n_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(n_) + 0.999999);
    rank = std::clamp<uint64_t>(rank, 1, n_);
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min<double>(static_cast<double>(Upper(i)), max_);
    }
    return static_cast<double>(max_);
  }

 private:
  static size_t Index(uint64_t v) {
    if (v < 1024) return v;
    int msb = 63 - __builtin_clzll(v);
    if (msb > 63) msb = 63;
    int shift = msb - 9;
    return 1024 + static_cast<size_t>(msb - 10) * 512 + ((v >> shift) - 512);
  }
  static uint64_t Upper(size_t i) {
    if (i < 1024) return i;
    size_t k = i - 1024;
    int msb = static_cast<int>(k / 512) + 10;
    uint64_t sub = k % 512 + 512;
    int shift = msb - 9;
    return ((sub + 1) << shift) - 1;
  }
  std::vector<uint64_t> counts_;
  uint64_t n_ = 0;
  int64_t max_ = 0;
};

}  // namespace automan::bench
