// Admission decisions; see admission.h.
#include "s2s/admission.h"

#include <algorithm>

#include "core/jid.h"
#include "s2s/internal_address.h"

namespace waddle::s2s {

Admission::Admission(const core::S2sConfig& config)
    : config_(config), policy_(config.policy, config.allowed_domains, config.blocked_domains) {}

void Admission::reload(const core::S2sConfig& config) {
  policy_ = Policy(config.policy, config.allowed_domains, config.blocked_domains);
}

std::optional<Refusal> Admission::outbound(std::string_view remote, bool stopping) const {
  using core::StanzaError;
  if (stopping) return Refusal{StanzaError::kRemoteServerNotFound, "Server is shutting down"};
  if (!config_.enabled)
    return Refusal{StanzaError::kRemoteServerNotFound, "Federation is disabled on this server"};
  if (!policy_.allows(remote))
    return Refusal{StanzaError::kPolicyViolation, "Federation with " + std::string(remote) +
                                                      " is not allowed by this server's policy"};
  // A local choice made from the address alone, before anything is tried, so the condition of
  // the policy (docs/security.md says why not remote-server-not-found).
  if (auto refused = connect_to(remote))
    return Refusal{StanzaError::kPolicyViolation, std::move(refused->text)};
  return std::nullopt;
}

std::optional<Outcome> Admission::connect_to(std::string_view remote) const {
  if (config_.allow_internal_addresses || !core::is_ip_literal(remote)) return std::nullopt;
  Outcome refused = Outcome::fail(Failure::kPolicy, ip_literal_text(remote));
  refused.definitive = true;
  return refused;
}

std::optional<Outcome> Admission::reachable(std::string_view remote,
                                            std::vector<Endpoint>& endpoints,
                                            std::vector<std::string>* skipped) const {
  if (config_.allow_internal_addresses) return std::nullopt;
  const std::vector<Dropped> dropped = drop_internal(endpoints);
  if (skipped)
    for (const auto& d : dropped) skipped->push_back(d.address + " (" + std::string(d.kind) + ")");
  if (!endpoints.empty() || dropped.empty()) return std::nullopt;
  Outcome failed = Outcome::fail(Failure::kDns, only_internal_text(remote, dropped));
  failed.definitive = true;
  return failed;
}

std::optional<Refusal> Admission::another_stream(std::string_view remote, std::size_t streams,
                                                 std::size_t local_domains) const {
  if (streams < std::max<std::size_t>(config_.max_connections_per_domain, local_domains))
    return std::nullopt;
  return Refusal{
      core::StanzaError::kResourceConstraint,
      "Too many connections to " + std::string(remote) + " (max_connections_per_domain)"};
}

std::optional<Refusal> Admission::another_link(std::size_t links) const {
  if (links < config_.max_links) return std::nullopt;
  return Refusal{core::StanzaError::kResourceConstraint,
                 "Too many server links are open or opening (max_links)"};
}

std::optional<Refusal> Admission::enqueue(std::string_view remote, std::size_t queued) const {
  if (queued < config_.queue_size) return std::nullopt;
  return Refusal{core::StanzaError::kResourceConstraint,
                 "Too many stanzas are waiting for " + std::string(remote)};
}

bool Admission::dialback_without_certificate(std::string_view remote) const {
  if (config_.allow_unverified_dialback) return true;
  const auto& l = config_.unverified_dialback_domains;
  return std::find(l.begin(), l.end(), remote) != l.end();
}

}  // namespace waddle::s2s
