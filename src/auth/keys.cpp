#include "auth/keys.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace automan::auth {

namespace {

constexpr std::string_view kHeader = "automan-master-key-v1\n";

Status Errno(std::string_view what, const std::string& path) {
  return Status(ErrorCode::kUnavailable,
                fmt::format("{} {}: {}", what, path, std::strerror(errno)));
}

Result<std::string> ReadAll(int fd, const std::string& path) {
  std::string text;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("cannot read the key file", path);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > 4096) break;
  }
  return text;
}

Result<Key> ParseKeyFile(const std::string& text, const std::string& path) {
  std::string_view t(text);
  std::string raw;
  if (t.substr(0, kHeader.size()) == kHeader) {
    t.remove_prefix(kHeader.size());
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) {
      t.remove_suffix(1);
    }
    if (Base64UrlDecode(t, raw) && raw.size() == 32) {
      Key k{};
      std::memcpy(k.data(), raw.data(), k.size());
      return k;
    }
  }
  return Status(ErrorCode::kDataLoss,
                fmt::format("the key file {} is not an Automan master key file (expected "
                            "\"automan-master-key-v1\" and 32 bytes in base64url); restore it "
                            "from your backup",
                            path));
}

}  // namespace

Keys DeriveKeys(const Key& master) {
  return Keys{
      .tickets = DeriveKey(master, 1, "amticket"),
      .secrets = DeriveKey(master, 2, "amsecret"),
      .audit = DeriveKey(master, 3, "am_audit"),
      .csrf = DeriveKey(master, 4, "am_csrf_"),
      .params = DeriveKey(master, 5, "amparams"),
  };
}

Result<Keys> LoadOrCreateKeys(const std::string& path, bool may_create, bool* created) {
  if (created != nullptr) *created = false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT) {
    if (!may_create) {
      return Status(
          ErrorCode::kFailedPrecondition,
          fmt::format("the master key file {} is missing but the store already has users, "
                      "secrets or audit entries sealed with it; restore the key file from "
                      "your backup, or point --key-file at it (refusing to create a new key, "
                      "which would make the existing secrets and audit trail unreadable)",
                      path));
    }
    std::error_code ec;
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
      std::filesystem::create_directories(parent, ec);
      if (ec) {
        return Status(ErrorCode::kUnavailable,
                      fmt::format("cannot create {}: {}", parent.string(), ec.message()));
      }
      std::filesystem::permissions(parent, std::filesystem::perms::owner_all, ec);
    }
    Key master{};
    const std::string random = RandomBytes(master.size());
    std::memcpy(master.data(), random.data(), master.size());
    const std::string text = std::string(kHeader) + Base64UrlEncode(random) + "\n";
    // Written under a temporary name and renamed, so a crash never leaves half a key.
    const std::string tmp = path + ".tmp";
    ::unlink(tmp.c_str());
    int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0) return Errno("cannot create the key file", tmp);
    const bool ok = ::write(out, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                    ::fsync(out) == 0;
    ::close(out);
    if (!ok) {
      ::unlink(tmp.c_str());
      return Errno("cannot write the key file", tmp);
    }
    // link() fails when another process created the key meanwhile: use theirs.
    if (::link(tmp.c_str(), path.c_str()) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      if (err != EEXIST) {
        errno = err;
        return Errno("cannot create the key file", path);
      }
      return LoadOrCreateKeys(path, false, nullptr);
    }
    ::unlink(tmp.c_str());
    if (created != nullptr) *created = true;
    return DeriveKeys(master);
  }
  if (fd < 0) return Errno("cannot open the key file", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Errno("cannot stat the key file", path);
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return Status(ErrorCode::kFailedPrecondition,
                  fmt::format("the key file {} is readable by other users (mode {:o}); run "
                              "`chmod 600 {}`",
                              path, st.st_mode & 0777, path));
  }
  Result<std::string> text = ReadAll(fd, path);
  ::close(fd);
  if (!text.ok()) return text.status();
  AUTOMAN_ASSIGN_OR_RETURN(Key master, ParseKeyFile(*text, path));
  return DeriveKeys(master);
}

}  // namespace automan::auth
