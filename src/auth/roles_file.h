// Custom roles from a YAML file (the server's `roles_file` setting):
//
//   roles:
//     deployer:
//       description: Starts and cancels deploys
//       permissions: [runbooks.read, runs.read, runs.execute, runs.cancel]
//       categories: [deploy]   # optional: runs.execute only for runbooks of these categories
//
// Every role is checked as RoleSet::AddCustom checks it (a valid name, not a built-in's,
// known permissions); unknown keys, wrong types, duplicates, files over 1 MiB and more than
// 1,000 roles are refused. On any error nothing is added and the message names
// FILE:LINE:COL.
#pragma once

#include <string>

#include "auth/rbac.h"
#include "common/status.h"

namespace automan::auth {

// Adds the roles of the file at `path` to `roles`. kNotFound when it does not exist,
// kInvalidArgument for its contents.
Status LoadRolesFile(const std::string& path, RoleSet& roles);

// The same from text; `source` names it in messages.
Status LoadRolesText(const std::string& text, const std::string& source, RoleSet& roles);

}  // namespace automan::auth
