// Runbook format v1: the in-memory model of a validated runbook, and the entry points that
// build it from YAML and bind parameters. docs/runbooks.md is the user-facing reference.
//
// Parsing is strict: unknown keys, wrong types, duplicate ids, names that collide as
// environment variables and bad defaults are errors, each reported with file:line:col and a
// message that says what to write instead. All errors of a file are collected, not just the
// first. yaml-cpp is confined to parse.cpp; nothing else includes it.
//
// Shell text is never templated: parameter values and step outputs reach commands only
// through the environment (AUTOMAN_PARAM_<NAME>, AUTOMAN_OUT_<STEP>_<KEY>).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "core/run.h"

namespace automan {

struct SourceLocation {
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based
};

// One problem in a runbook file. ToString() gives "file:line:col: message".
struct Diagnostic {
  std::string file;
  SourceLocation loc;
  std::string message;
  std::string ToString() const;
};

using Millis = std::chrono::milliseconds;

// `retries` has one shape wherever it appears.
struct RetryPolicy {
  enum class Backoff { kFixed, kExponential };
  int count = 0;  // extra attempts after the first; 0..100
  Backoff backoff = Backoff::kFixed;
  Millis delay{1000};
  Millis max_delay{300'000};
  std::vector<int> no_retry_exit_codes;
  bool operator==(const RetryPolicy&) const = default;
};

enum class ParamType { kString, kInt, kNumber, kBool, kEnum, kSecret };
std::string_view ToString(ParamType t);

struct ParamSpec {
  std::string name;  // ^[a-z][a-z0-9_]*$
  ParamType type = ParamType::kString;
  bool required = false;
  std::optional<std::string> default_value;  // canonical text, already validated
  std::string pattern;                       // RE2, full match; strings and secrets only
  std::vector<std::string> values;           // enum members
  std::string description;
  SourceLocation loc;
};

struct Step {
  std::string id;  // ^[a-z][a-z0-9_]*$
  std::string name;
  std::optional<std::string> shell;  // run by /bin/sh -e -c
  std::vector<std::string> argv;     // or an argv, execvp'd; exactly one of the two
  std::vector<std::pair<std::string, std::string>> env;  // in file order
  std::string cwd;
  std::optional<Millis> timeout;
  std::optional<RetryPolicy> retries;
  bool continue_on_error = false;
  std::vector<std::string> outputs;  // keys the step promises to write to $AUTOMAN_OUTPUT
  SourceLocation loc;
};

// `concurrency: {key, limit, rate}` or a list of them: ConcurrencyLimit (core/run.h),
// enforced by the queue.

// One entry of `schedules:` (shape of docs/schedules.md). Validated structurally here;
// the scheduler interprets the cron/tz fields.
struct ScheduleSpec {
  std::string id;
  std::string cron;  // exactly one of cron / every / at
  std::optional<Millis> every;
  std::string at;  // RFC 3339 instant
  std::string tz = "UTC";
  std::optional<Millis> lead;
  std::map<std::string, std::string> params;
  // shift | skip, first | both; empty: the default for the hour field (scheduler/timing.h)
  std::string dst_gap;
  std::string dst_repeat;
  std::string misfire = "run_once";  // skip | run_once | run_all
  std::optional<Millis> max_lateness;
  std::string overlap = "allow";  // allow | skip | queue_one | cancel_previous
  std::optional<Millis> jitter;
  bool active = true;
  SourceLocation loc;
};

// `sandbox: off` or `sandbox: {pid: host|private, writable: [paths], network: none|host,
// run_as: USER, memory, processes, open_files, file_size, cpu_time}`: how the engine
// confines the runbook's steps (docs/runbooks.md#sandbox). Unset limits take the server's
// defaults (EngineOptions::sandbox).
struct SandboxProfile {
  bool enabled = true;
  std::string pid = "private";
  std::vector<std::string> writable;
  std::string network = "host";
  std::string run_as;
  std::optional<uint64_t> memory;  // bytes
  std::optional<uint32_t> processes;
  std::optional<uint64_t> open_files;
  std::optional<uint64_t> file_size;  // bytes
  std::optional<Millis> cpu_time;
};

struct Runbook {
  std::string id;  // ^[a-z][a-z0-9-]*$
  std::string name;
  std::string description;
  std::string category;
  std::vector<std::string> tags;
  std::vector<ParamSpec> params;       // in file order
  std::optional<Millis> timeout;       // whole run
  std::optional<RetryPolicy> retries;  // whole run (the queue re-runs the attempt)
  std::vector<Step> steps;
  std::vector<Step> rollback;
  bool dangerous = false;
  std::string requires_permission;  // `requires`
  std::vector<std::string> allowed_roles;
  // Names in the secret store whose values every step gets as AUTOMAN_SECRET_<NAME>
  // (redacted from the logs like secret params).
  std::vector<std::string> secrets;
  std::vector<ConcurrencyLimit> concurrency;
  // A new run is refused until this long after the previous run of this runbook was
  // created (queue/queue.h, "Cooldown"); unset: no cooldown.
  std::optional<Millis> cooldown;
  std::vector<ScheduleSpec> schedules;
  SandboxProfile sandbox;

  std::string source;   // where it came from (file path), for messages
  std::string yaml;     // the exact text it was parsed from
  std::string version;  // content hash of `yaml` ("sha256:<hex>")

  const ParamSpec* FindParam(std::string_view name) const;
};

struct ParseResult {
  std::optional<Runbook> runbook;  // set iff diagnostics is empty
  std::vector<Diagnostic> diagnostics;
  bool ok() const { return runbook.has_value(); }
};

// Limits that keep hostile files from costing memory or time.
inline constexpr size_t kMaxRunbookBytes = 1 << 20;  // 1 MiB of YAML
inline constexpr int kMaxYamlDepth = 32;

// `source` names the file in diagnostics.
ParseResult ParseRunbook(std::string_view yaml, std::string_view source);
// Reads and parses a file; an unreadable file is a single diagnostic.
ParseResult LoadRunbookFile(const std::string& path);

// Binds `-p name=value` pairs to the runbook's params: applies defaults, checks required,
// rejects unknown names, validates type / pattern / enum membership and canonicalises
// (ints without leading zeros, bools as true/false). The error message names the
// parameter and says what is expected.
Result<RunParams> BindParams(const Runbook& rb,
                             const std::vector<std::pair<std::string, std::string>>& given);

// Checks one value against a parameter's type, pattern and enum members and returns its
// canonical text ("007" -> "7" for int, "yes" -> "true" for bool). Used by BindParams and for
// defaults and schedule params at parse time. The error names the parameter and what is
// expected; a secret's value is never echoed.
Result<std::string> CanonicalParamValue(const ParamSpec& spec, std::string_view value);

// Values passed to BindParams (and defaults) are at most this long.
inline constexpr size_t kMaxParamValueBytes = size_t{64} * 1024;

// A name in the secret store (and under a runbook's `secrets:`): 1..64 of letters, digits
// and '_', starting with a letter (it becomes part of AUTOMAN_SECRET_<NAME>).
bool IsValidSecretName(std::string_view name);

// "restart-web" -> "RESTART_WEB"; used for AUTOMAN_PARAM_ and AUTOMAN_OUT_ names.
std::string EnvName(std::string_view name);

}  // namespace automan
