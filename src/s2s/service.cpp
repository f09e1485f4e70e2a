// The federation service: owns the parts and wires them together. Outbound: stanzas go to
// the pool, which opens streams through the connector; inbound: the listener's streams hand
// stanzas to the router. Both directions authenticate with the same methods (SASL EXTERNAL
// first, then dialback) and ask the same admission and rate limits.
#include <boost/asio.hpp>

#include "metrics/metrics.h"
#include "net/tls.h"
#include "s2s/admission.h"
#include "s2s/connector.h"
#include "s2s/dialback.h"
#include "s2s/dns.h"
#include "s2s/listener.h"
#include "s2s/pool.h"
#include "s2s/rate_limit.h"
#include "s2s/s2s.h"
#include "s2s/sasl_external.h"
#include "s2s/time_source.h"

namespace waddle::s2s {
namespace asio = boost::asio;

struct S2sService::Impl {
  Impl(const core::Config& c, router::Router& r, net::TlsContexts& t, asio::io_context& i,
       metrics::S2sMetrics* m, metrics::ListenerMetrics* refusals)
      : config(c),
        io(i),
        time(i.get_executor()),
        resolver(Resolver::Options{c.dns.nameservers}),
        admission(c.s2s),
        limits(c.s2s, time.now(), m),
        keys(DialbackKeys::load_secret(c), r, m),
        connector(c, i, resolver, t, admission),
        sasl(m),
        dialback(c, i.get_executor(), time, keys, connector, r, admission, live, m),
        pool(c.s2s, i.get_executor(), time, connector, r, admission, keys, live, m),
        inbound{c, i.get_executor(), r, t, admission, limits, time, live, m, {}, {}},
        listener(inbound, i, refusals) {
    std::vector<Authenticator*> methods{&sasl, &dialback};  // in order of preference
    connector.set_methods(methods);
    inbound.methods = methods;
    inbound.from_peer = [this](const xml::Element& stanza, const std::string& local,
                               const std::string& remote) {
      return pool.from_peer(stanza, local, remote);
    };
  }

  const core::Config& config;
  asio::io_context& io;
  // Inbound streams, outbound links and verification streams alive: stop() waits on it.
  core::LiveCount live;
  SteadyTimeSource time;
  Resolver resolver;
  Admission admission;
  RateLimits limits;
  DialbackKeys keys;
  TlsConnector connector;
  SaslExternal sasl;
  Dialback dialback;
  Pool pool;
  InboundContext inbound;
  Listener listener;
};

S2sService::S2sService(const core::Config& config, router::Router& router, net::TlsContexts& tls,
                       asio::io_context& io, metrics::S2sMetrics* m,
                       metrics::ListenerMetrics* refusals)
    : impl_(std::make_unique<Impl>(config, router, tls, io, m, refusals)) {}

S2sService::~S2sService() = default;

void S2sService::start() {
  if (impl_->config.s2s.enabled) impl_->listener.start();
}

void S2sService::stop(std::function<void()> all_closed) {
  impl_->listener.stop();
  impl_->pool.stop();
  impl_->dialback.stop();
  if (!all_closed) return;
  // Posted: the last stream may end inside a part that the callback must not see running.
  impl_->live.when_empty(
      [&io = impl_->io, all_closed = std::move(all_closed)] { asio::post(io, all_closed); });
}

void S2sService::send(xml::Element stanza) {
  impl_->pool.send(std::move(stanza));
}

void S2sService::send_shared(xml::Element stanza, const xml::SharedStanza& shared) {
  impl_->pool.send(std::move(stanza), &shared);
}

void S2sService::reload(const core::Config& config) {
  impl_->admission.reload(config.s2s);
  impl_->limits.reload(config.s2s);
  impl_->listener.reload(config.s2s);
  impl_->listener.close_disallowed();
  impl_->pool.close_disallowed();
  spdlog::info("s2s: policy is now {} ({} allowed, {} blocked)", config.s2s.policy,
               config.s2s.allowed_domains.size(), config.s2s.blocked_domains.size());
}

std::size_t S2sService::live_streams() const {
  return impl_->live.size();
}

}  // namespace waddle::s2s
