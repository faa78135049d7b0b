// The only translation unit of the client with Asio, Beast and OpenSSL (see api_client.h).
//
// Blocking calls with deadlines: each network step is started as an asynchronous operation
// and the client's private io_context is run until it completes, in slices of 100 ms so a
// deadline or the interrupt flag can close the socket (which completes the operation with
// operation_aborted). Beast's synchronous calls cannot be given a deadline.
#include "client/api_client.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

namespace automan::client {

namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
using tcp = boost::asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kSlice{100};
constexpr size_t kMaxReplyBytes = 256u << 20;

struct Url {
  bool tls = false;
  std::string host;         // without brackets
  std::string port;         // digits
  std::string host_header;  // as written in the URL: "[::1]:8080"
  std::string prefix;       // "" or "/automan"
};

std::string Lower(std::string_view s) {
  std::string o(s);
  for (char& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return o;
}

Result<Url> ParseUrl(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("server URL \"{}\": {}; write e.g. http://127.0.0.1:8080 or "
                              "https://automan.example.com",
                              text, why));
  };
  Url u;
  const std::string lower = Lower(text);
  std::string_view rest;
  if (lower.starts_with("http://")) {
    rest = text.substr(7);
  } else if (lower.starts_with("https://")) {
    u.tls = true;
    rest = text.substr(8);
  } else {
    return bad("it must start with http:// or https://");
  }
  if (rest.find_first_of("?#") != std::string_view::npos) return bad("no query or fragment");
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view path = rest.substr(slash);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    u.prefix = std::string(path);
  }
  if (authority.empty()) return bad("no host");
  if (authority.find('@') != std::string_view::npos) {
    return bad("credentials do not belong in the URL (use AUTOMAN_TOKEN)");
  }
  u.host_header = std::string(authority);
  std::string_view port;
  if (authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed [ in the host");
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("unexpected text after the host");
      port = after.substr(1);
    }
  } else {
    const size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return bad("no host");
  if (port.empty()) {
    u.port = u.tls ? "443" : "80";
  } else {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos ||
        std::atoi(std::string(port).c_str()) < 1 || std::atoi(std::string(port).c_str()) > 65535) {
      return bad("the port must be a number in 1..65535");
    }
    u.port = std::string(port);
  }
  return u;
}

// One connection: plain TCP or TLS over TCP.
class Connection {
 public:
  Connection(asio::io_context& ioc, ssl::context* tls) {
    if (tls != nullptr) {
      tls_.emplace(ioc, *tls);
    } else {
      plain_.emplace(ioc);
    }
  }
  tcp::socket::lowest_layer_type& Socket() { return tls_ ? tls_->lowest_layer() : *plain_; }
  ssl::stream<tcp::socket>* Tls() { return tls_ ? &*tls_ : nullptr; }
  // Calls f with the stream to read and write (TLS or plain).
  template <class F>
  void With(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }
  void Close() {
    beast::error_code ec;
    Socket().close(ec);
  }

  beast::flat_buffer buffer;
  int answered = 0;  // requests answered on this connection

 private:
  std::optional<tcp::socket> plain_;
  std::optional<ssl::stream<tcp::socket>> tls_;
};

// Why a wait ended early.
enum class WaitEnd { kDone, kDeadline, kInterrupted };

struct Failure {
  Status status;
  bool retryable = true;  // for streams: worth reconnecting
};

bool IsConnectionLoss(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated;
}

std::string Seconds(milliseconds d) {
  return d.count() % 1000 == 0 ? fmt::format("{}s", d.count() / 1000)
                               : fmt::format("{:.1f}s", d.count() / 1000.0);
}

// Incremental parser of the text/event-stream format (WHATWG HTML, "Server-sent events").
class SseParser {
 public:
  // `on_event` returns false to stop; `on_retry` gets each valid `retry:` value.
  SseParser(std::function<bool(SseEvent&)> on_event, std::function<void(milliseconds)> on_retry)
      : on_event_(std::move(on_event)), on_retry_(std::move(on_retry)) {}

  // Feeds bytes; false once on_event asked to stop.
  bool Feed(std::string_view bytes) {
    for (char c : bytes) {
      if (skip_lf_) {
        skip_lf_ = false;
        if (c == '\n') continue;
      }
      if (c == '\r' || c == '\n') {
        skip_lf_ = c == '\r';
        if (!Line(line_)) return false;
        line_.clear();
        continue;
      }
      if (line_.size() < (1u << 20)) line_.push_back(c);  // a longer line is cut, not grown
    }
    return true;
  }

  // The id to resume after: the id field of the last dispatched event (kept across events
  // that carry none, as the spec's "last event ID buffer").
  const std::string& last_id() const { return last_id_; }
  void set_last_id(std::string id) { last_id_ = std::move(id); }

 private:
  bool Line(std::string_view line) {
    if (line.empty()) return Dispatch();
    if (line.front() == ':') return true;  // a comment (heartbeat)
    std::string_view field = line, value;
    if (size_t colon = line.find(':'); colon != std::string_view::npos) {
      field = line.substr(0, colon);
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
      if (has_data_) data_.push_back('\n');
      data_.append(value);
      has_data_ = true;
    } else if (field == "event") {
      event_ = std::string(value);
    } else if (field == "id") {
      if (value.find('\0') == std::string_view::npos) pending_id_ = std::string(value);
    } else if (field == "retry") {
      if (!value.empty() && value.size() < 10 &&
          value.find_first_not_of("0123456789") == std::string_view::npos) {
        on_retry_(milliseconds(std::atoll(std::string(value).c_str())));
      }
    }
    return true;
  }

  bool Dispatch() {
    if (pending_id_) last_id_ = *pending_id_;
    SseEvent e;
    e.id = pending_id_.value_or("");
    e.event = event_.empty() ? "message" : event_;
    e.data = std::move(data_);
    const bool any = has_data_ || !event_.empty();
    pending_id_.reset();
    event_.clear();
    data_.clear();
    has_data_ = false;
    return any ? on_event_(e) : true;
  }

  std::function<bool(SseEvent&)> on_event_;
  std::function<void(milliseconds)> on_retry_;
  std::string line_;
  bool skip_lf_ = false;
  std::string data_;
  bool has_data_ = false;
  std::string event_;
  std::optional<std::string> pending_id_;
  std::string last_id_;
};

}  // namespace

class ApiClient::Impl {
 public:
  Impl(ClientOptions options, Url url) : opt_(std::move(options)), url_(std::move(url)) {}

  Status Init() {
    if (!url_.tls) return Status::Ok();
    tls_.emplace(ssl::context::tls_client);
    tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    beast::error_code ec;
    if (opt_.insecure) {
      tls_->set_verify_mode(ssl::verify_none);
      return Status::Ok();
    }
    tls_->set_verify_mode(ssl::verify_peer);
    if (!opt_.ca_file.empty()) {
      tls_->load_verify_file(opt_.ca_file, ec);
      if (ec) {
        return Error(ErrorCode::kInvalidArgument,
                     "CA file {} (--ca-file or AUTOMAN_CA_FILE): cannot load it: {}", opt_.ca_file,
                     ec.message());
      }
    } else {
      tls_->set_default_verify_paths(ec);
      if (ec) {
        return Error(ErrorCode::kUnavailable, "cannot load the system's CA certificates: {}",
                     ec.message());
      }
    }
    return Status::Ok();
  }

  const std::string& server() const { return opt_.server; }

  Result<HttpReply> Request(std::string_view method, std::string_view target, std::string_view body,
                            std::string_view content_type) {
    const http::verb verb = http::string_to_verb(method);
    if (verb == http::verb::unknown) {
      return Error(ErrorCode::kInvalidArgument, "unknown HTTP method {}", method);
    }
    http::request<http::string_body> req{verb, url_.prefix + std::string(target), 11};
    SetHeaders(req, "application/json");
    if (!body.empty() || verb == http::verb::post || verb == http::verb::put) {
      if (!body.empty()) req.set(http::field::content_type, content_type);
      req.body() = std::string(body);
      req.prepare_payload();
    }
    for (int round = 0; round < 2; ++round) {
      if (!conn_) {
        auto c = Open();
        if (!c.ok()) return c.status();
        conn_ = std::move(*c);
      }
      const bool reused = conn_->answered > 0;
      const auto deadline = SteadyClock::now() + opt_.request_timeout;
      http::response_parser<http::string_body> parser;
      parser.body_limit(kMaxReplyBytes);
      WaitEnd end = WaitEnd::kDone;
      beast::error_code ec = Await(
          *conn_,
          [&](auto done) { conn_->With([&](auto& s) { http::async_write(s, req, done); }); },
          deadline, end);
      if (!ec) {
        ec = Await(
            *conn_,
            [&](auto done) {
              conn_->With([&](auto& s) { http::async_read(s, conn_->buffer, parser, done); });
            },
            deadline, end);
      }
      if (ec) {
        const bool first = conn_->answered == 0;
        conn_.reset();
        if (end == WaitEnd::kInterrupted) return Interrupted();
        if (end == WaitEnd::kDeadline) {
          return Error(ErrorCode::kDeadlineExceeded, "the server at {} did not answer {} {} in {}",
                       opt_.server, method, target, Seconds(opt_.request_timeout));
        }
        // A keep-alive connection the server closed meanwhile: send again on a new one.
        if (reused && !parser.got_some() && IsConnectionLoss(ec)) continue;
        std::string hint;
        if (first && !url_.tls) {
          hint = " (if the server uses TLS, use an https:// URL)";
        }
        return Error(ErrorCode::kUnavailable, "lost the connection to the server at {}: {}{}",
                     opt_.server, ec.message(), hint);
      }
      ++conn_->answered;
      auto& res = parser.get();
      if (!res.keep_alive()) conn_.reset();
      HttpReply reply;
      reply.status = static_cast<int>(res.result_int());
      reply.content_type = std::string(res[http::field::content_type]);
      reply.body = std::move(res.body());
      if (reply.status >= 200 && reply.status < 300) return reply;
      return ErrorOf(reply);
    }
    return Error(ErrorCode::kUnavailable, "lost the connection to the server at {}", opt_.server);
  }

  Status Stream(std::string_view target, std::string last_event_id,
                const std::function<bool(const SseEvent&)>& on_event) {
    milliseconds retry = opt_.stream_retry;
    auto healthy_at = SteadyClock::now();
    std::string last_id = std::move(last_event_id);
    while (true) {
      bool stop = false, progressed = false;
      std::optional<Failure> f = StreamOnce(target, last_id, retry, on_event, stop, progressed);
      if (stop) return Status::Ok();
      if (f && !f->retryable) return f->status;
      if (Interrupt()) return Interrupted();
      if (progressed) healthy_at = SteadyClock::now();
      const Status why = f ? f->status : Status(ErrorCode::kUnavailable, "the server closed it");
      if (SteadyClock::now() - healthy_at >= opt_.stream_give_up) {
        return Error(ErrorCode::kUnavailable,
                     "the stream {} from {} dropped and could not be resumed for {}: {}", target,
                     opt_.server, Seconds(opt_.stream_give_up), why.message());
      }
      if (!Sleep(retry)) return Interrupted();
    }
  }

 private:
  bool Interrupt() const { return opt_.interrupt != nullptr && opt_.interrupt->load(); }

  Status Interrupted() const { return Status(ErrorCode::kCancelled, "interrupted"); }

  // Sleeps `d` in slices; false when interrupted.
  bool Sleep(milliseconds d) {
    const auto until = SteadyClock::now() + d;
    while (SteadyClock::now() < until) {
      if (Interrupt()) return false;
      std::this_thread::sleep_for(
          std::min<SteadyClock::duration>(kSlice, until - SteadyClock::now()));
    }
    return !Interrupt();
  }

  template <class Req>
  void SetHeaders(Req& req, std::string_view accept) {
    req.set(http::field::host, url_.host_header);
    req.set(http::field::user_agent, "automan-cli");
    req.set(http::field::accept, accept);
    if (!opt_.token.empty()) req.set(http::field::authorization, "Bearer " + opt_.token);
  }

  // Starts an operation with `start(done)` and runs the io_context until `done(ec, ...)`
  // was called. At `deadline` or on interrupt, closes the connection, waits for the
  // operation to finish (aborted) and says why in `end`.
  template <class Start>
  beast::error_code Await(Connection& conn, Start&& start, SteadyClock::time_point deadline,
                          WaitEnd& end) {
    return AwaitWith([&conn] { conn.Close(); }, std::forward<Start>(start), deadline, end);
  }

  template <class Start>
  beast::error_code AwaitWith(const std::function<void()>& cancel, Start&& start,
                              SteadyClock::time_point deadline, WaitEnd& end) {
    bool done = false;
    beast::error_code result;
    start([&done, &result](beast::error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    end = WaitEnd::kDone;
    while (!done) {
      if (ioc_.stopped()) ioc_.restart();
      const auto now = SteadyClock::now();
      if (Interrupt() || now >= deadline) {
        end = Interrupt() ? WaitEnd::kInterrupted : WaitEnd::kDeadline;
        cancel();
        while (!done) {
          if (ioc_.stopped()) ioc_.restart();
          ioc_.run_one();
        }
        return result ? result : asio::error::operation_aborted;
      }
      ioc_.run_for(std::min<SteadyClock::duration>(kSlice, deadline - now));
    }
    return result;
  }

  std::string Unreachable(std::string_view reason) const {
    return fmt::format(
        "cannot reach the server at {} (is automan server running? set --server or "
        "AUTOMAN_SERVER): {}",
        opt_.server, reason);
  }

  // Resolves, connects and (https) shakes hands, within connect_timeout.
  Result<std::unique_ptr<Connection>> Open() {
    const auto deadline = SteadyClock::now() + opt_.connect_timeout;
    auto conn = std::make_unique<Connection>(ioc_, tls_ ? &*tls_ : nullptr);
    tcp::resolver resolver(ioc_);
    tcp::resolver::results_type endpoints;
    WaitEnd end = WaitEnd::kDone;
    beast::error_code ec = AwaitWith(
        [&resolver] { resolver.cancel(); },
        [&](auto done) {
          resolver.async_resolve(
              url_.host, url_.port,
              [&endpoints, done](beast::error_code e, tcp::resolver::results_type r) mutable {
                endpoints = std::move(r);
                done(e);
              });
        },
        deadline, end);
    if (!ec) {
      ec = Await(
          *conn, [&](auto done) { asio::async_connect(conn->Socket(), endpoints, done); }, deadline,
          end);
    }
    if (end == WaitEnd::kInterrupted) return Interrupted();
    if (end == WaitEnd::kDeadline) {
      return Status(ErrorCode::kUnavailable,
                    Unreachable("no connection within " + Seconds(opt_.connect_timeout)));
    }
    if (ec) return Status(ErrorCode::kUnavailable, Unreachable(ec.message()));
    beast::error_code nd;
    conn->Socket().set_option(tcp::no_delay(true), nd);
    if (ssl::stream<tcp::socket>* tls = conn->Tls()) {
      beast::error_code addr_ec;
      asio::ip::make_address(url_.host, addr_ec);
      const bool is_ip = !addr_ec;
      if (!is_ip) SSL_set_tlsext_host_name(tls->native_handle(), url_.host.c_str());
      if (!opt_.insecure) tls->set_verify_callback(ssl::host_name_verification(url_.host));
      ec = Await(
          *conn, [&](auto done) { tls->async_handshake(ssl::stream_base::client, done); }, deadline,
          end);
      if (end == WaitEnd::kInterrupted) return Interrupted();
      if (end == WaitEnd::kDeadline) {
        return Error(ErrorCode::kUnavailable, "TLS handshake with {} did not finish within {}",
                     opt_.server, Seconds(opt_.connect_timeout));
      }
      if (ec) {
        std::string reason = ec.message();
        const long verify = SSL_get_verify_result(tls->native_handle());
        if (!opt_.insecure && verify != X509_V_OK) {
          return Error(ErrorCode::kUnavailable,
                       "TLS handshake with {} failed: the server's certificate was not "
                       "accepted: {} (a private CA? pass --ca-file FILE or set "
                       "AUTOMAN_CA_FILE; --insecure skips the check)",
                       opt_.server, X509_verify_cert_error_string(verify));
        }
        return Error(ErrorCode::kUnavailable,
                     "TLS handshake with {} failed: {} (does the server speak TLS on that "
                     "port? for plain HTTP use an http:// URL)",
                     opt_.server, reason);
      }
    }
    return conn;
  }

  Status ErrorOf(const HttpReply& reply) const {
    std::string code, message;
    json::error_code ec;
    json::value v = json::parse(reply.body, ec);
    if (!ec && v.is_object()) {
      if (const json::value* e = v.as_object().if_contains("error"); e && e->is_object()) {
        const json::object& eo = e->as_object();
        if (const json::value* c = eo.if_contains("code"); c && c->is_string()) {
          code = std::string(c->as_string());
        }
        if (const json::value* m = eo.if_contains("message"); m && m->is_string()) {
          message = std::string(m->as_string());
        }
      }
    }
    if (message.empty()) {
      std::string text = reply.body.substr(0, std::min<size_t>(reply.body.find('\n'), 200));
      message = fmt::format("HTTP {} from {}{}{}", reply.status, opt_.server,
                            text.empty() ? "" : ": ", text);
    }
    if ((reply.status == 401 || reply.status == 403) && opt_.token.empty()) {
      message += " (no token configured: set AUTOMAN_TOKEN or log in with automan login)";
    } else if (reply.status == 401) {
      message += " (the token was refused: log in again with automan login)";
    }
    return Status(ErrorCodeFor(reply.status, code), message);
  }

  // One connection of a stream. Sets `stop` when the stream ended as asked (on_event said
  // stop, or an "end" event) and `progressed` when the server accepted the stream.
  std::optional<Failure> StreamOnce(std::string_view target, std::string& last_id,
                                    milliseconds& retry,
                                    const std::function<bool(const SseEvent&)>& on_event,
                                    bool& stop, bool& progressed) {
    auto conn = Open();
    if (!conn.ok()) {
      // Worth trying again when the server is away; not when TLS or the URL is wrong.
      const Status& s = conn.status();
      return Failure{s, s.code() == ErrorCode::kUnavailable && !s.message().starts_with("TLS")};
    }
    Connection& c = **conn;
    http::request<http::empty_body> req{http::verb::get, url_.prefix + std::string(target), 11};
    SetHeaders(req, "text/event-stream");
    req.set(http::field::cache_control, "no-store");
    if (!last_id.empty()) req.set("Last-Event-ID", last_id);
    WaitEnd end = WaitEnd::kDone;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    const auto header_deadline = SteadyClock::now() + opt_.request_timeout;
    beast::error_code ec = Await(
        c, [&](auto done) { c.With([&](auto& s) { http::async_write(s, req, done); }); },
        header_deadline, end);
    if (!ec) {
      ec = Await(
          c,
          [&](auto done) {
            c.With([&](auto& s) { http::async_read_header(s, c.buffer, parser, done); });
          },
          header_deadline, end);
    }
    if (end == WaitEnd::kInterrupted) return Failure{Interrupted(), false};
    if (ec) {
      return Failure{Error(ErrorCode::kUnavailable, "the stream connection to {} failed: {}",
                           opt_.server, end == WaitEnd::kDeadline ? "no answer" : ec.message())};
    }
    const int status = static_cast<int>(parser.get().result_int());
    char buf[16384];
    if (status != 200) {
      // An error answer: read its (small) body for the message.
      HttpReply reply;
      reply.status = status;
      while (!parser.is_done() && reply.body.size() < (1u << 20)) {
        parser.get().body().data = buf;
        parser.get().body().size = sizeof buf;
        ec = Await(
            c,
            [&](auto done) {
              c.With([&](auto& s) { http::async_read_some(s, c.buffer, parser, done); });
            },
            header_deadline, end);
        reply.body.append(buf, sizeof buf - parser.get().body().size);
        if (ec && ec != http::error::need_buffer) break;
      }
      if (end == WaitEnd::kInterrupted) return Failure{Interrupted(), false};
      if (status == 429 || status == 408 || status == 502 || status == 503 || status == 504) {
        return Failure{ErrorOf(reply), true};
      }
      return Failure{ErrorOf(reply), false};
    }
    progressed = true;
    SseParser sse(
        [&](SseEvent& e) {
          if (!on_event(e) || e.event == "end") {
            stop = true;
            return false;
          }
          return true;
        },
        [&](milliseconds r) { retry = r; });
    sse.set_last_id(last_id);
    while (!parser.is_done()) {
      parser.get().body().data = buf;
      parser.get().body().size = sizeof buf;
      ec = Await(
          c,
          [&](auto done) {
            c.With([&](auto& s) { http::async_read_some(s, c.buffer, parser, done); });
          },
          SteadyClock::now() + opt_.stream_idle_timeout, end);
      const size_t n = sizeof buf - parser.get().body().size;
      const bool more = sse.Feed(std::string_view(buf, n));
      last_id = sse.last_id();
      if (!more) return std::nullopt;
      if (end == WaitEnd::kInterrupted) return Failure{Interrupted(), false};
      if (end == WaitEnd::kDeadline) {
        return Failure{Error(ErrorCode::kUnavailable, "the stream was silent for {}",
                             Seconds(opt_.stream_idle_timeout))};
      }
      if (ec && ec != http::error::need_buffer) {
        return Failure{Error(ErrorCode::kUnavailable, "the stream dropped: {}", ec.message())};
      }
    }
    return Failure{Status(ErrorCode::kUnavailable, "the server closed the stream")};
  }

  ClientOptions opt_;
  Url url_;
  asio::io_context ioc_{1};
  std::optional<ssl::context> tls_;
  std::unique_ptr<Connection> conn_;  // the keep-alive connection, when open
};

Result<std::unique_ptr<ApiClient>> ApiClient::Create(ClientOptions options) {
  AUTOMAN_ASSIGN_OR_RETURN(Url url, ParseUrl(options.server));
  auto impl = std::make_unique<Impl>(std::move(options), std::move(url));
  AUTOMAN_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<ApiClient>(new ApiClient(std::move(impl)));
}

ApiClient::ApiClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ApiClient::~ApiClient() = default;

Result<HttpReply> ApiClient::Request(std::string_view method, std::string_view target,
                                     std::string_view body, std::string_view content_type) {
  return impl_->Request(method, target, body, content_type);
}

Status ApiClient::Stream(std::string_view target, std::string last_event_id,
                         const std::function<bool(const SseEvent&)>& on_event) {
  return impl_->Stream(target, std::move(last_event_id), on_event);
}

const std::string& ApiClient::server() const { return impl_->server(); }

std::string UrlEscape(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

ErrorCode ErrorCodeFor(int http_status, std::string_view wire_code) {
  static const std::pair<std::string_view, ErrorCode> kCodes[] = {
      {"invalid_argument", ErrorCode::kInvalidArgument},
      {"not_found", ErrorCode::kNotFound},
      {"already_exists", ErrorCode::kAlreadyExists},
      {"failed_precondition", ErrorCode::kFailedPrecondition},
      {"conflict", ErrorCode::kAborted},
      {"unavailable", ErrorCode::kUnavailable},
      {"deadline_exceeded", ErrorCode::kDeadlineExceeded},
      {"cancelled", ErrorCode::kCancelled},
      {"resource_exhausted", ErrorCode::kResourceExhausted},
      {"permission_denied", ErrorCode::kPermissionDenied},
      {"unauthenticated", ErrorCode::kUnauthenticated},
      {"data_loss", ErrorCode::kDataLoss},
      {"internal", ErrorCode::kInternal},
  };
  for (const auto& [name, code] : kCodes) {
    if (name == wire_code) return code;
  }
  switch (http_status) {
    case 400:
    case 405:
    case 413:
    case 415:
    case 422:
    case 431:
      return ErrorCode::kInvalidArgument;
    case 401:
      return ErrorCode::kUnauthenticated;
    case 403:
      return ErrorCode::kPermissionDenied;
    case 404:
      return ErrorCode::kNotFound;
    case 408:
    case 504:
      return ErrorCode::kDeadlineExceeded;
    case 409:
      return ErrorCode::kAborted;
    case 412:
      return ErrorCode::kFailedPrecondition;
    case 429:
      return ErrorCode::kResourceExhausted;
    case 502:
    case 503:
      return ErrorCode::kUnavailable;
    default:
      return ErrorCode::kInternal;
  }
}

// --- Settings ---------------------------------------------------------------------------

std::string CliConfigPath() {
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr && *home != '\0' ? home : ".") + "/.config/automan/cli.yaml";
}

Result<CliConfig> ReadCliConfig(const std::string& path) {
  CliConfig config;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return config;
    return Error(ErrorCode::kUnavailable, "cannot read {}: {}", path, ErrnoText(errno));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return Error(ErrorCode::kPermissionDenied,
                 "not reading {}: it holds your token and is open to other users (mode {:04o}); "
                 "run: chmod 600 {}",
                 path, st.st_mode & 07777, path);
  }
  std::ifstream in(path);
  if (!in) return Error(ErrorCode::kUnavailable, "cannot read {}", path);
  std::string line;
  int number = 0;
  auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  };
  while (std::getline(in, line)) {
    ++number;
    std::string_view l = trim(line);
    if (l.empty() || l.front() == '#' || l == "---") continue;
    const size_t colon = l.find(':');
    std::string_view key = trim(l.substr(0, colon));
    if (colon == std::string_view::npos || key.empty() ||
        key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string_view::npos) {
      return Error(ErrorCode::kInvalidArgument, "{}:{}: expected \"key: value\"", path, number);
    }
    std::string_view value = trim(l.substr(colon + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    } else if (size_t hash = value.find(" #"); hash != std::string_view::npos) {
      value = trim(value.substr(0, hash));
    }
    if (key == "server") config.server = std::string(value);
    if (key == "token") config.token = std::string(value);
  }
  return config;
}

Status WriteCliConfig(const std::string& path, const CliConfig& config) {
  for (const std::string* v : {&config.server, &config.token}) {
    if (v->find_first_of("\r\n\"") != std::string::npos) {
      return Error(ErrorCode::kInvalidArgument, "a config value may not hold newlines or quotes");
    }
  }
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec)
      return Error(ErrorCode::kUnavailable, "cannot create {}: {}", dir.string(), ec.message());
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  }
  std::string text = "# Written by `automan login`. Holds a token: keep it 0600.\n";
  if (!config.server.empty()) text += "server: \"" + config.server + "\"\n";
  if (!config.token.empty()) text += "token: \"" + config.token + "\"\n";
  // Created 0600 under a temporary name, then renamed over the old file.
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Error(ErrorCode::kUnavailable, "cannot write {}: {}", tmp, ErrnoText(errno));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return Error(ErrorCode::kUnavailable, "cannot write {}: {}", path, ErrnoText(err));
  }
  return Status::Ok();
}

namespace {
std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}
std::string SameServerKey(std::string_view url) {
  std::string s = Lower(url);
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}
}  // namespace

Result<ClientOptions> ResolveClientOptions(const std::string& server_flag,
                                           const std::string& ca_file_flag, bool insecure,
                                           std::vector<std::string>& warnings) {
  ClientOptions o;
  CliConfig config;
  auto read = ReadCliConfig(CliConfigPath());
  if (read.ok()) {
    config = *read;
  } else if (read.status().code() == ErrorCode::kPermissionDenied) {
    warnings.push_back(read.status().message());
  } else {
    return read.status();
  }
  o.server = !server_flag.empty()             ? server_flag
             : !Env("AUTOMAN_SERVER").empty() ? Env("AUTOMAN_SERVER")
             : !config.server.empty()         ? config.server
                                              : std::string(kDefaultServer);
  o.token = Env("AUTOMAN_TOKEN");
  if (o.token.empty() && !config.token.empty() &&
      (config.server.empty() || SameServerKey(config.server) == SameServerKey(o.server))) {
    o.token = config.token;
  }
  o.ca_file = !ca_file_flag.empty() ? ca_file_flag : Env("AUTOMAN_CA_FILE");
  o.insecure = insecure;
  return o;
}

}  // namespace automan::client
