// Server Dialback's three roles; see dialback.h.
#include "s2s/dialback.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/ids.h"
#include "core/jid.h"
#include "metrics/metrics.h"
#include "net/listen.h"
#include "router/router.h"
#include "s2s/admission.h"
#include "s2s/auth.h"
#include "s2s/channel.h"
#include "s2s/connector.h"
#include "s2s/inbound_stream.h"
#include "s2s/wire.h"
#include "stream/negotiation.h"
#include "stream/xml_stream.h"

namespace waddle::s2s {
namespace asio = boost::asio;
using xml::Element;

DialbackKeys::DialbackKeys(std::string secret, const router::Router& router,
                           metrics::S2sMetrics* metrics)
    : secret_(std::move(secret)), router_(router), metrics_(metrics) {}

std::string DialbackKeys::load_secret(const core::Config& c) {
  if (!c.s2s.dialback_secret.empty()) return c.s2s.dialback_secret;
  namespace fs = std::filesystem;
  fs::path p = fs::path(c.server.data_dir) / "dialback.secret";
  std::string s;
  if (std::ifstream in(p); in && std::getline(in, s) && !s.empty()) return s;
  s = core::random_hex(12) + core::random_hex(12);
  fs::create_directories(p.parent_path());
  std::ofstream(p) << s << "\n";
  fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
  return s;
}

std::string DialbackKeys::key(std::string_view receiving, std::string_view originating,
                              std::string_view stream_id) const {
  return dialback_key(secret_, receiving, originating, stream_id);
}

std::string DialbackKeys::answer_verify(const Element& v) const {
  std::string receiving(v.attr("from")), originating(v.attr("to")), id(v.attr("id"));
  const bool valid = router_.is_local(originating) &&
                     dialback_key_equal(key(receiving, originating, id), v.text());
  spdlog::info("s2s: dialback verify from {} for {} (stream {}): {}", receiving, originating, id,
               valid ? "valid" : "invalid");
  // Only a valid key names a domain we chose to connect to: any value can be claimed in an
  // invalid one (docs/security.md "Work").
  if (metrics_)
    metrics_->dialback_verify(valid ? std::string_view(receiving) : metrics::kUnauthenticated,
                              valid);
  return wire::db_verify_answer(originating, receiving, id, valid);
}

Dialback::Dialback(const core::Config& config, asio::any_io_executor ex, TimeSource& time,
                   DialbackKeys& keys, Connector& connector, const router::Router& router,
                   const Admission& admission, core::LiveCount& live, metrics::S2sMetrics* metrics)
    : config_(config),
      ex_(ex),
      time_(time),
      keys_(keys),
      connector_(connector),
      router_(router),
      admission_(admission),
      live_(live),
      metrics_(metrics),
      attempts_(ex, time) {}

bool Dialback::offered(const Element& features) const {
  return wire::offers_dialback(features);
}

// Originating role (XEP-0220 §2.1): our key, then the receiving server's verdict. A db:verify
// meanwhile (the peer checking another key of ours on this stream) is answered.
asio::awaitable<AuthStep> Dialback::authenticate(OutboundNegotiation& n) {
  n.channel.send(wire::db_result(n.local, n.remote, keys_.key(n.remote, n.local, n.stream_id)));
  AuthStep step;
  step.kind = AuthStep::Kind::kFailed;
  for (;;) {
    auto r = co_await n.channel.next();
    // The peer's closing tag ends the stream as surely as a closed socket (RFC 6120 §4.4).
    if (!r || r->kind == xml::StreamEvent::Kind::kStreamClose) {
      if (r) n.channel.send(stream::kStreamEnd);
      step.outcome =
          Outcome::fail(Failure::kDialback, n.where + " closed the stream during dialback");
      co_return step;
    }
    if (r->kind != xml::StreamEvent::Kind::kElement) continue;
    const Element& e = r->element;
    if (e.is("result", ns::kDialback)) {
      if (e.attr("type") == "valid") {
        n.trace.note("authenticated with dialback");
        step.kind = AuthStep::Kind::kAuthenticated;
        co_return step;
      }
      // Keep the peer's reason: operators need it more than the condition.
      const wire::Refusal refusal = wire::dialback_refusal(e);
      step.outcome =
          Outcome::fail(Failure::kDialback, n.remote + " refused our dialback key" + refusal.why);
      step.outcome.definitive = refusal.definitive;
      co_return step;
    }
    if (e.is("error", ns::kStream)) {
      step.outcome = Outcome::fail(
          Failure::kDialback,
          n.where + " closed the stream during dialback: " + wire::describe_stream_error(e));
      co_return step;
    }
    if (e.is("verify", ns::kDialback)) n.channel.send(keys_.answer_verify(e));
  }
}

void Dialback::offer(Element& features, const InboundStream&) const {
  features.add_child(wire::dialback_with_errors());
}

bool Dialback::handles(const Element& e) const {
  return e.is("result", ns::kDialback) || e.is("verify", ns::kDialback);
}

void Dialback::handle(const std::shared_ptr<InboundStream>& in, Element e) {
  if (e.is("verify", ns::kDialback)) return in->send(keys_.answer_verify(e));
  // Verified in the background: pairs already authenticated on this stream keep flowing
  // while another one is checked (XEP-0220 §2.6).
  net::spawn_logged(ex_, receive(in, std::move(e)), "s2s dialback");
}

// Receiving role (XEP-0220 §2.2): a certificate valid for the domain proves it already
// (XEP-0344); otherwise the authoritative server is asked, when policy allows dialback
// without one.
asio::awaitable<void> Dialback::receive(std::shared_ptr<InboundStream> in, Element e) {
  const std::string remote(e.attr("from")), local(e.attr("to")), key = e.text();
  auto refuse = [&](std::string_view condition, std::string_view text = {}) {
    if (!in->closing()) in->send(wire::db_result_error(local, remote, condition, text));
  };
  auto r = core::nameprep_domain(remote);
  if (!r || key.empty()) {
    refuse("bad-request");
    co_return;
  }
  if (!router_.is_local(local)) {
    refuse("item-not-found");
    co_return;
  }
  if (!admission_.allows(*r)) {
    refuse("forbidden", "Not allowed by policy");
    co_return;
  }
  stream::XmlStream& s = in->stream();
  const bool cert_ok = s.peer_chain_valid() && certificate_matches_domain(s.peer_certificate(), *r);
  if (!cert_ok && !admission_.dialback_without_certificate(*r)) {
    report(metrics_, in->label(*r), Failure::kDialback,
           "refused dialback from " + *r + ": certificate not valid for the domain");
    refuse("not-authorized",
           "Your certificate is not valid for " + *r + " and this server requires one");
    co_return;
  }
  bool valid = cert_ok;
  if (!cert_ok) {
    // The same key again while it is being checked: the answer under way covers it.
    const std::string same = in->stream_id() + '\n' + local + '\n' + *r + '\n' + key;
    if (asking_.contains(same)) co_return;
    std::size_t& mine = per_stream_[in->stream_id()];
    if (mine >= kMaxPerStream || in_flight_ >= kMaxInFlight) {
      if (mine == 0) per_stream_.erase(in->stream_id());
      report(metrics_, in->label(*r), Failure::kDialback,
             "refused dialback from " + *r + ": too many verifications at once");
      refuse("resource-constraint", "Too many dialback verifications in progress");
      co_return;
    }
    ++mine;
    ++in_flight_;
    asking_.insert(same);
    const std::string stream_id = in->stream_id();
    valid = co_await verify_with_authoritative(local, *r, stream_id, key);
    asking_.erase(same);
    --in_flight_;
    if (--per_stream_[stream_id] == 0) per_stream_.erase(stream_id);
  }
  if (valid) {
    // Multiplexed: the stream already carries another authenticated pair (XEP-0220 §2.6).
    const bool shared = std::ranges::any_of(
        in->pairs(), [&](const auto& p) { return p != std::make_pair(local, *r); });
    in->authenticated(local, *r, name(),
                      shared ? metrics::AuthMethod::kDialbackMultiplexed : counted_as());
  }
  spdlog::info("s2s in {} -> {}: dialback {} over {}", *r, local, valid ? "valid" : "invalid",
               in->stream().tls_description());
  if (!valid)
    report(metrics_, in->label(*r), Failure::kDialback,
           "dialback key from " + *r + " did not verify");
  if (!in->closing()) in->send(wire::db_result_answer(local, remote, valid));
}

// A verification stream to the authoritative server of `remote`; connect_timeout bounds the
// whole verification, opening the stream and waiting for the answer.
asio::awaitable<bool> Dialback::verify_with_authoritative(std::string local, std::string remote,
                                                          std::string id, std::string key) {
  core::LiveCount::Token alive = live_.enter();
  const auto deadline = time_.now() + config_.s2s.connect_timeout;
  auto attempt = attempts_.start(deadline);
  ConnectRequest request{local, remote, true};
  Connected c = co_await connector_.connect(std::move(request), attempt->slot());
  attempts_.finish(attempt);
  bool valid = false;
  if (c.outcome.ok()) {
    // An authoritative server that never answers: the stream is cut at the deadline.
    std::shared_ptr<Timer> timer = time_.make_timer();
    auto expired = std::make_shared<bool>(false);
    net::spawn_logged(
        ex_,
        [](std::shared_ptr<Timer> t, std::shared_ptr<Channel> ch, Clock::time_point when,
           std::shared_ptr<bool> expired) -> asio::awaitable<void> {
          const bool due = co_await t->wait_until(when);
          if (!due) co_return;
          *expired = true;
          ch->close();
        }(timer, c.channel, deadline, expired),
        "s2s dialback deadline");
    valid = co_await ask(*c.channel, local, remote, id, key);
    timer->cancel();
    if (*expired)
      report(metrics_, metrics::kUnauthenticated, Failure::kTimeout,
             "dialback verification for " + remote +
                 ": no answer from the authoritative server within " +
                 core::format_duration(config_.s2s.connect_timeout));
    c.channel->send(stream::kStreamEnd);
    co_await c.channel->close_gracefully();
  } else {
    // The domain was only claimed by an unauthenticated peer: no label of its own.
    report(metrics_, metrics::kUnauthenticated, *c.outcome.failure,
           "dialback verification connection to " + remote + ": " + c.outcome.text);
  }
  alive = {};
  co_return valid;
}

// XEP-0220 §2.3: the key goes to the authoritative server, which says whether it made it.
asio::awaitable<bool> Dialback::ask(Channel& channel, const std::string& local,
                                    const std::string& remote, const std::string& id,
                                    const std::string& key) {
  channel.send(wire::db_verify(local, remote, id, key));
  for (;;) {
    auto ev = co_await channel.next();
    if (!ev) co_return false;
    if (ev->kind != xml::StreamEvent::Kind::kElement) continue;
    if (ev->element.is("verify", ns::kDialback) && ev->element.attr("id") == id)
      co_return ev->element.attr("type") == "valid";
  }
}

}  // namespace waddle::s2s
