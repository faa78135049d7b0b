#include "auth/roles_file.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

namespace automan::auth {

namespace {

constexpr size_t kMaxFileBytes = 1 << 20;
constexpr size_t kMaxRoles = 1000;

Status At(const std::string& source, const YAML::Node& node, const std::string& message) {
  const YAML::Mark m = node.Mark();
  return Status(ErrorCode::kInvalidArgument,
                fmt::format("{}:{}:{}: {}", source, m.line + 1, m.column + 1, message));
}

Result<std::vector<std::string>> StringList(const std::string& source, const YAML::Node& node,
                                            const std::string& what) {
  if (!node.IsSequence()) return At(source, node, what + " must be a list of strings");
  std::vector<std::string> out;
  for (const YAML::Node& item : node) {
    if (!item.IsScalar() || item.Scalar().empty()) {
      return At(source, item, what + " must be a list of non-empty strings");
    }
    out.push_back(item.Scalar());
  }
  return out;
}

// Keys of a mapping in file order, refusing duplicates (yaml-cpp keeps them silently).
Status NoDuplicateKeys(const std::string& source, const YAML::Node& map) {
  std::set<std::string> seen;
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) return At(source, kv.first, "keys must be strings");
    if (!seen.insert(kv.first.Scalar()).second) {
      return At(source, kv.first, fmt::format("\"{}\" is given twice", kv.first.Scalar()));
    }
  }
  return Status::Ok();
}

}  // namespace

Status LoadRolesText(const std::string& text, const std::string& source, RoleSet& roles) {
  if (text.size() > kMaxFileBytes) {
    return Status(
        ErrorCode::kInvalidArgument,
        fmt::format("{}: {} bytes is over the 1 MiB limit of a roles file", source, text.size()));
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("{}:{}:{}: {}", source, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  if (!root.IsMap()) return At(source, root, "a roles file is a mapping with the key `roles`");
  AUTOMAN_RETURN_IF_ERROR(NoDuplicateKeys(source, root));
  for (const auto& kv : root) {
    if (kv.first.Scalar() != "roles") {
      return At(source, kv.first,
                fmt::format("unknown key \"{}\" (expected: roles)", kv.first.Scalar()));
    }
  }
  const YAML::Node list = root["roles"];
  if (!list.IsMap()) return At(source, list, "`roles` must map role names to their definitions");
  AUTOMAN_RETURN_IF_ERROR(NoDuplicateKeys(source, list));
  if (list.size() > kMaxRoles) {
    return At(source, list,
              fmt::format("{} roles is over the limit of {}", list.size(), kMaxRoles));
  }
  RoleSet staged = roles;  // all or nothing
  for (const auto& kv : list) {
    const std::string name = kv.first.Scalar();
    const YAML::Node& def = kv.second;
    if (!def.IsMap()) return At(source, def, fmt::format("role \"{}\" must be a mapping", name));
    AUTOMAN_RETURN_IF_ERROR(NoDuplicateKeys(source, def));
    std::vector<std::string> permissions, categories;
    std::string description;
    bool has_permissions = false;
    for (const auto& field : def) {
      const std::string key = field.first.Scalar();
      if (key == "permissions") {
        AUTOMAN_ASSIGN_OR_RETURN(permissions, StringList(source, field.second, "permissions"));
        has_permissions = true;
      } else if (key == "categories") {
        AUTOMAN_ASSIGN_OR_RETURN(categories, StringList(source, field.second, "categories"));
      } else if (key == "description") {
        if (!field.second.IsScalar()) return At(source, field.second, "description must be text");
        description = field.second.Scalar();
      } else {
        return At(source, field.first,
                  fmt::format("role \"{}\": unknown key \"{}\" (expected: description, "
                              "permissions, categories)",
                              name, key));
      }
    }
    if (!has_permissions) {
      return At(source, kv.first, fmt::format("role \"{}\" has no `permissions`", name));
    }
    Status added = staged.AddCustom(name, permissions, categories, description);
    if (!added.ok()) return At(source, kv.first, added.message());
  }
  roles = std::move(staged);
  return Status::Ok();
}

Status LoadRolesFile(const std::string& path, RoleSet& roles) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status(ErrorCode::kNotFound, fmt::format("roles file {} cannot be read", path));
  }
  std::string text;
  text.resize(kMaxFileBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return LoadRolesText(text, path, roles);
}

}  // namespace automan::auth
