// Plumbing of the client commands (client_commands.cpp, auth_commands.cpp): connecting to
// the server with the resolved settings, calling the API, reading its JSON, printing
// tables, and Ctrl-C handling while following a stream.
#pragma once

#include <signal.h>

#include <atomic>
#include <boost/json.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "client/api_client.h"
#include "common/status.h"

namespace automan::cli {

namespace json = boost::json;

inline constexpr int kExitInterrupted = 130;

// Set by SIGINT while a command follows a stream; the client polls it.
extern std::atomic<bool> g_interrupted;

// While alive, Ctrl-C sets g_interrupted instead of killing the process.
class StopFollowingOnCtrlC {
 public:
  StopFollowingOnCtrlC();
  ~StopFollowingOnCtrlC();
  StopFollowingOnCtrlC(const StopFollowingOnCtrlC&) = delete;
  StopFollowingOnCtrlC& operator=(const StopFollowingOnCtrlC&) = delete;

 private:
  struct sigaction old_ {};
};

// Prints "error: MESSAGE" (with how to log in when the server refused the credentials) and
// returns the exit code.
int Fail(const Status& s);

Result<std::unique_ptr<client::ApiClient>> Connect(const ServerFlags& flags);

// Calls the API and parses its JSON answer (null for 204).
Result<json::value> Call(client::ApiClient& c, std::string_view method, const std::string& target,
                         const json::value* body = nullptr);

const json::object& Obj(const json::value& v);
// The object in field `key` of `o`, or an empty one.
const json::object& Sub(const json::object& o, std::string_view key);
const json::array& Arr(const json::value* v);
// A field as text: strings as they are, numbers and bools written out, null/absent "".
std::string Str(const json::object& o, std::string_view key);
int64_t Int(const json::object& o, std::string_view key, int64_t def = 0);
bool Bool(const json::object& o, std::string_view key);

// Columns padded to their widest cell.
void PrintTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace automan::cli
