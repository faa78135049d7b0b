#include "scheduler/changes.h"

#include <algorithm>
#include <optional>

namespace automan {
namespace {

// Returns the earliest nominal time withdrawn, if any.
Result<std::optional<Timestamp>> WithdrawEarlyDecisions(StoreTx& tx, std::string_view id,
                                                        Timestamp now) {
  AUTOMAN_ASSIGN_OR_RETURN(std::vector<FireRecord> rows, tx.WithdrawFires(id, now));
  std::optional<Timestamp> earliest;
  for (const FireRecord& f : rows) {
    if (!earliest || f.nominal < *earliest) earliest = f.nominal;
    if (f.run_id.empty()) continue;
    Result<Run> run = tx.GetRun(f.run_id);
    if (run.status().code() == ErrorCode::kNotFound) continue;
    AUTOMAN_RETURN_IF_ERROR(run.status());
    if (run->status != RunStatus::kPending) continue;
    run->status = RunStatus::kCancelled;
    run->finished_at = now;
    run->error = "withdrawn: its schedule changed before the run was due";
    AUTOMAN_RETURN_IF_ERROR(tx.UpdateRun(*run));
  }
  return earliest;
}

}  // namespace

Result<ScheduleRecord> PutScheduleChange(StoreTx& tx, ScheduleRecord rec, Timestamp now) {
  AUTOMAN_ASSIGN_OR_RETURN(std::optional<Timestamp> earliest,
                           WithdrawEarlyDecisions(tx, rec.id, now));
  if (earliest) rec.cursor = std::min(rec.cursor, *earliest - Duration(1));
  return tx.PutSchedule(rec);
}

Status DeleteScheduleChange(StoreTx& tx, std::string_view id, Timestamp now) {
  AUTOMAN_RETURN_IF_ERROR(WithdrawEarlyDecisions(tx, id, now).status());
  return tx.DeleteSchedule(id);
}

}  // namespace automan
