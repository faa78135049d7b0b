// Byte sizes as written in runbooks: "64MiB", "1GiB", "512KiB", "4096" (bytes); also the
// SI-looking "64M" / "1G" / "512K", which mean the same binary units (as in ulimit and
// cgroups). Whole numbers only, at most 1 PiB.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace automan {

// Error messages say what to write instead, e.g. `unknown unit "MB" in "64MB"; use KiB, MiB,
// GiB or TiB (e.g. 64MiB)`.
Result<uint64_t> ParseByteSize(std::string_view text);
// The largest unit that divides exactly: 67108864 -> "64 MiB", 1000 -> "1000 bytes".
std::string FormatBytes(uint64_t bytes);

}  // namespace automan
