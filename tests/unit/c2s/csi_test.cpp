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

using Hold = ClientState::Hold;
constexpr std::uint64_t kAnyBytes = 1 << 20;

TEST(ClientStateTest, TheLatestPerSenderInTheOrderOfArrival) {
  ClientState csi(10, kAnyBytes);
  EXPECT_EQ(csi.hold("pa", held("a1")), Hold::kHeld);
  EXPECT_EQ(csi.hold("pb", held("b1")), Hold::kHeld);
  EXPECT_EQ(csi.hold("pa", held("a2")), Hold::kHeld);  // replaces a1, now after b1
  EXPECT_EQ(csi.replaced(), 1u);
  auto all = csi.take();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(*all.front().bytes, "b1");
  EXPECT_EQ(*all.back().bytes, "a2");
  EXPECT_TRUE(csi.empty());
  EXPECT_EQ(csi.hold("pa", held("a3")), Hold::kHeld);  // the keys were forgotten with the queue
  EXPECT_EQ(csi.replaced(), 1u);
}

TEST(ClientStateTest, BoundedAndZeroHoldsNothing) {
  ClientState two(2, kAnyBytes);
  EXPECT_EQ(two.hold("p1", held("1")), Hold::kHeld);
  EXPECT_EQ(two.hold("p2", held("2")), Hold::kHeld);
  EXPECT_EQ(two.hold("p3", held("3")), Hold::kFull);   // full: the caller flushes
  EXPECT_EQ(two.hold("p2", held("2b")), Hold::kHeld);  // a replacement still fits
  EXPECT_EQ(two.size(), 2u);
  ClientState none(0, kAnyBytes);
  EXPECT_EQ(none.hold("p1", held("1")), Hold::kFull);
  ClientState no_bytes(10, 0);
  EXPECT_EQ(no_bytes.hold("p1", held("1")), Hold::kFullBytes);
  EXPECT_TRUE(no_bytes.empty());
}

// bytes() is always what the held stanzas weigh: each one's head and bytes.
std::uint64_t weight(const std::list<ClientState::Held>& all) {
  std::uint64_t sum = 0;
  for (const auto& h : all) sum += h.head.size() + h.bytes->size();
  return sum;
}

TEST(ClientStateTest, BytesCountedOnHoldReplaceAndTake) {
  ClientState csi(10, kAnyBytes);
  auto shared = std::make_shared<const std::string>("<presence/>");
  EXPECT_EQ(csi.hold("pa", {"<presence to='x'>", shared}), Hold::kHeld);
  EXPECT_EQ(csi.bytes(), 17u + 11u);
  EXPECT_EQ(csi.hold("pb", held("12345")), Hold::kHeld);
  EXPECT_EQ(csi.bytes(), 28u + 5u);
  EXPECT_EQ(csi.hold("pa", held("1")), Hold::kHeld);  // the replaced one no longer counts
  EXPECT_EQ(csi.bytes(), 5u + 1u);
  auto all = csi.take();
  EXPECT_EQ(weight(all), 6u);
  EXPECT_EQ(csi.bytes(), 0u);
  EXPECT_EQ(csi.hold("pa", held("abc")), Hold::kHeld);
  EXPECT_EQ(csi.bytes(), 3u);
}

TEST(ClientStateTest, PastTheByteBoundNothingMoreIsHeld) {
  ClientState csi(100, 10);
  EXPECT_EQ(csi.hold("pa", held("aaaa")), Hold::kHeld);
  EXPECT_EQ(csi.hold("pb", held("bbbbbb")), Hold::kHeld);  // exactly 10: at the bound
  EXPECT_EQ(csi.bytes(), 10u);
  EXPECT_EQ(csi.hold("pc", held("c")), Hold::kFullBytes);  // one byte past it
  EXPECT_EQ(csi.size(), 2u);
  EXPECT_EQ(csi.bytes(), 10u);
  // A replacement that fits where the old one was is held.
  EXPECT_EQ(csi.hold("pa", held("AAAA")), Hold::kHeld);
  EXPECT_EQ(csi.bytes(), 10u);
  // One that does not: the old one is gone (out of date), the new one is not held.
  EXPECT_EQ(csi.hold("pa", held("AAAAA")), Hold::kFullBytes);
  EXPECT_EQ(csi.replaced(), 2u);
  EXPECT_EQ(csi.size(), 1u);
  EXPECT_EQ(csi.bytes(), 6u);
  auto all = csi.take();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(*all.front().bytes, "bbbbbb");
  // A single stanza larger than the bound is never held.
  EXPECT_EQ(csi.hold("pa", held(std::string(11, 'x'))), Hold::kFullBytes);
  EXPECT_TRUE(csi.empty());
  EXPECT_EQ(csi.bytes(), 0u);
}

}  // namespace
}  // namespace waddle::c2s
