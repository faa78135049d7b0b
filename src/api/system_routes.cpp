// /healthz, /readyz, /api/v1/version, /api/v1/openapi.json and /metrics.
#include "api/routes.h"
#include "api/wire.h"
#include "metrics/metrics.h"

namespace automan::api {

void AddSystemRoutes(Router& r, ApiContext& ctx, std::shared_ptr<const std::string> openapi) {
  r.Add({"GET",
         "/healthz",
         std::string(kPublic),
         "Liveness: the process answers",
         "system",
         {},
         "",
         "Health",
         200,
         false,
         [](HttpRequest&) {
           return JsonResponse(200, json::object{{"status", "ok"}});
         },
         HandlerCost::kQuick});
  r.Add({"GET",
         "/readyz",
         std::string(kPublic),
         "Readiness: the store answers and the server is not shutting down (503 otherwise)",
         "system",
         {},
         "",
         "Health",
         200,
         false,
         [&ctx](HttpRequest&) {
           if (!ctx.accepting()) {
             return ErrorResponse(503, "unavailable", "the server is starting or shutting down");
           }
           // One indexed row, not a count: readiness must stay cheap with millions of runs.
           Status s = ctx.store.Transact(Store::TxMode::kRead, [](StoreTx& tx) -> Status {
             RunFilter one;
             one.limit = 1;
             return tx.ListRuns(one).status();
           });
           if (!s.ok()) return ErrorResponse(503, "unavailable", "store: " + s.message());
           return JsonResponse(200, json::object{{"status", "ready"}});
         },
         HandlerCost::kQuick});
  r.Add({"GET",
         "/api/v1/version",
         std::string(kPublic),
         "Version of the server and its store",
         "system",
         {},
         "",
         "Version",
         200,
         false,
         [&ctx](HttpRequest&) {
           json::object o;
           o["version"] = ctx.options.version;
           o["commit"] = ctx.options.commit;
           o["api"] = "v1";
           o["store_schema"] = ctx.store.SchemaVersion();
           return JsonResponse(200, o);
         },
         HandlerCost::kQuick});
  r.Add({"GET",
         "/api/v1/openapi.json",
         std::string(kPublic),
         "This API as an OpenAPI 3.1 document",
         "system",
         {},
         "",
         "",
         200,
         false,
         [openapi](HttpRequest&) {
           HttpResponse resp;
           resp.body = *openapi;
           return resp;
         },
         HandlerCost::kQuick});
  r.Add({"GET",
         "/metrics",
         ctx.options.metrics_public ? std::string(kPublic) : std::string("metrics.read"),
         "Prometheus metrics (text exposition format)",
         "system",
         {},
         "",
         "",
         200,
         false,
         [&ctx](HttpRequest&) {
           HttpResponse resp;
           resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
           resp.body = ctx.metrics != nullptr ? ctx.metrics->Render() : std::string();
           return resp;
         }});
}

}  // namespace automan::api
