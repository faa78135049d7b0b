// The engine <-> shim protocol: fixed descriptor numbers in the shim and the framing of
// the control socket. Internal to src/sandbox (the engine side and SupervisorMain).
//
// Frames, both directions, on one AF_UNIX stream socket: a header of two native-endian
// uint32 (type, payload length) followed by the payload. Engine -> shim: kRunStep (an
// encoded StepCommand) and kCancel (empty). Shim -> engine: kHello (protocol version, sent
// once at start), then per step kStarted (the step's pid, which is also its process group,
// then the text of what the sandbox enforced) followed by exactly one terminal frame:
// kExited (exit code) or kSignaled (signal), each followed by optional text (a sandbox
// limit that explains the end), kTimedOut, kCancelled (empty) or kSpawnFailed (error text).
//
// StepCommand payload: u32 argc, argc strings, u32 envc, envc strings, string cwd,
// i64 timeout in ms (-1: none), i64 kill grace in ms, u32 sandbox (0 or 1) and when 1:
// u32 flags (1: private pids, 2: no network), u32 count + writable strings, u32 count +
// hidden strings, string run_as, i64 memory, processes, cpu seconds, open files, file size;
// a string is a u32 length and bytes.
// Decoding checks every length against the remaining input and the result against
// ValidateStepCommand, so a corrupt payload is rejected, never over-read.
//
// Thread-safe: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "sandbox/supervisor.h"

namespace automan::sandbox_detail {

// Descriptors the shim finds open when it starts (everything else is closed).
inline constexpr int kShimControlFd = 3;  // the control socket
inline constexpr int kShimStdoutFd = 4;   // write end of the run's stdout pipe
inline constexpr int kShimStderrFd = 5;   // write end of the run's stderr pipe
inline constexpr int kShimFirstFreeFd = 6;

inline constexpr uint32_t kProtocolVersion = 2;

enum class ControlFrame : uint32_t { kRunStep = 1, kCancel = 2 };
enum class StatusFrame : uint32_t {
  kHello = 100,
  kStarted,
  kExited,
  kSignaled,
  kTimedOut,
  kCancelled,
  kSpawnFailed,
};

inline constexpr size_t kFrameHeaderBytes = 8;
// Largest payload of a shim -> engine frame; spawn errors are truncated to fit.
inline constexpr size_t kMaxStatusPayload = 4096;
// Largest payload of an engine -> shim frame.
inline constexpr size_t kMaxControlPayload = kMaxStepSpecBytes;

struct FrameHeader {
  uint32_t type = 0;
  uint32_t length = 0;
};

std::string EncodeFrame(uint32_t type, std::string_view payload);
FrameHeader DecodeFrameHeader(const char* bytes);  // reads kFrameHeaderBytes bytes

// Bounds and well-formedness of a command (see RunStep in supervisor.h): kInvalidArgument.
Status ValidateStepCommand(const StepCommand& cmd);

// The payload of a kRunStep frame. The command must have passed ValidateStepCommand.
std::string EncodeStepCommand(const StepCommand& cmd);
// kInvalidArgument when the payload is truncated, has trailing bytes or fails validation.
Result<StepCommand> DecodeStepCommand(std::string_view payload);

std::string EncodeInt32(int32_t v);
// kInvalidArgument unless the payload is exactly 4 bytes.
Result<int32_t> DecodeInt32(std::string_view payload);

}  // namespace automan::sandbox_detail
