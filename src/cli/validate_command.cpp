#include <iostream>

#include "cli/commands.h"
#include "core/run.h"
#include "runbook/runbook.h"
#include "scheduler/sync.h"

namespace automan::cli {

int RunValidate(const ValidateOptions& options) {
  int failed = 0;
  for (const auto& file : options.files) {
    ParseResult r = LoadRunbookFile(file);
    if (r.ok()) {
      // The parser checks a schedule's shape; the scheduler checks its cron and zone.
      r.diagnostics = CheckSchedules(*r.runbook);
      if (!r.diagnostics.empty()) r.runbook.reset();
    }
    if (!r.ok()) {
      ++failed;
      for (const auto& d : r.diagnostics) std::cerr << d.ToString() << "\n";
      continue;
    }
    if (!options.quiet) {
      std::cout << file << ": ok (" << r.runbook->id << ", " << r.runbook->steps.size()
                << (r.runbook->steps.size() == 1 ? " step" : " steps") << ")\n";
    }
  }
  if (failed > 0) {
    std::cerr << failed << " of " << options.files.size() << " file(s) invalid\n";
    return kExitInvalidInput;
  }
  return kExitSuccess;
}

}  // namespace automan::cli
