// ApiClient: a blocking HTTP/1.1 client of the REST API of `automan server`, used by the
// CLI's client commands (`automan run`, `runs`, `logs`, ... in cli/client_commands.cpp).
//
// This header is plain C++; api_client.cpp is the only translation unit of the client with
// Boost.Asio, Beast and OpenSSL (they cost seconds per file to compile).
//
// What it does
// - One keep-alive connection, opened on first use and reused; a request that finds the
//   reused connection closed by the server (idle timeout) before any byte of the answer
//   arrived is sent again once on a new connection.
// - https:// URLs use TLS 1.2+ with the server's certificate verified against the system
//   store, or against `ca_file` only when one is given; `insecure` skips verification.
// - Every call has a deadline: connect_timeout for connecting (and the TLS handshake),
//   request_timeout for sending a request and reading its whole answer; a stream read that
//   sees nothing (no event, no heartbeat) for stream_idle_timeout counts as a dropped
//   connection.
// - `Authorization: Bearer <token>` on every request when a token is configured.
//
// Errors (the Status of a failed call)
// - the server cannot be reached (refused, no such host, unreachable): kUnavailable,
//   "cannot reach the server at URL (is automan server running? set --server or
//   AUTOMAN_SERVER)";
// - TLS failures: kUnavailable naming the reason (certificate verify failed: ...) and the
//   flags that help (--ca-file, AUTOMAN_CA_FILE, --insecure);
// - a deadline passed: kDeadlineExceeded; `interrupt` turned true: kCancelled;
// - an API error answer (4xx, 5xx): the code of its {"error":{"code"}} ("invalid_argument"
//   -> kInvalidArgument, ...) or, without one, the code that fits the HTTP status, and the
//   server's error.message as the message.
//
// Thread-safety: an ApiClient is used by one thread at a time. `interrupt` may be set from
// any thread or a signal handler (it is only read).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace automan::client {

inline constexpr const char* kDefaultServer = "http://127.0.0.1:8080";

struct ClientOptions {
  // http://HOST[:PORT][/PREFIX] or https://...; a path prefix is put before every target
  // (a server behind a reverse proxy at /automan).
  std::string server = kDefaultServer;
  std::string token;    // sent as a bearer token when not empty
  std::string ca_file;  // PEM file of the CA(s) that may sign the server's certificate
  bool insecure = false;
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds request_timeout{60000};
  // Longer than the server's heartbeat interval (15 s).
  std::chrono::milliseconds stream_idle_timeout{45000};
  // A stream that cannot be reconnected for this long fails with kUnavailable.
  std::chrono::milliseconds stream_give_up{60000};
  // The SSE reconnection delay until the server sends its `retry:` hint.
  std::chrono::milliseconds stream_retry{2000};
  // Polled every 100 ms while a call waits; when true the call returns kCancelled.
  const std::atomic<bool>* interrupt = nullptr;
};

struct HttpReply {
  int status = 0;
  std::string content_type;
  std::string body;
};

// One Server-Sent Event.
struct SseEvent {
  std::string id;     // the event's own id; empty when it had none
  std::string event;  // "message" when the event named none
  std::string data;   // its data lines joined with "\n"
};

class ApiClient {
 public:
  // kInvalidArgument for a URL that is not http(s)://HOST[:PORT][/PREFIX], or a CA file
  // that cannot be read.
  static Result<std::unique_ptr<ApiClient>> Create(ClientOptions options);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // Sends `method target` ("/api/v1/runs?limit=5": path and query, already escaped) with
  // `body` (sent with `content_type` when not empty) and returns a 2xx answer; any other
  // answer or failure is the Status described at the top of this file.
  Result<HttpReply> Request(std::string_view method, std::string_view target,
                            std::string_view body = {},
                            std::string_view content_type = "application/json");

  // Reads the Server-Sent Events of GET `target`, calling `on_event` for each (comments and
  // the `retry:` field are handled here). Starts after `last_event_id` when not empty.
  // When the connection drops, it waits the server's `retry:` delay and reconnects with
  // `Last-Event-ID: <id of the last event seen>`, for as long as stream_give_up allows.
  // Returns OK when `on_event` returns false or after an event named "end" was passed to
  // it; an error answer (a 4xx other than 408/429) ends it at once. Uses its own
  // connection, not the keep-alive one.
  Status Stream(std::string_view target, std::string last_event_id,
                const std::function<bool(const SseEvent&)>& on_event);

  // The server URL as given (for messages).
  const std::string& server() const;

 private:
  class Impl;
  explicit ApiClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// `text` percent-encoded for one path segment or query value (RFC 3986 unreserved
// characters are kept).
std::string UrlEscape(std::string_view text);

// The ErrorCode of an API error answer: from its wire code ("not_found"), else from the
// HTTP status (404 -> kNotFound, 400 -> kInvalidArgument, 401/403 -> kPermissionDenied, ...).
ErrorCode ErrorCodeFor(int http_status, std::string_view wire_code);

// --- Settings of the CLI ----------------------------------------------------------------

// The CLI's config file: `key: value` lines (`#` comments, optional quotes). Known keys:
// `server` and `token` (written by `automan login`).
struct CliConfig {
  std::string server;
  std::string token;
};

// $HOME/.config/automan/cli.yaml
std::string CliConfigPath();

// Reads the config file at `path`. A missing file is an empty config. kPermissionDenied when
// the file is open to its group or others (it holds a token: chmod 600), kInvalidArgument
// for a line that is not `key: value`.
Result<CliConfig> ReadCliConfig(const std::string& path);

// Writes the config file at `path` (0600, its directory created 0700), replacing it whole.
Status WriteCliConfig(const std::string& path, const CliConfig& config);

// The options of a client command from, in order: its flags (`server_flag`, `ca_file_flag`,
// `insecure`), the environment (AUTOMAN_SERVER, AUTOMAN_TOKEN, AUTOMAN_CA_FILE), the config
// file (server, token), the default server. The config file's token is used only when the
// file names no server or the same server as the one chosen, so it is never sent to another
// server. Problems that do not stop the command (a config file open to others, which is
// then not read) are appended to `warnings`.
Result<ClientOptions> ResolveClientOptions(const std::string& server_flag,
                                           const std::string& ca_file_flag, bool insecure,
                                           std::vector<std::string>& warnings);

}  // namespace automan::client
