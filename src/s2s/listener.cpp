// Accepting server connections; see listener.h.
#include "s2s/listener.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>

#include "net/listen.h"
#include "net/tls.h"
#include "s2s/admission.h"
#include "s2s/channel.h"
#include "s2s/connector.h"
#include "stream/negotiation.h"
#include "stream/xml_stream.h"

namespace waddle::s2s {
namespace asio = boost::asio;
using asio::ip::tcp;

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
    auto st = std::make_shared<stream::XmlStream>(std::move(socket), ctx_.tls.s2s_server(),
                                                  stream::server_parser_limits(ctx_.config));
    st->set_write_limits({ctx_.config.s2s_write_queue(), ctx_.config.s2s.write_stall_timeout});
    auto in = std::make_shared<InboundStream>(ctx_, st, direct_tls);
    streams_.insert(in);
    net::spawn_logged(io_.get_executor(), serve(in, ctx_.live.enter()), "s2s inbound stream");
  }
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
