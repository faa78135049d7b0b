// The HTTP exchange as the API layer sees it: plain structs, no Boost. The transport
// (server/http_server.cpp, the only translation unit with Beast and Asio) parses requests
// into HttpRequest, calls the API's handler (on its I/O thread when the route is
// HandlerCost::kQuick, else on a worker thread), and writes HttpResponse,
// or keeps the connection open for an EventStream (Server-Sent Events, or WebSocket when
// the request asked to upgrade).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace automan::auth {
struct Subject;
}

namespace automan::api {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as received: path and query
  std::string path;    // percent-decoded path, without the query (for messages and logs)
  // The path's segments, each percent-decoded on its own, so "%2F" stays inside a segment
  // and never reaches another route. Empty: the router splits `path`.
  std::vector<std::string> segments;
  std::multimap<std::string, std::string> query;  // percent-decoded
  std::map<std::string, std::string> headers;     // names lower-cased; repeated: last wins
  std::string body;
  std::string remote;      // peer address, "127.0.0.1"
  bool websocket = false;  // the request asks to upgrade to WebSocket

  // Filled by the router.
  std::map<std::string, std::string> path_params;
  // Who is calling (null on public routes), and the client's address: `remote`, or the
  // X-Forwarded-For address when `remote` is a trusted proxy.
  std::shared_ptr<const auth::Subject> subject;
  std::string client;
  int route = -1;  // the route Router::Resolve matched, for the Dispatch that follows

  const std::string* Header(std::string_view name) const;
  // The last value of a query parameter, if given.
  const std::string* Query(std::string_view name) const;
};

// One event of a live stream. `id` (may be empty: not a resumption point) is what a client
// sends back in Last-Event-ID; `data` is one JSON document.
struct StreamEvent {
  std::string id;
  std::string event;
  std::string data;
};

// A live stream of events, produced by a route handler and pumped by the transport.
// Thread-safety: Poll and Close are called by one thread at a time (the transport
// serialises them); the waker may be called from any thread at any time, also after
// Close (it must then do nothing harmful: the transport holds it weakly).
class EventStream {
 public:
  virtual ~EventStream() = default;
  // Called once, before the first Poll: the stream calls `wake` when Poll may have new
  // events (a log line arrived, a run changed). Spurious wake-ups are fine.
  virtual void SetWaker(std::function<void()> wake) = 0;
  // Appends the events ready now (a bounded batch) to `out`; never blocks for new ones.
  // Returns false when the stream has ended: `out` is the last batch.
  virtual bool Poll(std::vector<StreamEvent>& out) = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Set for streams: the transport answers 200 text/event-stream (or accepts the
  // WebSocket upgrade) and pumps it until it ends or the client leaves.
  std::shared_ptr<EventStream> stream;
  // The route's name for metrics and the access log ("GET /api/v1/runs/{id}").
  std::string route;
};

using HttpHandler = std::function<HttpResponse(HttpRequest&)>;

// How long a handler may take, which decides where the transport calls it.
enum class HandlerCost {
  kMayWait,  // a durable write, a scan, a stream's set-up: on the handler pool
  kQuick,    // memory or one indexed local read: on the connection's own I/O thread,
             // saving the two thread hand-offs (most of a small request's cost)
};

// Percent-decodes `s` ('+' stays '+' in paths; in queries pass plus_is_space). False on a
// malformed escape.
bool PercentDecode(std::string_view s, std::string& out, bool plus_is_space);
// Splits a request target into a decoded path and query; false on malformed escapes.
bool SplitTarget(std::string_view target, std::string& path,
                 std::multimap<std::string, std::string>& query);
// The same, also filling `segments` (the raw path split on '/', then each decoded).
bool SplitTarget(std::string_view target, std::string& path, std::vector<std::string>& segments,
                 std::multimap<std::string, std::string>& query);

}  // namespace automan::api
