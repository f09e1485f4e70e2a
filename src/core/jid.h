// JIDs (RFC 7622 addresses) with stringprep preparation: nodeprep/resourceprep (libidn),
// IDNA2008 domains (libidn2).
// Domains are kept as lowercase A-labels ("münchen.de" and "xn--mnchen-3ya.de" are the same
// Jid, stored as the latter) so they compare, log, resolve and match certificates as ASCII; this
// differs from RFC 7622 §3.2.1, which asks for U-labels, only in representation. IPv4 literals
// and bracketed IPv6 literals are kept unchanged.
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>

namespace waddle::core {

class Jid {
 public:
  Jid() = default;

  // Parses and prepares `s`. Returns nullopt when any part is invalid (empty domain, a part
  // longer than 1023 bytes, forbidden code points, "@" without a localpart, "/" without a
  // resource, ...). A trailing dot on the domain is removed; the domain is lowercased.
  static std::optional<Jid> parse(std::string_view s);
  // Builds from parts, preparing each; nullopt when a part is invalid. Empty local/resource
  // mean absent.
  static std::optional<Jid> from_parts(std::string_view local, std::string_view domain,
                                       std::string_view resource = {});

  const std::string& local() const { return local_; }
  const std::string& domain() const { return domain_; }
  const std::string& resource() const { return resource_; }

  bool empty() const { return domain_.empty(); }
  bool is_bare() const { return resource_.empty(); }
  bool is_domain() const { return local_.empty() && resource_.empty(); }

  Jid bare() const;
  // Replaces the resource, preparing it; nullopt when invalid or empty (use bare() instead).
  std::optional<Jid> with_resource(std::string_view resource) const;

  std::string str() const;
  std::string bare_str() const;

  friend bool operator==(const Jid&, const Jid&) = default;
  friend auto operator<=>(const Jid&, const Jid&) = default;

 private:
  std::string local_;
  std::string domain_;
  std::string resource_;
};

// Individual preparation profiles; nullopt on failure. nodeprep and resourceprep also fail
// on an empty result or one longer than 1023 bytes; unassigned code points are allowed.
std::optional<std::string> nodeprep(std::string_view s);
std::optional<std::string> resourceprep(std::string_view s);
std::optional<std::string> nameprep_domain(std::string_view s);
// A domainpart that is an IP address (RFC 7622 §3.2): IPv4 in dotted-quad form, or IPv6 in
// brackets ("[::1]").
bool is_ip_literal(std::string_view domain);
// The same without the all-ASCII fast paths: always through libidn/libidn2. Tests compare the
// two; nothing else needs these.
std::optional<std::string> nodeprep_library(std::string_view s);
std::optional<std::string> resourceprep_library(std::string_view s);
std::optional<std::string> nameprep_domain_library(std::string_view s);
// SASLprep (RFC 4013) for passwords and SASL usernames.
std::optional<std::string> saslprep(std::string_view s);

}  // namespace waddle::core
