// The [s2s] ports: accepts server connections (STARTTLS on `port`, TLS first on
// `direct_tls_port`, XEP-0368) and keeps the inbound streams until they end; each counts in
// the context's live count meanwhile. Every connection is admitted when accepted, on either
// port: connection_rate per address, and the limits on unauthenticated connections.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <set>
#include <vector>

#include "core/connection_gate.h"
#include "core/live_count.h"
#include "s2s/inbound_stream.h"

namespace waddle::s2s {

class Listener {
 public:
  // `refusals` (may be null) counts the connections refused when accepted.
  Listener(InboundContext& ctx, boost::asio::io_context& io,
           metrics::ListenerMetrics* refusals = nullptr);
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Opens the listeners; throws std::runtime_error when a port cannot be bound.
  void start();
  // Shutdown: no more connections; every stream ends with system-shutdown.
  void stop();
  // After a policy reload: streams carrying a domain no longer allowed close.
  void close_disallowed();
  // SIGHUP: new connection limits from now on.
  void reload(const core::S2sConfig& config);

 private:
  void listen(std::uint16_t port, bool direct_tls);
  boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acceptor,
                                           bool direct_tls);
  // The gate's verdict on a new connection; false when it was refused (and closed).
  bool admit(boost::asio::ip::tcp::socket& socket, bool direct_tls,
             core::ConnectionGate::Ticket& ticket);
  boost::asio::awaitable<void> serve(std::shared_ptr<InboundStream> in,
                                     core::LiveCount::Token alive);

  InboundContext& ctx_;
  boost::asio::io_context& io_;
  metrics::ListenerMetrics* refusals_;
  core::ConnectionGate gate_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::set<std::shared_ptr<InboundStream>> streams_;
};

}  // namespace waddle::s2s
