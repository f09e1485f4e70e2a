// External components (XEP-0114): gateways, bots and other services that connect to their
// own port ([components] port, 5347, on loopback by default) and answer for a domain of
// their own after a handshake with the secret configured for it. Each configured domain is
// registered with the router from the start, like a room service: stanzas for it and its
// JIDs go to the component while it is connected and are answered with service-unavailable
// while it is not; what the component sends from its domain is routed like any other
// stanza, to local users and over S2S (docs/configuration.md, "[components]").
#pragma once

#include <cstddef>
#include <memory>

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}
}  // namespace boost::asio

namespace waddle::core {
struct Config;
}
namespace waddle::router {
class Router;
}
namespace waddle::metrics {
struct ComponentMetrics;
}

namespace waddle::component {

class ComponentService {
 public:
  // `tls` is only what every stream is built with: component streams are plain TCP.
  ComponentService(const core::Config& config, router::Router& router, boost::asio::io_context& io,
                   boost::asio::ssl::context& tls, metrics::ComponentMetrics* metrics);
  ~ComponentService();
  ComponentService(const ComponentService&) = delete;
  ComponentService& operator=(const ComponentService&) = delete;

  // Registers the configured domains with the router (before any stanza is routed).
  void register_domains();
  // Listens on [components] listen/port when a component is configured. Throws
  // std::runtime_error when a port cannot be bound.
  void start();
  // Stops listening and ends every component stream (</stream:stream>, written before the
  // socket closes).
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace waddle::component
