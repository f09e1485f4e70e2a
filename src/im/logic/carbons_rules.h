// Which messages Message Carbons copy (XEP-0280 §6 "eligible for carbons delivery", §9
// <private/>), with the XEP-0334 <no-copy/> hint and the XEP-0045 rules for rooms. No I/O.
#pragma once

#include <string>

#include "xml/element.h"

namespace waddle::im::logic {

// Who the other party of a message is, as far as rooms go.
enum class CarbonPeer {
  kOther,     // a user (or anything not known to be a room)
  kRoom,      // a room itself (its bare JID) or a room service
  kOccupant,  // an occupant of a room (the room's JID with a nick): a private message
};

// Whether `message` (a <message/> as sent or as delivered) is copied to the user's other
// carbons-enabled resources: type chat, or normal with a body; never errors, groupchat,
// headlines, carbons themselves, messages marked <private/> or <no-copy/>, messages from or
// to a room, nor private messages in a room without the XEP-0045 <x xmlns='muc#user'/>.
bool carbon_eligible(const xml::Element& message, CarbonPeer peer);

// Removes the <private/> elements (XEP-0280 §9: the receiving server removes it before
// delivery); returns whether there was one.
bool strip_private(xml::Element& message);

// The copy for `to` (a full JID) of `user` (a bare JID): <message from=user to=to type=...>
// <sent|received xmlns=carbons><forwarded xmlns=forward>message</forwarded></...></message>.
xml::Element carbon_copy(const xml::Element& message, bool sent, const std::string& user,
                         const std::string& to);

}  // namespace waddle::im::logic
