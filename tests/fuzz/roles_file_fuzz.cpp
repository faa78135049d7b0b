// Fuzz target for the custom roles file (auth/roles_file.h): any bytes in, roles added or
// an error out, never a crash or a sanitizer report. On error nothing was added and the
// message names the source; on success every role added is a custom one with a valid name.
// See README.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "auth/roles_file.h"

namespace {

[[noreturn]] void Broken(const char* what, size_t size) {
  fprintf(stderr, "roles_file_fuzz: invariant broken: %s (input %zu bytes)\n", what, size);
  abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  automan::auth::RoleSet roles;
  const size_t builtins = roles.All().size();
  automan::Status s = automan::auth::LoadRolesText(text, "fuzz.yaml", roles);
  if (!s.ok()) {
    if (s.code() != automan::ErrorCode::kInvalidArgument) Broken("wrong error code", size);
    if (s.message().rfind("fuzz.yaml", 0) != 0) Broken("an error that names no source", size);
    if (roles.All().size() != builtins) Broken("a refused file added roles", size);
    return 0;
  }
  for (const automan::auth::Role* r : roles.All()) {
    if (!automan::auth::IsValidName(r->name)) Broken("a role with an invalid name", size);
  }
  return 0;
}
