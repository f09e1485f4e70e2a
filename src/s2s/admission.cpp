// Admission decisions; see admission.h.
#include "s2s/admission.h"

#include <algorithm>

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
  return std::nullopt;
}

std::optional<Refusal> Admission::another_stream(std::string_view remote,
                                                 std::size_t streams) const {
  if (streams < config_.max_connections_per_domain) return std::nullopt;
  return Refusal{
      core::StanzaError::kResourceConstraint,
      "Too many connections to " + std::string(remote) + " (max_connections_per_domain)"};
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
