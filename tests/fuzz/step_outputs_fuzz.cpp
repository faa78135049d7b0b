// Fuzz target for the $AUTOMAN_OUTPUT parser (ParseStepOutputs, the pure half of
// ReadStepOutputs): a step writes that file, so its bytes are untrusted. Any bytes in, a map
// or an error out, never a crash or a sanitizer report. See README.md.
//
// On success: every key is [A-Za-z_][A-Za-z0-9_]{0,127}, no value holds a '\n', and writing
// the map back as "key=value\r\n" lines parses to the same map (one '\r' is stripped per
// line, so CRLF keeps values that themselves end in '\r'). On failure: kInvalidArgument with
// a message naming a line that exists.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "engine/step_env.h"

namespace {

[[noreturn]] void Broken(const char* what, std::string_view input) {
  fprintf(stderr, "step_outputs_fuzz: invariant broken: %s (input %zu bytes)\n", what,
          input.size());
  abort();
}

bool IsKey(std::string_view k) {
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (k.empty() || k.size() > 128 || !alpha(k[0])) return false;
  for (char c : k) {
    if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = automan::ParseStepOutputs(text);
  if (!r.ok()) {
    if (r.status().code() != automan::ErrorCode::kInvalidArgument) Broken("wrong error code", text);
    // "$AUTOMAN_OUTPUT line <n>..." with 1 <= n <= the number of lines.
    constexpr std::string_view kPrefix = "$AUTOMAN_OUTPUT line ";
    const std::string& m = r.status().message();
    if (m.rfind(kPrefix, 0) != 0) Broken("the message does not name a line", text);
    size_t line = 0;
    for (size_t i = kPrefix.size(); i < m.size() && m[i] >= '0' && m[i] <= '9'; ++i) {
      line = line * 10 + static_cast<size_t>(m[i] - '0');
      if (line > text.size() + 1) break;
    }
    size_t lines = 1;
    for (char c : text) lines += c == '\n';
    if (line == 0 || line > lines) Broken("the message names a line that does not exist", text);
    return 0;
  }
  const std::map<std::string, std::string>& outputs = *r;
  std::string again;
  for (const auto& [k, v] : outputs) {
    if (!IsKey(k)) Broken("an invalid key was accepted", text);
    if (v.find('\n') != std::string::npos) Broken("a value holds a newline", text);
    again += k + "=" + v + "\r\n";
  }
  if (again.size() > text.size() + 2 * outputs.size()) {
    Broken("outputs larger than the input", text);
  }
  auto back = automan::ParseStepOutputs(again);
  if (!back.ok()) Broken("the re-serialized outputs do not parse", text);
  if (*back != outputs) Broken("re-serialized outputs parse to a different map", text);
  return 0;
}
