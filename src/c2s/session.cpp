// One client stream (RFC 6120 §4-§7): header checks, mandatory STARTTLS, SASL (SCRAM-SHA-256,
// SCRAM-SHA-1, PLAIN over TLS), resource binding with the new session winning a conflict,
// XEP-0077 registration, then stanzas with a stamped 'from' to the IM service.
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <optional>

#include "c2s/c2s.h"
#include "core/base64.h"
#include "core/ids.h"
#include "core/jid.h"
#include "im/im_service.h"
#include "metrics/metrics.h"
#include "net/listen.h"
#include "net/tls.h"
#include "net/worker.h"
#include "router/router.h"
#include "sasl/scram.h"
#include "storage/storage.h"
#include "stream/xml_stream.h"
#include "xml/stanza.h"

namespace waddle::c2s {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using core::StreamError;
using xml::Element;

namespace {

bool version_ok(std::string_view v) {
  // RFC 6120 §4.7.5: major version 1 is what we speak; a missing version means pre-1.0.
  auto dot = v.find('.');
  if (v.empty() || dot == std::string_view::npos) return false;
  return v.substr(0, dot) == "1";
}

Element sasl_failure(std::string_view condition, std::string_view text = {}) {
  Element f("failure", std::string(xml::ns::kSasl));
  f.add_child(std::string(condition), std::string(xml::ns::kSasl));
  if (!text.empty()) f.add_child("text", std::string(xml::ns::kSasl)).add_text(text);
  return f;
}

std::size_t g_live_sessions = 0;  // touched only on the reactor thread

class Session : public router::LocalSession, public std::enable_shared_from_this<Session> {
 public:
  Session(C2sContext& ctx, asio::ip::tcp::socket socket, bool direct_tls)
      : ctx_(ctx),
        direct_tls_(direct_tls),
        deadline_(socket.get_executor()),
        stream_(
            std::make_shared<stream::XmlStream>(std::move(socket), ctx.tls, limits(ctx.config))) {
    ++g_live_sessions;
  }
  ~Session() override { --g_live_sessions; }

  static xml::ParserLimits limits(const core::Config& c) {
    const auto& l = c.c2s.limits;
    return {l.max_stanza_size, l.max_depth, l.max_attributes, l.max_header_size};
  }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    remote_ = stream_->remote_address();
    spdlog::debug("c2s {}: connected{}", remote_, direct_tls_ ? " (direct TLS)" : "");
    deadline_.expires_after(ctx_.config.c2s.limits.handshake_timeout);
    deadline_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      if (ec) return;
      if (auto s = weak.lock(); s && !s->bound_) s->close_with(StreamError::kConnectionTimeout);
    });
    bool tls_ok = true;
    if (direct_tls_) tls_ok = co_await stream_->server_handshake();
    if (!tls_ok) {
      spdlog::debug("c2s {}: TLS handshake failed", remote_);
      stream_->close();
    }
    std::vector<xml::StreamEvent> events;
    while (!stream_->closed() && !closing_) {
      events.clear();
      bool eof = false;
      auto err = co_await stream_->read(events, eof);
      for (auto& ev : events) {
        if (closing_ || reset_) break;
        try {
          co_await handle(ev);
        } catch (const std::exception& e) {
          // Storage failures and the like: this stream ends, the server goes on.
          spdlog::error("c2s {}: internal error: {}", remote_, e.what());
          close_with(StreamError::kInternalServerError);
        }
      }
      reset_ = false;
      if (err && !closing_) close_with(*err);
      if (eof) {
        if (!stream_->end_reason().empty())
          spdlog::debug("c2s {}: connection ended: {}", remote_, stream_->end_reason());
        break;
      }
    }
    finish();
  }

  // --- LocalSession ---
  const core::Jid& jid() const override { return jid_; }

  void deliver(const Element& stanza) override {
    if (closing_) return;
    stream_->send(xml::serialize_stanza(stanza, xml::ns::kClient));
  }

  void close_with(StreamError error, std::string_view text = {}) override {
    if (closing_) return;
    spdlog::info("c2s {} {}: closing with stream error {}{}{}", remote_,
                 bound_ ? jid_.str() : std::string("-"), core::to_string(error),
                 text.empty() ? "" : ": ", text);
    if (!header_sent_) send_header(domain_.empty() ? ctx_.router.local_domains().front() : domain_);
    stream_->send(xml::stream_error_xml(error, text));
    close_gracefully();
  }

 private:
  void close_gracefully() {
    if (closing_) return;
    closing_ = true;
    stream_->send("</stream:stream>");
    finish();
    asio::co_spawn(deadline_.get_executor(), closer(shared_from_this()), asio::detached);
  }

  // Flushes what is queued (the closing tag included) for a bounded time, then closes.
  static asio::awaitable<void> closer(std::shared_ptr<Session> self) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(std::chrono::seconds(2));
    co_await (self->stream_->flush() || t.async_wait(asio::use_awaitable));
    self->stream_->close();
  }

  // Leaves the router once; broadcasts unavailable presence.
  void finish() {
    deadline_.cancel();
    if (in_router_) {
      in_router_ = false;
      if (ctx_.metrics) ctx_.metrics->session_closed();
      if (ctx_.router.find(jid_) == this) {
        ctx_.im.session_ended(*this);
        ctx_.router.remove(this);
      }
      spdlog::info("c2s {}: {} unbound", remote_, jid_.str());
    }
  }

  void send_header(const std::string& from) {
    header_sent_ = true;
    stream_id_ = core::random_hex(8);
    std::string h =
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams' id='" +
        stream_id_ + "' from='";
    xml::escape(h, from);
    h += "' version='1.0' xml:lang='en'>";
    stream_->send(h);
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
    if (header_sent_ && !restart_expected_) return close_with(StreamError::kInvalidXml);
    restart_expected_ = false;
    send_header(domain_);

    Element features("stream:features", "");
    if (!stream_->tls_active()) {
      features.add_child("starttls", std::string(xml::ns::kTls))
          .add_child("required", std::string(xml::ns::kTls));
    } else if (!authenticated_) {
      auto& mechs = features.add_child("mechanisms", std::string(xml::ns::kSasl));
      for (const char* m : {"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"})
        mechs.add_child("mechanism", std::string(xml::ns::kSasl)).add_text(m);
      if (ctx_.config.c2s.allow_registration)
        features.add_child("register", std::string(xml::ns::kRegisterFeature));
    } else {
      features.add_child("bind", std::string(xml::ns::kBind));
      features.add_child("session", std::string(xml::ns::kSession))
          .add_child("optional", std::string(xml::ns::kSession));
    }
    stream_->send(features.str(""));
  }

  asio::awaitable<void> on_element(Element el) {
    if (!header_sent_ || restart_expected_) {
      close_with(StreamError::kNotAuthorized);
      co_return;
    }
    if (!stream_->tls_active()) {
      if (el.is("starttls", xml::ns::kTls)) {
        co_await starttls();
        co_return;
      }
      if (el.is("auth", xml::ns::kSasl)) {
        // RFC 6120 §6.4.5 / §13.8: no SASL (and never PLAIN) before TLS.
        send(sasl_failure("encryption-required", "Use STARTTLS first"));
        co_return;
      }
      {
        close_with(StreamError::kNotAuthorized, "STARTTLS is required");
        co_return;
      }
    }
    if (!authenticated_) {
      if (el.ns() == xml::ns::kSasl) {
        co_await on_sasl(el);
        co_return;
      }
      if (el.is("iq", xml::ns::kClient) && el.child("query", xml::ns::kRegister)) {
        co_await register_unauthenticated(el);
        co_return;
      }
      if (el.is("starttls", xml::ns::kTls)) {
        close_with(StreamError::kPolicyViolation, "TLS is already active");
        co_return;
      }
      {
        close_with(StreamError::kNotAuthorized);
        co_return;
      }
    }
    if (!bound_) {
      if (el.is("iq", xml::ns::kClient) && el.attr("type") == "set" &&
          el.child("bind", xml::ns::kBind)) {
        bind(el);
        co_return;
      }
      if (el.is("iq", xml::ns::kClient) && el.child("session", xml::ns::kSession)) {
        send(xml::make_iq_result(el));
        co_return;
      }
      {
        close_with(StreamError::kNotAuthorized, "Bind a resource first");
        co_return;
      }
    }
    co_await on_stanza(std::move(el));
  }

  asio::awaitable<void> starttls() {
    stream_->send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    co_await stream_->flush();
    if (ctx_.contexts) stream_->use_tls_context(ctx_.contexts->c2s_for(domain_));
    reset_ = true;
    bool ok = co_await stream_->server_handshake();
    if (!ok) {
      spdlog::debug("c2s {}: STARTTLS handshake failed", remote_);
      closing_ = true;
      stream_->close();
      co_return;
    }
    stream_->reset_parser();
    restart_expected_ = true;
    header_sent_ = false;  // the restarted stream needs its own header, even for an error
    spdlog::debug("c2s {}: {}", remote_, stream_->tls_description());
  }

  // --- SASL (RFC 6120 §6) ---
  asio::awaitable<void> on_sasl(const Element& el) {
    if (el.name() == "abort") {
      scram_.reset();
      send(sasl_failure("aborted"));
      co_return;
    }
    if (el.name() == "auth") {
      scram_.reset();
      mechanism_ = std::string(el.attr("mechanism"));
      auto data = core::base64_decode(el.text());
      if (!data) {
        co_await sasl_fail("incorrect-encoding");
        co_return;
      }
      if (mechanism_ == "PLAIN") {
        co_await sasl_plain(*data);
        co_return;
      }
      if (mechanism_ == "SCRAM-SHA-256" || mechanism_ == "SCRAM-SHA-1") {
        scram_hash_ =
            mechanism_ == "SCRAM-SHA-1" ? sasl::ScramHash::kSha1 : sasl::ScramHash::kSha256;
        scram_.emplace(scram_hash_);
        if (data->empty()) {  // no initial response: ask for it
          stream_->send("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
          co_return;
        }
        {
          co_await scram_first(*data);
          co_return;
        }
      }
      send(sasl_failure("invalid-mechanism"));
      co_return;
    }
    if (el.name() == "response" && scram_) {
      auto data = core::base64_decode(el.text());
      if (!data) {
        co_await sasl_fail("incorrect-encoding");
        co_return;
      }
      if (!scram_started_) {
        co_await scram_first(*data);
        co_return;
      }
      {
        co_await scram_final(*data);
        co_return;
      }
    }
    close_with(StreamError::kUnsupportedStanzaType);
  }

  asio::awaitable<void> sasl_fail(std::string_view condition) {
    scram_.reset();
    scram_started_ = false;
    ++auth_failures_;
    if (ctx_.metrics) ctx_.metrics->auth_failure();
    spdlog::info("c2s {}: SASL {} failed ({}) for '{}'", remote_, mechanism_, condition,
                 pending_user_);
    send(sasl_failure(condition));
    if (auth_failures_ >= ctx_.config.c2s.max_auth_failures)
      close_with(StreamError::kPolicyViolation, "Too many failed authentication attempts");
    co_return;
  }

  bool authzid_ok(std::string_view authzid, const std::string& user) const {
    if (authzid.empty()) return true;
    auto j = core::Jid::parse(authzid);
    return j && j->is_bare() && j->local() == user && j->domain() == domain_;
  }

  asio::awaitable<void> sasl_plain(const std::string& data) {
    auto msg = sasl::parse_plain(data);
    if (!msg) {
      co_await sasl_fail("malformed-request");
      co_return;
    }
    auto user = core::nodeprep(msg->authcid);
    pending_user_ = msg->authcid;
    if (!user) {
      co_await sasl_fail("not-authorized");
      co_return;
    }
    if (!authzid_ok(msg->authzid, *user)) {
      co_await sasl_fail("invalid-authzid");
      co_return;
    }
    std::string domain = domain_, password = msg->password, username = *user;
    auto job1 = [=](storage::Storage& st) {
      std::optional<std::string> did;  // set when the password is right
      auto acct = st.get_account(domain, username);
      if (acct && sasl::verify_password(sasl::ScramHash::kSha256, acct->sha256, password))
        did = acct->did;
      return did;
    };
    auto did = co_await ctx_.worker.run(std::move(job1));
    if (!did) {
      co_await sasl_fail("not-authorized");
      co_return;
    }
    account_did_ = *did;
    sasl_success(username, {});
  }

  asio::awaitable<void> scram_first(const std::string& data) {
    scram_started_ = true;
    auto user = scram_->client_first(data);
    if (!user) {
      co_await sasl_fail(scram_->error());
      co_return;
    }
    pending_user_ = *user;
    auto node = core::nodeprep(*user);
    std::optional<sasl::ScramCredentials> creds;
    if (node && authzid_ok(scram_->authzid(), *node)) {
      std::string domain = domain_, username = *node;
      auto hash = scram_hash_;
      auto job2 = [=](storage::Storage& st) {
        std::pair<std::optional<sasl::ScramCredentials>, std::string> c;  // with the DID
        if (auto acct = st.get_account(domain, username)) {
          c.first = hash == sasl::ScramHash::kSha1 ? acct->sha1 : acct->sha256;
          c.second = acct->did;
        }
        if (c.first && c.first->empty()) c.first.reset();
        return c;
      };
      auto found = co_await ctx_.worker.run(std::move(job2));
      creds = std::move(found.first);
      account_did_ = std::move(found.second);
    }
    if (closing_) co_return;
    Element ch("challenge", std::string(xml::ns::kSasl));
    ch.add_text(core::base64_encode(scram_->server_first(creds)));
    send(ch);
  }

  asio::awaitable<void> scram_final(const std::string& data) {
    auto fin = scram_->client_final(data);
    if (!fin) {
      co_await sasl_fail(scram_->error());
      co_return;
    }
    auto user = core::nodeprep(pending_user_);
    sasl_success(*user, fin->server_final);
  }

  void sasl_success(const std::string& username, const std::string& additional) {
    scram_.reset();
    username_ = username;
    authenticated_ = true;
    Element s("success", std::string(xml::ns::kSasl));
    if (!additional.empty()) s.add_text(core::base64_encode(additional));
    send(s);
    spdlog::info("c2s {}: authenticated {}@{} with {} over {}", remote_, username_, domain_,
                 mechanism_, stream_->tls_description());
    stream_->reset_parser();
    reset_ = true;
    restart_expected_ = true;
    header_sent_ = false;  // the restarted stream needs its own header, even for an error
  }

  // --- Resource binding (RFC 6120 §7) ---
  void bind(const Element& iq) {
    const Element* b = iq.child("bind", xml::ns::kBind);
    std::string requested = b->child_text("resource", xml::ns::kBind);
    std::optional<core::Jid> full;
    auto bare = core::Jid::from_parts(username_, domain_);
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
    did = account_did_;
    bound_ = true;
    in_router_ = true;
    if (ctx_.metrics) ctx_.metrics->session_opened();
    deadline_.cancel();
    if (router::LocalSession* old = ctx_.router.add(this)) {
      // RFC 6120 §7.7.2.2: the new session takes over the resource.
      old->close_with(StreamError::kConflict, "Replaced by a new connection");
    }
    Element result = xml::make_iq_result(iq);
    result.remove_attr("to");
    result.add_child("bind", std::string(xml::ns::kBind))
        .add_child("jid", std::string(xml::ns::kBind))
        .add_text(jid_.str());
    send(result);
    spdlog::info("c2s {}: bound {}", remote_, jid_.str());
  }

  // --- Stanzas ---
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
    if (el.name() == "iq" && (el.attr("type") == "get" || el.attr("type") == "set") &&
        el.child("query", xml::ns::kRegister) && (!el.has_attr("to") || el.attr("to") == domain_)) {
      co_await register_authenticated(el);
      co_return;
    }
    ctx_.im.from_client(std::move(el));
  }

  // --- XEP-0077 ---
  Element register_form(const Element& iq) {
    Element r = xml::make_iq_result(iq);
    r.remove_attr("to");
    r.remove_attr("from");
    auto& q = r.add_child("query", std::string(xml::ns::kRegister));
    q.add_child("instructions", std::string(xml::ns::kRegister))
        .add_text("Choose a username and password to register with this server.");
    q.add_child("username", std::string(xml::ns::kRegister));
    q.add_child("password", std::string(xml::ns::kRegister));
    return r;
  }

  Element local_error(const Element& iq, core::StanzaError cond, std::string_view text = {}) {
    Element e = xml::make_error_reply(iq, cond, text);
    e.remove_attr("to");
    e.remove_attr("from");
    return e;
  }

  asio::awaitable<void> register_unauthenticated(const Element& iq) {
    if (!ctx_.config.c2s.allow_registration) {
      send(local_error(iq, core::StanzaError::kServiceUnavailable, "Registration is disabled"));
      co_return;
    }
    auto type = iq.attr("type");
    if (type == "get") {
      send(register_form(iq));
      co_return;
    }
    if (type != "set") {
      send(local_error(iq, core::StanzaError::kBadRequest));
      co_return;
    }
    const Element* q = iq.child("query", xml::ns::kRegister);
    auto user = core::nodeprep(q->child_text("username"));
    auto password = core::saslprep(q->child_text("password"));
    if (!user || user->empty() || !password || password->empty()) {
      send(local_error(iq, core::StanzaError::kNotAcceptable,
                       "A username and password are required"));
      co_return;
    }
    storage::Account acct;
    acct.domain = domain_;
    acct.username = *user;
    std::string pw = *password;
    auto job3 = [acct, pw](storage::Storage& st) mutable {
      acct.sha1 = sasl::make_credentials(sasl::ScramHash::kSha1, pw);
      acct.sha256 = sasl::make_credentials(sasl::ScramHash::kSha256, pw);
      return st.create_account(acct);
    };
    bool created = co_await ctx_.worker.run(std::move(job3));
    if (!created) {
      send(local_error(iq, core::StanzaError::kConflict, "The username is taken"));
      co_return;
    }
    spdlog::info("c2s {}: registered {}@{}", remote_, *user, domain_);
    Element r = xml::make_iq_result(iq);
    r.remove_attr("to");
    r.remove_attr("from");
    send(r);
  }

  asio::awaitable<void> register_authenticated(const Element& iq) {
    const Element* q = iq.child("query", xml::ns::kRegister);
    if (iq.attr("type") == "get") {
      Element r = xml::make_iq_result(iq);
      auto& rq = r.add_child("query", std::string(xml::ns::kRegister));
      rq.add_child("registered", std::string(xml::ns::kRegister));
      rq.add_child("username", std::string(xml::ns::kRegister)).add_text(username_);
      deliver(r);
      co_return;
    }
    std::string domain = domain_, username = username_;
    if (q->child("remove", xml::ns::kRegister)) {
      auto job4 = [=](storage::Storage& st) { return st.delete_account(domain, username); };
      bool removed = co_await ctx_.worker.run(std::move(job4));
      if (!removed) {
        deliver(xml::make_error_reply(iq, core::StanzaError::kItemNotFound));
        co_return;
      }
      spdlog::info("c2s {}: account {}@{} removed by its owner", remote_, username, domain);
      deliver(xml::make_iq_result(iq));
      for (auto* s : ctx_.router.sessions_of(jid_.bare()))
        if (s != this) s->close_with(StreamError::kNotAuthorized, "Account removed");
      close_gracefully();
      co_return;
    }
    auto user = core::nodeprep(q->child_text("username"));
    auto password = core::saslprep(q->child_text("password"));
    if (!user || *user != username_ || !password || password->empty()) {
      deliver(xml::make_error_reply(iq, core::StanzaError::kBadRequest));
      co_return;
    }
    std::string pw = *password;
    auto job5 = [=](storage::Storage& st) {
      return st.set_credentials(domain, username,
                                sasl::make_credentials(sasl::ScramHash::kSha1, pw),
                                sasl::make_credentials(sasl::ScramHash::kSha256, pw));
    };
    bool changed = co_await ctx_.worker.run(std::move(job5));
    if (!changed) {
      deliver(xml::make_error_reply(iq, core::StanzaError::kItemNotFound));
      co_return;
    }
    spdlog::info("c2s {}: password changed for {}@{}", remote_, username, domain);
    deliver(xml::make_iq_result(iq));
  }

  C2sContext& ctx_;
  bool direct_tls_;
  asio::steady_timer deadline_;
  std::shared_ptr<stream::XmlStream> stream_;
  std::string remote_;
  std::string domain_;
  std::string stream_id_;
  std::string username_;
  std::string pending_user_;
  std::string account_did_;  // read with the credentials; copied to the bound session
  std::string mechanism_;
  core::Jid jid_;
  std::optional<sasl::ScramServer> scram_;
  sasl::ScramHash scram_hash_ = sasl::ScramHash::kSha256;
  bool scram_started_ = false;
  std::uint32_t auth_failures_ = 0;
  bool header_sent_ = false;
  bool restart_expected_ = false;
  bool authenticated_ = false;
  bool bound_ = false;
  bool in_router_ = false;
  bool closing_ = false;
  bool reset_ = false;
};

}  // namespace

std::size_t live_sessions() {
  return g_live_sessions;
}

void start_session(C2sContext& ctx, asio::ip::tcp::socket socket, bool direct_tls) {
  auto executor = socket.get_executor();
  auto session = std::make_shared<Session>(ctx, std::move(socket), direct_tls);
  net::spawn_logged(executor, session->run(), "c2s session");
}

}  // namespace waddle::c2s
