// Accepting server connections; see listener.h.
#include "s2s/listener.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>

#include "core/ids.h"
#include "metrics/metrics.h"
#include "net/listen.h"
#include "net/tls.h"
#include "s2s/admission.h"
#include "s2s/channel.h"
#include "s2s/connector.h"
#include "s2s/time_source.h"
#include "stream/negotiation.h"
#include "stream/xml_stream.h"

namespace waddle::s2s {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

core::ConnectionGate::Limits gate_limits(const core::S2sConfig& c) {
  return {c.max_unauthenticated, c.max_unauthenticated_per_address, c.connection_rate};
}

}  // namespace

Listener::Listener(InboundContext& ctx, asio::io_context& io, metrics::ListenerMetrics* refusals)
    : ctx_(ctx), io_(io), refusals_(refusals), gate_(gate_limits(ctx.config.s2s)) {}

void Listener::reload(const core::S2sConfig& config) {
  gate_.set_limits(gate_limits(config));
}

void Listener::start() {
  listen(ctx_.config.s2s.port, false);
  if (ctx_.config.s2s.direct_tls_port) listen(ctx_.config.s2s.direct_tls_port, true);
}

void Listener::listen(std::uint16_t port, bool direct_tls) {
  for (auto& acc : net::listen_all(io_, ctx_.config.server.listen, port)) {
    spdlog::info("listening for servers on {} port {}{}",
                 acc->local_endpoint().address().to_string(), port,
                 direct_tls ? " (direct TLS)" : "");
    acceptors_.push_back(std::move(acc));
    net::spawn_logged(io_.get_executor(), accept_loop(*acceptors_.back(), direct_tls),
                      "s2s listener");
  }
}

asio::awaitable<void> Listener::accept_loop(tcp::acceptor& acc, bool direct_tls) {
  for (;;) {
    auto [ec, socket] = co_await acc.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted || !acc.is_open()) co_return;
    if (ec) continue;
    core::ConnectionGate::Ticket ticket;
    if (!admit(socket, direct_tls, ticket)) continue;
    auto st = std::make_shared<stream::XmlStream>(
        std::move(socket), ctx_.tls.s2s_server(),
        stream::before_authentication(stream::server_parser_limits(ctx_.config), ctx_.config));
    auto in = std::make_shared<InboundStream>(ctx_, st, direct_tls, std::move(ticket));
    streams_.insert(in);
    net::spawn_logged(io_.get_executor(), serve(in, ctx_.live.enter()), "s2s inbound stream");
  }
}

bool Listener::admit(tcp::socket& socket, bool direct_tls, core::ConnectionGate::Ticket& ticket) {
  const std::string address = net::address_key(socket);
  const auto refused = gate_.admit(address, ctx_.time.now(), ticket);
  if (!refused) return true;
  spdlog::info("s2s in ({}): connection refused: {}", address, core::to_string(*refused));
  if (refusals_) refusals_->refused("s2s", core::to_string(*refused));
  // Before anything is read: no domain to count it for (metrics::kUnauthenticated).
  if (ctx_.metrics) {
    ctx_.metrics->error(metrics::kUnauthenticated, refused == core::ConnectionGate::Refused::kRate
                                                       ? metrics::S2sError::kRateLimit
                                                       : metrics::S2sError::kPolicy);
    ctx_.metrics->stream_closed(metrics::kUnauthenticated, metrics::Direction::kIn,
                                refused == core::ConnectionGate::Refused::kRate
                                    ? metrics::CloseReason::kRateLimit
                                    : metrics::CloseReason::kPolicy);
  }
  std::string error;  // RFC 6120 §4.9.1.1: our header first, then the error
  if (!direct_tls)
    error = stream::stream_error_close(core::StreamError::kPolicyViolation, "Too many connections",
                                       stream::server_header({}, {}, core::random_hex(12)));
  net::refuse_connection(socket, error);
  return false;
}

asio::awaitable<void> Listener::serve(std::shared_ptr<InboundStream> in,
                                      core::LiveCount::Token alive) {
  co_await in->run();
  streams_.erase(in);
  alive = {};
}

void Listener::stop() {
  for (auto& a : acceptors_) a->close();
  for (const auto& in : std::set<std::shared_ptr<InboundStream>>(streams_)) in->shutdown();
}

void Listener::close_disallowed() {
  for (const auto& in : std::set<std::shared_ptr<InboundStream>>(streams_)) {
    for (const auto& pair : in->pairs()) {
      if (ctx_.admission.allows(pair.second)) continue;
      in->close_with(core::StreamError::kPolicyViolation,
                     "Federation with your domain is no longer allowed",
                     metrics::CloseReason::kPolicy);
      net::spawn_logged(io_.get_executor(), in->channel()->close_gracefully(), "s2s close");
      break;
    }
  }
}

}  // namespace waddle::s2s
