// /api/v1/secrets: the secret store. Values go in, never out: the list shows names and
// metadata only (secrets/secret_store.h).
#include <fmt/format.h>

#include "api/access.h"
#include "api/routes.h"
#include "api/wire.h"

namespace automan::api {

namespace {

json::object SecretJson(const SecretRecord& r) {
  return json::object{{"name", r.name},
                      {"description", r.description},
                      {"created_at", TimeOrNull(r.created_at)},
                      {"updated_at", TimeOrNull(r.updated_at)},
                      {"updated_by", r.updated_by}};
}

HttpResponse ListSecrets(ApiContext& ctx, HttpRequest&) {
  auto list = ctx.security.secrets.List();
  if (!list.ok()) return ErrorResponse(list.status());
  json::array items;
  for (const SecretRecord& r : *list) items.push_back(SecretJson(r));
  return JsonResponse(200, ListJson(std::move(items), std::nullopt));
}

HttpResponse PutSecret(ApiContext& ctx, HttpRequest& req) {
  auto body = ParseBodyObject(req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  if (Status s = CheckFields(*body, {"value", "description"}); !s.ok()) return ErrorResponse(s);
  auto value = GetString(*body, "value");
  auto description = GetString(*body, "description");
  if (!value.ok()) return ErrorResponse(value.status());
  if (!description.ok()) return ErrorResponse(description.status());
  if (!*value) return ErrorResponse(400, "invalid_argument", "field \"value\" is required");
  const std::string& name = req.path_params["name"];
  auto stored = ctx.security.secrets.Put(name, **value, description->value_or(""), ActorOf(req));
  if (!stored.ok()) return ErrorResponse(stored.status());
  return JsonResponse(200, SecretJson(*stored));
}

HttpResponse DeleteSecret(ApiContext& ctx, HttpRequest& req) {
  Status s = ctx.security.secrets.Delete(req.path_params["name"], ActorOf(req));
  return s.ok() ? NoContent() : ErrorResponse(s);
}

}  // namespace

void AddSecretRoutes(Router& r, ApiContext& ctx) {
  r.Add({"GET",
         "/api/v1/secrets",
         "secrets.manage",
         "Secrets: names and metadata (values are never returned)",
         "secrets",
         {},
         "",
         "SecretList",
         200,
         false,
         [&ctx](HttpRequest& q) { return ListSecrets(ctx, q); }});
  r.Add({"PUT",
         "/api/v1/secrets/{name}",
         "secrets.manage",
         "Create or replace a secret (encrypted at rest)",
         "secrets",
         {},
         "SecretPut",
         "Secret",
         200,
         false,
         [&ctx](HttpRequest& q) { return PutSecret(ctx, q); }});
  r.Add({"DELETE",
         "/api/v1/secrets/{name}",
         "secrets.manage",
         "Delete a secret",
         "secrets",
         {},
         "",
         "",
         204,
         false,
         [&ctx](HttpRequest& q) { return DeleteSecret(ctx, q); }});
}

}  // namespace automan::api
