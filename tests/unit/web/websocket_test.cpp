// RFC 6455 framing and the RFC 7395 translation (web/logic/websocket).
#include "web/logic/websocket.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "xml/parser.h"

namespace waddle::web {
namespace {

// A client frame: masked, as RFC 6455 §5.3 requires of clients.
std::string client_frame(std::uint8_t opcode, std::string_view payload, bool fin = true,
                         bool mask = true) {
  std::string out;
  out += static_cast<char>((fin ? 0x80 : 0) | opcode);
  const std::uint64_t n = payload.size();
  const char mask_bit = mask ? static_cast<char>(0x80) : 0;
  if (n < 126) {
    out += static_cast<char>(mask_bit | static_cast<char>(n));
  } else if (n <= 0xFFFF) {
    out += static_cast<char>(mask_bit | 126);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xFF);
  } else {
    out += static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xFF);
  }
  if (!mask) return out + std::string(payload);
  const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  for (char k : key) out += static_cast<char>(k);
  for (std::size_t i = 0; i < payload.size(); ++i)
    out += static_cast<char>(static_cast<unsigned char>(payload[i]) ^ key[i % 4]);
  return out;
}

struct Frame {
  int opcode;
  std::string payload;
};

// Server frames: unmasked, FIN set. Fails the test on anything else.
std::vector<Frame> server_frames(std::string_view bytes) {
  std::vector<Frame> frames;
  std::size_t i = 0;
  while (i < bytes.size()) {
    EXPECT_GE(bytes.size() - i, 2u);
    const auto b0 = static_cast<unsigned char>(bytes[i]);
    const auto b1 = static_cast<unsigned char>(bytes[i + 1]);
    EXPECT_EQ(b0 & 0x80, 0x80) << "FIN";
    EXPECT_EQ(b1 & 0x80, 0) << "server frames are not masked";
    std::uint64_t n = b1 & 0x7F;
    i += 2;
    if (n == 126) {
      n = (std::uint64_t{static_cast<unsigned char>(bytes[i])} << 8) |
          static_cast<unsigned char>(bytes[i + 1]);
      i += 2;
    } else if (n == 127) {
      n = 0;
      for (int k = 0; k < 8; ++k) n = (n << 8) | static_cast<unsigned char>(bytes[i + k]);
      i += 8;
    }
    frames.push_back({b0 & 0x0F, std::string(bytes.substr(i, n))});
    i += n;
  }
  return frames;
}

// What the client session writes (stream/negotiation.cpp).
std::string client_header(std::string_view from, std::string_view id) {
  return "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
         "xmlns:stream='http://etherx.jabber.org/streams' from='" +
         std::string(from) + "' id='" + std::string(id) + "' version='1.0' xml:lang='en'>";
}
constexpr std::string_view kStreamEnd = "</stream:stream>";

constexpr std::string_view kOpen =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0' "
    "xml:lang='en'/>";

TEST(WebSocketAccept, MatchesTheRfc6455Example) {
  EXPECT_EQ(websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketDecode, OpenBecomesAStreamHeaderTheParserReads) {
  WebSocketFraming ws(1024);
  WebSocketFraming::Decoded d;
  ws.decode(client_frame(0x1, kOpen), d);
  ws.decode(client_frame(0x1,
                         "<message xmlns='jabber:client' to='a@example.com'><body>hi</body>"
                         "</message>"),
            d);
  EXPECT_FALSE(d.closed);
  EXPECT_FALSE(d.error);
  xml::StreamParser parser;
  std::vector<xml::StreamEvent> events;
  ASSERT_FALSE(parser.feed(d.xml, events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, xml::StreamEvent::Kind::kStreamOpen);
  EXPECT_TRUE(events[0].element.is("stream", ns::kStream));
  EXPECT_EQ(events[0].default_ns, ns::kClient);
  EXPECT_EQ(events[0].element.attr("to"), "example.com");
  EXPECT_EQ(events[0].element.attr("version"), "1.0");
  EXPECT_EQ(events[0].element.attr("xml:lang"), "en");
  EXPECT_TRUE(events[1].element.is("message", ns::kClient));
  EXPECT_EQ(events[1].element.child_text("body", ns::kClient), "hi");
}

TEST(WebSocketDecode, CloseEndsTheStream) {
  WebSocketFraming ws(1024);
  WebSocketFraming::Decoded d;
  ws.decode(client_frame(0x1, kOpen), d);
  ws.decode(client_frame(0x1, "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"), d);
  xml::StreamParser parser;
  std::vector<xml::StreamEvent> events;
  ASSERT_FALSE(parser.feed(d.xml, events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].kind, xml::StreamEvent::Kind::kStreamClose);
}

TEST(WebSocketDecode, FramesSplitAnywhereAndFragmentedMessagesReassemble) {
  const std::string msg =
      "<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>";
  std::string bytes = client_frame(0x1, msg.substr(0, 10), false) +
                      client_frame(0x0, msg.substr(10, 20), false) +
                      client_frame(0x9, "ping!") +  // a control frame between fragments
                      client_frame(0x0, msg.substr(30), true);
  WebSocketFraming ws(1024);
  WebSocketFraming::Decoded d;
  for (char c : bytes) ws.decode(std::string_view(&c, 1), d);
  EXPECT_EQ(d.xml, msg);
  auto replies = server_frames(d.replies);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].opcode, 0xA);
  EXPECT_EQ(replies[0].payload, "ping!");
  EXPECT_EQ(ws.bytes_held(), 0u);
}

TEST(WebSocketDecode, LongLengthsAreRead) {
  const std::string body(70000, 'x');
  const std::string msg = "<message xmlns='jabber:client'><body>" + body + "</body></message>";
  WebSocketFraming ws(100000);
  WebSocketFraming::Decoded d;
  ws.decode(client_frame(0x1, msg), d);
  EXPECT_EQ(d.xml, msg);
  const std::string mid(200, 'y');
  ws.decode(client_frame(0x1, mid), d);
  EXPECT_EQ(d.xml, msg + mid);
}

TEST(WebSocketDecode, CloseFrameIsAnsweredWithItsStatus) {
  WebSocketFraming ws(1024);
  WebSocketFraming::Decoded d;
  ws.decode(client_frame(0x8, std::string("\x03\xe9", 2) + "bye"), d);
  EXPECT_TRUE(d.closed);
  EXPECT_FALSE(d.failure);
  auto replies = server_frames(d.replies);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].opcode, 0x8);
  EXPECT_EQ(replies[0].payload, std::string("\x03\xe9", 2));
  // Nothing after the close is taken.
  ws.decode(client_frame(0x1, "<x/>"), d);
  EXPECT_EQ(d.xml, "");
}

struct Violation {
  std::string name;
  std::string bytes;
  CloseCode code;
};

class WebSocketViolation : public testing::TestWithParam<Violation> {};

TEST_P(WebSocketViolation, ClosesWithTheStatus) {
  WebSocketFraming ws(1024);
  WebSocketFraming::Decoded d;
  ws.decode(GetParam().bytes, d);
  EXPECT_TRUE(d.closed);
  ASSERT_TRUE(d.failure);
  EXPECT_EQ(*d.failure, GetParam().code);
  auto replies = server_frames(d.replies);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].opcode, 0x8);
  const auto code = static_cast<std::uint16_t>(GetParam().code);
  EXPECT_EQ(replies[0].payload,
            std::string({static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)}));
  EXPECT_EQ(ws.bytes_held(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Rfc6455, WebSocketViolation,
    testing::Values(
        Violation{"Unmasked", client_frame(0x1, "<x/>", true, false), CloseCode::kProtocolError},
        Violation{"Binary", client_frame(0x2, "<x/>"), CloseCode::kUnsupportedData},
        Violation{"ReservedBit", std::string("\xC1\x80\0\0\0\0", 6), CloseCode::kProtocolError},
        Violation{"UnknownOpcode", client_frame(0x3, "x"), CloseCode::kProtocolError},
        Violation{"LongControl", client_frame(0x9, std::string(126, 'p')),
                  CloseCode::kProtocolError},
        Violation{"FragmentedControl", client_frame(0x9, "p", false), CloseCode::kProtocolError},
        Violation{"StrayContinuation", client_frame(0x0, "<x/>"), CloseCode::kProtocolError},
        Violation{"TextInsideFragments", client_frame(0x1, "<a", false) + client_frame(0x1, "<b/>"),
                  CloseCode::kProtocolError},
        // Refused from its header alone: 1 MiB announced, nothing of it sent.
        Violation{"TooBig", client_frame(0x1, std::string(1 << 20, 'x')).substr(0, 14),
                  CloseCode::kTooBig},
        Violation{"TooBigInFragments",
                  client_frame(0x1, std::string(600, 'a'), false) +
                      client_frame(0x0, std::string(600, 'a')),
                  CloseCode::kTooBig}),
    [](const auto& info) { return info.param.name; });

TEST(WebSocketDecode, OpenInAnotherNamespaceIsAnError) {
  WebSocketFraming ws(1024);
  WebSocketFraming::Decoded d;
  ws.decode(client_frame(0x1, "<open xmlns='jabber:client' to='example.com' version='1.0'/>"), d);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(*d.error, core::StreamError::kInvalidNamespace);
  WebSocketFraming::Decoded bad;
  ws.decode(client_frame(0x1, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='x'"), bad);
  ASSERT_TRUE(bad.error);
  EXPECT_EQ(*bad.error, core::StreamError::kBadFormat);
}

std::vector<Frame> encode_all(std::string_view xml, std::size_t split) {
  WebSocketFraming ws(1024);
  std::string out;
  for (std::size_t i = 0; i < xml.size(); i += split) ws.encode(xml.substr(i, split), out);
  EXPECT_EQ(ws.bytes_held(), 0u);
  return server_frames(out);
}

TEST(WebSocketEncode, OneFramePerElementWithItsNamespaceAnywhereItIsSplit) {
  const std::string written =
      client_header("example.com", "abc123") +
      "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN"
      "</mechanism></mechanisms></stream:features>"
      " "  // whitespace between elements is no frame
      "<message to='a@example.com' id='x&apos;/&gt;'><body>1 &lt; 2 > 0</body></message>"
      "<r xmlns='urn:xmpp:sm:3'/>"
      "<iq type='result' id='q\"/>'/>" +
      std::string(kStreamEnd);
  for (std::size_t split : {written.size(), std::size_t{1}, std::size_t{7}}) {
    auto frames = encode_all(written, split);
    ASSERT_EQ(frames.size(), 7u) << "split " << split;
    for (std::size_t i = 0; i + 1 < frames.size(); ++i) EXPECT_EQ(frames[i].opcode, 0x1);
    auto open = xml::parse_element(frames[0].payload);
    ASSERT_TRUE(open);
    EXPECT_TRUE(open->is("open", kFramingNs));
    EXPECT_EQ(open->attr("from"), "example.com");
    EXPECT_EQ(open->attr("id"), "abc123");
    EXPECT_EQ(open->attr("version"), "1.0");
    EXPECT_EQ(open->attr("xml:lang"), "en");
    auto features = xml::parse_element(frames[1].payload);
    ASSERT_TRUE(features) << frames[1].payload;
    EXPECT_TRUE(features->is("features", ns::kStream));
    auto message = xml::parse_element(frames[2].payload);
    ASSERT_TRUE(message) << frames[2].payload;
    EXPECT_TRUE(message->is("message", ns::kClient));
    EXPECT_EQ(message->attr("id"), "x'/>");
    EXPECT_EQ(message->child_text("body", ns::kClient), "1 < 2 > 0");
    auto r = xml::parse_element(frames[3].payload);
    ASSERT_TRUE(r) << frames[3].payload;
    EXPECT_TRUE(r->is("r", "urn:xmpp:sm:3"));
    auto iq = xml::parse_element(frames[4].payload);
    ASSERT_TRUE(iq) << frames[4].payload;
    EXPECT_TRUE(iq->is("iq", ns::kClient));
    EXPECT_EQ(iq->attr("id"), "q\"/>");
    auto close = xml::parse_element(frames[5].payload);
    ASSERT_TRUE(close);
    EXPECT_TRUE(close->is("close", kFramingNs));
    EXPECT_EQ(frames[6].opcode, 0x8);
    EXPECT_EQ(frames[6].payload, std::string("\x03\xe8", 2));
  }
}

TEST(WebSocketEncode, AStreamErrorIsNamespaced) {
  const std::string written =
      client_header("example.com", "1") +
      "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text "
      "xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>Too many</text></stream:error>" +
      std::string(kStreamEnd);
  auto frames = encode_all(written, written.size());
  ASSERT_EQ(frames.size(), 4u);
  auto error = xml::parse_element(frames[1].payload);
  ASSERT_TRUE(error) << frames[1].payload;
  EXPECT_TRUE(error->is("error", ns::kStream));
  EXPECT_TRUE(error->child("policy-violation", ns::kStreams));
}

TEST(WebSocketEncode, LargeElementsGetLongLengths) {
  const std::string body(70000, 'z');
  const std::string written = "<message><body>" + body + "</body></message>";
  auto frames = encode_all(written, 4096);
  ASSERT_EQ(frames.size(), 1u);
  auto message = xml::parse_element(frames[0].payload);
  ASSERT_TRUE(message);
  EXPECT_EQ(message->child_text("body", ns::kClient), body);
}

}  // namespace
}  // namespace waddle::web

namespace waddle::web {
namespace {

TEST(WebSocketDecode, TheBoundFollowsSetMaxMessage) {
  WebSocketFraming ws(100);
  WebSocketFraming::Decoded small;
  ws.set_max_message(1000);
  ws.decode(client_frame(0x1, std::string(500, 'x')), small);
  EXPECT_FALSE(small.closed);
  ws.set_max_message(100);
  WebSocketFraming::Decoded big;
  ws.decode(client_frame(0x1, std::string(500, 'x')).substr(0, 8), big);
  ASSERT_TRUE(big.failure);
  EXPECT_EQ(*big.failure, CloseCode::kTooBig);
}

}  // namespace
}  // namespace waddle::web
