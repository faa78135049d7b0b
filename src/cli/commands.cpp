#include "cli/commands.h"

#include <CLI/CLI.hpp>
#include <functional>
#include <iostream>

#include "cli/version.h"
#include "core/run.h"
#include "server/config.h"
#include "store/store.h"

namespace automan::cli {

std::string StoreFlags::ResolvedUrl() const {
  return db_url.empty() ? DefaultStoreUrl(data_dir) : db_url;
}

namespace {

void AddStoreFlags(CLI::App& app, StoreFlags& flags) {
  app.add_option("--data", flags.data_dir, "Data directory")
      ->capture_default_str()
      ->envname("AUTOMAN_DATA");
  app.add_option("--db", flags.db_url, "Database URL (default sqlite:DIR/automan.db)")
      ->envname("AUTOMAN_DB");
}

// --server, --ca-file, --insecure: the flags of every command that may use the API.
void AddParamFlags(CLI::App& app, std::vector<std::string>& params,
                   std::vector<std::string>& secret_params) {
  app.add_option("-p,--param", params, "Parameter as name=value (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--secret-param", secret_params,
                 "Secret parameter NAME; its value is read from standard input (one line "
                 "per name) or a no-echo prompt, never from the command line (repeatable)")
      ->allow_extra_args(false);
}

void AddKeyFileFlag(CLI::App& app, std::string& key_file, const char* what) {
  app.add_option("--key-file", key_file,
                 std::string("The server's master key file, to ") + what +
                     " (default: DATA/master.key when it exists)");
}

void AddServerFlags(CLI::App& app, ServerFlags& flags, const char* server_help) {
  app.add_option("--server", flags.url, server_help)->envname("AUTOMAN_SERVER");
  app.add_option("--ca-file", flags.ca_file, "PEM file of a private CA for an https:// server")
      ->envname("AUTOMAN_CA_FILE");
  app.add_flag("--insecure", flags.insecure,
               "https: do not verify the server's certificate (testing only)");
}

constexpr const char* kClientServerHelp =
    "URL of automan server (default: the CLI config file, else http://127.0.0.1:8080)";
constexpr const char* kLocalServerHelp =
    "Act through this automan server's API instead of the local store";

// Everything the table's entries bind their flags to.
struct Options {
  ExecOptions exec;
  ValidateOptions validate;
  WorkerOptionsFlags worker;
  EnqueueOptions enqueue;
  CancelOptions cancel;
  DlqOptions dlq;
  CronOptions cron;
  SchedulesOptions schedules;
  ServerOptions server;
  BackupOptions backup;
  RunOptions run;
  RunsOptions runs;
  LogsOptions logs;
  RetryOptions retry;
  RunbooksOptions runbooks;
  CompletionOptions completion;
  LoginOptions login;
  LogoutOptions logout;
  UsersOptions users;
  TokensOptions tokens;
  SecretsOptions secrets;
  AuditOptions audit;
};

struct Command {
  const char* name;
  const char* summary;
  // Declares the command's flags on `app`, bound to `o`.
  void (*define)(CLI::App& app, Options& o);
  int (*run)(const Options& o);
};

const Command kCommands[] = {
    {"version", "Print the version and exit", [](CLI::App&, Options&) {},
     [](const Options&) { return RunVersion(); }},
    {"server", "Run the server: REST API, streams, metrics, workers and the schedule loop",
     [](CLI::App& app, Options& o) {
       app.add_option("--config", o.server.config_file, "YAML config file (docs/configuration.md)");
       for (const ServerConfigKey& k : ServerConfigKeys()) {
         std::string name(k.name);
         std::string help(k.help);
         if (k.type == ConfigType::kBool) {
           const bool negated = k.flag.rfind("--no-", 0) == 0;
           app.add_flag_callback(
               k.flag, [&o, name, negated] { o.server.flags[name] = negated ? "false" : "true"; },
               help + " (env " + k.env + ")");
         } else {
           app.add_option_function<std::string>(
               k.flag, [&o, name](const std::string& v) { o.server.flags[name] = v; },
               help + " (env " + k.env + ")");
         }
       }
     },
     [](const Options& o) { return RunServer(o.server); }},
    {"backup", "Take a consistent online copy of the store (SQLite) into FILE",
     [](CLI::App& app, Options& o) {
       app.add_option("file", o.backup.file, "Where to write the copy (must not exist)")
           ->required();
       AddStoreFlags(app, o.backup.store);
     },
     [](const Options& o) { return RunBackup(o.backup); }},
    {"exec", "Run a runbook file on this host, now, without a server",
     [](CLI::App& app, Options& o) {
       app.add_option("file", o.exec.file, "Runbook YAML file")->required();
       AddParamFlags(app, o.exec.params, o.exec.secret_params);
       app.add_flag("--json", o.exec.json, "Print the run as JSON on stdout (logs go to stderr)");
       app.add_flag("--dry-run", o.exec.dry_run,
                    "Validate and show what would run; run and record nothing");
       AddStoreFlags(app, o.exec.store);
     },
     [](const Options& o) { return RunExec(o.exec); }},
    {"validate", "Check runbook files; exit 2 if any has an error",
     [](CLI::App& app, Options& o) {
       app.add_option("files", o.validate.files, "Runbook YAML files")->required();
       app.add_flag("-q,--quiet", o.validate.quiet, "Print only errors");
     },
     [](const Options& o) { return RunValidate(o.validate); }},
    {"worker", "Claim and execute queued runs until SIGTERM or Ctrl-C",
     [](CLI::App& app, Options& o) {
       app.add_option("-c,--concurrency", o.worker.concurrency, "Runs executed at once")
           ->capture_default_str()
           ->check(CLI::Range(1, 10000));
       app.add_option("--lease", o.worker.lease, "Lease of a claimed run (renewed every third)")
           ->capture_default_str();
       app.add_option("--poll", o.worker.poll, "Polling backstop of the wake-ups")
           ->capture_default_str();
       app.add_option("--grace", o.worker.grace,
                      "On SIGTERM, time running steps get before they are killed")
           ->capture_default_str();
       app.add_option("--retain-age", o.worker.retain_age,
                      "Delete finished runs older than this (e.g. 30d)");
       app.add_option("--retain-count", o.worker.retain_count,
                      "Keep at most this many finished runs per runbook")
           ->check(CLI::Range(1, 100000000));
       app.add_flag("--fast", o.worker.fast,
                    "Commit without fsync (synchronous=NORMAL): survives a crash, not a power "
                    "loss");
       app.add_option("--runbooks", o.worker.runbooks_dir,
                      "Keep the schedules of the runbook files in this directory in the store "
                      "(re-read when a file changes)");
       app.add_flag("--no-scheduler", o.worker.no_scheduler,
                    "Do not run the schedule loop in this worker");
       AddKeyFileFlag(app, o.worker.key_file,
                      "open secret parameters and the secret store for its runs");
       AddStoreFlags(app, o.worker.store);
     },
     [](const Options& o) { return RunWorker(o.worker); }},
    {"enqueue", "Queue a run of a runbook (file or id) and print its id",
     [](CLI::App& app, Options& o) {
       app.add_option("runbook", o.enqueue.runbook,
                      "Runbook YAML file, or the id of a runbook "
                      "already in the store")
           ->required();
       AddParamFlags(app, o.enqueue.params, o.enqueue.secret_params);
       AddKeyFileFlag(app, o.enqueue.key_file, "seal secret parameters while the run is queued");
       app.add_option("--priority", o.enqueue.priority, "Higher runs first (-1000..1000)")
           ->check(CLI::Range(-1000, 1000));
       app.add_option("--idempotency-key", o.enqueue.idempotency_key,
                      "A second enqueue with this key returns the first run (24h window)");
       app.add_option("--delay", o.enqueue.delay, "Do not start before this duration from now");
       app.add_option("--max-attempts", o.enqueue.max_attempts,
                      "Attempts shared by failures and lost workers (default: retries + 1, "
                      "at least 3)")
           ->check(CLI::Range(1, 1000));
       app.add_flag("--json", o.enqueue.json, "Print the run as JSON");
       AddStoreFlags(app, o.enqueue.store);
     },
     [](const Options& o) { return RunEnqueue(o.enqueue); }},
    {"cancel", "Cancel queued or running runs",
     [](CLI::App& app, Options& o) {
       app.add_option("runs", o.cancel.run_ids, "Run ids")->required();
       AddStoreFlags(app, o.cancel.store);
       AddServerFlags(app, o.cancel.server, kLocalServerHelp);
     },
     [](const Options& o) { return RunCancel(o.cancel); }},
    {"dlq", "Dead-letter queue: list, show, replay or purge runs whose attempts ran out",
     [](CLI::App& app, Options& o) {
       app.add_option("action", o.dlq.action, "list | show | replay | purge (purge: --server)")
           ->required()
           ->check(CLI::IsMember({"list", "show", "replay", "purge"}));
       app.add_option("runs", o.dlq.run_ids, "Run ids (show, replay)");
       app.add_flag("--all", o.dlq.all, "replay: every dead run");
       app.add_option("--limit", o.dlq.limit, "list: at most this many")
           ->capture_default_str()
           ->check(CLI::Range(1, 1000));
       app.add_flag("--json", o.dlq.json, "Print JSON");
       AddStoreFlags(app, o.dlq.store);
       AddServerFlags(app, o.dlq.server, kLocalServerHelp);
     },
     [](const Options& o) { return RunDlq(o.dlq); }},
    {"cron", "Preview a cron expression: next fire times in a zone, or plain words",
     [](CLI::App& app, Options& o) {
       app.add_option("action", o.cron.action, "next | explain")
           ->required()
           ->check(CLI::IsMember({"next", "explain"}));
       app.add_option("expr", o.cron.expr, "Cron expression, quoted")->required();
       app.add_option("--tz", o.cron.tz, "IANA time zone")->capture_default_str();
       app.add_option("--from", o.cron.from,
                      "Start after this instant (RFC 3339, or a wall time in --tz); default now");
       app.add_option("-n,--count", o.cron.count, "How many fire times")
           ->capture_default_str()
           ->check(CLI::Range(1, 1000));
       app.add_option("--dst-gap", o.cron.gap, "shift | skip (default: by the hour field)")
           ->check(CLI::IsMember({"shift", "skip"}));
       app.add_option("--dst-repeat", o.cron.repeat, "first | both (default: by the hour field)")
           ->check(CLI::IsMember({"first", "both"}));
     },
     [](const Options& o) { return RunCron(o.cron); }},
    {"schedules", "Schedules in the store: add, list, show, pause, resume, delete, ledger, sync",
     [](CLI::App& app, Options& o) {
       SchedulesOptions& s = o.schedules;
       app.add_option("action", s.action,
                      "add | list | show | pause | resume | delete | ledger | sync")
           ->required()
           ->check(CLI::IsMember(
               {"add", "list", "show", "pause", "resume", "delete", "ledger", "sync"}));
       app.add_option("args", s.args,
                      "add: RUNBOOK (file or id); show/pause/resume/delete/ledger: schedule ids "
                      "(RUNBOOK/ID); sync: runbook files");
       app.add_option("--id", s.id, "add: the schedule's id within its runbook");
       app.add_option("--cron", s.cron, "add: cron expression");
       app.add_option("--every", s.every, "add: fixed interval (e.g. 90s)");
       app.add_option("--at", s.at, "add: one instant (RFC 3339)");
       app.add_option("--tz", s.tz, "add: IANA time zone")->capture_default_str();
       app.add_option("--lead", s.lead,
                      "add: deadline-aligned: start this long before each fire time, which the "
                      "run gets as AUTOMAN_DEADLINE");
       app.add_option("-p,--param", s.params, "add: parameter as name=value (repeatable)")
           ->allow_extra_args(false);
       app.add_option("--misfire", s.misfire, "add: skip | run_once | run_all")
           ->capture_default_str()
           ->check(CLI::IsMember({"skip", "run_once", "run_all"}));
       app.add_option("--max-lateness", s.max_lateness, "add: default one period");
       app.add_option("--overlap", s.overlap, "add: allow | skip | queue_one | cancel_previous")
           ->capture_default_str()
           ->check(CLI::IsMember({"allow", "skip", "queue_one", "cancel_previous"}));
       app.add_option("--jitter", s.jitter, "add: delay each fire by up to this");
       app.add_option("--dst-gap", s.gap, "add: shift | skip")
           ->check(CLI::IsMember({"shift", "skip"}));
       app.add_option("--dst-repeat", s.repeat, "add: first | both")
           ->check(CLI::IsMember({"first", "both"}));
       app.add_flag("--paused", s.paused, "add: create it paused");
       app.add_flag("--replace", s.replace, "add: replace a schedule with the same id");
       app.add_option("--limit", s.limit, "ledger: rows")
           ->capture_default_str()
           ->check(CLI::Range(1, 10000));
       app.add_option("--before", s.before, "ledger: rows before this instant (RFC 3339)");
       app.add_flag("--json", s.json, "list, show, ledger: print JSON lines");
       AddStoreFlags(app, s.store);
       AddServerFlags(app, s.server, kLocalServerHelp);
     },
     [](const Options& o) { return RunSchedules(o.schedules); }},
    {"run", "Start a run of a runbook on the server and print its id (--follow: its logs)",
     [](CLI::App& app, Options& o) {
       app.add_option("runbook", o.run.runbook, "Runbook id (automan runbooks lists them)")
           ->required();
       AddParamFlags(app, o.run.params, o.run.secret_params);
       app.add_flag("-f,--follow", o.run.follow,
                    "Print the run's logs live; exit with the code of its final status");
       app.add_flag("--dry-run", o.run.dry_run,
                    "Show the plan the server would run; run and record nothing");
       app.add_option("--priority", o.run.priority, "Higher runs first (-1000..1000)")
           ->check(CLI::Range(-1000, 1000));
       app.add_option("--idempotency-key", o.run.idempotency_key,
                      "A second run with this key returns the first run (24h window)");
       app.add_flag("--json", o.run.json, "Print the run as JSON (with --follow: at the end)");
       AddServerFlags(app, o.run.server, kClientServerHelp);
     },
     [](const Options& o) { return RunRun(o.run); }},
    {"runs", "List the server's runs, newest first",
     [](CLI::App& app, Options& o) {
       app.add_option("--status", o.runs.status, "Only runs in this status (e.g. FAILED)");
       app.add_option("--runbook", o.runs.runbook, "Only runs of this runbook");
       app.add_option("--limit", o.runs.limit, "At most this many")
           ->capture_default_str()
           ->check(CLI::Range(1, 1000));
       app.add_flag("--json", o.runs.json, "Print the runs as JSON lines");
       AddServerFlags(app, o.runs.server, kClientServerHelp);
     },
     [](const Options& o) { return RunRuns(o.runs); }},
    {"logs", "Print the log lines of a run on the server (-f: follow until it ends)",
     [](CLI::App& app, Options& o) {
       app.add_option("run", o.logs.run_id, "Run id")->required();
       app.add_flag("-f,--follow", o.logs.follow, "Then follow new lines until the run ends");
       app.add_option("--step", o.logs.step, "Only lines of this step");
       app.add_option("--stream", o.logs.stream, "Only lines of this stream")
           ->check(CLI::IsMember({"stdout", "stderr", "system"}));
       app.add_flag("--json", o.logs.json, "Print the lines as JSON lines");
       AddServerFlags(app, o.logs.server, kClientServerHelp);
     },
     [](const Options& o) { return RunLogs(o.logs); }},
    {"retry", "Run a finished run again on the server as a new run; print its id",
     [](CLI::App& app, Options& o) {
       app.add_option("run", o.retry.run_id, "Run id")->required();
       app.add_flag("-f,--follow", o.retry.follow,
                    "Print the new run's logs live; exit with the code of its final status");
       app.add_flag("--json", o.retry.json, "Print the new run as JSON");
       AddServerFlags(app, o.retry.server, kClientServerHelp);
     },
     [](const Options& o) { return RunRetry(o.retry); }},
    {"runbooks", "List the server's runbooks, or show one (runbooks show ID)",
     [](CLI::App& app, Options& o) {
       app.add_option("action", o.runbooks.action, "list (default) | show")
           ->check(CLI::IsMember({"list", "show"}));
       app.add_option("id", o.runbooks.id, "show: the runbook id");
       app.add_option("--category", o.runbooks.category, "Only runbooks of this category");
       app.add_option("--tag", o.runbooks.tag, "Only runbooks with this tag");
       app.add_option("-q,--query", o.runbooks.query, "Text in the id, name or description");
       app.add_flag("--json", o.runbooks.json, "Print JSON (list: one runbook per line)");
       AddServerFlags(app, o.runbooks.server, kClientServerHelp);
     },
     [](const Options& o) { return RunRunbooks(o.runbooks); }},
    {"login", "Log in to a server and keep a token in ~/.config/automan/cli.yaml (0600)",
     [](CLI::App& app, Options& o) {
       app.add_option("-u,--username", o.login.username, "User name (asked for when absent)");
       app.add_flag("--password-stdin", o.login.password_stdin,
                    "Read the password from standard input instead of a prompt");
       AddServerFlags(app, o.login.server, kClientServerHelp);
     },
     [](const Options& o) { return RunLogin(o.login); }},
    {"logout", "Revoke the token `automan login` stored, and forget it",
     [](CLI::App& app, Options& o) { AddServerFlags(app, o.logout.server, kClientServerHelp); },
     [](const Options& o) { return RunLogout(o.logout); }},
    {"users", "Manage users (admins): list, add, set-role, disable, enable, reset-password",
     [](CLI::App& app, Options& o) {
       app.add_option("action", o.users.action,
                      "list | add | set-role | disable | enable | reset-password")
           ->required()
           ->check(
               CLI::IsMember({"list", "add", "set-role", "disable", "enable", "reset-password"}));
       app.add_option("username", o.users.username, "The user (all but list)");
       app.add_option("role", o.users.role, "set-role: the new role");
       app.add_option("--role", o.users.role, "add: the role (admin, operator, responder, viewer)");
       app.add_flag("--json", o.users.json, "Print JSON");
       AddServerFlags(app, o.users.server, kClientServerHelp);
     },
     [](const Options& o) { return RunUsers(o.users); }},
    {"tokens", "Your API tokens: list, create NAME (shown once), revoke ID",
     [](CLI::App& app, Options& o) {
       app.add_option("action", o.tokens.action, "list | create | revoke")
           ->required()
           ->check(CLI::IsMember({"list", "create", "revoke"}));
       app.add_option("arg", o.tokens.arg, "create: the token's name; revoke: its id");
       app.add_option("--role", o.tokens.role, "create: a role narrower than yours");
       app.add_option("--expires", o.tokens.expires, "create: lifetime such as 30d (default 90d)");
       app.add_flag("--all", o.tokens.all, "list: every user's tokens (users.manage)");
       app.add_flag("--json", o.tokens.json, "Print JSON");
       AddServerFlags(app, o.tokens.server, kClientServerHelp);
     },
     [](const Options& o) { return RunTokens(o.tokens); }},
    {"secrets", "The server's secret store: list, set NAME (value from stdin or a prompt), delete",
     [](CLI::App& app, Options& o) {
       app.add_option("action", o.secrets.action, "list | set | delete")
           ->required()
           ->check(CLI::IsMember({"list", "set", "delete"}));
       app.add_option("name", o.secrets.name, "set, delete: the secret's name");
       app.add_option("--description", o.secrets.description, "set: what the secret is for");
       app.add_flag("--json", o.secrets.json, "Print JSON");
       AddServerFlags(app, o.secrets.server, kClientServerHelp);
     },
     [](const Options& o) { return RunSecrets(o.secrets); }},
    {"audit", "The audit trail: list, export (jsonl|csv), verify (the server's, or --data offline)",
     [](CLI::App& app, Options& o) {
       app.add_option("action", o.audit.action, "list | export | verify")
           ->required()
           ->check(CLI::IsMember({"list", "export", "verify"}));
       app.add_option("--actor", o.audit.actor, "list, export: only this actor");
       app.add_option("--action", o.audit.action_filter,
                      "list, export: this action, or a prefix ending in '.' (run.)");
       app.add_option("--since", o.audit.since, "list, export: at or after (RFC 3339)");
       app.add_option("--until", o.audit.until, "list, export: before (RFC 3339)");
       app.add_option("--limit", o.audit.limit, "list: at most this many")
           ->capture_default_str()
           ->check(CLI::Range(1, 10000));
       app.add_option("--format", o.audit.format, "export: jsonl | csv")
           ->capture_default_str()
           ->check(CLI::IsMember({"jsonl", "csv"}));
       app.add_option("--key-file", o.audit.key_file,
                      "verify offline: the master key file (default DATA/master.key)");
       app.add_flag("--json", o.audit.json, "list, verify: print JSON");
       AddStoreFlags(app, o.audit.store);
       AddServerFlags(app, o.audit.server,
                      "Act through this automan server's API (verify: instead of --data)");
     },
     [](const Options& o) { return RunAudit(o.audit); }},
    {"completion", "Print a shell completion script: completion bash|zsh|fish",
     [](CLI::App& app, Options& o) {
       app.add_option("shell", o.completion.shell, "bash | zsh | fish")
           ->required()
           ->check(CLI::IsMember({"bash", "zsh", "fish"}));
     },
     [](const Options& o) { return RunCompletion(o.completion); }},
};

// The values an option accepts, from its CLI::IsMember check ("{a,b,c}").
std::vector<std::string> Choices(CLI::Option& opt) {
  for (int i = 0;; ++i) {
    CLI::Validator* v = nullptr;
    try {
      v = opt.get_validator(i);
    } catch (const CLI::OptionNotFound&) {
      return {};
    }
    const std::string d = v->get_description();
    if (d.size() < 2 || d.front() != '{' || d.back() != '}') continue;
    std::vector<std::string> out;
    size_t start = 1;
    while (start < d.size() - 1) {
      size_t comma = d.find(',', start);
      if (comma == std::string::npos || comma > d.size() - 1) comma = d.size() - 1;
      out.push_back(d.substr(start, comma - start));
      start = comma + 1;
    }
    return out;
  }
}

}  // namespace

int RunVersion() {
  std::cout << "automan " << AUTOMAN_VERSION << " (" << AUTOMAN_GIT_COMMIT << ")\n";
  return 0;
}

std::vector<CommandInfo> ListCommands() {
  CLI::App app;
  Options options;
  std::vector<CommandInfo> out;
  for (const Command& c : kCommands) {
    CLI::App* sub = app.add_subcommand(c.name, c.summary);
    c.define(*sub, options);
    CommandInfo info{c.name, c.summary, {}, {}};
    for (CLI::Option* opt : sub->get_options([](CLI::Option*) { return true; })) {
      if (!opt->nonpositional()) {
        info.positionals.push_back(
            {opt->get_name(), Choices(*opt), opt->get_items_expected_max() > 1});
        continue;
      }
      FlagInfo f;
      for (const std::string& s : opt->get_snames()) f.names.push_back("-" + s);
      for (const std::string& l : opt->get_lnames()) f.names.push_back("--" + l);
      f.help = opt->get_description();
      f.takes_value = opt->get_items_expected_max() > 0;
      f.choices = Choices(*opt);
      info.flags.push_back(std::move(f));
    }
    out.push_back(std::move(info));
  }
  return out;
}

int RunCli(int argc, char** argv) {
  CLI::App app{"Automan: run, schedule and watch operational runbooks"};
  app.name("automan");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("automan ") + AUTOMAN_VERSION);
  Options options;
  std::function<int()> chosen;
  for (const Command& c : kCommands) {
    CLI::App* sub = app.add_subcommand(c.name, c.summary);
    c.define(*sub, options);
    sub->callback([&chosen, &options, run = c.run] { chosen = [&] { return run(options); }; });
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    // Usage errors are invalid input (exit 2); --help and --version exit 0.
    return code == 0 ? 0 : kExitInvalidInput;
  }
  return chosen ? chosen() : kExitInvalidInput;
}

}  // namespace automan::cli
