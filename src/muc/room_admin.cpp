// XEP-0045 admin side (muc#admin): affiliation and role lists (§9.5, §10.5) and changes
// (§8.2-8.5, §9.1-9.4, §10.3-10.7), applied entirely or not at all.
#include "muc/room.h"

#include <algorithm>

#include "muc/room_detail.h"
#include "xml/stanza.h"

namespace waddle::muc {

using core::Jid;
using core::StanzaError;
using xml::Element;

namespace {

int rank(Affiliation a) {
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

}  // namespace

void Room::admin_iq(const Element& iq, const Jid& from) {
  const Affiliation mine = affiliation_of(from);
  MucOccupant* me = occupant_by_real(from);
  const bool moderator = me && me->role == Role::kModerator;
  const Element* q = iq.first_child();
  auto items = q->children("item", ns::kMucAdmin);
  if (items.empty()) return reply_error(iq, StanzaError::kBadRequest, "Expected an item");
  if (iq.attr("type") == "get") {
    // §9.5 and friends: lists by affiliation (admins and owners) or by role (moderators).
    Element r = xml::make_iq_result(iq);
    Element& rq = r.add_child("query", std::string(ns::kMucAdmin));
    const Element* item = items.front();
    if (auto a = affiliation_from(item->attr("affiliation"))) {
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
    if (auto role = role_from(item->attr("role"))) {
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
    return reply_error(iq, StanzaError::kBadRequest, "Expected an affiliation or a role");
  }

  // Validate every item first so that a request is applied entirely or not at all.
  struct Change {
    std::string nick;  // role change
    std::optional<Role> role;
    std::string jid;  // affiliation change (bare)
    std::optional<Affiliation> affiliation;
    std::string reason;
  };
  std::vector<Change> changes;
  std::map<std::string, Affiliation> after = affiliations_;
  for (const auto* item : items) {
    Change c;
    c.reason = item->child_text("reason", ns::kMucAdmin);
    if (item->has_attr("affiliation")) {
      c.affiliation = affiliation_from(item->attr("affiliation"));
      auto j = Jid::parse(item->attr("jid"));
      if (!j && item->has_attr("nick")) {
        if (auto it = occupants_.find(item->attr("nick")); it != occupants_.end())
          j = it->second.real_jid;
      }
      if (!c.affiliation || !j)
        return reply_error(iq, StanzaError::kBadRequest, "Bad affiliation item");
      c.jid = j->bare_str();
      const Affiliation current =
          affiliations_.contains(c.jid) ? affiliations_.at(c.jid) : Affiliation::kNone;
      // §10.3 ff.: owners change anything; admins only members, none and outcasts below them.
      const bool allowed =
          mine == Affiliation::kOwner ||
          (mine == Affiliation::kAdmin && rank(current) < rank(Affiliation::kAdmin) &&
           rank(*c.affiliation) < rank(Affiliation::kAdmin));
      if (!allowed)
        return reply_error(iq, StanzaError::kForbidden, "You may not change that affiliation");
      if (*c.affiliation == Affiliation::kNone)
        after.erase(c.jid);
      else
        after[c.jid] = *c.affiliation;
    } else if (item->has_attr("role")) {
      c.role = role_from(item->attr("role"));
      c.nick = std::string(item->attr("nick"));
      auto it = occupants_.find(c.nick);
      if (!c.role || it == occupants_.end())
        return reply_error(iq, StanzaError::kBadRequest, "Bad role item");
      if (!moderator)
        return reply_error(iq, StanzaError::kForbidden, "Only moderators may change roles");
      const auto& target = it->second;
      // §8.2 / §8.4: nobody kicks or silences someone of higher affiliation; only admins
      // grant moderation.
      if (rank(target.affiliation) > rank(mine) ||
          (*c.role != Role::kModerator && rank(target.affiliation) >= rank(Affiliation::kAdmin)))
        return reply_error(iq, StanzaError::kNotAllowed, "You may not change that occupant's role");
      if (*c.role == Role::kModerator && rank(mine) < rank(Affiliation::kAdmin))
        return reply_error(iq, StanzaError::kNotAllowed, "Only admins may grant moderation");
    } else {
      return reply_error(iq, StanzaError::kBadRequest, "Expected an affiliation or a role");
    }
    changes.push_back(std::move(c));
  }
  if (std::none_of(after.begin(), after.end(),
                   [](const auto& kv) { return kv.second == Affiliation::kOwner; }))
    return reply_error(iq, StanzaError::kConflict, "A room must keep at least one owner");

  ctx_->send(xml::make_iq_result(iq));
  for (const auto& c : changes) {
    if (c.affiliation) {
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
          Element base = occ.sessions.begin()->second;
          broadcast_presence(occ, base, {}, {}, {110});
        }
      }
    } else if (c.role) {
      auto it = occupants_.find(c.nick);
      if (it == occupants_.end()) continue;
      if (*c.role == Role::kNone) {
        remove_occupant(c.nick, {307}, c.reason);
      } else {
        it->second.role = *c.role;
        Element base = it->second.sessions.begin()->second;
        broadcast_presence(it->second, base, {}, {}, {110});
      }
    }
  }
}

}  // namespace waddle::muc
