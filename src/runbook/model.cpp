#include <string>

#include "runbook/runbook.h"

namespace automan {

std::string Diagnostic::ToString() const {
  std::string out = file.empty() ? std::string("<runbook>") : file;
  if (loc.line > 0) {
    out += ":" + std::to_string(loc.line) + ":" + std::to_string(loc.column);
  }
  return out + ": " + message;
}

const ParamSpec* Runbook::FindParam(std::string_view name) const {
  for (const ParamSpec& p : params) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

}  // namespace automan
