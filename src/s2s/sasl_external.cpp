// SASL EXTERNAL for servers; see sasl_external.h.
#include "s2s/sasl_external.h"

#include <spdlog/spdlog.h>

#include "core/base64.h"
#include "s2s/channel.h"
#include "s2s/inbound_stream.h"
#include "s2s/wire.h"
#include "stream/negotiation.h"
#include "stream/xml_stream.h"

namespace waddle::s2s {
namespace asio = boost::asio;

namespace {
constexpr std::string_view kMechanisms[] = {"EXTERNAL"};
}

bool SaslExternal::offered(const xml::Element& features) const {
  return wire::offers_mechanism(features, "EXTERNAL");
}

asio::awaitable<AuthStep> SaslExternal::authenticate(OutboundNegotiation& n) {
  n.channel.send(wire::sasl_external_auth(n.local));
  auto r = co_await n.channel.next();
  AuthStep step;
  if (r && r->element.is("success", ns::kSasl)) {
    n.trace.note("authenticated with SASL EXTERNAL");
    step.kind = AuthStep::Kind::kRestart;
    co_return step;
  }
  spdlog::info("s2s {} -> {}: SASL EXTERNAL failed, trying dialback", n.local, n.remote);
  step.kind = AuthStep::Kind::kDeclined;
  co_return step;
}

void SaslExternal::offer(xml::Element& features, const InboundStream& in) const {
  if (in.cert_valid_for_peer() && in.authenticated_with().empty())
    stream::offer_sasl(features, kMechanisms);
}

bool SaslExternal::handles(const xml::Element& e) const {
  return e.is("auth", ns::kSasl);
}

void SaslExternal::handle(const std::shared_ptr<InboundStream>& in, xml::Element e) {
  if (e.attr("mechanism") != "EXTERNAL" || !in->authenticated_with().empty())
    return in->send(wire::sasl_failure("invalid-mechanism"));
  auto authzid = core::base64_decode(e.text());
  if (!authzid) return in->send(wire::sasl_failure("incorrect-encoding"));
  // An empty authorization identity means the domain of the stream header (XEP-0178 §3).
  const std::string claimed = authzid->empty() ? in->peer() : *authzid;
  if (claimed.empty() || claimed != in->peer() || !in->cert_valid_for_peer()) {
    report(metrics_, metrics::kUnauthenticated, Failure::kTls,
           "SASL EXTERNAL from " + in->who() + " refused: certificate not valid for '" + claimed +
               "'");
    return in->send(wire::sasl_failure("not-authorized"));
  }
  in->authenticated(in->local(), in->peer(), name(), counted_as());
  in->send(wire::sasl_success());
  in->restart();
  spdlog::info("s2s in {} -> {}: authenticated with SASL EXTERNAL over {}", in->peer(), in->local(),
               in->stream().tls_description());
}

}  // namespace waddle::s2s
