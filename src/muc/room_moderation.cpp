// Message moderation (XEP-0425): a moderator retracts an occupant's message. Both versions
// clients speak are read and sent: urn:xmpp:message-moderate:1 (with XEP-0424's
// urn:xmpp:message-retract:1) and the earlier :0 inside a XEP-0422 <apply-to/>. The message
// must be one the room knows, in its history or its archive; there it becomes a tombstone.
#include <chrono>

#include "core/timestamp.h"
#include "muc/room.h"
#include "muc/room_detail.h"
#include "xml/stanza.h"

namespace waddle::muc {

using core::Jid;
using core::StanzaError;
using xml::Element;

namespace {

constexpr std::string_view kModerate0 = "urn:xmpp:message-moderate:0";
constexpr std::string_view kModerate1 = "urn:xmpp:message-moderate:1";
constexpr std::string_view kRetract0 = "urn:xmpp:message-retract:0";
constexpr std::string_view kRetract1 = "urn:xmpp:message-retract:1";
constexpr std::string_view kFasten = "urn:xmpp:fasten:0";

// The stanza-id the room gave a message, if any.
std::string_view room_stanza_id(const Element& message, std::string_view room) {
  for (const auto* sid : message.children("stanza-id", ns::kSid))
    if (sid->attr("by") == room) return sid->attr("id");
  return {};
}

Element& moderated(Element& parent, std::string_view ns, const Moderation& m) {
  auto& e = parent.add_child("moderated", std::string(ns));
  e.set_attr("by", m.by);
  if (ns == kModerate1 && !m.occupant_id.empty())
    e.add_child("occupant-id", std::string(ns::kOccupantId)).set_attr("id", m.occupant_id);
  return e;
}

}  // namespace

bool is_moderation(const Element& payload) {
  return payload.is("moderate", kModerate1) || payload.is("apply-to", kFasten);
}

void Room::moderate_iq(const Element& iq, const Jid& from) {
  const Element* q = iq.first_child();
  Moderation m;
  m.iq = iq;
  if (q->is("moderate", kModerate1)) {
    m.id = std::string(q->attr("id"));
    m.reason = q->child_text("reason", kModerate1);
    if (!q->child("retract", kRetract1)) m.id.clear();
  } else if (const Element* mod = q->child("moderate", kModerate0)) {
    m.id = std::string(q->attr("id"));
    m.reason = mod->child_text("reason", kModerate0);
    if (!mod->child("retract", kRetract0)) m.id.clear();
  }
  if (iq.attr("type") != "set" || m.id.empty())
    return reply_error(iq, StanzaError::kBadRequest, "Expected a retraction of a message id");
  const MucOccupant* occ = occupant_by_real(from);
  if (!occ || occ->role != Role::kModerator)
    return reply_error(iq, StanzaError::kForbidden, "Only moderators retract messages");
  m.by = jid_.bare_str() + "/" + occ->room_nick;
  m.occupant_id = occ->occupant_id;
  if (!archives() || !ctx_->archive_retract) return finish_moderation(m, false);
  const auto now = ctx_->now();
  auto make_tombstone = [m, now](const Element& message) { return tombstone(message, m, now); };
  // The answer comes back later: the room may be gone by then, or the service.
  auto done = [ctx = ctx_, alive = ctx_->alive, room = jid_, m](bool found) {
    if (!alive || !*alive) return;  // the service is gone (shutdown)
    if (Room* r = ctx->find_room(room)) return r->finish_moderation(m, found);
    // The room went away meanwhile: the moderator still gets an answer.
    ctx->send(xml::make_error_reply(m.iq, StanzaError::kItemNotFound, "The room is gone"));
  };
  ctx_->archive_retract(jid_, m.id, std::move(make_tombstone), std::move(done));
}

void Room::finish_moderation(const Moderation& m, bool archived) {
  const std::string room = jid_.bare_str();
  bool in_history = false;
  for (auto& e : history_) {
    if (room_stanza_id(e.message, room) != m.id) continue;
    e.message = tombstone(e.message, m, ctx_->now());
    in_history = true;
  }
  if (!archived && !in_history)
    return reply_error(m.iq, StanzaError::kItemNotFound, "No message with that id here");
  Element out("message", detail::kClientNs);
  out.set_attr("from", room).set_attr("type", "groupchat").set_attr("id", "moderated-" + m.id);
  auto& retract = out.add_child("retract", std::string(kRetract1));
  retract.set_attr("id", m.id);
  moderated(retract, kModerate1, m);
  if (!m.reason.empty()) retract.add_child("reason", std::string(kRetract1)).add_text(m.reason);
  auto& apply = out.add_child("apply-to", std::string(kFasten));
  apply.set_attr("id", m.id);
  auto& old = moderated(apply, kModerate0, m);
  old.add_child("retract", std::string(kRetract0));
  if (!m.reason.empty()) old.add_child("reason", std::string(kModerate0)).add_text(m.reason);
  broadcast_message(std::move(out));
  ctx_->send(xml::make_iq_result(m.iq));
}

Element Room::tombstone(const Element& message, const Moderation& m, std::int64_t now) {
  Element t("message", message.ns());
  for (const auto& a : message.attrs()) t.set_attr(a.name, a.value);
  for (const auto* c : message.children())
    if (c->is("stanza-id", ns::kSid) || c->is("occupant-id", ns::kOccupantId)) t.add_child(*c);
  const std::string stamp = core::format_timestamp(now);
  auto& retracted = t.add_child("retracted", std::string(kRetract1));
  retracted.set_attr("stamp", stamp);
  moderated(retracted, kModerate1, m);
  if (!m.reason.empty()) retracted.add_child("reason", std::string(kRetract1)).add_text(m.reason);
  auto& old = moderated(t, kModerate0, m);
  old.add_child("retracted", std::string(kRetract0)).set_attr("stamp", stamp);
  if (!m.reason.empty()) old.add_child("reason", std::string(kModerate0)).add_text(m.reason);
  return t;
}

}  // namespace waddle::muc
