// Prints the OpenAPI document of the real route table, as GET /api/v1/openapi.json serves
// it, for the openapi_lint test (openapi_lint.sh feeds it to Redocly's linter).
//
//   openapi_dump [--metrics-public] > openapi.json
//
// The router is built in process over an in-memory store and a scratch directory for
// API-managed runbooks (removed on exit). Exit 1 with the reason on stderr on failure.
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "api_harness.h"

int main(int argc, char** argv) {
  automan::testing::InProcessApi::Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--metrics-public") {
      o.metrics_public = true;
    } else {
      std::fprintf(stderr, "usage: %s [--metrics-public]\n", argv[0]);
      return 2;
    }
  }
  std::string tmpl = (std::filesystem::temp_directory_path() / "openapi_dump.XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  o.data_dir = tmpl;
  o.store_url = "sqlite::memory:";
  int rc = 1;
  {
    auto api = automan::testing::InProcessApi::Create(o);
    if (!api.ok()) {
      std::fprintf(stderr, "error: %s\n", api.status().message().c_str());
    } else {
      automan::api::HttpResponse r = (*api)->Call("GET", "/api/v1/openapi.json");
      if (r.status != 200) {
        std::fprintf(stderr, "error: GET /api/v1/openapi.json answered %d: %s\n", r.status,
                     r.body.c_str());
      } else {
        std::fwrite(r.body.data(), 1, r.body.size(), stdout);
        std::fputc('\n', stdout);
        rc = std::fflush(stdout) == 0 ? 0 : 1;
      }
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  return rc;
}
