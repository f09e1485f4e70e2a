// The outbound pool: one link per (local, remote) pair, each with a bounded queue while its
// stream is being set up. A link multiplexes on another local domain's stream to the same
// peer when it can (multiplex.h), otherwise it dials through the connector, retrying with
// the retry policy; when that gives up, the queue bounces with the failure's condition and
// text. An established link is read (stream errors, dialback answers) and watched
// (watchdog.h) until it closes, and reconnects if stanzas arrived meanwhile.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "core/config.h"
#include "core/live_count.h"
#include "s2s/attempts.h"
#include "s2s/connector.h"
#include "s2s/link.h"
#include "s2s/multiplex.h"
#include "s2s/watchdog.h"

namespace waddle::metrics {
struct S2sMetrics;
}
namespace waddle::router {
class Router;
}

namespace waddle::s2s {

class Admission;
struct Refusal;
class DialbackKeys;

class Pool {
 public:
  // Timing (connect_timeout, retry, idle_timeout, ping_interval) comes from `config`; the
  // limits from `admission`. Bounces go through `router`.
  // Each link that is connecting or connected (a retry waiting included) counts in `live`.
  Pool(const core::S2sConfig& config, boost::asio::any_io_executor ex, TimeSource& time,
       Connector& connector, router::Router& router, const Admission& admission,
       const DialbackKeys& keys, core::LiveCount& live, metrics::S2sMetrics* metrics);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // A stanza from a local domain for a remote one: written, queued, or bounced. With
  // `shared` (its serialisation shared by the recipients of a fan-out, Router::fan_out), a
  // stanza written at once is written as shared->head(to) + *shared->tail.
  void send(xml::Element stanza, const xml::SharedStanza* shared = nullptr);
  // A stanza from `remote` to `local` on an inbound stream: the peer is alive (the answer to
  // a ping of ours may be queued behind what it is sending us); one answering one of our
  // pings is consumed (true).
  bool from_peer(const xml::Element& stanza, const std::string& local, const std::string& remote);
  // After a policy reload: streams to domains no longer allowed close (policy-violation).
  void close_disallowed();
  // Shutdown: streams end with their closing tag after what was written, queued stanzas
  // bounce, connection attempts and retries are abandoned.
  void stop();

 private:
  boost::asio::awaitable<void> drive(std::shared_ptr<Link> link);
  boost::asio::awaitable<bool> join_shared(std::shared_ptr<Link> link);
  boost::asio::awaitable<Connected> dial(std::shared_ptr<Link> link);
  boost::asio::awaitable<void> use(std::shared_ptr<Link> link, Connected connected);
  boost::asio::awaitable<void> serve(std::shared_ptr<Link> link);
  void write(Link& link, xml::Element stanza, const xml::SharedStanza* shared = nullptr);
  void write_queue(Link& link);
  std::shared_ptr<Link> link_for(const LinkKey& key);
  // Stream management on an outbound stream (pool_acks.cpp).
  void enable_sm(const std::shared_ptr<OutboundStream>& out, const std::string& remote);
  boost::asio::awaitable<void> request_acks(std::shared_ptr<OutboundStream> out,
                                            std::string remote);
  void request_ack(OutboundStream& out);
  // An element of the stream management namespace read on `out`: false when the stream is
  // to end (the peer acknowledged more than was sent).
  bool on_sm(OutboundStream& out, const std::string& remote, const xml::Element& e);
  void resend_unacked(OutboundStream& out, const std::string& remote);
  // Stanzas of an ended stream that go out again on their link (bounced when refused).
  void requeue(std::deque<std::string> rest, const std::string& remote);
  // Write bounds on outbound streams (pool_limits.cpp): stanzas not yet written are kept
  // (without stream management), too many unacknowledged ones fail the link over, and a
  // stream dropped at a bound makes its link retry within the retry policy.
  void keep_unwritten(OutboundStream& out, std::string bytes);
  void check_unacked(OutboundStream& out, const std::string& remote);
  void fail_over(OutboundStream& out, const std::string& remote, std::string_view reason,
                 const std::string& text);
  void after_stream(Link& link, OutboundStream& out);
  // Ends a stream we no longer want, `last` (a stream error, or nothing) before the closing
  // tag: with stream management, asks for a last acknowledgement and reads on until the peer
  // closes too (bounded), so that what it handled is neither sent again nor bounced.
  void end_stream(const std::shared_ptr<OutboundStream>& out, std::string last = {});
  boost::asio::awaitable<void> close_after_grace(std::shared_ptr<OutboundStream> out);
  void bounce_queue(Link& link, Failure f, const std::string& text);
  // A stanza refused before it was queued: bounced, and counted as bounced.
  void refuse(const xml::Element& stanza, const std::string& remote, const Refusal& why);
  std::size_t streams_to(const std::string& remote) const;

  const core::S2sConfig& config_;
  boost::asio::any_io_executor ex_;
  TimeSource& time_;
  Connector& connector_;
  router::Router& router_;
  const Admission& admission_;
  const DialbackKeys& keys_;
  core::LiveCount& live_;
  metrics::S2sMetrics* metrics_;
  LinkTable links_;
  AttemptGroup attempts_;
  Multiplexer multiplex_;
  Watchdog watchdog_;
  bool stopping_ = false;
  std::minstd_rand jitter_;  // spreads retries (not security-relevant)
};

}  // namespace waddle::s2s
