#include "sandbox/wire.h"

#include <cstdint>
#include <cstring>
#include <vector>

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
  bool Strings(std::vector<std::string>* v) {
    uint32_t n = 0;
    if (!U32(&n) || n > remaining() / 4) return false;
    v->resize(n);
    for (auto& s : *v) {
      if (!String(&s)) return false;
    }
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

// Every string costs its bytes plus a 4-byte length; the fixed part is the two counts,
// the two durations and the sandbox flag.
constexpr size_t kFixedSpecBytes = 4 + 4 + 4 + 8 + 8 + 4;
// The sandbox part: flags, two list counts, run_as's length, five limits.
constexpr size_t kFixedSandboxBytes = 4 + 4 + 4 + 4 + 5 * 8;
// Entries of `writable` and `hidden` together.
constexpr size_t kMaxSandboxPaths = 1024;

size_t EncodedSize(const StepCommand& cmd) {
  size_t n = kFixedSpecBytes + cmd.cwd.size();
  for (const auto& a : cmd.argv) n += 4 + a.size();
  for (const auto& e : cmd.env) n += 4 + e.size();
  if (cmd.sandbox) {
    n += kFixedSandboxBytes + cmd.sandbox->run_as.size();
    for (const auto& p : cmd.sandbox->writable) n += 4 + p.size();
    for (const auto& p : cmd.sandbox->hidden) n += 4 + p.size();
  }
  return n;
}

void PutStrings(std::string& out, const std::vector<std::string>& v) {
  PutU32(out, static_cast<uint32_t>(v.size()));
  for (const auto& s : v) PutString(out, s);
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
  if (cmd.sandbox) {
    const SandboxSpec& sb = *cmd.sandbox;
    if (sb.writable.size() + sb.hidden.size() > kMaxSandboxPaths) {
      return Error(ErrorCode::kInvalidArgument,
                   "sandbox has {} writable and hidden paths; the limit is {}",
                   sb.writable.size() + sb.hidden.size(), kMaxSandboxPaths);
    }
    for (const auto* list : {&sb.writable, &sb.hidden}) {
      for (const auto& p : *list) {
        if (p.empty() || p[0] != '/' || HasNul(p)) {
          return Error(ErrorCode::kInvalidArgument,
                       "sandbox path \"{}\" is not an absolute path without NUL bytes",
                       HasNul(p) ? "<with NUL>" : p);
        }
      }
    }
    if (HasNul(sb.run_as) || sb.run_as.size() > 64) {
      return Error(ErrorCode::kInvalidArgument, "sandbox run_as is not a user name");
    }
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
  PutU32(out, cmd.sandbox ? 1 : 0);
  if (cmd.sandbox) {
    const SandboxSpec& sb = *cmd.sandbox;
    PutU32(out, (sb.private_pids ? 1u : 0u) | (sb.no_network ? 2u : 0u));
    PutStrings(out, sb.writable);
    PutStrings(out, sb.hidden);
    PutString(out, sb.run_as);
    PutI64(out, static_cast<int64_t>(sb.memory_bytes));
    PutI64(out, static_cast<int64_t>(sb.max_processes));
    PutI64(out, static_cast<int64_t>(sb.cpu_seconds));
    PutI64(out, static_cast<int64_t>(sb.open_files));
    PutI64(out, static_cast<int64_t>(sb.file_size_bytes));
  }
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
  uint32_t has_sandbox = 0;
  if (!r.String(&cmd.cwd) || !r.I64(&timeout_ms) || !r.I64(&grace_ms) || !r.U32(&has_sandbox) ||
      has_sandbox > 1) {
    return truncated();
  }
  if (has_sandbox == 1) {
    SandboxSpec sb;
    uint32_t flags = 0;
    if (!r.U32(&flags) || flags > 3 || !r.Strings(&sb.writable) || !r.Strings(&sb.hidden) ||
        !r.String(&sb.run_as)) {
      return truncated();
    }
    sb.private_pids = (flags & 1u) != 0;
    sb.no_network = (flags & 2u) != 0;
    int64_t limits[5];
    for (int64_t& v : limits) {
      if (!r.I64(&v) || v < 0) return truncated();
    }
    if (limits[1] > static_cast<int64_t>(UINT32_MAX)) return truncated();
    sb.memory_bytes = static_cast<uint64_t>(limits[0]);
    sb.max_processes = static_cast<uint32_t>(limits[1]);
    sb.cpu_seconds = static_cast<uint64_t>(limits[2]);
    sb.open_files = static_cast<uint64_t>(limits[3]);
    sb.file_size_bytes = static_cast<uint64_t>(limits[4]);
    cmd.sandbox = std::move(sb);
  }
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
