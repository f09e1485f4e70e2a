// XEP-0045 room logic. Section numbers in comments refer to XEP-0045 1.34.
#include "muc/room.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "core/ids.h"
#include "core/timestamp.h"
#include "xml/stanza.h"

namespace waddle::muc {

using core::Jid;
using core::StanzaError;
using xml::Element;

namespace {

const std::string kClientNs(xml::ns::kClient);
const std::string kUserNs(ns::kMucUser);
const std::string kDataNs(ns::kData);

bool truthy(std::string_view v) {
  return v == "1" || v == "true";
}

// An error from an occupant's real JID that means it cannot be reached any more (its server
// or session is gone), as opposed to a refusal of one stanza (blocking, a filter).
bool unreachable(const Element& error) {
  auto c = xml::stanza_error_condition(error);
  if (!c) return false;
  switch (*c) {
    case StanzaError::kGone:
    case StanzaError::kInternalServerError:
    case StanzaError::kItemNotFound:
    case StanzaError::kJidMalformed:
    case StanzaError::kRecipientUnavailable:
    case StanzaError::kRedirect:
    case StanzaError::kRemoteServerNotFound:
    case StanzaError::kRemoteServerTimeout:
    case StanzaError::kServiceUnavailable:
      return true;
    default:
      return false;
  }
}

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

Element& data_field(Element& form, std::string_view var, std::string_view type,
                    std::string_view label, std::string_view value) {
  Element& f = form.add_child("field", kDataNs);
  f.set_attr("var", var);
  if (!type.empty()) f.set_attr("type", type);
  if (!label.empty()) f.set_attr("label", label);
  f.add_child("value", kDataNs).add_text(value);
  return f;
}

std::map<std::string, std::string> form_values(const Element& form) {
  std::map<std::string, std::string> out;
  for (const auto* f : form.children("field", ns::kData)) {
    out[std::string(f->attr("var"))] = f->child_text("value", ns::kData);
  }
  return out;
}

}  // namespace

std::string_view to_string(Affiliation a) {
  switch (a) {
    case Affiliation::kOwner:
      return "owner";
    case Affiliation::kAdmin:
      return "admin";
    case Affiliation::kMember:
      return "member";
    case Affiliation::kNone:
      return "none";
    case Affiliation::kOutcast:
      return "outcast";
  }
  return "none";
}

std::string_view to_string(Role r) {
  switch (r) {
    case Role::kModerator:
      return "moderator";
    case Role::kParticipant:
      return "participant";
    case Role::kVisitor:
      return "visitor";
    case Role::kNone:
      return "none";
  }
  return "none";
}

std::optional<Affiliation> affiliation_from(std::string_view s) {
  for (auto a : {Affiliation::kOwner, Affiliation::kAdmin, Affiliation::kMember, Affiliation::kNone,
                 Affiliation::kOutcast})
    if (to_string(a) == s) return a;
  return std::nullopt;
}

std::optional<Role> role_from(std::string_view s) {
  for (auto r : {Role::kModerator, Role::kParticipant, Role::kVisitor, Role::kNone})
    if (to_string(r) == s) return r;
  return std::nullopt;
}

Room::Room(Jid jid, RoomConfig config, Context& ctx)
    : jid_(std::move(jid)), config_(std::move(config)), ctx_(&ctx), secret_(core::random_hex(16)) {}

std::string Room::occupant_id(const Jid& real_bare) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const std::string bare = real_bare.bare_str();
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(bare.data()), bare.size(), mac, &len);
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), mac, static_cast<int>(len));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Affiliation Room::affiliation_of(const Jid& real) const {
  auto it = affiliations_.find(real.bare_str());
  return it == affiliations_.end() ? Affiliation::kNone : it->second;
}

void Room::set_affiliation(const std::string& bare, Affiliation a) {
  if (a == Affiliation::kNone)
    affiliations_.erase(bare);
  else
    affiliations_[bare] = a;
  dirty = true;
}

MucOccupant* Room::occupant_by_real(const Jid& real_full) {
  auto it = by_real_.find(real_full.str());
  if (it == by_real_.end()) return nullptr;
  auto o = occupants_.find(it->second);
  return o == occupants_.end() ? nullptr : &o->second;
}

void Room::reply_error(const Element& stanza, StanzaError e, std::string_view text) {
  if (!xml::may_bounce(stanza)) return;
  ctx_->send(xml::make_error_reply(stanza, e, text));
}

void Room::refresh_role(MucOccupant& occ) {
  switch (occ.affiliation) {
    case Affiliation::kOwner:
    case Affiliation::kAdmin:
      occ.role = Role::kModerator;
      break;
    case Affiliation::kMember:
      if (occ.role == Role::kVisitor || occ.role == Role::kNone) occ.role = Role::kParticipant;
      break;
    case Affiliation::kNone:
      if (occ.role == Role::kNone)
        occ.role = config_.moderated ? Role::kVisitor : Role::kParticipant;
      break;
    case Affiliation::kOutcast:
      occ.role = Role::kNone;
      break;
  }
}

// ------------------------------------------------------------------------- presence

Element Room::occupant_presence(const MucOccupant& occ, const Element& base,
                                const MucOccupant* viewer, std::initializer_list<int> codes,
                                bool self) const {
  Element p = base;
  p.set_attr("from", jid_.bare_str() + "/" + occ.room_nick);
  Element& x = p.add_child("x", kUserNs);
  Element& item = x.add_child("item", kUserNs);
  item.set_attr("affiliation", to_string(occ.affiliation));
  item.set_attr("role", to_string(occ.role));
  const bool show_jid =
      config_.non_anonymous || self || (viewer && viewer->role == Role::kModerator);
  if (show_jid && !occ.sessions.empty()) {
    // The resource the presence came from, or the first one.
    std::string real = occ.sessions.begin()->first;
    if (auto f = base.attr("{waddle}session"); !f.empty()) real = std::string(f);
    item.set_attr("jid", real);
  }
  p.remove_attr("{waddle}session");
  for (int c : codes) x.add_child("status", kUserNs).set_attr("code", std::to_string(c));
  p.add_child("occupant-id", std::string(ns::kOccupantId))
      .set_attr("id", occupant_id(occ.real_jid));
  return p;
}

void Room::send_to_occupant(const MucOccupant& occ, Element stanza) {
  for (const auto& [full, last] : occ.sessions) {
    Element copy = stanza;
    copy.set_attr("to", full);
    ctx_->send(std::move(copy));
  }
}

// Sends occ's presence to every occupant; the occupant itself gets `self_codes` (110 and
// friends) added, on all its sessions or only on `self_session` when given.
void Room::broadcast_presence(const MucOccupant& occ, const Element& base,
                              std::initializer_list<int> codes, std::string_view self_session,
                              std::initializer_list<int> self_codes) {
  for (const auto& [nick, viewer] : occupants_) {
    if (&viewer == &occ) continue;
    send_to_occupant(viewer, occupant_presence(occ, base, &viewer, codes, false));
  }
  std::vector<int> all(codes);
  all.insert(all.end(), self_codes);
  for (const auto& [full, last] : occ.sessions) {
    if (!self_session.empty() && full != self_session) continue;
    Element p = occupant_presence(occ, base, &occ, {}, true);
    Element* x = p.child("x", ns::kMucUser);
    for (int c : all) x->add_child("status", kUserNs).set_attr("code", std::to_string(c));
    p.set_attr("to", full);
    ctx_->send(std::move(p));
  }
}

std::optional<std::pair<StanzaError, std::string>> Room::join_refusal(const Jid& from,
                                                                      const std::string& nick,
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
    // the room saw it leave): it gets the whole room state again, like a new join.
    occ->sessions[from.str()] = presence_base(stanza);
    Element base = occ->sessions[from.str()];
    base.set_attr("{waddle}session", from.str());
    for (const auto& [n, viewer] : occupants_)
      if (&viewer != occ)
        send_to_occupant(viewer, occupant_presence(*occ, base, &viewer, {}, false));
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
    for (const auto& [n, viewer] : occupants_) {
      if (&viewer == &occ) continue;
      send_to_occupant(viewer, occupant_presence(occ, base, &viewer, {}, false));
    }
  }
  send_state(occ, from, stanza, info);
}

// §7.2.3 ff.: what a joining session receives: the other occupants' presence, its own (110),
// the history and the subject.
void Room::send_state(const MucOccupant& occ, const Jid& from, const Element& stanza,
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
  // §7.2.13-15: history, then the subject.
  send_history(from.str(), stanza);
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
    if (status_code != 333) ctx_->send(std::move(p));
    return;
  }
  occ.role = Role::kNone;
  if (status_code == 333) {
    occ.sessions.clear();
    for (const auto& [n, viewer] : occupants_) {
      if (&viewer == &occ) continue;
      send_to_occupant(viewer, occupant_presence(occ, base, &viewer, {333}, false));
    }
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

// ------------------------------------------------------------------------- messages

void Room::broadcast_message(Element stanza) {
  for (const auto& [n, occ] : occupants_) send_to_occupant(occ, stanza);
}

void Room::send_history(const std::string& to, const Element& join) {
  std::size_t max_stanzas = history_.size();
  std::size_t max_chars = SIZE_MAX;
  std::int64_t since = 0;
  if (const Element* x = join.child("x", ns::kMuc)) {
    if (const Element* h = x->child("history", ns::kMuc)) {
      try {
        if (h->has_attr("maxstanzas"))
          max_stanzas =
              std::min<std::size_t>(max_stanzas, std::stoul(std::string(h->attr("maxstanzas"))));
        if (h->has_attr("maxchars")) max_chars = std::stoul(std::string(h->attr("maxchars")));
        if (h->has_attr("seconds"))
          since =
              ctx_->now() - static_cast<std::int64_t>(std::stoul(std::string(h->attr("seconds"))));
      } catch (...) {
        // Unreadable limits are ignored (full history), as other servers do.
      }
      if (h->has_attr("since")) {
        if (auto t = core::parse_timestamp(h->attr("since"))) since = std::max(since, *t);
      }
    }
  }
  // Walk back from the newest message while the limits allow, then send oldest first.
  std::size_t count = 0, chars = 0, first = history_.size();
  while (first > 0 && count < max_stanzas) {
    const auto& e = history_[first - 1];
    if (e.time < since) break;
    std::size_t size = e.message.str().size();
    if (max_chars != SIZE_MAX && chars + size > max_chars) break;
    chars += size;
    ++count;
    --first;
  }
  for (std::size_t i = first; i < history_.size(); ++i) {
    Element m = history_[i].message;
    m.set_attr("to", to);
    m.add_child("delay", std::string(xml::ns::kDelay))
        .set_attr("from", jid_.bare_str())
        .set_attr("stamp", core::format_timestamp(history_[i].time));
    ctx_->send(std::move(m));
  }
}

void Room::send_subject(const std::string& to) {
  Element m("message", kClientNs);
  m.set_attr("from",
             subject_nick_.empty() ? jid_.bare_str() : jid_.bare_str() + "/" + subject_nick_);
  m.set_attr("to", to);
  m.set_attr("type", "groupchat");
  m.add_child("subject", kClientNs).add_text(subject_);
  ctx_->send(std::move(m));
}

void Room::message(const Element& stanza, const Jid& from, const std::string& nick) {
  auto type = stanza.attr("type");
  MucOccupant* occ = occupant_by_real(from);
  if (type == "error") {
    // A bounce from an occupant's server: the occupant is gone (ghost), remove it.
    if (occ && unreachable(stanza)) leave(from, nullptr, 333);
    return;
  }
  if (type == "groupchat") {
    if (!nick.empty())
      return reply_error(stanza, StanzaError::kBadRequest,
                         "Groupchat messages go to the room's bare JID");
    if (!occ) return reply_error(stanza, StanzaError::kNotAcceptable, "You are not in this room");
    return groupchat(stanza, *occ);
  }
  if (!nick.empty()) {
    if (!occ) return reply_error(stanza, StanzaError::kNotAcceptable, "You are not in this room");
    return private_message(stanza, *occ, nick);
  }
  if (const Element* x = stanza.child("x", ns::kMucUser)) {
    if (x->child("invite", ns::kMucUser)) return invite(stanza, from, *x);
    if (const Element* d = x->child("decline", ns::kMucUser)) {
      // §7.8.2: a declined invitation goes back to the inviter.
      auto to = Jid::parse(d->attr("to"));
      if (!to) return reply_error(stanza, StanzaError::kJidMalformed);
      Element m("message", kClientNs);
      m.set_attr("from", jid_.bare_str());
      m.set_attr("to", to->str());
      Element& ux = m.add_child("x", kUserNs);
      Element& dec = ux.add_child("decline", kUserNs);
      dec.set_attr("from", from.bare_str());
      if (auto r = d->child_text("reason", ns::kMucUser); !r.empty())
        dec.add_child("reason", kUserNs).add_text(r);
      ctx_->send(std::move(m));
      return;
    }
  }
  reply_error(stanza, StanzaError::kNotAcceptable, "Send groupchat messages to this room");
}

void Room::groupchat(const Element& stanza, MucOccupant& sender) {
  if (sender.role == Role::kVisitor)
    return reply_error(stanza, StanzaError::kForbidden, "Visitors may not speak in this room");
  const Element* subject = stanza.child("subject");
  const bool has_body = stanza.child("body") != nullptr;
  if (subject && !has_body) {
    // §8.1: subject change.
    if (sender.role != Role::kModerator && !config_.change_subject)
      return reply_error(stanza, StanzaError::kForbidden, "You may not change the subject");
    subject_ = subject->text();
    subject_nick_ = sender.room_nick;
    dirty = true;
  }
  Element m("message", stanza.ns());
  for (const auto& a : stanza.attrs())
    if (a.name != "to" && a.name != "from") m.set_attr(a.name, a.value);
  for (const auto* c : stanza.children()) {
    if (c->ns() == ns::kMucUser || c->ns() == ns::kOccupantId || c->is("delay", xml::ns::kDelay))
      continue;
    m.add_child(*c);
  }
  m.set_attr("from", jid_.bare_str() + "/" + sender.room_nick);
  m.add_child("occupant-id", std::string(ns::kOccupantId))
      .set_attr("id", occupant_id(sender.real_jid));
  if (has_body && ctx_->history_size > 0) {
    history_.push_back({m, ctx_->now()});
    while (history_.size() > ctx_->history_size) history_.pop_front();
  }
  broadcast_message(std::move(m));
}

void Room::private_message(const Element& stanza, MucOccupant& sender, const std::string& nick) {
  auto it = occupants_.find(nick);
  if (it == occupants_.end())
    return reply_error(stanza, StanzaError::kItemNotFound, "No such occupant");
  Element m = stanza;
  m.remove_attr("to");
  m.set_attr("from", jid_.bare_str() + "/" + sender.room_nick);
  // Nothing that only the room may say: its notices (muc#user), delays, occupant ids.
  m.remove_children("occupant-id", ns::kOccupantId);
  m.remove_children("x", ns::kMucUser);
  m.remove_children("delay", xml::ns::kDelay);
  m.add_child("occupant-id", std::string(ns::kOccupantId))
      .set_attr("id", occupant_id(sender.real_jid));
  m.add_child("x", kUserNs);
  send_to_occupant(it->second, std::move(m));
}

void Room::invite(const Element& stanza, const Jid& from, const Element& x) {
  MucOccupant* occ = occupant_by_real(from);
  const Affiliation aff = affiliation_of(from);
  const bool admin = aff == Affiliation::kOwner || aff == Affiliation::kAdmin;
  if (!occ) return reply_error(stanza, StanzaError::kNotAcceptable, "You are not in this room");
  if (config_.members_only && !admin && !config_.allow_invites)
    return reply_error(stanza, StanzaError::kForbidden, "Only admins may invite to this room");
  for (const auto* inv : x.children("invite", ns::kMucUser)) {
    auto to = Jid::parse(inv->attr("to"));
    if (!to) return reply_error(stanza, StanzaError::kJidMalformed);
    // §7.8.2 / §9.3: in a members-only room an invitation grants membership.
    if (config_.members_only && affiliation_of(*to) == Affiliation::kNone)
      set_affiliation(to->bare_str(), Affiliation::kMember);
    Element m("message", kClientNs);
    m.set_attr("from", jid_.bare_str());
    m.set_attr("to", to->str());
    Element& ux = m.add_child("x", kUserNs);
    Element& i = ux.add_child("invite", kUserNs);
    i.set_attr("from", from.bare_str());
    if (auto r = inv->child_text("reason", ns::kMucUser); !r.empty())
      i.add_child("reason", kUserNs).add_text(r);
    if (!config_.password.empty()) ux.add_child("password", kUserNs).add_text(config_.password);
    m.add_child("body", kClientNs)
        .add_text(from.bare_str() + " invites you to the room " + jid_.bare_str());
    ctx_->send(std::move(m));
  }
}

// ------------------------------------------------------------------------- IQs

Element Room::disco_info(const Element& iq) const {
  Element r = xml::make_iq_result(iq);
  const std::string info_ns(xml::ns::kDiscoInfo);
  Element& q = r.add_child("query", info_ns);
  q.add_child("identity", info_ns)
      .set_attr("category", "conference")
      .set_attr("type", "text")
      .set_attr("name", config_.name.empty() ? jid_.local() : config_.name);
  std::vector<std::string_view> features{
      ns::kMuc,
      ns::kMucSelfPing,
      ns::kOccupantId,
      xml::ns::kDiscoInfo,
      config_.public_room ? "muc_public" : "muc_hidden",
      config_.persistent ? "muc_persistent" : "muc_temporary",
      config_.members_only ? "muc_membersonly" : "muc_open",
      config_.non_anonymous ? "muc_nonanonymous" : "muc_semianonymous",
      config_.moderated ? "muc_moderated" : "muc_unmoderated",
      config_.password.empty() ? "muc_unsecured" : "muc_passwordprotected"};
  for (auto f : features) q.add_child("feature", info_ns).set_attr("var", f);
  Element& form = q.add_child("x", kDataNs);
  form.set_attr("type", "result");
  data_field(form, "FORM_TYPE", "hidden", "", ns::kMucRoomInfo);
  data_field(form, "muc#roominfo_description", "", "Description", config_.description);
  data_field(form, "muc#roominfo_subject", "", "Subject", subject_);
  data_field(form, "muc#roominfo_occupants", "", "Number of occupants",
             std::to_string(occupants_.size()));
  data_field(form, "muc#roomconfig_roomname", "", "Name", config_.name);
  return r;
}

void Room::iq(const Element& stanza, const Jid& from, const std::string& nick) {
  auto type = stanza.attr("type");
  if (type != "get" && type != "set") return;
  const Element* q = stanza.first_child();
  if (!nick.empty()) {
    // XEP-0410: a ping to one's own occupant JID tells a client whether it is still joined.
    MucOccupant* occ = occupant_by_real(from);
    if (!occ) return reply_error(stanza, StanzaError::kNotAcceptable, "You are not in this room");
    if (!occupants_.contains(nick)) return reply_error(stanza, StanzaError::kItemNotFound);
    if (q && q->is("ping", xml::ns::kPing) && type == "get" && occ->room_nick == nick)
      return ctx_->send(xml::make_iq_result(stanza));
    return reply_error(stanza, StanzaError::kFeatureNotImplemented,
                       "IQs to occupants are not forwarded");
  }
  if (!q) return reply_error(stanza, StanzaError::kBadRequest);
  if (type == "get" && q->is("query", xml::ns::kDiscoInfo)) return ctx_->send(disco_info(stanza));
  if (type == "get" && q->is("query", xml::ns::kDiscoItems)) {
    Element r = xml::make_iq_result(stanza);
    r.add_child("query", std::string(xml::ns::kDiscoItems));
    return ctx_->send(std::move(r));
  }
  if (type == "get" && q->is("ping", xml::ns::kPing))
    return ctx_->send(xml::make_iq_result(stanza));
  if (q->is("query", ns::kMucOwner)) return owner_iq(stanza, from);
  if (q->is("query", ns::kMucAdmin)) return admin_iq(stanza, from);
  reply_error(stanza, StanzaError::kServiceUnavailable);
}

Element Room::config_form() const {
  Element form("x", kDataNs);
  form.set_attr("type", "form");
  form.add_child("title", kDataNs).add_text("Configuration of " + jid_.bare_str());
  data_field(form, "FORM_TYPE", "hidden", "", ns::kMucRoomConfig);
  data_field(form, "muc#roomconfig_roomname", "text-single", "Name", config_.name);
  data_field(form, "muc#roomconfig_roomdesc", "text-single", "Description", config_.description);
  data_field(form, "muc#roomconfig_persistentroom", "boolean", "Persistent",
             config_.persistent ? "1" : "0");
  data_field(form, "muc#roomconfig_publicroom", "boolean", "Listed in the room directory",
             config_.public_room ? "1" : "0");
  data_field(form, "muc#roomconfig_membersonly", "boolean", "Members only",
             config_.members_only ? "1" : "0");
  data_field(form, "muc#roomconfig_moderatedroom", "boolean", "Moderated",
             config_.moderated ? "1" : "0");
  data_field(form, "muc#roomconfig_changesubject", "boolean", "Participants may change the subject",
             config_.change_subject ? "1" : "0");
  data_field(form, "muc#roomconfig_allowinvites", "boolean", "Participants may invite",
             config_.allow_invites ? "1" : "0");
  data_field(form, "muc#roomconfig_passwordprotectedroom", "boolean", "Password protected",
             config_.password.empty() ? "0" : "1");
  data_field(form, "muc#roomconfig_roomsecret", "text-private", "Password", config_.password);
  Element& whois = data_field(form, "muc#roomconfig_whois", "list-single", "Who may see real JIDs",
                              config_.non_anonymous ? "anyone" : "moderators");
  for (const char* v : {"moderators", "anyone"})
    whois.add_child("option", kDataNs).add_child("value", kDataNs).add_text(v);
  data_field(form, "muc#roomconfig_maxusers", "text-single", "Maximum occupants",
             std::to_string(config_.max_users));
  return form;
}

std::optional<std::string> Room::apply_config(const Element& form, const Jid& /*from*/) {
  auto v = form_values(form);
  if (auto it = v.find("FORM_TYPE"); it != v.end() && it->second != ns::kMucRoomConfig)
    return "unknown FORM_TYPE";
  RoomConfig c = config_;
  auto flag = [&](const char* var, bool& out) {
    if (auto it = v.find(var); it != v.end()) out = truthy(it->second);
  };
  if (auto it = v.find("muc#roomconfig_roomname"); it != v.end()) c.name = it->second;
  if (auto it = v.find("muc#roomconfig_roomdesc"); it != v.end()) c.description = it->second;
  flag("muc#roomconfig_persistentroom", c.persistent);
  flag("muc#roomconfig_publicroom", c.public_room);
  flag("muc#roomconfig_membersonly", c.members_only);
  flag("muc#roomconfig_moderatedroom", c.moderated);
  flag("muc#roomconfig_changesubject", c.change_subject);
  flag("muc#roomconfig_allowinvites", c.allow_invites);
  bool protect = !c.password.empty();
  flag("muc#roomconfig_passwordprotectedroom", protect);
  if (auto it = v.find("muc#roomconfig_roomsecret"); it != v.end()) c.password = it->second;
  if (!protect) c.password.clear();
  if (protect && c.password.empty()) return "a password-protected room needs a password";
  if (auto it = v.find("muc#roomconfig_whois"); it != v.end()) {
    if (it->second != "anyone" && it->second != "moderators")
      return "whois must be anyone or moderators";
    c.non_anonymous = it->second == "anyone";
  }
  if (auto it = v.find("muc#roomconfig_maxusers"); it != v.end() && !it->second.empty()) {
    try {
      unsigned long n = std::stoul(it->second);
      if (n < 1 || n > ctx_->max_users)
        return "maxusers must be between 1 and " + std::to_string(ctx_->max_users);
      c.max_users = static_cast<std::uint32_t>(n);
    } catch (...) {
      return "maxusers is not a number";
    }
  }
  const bool anonymity_changed = c.non_anonymous != config_.non_anonymous;
  const bool now_members_only = c.members_only && !config_.members_only;
  config_ = std::move(c);
  dirty = true;
  // §10.2.1: tell occupants that the configuration changed.
  Element m("message", kClientNs);
  m.set_attr("from", jid_.bare_str());
  m.set_attr("type", "groupchat");
  Element& x = m.add_child("x", kUserNs);
  x.add_child("status", kUserNs).set_attr("code", "104");
  if (anonymity_changed)
    x.add_child("status", kUserNs).set_attr("code", config_.non_anonymous ? "172" : "173");
  broadcast_message(std::move(m));
  if (now_members_only) {
    // §9.3 / 322: non-members leave a room that became members-only.
    std::vector<std::string> out;
    for (const auto& [n, occ] : occupants_)
      if (occ.affiliation == Affiliation::kNone) out.push_back(n);
    for (const auto& n : out) remove_occupant(n, {322}, "");
  }
  for (auto& [n, occ] : occupants_) refresh_role(occ);
  return std::nullopt;
}

void Room::destroy(const Element* destroy_el) {
  Element extra("destroy", kUserNs);
  if (destroy_el) {
    if (destroy_el->has_attr("jid")) extra.set_attr("jid", destroy_el->attr("jid"));
    if (auto r = destroy_el->child_text("reason", ns::kMucOwner); !r.empty())
      extra.add_child("reason", kUserNs).add_text(r);
  }
  std::vector<std::string> nicks;
  for (const auto& [n, occ] : occupants_) nicks.push_back(n);
  for (auto& [n, occ] : occupants_) occ.affiliation = Affiliation::kNone;
  for (const auto& n : nicks) remove_occupant(n, {}, "", &extra);
  destroyed_ = true;
  dirty = true;
}

void Room::owner_iq(const Element& iq, const Jid& from) {
  if (affiliation_of(from) != Affiliation::kOwner)
    return reply_error(iq, StanzaError::kForbidden, "Only owners may configure the room");
  const Element* q = iq.first_child();
  if (iq.attr("type") == "get") {
    Element r = xml::make_iq_result(iq);
    r.add_child("query", std::string(ns::kMucOwner)).add_child(config_form());
    return ctx_->send(std::move(r));
  }
  if (const Element* d = q->child("destroy", ns::kMucOwner)) {
    ctx_->send(xml::make_iq_result(iq));
    return destroy(d);
  }
  const Element* form = q->child("x", ns::kData);
  if (!form) return reply_error(iq, StanzaError::kBadRequest, "Expected a data form");
  auto form_type = form->attr("type");
  if (form_type == "cancel") return ctx_->send(xml::make_iq_result(iq));
  if (form_type != "submit")
    return reply_error(iq, StanzaError::kBadRequest, "Expected a submitted form");
  if (auto problem = apply_config(*form, from))
    return reply_error(iq, StanzaError::kNotAcceptable, *problem);
  ctx_->send(xml::make_iq_result(iq));
}

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

// ------------------------------------------------------------------------- persistence

Element Room::save() const {
  const std::string store_ns(ns::kMucStore);
  Element r("room", store_ns);
  r.set_attr("name", config_.name);
  r.set_attr("description", config_.description);
  r.set_attr("persistent", config_.persistent ? "1" : "0");
  r.set_attr("public", config_.public_room ? "1" : "0");
  r.set_attr("members-only", config_.members_only ? "1" : "0");
  r.set_attr("moderated", config_.moderated ? "1" : "0");
  r.set_attr("password", config_.password);
  r.set_attr("non-anonymous", config_.non_anonymous ? "1" : "0");
  r.set_attr("change-subject", config_.change_subject ? "1" : "0");
  r.set_attr("allow-invites", config_.allow_invites ? "1" : "0");
  r.set_attr("max-users", std::to_string(config_.max_users));
  r.set_attr("secret", secret_);
  Element& s = r.add_child("subject", store_ns);
  s.set_attr("nick", subject_nick_);
  s.add_text(subject_);
  for (const auto& [jid, aff] : affiliations_)
    r.add_child("affiliation", store_ns).set_attr("jid", jid).set_attr("value", to_string(aff));
  return r;
}

std::optional<Room> Room::load(const Jid& jid, const Element& saved, Context& ctx) {
  if (saved.name() != "room") return std::nullopt;
  RoomConfig c;
  c.name = std::string(saved.attr("name"));
  c.description = std::string(saved.attr("description"));
  c.persistent = truthy(saved.attr("persistent"));
  c.public_room = truthy(saved.attr("public"));
  c.members_only = truthy(saved.attr("members-only"));
  c.moderated = truthy(saved.attr("moderated"));
  c.password = std::string(saved.attr("password"));
  c.non_anonymous = truthy(saved.attr("non-anonymous"));
  c.change_subject = truthy(saved.attr("change-subject"));
  c.allow_invites = truthy(saved.attr("allow-invites"));
  try {
    c.max_users = static_cast<std::uint32_t>(std::stoul(std::string(saved.attr("max-users"))));
  } catch (...) {
    return std::nullopt;
  }
  Room room(jid, std::move(c), ctx);
  if (auto secret = saved.attr("secret"); !secret.empty())
    room.secret_ = std::string(secret);
  else
    room.dirty = true;  // save the new secret so that occupant ids stay stable
  if (const Element* s = saved.child("subject")) {
    room.subject_ = s->text();
    room.subject_nick_ = std::string(s->attr("nick"));
  }
  for (const auto* a : saved.children()) {
    if (a->name() != "affiliation") continue;
    auto aff = affiliation_from(a->attr("value"));
    if (aff && *aff != Affiliation::kNone) room.affiliations_[std::string(a->attr("jid"))] = *aff;
  }
  return room;
}

}  // namespace waddle::muc
