// SASL EXTERNAL between servers (RFC 6120 §6, XEP-0178): the certificate presented in TLS is
// the proof. Outbound: we ask with our domain as authorization identity and the stream
// restarts on success; inbound: offered only when the peer's certificate is valid for the
// domain its header names, and only that domain may be claimed.
#pragma once

#include "metrics/metrics.h"
#include "s2s/authenticator.h"

namespace waddle::s2s {

class SaslExternal final : public Authenticator {
 public:
  explicit SaslExternal(metrics::S2sMetrics* metrics) : metrics_(metrics) {}

  std::string_view name() const override { return "SASL EXTERNAL"; }
  metrics::AuthMethod counted_as() const override { return metrics::AuthMethod::kSaslExternal; }
  bool offered(const xml::Element& features) const override;
  boost::asio::awaitable<AuthStep> authenticate(OutboundNegotiation& n) override;
  void offer(xml::Element& features, const InboundStream& in) const override;
  bool handles(const xml::Element& e) const override;
  void handle(const std::shared_ptr<InboundStream>& in, xml::Element e) override;

 private:
  metrics::S2sMetrics* metrics_;
};

}  // namespace waddle::s2s
