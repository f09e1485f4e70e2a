// An accepted server stream; see inbound_stream.h.
#include "s2s/inbound_stream.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "core/ids.h"
#include "core/jid.h"
#include "metrics/metrics.h"
#include "net/listen.h"
#include "net/tls.h"
#include "router/flow.h"
#include "router/router.h"
#include "s2s/admission.h"
#include "s2s/auth.h"
#include "s2s/authenticator.h"
#include "s2s/channel.h"
#include "s2s/failure.h"
#include "s2s/rate_limit.h"
#include "s2s/time_source.h"
#include "s2s/wire.h"
#include "stream/negotiation.h"
#include "stream/receiving.h"
#include "stream/xml_stream.h"
#include "xml/stanza.h"

namespace waddle::s2s {
namespace asio = boost::asio;
using core::StreamError;
using xml::Element;

namespace {
// How much a stream that waits for a full queue is read ahead (stanzas held, in bytes read):
// enough for the dialback and acknowledgement elements behind the stanzas to get through.
constexpr std::size_t kReadAhead = 1 << 20;
// How many times the reader lets work that its last stanza left for later run first (each
// turn runs everything posted before it; the bound only guards against work that re-posts).
constexpr int kYieldsForLater = 8;
}  // namespace

InboundStream::InboundStream(InboundContext& ctx, std::shared_ptr<stream::XmlStream> stream,
                             bool direct_tls, core::ConnectionGate::Ticket unauthenticated)
    : ctx_(ctx),
      stream_(stream),
      channel_(std::make_shared<StreamChannel>(stream)),
      state_(direct_tls ? State::kTlsHandshake : State::kAwaitingHeader),
      unauthenticated_(std::move(unauthenticated)) {}

std::string InboundStream::who() const {
  return peer_.empty() ? stream_->remote_address() : peer_;
}

std::string_view InboundStream::label(std::string_view domain) const {
  for (const auto& pair : pairs_)
    if (pair.second == domain) return domain;
  return metrics::kUnauthenticated;
}

void InboundStream::send(std::string_view bytes) {
  stream_->send(bytes);
}

asio::awaitable<void> InboundStream::run() {
  // Unless a pair authenticated within handshake_timeout, the stream is closed.
  asio::steady_timer deadline(ctx_.executor);
  stream::arm_handshake_deadline(
      deadline, ctx_.config.s2s.handshake_timeout, [self = shared_from_this()] {
        if (!self->pairs_.empty()) return;
        self->close_with(StreamError::kConnectionTimeout);
        // The error is written before the socket closes (bounded).
        net::spawn_logged(self->ctx_.executor, stream::close_stream(self->stream_),
                          "s2s handshake timeout");
      });
  std::shared_ptr<Timer> idle = ctx_.time.make_timer();
  net::spawn_logged(ctx_.executor, watch_idle(idle), "s2s inbound idle");
  auto pause_timer = ctx_.time.make_timer();
  auto resume_timer = ctx_.time.make_timer();
  resume_ = resume_timer.get();
  flow_ = std::make_shared<router::Flow>([weak = weak_from_this(), ex = ctx_.executor] {
    asio::post(ex, [weak] {
      if (auto self = weak.lock()) self->resume();
    });
  });
  std::uint64_t bytes_seen = 0;
  if (state_ == State::kTlsHandshake) {
    const bool ok = co_await stream_->server_handshake();
    state_ = ok ? State::kAwaitingHeader : State::kClosing;
    if (!ok) {
      close_reason_ = metrics::CloseReason::kError;
      spdlog::info("s2s in ({}): direct TLS handshake failed: {}", stream_->remote_address(),
                   stream_->tls_error());
    }
  }
  try {
    while (state_ != State::kClosing && !stream_->closed()) {
      auto ev = co_await channel_->next();
      if (!ev) {
        if (auto err = channel_->read_error()) close_with(*err);
        break;
      }
      co_await on_event(std::move(*ev));
      // What routing left for later (a room's answers) is routed before the next stanza, so
      // that a queue it fills holds this stream back in time.
      for (int i = 0; i < kYieldsForLater && flow_->pending() > 0; ++i)
        co_await asio::post(ctx_.executor, asio::use_awaitable);
      // Backpressure, never loss: a domain over its stanza or byte rate, or all S2S traffic
      // over the bandwidth limit, is simply read more slowly.
      auto pause = std::exchange(pause_, {});
      if (ctx_.limits.bandwidth_limited())
        pause = std::max(
            pause, ctx_.limits.bandwidth_pause(stream_->bytes_in() - bytes_seen, ctx_.time.now()));
      bytes_seen = stream_->bytes_in();
      if (pause > Clock::duration::zero())
        co_await pause_timer->wait_until(ctx_.time.now() + pause);
      // Backpressure: a queue this stream filled has not drained yet, and enough is held.
      while (held_bytes_ >= kReadAhead && !closing() && !stream_->closed())
        co_await resume_timer->wait_until(Clock::time_point::max());
    }
  } catch (const std::exception& e) {
    spdlog::error("s2s in: {}", e.what());
    close_with(StreamError::kInternalServerError);
  }
  deadline.cancel();
  idle->cancel();
  route_held(true);  // received, so handled: queued beyond the limit or bounced, never dropped
  resume_ = nullptr;
  co_await channel_->close_gracefully();
  state_ = State::kEnded;  // a verification still in flight must not count it as opened
  if (const auto why = channel_->write_limit(); !why.empty()) {
    close_reason_ = metrics::CloseReason::kError;  // the peer does not read our answers
    if (ctx_.metrics)
      ctx_.metrics->write_limit(!counted_domain_.empty() ? counted_domain_ : who(),
                                metrics::Direction::kIn, why);
  }
  if (ctx_.metrics) {
    if (!counted_domain_.empty())
      ctx_.metrics->connection_closed(counted_domain_, metrics::Direction::kIn);
    ctx_.metrics->stream_closed(
        !counted_domain_.empty() ? std::string_view(counted_domain_) : metrics::kUnauthenticated,
        metrics::Direction::kIn, close_reason_);
  }
  spdlog::info("s2s in {} ({}): stream closed{}", peer_, stream_->remote_address(),
               stream_->end_reason().empty() ? std::string() : " (" + stream_->end_reason() + ")");
}

asio::awaitable<void> InboundStream::on_event(xml::StreamEvent ev) {
  if (ev.kind == xml::StreamEvent::Kind::kStreamClose) {
    state_ = State::kClosing;
    route_held(true);
    // What was handled is acknowledged before the close (XEP-0198 §4).
    if (sm_.enabled()) send(wire::sm_answer(sm_.handled()));
    send(stream::kStreamEnd);
    co_return;
  }
  if (ev.kind == xml::StreamEvent::Kind::kStreamOpen) {
    on_header(ev);
    co_return;
  }
  Element& e = ev.element;
  if (state_ == State::kAwaitingHeader) {
    close_with(StreamError::kNotAuthorized);
    co_return;
  }
  if (e.is("starttls", ns::kTls)) {
    co_await on_starttls();
    co_return;
  }
  if (e.is("error", ns::kStream)) {
    // RFC 6120 §4.9: the peer is closing; record why, answer with the closing tag only.
    report(ctx_.metrics, label(counted_domain_), Failure::kStreamError,
           "stream error from " + who() + ": " + wire::describe_stream_error(e));
    state_ = State::kClosing;
    send(stream::kStreamEnd);
    co_return;
  }
  if (!stream_->tls_active()) {
    close_with(StreamError::kPolicyViolation, "STARTTLS is required");
    co_return;
  }
  if (e.ns() == ns::kSm) {
    on_sm(e);
    co_return;
  }
  for (Authenticator* method : ctx_.methods) {
    if (method->handles(e)) {
      method->handle(shared_from_this(), std::move(e));
      co_return;
    }
  }
  if (xml::stanza_kind(e) == xml::StanzaKind::kOther || e.ns() != ns::kServer) {
    close_with(StreamError::kUnsupportedStanzaType);
    co_return;
  }
  on_stanza(std::move(e));
}

void InboundStream::on_header(const xml::StreamEvent& ev) {
  const Element& h = ev.element;
  auto to = core::nameprep_domain(h.attr("to"));
  auto from = core::nameprep_domain(h.attr("from"));
  local_ = to ? *to : std::string();
  peer_ = from ? *from : std::string();
  if (!h.is("stream", ns::kStream) || ev.default_ns != ns::kServer) {
    close_with(StreamError::kInvalidNamespace);
    return;
  }
  if (!to || !ctx_.router.is_local(*to)) {
    local_.clear();
    close_with(StreamError::kHostUnknown, "This server does not serve that domain");
    return;
  }
  if (from && !ctx_.admission.allows(*from)) {
    report(ctx_.metrics, metrics::kUnauthenticated, Failure::kPolicy,
           "inbound stream from " + *from + " refused by policy");
    close_with(StreamError::kPolicyViolation, "Federation with your domain is not allowed",
               metrics::CloseReason::kPolicy);
    return;
  }
  cert_valid_for_peer_ = from && stream_->tls_active() && stream_->peer_chain_valid() &&
                         certificate_matches_domain(stream_->peer_certificate(), *from);
  stream_id_ = core::random_hex(12);
  send(stream::server_header(local_, peer_, stream_id_));
  state_ = State::kOpen;
  send_features();
}

// RFC 6120 §4.3.2: STARTTLS (required) first; then every authentication method's offer.
void InboundStream::send_features() {
  Element features = stream::stream_features();
  if (!stream_->tls_active()) {
    stream::offer_starttls(features);
  } else {
    for (const Authenticator* method : ctx_.methods) method->offer(features, *this);
    // Stream management (XEP-0198) where it lasts for the rest of the connection: not on a
    // stream that SASL is about to restart (the peer may enable it as soon as it reads the
    // offer, and its count would outlive the stream).
    if (!pairs_.empty() || !features.child("mechanisms", ns::kSasl))
      features.add_child(wire::sm_feature());
  }
  send(features.str(""));
}

asio::awaitable<void> InboundStream::on_starttls() {
  if (stream_->tls_active()) {
    close_with(StreamError::kPolicyViolation, "TLS is already active");
    co_return;
  }
  // COMPAT(Prosody 0.12): no SNI on STARTTLS; the header's 'to' names our domain.
  const bool ok = co_await stream::accept_starttls(*stream_, channel_->reader(),
                                                   ctx_.tls.s2s_server_for(local_));
  if (!ok) {  // (the connection is closed)
    report(ctx_.metrics, metrics::kUnauthenticated, Failure::kTls,
           "inbound TLS handshake failed (" + who() + "): " + stream_->tls_error());
    state_ = State::kClosing;
    close_reason_ = metrics::CloseReason::kError;
    co_return;
  }
  stream_id_.clear();
  state_ = State::kAwaitingHeader;
}

void InboundStream::on_stanza(Element e) {
  auto from = core::Jid::parse(e.attr("from"));
  auto to = core::Jid::parse(e.attr("to"));
  if (!from || !to) {
    close_with(StreamError::kImproperAddressing, "Stanzas need valid 'from' and 'to'");
    return;
  }
  if (!ctx_.router.is_local(to->domain())) {
    close_with(StreamError::kHostUnknown, to->domain() + " is not served here");
    return;
  }
  // The specification's SpoofedFrom: only domains authenticated on this stream, for the
  // local domain they were authenticated with.
  if (!pairs_.contains({to->domain(), from->domain()})) {
    report(ctx_.metrics, label(counted_domain_), Failure::kStreamError,
           "spoofed or unauthenticated 'from' " + from->domain() + " on a stream from " + who());
    close_with(StreamError::kInvalidFrom);
    return;
  }
  const std::size_t bytes = stream_->bytes_in() - bytes_charged_;
  const auto rate = ctx_.limits.stanza(from->domain(), bytes, ctx_.time.now());
  bytes_charged_ = stream_->bytes_in();
  if (rate.disconnect) {  // only when the operator set disconnect_when_paced_for
    report(ctx_.metrics, from->domain(), Failure::kRateLimit, "paced for too long");
    close_with(StreamError::kPolicyViolation, "Stanza rate limit exceeded for too long",
               metrics::CloseReason::kRateLimit);
    return;
  }
  // Over a rate: the stanza is still delivered, and reading this stream pauses.
  pause_ = rate.pause;
  if (ctx_.metrics) {
    if (!received_metric_ || received_domain_ != from->domain()) {
      received_domain_ = from->domain();
      received_metric_ = &ctx_.metrics->received(received_domain_);
    }
    received_metric_->inc();
  }
  const bool consumed = ctx_.from_peer && ctx_.from_peer(e, to->domain(), from->domain());
  if (!held_.empty() || flow_->paused()) {  // waiting for a queue to drain: in order, later
    held_bytes_ += bytes;
    held_.push_back({std::move(e), consumed, bytes});
    return;
  }
  route(std::move(e), consumed);
  if (flow_->paused() && ctx_.metrics) ctx_.metrics->held_back(from->domain());
}

void InboundStream::route(Element e, bool consumed) {
  // With stream management, the stanza counts as handled once routing (and any work it
  // left running, such as storing it offline) is done.
  auto handling = sm_.scope();
  if (consumed) return;
  router::Flow::Scope source(*flow_);
  ctx_.router.route(std::move(e));
}

void InboundStream::route_held(bool all) {
  while (!held_.empty() && (all || !flow_->paused())) {
    Held h = std::move(held_.front());
    held_.pop_front();
    held_bytes_ -= h.bytes;
    route(std::move(h.stanza), h.consumed);
  }
}

void InboundStream::resume() {
  if (state_ == State::kEnded) return;
  route_held(false);
  // A held stanza may have filled a queue again.
  if (flow_->paused() && ctx_.metrics && !counted_domain_.empty())
    ctx_.metrics->held_back(counted_domain_);
  if (resume_ && held_bytes_ < kReadAhead) resume_->cancel();  // reading goes on
}

// XEP-0198 as the receiving server: <enable/> (on any TLS-protected stream: a peer may send
// it as soon as it has read the offer, before its dialback key is checked), then <r/>
// answered with what has been handled. Resumption is not offered on server links.
void InboundStream::on_sm(const Element& e) {
  if (e.name() == "enable") {
    if (sm_.enabled()) {
      send(wire::sm_failed("unexpected-request"));
      return;
    }
    sm_.enable();
    sm_.handling().on_progress([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->answer_owed_ack();
    });
    send(wire::sm_enabled());
    if (ctx_.metrics) ctx_.metrics->sm_enabled(label(counted_domain_), metrics::Direction::kIn);
    return;
  }
  if (e.name() == "r" && sm_.enabled()) {
    if (auto h = sm_.request()) send(wire::sm_answer(*h));
  }
  // <a/> (we send no stanzas on this stream) and anything else: nothing to do.
}

void InboundStream::answer_owed_ack() {
  if (closing()) return;
  if (auto h = sm_.answer_due()) send(wire::sm_answer(*h));
}

void InboundStream::authenticated(const std::string& local, const std::string& remote,
                                  std::string_view method, metrics::AuthMethod counted_as) {
  if (state_ == State::kEnded) return;
  if (pairs_.empty()) {  // no longer an unauthenticated connection: full limits from now on
    unauthenticated_.release();
    stream_->set_max_stanza_size(ctx_.config.s2s.max_stanza_size);
  }
  pairs_.insert({local, remote});
  if (method_.empty()) method_ = std::string(method);
  if (ctx_.metrics)
    ctx_.metrics->authenticated(remote, metrics::Direction::kIn, counted_as,
                                stream_->tls_description());
  if (!counted_domain_.empty()) return;
  counted_domain_ = remote;
  if (ctx_.metrics) ctx_.metrics->connection_opened(remote, metrics::Direction::kIn);
}

void InboundStream::restart() {
  sm_ = SmReceiver();  // a new stream: stream management starts over
  channel_->restart();
  stream_id_.clear();
  state_ = State::kAwaitingHeader;
}

void InboundStream::close_with(StreamError error, std::string_view text, metrics::CloseReason why) {
  if (closing()) return;
  const bool header_sent = state_ == State::kOpen;
  state_ = State::kClosing;
  close_reason_ = why;
  spdlog::info("s2s in {} ({}): closing with {}{}{}", peer_.empty() ? "?" : peer_,
               stream_->remote_address(), core::to_string(error), text.empty() ? "" : ": ", text);
  // Stanzas held for a full queue are routed first (never dropped), so the last
  // acknowledgement covers them; and a read parked on the read ahead stops waiting.
  route_held(true);
  if (resume_) resume_->cancel();
  if (header_sent && sm_.enabled()) send(wire::sm_answer(sm_.handled()));
  std::string header;  // an error needs a stream to be in
  if (!header_sent) {
    stream_id_ = core::random_hex(12);
    header = stream::server_header(local_, peer_, stream_id_);
  }
  send(stream::stream_error_close(error, text, header));
}

void InboundStream::shutdown() {
  close_with(StreamError::kSystemShutdown, {}, metrics::CloseReason::kShutdown);
  stream_->close();
}

}  // namespace waddle::s2s
