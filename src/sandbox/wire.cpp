#include "sandbox/wire.h"

#include <cstring>

namespace automan::sandbox_detail {
namespace {

void PutU32(std::string& out, uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}

void PutI64(std::string& out, int64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);
  out.append(b, 8);
}

void PutString(std::string& out, std::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

// Reads from a byte range; every accessor fails (returns false) rather than over-read.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U32(uint32_t* v) { return Fixed(v, 4); }
  bool I64(int64_t* v) { return Fixed(v, 8); }
  bool String(std::string* s) {
    uint32_t n = 0;
    if (!U32(&n) || n > in_.size() - pos_) return false;
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  bool Fixed(void* v, size_t n) {
    if (in_.size() - pos_ < n) return false;
    std::memcpy(v, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

// Every string costs its bytes plus a 4-byte length; the fixed part is the two counts
// and the two durations.
constexpr size_t kFixedSpecBytes = 4 + 4 + 4 + 8 + 8;

size_t EncodedSize(const StepCommand& cmd) {
  size_t n = kFixedSpecBytes + cmd.cwd.size();
  for (const auto& a : cmd.argv) n += 4 + a.size();
  for (const auto& e : cmd.env) n += 4 + e.size();
  return n;
}

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

}  // namespace

std::string EncodeFrame(uint32_t type, std::string_view payload) {
  std::string out;
  out.reserve(kFrameHeaderBytes + payload.size());
  PutU32(out, type);
  PutU32(out, static_cast<uint32_t>(payload.size()));
  out.append(payload);
  return out;
}

FrameHeader DecodeFrameHeader(const char* bytes) {
  FrameHeader h;
  std::memcpy(&h.type, bytes, 4);
  std::memcpy(&h.length, bytes + 4, 4);
  return h;
}

Status ValidateStepCommand(const StepCommand& cmd) {
  if (cmd.argv.empty() || cmd.argv[0].empty()) {
    return Error(ErrorCode::kInvalidArgument, "step command has no program (empty argv)");
  }
  if (cmd.argv.size() + cmd.env.size() > kMaxStepStrings) {
    return Error(ErrorCode::kInvalidArgument,
                 "step command has {} argv and env entries; the limit is {}",
                 cmd.argv.size() + cmd.env.size(), kMaxStepStrings);
  }
  // Checked before anything else touches the sizes, so later sums cannot overflow.
  if (size_t size = EncodedSize(cmd); size > kMaxStepSpecBytes) {
    return Error(ErrorCode::kInvalidArgument,
                 "step command is {} bytes encoded; the limit is {} bytes", size,
                 kMaxStepSpecBytes);
  }
  for (size_t i = 0; i < cmd.argv.size(); ++i) {
    if (HasNul(cmd.argv[i])) {
      return Error(ErrorCode::kInvalidArgument, "argv[{}] contains a NUL byte", i);
    }
  }
  for (size_t i = 0; i < cmd.env.size(); ++i) {
    const std::string& e = cmd.env[i];
    size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Error(ErrorCode::kInvalidArgument, "environment entry {} is not of the form KEY=VALUE",
                   i);
    }
    if (HasNul(e)) {
      // The value may be a secret: name only the key.
      return Error(ErrorCode::kInvalidArgument, "environment variable {} contains a NUL byte",
                   e.substr(0, eq));
    }
  }
  if (HasNul(cmd.cwd)) {
    return Error(ErrorCode::kInvalidArgument, "working directory contains a NUL byte");
  }
  if (cmd.timeout && (cmd.timeout->count() < 0 || *cmd.timeout > kMaxStepDuration)) {
    return Error(ErrorCode::kInvalidArgument, "step timeout {}ms is outside [0, {}ms]",
                 cmd.timeout->count(), kMaxStepDuration.count());
  }
  if (cmd.kill_grace.count() < 0 || cmd.kill_grace > kMaxStepDuration) {
    return Error(ErrorCode::kInvalidArgument, "kill grace {}ms is outside [0, {}ms]",
                 cmd.kill_grace.count(), kMaxStepDuration.count());
  }
  return Status::Ok();
}

std::string EncodeStepCommand(const StepCommand& cmd) {
  std::string out;
  out.reserve(EncodedSize(cmd));
  PutU32(out, static_cast<uint32_t>(cmd.argv.size()));
  for (const auto& a : cmd.argv) PutString(out, a);
  PutU32(out, static_cast<uint32_t>(cmd.env.size()));
  for (const auto& e : cmd.env) PutString(out, e);
  PutString(out, cmd.cwd);
  PutI64(out, cmd.timeout ? static_cast<int64_t>(cmd.timeout->count()) : -1);
  PutI64(out, static_cast<int64_t>(cmd.kill_grace.count()));
  return out;
}

Result<StepCommand> DecodeStepCommand(std::string_view payload) {
  auto truncated = [] {
    return Error(ErrorCode::kInvalidArgument, "step specification is truncated or corrupt");
  };
  if (payload.size() > kMaxStepSpecBytes) {
    return Error(ErrorCode::kInvalidArgument, "step specification is {} bytes; the limit is {}",
                 payload.size(), kMaxStepSpecBytes);
  }
  Reader r(payload);
  StepCommand cmd;
  uint32_t n = 0;
  // A count can never exceed the bytes left (each string takes at least 4), which bounds
  // the reservation below by the payload size.
  if (!r.U32(&n) || n > r.remaining() / 4) return truncated();
  cmd.argv.resize(n);
  for (auto& a : cmd.argv) {
    if (!r.String(&a)) return truncated();
  }
  if (!r.U32(&n) || n > r.remaining() / 4) return truncated();
  cmd.env.resize(n);
  for (auto& e : cmd.env) {
    if (!r.String(&e)) return truncated();
  }
  int64_t timeout_ms = 0;
  int64_t grace_ms = 0;
  if (!r.String(&cmd.cwd) || !r.I64(&timeout_ms) || !r.I64(&grace_ms)) return truncated();
  if (r.remaining() != 0) {
    return Error(ErrorCode::kInvalidArgument, "step specification has {} trailing bytes",
                 r.remaining());
  }
  if (timeout_ms < -1) {
    return Error(ErrorCode::kInvalidArgument, "step timeout {}ms is negative", timeout_ms);
  }
  if (timeout_ms >= 0) cmd.timeout = std::chrono::milliseconds(timeout_ms);
  cmd.kill_grace = std::chrono::milliseconds(grace_ms);
  AUTOMAN_RETURN_IF_ERROR(ValidateStepCommand(cmd));
  return cmd;
}

std::string EncodeInt32(int32_t v) {
  std::string out(4, '\0');
  std::memcpy(out.data(), &v, 4);
  return out;
}

Result<int32_t> DecodeInt32(std::string_view payload) {
  if (payload.size() != 4) {
    return Error(ErrorCode::kInvalidArgument, "expected a 4-byte integer, got {} bytes",
                 payload.size());
  }
  int32_t v = 0;
  std::memcpy(&v, payload.data(), 4);
  return v;
}

}  // namespace automan::sandbox_detail
