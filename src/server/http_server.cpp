// The only translation unit with Asio and Beast (see http_server.h).
#include "server/http_server.h"

#include <fmt/format.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/experimental/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace automan {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);
using Clock = std::chrono::steady_clock;

namespace {

std::string ErrorJson(std::string_view code, std::string_view message) {
  // Fixed texts only (no user input), so no escaping is needed beyond quotes we never use.
  return fmt::format(R"({{"error":{{"code":"{}","message":"{}","details":null}}}})", code, message);
}

std::string LowerCopy(std::string_view s) {
  std::string o(s);
  for (char& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return o;
}

// What a connection exposes for shutdown: closing it from the outside.
struct ConnHandle {
  std::function<void()> abort;  // posts a close to the connection's strand
};

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions opt;
  api::HttpHandler handler;
  asio::io_context ioc;
  asio::thread_pool pool;
  tcp::acceptor acceptor;
  std::optional<asio::ssl::context> ssl;
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};
  // The open connections. Shared with each connection's coroutine, because a coroutine
  // frame that never finished is destroyed with the io_context, after this Impl's other
  // members may be gone.
  struct Connections {
    std::atomic<size_t> open{0};
    std::mutex mu;
    uint64_t next = 0;
    std::map<uint64_t, ConnHandle> handles;  // guarded by mu
    uint64_t Register(std::function<void()> abort) {
      std::lock_guard lock(mu);
      uint64_t id = ++next;
      handles[id] = ConnHandle{std::move(abort)};
      return id;
    }
    void Unregister(uint64_t id) {
      std::lock_guard lock(mu);
      handles.erase(id);
    }
    void AbortAll() {
      std::lock_guard lock(mu);
      for (auto& [id, c] : handles) c.abort();
    }
  };
  std::shared_ptr<Connections> conns = std::make_shared<Connections>();
  uint16_t port = 0;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;

  Impl(HttpServerOptions o, api::HttpHandler h)
      : opt(std::move(o)),
        handler(std::move(h)),
        pool(static_cast<size_t>(std::max(1, opt.handler_threads))),
        acceptor(ioc) {}

  void Log(AccessRecord rec) {
    if (opt.on_request) opt.on_request(rec);
  }

  // Runs f() on the handler pool; resumes the caller on its own executor.
  template <class F>
  awaitable<std::invoke_result_t<F&>> OnPool(F f) {
    using R = std::invoke_result_t<F&>;
    co_return co_await asio::co_spawn(
        pool, [f = std::move(f)]() mutable -> awaitable<R> { co_return f(); }, use_awaitable);
  }

  // A stream's Poll, on the I/O thread or the pool (quick_stream_polls).
  awaitable<bool> PollStream(api::EventStream& es, std::vector<api::StreamEvent>& events) {
    if (opt.quick_stream_polls) co_return es.Poll(events);
    co_return co_await OnPool([&es, &events] { return es.Poll(events); });
  }

  awaitable<void> Accept();
  template <class Stream>
  awaitable<void> Session(Stream stream, std::string remote);
  template <class Stream>
  awaitable<bool> ServeSse(Stream& stream, api::HttpRequest& req, api::HttpResponse& resp,
                           std::shared_ptr<asio::steady_timer> timer, std::atomic<bool>& closed);
  template <class Stream>
  awaitable<void> ServeWebSocket(Stream stream, http::request<http::string_body> req,
                                 api::HttpRequest& areq, api::HttpResponse& resp,
                                 std::shared_ptr<asio::steady_timer> timer,
                                 std::shared_ptr<std::atomic<bool>> closed);
};

namespace {

template <class Stream>
auto& Lowest(Stream& s) {
  return beast::get_lowest_layer(s);
}

// SSE framing: "id:", "event:", one "data:" line (the JSON has no newlines).
void AppendSse(std::string& out, const api::StreamEvent& e) {
  if (!e.id.empty()) out += "id: " + e.id + "\n";
  out += "event: " + e.event + "\n";
  out += "data: ";
  for (char c : e.data) {
    if (c == '\n') {
      out += "\ndata: ";
    } else if (c != '\r') {
      out.push_back(c);
    }
  }
  out += "\n\n";
}

// Stream buffers larger than this are released after use.
constexpr size_t kKeepBuffer = 16 * 1024;

std::string WsMessage(const api::StreamEvent& e) {
  std::string m = R"({"id":)";
  m += e.id.empty() ? "null" : "\"" + e.id + "\"";
  m += R"(,"event":")" + e.event + R"(","data":)" + (e.data.empty() ? "null" : e.data) + "}";
  return m;
}

}  // namespace

awaitable<void> HttpServer::Impl::Accept() {
  while (!stopping.load()) {
    auto [ec, sock] = co_await acceptor.async_accept(asio::make_strand(ioc), kTuple);
    if (ec) {
      if (stopping.load() || ec == asio::error::operation_aborted) co_return;
      // EMFILE and friends: back off a little rather than spin.
      asio::steady_timer t(ioc, std::chrono::milliseconds(50));
      co_await t.async_wait(kTuple);
      continue;
    }
    if (conns->open.load() >= opt.max_connections) {
      beast::error_code ignored;
      sock.close(ignored);
      continue;
    }
    beast::error_code rec;
    std::string remote = sock.remote_endpoint(rec).address().to_string();
    sock.set_option(tcp::no_delay(true), rec);
    auto ex = sock.get_executor();
    if (ssl) {
      asio::co_spawn(ex,
                     Session(beast::ssl_stream<beast::tcp_stream>(std::move(sock), *ssl), remote),
                     asio::detached);
    } else {
      asio::co_spawn(ex, Session(beast::tcp_stream(std::move(sock)), remote), asio::detached);
    }
  }
}

template <class Stream>
awaitable<void> HttpServer::Impl::Session(Stream stream, std::string remote) {
  ++conns->open;
  auto closed = std::make_shared<std::atomic<bool>>(false);
  auto timer = std::make_shared<asio::steady_timer>(stream.get_executor());
  // `alive` and `sock` are only touched on this connection's strand: the abort below runs
  // there, and so does the end of this coroutine, which clears `alive`.
  auto alive = std::make_shared<bool>(true);
  auto* sock = &Lowest(stream).socket();
  const uint64_t conn_id =
      conns->Register([closed, timer, sock, alive, ex = stream.get_executor()] {
        asio::post(ex, [closed, timer, sock, alive] {
          closed->store(true);
          timer->cancel();
          if (!*alive) return;
          beast::error_code ignored;
          sock->shutdown(tcp::socket::shutdown_both, ignored);
        });
      });
  struct Guard {
    std::shared_ptr<Connections> conns;
    uint64_t id;
    std::shared_ptr<bool> alive;
    ~Guard() {
      *alive = false;
      conns->Unregister(id);
      --conns->open;
    }
  } guard{conns, conn_id, alive};

  if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) {
    Lowest(stream).expires_after(opt.request_timeout);
    auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
    if (ec) co_return;
  }

  beast::flat_buffer buffer;
  bool first = true;
  while (!closed->load() && !stopping.load()) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(opt.max_header_bytes));
    parser.body_limit(opt.max_body_bytes);
    Lowest(stream).expires_after(first ? opt.request_timeout : opt.idle_timeout);
    first = false;
    auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kTuple);
    const auto started = Clock::now();
    int reject = 0;
    std::string reject_msg;
    if (ec) {
      if (ec == http::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::connection_reset || ec == beast::error::timeout ||
          ec == asio::error::operation_aborted || closed->load()) {
        break;
      }
      if (ec == http::error::header_limit) {
        reject = 431;
        reject_msg = "the request headers are too large";
      } else if (ec == http::error::body_limit) {  // a declared Content-Length over the limit
        reject = 413;
        reject_msg = "the request body is too large";
      } else {
        reject = 400;
        reject_msg = "malformed request";
      }
    } else {
      Lowest(stream).expires_after(opt.request_timeout);
      if (!parser.is_done()) {
        auto [ec2, n2] = co_await http::async_read(stream, buffer, parser, kTuple);
        if (ec2 == http::error::body_limit) {
          reject = 413;
          reject_msg = "the request body is too large";
        } else if (ec2 == beast::error::timeout) {
          reject = 408;
          reject_msg = "the request did not arrive in time";
        } else if (ec2) {
          if (ec2 == http::error::end_of_stream || ec2 == asio::error::eof ||
              ec2 == asio::error::connection_reset || closed->load()) {
            break;
          }
          reject = 400;
          reject_msg = "malformed request body";
        }
      }
    }
    if (reject != 0) {
      http::response<http::string_body> res{static_cast<http::status>(reject), 11};
      res.set(http::field::server, "automan");
      res.set(http::field::content_type, "application/json");
      res.set(http::field::connection, "close");
      res.body() = ErrorJson(reject == 413   ? "payload_too_large"
                             : reject == 431 ? "headers_too_large"
                             : reject == 408 ? "request_timeout"
                                             : "bad_request",
                             reject_msg);
      res.prepare_payload();
      Lowest(stream).expires_after(std::chrono::seconds(5));
      co_await http::async_write(stream, res, kTuple);
      Log({remote, "", "", "bad_request", reject, res.body().size(),
           std::chrono::duration<double>(Clock::now() - started).count(), false});
      break;
    }

    http::request<http::string_body> req = parser.release();
    api::HttpRequest areq;
    areq.method = std::string(req.method_string());
    areq.target = std::string(req.target());
    areq.remote = remote;
    for (const auto& f : req) areq.headers[LowerCopy(f.name_string())] = std::string(f.value());
    areq.body = std::move(req.body());
    areq.websocket = websocket::is_upgrade(req);
    // HEAD is answered as GET without the body (RFC 9110 9.3.2).
    const bool head = areq.method == "HEAD";
    if (head) areq.method = "GET";
    api::HttpResponse resp;
    if (areq.target.empty() || areq.target.front() != '/' ||
        !api::SplitTarget(areq.target, areq.path, areq.segments, areq.query)) {
      resp.status = 400;
      resp.body =
          ErrorJson("bad_request", "the request target must be a path with valid percent-escapes");
      resp.route = "bad_request";
    } else {
      try {
        if (opt.cost && opt.cost(areq) == api::HandlerCost::kQuick) {
          resp = handler(areq);
        } else {
          resp = co_await OnPool([this, &areq] { return handler(areq); });
        }
      } catch (const std::exception&) {
        resp.status = 500;
        resp.body = ErrorJson("internal", "the server failed to handle this request");
        resp.route = "internal";
      }
    }

    if (resp.stream && resp.status == 200) {
      if (areq.websocket) {
        co_await ServeWebSocket(std::move(stream), std::move(req), areq, resp, timer, closed);
        Log({remote, areq.method, areq.path, resp.route, 101, 0,
             std::chrono::duration<double>(Clock::now() - started).count(), true});
        co_return;
      }
      bool ok = co_await ServeSse(stream, areq, resp, timer, *closed);
      (void)ok;
      Log({remote, areq.method, areq.path, resp.route, 200, 0,
           std::chrono::duration<double>(Clock::now() - started).count(), true});
      break;
    }

    http::response<http::string_body> res{static_cast<http::status>(resp.status), req.version()};
    res.set(http::field::server, "automan");
    if (!resp.content_type.empty()) res.set(http::field::content_type, resp.content_type);
    res.set("X-Content-Type-Options", "nosniff");
    res.set(http::field::cache_control, "no-store");
    for (const auto& [k, v] : resp.headers) res.set(k, v);
    const bool keep = req.keep_alive() && !stopping.load();
    res.keep_alive(keep);
    res.body() = std::move(resp.body);
    res.prepare_payload();
    const size_t bytes = res.body().size();
    Lowest(stream).expires_after(opt.request_timeout);
    beast::error_code wec;
    if (head) {
      http::response_serializer<http::string_body> sr(res);
      auto [hec, hn] = co_await http::async_write_header(stream, sr, kTuple);
      wec = hec;
    } else {
      auto [e, wn] = co_await http::async_write(stream, res, kTuple);
      wec = e;
    }
    Log({remote, head ? "HEAD" : areq.method, areq.path, resp.route, resp.status, bytes,
         std::chrono::duration<double>(Clock::now() - started).count(), false});
    if (wec || !keep) break;
  }
  beast::error_code ignored;
  if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  } else {
    Lowest(stream).expires_after(std::chrono::seconds(2));
    co_await stream.async_shutdown(kTuple);
  }
}

template <class Stream>
awaitable<bool> HttpServer::Impl::ServeSse(Stream& stream, api::HttpRequest& /*req*/,
                                           api::HttpResponse& resp,
                                           std::shared_ptr<asio::steady_timer> timer,
                                           std::atomic<bool>& closed) {
  auto woken = std::make_shared<std::atomic<bool>>(false);
  auto es = resp.stream;
  es->SetWaker([weak = std::weak_ptr<asio::steady_timer>(timer), woken] {
    woken->store(true);
    if (auto t = weak.lock()) asio::post(t->get_executor(), [t] { t->cancel(); });
  });
  std::string head =
      "HTTP/1.1 200 OK\r\nServer: automan\r\nContent-Type: text/event-stream\r\n"
      "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\nX-Content-Type-Options: nosniff\r\n"
      "Connection: close\r\n\r\n";
  head += fmt::format("retry: {}\n\n", opt.stream_retry_ms);
  Lowest(stream).expires_after(opt.stream_write_timeout);
  auto [ec0, n0] = co_await asio::async_write(stream, asio::buffer(head), kTuple);
  if (ec0) co_return false;
  auto last_write = Clock::now();
  // A pending read notices a client that leaves at once (EOF), instead of at the next
  // failed write; anything the client sends is ignored. It reads the socket itself, below
  // Beast's stream, whose timeout is for our writes. (Over TLS a departure is noticed at
  // the next write or heartbeat: reading needs the TLS layer.)
  auto reader_done = std::make_shared<std::atomic<bool>>(true);
  auto peer_gone = std::make_shared<std::atomic<bool>>(false);
  auto done_timer = std::make_shared<asio::steady_timer>(stream.get_executor());
  if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
    reader_done->store(false);
    asio::co_spawn(
        stream.get_executor(),
        [sock = &stream.socket(), timer, reader_done, peer_gone, done_timer]() -> awaitable<void> {
          char buf[512];
          while (true) {
            auto [rec, n] = co_await sock->async_read_some(asio::buffer(buf), kTuple);
            if (rec) break;
          }
          peer_gone->store(true);
          reader_done->store(true);
          timer->cancel();
          done_timer->cancel();
        },
        asio::detached);
  }
  // Ends the reader before `stream` can go away: the caller's coroutine outlives it.
  struct ReaderJoin {
    Stream& s;
    std::shared_ptr<std::atomic<bool>> done;
    std::shared_ptr<asio::steady_timer> t;
  } join{stream, reader_done, done_timer};
  std::vector<api::StreamEvent> events;
  std::string text;
  bool result = false;
  while (!closed.load() && !stopping.load() && !peer_gone->load()) {
    events.clear();
    woken->store(false);
    bool more = co_await PollStream(*es, events);
    if (!events.empty()) {
      text.clear();
      for (const auto& e : events) AppendSse(text, e);
      Lowest(stream).expires_after(opt.stream_write_timeout);
      auto [ec, n] = co_await asio::async_write(stream, asio::buffer(text), kTuple);
      if (ec) break;  // gone, or too slow to take what we send
      last_write = Clock::now();
    }
    if (!more) {
      result = true;
      break;
    }
    if (!events.empty()) continue;
    if (woken->load()) continue;
    // Going idle: a past burst must not keep its buffers for the life of the stream
    // (10,000 streams).
    if (text.capacity() > kKeepBuffer) std::string().swap(text);
    if (events.capacity() > 64) std::vector<api::StreamEvent>().swap(events);
    const auto silent = Clock::now() - last_write;
    auto wait = opt.stream_poll;
    if (silent < opt.stream_heartbeat) {
      wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(
                                opt.stream_heartbeat - silent));
    }
    timer->expires_after(wait);
    co_await timer->async_wait(kTuple);
    if (Clock::now() - last_write >= opt.stream_heartbeat) {
      static const std::string kBeat = ": heartbeat\n\n";
      Lowest(stream).expires_after(opt.stream_write_timeout);
      auto [ec, n] = co_await asio::async_write(stream, asio::buffer(kBeat), kTuple);
      if (ec) break;
      last_write = Clock::now();
    }
  }
  if (!join.done->load()) {
    beast::error_code ignored;
    Lowest(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
    Lowest(stream).socket().cancel(ignored);
    while (!join.done->load()) {
      join.t->expires_after(std::chrono::seconds(1));
      co_await join.t->async_wait(kTuple);
    }
  }
  co_return result;
}

template <class Stream>
awaitable<void> HttpServer::Impl::ServeWebSocket(Stream stream,
                                                 http::request<http::string_body> req,
                                                 api::HttpRequest& /*areq*/,
                                                 api::HttpResponse& resp,
                                                 std::shared_ptr<asio::steady_timer> timer,
                                                 std::shared_ptr<std::atomic<bool>> closed) {
  Lowest(stream).expires_never();
  auto ws = std::make_shared<websocket::stream<Stream>>(std::move(stream));
  ws->set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  ws->read_message_max(64 * 1024);
  auto [ec] = co_await ws->async_accept(req, kTuple);
  if (ec) co_return;
  // A reader: answers pings, notices the client's close.
  asio::co_spawn(
      ws->get_executor(),
      [ws, closed, timer]() -> awaitable<void> {
        beast::flat_buffer b;
        while (true) {
          auto [rec, n] = co_await ws->async_read(b, kTuple);
          if (rec) break;
          b.consume(b.size());
        }
        closed->store(true);
        timer->cancel();
      },
      asio::detached);
  auto woken = std::make_shared<std::atomic<bool>>(false);
  auto es = resp.stream;
  es->SetWaker([weak = std::weak_ptr<asio::steady_timer>(timer), woken] {
    woken->store(true);
    if (auto t = weak.lock()) asio::post(t->get_executor(), [t] { t->cancel(); });
  });
  ws->text(true);
  std::vector<api::StreamEvent> events;
  while (!closed->load() && !stopping.load()) {
    events.clear();
    woken->store(false);
    bool more = co_await PollStream(*es, events);
    for (const auto& e : events) {
      std::string m = WsMessage(e);
      auto [wec, n] = co_await ws->async_write(asio::buffer(m), kTuple);
      if (wec) co_return;
    }
    if (!more) break;
    if (!events.empty() || woken->load()) continue;
    timer->expires_after(opt.stream_poll);
    co_await timer->async_wait(kTuple);
  }
  if (!closed->load()) {
    co_await ws->async_close(websocket::close_code::normal, kTuple);
  }
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options,
                                                      api::HttpHandler handler) {
  auto impl = std::make_unique<Impl>(std::move(options), std::move(handler));
  Impl& m = *impl;
  if (!m.opt.tls_cert_file.empty() || !m.opt.tls_key_file.empty()) {
    m.ssl.emplace(asio::ssl::context::tls_server);
    m.ssl->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1);
    beast::error_code ec;
    m.ssl->use_certificate_chain_file(m.opt.tls_cert_file, ec);
    if (ec) {
      return Status(ErrorCode::kInvalidArgument,
                    fmt::format("--tls-cert {}: {}", m.opt.tls_cert_file, ec.message()));
    }
    m.ssl->use_private_key_file(m.opt.tls_key_file, asio::ssl::context::pem, ec);
    if (ec) {
      return Status(ErrorCode::kInvalidArgument,
                    fmt::format("--tls-key {}: {}", m.opt.tls_key_file, ec.message()));
    }
  }
  beast::error_code ec;
  auto addr = asio::ip::make_address(m.opt.address, ec);
  if (ec) {
    // A host name ("localhost"): listen on its first address.
    tcp::resolver resolver(m.ioc);
    auto results = resolver.resolve(m.opt.address, "", ec);
    if (ec || results.empty()) {
      return Status(ErrorCode::kInvalidArgument,
                    fmt::format("listen address \"{}\" is neither an IP address nor a host "
                                "name this machine resolves",
                                m.opt.address));
    }
    addr = results.begin()->endpoint().address();
  }
  tcp::endpoint ep(addr, m.opt.port);
  m.acceptor.open(ep.protocol(), ec);
  if (!ec) m.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) m.acceptor.bind(ep, ec);
  if (!ec) m.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status(ErrorCode::kUnavailable, fmt::format("cannot listen on {}:{}: {}", m.opt.address,
                                                       m.opt.port, ec.message()));
  }
  m.port = m.acceptor.local_endpoint().port();
  m.work.emplace(m.ioc.get_executor());
  asio::co_spawn(m.ioc, m.Accept(), asio::detached);
  for (int i = 0; i < std::max(1, m.opt.io_threads); ++i) {
    m.threads.emplace_back([&m] { m.ioc.run(); });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->port; }
bool HttpServer::tls() const { return impl_->ssl.has_value(); }
size_t HttpServer::connections() const { return impl_->conns->open.load(); }

void HttpServer::Stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  Impl& m = *impl_;
  asio::post(m.ioc, [&m] {
    beast::error_code ignored;
    m.acceptor.close(ignored);
  });
  m.conns->AbortAll();
  m.work.reset();
  // Connections finish the request in hand, then close; streams end at once. Give them up
  // to 5 s (a handler blocked on the store), aborting again for connections that were
  // accepted meanwhile, then stop the loop.
  for (int i = 0; i < 250 && m.conns->open.load() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    m.conns->AbortAll();
  }
  m.ioc.stop();
  for (auto& t : m.threads) {
    if (t.joinable()) t.join();
  }
  m.pool.join();
}

}  // namespace automan
