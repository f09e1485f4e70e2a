// JIDs (RFC 7622 addresses) with stringprep preparation: nodeprep/resourceprep (libidn),
// IDNA2008 domains (libidn2).
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
  // Replaces the resource, preparing it; nullopt when invalid.
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

// Individual preparation profiles; nullopt on failure.
std::optional<std::string> nodeprep(std::string_view s);
std::optional<std::string> resourceprep(std::string_view s);
std::optional<std::string> nameprep_domain(std::string_view s);
// SASLprep (RFC 4013) for passwords and SASL usernames.
std::optional<std::string> saslprep(std::string_view s);

}  // namespace waddle::core
