// Health of an outbound stream: closed after idle_timeout without traffic either way; after
// ping_interval without anything read, a whitespace keepalive and an XEP-0199 ping; a ping
// unanswered for another ping_interval means the stream is dead, and it is closed so that
// the link reconnects.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <string>

#include "core/duration.h"
#include "s2s/link.h"

namespace waddle::metrics {
struct S2sMetrics;
}

namespace waddle::s2s {

class Watchdog {
 public:
  Watchdog(TimeSource& time, core::Duration idle, core::Duration ping, metrics::S2sMetrics* metrics)
      : time_(time), idle_(idle), ping_(ping), metrics_(metrics) {}

  // Watches `out` while `link` uses it; link.watchdog is the wait to cancel when it ends.
  boost::asio::awaitable<void> run(std::shared_ptr<Link> link, std::shared_ptr<OutboundStream> out);
  // An IQ result or error that answers one of our pings: consumed (true), and its round
  // trip recorded.
  bool consume_reply(const xml::Element& stanza, const std::string& remote, const LinkTable& links);

 private:
  TimeSource& time_;
  core::Duration idle_;
  core::Duration ping_;
  metrics::S2sMetrics* metrics_;
};

}  // namespace waddle::s2s
