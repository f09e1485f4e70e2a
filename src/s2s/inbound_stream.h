// One accepted server stream (RFC 6120 §4, receiving side): the stream header and features,
// STARTTLS, the authentication methods' elements, and then stanzas, each checked against the
// pairs authenticated on this stream (anti-spoofing) and the rate limits before it goes to
// the router.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/connection_gate.h"
#include "core/errors.h"
#include "core/live_count.h"
#include "metrics/metrics.h"
#include "s2s/sm.h"
#include "xml/element.h"
#include "xml/parser.h"

namespace waddle::net {
class TlsContexts;
}
namespace waddle::router {
class Flow;
class Router;
}  // namespace waddle::router
namespace waddle::stream {
class XmlStream;
}

namespace waddle::s2s {

class Admission;
class Authenticator;
class RateLimits;
class StreamChannel;
class TimeSource;
class Timer;

// What inbound streams use of the service.
struct InboundContext {
  const core::Config& config;
  boost::asio::any_io_executor executor;
  router::Router& router;
  net::TlsContexts& tls;
  const Admission& admission;
  RateLimits& limits;
  TimeSource& time;
  core::LiveCount& live;  // streams, links and verification streams alive
  metrics::S2sMetrics* metrics;
  std::vector<Authenticator*> methods;  // offered in this order
  // Every stanza from `remote` to `local` is shown to the pool first: it shows the peer is
  // alive, and one answering one of the pool's pings is consumed there (true), not routed.
  std::function<bool(const xml::Element&, const std::string& local, const std::string& remote)>
      from_peer;
};

class InboundStream : public std::enable_shared_from_this<InboundStream> {
 public:
  enum class State {
    kTlsHandshake,    // on the direct TLS port (XEP-0368), before anything else
    kAwaitingHeader,  // before the stream header, and again after STARTTLS or SASL success
    kOpen,            // header answered with features: negotiation elements and stanzas
    kClosing,         // the closing tag was sent or received: nothing more is read
    kEnded,  // run() has finished and accounted for the stream; late answers change nothing
  };

  // `unauthenticated` counts the connection among the unauthenticated ones until a pair
  // authenticates on it.
  InboundStream(InboundContext& ctx, std::shared_ptr<stream::XmlStream> stream, bool direct_tls,
                core::ConnectionGate::Ticket unauthenticated = {});

  // Reads the stream until it ends, then closes it (after a bounded flush).
  boost::asio::awaitable<void> run();

  State state() const { return state_; }
  const std::string& local() const { return local_; }  // the 'to' of the current header
  const std::string& peer() const { return peer_; }    // the 'from' of the current header
  const std::string& stream_id() const { return stream_id_; }
  bool closing() const { return state_ == State::kClosing || state_ == State::kEnded; }
  // The peer's certificate is valid for the domain its header names.
  bool cert_valid_for_peer() const { return cert_valid_for_peer_; }
  // The method that first authenticated a pair on this stream; empty before.
  const std::string& authenticated_with() const { return method_; }
  // (local, remote) pairs authenticated on this stream.
  const std::set<std::pair<std::string, std::string>>& pairs() const { return pairs_; }
  stream::XmlStream& stream() { return *stream_; }
  std::shared_ptr<StreamChannel> channel() const { return channel_; }
  // The peer's domain for logs, or its address before it named one.
  std::string who() const;
  // The metrics label for something `domain` did on this stream: the domain once it has
  // authenticated here, metrics::kUnauthenticated before (docs/security.md "Work").
  std::string_view label(std::string_view domain) const;

  void send(std::string_view bytes);
  // `remote` has proven itself, for `local`, with `method` (counted in the metrics as
  // `counted_as`): its stanzas to `local` may flow.
  void authenticated(const std::string& local, const std::string& remote, std::string_view method,
                     metrics::AuthMethod counted_as);
  // SASL success: the peer opens a new stream on the same connection.
  void restart();
  // Sends the stream error (after a stream header when none was sent yet) and the closing
  // tag; reading stops. `why` is the reason counted when the stream has ended.
  void close_with(core::StreamError error, std::string_view text = {},
                  metrics::CloseReason why = metrics::CloseReason::kError);
  // Server shutdown: system-shutdown, and the connection closed at once.
  void shutdown();

 private:
  boost::asio::awaitable<void> on_event(xml::StreamEvent ev);
  void on_header(const xml::StreamEvent& ev);
  void send_features();
  boost::asio::awaitable<void> on_starttls();
  void on_stanza(xml::Element e);
  // Routes a received stanza (counted for stream management; its source is this stream).
  void route(xml::Element e, bool consumed);
  // The queues this stream waited for have drained: the stanzas held meanwhile go on.
  void resume();
  // Routes held stanzas in order, while nothing holds this stream back (or all when `all`).
  void route_held(bool all);
  void on_sm(const xml::Element& e);
  void answer_owed_ack();
  // idle_timeout without a byte read: the stream is closed (kIdle).
  boost::asio::awaitable<void> watch_idle(std::shared_ptr<Timer> timer);

  InboundContext& ctx_;
  std::shared_ptr<stream::XmlStream> stream_;
  std::shared_ptr<StreamChannel> channel_;
  State state_;
  std::string local_;
  std::string peer_;
  std::string stream_id_;
  std::string method_;
  std::set<std::pair<std::string, std::string>> pairs_;
  bool cert_valid_for_peer_ = false;
  SmReceiver sm_;  // XEP-0198, when the peer enabled it on this stream
  core::ConnectionGate::Ticket unauthenticated_;  // until a pair authenticates
  // Backpressure (router/flow.h): while a queue that this stream's stanzas filled drains,
  // further stanzas are held here, in order (up to kReadAhead bytes, then reading stops) and
  // negotiation elements (dialback, acknowledgements) are still handled.
  struct Held {
    xml::Element stanza;
    bool consumed;      // an answer to our ping, already taken: only counted when its turn comes
    std::size_t bytes;  // read for it
  };
  std::shared_ptr<router::Flow> flow_;
  std::deque<Held> held_;
  std::size_t held_bytes_ = 0;
  Timer* resume_ = nullptr;                      // run()'s wait while the read-ahead is full
  std::chrono::steady_clock::duration pause_{};  // set when the peer is over its rates
  std::uint64_t bytes_charged_ = 0;              // bytes read up to the last stanza's charge
  std::string counted_domain_;                   // the domain this stream counts for in the metrics
  // The stanzas-received series of the last sending domain (found again when it changes).
  std::string received_domain_;
  metrics::Counter* received_metric_ = nullptr;
  // Why it ended: the peer's doing unless we closed it (close_with, or a failure here).
  metrics::CloseReason close_reason_ = metrics::CloseReason::kPeer;
};

}  // namespace waddle::s2s
