// Internal to src/runbook: how a user's text is shown inside an error message.
#pragma once

#include <string>
#include <string_view>

namespace automan::runbook_detail {

// `"text"` with quotes and backslashes escaped, newlines as \n, cut after 60 characters
// with "..." so a hostile value cannot flood a message.
inline std::string QuoteForMessage(std::string_view s) {
  std::string out = "\"";
  size_t n = 0;
  for (char c : s) {
    if (++n > 60) {
      out += "...";
      break;
    }
    if (c == '\n') {
      out += "\\n";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace automan::runbook_detail
