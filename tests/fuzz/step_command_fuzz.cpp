// Fuzz target for the decoder of the supervisor's kRunStep control-frame payload
// (sandbox_detail::DecodeStepCommand): the shim decodes whatever arrives on its control
// socket, so a corrupt payload must be rejected, never over-read. Any bytes in, a StepCommand
// or an error out, never a crash or a sanitizer report. See README.md.
//
// On success: the command passes ValidateStepCommand, and the encoding is canonical, so
// re-encoding gives back exactly the input bytes, which decode to an equal command.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sandbox/wire.h"

namespace {

[[noreturn]] void Broken(const char* what, std::string_view input) {
  fprintf(stderr, "step_command_fuzz: invariant broken: %s (input %zu bytes)\n", what,
          input.size());
  abort();
}

bool Equal(const automan::StepCommand& a, const automan::StepCommand& b) {
  return a.argv == b.argv && a.env == b.env && a.cwd == b.cwd && a.timeout == b.timeout &&
         a.kill_grace == b.kill_grace && a.sandbox == b.sandbox;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace wire = automan::sandbox_detail;
  std::string_view payload(reinterpret_cast<const char*>(data), size);
  auto r = wire::DecodeStepCommand(payload);
  if (!r.ok()) {
    if (r.status().code() != automan::ErrorCode::kInvalidArgument) {
      Broken("wrong error code", payload);
    }
    if (r.status().message().empty()) Broken("an error without a message", payload);
    return 0;
  }
  if (!wire::ValidateStepCommand(*r).ok()) {
    Broken("decoded a command that fails validation", payload);
  }
  const std::string encoded = wire::EncodeStepCommand(*r);
  if (encoded != payload) Broken("re-encoding does not give back the payload", payload);
  auto again = wire::DecodeStepCommand(encoded);
  if (!again.ok()) Broken("the re-encoded command does not decode", payload);
  if (!Equal(*again, *r)) Broken("decode(encode(cmd)) != cmd", payload);
  return 0;
}
