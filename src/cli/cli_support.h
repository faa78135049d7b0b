// Helpers shared by the CLI commands: opening the store named by the flags, reading
// `-p name=value` flags, this host's name, signal handling.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "common/status.h"
#include "sandbox/supervisor.h"
#include "store/store.h"

namespace automan::cli {

// Creates the data directory (0700) when the store lives in it, then opens the store.
Result<std::unique_ptr<Store>> OpenStore(const StoreFlags& flags,
                                         Durability durability = Durability::kFull);

// "name=value" flags as pairs; kInvalidArgument names the malformed one.
Result<std::vector<std::pair<std::string, std::string>>> SplitParamFlags(
    const std::vector<std::string>& flags);

std::string HostName();
std::string CurrentUserName();

// Until the returned object is destroyed, SIGINT, SIGTERM and SIGHUP fire `signal`.
class CancelOnSignals {
 public:
  explicit CancelOnSignals(CancelSignal& signal);
  ~CancelOnSignals();
  CancelOnSignals(const CancelOnSignals&) = delete;
  CancelOnSignals& operator=(const CancelOnSignals&) = delete;
};

}  // namespace automan::cli
