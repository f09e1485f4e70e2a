// XEP-0045 §17.4: an IQ to an occupant JID goes on to the occupant's real JID, from the
// asker's occupant JID, and the answer comes back the same way; neither side learns the
// other's real JID. The room remembers each forwarded IQ (bounded in number and time) under
// an id of its own, and passes on only an answer from the entity it asked.
#include <algorithm>

#include "core/ids.h"
#include "muc/room.h"
#include "muc/room_detail.h"
#include "xml/stanza.h"

namespace waddle::muc {

using core::Jid;
using core::StanzaError;
using xml::Element;

namespace {

// Data of the account rather than of one client: the user's server answers for the bare JID
// (vCards, XEP-0292 vCard4, and PEP such as XEP-0084 avatars), as Prosody forwards them.
bool account_data(const Element& payload) {
  return payload.ns() == ns::kVcardTemp || payload.ns() == ns::kVcard4 ||
         payload.ns() == ns::kPubsub;
}

}  // namespace

void Room::expire_forwarded_iqs() {
  const std::int64_t now = ctx_->now();
  while (!forwarded_.empty() && now - forwarded_.front().time > ctx_->limits.forwarded_iq_lifetime)
    forwarded_.pop_front();
}

void Room::forward_iq(const Element& stanza, const Jid& from, const MucOccupant& asker,
                      const MucOccupant& target) {
  const Element* payload = stanza.first_child();
  if (!payload || target.sessions.empty()) return reply_error(stanza, StanzaError::kBadRequest);
  expire_forwarded_iqs();
  if (forwarded_.size() >= ctx_->limits.forwarded_iqs)
    return reply_error(stanza, StanzaError::kResourceConstraint,
                       "Too many requests through this room are waiting for answers");
  ForwardedIq f;
  f.id = "muc-iq-" + core::random_hex(12);
  f.original_id = std::string(stanza.attr("id"));
  f.asker = from.str();
  f.asker_nick = asker.room_nick;
  f.target = account_data(*payload) ? target.real_jid.bare_str() : target.sessions.begin()->first;
  f.target_nick = target.room_nick;
  f.time = ctx_->now();
  Element out = stanza;
  out.set_attr("from", jid_.bare_str() + "/" + asker.room_nick);
  out.set_attr("to", f.target);
  out.set_attr("id", f.id);
  forwarded_.push_back(std::move(f));
  ctx_->send(std::move(out));
}

void Room::iq_response(const Element& stanza, const Jid& from, const std::string& nick) {
  expire_forwarded_iqs();
  auto it = std::find_if(forwarded_.begin(), forwarded_.end(),
                         [&](const ForwardedIq& f) { return f.id == stanza.attr("id"); });
  if (it == forwarded_.end() || it->asker_nick != nick) return;
  // Only the entity asked answers: that resource, or for account data the user's account.
  const bool asked_bare = it->target.find('/') == std::string::npos;
  if ((asked_bare ? from.bare_str() : from.str()) != it->target) return;
  ForwardedIq f = std::move(*it);
  forwarded_.erase(it);
  if (!by_real_.contains(f.asker)) return;  // the asker left: nobody waits for the answer
  Element out = stanza;
  out.set_attr("from", jid_.bare_str() + "/" + f.target_nick);
  out.set_attr("to", f.asker);
  out.set_attr("id", f.original_id);
  ctx_->send(std::move(out));
}

}  // namespace waddle::muc
