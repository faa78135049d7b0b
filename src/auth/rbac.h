// Permissions and roles.
//
// A permission names one kind of action ("runs.execute"). A role is a named set of
// permissions, optionally with the runbook categories its `runs.execute` is limited to.
// Built-in roles: admin (everything), operator (read, execute, cancel, approve),
// responder (read, and execute runbooks of selected categories), viewer (read). Custom
// roles come from the configuration (docs/security.md).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace automan::auth {

enum class Permission : uint8_t {
  kRunbooksRead,
  kRunbooksManage,
  kRunsRead,
  kRunsExecute,
  kRunsExecuteDangerous,
  kRunsCancel,
  kRunsApprove,
  kRunsDelete,
  kSchedulesRead,
  kSchedulesManage,
  kQueueManage,
  kSecretsManage,
  kUsersManage,
  kAuditRead,
  kMetricsRead,
  kCount,
};

// "runs.execute"
std::string_view ToString(Permission p);
std::optional<Permission> ParsePermission(std::string_view name);
// Every permission, in declaration order.
const std::vector<Permission>& AllPermissions();

// What a route requires besides a permission: nothing (public), or only a logged-in
// subject (its own session, tokens and password).
inline constexpr std::string_view kPublicRoute = "public";
inline constexpr std::string_view kAuthenticatedRoute = "authenticated";

class PermissionSet {
 public:
  PermissionSet() = default;
  static PermissionSet All();
  void Add(Permission p) { bits_ |= Bit(p); }
  bool Has(Permission p) const { return (bits_ & Bit(p)) != 0; }
  bool Within(const PermissionSet& other) const { return (bits_ & ~other.bits_) == 0; }
  PermissionSet Intersect(const PermissionSet& other) const {
    PermissionSet s;
    s.bits_ = bits_ & other.bits_;
    return s;
  }
  std::vector<std::string> Names() const;
  bool operator==(const PermissionSet&) const = default;

 private:
  static uint32_t Bit(Permission p) { return uint32_t{1} << static_cast<unsigned>(p); }
  uint32_t bits_ = 0;
};

struct Role {
  std::string name;
  std::string description;
  PermissionSet permissions;
  // Non-empty: runs.execute only for runbooks whose category is one of these.
  std::vector<std::string> categories;
  bool builtin = false;
};

// The roles of this server: the built-ins plus custom ones.
class RoleSet {
 public:
  // The built-in roles; `responder_categories` limits the responder's runs.execute.
  explicit RoleSet(std::vector<std::string> responder_categories = {"diagnostics", "remediation"});
  // kInvalidArgument for a bad name, an unknown permission or a built-in's name.
  Status AddCustom(const std::string& name, const std::vector<std::string>& permissions,
                   const std::vector<std::string>& categories, const std::string& description);
  const Role* Find(std::string_view name) const;
  std::vector<const Role*> All() const;

 private:
  std::map<std::string, Role, std::less<>> roles_;
};

// Names of users, roles, tokens: 1..64 of [a-z0-9._-], starting with a letter or digit.
bool IsValidName(std::string_view name);

}  // namespace automan::auth
