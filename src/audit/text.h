// Internal: text helpers shared by audit_log.cpp and export.cpp.
#pragma once

#include <string>
#include <string_view>

namespace automan::audit::detail {

// `s` with every invalid UTF-8 sequence (overlong forms, surrogates, code points above
// U+10FFFF, truncated sequences) replaced by U+FFFD, and NUL too when `replace_nul`.
std::string ToValidUtf8(std::string_view s, bool replace_nul);

}  // namespace automan::audit::detail
