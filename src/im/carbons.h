// Message Carbons (XEP-0280) on the server: enabling and disabling per session (§4, §5), and
// the <received/> (§6) and <sent/> (§7) copies for a user's other carbons-enabled resources.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "core/jid.h"
#include "im/context.h"
#include "im/logic/carbons_rules.h"
#include "router/router.h"
#include "xml/element.h"

namespace waddle::im {

class Carbons {
 public:
  explicit Carbons(const Context& ctx) : ctx_(ctx) {}

  // An enable or disable IQ from the session bound to `from` (addressed to nobody, the
  // account or its domain): answered, true. Any other stanza: false, nothing done.
  bool take_iq(const xml::Element& iq, const core::Jid& from);
  // A message a local user sends, before it is routed: <sent/> copies to the sender's other
  // carbons-enabled resources.
  void sent(const xml::Element& message, const core::Jid& from);
  // A message for a local user, before delivery: removes <private/> (§9) and says whether
  // <received/> copies are to be made once it is delivered (call received() then).
  bool inbound(xml::Element& message) const;
  // After `message` was delivered to `delivered` (sessions of `bare`): <received/> copies to
  // the account's other carbons-enabled resources.
  void received(const xml::Element& message, const core::Jid& bare,
                const std::vector<router::LocalSession*>& delivered) const;
  void session_ended(router::LocalSession& s);

 private:
  logic::CarbonPeer peer(const core::Jid& jid) const;
  // The other party's JID (`other`: the message's 'to' or 'from') when the message is copied.
  std::optional<core::Jid> eligible(const xml::Element& message, std::string_view other) const;
  void copy_to_others(const xml::Element& message, bool sent, const core::Jid& bare,
                      const std::vector<router::LocalSession*>& skip) const;

  const Context& ctx_;
  // Sessions with carbons enabled, the cheap test that spares every message the work when
  // nobody uses carbons. Never fewer than there are (a session displaced by a resource
  // conflict may keep counting): it only chooses the fast path.
  std::size_t enabled_ = 0;
};

}  // namespace waddle::im
