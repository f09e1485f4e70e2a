// Room archives (XEP-0313 on rooms, XEP-0359 stanza ids): which groupchat messages a room
// keeps, the stanza-id it gives them, and who may read the archive. The archive itself is
// kept by the server behind Context::archive and Context::archive_query.
#include <chrono>

#include "core/ids.h"
#include "muc/room.h"
#include "muc/room_detail.h"
#include "xml/stanza.h"

namespace waddle::muc {

using core::Jid;
using core::StanzaError;
using xml::Element;

void Room::archive(Element& message, const std::string& nick) {
  if (!archives()) return;
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  ArchivedMessage entry{
      core::ordered_id(std::chrono::duration_cast<std::chrono::microseconds>(now).count()),
      jid_.bare_str() + "/" + nick, message};
  // Every occupant's copy names the archived message with the same id (XEP-0359 §3).
  message.add_child("stanza-id", std::string(ns::kSid))
      .set_attr("id", entry.id)
      .set_attr("by", jid_.bare_str());
  may_have_archive_ = true;
  ctx_->archive(jid_, std::move(entry));
}

std::optional<Refusal> Room::archive_refusal(const Jid& from) const {
  const Affiliation a = affiliation_of(from);
  if (a == Affiliation::kOutcast)
    return Refusal{StanzaError::kForbidden, "You are banned from this room"};
  // Whoever may join reads it: in an open room anyone; behind membership or a password only
  // those let in (members, and occupants, who gave the password).
  if (!config_.members_only && config_.password.empty()) return std::nullopt;
  if (a != Affiliation::kNone || by_real_.contains(from.str())) return std::nullopt;
  return Refusal{StanzaError::kForbidden,
                 config_.members_only ? "Only members may read the archive of this room"
                                      : "Only occupants and members may read the archive of "
                                        "this password-protected room"};
}

void Room::archive_iq(const Element& iq, const Jid& from) {
  if (!archives())
    return reply_error(iq, StanzaError::kServiceUnavailable, "This room keeps no archive");
  if (auto refusal = archive_refusal(from)) return reply_error(iq, refusal->first, refusal->second);
  const Element* q = iq.first_child();
  if (!q->is("query", ns::kMam))
    return reply_error(iq, StanzaError::kFeatureNotImplemented,
                       "A room archive answers queries only");
  ctx_->archive_query(jid_, iq);
}

}  // namespace waddle::muc
