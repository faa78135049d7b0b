// The client commands: `automan run`, `runs`, `logs`, `retry`, `runbooks`, and `cancel`,
// `dlq` and `schedules` when they are given a server. They talk only to the HTTP API of
// `automan server` (client/api_client.h); nothing here opens the store.
//
// Output conventions (as `automan exec`): log lines are "[step] text", stdout lines on
// stdout, stderr and system lines on stderr (system lines prefixed "automan: "); messages
// about the command itself go to stderr; `--json` prints the API's JSON on stdout. Exit
// codes: 0 done, 1 failed (server unreachable, API error), 2 invalid input (the server's
// invalid_argument or not_found), and `--follow` exits with the code of the run's final
// status (ExitCodeFor), or 130 when Ctrl-C stopped following.
#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <optional>
#include <set>

#include "cli/api_calls.h"
#include "cli/cli_support.h"
#include "cli/commands.h"
#include "client/api_client.h"
#include "common/clock.h"
#include "common/duration.h"
#include "core/run.h"
#include "runbook/runbook.h"

namespace automan::cli {

namespace {

using client::ApiClient;
using client::UrlEscape;

// --- Plumbing ---------------------------------------------------------------------------

std::string RunPath(const std::string& id) { return "/api/v1/runs/" + UrlEscape(id); }

// "RUNBOOK/ID" as the path of the schedule.
Result<std::string> SchedulePath(const std::string& id) {
  const size_t slash = id.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == id.size()) {
    return Error(ErrorCode::kInvalidArgument,
                 "schedule id \"{}\": write it RUNBOOK/ID (automan schedules list shows them)", id);
  }
  return "/api/v1/schedules/" + UrlEscape(id.substr(0, slash)) + "/" +
         UrlEscape(id.substr(slash + 1));
}

// "2026-12-03T07:28:51Z" from an RFC 3339 text with fractions.
std::string ShortTime(std::string_view rfc3339) {
  if (auto t = ParseRfc3339(rfc3339)) {
    std::string s = FormatRfc3339(std::chrono::time_point_cast<std::chrono::seconds>(*t));
    if (size_t dot = s.find('.'); dot != std::string::npos) s = s.substr(0, dot) + "Z";
    return s;
  }
  return std::string(rfc3339);
}

std::string Millis(int64_t ms) {
  if (ms < 60000) return fmt::format("{:.2f}s", ms / 1000.0);
  return FormatDuration(std::chrono::milliseconds(ms / 1000 * 1000));
}

// A run's duration for tables: finished "1.23s", running "12s+", not started "-".
std::string RunDuration(const json::object& run) {
  auto started = ParseRfc3339(Str(run, "started_at"));
  if (!started) return "-";
  auto finished = ParseRfc3339(Str(run, "finished_at"));
  const Timestamp end = finished ? *finished : SystemClock().Now();
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(end - *started).count();
  return finished ? Millis(ms) : Millis(ms) + "+";
}

// --- Runs and their logs ----------------------------------------------------------------

struct LineFilter {
  std::string step, stream;
  bool Keep(const json::object& line) const {
    return (step.empty() || Str(line, "step") == step) &&
           (stream.empty() || Str(line, "stream") == stream);
  }
};

// Prints log lines as `automan exec` does: "[step] text", stdout lines on stdout, stderr
// and system lines on stderr (or everything on stderr, when stdout carries JSON).
class LinePrinter {
 public:
  LinePrinter(bool json, bool all_to_stderr) : json_(json), all_to_stderr_(all_to_stderr) {
    (void)std::setvbuf(stdout, nullptr, _IOLBF, 0);
  }
  void Print(const json::object& l) {
    if (json_) {
      fmt::print("{}\n", json::serialize(l));
      return;
    }
    const std::string stream = Str(l, "stream");
    FILE* out = stream == "stdout" && !all_to_stderr_ ? stdout : stderr;
    fmt::print(out, "[{}] {}{}\n", Str(l, "step"), stream == "system" ? "automan: " : "",
               Str(l, "text"));
  }

 private:
  bool json_;
  bool all_to_stderr_;
};

void PrintSummary(const json::object& run) {
  std::string took;
  if (const json::value* d = run.if_contains("duration_ms"); d && !d->is_null()) {
    took = " in " + Millis(Int(run, "duration_ms"));
  }
  fmt::print(stderr, "run {} {}{} (runbook {}, attempt {}/{})\n", Str(run, "id"),
             Str(run, "status"), took, Str(run, "runbook"), Int(run, "attempt"),
             Int(run, "max_attempts"));
  for (const json::value& sv : Arr(run.if_contains("steps"))) {
    const json::object& s = Obj(sv);
    std::string detail;
    if (!Str(s, "exit_code").empty()) detail = "exit " + Str(s, "exit_code");
    if (!Str(s, "signal").empty()) detail = "signal " + Str(s, "signal");
    if (!Str(s, "error").empty() && Str(s, "status") != "SUCCESS") detail = Str(s, "error");
    fmt::print(stderr, "  {:<20} {:<9} {}\n", Str(s, "id"), Str(s, "status"), detail);
  }
  if (!Str(run, "error").empty() && Str(run, "status") != "SUCCESS") {
    fmt::print(stderr, "error: {}\n", Str(run, "error"));
  }
}

void SayHowToCancel(const ApiClient& c, const std::string& id) {
  const std::string server = c.server() == client::kDefaultServer ? "" : " --server " + c.server();
  fmt::print(stderr,
             "\nautoman: stopped following run {}; it goes on on the server. Cancel it with: "
             "automan cancel {}{}\n",
             id, id, server);
}

// Follows the run's stream from `last_id` until the run ends. Sets `final_status` from the
// "end" event ("" when the run was deleted meanwhile).
Status FollowStream(ApiClient& c, const std::string& id, std::string last_id,
                    const LineFilter& filter, LinePrinter& printer, std::string& final_status) {
  int attempt = 0;
  bool ended = false;
  Status s = c.Stream(RunPath(id) + "/stream", std::move(last_id), [&](const client::SseEvent& e) {
    json::error_code ec;
    json::value v = json::parse(e.data, ec);
    if (ec) return true;  // not ours to judge; the server sends JSON
    const json::object& o = Obj(v);
    if (e.event == "log") {
      const int a = static_cast<int>(Int(o, "attempt", 1));
      if (attempt != 0 && a > attempt) fmt::print(stderr, "automan: attempt {}\n", a);
      attempt = std::max(attempt, a);
      if (filter.Keep(o)) printer.Print(o);
    } else if (e.event == "run") {
      if (attempt == 0) attempt = static_cast<int>(std::max<int64_t>(1, Int(o, "attempt", 1)));
    } else if (e.event == "end") {
      ended = true;
      final_status = Str(o, "status");
    }
    return true;
  });
  if (!s.ok()) return s;
  if (!ended) return Status(ErrorCode::kInternal, "the stream stopped before the run ended");
  if (final_status.empty()) {
    return Error(ErrorCode::kAborted, "run {} was deleted while it was followed", id);
  }
  return Status::Ok();
}

// `--follow`: the run's lines live, then its summary; the exit code of its final status.
int FollowRun(ApiClient& c, const std::string& id, bool json) {
  g_interrupted.store(false);
  StopFollowingOnCtrlC ctrl_c;
  LinePrinter printer(false, json);
  std::string final_status;
  Status s = FollowStream(c, id, "", LineFilter{}, printer, final_status);
  if (!s.ok()) {
    if (s.code() == ErrorCode::kCancelled && g_interrupted.load()) {
      SayHowToCancel(c, id);
      return kExitInterrupted;
    }
    return Fail(s);
  }
  auto run = Call(c, "GET", RunPath(id));
  if (!run.ok()) return Fail(run.status());
  PrintSummary(Obj(*run));
  if (json) fmt::print("{}\n", json::serialize(*run));
  auto status = ParseRunStatus(Str(Obj(*run), "status"));
  if (!status) status = ParseRunStatus(final_status);
  return status ? ExitCodeFor(*status) : kExitFailed;
}

void PrintPlanSteps(const json::array& steps) {
  int i = 1;
  for (const json::value& sv : steps) {
    const json::object& s = Obj(sv);
    std::string extra;
    if (const int64_t t = Int(s, "timeout_ms", -1); t >= 0) {
      extra += ", timeout " + FormatDuration(std::chrono::milliseconds(t));
    }
    if (const int64_t r = Int(s, "retries", -1); r >= 0) extra += fmt::format(", {} retries", r);
    if (Bool(s, "continue_on_error")) extra += ", continue_on_error";
    std::vector<std::string> outs;
    for (const json::value& x : Arr(s.if_contains("outputs"))) {
      if (x.is_string()) outs.emplace_back(x.as_string());
    }
    if (!outs.empty()) extra += fmt::format(", outputs: {}", fmt::join(outs, " "));
    const bool shell = Str(s, "kind") == "shell";
    fmt::print("  {}. {} ({}{})\n", i++, Str(s, "id"), shell ? "shell" : "argv", extra);
    if (shell) {
      const std::string shell_text = Str(s, "shell");
      std::string_view text = shell_text;
      while (!text.empty()) {
        size_t nl = text.find('\n');
        fmt::print("     | {}\n", text.substr(0, nl));
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
      }
    } else {
      std::vector<std::string> argv;
      for (const json::value& x : Arr(s.if_contains("argv"))) {
        if (x.is_string()) argv.emplace_back(x.as_string());
      }
      fmt::print("     $ {}\n", fmt::join(argv, " "));
    }
  }
}

// The dry-run plan in the form of `automan exec --dry-run`.
void PrintPlan(const json::object& plan) {
  fmt::print("dry run of {} ({}) on {}: nothing is executed or recorded\n", Str(plan, "runbook"),
             Str(plan, "version"), "the server");
  fmt::print("params:\n");
  const json::object& params = Sub(plan, "params");
  if (params.empty()) fmt::print("  (none)\n");
  for (const auto& kv : params) {
    fmt::print(
        "  {} = {}  -> $AUTOMAN_PARAM_{}\n", std::string(kv.key()),
        kv.value().is_string() ? std::string(kv.value().as_string()) : json::serialize(kv.value()),
        EnvName(kv.key()));
  }
  fmt::print("steps:\n");
  PrintPlanSteps(Arr(plan.if_contains("steps")));
  if (!Arr(plan.if_contains("rollback")).empty()) {
    fmt::print("rollback:\n");
    PrintPlanSteps(Arr(plan.if_contains("rollback")));
  }
  if (const int64_t t = Int(plan, "timeout_ms", -1); t >= 0) {
    fmt::print("run timeout: {}\n", FormatDuration(std::chrono::milliseconds(t)));
  }
}

void PrintRunLine(const json::object& r) {
  const std::string when =
      !Str(r, "finished_at").empty() ? Str(r, "finished_at") : Str(r, "created_at");
  fmt::print("{}  {:<10} {:<24} attempt {}/{}  {}\n", Str(r, "id"), Str(r, "status"),
             Str(r, "runbook"), Int(r, "attempt"), Int(r, "max_attempts"), ShortTime(when));
}

// --- Schedules ----------------------------------------------------------------------------

std::string SpecSummary(const json::object& def) {
  std::string what = !Str(def, "cron").empty()    ? "cron \"" + Str(def, "cron") + "\""
                     : !Str(def, "every").empty() ? "every " + Str(def, "every")
                                                  : "at " + Str(def, "at");
  if (!Str(def, "lead").empty()) what += ", lead " + Str(def, "lead");
  return what;
}

const json::object& Definition(const json::object& sched) { return Sub(sched, "definition"); }

std::string Tz(const json::object& def) { return Str(def, "tz").empty() ? "UTC" : Str(def, "tz"); }

void PrintFire(const json::object& f) {
  std::string detail = !Str(f, "run_id").empty() ? "run " + Str(f, "run_id") : Str(f, "reason");
  const std::string status = Str(f, "status");
  if (status == "fired" || status == "late") {
    const int64_t ms = Int(f, "delay_ms");
    detail +=
        ", " +
        (ms < 10000 ? fmt::format("{} ms", ms) : FormatDuration(std::chrono::milliseconds(ms))) +
        " after due";
  }
  fmt::print("{}  {:<7}  {}\n", ShortTime(Str(f, "nominal_at")), status, detail);
}

Result<json::object> LastFire(ApiClient& c, const std::string& path) {
  AUTOMAN_ASSIGN_OR_RETURN(json::value v, Call(c, "GET", path + "/ledger?limit=1"));
  const json::array& items = Arr(Obj(v).if_contains("items"));
  if (items.empty()) return json::object();
  return Obj(items.front());
}

int SchedulesAddApi(ApiClient& c, const SchedulesOptions& o) {
  if (o.args.size() != 1) {
    fmt::print(stderr, "error: schedules add takes one runbook id\n");
    return kExitInvalidInput;
  }
  const std::string& rb = o.args[0];
  if (rb.ends_with(".yaml") || rb.ends_with(".yml") || rb.find('/') != std::string::npos) {
    fmt::print(stderr,
               "error: through the server, schedules add takes the id of a runbook the server "
               "knows (automan runbooks lists them), not a file\n");
    return kExitInvalidInput;
  }
  auto given = SplitParamFlags(o.params);
  if (!given.ok()) return Fail(given.status());
  json::object body;
  body["runbook"] = rb;
  body["id"] = o.id;
  auto set = [&](const char* key, const std::string& v) {
    if (!v.empty()) body[key] = v;
  };
  set("cron", o.cron);
  set("every", o.every);
  set("at", o.at);
  set("tz", o.tz);
  set("lead", o.lead);
  set("misfire", o.misfire);
  set("max_lateness", o.max_lateness);
  set("overlap", o.overlap);
  set("jitter", o.jitter);
  if (!o.gap.empty() || !o.repeat.empty()) {
    json::object dst;
    if (!o.gap.empty()) dst["gap"] = o.gap;
    if (!o.repeat.empty()) dst["repeat"] = o.repeat;
    body["dst"] = std::move(dst);
  }
  json::object params;
  for (const auto& [k, v] : *given) params[k] = v;
  if (!params.empty()) body["params"] = std::move(params);
  body["paused"] = o.paused;
  json::value bv = body;
  auto created = Call(c, "POST", "/api/v1/schedules", &bv);
  bool replaced = false;
  if (!created.ok() && created.status().code() == ErrorCode::kAlreadyExists && o.replace) {
    auto path = SchedulePath(rb + "/" + o.id);
    if (!path.ok()) return Fail(path.status());
    created = Call(c, "PUT", *path, &bv);
    replaced = true;
  }
  if (!created.ok()) {
    if (created.status().code() == ErrorCode::kAlreadyExists) {
      fmt::print(stderr, "error: {} (pass --replace to change it, or pick another --id)\n",
                 created.status().message());
      return kExitInvalidInput;
    }
    return Fail(created.status());
  }
  const json::object& s = Obj(*created);
  const json::object& def = Definition(s);
  const std::string next = Bool(s, "paused")                 ? "(paused)"
                           : !Str(s, "next_fire_at").empty() ? ShortTime(Str(s, "next_fire_at"))
                                                             : "none";
  fmt::print("{} {}: {}, tz {}; next fire {}\n", Str(s, "id"), replaced ? "saved" : "added",
             SpecSummary(def), Tz(def), next);
  return kExitSuccess;
}

int SchedulesListApi(ApiClient& c, const SchedulesOptions& o) {
  auto list = Call(c, "GET", "/api/v1/schedules");
  if (!list.ok()) return Fail(list.status());
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"ID", "WHEN", "TZ", "STATE", "NEXT FIRE", "LAST"});
  for (const json::value& v : Arr(Obj(*list).if_contains("items"))) {
    json::object s = Obj(v);
    auto path = SchedulePath(Str(s, "id"));
    if (!path.ok()) return Fail(path.status());
    auto last = LastFire(c, *path);
    if (!last.ok()) return Fail(last.status());
    if (o.json) {
      if (!last->empty()) s["last"] = *last;
      fmt::print("{}\n", json::serialize(s));
      continue;
    }
    const json::object& def = Definition(s);
    rows.push_back(
        {Str(s, "id"), SpecSummary(def), Tz(def), Str(s, "state"),
         Str(s, "next_fire_at").empty() ? "-" : ShortTime(Str(s, "next_fire_at")),
         last->empty() ? "-" : Str(*last, "status") + " " + ShortTime(Str(*last, "nominal_at"))});
  }
  if (!o.json) PrintTable(rows);
  return kExitSuccess;
}

int SchedulesShowApi(ApiClient& c, const SchedulesOptions& o) {
  if (o.args.empty()) {
    fmt::print(stderr, "error: schedules show takes schedule ids (RUNBOOK/ID)\n");
    return kExitInvalidInput;
  }
  for (const std::string& id : o.args) {
    auto path = SchedulePath(id);
    if (!path.ok()) return Fail(path.status());
    auto got = Call(c, "GET", *path);
    if (!got.ok()) return Fail(got.status());
    auto fires = Call(c, "GET", *path + "/ledger?limit=10");
    if (!fires.ok()) return Fail(fires.status());
    json::object s = Obj(*got);
    const json::object def = Definition(s);
    const bool firing = Str(s, "state") == "active";
    json::value next;
    if (firing) {
      auto n = Call(c, "GET", *path + "/next?count=5");
      if (!n.ok()) return Fail(n.status());
      next = *n;
    }
    if (o.json) {
      s["recent_fires"] = Arr(Obj(*fires).if_contains("items"));
      s["next_fires"] = Arr(Obj(next).if_contains("items"));
      fmt::print("{}\n", json::serialize(s));
      continue;
    }
    fmt::print("id:          {}\nrunbook:     {}\nsource:      {}\n", Str(s, "id"),
               Str(s, "runbook"), Str(s, "source"));
    fmt::print("when:        {}\ntz:          {}\nstate:       {}\n", SpecSummary(def), Tz(def),
               Str(s, "state"));
    if (!Str(def, "cron").empty()) {
      auto explain = Call(c, "GET",
                          "/api/v1/cron/preview?count=1&expr=" + UrlEscape(Str(def, "cron")) +
                              "&tz=" + UrlEscape(Tz(def)));
      if (explain.ok()) fmt::print("explained:   {}\n", Str(Obj(*explain), "explain"));
    }
    if (const json::object& dst = Sub(def, "dst"); !dst.empty()) {
      fmt::print("dst:         gap {}, repeat {}\n", Str(dst, "gap"), Str(dst, "repeat"));
    }
    fmt::print("misfire:     {}{}\noverlap:     {}\n", Str(def, "misfire"),
               Str(def, "max_lateness").empty() ? "" : ", max_lateness " + Str(def, "max_lateness"),
               Str(def, "overlap"));
    if (!Str(def, "jitter").empty()) fmt::print("jitter:      {}\n", Str(def, "jitter"));
    if (const json::object& p = Sub(def, "params"); !p.empty()) {
      std::string text;
      for (const auto& kv : p) {
        text += (text.empty() ? "" : ", ") + std::string(kv.key()) + "=" +
                (kv.value().is_string() ? std::string(kv.value().as_string())
                                        : json::serialize(kv.value()));
      }
      fmt::print("params:      {}\n", text);
    }
    fmt::print("version:     {} (generation {})\n", Str(def, "runbook_version"),
               Int(s, "generation"));
    if (firing) {
      fmt::print("next fires:\n");
      for (const json::value& nv : Arr(Obj(next).if_contains("items"))) {
        const json::object& n = Obj(nv);
        if (!Bool(n, "fires")) continue;
        fmt::print("  {}\n", Str(n, "local"));
      }
    }
    const json::array& recent = Arr(Obj(*fires).if_contains("items"));
    if (!recent.empty()) {
      fmt::print("recent fires (newest first):\n");
      for (const json::value& f : recent) {
        fmt::print("  ");
        PrintFire(Obj(f));
      }
    }
  }
  return kExitSuccess;
}

int SchedulesEachApi(ApiClient& c, const SchedulesOptions& o) {
  if (o.args.empty()) {
    fmt::print(stderr, "error: schedules {} takes schedule ids (RUNBOOK/ID)\n", o.action);
    return kExitInvalidInput;
  }
  for (const std::string& id : o.args) {
    auto path = SchedulePath(id);
    if (!path.ok()) return Fail(path.status());
    if (o.action == "delete") {
      auto r = Call(c, "DELETE", *path);
      if (!r.ok()) {
        fmt::print(stderr, "error: {}\n", r.status().message());
        return r.status().code() == ErrorCode::kFailedPrecondition ? kExitInvalidInput
                                                                   : ExitFor(r.status());
      }
      fmt::print("{} deleted (its ledger is kept)\n", id);
      continue;
    }
    const bool pause = o.action == "pause";
    auto r = Call(c, "POST", *path + (pause ? "/pause" : "/resume"));
    if (!r.ok()) return Fail(r.status());
    fmt::print("{} {}\n", id, pause ? "paused" : "resumed");
  }
  return kExitSuccess;
}

int SchedulesLedgerApi(ApiClient& c, const SchedulesOptions& o) {
  if (o.args.size() != 1) {
    fmt::print(stderr, "error: schedules ledger takes one schedule id (RUNBOOK/ID)\n");
    return kExitInvalidInput;
  }
  auto path = SchedulePath(o.args[0]);
  if (!path.ok()) return Fail(path.status());
  std::string target = *path + fmt::format("/ledger?limit={}", o.limit);
  if (!o.before.empty()) {
    if (!ParseRfc3339(o.before)) {
      fmt::print(stderr, "error: --before {}: not an RFC 3339 instant\n", o.before);
      return kExitInvalidInput;
    }
    target += "&cursor=" + UrlEscape(o.before);
  }
  auto page = Call(c, "GET", target);
  if (!page.ok()) return Fail(page.status());
  const json::array& items = Arr(Obj(*page).if_contains("items"));
  for (const json::value& f : items) {
    if (o.json) {
      fmt::print("{}\n", json::serialize(f));
    } else {
      PrintFire(Obj(f));
    }
  }
  if (items.empty() && !o.json) fmt::print(stderr, "no ledger rows\n");
  return kExitSuccess;
}

// --- Runbooks -----------------------------------------------------------------------------

std::string ParamLine(const std::string& name, const json::object& schema, bool required) {
  std::string type = Str(schema, "type");
  if (schema.contains("enum")) {
    std::vector<std::string> values;
    for (const json::value& v : Arr(schema.if_contains("enum"))) {
      values.push_back(v.is_string() ? std::string(v.as_string()) : json::serialize(v));
    }
    type = "enum(" + fmt::format("{}", fmt::join(values, "|")) + ")";
  }
  if (Str(schema, "format") == "password") type = "secret";
  std::string line = fmt::format("  {:<20} {:<12}", name, type);
  if (required) line += " required";
  if (schema.contains("default")) line += " default " + Str(schema, "default");
  if (!Str(schema, "description").empty()) line += "  " + Str(schema, "description");
  return line;
}

int RunbooksShow(ApiClient& c, const RunbooksOptions& o) {
  auto got = Call(c, "GET", "/api/v1/runbooks/" + UrlEscape(o.id));
  if (!got.ok()) return Fail(got.status());
  if (o.json) {
    fmt::print("{}\n", json::serialize(*got));
    return kExitSuccess;
  }
  const json::object& rb = Obj(*got);
  fmt::print("id:          {}\n", Str(rb, "id"));
  if (!Str(rb, "name").empty()) fmt::print("name:        {}\n", Str(rb, "name"));
  if (std::string d = Str(rb, "description"); !d.empty()) {
    while (!d.empty() && std::isspace(static_cast<unsigned char>(d.back()))) d.pop_back();
    fmt::print("description: {}\n", d);
  }
  if (!Str(rb, "category").empty()) fmt::print("category:    {}\n", Str(rb, "category"));
  std::vector<std::string> tags;
  for (const json::value& t : Arr(rb.if_contains("tags"))) {
    if (t.is_string()) tags.emplace_back(t.as_string());
  }
  if (!tags.empty()) fmt::print("tags:        {}\n", fmt::join(tags, ", "));
  fmt::print("version:     {}\n", Str(rb, "version"));
  fmt::print("origin:      {}{}\n", Str(rb, "origin"),
             Str(rb, "source").empty() ? "" : " (" + Str(rb, "source") + ")");
  if (Bool(rb, "dangerous")) fmt::print("dangerous:   yes\n");
  if (const int64_t t = Int(rb, "timeout_ms", -1); t >= 0) {
    fmt::print("timeout:     {}\n", FormatDuration(std::chrono::milliseconds(t)));
  }
  if (const int64_t t = Int(rb, "cooldown_ms", -1); t >= 0) {
    fmt::print("cooldown:    {}\n", FormatDuration(std::chrono::milliseconds(t)));
  }
  const json::object& schema = Sub(rb, "params_schema");
  const json::object& props = Sub(schema, "properties");
  std::vector<std::string> required;
  for (const json::value& r : Arr(schema.if_contains("required"))) {
    if (r.is_string()) required.emplace_back(r.as_string());
  }
  fmt::print("params:{}\n", props.empty() ? "      (none)" : "");
  for (const auto& kv : props) {
    const std::string name(kv.key());
    fmt::print("{}\n",
               ParamLine(name, Obj(kv.value()),
                         std::find(required.begin(), required.end(), name) != required.end()));
  }
  fmt::print("steps:\n");
  PrintPlanSteps(Arr(rb.if_contains("steps")));
  if (!Arr(rb.if_contains("rollback")).empty()) {
    fmt::print("rollback:\n");
    PrintPlanSteps(Arr(rb.if_contains("rollback")));
  }
  std::vector<std::string> schedules;
  for (const json::value& s : Arr(rb.if_contains("schedules"))) {
    if (s.is_string()) schedules.emplace_back(s.as_string());
  }
  if (!schedules.empty()) fmt::print("schedules:   {}\n", fmt::join(schedules, ", "));
  return kExitSuccess;
}

}  // namespace

// --- The commands -------------------------------------------------------------------------

int RunRun(const RunOptions& o) {
  auto c = Connect(o.server);
  if (!c.ok()) return Fail(c.status());
  // Which parameters are secrets, so that none is taken from the command line: only asked
  // when --param flags are given (a runbook the server does not know fails below).
  std::set<std::string> secret_names;
  if (!o.params.empty()) {
    if (auto rb = Call(**c, "GET", "/api/v1/runbooks/" + UrlEscape(o.runbook)); rb.ok()) {
      const json::object& props = Sub(Sub(Obj(*rb), "params_schema"), "properties");
      for (const auto& kv : props) {
        if (Str(Obj(kv.value()), "format") == "password") secret_names.emplace(kv.key());
      }
    }
  }
  auto given = GatherParams(o.params, o.secret_params, [&](std::string_view name) {
    return secret_names.count(std::string(name)) != 0;
  });
  if (!given.ok()) return Fail(given.status());
  json::object params;
  for (const auto& [k, v] : *given) params[k] = v;
  const bool looks_like_file = o.runbook.ends_with(".yaml") || o.runbook.ends_with(".yml") ||
                               o.runbook.find('/') != std::string::npos;
  auto fail = [&](const Status& s) {
    if (s.code() == ErrorCode::kNotFound && looks_like_file) {
      fmt::print(stderr,
                 "error: {}\nautoman run takes the id of a runbook the server knows (automan "
                 "runbooks lists them); to run a file on this host: automan exec {}\n",
                 s.message(), o.runbook);
      return kExitInvalidInput;
    }
    return Fail(s);
  };
  if (o.dry_run) {
    json::value body = json::object{{"params", params}};
    auto plan = Call(**c, "POST", "/api/v1/runbooks/" + UrlEscape(o.runbook) + "/dry-run", &body);
    if (!plan.ok()) return fail(plan.status());
    if (o.json) {
      fmt::print("{}\n", json::serialize(*plan));
    } else {
      PrintPlan(Obj(*plan));
    }
    return kExitSuccess;
  }
  json::object req;
  req["runbook"] = o.runbook;
  req["params"] = std::move(params);
  if (o.priority != 0) req["priority"] = o.priority;
  if (!o.idempotency_key.empty()) req["idempotency_key"] = o.idempotency_key;
  const std::string body = json::serialize(req);
  auto reply = (*c)->Request("POST", "/api/v1/runs", body);
  if (!reply.ok()) return fail(reply.status());
  json::error_code ec;
  json::value run = json::parse(reply->body, ec);
  if (ec || Str(Obj(run), "id").empty()) {
    return Fail(
        Status(ErrorCode::kInternal, "the server answered POST /api/v1/runs without a run"));
  }
  const std::string id = Str(Obj(run), "id");
  if (reply->status == 200) {
    fmt::print(stderr,
               "automan: idempotency key \"{}\" was already used by run {} ({}); nothing new "
               "was queued\n",
               o.idempotency_key, id, Str(Obj(run), "status"));
  }
  if (!o.follow) {
    fmt::print("{}\n", o.json ? json::serialize(run) : id);
    return kExitSuccess;
  }
  fmt::print(stderr, "automan: run {} of {} queued on {}; following it (Ctrl-C stops following)\n",
             id, o.runbook, (*c)->server());
  return FollowRun(**c, id, o.json);
}

int RunRetry(const RetryOptions& o) {
  auto c = Connect(o.server);
  if (!c.ok()) return Fail(c.status());
  auto run = Call(**c, "POST", RunPath(o.run_id) + "/retry");
  if (!run.ok()) return Fail(run.status());
  const std::string id = Str(Obj(*run), "id");
  if (!o.follow) {
    fmt::print("{}\n", o.json ? json::serialize(*run) : id);
    return kExitSuccess;
  }
  fmt::print(stderr, "automan: run {} retried as {}; following it (Ctrl-C stops following)\n",
             o.run_id, id);
  return FollowRun(**c, id, o.json);
}

int RunRuns(const RunsOptions& o) {
  auto c = Connect(o.server);
  if (!c.ok()) return Fail(c.status());
  std::string target = fmt::format("/api/v1/runs?limit={}", o.limit);
  if (!o.status.empty()) target += "&status=" + UrlEscape(o.status);
  if (!o.runbook.empty()) target += "&runbook=" + UrlEscape(o.runbook);
  auto page = Call(**c, "GET", target);
  if (!page.ok()) return Fail(page.status());
  const json::array& items = Arr(Obj(*page).if_contains("items"));
  if (o.json) {
    for (const json::value& r : items) fmt::print("{}\n", json::serialize(r));
    return kExitSuccess;
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"ID", "RUNBOOK", "STATUS", "TRIGGER", "CREATED", "DURATION"});
  for (const json::value& rv : items) {
    const json::object& r = Obj(rv);
    rows.push_back({Str(r, "id"), Str(r, "runbook"), Str(r, "status"), Str(r, "trigger"),
                    ShortTime(Str(r, "created_at")), RunDuration(r)});
  }
  PrintTable(rows);
  if (items.empty()) fmt::print(stderr, "no runs\n");
  return kExitSuccess;
}

int RunLogs(const LogsOptions& o) {
  auto c = Connect(o.server);
  if (!c.ok()) return Fail(c.status());
  LineFilter filter{o.step, o.stream};
  LinePrinter printer(o.json, false);
  constexpr int kPage = 1000;
  std::string cursor;
  std::optional<std::string> next;
  while (true) {
    std::string target = RunPath(o.run_id) + fmt::format("/logs?limit={}", kPage);
    if (!cursor.empty()) target += "&cursor=" + UrlEscape(cursor);
    if (!o.step.empty()) target += "&step=" + UrlEscape(o.step);
    if (!o.stream.empty()) target += "&stream=" + UrlEscape(o.stream);
    auto page = Call(**c, "GET", target);
    if (!page.ok()) return Fail(page.status());
    const json::object& p = Obj(*page);
    const json::array& items = Arr(p.if_contains("items"));
    for (const json::value& l : items) printer.Print(Obj(l));
    next = Str(p, "next_cursor").empty() ? std::nullopt
                                         : std::optional<std::string>(Str(p, "next_cursor"));
    if (!next) break;  // the run has ended and every line was read
    cursor = *next;
    if (static_cast<int>(items.size()) < kPage) break;  // caught up with a live run
  }
  if (!o.follow || !next) return kExitSuccess;
  g_interrupted.store(false);
  StopFollowingOnCtrlC ctrl_c;
  std::string final_status;
  // The stream's event ids and the logs cursor are both ATTEMPT.SEQ.
  Status s = FollowStream(**c, o.run_id, cursor, filter, printer, final_status);
  if (!s.ok()) {
    if (s.code() == ErrorCode::kCancelled && g_interrupted.load()) {
      fmt::print(stderr, "\n");
      return kExitInterrupted;
    }
    return Fail(s);
  }
  if (!o.json) fmt::print(stderr, "automan: run {} ended {}\n", o.run_id, final_status);
  return kExitSuccess;
}

int RunRunbooks(const RunbooksOptions& o) {
  if (o.action == "show" && o.id.empty()) {
    fmt::print(stderr, "error: runbooks show takes a runbook id\n");
    return kExitInvalidInput;
  }
  if (o.action != "show" && !o.id.empty()) {
    fmt::print(stderr, "error: unexpected \"{}\"; to see one runbook: automan runbooks show {}\n",
               o.id, o.id);
    return kExitInvalidInput;
  }
  auto c = Connect(o.server);
  if (!c.ok()) return Fail(c.status());
  if (o.action == "show") return RunbooksShow(**c, o);
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"ID", "CATEGORY", "ORIGIN", "PARAMS", "STEPS", "DESCRIPTION"});
  std::string cursor;
  while (true) {
    std::string target = "/api/v1/runbooks?limit=1000";
    if (!o.category.empty()) target += "&category=" + UrlEscape(o.category);
    if (!o.tag.empty()) target += "&tag=" + UrlEscape(o.tag);
    if (!o.query.empty()) target += "&q=" + UrlEscape(o.query);
    if (!cursor.empty()) target += "&cursor=" + UrlEscape(cursor);
    auto page = Call(**c, "GET", target);
    if (!page.ok()) return Fail(page.status());
    for (const json::value& v : Arr(Obj(*page).if_contains("items"))) {
      const json::object& rb = Obj(v);
      if (o.json) {
        fmt::print("{}\n", json::serialize(rb));
        continue;
      }
      std::string about = !Str(rb, "name").empty() ? Str(rb, "name") : Str(rb, "description");
      if (size_t nl = about.find('\n'); nl != std::string::npos) about = about.substr(0, nl);
      if (Bool(rb, "dangerous")) about += " [dangerous]";
      rows.push_back({Str(rb, "id"), Str(rb, "category").empty() ? "-" : Str(rb, "category"),
                      Str(rb, "origin"), Str(rb, "params_count"), Str(rb, "steps_count"), about});
    }
    cursor = Str(Obj(*page), "next_cursor");
    if (cursor.empty()) break;
  }
  if (!o.json) {
    PrintTable(rows);
    if (rows.size() == 1) fmt::print(stderr, "no runbooks match\n");
  }
  return kExitSuccess;
}

int RunCancelViaApi(const CancelOptions& o) {
  auto c = Connect(o.server);
  if (!c.ok()) return Fail(c.status());
  int code = kExitSuccess;
  for (const std::string& id : o.run_ids) {
    auto r = Call(**c, "POST", RunPath(id) + "/cancel");
    if (!r.ok()) {
      fmt::print(stderr, "error: {}: {}\n", id, r.status().message());
      code = ExitFor(r.status());
      if (r.status().code() == ErrorCode::kUnavailable) return code;
      continue;
    }
    const json::object& run = Obj(*r);
    const std::string status = Str(run, "status");
    if (status == "CANCELLED") {
      fmt::print("{} cancelled\n", id);
    } else if (Bool(run, "cancel_requested")) {
      fmt::print("{} is {}: cancellation requested; its worker stops it\n", id, status);
    } else {
      fmt::print("{} already finished ({})\n", id, status);
    }
  }
  return code;
}

int RunDlqViaApi(const DlqOptions& o) {
  auto c = Connect(o.server);
  if (!c.ok()) return Fail(c.status());
  ApiClient& api = **c;
  if (o.action == "list") {
    auto page = Call(api, "GET", fmt::format("/api/v1/dlq?limit={}", o.limit));
    if (!page.ok()) return Fail(page.status());
    const json::array& items = Arr(Obj(*page).if_contains("items"));
    if (o.json) {
      fmt::print("{}\n", json::serialize(items));
      return kExitSuccess;
    }
    if (items.empty()) fmt::print("the dead-letter queue is empty\n");
    for (const json::value& r : items) {
      PrintRunLine(Obj(r));
      fmt::print("    {}\n", Str(Obj(r), "error"));
    }
    return kExitSuccess;
  }
  if (o.action == "show") {
    if (o.run_ids.empty()) {
      fmt::print(stderr, "error: dlq show needs a run id\n");
      return kExitInvalidInput;
    }
    int code = kExitSuccess;
    for (const std::string& id : o.run_ids) {
      auto run = Call(api, "GET", RunPath(id));
      if (!run.ok()) {
        fmt::print(stderr, "error: {}: {}\n", id, run.status().message());
        code = ExitFor(run.status());
        continue;
      }
      if (o.json) {
        fmt::print("{}\n", json::serialize(*run));
        continue;
      }
      const json::object& r = Obj(*run);
      PrintRunLine(r);
      fmt::print("  reason: {}\n", Str(r, "error"));
      for (const json::value& sv : Arr(r.if_contains("steps"))) {
        const json::object& s = Obj(sv);
        fmt::print("  step {:<20} {:<9} {}\n", Str(s, "id"), Str(s, "status"),
                   !Str(s, "error").empty()       ? Str(s, "error")
                   : !Str(s, "exit_code").empty() ? "exit " + Str(s, "exit_code")
                                                  : "");
      }
    }
    return code;
  }
  if (o.action == "purge") {
    auto r = Call(api, "DELETE", "/api/v1/dlq");
    if (!r.ok()) return Fail(r.status());
    fmt::print("purged {} dead runs\n", Int(Obj(*r), "purged"));
    return kExitSuccess;
  }
  // replay
  std::vector<std::string> ids = o.run_ids;
  if (o.all) {
    std::string cursor;
    while (true) {
      std::string target = "/api/v1/dlq?limit=1000";
      if (!cursor.empty()) target += "&cursor=" + UrlEscape(cursor);
      auto page = Call(api, "GET", target);
      if (!page.ok()) return Fail(page.status());
      for (const json::value& r : Arr(Obj(*page).if_contains("items"))) {
        ids.push_back(Str(Obj(r), "id"));
      }
      cursor = Str(Obj(*page), "next_cursor");
      if (cursor.empty()) break;
    }
  }
  if (ids.empty()) {
    fmt::print(
        stderr, "{}\n",
        o.all ? "the dead-letter queue is empty" : "error: dlq replay needs run ids or --all");
    return o.all ? kExitSuccess : kExitInvalidInput;
  }
  int code = kExitSuccess;
  for (const std::string& id : ids) {
    auto r = Call(api, "POST", "/api/v1/dlq/" + UrlEscape(id) + "/replay");
    if (!r.ok()) {
      fmt::print(stderr, "error: {}: {}\n", id, r.status().message());
      code = ExitFor(r.status());
      if (r.status().code() == ErrorCode::kUnavailable) return code;
      continue;
    }
    fmt::print("{} replayed as {}\n", id, Str(Obj(*r), "id"));
  }
  return code;
}

int RunSchedulesViaApi(const SchedulesOptions& o) {
  if (o.action == "sync") {
    fmt::print(stderr,
               "error: schedules sync works on the local store; the server keeps the schedules "
               "of its --runbooks directory in sync by itself\n");
    return kExitInvalidInput;
  }
  auto c = Connect(o.server);
  if (!c.ok()) return Fail(c.status());
  if (o.action == "add") return SchedulesAddApi(**c, o);
  if (o.action == "list") return SchedulesListApi(**c, o);
  if (o.action == "show") return SchedulesShowApi(**c, o);
  if (o.action == "ledger") return SchedulesLedgerApi(**c, o);
  return SchedulesEachApi(**c, o);  // pause, resume, delete
}

}  // namespace automan::cli
