// Authentication and authorization of API requests (docs/security.md).
//
// Router::Dispatch calls Authorize before every handler: it resolves the client address,
// refuses credentials in query strings, authenticates (bearer token, session cookie, or a
// stream ticket on stream routes), applies the browser protections to cookie sessions
// (Origin check, CSRF token), the per-subject rate limit and the route's permission. The
// handlers then apply the per-object rules below (runbook keys `allowed_roles`,
// `requires`, `dangerous`); an object a subject may not see answers 404, exactly like one
// that does not exist.
#pragma once

#include <optional>
#include <string>

#include "api/api.h"
#include "api/router.h"
#include "runbook/runbook.h"

namespace automan::api {

inline constexpr std::string_view kSessionCookie = "automan_session";

// nullopt: go ahead (req.subject and req.client are set); else the answer (401, 403, 429).
std::optional<HttpResponse> Authorize(ApiContext& ctx, HttpRequest& req, const Route& route);

// May `s` see this runbook and its runs? (`allowed_roles`; admins see everything.)
bool CanSee(const auth::Subject& s, const Runbook& rb);
// May `s` see the runs of runbook `runbook_id`? False for a runbook the catalog no longer
// has, unless `s` is an admin (its restrictions are unknown).
bool CanSeeRunsOf(ApiContext& ctx, const auth::Subject& s, std::string_view runbook_id);
// May `s` start a run of `rb`? kNotFound when it may not see it; kPermissionDenied when it
// lacks `requires`, runs.execute_dangerous, or the category of a limited role.
Status CheckCanExecute(const auth::Subject& s, const Runbook& rb);

// 429 with Retry-After; the first hit of `subject` in each minute is audited (one entry
// per subject and minute, with the count of the previous minute's further hits).
HttpResponse RateLimited(ApiContext& ctx, const HttpRequest& req, const std::string& subject,
                         Duration wait);

// Who did it, for the audit trail.
auth::Actor ActorOf(const HttpRequest& req);
// Appends an audit entry in `tx` (no-op without an audit hook).
Status AuditIn(ApiContext& ctx, StoreTx& tx, const HttpRequest& req, std::string action,
               std::string target, std::string outcome = "ok", std::string details_json = "{}");

}  // namespace automan::api
