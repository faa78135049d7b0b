// Internal to the api module: the route groups BuildRouter assembles, one file each.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "api/api.h"

namespace automan::api {

// `openapi`: the document of the finished table (filled after every group is added).
void AddSystemRoutes(Router& r, ApiContext& ctx, std::shared_ptr<const std::string> openapi);
void AddRunbookRoutes(Router& r, ApiContext& ctx);   // runbook_routes.cpp
void AddRunRoutes(Router& r, ApiContext& ctx);       // run_routes.cpp
void AddScheduleRoutes(Router& r, ApiContext& ctx);  // schedule_routes.cpp
void AddQueueRoutes(Router& r, ApiContext& ctx);     // queue_routes.cpp (queue, dlq, analytics)
void AddStreamRoutes(Router& r, ApiContext& ctx);    // streams.cpp
void AddAuthRoutes(Router& r, ApiContext& ctx);      // auth_routes.cpp (auth, users, roles)
void AddAuditRoutes(Router& r, ApiContext& ctx);     // audit_routes.cpp
void AddSecretRoutes(Router& r, ApiContext& ctx);    // secret_routes.cpp

// A run and its steps, read in one transaction (run_routes.cpp). kNotFound: no such run.
Status ReadRunWithSteps(Store& store, const std::string& id, Run& run, std::vector<StepRun>& steps);

}  // namespace automan::api
