// HTTP endpoint for /metrics (Prometheus text format 0.0.4) and /health: one coroutine per
// connection (deadline, read, answer, write), requests bounded in size and time.
#include "metrics/http_server.h"

#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include <array>
#include <optional>
#include <set>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "metrics/metrics.h"

namespace waddle::metrics {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kMaxHeader = 8 * 1024;  // request line and headers
constexpr std::uint64_t kMaxBody = 8 * 1024;    // GET has none; a small one is read and ignored
constexpr std::size_t kMaxConnections = 64;     // scrapers and probes: a handful at a time
constexpr auto kWriteTimeout = 10s;
constexpr auto kLingerTimeout = 1s;  // after refusing a request, see serve()
constexpr std::size_t kLingerBytes = 256 * 1024;

// Completion of a spawned coroutine: a failure is logged, never swallowed.
struct LogFailure {
  const char* what;
  void operator()(std::exception_ptr e) const {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("metrics http: {} ended with an exception: {}", what, ex.what());
    } catch (...) {
      spdlog::error("metrics http: {} ended with an unknown exception", what);
    }
  }
};

}  // namespace

struct HttpServer::Impl {
  Impl(asio::io_context& io_context, std::string addr, std::uint16_t p,
       std::function<std::string()> render_fn, std::function<bool()> healthy_fn)
      : io(io_context),
        address(std::move(addr)),
        port(p),
        render(std::move(render_fn)),
        healthy(std::move(healthy_fn)) {}

  asio::io_context& io;
  std::string address;
  std::uint16_t port;
  std::function<std::string()> render;
  std::function<bool()> healthy;
  std::function<std::string()> status;
  std::chrono::steady_clock::duration read_timeout = 10s;
  std::optional<tcp::acceptor> acceptor;
  std::uint16_t bound_port = 0;
  std::set<beast::tcp_stream*> connections;  // open connections, closed by stop()
  bool stopped = false;
};

namespace {

using Impl = HttpServer::Impl;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// Keeps a connection listed in Impl::connections while its coroutine runs.
class Registration {
 public:
  Registration(Impl& impl, beast::tcp_stream& stream) : impl_(impl), stream_(&stream) {
    impl_.connections.insert(stream_);
  }
  ~Registration() { impl_.connections.erase(stream_); }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

 private:
  Impl& impl_;
  beast::tcp_stream* stream_;
};

Response make_response(http::status status, unsigned version, std::string_view content_type,
                       std::string body) {
  Response res{status, version};
  res.set(http::field::server, "waddle");
  res.set(http::field::content_type, content_type);
  res.body() = std::move(body);
  return res;
}

Response handle(Impl& impl, const Request& req) {
  std::string_view target = req.target();
  target = target.substr(0, target.find('?'));  // scrapers may add parameters; none are used
  Response res;
  if (req.method() != http::verb::get) {
    res = make_response(http::status::method_not_allowed, req.version(), "text/plain",
                        "method not allowed\n");
    res.set(http::field::allow, "GET");
  } else if (target == "/metrics") {
    res = make_response(http::status::ok, req.version(), kContentType, impl.render());
  } else if (target == "/status" && impl.status) {
    res = make_response(http::status::ok, req.version(), "text/html; charset=utf-8", impl.status());
    res.set(http::field::cache_control, "no-store");
    res.set("X-Content-Type-Options", "nosniff");
    res.set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
  } else if (target == "/health") {
    bool ok = impl.healthy();
    res = make_response(ok ? http::status::ok : http::status::service_unavailable, req.version(),
                        "text/plain", ok ? "ok" : "unhealthy");
  } else {
    res = make_response(http::status::not_found, req.version(), "text/plain", "not found\n");
  }
  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  return res;
}

// The answer to a request that could not be read, or nothing (just close) when the peer went
// away, timed out, or the server is stopping.
std::optional<http::status> status_for_read_error(const boost::system::error_code& ec) {
  if (ec == http::error::header_limit) return http::status::request_header_fields_too_large;
  if (ec == http::error::body_limit || ec == http::error::buffer_overflow)
    return http::status::payload_too_large;
  if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message)
    return http::status::bad_request;
  return std::nullopt;
}

asio::awaitable<void> serve(std::shared_ptr<Impl> impl, tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  Registration registration(*impl, stream);
  beast::flat_buffer buffer(kMaxHeader + kMaxBody + 1024);
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kMaxHeader);
    parser.body_limit(kMaxBody);
    stream.expires_after(impl->read_timeout);
    auto [ec, n] =
        co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    if (impl->stopped) co_return;
    Response res;
    bool keep_alive = false;
    if (ec) {
      auto status = status_for_read_error(ec);
      if (!status) break;  // closed, reset or timed out: a normal end
      res = make_response(*status, 11, "text/plain", std::string(obsolete_reason(*status)) + "\n");
      res.keep_alive(false);
      res.prepare_payload();
    } else {
      res = handle(*impl, parser.get());
      keep_alive = res.keep_alive();
    }
    stream.expires_after(kWriteTimeout);
    auto [wec, wn] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
    if (wec || impl->stopped) break;
    if (ec) {
      // Lingering close: closing with unread request bytes makes the kernel send a reset,
      // which can destroy the error response before the client reads it.
      boost::system::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
      stream.expires_after(kLingerTimeout);
      std::array<char, 4096> discard;
      for (std::size_t total = 0; total < kLingerBytes;) {
        auto [dec, dn] = co_await stream.async_read_some(asio::buffer(discard),
                                                         asio::as_tuple(asio::use_awaitable));
        if (dec) break;
        total += dn;
      }
      co_return;
    }
    if (!keep_alive) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> accept_loop(std::shared_ptr<Impl> impl) {
  asio::steady_timer backoff(impl->io);
  while (!impl->stopped) {
    auto [ec, socket] = co_await impl->acceptor->async_accept(asio::as_tuple(asio::use_awaitable));
    if (impl->stopped) co_return;
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of descriptors and the like: wait instead of spinning on the error.
      spdlog::warn("metrics http: accept failed: {}", ec.message());
      backoff.expires_after(100ms);
      co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (impl->connections.size() >= kMaxConnections) {
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    asio::co_spawn(impl->io, serve(impl, std::move(socket)), LogFailure{"connection"});
  }
}

}  // namespace

HttpServer::HttpServer(asio::io_context& io, const std::string& address, std::uint16_t port,
                       std::function<std::string()> render_metrics, std::function<bool()> healthy)
    : impl_(std::make_shared<Impl>(io, address, port, std::move(render_metrics),
                                   std::move(healthy))) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::start() {
  if (impl_->acceptor || impl_->stopped) return;
  auto fail = [&](const std::string& reason) {
    impl_->acceptor.reset();
    throw std::runtime_error("cannot listen on " + impl_->address + " port " +
                             std::to_string(impl_->port) + ": " + reason);
  };
  boost::system::error_code ec;
  auto address = asio::ip::make_address(impl_->address, ec);
  if (ec) fail("not an IP address");
  tcp::endpoint endpoint(address, impl_->port);
  impl_->acceptor.emplace(impl_->io);
  auto& acceptor = *impl_->acceptor;
  if (acceptor.open(endpoint.protocol(), ec); ec) fail(ec.message());
  if (acceptor.set_option(asio::socket_base::reuse_address(true), ec); ec) fail(ec.message());
  if (acceptor.bind(endpoint, ec); ec) fail(ec.message());
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) fail(ec.message());
  impl_->bound_port = acceptor.local_endpoint(ec).port();
  asio::co_spawn(impl_->io, accept_loop(impl_), LogFailure{"accept loop"});
  spdlog::info("serving /metrics, /health and /status on {} port {}", impl_->address,
               impl_->bound_port);
}

void HttpServer::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  boost::system::error_code ignored;
  if (impl_->acceptor) impl_->acceptor->close(ignored);
  // Closing cancels the pending reads and writes; each coroutine then ends on its own.
  std::vector<beast::tcp_stream*> open(impl_->connections.begin(), impl_->connections.end());
  for (auto* stream : open) stream->close();
  // Release what the callbacks captured: nothing calls them any more.
  impl_->render = nullptr;
  impl_->healthy = nullptr;
  impl_->status = nullptr;
}

std::uint16_t HttpServer::port() const {
  return impl_->bound_port;
}

void HttpServer::set_status(std::function<std::string()> render_status) {
  impl_->status = std::move(render_status);
}

void HttpServer::set_read_timeout(std::chrono::steady_clock::duration timeout) {
  impl_->read_timeout = timeout;
}

}  // namespace waddle::metrics
