// Every "may we?" of federation in one place: the federation policy (either direction),
// connections inside the operator's network, dialback from or to a peer without a valid
// certificate, and the limits on streams per remote domain and stanzas waiting for one. Rate
// limits are in rate_limit.h.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/errors.h"
#include "s2s/dns.h"
#include "s2s/failure.h"
#include "s2s/policy.h"

namespace waddle::s2s {

// Why a stanza cannot leave: the error it bounces with, and the text saying why.
struct Refusal {
  core::StanzaError condition;
  std::string text;
};

class Admission {
 public:
  // The configuration is kept by reference: limits are read when asked.
  explicit Admission(const core::S2sConfig& config);

  // SIGHUP: the policy is read again (the limits are those the server started with).
  void reload(const core::S2sConfig& config);

  // Federation with `domain` (a listed domain also covers its subdomains).
  bool allows(std::string_view domain) const { return policy_.allows(domain); }

  // A stanza for `remote` leaving this server: refused during shutdown, when federation is
  // disabled, when the policy does not allow the domain, or when it is an IP literal
  // (connect_to).
  std::optional<Refusal> outbound(std::string_view remote, bool stopping) const;
  // Connecting to `remote` at all (a link, a dialback verification, `check s2s`): refused
  // (kPolicy, definitive) for an IP-literal domain unless allow_internal_addresses is set.
  std::optional<Outcome> connect_to(std::string_view remote) const;
  // The addresses `remote` resolved to that may be connected to: unless
  // allow_internal_addresses is set, internal ones (internal_address.h) are dropped, and when
  // none is left the attempt fails (kDns, definitive: the domain's DNS has to change first).
  // `skipped` gets what was dropped, with why.
  std::optional<Outcome> reachable(std::string_view remote, std::vector<Endpoint>& endpoints,
                                   std::vector<std::string>* skipped = nullptr) const;
  // One more stream to `remote`, which already has `streams` (pairs multiplexed on one
  // stream count once, pairs still connecting count each): max_connections_per_domain, but
  // never fewer than `local_domains` (this server's domains and room services): a peer that
  // does not multiplex needs one stream per local domain that talks to it.
  std::optional<Refusal> another_stream(std::string_view remote, std::size_t streams,
                                        std::size_t local_domains) const;
  // A link to one more (local, remote) pair, with `links` open, opening or waiting to retry:
  // max_links.
  std::optional<Refusal> another_link(std::size_t links) const;
  // One more stanza waiting for `remote` behind `queued` others: queue_size.
  std::optional<Refusal> enqueue(std::string_view remote, std::size_t queued) const;

  // Dialback with a peer whose certificate is not valid for its domain: only when allowed
  // globally (allow_unverified_dialback) or for the domain (unverified_dialback_domains).
  bool dialback_without_certificate(std::string_view remote) const;

 private:
  const core::S2sConfig& config_;
  Policy policy_;
};

}  // namespace waddle::s2s
