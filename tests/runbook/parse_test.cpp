// ParseRunbook: the happy path with every key, defaults, and one case per validation error
// (each asserting the position and the words of the message, and that nothing else was
// reported).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runbook/runbook.h"
#include "runbook/runbook_test_util.h"
#include "support/test_util.h"

namespace automan {
namespace {

using automan::testing::HasError;
using automan::testing::Parse;

constexpr const char* kFull = R"(id: restart-web
name: Restart web
description: |
  Restarts the web service.
category: web
tags: [web, restart]
params:
  service:
    type: string
    required: true
    pattern: "[a-z]+"
    description: Which service
  count:
    type: int
    default: "007"
  ratio:
    type: number
    default: 0.25
  force:
    type: bool
    default: yes
  env:
    type: enum
    values: [dev, prod]
    default: prod
  token:
    type: secret
  note: {}
timeout: 10m
retries: 2
steps:
  - id: check
    name: Check it
    shell: |
      echo checking
    env:
      LEVEL: 3
      MODE: fast
    cwd: /tmp
    timeout: 30s
    retries:
      count: 3
      backoff: exponential
      delay: 500ms
      max_delay: 10s
      no_retry_exit_codes: [2, 127]
    continue_on_error: true
    outputs: [version, url]
  - id: restart
    argv: [systemctl, restart, web]
rollback:
  - id: undo
    shell: echo undo
dangerous: true
requires: runs.execute
allowed_roles: [operator, on-call_team]
concurrency: {key: web, limit: 2}
schedules:
  - id: nightly
    cron: "0 3 * * *"
    tz: Europe/Paris
    lead: 5m
    params: {service: web, count: "010", force: no}
    dst: {gap: skip, repeat: both}
    misfire: run_all
    max_lateness: 1h
    overlap: queue_one
    jitter: 30s
    active: false
  - id: often
    every: 15m
    params: {service: api}
  - id: once
    at: 2030-01-31T09:00:00+01:00
    params: {service: db}
sandbox:
  pid: host
  writable: [/var/tmp/web, /srv]
  network: none
  run_as: nobody
  memory: 512MiB
  processes: 64
  open_files: 256
  file_size: 1G
  cpu_time: 90s
)";

TEST(ParseRunbook, FullRunbookWithEveryKey) {
  ParseResult r = Parse(kFull);
  ASSERT_TRUE(r.ok()) << automan::testing::DumpDiagnostics(r);
  const Runbook& rb = *r.runbook;
  EXPECT_EQ(rb.id, "restart-web");
  EXPECT_EQ(rb.name, "Restart web");
  EXPECT_EQ(rb.description, "Restarts the web service.\n");
  EXPECT_EQ(rb.category, "web");
  EXPECT_EQ(rb.tags, (std::vector<std::string>{"web", "restart"}));

  ASSERT_EQ(rb.params.size(), 7u);
  const ParamSpec& service = rb.params[0];
  EXPECT_EQ(service.name, "service");
  EXPECT_EQ(service.type, ParamType::kString);
  EXPECT_TRUE(service.required);
  EXPECT_EQ(service.pattern, "[a-z]+");
  EXPECT_EQ(service.description, "Which service");
  EXPECT_FALSE(service.default_value);
  EXPECT_EQ(service.loc.line, 8);
  EXPECT_EQ(service.loc.column, 3);
  EXPECT_EQ(rb.params[1].type, ParamType::kInt);
  EXPECT_EQ(rb.params[1].default_value, "7");  // canonicalised
  EXPECT_EQ(rb.params[2].type, ParamType::kNumber);
  EXPECT_EQ(rb.params[2].default_value, "0.25");
  EXPECT_EQ(rb.params[3].type, ParamType::kBool);
  EXPECT_EQ(rb.params[3].default_value, "true");
  EXPECT_EQ(rb.params[4].type, ParamType::kEnum);
  EXPECT_EQ(rb.params[4].values, (std::vector<std::string>{"dev", "prod"}));
  EXPECT_EQ(rb.params[4].default_value, "prod");
  EXPECT_EQ(rb.params[5].type, ParamType::kSecret);
  EXPECT_EQ(rb.params[6].type, ParamType::kString);  // type defaults to string
  EXPECT_FALSE(rb.params[6].required);
  EXPECT_EQ(rb.FindParam("env"), &rb.params[4]);
  EXPECT_EQ(rb.FindParam("nope"), nullptr);

  EXPECT_EQ(rb.timeout, Millis(600'000));
  ASSERT_TRUE(rb.retries);
  EXPECT_EQ(rb.retries->count, 2);
  EXPECT_EQ(rb.retries->backoff, RetryPolicy::Backoff::kFixed);
  EXPECT_EQ(rb.retries->delay, Millis(1000));
  EXPECT_EQ(rb.retries->max_delay, Millis(300'000));

  ASSERT_EQ(rb.steps.size(), 2u);
  const Step& check = rb.steps[0];
  EXPECT_EQ(check.id, "check");
  EXPECT_EQ(check.name, "Check it");
  EXPECT_EQ(check.shell, "echo checking\n");
  EXPECT_TRUE(check.argv.empty());
  EXPECT_EQ(check.env,
            (std::vector<std::pair<std::string, std::string>>{{"LEVEL", "3"}, {"MODE", "fast"}}));
  EXPECT_EQ(check.cwd, "/tmp");
  EXPECT_EQ(check.timeout, Millis(30'000));
  ASSERT_TRUE(check.retries);
  EXPECT_EQ(check.retries->count, 3);
  EXPECT_EQ(check.retries->backoff, RetryPolicy::Backoff::kExponential);
  EXPECT_EQ(check.retries->delay, Millis(500));
  EXPECT_EQ(check.retries->max_delay, Millis(10'000));
  EXPECT_EQ(check.retries->no_retry_exit_codes, (std::vector<int>{2, 127}));
  EXPECT_TRUE(check.continue_on_error);
  EXPECT_EQ(check.outputs, (std::vector<std::string>{"version", "url"}));
  EXPECT_EQ(check.loc.line, 32);
  EXPECT_EQ(check.loc.column, 5);
  const Step& restart = rb.steps[1];
  EXPECT_FALSE(restart.shell);
  EXPECT_EQ(restart.argv, (std::vector<std::string>{"systemctl", "restart", "web"}));
  EXPECT_FALSE(restart.timeout);
  EXPECT_FALSE(restart.retries);
  EXPECT_FALSE(restart.continue_on_error);
  ASSERT_EQ(rb.rollback.size(), 1u);
  EXPECT_EQ(rb.rollback[0].id, "undo");

  EXPECT_TRUE(rb.dangerous);
  EXPECT_EQ(rb.requires_permission, "runs.execute");
  EXPECT_EQ(rb.allowed_roles, (std::vector<std::string>{"operator", "on-call_team"}));
  ASSERT_EQ(rb.concurrency.size(), 1u);
  EXPECT_EQ(rb.concurrency[0].key, "web");
  EXPECT_EQ(rb.concurrency[0].limit, 2);

  ASSERT_EQ(rb.schedules.size(), 3u);
  const ScheduleSpec& nightly = rb.schedules[0];
  EXPECT_EQ(nightly.id, "nightly");
  EXPECT_EQ(nightly.cron, "0 3 * * *");
  EXPECT_FALSE(nightly.every);
  EXPECT_EQ(nightly.at, "");
  EXPECT_EQ(nightly.tz, "Europe/Paris");
  EXPECT_EQ(nightly.lead, Millis(300'000));
  EXPECT_EQ(nightly.params, (std::map<std::string, std::string>{
                                {"service", "web"}, {"count", "10"}, {"force", "false"}}));
  EXPECT_EQ(nightly.dst_gap, "skip");
  EXPECT_EQ(nightly.dst_repeat, "both");
  EXPECT_EQ(nightly.misfire, "run_all");
  EXPECT_EQ(nightly.max_lateness, Millis(3'600'000));
  EXPECT_EQ(nightly.overlap, "queue_one");
  EXPECT_EQ(nightly.jitter, Millis(30'000));
  EXPECT_FALSE(nightly.active);
  const ScheduleSpec& often = rb.schedules[1];
  EXPECT_EQ(often.every, Millis(900'000));
  EXPECT_EQ(often.tz, "UTC");
  EXPECT_EQ(often.dst_gap, "");  // the scheduler's default for its hour field
  EXPECT_EQ(often.dst_repeat, "");
  EXPECT_EQ(often.misfire, "run_once");
  EXPECT_EQ(often.overlap, "allow");
  EXPECT_TRUE(often.active);
  EXPECT_EQ(rb.schedules[2].at, "2030-01-31T09:00:00+01:00");

  EXPECT_TRUE(rb.sandbox.enabled);
  EXPECT_EQ(rb.sandbox.pid, "host");
  EXPECT_EQ(rb.sandbox.writable, (std::vector<std::string>{"/var/tmp/web", "/srv"}));
  EXPECT_EQ(rb.sandbox.network, "none");
  EXPECT_EQ(rb.sandbox.run_as, "nobody");
  EXPECT_EQ(rb.sandbox.memory, uint64_t{512} << 20);
  EXPECT_EQ(rb.sandbox.processes, 64u);
  EXPECT_EQ(rb.sandbox.open_files, 256u);
  EXPECT_EQ(rb.sandbox.file_size, uint64_t{1} << 30);
  EXPECT_EQ(rb.sandbox.cpu_time, Millis(90'000));

  EXPECT_EQ(rb.source, "t.yaml");
  EXPECT_EQ(rb.yaml, kFull);
}

TEST(ParseRunbook, MinimalRunbookGetsDefaults) {
  ParseResult r = Parse("id: a\nsteps: [{id: s, shell: echo}]\n");
  ASSERT_TRUE(r.ok()) << automan::testing::DumpDiagnostics(r);
  const Runbook& rb = *r.runbook;
  EXPECT_EQ(rb.name, "");
  EXPECT_TRUE(rb.params.empty());
  EXPECT_FALSE(rb.timeout);
  EXPECT_FALSE(rb.retries);
  EXPECT_TRUE(rb.rollback.empty());
  EXPECT_FALSE(rb.dangerous);
  EXPECT_EQ(rb.requires_permission, "");
  EXPECT_TRUE(rb.concurrency.empty());
  EXPECT_TRUE(rb.schedules.empty());
  EXPECT_TRUE(rb.sandbox.enabled);
  EXPECT_EQ(rb.sandbox.pid, "private");
  EXPECT_EQ(rb.sandbox.network, "host");
  EXPECT_TRUE(rb.sandbox.writable.empty());
  EXPECT_FALSE(rb.cooldown);
}

TEST(ParseRunbook, CooldownIsADuration) {
  ParseResult r = Parse("id: a\ncooldown: 10m\nsteps: [{id: s, shell: echo}]\n");
  ASSERT_TRUE(r.ok()) << automan::testing::DumpDiagnostics(r);
  ASSERT_TRUE(r.runbook->cooldown.has_value());
  EXPECT_EQ(*r.runbook->cooldown, std::chrono::minutes(10));
}

TEST(ParseRunbook, VersionIsSha256OfTheExactText) {
  // printf 'id: a\nsteps: [{id: s, shell: echo}]\n' | sha256sum
  const std::string text = "id: a\nsteps: [{id: s, shell: echo}]\n";
  ParseResult r = Parse(text);
  ASSERT_TRUE(r.ok());
  auto out = automan::testing::RunCommand(
      "printf 'id: a\\nsteps: [{id: s, shell: echo}]\\n' | "
      "sha256sum | cut -d' ' -f1");
  ASSERT_EQ(out.exit_code, 0);
  EXPECT_EQ(r.runbook->version, "sha256:" + out.out.substr(0, 64));
  // A comment changes the text and so the version, not the meaning.
  ParseResult r2 = Parse(text + "# comment\n");
  ASSERT_TRUE(r2.ok());
  EXPECT_NE(r2.runbook->version, r.runbook->version);
  EXPECT_EQ(r2.runbook->yaml, text + "# comment\n");
}

TEST(ParseRunbook, SandboxOff) {
  ParseResult r = Parse("id: a\nsandbox: off\nsteps: [{id: s, shell: echo}]\n");
  ASSERT_TRUE(r.ok()) << automan::testing::DumpDiagnostics(r);
  EXPECT_FALSE(r.runbook->sandbox.enabled);
}

TEST(ParseRunbook, ConcurrencyAsAList) {
  ParseResult r = Parse(
      "id: a\nconcurrency:\n  - {key: web}\n  - {key: db, limit: 3}\nsteps: [{id: s, shell: "
      "echo}]\n");
  ASSERT_TRUE(r.ok()) << automan::testing::DumpDiagnostics(r);
  ASSERT_EQ(r.runbook->concurrency.size(), 2u);
  EXPECT_EQ(r.runbook->concurrency[0].limit, 1);
  EXPECT_EQ(r.runbook->concurrency[1].limit, 3);
}

TEST(ParseRunbook, ConcurrencyRateIsATokenBucketWithoutAConcurrencyLimit) {
  ParseResult r = Parse(
      "id: a\nconcurrency:\n  - {key: sms, rate: 10/1m}\n  - {key: db, limit: 2, rate: 1/5s}\n"
      "steps: [{id: s, shell: echo}]\n");
  ASSERT_TRUE(r.ok()) << automan::testing::DumpDiagnostics(r);
  ASSERT_EQ(r.runbook->concurrency.size(), 2u);
  EXPECT_EQ(r.runbook->concurrency[0].rate_count, 10);
  EXPECT_EQ(r.runbook->concurrency[0].rate_per, std::chrono::minutes(1));
  EXPECT_EQ(r.runbook->concurrency[0].limit, INT32_MAX);
  EXPECT_EQ(r.runbook->concurrency[1].limit, 2);
  EXPECT_EQ(r.runbook->concurrency[1].rate_count, 1);
  EXPECT_EQ(r.runbook->concurrency[1].rate_per, std::chrono::seconds(5));
}

TEST(ParseRunbook, MalformedConcurrencyRatesSayWhatToWrite) {
  for (const char* bad :
       {"10", "10/", "/1m", "0/1m", "-1/1m", "10/0s", "x/1m", "10/1", "[1]", "9999999/1s"}) {
    ParseResult r = Parse(std::string("id: a\nconcurrency: {key: k, rate: ") + bad +
                          "}\nsteps: [{id: s, shell: echo}]\n");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(automan::testing::DumpDiagnostics(r).find("COUNT/DURATION, e.g. 10/1m"),
              std::string::npos)
        << bad << ": " << automan::testing::DumpDiagnostics(r);
  }
}

TEST(ParseRunbook, RetryDelayLongerThanDefaultCapRaisesTheCap) {
  ParseResult r = Parse("id: a\nretries: {count: 1, delay: 10m}\nsteps: [{id: s, shell: echo}]\n");
  ASSERT_TRUE(r.ok()) << automan::testing::DumpDiagnostics(r);
  EXPECT_EQ(r.runbook->retries->delay, Millis(600'000));
  EXPECT_EQ(r.runbook->retries->max_delay, Millis(600'000));
}

TEST(ParseRunbook, ScalarsOfOtherTypesAreAcceptedAsStrings) {
  ParseResult r = Parse(
      "id: a\nname: 42\nsteps:\n  - id: s\n    argv: [sleep, 5]\n    env: {A: true, B: 1.5, C: "
      "\"\"}\n");
  ASSERT_TRUE(r.ok()) << automan::testing::DumpDiagnostics(r);
  EXPECT_EQ(r.runbook->name, "42");
  EXPECT_EQ(r.runbook->steps[0].argv, (std::vector<std::string>{"sleep", "5"}));
  EXPECT_EQ(r.runbook->steps[0].env, (std::vector<std::pair<std::string, std::string>>{
                                         {"A", "true"}, {"B", "1.5"}, {"C", ""}}));
}

TEST(ParseRunbook, CollectsEveryErrorSortedByPosition) {
  ParseResult r = Parse(
      "id: Bad\n"
      "stpes: []\n"
      "timeout: 5\n"
      "steps:\n"
      "  - id: a\n"
      "  - id: a\n"
      "    shell: x\n");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.diagnostics.size(), 5u) << automan::testing::DumpDiagnostics(r);
  EXPECT_TRUE(HasError(r, 1, 5, {"not a valid runbook id"}));
  EXPECT_TRUE(HasError(r, 2, 1, {"unknown key \"stpes\"; did you mean \"steps\"?"}));
  EXPECT_TRUE(HasError(r, 3, 10, {"no unit"}));
  EXPECT_TRUE(HasError(r, 5, 5, {"needs a command"}));
  EXPECT_TRUE(HasError(r, 6, 9, {"duplicate step id \"a\""}));
  for (size_t i = 1; i < r.diagnostics.size(); ++i) {
    EXPECT_LE(r.diagnostics[i - 1].loc.line, r.diagnostics[i].loc.line);
  }
}

TEST(ParseRunbook, DiagnosticToString) {
  ParseResult r =
      ParseRunbook("id: a\nstpes: []\nsteps: [{id: s, shell: echo}]\n", "runbooks/web.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.diagnostics[0].ToString(),
            "runbooks/web.yaml:2:1: unknown key \"stpes\"; did you mean \"steps\"?");
  Diagnostic d{"f.yaml", {}, "cannot read"};
  EXPECT_EQ(d.ToString(), "f.yaml: cannot read");
}

TEST(LoadRunbookFile, ReadsAFile) {
  automan::testing::TempDir dir;
  automan::testing::WriteFile(dir.File("a.yaml"), "id: a\nsteps: [{id: s, shell: echo}]\n");
  ParseResult r = LoadRunbookFile(dir.File("a.yaml"));
  ASSERT_TRUE(r.ok()) << automan::testing::DumpDiagnostics(r);
  EXPECT_EQ(r.runbook->source, dir.File("a.yaml"));
}

TEST(LoadRunbookFile, ErrorsNameTheFile) {
  automan::testing::TempDir dir;
  automan::testing::WriteFile(dir.File("bad.yaml"), "id: a\n");
  ParseResult r = LoadRunbookFile(dir.File("bad.yaml"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.diagnostics[0].ToString(),
            dir.File("bad.yaml") +
                ":1:1: missing required key \"steps\"; add e.g. steps: "
                "[{id: hello, shell: echo hello}]");
}

TEST(LoadRunbookFile, MissingFileAndDirectory) {
  automan::testing::TempDir dir;
  ParseResult r = LoadRunbookFile(dir.File("nope.yaml"));
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].ToString(),
            dir.File("nope.yaml") + ": cannot read the file: No such file or directory");
  r = LoadRunbookFile(dir.path());
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_NE(r.diagnostics[0].message.find("is a directory"), std::string::npos);
}

// ---------------------------------------------------------------------------------------
// One case per validation error. `yaml` must produce exactly one diagnostic.

struct ErrorCase {
  const char* name;
  std::string yaml;
  int line;
  int col;
  std::vector<std::string_view> words;
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

class ValidationError : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ValidationError, IsReportedAloneWithPositionAndAdvice) {
  const ErrorCase& c = GetParam();
  ParseResult r = Parse(c.yaml);
  ASSERT_FALSE(r.ok()) << "expected an error";
  // HasError takes an initializer_list; check the words by hand for the vector.
  bool matched = false;
  for (const auto& d : r.diagnostics) {
    if (d.loc.line != c.line || d.loc.column != c.col) continue;
    bool all = true;
    for (std::string_view w : c.words) all = all && d.message.find(w) != std::string::npos;
    matched = matched || all;
  }
  EXPECT_TRUE(matched) << "wanted " << c.line << ":" << c.col << " with the words; got:\n"
                       << automan::testing::DumpDiagnostics(r);
  EXPECT_EQ(r.diagnostics.size(), 1u) << automan::testing::DumpDiagnostics(r);
  for (const auto& d : r.diagnostics) EXPECT_EQ(d.file, "t.yaml");
}

#define STEPS "steps: [{id: s, shell: echo}]\n"

const ErrorCase kErrorCases[] = {
    // --- top level -------------------------------------------------------------------
    {"EmptyFile", "# only a comment\n", 1, 1, {"file is empty", "id:", "steps:"}},
    {"TopLevelNotAMap", "- id: a\n", 1, 1, {"expected a map of runbook keys", "got a list"}},
    {"TopLevelScalar", "hello\n", 1, 1, {"expected a map", "got a string"}},
    {"MissingId", STEPS, 1, 1, {"missing required key \"id\"", "id: restart-web"}},
    {"BadId", "id: Restart_Web\n" STEPS, 1, 5, {"not a valid runbook id", "lower-case"}},
    {"IdNotAString", "id: [a]\n" STEPS, 1, 5, {"id: expected a string, got a list"}},
    {"IdEmpty", "id:\n" STEPS, 1, 1, {"id: expected a string, got nothing"}},
    {"MissingSteps", "id: a\n", 1, 1, {"missing required key \"steps\""}},
    {"StepsNotAList",
     "id: a\nsteps: echo hi\n",
     2,
     8,
     {"steps: expected a list of steps, got a string"}},
    {"StepsAMap",
     "id: a\nsteps:\n  id: s\n  shell: echo\n",
     3,
     3,
     {"expected a list of steps, got a map", "'- '"}},
    {"StepsEmpty", "id: a\nsteps: []\n", 2, 8, {"steps: the list is empty", "at least one step"}},
    {"UnknownKeySuggests",
     "id: a\nstpes: []\n" STEPS,
     2,
     1,
     {"unknown key \"stpes\"; did you mean \"steps\"?"}},
    {"UnknownKeyListsKnownKeys",
     "id: a\nfrobnicate: 1\n" STEPS,
     2,
     1,
     {"unknown key \"frobnicate\"; known keys are: id, name", "sandbox"}},
    {"DuplicateKey",
     "id: a\nname: x\nname: y\n" STEPS,
     3,
     1,
     {"duplicate key \"name\"", "first at line 2", "remove or rename one"}},
    {"NonScalarKey", "id: a\n[x]: 1\n" STEPS, 2, 1, {"keys must be plain names", "got a list"}},
    {"NameNotAString", "id: a\nname: {x: 1}\n" STEPS, 2, 7, {"name: expected a string, got a map"}},
    {"DescriptionNotAString",
     "id: a\ndescription: [x]\n" STEPS,
     2,
     14,
     {"description: expected a string, got a list"}},
    {"CategoryNotAString", "id: a\ncategory: [x]\n" STEPS, 2, 11, {"category: expected a string"}},
    {"TagsNotAList", "id: a\ntags: web\n" STEPS, 2, 7, {"tags: expected a list of strings"}},
    {"TagEmpty", "id: a\ntags: [web, \"\"]\n" STEPS, 2, 13, {"tags[1]", "must not be empty"}},
    {"TagNotAString",
     "id: a\ntags: [[x]]\n" STEPS,
     2,
     8,
     {"tags[0]: expected a string, got a list"}},
    // --- durations -------------------------------------------------------------------
    {"TimeoutBareInteger", "id: a\ntimeout: 30\n" STEPS, 2, 10, {"timeout: 30 has no unit", "30s"}},
    {"TimeoutBadUnit", "id: a\ntimeout: 30sec\n" STEPS, 2, 10, {"unknown unit \"sec\"", "30s"}},
    {"TimeoutZero", "id: a\ntimeout: 0s\n" STEPS, 2, 10, {"must be longer than 0"}},
    {"CooldownBareInteger", "id: a\ncooldown: 600\n" STEPS, 2, 11, {"cooldown: 600 has no unit"}},
    {"CooldownUnderASecond", "id: a\ncooldown: 500ms\n" STEPS, 2, 11, {"shorter than the 1s"}},
    {"TimeoutNotAScalar",
     "id: a\ntimeout: [1s]\n" STEPS,
     2,
     10,
     {"expected a duration such as 500ms, 30s, 5m or 2h", "got a list"}},
    // --- retries -----------------------------------------------------------------------
    {"RetriesShorthandOutOfRange",
     "id: a\nretries: 101\n" STEPS,
     2,
     10,
     {"retries: 101 is out of range", "from 0 to 100"}},
    {"RetriesNegative", "id: a\nretries: -1\n" STEPS, 2, 10, {"out of range"}},
    {"RetriesWrongType",
     "id: a\nretries: lots\n" STEPS,
     2,
     10,
     {"expected a retry count (e.g. 3) or a map", "got a string \"lots\""}},
    {"RetriesUnknownKey",
     "id: a\nretries: {cuont: 2}\n" STEPS,
     2,
     11,
     {"unknown key \"cuont\" in retries; did you mean \"count\"?"}},
    {"RetriesCountOutOfRange",
     "id: a\nretries: {count: 1000}\n" STEPS,
     2,
     18,
     {"retries.count: 1000 is out of range"}},
    {"RetriesCountQuoted",
     "id: a\nretries: {count: \"3\"}\n" STEPS,
     2,
     18,
     {"expected an integer from 0 to 100", "remove the quotes"}},
    {"RetriesBadBackoff",
     "id: a\nretries: {backoff: linear}\n" STEPS,
     2,
     20,
     {"retries.backoff: \"linear\" is not valid", "fixed, exponential"}},
    {"RetriesDelayNoUnit",
     "id: a\nretries: {delay: 5}\n" STEPS,
     2,
     18,
     {"retries.delay", "no unit"}},
    {"RetriesMaxDelayBelowDelay",
     "id: a\nretries: {delay: 10s, max_delay: 1s}\n" STEPS,
     2,
     34,
     {"max_delay: 1s is shorter than delay 10s"}},
    {"RetriesExitCodesNotAList",
     "id: a\nretries: {no_retry_exit_codes: 2}\n" STEPS,
     2,
     32,
     {"expected a list of exit codes"}},
    {"RetriesExitCodeOutOfRange",
     "id: a\nretries: {no_retry_exit_codes: [1, 256]}\n" STEPS,
     2,
     36,
     {"no_retry_exit_codes[1]: 256 is out of range", "0 to 255"}},
    {"RetriesHugeNumber",
     "id: a\nretries: 99999999999999999999999\n" STEPS,
     2,
     10,
     {"out of range"}},
    // --- params --------------------------------------------------------------------------
    {"ParamsNotAMap",
     "id: a\nparams: [x]\n" STEPS,
     2,
     9,
     {"params: expected a map from parameter name"}},
    {"ParamBadName",
     "id: a\nparams:\n  Service: {}\n" STEPS,
     3,
     3,
     {"\"Service\" is not a valid parameter name", "service_name"}},
    {"ParamDashInName", "id: a\nparams:\n  a-b: {}\n" STEPS, 3, 3, {"not a valid parameter name"}},
    {"ParamNotAMap",
     "id: a\nparams:\n  x: string\n" STEPS,
     3,
     6,
     {"params.x: expected a map {type, required, default"}},
    {"ParamUnknownKey",
     "id: a\nparams:\n  x: {tpye: int}\n" STEPS,
     3,
     7,
     {"unknown key \"tpye\" in params.x; did you mean \"type\"?"}},
    {"ParamDuplicate",
     "id: a\nparams:\n  x: {}\n  x: {}\n" STEPS,
     4,
     3,
     {"duplicate key \"x\" in params"}},
    {"ParamBadType",
     "id: a\nparams:\n  x: {type: integer}\n" STEPS,
     3,
     13,
     {"params.x.type: \"integer\" is not valid", "string, int, number, bool, enum, secret"}},
    {"ParamRequiredNotBool",
     "id: a\nparams:\n  x: {required: yes}\n" STEPS,
     3,
     17,
     {"params.x.required: expected true or false", "YAML 1.1"}},
    {"ParamDescriptionNotString",
     "id: a\nparams:\n  x: {description: [a]}\n" STEPS,
     3,
     20,
     {"params.x.description: expected a string"}},
    {"ParamPatternOnInt",
     "id: a\nparams:\n  x: {type: int, pattern: \"[0-9]+\"}\n" STEPS,
     3,
     27,
     {"patterns apply to string and secret parameters only", "int"}},
    {"ParamPatternDoesNotCompile",
     "id: a\nparams:\n  x: {pattern: \"[a-z\"}\n" STEPS,
     3,
     16,
     {"is not a valid RE2 regular expression", "missing ]"}},
    {"ParamPatternEmpty",
     "id: a\nparams:\n  x: {pattern: \"\"}\n" STEPS,
     3,
     16,
     {"params.x.pattern: must not be empty"}},
    {"ParamValuesOnString",
     "id: a\nparams:\n  x: {values: [a]}\n" STEPS,
     3,
     15,
     {"values apply to enum parameters only"}},
    {"ParamEnumWithoutValues",
     "id: a\nparams:\n  x: {type: enum}\n" STEPS,
     3,
     6,
     {"an enum parameter needs `values:`"}},
    {"ParamEnumValuesEmpty",
     "id: a\nparams:\n  x: {type: enum, values: []}\n" STEPS,
     3,
     27,
     {"params.x.values: the list is empty"}},
    {"ParamEnumValuesNotAList",
     "id: a\nparams:\n  x: {type: enum, values: a}\n" STEPS,
     3,
     27,
     {"expected a list of allowed values"}},
    {"ParamEnumValueDuplicate",
     "id: a\nparams:\n  x: {type: enum, values: [a, b, a]}\n" STEPS,
     3,
     34,
     {"params.x.values[2]: \"a\" is listed twice"}},
    {"ParamEnumValueEmpty",
     "id: a\nparams:\n  x: {type: enum, values: [a, \"\"]}\n" STEPS,
     3,
     31,
     {"enum values must not be empty"}},
    {"ParamEnumValueNotScalar",
     "id: a\nparams:\n  x: {type: enum, values: [[a]]}\n" STEPS,
     3,
     28,
     {"params.x.values[0]: expected a value (a string), got a list"}},
    {"ParamBadIntDefault",
     "id: a\nparams:\n  x: {type: int, default: 1.5}\n" STEPS,
     3,
     27,
     {"params.x.default: bad default", "must be an integer"}},
    {"ParamBadNumberDefault",
     "id: a\nparams:\n  x: {type: number, default: 0x10}\n" STEPS,
     3,
     30,
     {"bad default", "finite decimal number"}},
    {"ParamBadBoolDefault",
     "id: a\nparams:\n  x: {type: bool, default: maybe}\n" STEPS,
     3,
     28,
     {"bad default", "true or false"}},
    {"ParamBadEnumDefault",
     "id: a\nparams:\n  x: {type: enum, values: [a, b], default: c}\n" STEPS,
     3,
     44,
     {"bad default", "must be one of: a, b", "got \"c\""}},
    {"ParamDefaultMissesPattern",
     "id: a\nparams:\n  x: {pattern: \"[a-z]+\", default: Web}\n" STEPS,
     3,
     35,
     {"bad default", "must match the pattern [a-z]+"}},
    {"ParamDefaultNotScalar",
     "id: a\nparams:\n  x: {default: [a]}\n" STEPS,
     3,
     16,
     {"params.x.default: expected a value, got a list"}},
    {"ParamRequiredWithDefault",
     "id: a\nparams:\n  x: {required: true, default: web}\n" STEPS,
     3,
     23,
     {"required params cannot have a default; drop one"}},
    {"ParamSecretWithDefault",
     "id: a\nparams:\n  x: {type: secret, default: hunter2}\n" STEPS,
     3,
     21,
     {"secret parameters cannot have a default", "-p x="}},
    // --- steps ---------------------------------------------------------------------------
    {"StepNotAMap",
     "id: a\nsteps: [echo hi]\n",
     2,
     9,
     {"steps[0]: expected a step: a map with id and shell or argv", "got a string"}},
    {"StepMissingId",
     "id: a\nsteps: [{shell: echo}]\n",
     2,
     9,
     {"steps[0]: missing required key \"id\""}},
    {"StepBadId",
     "id: a\nsteps: [{id: Check-1, shell: echo}]\n",
     2,
     14,
     {"steps[0].id: \"Check-1\" is not a valid step id", "check_health"}},
    {"StepDuplicateId",
     "id: a\nsteps:\n  - {id: s, shell: echo}\n  - {id: s, shell: echo}\n",
     4,
     10,
     {"duplicate step id \"s\"", "first at line 3", "unique across steps and rollback"}},
    {"StepIdDuplicatedInRollback",
     "id: a\n" STEPS "rollback: [{id: s, shell: echo}]\n",
     3,
     17,
     {"rollback[0].id: duplicate step id \"s\""}},
    {"StepUnknownKeySuggests",
     "id: a\nsteps: [{id: s, shell: echo, tiemout: 5s}]\n",
     2,
     30,
     {"unknown key \"tiemout\" in steps[0]; did you mean \"timeout\"?"}},
    {"StepWithoutCommand",
     "id: a\nsteps: [{id: s}]\n",
     2,
     9,
     {"a step needs a command: shell", "or argv"}},
    {"StepWithShellAndArgv",
     "id: a\nsteps: [{id: s, shell: echo, argv: [echo]}]\n",
     2,
     30,
     {"give either shell or argv, not both"}},
    {"StepShellEmpty",
     "id: a\nsteps: [{id: s, shell: \"\"}]\n",
     2,
     24,
     {"steps[0].shell: must not be empty"}},
    {"StepShellNotAString",
     "id: a\nsteps: [{id: s, shell: [echo]}]\n",
     2,
     24,
     {"steps[0].shell: expected a shell script (a string), got a list"}},
    {"StepArgvAString",
     "id: a\nsteps: [{id: s, argv: ls -l}]\n",
     2,
     23,
     {"steps[0].argv: expected a list of strings", "use shell: for a command line"}},
    {"StepArgvEmpty",
     "id: a\nsteps: [{id: s, argv: []}]\n",
     2,
     23,
     {"steps[0].argv: the list is empty"}},
    {"StepArgvNested",
     "id: a\nsteps: [{id: s, argv: [ls, [x]]}]\n",
     2,
     28,
     {"steps[0].argv[1]: expected a string, got a list"}},
    {"StepArgvProgramEmpty",
     "id: a\nsteps: [{id: s, argv: [\"\", x]}]\n",
     2,
     24,
     {"program name must not be empty"}},
    {"StepEnvNotAMap",
     "id: a\nsteps: [{id: s, shell: echo, env: [A]}]\n",
     2,
     35,
     {"steps[0].env: expected a map of environment variables"}},
    {"StepEnvBadName",
     "id: a\nsteps: [{id: s, shell: echo, env: {1X: a}}]\n",
     2,
     36,
     {"\"1X\" is not a valid environment variable name"}},
    {"StepEnvBadNameDash",
     "id: a\nsteps: [{id: s, shell: echo, env: {MY-VAR: a}}]\n",
     2,
     36,
     {"\"MY-VAR\" is not a valid environment variable name"}},
    {"StepEnvReserved",
     "id: a\nsteps: [{id: s, shell: echo, env: {AUTOMAN_PARAM_X: a}}]\n",
     2,
     36,
     {"\"AUTOMAN_PARAM_X\" is reserved", "choose another name"}},
    {"StepEnvNull",
     "id: a\nsteps: [{id: s, shell: echo, env: {A: }}]\n",
     2,
     36,
     {"steps[0].env.A: has no value", "\"\" for an empty string"}},
    {"StepEnvValueList",
     "id: a\nsteps: [{id: s, shell: echo, env: {A: [1]}}]\n",
     2,
     39,
     {"steps[0].env.A: expected a value", "got a list"}},
    {"StepEnvDuplicate",
     "id: a\nsteps: [{id: s, shell: echo, env: {A: 1, A: 2}}]\n",
     2,
     42,
     {"duplicate key \"A\" in steps[0].env"}},
    {"StepCwdEmpty",
     "id: a\nsteps: [{id: s, shell: echo, cwd: \"\"}]\n",
     2,
     35,
     {"steps[0].cwd: must not be empty"}},
    {"StepTimeoutNoUnit",
     "id: a\nsteps: [{id: s, shell: echo, timeout: 10}]\n",
     2,
     39,
     {"steps[0].timeout: 10 has no unit"}},
    {"StepRetriesBad",
     "id: a\nsteps: [{id: s, shell: echo, retries: {count: x}}]\n",
     2,
     47,
     {"steps[0].retries.count: expected an integer"}},
    {"StepContinueOnErrorQuoted",
     "id: a\nsteps: [{id: s, shell: echo, continue_on_error: \"true\"}]\n",
     2,
     49,
     {"continue_on_error: expected true or false", "remove the quotes"}},
    {"StepOutputsNotAList",
     "id: a\nsteps: [{id: s, shell: echo, outputs: version}]\n",
     2,
     39,
     {"steps[0].outputs: expected a list of output keys"}},
    {"StepOutputBadKey",
     "id: a\nsteps: [{id: s, shell: echo, outputs: [Version]}]\n",
     2,
     40,
     {"\"Version\" is not a valid output key"}},
    {"StepOutputDuplicate",
     "id: a\nsteps: [{id: s, shell: echo, outputs: [v, v]}]\n",
     2,
     43,
     {"output \"v\" is listed twice"}},
    {"StepOutputEnvCollision",
     "id: a\nsteps:\n  - {id: a, shell: echo, outputs: [b_c]}\n  - {id: a_b, shell: echo, "
     "outputs: [c]}\n",
     4,
     38,
     {"output \"c\" of step \"a_b\" and output \"b_c\" of step \"a\"", "AUTOMAN_OUT_A_B_C",
      "rename"}},
    {"RollbackNotAList",
     "id: a\n" STEPS "rollback: echo\n",
     3,
     11,
     {"rollback: expected a list of rollback steps"}},
    {"RollbackEmpty",
     "id: a\n" STEPS "rollback: []\n",
     3,
     11,
     {"rollback: the list is empty", "remove the key"}},
    {"RollbackStepBad",
     "id: a\n" STEPS "rollback: [{id: r}]\n",
     3,
     12,
     {"rollback[0]: a step needs a command"}},
    // --- later-issue keys ------------------------------------------------------------------
    {"DangerousQuoted",
     "id: a\ndangerous: \"true\"\n" STEPS,
     2,
     12,
     {"dangerous: expected true or false", "remove the quotes"}},
    {"DangerousYes",
     "id: a\ndangerous: yes\n" STEPS,
     2,
     12,
     {"dangerous: expected true or false", "write true or false"}},
    {"DangerousNumber",
     "id: a\ndangerous: 1\n" STEPS,
     2,
     12,
     {"dangerous: expected true or false, got a number"}},
    {"RequiresBadShape",
     "id: a\nrequires: admin\n" STEPS,
     2,
     11,
     {"\"admin\" is not a permission", "runs.execute"}},
    {"RequiresUpperCase", "id: a\nrequires: Runs.Execute\n" STEPS, 2, 11, {"is not a permission"}},
    {"AllowedRolesNotAList",
     "id: a\nallowed_roles: admin\n" STEPS,
     2,
     16,
     {"allowed_roles: expected a list of role names"}},
    {"AllowedRoleBadName",
     "id: a\nallowed_roles: [Admin]\n" STEPS,
     2,
     17,
     {"allowed_roles[0]: \"Admin\" is not a role name"}},
    {"AllowedRoleDuplicate",
     "id: a\nallowed_roles: [ops, ops]\n" STEPS,
     2,
     22,
     {"role \"ops\" is listed twice"}},
    {"ConcurrencyWrongType",
     "id: a\nconcurrency: 3\n" STEPS,
     2,
     14,
     {"concurrency: expected a map {key, limit, rate} or a list of them"}},
    {"ConcurrencyMissingKey",
     "id: a\nconcurrency: {limit: 2}\n" STEPS,
     2,
     14,
     {"concurrency: missing required key \"key\""}},
    {"ConcurrencyEmptyKey",
     "id: a\nconcurrency: {key: \"\"}\n" STEPS,
     2,
     20,
     {"concurrency.key: must not be empty"}},
    {"ConcurrencyLimitZero",
     "id: a\nconcurrency: {key: web, limit: 0}\n" STEPS,
     2,
     32,
     {"concurrency.limit: 0 is out of range", "at least 1"}},
    {"ConcurrencyUnknownKey",
     "id: a\nconcurrency: [{key: web, limt: 2}]\n" STEPS,
     2,
     26,
     {"unknown key \"limt\" in concurrency[0]; did you mean \"limit\"?"}},
    {"SchedulesNotAList",
     "id: a\nschedules: {id: x, every: 1m}\n" STEPS,
     2,
     12,
     {"schedules: expected a list of schedules", "'- '"}},
    {"ScheduleNotAMap",
     "id: a\nschedules: [nightly]\n" STEPS,
     2,
     13,
     {"schedules[0]: expected a schedule"}},
    {"ScheduleMissingId",
     "id: a\nschedules: [{every: 1m}]\n" STEPS,
     2,
     13,
     {"schedules[0]: missing required key \"id\""}},
    {"ScheduleBadId",
     "id: a\nschedules: [{id: Nightly, every: 1m}]\n" STEPS,
     2,
     18,
     {"\"Nightly\" is not a valid schedule id"}},
    {"ScheduleDuplicateId",
     "id: a\nschedules:\n  - {id: n, every: 1m}\n  - {id: n, every: 2m}\n" STEPS,
     4,
     10,
     {"duplicate schedule id \"n\""}},
    {"ScheduleWithoutSpec",
     "id: a\nschedules: [{id: n}]\n" STEPS,
     2,
     13,
     {"exactly one of cron", "every", "at"}},
    {"ScheduleTwoSpecs",
     "id: a\nschedules: [{id: n, every: 1m, cron: \"* * * * *\"}]\n" STEPS,
     2,
     13,
     {"give exactly one of cron, every or at, not several"}},
    {"ScheduleCronEmpty",
     "id: a\nschedules: [{id: n, cron: \"\"}]\n" STEPS,
     2,
     27,
     {"schedules[0].cron: must not be empty"}},
    {"ScheduleEveryNoUnit",
     "id: a\nschedules: [{id: n, every: 60}]\n" STEPS,
     2,
     28,
     {"schedules[0].every: 60 has no unit"}},
    {"ScheduleEveryTooShort",
     "id: a\nschedules: [{id: n, every: 500ms}]\n" STEPS,
     2,
     28,
     {"500ms is too short", "1s"}},
    {"ScheduleAtInvalid",
     "id: a\nschedules: [{id: n, at: tomorrow}]\n" STEPS,
     2,
     25,
     {"\"tomorrow\" is not an RFC 3339 instant", "2026-01-31T09:00:00Z"}},
    {"ScheduleTzDotDot",
     "id: a\nschedules: [{id: n, every: 1m, tz: ../../etc/passwd}]\n" STEPS,
     2,
     36,
     {"is not a time zone name", "Europe/Paris"}},
    {"ScheduleTzAbsolute",
     "id: a\nschedules: [{id: n, every: 1m, tz: /etc/localtime}]\n" STEPS,
     2,
     36,
     {"is not a time zone name"}},
    {"ScheduleTzBadChars",
     "id: a\nschedules: [{id: n, every: 1m, tz: \"Europe/Par is\"}]\n" STEPS,
     2,
     36,
     {"is not a time zone name"}},
    {"ScheduleTzEmpty",
     "id: a\nschedules: [{id: n, every: 1m, tz: \"\"}]\n" STEPS,
     2,
     36,
     {"schedules[0].tz: must not be empty"}},
    {"ScheduleLeadBad",
     "id: a\nschedules: [{id: n, every: 1m, lead: soon}]\n" STEPS,
     2,
     38,
     {"schedules[0].lead", "invalid duration"}},
    {"ScheduleJitterBad",
     "id: a\nschedules: [{id: n, every: 1m, jitter: 5}]\n" STEPS,
     2,
     40,
     {"schedules[0].jitter: 5 has no unit"}},
    {"ScheduleMaxLatenessBad",
     "id: a\nschedules: [{id: n, every: 1m, max_lateness: 1x}]\n" STEPS,
     2,
     46,
     {"schedules[0].max_lateness", "unknown unit"}},
    {"ScheduleMisfireBad",
     "id: a\nschedules: [{id: n, every: 1m, misfire: later}]\n" STEPS,
     2,
     41,
     {"schedules[0].misfire: \"later\" is not valid", "skip, run_once, run_all"}},
    {"ScheduleOverlapBad",
     "id: a\nschedules: [{id: n, every: 1m, overlap: wait}]\n" STEPS,
     2,
     41,
     {"schedules[0].overlap: \"wait\" is not valid", "cancel_previous"}},
    {"ScheduleActiveBad",
     "id: a\nschedules: [{id: n, every: 1m, active: on}]\n" STEPS,
     2,
     40,
     {"schedules[0].active: expected true or false"}},
    {"ScheduleDstNotAMap",
     "id: a\nschedules: [{id: n, every: 1m, dst: shift}]\n" STEPS,
     2,
     37,
     {"schedules[0].dst: expected a map {gap: shift|skip"}},
    {"ScheduleDstGapBad",
     "id: a\nschedules: [{id: n, every: 1m, dst: {gap: jump}}]\n" STEPS,
     2,
     43,
     {"schedules[0].dst.gap: \"jump\" is not valid", "shift, skip"}},
    {"ScheduleDstRepeatBad",
     "id: a\nschedules: [{id: n, every: 1m, dst: {repeat: last}}]\n" STEPS,
     2,
     46,
     {"schedules[0].dst.repeat: \"last\" is not valid", "first, both"}},
    {"ScheduleUnknownKey",
     "id: a\nschedules: [{id: n, every: 1m, timezone: UTC}]\n" STEPS,
     2,
     32,
     {"unknown key \"timezone\" in schedules[0]"}},
    {"ScheduleParamUnknown",
     "id: a\nschedules: [{id: n, every: 1m, params: {x: 1}}]\n" STEPS,
     2,
     41,
     {"\"x\" is not a parameter of this runbook", "declares no params"}},
    {"ScheduleParamUnknownListsParams",
     "id: a\nparams: {y: {}}\nschedules: [{id: n, every: 1m, params: {x: 1}}]\n" STEPS,
     3,
     41,
     {"\"x\" is not a parameter", "declared params: y"}},
    {"ScheduleParamBadValue",
     "id: a\nparams: {n: {type: int}}\nschedules: [{id: s, every: 1m, params: {n: ten}}]\n" STEPS,
     3,
     44,
     {"schedules[0].params.n", "must be an integer"}},
    {"ScheduleParamSecret",
     "id: a\nparams: {t: {type: secret}}\nschedules: [{id: s, every: 1m, params: {t: x}}]\n" STEPS,
     3,
     41,
     {"secret parameters cannot be set in a runbook file"}},
    {"ScheduleMissingRequiredParam",
     "id: a\nparams: {svc: {required: true}}\nschedules: [{id: s, every: 1m}]\n" STEPS,
     3,
     13,
     {"requires parameter \"svc\"", "params: {svc: ...}"}},
    {"ScheduleCronTooLong",
     "id: a\nschedules: [{id: n, cron: \"" + std::string(257, '*') + "\"}]\n" STEPS,
     2,
     27,
     {"schedules[0].cron: the expression is longer than 256 characters"}},
    {"ScheduleTzTooLong",
     "id: a\nschedules: [{id: n, every: 1m, tz: " + std::string(65, 'A') + "}]\n" STEPS,
     2,
     36,
     {"is not a time zone name"}},
    {"ScheduleParamsNotAMap",
     "id: a\nschedules: [{id: n, every: 1m, params: [a]}]\n" STEPS,
     2,
     40,
     {"schedules[0].params: expected a map from parameter name to value"}},
    {"ScheduleParamNull",
     "id: a\nparams: {x: {}}\nschedules: [{id: n, every: 1m, params: {x: }}]\n" STEPS,
     3,
     41,
     {"schedules[0].params.x: has no value"}},
    {"StepCwdNotAString",
     "id: a\nsteps: [{id: s, shell: echo, cwd: [a]}]\n",
     2,
     35,
     {"steps[0].cwd: expected a directory, got a list"}},
    {"ConcurrencyLimitQuoted",
     "id: a\nconcurrency: {key: web, limit: \"2\"}\n" STEPS,
     2,
     32,
     {"concurrency.limit: expected an integer of at least 1", "remove the quotes"}},
    {"SandboxBadScalar",
     "id: a\nsandbox: none\n" STEPS,
     2,
     10,
     {"sandbox: \"none\" is not valid", "sandbox: off"}},
    {"SandboxWrongType", "id: a\nsandbox: [x]\n" STEPS, 2, 10, {"sandbox: expected off or a map"}},
    {"SandboxPidBad",
     "id: a\nsandbox: {pid: shared}\n" STEPS,
     2,
     16,
     {"sandbox.pid: \"shared\" is not valid", "host, private"}},
    {"SandboxNetworkBad",
     "id: a\nsandbox: {network: bridge}\n" STEPS,
     2,
     20,
     {"sandbox.network: \"bridge\" is not valid", "none, host"}},
    {"SandboxWritableRelative",
     "id: a\nsandbox: {writable: [tmp]}\n" STEPS,
     2,
     22,
     {"sandbox.writable[0]: \"tmp\" is not an absolute path"}},
    {"SandboxWritableDotDot",
     "id: a\nsandbox: {writable: [/srv/../etc]}\n" STEPS,
     2,
     22,
     {"is not an absolute path without '..'"}},
    {"SandboxWritableNotAList",
     "id: a\nsandbox: {writable: /tmp}\n" STEPS,
     2,
     21,
     {"sandbox.writable: expected a list of absolute paths"}},
    {"SandboxRunAsBad",
     "id: a\nsandbox: {run_as: \"root user\"}\n" STEPS,
     2,
     19,
     {"sandbox.run_as: \"root user\" is not a user name"}},
    {"SandboxMemoryUnit",
     "id: a\nsandbox: {memory: 64MB}\n" STEPS,
     2,
     19,
     {"sandbox.memory: unknown unit \"MB\" in \"64MB\"; use KiB, MiB, GiB or TiB"}},
    {"SandboxMemoryTooSmall",
     "id: a\nsandbox: {memory: 1MiB}\n" STEPS,
     2,
     19,
     {"sandbox.memory: 1MiB is below the minimum of 4 MiB"}},
    {"SandboxProcessesRange",
     "id: a\nsandbox: {processes: 1}\n" STEPS,
     2,
     22,
     {"sandbox.processes: 1 is out of range; write an integer from 2 to 1000000"}},
    {"SandboxCpuTimeShort",
     "id: a\nsandbox: {cpu_time: 500ms}\n" STEPS,
     2,
     21,
     {"sandbox.cpu_time: 500ms is shorter than the 1s minimum"}},
    {"SandboxUnknownKey",
     "id: a\nsandbox: {net: none}\n" STEPS,
     2,
     11,
     {"unknown key \"net\" in sandbox; did you mean \"network\"?"}},
};

INSTANTIATE_TEST_SUITE_P(Runbook, ValidationError, ::testing::ValuesIn(kErrorCases),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace automan
