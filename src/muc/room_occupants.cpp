// XEP-0045 occupants: joining (§7.2), presence updates (§7.7), nickname changes (§7.6),
// leaving (§7.14), removal by kick, ban or loss of membership (§8.2, §9.1), and shutdown.
#include "muc/room.h"

#include "muc/room_detail.h"
#include "xml/stanza.h"

namespace waddle::muc {

using core::Jid;
using core::StanzaError;
using detail::kClientNs;
using detail::kUserNs;
using detail::unreachable;
using xml::Element;

namespace {

// A presence stanza's payload that the room passes on: everything but MUC and credential
// elements, which are between the user and the room.
constexpr std::size_t kMaxSessions = 10;           // resources of one user under one nick
constexpr std::size_t kMaxPresencePayload = 8192;  // bytes of a presence the room keeps

Element presence_base(const Element& p) {
  // The envelope keeps the received stanza's namespace (jabber:server from S2S) so that its
  // children, which inherit it, serialize without stray xmlns attributes.
  Element base("presence", p.ns());
  for (const auto* c : p.children()) {
    if (c->ns() == ns::kMuc || c->ns() == ns::kMucUser || c->ns() == ns::kIdentity ||
        c->ns() == ns::kOccupantId)
      continue;  // between user and room, or the room's to set (XEP-0421: never forwarded)
    if (c->name() == "error") continue;
    base.add_child(*c);
  }
  if (base.str().size() > kMaxPresencePayload) {
    // The room keeps (and repeats to every joiner) only the presence basics of a huge one.
    Element small("presence", p.ns());
    for (const auto* c : base.children())
      if (c->name() == "show" || c->name() == "status" || c->name() == "priority")
        if (c->str().size() < 1024) small.add_child(*c);
    return small;
  }
  return base;
}

}  // namespace

std::optional<Refusal> Room::join_refusal(const Jid& from, const std::string& nick,
                                          const Element& stanza) const {
  if (nick.empty()) return std::pair{StanzaError::kJidMalformed, "A nickname is required"};
  const Affiliation aff = affiliation_of(from);
  if (aff == Affiliation::kOutcast)
    return std::pair{StanzaError::kForbidden, "You are banned from this room"};
  if (auto it = occupants_.find(nick); it != occupants_.end()) {
    if (it->second.real_jid.bare_str() != from.bare_str())
      return std::pair{StanzaError::kConflict, "That nickname is already in use"};
    if (it->second.sessions.size() >= kMaxSessions && !it->second.sessions.contains(from.str()))
      return std::pair{StanzaError::kResourceConstraint,
                       "Too many of your resources are in this room"};
  }
  const bool admin = aff == Affiliation::kOwner || aff == Affiliation::kAdmin;
  if (config_.members_only && aff == Affiliation::kNone)
    return std::pair{StanzaError::kRegistrationRequired, "This room is for members only"};
  if (!config_.password.empty() && !admin) {
    const Element* x = stanza.child("x", ns::kMuc);
    if (!x || x->child_text("password", ns::kMuc) != config_.password)
      return std::pair{StanzaError::kNotAuthorized, "A password is required to enter this room"};
  }
  if (!admin && occupants_.size() >= config_.max_users && !occupants_.contains(nick))
    return std::pair{StanzaError::kServiceUnavailable, "The room is full"};
  return std::nullopt;
}

void Room::presence(const Element& stanza, const Jid& from, const std::string& nick,
                    const JoinInfo& info) {
  auto type = stanza.attr("type");
  MucOccupant* occ = occupant_by_real(from);
  if (type == "error") {
    // The occupant's server reports that it cannot be reached: remove the ghost (§ "333").
    if (occ && unreachable(stanza)) leave(from, nullptr, 333);
    return;
  }
  if (type == "unavailable") {
    if (occ) leave(from, &stanza, 0);
    return;
  }
  if (!type.empty()) return;  // probes and subscriptions mean nothing to a room
  if (nick.empty())
    return reply_error(stanza, StanzaError::kJidMalformed, "A nickname is required");
  if (occ && occ->room_nick != nick) return change_nick(*occ, from, stanza, nick);
  if (occ && stanza.child("x", ns::kMuc)) {
    // A join from a resource the room believes is joined (a client that reconnected before
    // the room saw it leave): XEP-0045 §17.3 makes it a full synchronisation, so it gets the
    // room state again, like a new join; the history only once a minute (send_state).
    occ->sessions[from.str()] = presence_base(stanza);
    Element base = occ->sessions[from.str()];
    base.set_attr("{waddle}session", from.str());
    presence_to_others(*occ, base, {});
    return send_state(*occ, from, stanza, {});
  }
  if (occ) {
    // §7.7: a presence update from an occupant.
    occ->sessions[from.str()] = presence_base(stanza);
    Element base = occ->sessions[from.str()];
    base.set_attr("{waddle}session", from.str());
    broadcast_presence(*occ, base, {}, {}, {110});
    return;
  }
  join(stanza, from, nick, info);
}

void Room::join(const Element& stanza, const Jid& from, const std::string& nick,
                const JoinInfo& info) {
  if (auto refusal = join_refusal(from, nick, stanza)) {
    return reply_error(stanza, refusal->first, refusal->second);
  }
  auto it = occupants_.find(nick);
  const bool new_occupant = it == occupants_.end();
  if (new_occupant) {
    MucOccupant occ;
    occ.real_jid = from.bare();
    occ.room_nick = nick;
    occ.affiliation = affiliation_of(from);
    occ.role = Role::kNone;
    refresh_role(occ);
    occ.is_remote = ctx_->is_local_domain && !ctx_->is_local_domain(from.domain());
    occ.home_server = from.domain();
    occ.occupant_id = occupant_id(occ.real_jid);
    it = occupants_.emplace(nick, std::move(occ)).first;
  }
  MucOccupant& occ = it->second;
  if (info.credential_verified) {
    occ.credential_verified = true;
    occ.did = info.did;
  }
  occ.sessions[from.str()] = presence_base(stanza);
  by_real_[from.str()] = nick;

  if (new_occupant) {
    Element base = occ.sessions[from.str()];
    base.set_attr("{waddle}session", from.str());
    presence_to_others(occ, base, {});
  }
  send_state(occ, from, stanza, info);
}

// §7.2.3 ff.: what a joining session receives: the other occupants' presence, its own (110),
// the history and the subject.
void Room::send_state(MucOccupant& occ, const Jid& from, const Element& stanza,
                      const JoinInfo& info) {
  for (const auto& [n, other] : occupants_) {
    if (&other == &occ || other.sessions.empty()) continue;
    Element base = other.sessions.begin()->second;
    Element p = occupant_presence(other, base, &occ, {}, false);
    p.set_attr("to", from.str());
    ctx_->send(std::move(p));
  }
  Element base = occ.sessions.at(from.str());
  base.set_attr("{waddle}session", from.str());
  std::vector<int> self;
  if (config_.non_anonymous) self.push_back(100);
  if (info.created) self.push_back(201);
  self.push_back(110);
  Element own = occupant_presence(occ, base, &occ, {}, true);
  Element* x = own.child("x", ns::kMucUser);
  for (int c : self) x->add_child("status", kUserNs).set_attr("code", std::to_string(c));
  own.set_attr("to", from.str());
  ctx_->send(std::move(own));
  // §7.2.13-15: history, then the subject. A resource that joins again and again would
  // otherwise make the room send the whole history each time for a presence of 150 bytes.
  const std::int64_t now = ctx_->now();
  auto [sent, first] = occ.history_sent.try_emplace(from.str(), now);
  if (first || now - sent->second >= ctx_->limits.rejoin_history_interval) {
    sent->second = now;
    send_history(from.str(), stanza);
  }
  send_subject(from.str());
}

void Room::leave(const Jid& from, const Element* stanza, int status_code) {
  auto r = by_real_.find(from.str());
  if (r == by_real_.end()) return;
  const std::string nick = r->second;
  by_real_.erase(r);
  auto it = occupants_.find(nick);
  if (it == occupants_.end()) return;
  MucOccupant& occ = it->second;
  Element base("presence", kClientNs);
  if (stanza) base = presence_base(*stanza);
  base.set_attr("type", "unavailable");
  if (occ.sessions.size() > 1) {
    // Another resource of the same user stays: only this one is told it left.
    Element p = occupant_presence(occ, base, &occ, {}, true);
    Element* x = p.child("x", ns::kMucUser);
    x->add_child("status", kUserNs).set_attr("code", "110");
    p.set_attr("to", from.str());
    occ.sessions.erase(from.str());
    occ.history_sent.erase(from.str());
    if (status_code != 333) ctx_->send(std::move(p));
    return;
  }
  occ.role = Role::kNone;
  if (status_code == 333) {
    occ.sessions.clear();
    presence_to_others(occ, base, {333});
  } else {
    broadcast_presence(occ, base, {}, {}, {110});
  }
  occupants_.erase(it);
}

void Room::change_nick(MucOccupant& occ, const Jid& from, const Element& stanza,
                       const std::string& new_nick) {
  if (occ.sessions.size() > 1)
    return reply_error(stanza, StanzaError::kNotAcceptable,
                       "Leave from your other resources before changing nickname");
  if (occupants_.contains(new_nick))
    return reply_error(stanza, StanzaError::kConflict, "That nickname is already in use");
  // §7.6: unavailable with 303 and the new nick, then available under the new nick.
  Element gone("presence", kClientNs);
  gone.set_attr("type", "unavailable");
  for (const auto& [n, viewer] : occupants_) {
    const bool self = &viewer == &occ;
    Element p = occupant_presence(occ, gone, &viewer, {303}, self);
    Element* x = p.child("x", ns::kMucUser);
    x->child("item", ns::kMucUser)->set_attr("nick", new_nick);
    if (self) x->add_child("status", kUserNs).set_attr("code", "110");
    send_to_occupant(viewer, std::move(p));
  }
  MucOccupant moved = std::move(occ);
  occupants_.erase(moved.room_nick);
  moved.room_nick = new_nick;
  moved.sessions[from.str()] = presence_base(stanza);
  by_real_[from.str()] = new_nick;
  auto& now = occupants_.emplace(new_nick, std::move(moved)).first->second;
  Element base = now.sessions[from.str()];
  base.set_attr("{waddle}session", from.str());
  broadcast_presence(now, base, {}, {}, {110});
}

// Removes an occupant that was kicked, banned or lost membership; `codes` explain why.
void Room::remove_occupant(const std::string& nick, std::initializer_list<int> codes,
                           const std::string& reason, const Element* extra) {
  auto it = occupants_.find(nick);
  if (it == occupants_.end()) return;
  MucOccupant& occ = it->second;
  occ.role = Role::kNone;
  Element base("presence", kClientNs);
  base.set_attr("type", "unavailable");
  for (const auto& [n, viewer] : occupants_) {
    const bool self = &viewer == &occ;
    Element p = occupant_presence(occ, base, &viewer, codes, self);
    Element* x = p.child("x", ns::kMucUser);
    if (!reason.empty())
      x->child("item", ns::kMucUser)->add_child("reason", kUserNs).add_text(reason);
    if (extra) x->add_child(*extra);
    if (self) x->add_child("status", kUserNs).set_attr("code", "110");
    send_to_occupant(viewer, std::move(p));
  }
  for (const auto& [full, last] : occ.sessions) by_real_.erase(full);
  occupants_.erase(it);
}

void Room::shutdown() {
  Element base("presence", kClientNs);
  base.set_attr("type", "unavailable");
  for (auto& [nick, occ] : occupants_) {
    occ.role = Role::kNone;
    send_to_occupant(occ, occupant_presence(occ, base, &occ, {110, 332}, true));
  }
  occupants_.clear();
  by_real_.clear();
}

}  // namespace waddle::muc
