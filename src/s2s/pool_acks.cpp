// The pool's side of stream management (XEP-0198) on outbound streams; see sm.h. Every stanza
// written after <enable/> is kept until acknowledged; an <r/> goes out after kRequestEvery
// unasked stanzas, or kAckDelay after the first; when the stream ends, what was not
// acknowledged is queued again, in order, for the next link to that domain (within the retry
// policy; bounced when it gives up).
#include <spdlog/spdlog.h>

#include "core/jid.h"
#include "core/namespaces.h"
#include "metrics/metrics.h"
#include "net/listen.h"
#include "router/router.h"
#include "s2s/admission.h"
#include "s2s/failure.h"
#include "s2s/pool.h"
#include "s2s/wire.h"
#include "stream/negotiation.h"
#include "xml/parser.h"
#include "xml/stanza.h"

namespace waddle::s2s {
namespace asio = boost::asio;
using xml::Element;

namespace {
// How long a stanza may wait before it is asked about, when fewer than kRequestEvery follow.
constexpr auto kAckDelay = std::chrono::milliseconds(250);
// How long a stream we are ending waits for the peer's last acknowledgement and closing tag.
constexpr auto kCloseGrace = std::chrono::seconds(2);
}  // namespace

void Pool::end_stream(const std::shared_ptr<OutboundStream>& out, std::string last) {
  if (out->ending || out->channel->closed()) return;
  out->ending = true;
  const bool await_ack = out->sm.enabled() && out->sm.unacked() > 0;
  if (await_ack) out->channel->send(wire::sm_request());
  out->channel->send(last + std::string(stream::kStreamEnd));
  if (await_ack)
    net::spawn_logged(ex_, close_after_grace(out), "s2s close");
  else
    net::spawn_logged(ex_, out->channel->close_gracefully(), "s2s close");
}

// The peer answers our closing tag with its last <a/> and its own closing tag, which ends the
// stream where it is read (serve()); one that does not is cut off after kCloseGrace.
asio::awaitable<void> Pool::close_after_grace(std::shared_ptr<OutboundStream> out) {
  core::LiveCount::Token alive = live_.enter();
  std::unique_ptr<Timer> timer = time_.make_timer();
  co_await timer->wait_until(time_.now() + kCloseGrace);
  if (!out->channel->closed()) co_await out->channel->close_gracefully();
}

void Pool::enable_sm(const std::shared_ptr<OutboundStream>& out, const std::string& remote) {
  out->channel->send(wire::sm_enable());
  out->sm.enable();  // stanzas written from here on are counted by the peer
  if (metrics_) metrics_->sm_enabled(remote, metrics::Direction::kOut);
  net::spawn_logged(ex_, request_acks(out, remote), "s2s acknowledgements");
}

void Pool::request_ack(OutboundStream& out) {
  out.channel->send(wire::sm_request());
  out.sm.requested();
}

// Asks for an acknowledgement kAckDelay after a stanza was written that no request covers
// yet; sleeps while there is none. write() and answers wake it (its timer is cancelled).
asio::awaitable<void> Pool::request_acks(std::shared_ptr<OutboundStream> out, std::string remote) {
  std::unique_ptr<Timer> timer = time_.make_timer();
  out->ack_timer = timer.get();
  while (out->usable() && out->sm.enabled()) {
    if (!out->sm.request_due()) {
      co_await timer->wait_until(Clock::time_point::max());
      continue;
    }
    const bool waited = co_await timer->wait_until(time_.now() + kAckDelay);
    if (waited && out->usable() && out->sm.request_due()) request_ack(*out);
  }
  out->ack_timer = nullptr;
  spdlog::debug("s2s -> {}: acknowledgement requests ended", remote);
}

bool Pool::on_sm(OutboundStream& out, const std::string& remote, const Element& e) {
  if (e.name() == "a") {
    const std::size_t before = out.sm.unacked();
    const auto h = wire::sm_h(e);
    auto error = h ? out.sm.acked(*h) : std::optional<std::string>("an <a/> without a valid 'h'");
    if (error) {
      report(metrics_, remote, Failure::kStreamError, "stream management: " + *error);
      out.channel->send(wire::sm_handled_count_too_high(h.value_or(0), out.sm.sent_count()) +
                        std::string(stream::kStreamEnd));
      return false;
    }
    if (out.sm.unacked() < before) out.last_ack = time_.now();
    if (metrics_) metrics_->unacked(remote, -static_cast<double>(before - out.sm.unacked()));
    if (out.sm.request_due() && out.ack_timer) out.ack_timer->cancel();  // more to ask about
  } else if (e.name() == "failed") {
    // The peer would not enable it: the link carries on without acknowledgements.
    spdlog::info("s2s -> {}: stream management refused, continuing without it", remote);
    if (metrics_) metrics_->unacked(remote, -static_cast<double>(out.sm.unacked()));
    out.sm.disable();
    if (out.ack_timer) out.ack_timer->cancel();
  } else if (e.name() == "r") {
    out.channel->send(wire::sm_answer(0));  // no stanzas are received on an outbound stream
  }
  return true;  // <enabled/>: counting started when <enable/> was sent
}

void Pool::resend_unacked(OutboundStream& out, const std::string& remote) {
  std::deque<std::string> rest = out.sm.take_unacked();
  if (rest.empty()) return;
  const auto refused = admission_.outbound(remote, stopping_);  // shutdown, policy
  if (metrics_) {
    metrics_->unacked(remote, -static_cast<double>(rest.size()));
    if (!refused) metrics_->resent(remote, rest.size());
  }
  spdlog::info("s2s -> {}: {} stanzas were not acknowledged when the stream ended; {}", remote,
               rest.size(), refused ? "bouncing them" : "sending them again on the next link");
  requeue(std::move(rest), remote);
}

// Stanzas of an ended stream, as written, to their links again (or bounced when refused).
void Pool::requeue(std::deque<std::string> rest, const std::string& remote) {
  const auto refused = admission_.outbound(remote, stopping_);  // shutdown, policy
  for (const std::string& bytes : rest) {
    // Kept as written; parsed again only now, on this rare path.
    std::optional<Element> parsed = xml::parse_element(bytes, ns::kServer);
    if (!parsed) {  // cannot happen: the bytes are this server's own serialisation
      spdlog::error("s2s -> {}: a stanza to send again could not be read back: {}", remote,
                    bytes.substr(0, 200));
      continue;
    }
    Element& stanza = *parsed;
    if (refused) {
      refuse(stanza, remote, *refused);
      continue;
    }
    // Its link (the pair multiplexed on this stream, or the one that opened it) queues it
    // again; the queue limit does not apply to stanzas already accepted once.
    auto from = core::Jid::parse(stanza.attr("from"));
    auto to = core::Jid::parse(stanza.attr("to"));
    if (!from || !to) continue;  // checked when first sent
    std::shared_ptr<Link> link = link_for(LinkKey(from->domain(), to->domain()));
    link->queue.push_back(std::move(stanza));
    if (metrics_) metrics_->queued(link->remote);
    if (link->state == Link::State::kIdle) {
      link->state = Link::State::kConnecting;
      net::spawn_logged(ex_, drive(link), "s2s link");
    }
  }
}

}  // namespace waddle::s2s
