// HTTP endpoint for operators ([metrics] address/port): Prometheus scrapes at GET /metrics
// (text format 0.0.4), liveness at GET /health, the status page at GET /status. HTTP/1.1 with
// keep-alive, Boost.Beast.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace waddle::metrics {

class HttpServer {
 public:
  // Both callbacks run on the io_context's thread, which must be the thread that owns the
  // metrics registry. `healthy` false answers /health with 503.
  HttpServer(boost::asio::io_context& io, const std::string& address, std::uint16_t port,
             std::function<std::string()> render_metrics, std::function<bool()> healthy);
  // Stops (see stop()); connections still open finish on the io_context without calling the
  // callbacks again.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting. Throws std::runtime_error
  // "cannot listen on ADDR port PORT: REASON" (start-up time, like the other listeners).
  void start();
  // Closes the listener and every open connection. Idempotent.
  void stop();

  // The bound port (useful after binding port 0); 0 before start().
  std::uint16_t port() const;

  // GET /status: an HTML page for operators (web/logic/status_page.h), rendered on the
  // io_context's thread like the metrics. Without it /status is 404.
  void set_status(std::function<std::string()> render_status);

  // How long a connection may take to send a complete request (also the idle time allowed
  // between keep-alive requests). Default 10 s.
  void set_read_timeout(std::chrono::steady_clock::duration timeout);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;  // shared with the connection coroutines, which may outlive us
};

}  // namespace waddle::metrics
