// The S2S service (spec: mod.rs): listener on [s2s] port, outbound connections through the
// pool, TLS + SASL EXTERNAL (XEP-0178) or Server Dialback (XEP-0220) authentication,
// anti-spoofing of inbound stanzas, policy and rate limits. Implements the router's
// RemoteDelivery, so stanzas for other domains arrive here.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "router/router.h"

namespace waddle::net {
class TlsContexts;
}
namespace waddle::metrics {
struct S2sMetrics;
}

namespace waddle::s2s {

struct CheckReport;

class S2sService : public router::RemoteDelivery {
 public:
  S2sService(const core::Config& config, router::Router& router, net::TlsContexts& tls,
             boost::asio::io_context& io, metrics::S2sMetrics* metrics = nullptr);
  ~S2sService() override;

  // Opens the listeners (throws std::runtime_error when a port cannot be bound).
  void start();
  // Closes every stream with </stream:stream> (system-shutdown) and bounces queued stanzas.
  void stop();
  // Re-reads the policy parts of the configuration (SIGHUP); connections to domains that are
  // still allowed stay up, the others are closed with policy-violation.
  void reload(const core::Config& config);

  void send(xml::Element stanza) override;

  std::size_t live_streams() const;

 private:
  friend CheckReport check_remote(const core::Config&, const std::string&, const std::string&);
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// What `waddle check s2s DOMAIN` reports (also used by its tests).
struct CheckReport {
  std::vector<std::string> lines;  // human-readable, in order
  bool ok = false;                 // a test stream authenticated
};
CheckReport check_remote(const core::Config& config, const std::string& local_domain,
                         const std::string& remote_domain);

}  // namespace waddle::s2s
