// A scripted HTTP/1.1 server on 127.0.0.1 (any free port) for tests of the API client: it
// records every request and answers with whatever the test's handler writes, so a test can
// play an idle-closed keep-alive connection, a dropped event stream, a server that never
// answers. One connection is served at a time, on one thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace automan::testing {

class FakeHttpServer {
 public:
  struct Request {
    int connection = 0;  // 1 for the first connection accepted, 2 for the next, ...
    std::string method, target;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;
    std::string Header(const std::string& name) const {
      auto it = headers.find(name);
      return it == headers.end() ? "" : it->second;
    }
  };
  // Answers `r` by writing to `fd` (SendAll); returns false to close the connection.
  using Handler = std::function<bool(const Request& r, int fd)>;

  explicit FakeHttpServer(Handler handler);
  ~FakeHttpServer();
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Request> requests() const;
  int connections() const { return connections_.load(); }
  bool stopping() const { return stop_.load(); }

  // Writes all of `data` to `fd` (false when the peer is gone).
  static bool SendAll(int fd, const std::string& data);
  // A complete response with Content-Length.
  static std::string Response(int status, const std::string& body,
                              const std::string& content_type = "application/json",
                              const std::string& extra_headers = "");

 private:
  void Loop();
  bool ReadRequest(int fd, std::string& pending, Request& r);

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::vector<Request> requests_;
  std::thread thread_;
};

}  // namespace automan::testing
