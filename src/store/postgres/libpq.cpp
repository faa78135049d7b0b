#include "store/postgres/libpq.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace automan::store_detail {

namespace {

LibPqApi g_api;
Status g_status;
std::once_flag g_once;

template <typename Fn>
bool Bind(void* lib, const char* name, Fn& out, std::string& missing) {
  out = reinterpret_cast<Fn>(dlsym(lib, name));
  if (out == nullptr) missing = name;
  return out != nullptr;
}

void Load() {
  void* lib = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    g_status = Error(ErrorCode::kUnavailable,
                     "PostgreSQL support needs libpq, which could not be loaded ({}); install "
                     "the Debian package libpq5",
                     why != nullptr ? why : "unknown error");
    return;
  }
  std::string missing;
  bool ok = Bind(lib, "PQclear", g_api.PQclear, missing) &&
            Bind(lib, "PQcmdTuples", g_api.PQcmdTuples, missing) &&
            Bind(lib, "PQconnectdbParams", g_api.PQconnectdbParams, missing) &&
            Bind(lib, "PQconninfoFree", g_api.PQconninfoFree, missing) &&
            Bind(lib, "PQconninfoParse", g_api.PQconninfoParse, missing) &&
            Bind(lib, "PQconsumeInput", g_api.PQconsumeInput, missing) &&
            Bind(lib, "PQerrorMessage", g_api.PQerrorMessage, missing) &&
            Bind(lib, "PQexec", g_api.PQexec, missing) &&
            Bind(lib, "PQexecParams", g_api.PQexecParams, missing) &&
            Bind(lib, "PQexecPrepared", g_api.PQexecPrepared, missing) &&
            Bind(lib, "PQfinish", g_api.PQfinish, missing) &&
            Bind(lib, "PQfreemem", g_api.PQfreemem, missing) &&
            Bind(lib, "PQgetResult", g_api.PQgetResult, missing) &&
            Bind(lib, "PQgetisnull", g_api.PQgetisnull, missing) &&
            Bind(lib, "PQgetlength", g_api.PQgetlength, missing) &&
            Bind(lib, "PQgetvalue", g_api.PQgetvalue, missing) &&
            Bind(lib, "PQnotifies", g_api.PQnotifies, missing) &&
            Bind(lib, "PQntuples", g_api.PQntuples, missing) &&
            Bind(lib, "PQprepare", g_api.PQprepare, missing) &&
            Bind(lib, "PQputCopyData", g_api.PQputCopyData, missing) &&
            Bind(lib, "PQputCopyEnd", g_api.PQputCopyEnd, missing) &&
            Bind(lib, "PQresultErrorField", g_api.PQresultErrorField, missing) &&
            Bind(lib, "PQresultStatus", g_api.PQresultStatus, missing) &&
            Bind(lib, "PQsetNoticeProcessor", g_api.PQsetNoticeProcessor, missing) &&
            Bind(lib, "PQsocket", g_api.PQsocket, missing) &&
            Bind(lib, "PQstatus", g_api.PQstatus, missing) &&
            Bind(lib, "PQtransactionStatus", g_api.PQtransactionStatus, missing);
  if (!ok) {
    g_status = Error(ErrorCode::kUnavailable,
                     "the libpq that was loaded lacks {}; install Debian's libpq5 (PostgreSQL "
                     "12 or newer)",
                     missing);
  }
  // The library stays loaded for the life of the process.
}

}  // namespace

Result<const LibPqApi*> LoadLibPq() {
  std::call_once(g_once, Load);
  if (!g_status.ok()) return g_status;
  return &g_api;
}

const LibPqApi& LibPq() { return g_api; }

}  // namespace automan::store_detail
