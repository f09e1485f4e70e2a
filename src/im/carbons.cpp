// XEP-0280 Message Carbons: the enable/disable IQs and the copies of messages to a user's
// other resources. Which messages are copied is decided in im/logic/carbons_rules.
#include "im/carbons.h"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

#include "xml/stanza.h"

namespace waddle::im {
using core::Jid;
using core::StanzaError;
using xml::Element;

bool Carbons::take_iq(const Element& iq, const Jid& from) {
  const Element* q = iq.first_child();
  if (!q || q->ns() != ns::kCarbons) return false;
  const auto to = iq.attr("to");
  if (!to.empty() && to != from.bare_str() && to != from.domain()) return false;
  const auto type = iq.attr("type");
  if (type != "get" && type != "set") return true;  // a stray result or error: dropped
  auto* s = ctx_.router.find(from);
  if (!s) return true;
  const bool enable = q->name() == "enable";
  if (type != "set" || (!enable && q->name() != "disable")) {
    s->deliver(xml::make_error_reply(iq, StanzaError::kBadRequest));
    return true;
  }
  // §10.1: enabling twice (or disabling twice) is no error.
  if (s->carbons != enable) {
    s->carbons = enable;
    if (enable)
      ++enabled_;
    else if (enabled_ > 0)
      --enabled_;
  }
  Element result = xml::make_iq_result(iq);
  if (!iq.has_attr("to")) result.remove_attr("from");
  s->deliver(result);
  return true;
}

void Carbons::session_ended(router::LocalSession& s) {
  if (!s.carbons) return;
  s.carbons = false;
  if (enabled_ > 0) --enabled_;
}

logic::CarbonPeer Carbons::peer(const Jid& jid) const {
  if (!ctx_.router.component(jid.domain())) return logic::CarbonPeer::kOther;
  return jid.is_bare() || jid.is_domain() ? logic::CarbonPeer::kRoom : logic::CarbonPeer::kOccupant;
}

// The message rules first (one pass over the children), the JID of the other party only for
// the messages they let through.
std::optional<Jid> Carbons::eligible(const Element& message, std::string_view other) const {
  if (!logic::carbon_eligible(message, logic::CarbonPeer::kOther)) return std::nullopt;
  auto jid = Jid::parse(other);
  if (!jid) return std::nullopt;
  const auto p = peer(*jid);
  if (p != logic::CarbonPeer::kOther && !logic::carbon_eligible(message, p)) return std::nullopt;
  return jid;
}

void Carbons::sent(const Element& message, const Jid& from) {
  if (enabled_ == 0) return;
  auto to = eligible(message, message.attr("to"));
  // Messages to one's own account reach the other resources themselves.
  if (!to || to->bare() == from.bare()) return;
  auto* self = ctx_.router.find(from);
  copy_to_others(message, true, from.bare(), {self});
}

bool Carbons::inbound(Element& message) const {
  const bool was_private = logic::strip_private(message);
  if (enabled_ == 0 || was_private) return false;
  return eligible(message, message.attr("from")).has_value();
}

void Carbons::received(const Element& message, const Jid& bare,
                       const std::vector<router::LocalSession*>& delivered) const {
  std::vector<router::LocalSession*> skip = delivered;
  // The sender's own session, when a user writes to another of their resources ('from' was
  // stamped by this server or checked by the one it came from: no need to parse it again).
  const std::string_view from = message.attr("from");
  if (from.substr(0, from.find('/')) == bare.bare_str()) {
    for (auto* s : ctx_.router.sessions_of(bare))
      if (s->jid().str() == from) skip.push_back(s);
  }
  copy_to_others(message, false, bare, skip);
}

void Carbons::copy_to_others(const Element& message, bool sent, const Jid& bare,
                             const std::vector<router::LocalSession*>& skip) const {
  const std::string user = bare.bare_str();
  for (auto* s : ctx_.router.sessions_of(bare)) {
    if (!s->carbons || std::find(skip.begin(), skip.end(), s) != skip.end()) continue;
    s->deliver(logic::carbon_copy(message, sent, user, s->jid().str()));
  }
}

}  // namespace waddle::im
