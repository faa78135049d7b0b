// Helpers shared by the CLI commands: opening the store named by the flags, reading
// `-p name=value` flags, this host's name, signal handling.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "auth/keys.h"
#include "cli/commands.h"
#include "common/status.h"
#include "engine/engine.h"
#include "runbook/runbook.h"
#include "sandbox/supervisor.h"
#include "store/store.h"

namespace automan::cli {

// Creates the data directory (0700) when the store lives in it, then opens the store.
Result<std::unique_ptr<Store>> OpenStore(const StoreFlags& flags,
                                         Durability durability = Durability::kFull);

// "name=value" flags as pairs; kInvalidArgument names the malformed one.
Result<std::vector<std::pair<std::string, std::string>>> SplitParamFlags(
    const std::vector<std::string>& flags);

// The --param NAME=VALUE flags and the --secret-param NAMEs together, as pairs. A secret's
// value is read with ReadSecret (one line of standard input per name, in the order
// given, or a no-echo prompt), never taken from the command line: a --param whose name
// `is_secret` says is a secret parameter is refused before anything is read.
Result<std::vector<std::pair<std::string, std::string>>> GatherParams(
    const std::vector<std::string>& param_flags, const std::vector<std::string>& secret_names,
    const std::function<bool(std::string_view)>& is_secret);

// True when `rb` declares `name` as a secret parameter (for GatherParams).
std::function<bool(std::string_view)> SecretParamsOf(const Runbook& rb);

// The keys of the server's master key file, for the commands that work on the store
// directly (worker, enqueue): `key_file`, or DATA/master.key. nullopt when no file was
// named and the default one does not exist; an error when a file cannot be read.
Result<std::optional<auth::Keys>> LoadKeysIfPresent(const StoreFlags& store,
                                                    const std::string& key_file);

// The engine options of a command that runs steps with its files in `data_dir`: the work
// root DATA/work, and a sandbox that hides the data directory and `secret_files` (the key
// file, config file, TLS key; empty entries ignored) from steps.
EngineOptions EngineOptionsFor(const std::string& data_dir,
                               const std::vector<std::string>& secret_files = {});

// A duration flag (`--name text`); prints the problem and returns nullopt when malformed
// (or zero, unless allow_zero).
std::optional<std::chrono::milliseconds> DurationFlag(std::string_view name,
                                                      const std::string& text,
                                                      bool allow_zero = false);

// The runbook `ref` names: a YAML file (a path, or a name ending in .yaml/.yml), or the
// version most recently enqueued under that runbook id.
Result<Runbook> ResolveRunbook(Store& store, const std::string& ref);

// kExitInvalidInput for kInvalidArgument and kNotFound, kExitFailed otherwise.
int ExitFor(const Status& s);

// A secret typed by the user: with standard input a terminal, `prompt` on stderr and the
// line read without echo; otherwise one line of standard input (scripts pipe it in). The
// trailing newline is removed. kInvalidArgument at end of input. Secrets never come from
// the command line (visible in `ps` and shell history).
Result<std::string> ReadSecret(const std::string& prompt);

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
