// The single-threaded part of the Store conformance suite (see store_conformance.h).
#include "store_conformance.h"

#include <algorithm>
#include <set>

namespace automan::testing {
namespace {

// A run with every optional field set and every field away from its default.
Run FullRun(const RunbookVersion& v) {
  Run r = SampleRun(v);
  r.status = RunStatus::kRunning;
  r.trigger = Trigger::kSchedule;
  r.triggered_by = "schedule:nightly \"quoted\"";
  r.params = {
      {"host", {"string", "db-01.example.com"}},
      {"count", {"int", "-42"}},
      {"ratio", {"number", "0.125"}},
      {"force", {"bool", "true"}},
      {"mode", {"enum", "fast"}},
      {"note", {"string", "tabs\there, \"quotes\", back\\slash, newline\n, ünïcødé ✓ \x01"}},
      {"empty", {"string", ""}},
  };
  r.priority = -7;
  r.attempt = 2;
  r.max_attempts = 5;
  r.not_before = At(10);
  r.started_at = At(11);
  r.finished_at = At(12);
  r.deadline_at = At(13);
  r.outputs = {
      {"check", {{"free_gb", "12"}, {"mount", "/var"}}},
      {"report", {{"summary", "line 1\nline 2 \"q\" ✓"}}},
      {"nothing", {}},
  };
  r.retry_of = "0190a8f2-0000-7000-8000-000000000001";
  r.idempotency_key = "deploy-2026-03-29";
  r.error = "step \"check\" failed: exit 3";
  r.lease_owner = "worker-7@host";
  r.lease_expires_at = At(14);
  r.fence = int64_t{1} << 40;
  return r;
}

// ---------------------------------------------------------------------------------------
// Runbook versions

TEST_P(StoreConformanceTest, RunbookVersionRoundTrip) {
  RunbookVersion v = SampleVersion("deploy", "id: deploy\n# ✓ \"quoted\"\nsteps: []\n");
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(v); }));
  auto got = GetVersion(v.version);
  ASSERT_OK(got);
  EXPECT_EQ(*got, v);
}

TEST_P(StoreConformanceTest, PutRunbookVersionIsIdempotent) {
  RunbookVersion v = SampleVersion();
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(v); }));
  RunbookVersion again = v;
  again.source = "somewhere/else.yaml";  // informational: the stored row does not change
  again.created_at = At(100);
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(again); }));
  auto got = GetVersion(v.version);
  ASSERT_OK(got);
  EXPECT_EQ(*got, v);
}

TEST_P(StoreConformanceTest, PutRunbookVersionWithOtherContentIsRefused) {
  RunbookVersion v = SampleVersion();
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(v); }));
  RunbookVersion forged = v;
  forged.yaml = "id: disk-cleanup\nsteps: [rm -rf /]\n";
  ExpectError(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(forged); }),
              ErrorCode::kAlreadyExists, {v.version, "different content"});
  auto got = GetVersion(v.version);
  ASSERT_OK(got);
  EXPECT_EQ(got->yaml, v.yaml);
}

TEST_P(StoreConformanceTest, GetMissingRunbookVersionIsNotFound) {
  ExpectError(GetVersion("sha256:feed").status(), ErrorCode::kNotFound,
              {"sha256:feed", "does not exist"});
}

// ---------------------------------------------------------------------------------------
// Runs

TEST_P(StoreConformanceTest, RunRoundTripWithOptionalFieldsUnset) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(Seed(v, r));
  auto got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(*got, r);
  EXPECT_FALSE(got->not_before.has_value());
  EXPECT_FALSE(got->retry_of.has_value());
  EXPECT_FALSE(got->idempotency_key.has_value());
  EXPECT_FALSE(got->lease_expires_at.has_value());
  EXPECT_TRUE(got->params.empty());
  EXPECT_TRUE(got->outputs.empty());
}

TEST_P(StoreConformanceTest, RunRoundTripWithEveryFieldSet) {
  RunbookVersion v = SampleVersion();
  Run r = FullRun(v);
  ASSERT_OK(Seed(v, r));
  auto got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(*got, r);
  EXPECT_EQ(got->created_at, At(1));  // microseconds kept
  EXPECT_EQ(got->outputs.at("report").at("summary"), "line 1\nline 2 \"q\" ✓");
}

TEST_P(StoreConformanceTest, EveryRunStatusAndTriggerRoundTrips) {
  RunbookVersion v = SampleVersion();
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(v); }));
  const RunStatus statuses[] = {RunStatus::kPending,   RunStatus::kRunning,    RunStatus::kWaiting,
                                RunStatus::kSuccess,   RunStatus::kFailed,     RunStatus::kTimeout,
                                RunStatus::kCancelled, RunStatus::kRolledBack, RunStatus::kDead};
  const Trigger triggers[] = {Trigger::kManual, Trigger::kApi,     Trigger::kSchedule,
                              Trigger::kEvent,  Trigger::kWebhook, Trigger::kRetry,
                              Trigger::kChain};
  std::vector<Run> runs;
  for (size_t i = 0; i < 9; ++i) {
    Run r = SampleRun(v);
    r.status = statuses[i];
    r.trigger = triggers[i % 7];
    runs.push_back(r);
  }
  ASSERT_OK(Write([&](StoreTx& tx) {
    for (const Run& r : runs) AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(r));
    return Status::Ok();
  }));
  for (const Run& r : runs) {
    auto got = GetRun(r.id);
    ASSERT_OK(got);
    EXPECT_EQ(*got, r);
  }
}

TEST_P(StoreConformanceTest, SecretParamsAreNeverStored) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  r.params = {{"token", {"secret", "hunter2-do-not-store"}}, {"user", {"string", "ops"}}};
  ASSERT_OK(Seed(v, r));

  auto got = GetRun(r.id);
  ASSERT_OK(got);
  ASSERT_EQ(got->params.size(), 2u);
  EXPECT_EQ(got->params.at("token"), (ParamValue{"secret", ""}));  // "secret: set"
  EXPECT_EQ(got->params.at("user"), (ParamValue{"string", "ops"}));

  // UpdateRun and ListRuns redact the same way.
  r.params["token"].text = "another-secret";
  r.status = RunStatus::kSuccess;
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.UpdateRun(r); }));
  auto listed = ListRuns(RunFilter{});
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().params.at("token"), (ParamValue{"secret", ""}));
  EXPECT_EQ(listed->front().status, RunStatus::kSuccess);
}

// A queued run's secret travels sealed (SecretParamSealer); the store keeps the sealed form
// as given, never the text, and forgets it when an update no longer carries it.
TEST_P(StoreConformanceTest, SealedSecretParamsRoundTripAndCanBeForgotten) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  r.params = {{"token", {"secret", "clear-text-never-stored", "c2VhbGVk"}}};
  ASSERT_OK(Seed(v, r));
  auto got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->params.at("token"), (ParamValue{"secret", "", "c2VhbGVk"}));

  r.params["token"].sealed.clear();
  r.status = RunStatus::kSuccess;
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.UpdateRun(r); }));
  got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->params.at("token"), (ParamValue{"secret", ""}));
}

TEST_P(StoreConformanceTest, InsertDuplicateRunIsAlreadyExists) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(Seed(v, r));
  Run dup = r;
  dup.triggered_by = "someone else";
  ExpectError(Write([&](StoreTx& tx) { return tx.InsertRun(dup); }), ErrorCode::kAlreadyExists,
              {r.id, "already exists"});
  auto got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(*got, r);
}

TEST_P(StoreConformanceTest, InsertRunOfUnknownRunbookVersionIsNotFound) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ExpectError(Write([&](StoreTx& tx) { return tx.InsertRun(r); }), ErrorCode::kNotFound,
              {"runbook version", v.version});
  ExpectError(GetRun(r.id).status(), ErrorCode::kNotFound);
}

TEST_P(StoreConformanceTest, GetMissingRunIsNotFound) {
  ExpectError(GetRun("0190a8f2-0000-7000-8000-00000000dead").status(), ErrorCode::kNotFound,
              {"0190a8f2-0000-7000-8000-00000000dead", "does not exist"});
}

TEST_P(StoreConformanceTest, MalformedRowsAreInvalidArgument) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(Seed(v, r));
  Run no_id = SampleRun(v);
  no_id.id.clear();
  ExpectError(Write([&](StoreTx& tx) { return tx.InsertRun(no_id); }), ErrorCode::kInvalidArgument,
              {"run id"});
  Run bad_attempts = SampleRun(v);
  bad_attempts.max_attempts = 0;
  ExpectError(Write([&](StoreTx& tx) { return tx.InsertRun(bad_attempts); }),
              ErrorCode::kInvalidArgument, {"max_attempts"});
  RunbookVersion no_version = v;
  no_version.version.clear();
  ExpectError(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(no_version); }),
              ErrorCode::kInvalidArgument, {"version"});
  Attempt a{.run_id = r.id, .number = 0};
  ExpectError(Write([&](StoreTx& tx) { return tx.UpsertAttempt(a); }), ErrorCode::kInvalidArgument,
              {"attempt number 0"});
  StepRun s{.run_id = r.id, .attempt = 1, .step_id = ""};
  ExpectError(Write([&](StoreTx& tx) { return tx.UpsertStepRun(s); }), ErrorCode::kInvalidArgument,
              {"step id"});
  std::vector<LogLine> lines = {SampleLine(r.id, 1, 0)};
  ExpectError(Write([&](StoreTx& tx) { return tx.AppendLogLines(lines); }),
              ErrorCode::kInvalidArgument, {"seq 0"});
}

TEST_P(StoreConformanceTest, UpdateRunReplacesEveryField) {
  RunbookVersion v1 = SampleVersion("a", "id: a\n");
  RunbookVersion v2 = SampleVersion("b", "id: b\n");
  Run r = SampleRun(v1);
  r.fence = 3;
  ASSERT_OK(Seed(v1, r));
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(v2); }));

  Run updated = FullRun(v2);
  updated.id = r.id;
  updated.fence = r.fence;
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.UpdateRun(updated); }));
  auto got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(*got, updated);

  // And back to the minimal form: optional fields are cleared, maps emptied.
  Run minimal = SampleRun(v1);
  minimal.id = r.id;
  minimal.fence = r.fence;
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.UpdateRun(minimal); }));
  got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(*got, minimal);
}

TEST_P(StoreConformanceTest, UpdateRunWithStaleFenceIsAborted) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  r.fence = 5;
  ASSERT_OK(Seed(v, r));

  Run stale = r;
  stale.fence = 4;
  stale.status = RunStatus::kSuccess;
  ExpectError(Write([&](StoreTx& tx) { return tx.UpdateRun(stale); }), ErrorCode::kAborted,
              {r.id, "stale", "4", "5"});
  Run newer = r;
  newer.fence = 6;  // a fence the run never had is as wrong as an old one
  ExpectError(Write([&](StoreTx& tx) { return tx.UpdateRun(newer); }), ErrorCode::kAborted);

  auto got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(*got, r);  // nothing changed
}

TEST_P(StoreConformanceTest, UpdateMissingRunIsNotFound) {
  RunbookVersion v = SampleVersion();
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(v); }));
  Run r = SampleRun(v);
  ExpectError(Write([&](StoreTx& tx) { return tx.UpdateRun(r); }), ErrorCode::kNotFound, {r.id});
}

TEST_P(StoreConformanceTest, CheckFence) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  r.fence = 9;
  ASSERT_OK(Seed(v, r));
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.CheckFence(r.id, 9); }));
  ASSERT_OK(Read([&](StoreTx& tx) { return tx.CheckFence(r.id, 9); }));
  ExpectError(Write([&](StoreTx& tx) { return tx.CheckFence(r.id, 8); }), ErrorCode::kAborted,
              {r.id, "8", "9"});
  ExpectError(Write([&](StoreTx& tx) { return tx.CheckFence("no-such-run", 9); }),
              ErrorCode::kNotFound, {"no-such-run"});

  // UpdateRun does not move the fence: only a claim does.
  r.status = RunStatus::kSuccess;
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.UpdateRun(r); }));
  ASSERT_OK(Read([&](StoreTx& tx) { return tx.CheckFence(r.id, 9); }));
}

TEST_P(StoreConformanceTest, FencedWriteOfLinesRollsBackWithTheFence) {
  // The engine's pattern: CheckFence, then write, in one transaction.
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  r.fence = 2;
  ASSERT_OK(Seed(v, r));
  std::vector<LogLine> lines = {SampleLine(r.id, 1, 1)};
  ExpectError(Write([&](StoreTx& tx) {
                AUTOMAN_RETURN_IF_ERROR(tx.CheckFence(r.id, 1));
                return tx.AppendLogLines(lines);
              }),
              ErrorCode::kAborted);
  auto got = ReadLines(LogQuery{.run_id = r.id});
  ASSERT_OK(got);
  EXPECT_TRUE(got->empty());
}

// ---------------------------------------------------------------------------------------
// Transactions

TEST_P(StoreConformanceTest, ErrorFromTheCallbackRollsEverythingBack) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  std::vector<LogLine> lines = {SampleLine(r.id, 1, 1), SampleLine(r.id, 1, 2)};
  Status s = Write([&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(v));
    AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(r));
    AUTOMAN_RETURN_IF_ERROR(tx.UpsertAttempt(Attempt{.run_id = r.id, .number = 1}));
    AUTOMAN_RETURN_IF_ERROR(
        tx.UpsertStepRun(StepRun{.run_id = r.id, .attempt = 1, .step_id = "s"}));
    AUTOMAN_RETURN_IF_ERROR(tx.AppendLogLines(lines));
    // Visible inside the transaction...
    AUTOMAN_ASSIGN_OR_RETURN(Run inside, tx.GetRun(r.id));
    if (inside.id != r.id) return Error(ErrorCode::kInternal, "wrong run");
    return Error(ErrorCode::kCancelled, "the caller changed its mind");
  });
  // ...the callback's status comes back unchanged...
  EXPECT_EQ(s.code(), ErrorCode::kCancelled);
  EXPECT_EQ(s.message(), "the caller changed its mind");
  // ...and nothing is visible afterwards.
  ExpectError(GetVersion(v.version).status(), ErrorCode::kNotFound);
  ExpectError(GetRun(r.id).status(), ErrorCode::kNotFound);
  auto attempts = ListAttempts(r.id);
  ASSERT_OK(attempts);
  EXPECT_TRUE(attempts->empty());
  auto steps = ListStepRuns(r.id);
  ASSERT_OK(steps);
  EXPECT_TRUE(steps->empty());
  auto got_lines = ReadLines(LogQuery{.run_id = r.id});
  ASSERT_OK(got_lines);
  EXPECT_TRUE(got_lines->empty());
}

TEST_P(StoreConformanceTest, FailedStatementInsideTransactionRollsBackEarlierWrites) {
  RunbookVersion v = SampleVersion();
  Run existing = SampleRun(v);
  ASSERT_OK(Seed(v, existing));
  Run fresh = SampleRun(v);
  ExpectError(Write([&](StoreTx& tx) {
                AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(fresh));
                return tx.InsertRun(existing);  // duplicate
              }),
              ErrorCode::kAlreadyExists);
  ExpectError(GetRun(fresh.id).status(), ErrorCode::kNotFound);
}

TEST_P(StoreConformanceTest, WritesInAReadTransactionAreRefused) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ExpectError(Read([&](StoreTx& tx) { return tx.PutRunbookVersion(v); }),
              ErrorCode::kFailedPrecondition, {"read transaction"});
  ASSERT_OK(Seed(v, r));
  std::vector<LogLine> lines = {SampleLine(r.id, 1, 1)};
  ExpectError(Read([&](StoreTx& tx) { return tx.InsertRun(SampleRun(v)); }),
              ErrorCode::kFailedPrecondition, {"InsertRun"});
  ExpectError(Read([&](StoreTx& tx) { return tx.UpdateRun(r); }), ErrorCode::kFailedPrecondition);
  ExpectError(Read([&](StoreTx& tx) { return tx.UpsertAttempt({.run_id = r.id}); }),
              ErrorCode::kFailedPrecondition);
  ExpectError(Read([&](StoreTx& tx) { return tx.UpsertStepRun({.run_id = r.id, .step_id = "s"}); }),
              ErrorCode::kFailedPrecondition);
  ExpectError(Read([&](StoreTx& tx) { return tx.AppendLogLines(lines); }),
              ErrorCode::kFailedPrecondition, {"AppendLogLines"});
}

TEST_P(StoreConformanceTest, DescribeAndSchemaVersion) {
  EXPECT_FALSE(store_->Describe().empty());
  EXPECT_GE(store_->SchemaVersion(), 1);
}

// ---------------------------------------------------------------------------------------
// Attempts and step runs

TEST_P(StoreConformanceTest, AttemptsUpsertAndListInNumberOrder) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(Seed(v, r));
  Attempt a2{.run_id = r.id,
             .number = 2,
             .status = RunStatus::kRunning,
             .worker = "w2",
             .started_at = At(20)};
  Attempt a1{.run_id = r.id,
             .number = 1,
             .status = RunStatus::kRunning,
             .worker = "w1",
             .started_at = At(10)};
  ASSERT_OK(Write([&](StoreTx& tx) {
    AUTOMAN_RETURN_IF_ERROR(tx.UpsertAttempt(a2));
    return tx.UpsertAttempt(a1);
  }));
  // Replace attempt 1 with its final state.
  a1.status = RunStatus::kFailed;
  a1.finished_at = At(15);
  a1.error = "exit 1";
  a1.worker = "w1b";
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.UpsertAttempt(a1); }));

  auto got = ListAttempts(r.id);
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0], a1);
  EXPECT_EQ((*got)[1], a2);
  EXPECT_FALSE((*got)[1].finished_at.has_value());

  auto none = ListAttempts("no-such-run");
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
}

TEST_P(StoreConformanceTest, AttemptOfMissingRunIsNotFound) {
  ExpectError(Write([&](StoreTx& tx) {
                return tx.UpsertAttempt(Attempt{.run_id = "no-such-run", .number = 1});
              }),
              ErrorCode::kNotFound, {"no-such-run"});
}

TEST_P(StoreConformanceTest, StepRunsUpsertAndListByAttemptThenIndex) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(Seed(v, r));
  StepRun b1{.run_id = r.id,
             .attempt = 1,
             .step_id = "b",
             .index = 1,
             .status = StepStatus::kFailed,
             .exit_code = 3,
             .started_at = At(2),
             .finished_at = At(3),
             .error = "exit 3"};
  StepRun a1{.run_id = r.id,
             .attempt = 1,
             .step_id = "a",
             .index = 0,
             .status = StepStatus::kSuccess,
             .exit_code = 0,
             .started_at = At(1),
             .finished_at = At(2),
             .outputs = {{"k", "v"}, {"multi", "a\nb \"c\" ✓"}}};
  StepRun a2{.run_id = r.id,
             .attempt = 2,
             .step_id = "a",
             .index = 0,
             .status = StepStatus::kRunning,
             .started_at = At(5)};
  StepRun c1{.run_id = r.id,
             .attempt = 1,
             .step_id = "c",
             .index = 2,
             .status = StepStatus::kCancelled,
             .signal = 9};
  ASSERT_OK(Write([&](StoreTx& tx) {
    for (const StepRun* s : {&a2, &c1, &b1, &a1}) {
      AUTOMAN_RETURN_IF_ERROR(tx.UpsertStepRun(*s));
    }
    return Status::Ok();
  }));
  // Replace a2 with its final state.
  a2.status = StepStatus::kTimeout;
  a2.finished_at = At(9);
  a2.signal = 15;
  a2.error = "timed out after 4s";
  a2.outputs = {{"partial", "yes"}};
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.UpsertStepRun(a2); }));

  auto got = ListStepRuns(r.id);
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 4u);
  EXPECT_EQ((*got)[0], a1);
  EXPECT_EQ((*got)[1], b1);
  EXPECT_EQ((*got)[2], c1);
  EXPECT_EQ((*got)[3], a2);
  EXPECT_FALSE((*got)[2].exit_code.has_value());
  EXPECT_FALSE((*got)[2].started_at.has_value());
}

TEST_P(StoreConformanceTest, EveryStepStatusRoundTrips) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(Seed(v, r));
  const StepStatus all[] = {StepStatus::kPending, StepStatus::kRunning, StepStatus::kSuccess,
                            StepStatus::kFailed,  StepStatus::kTimeout, StepStatus::kCancelled,
                            StepStatus::kSkipped};
  std::vector<StepRun> steps;
  for (int i = 0; i < 7; ++i) {
    steps.push_back(StepRun{.run_id = r.id,
                            .attempt = 1,
                            .step_id = "s" + std::to_string(i),
                            .index = i,
                            .status = all[i]});
  }
  ASSERT_OK(Write([&](StoreTx& tx) {
    for (const StepRun& s : steps) AUTOMAN_RETURN_IF_ERROR(tx.UpsertStepRun(s));
    return Status::Ok();
  }));
  auto got = ListStepRuns(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(*got, steps);
}

TEST_P(StoreConformanceTest, StepRunOfMissingRunIsNotFound) {
  ExpectError(
      Write([&](StoreTx& tx) {
        return tx.UpsertStepRun(StepRun{.run_id = "no-such-run", .attempt = 1, .step_id = "s"});
      }),
      ErrorCode::kNotFound, {"no-such-run"});
}

// ---------------------------------------------------------------------------------------
// Log lines

TEST_P(StoreConformanceTest, LogLinesRoundTrip) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(Seed(v, r));
  std::vector<LogLine> lines = {
      SampleLine(r.id, 1, 1, "build", LogStream::kStdout),
      SampleLine(r.id, 1, 2, "build", LogStream::kStderr),
      SampleLine(r.id, 1, 3, "build", LogStream::kSystem),
      SampleLine(r.id, 1, 4, "test", LogStream::kStdout),
  };
  lines[1].text = "";  // empty line
  lines[2].text = "output truncated ✓ \"q\" \t\\";
  lines[3].text = std::string(20000, 'x');  // a long piece...
  lines[3].partial = true;                  // ...that continues
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.AppendLogLines(lines); }));
  auto got = ReadLines(LogQuery{.run_id = r.id});
  ASSERT_OK(got);
  EXPECT_EQ(*got, lines);
}

TEST_P(StoreConformanceTest, AppendingEmptyBatchIsOk) {
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.AppendLogLines({}); }));
}

TEST_P(StoreConformanceTest, DuplicateLogLineWritesNothingOfTheBatch) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(Seed(v, r));
  std::vector<LogLine> first = {SampleLine(r.id, 1, 1), SampleLine(r.id, 1, 2)};
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.AppendLogLines(first); }));

  std::vector<LogLine> overlapping = {SampleLine(r.id, 1, 3), SampleLine(r.id, 1, 2),
                                      SampleLine(r.id, 1, 4)};
  ExpectError(Write([&](StoreTx& tx) { return tx.AppendLogLines(overlapping); }),
              ErrorCode::kAlreadyExists, {r.id, "seq 2"});
  std::vector<LogLine> self_dup = {SampleLine(r.id, 1, 5), SampleLine(r.id, 1, 5)};
  ExpectError(Write([&](StoreTx& tx) { return tx.AppendLogLines(self_dup); }),
              ErrorCode::kAlreadyExists);

  // The same seq in another attempt is a different line.
  std::vector<LogLine> other_attempt = {SampleLine(r.id, 2, 1)};
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.AppendLogLines(other_attempt); }));

  auto got = ReadLines(LogQuery{.run_id = r.id, .attempt = 1});
  ASSERT_OK(got);
  EXPECT_EQ(*got, first);
}

TEST_P(StoreConformanceTest, TransactionMayContinueAfterARefusedBatch) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(Seed(v, r));
  std::vector<LogLine> a = {SampleLine(r.id, 1, 1), SampleLine(r.id, 1, 2)};
  std::vector<LogLine> bad = {SampleLine(r.id, 1, 3), SampleLine(r.id, 1, 1)};
  std::vector<LogLine> b = {SampleLine(r.id, 1, 3), SampleLine(r.id, 1, 4)};
  b[0].text = "from the retried batch";
  ASSERT_OK(Write([&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.AppendLogLines(a));
    Status s = tx.AppendLogLines(bad);
    if (s.code() != ErrorCode::kAlreadyExists) {
      return Error(ErrorCode::kInternal, "expected ALREADY_EXISTS, got {}", s.ToString());
    }
    return tx.AppendLogLines(b);
  }));
  auto got = ReadLines(LogQuery{.run_id = r.id});
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ((*got)[i].seq, i + 1);
  EXPECT_EQ((*got)[2].text, "from the retried batch");
}

TEST_P(StoreConformanceTest, LogLinesOfMissingRunAreNotFound) {
  std::vector<LogLine> lines = {SampleLine("no-such-run", 1, 1)};
  ExpectError(Write([&](StoreTx& tx) { return tx.AppendLogLines(lines); }), ErrorCode::kNotFound,
              {"no-such-run"});
}

TEST_P(StoreConformanceTest, ReadLogLinesFiltersOrderAndPaging) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  Run other = SampleRun(v);
  ASSERT_OK(Seed(v, r));
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.InsertRun(other); }));
  // Attempt 2 is written first: order must come from (attempt, seq), not insertion.
  std::vector<LogLine> a2, a1;
  for (int i = 1; i <= 4; ++i) a2.push_back(SampleLine(r.id, 2, i, "build"));
  for (int i = 1; i <= 10; ++i) {
    a1.push_back(SampleLine(r.id, 1, i, i <= 6 ? "build" : "test",
                            i % 3 == 0 ? LogStream::kStderr : LogStream::kStdout));
  }
  std::vector<LogLine> noise = {SampleLine(other.id, 1, 1, "build")};
  ASSERT_OK(Write([&](StoreTx& tx) {
    AUTOMAN_RETURN_IF_ERROR(tx.AppendLogLines(noise));
    AUTOMAN_RETURN_IF_ERROR(tx.AppendLogLines(a2));
    // Within a batch, out of seq order.
    std::vector<LogLine> shuffled(a1.rbegin(), a1.rend());
    return tx.AppendLogLines(shuffled);
  }));

  auto all = ReadLines(LogQuery{.run_id = r.id});
  ASSERT_OK(all);
  std::vector<LogLine> expected = a1;
  expected.insert(expected.end(), a2.begin(), a2.end());
  EXPECT_EQ(*all, expected);

  auto attempt2 = ReadLines(LogQuery{.run_id = r.id, .attempt = 2});
  ASSERT_OK(attempt2);
  EXPECT_EQ(*attempt2, a2);

  auto test_step = ReadLines(LogQuery{.run_id = r.id, .attempt = 1, .step_id = "test"});
  ASSERT_OK(test_step);
  EXPECT_EQ(*test_step, std::vector<LogLine>(a1.begin() + 6, a1.end()));

  auto stderr_lines = ReadLines(LogQuery{.run_id = r.id, .stream = LogStream::kStderr});
  ASSERT_OK(stderr_lines);
  ASSERT_EQ(stderr_lines->size(), 3u);
  for (const LogLine& l : *stderr_lines) EXPECT_EQ(l.seq % 3, 0);

  auto combined = ReadLines(
      LogQuery{.run_id = r.id, .step_id = "build", .stream = LogStream::kStdout, .after_seq = 2});
  ASSERT_OK(combined);
  // attempt 1: seqs 4, 5 (3 and 6 are stderr); attempt 2: seqs 3, 4.
  ASSERT_EQ(combined->size(), 4u);
  EXPECT_EQ((*combined)[0].seq, 4);
  EXPECT_EQ((*combined)[1].seq, 5);
  EXPECT_EQ((*combined)[2].attempt, 2);
  EXPECT_EQ((*combined)[2].seq, 3);

  auto none = ReadLines(LogQuery{.run_id = r.id, .step_id = "no-such-step"});
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  auto unknown_run = ReadLines(LogQuery{.run_id = "no-such-run"});
  ASSERT_OK(unknown_run);
  EXPECT_TRUE(unknown_run->empty());

  // Following one attempt page by page with after_seq.
  std::vector<LogLine> paged;
  int64_t after = 0;
  int pages = 0;
  while (true) {
    auto page = ReadLines(LogQuery{.run_id = r.id, .attempt = 1, .after_seq = after, .limit = 3});
    ASSERT_OK(page);
    if (page->empty()) break;
    EXPECT_LE(page->size(), 3u);
    paged.insert(paged.end(), page->begin(), page->end());
    after = page->back().seq;
    ASSERT_LT(++pages, 10);
  }
  EXPECT_EQ(pages, 4);
  EXPECT_EQ(paged, a1);
}

TEST_P(StoreConformanceTest, ReadLogLinesValidatesTheQuery) {
  ExpectError(ReadLines(LogQuery{.run_id = "r", .limit = 0}).status(), ErrorCode::kInvalidArgument,
              {"limit", "0"});
  ExpectError(ReadLines(LogQuery{.run_id = "r", .limit = 100001}).status(),
              ErrorCode::kInvalidArgument, {"limit", "100001"});
  ExpectError(ReadLines(LogQuery{.run_id = "r", .after_seq = -1}).status(),
              ErrorCode::kInvalidArgument, {"after_seq"});
  ExpectError(ReadLines(LogQuery{}).status(), ErrorCode::kInvalidArgument, {"run id"});
  ASSERT_OK(ReadLines(LogQuery{.run_id = "r", .limit = 100000}));
  ASSERT_OK(ReadLines(LogQuery{.run_id = "r", .limit = 1}));
}

// ---------------------------------------------------------------------------------------
// Listing runs

// 12 runs over 2 runbooks, 3 statuses and 2 triggers, created in id order.
std::vector<Run> MakeListedRuns(const RunbookVersion& va, const RunbookVersion& vb) {
  std::vector<Run> runs;
  for (int i = 0; i < 12; ++i) {
    Run r = SampleRun(i % 2 == 0 ? va : vb);
    r.status =
        i % 3 == 0 ? RunStatus::kSuccess : (i % 3 == 1 ? RunStatus::kFailed : RunStatus::kRunning);
    r.trigger = i < 6 ? Trigger::kManual : Trigger::kSchedule;
    runs.push_back(r);
  }
  return runs;
}

std::vector<std::string> Ids(const std::vector<Run>& runs) {
  std::vector<std::string> ids;
  for (const Run& r : runs) ids.push_back(r.id);
  return ids;
}

// Newest first (descending id), filtered.
std::vector<std::string> Expected(std::vector<Run> runs,
                                  const std::function<bool(const Run&)>& keep) {
  std::vector<std::string> ids;
  std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.id > b.id; });
  for (const Run& r : runs) {
    if (keep(r)) ids.push_back(r.id);
  }
  return ids;
}

TEST_P(StoreConformanceTest, ListRunsNewestFirstWithFilters) {
  RunbookVersion va = SampleVersion("a", "id: a\n");
  RunbookVersion vb = SampleVersion("b", "id: b\n");
  std::vector<Run> runs = MakeListedRuns(va, vb);
  // Inserted in a scrambled order: the listing order comes from the ids.
  ASSERT_OK(Write([&](StoreTx& tx) {
    AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(va));
    AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(vb));
    for (size_t i = 0; i < runs.size(); ++i) {
      AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(runs[(i * 5) % runs.size()]));
    }
    return Status::Ok();
  }));

  auto all = ListRuns(RunFilter{});
  ASSERT_OK(all);
  EXPECT_EQ(Ids(*all), Expected(runs, [](const Run&) { return true; }));
  EXPECT_EQ((*all)[0], runs.back());  // full rows, not just ids

  auto by_runbook = ListRuns(RunFilter{.runbook_id = "b"});
  ASSERT_OK(by_runbook);
  EXPECT_EQ(Ids(*by_runbook), Expected(runs, [](const Run& r) { return r.runbook_id == "b"; }));

  auto by_status = ListRuns(RunFilter{.status = RunStatus::kFailed});
  ASSERT_OK(by_status);
  EXPECT_EQ(Ids(*by_status),
            Expected(runs, [](const Run& r) { return r.status == RunStatus::kFailed; }));

  auto by_trigger = ListRuns(RunFilter{.trigger = Trigger::kSchedule});
  ASSERT_OK(by_trigger);
  EXPECT_EQ(Ids(*by_trigger),
            Expected(runs, [](const Run& r) { return r.trigger == Trigger::kSchedule; }));

  auto combined = ListRuns(
      RunFilter{.runbook_id = "a", .status = RunStatus::kSuccess, .trigger = Trigger::kSchedule});
  ASSERT_OK(combined);
  EXPECT_EQ(Ids(*combined), Expected(runs, [](const Run& r) {
              return r.runbook_id == "a" && r.status == RunStatus::kSuccess &&
                     r.trigger == Trigger::kSchedule;
            }));
  EXPECT_FALSE(combined->empty());

  auto none = ListRuns(RunFilter{.runbook_id = "no-such-runbook"});
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());

  auto limited = ListRuns(RunFilter{.limit = 5});
  ASSERT_OK(limited);
  std::vector<std::string> newest5 = Expected(runs, [](const Run&) { return true; });
  newest5.resize(5);
  EXPECT_EQ(Ids(*limited), newest5);
}

TEST_P(StoreConformanceTest, ListRunsCursorPagination) {
  RunbookVersion va = SampleVersion("a", "id: a\n");
  RunbookVersion vb = SampleVersion("b", "id: b\n");
  std::vector<Run> runs = MakeListedRuns(va, vb);
  ASSERT_OK(Write([&](StoreTx& tx) {
    AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(va));
    AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(vb));
    for (const Run& r : runs) AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(r));
    return Status::Ok();
  }));

  for (std::optional<std::string> runbook :
       {std::optional<std::string>(), std::optional<std::string>("a")}) {
    std::vector<std::string> seen;
    RunFilter f{.runbook_id = runbook, .limit = 4};
    int pages = 0;
    while (true) {
      auto page = ListRuns(f);
      ASSERT_OK(page);
      if (page->empty()) break;
      EXPECT_LE(page->size(), 4u);
      for (const Run& r : *page) seen.push_back(r.id);
      f.before_id = page->back().id;
      ASSERT_LT(++pages, 10);
    }
    EXPECT_EQ(seen,
              Expected(runs, [&](const Run& r) { return !runbook || r.runbook_id == *runbook; }));
    std::set<std::string> unique(seen.begin(), seen.end());
    EXPECT_EQ(unique.size(), seen.size());
  }

  // A cursor that is not a stored id still works: it is a position in id order.
  auto after_all = ListRuns(RunFilter{.before_id = "0"});
  ASSERT_OK(after_all);
  EXPECT_TRUE(after_all->empty());
  auto before_everything = ListRuns(RunFilter{.before_id = "g"});
  ASSERT_OK(before_everything);
  EXPECT_EQ(before_everything->size(), runs.size());
}

TEST_P(StoreConformanceTest, ListRunsValidatesTheLimit) {
  ExpectError(ListRuns(RunFilter{.limit = 0}).status(), ErrorCode::kInvalidArgument,
              {"limit", "0"});
  ExpectError(ListRuns(RunFilter{.limit = 1001}).status(), ErrorCode::kInvalidArgument,
              {"limit", "1001"});
  ExpectError(ListRuns(RunFilter{.limit = -5}).status(), ErrorCode::kInvalidArgument);
  ASSERT_OK(ListRuns(RunFilter{.limit = 1000}));
  ASSERT_OK(ListRuns(RunFilter{.limit = 1}));
}

}  // namespace
}  // namespace automan::testing
