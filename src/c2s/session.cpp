// One client stream (RFC 6120 §4-§7): header checks, mandatory STARTTLS, SASL (SCRAM-SHA-256,
// SCRAM-SHA-1, PLAIN over TLS), resource binding with the new session winning a conflict,
// XEP-0077 registration, then stanzas with a stamped 'from' to the IM service.
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <charconv>
#include <optional>
#include <unordered_map>

#include "c2s/c2s.h"
#include "c2s/output.h"
#include "c2s/registration.h"
#include "c2s/sasl_server.h"
#include "core/connection_gate.h"
#include "core/ids.h"
#include "core/jid.h"
#include "core/live_count.h"
#include "im/im_service.h"
#include "metrics/metrics.h"
#include "net/listen.h"
#include "net/tls.h"
#include "router/flow.h"
#include "router/router.h"
#include "sasl/scram.h"
#include "storage/storage.h"
#include "stream/event_reader.h"
#include "stream/negotiation.h"
#include "stream/receiving.h"
#include "stream/xml_stream.h"
#include "xml/stanza.h"

namespace waddle::c2s {
namespace asio = boost::asio;
using core::StreamError;
using xml::Element;

namespace {

bool version_ok(std::string_view v) {
  // RFC 6120 §4.7.5: major version 1 is what we speak; a missing version means pre-1.0.
  auto dot = v.find('.');
  if (v.empty() || dot == std::string_view::npos) return false;
  return v.substr(0, dot) == "1";
}

core::LiveCount g_live_sessions;  // touched only on the reactor thread

class Session;
// Sessions that may be resumed (XEP-0198), by their stream management id; reactor thread only.
std::unordered_map<std::string, std::weak_ptr<Session>> g_resumable;

// XEP-0198 'h': an unsigned 32-bit decimal.
std::optional<std::uint32_t> parse_h(std::string_view text) {
  std::uint32_t h = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), h);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return h;
}

Element sm_failed(std::string_view condition, std::optional<std::uint32_t> h = std::nullopt) {
  Element failed("failed", std::string(xml::ns::kSm));
  if (h) failed.set_attr("h", std::to_string(*h));
  failed.add_child(std::string(condition), std::string(xml::ns::kStanzas));
  return failed;
}

class Session : public router::LocalSession, public std::enable_shared_from_this<Session> {
 public:
  Session(C2sContext& ctx, asio::ip::tcp::socket socket, bool direct_tls,
          core::ConnectionGate::Ticket unauthenticated)
      : Session(ctx,
                std::make_shared<stream::XmlStream>(std::move(socket), ctx.tls,
                                                    client_limits(ctx.config)),
                direct_tls, std::move(unauthenticated)) {}

  // XMPP over WebSocket: the connection is already encrypted (wss), or is plain HTTP on
  // loopback behind a proxy that encrypts it; RFC 7395 §3.6 has no STARTTLS.
  Session(C2sContext& ctx, std::shared_ptr<stream::XmlStream> stream, bool direct_tls,
          core::ConnectionGate::Ticket unauthenticated)
      : ctx_(ctx),
        direct_tls_(direct_tls),
        deadline_(stream->executor()),
        idle_(stream->executor()),
        paced_(stream->executor()),
        stream_(std::move(stream)),
        reader_(stream_),
        remote_(stream_->remote_address()),
        sasl_(ctx, remote_),
        out_(ctx, stream_),
        unauthenticated_(std::move(unauthenticated)),
        alive_(g_live_sessions.enter()),
        state_(stream_->websocket() ? State::kEncrypted : State::kPlaintext) {}

  static xml::ParserLimits client_limits(const core::Config& config) {
    return stream::before_authentication(stream::client_parser_limits(config), config);
  }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    // A queue that cannot keep up with this client's stanzas (the archive's storage thread)
    // holds it back: its stream is read no further until that has caught up. Only briefly: a
    // link still being set up refuses its stanzas instead, as a client that is not read cannot
    // answer pings.
    flow_ = std::make_shared<router::Flow>(
        [weak = weak_from_this()] {
          if (auto s = weak.lock()) s->paced_.cancel();
        },
        router::Wait::kBrief);
    stream_->set_write_limits(
        {ctx_.config.c2s_write_queue(), ctx_.config.c2s.limits.write_stall_timeout},
        [weak = weak_from_this()](stream::WriteLimit why) {
          if (auto s = weak.lock()) s->on_write_limit(why);
        });
    out_.on_overflow(
        [weak = weak_from_this(), executor = deadline_.get_executor()](Output::Overflow why) {
          asio::post(executor, [weak, why] {
            if (auto s = weak.lock()) s->on_overflow(why);
          });
        });
    spdlog::debug("c2s {}: connected{}", remote_,
                  stream_->websocket() ? " (WebSocket)"
                  : direct_tls_        ? " (direct TLS)"
                                       : "");
    stream::arm_handshake_deadline(deadline_, ctx_.config.c2s.limits.handshake_timeout,
                                   [weak = weak_from_this()] {
                                     auto s = weak.lock();
                                     if (s && s->state_ < State::kBound)
                                       s->close_with(StreamError::kConnectionTimeout);
                                   });
    if (direct_tls_) {
      if (co_await stream_->server_handshake()) {
        enter(State::kEncrypted);
      } else {
        spdlog::debug("c2s {}: TLS handshake failed", remote_);
        stream_->close();
      }
    }
    co_await read_loop();
    if (open()) connection_lost();
  }

  void hold(std::shared_ptr<void> token) { token_ = std::move(token); }

  // --- LocalSession ---
  const core::Jid& jid() const override { return jid_; }

  void deliver(const Element& stanza) override {
    if (open()) out_.deliver(stanza);
  }

  void deliver_shared(const Element& stanza, const xml::SharedStanza& shared,
                      std::string_view to) override {
    if (open()) out_.deliver_shared(stanza, shared, to);
  }

  bool hibernated() const override { return state_ == State::kHibernated; }

  void close_with(StreamError error, std::string_view text = {}) override {
    if (!open()) return;
    if (state_ == State::kHibernated) {  // no connection to write the error to
      spdlog::info("c2s {}: session waiting to be resumed ends ({})", jid_.str(),
                   core::to_string(error));
      enter(State::kEnded);
      return;
    }
    spdlog::info("c2s {} {}: closing with stream error {}{}{}", remote_,
                 state_ == State::kBound ? jid_.str() : std::string("-"), core::to_string(error),
                 text.empty() ? "" : ": ", text);
    std::string header;  // an error needs a stream to be in
    if (stream_id_.empty()) {
      stream_id_ = core::random_hex(8);
      header = stream::client_header(header_from(), stream_id_);
    }
    stream_->send(stream::stream_error_close(error, text, header));
    enter(State::kClosing);
  }

 private:
  // RFC 6120 §4-§7 in order; STARTTLS and SASL each restart the stream (the client sends a
  // new header, and gets a new one with a new id):
  //
  //   kPlaintext --STARTTLS--> kEncrypted --SASL--> kAuthenticated --bind--> kBound
  //   (a direct TLS port, XEP-0368, enters kEncrypted before the first header)
  //   kAuthenticated --<resume/> (XEP-0198)--> kBound, taking over a session that then
  //                                            enters kMoved (its connection, if any, closed)
  //   kBound --connection gone, resumable--> kHibernated --resume_timeout--> kEnded
  //   any of them --our closing tag--> kClosing  (a stream error, the client's closing tag,
  //                                               the account removed)
  //   any of them --connection gone--> kEnded    (the peer closed, a socket or TLS failure)
  enum class State {
    kPlaintext,
    kEncrypted,
    kAuthenticated,
    kBound,
    kHibernated,
    kClosing,
    kEnded,
    kMoved
  };

  bool open() const { return state_ < State::kClosing; }

  // The one place state_ changes, with what each change brings along.
  void enter(State next) {
    const State was = state_;
    state_ = next;
    switch (next) {
      case State::kPlaintext:
        break;
      case State::kEncrypted:
        stream_id_.clear();  // the restarted stream has its own header, even for an error
        break;
      case State::kAuthenticated:
        stream_id_.clear();
        unauthenticated_.release();
        stream_->set_max_stanza_size(ctx_.config.c2s.limits.max_stanza_size);
        break;
      case State::kBound:
        if (was == State::kAuthenticated && !resuming_) join_router();
        ctx_.im.session_bound(jid_);  // bound or resumed: the user is back
        deadline_.cancel();
        if (ctx_.config.c2s.ping_interval.count() > 0)
          net::spawn_logged(idle_.get_executor(), watch_idle(shared_from_this()), "c2s idle");
        break;
      case State::kHibernated:
        idle_.cancel();
        paced_.cancel();
        stream_->close();
        out_.detach();
        if (ctx_.metrics) ctx_.metrics->stream_management("hibernated");
        spdlog::info("c2s {}: {} lost its connection; waiting {} s to be resumed", remote_,
                     jid_.str(), ctx_.config.c2s.resume_timeout.count() / 1000);
        net::spawn_logged(deadline_.get_executor(), await_resumption(shared_from_this()),
                          "c2s resumption");
        break;
      case State::kClosing:
      case State::kEnded:
        deadline_.cancel();
        idle_.cancel();
        paced_.cancel();
        forget_resumption();
        if (was == State::kBound || was == State::kHibernated) leave_router();
        if (next == State::kClosing) {
          asio::co_spawn(deadline_.get_executor(), closer(shared_from_this()), asio::detached);
        } else if (was != State::kClosing) {
          stream_->close();  // the connection is gone: nothing more is written
          out_.reroute(jid_, this);
        }
        break;
      case State::kMoved:  // resumed on another connection, which is this session now
        deadline_.cancel();
        idle_.cancel();
        paced_.cancel();
        stream_->close();
        break;
    }
  }

  // The connection is gone (read or write failed, or the client stopped reading): a session
  // that may be resumed waits for that, any other ends.
  void connection_lost() {
    if (state_ == State::kHibernated) return;
    if (state_ == State::kBound && out_.sm().resumable())
      enter(State::kHibernated);
    else
      enter(State::kEnded);
  }

  static asio::awaitable<void> await_resumption(std::shared_ptr<Session> self) {
    self->deadline_.expires_after(self->ctx_.config.c2s.resume_timeout);
    co_await self->deadline_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (self->state_ != State::kHibernated) co_return;  // resumed, or ended otherwise
    if (self->ctx_.metrics) self->ctx_.metrics->stream_management("expired");
    spdlog::info("c2s {}: {} was not resumed in time", self->remote_, self->jid_.str());
    self->enter(State::kEnded);
  }

  void forget_resumption() {
    if (!out_.sm().resumable()) return;
    auto it = g_resumable.find(out_.sm().id());
    if (it != g_resumable.end() && it->second.lock().get() == this) g_resumable.erase(it);
  }

  // Past max_unacked_stanzas or max_unacked_bytes: the session ends, and what the client did
  // not acknowledge goes elsewhere (Output::reroute, once the stream is closed).
  void on_overflow(Output::Overflow why) {
    if (!open()) return;
    const bool bytes = why == Output::Overflow::kBytes;
    if (ctx_.metrics) ctx_.metrics->stream_management(bytes ? "overflow_bytes" : "overflow");
    if (state_ == State::kHibernated)
      enter(State::kEnded);
    else
      close_with(StreamError::kPolicyViolation,
                 bytes ? "Too many unacknowledged bytes" : "Too many unacknowledged stanzas");
  }

  // The closing tag is queued: it and what precedes it are written for a bounded time.
  static asio::awaitable<void> closer(std::shared_ptr<Session> self) {
    co_await stream::close_stream(self->stream_);
    self->out_.reroute(self->jid_, self.get());
  }

  // The client does not read what it is sent (max_write_queue, write_stall_timeout): the
  // session ends. Past the byte bound, what is queued and a stream error after it are written
  // for a bounded time (a slow reader still gets them); a stalled one is closed at once.
  void on_write_limit(stream::WriteLimit why) {
    if (!open()) return;
    if (ctx_.metrics) ctx_.metrics->write_limit(stream::to_string(why));
    spdlog::info("c2s {} {}: closing: the client does not read ({}; {} bytes unwritten)", remote_,
                 state_ == State::kBound ? jid_.str() : std::string("-"), stream::to_string(why),
                 stream_->bytes_queued() - stream_->bytes_out());
    if (why == stream::WriteLimit::kQueueFull && !stream_id_.empty()) {
      stream_->send_last(stream::stream_error_close(StreamError::kPolicyViolation,
                                                    "Too much output waiting to be read", ""));
      enter(State::kClosing);
    } else {
      connection_lost();
    }
  }

  // XEP-0199 §4.2: a bound session that sent nothing for ping_interval is pinged; one that
  // still sent nothing (not even whitespace) ping_timeout later is gone (docs/security.md
  // "Correctness"): a peer that vanished without closing keeps nothing here for long.
  static asio::awaitable<void> watch_idle(std::shared_ptr<Session> self) {
    const auto& c2s = self->ctx_.config.c2s;
    std::uint64_t seen = self->stream_->bytes_in();
    while (self->state_ == State::kBound) {
      self->idle_.expires_after(self->ping_id_.empty() ? c2s.ping_interval : c2s.ping_timeout);
      auto [ec] = co_await self->idle_.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec || self->state_ != State::kBound) co_return;
      const std::uint64_t now = self->stream_->bytes_in();
      if (now != seen) {
        seen = now;
        self->ping_id_.clear();
        continue;
      }
      if (!self->ping_id_.empty()) {
        self->close_with(StreamError::kConnectionTimeout, "No answer to a ping");
        co_return;
      }
      self->ping_id_ = "ping-" + core::random_hex(8);
      Element ping("iq", std::string(xml::ns::kClient));
      ping.set_attr("type", "get");
      ping.set_attr("id", self->ping_id_);
      ping.set_attr("from", self->domain_);
      ping.set_attr("to", self->jid_.str());
      ping.add_child("ping", std::string(xml::ns::kPing));
      self->deliver(ping);
    }
  }

  void close_gracefully() {
    if (!open()) return;
    stream_->send(stream::kStreamEnd);
    enter(State::kClosing);
  }

  void join_router() {
    if (ctx_.metrics) ctx_.metrics->session_opened();
    deadline_.cancel();
    if (router::LocalSession* old = ctx_.router.add(this)) {
      // RFC 6120 §7.7.2.2: the new session takes over the resource.
      old->close_with(StreamError::kConflict, "Replaced by a new connection");
    }
  }

  // Broadcasts unavailable presence (unless another session has taken the resource over).
  void leave_router() {
    if (ctx_.metrics) ctx_.metrics->session_closed();
    if (ctx_.router.find(jid_) == this) {
      ctx_.im.session_ended(*this);
      ctx_.router.remove(this);
    }
    spdlog::info("c2s {}: {} unbound", remote_, jid_.str());
  }

  asio::awaitable<void> read_loop() {
    while (!stream_->closed() && open()) {
      auto ev = co_await reader_.next();
      if (!ev) {
        if (reader_.error())
          close_with(*reader_.error());
        else if (!stream_->end_reason().empty())
          spdlog::debug("c2s {}: connection ended: {}", remote_, stream_->end_reason());
        break;
      }
      if (!open()) break;  // closed while reading (a deadline, a conflict, shutdown)
      try {
        co_await handle(*ev);
      } catch (const std::exception& e) {
        // Storage failures and the like: this stream ends, the server goes on.
        spdlog::error("c2s {}: internal error: {}", remote_, e.what());
        close_with(StreamError::kInternalServerError);
      }
      co_await wait_while_paced();
    }
  }

  // Backpressure, never loss: reading waits until every queue this client filled has
  // drained (Flow's resume cancels the timer), or the session ends (enter() cancels it).
  asio::awaitable<void> wait_while_paced() {
    while (flow_->paused() && open() && !stream_->closed()) {
      paced_.expires_at(asio::steady_timer::time_point::max());
      boost::system::error_code ec;
      co_await paced_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  const std::string& header_from() const {
    return domain_.empty() ? ctx_.router.local_domains().front() : domain_;
  }

  void send(const Element& e) { stream_->send(e.str(xml::ns::kClient)); }

  asio::awaitable<void> handle(xml::StreamEvent& ev) {
    if (ev.kind == xml::StreamEvent::Kind::kStreamOpen) {
      on_stream_open(ev);
    } else if (ev.kind == xml::StreamEvent::Kind::kStreamClose) {
      spdlog::debug("c2s {}: client closed the stream", remote_);
      close_gracefully();
    } else {
      co_await on_element(std::move(ev.element));
    }
  }

  void on_stream_open(const xml::StreamEvent& ev) {
    const Element& h = ev.element;
    auto to = core::nameprep_domain(h.attr("to"));
    if (to && ctx_.router.is_user_domain(*to)) domain_ = *to;
    if (!h.is("stream", xml::ns::kStream) || ev.default_ns != xml::ns::kClient)
      return close_with(StreamError::kInvalidNamespace);
    if (!to || !ctx_.router.is_user_domain(*to)) return close_with(StreamError::kHostUnknown);
    if (!version_ok(h.attr("version"))) return close_with(StreamError::kUnsupportedVersion);
    if (!stream_id_.empty()) return close_with(StreamError::kInvalidXml);  // a second header
    stream_id_ = core::random_hex(8);
    stream_->send(stream::client_header(domain_, stream_id_));

    Element features = stream::stream_features();
    if (state_ == State::kPlaintext) {
      stream::offer_starttls(features);
    } else if (state_ == State::kEncrypted) {
      stream::offer_sasl(features, kSaslMechanisms);
      if (ctx_.config.c2s.allow_registration)
        features.add_child("register", std::string(xml::ns::kRegisterFeature));
    } else {
      features.add_child("bind", std::string(xml::ns::kBind));
      features.add_child("session", std::string(xml::ns::kSession))
          .add_child("optional", std::string(xml::ns::kSession));
      features.add_child("sm", std::string(xml::ns::kSm));
      features.add_child("csi", std::string(xml::ns::kCsi));
      features.add_child("ver", std::string(xml::ns::kRosterVerFeature));    // RFC 6121 §2.6
      features.add_child("sub", std::string(xml::ns::kPreApprovalFeature));  // RFC 6121 §3.4
      features.add_child(ctx_.im.server_caps(domain_));                      // XEP-0115 §6.3
    }
    stream_->send(features.str(""));
  }

  asio::awaitable<void> on_element(Element el) {
    if (stream_id_.empty()) {  // no header yet, or none since the restart
      close_with(StreamError::kNotAuthorized);
      co_return;
    }
    switch (state_) {
      case State::kPlaintext:
        co_await before_tls(el);
        break;
      case State::kEncrypted:
        co_await before_authentication(el);
        break;
      case State::kAuthenticated:
        before_binding(el);
        break;
      case State::kBound:
        if (el.ns() == xml::ns::kSm) {
          on_stream_management(el);
        } else if (el.ns() == xml::ns::kCsi) {
          if (el.name() == "active" || el.name() == "inactive")
            out_.set_inactive(el.name() == "inactive");
        } else {
          co_await on_stanza(std::move(el));
          out_.sm().received();
        }
        break;
      case State::kHibernated:
      case State::kClosing:
      case State::kEnded:
      case State::kMoved:
        break;
    }
  }

  asio::awaitable<void> before_tls(const Element& el) {
    if (el.is("starttls", xml::ns::kTls)) {
      co_await starttls();
    } else if (el.is("auth", xml::ns::kSasl)) {
      // RFC 6120 §6.4.5 / §13.8: no SASL (and never PLAIN) before TLS.
      send(sasl_failure("encryption-required", "Use STARTTLS first"));
    } else {
      close_with(StreamError::kNotAuthorized, "STARTTLS is required");
    }
  }

  asio::awaitable<void> starttls() {
    SSL_CTX* context = ctx_.contexts ? ctx_.contexts->c2s_for(domain_) : nullptr;
    if (!co_await stream::accept_starttls(*stream_, reader_, context)) {
      spdlog::debug("c2s {}: STARTTLS handshake failed", remote_);
      enter(State::kEnded);
      co_return;
    }
    enter(State::kEncrypted);
    spdlog::debug("c2s {}: {}", remote_, stream_->tls_description());
  }

  asio::awaitable<void> before_authentication(const Element& el) {
    if (el.ns() == xml::ns::kSasl) {
      co_await on_sasl(el);
    } else if (el.is("iq", xml::ns::kClient) && el.child("query", xml::ns::kRegister)) {
      Element reply = co_await register_new_account(ctx_, el, domain_, remote_);
      send(reply);
    } else if (el.is("starttls", xml::ns::kTls)) {
      close_with(StreamError::kPolicyViolation, "TLS is already active");
    } else {
      close_with(StreamError::kNotAuthorized);
    }
  }

  // RFC 6120 §6.
  asio::awaitable<void> on_sasl(const Element& el) {
    auto step = co_await sasl_.on_element(el, domain_);
    if (!open()) co_return;  // closed while the account was read
    using Outcome = SaslServer::Outcome;
    if (step.outcome == Outcome::kUnexpected) {
      close_with(StreamError::kUnsupportedStanzaType);
      co_return;
    }
    send(step.reply);
    if (step.outcome == Outcome::kTooManyFailures) {
      close_with(StreamError::kPolicyViolation, "Too many failed authentication attempts");
    } else if (step.outcome == Outcome::kAuthenticated) {
      spdlog::info("c2s {}: authenticated {}@{} with {} over {}", remote_, sasl_.username(),
                   domain_, sasl_.mechanism(), stream_->tls_description());
      stream_->reset_parser();  // RFC 6120 §6.4.6: the stream restarts
      reader_.clear();
      enter(State::kAuthenticated);
    }
  }

  void before_binding(const Element& el) {
    if (el.is("iq", xml::ns::kClient) && el.attr("type") == "set" &&
        el.child("bind", xml::ns::kBind)) {
      bind(el);
    } else if (el.is("iq", xml::ns::kClient) && el.child("session", xml::ns::kSession)) {
      send(xml::make_iq_result(el));
    } else if (el.is("resume", xml::ns::kSm)) {
      resume(el);
    } else if (el.ns() == xml::ns::kSm) {
      send(sm_failed("unexpected-request"));  // XEP-0198 §3: <enable/> only once bound
    } else {
      close_with(StreamError::kNotAuthorized, "Bind a resource first");
    }
  }

  // RFC 6120 §7.
  void bind(const Element& iq) {
    const Element* b = iq.child("bind", xml::ns::kBind);
    std::string requested = b->child_text("resource", xml::ns::kBind);
    std::optional<core::Jid> full;
    auto bare = core::Jid::from_parts(sasl_.username(), domain_);
    if (!bare) return close_with(StreamError::kInternalServerError);
    if (requested.empty()) {
      full = bare->with_resource("waddle-" + core::random_hex(6));
    } else {
      full = bare->with_resource(requested);
      if (!full) {
        send(xml::make_error_reply(iq, core::StanzaError::kBadRequest, "Invalid resource"));
        return;
      }
    }
    jid_ = *full;
    did = sasl_.account_did();
    enter(State::kBound);
    Element result = xml::make_iq_result(iq);
    result.remove_attr("to");
    result.add_child("bind", std::string(xml::ns::kBind))
        .add_child("jid", std::string(xml::ns::kBind))
        .add_text(jid_.str());
    send(result);
    spdlog::info("c2s {}: bound {}", remote_, jid_.str());
  }

  // XEP-0198 once bound: <enable/>, and acknowledgements either way.
  void on_stream_management(const Element& el) {
    auto& sm = out_.sm();
    if (el.name() == "enable" && !sm.enabled()) {
      const bool resume = (el.attr("resume") == "true" || el.attr("resume") == "1") &&
                          ctx_.config.c2s.resume_timeout.count() > 0;
      Element enabled("enabled", std::string(xml::ns::kSm));
      if (resume) {
        std::string id = core::random_hex(16);
        g_resumable[id] = weak_from_this();
        enabled.set_attr("id", id).set_attr("resume", "true");
        enabled.set_attr("max", std::to_string(std::max<std::int64_t>(
                                    1, ctx_.config.c2s.resume_timeout.count() / 1000)));
        sm.enable(std::move(id));
      } else {
        sm.enable({});
      }
      send(enabled);
      if (ctx_.metrics) ctx_.metrics->stream_management("enabled");
    } else if (el.name() == "r" && sm.enabled()) {
      out_.answer_request();
    } else if (el.name() == "a" && sm.enabled()) {
      auto h = parse_h(el.attr("h"));
      if (!h || !out_.acknowledged(*h))
        close_with(StreamError::kUndefinedCondition,
                   "The acknowledgement counts more stanzas than were sent");
    } else {
      send(sm_failed("unexpected-request"));
    }
  }

  // XEP-0198 §5: a new connection takes over a session that lost (or is about to lose) its
  // own, with the same full JID, presence and rooms; contacts see no change.
  void resume(const Element& el) {
    std::shared_ptr<Session> old;
    if (auto it = g_resumable.find(std::string(el.attr("previd"))); it != g_resumable.end())
      old = it->second.lock();
    const auto h = parse_h(el.attr("h"));
    if (!old || old.get() == this || old->domain_ != domain_ ||
        old->jid_.local() != sasl_.username() ||
        (old->state_ != State::kBound && old->state_ != State::kHibernated) || !h) {
      if (ctx_.metrics) ctx_.metrics->stream_management("resume_failed");
      send(sm_failed("item-not-found"));
      return;
    }
    if (!old->out_.sm().acked(*h)) {
      if (ctx_.metrics) ctx_.metrics->stream_management("resume_failed");
      send(sm_failed("undefined-condition", old->out_.sm().handled()));
      return;
    }
    // This session becomes the old one: its presence state, its JID, what it kept.
    static_cast<router::LocalSession&>(*this) = static_cast<const router::LocalSession&>(*old);
    jid_ = old->jid_;
    out_.take_over(old->out_);
    old->enter(State::kMoved);
    ctx_.router.add(this);  // in the old session's place
    g_resumable[out_.sm().id()] = weak_from_this();
    resuming_ = true;
    enter(State::kBound);
    Element resumed("resumed", std::string(xml::ns::kSm));
    resumed.set_attr("previd", out_.sm().id());
    resumed.set_attr("h", std::to_string(out_.sm().handled()));
    send(resumed);
    out_.resend_unacked();
    if (ctx_.metrics) ctx_.metrics->stream_management("resumed");
    spdlog::info("c2s {}: resumed {} ({} stanzas sent again)", remote_, jid_.str(),
                 out_.sm().unacked_count());
  }

  asio::awaitable<void> on_stanza(Element el) {
    if (xml::stanza_kind(el) == xml::StanzaKind::kOther || el.ns() != xml::ns::kClient) {
      close_with(StreamError::kUnsupportedStanzaType);
      co_return;
    }
    if (el.has_attr("from")) {
      auto from = core::Jid::parse(el.attr("from"));
      if (!from || (*from != jid_ && *from != jid_.bare())) {
        close_with(StreamError::kInvalidFrom);
        co_return;
      }
    }
    el.set_attr("from", jid_.str());
    if (ctx_.metrics) ctx_.metrics->stanza_received();
    if (el.name() == "iq" && !ping_id_.empty() && el.attr("id") == ping_id_ &&
        (el.attr("type") == "result" || el.attr("type") == "error")) {
      ping_id_.clear();  // the answer to our ping (watch_idle)
      co_return;
    }
    // RFC 3921 §3 session establishment, a no-op since RFC 6121 (advertised as optional):
    // older clients still send it once bound, and expect a result.
    if (el.name() == "iq" && el.attr("type") == "set" && el.child("session", xml::ns::kSession) &&
        (!el.has_attr("to") || el.attr("to") == domain_)) {
      deliver(xml::make_iq_result(el));
      co_return;
    }
    if (el.name() == "iq" && (el.attr("type") == "get" || el.attr("type") == "set") &&
        el.child("query", xml::ns::kRegister) && (!el.has_attr("to") || el.attr("to") == domain_)) {
      co_await manage_account(el);
      co_return;
    }
    router::Flow::Scope source(*flow_);
    ctx_.im.from_client(std::move(el));
  }

  // XEP-0077 §3.2-§3.3 for the logged-in user.
  asio::awaitable<void> manage_account(const Element& iq) {
    auto answer = co_await manage_own_account(ctx_, iq, domain_, sasl_.username(), remote_);
    deliver(answer.reply);
    if (!answer.removed) co_return;
    ctx_.im.account_removed(jid_.bare());
    for (auto* s : ctx_.router.sessions_of(jid_.bare()))
      if (s != this) s->close_with(StreamError::kNotAuthorized, "Account removed");
    close_gracefully();
  }

  C2sContext& ctx_;
  const bool direct_tls_;
  asio::steady_timer deadline_;         // the handshake deadline, until bound
  asio::steady_timer idle_;             // watch_idle, once bound
  asio::steady_timer paced_;            // reading held back by a full queue (wait_while_paced)
  std::shared_ptr<router::Flow> flow_;  // this client as a source of routed stanzas
  std::shared_ptr<stream::XmlStream> stream_;
  stream::EventReader reader_;
  const std::string remote_;
  SaslServer sasl_;
  Output out_;  // what is written to the client (and kept until it has it)
  core::ConnectionGate::Ticket unauthenticated_;  // until authenticated
  core::LiveCount::Token alive_;                  // shutdown waits until every session is gone
  State state_ = State::kPlaintext;
  std::string domain_;
  std::string stream_id_;  // of the current stream; empty until our header is sent
  core::Jid jid_;
  bool resuming_ = false;        // bound by <resume/>: the router entry is taken over, not added
  std::string ping_id_;          // of our ping waiting for an answer (watch_idle)
  std::shared_ptr<void> token_;  // start_websocket_session's, released with the session
};

}  // namespace

std::size_t live_sessions() {
  return g_live_sessions.size();
}

void when_no_sessions(std::function<void()> done) {
  g_live_sessions.when_empty(std::move(done));
}

void start_session(C2sContext& ctx, asio::ip::tcp::socket socket, bool direct_tls) {
  core::ConnectionGate::Ticket ticket;
  if (ctx.gate) {
    const std::string address = net::address_key(socket);
    if (auto refused = ctx.gate->admit(address, std::chrono::steady_clock::now(), ticket)) {
      spdlog::info("c2s {}: connection refused: {}", address, core::to_string(*refused));
      if (ctx.listener_metrics) ctx.listener_metrics->refused("c2s", core::to_string(*refused));
      std::string error;  // RFC 6120 §4.9.1.1: our header first, then the error
      if (!direct_tls)
        error = stream::stream_error_close(
            StreamError::kPolicyViolation, "Too many connections",
            stream::client_header(ctx.router.local_domains().front(), core::random_hex(8)));
      net::refuse_connection(socket, error);
      return;
    }
  }
  auto executor = socket.get_executor();
  auto session = std::make_shared<Session>(ctx, std::move(socket), direct_tls, std::move(ticket));
  net::spawn_logged(executor, session->run(), "c2s session");
}

void start_websocket_session(C2sContext& ctx, std::shared_ptr<stream::XmlStream> stream,
                             core::ConnectionGate::Ticket unauthenticated,
                             std::shared_ptr<void> token) {
  auto executor = stream->executor();
  auto session =
      std::make_shared<Session>(ctx, std::move(stream), false, std::move(unauthenticated));
  session->hold(std::move(token));
  net::spawn_logged(executor, session->run(), "c2s WebSocket session");
}

xml::ParserLimits client_stream_limits(const core::Config& config) {
  return Session::client_limits(config);
}

}  // namespace waddle::c2s
