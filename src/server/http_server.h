// HttpServer: the HTTP/1.1 transport of `automan server` — Boost.Asio + Beast with C++20
// coroutines, keep-alive, optional TLS, request size and time limits, Server-Sent Events and
// WebSocket for streams. This header is plain C++; http_server.cpp is the only translation
// unit that includes Asio and Beast (they cost seconds per file to compile).
//
// Threads: `io_threads` run the connections (each connection's coroutine on its own
// strand); handlers run on a separate pool of `handler_threads`, because they block on the
// store (a durable commit waits for an fsync), except those `cost` calls kQuick, which run
// on the I/O thread without two thread hand-offs. A stream's Poll runs on the pool unless
// `quick_stream_polls`.
//
// Limits and bad input: a header block over `max_header_bytes` answers 431, a body over
// `max_body_bytes` 413, anything Beast cannot parse (duplicate Content-Length, bad chunking,
// bad request line) 400, and the connection is closed; a request whose headers and body do
// not arrive within `request_timeout` is cut off (408 when possible), an idle keep-alive
// connection after `idle_timeout`. A stream client that does not take a write within
// `stream_write_timeout` is disconnected (the stream told it, with `retry:`, when to come
// back; it resumes with Last-Event-ID).
//
// Stop(): stops accepting, ends every stream and closes idle connections, lets requests
// being handled finish, and joins the threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "api/http.h"
#include "common/status.h"

namespace automan {

struct AccessRecord {
  std::string remote;
  std::string method;
  std::string path;
  std::string route;  // the route pattern, "unmatched", or "bad_request"
  int status = 0;
  size_t bytes = 0;  // response body bytes (streams: bytes sent)
  double seconds = 0;
  bool stream = false;
};

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8080;       // 0: any free port (see HttpServer::port())
  std::string tls_cert_file;  // both set: HTTPS only
  std::string tls_key_file;
  size_t max_body_bytes = 8 << 20;
  size_t max_header_bytes = 16 * 1024;
  size_t max_connections = 20000;
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds idle_timeout{60000};
  int io_threads = 1;
  int handler_threads = 8;
  // Where each request's handler runs (api::HandlerCost); null: all on the handler pool.
  // It may fill the request for the handler (the router remembers the route it matched).
  std::function<api::HandlerCost(api::HttpRequest&)> cost;
  // Streams' Poll reads memory and a local store: call it on the I/O thread too.
  bool quick_stream_polls = false;
  std::chrono::milliseconds stream_poll{1000};        // Poll at least this often
  std::chrono::milliseconds stream_heartbeat{15000};  // a comment line after this silence
  std::chrono::milliseconds stream_write_timeout{10000};
  int stream_retry_ms = 2000;  // the SSE `retry:` hint
  // Called once per answered request (and at the end of each stream), from any thread.
  std::function<void(const AccessRecord&)> on_request;
};

class HttpServer {
 public:
  // Binds, listens and starts the threads. kInvalidArgument for a bad address or TLS
  // files, kUnavailable when the port is taken.
  static Result<std::unique_ptr<HttpServer>> Start(HttpServerOptions options,
                                                   api::HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  bool tls() const;
  // Connections open now (streams included).
  size_t connections() const;
  void Stop();

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace automan
