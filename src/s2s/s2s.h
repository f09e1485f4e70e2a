// Federation (RFC 6120 server-to-server): the service that listens on the [s2s] ports, opens
// outbound streams through the pool, authenticates with TLS + SASL EXTERNAL (XEP-0178) or
// Server Dialback (XEP-0220), checks inbound stanzas against what each stream authenticated
// (anti-spoofing), and applies the federation policy and rate limits. Implements the router's
// RemoteDelivery, so stanzas for other domains arrive here. The parts are in this folder;
// docs/architecture.md shows how they fit.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "router/router.h"

namespace boost::asio {
class io_context;
}
namespace waddle::net {
class TlsContexts;
}
namespace waddle::metrics {
struct S2sMetrics;
struct ListenerMetrics;
}  // namespace waddle::metrics

namespace waddle::s2s {

class S2sService : public router::RemoteDelivery {
 public:
  S2sService(const core::Config& config, router::Router& router, net::TlsContexts& tls,
             boost::asio::io_context& io, metrics::S2sMetrics* metrics = nullptr,
             metrics::ListenerMetrics* refusals = nullptr);
  ~S2sService() override;

  // Opens the listeners (throws std::runtime_error when a port cannot be bound).
  void start();
  // Shutdown: closes every stream (inbound ones with system-shutdown, outbound ones with
  // their closing tag after what was written), bounces queued stanzas and aborts connection
  // attempts. `all_closed`, when given, is called (posted on the io_context, once) as soon as
  // every S2S stream has ended, verification streams included: live_streams() is then 0.
  void stop(std::function<void()> all_closed = {});
  // Re-reads the policy parts and connection limits of the configuration (SIGHUP); connections to
  // domains that are still allowed stay up, the others are closed with policy-violation.
  void reload(const core::Config& config);

  void send(xml::Element stanza) override;
  void send_shared(xml::Element stanza, const xml::SharedStanza& shared) override;

  // Inbound streams, outbound links (connecting or connected) and dialback verification
  // streams.
  std::size_t live_streams() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What `waddle check s2s DOMAIN` reports (also used by its tests).
struct CheckReport {
  std::vector<std::string> lines;  // human-readable, in order
  bool ok = false;                 // a test stream authenticated
};
CheckReport check_remote(const core::Config& config, const std::string& local_domain,
                         const std::string& remote_domain);

}  // namespace waddle::s2s
