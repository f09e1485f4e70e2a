#include "c2s/logic/csi.h"

#include <gtest/gtest.h>

#include "xml/parser.h"

namespace waddle::c2s {
namespace {

xml::Element parse(const std::string& text) {
  auto el = xml::parse_element(text, "jabber:client");
  EXPECT_TRUE(el.has_value()) << text;
  return el ? *el : xml::Element();
}

std::string key(const std::string& text) {
  return ClientState::hold_key(parse(text));
}

TEST(ClientStateTest, WhatMayWait) {
  EXPECT_EQ(key("<presence from='a@x/r'/>"), "pa@x/r");
  EXPECT_EQ(key("<presence from='a@x/r' type='unavailable'/>"), "pa@x/r");
  EXPECT_EQ(key("<presence from='a@x' type='subscribe'/>"), "");
  EXPECT_EQ(key("<presence from='a@x' type='error'/>"), "");
  EXPECT_EQ(key("<message from='a@x/r' type='chat'>"
                "<composing xmlns='http://jabber.org/protocol/chatstates'/>"
                "<no-store xmlns='urn:xmpp:hints'/><thread>t</thread></message>"),
            "ca@x/r");
  EXPECT_EQ(key("<message from='a@x/r'><body>hi</body>"
                "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"),
            "");
  EXPECT_EQ(key("<message from='a@x/r'><received xmlns='urn:xmpp:receipts' id='1'/></message>"),
            "");
  EXPECT_EQ(key("<message from='a@x/r'/>"), "");  // nothing at all: not a chat state
  EXPECT_EQ(key("<message from='a@x/r' type='error'>"
                "<gone xmlns='http://jabber.org/protocol/chatstates'/></message>"),
            "");
  EXPECT_EQ(key("<iq from='a@x/r' type='get' id='1'/>"), "");
}

ClientState::Held held(const std::string& text) {
  return {{}, std::make_shared<const std::string>(text)};
}

TEST(ClientStateTest, TheLatestPerSenderInTheOrderOfArrival) {
  ClientState csi(10);
  EXPECT_TRUE(csi.hold("pa", held("a1")));
  EXPECT_TRUE(csi.hold("pb", held("b1")));
  EXPECT_TRUE(csi.hold("pa", held("a2")));  // replaces a1, now after b1
  EXPECT_EQ(csi.replaced(), 1u);
  auto all = csi.take();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(*all.front().bytes, "b1");
  EXPECT_EQ(*all.back().bytes, "a2");
  EXPECT_TRUE(csi.empty());
  EXPECT_TRUE(csi.hold("pa", held("a3")));  // the keys were forgotten with the queue
  EXPECT_EQ(csi.replaced(), 1u);
}

TEST(ClientStateTest, BoundedAndZeroHoldsNothing) {
  ClientState two(2);
  EXPECT_TRUE(two.hold("p1", held("1")));
  EXPECT_TRUE(two.hold("p2", held("2")));
  EXPECT_FALSE(two.hold("p3", held("3")));  // full: the caller flushes
  EXPECT_TRUE(two.hold("p2", held("2b")));  // a replacement still fits
  EXPECT_EQ(two.size(), 2u);
  ClientState none(0);
  EXPECT_FALSE(none.hold("p1", held("1")));
}

}  // namespace
}  // namespace waddle::c2s
