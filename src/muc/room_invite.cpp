// XEP-0045 mediated invitations and declines (§7.8.2), bounded: a few invitations per
// message and per minute, membership granted only by members and above and only up to a cap,
// and a decline forwarded only to the inviter of an invitation the room itself sent.
#include <set>

#include "muc/room.h"
#include "muc/room_detail.h"
#include "xml/stanza.h"

namespace waddle::muc {

using core::Jid;
using core::StanzaError;
using detail::kClientNs;
using detail::kUserNs;
using detail::rank;
using xml::Element;

std::optional<Refusal> Room::invite_refusal(const MucOccupant& inviter, std::size_t count,
                                            std::size_t new_members) {
  const RoomLimits& limits = ctx_->limits;
  const Affiliation aff = inviter.affiliation;
  if (inviter.role == Role::kVisitor || inviter.role == Role::kNone)
    return Refusal{StanzaError::kForbidden, "Visitors may not invite"};
  if (config_.members_only && rank(aff) < rank(Affiliation::kAdmin) && !config_.allow_invites)
    return Refusal{StanzaError::kForbidden, "Only admins may invite to this room"};
  if (count > limits.invites_per_stanza)
    return Refusal{
        StanzaError::kPolicyViolation,
        "At most " + std::to_string(limits.invites_per_stanza) + " invitations in one message"};
  // Minutes that are over are forgotten, so the map holds only this minute's inviters.
  const std::int64_t now = ctx_->now();
  std::erase_if(invite_windows_, [now](const auto& kv) { return now - kv.second.first >= 60; });
  auto window = invite_windows_.find(inviter.real_jid.bare_str());
  const std::size_t sent = window == invite_windows_.end() ? 0 : window->second.second;
  if (sent + count > limits.invites_per_minute)
    return Refusal{StanzaError::kPolicyViolation, "At most " +
                                                      std::to_string(limits.invites_per_minute) +
                                                      " invitations a minute; try again later"};
  if (new_members > 0 && affiliations_.size() + new_members > limits.affiliations_by_invitation)
    return Refusal{StanzaError::kResourceConstraint,
                   "This room has as many members as invitations may add; ask an admin"};
  return std::nullopt;
}

void Room::invite(const Element& stanza, const Jid& from, const Element& x) {
  MucOccupant* occ = occupant_by_real(from);
  if (!occ) return reply_error(stanza, StanzaError::kNotAcceptable, "You are not in this room");
  // Every invitee is read and the whole message checked before any invitation leaves.
  std::vector<Jid> invitees;
  for (const auto* inv : x.children("invite", ns::kMucUser)) {
    auto to = Jid::parse(inv->attr("to"));
    if (!to) return reply_error(stanza, StanzaError::kJidMalformed);
    invitees.push_back(*to);
  }
  // §7.8.2 / §9.3: in a members-only room an invitation from a member or above grants
  // membership (a participant without an affiliation grants nothing).
  const bool grants = config_.members_only && rank(occ->affiliation) >= rank(Affiliation::kMember);
  std::set<std::string> new_members;
  if (grants)
    for (const auto& to : invitees)
      if (affiliation_of(to) == Affiliation::kNone) new_members.insert(to.bare_str());
  if (auto refusal = invite_refusal(*occ, invitees.size(), new_members.size()))
    return reply_error(stanza, refusal->first, refusal->second);

  invite_windows_.try_emplace(from.bare_str(), ctx_->now(), 0).first->second.second +=
      invitees.size();
  for (const auto& bare : new_members) set_affiliation(bare, Affiliation::kMember);
  const auto invites = x.children("invite", ns::kMucUser);
  for (std::size_t n = 0; n < invitees.size(); ++n) {
    const Jid& to = invitees[n];
    remember_invitation(to.bare_str(), from.bare_str());
    Element m("message", kClientNs);
    m.set_attr("from", jid_.bare_str());
    m.set_attr("to", to.str());
    Element& ux = m.add_child("x", kUserNs);
    Element& i = ux.add_child("invite", kUserNs);
    i.set_attr("from", from.bare_str());
    if (auto r = invites[n]->child_text("reason", ns::kMucUser); !r.empty())
      i.add_child("reason", kUserNs).add_text(r);
    if (!config_.password.empty()) ux.add_child("password", kUserNs).add_text(config_.password);
    m.add_child("body", kClientNs)
        .add_text(from.bare_str() + " invites you to the room " + jid_.bare_str());
    ctx_->send(std::move(m));
  }
}

void Room::remember_invitation(const std::string& invitee, const std::string& inviter) {
  const std::int64_t now = ctx_->now();
  const RoomLimits& limits = ctx_->limits;
  while (!invitations_.empty() && (invitations_.size() >= limits.pending_invitations ||
                                   now - invitations_.front().time > limits.invitation_lifetime))
    invitations_.pop_front();
  if (limits.pending_invitations > 0) invitations_.push_back({invitee, inviter, now});
}

// §7.8.2: the invitee declines through the room, which tells the inviter. Only a decline of
// an invitation this room sent to the decliner is forwarded, and only to that inviter: the
// room is no relay to any address a stranger names.
void Room::decline(const Element& stanza, const Jid& from, const Element& d) {
  std::optional<Jid> to;
  if (d.has_attr("to")) {
    to = Jid::parse(d.attr("to"));
    if (!to) return reply_error(stanza, StanzaError::kJidMalformed);
  }
  const std::int64_t now = ctx_->now();
  const std::string invitee = from.bare_str();
  auto it = invitations_.rbegin();
  for (; it != invitations_.rend(); ++it) {
    if (now - it->time > ctx_->limits.invitation_lifetime) {
      it = invitations_.rend();
      break;
    }
    if (it->invitee == invitee && (!to || it->inviter == to->bare_str())) break;
  }
  if (it == invitations_.rend())
    return reply_error(stanza, StanzaError::kNotAcceptable,
                       "This room has no pending invitation for you from that address");
  const std::string inviter = it->inviter;
  invitations_.erase(std::next(it).base());
  Element m("message", kClientNs);
  m.set_attr("from", jid_.bare_str());
  m.set_attr("to", inviter);
  Element& ux = m.add_child("x", kUserNs);
  Element& dec = ux.add_child("decline", kUserNs);
  dec.set_attr("from", invitee);
  if (auto r = d.child_text("reason", ns::kMucUser); !r.empty())
    dec.add_child("reason", kUserNs).add_text(r);
  ctx_->send(std::move(m));
}

}  // namespace waddle::muc
