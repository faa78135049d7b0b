// Helpers for the runbook tests: parse a string, assert a specific diagnostic.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>

#include "runbook/runbook.h"

namespace automan::testing {

inline ParseResult Parse(std::string_view yaml) { return ParseRunbook(yaml, "t.yaml"); }

inline std::string DumpDiagnostics(const ParseResult& r) {
  std::string out;
  for (const auto& d : r.diagnostics) out += "  " + d.ToString() + "\n";
  return out.empty() ? "  (no diagnostics)\n" : out;
}

// True when parsing failed with a diagnostic at line:col whose message contains every word.
inline ::testing::AssertionResult HasError(const ParseResult& r, int line, int col,
                                           std::initializer_list<std::string_view> words) {
  if (r.ok()) return ::testing::AssertionFailure() << "parsing succeeded";
  for (const auto& d : r.diagnostics) {
    if (d.loc.line != line || d.loc.column != col) continue;
    bool all = true;
    for (std::string_view w : words) all = all && d.message.find(w) != std::string::npos;
    if (all) return ::testing::AssertionSuccess();
  }
  auto f = ::testing::AssertionFailure();
  f << "no diagnostic at " << line << ":" << col << " containing";
  for (std::string_view w : words) f << " [" << w << "]";
  f << "; got:\n" << DumpDiagnostics(r);
  return f;
}

}  // namespace automan::testing
