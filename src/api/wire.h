// Helpers every route handler uses to read and write JSON (Boost.JSON; include this only
// from handler translation units): the error shape, strict body parsing, and the wire form
// of runs and log lines.
//
// Errors are {"error": {"code", "message", "details"}} with the HTTP status that fits
// the Status code (ErrorStatus). Request bodies are parsed strictly: at most 32 levels
// deep, valid UTF-8, an object at the top, unknown fields refused by name.
#pragma once

#include <boost/json.hpp>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/http.h"
#include "common/clock.h"
#include "common/status.h"
#include "core/run.h"

namespace automan::api {

namespace json = boost::json;

// HTTP status and wire code for a Status ("invalid_argument" 400, "not_found" 404, ...).
int ErrorStatus(ErrorCode code);
std::string_view ErrorWireCode(ErrorCode code);

// `s` with every invalid UTF-8 sequence replaced by U+FFFD: Boost.JSON writes strings
// byte for byte, and text that came from a client or a step may be anything.
std::string ToValidUtf8(std::string_view s);

HttpResponse JsonResponse(int status, const json::value& body);
HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message,
                           json::value details = nullptr);
HttpResponse ErrorResponse(const Status& s, json::value details = nullptr);
HttpResponse NoContent();

// The body as a JSON object. kInvalidArgument with a message that says what is wrong
// (where the syntax error is, too deep, not an object, invalid UTF-8).
Result<json::object> ParseBodyObject(std::string_view body);
// kInvalidArgument naming the first field of `o` not in `allowed`.
Status CheckFields(const json::object& o, std::initializer_list<std::string_view> allowed,
                   std::string_view where = "body");

// Typed field readers: absent -> nullopt; present with the wrong type -> kInvalidArgument
// naming the field and the expected type.
Result<std::optional<std::string>> GetString(const json::object& o, std::string_view key);
Result<std::optional<int64_t>> GetInt(const json::object& o, std::string_view key);
Result<std::optional<bool>> GetBool(const json::object& o, std::string_view key);
Result<std::optional<Timestamp>> GetTime(const json::object& o, std::string_view key);

// A JSON parameter value (string, number, bool) as the text BindParams validates.
Result<std::string> ParamText(std::string_view name, const json::value& v);

// Query parameter readers, same conventions (kInvalidArgument naming the parameter).
Result<std::optional<int64_t>> QueryInt(const HttpRequest& r, std::string_view name, int64_t min,
                                        int64_t max);
Result<std::optional<Timestamp>> QueryTime(const HttpRequest& r, std::string_view name);

json::value TimeOrNull(const std::optional<Timestamp>& t);
// A run: {"id", "runbook", "runbook_version", "status", "params", "trigger", ...}; with
// `steps` the step runs of its last attempt are included as "steps". A secret param's
// value is never rendered: it appears as "***" (the store never keeps it anyway).
json::object RunJson(const Run& run, const std::vector<StepRun>* steps = nullptr);
json::object StepRunJson(const StepRun& s);
json::object LogLineJson(const LogLine& line);

// The list envelope: {"items": [...], "next_cursor": cursor or null}.
json::object ListJson(json::array items, const std::optional<std::string>& next_cursor);

// The smallest UUIDv7 text of millisecond `t`: every id made at or after `t` sorts at or
// after it, every id made before sorts before (ids are time-ordered; common/ids.h).
std::string IdLowerBound(Timestamp t);

}  // namespace automan::api
