// Test-side HTTP tooling for end-to-end tests of `automan server`: a blocking HTTP/1.1
// client over a raw POSIX socket (so tests can also send bytes no real client would), a
// Server-Sent Events reader, a minimal WebSocket client, and ServerProcess, which starts
// a real `automan server` on a free port and stops it with SIGTERM.
//
// Everything here is deliberately small and independent of the server's code (no Boost,
// no Beast): a bug in the server's HTTP layer must not be hidden by the same bug in the
// client. Every read takes a timeout, so a server that hangs fails a test instead of
// hanging it. Not thread-safe: use one object per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/proc_util.h"

namespace automan::testing {

using Headers = std::vector<std::pair<std::string, std::string>>;

// One HTTP response. status 0: none arrived (the connection was closed or timed out);
// `error` then says which.
struct HttpResult {
  int status = 0;
  std::string reason;
  std::map<std::string, std::string> headers;  // names lower-cased; repeated: last wins
  std::string body;
  std::string error;
  bool closed = false;  // the server closed the connection after (or instead of) it

  const std::string* Header(std::string_view name) const;
  // "HTTP 404 {...}" trimmed, for test messages.
  std::string Describe() const;
};

// A blocking TCP connection with deadline-bounded reads. Closed on destruction.
class TcpConnection {
 public:
  TcpConnection() = default;
  ~TcpConnection();
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  // `rcvbuf` > 0 shrinks the receive buffer first (a slow client fills up sooner).
  bool Connect(uint16_t port, const std::string& host = "127.0.0.1", int rcvbuf = 0);
  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // Writes everything (false on EPIPE/ECONNRESET: the peer is gone). No SIGPIPE.
  bool Send(std::string_view bytes);
  // Appends what arrives within `timeout` (at least one byte) to `buf`. Returns the number
  // of bytes read; 0 when the peer closed (eof() then true) or on timeout (eof() false).
  size_t ReadSome(std::string& buf, std::chrono::milliseconds timeout);
  // Waits until the peer closes (EOF or reset), discarding data. True when it did.
  bool WaitClosed(std::chrono::milliseconds timeout);
  bool eof() const { return eof_; }
  void Close();

 private:
  int fd_ = -1;
  bool eof_ = false;
};

// Reads one HTTP/1.1 response from `conn` (bytes already received are in `buf`, consumed
// as parsed). Handles Content-Length, chunked, and read-until-close bodies; `head_only`
// stops after the header block (streams).
HttpResult ReadHttpResponse(TcpConnection& conn, std::string& buf,
                            std::chrono::milliseconds timeout, bool head_only = false,
                            bool response_to_head = false);

// Headers every request of HttpTestClient, SseReader and WsClient carries, unless the
// request sets the same header itself (to an empty value: then it is not sent at all).
// ServerProcess sets Authorization to a bearer token of the bootstrap admin of the server
// it started last, so tests talk to their server as admin unless they say otherwise.
Headers& DefaultTestHeaders();
// `headers` merged over DefaultTestHeaders(), empty values dropped.
Headers WithDefaultHeaders(const Headers& headers);

// The password ServerProcess gives the bootstrap admin (AUTOMAN_ADMIN_PASSWORD).
inline constexpr const char* kTestAdminPassword = "test-admin-password";

class HttpTestClient {
 public:
  explicit HttpTestClient(uint16_t port, std::string host = "127.0.0.1");

  // One request on the keep-alive connection (re-opened when the server closed it).
  // Sends Host and Content-Length (when a body is given or the method is POST/PUT/PATCH),
  // and Content-Type: application/json unless `headers` has one.
  HttpResult Request(const std::string& method, const std::string& target,
                     const std::string& body = "", const Headers& headers = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));
  HttpResult Get(const std::string& target, const Headers& headers = {}) {
    return Request("GET", target, "", headers);
  }
  HttpResult Post(const std::string& target, const std::string& body = "",
                  const Headers& headers = {}) {
    return Request("POST", target, body, headers);
  }
  HttpResult Put(const std::string& target, const std::string& body, const Headers& headers = {}) {
    return Request("PUT", target, body, headers);
  }
  HttpResult Delete(const std::string& target) { return Request("DELETE", target); }

  // For malformed requests: sends bytes as they are on the current connection (opening
  // one if needed), then ReadResponse reads whatever answer comes.
  bool SendRaw(std::string_view bytes);
  HttpResult ReadResponse(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Opens a fresh connection (closing the current one).
  bool Reconnect();
  void Close();
  TcpConnection& connection() { return conn_; }
  uint16_t port() const { return port_; }

 private:
  uint16_t port_;
  std::string host_;
  TcpConnection conn_;
  std::string buf_;
};

// Drops buf[0, start) once that is worth it (parsers advance `start` instead of erasing
// per message, which would be quadratic on a large stream).
inline void CompactBuffer(std::string& buf, size_t& start) {
  if (start == buf.size()) {
    buf.clear();
    start = 0;
  } else if (start > (1u << 16) && start > buf.size() / 2) {
    buf.erase(0, start);
    start = 0;
  }
}

// Server-Sent Events: GET `target` (with Last-Event-ID when given) and parse the stream.
struct SseEvent {
  std::string id;  // empty when the event carried none
  std::string event = "message";
  std::string data;
};

class SseReader {
 public:
  SseReader(uint16_t port, const std::string& target, const std::string& last_event_id = "",
            const Headers& headers = {});
  // The response head (status 200 and text/event-stream when the stream is open; the
  // error response, body included, otherwise).
  const HttpResult& head() const { return head_; }
  bool ok() const { return head_.status == 200; }
  // The next event; nullopt on timeout or when the stream ended (then ended() is true).
  std::optional<SseEvent> Next(std::chrono::milliseconds timeout);
  bool ended() const { return ended_; }
  int retry_ms() const { return retry_ms_; }
  // Heartbeat comment lines seen.
  int comments() const { return comments_; }
  void Close() { conn_.Close(); }
  TcpConnection& connection() { return conn_; }

 private:
  std::optional<SseEvent> ParseOne();
  void Compact() { CompactBuffer(buf_, start_); }
  TcpConnection conn_;
  std::string buf_;
  size_t start_ = 0;  // what is before it was parsed already
  HttpResult head_;
  bool ended_ = false;
  int retry_ms_ = -1;
  int comments_ = 0;
};

// A minimal WebSocket client (RFC 6455): the upgrade handshake (checking
// Sec-WebSocket-Accept), text messages from the server (unmasked, possibly fragmented),
// pings answered, and a masked close.
class WsClient {
 public:
  WsClient(uint16_t port, const std::string& target);
  // The handshake response: 101 when upgraded (and the accept key matched).
  const HttpResult& head() const { return head_; }
  bool ok() const { return head_.status == 101 && accept_ok_; }
  // The next text (or binary) message; nullopt on timeout or when the server closed
  // (closed() then true, close_code() its code).
  std::optional<std::string> Next(std::chrono::milliseconds timeout);
  bool closed() const { return closed_; }
  int close_code() const { return close_code_; }
  // Sends a masked close frame (code 1000) and waits briefly for the server's close.
  void Close();

 private:
  bool SendFrame(uint8_t opcode, std::string_view payload);
  void Compact() { CompactBuffer(buf_, start_); }
  TcpConnection conn_;
  std::string buf_;
  size_t start_ = 0;  // what is before it was parsed already
  HttpResult head_;
  bool accept_ok_ = false;
  bool closed_ = false;
  bool close_sent_ = false;
  int close_code_ = 0;
  std::string partial_;
};

// A real `automan server --listen 127.0.0.1:0 --data DATA [extra...]` started with
// ChildProcess (stdout and stderr in `log`), its port read from the
// "listening on http://127.0.0.1:PORT" line.
class ServerProcess {
 public:
  // Starts the server and waits up to `start_timeout` for its port. started() is false
  // when it exited first or never printed the line (see Log(), ExitCode()).
  ServerProcess(const std::string& data_dir, const std::vector<std::string>& extra_args,
                const std::string& log_file,
                std::chrono::milliseconds start_timeout = std::chrono::seconds(30));
  // Stops the server (Stop()) if it still runs.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool started() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  // A bearer token of the bootstrap admin (logged in once the server listened).
  const std::string& token() const { return token_; }
  std::string Log() const { return child_->Log(); }
  pid_t pid() const { return child_->pid(); }
  bool Alive();
  // SIGTERM, then waits up to `timeout`; EXPECTs (gtest) that it exits 0 in time (kills it
  // otherwise). Returns the exit code (nullopt: it did not exit in time). Idempotent.
  std::optional<int> Stop(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Sends SIGTERM without waiting.
  void Terminate();
  // The exit code once it exited (waiting up to `timeout`); no expectation.
  std::optional<int> ExitCode(std::chrono::milliseconds timeout);
  ChildProcess& child() { return *child_; }

 private:
  std::unique_ptr<ChildProcess> child_;
  uint16_t port_ = 0;
  std::string token_;
  std::optional<int> exit_code_;
};

// POST /api/v1/auth/login with {"token": true}: the bearer token, or "" (with the
// response in `failure`).
std::string LoginToken(uint16_t port, const std::string& username, const std::string& password,
                       std::string* failure = nullptr);

// The path of the automan binary of this build.
std::string AutomanBinary();

}  // namespace automan::testing
