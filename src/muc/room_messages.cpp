// XEP-0045 messages: groupchat and the subject (§7.4, §8.1), private messages (§7.5),
// history for joiners (§7.2.15); invitations and declines (§7.8) are in room_invite.cpp.
#include "muc/room.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string_view>

#include "core/timestamp.h"
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
constexpr std::string_view kMucRequest = "http://jabber.org/protocol/muc#request";
constexpr std::int64_t kVoiceRequestInterval = 60;  // seconds

Element& field(Element& form, std::string_view var, std::string_view type, std::string_view label,
               std::string_view value) {
  auto& f = form.add_child("field", std::string(ns::kData));
  f.set_attr("var", var);
  if (!type.empty()) f.set_attr("type", type);
  if (!label.empty()) f.set_attr("label", label);
  f.add_child("value", std::string(ns::kData)).add_text(value);
  return f;
}
}  // namespace

void Room::broadcast_message(Element stanza) {
  if (!ctx_->broadcast) {
    for (const auto& [n, occ] : occupants_) send_to_occupant(occ, stanza);
    return;
  }
  std::vector<std::string> to;
  for (const auto& [n, occ] : occupants_)
    for (const auto& [full, last] : occ.sessions) to.push_back(full);
  ctx_->broadcast(std::move(stanza), std::move(to));
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
        if (h->has_attr("seconds")) {
          // Beyond the clock (or unreadable, or negative) means everything, never an overflow.
          const std::string_view v = h->attr("seconds");
          std::uint64_t seconds = 0;
          const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
          const std::int64_t now = ctx_->now();
          if (ec == std::errc() && end == v.data() + v.size() && now > 0 &&
              seconds < static_cast<std::uint64_t>(now))
            since = now - static_cast<std::int64_t>(seconds);
        }
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
    if (max_chars != SIZE_MAX && chars + e.size > max_chars) break;
    chars += e.size;
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

// Keeps a groupchat message for joiners within both bounds, the oldest going first; one
// larger than the whole byte budget is not kept.
void Room::remember(const Element& message) {
  const std::size_t size = message.str().size();
  if (ctx_->history_size == 0 || size > ctx_->history_bytes) return;
  history_.push_back({message, ctx_->now(), size});
  history_bytes_ += size;
  while (history_.size() > ctx_->history_size || history_bytes_ > ctx_->history_bytes) {
    history_bytes_ -= history_.front().size;
    history_.pop_front();
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
  if (const Element* form = stanza.child("x", ns::kData);
      form && detail::form_value(*form, "FORM_TYPE") == kMucRequest)
    return voice_request(stanza, occ, *form);
  if (const Element* x = stanza.child("x", ns::kMucUser)) {
    if (x->child("invite", ns::kMucUser)) return invite(stanza, from, *x);
    if (const Element* d = x->child("decline", ns::kMucUser)) return decline(stanza, from, *d);
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
  const std::string room = jid_.bare_str();
  for (const auto* c : stanza.children()) {
    if (c->ns() == ns::kMucUser || c->ns() == ns::kOccupantId || c->is("delay", xml::ns::kDelay))
      continue;
    // XEP-0359 §3.1: a stanza-id claiming to be the room's is the sender's invention.
    if (c->is("stanza-id", ns::kSid) && c->attr("by") == room) continue;
    m.add_child(*c);
  }
  m.set_attr("from", room + "/" + sender.room_nick);
  m.add_child("occupant-id", std::string(ns::kOccupantId)).set_attr("id", sender.occupant_id);
  if (has_body || subject) archive(m, sender.room_nick);
  if (has_body) remember(m);
  broadcast_message(std::move(m));
}

void Room::voice_request(const Element& stanza, MucOccupant* occ, const Element& form) {
  if (!occ) return reply_error(stanza, StanzaError::kNotAcceptable, "You are not in this room");
  if (form.attr("type") != "submit")
    return reply_error(stanza, StanzaError::kBadRequest, "Expected a submitted form");
  const std::string allow = detail::form_value(form, "muc#request_allow");
  if (!allow.empty()) {
    // §8.6: a moderator's answer to a request it was sent.
    if (occ->role != Role::kModerator)
      return reply_error(stanza, StanzaError::kForbidden, "Only moderators grant voice");
    if (allow != "true" && allow != "1") return;  // declined: nothing changes
    auto it = occupants_.find(detail::form_value(form, "muc#roomnick"));
    if (it == occupants_.end())
      return reply_error(stanza, StanzaError::kItemNotFound, "No such occupant");
    if (it->second.role != Role::kVisitor) return;  // has voice already
    it->second.role = Role::kParticipant;
    return announce_occupant(it->second);
  }
  // §7.13: a request for the participant role.
  if (detail::form_value(form, "muc#role") != "participant")
    return reply_error(stanza, StanzaError::kBadRequest, "Only voice (participant) is granted");
  if (occ->role != Role::kVisitor) return;  // has voice already: nothing to ask
  const std::int64_t now = ctx_->now();
  if (occ->voice_requested != 0 && now - occ->voice_requested < kVoiceRequestInterval)
    return reply_error(stanza, StanzaError::kResourceConstraint,
                       "Your request for voice is with the moderators already");
  occ->voice_requested = now;
  Element m("message", kClientNs);
  m.set_attr("from", jid_.bare_str());
  auto& x = m.add_child("x", std::string(ns::kData));
  x.set_attr("type", "form");
  x.add_child("title", std::string(ns::kData)).add_text("Voice request");
  x.add_child("instructions", std::string(ns::kData))
      .add_text(
          "To approve this request for voice, check \"Grant voice to this person?\" "
          "and submit the form.");
  field(x, "FORM_TYPE", "hidden", "", kMucRequest);
  field(x, "muc#role", "list-single", "Requested role", "participant")
      .add_child("option", std::string(ns::kData))
      .add_child("value", std::string(ns::kData))
      .add_text("participant");
  field(x, "muc#jid", "jid-single", "User ID", occ->real_jid.str());
  field(x, "muc#roomnick", "text-single", "Room Nickname", occ->room_nick);
  field(x, "muc#request_allow", "boolean", "Grant voice to this person?", "false");
  for (const auto& [n, o] : occupants_)
    if (o.role == Role::kModerator) send_to_occupant(o, m);
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
  m.add_child("occupant-id", std::string(ns::kOccupantId)).set_attr("id", sender.occupant_id);
  m.add_child("x", kUserNs);
  send_to_occupant(it->second, std::move(m));
}

}  // namespace waddle::muc
