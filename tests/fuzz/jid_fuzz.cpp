// libFuzzer target for JID preparation (RFC 7622; nodeprep/resourceprep via libidn, IDNA2008
// domains via libidn2), as every 'from'/'to' of a peer's stanzas reaches it. Checked: the
// all-ASCII fast paths agree with the libraries, a prepared JID parses back to itself (so
// that a JID stored or compared once prepared stays the same), and bounds on each part.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/jid.h"

namespace {

using waddle::core::Jid;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void check_jid(const Jid& j) {
  check(!j.domain().empty());
  check(j.local().size() <= 1023 && j.domain().size() <= 1023 && j.resource().size() <= 1023);
  // The separators cannot appear where they would split the JID differently.
  check(j.local().find_first_of("@/") == std::string::npos);
  check(j.domain().find_first_of("@/") == std::string::npos);
  // Prepared once, prepared for good: the string form parses back to the same JID.
  const auto again = Jid::parse(j.str());
  check(again.has_value());
  check(*again == j);
  check(again->str() == j.str());
  const auto bare = Jid::parse(j.bare_str());
  check(bare.has_value() && *bare == j.bare());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);

  // The fast paths give exactly what the libraries give.
  check(waddle::core::nodeprep(s) == waddle::core::nodeprep_library(s));
  check(waddle::core::resourceprep(s) == waddle::core::resourceprep_library(s));
  check(waddle::core::nameprep_domain(s) == waddle::core::nameprep_domain_library(s));
  if (const auto d = waddle::core::nameprep_domain(s)) {
    check(!d->empty() && d->size() <= 1023);
    check(waddle::core::nameprep_domain(*d) == d);
  }
  (void)waddle::core::saslprep(s);
  (void)waddle::core::is_ip_literal(s);

  if (const auto j = Jid::parse(s)) check_jid(*j);

  // The same bytes as separate parts (from_parts: as a stream header's attributes are used).
  const std::size_t a = size / 3, b = 2 * size / 3;
  const auto parts = Jid::from_parts(s.substr(0, a), s.substr(a, b - a), s.substr(b));
  if (parts) {
    check_jid(*parts);
    if (!parts->is_bare()) {
      const auto other = parts->bare().with_resource(parts->resource());
      check(other.has_value() && *other == *parts);
    }
  }
  return 0;
}
