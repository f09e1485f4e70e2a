// XEP-0045 admin side (muc#admin): affiliation and role lists (§9.5, §10.5) and changes
// (§8.2-8.5, §9.1-9.4, §10.3-10.7), applied entirely or not at all.
#include "muc/room.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "muc/room_detail.h"
#include "xml/stanza.h"

namespace waddle::muc {

using core::Jid;
using core::StanzaError;
using detail::rank;
using xml::Element;

// One item of a muc#admin set: an affiliation change (by bare JID) or a role change (by nick).
struct Room::AdminChange {
  std::string nick;  // role change
  std::optional<Role> role;
  std::string jid;  // affiliation change (bare)
  std::optional<Affiliation> affiliation;
  std::string reason;
};

void Room::admin_iq(const Element& iq, const Jid& from) {
  const Affiliation mine = affiliation_of(from);
  const MucOccupant* me = occupant_by_real(from);
  const bool moderator = me && me->role == Role::kModerator;
  auto items = iq.first_child()->children("item", ns::kMucAdmin);
  if (items.empty()) return reply_error(iq, StanzaError::kBadRequest, "Expected an item");
  if (iq.attr("type") == "get") return admin_list(iq, *items.front(), mine, moderator);

  // Every item is read and checked before any is applied.
  std::vector<AdminChange> changes;
  for (const auto* item : items) {
    AdminChange c;
    if (auto bad = read_admin_item(*item, c))
      return reply_error(iq, StanzaError::kBadRequest, *bad);
    if (auto refusal = admin_refusal(c, mine, moderator))
      return reply_error(iq, refusal->first, refusal->second);
    changes.push_back(std::move(c));
  }
  if (!keeps_an_owner(changes))
    return reply_error(iq, StanzaError::kConflict, "A room must keep at least one owner");

  ctx_->send(xml::make_iq_result(iq));
  for (const auto& c : changes) {
    if (c.affiliation)
      apply_affiliation(c);
    else
      apply_role(c);
  }
}

// §9.5 and friends: lists by affiliation (admins and owners) or by role (moderators).
void Room::admin_list(const Element& iq, const Element& item, Affiliation mine, bool moderator) {
  Element r = xml::make_iq_result(iq);
  Element& rq = r.add_child("query", std::string(ns::kMucAdmin));
  if (auto a = affiliation_from(item.attr("affiliation"))) {
    // Members may read who else is a member, admin or owner (clients pick encryption
    // recipients from these lists); the ban list is for admins.
    const Affiliation needed =
        *a == Affiliation::kOutcast ? Affiliation::kAdmin : Affiliation::kMember;
    if (rank(mine) < rank(needed))
      return reply_error(iq, StanzaError::kForbidden, "You may not read that list");
    for (const auto& [jid, aff] : affiliations_) {
      if (aff != *a) continue;
      rq.add_child("item", std::string(ns::kMucAdmin))
          .set_attr("affiliation", to_string(aff))
          .set_attr("jid", jid);
    }
    return ctx_->send(std::move(r));
  }
  if (auto role = role_from(item.attr("role"))) {
    if (!moderator)
      return reply_error(iq, StanzaError::kForbidden, "Only moderators may list roles");
    for (const auto& [nick, occ] : occupants_) {
      if (occ.role != *role) continue;
      rq.add_child("item", std::string(ns::kMucAdmin))
          .set_attr("affiliation", to_string(occ.affiliation))
          .set_attr("role", to_string(occ.role))
          .set_attr("nick", nick)
          .set_attr("jid", occ.real_jid.bare_str());
    }
    return ctx_->send(std::move(r));
  }
  reply_error(iq, StanzaError::kBadRequest, "Expected an affiliation or a role");
}

// Reads one item of a set into `c`; says what is wrong with it, if anything.
std::optional<std::string> Room::read_admin_item(const Element& item, AdminChange& c) const {
  c.reason = item.child_text("reason", ns::kMucAdmin);
  if (item.has_attr("affiliation")) {
    c.affiliation = affiliation_from(item.attr("affiliation"));
    auto j = Jid::parse(item.attr("jid"));
    if (!j && item.has_attr("nick")) {
      if (auto it = occupants_.find(item.attr("nick")); it != occupants_.end())
        j = it->second.real_jid;
    }
    if (!c.affiliation || !j) return "Bad affiliation item";
    c.jid = j->bare_str();
    return std::nullopt;
  }
  if (item.has_attr("role")) {
    c.role = role_from(item.attr("role"));
    c.nick = std::string(item.attr("nick"));
    if (!c.role || !occupants_.contains(c.nick)) return "Bad role item";
    return std::nullopt;
  }
  return "Expected an affiliation or a role";
}

// Whether a sender with affiliation `mine` may make the change.
std::optional<Refusal> Room::admin_refusal(const AdminChange& c, Affiliation mine,
                                           bool moderator) const {
  if (c.affiliation) {
    auto it = affiliations_.find(c.jid);
    const Affiliation current = it == affiliations_.end() ? Affiliation::kNone : it->second;
    // §10.3 ff.: owners change anything; admins only members, none and outcasts below them.
    const bool allowed =
        mine == Affiliation::kOwner ||
        (mine == Affiliation::kAdmin && rank(current) < rank(Affiliation::kAdmin) &&
         rank(*c.affiliation) < rank(Affiliation::kAdmin));
    if (!allowed) return Refusal{StanzaError::kForbidden, "You may not change that affiliation"};
    return std::nullopt;
  }
  if (!moderator) return Refusal{StanzaError::kForbidden, "Only moderators may change roles"};
  const MucOccupant& target = occupants_.find(c.nick)->second;
  // §8.2 / §8.4: nobody kicks or silences someone of higher affiliation; only admins
  // grant moderation.
  if (rank(target.affiliation) > rank(mine) ||
      (*c.role != Role::kModerator && rank(target.affiliation) >= rank(Affiliation::kAdmin)))
    return Refusal{StanzaError::kNotAllowed, "You may not change that occupant's role"};
  if (*c.role == Role::kModerator && rank(mine) < rank(Affiliation::kAdmin))
    return Refusal{StanzaError::kNotAllowed, "Only admins may grant moderation"};
  return std::nullopt;
}

bool Room::keeps_an_owner(const std::vector<AdminChange>& changes) const {
  std::map<std::string, Affiliation> after = affiliations_;
  for (const auto& c : changes) {
    if (!c.affiliation) continue;
    if (*c.affiliation == Affiliation::kNone)
      after.erase(c.jid);
    else
      after[c.jid] = *c.affiliation;
  }
  return std::any_of(after.begin(), after.end(),
                     [](const auto& kv) { return kv.second == Affiliation::kOwner; });
}

// The user's occupants leave when banned (301) or no longer members of a members-only room
// (321); otherwise the room sees their new affiliation and role.
void Room::apply_affiliation(const AdminChange& c) {
  set_affiliation(c.jid, *c.affiliation);
  std::vector<std::string> nicks;
  for (const auto& [n, occ] : occupants_)
    if (occ.real_jid.bare_str() == c.jid) nicks.push_back(n);
  for (const auto& n : nicks) {
    auto& occ = occupants_.at(n);
    occ.affiliation = *c.affiliation;
    if (*c.affiliation == Affiliation::kOutcast) {
      remove_occupant(n, {301}, c.reason);
    } else if (config_.members_only && *c.affiliation == Affiliation::kNone) {
      remove_occupant(n, {321}, c.reason);
    } else {
      if (occ.role == Role::kModerator && rank(*c.affiliation) < rank(Affiliation::kAdmin))
        occ.role = Role::kParticipant;
      refresh_role(occ);
      announce_occupant(occ);
    }
  }
}

// Role none is a kick (307); any other role is announced to the room.
void Room::apply_role(const AdminChange& c) {
  auto it = occupants_.find(c.nick);
  if (it == occupants_.end()) return;
  if (*c.role == Role::kNone) return remove_occupant(c.nick, {307}, c.reason);
  it->second.role = *c.role;
  announce_occupant(it->second);
}

// An occupant's changed affiliation or role, as presence to every occupant (§8, §9).
void Room::announce_occupant(const MucOccupant& occ) {
  const Element base = occ.sessions.begin()->second;
  broadcast_presence(occ, base, {}, {}, {110});
}

}  // namespace waddle::muc
