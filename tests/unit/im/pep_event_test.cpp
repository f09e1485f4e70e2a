// PEP notifications and results (XEP-0060 §7.1.2.1, §7.2.2.1, §6.5) and +notify (XEP-0163 §4.3).
#include "im/logic/pep_event.h"

#include <gtest/gtest.h>

namespace waddle::im::logic {
namespace {

PepItem item(const std::string& id, const std::string& text) {
  xml::Element payload("nick", "http://jabber.org/protocol/nick");
  payload.add_text(text);
  return {id, payload};
}

TEST(PepEventTest, PublishEventCarriesTheItem) {
  const xml::Element m = pep_publish_event("juliet@example.org", "http://jabber.org/protocol/nick",
                                           item("current", "Jules & Co"));
  EXPECT_EQ(m.str("jabber:client"),
            "<message from='juliet@example.org' type='headline'><event "
            "xmlns='http://jabber.org/protocol/pubsub#event'><items "
            "node='http://jabber.org/protocol/nick'><item id='current'><nick "
            "xmlns='http://jabber.org/protocol/nick'>Jules &amp; Co</nick></item></items></event>"
            "</message>");
}

TEST(PepEventTest, RetractEventNamesTheItem) {
  const xml::Element m = pep_retract_event("juliet@example.org", "urn:n", "a<b");
  EXPECT_EQ(m.str("jabber:client"),
            "<message from='juliet@example.org' type='headline'><event "
            "xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:n'><retract "
            "id='a&lt;b'/></items></event></message>");
}

TEST(PepEventTest, ItemsResultAnswersTheRequest) {
  xml::Element request("iq", "jabber:client");
  request.set_attr("type", "get")
      .set_attr("id", "q1")
      .set_attr("from", "romeo@example.net/x")
      .set_attr("to", "juliet@example.org");
  const xml::Element r = pep_items_result(request, "urn:n", {item("2", "new"), item("1", "old")});
  EXPECT_EQ(r.attr("type"), "result");
  EXPECT_EQ(r.attr("id"), "q1");
  EXPECT_EQ(r.attr("to"), "romeo@example.net/x");
  const auto* items = r.child("pubsub", "http://jabber.org/protocol/pubsub")
                          ->child("items", "http://jabber.org/protocol/pubsub");
  ASSERT_NE(items, nullptr);
  EXPECT_EQ(items->attr("node"), "urn:n");
  const auto list = items->children("item", "http://jabber.org/protocol/pubsub");
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]->attr("id"), "2");
}

TEST(PepEventTest, PlusNotify) {
  const std::set<std::string, std::less<>> f{"http://jabber.org/protocol/nick+notify",
                                             "urn:xmpp:avatar:metadata"};
  EXPECT_TRUE(wants_notifications(f, "http://jabber.org/protocol/nick"));
  EXPECT_FALSE(wants_notifications(f, "urn:xmpp:avatar:metadata"));
  EXPECT_FALSE(wants_notifications({}, "http://jabber.org/protocol/nick"));
}

}  // namespace
}  // namespace waddle::im::logic
