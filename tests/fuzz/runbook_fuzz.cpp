// Fuzz target for the runbook parser: any bytes in, a ParseResult out, never a crash, a hang
// or a sanitizer report. Built as a libFuzzer binary with -DAUTOMAN_FUZZ=ON (clang), and as
// a corpus replayer under ctest otherwise (see README.md).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "runbook/runbook.h"

namespace {

[[noreturn]] void Broken(const char* what) {
  // An invariant of ParseRunbook does not hold: make the fuzzer record the input.
  fprintf(stderr, "runbook_fuzz: invariant broken: %s\n", what);
  abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  automan::ParseResult r = automan::ParseRunbook(text, "fuzz.yaml");
  if (r.ok() != r.diagnostics.empty()) Broken("ok() disagrees with the diagnostics");
  for (const auto& d : r.diagnostics) {
    if (d.message.empty()) Broken("a diagnostic without a message");
    (void)d.ToString();
  }
  if (r.ok()) {
    const automan::Runbook& rb = *r.runbook;
    if (rb.yaml != text) Broken("Runbook.yaml is not the input");
    if (rb.version.size() != 7 + 64 || rb.version.rfind("sha256:", 0) != 0) {
      Broken("version is not sha256:<64 hex>");
    }
    if (rb.steps.empty()) Broken("a valid runbook without steps");
    for (const auto& s : rb.steps) {
      if (s.shell.has_value() == !s.argv.empty()) Broken("a step without exactly one command");
    }
    (void)automan::BindParams(rb, {});
  }
  return 0;
}
