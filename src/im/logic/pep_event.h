// What a PEP service sends (XEP-0163 on XEP-0060), without I/O: the event notifications of a
// published or retracted item (§7.1.2.1, §7.2.2.1), the result of an items request (§6.5),
// and whether a resource's capabilities ask for a node's notifications (XEP-0163 §4.3, +notify).
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "xml/element.h"

namespace waddle::im::logic {

struct PepItem {
  std::string id;
  xml::Element payload;
};

// <message from=owner type='headline'><event xmlns=pubsub#event><items node=node>
// <item id=...>payload</item></items></event></message>, without 'to' (one per recipient).
xml::Element pep_publish_event(std::string_view owner, std::string_view node, const PepItem& item);
// The same with <retract id=.../> instead of the item.
xml::Element pep_retract_event(std::string_view owner, std::string_view node,
                               std::string_view item_id);
// The result of an items request of `iq`: the items, newest first as stored.
xml::Element pep_items_result(const xml::Element& iq, std::string_view node,
                              const std::vector<PepItem>& items);

// XEP-0163 §4.3: a resource wants a node's notifications when its entity capabilities list
// the node's name followed by "+notify".
bool wants_notifications(const std::set<std::string, std::less<>>& features, std::string_view node);

}  // namespace waddle::im::logic
