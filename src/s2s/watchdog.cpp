// Idle close and pings of outbound streams; see watchdog.h.
#include "s2s/watchdog.h"

#include <spdlog/spdlog.h>

#include "core/ids.h"
#include "core/jid.h"
#include "metrics/metrics.h"
#include "s2s/failure.h"
#include "s2s/wire.h"
#include "stream/negotiation.h"

namespace waddle::s2s {
namespace asio = boost::asio;

namespace {
constexpr std::string_view kPingIdPrefix = "waddle-s2s-ping-";
// How often a ping still behind what was sent before it is checked for having been written.
constexpr auto kWrittenCheck = std::chrono::milliseconds(250);
}  // namespace

asio::awaitable<void> Watchdog::run(std::shared_ptr<Link> link,
                                    std::shared_ptr<OutboundStream> out) {
  std::unique_ptr<Timer> timer = time_.make_timer();
  link->watchdog = timer.get();
  Channel& ch = *out->channel;
  while (!ch.closed() && link->out == out) {
    const auto now = time_.now();
    link->last_activity = std::max(link->last_activity, out->last_activity);
    if (now - link->last_activity >= idle_ && now - link->last_rx >= idle_) {
      spdlog::info("s2s {} -> {}: idle for {}, closing", link->local, link->remote,
                   core::format_duration(idle_));
      link->close_reason = metrics::CloseReason::kIdle;
      ch.send(stream::kStreamEnd);
      co_await ch.close_gracefully();
      break;
    }
    // A ping behind a large backlog is only waited for once it has been written; and a link
    // from which anything at all is read (acknowledgements, the ping's answer) is alive.
    // But a backlog that does not move at all for ping_interval is a dead link too (or a
    // peer that has stopped reading).
    // Time this server was too busy to write (the watchdog woke late) does not count.
    const bool late = now - link->checked_at > 2 * kWrittenCheck;
    link->checked_at = now;
    if (ch.bytes_written() != link->written || late) {
      link->written = ch.bytes_written();
      link->written_at = now;
    }
    if (link->ping_sent && !link->ping_written && link->written >= link->ping_position)
      link->ping_written = now;
    const bool unanswered =
        link->ping_written && now - std::max(*link->ping_written, link->last_rx) >= ping_;
    const bool stalled = link->ping_sent && !link->ping_written &&
                         now - std::max(link->written_at, *link->ping_sent) >= stall_limit();
    if (unanswered || stalled) {
      report(metrics_, link->remote, Failure::kTimeout,
             unanswered
                 ? "no answer to a ping in " + core::format_duration(ping_) + ": replacing the link"
                 : "nothing could be written for " + core::format_duration(stall_limit()) +
                       ": replacing the link");
      link->close_reason = metrics::CloseReason::kPingTimeout;
      ch.close();
      break;
    }
    if (!link->ping_sent && now - link->last_rx >= ping_) {
      link->ping_id = std::string(kPingIdPrefix) + core::random_hex(12);
      link->ping_sent = now;
      link->ping_written.reset();
      ch.send(" ");  // whitespace keepalive, then an application-level ping
      xml::Element ping = wire::ping_element(link->ping_id, link->local, link->remote);
      std::string bytes = ping.str(ns::kServer);
      ch.send(bytes);
      link->ping_position = ch.bytes_sent();
      if (ch.bytes_written() >= link->ping_position) link->ping_written = now;
      // The peer counts the ping among the stanzas it acknowledges (XEP-0198): so do we.
      // (Sent again on a new link, it is only answered again.)
      if (out->sm.enabled()) {
        if (metrics_) metrics_->unacked(link->remote, 1);
        if (out->sm.sent(std::move(bytes)) != SmSender::Next::kNothing && out->ack_timer)
          out->ack_timer->cancel();  // the pool's acknowledgement requests wake up
      }
    }
    auto next =
        std::min({link->last_activity + idle_, link->last_rx + idle_,
                  !link->ping_sent     ? link->last_rx + ping_
                  : link->ping_written ? std::max(*link->ping_written, link->last_rx) + ping_
                                       : now + kWrittenCheck});
    co_await timer->wait_until(std::max(next, now + std::chrono::milliseconds(50)));
  }
  if (link->watchdog == timer.get()) link->watchdog = nullptr;
}

bool Watchdog::consume_reply(const xml::Element& stanza, const std::string& remote,
                             const LinkTable& links) {
  if (stanza.name() != "iq") return false;
  if (stanza.attr("type") != "result" && stanza.attr("type") != "error") return false;
  auto id = stanza.attr("id");
  if (id.substr(0, kPingIdPrefix.size()) != kPingIdPrefix) return false;
  auto to = core::Jid::parse(stanza.attr("to"));
  if (!to) return false;
  auto it = links.find(LinkKey(to->domain(), remote));
  if (it != links.end() && it->second->ping_id == id && it->second->ping_sent) {
    Link& link = *it->second;
    auto rtt = time_.now() - link.ping_written.value_or(*link.ping_sent);
    link.ping_sent.reset();
    link.ping_written.reset();
    if (metrics_) metrics_->ping_rtt(remote, rtt);
    link.last_rx = time_.now();
    spdlog::debug("s2s {} -> {}: ping round trip {} µs", to->domain(), remote,
                  std::chrono::duration_cast<std::chrono::microseconds>(rtt).count());
  }
  return true;
}

}  // namespace waddle::s2s
