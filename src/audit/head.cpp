#include "audit/head.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace automan::audit {

namespace {

constexpr std::string_view kMagic = "automan-audit-head v1";

std::string MacInput(const HeadAnchor& head) {
  return fmt::format("{}\n{}\n{}", kMagic, head.seq, head.hash);
}

Status IoError(std::string_view what, const std::string& path, int err) {
  return Error(err == EACCES || err == EPERM ? ErrorCode::kPermissionDenied : ErrorCode::kInternal,
               "{} {}: {}", what, path, ErrnoText(err));
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error(ErrorCode::kInternal, "write: {}", ErrnoText(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

}  // namespace

std::string FormatHeadFile(const AuditKey& key, const HeadAnchor& head) {
  return fmt::format("{} {} {} {}\n", kMagic, head.seq, head.hash,
                     KeyedHashHex(key, MacInput(head)));
}

Result<HeadAnchor> ParseHeadFile(const AuditKey& key, std::string_view text) {
  auto malformed = [](std::string_view why) {
    return Error(ErrorCode::kDataLoss, "audit head file is malformed: {}", why);
  };
  if (!text.starts_with(kMagic) || text.size() <= kMagic.size() || text[kMagic.size()] != ' ') {
    return malformed("it does not start with \"automan-audit-head v1\"");
  }
  text.remove_prefix(kMagic.size() + 1);
  if (!text.ends_with('\n')) return malformed("no final newline");
  text.remove_suffix(1);
  std::vector<std::string_view> parts;
  while (!text.empty()) {
    auto space = text.find(' ');
    parts.push_back(text.substr(0, space));
    if (space == std::string_view::npos) break;
    text.remove_prefix(space + 1);
  }
  if (parts.size() != 3) return malformed("expected seq, hash and mac");
  HeadAnchor head;
  auto [end, ec] = std::from_chars(parts[0].data(), parts[0].data() + parts[0].size(), head.seq);
  if (ec != std::errc() || end != parts[0].data() + parts[0].size() || head.seq < 1) {
    return malformed("bad seq");
  }
  if (!IsHashHex(parts[1]) || !IsHashHex(parts[2])) return malformed("bad hash or mac");
  head.hash = std::string(parts[1]);
  const std::string mac = KeyedHashHex(key, MacInput(head));
  if (sodium_memcmp(mac.data(), parts[2].data(), mac.size()) != 0) {
    return Error(
        ErrorCode::kDataLoss,
        "audit head file's MAC does not match: it was edited, or written with another key");
  }
  return head;
}

Result<std::optional<HeadAnchor>> ReadHeadFile(const std::string& path, const AuditKey& key) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<HeadAnchor>();
    return IoError("opening", path, errno);
  }
  std::string text;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return IoError("reading", path, err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > 4096) break;  // far larger than any head file
  }
  ::close(fd);
  auto head = ParseHeadFile(key, text);
  if (!head.ok()) return head.status().WithContext(path);
  return std::optional<HeadAnchor>(std::move(head).value());
}

Status WriteHeadFile(const std::string& path, const AuditKey& key, const HeadAnchor& head,
                     bool sync) {
  std::string tmp = path + ".tmp.XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);  // mode 0600
  if (fd < 0) return IoError("creating", tmp, errno);
  Status st = WriteAll(fd, FormatHeadFile(key, head));
  if (st.ok() && sync && ::fsync(fd) != 0) st = IoError("fsync", tmp, errno);
  if (::close(fd) != 0 && st.ok()) st = IoError("closing", tmp, errno);
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = IoError("renaming to", path, errno);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st.WithContext("writing the audit head");
  }
  return Status::Ok();
}

}  // namespace automan::audit
