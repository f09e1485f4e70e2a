#include "im/logic/pep_event.h"

#include "xml/stanza.h"

namespace waddle::im::logic {

namespace {

constexpr std::string_view kPubsub = "http://jabber.org/protocol/pubsub";
constexpr std::string_view kEvent = "http://jabber.org/protocol/pubsub#event";
constexpr std::string_view kClient = "jabber:client";

xml::Element& event_items(xml::Element& message, std::string_view owner, std::string_view node) {
  message.set_attr("from", owner).set_attr("type", "headline");
  return message.add_child("event", std::string(kEvent))
      .add_child("items", std::string(kEvent))
      .set_attr("node", node);
}

}  // namespace

xml::Element pep_publish_event(std::string_view owner, std::string_view node, const PepItem& item) {
  xml::Element m("message", std::string(kClient));
  event_items(m, owner, node)
      .add_child("item", std::string(kEvent))
      .set_attr("id", item.id)
      .add_child(item.payload);
  return m;
}

xml::Element pep_retract_event(std::string_view owner, std::string_view node,
                               std::string_view item_id) {
  xml::Element m("message", std::string(kClient));
  event_items(m, owner, node).add_child("retract", std::string(kEvent)).set_attr("id", item_id);
  return m;
}

xml::Element pep_items_result(const xml::Element& iq, std::string_view node,
                              const std::vector<PepItem>& items) {
  xml::Element r = xml::make_iq_result(iq);
  auto& list = r.add_child("pubsub", std::string(kPubsub)).add_child("items", std::string(kPubsub));
  list.set_attr("node", node);
  for (const auto& item : items)
    list.add_child("item", std::string(kPubsub)).set_attr("id", item.id).add_child(item.payload);
  return r;
}

bool wants_notifications(const std::set<std::string, std::less<>>& features,
                         std::string_view node) {
  return features.count(std::string(node) + "+notify") > 0;
}

}  // namespace waddle::im::logic
