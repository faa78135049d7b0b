#include "core/run.h"

#include <array>
#include <utility>

namespace automan {

namespace {
template <typename E, size_t N>
std::optional<E> Lookup(const std::array<std::pair<E, std::string_view>, N>& table,
                        std::string_view s) {
  for (const auto& [e, name] : table) {
    if (name == s) return e;
  }
  return std::nullopt;
}
template <typename E, size_t N>
std::string_view Name(const std::array<std::pair<E, std::string_view>, N>& table, E e) {
  for (const auto& [v, name] : table) {
    if (v == e) return name;
  }
  return "UNKNOWN";
}

constexpr std::array<std::pair<RunStatus, std::string_view>, 9> kRunStatuses{{
    {RunStatus::kPending, "PENDING"},
    {RunStatus::kRunning, "RUNNING"},
    {RunStatus::kWaiting, "WAITING"},
    {RunStatus::kSuccess, "SUCCESS"},
    {RunStatus::kFailed, "FAILED"},
    {RunStatus::kTimeout, "TIMEOUT"},
    {RunStatus::kCancelled, "CANCELLED"},
    {RunStatus::kRolledBack, "ROLLED_BACK"},
    {RunStatus::kDead, "DEAD"},
}};
constexpr std::array<std::pair<Trigger, std::string_view>, 7> kTriggers{{
    {Trigger::kManual, "manual"},
    {Trigger::kApi, "api"},
    {Trigger::kSchedule, "schedule"},
    {Trigger::kEvent, "event"},
    {Trigger::kWebhook, "webhook"},
    {Trigger::kRetry, "retry"},
    {Trigger::kChain, "chain"},
}};
constexpr std::array<std::pair<StepStatus, std::string_view>, 7> kStepStatuses{{
    {StepStatus::kPending, "PENDING"},
    {StepStatus::kRunning, "RUNNING"},
    {StepStatus::kSuccess, "SUCCESS"},
    {StepStatus::kFailed, "FAILED"},
    {StepStatus::kTimeout, "TIMEOUT"},
    {StepStatus::kCancelled, "CANCELLED"},
    {StepStatus::kSkipped, "SKIPPED"},
}};
constexpr std::array<std::pair<LogStream, std::string_view>, 3> kStreams{{
    {LogStream::kStdout, "stdout"},
    {LogStream::kStderr, "stderr"},
    {LogStream::kSystem, "system"},
}};
}  // namespace

std::string_view ToString(RunStatus s) { return Name(kRunStatuses, s); }
std::optional<RunStatus> ParseRunStatus(std::string_view s) { return Lookup(kRunStatuses, s); }
std::string_view ToString(Trigger t) { return Name(kTriggers, t); }
std::optional<Trigger> ParseTrigger(std::string_view s) { return Lookup(kTriggers, s); }
std::string_view ToString(StepStatus s) { return Name(kStepStatuses, s); }
std::optional<StepStatus> ParseStepStatus(std::string_view s) { return Lookup(kStepStatuses, s); }
std::string_view ToString(LogStream s) { return Name(kStreams, s); }
std::optional<LogStream> ParseLogStream(std::string_view s) { return Lookup(kStreams, s); }

bool IsTerminal(RunStatus s) {
  switch (s) {
    case RunStatus::kPending:
    case RunStatus::kRunning:
    case RunStatus::kWaiting:
      return false;
    default:
      return true;
  }
}

int ExitCodeFor(RunStatus s) {
  switch (s) {
    case RunStatus::kSuccess:
      return kExitSuccess;
    case RunStatus::kTimeout:
      return kExitTimeout;
    case RunStatus::kCancelled:
      return kExitCancelled;
    default:
      return kExitFailed;
  }
}

}  // namespace automan
