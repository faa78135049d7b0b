#include "cli/commands.h"

#include <CLI/CLI.hpp>
#include <functional>
#include <iostream>

#include "cli/version.h"
#include "core/run.h"
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

// Everything the table's entries bind their flags to.
struct Options {
  ExecOptions exec;
  ValidateOptions validate;
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
    {"exec", "Run a runbook file on this host, now, without a server",
     [](CLI::App& app, Options& o) {
       app.add_option("file", o.exec.file, "Runbook YAML file")->required();
       app.add_option("-p,--param", o.exec.params, "Parameter as name=value (repeatable)")
           ->allow_extra_args(false);
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
};

}  // namespace

int RunVersion() {
  std::cout << "automan " << AUTOMAN_VERSION << " (" << AUTOMAN_GIT_COMMIT << ")\n";
  return 0;
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
