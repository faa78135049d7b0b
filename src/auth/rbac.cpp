#include "auth/rbac.h"

#include <fmt/format.h>

#include <array>

namespace automan::auth {

namespace {

constexpr std::array<std::string_view, static_cast<size_t>(Permission::kCount)> kNames = {
    "runbooks.read", "runbooks.manage", "runs.read",    "runs.execute",   "runs.execute_dangerous",
    "runs.cancel",   "runs.approve",    "runs.delete",  "schedules.read", "schedules.manage",
    "queue.manage",  "secrets.manage",  "users.manage", "audit.read",     "metrics.read",
};

PermissionSet Of(std::initializer_list<Permission> ps) {
  PermissionSet s;
  for (Permission p : ps) s.Add(p);
  return s;
}

}  // namespace

std::string_view ToString(Permission p) {
  const auto i = static_cast<size_t>(p);
  return i < kNames.size() ? kNames[i] : "unknown";
}

std::optional<Permission> ParsePermission(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<Permission>(i);
  }
  return std::nullopt;
}

const std::vector<Permission>& AllPermissions() {
  static const std::vector<Permission> all = [] {
    std::vector<Permission> v;
    for (size_t i = 0; i < kNames.size(); ++i) v.push_back(static_cast<Permission>(i));
    return v;
  }();
  return all;
}

PermissionSet PermissionSet::All() {
  PermissionSet s;
  for (Permission p : AllPermissions()) s.Add(p);
  return s;
}

std::vector<std::string> PermissionSet::Names() const {
  std::vector<std::string> out;
  for (Permission p : AllPermissions()) {
    if (Has(p)) out.emplace_back(ToString(p));
  }
  return out;
}

RoleSet::RoleSet(std::vector<std::string> responder_categories) {
  using P = Permission;
  const PermissionSet read =
      Of({P::kRunbooksRead, P::kRunsRead, P::kSchedulesRead, P::kMetricsRead});
  PermissionSet operator_perms = read;
  for (P p : {P::kRunsExecute, P::kRunsCancel, P::kRunsApprove}) operator_perms.Add(p);
  PermissionSet responder = read;
  responder.Add(P::kRunsExecute);
  roles_["admin"] = Role{"admin", "every permission", PermissionSet::All(), {}, true};
  roles_["operator"] = Role{
      "operator", "read everything; execute, cancel and approve runs", operator_perms, {}, true};
  roles_["responder"] = Role{"responder", "read everything; execute runbooks of some categories",
                             responder, std::move(responder_categories), true};
  roles_["viewer"] = Role{"viewer", "read runbooks, runs, schedules and metrics", read, {}, true};
}

Status RoleSet::AddCustom(const std::string& name, const std::vector<std::string>& permissions,
                          const std::vector<std::string>& categories,
                          const std::string& description) {
  if (!IsValidName(name)) {
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("role name \"{}\" must be 1..64 of a-z 0-9 . _ -", name));
  }
  if (const Role* r = Find(name); r != nullptr && r->builtin) {
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("role \"{}\" is built in and cannot be redefined", name));
  }
  Role role{name, description, {}, categories, false};
  for (const std::string& p : permissions) {
    std::optional<Permission> perm = ParsePermission(p);
    if (!perm) {
      return Status(ErrorCode::kInvalidArgument,
                    fmt::format("role \"{}\": unknown permission \"{}\"", name, p));
    }
    role.permissions.Add(*perm);
  }
  roles_[name] = std::move(role);
  return Status::Ok();
}

const Role* RoleSet::Find(std::string_view name) const {
  auto it = roles_.find(name);
  return it == roles_.end() ? nullptr : &it->second;
}

std::vector<const Role*> RoleSet::All() const {
  std::vector<const Role*> out;
  for (const auto& [_, r] : roles_) out.push_back(&r);
  return out;
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  auto ok_first = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!ok_first(name.front())) return false;
  for (char c : name) {
    if (!ok_first(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

}  // namespace automan::auth
