// S2S streams and the outbound pool (spec: connection.rs, dialback.rs, pool.rs): RFC 6120
// server streams with mandatory TLS, SASL EXTERNAL (XEP-0178) and Server Dialback (XEP-0220,
// keys per XEP-0185) in all three roles, anti-spoofing of inbound stanzas, per-domain queues
// with the retry policy, bounces that say what failed, idle close and ping health checks.
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/base64.h"
#include "core/ids.h"
#include "core/jid.h"
#include "metrics/metrics.h"
#include "net/listen.h"
#include "net/tls.h"
#include "s2s/auth.h"
#include "s2s/dns.h"
#include "s2s/policy.h"
#include "s2s/s2s.h"
#include "stream/event_reader.h"
#include "stream/negotiation.h"
#include "stream/receiving.h"
#include "stream/xml_stream.h"
#include "xml/stanza.h"

namespace waddle::s2s {
namespace asio = boost::asio;
using asio::ip::tcp;
using core::StanzaError;
using core::StreamError;
using Clock = std::chrono::steady_clock;
using xml::Element;

namespace {

constexpr std::string_view kPingIdPrefix = "waddle-s2s-ping-";

std::string hex_id() {
  return core::random_hex(12);
}

std::string db_element(std::string_view name, std::string_view from, std::string_view to,
                       std::string_view type, std::string_view id, std::string_view key) {
  std::string out = "<db:" + std::string(name);
  auto attr = [&](std::string_view n, std::string_view v) {
    if (v.empty()) return;
    out += ' ';
    out += n;
    out += "='";
    xml::escape(out, v);
    out += '\'';
  };
  attr("from", from);
  attr("to", to);
  attr("id", id);
  attr("type", type);
  if (key.empty()) return out + "/>";
  out += '>';
  xml::escape(out, key);
  return out + "</db:" + std::string(name) + ">";
}

// The error kinds of the specification's S2SError.
enum class Failure {
  kNone,
  kRouting,
  kRateLimit,
  kDns,
  kConnectionRefused,
  kTls,
  kDialback,
  kStreamError,
  kPolicy,
  kTimeout
};

std::string_view failure_name(Failure f) {
  switch (f) {
    case Failure::kNone:
      return "none";
    case Failure::kRouting:
      return "routing";
    case Failure::kRateLimit:
      return "rate_limit";
    case Failure::kDns:
      return "dns";
    case Failure::kConnectionRefused:
      return "connection_refused";
    case Failure::kTls:
      return "tls";
    case Failure::kDialback:
      return "dialback";
    case Failure::kStreamError:
      return "stream_error";
    case Failure::kPolicy:
      return "policy";
    case Failure::kTimeout:
      return "timeout";
  }
  return "unknown";
}

// "condition: text" of a received <stream:error/>.
std::string describe_stream_error(const Element& e) {
  std::string cond = "undefined-condition", text;
  for (const auto* c : e.children()) {
    if (c->name() == "text")
      text = c->text();
    else if (c->ns() == ns::kStreams)
      cond = c->name();
  }
  return text.empty() ? cond : cond + ": " + text;
}

}  // namespace

// ---------------------------------------------------------------------------------------
struct S2sService::Impl : std::enable_shared_from_this<S2sService::Impl> {
  struct Link;     // outbound (local, remote) pair with its queue
  struct Inbound;  // one accepted stream

  const core::Config& config;
  router::Router& router;
  net::TlsContexts& tls;
  asio::io_context& io;
  metrics::S2sMetrics* metrics;
  Resolver resolver;
  Policy policy;
  RateLimiter limiter;
  double bw_budget = 0;  // bytes that may still be read now (may go negative: a debt)
  Clock::time_point bw_last = Clock::now();
  std::string secret;
  bool stopping = false;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<Link>> links;
  std::set<std::shared_ptr<Inbound>> inbound;
  std::size_t verifying = 0;                  // dialback verification connections in flight
  std::vector<std::string>* trace = nullptr;  // `check s2s`: every step, for the operator

  template <class... Args>
  void note(fmt::format_string<Args...> f, Args&&... args) {
    if (trace) trace->push_back(fmt::format(f, std::forward<Args>(args)...));
  }

  Impl(const core::Config& c, router::Router& r, net::TlsContexts& t, asio::io_context& i,
       metrics::S2sMetrics* m)
      : config(c),
        router(r),
        tls(t),
        io(i),
        metrics(m),
        resolver(Resolver::Options{c.dns.nameservers}),
        policy(c.s2s.policy, c.s2s.allowed_domains, c.s2s.blocked_domains),
        limiter({c.s2s.stanza_rate, c.s2s.connection_rate, c.s2s.throttle_strikes}),
        bw_budget(static_cast<double>(c.s2s.bandwidth_limit)),
        secret(load_secret(c)) {}

  static std::string load_secret(const core::Config& c) {
    if (!c.s2s.dialback_secret.empty()) return c.s2s.dialback_secret;
    namespace fs = std::filesystem;
    fs::path p = fs::path(c.server.data_dir) / "dialback.secret";
    std::string s;
    if (std::ifstream in(p); in && std::getline(in, s) && !s.empty()) return s;
    s = hex_id() + hex_id();
    fs::create_directories(p.parent_path());
    std::ofstream(p) << s << "\n";
    fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
    return s;
  }

  // Charges `bytes` read to the global S2S bandwidth budget; returns how long to stop reading.
  Clock::duration bandwidth_pause(std::uint64_t bytes) {
    const double rate = static_cast<double>(config.s2s.bandwidth_limit);
    if (rate <= 0) return {};
    auto now = Clock::now();
    bw_budget =
        std::min(rate, bw_budget + rate * std::chrono::duration<double>(now - bw_last).count());
    bw_last = now;
    bw_budget -= static_cast<double>(bytes);
    if (bw_budget >= 0) return {};
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(-bw_budget / rate));
  }

  bool dialback_without_certificate_allowed(const std::string& remote) const {
    if (config.s2s.allow_unverified_dialback) return true;
    const auto& l = config.s2s.unverified_dialback_domains;
    return std::find(l.begin(), l.end(), remote) != l.end();
  }

  void count_error(const std::string& domain, Failure f, const std::string& text) {
    spdlog::warn("s2s {}: {} error: {}", domain, failure_name(f), text);
    if (!metrics) return;
    using K = metrics::S2sError;
    K kind = K::kStreamError;
    switch (f) {
      case Failure::kDns:
        kind = K::kDns;
        break;
      case Failure::kConnectionRefused:
        kind = K::kConnectionRefused;
        break;
      case Failure::kTls:
        kind = K::kTls;
        break;
      case Failure::kDialback:
        kind = K::kDialback;
        break;
      case Failure::kPolicy:
        kind = K::kPolicy;
        break;
      case Failure::kTimeout:
        kind = K::kTimeout;
        break;
      case Failure::kRouting:
        kind = K::kRouting;
        break;
      case Failure::kRateLimit:
        kind = K::kRateLimit;
        break;
      case Failure::kNone:
      case Failure::kStreamError:
        kind = K::kStreamError;
        break;
    }
    metrics->error(domain, kind);
  }

  template <class A>
  void spawn(A a) {
    net::spawn_logged(io.get_executor(), std::move(a), "s2s task");
  }

  // DNS through the resolver thread, back on the reactor.
  asio::awaitable<Resolution> resolve(std::string domain) {
    auto init = [this](auto handler, std::string d) {
      auto guard = asio::make_work_guard(io);
      auto h = std::make_shared<decltype(handler)>(std::move(handler));
      resolver.resolve_server(d, [h, guard](Resolution r) mutable {
        auto ex = guard.get_executor();
        asio::post(ex, [h, r = std::move(r)]() mutable { std::move (*h)(std::move(r)); });
      });
    };
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(Resolution)>(
        init, asio::use_awaitable, std::move(domain));
  }

  // ------------------------------------------------------------------- outbound streams
  struct Outcome {
    Failure failure = Failure::kNone;
    std::string text;
    bool definitive = false;  // the peer refused outright: retrying cannot help
  };

  // What several local domains share when they multiplex on one outbound stream (XEP-0220
  // §2.6, "piggybacking"): the stream id the dialback keys are bound to, whether the peer
  // offers dialback there, the answers awaited, and a signal for when the stream ends.
  struct Mux {
    std::string stream_id;
    bool dialback = false;
    bool done = false;
    Clock::time_point last_activity = Clock::now();
    std::map<std::string, std::function<void(bool, std::string)>> waiting;  // by local domain
    asio::steady_timer closed;  // cancelled when the stream ends
    explicit Mux(asio::io_context& io) : closed(io, asio::steady_timer::time_point::max()) {}
  };

  // A connected, TLS-protected, authenticated outbound stream.
  struct OutStream {
    std::shared_ptr<stream::XmlStream> stream;
    std::shared_ptr<stream::EventReader> reader;
    std::string auth;
    bool cert_valid = false;
    std::shared_ptr<Mux> mux;
  };

  // Connects to `remote` for `local`: DNS, TCP, TLS, stream negotiation and authentication
  // (or, with verify set, only up to a TLS-protected stream for a db:verify).
  asio::awaitable<std::pair<Outcome, OutStream>> connect(std::string local, std::string remote,
                                                         bool verify_only, std::string key) {
    Outcome last{Failure::kDns, "no address"};
    auto res = co_await resolve(remote);
    for (const auto& ep : res.endpoints)
      note("DNS: {} -> {} port {} ({})", remote, ep.address, ep.port,
           ep.direct_tls ? "_xmpps-server SRV target " + ep.host + ", direct TLS"
           : ep.srv      ? "_xmpp-server SRV target " + ep.host
                         : std::string("no SRV record: A/AAAA of the domain"));
    if (!res.error.empty() || res.endpoints.empty()) {
      note("DNS: {}", res.error.empty() ? "no address for " + remote : res.error);
      co_return std::make_pair(
          Outcome{Failure::kDns, res.error.empty() ? "no address for " + remote : res.error},
          OutStream{});
    }
    for (const auto& ep : res.endpoints) {
      tcp::socket socket(io);
      boost::system::error_code ec;
      auto addr = asio::ip::make_address(ep.address, ec);
      if (ec) continue;
      if (cancelled.contains(key)) break;
      connecting[key] = [&socket] {
        boost::system::error_code ignored;
        socket.close(ignored);
      };
      std::tie(ec) = co_await socket.async_connect(tcp::endpoint(addr, ep.port),
                                                   asio::as_tuple(asio::use_awaitable));
      connecting.erase(key);
      std::string where = ep.host + " (" + ep.address + " port " + std::to_string(ep.port) + ")";
      if (ec) {
        last = {
            ec == asio::error::operation_aborted ? Failure::kTimeout : Failure::kConnectionRefused,
            "cannot connect to " + where + ": " + ec.message()};
        note("TCP: {}", last.text);
        continue;
      }
      note("TCP: connected to {}", where);
      auto s = std::make_shared<stream::XmlStream>(std::move(socket), tls.s2s_client(local),
                                                   stream::server_parser_limits(config));
      connecting[key] = [s] { s->close(); };
      auto outcome = co_await negotiate(s, local, remote, ep.direct_tls, verify_only, where);
      connecting.erase(key);
      if (outcome.first.failure == Failure::kNone) co_return outcome;
      note("failed: {}", outcome.first.text);
      s->close();
      last = outcome.first;
    }
    co_return std::make_pair(last, OutStream{});
  }  // Connections being established, by key, with how to abort them (connect_timeout,
  // shutdown); `cancelled` keys stop trying further endpoints.
  std::map<std::string, std::function<void()>> connecting;
  // (local, remote) pairs a peer refused to multiplex, until when not to ask again.
  std::map<std::pair<std::string, std::string>, Clock::time_point> mux_refused;
  // Links waiting, by remote domain, for another local domain's stream to that peer to be
  // opened (or to fail), so as to multiplex on it rather than open a second one meanwhile.
  std::multimap<std::string, std::shared_ptr<asio::steady_timer>> dial_waiters;
  // Whether each peer's last stream allowed multiplexing (dialback with errors): where it did
  // not, a second local domain opens its own stream at once instead of waiting.
  std::map<std::string, bool> peer_shares;
  std::set<std::string> cancelled;

  // Arms a deadline that aborts the connection attempt registered under `key`.
  void arm_deadline(asio::steady_timer& t, const std::string& key, bool& timed_out) {
    t.expires_after(config.s2s.connect_timeout);
    t.async_wait([this, key, &timed_out](boost::system::error_code ec) {
      if (ec) return;
      timed_out = true;
      cancelled.insert(key);
      if (auto it = connecting.find(key); it != connecting.end()) it->second();
    });
  }

  asio::awaitable<std::pair<Outcome, OutStream>> negotiate(std::shared_ptr<stream::XmlStream> s,
                                                           std::string local, std::string remote,
                                                           bool direct_tls, bool verify_only,
                                                           std::string where) {
    OutStream out;
    out.stream = s;
    out.reader = std::make_shared<stream::EventReader>(s);
    auto fail = [&](Failure f, std::string text) {
      return std::make_pair(Outcome{f, std::move(text)}, OutStream{});
    };
    // The stream as negotiated last: other local domains may multiplex on it later.
    auto done = [&](const std::string& id, const Element& features) {
      out.mux = std::make_shared<Mux>(io);
      out.mux->stream_id = id;
      // Only with dialback errors (XEP-0220 §2.4): a peer without them may answer a refused
      // additional pair by closing the whole stream.
      const Element* db = features.child("dialback", ns::kDialbackFeature);
      out.mux->dialback = db && db->child("errors", ns::kDialbackFeature);
      return std::make_pair(Outcome{}, out);
    };
    if (direct_tls) {
      bool ok = co_await s->client_handshake(remote);
      if (!ok)
        co_return fail(s->closed() ? Failure::kTimeout : Failure::kTls,
                       "TLS handshake with " + where + " failed: " + s->tls_error());
    }
    bool tried_external = false;
    for (int round = 0; round < 6; ++round) {
      s->send(stream::server_header(local, remote, {}));
      auto ev = co_await out.reader->next();
      if (!ev || ev->kind != xml::StreamEvent::Kind::kStreamOpen)
        co_return fail(s->closed() ? Failure::kTimeout : Failure::kStreamError,
                       where + " closed the stream before its header");
      std::string stream_id(ev->element.attr("id"));
      if (ev->default_ns != xml::ns::kServer)
        co_return fail(Failure::kStreamError,
                       where + " did not answer with a jabber:server stream");
      auto fev = co_await out.reader->next();
      if (!fev || fev->kind != xml::StreamEvent::Kind::kElement)
        co_return fail(Failure::kStreamError, where + " sent no stream features");
      Element& f = fev->element;
      if (f.is("error", xml::ns::kStream)) {
        co_return fail(Failure::kStreamError,
                       where + " closed the stream: " + describe_stream_error(f));
      }
      if (!f.is("features", xml::ns::kStream))
        co_return fail(Failure::kStreamError, where + " sent " + f.name() + " instead of features");
      if (!s->tls_active()) {
        if (!f.child("starttls", xml::ns::kTls))
          co_return fail(Failure::kTls, where + " does not offer STARTTLS (TLS is required)");
        s->send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        auto p = co_await out.reader->next();
        if (!p || !p->element.is("proceed", xml::ns::kTls))
          co_return fail(Failure::kTls, where + " refused STARTTLS");
        bool ok = co_await s->client_handshake(remote);
        if (!ok)
          co_return fail(s->closed() ? Failure::kTimeout : Failure::kTls,
                         "TLS handshake with " + where + " failed: " + s->tls_error() +
                             (!s->closed() && config.s2s.tls_min_version == "1.3"
                                  ? " (this server requires TLS 1.3)"
                                  : ""));
        s->reset_parser();
        out.reader->clear();
        continue;
      }
      out.cert_valid =
          s->peer_chain_valid() && certificate_matches_domain(s->peer_certificate(), remote);
      if (out.auth.empty()) {
        note("TLS: {}", s->tls_description());
        std::string verdict;
        if (out.cert_valid)
          verdict = "valid for " + remote;
        else if (!s->peer_certificate())
          verdict = "none presented";
        else if (s->peer_chain_valid())
          verdict = "not valid for " + remote + ": trusted chain, but the name does not match";
        else
          verdict = "not valid for " + remote + ": untrusted chain (" + s->peer_verify_error() +
                    "; self-signed, or a CA that is not in the CA bundle)";
        note("certificate: {}", verdict);
        std::string offered;
        if (const Element* m = f.child("mechanisms", xml::ns::kSasl))
          for (const auto* x : m->children("mechanism", xml::ns::kSasl))
            offered += "SASL " + x->text() + ", ";
        if (f.child("dialback", ns::kDialbackFeature)) offered += "dialback";
        note("authentication offered: {}", offered.empty() ? std::string("none") : offered);
      }
      if (verify_only) {
        out.auth = "verify";
        co_return std::make_pair(Outcome{}, out);
      }
      if (!out.cert_valid && !dialback_without_certificate_allowed(remote)) {
        co_return fail(
            Failure::kTls,
            "the certificate of " + where + " is not valid for " + remote +
                (s->peer_chain_valid() ? " (name mismatch)"
                                       : " (untrusted chain: " + s->peer_verify_error() + ")"));
      }
      if (!out.auth.empty()) co_return done(stream_id, f);  // after the SASL restart
      const Element* mechs = f.child("mechanisms", xml::ns::kSasl);
      bool external = false;
      if (mechs && !tried_external)
        for (const auto* m : mechs->children("mechanism", xml::ns::kSasl))
          external |= m->text() == "EXTERNAL";
      if (external) {
        tried_external = true;
        s->send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" +
                core::base64_encode(local) + "</auth>");
        auto r = co_await out.reader->next();
        if (r && r->element.is("success", xml::ns::kSasl)) {
          out.auth = "SASL EXTERNAL";
          note("authenticated with SASL EXTERNAL");
          s->reset_parser();
          out.reader->clear();
          continue;
        }
        spdlog::info("s2s {} -> {}: SASL EXTERNAL failed, trying dialback", local, remote);
      }
      bool dialback = f.child("dialback", ns::kDialbackFeature) != nullptr;
      if (!dialback)
        co_return fail(Failure::kDialback,
                       where + " offers neither SASL EXTERNAL for us nor dialback");
      std::string key = dialback_key(secret, remote, local, stream_id);
      s->send(db_element("result", local, remote, {}, {}, key));
      for (;;) {
        auto r = co_await out.reader->next();
        if (!r) co_return fail(Failure::kDialback, where + " closed the stream during dialback");
        if (r->kind != xml::StreamEvent::Kind::kElement) continue;
        Element& e = r->element;
        if (e.is("result", ns::kDialback)) {
          if (e.attr("type") == "valid") {
            out.auth = "dialback";
            note("authenticated with dialback");
            co_return done(stream_id, f);
          }
          // Keep the peer's reason: operators need it more than the condition.
          std::string why;
          bool definitive = false;
          if (const Element* err = e.child("error")) {
            const Element* cond = err->first_child();
            why = " (" + (cond ? cond->name() : std::string("error"));
            std::string text = err->child_text("text");
            if (!text.empty()) why += ": " + text;
            why += ")";
            definitive = cond && (cond->name() == "not-authorized" || cond->name() == "forbidden");
          }
          auto refused = fail(Failure::kDialback, remote + " refused our dialback key" + why);
          refused.first.definitive = definitive;
          co_return refused;
        }
        if (e.is("error", xml::ns::kStream)) {
          co_return fail(Failure::kDialback,
                         where + " closed the stream during dialback: " + describe_stream_error(e));
        }
        if (e.is("verify", ns::kDialback)) answer_verify(*s, e);
      }
    }
    co_return fail(Failure::kStreamError, where + ": too many stream restarts");
  }

  // Authoritative role (XEP-0220 §2.4): answer a db:verify about a key we generated.
  void answer_verify(stream::XmlStream& s, const Element& v) {
    std::string receiving(v.attr("from")), originating(v.attr("to")), id(v.attr("id"));
    bool valid = router.is_local(originating) &&
                 dialback_key_equal(dialback_key(secret, receiving, originating, id), v.text());
    spdlog::info("s2s: dialback verify from {} for {} (stream {}): {}", receiving, originating, id,
                 valid ? "valid" : "invalid");
    if (metrics) metrics->dialback_verify(receiving, valid);
    s.send(db_element("verify", originating, receiving, valid ? "valid" : "invalid", id, {}));
  }

  // ------------------------------------------------------------------- the pool
  struct Link : std::enable_shared_from_this<Link> {
    Impl& impl;
    std::string local, remote;
    std::deque<Element> queue;
    enum class State { kIdle, kConnecting, kReady } state = State::kIdle;
    OutStream out;
    Clock::time_point last_activity = Clock::now();
    Clock::time_point last_rx = Clock::now();
    std::optional<Clock::time_point> ping_sent;
    std::string ping_id;
    bool dialing = false;  // opening a stream of its own (DNS, TCP, TLS, authentication)
    std::optional<metrics::CloseReason> close_reason;  // set when we close the stream
    asio::steady_timer timer;
    Link(Impl& i, std::string l, std::string r)
        : impl(i), local(std::move(l)), remote(std::move(r)), timer(i.io) {}
  };

  void send(Element stanza) {
    auto from = core::Jid::parse(stanza.attr("from"));
    auto to = core::Jid::parse(stanza.attr("to"));
    if (!from || !to) return;
    if (stopping)
      return router.bounce(stanza, StanzaError::kRemoteServerNotFound, "Server is shutting down");
    if (!config.s2s.enabled)
      return router.bounce(stanza, StanzaError::kRemoteServerNotFound,
                           "Federation is disabled on this server");
    if (!policy.allows(to->domain()))
      return router.bounce(
          stanza, StanzaError::kPolicyViolation,
          "Federation with " + to->domain() + " is not allowed by this server's policy");
    if (!router.is_local(from->domain())) return;  // never relay for other domains
    auto key = std::make_pair(from->domain(), to->domain());
    if (!links.contains(key)) {
      // One stream per (local, remote) pair; max_connections_per_domain caps how many of
      // them one remote domain gets (several local domains, e.g. virtual hosts).
      // Streams, not pairs: pairs multiplexed on one stream count once.
      std::set<const stream::XmlStream*> streams;
      std::size_t to_remote = 0;
      for (const auto& [k, l] : links) {
        if (k.second != key.second) continue;
        if (l->out.stream)
          streams.insert(l->out.stream.get());
        else
          ++to_remote;
      }
      to_remote += streams.size();
      if (to_remote >= config.s2s.max_connections_per_domain)
        return router.bounce(
            stanza, StanzaError::kResourceConstraint,
            "Too many connections to " + to->domain() + " (max_connections_per_domain)");
    }
    auto& link = links[key];
    if (!link) link = std::make_shared<Link>(*this, key.first, key.second);
    if (link->state == Link::State::kReady && link->out.stream && !link->out.stream->closed() &&
        !(link->out.mux && link->out.mux->done)) {
      write(*link, stanza);
      return;
    }
    if (link->queue.size() >= config.s2s.queue_size)
      return router.bounce(stanza, StanzaError::kResourceConstraint,
                           "Too many stanzas are waiting for " + to->domain());
    link->queue.push_back(std::move(stanza));
    if (metrics) metrics->queued(link->remote);
    if (link->state == Link::State::kIdle) {
      link->state = Link::State::kConnecting;
      spawn(drive(link));
    }
  }

  void write(Link& link, const Element& stanza) {
    link.out.stream->send(xml::serialize_stanza(stanza, xml::ns::kServer));
    link.last_activity = Clock::now();
    if (link.out.mux) link.out.mux->last_activity = link.last_activity;
    if (metrics) metrics->stanza_sent(link.remote);
  }

  void bounce_queue(Link& link, Failure f, const std::string& text) {
    auto cond = f == Failure::kTimeout ? StanzaError::kRemoteServerTimeout
                                       : StanzaError::kRemoteServerNotFound;
    auto queued = std::move(link.queue);
    link.queue.clear();
    if (!queued.empty())
      spdlog::info("s2s {} -> {}: bouncing {} queued stanzas: {}", link.local, link.remote,
                   queued.size(), text);
    if (metrics && !queued.empty()) metrics->dequeued(link.remote, queued.size());
    for (auto& st : queued) {
      if (metrics && xml::may_bounce(st)) metrics->bounced(link.remote, core::to_string(cond));
      router.bounce(st, cond, text);
    }
  }

  // Establishes the link with the retry policy, then serves it until it closes.
  asio::awaitable<void> drive(std::shared_ptr<Link> link) {
    const auto& retry = config.s2s.retry;
    std::uint32_t attempt = 0;
    for (;;) {
      if (stopping) {
        bounce_queue(*link, Failure::kStreamError, "Server is shutting down");
        break;
      }
      // Another local domain may already have a stream to this peer: authenticate on it.
      bool multiplexed = co_await multiplex(link);
      if (multiplexed) {
        if (link->queue.empty() || stopping) break;
        continue;
      }
      if (stopping) continue;  // bounced at the top of the loop
      // connect_timeout bounds DNS + TCP + TLS + authentication.
      bool timed_out = false;
      asio::steady_timer deadline(io);
      const std::string key = "out:" + link->local + ":" + link->remote;
      arm_deadline(deadline, key, timed_out);
      std::pair<Outcome, OutStream> connected;
      {
        // Links waiting to multiplex on this stream resume once it is set up or has failed,
        // on every way out of connect() (timer completions are posted, never run inline).
        link->dialing = true;
        struct DialDone {
          Impl& impl;
          Link& link;
          ~DialDone() {
            link.dialing = false;
            auto [first, last] = impl.dial_waiters.equal_range(link.remote);
            for (auto w = first; w != last; ++w) w->second->cancel();
          }
        } dial_done{*this, *link};
        connected = co_await connect(link->local, link->remote, false, key);
      }
      Outcome outcome = connected.first;
      if (outcome.failure == Failure::kNone)
        peer_shares[link->remote] = connected.second.mux && connected.second.mux->dialback;
      OutStream out = connected.second;
      deadline.cancel();
      cancelled.erase(key);
      if (timed_out && outcome.failure != Failure::kNone) {
        outcome.failure = Failure::kTimeout;
        outcome.text = "timed out after " + core::format_duration(config.s2s.connect_timeout) +
                       " connecting to " + link->remote + " (" + outcome.text + ")";
      }
      if (outcome.failure == Failure::kNone) {
        attempt = 0;
        link->out = out;
        link->state = Link::State::kReady;
        link->last_activity = link->last_rx = Clock::now();
        link->ping_sent.reset();
        spdlog::info("s2s {} -> {}: authenticated with {} over {} (peer certificate {})",
                     link->local, link->remote, out.auth, out.stream->tls_description(),
                     out.cert_valid ? "valid" : "not verified");
        auto queued = std::move(link->queue);
        link->queue.clear();
        if (metrics) {
          metrics->dequeued(link->remote, queued.size());
          metrics->connection_opened(link->remote, metrics::Direction::kOut);
          metrics->authenticated(link->remote, metrics::Direction::kOut,
                                 out.auth == "SASL EXTERNAL" ? metrics::AuthMethod::kSaslExternal
                                                             : metrics::AuthMethod::kDialback);
        }
        for (auto& st : queued) write(*link, st);
        co_await serve(link);
        if (metrics) metrics->connection_closed(link->remote, metrics::Direction::kOut);
        link->state = Link::State::kConnecting;
        link->out = OutStream{};
        if (link->queue.empty() || stopping) break;
        continue;  // stanzas arrived while it was closing: reconnect
      }
      count_error(link->remote, outcome.failure, outcome.text);
      if (outcome.failure == Failure::kPolicy || outcome.definitive ||
          attempt >= retry.max_retries) {
        bounce_queue(*link, outcome.failure, outcome.text);
        break;
      }
      ++attempt;
      auto delay =
          retry_delay(attempt, retry.initial_delay, retry.max_delay, retry.backoff_multiplier);
      spdlog::info("s2s {} -> {}: retry {} of {} in {}", link->local, link->remote, attempt,
                   retry.max_retries, core::format_duration(delay));
      link->timer.expires_after(delay);
      co_await link->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    link->state = Link::State::kIdle;
    if (link->queue.empty()) links.erase(std::make_pair(link->local, link->remote));
  }

  // XEP-0220 §2.6: authenticates link->local on an existing outbound stream to the same
  // peer (opened for another local domain) with a db:result, and then uses that stream until
  // it ends. False when there is none to share, the peer offers no dialback there, or it
  // refuses: the caller opens a stream of its own.
  asio::awaitable<bool> multiplex(std::shared_ptr<Link> link) {
    const auto pair = std::make_pair(link->local, link->remote);
    if (auto r = mux_refused.find(pair); r != mux_refused.end()) {
      if (Clock::now() < r->second) co_return false;
      mux_refused.erase(r);
    }
    auto find_carrier = [&]() -> std::shared_ptr<Link> {
      for (auto& [k, l] : links) {
        if (k.second != link->remote || l == link || l->state != Link::State::kReady) continue;
        const auto& m = l->out.mux;
        if (!l->out.stream || l->out.stream->closed() || !m || m->done || !m->dialback ||
            m->waiting.contains(link->local))
          continue;
        return l;
      }
      return nullptr;
    };
    auto other_dialing = [&] {
      for (auto& [k, l] : links)
        if (k.second == link->remote && l != link && l->dialing) return true;
      return false;
    };
    std::shared_ptr<Link> carrier = find_carrier();
    auto known = peer_shares.find(link->remote);
    const bool may_share = known == peer_shares.end() || known->second;
    const auto give_up = Clock::now() + config.s2s.connect_timeout;
    while (!carrier && may_share && other_dialing() && Clock::now() < give_up) {
      // Another local domain is opening a stream to this peer right now (say both answer
      // the same peer's presence probes): wait for it, up to connect_timeout in all, and
      // share it. A link that waits is not dialing, so two links never wait for each other;
      // when the stream failed and another waiter dials next, wait for that one too.
      auto t = std::make_shared<asio::steady_timer>(io);
      t->expires_at(give_up);
      auto it = dial_waiters.emplace(link->remote, t);
      co_await t->async_wait(asio::as_tuple(asio::use_awaitable));
      dial_waiters.erase(it);
      if (stopping) co_return false;
      carrier = find_carrier();
    }
    if (!carrier) co_return false;
    OutStream out = carrier->out;
    auto mux = out.mux;
    out.stream->send(db_element("result", link->local, link->remote, {}, {},
                                dialback_key(secret, link->remote, link->local, mux->stream_id)));
    asio::steady_timer wait(io);
    wait.expires_after(config.s2s.connect_timeout);
    std::optional<std::pair<bool, std::string>> answer;
    auto on_answer = [&answer, &wait](bool ok, std::string why) {
      answer.emplace(ok, std::move(why));
      wait.cancel();
    };
    mux->waiting[link->local] = on_answer;
    co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
    mux->waiting.erase(link->local);
    if (!answer || !answer->first) {
      // Not tried again for a while, on this stream or the next one.
      mux_refused[pair] = Clock::now() + std::chrono::minutes(10);
      spdlog::info(
          "s2s {} -> {}: not multiplexed on the stream of {} -> {} ({}); opening a "
          "stream of its own",
          link->local, link->remote, carrier->local, carrier->remote,
          answer ? answer->second : std::string("no answer in time"));
      co_return false;
    }
    if (mux->done || out.stream->closed()) co_return false;  // accepted, but the stream ended
    link->out = out;
    link->state = Link::State::kReady;
    link->last_activity = link->last_rx = Clock::now();
    spdlog::info(
        "s2s {} -> {}: authenticated with dialback, multiplexed on the stream of {} -> "
        "{} over {}",
        link->local, link->remote, carrier->local, carrier->remote, out.stream->tls_description());
    auto queued = std::move(link->queue);
    link->queue.clear();
    if (metrics) {
      metrics->dequeued(link->remote, queued.size());
      metrics->authenticated(link->remote, metrics::Direction::kOut,
                             metrics::AuthMethod::kDialbackMultiplexed);
    }
    for (auto& st : queued) write(*link, st);
    if (!mux->done) co_await mux->closed.async_wait(asio::as_tuple(asio::use_awaitable));
    link->state = Link::State::kConnecting;
    link->out = OutStream{};
    co_return true;
  }

  // Reads the outbound stream (stream errors, dialback verifies) and keeps it healthy: idle
  // close, whitespace keepalive and XEP-0199 pings. Returns when the stream is gone.
  asio::awaitable<void> serve(std::shared_ptr<Link> link) {
    auto s = link->out.stream;
    link->close_reason.reset();
    auto close_reason = metrics::CloseReason::kPeer;
    spawn(watchdog(link, s));
    for (;;) {
      auto ev = co_await link->out.reader->next();
      if (!ev) {
        if (link->out.reader->error()) close_reason = metrics::CloseReason::kError;
        break;
      }
      link->last_rx = Clock::now();
      if (ev->kind == xml::StreamEvent::Kind::kStreamClose) {
        s->send("</stream:stream>");
        break;
      }
      if (ev->kind != xml::StreamEvent::Kind::kElement) continue;
      Element& e = ev->element;
      if (e.is("verify", ns::kDialback)) {
        answer_verify(*s, e);
      } else if (e.is("result", ns::kDialback) && link->out.mux) {
        // The answer to a multiplexing request of another local domain.
        auto& waiting = link->out.mux->waiting;
        if (auto it = waiting.find(std::string(e.attr("to")));
            it != waiting.end() && e.attr("from") == link->remote) {
          std::string why(e.attr("type"));
          if (const Element* err = e.child("error"))
            if (const Element* cond = err->first_child()) why += ": " + cond->name();
          auto callback = it->second;
          callback(e.attr("type") == "valid", why);
        }
      } else if (e.is("error", xml::ns::kStream)) {
        count_error(link->remote, Failure::kStreamError,
                    "stream error from peer: " + describe_stream_error(e));
        break;
      }
      // Stanzas are not accepted on an outbound stream (RFC 6120 §4.2: one direction).
    }
    link->state = Link::State::kConnecting;
    if (auto mux = link->out.mux) {
      // Domains multiplexed on this stream lose it too.
      mux->done = true;
      auto waiting = std::move(mux->waiting);
      mux->waiting.clear();
      for (auto& [local, callback] : waiting) callback(false, "the stream closed");
      mux->closed.cancel();
    }
    co_await stream::close_stream(s);
    if (metrics)
      metrics->stream_closed(link->remote, metrics::Direction::kOut,
                             link->close_reason.value_or(close_reason));
    spdlog::info("s2s {} -> {}: stream closed{}", link->local, link->remote,
                 s->end_reason().empty() ? std::string() : " (" + s->end_reason() + ")");
  }

  asio::awaitable<void> watchdog(std::shared_ptr<Link> link, std::shared_ptr<stream::XmlStream> s) {
    asio::steady_timer t(io);
    const auto idle = config.s2s.idle_timeout;
    const auto ping = config.s2s.ping_interval;
    while (!s->closed() && link->out.stream == s) {
      auto now = Clock::now();
      if (link->out.mux)
        link->last_activity = std::max(link->last_activity, link->out.mux->last_activity);
      if (now - link->last_activity >= idle && now - link->last_rx >= idle) {
        spdlog::info("s2s {} -> {}: idle for {}, closing", link->local, link->remote,
                     core::format_duration(idle));
        link->close_reason = metrics::CloseReason::kIdle;
        s->send("</stream:stream>");
        co_await stream::close_stream(s);
        co_return;
      }
      if (link->ping_sent && now - *link->ping_sent >= ping) {
        count_error(
            link->remote, Failure::kTimeout,
            "no answer to a ping in " + core::format_duration(ping) + ": replacing the link");
        link->close_reason = metrics::CloseReason::kPingTimeout;
        s->close();
        co_return;
      }
      if (!link->ping_sent && now - link->last_rx >= ping) {
        link->ping_id = std::string(kPingIdPrefix) + hex_id();
        link->ping_sent = now;
        s->send(" ");  // whitespace keepalive, then an application-level ping
        s->send("<iq type='get' id='" + link->ping_id + "' from='" + link->local + "' to='" +
                link->remote + "'><ping xmlns='urn:xmpp:ping'/></iq>");
      }
      auto next = std::min({link->last_activity + idle, link->last_rx + idle,
                            link->ping_sent ? *link->ping_sent + ping : link->last_rx + ping});
      t.expires_at(std::max(next, now + std::chrono::milliseconds(50)));
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  // An inbound IQ result/error that answers one of our pings.
  bool consume_ping_reply(const Element& stanza, const std::string& remote) {
    if (stanza.name() != "iq") return false;
    if (stanza.attr("type") != "result" && stanza.attr("type") != "error") return false;
    auto id = stanza.attr("id");
    if (id.substr(0, kPingIdPrefix.size()) != kPingIdPrefix) return false;
    auto to = core::Jid::parse(stanza.attr("to"));
    if (!to) return false;
    auto it = links.find(std::make_pair(to->domain(), remote));
    if (it != links.end() && it->second->ping_id == id && it->second->ping_sent) {
      auto rtt = Clock::now() - *it->second->ping_sent;
      it->second->ping_sent.reset();
      if (metrics) metrics->ping_rtt(remote, rtt);
      it->second->last_rx = Clock::now();
      spdlog::debug("s2s {} -> {}: ping round trip {} µs", to->domain(), remote,
                    std::chrono::duration_cast<std::chrono::microseconds>(rtt).count());
    }
    return true;
  }

  // ------------------------------------------------------------------- inbound streams
  struct Inbound : std::enable_shared_from_this<Inbound> {
    Impl& impl;
    std::shared_ptr<stream::XmlStream> s;
    stream::EventReader reader;
    std::string local;  // the 'to' of the current header
    std::string peer;   // the 'from' of the current header
    std::string stream_id;
    std::string auth;
    std::set<std::pair<std::string, std::string>> pairs;  // (local, remote) authenticated
    bool closing = false;
    bool cert_valid_for_peer = false;
    bool direct_tls = false;     // XEP-0368 port: TLS first
    Clock::duration pause{};     // set when the peer's domain is over its stanza rate
    std::string counted_domain;  // the domain this stream counts for in the metrics
    metrics::CloseReason close_reason = metrics::CloseReason::kPeer;
    Inbound(Impl& i, std::shared_ptr<stream::XmlStream> st) : impl(i), s(st), reader(st) {}

    void close_with(StreamError e, std::string_view text = {},
                    metrics::CloseReason why = metrics::CloseReason::kError) {
      if (closing) return;
      closing = true;
      close_reason = why;
      spdlog::info("s2s in {} ({}): closing with {}{}{}", peer.empty() ? "?" : peer,
                   s->remote_address(), core::to_string(e), text.empty() ? "" : ": ", text);
      std::string header;  // an error needs a stream to be in
      if (stream_id.empty()) {
        stream_id = hex_id();
        header = stream::server_header(local, peer, stream_id);
      }
      s->send(stream::stream_error_close(e, text, header));
    }
  };

  asio::awaitable<void> accept_loop(tcp::acceptor& acc, bool direct_tls) {
    for (;;) {
      auto [ec, socket] = co_await acc.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted || !acc.is_open()) co_return;
      if (ec) continue;
      auto st = std::make_shared<stream::XmlStream>(std::move(socket), tls.s2s_server(),
                                                    stream::server_parser_limits(config));
      auto in = std::make_shared<Inbound>(*this, st);
      in->direct_tls = direct_tls;
      inbound.insert(in);
      spawn(run_inbound(in));
    }
  }

  asio::awaitable<void> run_inbound(std::shared_ptr<Inbound> in) {
    auto self = shared_from_this();
    asio::steady_timer deadline(io);
    stream::arm_handshake_deadline(deadline, config.s2s.handshake_timeout, [in] {
      if (!in->pairs.empty()) return;
      in->close_with(StreamError::kConnectionTimeout);
      in->s->close();
    });
    asio::steady_timer idle(io);
    std::uint64_t bytes_seen = 0;
    if (in->direct_tls) {
      bool ok = co_await in->s->server_handshake();
      if (!ok) {
        spdlog::info("s2s in ({}): direct TLS handshake failed: {}", in->s->remote_address(),
                     in->s->tls_error());
        in->closing = true;
        in->close_reason = metrics::CloseReason::kError;
      }
    }
    try {
      while (!in->closing && !in->s->closed()) {
        auto ev = co_await in->reader.next();
        if (!ev) {
          if (in->reader.error()) in->close_with(*in->reader.error());
          break;
        }
        co_await on_inbound(in, std::move(*ev));
        // Backpressure, never loss: a domain over its stanza rate, or all S2S traffic over
        // the bandwidth limit, is simply read more slowly.
        auto pause = std::max(in->pause, bandwidth_pause(in->s->bytes_in() - bytes_seen));
        bytes_seen = in->s->bytes_in();
        in->pause = {};
        if (pause > Clock::duration::zero()) {
          idle.expires_after(pause);
          co_await idle.async_wait(asio::as_tuple(asio::use_awaitable));
        }
      }
    } catch (const std::exception& e) {
      spdlog::error("s2s in: {}", e.what());
      in->close_with(StreamError::kInternalServerError);
    }
    deadline.cancel();
    co_await stream::close_stream(in->s);
    inbound.erase(in);
    if (metrics && !in->counted_domain.empty())
      metrics->connection_closed(in->counted_domain, metrics::Direction::kIn);
    if (metrics)
      metrics->stream_closed(!in->counted_domain.empty() ? in->counted_domain
                             : !in->peer.empty()         ? in->peer
                                                         : in->s->remote_address(),
                             metrics::Direction::kIn, in->close_reason);
    spdlog::info("s2s in {} ({}): stream closed{}", in->peer, in->s->remote_address(),
                 in->s->end_reason().empty() ? std::string() : " (" + in->s->end_reason() + ")");
  }

  asio::awaitable<void> on_inbound(std::shared_ptr<Inbound> in, xml::StreamEvent ev) {
    if (ev.kind == xml::StreamEvent::Kind::kStreamClose) {
      in->closing = true;
      in->s->send("</stream:stream>");
      co_return;
    }
    if (ev.kind == xml::StreamEvent::Kind::kStreamOpen) {
      co_await inbound_header(in, ev);
      co_return;
    }
    Element& e = ev.element;
    if (in->stream_id.empty()) {
      in->close_with(StreamError::kNotAuthorized);
      co_return;
    }
    if (e.is("starttls", xml::ns::kTls)) {
      if (in->s->tls_active()) {
        in->close_with(StreamError::kPolicyViolation, "TLS is already active");
        co_return;
      }
      // COMPAT(Prosody 0.12): no SNI on STARTTLS; the header's 'to' names our domain.
      if (!co_await stream::accept_starttls(*in->s, in->reader, tls.s2s_server_for(in->local))) {
        count_error(in->peer.empty() ? in->s->remote_address() : in->peer, Failure::kTls,
                    "inbound TLS handshake failed: " + in->s->tls_error());
        in->closing = true;
        in->close_reason = metrics::CloseReason::kError;
        co_return;
      }
      in->stream_id.clear();
      co_return;
    }
    if (e.is("error", xml::ns::kStream)) {
      // RFC 6120 §4.9: the peer is closing; record why, answer with the closing tag only.
      count_error(in->peer.empty() ? in->s->remote_address() : in->peer, Failure::kStreamError,
                  "stream error from peer: " + describe_stream_error(e));
      in->closing = true;
      in->s->send("</stream:stream>");
      co_return;
    }
    if (!in->s->tls_active()) {
      in->close_with(StreamError::kPolicyViolation, "STARTTLS is required");
      co_return;
    }
    if (e.is("auth", xml::ns::kSasl)) {
      sasl_external(in, e);
      co_return;
    }
    if (e.is("result", ns::kDialback)) {
      // Verified in the background: pairs already authenticated on this stream keep flowing
      // while another one is checked (XEP-0220 §2.6).
      spawn(dialback_result(in, std::move(e)));
      co_return;
    }
    if (e.is("verify", ns::kDialback)) {
      answer_verify(*in->s, e);
      co_return;
    }
    if (xml::stanza_kind(e) == xml::StanzaKind::kOther || e.ns() != xml::ns::kServer) {
      in->close_with(StreamError::kUnsupportedStanzaType);
      co_return;
    }
    inbound_stanza(in, std::move(e));
  }

  asio::awaitable<void> inbound_header(std::shared_ptr<Inbound> in, const xml::StreamEvent& ev) {
    const Element& h = ev.element;
    auto to = core::nameprep_domain(h.attr("to"));
    auto from = core::nameprep_domain(h.attr("from"));
    in->local = to ? *to : std::string();
    in->peer = from ? *from : std::string();
    if (!h.is("stream", xml::ns::kStream) || ev.default_ns != xml::ns::kServer) {
      in->close_with(StreamError::kInvalidNamespace);
      co_return;
    }
    if (!to || !router.is_local(*to)) {
      in->local.clear();
      in->close_with(StreamError::kHostUnknown, "This server does not serve that domain");
      co_return;
    }
    if (from && !policy.allows(*from)) {
      count_error(*from, Failure::kPolicy, "inbound stream refused by policy");
      in->close_with(StreamError::kPolicyViolation, "Federation with your domain is not allowed",
                     metrics::CloseReason::kPolicy);
      co_return;
    }
    if (from && !in->s->tls_active() && !limiter.on_connection(*from, Clock::now())) {
      count_error(*from, Failure::kRateLimit, "too many new connections");
      in->close_with(StreamError::kPolicyViolation, "Too many connections",
                     metrics::CloseReason::kRateLimit);
      co_return;
    }
    in->stream_id = hex_id();
    in->s->send(stream::server_header(in->local, in->peer, in->stream_id));
    Element features = stream::stream_features();
    if (!in->s->tls_active()) {
      stream::offer_starttls(features);
    } else {
      in->cert_valid_for_peer = from && in->s->peer_chain_valid() &&
                                certificate_matches_domain(in->s->peer_certificate(), *from);
      if (in->cert_valid_for_peer && in->auth.empty()) {
        static constexpr std::string_view kExternal[] = {"EXTERNAL"};
        stream::offer_sasl(features, kExternal);
      }
      features.add_child("dialback", std::string(ns::kDialbackFeature))
          .add_child("errors", std::string(ns::kDialbackFeature));
    }
    in->s->send(features.str(""));
  }

  void inbound_authenticated(Inbound& in, const std::string& domain) {
    if (!in.counted_domain.empty()) return;
    in.counted_domain = domain;
    if (metrics) metrics->connection_opened(domain, metrics::Direction::kIn);
  }

  void sasl_external(std::shared_ptr<Inbound> in, const Element& e) {
    auto fail = [&](std::string_view cond) {
      in->s->send("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><" + std::string(cond) +
                  "/></failure>");
    };
    if (e.attr("mechanism") != "EXTERNAL" || !in->auth.empty()) return fail("invalid-mechanism");
    auto authzid = core::base64_decode(e.text());
    if (!authzid) return fail("incorrect-encoding");
    std::string claimed = authzid->empty() ? in->peer : *authzid;
    if (claimed.empty() || claimed != in->peer || !in->cert_valid_for_peer) {
      count_error(in->peer, Failure::kTls,
                  "SASL EXTERNAL refused: certificate not valid for '" + claimed + "'");
      return fail("not-authorized");
    }
    in->auth = "SASL EXTERNAL";
    in->pairs.insert({in->local, in->peer});
    inbound_authenticated(*in, in->peer);
    if (metrics)
      metrics->authenticated(in->peer, metrics::Direction::kIn, metrics::AuthMethod::kSaslExternal);
    in->s->send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    in->s->reset_parser();
    in->reader.clear();
    in->stream_id.clear();
    spdlog::info("s2s in {} -> {}: authenticated with SASL EXTERNAL over {}", in->peer, in->local,
                 in->s->tls_description());
  }

  // Receiving role (XEP-0220 §2.2): verify a key with the authoritative server.
  asio::awaitable<void> dialback_result(std::shared_ptr<Inbound> in, Element e) {
    std::string remote(e.attr("from")), local(e.attr("to")), key = e.text();
    auto reply = [&](std::string_view type, std::string_view cond = {},
                     std::string_view text = {}) {
      if (in->closing) return;
      if (cond.empty()) {
        in->s->send(db_element("result", local, remote, type, {}, {}));
        return;
      }
      std::string x = "<db:result from='" + local + "' to='" + remote +
                      "' type='error'><error type='cancel'><" + std::string(cond) +
                      " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>";
      if (!text.empty()) {
        x += "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>";
        xml::escape(x, text);
        x += "</text>";
      }
      in->s->send(x + "</error></db:result>");
    };
    auto r = core::nameprep_domain(remote);
    if (!r || key.empty()) {
      reply("error", "bad-request");
      co_return;
    }
    if (!router.is_local(local)) {
      reply("error", "item-not-found");
      co_return;
    }
    if (!policy.allows(*r)) {
      reply("error", "forbidden", "Not allowed by policy");
      co_return;
    }
    bool cert_ok =
        in->s->peer_chain_valid() && certificate_matches_domain(in->s->peer_certificate(), *r);
    if (!cert_ok && !dialback_without_certificate_allowed(*r)) {
      count_error(*r, Failure::kDialback, "refused dialback: certificate not valid for the domain");
      {
        reply("error", "not-authorized",
              "Your certificate is not valid for " + *r + " and this server requires one");
        co_return;
      }
    }
    bool valid = false;
    if (cert_ok) {
      valid = true;  // XEP-0344: a certificate valid for the domain already proves it
    } else {
      valid = co_await verify_with_authoritative(local, *r, in->stream_id, key);
    }
    if (valid) {
      // Multiplexed: the stream already carries another authenticated pair (XEP-0220 §2.6).
      const bool shared = std::ranges::any_of(
          in->pairs, [&](const auto& p) { return p != std::make_pair(local, *r); });
      in->pairs.insert({local, *r});
      inbound_authenticated(*in, *r);
      if (metrics)
        metrics->authenticated(
            *r, metrics::Direction::kIn,
            shared ? metrics::AuthMethod::kDialbackMultiplexed : metrics::AuthMethod::kDialback);
    }
    if (in->auth.empty() && valid) in->auth = "dialback";
    spdlog::info("s2s in {} -> {}: dialback {} over {}", *r, local, valid ? "valid" : "invalid",
                 in->s->tls_description());
    if (!valid) count_error(*r, Failure::kDialback, "dialback key did not verify");
    reply(valid ? "valid" : "invalid");
  }

  // Connects to the authoritative server of `remote` and asks it about `key`.
  asio::awaitable<bool> verify_with_authoritative(std::string local, std::string remote,
                                                  std::string id, std::string key) {
    ++verifying;
    bool timed_out = false;
    asio::steady_timer deadline(io);
    const std::string vkey = "verify:" + local + ":" + remote + ":" + id;
    arm_deadline(deadline, vkey, timed_out);
    auto connected = co_await connect(local, remote, true, vkey);
    Outcome outcome = connected.first;
    OutStream out = connected.second;
    bool valid = false;
    if (outcome.failure == Failure::kNone) {
      out.stream->send(db_element("verify", local, remote, {}, id, key));
      for (;;) {
        auto ev = co_await out.reader->next();
        if (!ev) break;
        if (ev->kind != xml::StreamEvent::Kind::kElement) continue;
        if (ev->element.is("verify", ns::kDialback) && ev->element.attr("id") == id) {
          valid = ev->element.attr("type") == "valid";
          break;
        }
      }
      out.stream->send("</stream:stream>");
      co_await stream::close_stream(out.stream);
    } else {
      count_error(remote, outcome.failure, "dialback verification connection: " + outcome.text);
    }
    deadline.cancel();
    cancelled.erase(vkey);
    --verifying;
    co_return valid;
  }

  void inbound_stanza(std::shared_ptr<Inbound> in, Element e) {
    auto from = core::Jid::parse(e.attr("from"));
    auto to = core::Jid::parse(e.attr("to"));
    if (!from || !to) {
      in->close_with(StreamError::kImproperAddressing, "Stanzas need valid 'from' and 'to'");
      return;
    }
    if (!router.is_local(to->domain())) {
      in->close_with(StreamError::kHostUnknown, to->domain() + " is not served here");
      return;
    }
    // The specification's SpoofedFrom: only domains authenticated on this stream, for the
    // local domain they were authenticated with.
    if (!in->pairs.contains({to->domain(), from->domain()})) {
      count_error(from->domain(), Failure::kStreamError,
                  "spoofed or unauthenticated 'from' " + from->domain() + " on a stream from " +
                      (in->peer.empty() ? in->s->remote_address() : in->peer));
      in->close_with(StreamError::kInvalidFrom);
      return;
    }
    switch (limiter.on_stanza(from->domain(), Clock::now())) {
      case RateLimiter::Verdict::kAccept:
        break;
      case RateLimiter::Verdict::kThrottle:
        // Over the rate: the stanza is still delivered, and reading this stream pauses.
        in->pause = limiter.throttle_delay(from->domain(), Clock::now());
        break;
      case RateLimiter::Verdict::kDisconnect:
        count_error(from->domain(), Failure::kRateLimit, "stanza flood");
        in->close_with(StreamError::kPolicyViolation, "Stanza rate limit exceeded",
                       metrics::CloseReason::kRateLimit);
        return;
    }
    if (metrics) metrics->stanza_received(from->domain());
    if (consume_ping_reply(e, from->domain())) return;
    router.route(std::move(e));
  }

  // ------------------------------------------------------------------- lifecycle
  void start() {
    if (!config.s2s.enabled) return;
    listen(config.s2s.port, false);
    if (config.s2s.direct_tls_port) listen(config.s2s.direct_tls_port, true);
  }

  void listen(std::uint16_t port, bool direct_tls) {
    for (auto& acc : net::listen_all(io, config.server.listen, port)) {
      spdlog::info("listening for servers on {} port {}{}",
                   acc->local_endpoint().address().to_string(), port,
                   direct_tls ? " (direct TLS)" : "");
      acceptors.push_back(std::move(acc));
      spawn(accept_loop(*acceptors.back(), direct_tls));
    }
  }

  void stop() {
    stopping = true;
    for (auto& a : acceptors) a->close();
    for (auto& in : std::set<std::shared_ptr<Inbound>>(inbound)) {
      in->close_with(StreamError::kSystemShutdown, {}, metrics::CloseReason::kShutdown);
      in->s->close();
    }
    std::set<stream::XmlStream*> ending;
    for (auto& [k, link] : links) {
      link->close_reason = metrics::CloseReason::kShutdown;
      link->timer.cancel();
      if (link->out.stream && !link->out.stream->closed() &&
          ending.insert(link->out.stream.get()).second) {  // multiplexed links share one
        // Written stanzas (rooms telling remote occupants of the shutdown) leave first.
        link->out.stream->send("</stream:stream>");
        spawn(stream::close_stream(link->out.stream));
      }
      bounce_queue(*link, Failure::kStreamError, "Server is shutting down");
    }
    for (auto& [k, abort] : std::map<std::string, std::function<void()>>(connecting)) {
      cancelled.insert(k);
      abort();
    }
    for (auto& [remote, waiter] : dial_waiters) waiter->cancel();
  }
};

S2sService::S2sService(const core::Config& config, router::Router& router, net::TlsContexts& tls,
                       asio::io_context& io, metrics::S2sMetrics* m)
    : impl_(std::make_shared<Impl>(config, router, tls, io, m)) {}

S2sService::~S2sService() = default;
void S2sService::start() {
  impl_->start();
}
void S2sService::stop() {
  impl_->stop();
}
void S2sService::send(xml::Element stanza) {
  impl_->send(std::move(stanza));
}

void S2sService::reload(const core::Config& config) {
  auto& impl = *impl_;
  impl.policy = Policy(config.s2s.policy, config.s2s.allowed_domains, config.s2s.blocked_domains);
  impl.limiter.set_limits(
      {config.s2s.stanza_rate, config.s2s.connection_rate, config.s2s.throttle_strikes});
  for (auto& in : std::set<std::shared_ptr<Impl::Inbound>>(impl.inbound)) {
    for (const auto& pair : in->pairs) {
      if (!impl.policy.allows(pair.second)) {
        in->close_with(StreamError::kPolicyViolation,
                       "Federation with your domain is no longer allowed",
                       metrics::CloseReason::kPolicy);
        impl.spawn(stream::close_stream(in->s));
        break;
      }
    }
  }
  for (auto& [k, link] : impl.links) {
    // Every link to the domain: the one whose stream others share counts the close.
    if (!impl.policy.allows(k.second)) link->close_reason = metrics::CloseReason::kPolicy;
    if (!impl.policy.allows(k.second) && link->out.stream && !link->out.stream->closed()) {
      spdlog::info("s2s {} -> {}: closing, no longer allowed by policy", k.first, k.second);
      link->out.stream->send(xml::stream_error_xml(StreamError::kPolicyViolation) +
                             "</stream:stream>");
      link->out.stream->close();
    }
  }
  spdlog::info("s2s: policy is now {} ({} allowed, {} blocked)", config.s2s.policy,
               config.s2s.allowed_domains.size(), config.s2s.blocked_domains.size());
}

std::size_t S2sService::live_streams() const {
  std::size_t n = impl_->inbound.size() + impl_->verifying;
  for (const auto& [k, link] : impl_->links)
    if (link->state != Impl::Link::State::kIdle) ++n;
  return n;
}

CheckReport check_remote(const core::Config& config, const std::string& local,
                         const std::string& remote) {
  CheckReport report;
  asio::io_context io(1);
  router::Router router(config.server.domains);
  net::TlsContexts tls(config);
  auto impl = std::make_shared<S2sService::Impl>(config, router, tls, io, nullptr);
  impl->trace = &report.lines;
  report.lines.push_back("checking federation from " + local + " to " + remote);
  bool done = false;
  auto body = [&]() -> asio::awaitable<void> {
    auto result = co_await impl->connect(local, remote, false, "check");
    if (result.first.failure == Failure::kNone) {
      report.ok = true;
      report.lines.push_back("OK: a test stream authenticated with " + result.second.auth);
      result.second.stream->send("</stream:stream>");
      co_await stream::close_stream(result.second.stream);
    } else {
      report.lines.push_back(std::string("FAILED (") +
                             std::string(failure_name(result.first.failure)) +
                             "): " + result.first.text);
    }
    done = true;
  };
  asio::co_spawn(io, body(), asio::detached);
  io.run_for(config.s2s.connect_timeout + std::chrono::seconds(5));
  if (!done) report.lines.push_back("FAILED: no answer within the connect timeout");
  return report;
}

}  // namespace waddle::s2s
