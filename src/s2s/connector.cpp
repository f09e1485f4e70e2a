// The connector: DNS, TCP to each address in turn, and the stream negotiation of RFC 6120
// §4-§6 as the initiating server (STARTTLS or XEP-0368 direct TLS, features, authentication).
#include "s2s/connector.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio.hpp>

#include "net/tls.h"
#include "s2s/admission.h"
#include "s2s/auth.h"
#include "s2s/channel.h"
#include "s2s/wire.h"
#include "stream/negotiation.h"
#include "stream/xml_stream.h"

namespace waddle::s2s {
namespace asio = boost::asio;
using asio::ip::tcp;

// What the attempt has open right now: an abort closes it.
struct TlsConnector::Open {
  bool aborted = false;
  asio::steady_timer* dns = nullptr;
  tcp::socket* socket = nullptr;
  std::shared_ptr<stream::XmlStream> stream;

  void abort() {
    aborted = true;
    if (dns) dns->cancel();
    boost::system::error_code ignored;
    if (socket) socket->close(ignored);
    if (stream) stream->close();
  }
};

struct TlsConnector::StreamOpen {
  Outcome outcome;
  std::string stream_id;
  xml::Element features;
};

namespace {

Connected failed(Outcome outcome) {
  Connected c;
  c.outcome = std::move(outcome);
  return c;
}

Connected failed(Failure f, std::string text) {
  return failed(Outcome::fail(f, std::move(text)));
}

// Takes the attempt's handler out of the caller's slot on every way out of connect().
struct DetachSlot {
  asio::cancellation_slot slot;
  ~DetachSlot() {
    if (slot.is_connected()) slot.clear();
  }
};

}  // namespace

TlsConnector::TlsConnector(const core::Config& config, asio::io_context& io, Resolver& resolver,
                           net::TlsContexts& tls, const Admission& admission, Trace trace)
    : config_(config),
      io_(io),
      resolver_(resolver),
      tls_(tls),
      admission_(admission),
      trace_(trace) {}

// DNS through the resolver thread, back on the reactor; nullopt when aborted meanwhile.
asio::awaitable<std::optional<Resolution>> TlsConnector::resolve(const std::string& domain,
                                                                 Open& open) {
  auto result = std::make_shared<std::optional<Resolution>>();
  auto ready = std::make_shared<asio::steady_timer>(io_, asio::steady_timer::time_point::max());
  auto guard = asio::make_work_guard(io_);
  resolver_.resolve_server(domain, [result, ready, guard](Resolution r) mutable {
    auto ex = guard.get_executor();
    asio::post(ex, [result, ready, r = std::move(r)]() mutable {
      *result = std::move(r);
      ready->cancel();
    });
  });
  open.dns = ready.get();
  co_await ready->async_wait(asio::as_tuple(asio::use_awaitable));
  open.dns = nullptr;
  co_return std::move(*result);
}

void TlsConnector::note_endpoints(const std::string& remote, const Resolution& res) const {
  for (const auto& ep : res.endpoints)
    trace_.note(fmt::format("DNS: {} -> {} port {} ({})", remote, ep.address, ep.port,
                            ep.direct_tls ? "_xmpps-server SRV target " + ep.host + ", direct TLS"
                            : ep.srv      ? "_xmpp-server SRV target " + ep.host
                                          : std::string("no SRV record: A/AAAA of the domain")));
}

// The addresses to try, in order, or why there are none (an IP-literal domain or internal
// addresses, unless allowed; DNS failures). Nothing is connected to before this.
asio::awaitable<Outcome> TlsConnector::endpoints(const std::string& remote, Open& open,
                                                 std::vector<Endpoint>& out) {
  if (auto refused = admission_.connect_to(remote)) {
    trace_.note("refused: " + refused->text);
    co_return std::move(*refused);
  }
  auto res = co_await resolve(remote, open);
  if (!res) co_return Outcome::fail(Failure::kDns, "no address");
  note_endpoints(remote, *res);
  if (!res->error.empty() || res->endpoints.empty()) {
    std::string text = res->error.empty() ? "no address for " + remote : res->error;
    trace_.note("DNS: " + text);
    co_return Outcome::fail(Failure::kDns, std::move(text));
  }
  std::vector<std::string> skipped;
  auto unreachable = admission_.reachable(remote, res->endpoints, &skipped);
  for (const auto& s : skipped) trace_.note("DNS: skipped " + s + ": an internal address");
  if (unreachable) {
    trace_.note("DNS: " + unreachable->text);
    co_return std::move(*unreachable);
  }
  out = std::move(res->endpoints);
  co_return Outcome{};
}

asio::awaitable<Connected> TlsConnector::connect(ConnectRequest req,
                                                 asio::cancellation_slot abort) {
  auto open = std::make_shared<Open>();
  if (abort.is_connected()) abort.assign([open](asio::cancellation_type) { open->abort(); });
  DetachSlot detach{abort};
  std::vector<Endpoint> endpoints;
  Outcome found = co_await this->endpoints(req.remote, *open, endpoints);
  if (!found.ok()) co_return failed(std::move(found));
  Outcome last = Outcome::fail(Failure::kDns, "no address");
  for (const auto& ep : endpoints) {
    tcp::socket socket(io_);
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(ep.address, ec);
    if (ec) continue;
    if (open->aborted) break;
    open->socket = &socket;
    std::tie(ec) = co_await socket.async_connect(tcp::endpoint(addr, ep.port),
                                                 asio::as_tuple(asio::use_awaitable));
    open->socket = nullptr;
    std::string where = ep.host + " (" + ep.address + " port " + std::to_string(ep.port) + ")";
    if (ec) {
      last = Outcome::fail(
          ec == asio::error::operation_aborted ? Failure::kTimeout : Failure::kConnectionRefused,
          "cannot connect to " + where + ": " + ec.message());
      trace_.note("TCP: " + last.text);
      continue;
    }
    trace_.note("TCP: connected to " + where);
    auto s = std::make_shared<stream::XmlStream>(std::move(socket), tls_.s2s_client(req.local),
                                                 stream::server_parser_limits(config_));
    s->set_write_limits({config_.s2s_write_queue(), config_.s2s.write_stall_timeout});
    open->stream = s;
    Connected c = co_await negotiate(s, req, ep.direct_tls, where);
    open->stream.reset();
    if (c.outcome.ok()) co_return c;
    trace_.note("failed: " + c.outcome.text);
    s->close();
    last = c.outcome;
  }
  co_return failed(last);
}

// One stream header sent and answered, and the features that follow it.
asio::awaitable<TlsConnector::StreamOpen> TlsConnector::open_stream(StreamChannel& ch,
                                                                    const ConnectRequest& req,
                                                                    const std::string& where) {
  StreamOpen r;
  ch.send(stream::server_header(req.local, req.remote, {}));
  auto ev = co_await ch.next();
  if (!ev || ev->kind != xml::StreamEvent::Kind::kStreamOpen) {
    r.outcome = Outcome::fail(ch.closed() ? Failure::kTimeout : Failure::kStreamError,
                              where + " closed the stream before its header");
    co_return r;
  }
  r.stream_id = std::string(ev->element.attr("id"));
  if (ev->default_ns != ns::kServer) {
    r.outcome =
        Outcome::fail(Failure::kStreamError, where + " did not answer with a jabber:server stream");
    co_return r;
  }
  auto fev = co_await ch.next();
  if (!fev || fev->kind != xml::StreamEvent::Kind::kElement) {
    r.outcome = Outcome::fail(Failure::kStreamError, where + " sent no stream features");
    co_return r;
  }
  r.features = std::move(fev->element);
  if (r.features.is("error", ns::kStream))
    r.outcome =
        Outcome::fail(Failure::kStreamError,
                      where + " closed the stream: " + wire::describe_stream_error(r.features));
  else if (!r.features.is("features", ns::kStream))
    r.outcome = Outcome::fail(Failure::kStreamError,
                              where + " sent " + r.features.name() + " instead of features");
  co_return r;
}

// RFC 6120 §5.4.2: TLS is required, so a peer must offer STARTTLS.
asio::awaitable<Outcome> TlsConnector::starttls(StreamChannel& ch, const xml::Element& features,
                                                const std::string& remote,
                                                const std::string& where) {
  if (!features.child("starttls", ns::kTls))
    co_return Outcome::fail(Failure::kTls, where + " does not offer STARTTLS (TLS is required)");
  ch.send(wire::starttls());
  auto p = co_await ch.next();
  if (!p || !p->element.is("proceed", ns::kTls))
    co_return Outcome::fail(Failure::kTls, where + " refused STARTTLS");
  stream::XmlStream& s = ch.stream();
  const bool ok = co_await s.client_handshake(remote);
  if (!ok) {
    const bool aborted = s.closed();
    co_return Outcome::fail(
        aborted ? Failure::kTimeout : Failure::kTls,
        "TLS handshake with " + where + " failed: " + s.tls_error() +
            (!aborted && config_.s2s.tls_min_version == "1.3" ? " (this server requires TLS 1.3)"
                                                              : ""));
  }
  ch.restart();
  co_return Outcome{};
}

// `check s2s`: what TLS gave, what the certificate is worth, and what the peer offers.
void TlsConnector::note_peer(stream::XmlStream& s, const std::string& remote,
                             const xml::Element& features, bool cert_valid) const {
  trace_.note("TLS: " + s.tls_description());
  std::string verdict;
  if (cert_valid)
    verdict = "valid for " + remote;
  else if (!s.peer_certificate())
    verdict = "none presented";
  else if (s.peer_chain_valid())
    verdict = "not valid for " + remote + ": trusted chain, but the name does not match";
  else
    verdict = "not valid for " + remote + ": untrusted chain (" + s.peer_verify_error() +
              "; self-signed, or a CA that is not in the CA bundle)";
  trace_.note("certificate: " + verdict);
  std::string offered;
  if (const xml::Element* m = features.child("mechanisms", ns::kSasl))
    for (const auto* x : m->children("mechanism", ns::kSasl)) offered += "SASL " + x->text() + ", ";
  if (wire::offers_dialback(features)) offered += "dialback";
  trace_.note("authentication offered: " + (offered.empty() ? std::string("none") : offered));
}

// The first offered method that works; `tried` keeps a method from running twice.
asio::awaitable<AuthStep> TlsConnector::authenticate(OutboundNegotiation& n,
                                                     std::vector<Authenticator*>& tried,
                                                     Authenticator*& used) {
  for (Authenticator* m : methods_) {
    if (std::find(tried.begin(), tried.end(), m) != tried.end() || !m->offered(n.features))
      continue;
    tried.push_back(m);
    AuthStep step = co_await m->authenticate(n);
    if (step.kind == AuthStep::Kind::kDeclined) continue;
    if (step.kind != AuthStep::Kind::kFailed) used = m;
    co_return step;
  }
  AuthStep none;
  none.kind = AuthStep::Kind::kFailed;
  none.outcome = Outcome::fail(Failure::kDialback,
                               n.where + " offers neither SASL EXTERNAL for us nor dialback");
  co_return none;
}

asio::awaitable<Connected> TlsConnector::negotiate(std::shared_ptr<stream::XmlStream> s,
                                                   const ConnectRequest& req, bool direct_tls,
                                                   const std::string& where) {
  auto ch = std::make_shared<StreamChannel>(s);
  if (direct_tls) {
    const bool ok = co_await s->client_handshake(req.remote);
    if (!ok)
      co_return failed(s->closed() ? Failure::kTimeout : Failure::kTls,
                       "TLS handshake with " + where + " failed: " + s->tls_error());
  }
  Authenticator* used = nullptr;  // set once authenticated (SASL restarts the stream afterwards)
  std::vector<Authenticator*> tried;
  for (int round = 0; round < 6; ++round) {
    StreamOpen opened = co_await open_stream(*ch, req, where);
    if (!opened.outcome.ok()) co_return failed(std::move(opened.outcome));
    if (!s->tls_active()) {
      Outcome tls = co_await starttls(*ch, opened.features, req.remote, where);
      if (!tls.ok()) co_return failed(std::move(tls));
      continue;
    }
    Connected c;
    c.channel = ch;
    c.stream_id = opened.stream_id;
    c.cert_valid =
        s->peer_chain_valid() && certificate_matches_domain(s->peer_certificate(), req.remote);
    if (!used) note_peer(*s, req.remote, opened.features, c.cert_valid);
    if (req.verify_only) {
      c.method = "verify";
      co_return c;
    }
    if (!c.cert_valid && !admission_.dialback_without_certificate(req.remote))
      co_return failed(
          Failure::kTls,
          "the certificate of " + where + " is not valid for " + req.remote +
              (s->peer_chain_valid() ? " (name mismatch)"
                                     : " (untrusted chain: " + s->peer_verify_error() + ")"));
    if (!used) {
      OutboundNegotiation n{*ch,   req.local, req.remote, opened.stream_id, opened.features,
                            where, trace_};
      AuthStep step = co_await authenticate(n, tried, used);
      if (step.kind == AuthStep::Kind::kFailed) co_return failed(std::move(step.outcome));
      if (step.kind == AuthStep::Kind::kRestart) {
        ch->restart();
        continue;
      }
    }
    c.method = std::string(used->name());
    c.counted_as = used->counted_as();
    c.multiplexable = wire::offers_dialback_errors(opened.features);
    c.sm = wire::offers_sm(opened.features);
    co_return c;
  }
  co_return failed(Failure::kStreamError, where + ": too many stream restarts");
}

}  // namespace waddle::s2s
