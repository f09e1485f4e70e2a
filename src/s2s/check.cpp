// `waddle check s2s DOMAIN`: one connection attempt with the server's own configuration,
// certificates and methods, traced step by step for the operator.
#include <boost/asio.hpp>

#include "net/tls.h"
#include "router/router.h"
#include "s2s/admission.h"
#include "s2s/channel.h"
#include "s2s/connector.h"
#include "s2s/dialback.h"
#include "s2s/dns.h"
#include "s2s/s2s.h"
#include "s2s/sasl_external.h"
#include "s2s/time_source.h"
#include "stream/negotiation.h"

namespace waddle::s2s {
namespace asio = boost::asio;

CheckReport check_remote(const core::Config& config, const std::string& local,
                         const std::string& remote) {
  CheckReport report;
  asio::io_context io(1);
  router::Router router(config.server.domains);
  net::TlsContexts tls(config);
  SteadyTimeSource time(io.get_executor());
  Resolver resolver(Resolver::Options{config.dns.nameservers});
  Admission admission(config.s2s);
  DialbackKeys keys(DialbackKeys::load_secret(config), router, nullptr);
  TlsConnector connector(config, io, resolver, tls, admission, Trace(&report.lines));
  SaslExternal sasl(nullptr);
  core::LiveCount live;
  Dialback dialback(config, io.get_executor(), time, keys, connector, router, admission, live,
                    nullptr);
  connector.set_methods({&sasl, &dialback});
  report.lines.push_back("checking federation from " + local + " to " + remote);
  bool done = false;
  auto body = [&]() -> asio::awaitable<void> {
    ConnectRequest request{local, remote};
    Connected c = co_await connector.connect(std::move(request), {});
    if (c.outcome.ok()) {
      report.ok = true;
      report.lines.push_back("OK: a test stream authenticated with " + c.method);
      c.channel->send(stream::kStreamEnd);
      co_await c.channel->close_gracefully();
    } else {
      report.lines.push_back("FAILED (" + std::string(to_string(*c.outcome.failure)) +
                             "): " + c.outcome.text);
    }
    done = true;
  };
  asio::co_spawn(io, body(), asio::detached);
  io.run_for(config.s2s.connect_timeout + std::chrono::seconds(5));
  if (!done) report.lines.push_back("FAILED: no answer within the connect timeout");
  return report;
}

}  // namespace waddle::s2s
