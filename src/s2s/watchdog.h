// Health of an outbound stream: closed after idle_timeout without traffic either way; after
// ping_interval without anything read, a whitespace keepalive and an XEP-0199 ping; when
// nothing at all has been read for another ping_interval after the ping was written (behind a
// backlog, that is later than it was sent), the stream is dead, and it is closed so that the
// link reconnects. So is one whose backlog does not move at all for stall_limit().
#pragma once

#include <algorithm>
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
  // How long a ping may wait behind a backlog that does not move at all before the link is
  // dead: ping_interval, but at least a minute. The progress seen moves in steps: a full
  // socket only takes more once the peer has read about half of what is buffered there
  // (megabytes at a paced peer's rate: seconds).
  core::Duration stall_limit() const { return std::max<core::Duration>(ping_, kMinStallLimit); }
  static constexpr core::Duration kMinStallLimit = std::chrono::seconds(60);

  TimeSource& time_;
  core::Duration idle_;
  core::Duration ping_;
  metrics::S2sMetrics* metrics_;
};

}  // namespace waddle::s2s
