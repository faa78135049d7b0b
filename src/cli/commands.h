// The subcommands of the automan binary, and the options each takes.
//
// main() stays thin: it dispatches the hidden `__supervise` shim first, then RunCli(),
// which builds the command line from the table in commands.cpp (the only file that
// includes CLI11) and calls one of the Run* functions below with plain option structs.
// Adding a command: an options struct and a Run function here, its implementation in
// <name>_command.cpp, one entry in the table.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace automan::cli {

// Flags shared by every command that opens the store.
struct StoreFlags {
  std::string data_dir = "./automan-data";
  std::string db_url;  // empty: sqlite:<data_dir>/automan.db
  std::string ResolvedUrl() const;
};

// Flags of the commands that talk to `automan server` over its HTTP API (client/).
struct ServerFlags {
  // --server / AUTOMAN_SERVER. The client commands fall back to the CLI config file and
  // http://127.0.0.1:8080; cancel, dlq and schedules use the local store when it is empty.
  std::string url;
  std::string ca_file;  // --ca-file / AUTOMAN_CA_FILE: a private CA for https://
  bool insecure = false;
};

struct ExecOptions {
  StoreFlags store;
  std::string file;
  std::vector<std::string> params;         // "name=value"
  std::vector<std::string> secret_params;  // names; values from stdin or a prompt
  bool json = false;
  bool dry_run = false;
};

struct WorkerOptionsFlags {
  StoreFlags store;
  int concurrency = 4;
  std::string lease = "30s";
  std::string poll = "1s";
  std::string grace = "30s";
  std::string retain_age;    // e.g. 30d; empty: keep
  int retain_count = 0;      // per runbook; 0: keep
  bool fast = false;         // Durability::kFast
  std::string runbooks_dir;  // sync the schedules of the runbook files here, and watch it
  bool no_scheduler = false;
  std::string key_file;  // the server's master key; default DATA/master.key when present
};

struct EnqueueOptions {
  StoreFlags store;
  std::string runbook;  // FILE.yaml or a runbook id already in the store
  std::vector<std::string> params;
  std::vector<std::string> secret_params;  // names; values from stdin or a prompt
  std::string key_file;                    // seals secret params; default DATA/master.key
  int priority = 0;
  std::string idempotency_key;
  std::string delay;  // a duration
  int max_attempts = 0;
  bool json = false;
};

struct CancelOptions {
  StoreFlags store;
  ServerFlags server;  // set: through the API
  std::vector<std::string> run_ids;
};

struct DlqOptions {
  StoreFlags store;
  ServerFlags server;  // set: through the API
  std::string action;  // list | show | replay | purge (purge: through the API only)
  std::vector<std::string> run_ids;
  bool all = false;  // replay every DEAD run
  int limit = 50;
  bool json = false;
};

struct CronOptions {
  std::string action;  // next | explain
  std::string expr;
  std::string tz = "UTC";
  std::string from;  // RFC 3339, or a wall time in --tz; default now
  int count = 10;
  std::string gap, repeat;  // DST policies; empty: the default for the hour field
};

struct SchedulesOptions {
  StoreFlags store;
  ServerFlags server;  // set: through the API (all actions but sync)
  std::string action;  // add | list | show | pause | resume | delete | ledger | sync
  std::vector<std::string> args;
  // add: the schedule, in the shape of a runbook file's `schedules:` entry.
  std::string id, cron, every, at, tz = "UTC", lead, misfire = "run_once", max_lateness,
                                   overlap = "allow", jitter, gap, repeat;
  std::vector<std::string> params;
  bool paused = false;
  bool replace = false;
  // ledger
  int limit = 50;
  std::string before;
  bool json = false;
};

// `automan server`: the settings as flags, keyed like the config file (server/config.h).
struct ServerOptions {
  std::string config_file;
  std::map<std::string, std::string> flags;
};
struct BackupOptions {
  StoreFlags store;
  std::string file;
};
struct ValidateOptions {
  std::vector<std::string> files;
  bool quiet = false;
};

// The client commands (client_commands.cpp): the server's HTTP API only.
struct RunOptions {
  ServerFlags server;
  std::string runbook;                     // a runbook id the server knows
  std::vector<std::string> params;         // "name=value", sent as strings
  std::vector<std::string> secret_params;  // names; values from stdin or a prompt
  bool follow = false;
  bool dry_run = false;
  int priority = 0;
  std::string idempotency_key;
  bool json = false;
};
struct RunsOptions {
  ServerFlags server;
  std::string status, runbook;
  int limit = 20;
  bool json = false;
};
struct LogsOptions {
  ServerFlags server;
  std::string run_id;
  bool follow = false;
  std::string step, stream;
  bool json = false;
};
struct RetryOptions {
  ServerFlags server;
  std::string run_id;
  bool follow = false;
  bool json = false;
};
struct RunbooksOptions {
  ServerFlags server;
  std::string action;  // "" or list | show
  std::string id;      // show
  std::string category, tag, query;
  bool json = false;
};
// The account commands (auth_commands.cpp).
struct LoginOptions {
  ServerFlags server;
  std::string username;         // asked for when empty
  bool password_stdin = false;  // read the password from standard input (scripts)
};
struct LogoutOptions {
  ServerFlags server;
};
struct UsersOptions {
  ServerFlags server;
  std::string action;  // list | add | set-role | disable | enable | reset-password
  std::string username;
  std::string role;  // add: the role; set-role: the new role
  bool json = false;
};
struct TokensOptions {
  ServerFlags server;
  std::string action;   // list | create | revoke
  std::string arg;      // create: the name; revoke: the id
  std::string role;     // create: a narrower role
  std::string expires;  // create: a duration (30d); default the server's (90 days)
  bool all = false;     // list: every user's (users.manage)
  bool json = false;
};
struct SecretsOptions {
  ServerFlags server;
  std::string action;  // list | set | delete
  std::string name;
  std::string description;  // set
  bool json = false;
};
struct AuditOptions {
  StoreFlags store;      // verify without a server: the store and its key file
  ServerFlags server;    // set: through the API
  std::string action;    // list | export | verify
  std::string key_file;  // verify offline: default DATA/master.key
  std::string actor, since, until, format = "jsonl";  // list/export filters; export format
  std::string action_filter;
  int limit = 50;
  bool json = false;
};
struct CompletionOptions {
  std::string shell;  // bash | zsh | fish
};

// The command table as data, for `automan completion` (built from the CLI11 definitions).
struct FlagInfo {
  std::vector<std::string> names;  // "-p", "--param"
  std::string help;
  bool takes_value = false;
  std::vector<std::string> choices;  // the allowed values, when the flag checks them
};
struct PositionalInfo {
  std::string name;
  std::vector<std::string> choices;  // e.g. an action: list | show | replay
  bool repeated = false;             // takes every remaining word (run ids, files)
};
struct CommandInfo {
  std::string name, summary;
  std::vector<FlagInfo> flags;
  std::vector<PositionalInfo> positionals;
};
std::vector<CommandInfo> ListCommands();

int RunVersion();
int RunServer(const ServerOptions& options);
int RunBackup(const BackupOptions& options);
int RunExec(const ExecOptions& options);
int RunValidate(const ValidateOptions& options);
int RunWorker(const WorkerOptionsFlags& options);
int RunEnqueue(const EnqueueOptions& options);
int RunCancel(const CancelOptions& options);
int RunDlq(const DlqOptions& options);
int RunCron(const CronOptions& options);
int RunSchedules(const SchedulesOptions& options);
int RunRun(const RunOptions& options);
int RunRuns(const RunsOptions& options);
int RunLogs(const LogsOptions& options);
int RunRetry(const RetryOptions& options);
int RunRunbooks(const RunbooksOptions& options);
int RunCompletion(const CompletionOptions& options);
int RunLogin(const LoginOptions& options);
int RunLogout(const LogoutOptions& options);
int RunUsers(const UsersOptions& options);
int RunTokens(const TokensOptions& options);
int RunSecrets(const SecretsOptions& options);
int RunAudit(const AuditOptions& options);
// cancel, dlq and schedules through the API (client_commands.cpp); RunCancel, RunDlq and
// RunSchedules call them when options.server.url is set.
int RunCancelViaApi(const CancelOptions& options);
int RunDlqViaApi(const DlqOptions& options);
int RunSchedulesViaApi(const SchedulesOptions& options);

// Parses argv and runs the chosen command; returns the process exit code.
int RunCli(int argc, char** argv);

}  // namespace automan::cli
