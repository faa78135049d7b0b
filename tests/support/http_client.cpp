#include "support/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>

#include "support/test_util.h"

namespace automan::testing {

namespace {

using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

milliseconds Remaining(Steady::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Steady::now());
  return left.count() < 0 ? milliseconds(0) : left;
}

std::string Lower(std::string_view s) {
  std::string o(s);
  for (char& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return o;
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

// ---- SHA-1 and base64, for the WebSocket handshake only.
std::array<uint8_t, 20> Sha1(std::string_view msg) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  std::string m(msg);
  const uint64_t bits = static_cast<uint64_t>(msg.size()) * 8;
  m.push_back(static_cast<char>(0x80));
  while (m.size() % 64 != 56) m.push_back('\0');
  for (int i = 7; i >= 0; --i) m.push_back(static_cast<char>((bits >> (i * 8)) & 0xFF));
  auto rol = [](uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  for (size_t off = 0; off < m.size(); off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      w[i] = (static_cast<uint32_t>(static_cast<uint8_t>(m[off + i * 4])) << 24) |
             (static_cast<uint32_t>(static_cast<uint8_t>(m[off + i * 4 + 1])) << 16) |
             (static_cast<uint32_t>(static_cast<uint8_t>(m[off + i * 4 + 2])) << 8) |
             static_cast<uint32_t>(static_cast<uint8_t>(m[off + i * 4 + 3]));
    }
    for (int i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5A827999;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d;
        k = 0xCA62C1D6;
      }
      uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = rol(b, 30);
      b = a;
      a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
  std::array<uint8_t, 20> out{};
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 4; ++j) out[i * 4 + j] = static_cast<uint8_t>(h[i] >> (24 - j * 8));
  }
  return out;
}

std::string Base64(const uint8_t* p, size_t n) {
  static const char* kTab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = static_cast<uint32_t>(p[i]) << 16;
    if (i + 1 < n) v |= static_cast<uint32_t>(p[i + 1]) << 8;
    if (i + 2 < n) v |= p[i + 2];
    out.push_back(kTab[(v >> 18) & 63]);
    out.push_back(kTab[(v >> 12) & 63]);
    out.push_back(i + 1 < n ? kTab[(v >> 6) & 63] : '=');
    out.push_back(i + 2 < n ? kTab[v & 63] : '=');
  }
  return out;
}

std::mt19937& Rng() {
  static thread_local std::mt19937 rng(std::random_device{}());
  return rng;
}

// Reads the header block into `r`; false (with r.error) when none arrived.
bool ReadHead(TcpConnection& conn, std::string& buf, Steady::time_point deadline, HttpResult& r) {
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (conn.ReadSome(buf, Remaining(deadline)) == 0) {
      if (conn.eof()) {
        r.closed = true;
        r.error = buf.empty() ? "connection closed without a response"
                              : "connection closed inside the response head";
      } else {
        r.error = "timed out waiting for the response head";
      }
      return false;
    }
  }
  std::string head = buf.substr(0, end);
  buf.erase(0, end + 4);
  std::istringstream in(head);
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  // "HTTP/1.1 200 OK"
  if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12) {
    r.error = "malformed status line: " + line;
    return false;
  }
  r.status = std::atoi(line.substr(9, 3).c_str());
  r.reason = line.size() > 13 ? line.substr(13) : "";
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    r.headers[Lower(line.substr(0, colon))] = Trim(line.substr(colon + 1));
  }
  if (const std::string* c = r.Header("connection"); c != nullptr && Lower(*c) == "close") {
    r.closed = true;
  }
  return true;
}

bool ReadExactly(TcpConnection& conn, std::string& buf, size_t n, Steady::time_point deadline) {
  while (buf.size() < n) {
    if (conn.ReadSome(buf, Remaining(deadline)) == 0) return false;
  }
  return true;
}

void ReadBody(TcpConnection& conn, std::string& buf, Steady::time_point deadline, HttpResult& r,
              bool response_to_head) {
  if (response_to_head || (r.status >= 100 && r.status < 200) || r.status == 204 ||
      r.status == 304) {
    return;
  }
  const std::string* te = r.Header("transfer-encoding");
  if (te != nullptr && Lower(*te).find("chunked") != std::string::npos) {
    while (true) {
      size_t eol;
      while ((eol = buf.find("\r\n")) == std::string::npos) {
        if (conn.ReadSome(buf, Remaining(deadline)) == 0) {
          r.error = "chunked body cut off";
          return;
        }
      }
      size_t size = std::strtoul(buf.substr(0, eol).c_str(), nullptr, 16);
      buf.erase(0, eol + 2);
      if (!ReadExactly(conn, buf, size + 2, deadline)) {
        r.error = "chunked body cut off";
        return;
      }
      r.body += buf.substr(0, size);
      buf.erase(0, size + 2);
      if (size == 0) return;  // (trailers are not used by the server)
    }
  }
  if (const std::string* cl = r.Header("content-length")) {
    size_t n = std::strtoul(cl->c_str(), nullptr, 10);
    if (!ReadExactly(conn, buf, n, deadline)) {
      r.error = conn.eof() ? "body cut off" : "timed out reading the body";
    }
    r.body = buf.substr(0, std::min(n, buf.size()));
    buf.erase(0, std::min(n, buf.size()));
    return;
  }
  // No length: the body runs until the server closes.
  while (conn.ReadSome(buf, Remaining(deadline)) > 0) {
  }
  if (!conn.eof()) r.error = "timed out reading a body delimited by close";
  r.body = std::move(buf);
  buf.clear();
  r.closed = true;
}

}  // namespace

// ---------------------------------------------------------------- HttpResult

const std::string* HttpResult::Header(std::string_view name) const {
  auto it = headers.find(Lower(name));
  return it == headers.end() ? nullptr : &it->second;
}

std::string HttpResult::Describe() const {
  std::string s = status == 0 ? "no response (" + error + ")" : "HTTP " + std::to_string(status);
  if (!body.empty()) s += " " + (body.size() > 600 ? body.substr(0, 600) + "..." : body);
  return s;
}

// ---------------------------------------------------------------- TcpConnection

TcpConnection::~TcpConnection() { Close(); }

bool TcpConnection::Connect(uint16_t port, const std::string& host, int rcvbuf) {
  Close();
  eof_ = false;
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 ||
      ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    Close();
    return false;
  }
  return true;
}

bool TcpConnection::Send(std::string_view bytes) {
  if (fd_ < 0) return false;
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

size_t TcpConnection::ReadSome(std::string& buf, milliseconds timeout) {
  if (fd_ < 0) {
    eof_ = true;
    return 0;
  }
  const auto deadline = Steady::now() + timeout;
  while (true) {
    pollfd p{fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(Remaining(deadline).count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return 0;  // timeout
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {  // EOF or reset
      eof_ = true;
      return 0;
    }
    buf.append(tmp, static_cast<size_t>(n));
    return static_cast<size_t>(n);
  }
}

bool TcpConnection::WaitClosed(milliseconds timeout) {
  const auto deadline = Steady::now() + timeout;
  std::string sink;
  while (!eof_) {
    if (Steady::now() >= deadline) return false;
    sink.clear();
    ReadSome(sink, Remaining(deadline));
  }
  return true;
}

void TcpConnection::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

HttpResult ReadHttpResponse(TcpConnection& conn, std::string& buf, milliseconds timeout,
                            bool head_only, bool response_to_head) {
  const auto deadline = Steady::now() + timeout;
  HttpResult r;
  if (!ReadHead(conn, buf, deadline, r)) return r;
  if (!head_only) ReadBody(conn, buf, deadline, r, response_to_head);
  return r;
}

// ---------------------------------------------------------------- HttpTestClient

HttpTestClient::HttpTestClient(uint16_t port, std::string host)
    : port_(port), host_(std::move(host)) {}

bool HttpTestClient::Reconnect() {
  buf_.clear();
  return conn_.Connect(port_, host_);
}

void HttpTestClient::Close() {
  conn_.Close();
  buf_.clear();
}

Headers& DefaultTestHeaders() {
  static Headers headers;
  return headers;
}

Headers WithDefaultHeaders(const Headers& headers) {
  Headers out;
  auto given = [&](const std::string& name) {
    for (const auto& [k, v] : headers) {
      if (Lower(k) == Lower(name)) return true;
    }
    return false;
  };
  for (const auto& [k, v] : DefaultTestHeaders()) {
    if (!given(k)) out.emplace_back(k, v);
  }
  for (const auto& [k, v] : headers) {
    if (!v.empty()) out.emplace_back(k, v);
  }
  return out;
}

std::string LoginToken(uint16_t port, const std::string& username, const std::string& password,
                       std::string* failure) {
  HttpTestClient c(port);
  HttpResult r =
      c.Post("/api/v1/auth/login",
             R"({"username":")" + username + R"(","password":")" + password + R"(","token":true})",
             {{"Authorization", ""}});
  const std::string key = "\"token\":\"";
  size_t at = r.body.find(key);
  if (r.status != 200 || at == std::string::npos) {
    if (failure != nullptr) *failure = r.Describe();
    return "";
  }
  at += key.size();
  return r.body.substr(at, r.body.find('"', at) - at);
}

HttpResult HttpTestClient::Request(const std::string& method, const std::string& target,
                                   const std::string& body, const Headers& given_headers,
                                   milliseconds timeout) {
  const Headers headers = WithDefaultHeaders(given_headers);
  std::string req =
      method + " " + target + " HTTP/1.1\r\nHost: " + host_ + ":" + std::to_string(port_) + "\r\n";
  bool has_type = false;
  for (const auto& [k, v] : headers) {
    if (Lower(k) == "content-type") has_type = true;
    req += k + ": " + v + "\r\n";
  }
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    if (!has_type && !body.empty()) req += "Content-Type: application/json\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n";
  req += body;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = conn_.connected();
    if (!reused && !Reconnect()) {
      HttpResult r;
      r.error = "cannot connect to port " + std::to_string(port_);
      return r;
    }
    if (!conn_.Send(req)) {
      Close();
      if (reused) continue;  // the server had closed the idle connection
      HttpResult r;
      r.error = "send failed";
      return r;
    }
    HttpResult r = ReadHttpResponse(conn_, buf_, timeout, false, method == "HEAD");
    if (r.status == 0 && r.closed && reused && attempt == 0) {
      Close();  // closed while idle, before our request: once more on a fresh connection
      continue;
    }
    if (r.closed || r.status == 0) Close();
    return r;
  }
  HttpResult r;
  r.error = "the connection kept closing";
  return r;
}

bool HttpTestClient::SendRaw(std::string_view bytes) {
  if (!conn_.connected() && !Reconnect()) return false;
  return conn_.Send(bytes);
}

HttpResult HttpTestClient::ReadResponse(milliseconds timeout) {
  HttpResult r = ReadHttpResponse(conn_, buf_, timeout);
  if (r.closed || r.status == 0) {
    // Report whether the server closed the connection after answering.
    if (r.status != 0 && !conn_.eof()) r.closed = conn_.WaitClosed(milliseconds(2000));
    if (conn_.eof()) r.closed = true;
    Close();
  }
  return r;
}

// ---------------------------------------------------------------- SseReader

SseReader::SseReader(uint16_t port, const std::string& target, const std::string& last_event_id,
                     const Headers& headers) {
  if (!conn_.Connect(port)) {
    head_.error = "cannot connect";
    ended_ = true;
    return;
  }
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                    "\r\nAccept: text/event-stream\r\n";
  if (!last_event_id.empty()) req += "Last-Event-ID: " + last_event_id + "\r\n";
  for (const auto& [k, v] : WithDefaultHeaders(headers)) req += k + ": " + v + "\r\n";
  req += "\r\n";
  const auto deadline = Steady::now() + std::chrono::seconds(30);
  if (!conn_.Send(req) || !ReadHead(conn_, buf_, deadline, head_)) {
    ended_ = true;
    return;
  }
  if (head_.status != 200) {
    ReadBody(conn_, buf_, deadline, head_, false);
    ended_ = true;
    conn_.Close();
  }
}

std::optional<SseEvent> SseReader::ParseOne() {
  // Events end with a blank line; lines end with \n, \r\n or \r (the server sends \n).
  SseEvent ev;
  bool has_data = false, has_any = false;
  std::vector<std::string> data;
  size_t pos = start_;
  while (true) {
    size_t eol = buf_.find_first_of("\r\n", pos);
    if (eol == std::string::npos) return std::nullopt;  // incomplete: keep buf_ as is
    size_t next = eol + 1;
    if (buf_[eol] == '\r') {
      if (eol + 1 >= buf_.size()) return std::nullopt;  // cannot tell \r from \r\n yet
      if (buf_[eol + 1] == '\n') next = eol + 2;
    }
    std::string line = buf_.substr(pos, eol - pos);
    pos = next;
    if (line.empty()) {
      if (!has_any) {
        start_ = pos;  // a blank line after comments or retry: nothing to dispatch
        continue;
      }
      start_ = pos;
      Compact();
      if (has_data) {
        for (size_t i = 0; i < data.size(); ++i) ev.data += (i ? "\n" : "") + data[i];
      }
      return ev;
    }
    if (line.front() == ':') {
      ++comments_;
      if (!has_any) start_ = pos;  // consumed for good, so it is counted once
      continue;
    }
    size_t colon = line.find(':');
    std::string field = line.substr(0, colon);
    std::string value;
    if (colon != std::string::npos) {
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.erase(0, 1);
    }
    if (field == "data") {
      data.push_back(value);
      has_data = has_any = true;
    } else if (field == "event") {
      ev.event = value;
      has_any = true;
    } else if (field == "id") {
      ev.id = value;
      has_any = true;
    } else if (field == "retry") {
      retry_ms_ = std::atoi(value.c_str());
    }
  }
}

std::optional<SseEvent> SseReader::Next(milliseconds timeout) {
  const auto deadline = Steady::now() + timeout;
  while (true) {
    if (auto ev = ParseOne()) return ev;
    if (ended_) return std::nullopt;
    if (conn_.ReadSome(buf_, Remaining(deadline)) == 0) {
      if (conn_.eof()) {
        ended_ = true;
        conn_.Close();
        continue;  // one more parse of what is left
      }
      return std::nullopt;  // timeout
    }
  }
}

// ---------------------------------------------------------------- WsClient

WsClient::WsClient(uint16_t port, const std::string& target) {
  if (!conn_.Connect(port)) {
    head_.error = "cannot connect";
    closed_ = true;
    return;
  }
  uint8_t nonce[16];
  for (uint8_t& b : nonce) b = static_cast<uint8_t>(Rng()());
  const std::string key = Base64(nonce, sizeof nonce);
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                    "\r\nSec-WebSocket-Version: 13\r\n";
  for (const auto& [k, v] : WithDefaultHeaders({})) req += k + ": " + v + "\r\n";
  req += "\r\n";
  const auto deadline = Steady::now() + std::chrono::seconds(30);
  if (!conn_.Send(req) || !ReadHead(conn_, buf_, deadline, head_)) {
    closed_ = true;
    return;
  }
  if (head_.status != 101) {
    ReadBody(conn_, buf_, deadline, head_, false);
    closed_ = true;
    conn_.Close();
    return;
  }
  auto digest = Sha1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  const std::string* accept = head_.Header("sec-websocket-accept");
  accept_ok_ = accept != nullptr && *accept == Base64(digest.data(), digest.size());
}

bool WsClient::SendFrame(uint8_t opcode, std::string_view payload) {
  std::string f;
  f.push_back(static_cast<char>(0x80 | opcode));
  const size_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(0x80 | n));
  } else if (n < 65536) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xFF));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((n >> (i * 8)) & 0xFF));
  }
  uint8_t mask[4];
  for (uint8_t& b : mask) b = static_cast<uint8_t>(Rng()());
  f.append(reinterpret_cast<char*>(mask), 4);
  for (size_t i = 0; i < n; ++i) f.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
  return conn_.Send(f);
}

std::optional<std::string> WsClient::Next(milliseconds timeout) {
  const auto deadline = Steady::now() + timeout;
  while (!closed_) {
    // One complete frame in buf_ (from start_)?
    const size_t avail = buf_.size() - start_;
    auto at = [&](size_t i) { return static_cast<uint8_t>(buf_[start_ + i]); };
    if (avail >= 2) {
      const uint8_t b0 = at(0), b1 = at(1);
      const bool fin = (b0 & 0x80) != 0;
      const uint8_t op = b0 & 0x0F;
      const bool masked = (b1 & 0x80) != 0;
      uint64_t len = b1 & 0x7F;
      size_t hdr = 2;
      bool complete = true;
      if (len == 126) {
        if (avail < 4) {
          complete = false;
        } else {
          len = (static_cast<uint64_t>(at(2)) << 8) | at(3);
          hdr = 4;
        }
      } else if (len == 127) {
        if (avail < 10) {
          complete = false;
        } else {
          len = 0;
          for (size_t i = 0; i < 8; ++i) len = (len << 8) | at(2 + i);
          hdr = 10;
        }
      }
      if (complete && masked) hdr += 4;
      if (complete && avail >= hdr + len) {
        std::string payload = buf_.substr(start_ + hdr, len);
        if (masked) {  // servers must not mask; unmask anyway
          const char* m = buf_.data() + start_ + hdr - 4;
          for (size_t i = 0; i < payload.size(); ++i) payload[i] ^= m[i % 4];
        }
        start_ += hdr + len;
        Compact();
        if (op == 0x8) {
          close_code_ = payload.size() >= 2 ? (static_cast<uint8_t>(payload[0]) << 8) |
                                                  static_cast<uint8_t>(payload[1])
                                            : 1005;
          if (!close_sent_) {
            std::string code = payload.substr(0, 2);
            SendFrame(0x8, code);
            close_sent_ = true;
          }
          closed_ = true;
          conn_.Close();
          return std::nullopt;
        }
        if (op == 0x9) {
          SendFrame(0xA, payload);
          continue;
        }
        if (op == 0xA) continue;
        partial_ += payload;  // 0x1, 0x2, or 0x0 (continuation)
        if (fin) {
          std::string msg = std::move(partial_);
          partial_.clear();
          return msg;
        }
        continue;
      }
    }
    if (conn_.ReadSome(buf_, Remaining(deadline)) == 0) {
      if (conn_.eof()) {
        closed_ = true;  // closed without a close frame
        conn_.Close();
      }
      return std::nullopt;
    }
  }
  return std::nullopt;
}

void WsClient::Close() {
  if (closed_ || !conn_.connected()) return;
  std::string code = {static_cast<char>(0x03), static_cast<char>(0xE8)};  // 1000
  SendFrame(0x8, code);
  close_sent_ = true;
  const auto deadline = Steady::now() + std::chrono::seconds(2);
  while (!closed_ && Steady::now() < deadline) Next(Remaining(deadline));
  closed_ = true;
  conn_.Close();
}

// ---------------------------------------------------------------- ServerProcess

std::string AutomanBinary() { return BinaryDir() + "/automan"; }

ServerProcess::ServerProcess(const std::string& data_dir,
                             const std::vector<std::string>& extra_args,
                             const std::string& log_file, milliseconds start_timeout) {
  std::vector<std::string> args = {AutomanBinary(), "server", "--listen",
                                   "127.0.0.1:0",   "--data", data_dir};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::string cwd = std::filesystem::path(log_file).parent_path().string();
  if (cwd.empty()) cwd = ".";
  // The bootstrap admin's password, so the test can log in (inherited by the child).
  ::setenv("AUTOMAN_ADMIN_PASSWORD", kTestAdminPassword, 1);
  child_ = std::make_unique<ChildProcess>(args, log_file, cwd);
  if (!child_->ok()) return;
  const std::string kPrefix = "listening on http://127.0.0.1:";
  WaitFor(
      [&] {
        const std::string log = child_->Log();
        size_t at = 0;
        while ((at = log.find(kPrefix, at)) != std::string::npos) {
          if (at == 0 || log[at - 1] == '\n') {
            size_t end = log.find('\n', at);
            if (end != std::string::npos) {
              port_ = static_cast<uint16_t>(
                  std::atoi(log.substr(at + kPrefix.size(), end - at - kPrefix.size()).c_str()));
              return true;
            }
          }
          at += kPrefix.size();
        }
        if (auto code = child_->WaitExit(milliseconds(0))) {
          exit_code_ = code;
          return true;
        }
        return false;
      },
      start_timeout, milliseconds(10));
  if (port_ != 0) {
    token_ = LoginToken(port_, "admin", kTestAdminPassword);
    DefaultTestHeaders() = {{"Authorization", "Bearer " + token_}};
  }
}

ServerProcess::~ServerProcess() {
  if (child_ && child_->ok() && !exit_code_) Stop();
}

bool ServerProcess::Alive() {
  if (exit_code_) return false;
  if (auto code = child_->WaitExit(milliseconds(0))) {
    exit_code_ = code;
    return false;
  }
  return true;
}

void ServerProcess::Terminate() {
  if (Alive()) child_->Signal(SIGTERM);
}

std::optional<int> ServerProcess::ExitCode(milliseconds timeout) {
  if (!exit_code_) exit_code_ = child_->WaitExit(timeout);
  return exit_code_;
}

std::optional<int> ServerProcess::Stop(milliseconds timeout) {
  if (!child_->ok()) return std::nullopt;
  const bool was_running = Alive();
  if (was_running) child_->Signal(SIGTERM);
  std::optional<int> code = ExitCode(timeout);
  auto tail = [this] {
    std::string log = Log();
    return log.size() > 4000 ? "..." + log.substr(log.size() - 4000) : log;
  };
  EXPECT_TRUE(code.has_value()) << "the server did not exit within " << timeout.count()
                                << " ms of SIGTERM; log:\n"
                                << tail();
  if (code) {
    EXPECT_EQ(*code, 0) << "the server " << (was_running ? "exited" : "had already exited")
                        << " with " << *code << "; log:\n"
                        << tail();
  } else {
    child_->Signal(SIGKILL);
    exit_code_ = child_->WaitExit(std::chrono::seconds(10));
  }
  return code;
}

}  // namespace automan::testing
