// automan: one binary, subcommands from a table (commands.cpp).
#include <string_view>

#include "cli/commands.h"
#include "sandbox/supervisor.h"

int main(int argc, char** argv) {
  // The per-run supervisor shim re-executes this binary; dispatch it before anything else.
  if (argc > 1 && automan::kSupervisorCommand == argv[1]) {
    return automan::SupervisorMain(argc, argv);
  }
  return automan::cli::RunCli(argc, argv);
}
