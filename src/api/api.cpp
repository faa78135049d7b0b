#include "api/api.h"

#include "api/access.h"
#include "api/routes.h"

namespace automan::api {

Router BuildRouter(ApiContext& ctx) {
  Router r;
  auto openapi = std::make_shared<std::string>();
  AddSystemRoutes(r, ctx, openapi);
  AddRunbookRoutes(r, ctx);
  AddRunRoutes(r, ctx);
  AddScheduleRoutes(r, ctx);
  AddQueueRoutes(r, ctx);
  AddStreamRoutes(r, ctx);
  AddAuthRoutes(r, ctx);
  AddAuditRoutes(r, ctx);
  AddSecretRoutes(r, ctx);
  r.SetGuard([&ctx](HttpRequest& req, const Route& route) { return Authorize(ctx, req, route); });
  *openapi = OpenApiDocument(r, ctx.options.version);
  return r;
}

}  // namespace automan::api
