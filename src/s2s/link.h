// The pool's records: a Link per (local, remote) pair with its queue, and the authenticated
// outbound stream it uses, which several local domains share when they multiplex on it
// (XEP-0220 §2.6).
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "metrics/metrics.h"
#include "router/flow.h"
#include "s2s/channel.h"
#include "s2s/sm.h"
#include "s2s/time_source.h"
#include "xml/element.h"

namespace waddle::s2s {

struct OutboundStream {
  std::shared_ptr<Channel> channel;
  std::string method;  // how the pair that opened it authenticated
  bool cert_valid = false;
  std::string stream_id;       // the dialback keys of multiplexed domains are bound to it
  bool multiplexable = false;  // dialback with errors offered: other local domains may join
  bool done = false;           // the stream has ended
  bool ending = false;         // we sent our closing tag (Pool::end_stream)
  Clock::time_point last_activity;
  // Multiplexing requests awaiting the peer's answer, by local domain: (accepted, why).
  std::map<std::string, std::function<void(bool, std::string)>> waiting;
  std::unique_ptr<Timer> closed;  // its wait ends (cancelled) when the stream ends
  SmSender sm;                    // XEP-0198, when the peer offers it
  // When the peer last acknowledged a stanza (or, before any, when the unacknowledged ones
  // first went over s2s.max_unacked / max_unacked_bytes): Pool::check_unacked.
  Clock::time_point last_ack{};
  Timer* ack_timer = nullptr;  // the wait before asking for an acknowledgement
  // Without stream management: stanzas handed to the channel and not yet written to the
  // socket (as written), each with the channel's bytes_sent() once queued; queued again for
  // the next link when the stream ends before they are written.
  std::deque<std::pair<std::uint64_t, std::string>> unwritten;
  std::string failed;  // why the link failed over (a write bound: "stalled", ...), or empty

  bool usable() const { return channel && !channel->closed() && !done; }
};

struct Link {
  enum class State { kIdle, kConnecting, kReady };

  Link(std::string l, std::string r) : local(std::move(l)), remote(std::move(r)) {}

  const std::string local, remote;
  std::deque<xml::Element> queue;  // stanzas waiting for the stream
  // Inbound streams whose stanzas took the queue over queue_size wait until it drains.
  router::Congestion congestion;
  State state = State::kIdle;
  std::shared_ptr<OutboundStream> out;  // while ready
  Clock::time_point last_activity;      // last stanza written
  Clock::time_point last_rx;            // last bytes read
  std::optional<Clock::time_point> ping_sent;
  std::uint64_t ping_position = 0;                // the channel's bytes_sent() after the ping
  std::optional<Clock::time_point> ping_written;  // when the watchdog saw it written
  std::uint64_t written = 0;                      // the channel's bytes_written() last seen
  Clock::time_point written_at;                   // when that last grew
  Clock::time_point checked_at;                   // the watchdog's last look
  std::string ping_id;
  bool dialing = false;          // opening a stream of its own (DNS, TCP, TLS, authentication)
  std::unique_ptr<Timer> retry;  // the wait before the next attempt
  Timer* watchdog = nullptr;     // the watchdog's wait, ended early when the stream ends
  // Set when we end the stream (idle, unanswered ping, policy, shutdown); otherwise its end
  // counts as the peer's doing, or as an error when the peer's input was refused.
  std::optional<metrics::CloseReason> close_reason;
  // Its last stream was dropped at a write bound (the peer did not read, or did not
  // acknowledge): the next stream counts as a retry (pool_limits.cpp).
  std::optional<std::string> write_failure;
  // The series counted for every stanza written (Pool::write), found once per link.
  metrics::Counter* sent_metric = nullptr;
  metrics::Gauge* unacked_metric = nullptr;

  bool ready() const { return state == State::kReady && out && out->usable(); }
};

using LinkKey = std::pair<std::string, std::string>;  // (local, remote)
using LinkTable = std::map<LinkKey, std::shared_ptr<Link>>;

}  // namespace waddle::s2s
