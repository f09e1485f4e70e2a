// XEP-0280 §6 and §9, XEP-0334 no-copy: the message rules of Message Carbons.
#include "im/logic/carbons_rules.h"

#include <string>
#include <string_view>

#include "core/namespaces.h"
#include "xml/renamespace.h"

namespace waddle::im::logic {
using xml::Element;

bool carbon_eligible(const Element& message, CarbonPeer peer) {
  const std::string_view type = message.attr("type");
  const bool chat = type == "chat";
  if (!chat && !type.empty() && type != "normal") return false;  // error, groupchat, headline
  if (peer == CarbonPeer::kRoom) return false;
  bool body = false, muc_user = false;
  for (const auto& node : message.nodes()) {
    if (!node.is_element()) continue;
    const Element& c = *node.element;
    if (c.ns() == ns::kCarbons) return false;  // <private/>, or a carbon itself
    if (c.is("no-copy", ns::kHints)) return false;
    if (c.is("x", ns::kMucUser)) muc_user = true;
    if (c.name() == "body" && c.ns() == message.ns()) body = true;
  }
  if (peer == CarbonPeer::kOccupant && !muc_user) return false;
  return chat || body;
}

bool strip_private(Element& message) {
  if (!message.child("private", ns::kCarbons)) return false;
  message.remove_children("private", ns::kCarbons);
  return true;
}

namespace {

// A copy of a stanza received from a server, in the client namespace: the forwarded message
// is read by a client, for which jabber:server means nothing (XEP-0297 §3).
Element client_copy(const Element& e) {
  return xml::renamespaced(e, ns::kServer, ns::kClient);
}

}  // namespace

Element carbon_copy(const Element& message, bool sent, const std::string& user,
                    const std::string& to) {
  Element wrapper("message", std::string(ns::kClient));
  wrapper.set_attr("from", user);
  wrapper.set_attr("to", to);
  if (message.has_attr("type")) wrapper.set_attr("type", message.attr("type"));
  auto& forwarded = wrapper.add_child(sent ? "sent" : "received", std::string(ns::kCarbons))
                        .add_child("forwarded", std::string(ns::kForward));
  if (message.ns() == ns::kServer)
    forwarded.add_child(client_copy(message));
  else
    forwarded.add_child(message);
  return wrapper;
}

}  // namespace waddle::im::logic
