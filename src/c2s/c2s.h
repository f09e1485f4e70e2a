// Client-to-server sessions (RFC 6120): STARTTLS / direct TLS, SASL, resource binding,
// in-band registration (XEP-0077); bound stanzas go to the IM service and the router.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <memory>

#include "core/config.h"
#include "core/connection_gate.h"
#include "xml/parser.h"

namespace waddle::router {
class Router;
}
namespace waddle::im {
class ImService;
}
namespace waddle::net {
template <class Context>
class Worker;
class TlsContexts;
}  // namespace waddle::net
namespace waddle::storage {
class Storage;
}
namespace waddle::metrics {
struct C2sMetrics;
struct ListenerMetrics;
}  // namespace waddle::metrics
namespace waddle::stream {
class XmlStream;
}

namespace waddle::c2s {

struct C2sContext {
  const core::Config& config;
  router::Router& router;
  im::ImService& im;
  net::Worker<storage::Storage>& worker;
  boost::asio::ssl::context& tls;
  metrics::C2sMetrics* metrics = nullptr;
  // Per-domain certificates, for STARTTLS clients that send no SNI (the header's 'to' picks).
  net::TlsContexts* contexts = nullptr;
  // Unauthenticated connections ([c2s] max_unauthenticated...); none when null.
  core::ConnectionGate* gate = nullptr;
  metrics::ListenerMetrics* listener_metrics = nullptr;
};

// Starts a session on an accepted socket, unless the gate refuses it: then a stream header
// with policy-violation is written if the socket takes it at once (nothing on the direct TLS
// port), and the socket is closed. direct_tls: XEP-0368 port, TLS before the stream.
void start_session(C2sContext& ctx, boost::asio::ip::tcp::socket socket, bool direct_tls);

// Starts a session of XMPP over WebSocket (RFC 7395) on a stream whose HTTP upgrade is done
// (XmlStream::use_websocket), admitted by the gate already (`unauthenticated`). `token` is
// held as long as the session lives.
void start_websocket_session(C2sContext& ctx, std::shared_ptr<stream::XmlStream> stream,
                             core::ConnectionGate::Ticket unauthenticated,
                             std::shared_ptr<void> token = {});
// The parser limits a client stream starts with (before authentication).
xml::ParserLimits client_stream_limits(const core::Config& config);

// Client sessions that still exist (connected or closing).
std::size_t live_sessions();
// `done` runs once no client session is left (at once if there is none); shutdown waits so.
void when_no_sessions(std::function<void()> done);

}  // namespace waddle::c2s
