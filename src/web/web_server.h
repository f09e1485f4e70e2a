// The web listener ([web], docs/web.md): HTTPS on the server's addresses and plain HTTP on
// loopback, serving XMPP over WebSocket (RFC 7395, handed to the client session logic once
// upgraded), connection discovery (XEP-0156 host-meta) and file upload (XEP-0363: PUT into a
// slot, GET with ranges). Each connection is an XmlStream
// (the same TLS and write queue as client streams); Boost.Beast parses and writes the HTTP.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace boost::asio {
class io_context;
}
namespace waddle::core {
struct Config;
}
namespace waddle::net {
class TlsContexts;
}
namespace waddle::c2s {
struct C2sContext;
}
namespace waddle::metrics {
struct WebMetrics;
}
namespace waddle::im {
class UploadSlots;
}

namespace waddle::web {

class WebServer {
 public:
  WebServer(boost::asio::io_context& io, const core::Config& config, net::TlsContexts& tls,
            c2s::C2sContext& c2s, metrics::WebMetrics* metrics);
  ~WebServer();
  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  // The file upload service (XEP-0363) once started with [upload] enabled, else null.
  im::UploadSlots* upload();

  // Opens the upload directory ([upload]), binds the configured listeners and starts
  // accepting. Throws std::runtime_error
  // "cannot listen on ADDR port PORT: REASON" (start-up time, like the other listeners).
  void start();
  // Closes the listeners and the HTTP connections not upgraded (WebSocket sessions are client
  // sessions, closed with them). Idempotent.
  void stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;  // shared with the connection coroutines
};

}  // namespace waddle::web
