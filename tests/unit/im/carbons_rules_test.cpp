// Tests for the Message Carbons rules (XEP-0280 §6, §9; XEP-0334 no-copy; XEP-0045 private
// messages) and the shape of a carbon copy.
#include "im/logic/carbons_rules.h"

#include <gtest/gtest.h>

#include <string>

#include "core/namespaces.h"
#include "xml/parser.h"

namespace waddle::im::logic {
namespace {

xml::Element msg(const std::string& xml) {
  auto e = xml::parse_element(xml, ns::kClient);
  EXPECT_TRUE(e.has_value()) << xml;
  return e ? *e : xml::Element();
}

bool eligible(const std::string& xml, CarbonPeer peer = CarbonPeer::kOther) {
  return carbon_eligible(msg(xml), peer);
}

TEST(CarbonsRulesTest, Chat_Eligible) {
  EXPECT_TRUE(eligible("<message type='chat'><body>hi</body></message>"));
  // Chat states without a body are chat messages too.
  EXPECT_TRUE(eligible(
      "<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>"));
}

TEST(CarbonsRulesTest, Normal_EligibleOnlyWithBody) {
  EXPECT_TRUE(eligible("<message><body>hi</body></message>"));
  EXPECT_TRUE(eligible("<message type='normal'><body>hi</body></message>"));
  EXPECT_FALSE(eligible("<message type='normal'><subject>s</subject></message>"));
  EXPECT_FALSE(eligible("<message><body xmlns='urn:other'>x</body></message>"));
}

TEST(CarbonsRulesTest, OtherTypes_NotEligible) {
  EXPECT_FALSE(eligible("<message type='error'><body>hi</body></message>"));
  EXPECT_FALSE(eligible("<message type='groupchat'><body>hi</body></message>"));
  EXPECT_FALSE(eligible("<message type='headline'><body>hi</body></message>"));
  EXPECT_FALSE(eligible("<message type='bogus'><body>hi</body></message>"));
}

TEST(CarbonsRulesTest, PrivateAndNoCopy_NotEligible) {
  EXPECT_FALSE(eligible(
      "<message type='chat'><body>hi</body><private xmlns='urn:xmpp:carbons:2'/></message>"));
  EXPECT_FALSE(
      eligible("<message type='chat'><body>hi</body><no-copy xmlns='urn:xmpp:hints'/></message>"));
  // Other hints do not matter.
  EXPECT_TRUE(
      eligible("<message type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>"));
}

TEST(CarbonsRulesTest, Carbons_NeverCopiedAgain) {
  EXPECT_FALSE(
      eligible("<message type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded "
               "xmlns='urn:xmpp:forward:0'/></received></message>"));
  EXPECT_FALSE(
      eligible("<message type='chat'><sent xmlns='urn:xmpp:carbons:2'><forwarded "
               "xmlns='urn:xmpp:forward:0'/></sent></message>"));
}

TEST(CarbonsRulesTest, Rooms_OnlyPrivateMessagesMarkedMucUser) {
  const std::string plain = "<message type='chat'><body>hi</body></message>";
  const std::string marked =
      "<message type='chat'><body>hi</body>"
      "<x xmlns='http://jabber.org/protocol/muc#user'/></message>";
  EXPECT_FALSE(eligible(plain, CarbonPeer::kRoom));
  EXPECT_FALSE(eligible(marked, CarbonPeer::kRoom));
  EXPECT_FALSE(eligible(plain, CarbonPeer::kOccupant));
  EXPECT_TRUE(eligible(marked, CarbonPeer::kOccupant));
  EXPECT_FALSE(
      eligible("<message type='groupchat'><body>hi</body>"
               "<x xmlns='http://jabber.org/protocol/muc#user'/></message>",
               CarbonPeer::kOccupant));
}

TEST(CarbonsRulesTest, StripPrivate_RemovesOnlyPrivate) {
  auto m =
      msg("<message type='chat'><body>hi</body><private xmlns='urn:xmpp:carbons:2'/></message>");
  EXPECT_TRUE(strip_private(m));
  EXPECT_EQ(m.child("private", ns::kCarbons), nullptr);
  EXPECT_EQ(m.child_text("body", ns::kClient), "hi");
  EXPECT_FALSE(strip_private(m));
}

TEST(CarbonsRulesTest, CarbonCopy_WrapsTheOriginal) {
  auto m = msg("<message type='chat' from='b@x/r' to='a@y/1'><body>hi</body></message>");
  auto c = carbon_copy(m, false, "a@y", "a@y/2");
  EXPECT_EQ(c.attr("from"), "a@y");
  EXPECT_EQ(c.attr("to"), "a@y/2");
  EXPECT_EQ(c.attr("type"), "chat");
  const auto* received = c.child("received", ns::kCarbons);
  ASSERT_NE(received, nullptr);
  const auto* fwd = received->child("forwarded", ns::kForward);
  ASSERT_NE(fwd, nullptr);
  const auto* inner = fwd->child("message", ns::kClient);
  ASSERT_NE(inner, nullptr);
  EXPECT_EQ(inner->attr("from"), "b@x/r");
  EXPECT_EQ(inner->child_text("body", ns::kClient), "hi");
  EXPECT_NE(carbon_copy(m, true, "a@y", "a@y/2").child("sent", ns::kCarbons), nullptr);
  EXPECT_FALSE(
      carbon_copy(msg("<message><body>x</body></message>"), true, "a@y", "a@y/2").has_attr("type"));
}

TEST(CarbonsRulesTest, CarbonCopy_OfAMessageFromAServerIsInTheClientNamespace) {
  auto m = *xml::parse_element(
      "<message type='chat' from='b@x/r' to='a@y/1' xml:lang='en'><body>hi</body>"
      "<active xmlns='http://jabber.org/protocol/chatstates'/><x xmlns='urn:other'><y/></x>"
      "</message>",
      ns::kServer);
  auto c = carbon_copy(m, false, "a@y", "a@y/2");
  EXPECT_EQ(c.ns(), ns::kClient);
  const auto* inner =
      c.child("received", ns::kCarbons)->child("forwarded", ns::kForward)->first_child();
  ASSERT_NE(inner, nullptr);
  EXPECT_TRUE(inner->is("message", ns::kClient));
  EXPECT_EQ(inner->attr("xml:lang"), "en");
  EXPECT_EQ(inner->child_text("body", ns::kClient), "hi");
  EXPECT_NE(inner->child("active", "http://jabber.org/protocol/chatstates"), nullptr);
  ASSERT_NE(inner->child("x", "urn:other"), nullptr);
  EXPECT_NE(inner->child("x", "urn:other")->child("y", "urn:other"), nullptr);
  EXPECT_EQ(c.str().find("jabber:server"), std::string::npos) << c.str();
}

}  // namespace
}  // namespace waddle::im::logic
