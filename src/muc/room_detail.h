// What the room's source files share and the room's interface does not show.
#pragma once

#include <string>
#include <string_view>

#include "muc/room.h"
#include "xml/element.h"

namespace waddle::muc::detail {

inline const std::string kClientNs(ns::kClient);
inline const std::string kUserNs(ns::kMucUser);
inline constexpr std::string_view kHats = "urn:xmpp:hats:0";  // XEP-0317
// The affiliations a room's configuration may give hats to (XEP-0317).
inline constexpr std::string_view kHatAffiliations[] = {"owner", "admin", "member"};

// An error from an occupant's real JID that means it cannot be reached any more (its server
// or session is gone), as opposed to a refusal of one stanza (blocking, a filter).
bool unreachable(const xml::Element& error);

// The first value of a data form's field `var` (XEP-0004), or "".
inline std::string form_value(const xml::Element& form, std::string_view var) {
  for (const auto* f : form.children("field", ns::kData))
    if (f->attr("var") == var) return f->child_text("value", ns::kData);
  return {};
}

// Affiliations in order of privilege: outcast 0, none 1, member 2, admin 3, owner 4.
inline int rank(Affiliation a) {
  switch (a) {
    case Affiliation::kOwner:
      return 4;
    case Affiliation::kAdmin:
      return 3;
    case Affiliation::kMember:
      return 2;
    case Affiliation::kNone:
      return 1;
    case Affiliation::kOutcast:
      return 0;
  }
  return 0;
}

}  // namespace waddle::muc::detail
