// The REST API v1: builds the route table (router.h) over the server's components.
//
// Every route is one row in BuildRouter (api.cpp and the *_routes.cpp files), with its
// permission, summary, query parameters and schemas; openapi.cpp renders the same rows as
// the OpenAPI 3.1 document. The request path: transport (server/http_server.cpp) →
// Router::Dispatch → a handler here → queue / store / catalog → wire JSON (wire.h).
#pragma once

#include <functional>
#include <string>

#include "api/catalog.h"
#include "api/hub.h"
#include "api/router.h"
#include "common/clock.h"
#include "queue/queue.h"
#include "store/store.h"

namespace automan::metrics {
class Registry;
}

namespace automan::api {

struct ApiOptions {
  std::string version;  // of this binary
  std::string commit;
  int max_streams = 10000;
  int max_streams_per_subject = 100;
  bool metrics_public = false;
  // Runs re-check the store this often while streaming (changes made by other processes).
  std::chrono::milliseconds stream_poll{1000};
};

struct ApiContext {
  Store& store;
  Queue& queue;
  RunbookCatalog& catalog;
  EventHub& hub;
  const Clock& clock;
  metrics::Registry* metrics = nullptr;  // /metrics; may be null in tests
  ApiOptions options;
  // Readiness beyond "the store answers": false while starting or shutting down.
  std::function<bool()> accepting = [] { return true; };
};

Router BuildRouter(ApiContext& ctx);

// The OpenAPI 3.1 document of these routes (JSON text).
std::string OpenApiDocument(const Router& router, const std::string& version);

}  // namespace automan::api
