// StreamParser: RFC 6120 §4 stream framing, §11.1 restricted XML, and the size/depth limits
// of ARCHITECTURE.md principle 5. Every stream is also fed byte by byte.
#include "xml/parser.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "core/errors.h"

namespace waddle::xml {
namespace {

using core::StreamError;
using Kind = StreamEvent::Kind;

constexpr std::string_view kHeader =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>";
constexpr std::string_view kServerHeader =
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='b.test' from='a.test' version='1.0'>";
constexpr std::string_view kClose = "</stream:stream>";

struct FeedResult {
  std::vector<StreamEvent> events;
  std::optional<StreamError> error;
  std::size_t fed = 0;  // bytes handed to the parser up to and including the failing chunk
};

// Feeds `data` in chunks of `chunk` bytes (0 = one shot), stopping at the first error.
FeedResult feed_chunks(StreamParser& p, std::string_view data, std::size_t chunk = 0) {
  FeedResult r;
  if (chunk == 0) chunk = data.size() == 0 ? 1 : data.size();
  for (std::size_t i = 0; i < data.size(); i += chunk) {
    auto piece = data.substr(i, chunk);
    r.fed += piece.size();
    r.error = p.feed(piece, r.events);
    if (r.error) break;
  }
  return r;
}

FeedResult feed_fresh(std::string_view data, std::size_t chunk = 0, ParserLimits limits = {}) {
  StreamParser p(limits);
  return feed_chunks(p, data, chunk);
}

std::string describe(const StreamEvent& ev) {
  switch (ev.kind) {
    case Kind::kStreamOpen:
      return "open{" + ev.element.ns() + "}" + ev.element.str() + " default=" + ev.default_ns;
    case Kind::kElement:
      return "element " + ev.element.str();
    case Kind::kStreamClose:
      return "close";
  }
  return "?";
}

std::vector<std::string> describe(const std::vector<StreamEvent>& events) {
  std::vector<std::string> out;
  for (const auto& ev : events) out.push_back(describe(ev));
  return out;
}

// A top-level stanza of exactly `size` bytes: <message>xxxx</message>.
std::string stanza_of_size(std::size_t size) {
  const std::string open = "<message>", close = "</message>";
  return open + std::string(size - open.size() - close.size(), 'x') + close;
}

std::string nested(std::size_t depth) {
  std::string out;
  for (std::size_t i = 0; i < depth; ++i) out += "<e>";
  for (std::size_t i = 0; i < depth; ++i) out += "</e>";
  return out;
}

std::string with_attributes(std::size_t count) {
  std::string out = "<message";
  for (std::size_t i = 0; i < count; ++i) out += " a" + std::to_string(i) + "='v'";
  return out + "/>";
}

class StreamParserTest : public ::testing::Test {
 protected:
  // Parses the header plus `body` and returns the events after the kStreamOpen.
  std::vector<StreamEvent> stanzas(std::string_view body) {
    auto r = feed_fresh(std::string(kHeader) + std::string(body));
    EXPECT_FALSE(r.error) << core::to_string(*r.error);
    EXPECT_FALSE(r.events.empty());
    if (!r.events.empty()) r.events.erase(r.events.begin());
    return std::move(r.events);
  }
};

TEST_F(StreamParserTest, ClientHeader_GivesStreamOpenWithNamespacesAndAttributes) {
  auto r = feed_fresh(kHeader);
  ASSERT_FALSE(r.error);
  ASSERT_EQ(r.events.size(), 1u);
  const StreamEvent& ev = r.events[0];
  EXPECT_EQ(ev.kind, Kind::kStreamOpen);
  EXPECT_EQ(ev.element.name(), "stream");
  EXPECT_EQ(ev.element.ns(), "http://etherx.jabber.org/streams");
  EXPECT_EQ(ev.default_ns, "jabber:client");
  EXPECT_EQ(ev.element.attr("to"), "example.test");
  EXPECT_EQ(ev.element.attr("version"), "1.0");
  // Namespace declarations are not attributes.
  EXPECT_EQ(ev.element.attrs().size(), 2u);
}

TEST_F(StreamParserTest, ServerHeader_GivesServerDefaultNamespace) {
  auto r = feed_fresh(std::string(kServerHeader) + "<message to='x@b.test'/>");
  ASSERT_FALSE(r.error);
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[0].default_ns, "jabber:server");
  EXPECT_EQ(r.events[0].element.attr("from"), "a.test");
  EXPECT_EQ(r.events[1].element.ns(), "jabber:server");
}

TEST_F(StreamParserTest, HeaderWithoutDefaultNamespace_GivesEmptyDefaultNs) {
  auto r = feed_fresh("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>");
  ASSERT_FALSE(r.error);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].default_ns, "");
}

TEST_F(StreamParserTest, Message_HasClientNamespaceAndPayloadNamespaces) {
  auto events = stanzas(
      "<message to='juliet@example.test' type='chat' xml:lang='en'>"
      "<body>hi</body>"
      "<delay xmlns='urn:xmpp:delay' from='example.test' stamp='2002-09-10T23:08:25Z'/>"
      "<active xmlns='http://jabber.org/protocol/chatstates'/>"
      "</message>");
  ASSERT_EQ(events.size(), 1u);
  const Element& m = events[0].element;
  EXPECT_EQ(events[0].kind, Kind::kElement);
  EXPECT_TRUE(m.is("message", "jabber:client"));
  EXPECT_EQ(m.attr("to"), "juliet@example.test");
  EXPECT_EQ(m.attr("type"), "chat");
  EXPECT_EQ(m.attr("xml:lang"), "en");
  EXPECT_TRUE(m.has_attr("xml:lang"));
  ASSERT_NE(m.child("body"), nullptr);
  EXPECT_EQ(m.child("body")->ns(), "jabber:client");
  EXPECT_EQ(m.child_text("body", "jabber:client"), "hi");
  ASSERT_NE(m.child("delay"), nullptr);
  EXPECT_EQ(m.child("delay")->ns(), "urn:xmpp:delay");
  EXPECT_EQ(m.child("delay")->attr("stamp"), "2002-09-10T23:08:25Z");
  EXPECT_NE(m.child("active", "http://jabber.org/protocol/chatstates"), nullptr);
}

TEST_F(StreamParserTest, PrefixedNamespaceDeclaration_IsResolved) {
  auto events = stanzas(
      "<iq type='set' id='r1'><r:query xmlns:r='jabber:iq:roster' ver='v1'>"
      "<r:item jid='romeo@example.net' r:custom='c'><r:group>Friends</r:group></r:item>"
      "<plain/></r:query></iq>");
  ASSERT_EQ(events.size(), 1u);
  const Element& iq = events[0].element;
  EXPECT_TRUE(iq.is("iq", "jabber:client"));
  const Element* q = iq.child("query");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->ns(), "jabber:iq:roster");
  EXPECT_EQ(q->attr("ver"), "v1");
  const Element* item = q->child("item");
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(item->ns(), "jabber:iq:roster");
  EXPECT_EQ(item->attr("jid"), "romeo@example.net");
  // A prefixed attribute keeps its namespace in "{uri}local" form.
  EXPECT_EQ(item->attr("{jabber:iq:roster}custom"), "c");
  EXPECT_EQ(item->child_text("group", "jabber:iq:roster"), "Friends");
  // An unprefixed child of a prefixed element is still in the stream's default namespace.
  ASSERT_NE(q->child("plain"), nullptr);
  EXPECT_EQ(q->child("plain")->ns(), "jabber:client");
}

TEST_F(StreamParserTest, Text_EntitiesAndCharacterReferencesDecoded) {
  auto events = stanzas(
      "<message><body>a &amp; b &lt;c&gt; &apos;d&quot; &#65;&#x263A; \xc3\xa9</body>"
      "<subject><![CDATA[<raw & text>]]></subject></message>");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].element.child_text("body"), "a & b <c> 'd\" A\xe2\x98\xba \xc3\xa9");
  EXPECT_EQ(events[0].element.child_text("subject"), "<raw & text>");
}

TEST_F(StreamParserTest, AttributeValue_EntitiesDecoded) {
  auto events = stanzas("<message to='a&amp;b&lt;&apos;&quot;&#x41;'/>");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].element.attr("to"), "a&b<'\"A");
}

// Whitespace may follow the stream's closing tag (XML's Misc), whatever the reads.
TEST_F(StreamParserTest, WhitespaceAfterStreamClose_IsNoError) {
  const std::string xml = std::string(kHeader) + "</stream:stream> \r\n\t ";
  for (std::size_t chunk : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
    auto r = feed_fresh(xml, chunk);
    EXPECT_FALSE(r.error) << chunk;
    ASSERT_EQ(r.events.size(), 2u) << chunk;
    EXPECT_EQ(r.events[1].kind, Kind::kStreamClose);
  }
}

TEST_F(StreamParserTest, StreamEnd_GivesStreamClose) {
  auto r = feed_fresh(std::string(kHeader) + "<presence/>" + std::string(kClose));
  ASSERT_FALSE(r.error);
  ASSERT_EQ(r.events.size(), 3u);
  EXPECT_EQ(r.events[0].kind, Kind::kStreamOpen);
  EXPECT_EQ(r.events[1].kind, Kind::kElement);
  EXPECT_TRUE(r.events[1].element.is("presence", "jabber:client"));
  EXPECT_EQ(r.events[2].kind, Kind::kStreamClose);
}

TEST_F(StreamParserTest, EventsArriveAsSoonAsElementCompletes) {
  StreamParser p;
  std::vector<StreamEvent> events;
  ASSERT_FALSE(p.feed(kHeader, events));
  EXPECT_EQ(events.size(), 1u);
  ASSERT_FALSE(p.feed("<message><body>x</body>", events));
  EXPECT_EQ(events.size(), 1u);  // not complete yet
  ASSERT_FALSE(p.feed("</message>", events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].element.child_text("body"), "x");
}

const std::string& conversation() {
  static const std::string s =
      std::string(kHeader) +
      "<message to='juliet@example.test/balcony' type='chat' xml:lang='en' id='m&amp;1'>"
      "<body>Art thou not Romeo, and a Montague? \xe2\x98\xba &lt;3 &#x1F600;</body>"
      "<thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread>"
      "<delay xmlns='urn:xmpp:delay' from='example.test' stamp='2002-09-10T23:08:25Z'/>"
      "</message>\n  \t"
      "<iq type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq> "
      "<iq type='set' id='r1'><r:query xmlns:r='jabber:iq:roster'>"
      "<r:item jid='nurse@example.test' name='N&apos;s'><r:group>Servants</r:group></r:item>"
      "</r:query></iq>"
      "<presence><show>away</show><status><![CDATA[a<b]]></status>"
      "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>"
      "<presence type='unavailable'/>" +
      std::string(kClose);
  return s;
}

TEST_F(StreamParserTest, ByteByByte_GivesSameEventsAsOneShot) {
  auto whole = feed_fresh(conversation());
  ASSERT_FALSE(whole.error);
  ASSERT_EQ(whole.events.size(), 7u);
  auto bytes = feed_fresh(conversation(), 1);
  ASSERT_FALSE(bytes.error) << core::to_string(*bytes.error);
  EXPECT_EQ(describe(bytes.events), describe(whole.events));
}

TEST_F(StreamParserTest, EveryTwoWaySplit_GivesSameEventsAsOneShot) {
  const std::string& s = conversation();
  auto expected = describe(feed_fresh(s).events);
  for (std::size_t split = 0; split <= s.size(); ++split) {
    StreamParser p;
    std::vector<StreamEvent> events;
    ASSERT_FALSE(p.feed(std::string_view(s).substr(0, split), events)) << "split " << split;
    ASSERT_FALSE(p.feed(std::string_view(s).substr(split), events)) << "split " << split;
    ASSERT_EQ(describe(events), expected) << "split " << split;
  }
}

TEST_F(StreamParserTest, WhitespaceKeepalives_ProduceNothing) {
  StreamParser p;
  std::vector<StreamEvent> events;
  ASSERT_FALSE(p.feed(kHeader, events));
  ASSERT_EQ(events.size(), 1u);
  for (std::string_view ws : {" ", "\n", "\r\n", "\t \t", " "}) {
    ASSERT_FALSE(p.feed(ws, events));
    EXPECT_EQ(events.size(), 1u) << "after keepalive";
  }
  ASSERT_FALSE(p.feed("<presence/>", events));
  ASSERT_FALSE(p.feed(" ", events));
  ASSERT_FALSE(p.feed("<presence/>", events));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].kind, Kind::kElement);
  EXPECT_EQ(events[2].kind, Kind::kElement);
}

TEST_F(StreamParserTest, ManyKeepalives_NeverTripAnyLimit) {
  ParserLimits limits;
  limits.max_stanza_size = 64;
  StreamParser p(limits);
  std::vector<StreamEvent> events;
  ASSERT_FALSE(p.feed(kHeader, events));
  for (int i = 0; i < 10000; ++i) ASSERT_FALSE(p.feed(" ", events)) << i;
  ASSERT_FALSE(p.feed(stanza_of_size(64), events));
  EXPECT_EQ(events.size(), 2u);
}

// --- stanza size limit ---

class StanzaSizeLimitTest : public ::testing::Test {
 protected:
  static constexpr std::size_t kLimit = 1000;
  ParserLimits limits() const {
    ParserLimits l;
    l.max_stanza_size = kLimit;
    return l;
  }
};

// A stream reads with a small limit until authenticated, then raises it (docs/security.md
// "Memory"): the unfinished element that goes over the small limit is refused as soon as it
// does, and once raised, an element up to the new limit passes.
TEST_F(StanzaSizeLimitTest, RaisedLimit_AppliesFromThenOn) {
  for (std::size_t chunk : {std::size_t{0}, std::size_t{1}, std::size_t{700}}) {
    StreamParser small(limits());
    auto r = feed_chunks(small, std::string(kHeader) + "<message>" + std::string(5000, 'x'), chunk);
    EXPECT_EQ(r.error, StreamError::kPolicyViolation) << chunk;
    if (chunk) {
      EXPECT_LE(r.fed, kHeader.size() + kLimit + chunk) << chunk;
    }

    StreamParser raised(limits());
    auto first = feed_chunks(raised, std::string(kHeader) + stanza_of_size(kLimit), chunk);
    ASSERT_FALSE(first.error) << chunk;
    raised.set_max_stanza_size(4 * kLimit);
    EXPECT_EQ(raised.limits().max_stanza_size, 4 * kLimit);
    auto second = feed_chunks(raised, stanza_of_size(4 * kLimit), chunk);
    EXPECT_FALSE(second.error) << chunk;
    EXPECT_EQ(second.events.size(), 1u) << chunk;
    auto third = feed_chunks(raised, stanza_of_size(4 * kLimit + 1), chunk);
    EXPECT_EQ(third.error, StreamError::kPolicyViolation) << chunk;
  }
}

TEST_F(StanzaSizeLimitTest, StanzaExactlyAtLimit_IsAccepted) {
  auto r = feed_fresh(std::string(kHeader) + stanza_of_size(kLimit), 0, limits());
  ASSERT_FALSE(r.error);
  EXPECT_EQ(r.events.size(), 2u);
  auto trickled = feed_fresh(std::string(kHeader) + stanza_of_size(kLimit), 7, limits());
  ASSERT_FALSE(trickled.error);
  EXPECT_EQ(trickled.events.size(), 2u);
}

TEST_F(StanzaSizeLimitTest, StanzaOverLimit_OneChunk_IsPolicyViolation) {
  auto r =
      feed_fresh(std::string(kHeader) + stanza_of_size(kLimit + 1) + "<presence/>", 0, limits());
  EXPECT_EQ(r.error, StreamError::kPolicyViolation);
  ASSERT_EQ(r.events.size(), 1u);  // the header only; the big stanza is never delivered
}

TEST_F(StanzaSizeLimitTest, StanzaOverLimit_Trickled_IsPolicyViolation) {
  constexpr std::size_t kChunk = 7;
  const std::string big = stanza_of_size(10 * kLimit);
  auto r = feed_fresh(std::string(kHeader) + big, kChunk, limits());
  EXPECT_EQ(r.error, StreamError::kPolicyViolation);
  EXPECT_EQ(r.events.size(), 1u);
  // Detected within one chunk of crossing the limit, not at the end of the stanza.
  EXPECT_LE(r.fed, kHeader.size() + kLimit + kChunk);
}

TEST_F(StanzaSizeLimitTest, StanzaOverLimitAfterWhitespace_IsPolicyViolation) {
  auto r = feed_fresh(std::string(kHeader) + "\n\n" + stanza_of_size(kLimit + 1), 3, limits());
  EXPECT_EQ(r.error, StreamError::kPolicyViolation);
}

TEST_F(StanzaSizeLimitTest, GiganticAttributeNeverCompletingStartTag_IsPolicyViolation) {
  constexpr std::size_t kChunk = 64;
  StreamParser p(limits());
  std::vector<StreamEvent> events;
  ASSERT_FALSE(p.feed(kHeader, events));
  ASSERT_FALSE(p.feed("<message to='", events));
  std::size_t fed = 13;
  std::optional<StreamError> err;
  const std::string chunk(kChunk, 'a');
  while (!err && fed < 100 * kLimit) {
    err = p.feed(chunk, events);
    fed += kChunk;
  }
  EXPECT_EQ(err, StreamError::kPolicyViolation);
  EXPECT_LE(fed, kLimit + kChunk);
}

TEST_F(StanzaSizeLimitTest, GiganticAttributeInOneChunk_IsPolicyViolation) {
  auto r = feed_fresh(std::string(kHeader) + "<message to='" + std::string(5 * kLimit, 'a'), 0,
                      limits());
  EXPECT_EQ(r.error, StreamError::kPolicyViolation);
}

TEST_F(StanzaSizeLimitTest, ManyStanzasEachWithinLimit_NeverTripLimit) {
  std::string body;
  constexpr int kCount = 500;
  for (int i = 0; i < kCount; ++i) {
    body += stanza_of_size(kLimit);  // back to back, no whitespace between
    if (i % 3 == 0) body += "\n";
  }
  for (std::size_t chunk :
       {std::size_t{0}, std::size_t{1}, std::size_t{13}, kLimit - 1, kLimit + 1, 4 * kLimit}) {
    auto r = feed_fresh(std::string(kHeader) + body, chunk, limits());
    ASSERT_FALSE(r.error) << "chunk " << chunk << ": " << core::to_string(*r.error);
    EXPECT_EQ(r.events.size(), 1u + kCount) << "chunk " << chunk;
  }
}

TEST_F(StanzaSizeLimitTest, DefaultLimit_ManyStanzasTotallingFarMoreThanLimit_Accepted) {
  StreamParser p;
  std::vector<StreamEvent> events;
  ASSERT_FALSE(p.feed(kHeader, events));
  const std::string s = stanza_of_size(p.limits().max_stanza_size / 2);
  for (int i = 0; i < 20; ++i) ASSERT_FALSE(p.feed(s, events)) << i;
  EXPECT_EQ(events.size(), 21u);
}

// --- depth and attribute limits ---

TEST_F(StreamParserTest, DepthExactlyMax_IsAccepted) {
  ParserLimits limits;
  limits.max_depth = 5;
  auto r = feed_fresh(std::string(kHeader) + nested(5), 0, limits);
  ASSERT_FALSE(r.error);
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[1].element.str("jabber:client"), "<e><e><e><e><e/></e></e></e></e>");
}

TEST_F(StreamParserTest, DepthOverMax_IsPolicyViolation) {
  ParserLimits limits;
  limits.max_depth = 5;
  EXPECT_EQ(feed_fresh(std::string(kHeader) + nested(6), 0, limits).error,
            StreamError::kPolicyViolation);
  EXPECT_EQ(feed_fresh(std::string(kHeader) + nested(6), 1, limits).error,
            StreamError::kPolicyViolation);
}

TEST_F(StreamParserTest, DefaultDepth_DeepNestingIsPolicyViolation) {
  auto r = feed_fresh(std::string(kHeader) + nested(10000));
  EXPECT_EQ(r.error, StreamError::kPolicyViolation);
  StreamParser p;
  EXPECT_FALSE(feed_fresh(std::string(kHeader) + nested(p.limits().max_depth)).error);
}

TEST_F(StreamParserTest, AttributesExactlyMax_IsAccepted) {
  ParserLimits limits;
  limits.max_attributes = 4;
  auto r = feed_fresh(std::string(kHeader) + with_attributes(4), 0, limits);
  ASSERT_FALSE(r.error);
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[1].element.attrs().size(), 4u);
}

TEST_F(StreamParserTest, AttributesOverMax_IsPolicyViolation) {
  ParserLimits limits;
  limits.max_attributes = 4;
  EXPECT_EQ(feed_fresh(std::string(kHeader) + with_attributes(5), 0, limits).error,
            StreamError::kPolicyViolation);
  // On a nested element too.
  EXPECT_EQ(
      feed_fresh(std::string(kHeader) + "<message><x a='1' b='2' c='3' d='4' e='5'/>", 0, limits)
          .error,
      StreamError::kPolicyViolation);
}

TEST_F(StreamParserTest, AttributesOverMaxOnStreamHeader_IsPolicyViolation) {
  ParserLimits limits;
  limits.max_attributes = 1;
  EXPECT_EQ(feed_fresh(kHeader, 0, limits).error, StreamError::kPolicyViolation);
}

// --- stream header limit ---

std::string long_header(std::size_t padding) {
  return "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
         "to='" +
         std::string(padding, 'a') + "' version='1.0'>";
}

TEST_F(StreamParserTest, HeaderWithinMax_IsAccepted) {
  ParserLimits limits;
  limits.max_header_size = 200;
  const std::string h = long_header(50);
  ASSERT_LE(h.size(), 200u);
  EXPECT_FALSE(feed_fresh(h, 0, limits).error);
  EXPECT_FALSE(feed_fresh(h, 1, limits).error);
}

TEST_F(StreamParserTest, HeaderExactlyMax_IsAcceptedAndOneMoreByteIsNot) {
  ParserLimits limits;
  limits.max_header_size = 200;
  const std::string exact = long_header(200 - long_header(0).size());
  ASSERT_EQ(exact.size(), 200u);
  for (std::size_t chunk : {std::size_t{0}, std::size_t{1}}) {
    auto ok = feed_fresh(exact + "<presence/>", chunk, limits);
    EXPECT_FALSE(ok.error) << "chunk " << chunk;
    EXPECT_EQ(ok.events.size(), 2u);
    auto over = feed_fresh(long_header(201 - long_header(0).size()) + "<presence/>", chunk, limits);
    EXPECT_EQ(over.error, StreamError::kPolicyViolation) << "chunk " << chunk;
  }
}

TEST_F(StreamParserTest, HeaderLongerThanMax_Trickled_IsPolicyViolation) {
  ParserLimits limits;
  limits.max_header_size = 200;
  auto r = feed_fresh(long_header(1000), 10, limits);
  EXPECT_EQ(r.error, StreamError::kPolicyViolation);
  EXPECT_TRUE(r.events.empty());
  EXPECT_LE(r.fed, 210u);
}

TEST_F(StreamParserTest, HeaderLongerThanMax_OneChunk_IsPolicyViolation) {
  ParserLimits limits;
  limits.max_header_size = 200;
  EXPECT_EQ(feed_fresh(long_header(1000), 0, limits).error, StreamError::kPolicyViolation);
}

TEST_F(StreamParserTest, HeaderNeverCompleting_IsPolicyViolation) {
  StreamParser p;
  std::vector<StreamEvent> events;
  std::optional<StreamError> err = p.feed("<stream:stream to='", events);
  std::size_t fed = 19;
  while (!err && fed < 100000) {
    err = p.feed(std::string(100, 'x'), events);
    fed += 100;
  }
  EXPECT_EQ(err, StreamError::kPolicyViolation);
  EXPECT_LE(fed, p.limits().max_header_size + 100);
}

// --- restricted XML (RFC 6120 §11.1) ---

struct BadInput {
  const char* label;
  std::string xml;
  StreamError expected;
};

void PrintTo(const BadInput& b, std::ostream* os) {
  *os << b.label;
}

class BadInputTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(BadInputTest, OneShot_GivesExpectedStreamError) {
  auto r = feed_fresh(GetParam().xml);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(core::to_string(*r.error), core::to_string(GetParam().expected));
}

TEST_P(BadInputTest, ByteByByte_GivesExpectedStreamError) {
  auto r = feed_fresh(GetParam().xml, 1);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(core::to_string(*r.error), core::to_string(GetParam().expected));
}

TEST_P(BadInputTest, AfterError_FeedReturnsSameErrorAndNoEvents) {
  StreamParser p;
  auto r = feed_chunks(p, GetParam().xml);
  ASSERT_TRUE(r.error);
  std::vector<StreamEvent> events;
  EXPECT_EQ(p.feed("<presence/>", events), r.error);
  EXPECT_EQ(p.feed(kHeader, events), r.error);
  EXPECT_EQ(p.feed("", events), r.error);
  EXPECT_TRUE(events.empty());
}

const std::string kH(kHeader);

// `xml` (ASCII) in UTF-16, big or little endian, with or without a byte order mark.
std::string utf16(std::string_view xml, bool big_endian, bool bom) {
  std::string out = bom ? (big_endian ? "\xFE\xFF" : "\xFF\xFE") : "";
  for (const char c : xml) {
    out += big_endian ? '\0' : c;
    out += big_endian ? c : '\0';
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(
    Restricted, BadInputTest,
    ::testing::Values(
        BadInput{"doctype", "<?xml version='1.0'?><!DOCTYPE stream>" + kH.substr(21),
                 StreamError::kRestrictedXml},
        BadInput{"doctype_with_internal_subset",
                 "<!DOCTYPE stream:stream [<!ELEMENT message ANY>]>" + kH.substr(21),
                 StreamError::kRestrictedXml},
        BadInput{"entity_declaration",
                 "<?xml version='1.0'?><!DOCTYPE s [<!ENTITY lol 'lol'>]>" + kH.substr(21),
                 StreamError::kRestrictedXml},
        BadInput{"billion_laughs",
                 "<!DOCTYPE s [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;'>]>"
                 "<s>&b;</s>",
                 StreamError::kRestrictedXml},
        BadInput{"external_entity",
                 "<!DOCTYPE s [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><s>&x;</s>",
                 StreamError::kRestrictedXml},
        BadInput{"comment_in_prolog", "<?xml version='1.0'?><!-- hi -->" + kH.substr(21),
                 StreamError::kRestrictedXml},
        BadInput{"comment_between_stanzas", kH + "<presence/><!-- hi --><presence/>",
                 StreamError::kRestrictedXml},
        BadInput{"comment_inside_stanza", kH + "<message><!-- hi --></message>",
                 StreamError::kRestrictedXml},
        BadInput{"pi_in_prolog", "<?xml version='1.0'?><?foo bar?>" + kH.substr(21),
                 StreamError::kRestrictedXml},
        BadInput{"pi_inside_stanza", kH + "<message><?foo bar?></message>",
                 StreamError::kRestrictedXml},
        BadInput{"pi_between_stanzas", kH + "<?foo bar?>", StreamError::kRestrictedXml}),
    [](const auto& info) { return std::string(info.param.label); });

INSTANTIATE_TEST_SUITE_P(
    Malformed, BadInputTest,
    ::testing::Values(
        BadInput{"mismatched_tag", kH + "<message><body>x</message>", StreamError::kNotWellFormed},
        BadInput{"mismatched_stream_close", kH + "<message></stream:stream>",
                 StreamError::kNotWellFormed},
        BadInput{"duplicate_attribute", kH + "<a b='1' b='2'/>", StreamError::kNotWellFormed},
        BadInput{"duplicate_expanded_attribute",
                 kH + "<a xmlns:x='urn:u' xmlns:y='urn:u' x:b='1' y:b='2'/>",
                 StreamError::kNotWellFormed},
        BadInput{"undefined_entity", kH + "<message><body>&foo;</body></message>",
                 StreamError::kNotWellFormed},
        BadInput{"undefined_entity_in_attribute", kH + "<message to='&foo;'/>",
                 StreamError::kNotWellFormed},
        BadInput{"junk_lt_lt", kH + "<<", StreamError::kNotWellFormed},
        BadInput{"junk_before_header", "hello" + kH, StreamError::kNotWellFormed},
        BadInput{"invalid_utf8", kH + "<message><body>\xff\xfe</body></message>",
                 StreamError::kNotWellFormed},
        BadInput{"control_character", kH + "<message><body>\x01</body></message>",
                 StreamError::kNotWellFormed},
        BadInput{"unquoted_attribute", kH + "<message to=x/>", StreamError::kNotWellFormed},
        BadInput{"data_after_stream_close", kH + "</stream:stream><presence/>",
                 StreamError::kNotWellFormed},
        // Found by tests/fuzz/stream_fuzz: after the close, expat reported this text only
        // once its token was complete, so whole it passed and byte by byte it failed.
        BadInput{"unfinished_text_after_stream_close", kH + "</stream:stream>message\xe0",
                 StreamError::kNotWellFormed},
        BadInput{"text_after_self_closed_stream", kH.substr(0, kH.size() - 1) + "/>x",
                 StreamError::kNotWellFormed}),
    [](const auto& info) { return std::string(info.param.label); });

INSTANTIATE_TEST_SUITE_P(
    Namespaces, BadInputTest,
    ::testing::Values(BadInput{"unbound_element_prefix", kH + "<foo:message/>",
                               StreamError::kBadNamespacePrefix},
                      BadInput{"unbound_attribute_prefix", kH + "<message foo:to='x'/>",
                               StreamError::kBadNamespacePrefix},
                      BadInput{"unbound_stream_prefix", "<stream:stream xmlns='jabber:client'>",
                               StreamError::kBadNamespacePrefix}),
    [](const auto& info) { return std::string(info.param.label); });

INSTANTIATE_TEST_SUITE_P(
    Encoding, BadInputTest,
    ::testing::Values(
        BadInput{"latin1", "<?xml version='1.0' encoding='ISO-8859-1'?>" + kH.substr(21),
                 StreamError::kUnsupportedEncoding},
        BadInput{"utf16", "<?xml version='1.0' encoding='UTF-16'?>" + kH.substr(21),
                 StreamError::kUnsupportedEncoding},
        BadInput{"ascii", "<?xml version='1.0' encoding='US-ASCII'?>" + kH.substr(21),
                 StreamError::kUnsupportedEncoding},
        // Found by tests/fuzz/stream_fuzz: without a declaration, expat detected
        // UTF-16 from the first bytes and parsed the whole stream.
        BadInput{"utf16le", utf16(kH, false, false), StreamError::kUnsupportedEncoding},
        BadInput{"utf16le_bom", utf16(kH, false, true), StreamError::kUnsupportedEncoding},
        BadInput{"utf16be", utf16(kH, true, false), StreamError::kUnsupportedEncoding},
        BadInput{"utf16be_bom", utf16(kH, true, true), StreamError::kUnsupportedEncoding},
        BadInput{"nul_after_first_byte", std::string("<\0s", 3), StreamError::kUnsupportedEncoding},
        BadInput{"nul_in_stanza", kH + std::string("<message>\0</message>", 20),
                 StreamError::kNotWellFormed}),
    [](const auto& info) { return std::string(info.param.label); });

TEST_F(StreamParserTest, Utf8DeclaredInAnyCase_IsAccepted) {
  for (std::string decl : {"<?xml version='1.0' encoding='UTF-8'?>",
                           "<?xml version='1.0' encoding='utf-8'?>", "<?xml version='1.0'?>", ""}) {
    auto r = feed_fresh(decl + kH.substr(21));
    EXPECT_FALSE(r.error) << decl;
    EXPECT_EQ(r.events.size(), 1u) << decl;
  }
}

TEST_F(StreamParserTest, Utf16AfterRestart_IsUnsupportedEncoding) {
  StreamParser p;
  std::vector<StreamEvent> events;
  ASSERT_FALSE(p.feed(kH + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", events));
  p.reset();
  EXPECT_EQ(p.feed(utf16(kH, false, false), events), StreamError::kUnsupportedEncoding);
  EXPECT_EQ(events.size(), 2u);
}

TEST_F(StreamParserTest, ErrorFreesPartialStanza_FeedReturnsSameError) {
  ParserLimits limits;
  limits.max_stanza_size = 100;
  StreamParser p(limits);
  std::vector<StreamEvent> events;
  ASSERT_FALSE(p.feed(kHeader, events));
  ASSERT_FALSE(p.feed("<message><body>", events));
  EXPECT_EQ(p.feed(std::string(200, 'x'), events), StreamError::kPolicyViolation);
  EXPECT_EQ(p.feed("</body></message>", events), StreamError::kPolicyViolation);
  EXPECT_EQ(events.size(), 1u);
}

// --- reset ---

TEST_F(StreamParserTest, Reset_AllowsFreshStreamHeader) {
  StreamParser p;
  std::vector<StreamEvent> events;
  ASSERT_FALSE(
      p.feed(std::string(kHeader) + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", events));
  ASSERT_EQ(events.size(), 2u);
  p.reset();
  events.clear();
  // A second XML declaration and header are only legal after reset.
  ASSERT_FALSE(p.feed(std::string(kServerHeader) + "<presence/>", events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, Kind::kStreamOpen);
  EXPECT_EQ(events[0].default_ns, "jabber:server");
  EXPECT_TRUE(events[1].element.is("presence", "jabber:server"));
}

TEST_F(StreamParserTest, WithoutReset_SecondHeaderIsNotAStreamOpen) {
  StreamParser p;
  std::vector<StreamEvent> events;
  ASSERT_FALSE(p.feed(kHeader, events));
  auto err = p.feed(kHeader, events);
  // The XML declaration mid-stream is refused; no second kStreamOpen appears.
  EXPECT_TRUE(err);
  for (std::size_t i = 1; i < events.size(); ++i) EXPECT_NE(events[i].kind, Kind::kStreamOpen);
}

TEST_F(StreamParserTest, Reset_ClearsErrorAndPartialStanza) {
  StreamParser p;
  std::vector<StreamEvent> events;
  ASSERT_FALSE(p.feed(std::string(kHeader) + "<message><body>half", events));
  p.reset();
  ASSERT_FALSE(p.feed(std::string(kHeader) + "<presence/>", events));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_TRUE(events[2].element.is("presence", "jabber:client"));
  EXPECT_EQ(events[2].element.child_count(), 0u);

  ASSERT_EQ(p.feed("<<", events), StreamError::kNotWellFormed);
  p.reset();
  events.clear();
  EXPECT_FALSE(p.feed(kHeader, events));
  EXPECT_EQ(events.size(), 1u);
}

TEST_F(StreamParserTest, Reset_RestartsHeaderAndStanzaAccounting) {
  ParserLimits limits;
  limits.max_header_size = 300;
  limits.max_stanza_size = 300;
  StreamParser p(limits);
  std::vector<StreamEvent> events;
  for (int round = 0; round < 10; ++round) {
    ASSERT_FALSE(p.feed(kHeader, events)) << round;
    ASSERT_FALSE(p.feed(stanza_of_size(250), events)) << round;
    p.reset();
  }
  EXPECT_EQ(events.size(), 20u);
}

// --- parse_element ---

TEST(ParseElementTest, ValidElement_IsParsed) {
  auto e = parse_element("<message xmlns='jabber:client' to='a'><body>x &amp; y</body></message>");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->is("message", "jabber:client"));
  EXPECT_EQ(e->attr("to"), "a");
  EXPECT_EQ(e->child_text("body", "jabber:client"), "x & y");
}

TEST(ParseElementTest, InvalidInput_IsNullopt) {
  EXPECT_FALSE(parse_element(""));
  EXPECT_FALSE(parse_element("<a>"));
  EXPECT_FALSE(parse_element("<a></b>"));
  EXPECT_FALSE(parse_element("just text"));
  EXPECT_FALSE(parse_element("<a><!-- c --></a>"));
  EXPECT_FALSE(parse_element("<p:a/>"));
}

TEST(ParseElementTest, LargeElement_IsParsed) {
  std::string big = "<x>" + std::string(1 << 20, 'y') + "</x>";
  auto e = parse_element(big);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->text().size(), std::size_t{1} << 20);
}

}  // namespace
}  // namespace waddle::xml
