// The outbound pool; see pool.h.
#include "s2s/pool.h"

#include <spdlog/spdlog.h>

#include <set>

#include "core/jid.h"
#include "metrics/metrics.h"
#include "net/listen.h"
#include "router/router.h"
#include "s2s/admission.h"
#include "s2s/dialback.h"
#include "s2s/policy.h"
#include "s2s/wire.h"
#include "stream/negotiation.h"
#include "xml/stanza.h"

namespace waddle::s2s {
namespace asio = boost::asio;
using xml::Element;

namespace {
// How far beyond queue_size a queue takes stanzas from sources that wait for it (flow.h).
constexpr std::size_t kOverflowFactor = 10;
}  // namespace

Pool::Pool(const core::S2sConfig& config, asio::any_io_executor ex, TimeSource& time,
           Connector& connector, router::Router& router, const Admission& admission,
           const DialbackKeys& keys, core::LiveCount& live, metrics::S2sMetrics* metrics)
    : config_(config),
      ex_(ex),
      time_(time),
      connector_(connector),
      router_(router),
      admission_(admission),
      keys_(keys),
      live_(live),
      metrics_(metrics),
      attempts_(ex, time, &config.max_connecting),
      multiplex_(links_, time, keys, config.connect_timeout),
      watchdog_(time, config.idle_timeout, config.ping_interval, metrics),
      jitter_(std::random_device{}()) {}

void Pool::send(Element stanza, const xml::SharedStanza* shared) {
  auto from = core::Jid::parse(stanza.attr("from"));
  auto to = core::Jid::parse(stanza.attr("to"));
  if (!from || !to) return;
  if (auto no = admission_.outbound(to->domain(), stopping_))
    return refuse(stanza, to->domain(), *no);
  if (!router_.is_local(from->domain())) return;  // never relay for other domains
  LinkKey key(from->domain(), to->domain());
  // One link per (local, remote) pair; max_connections_per_domain caps the streams one
  // remote domain gets, yet every local domain (virtual hosts, room services) may have one.
  if (!links_.contains(key)) {
    if (auto no = admission_.another_link(links_.size())) return refuse(stanza, to->domain(), *no);
    if (auto no = admission_.another_stream(to->domain(), streams_to(to->domain()),
                                            router_.hosted_domains().size()))
      return refuse(stanza, to->domain(), *no);
  }
  std::shared_ptr<Link> link = link_for(key);
  if (link->ready()) return write(*link, std::move(stanza), shared);
  if (auto no = admission_.enqueue(to->domain(), link->queue.size())) {
    // Over queue_size: a stanza from an inbound server stream is kept, and that stream waits
    // (is no longer read) until the queue drains; up to kOverflowFactor times the limit,
    // which one stanza's fan-out (a room's answers to a join) stays well within.
    if (link->queue.size() >= config_.queue_size * kOverflowFactor ||
        !router::Flow::slow_down(link->congestion))
      return refuse(stanza, to->domain(), *no);
  }
  link->queue.push_back(std::move(stanza));
  if (metrics_) metrics_->queued(link->remote);
  if (link->state == Link::State::kIdle) {
    link->state = Link::State::kConnecting;
    net::spawn_logged(ex_, drive(link), "s2s link");
  }
}

void Pool::refuse(const Element& stanza, const std::string& remote, const Refusal& why) {
  if (metrics_ && xml::may_bounce(stanza))
    metrics_->bounced(remote, core::to_string(why.condition));
  router_.bounce(stanza, why.condition, why.text);
}

std::shared_ptr<Link> Pool::link_for(const LinkKey& key) {
  auto it = links_.find(key);
  if (it == links_.end()) {
    auto link = std::make_shared<Link>(key.first, key.second);
    link->retry = time_.make_timer();
    it = links_.emplace(key, std::move(link)).first;
  }
  return it->second;
}

// Streams, not pairs: pairs multiplexed on one stream count once; pairs without a stream yet
// (connecting, or waiting for a retry) count each.
std::size_t Pool::streams_to(const std::string& remote) const {
  std::set<const OutboundStream*> streams;
  std::size_t connecting = 0;
  for (const auto& [k, l] : links_) {
    if (k.second != remote) continue;
    if (l->out)
      streams.insert(l->out.get());
    else
      ++connecting;
  }
  return connecting + streams.size();
}

void Pool::write(Link& link, Element stanza, const xml::SharedStanza* shared) {
  OutboundStream& out = *link.out;
  std::string bytes;
  if (shared) {
    bytes = shared->head(stanza.attr("to"));
    bytes += *shared->tail;
  } else {
    bytes = xml::serialize_stanza(stanza, ns::kServer);
  }
  out.channel->send(bytes);
  link.last_activity = time_.now();
  out.last_activity = link.last_activity;
  if (metrics_ && !link.sent_metric) link.sent_metric = &metrics_->sent(link.remote);
  if (link.sent_metric) link.sent_metric->inc();
  if (!out.sm.enabled()) return keep_unwritten(out, std::move(bytes));
  // Kept until the peer acknowledges it (XEP-0198).
  if (metrics_ && !link.unacked_metric) link.unacked_metric = &metrics_->unacked_of(link.remote);
  if (link.unacked_metric) link.unacked_metric->inc();
  check_unacked(out, link.remote);
  switch (out.sm.sent(std::move(bytes))) {
    case SmSender::Next::kRequest:
      request_ack(out);
      break;
    case SmSender::Next::kPlan:
      if (out.ack_timer) out.ack_timer->cancel();  // wakes the wait for the next request
      break;
    case SmSender::Next::kNothing:
      break;
  }
}

void Pool::write_queue(Link& link) {
  auto queued = std::move(link.queue);
  link.queue.clear();
  if (metrics_) metrics_->dequeued(link.remote, queued.size());
  for (auto& st : queued) write(link, std::move(st));
  link.congestion.relieve();
}

void Pool::bounce_queue(Link& link, Failure f, const std::string& text) {
  const auto cond = bounce_condition(f);
  auto queued = std::move(link.queue);
  link.queue.clear();
  link.congestion.relieve();
  if (queued.empty()) return;
  spdlog::info("s2s {} -> {}: bouncing {} queued stanzas: {}", link.local, link.remote,
               queued.size(), text);
  if (metrics_) metrics_->dequeued(link.remote, queued.size());
  for (const auto& st : queued) {
    if (metrics_ && xml::may_bounce(st)) metrics_->bounced(link.remote, core::to_string(cond));
    router_.bounce(st, cond, text);
  }
}

// Establishes the link with the retry policy, then serves it until it closes; again while
// stanzas keep arriving.
asio::awaitable<void> Pool::drive(std::shared_ptr<Link> link) {
  core::LiveCount::Token alive = live_.enter();
  const auto& retry = config_.retry;
  std::uint32_t attempt = 0;
  for (;;) {
    if (stopping_) {
      bounce_queue(*link, Failure::kStreamError, "Server is shutting down");
      break;
    }
    // Another local domain may already have a stream to this peer: authenticate on it.
    const bool shared = co_await join_shared(link);
    if (shared) {
      if (link->queue.empty() || stopping_) break;
      continue;
    }
    if (stopping_) continue;  // bounced at the top of the loop
    Connected c = co_await dial(link);
    Outcome outcome = c.outcome;
    if (outcome.ok()) {
      const std::uint32_t failed_before = attempt;
      attempt = 0;
      co_await use(link, std::move(c));
      if (link->queue.empty() || stopping_) break;
      if (!link->write_failure) continue;  // stanzas arrived while it was closing: reconnect
      // Dropped at a write bound: a failed attempt (reported when it was dropped), so that a
      // peer that never reads cannot keep the same stanzas cycling through new links.
      attempt = failed_before;
      outcome = Outcome::fail(Failure::kTimeout, *link->write_failure);
    } else {
      report(metrics_, link->remote, *outcome.failure, outcome.text);
    }
    const Failure failure = *outcome.failure;
    if (failure == Failure::kPolicy || outcome.definitive || attempt >= retry.max_retries) {
      bounce_queue(*link, failure, outcome.text);
      break;
    }
    if (stopping_) continue;  // shutdown aborted the attempt: no retry
    ++attempt;
    // The specification's schedule, spread (retry.jitter) so that many links failing
    // together do not retry in lockstep.
    auto delay = with_jitter(
        retry_delay(attempt, retry.initial_delay, retry.max_delay, retry.backoff_multiplier),
        retry.jitter, std::uniform_real_distribution<double>(0.0, 1.0)(jitter_));
    spdlog::info("s2s {} -> {}: retry {} of {} in {}", link->local, link->remote, attempt,
                 retry.max_retries, core::format_duration(delay));
    co_await link->retry->wait_until(time_.now() + delay);
  }
  link->state = Link::State::kIdle;
  if (link->queue.empty()) links_.erase(LinkKey(link->local, link->remote));
  alive = {};
}

// XEP-0220 §2.6: authenticated on another local domain's stream, the link uses it until it
// ends. False when it could not join one.
asio::awaitable<bool> Pool::join_shared(std::shared_ptr<Link> link) {
  auto joined = co_await multiplex_.join(link);
  if (!joined) co_return false;
  std::shared_ptr<OutboundStream> out = joined->out;
  link->out = out;
  link->state = Link::State::kReady;
  link->last_activity = link->last_rx = time_.now();
  spdlog::info(
      "s2s {} -> {}: authenticated with dialback, multiplexed on the stream of {} -> "
      "{} over {}",
      link->local, link->remote, joined->carrier, link->remote, out->channel->tls_description());
  if (metrics_)
    metrics_->authenticated(link->remote, metrics::Direction::kOut,
                            metrics::AuthMethod::kDialbackMultiplexed,
                            out->channel->tls_description());
  write_queue(*link);
  if (!out->done) co_await out->closed->wait_until(Clock::time_point::max());
  link->state = Link::State::kConnecting;
  link->out.reset();
  co_return true;
}

// A stream of the link's own. connect_timeout bounds DNS + TCP + TLS + authentication.
asio::awaitable<Connected> Pool::dial(std::shared_ptr<Link> link) {
  const auto deadline = time_.now() + config_.connect_timeout;
  Connected c;
  // max_connecting attempts at once: the others wait their turn, within connect_timeout.
  if (!co_await attempts_.admit(deadline)) {
    c.outcome = Outcome::fail(Failure::kTimeout,
                              "no connection attempt to " + link->remote + " could start within " +
                                  core::format_duration(config_.connect_timeout) + " (" +
                                  std::to_string(config_.max_connecting) +
                                  " attempts in flight, max_connecting)");
    co_return c;
  }
  auto attempt = attempts_.start(deadline);
  {
    // Links waiting to multiplex on this stream resume once it is set up or has failed, on
    // every way out of connect() (timer completions are posted, never run inline).
    link->dialing = true;
    struct DialDone {
      Multiplexer& multiplex;
      Link& link;
      ~DialDone() {
        link.dialing = false;
        multiplex.dial_ended(link.remote);
      }
    } dial_done{multiplex_, *link};
    ConnectRequest request{link->local, link->remote};
    c = co_await connector_.connect(std::move(request), attempt->slot());
  }
  attempts_.finish(attempt);
  if (c.outcome.ok()) multiplex_.remember(link->remote, c.multiplexable);
  if (attempt->timed_out() && !c.outcome.ok()) {
    c.outcome.failure = Failure::kTimeout;
    c.outcome.text = "timed out after " + core::format_duration(config_.connect_timeout) +
                     " connecting to " + link->remote + " (" + c.outcome.text + ")";
  }
  co_return c;
}

// The link's own stream, from authentication until it closes.
asio::awaitable<void> Pool::use(std::shared_ptr<Link> link, Connected c) {
  auto out = std::make_shared<OutboundStream>();
  out->channel = c.channel;
  out->method = c.method;
  out->cert_valid = c.cert_valid;
  out->stream_id = c.stream_id;
  out->multiplexable = c.multiplexable;
  out->last_activity = time_.now();
  out->closed = time_.make_timer();
  link->out = out;
  link->state = Link::State::kReady;
  link->last_activity = link->last_rx = time_.now();
  link->ping_sent.reset();
  link->ping_written.reset();
  link->write_failure.reset();
  spdlog::info("s2s {} -> {}: authenticated with {} over {} (peer certificate {})", link->local,
               link->remote, out->method, out->channel->tls_description(),
               out->cert_valid ? "valid" : "not verified");
  if (metrics_) {
    metrics_->connection_opened(link->remote, metrics::Direction::kOut);
    metrics_->authenticated(link->remote, metrics::Direction::kOut, c.counted_as,
                            out->channel->tls_description());
  }
  if (c.sm) enable_sm(out, link->remote);
  write_queue(*link);
  co_await serve(link);
  if (metrics_) metrics_->connection_closed(link->remote, metrics::Direction::kOut);
  link->state = Link::State::kConnecting;
  link->out.reset();
}

// Reads the outbound stream (stream errors, dialback answers and verifications) until it
// ends; the watchdog keeps it healthy meanwhile. Stanzas are not accepted on an outbound
// stream (RFC 6120 §4.2: one direction).
asio::awaitable<void> Pool::serve(std::shared_ptr<Link> link) {
  std::shared_ptr<OutboundStream> out = link->out;
  std::shared_ptr<Channel> ch = out->channel;
  link->close_reason.reset();
  auto close_reason = metrics::CloseReason::kPeer;
  net::spawn_logged(ex_, watchdog_.run(link, out), "s2s watchdog");
  for (;;) {
    auto ev = co_await ch->next();
    if (!ev) {
      if (ch->read_error()) close_reason = metrics::CloseReason::kError;
      break;
    }
    link->last_rx = time_.now();
    if (ev->kind == xml::StreamEvent::Kind::kStreamClose) {
      if (!out->ending) ch->send(stream::kStreamEnd);
      break;
    }
    if (ev->kind != xml::StreamEvent::Kind::kElement) continue;
    const Element& e = ev->element;
    if (e.is("verify", ns::kDialback)) {
      ch->send(keys_.answer_verify(e));
    } else if (e.is("result", ns::kDialback)) {
      multiplex_.on_answer(*out, link->remote, e);  // another local domain's request
    } else if (e.ns() == ns::kSm) {
      if (!on_sm(*out, link->remote, e)) {
        close_reason = metrics::CloseReason::kError;
        break;
      }
    } else if (e.is("error", ns::kStream)) {
      report(metrics_, link->remote, Failure::kStreamError,
             "stream error from peer: " + wire::describe_stream_error(e));
      break;
    }
  }
  link->state = Link::State::kConnecting;
  after_stream(*link, *out);
  if (link->write_failure) close_reason = metrics::CloseReason::kError;
  // What the peer has not acknowledged goes out again on the next link, before anything
  // queued later; so does what was never written.
  resend_unacked(*out, link->remote);
  Multiplexer::ended(*out);  // domains multiplexed on this stream lose it too
  if (out->ack_timer) out->ack_timer->cancel();
  co_await ch->close_gracefully();
  if (link->watchdog) link->watchdog->cancel();
  if (metrics_)
    metrics_->stream_closed(link->remote, metrics::Direction::kOut,
                            link->close_reason.value_or(close_reason));
  spdlog::info("s2s {} -> {}: stream closed{}", link->local, link->remote,
               ch->end_reason().empty() ? std::string() : " (" + ch->end_reason() + ")");
}

bool Pool::from_peer(const Element& stanza, const std::string& local, const std::string& remote) {
  auto it = links_.find(LinkKey(local, remote));
  if (it != links_.end()) it->second->last_rx = time_.now();
  return watchdog_.consume_reply(stanza, remote, links_);
}

void Pool::close_disallowed() {
  for (auto& [k, link] : links_) {
    if (admission_.allows(k.second)) continue;
    // Every link to the domain: the one whose stream the others share counts the close.
    link->close_reason = metrics::CloseReason::kPolicy;
    if (!link->out || link->out->channel->closed()) continue;
    spdlog::info("s2s {} -> {}: closing, no longer allowed by policy", k.first, k.second);
    end_stream(link->out, xml::stream_error_xml(core::StreamError::kPolicyViolation));
  }
}

void Pool::stop() {
  stopping_ = true;
  std::set<const Channel*> ending;  // multiplexed links share one stream
  for (auto& [k, link] : links_) {
    link->close_reason = metrics::CloseReason::kShutdown;
    if (link->retry) link->retry->cancel();
    if (link->out && !link->out->channel->closed() &&
        ending.insert(link->out->channel.get()).second) {
      // Written stanzas (rooms telling remote occupants of the shutdown) leave first.
      end_stream(link->out);
    }
    bounce_queue(*link, Failure::kStreamError, "Server is shutting down");
  }
  attempts_.abort_all();
  multiplex_.stop();
}

}  // namespace waddle::s2s
