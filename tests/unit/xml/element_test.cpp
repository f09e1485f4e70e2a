// Element tree and serialization: exact wire bytes, round trips through the parser for the
// payloads we route, and jabber:client <-> jabber:server re-targeting (RFC 6120 §4.8.3).
#include "xml/element.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "xml/parser.h"

namespace waddle::xml {
namespace {

constexpr std::string_view kClient = "jabber:client";
constexpr std::string_view kServer = "jabber:server";

// Parses `stanza` as the first element of a stream with default namespace `stream_ns`.
std::optional<Element> parse_in_stream(std::string_view stanza, std::string_view stream_ns) {
  StreamParser p;
  std::vector<StreamEvent> events;
  std::string header = "<stream:stream xmlns='" + std::string(stream_ns) +
                       "' xmlns:stream='http://etherx.jabber.org/streams'>";
  if (p.feed(header, events) || p.feed(stanza, events)) return std::nullopt;
  if (events.size() != 2 || events[1].kind != StreamEvent::Kind::kElement) return std::nullopt;
  return std::move(events[1].element);
}

// --- building and serialization ---

TEST(ElementTest, EmptyElement_SerializesSelfClosing) {
  EXPECT_EQ(Element("x", "").str(), "<x/>");
  Element e("x", "");
  e.add_text("");  // empty text adds no node
  EXPECT_EQ(e.str(), "<x/>");
  EXPECT_EQ(e.nodes().size(), 0u);
}

TEST(ElementTest, TopLevelElement_WritesItsNamespace) {
  EXPECT_EQ(Element("ping", "urn:xmpp:ping").str(), "<ping xmlns='urn:xmpp:ping'/>");
  EXPECT_EQ(Element("ping", "urn:xmpp:ping").str("urn:xmpp:ping"), "<ping/>");
}

TEST(ElementTest, TextAndAttributes_AreEscaped) {
  Element e("x", "");
  e.set_attr("a", "<&>'\"");
  e.add_text("1 < 2 & 3 > 'q' \"d\"");
  EXPECT_EQ(e.str(),
            "<x a='&lt;&amp;&gt;&apos;&quot;'>1 &lt; 2 &amp; 3 &gt; &apos;q&apos; "
            "&quot;d&quot;</x>");
}

TEST(ElementTest, Escape_AppendsAllFiveEntities) {
  std::string out = "prefix:";
  escape(out, "a&b<c>d'e\"f");
  EXPECT_EQ(out, "prefix:a&amp;b&lt;c&gt;d&apos;e&quot;f");
  out.clear();
  escape(out, "plain \xe2\x98\xba text");
  EXPECT_EQ(out, "plain \xe2\x98\xba text");
}

TEST(ElementTest, Escape_ReferencesAtTheEdgesAndInRuns) {
  std::string out;
  escape(out, "&&x\r\r<");
  EXPECT_EQ(out, "&amp;&amp;x&#13;&#13;&lt;");
  out.clear();
  escape(out, "");
  EXPECT_EQ(out, "");
  // Character data keeps TAB and LF; attribute values turn them into references.
  Element e("x", "");
  e.set_attr("a", "\tq\n\r");
  e.add_text("\tq\n");
  EXPECT_EQ(e.str(), "<x a='&#9;q&#10;&#13;'>\tq\n</x>");
}

TEST(ElementTest, Namespace_WrittenOnlyWhereItChanges) {
  Element m("message", std::string(kClient));
  m.set_attr("to", "juliet@example.test").set_attr("type", "chat");
  m.add_child("body", std::string(kClient)).add_text("hi");
  Element& delay = m.add_child("delay", "urn:xmpp:delay");
  delay.set_attr("stamp", "2002-09-10T23:08:25Z");
  delay.add_child("inner", "urn:xmpp:delay");
  delay.add_child("other", "urn:other").add_child("deep", "urn:other");
  EXPECT_EQ(m.str(kClient),
            "<message to='juliet@example.test' type='chat'><body>hi</body>"
            "<delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z'><inner/>"
            "<other xmlns='urn:other'><deep/></other></delay></message>");
  EXPECT_EQ(m.str().substr(0, 34), "<message xmlns='jabber:client' to=");
}

TEST(ElementTest, EmptyNamespaceUnderNamespacedParent_IsUndeclared) {
  Element e("a", "urn:a");
  e.add_child("b", "");
  EXPECT_EQ(e.str(), "<a xmlns='urn:a'><b xmlns=''/></a>");
  auto back = parse_element(e.str());
  ASSERT_TRUE(back);
  ASSERT_NE(back->child("b"), nullptr);
  EXPECT_EQ(back->child("b")->ns(), "");
}

TEST(ElementTest, MixedContent_KeepsOrder) {
  Element e("p", "");
  e.add_text("a");
  e.add_child("b", "");
  e.add_text("c");
  e.add_text("d");  // merges with the previous text node
  EXPECT_EQ(e.str(), "<p>a<b/>cd</p>");
  EXPECT_EQ(e.nodes().size(), 3u);
  EXPECT_EQ(e.text(), "acd");
}

TEST(ElementTest, XmlLangAttribute_SerializedWithXmlPrefix) {
  Element e("body", "");
  e.set_attr("xml:lang", "de");
  EXPECT_EQ(e.str(), "<body xml:lang='de'/>");
}

TEST(ElementTest, NamespacedAttribute_DeclaresPrefixAndRoundTrips) {
  Element e("item", "jabber:iq:roster");
  e.set_attr("jid", "a@b");
  e.set_attr("{urn:x:ext}flag", "1");
  EXPECT_EQ(e.str(),
            "<item xmlns='jabber:iq:roster' jid='a@b' xmlns:ns0='urn:x:ext' ns0:flag='1'/>");
  auto back = parse_element(e.str());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->attr("{urn:x:ext}flag"), "1");
  EXPECT_EQ(back->str(), e.str());
}

TEST(ElementTest, StanzaSerialisedForItsStream_ParsesBackWithTheStreamNamespace) {
  Element m("message", "jabber:server");
  m.set_attr("to", "b@r.test");
  m.add_child("body", "jabber:server").add_text("hi");
  m.add_child("x", "urn:x").set_attr("a", "1");
  const std::string bytes = serialize_stanza(m, "jabber:server");
  EXPECT_EQ(bytes.find("xmlns='jabber:server'"), std::string::npos);  // implied by the stream
  auto back = parse_element(bytes, "jabber:server");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->ns(), "jabber:server");
  EXPECT_EQ(back->child_text("body", "jabber:server"), "hi");
  EXPECT_EQ(serialize_stanza(*back, "jabber:server"), bytes);
  auto bare = parse_element(bytes);  // without it, the stanza is in no namespace
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->ns(), "");
}

TEST(ElementTest, AttributeNamespaceContainingBrace_RoundTrips) {
  // Found by tests/fuzz/parser_fuzz.cpp: the URI part of "{uri}local" may itself contain '}'.
  auto e = parse_element("<m xmlns:x='urn:}odd' x:a='1'/>");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->attr("{urn:}odd}a"), "1");
  EXPECT_EQ(e->str(), "<m xmlns:ns0='urn:}odd' ns0:a='1'/>");
  auto back = parse_element(e->str());
  ASSERT_TRUE(back) << e->str();
  EXPECT_EQ(back->attr("{urn:}odd}a"), "1");
}

TEST(ElementTest, ElementInXmlNamespace_WrittenWithXmlPrefix) {
  // Found by tests/fuzz/parser_fuzz.cpp: xmlns='http://www.w3.org/XML/1998/namespace' is
  // not allowed, so <xml:odd> must keep its prefix and not disturb its children's namespace.
  auto e = parse_element("<m xmlns='urn:m'><xml:odd xml:lang='en'><c/><d xmlns=''/></xml:odd></m>");
  ASSERT_TRUE(e);
  const Element* odd = e->child("odd");
  ASSERT_NE(odd, nullptr);
  EXPECT_EQ(odd->ns(), ns::kXml);
  EXPECT_EQ(e->str(), "<m xmlns='urn:m'><xml:odd xml:lang='en'><c/><d xmlns=''/></xml:odd></m>");
  auto back = parse_element(e->str());
  ASSERT_TRUE(back) << e->str();
  EXPECT_EQ(back->child("odd")->child("c")->ns(), "urn:m");
  EXPECT_EQ(back->child("odd")->child("d")->ns(), "");
  EXPECT_EQ(back->str(), e->str());
}

TEST(ElementTest, NamespaceWithNewline_RoundTrips) {
  auto e = parse_element("<m xmlns='urn:a&#10;b' xmlns:p='urn:c&#9;d' p:q='1'/>");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->ns(), "urn:a\nb");
  EXPECT_EQ(e->str(), "<m xmlns='urn:a&#10;b' xmlns:ns0='urn:c&#9;d' ns0:q='1'/>");
  auto back = parse_element(e->str());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->ns(), "urn:a\nb");
  EXPECT_EQ(back->attr("{urn:c\td}q"), "1");
}

// --- round trips (STYLE.md: round-trip tests for every payload) ---

Element message_with_delay() {
  Element m("message", std::string(kClient));
  m.set_attr("from", "romeo@example.net/orchard")
      .set_attr("to", "juliet@example.com")
      .set_attr("type", "chat")
      .set_attr("id", "ktx72v49")
      .set_attr("xml:lang", "en");
  m.add_child("body", std::string(kClient))
      .add_text("Art thou not Romeo & a <Montague>? \xe2\x98\xba");
  m.add_child("thread", std::string(kClient))
      .set_attr("parent", "7edac73ab41e45c4aafa7b2d7b749080")
      .add_text("e0ffe42b28561960c6b12b944a092794b9683a38");
  m.add_child("delay", "urn:xmpp:delay")
      .set_attr("from", "capulet.com")
      .set_attr("stamp", "2002-09-10T23:08:25Z")
      .add_text("Offline Storage");
  return m;
}

Element disco_info_iq() {
  Element iq("iq", std::string(kClient));
  iq.set_attr("type", "result").set_attr("id", "info1").set_attr("to", "a@b/c");
  Element& q = iq.add_child("query", "http://jabber.org/protocol/disco#info");
  q.set_attr("node", "http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0=");
  q.add_child("identity", q.ns())
      .set_attr("category", "server")
      .set_attr("type", "im")
      .set_attr("name", "Waddle's \"server\"");
  for (const char* f :
       {"http://jabber.org/protocol/disco#info", "urn:xmpp:ping", "jabber:iq:roster"})
    q.add_child("feature", q.ns()).set_attr("var", f);
  Element& x = q.add_child("x", "jabber:x:data");
  x.set_attr("type", "result");
  Element& field = x.add_child("field", "jabber:x:data");
  field.set_attr("var", "FORM_TYPE").set_attr("type", "hidden");
  field.add_child("value", "jabber:x:data").add_text("urn:xmpp:dataforms:softwareinfo");
  return iq;
}

Element roster_push() {
  Element iq("iq", std::string(kClient));
  iq.set_attr("type", "set").set_attr("id", "a78b4q6ha463");
  Element& q = iq.add_child("query", "jabber:iq:roster");
  q.set_attr("ver", "ver14");
  Element& i1 = q.add_child("item", "jabber:iq:roster");
  i1.set_attr("jid", "nurse@example.com")
      .set_attr("name", "Nurse")
      .set_attr("subscription", "both");
  i1.add_child("group", "jabber:iq:roster").add_text("Servants");
  i1.add_child("group", "jabber:iq:roster").add_text("Friends & Family");
  Element& i2 = q.add_child("item", "jabber:iq:roster");
  i2.set_attr("jid", "romeo@example.net").set_attr("ask", "subscribe");
  return iq;
}

Element nested_namespaces() {
  Element m("message", std::string(kClient));
  m.set_attr("to", "a@b");
  Element& fwd = m.add_child("forwarded", "urn:xmpp:forward:0");
  fwd.add_child("delay", "urn:xmpp:delay").set_attr("stamp", "2010-07-10T23:08:25Z");
  Element& inner = fwd.add_child("message", std::string(kClient));  // keeps jabber:client
  inner.set_attr("type", "chat");
  inner.add_child("body", std::string(kClient)).add_text("inner");
  Element& html = m.add_child("html", "http://jabber.org/protocol/xhtml-im");
  Element& body = html.add_child("body", "http://www.w3.org/1999/xhtml");
  body.add_child("p", "http://www.w3.org/1999/xhtml").add_text("one ");
  body.child("p")->add_child("em", "http://www.w3.org/1999/xhtml").add_text("two");
  body.child("p")->add_text(" three");
  m.add_child("x", "");
  return m;
}

struct Payload {
  const char* label;
  Element (*make)();
};

void PrintTo(const Payload& p, std::ostream* os) {
  *os << p.label;
}

class RoundTripTest : public ::testing::TestWithParam<Payload> {};

TEST_P(RoundTripTest, ParseOfSerialize_SerializesIdentically) {
  const Element e = GetParam().make();
  const std::string wire = e.str();
  auto parsed = parse_element(wire);
  ASSERT_TRUE(parsed) << wire;
  EXPECT_EQ(parsed->str(), wire);
  EXPECT_EQ(parsed->str(kClient), e.str(kClient));
}

TEST_P(RoundTripTest, InClientStream_SerializesIdentically) {
  const Element e = GetParam().make();
  const std::string wire = serialize_stanza(e, kClient);
  auto parsed = parse_in_stream(wire, kClient);
  ASSERT_TRUE(parsed) << wire;
  EXPECT_EQ(parsed->str(), e.str());
  EXPECT_EQ(serialize_stanza(*parsed, kClient), wire);
}

TEST_P(RoundTripTest, ClientToServerToClient_SerializesIdentically) {
  const Element e = GetParam().make();
  auto on_server = parse_in_stream(serialize_stanza(e, kServer), kServer);
  ASSERT_TRUE(on_server);
  EXPECT_EQ(on_server->ns(), kServer);
  auto back = parse_in_stream(serialize_stanza(*on_server, kClient), kClient);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->str(), e.str());
}

TEST_P(RoundTripTest, ByteByByteParse_SerializesIdentically) {
  const Element e = GetParam().make();
  StreamParser p;
  std::vector<StreamEvent> events;
  const std::string data =
      "<stream:stream xmlns='jabber:client' "
      "xmlns:stream='http://etherx.jabber.org/streams'>" +
      serialize_stanza(e, kClient);
  for (char c : data) ASSERT_FALSE(p.feed(std::string_view(&c, 1), events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].element.str(), e.str());
}

INSTANTIATE_TEST_SUITE_P(Payloads, RoundTripTest,
                         ::testing::Values(Payload{"message_body_thread_delay", message_with_delay},
                                           Payload{"iq_disco_info", disco_info_iq},
                                           Payload{"roster_items_with_groups", roster_push},
                                           Payload{"nested_namespaces", nested_namespaces}),
                         [](const auto& info) { return std::string(info.param.label); });

TEST(ElementTest, MessageWithDelay_ExactBytes) {
  EXPECT_EQ(serialize_stanza(message_with_delay(), kClient),
            "<message from='romeo@example.net/orchard' to='juliet@example.com' type='chat' "
            "id='ktx72v49' xml:lang='en'><body>Art thou not Romeo &amp; a &lt;Montague&gt;? "
            "\xe2\x98\xba</body><thread parent='7edac73ab41e45c4aafa7b2d7b749080'>"
            "e0ffe42b28561960c6b12b944a092794b9683a38</thread><delay xmlns='urn:xmpp:delay' "
            "from='capulet.com' stamp='2002-09-10T23:08:25Z'>Offline Storage</delay></message>");
}

TEST(ElementTest, WhitespaceControlCharacters_ExactBytes) {
  Element e("x", "");
  e.set_attr("a", "1\t2\n3\r4");
  e.add_text("1\t2\n3\r4");
  EXPECT_EQ(e.str(), "<x a='1&#9;2&#10;3&#13;4'>1\t2\n3&#13;4</x>");
}

TEST(ElementTest, SpecialCharactersInText_RoundTrip) {
  // Carriage returns, tabs and newlines must survive a parse (XML end-of-line and attribute
  // value normalization would otherwise rewrite them).
  Element e("x", "");
  e.set_attr("a", "tab\there\nnewline\rcr");
  e.add_text("line1\r\nline2\rline3\n\ttabbed");
  auto back = parse_element(e.str());
  ASSERT_TRUE(back) << e.str();
  EXPECT_EQ(back->attr("a"), "tab\there\nnewline\rcr");
  EXPECT_EQ(back->text(), "line1\r\nline2\rline3\n\ttabbed");
}

// --- serialize_stanza re-targeting ---

TEST(SerializeStanzaTest, ClientStanzaToServerStream_HasNoXmlnsAndPayloadsKeepTheirs) {
  Element m("message", std::string(kClient));
  m.set_attr("from", "a@x.test/r").set_attr("to", "b@y.test");
  m.add_child("body", std::string(kClient)).add_text("hi");
  m.add_child("request", "urn:xmpp:receipts");
  Element& err = m.add_child("error", std::string(kClient));
  err.set_attr("type", "cancel");
  err.add_child("gone", "urn:ietf:params:xml:ns:xmpp-stanzas");
  const std::string expected =
      "<message from='a@x.test/r' to='b@y.test'><body>hi</body>"
      "<request xmlns='urn:xmpp:receipts'/><error type='cancel'>"
      "<gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>";
  EXPECT_EQ(serialize_stanza(m, kServer), expected);
  EXPECT_EQ(serialize_stanza(m, kClient), expected);

  auto on_server = parse_in_stream(serialize_stanza(m, kServer), kServer);
  ASSERT_TRUE(on_server);
  EXPECT_TRUE(on_server->is("message", kServer));
  EXPECT_EQ(on_server->child("body")->ns(), kServer);
  EXPECT_EQ(on_server->child("request")->ns(), "urn:xmpp:receipts");
}

TEST(SerializeStanzaTest, ServerStanzaToClientStream_HasNoXmlns) {
  Element p("presence", std::string(kServer));
  p.set_attr("type", "unavailable");
  EXPECT_EQ(serialize_stanza(p, kClient), "<presence type='unavailable'/>");
  p.add_child("status", std::string(kServer)).add_text("bye");
  EXPECT_EQ(serialize_stanza(p, kClient),
            "<presence type='unavailable'><status>bye</status></presence>");
}

TEST(SerializeStanzaTest, ForwardedClientStanzaInsidePayload_KeepsItsXmlns) {
  const std::string wire = serialize_stanza(nested_namespaces(), kServer);
  EXPECT_NE(wire.find("<forwarded xmlns='urn:xmpp:forward:0'>"), std::string::npos) << wire;
  EXPECT_NE(wire.find("<message xmlns='jabber:client' type='chat'>"), std::string::npos) << wire;
  EXPECT_EQ(wire.substr(0, 20), "<message to='a@b'><f");
}

TEST(SerializeStanzaTest, NonStanzaElement_KeepsItsNamespace) {
  Element features("features", "http://etherx.jabber.org/streams");
  EXPECT_EQ(serialize_stanza(features, kClient),
            "<features xmlns='http://etherx.jabber.org/streams'/>");
  Element db("result", "jabber:server:dialback");
  db.set_attr("from", "a.test").add_text("key");
  EXPECT_EQ(serialize_stanza(db, kServer),
            "<result xmlns='jabber:server:dialback' from='a.test'>key</result>");
  Element other_ns("message", "urn:not:a:stanza");
  EXPECT_EQ(serialize_stanza(other_ns, kClient), "<message xmlns='urn:not:a:stanza'/>");
}

TEST(SerializeStanzaTest, StanzaText_IsEscaped) {
  Element m("message", std::string(kClient));
  m.set_attr("id", "a'b");
  m.add_text("<&>");
  EXPECT_EQ(serialize_stanza(m, kServer), "<message id='a&apos;b'>&lt;&amp;&gt;</message>");
}

// --- copies ---

TEST(ElementTest, CopyConstruction_IsDeep) {
  Element original = roster_push();
  const std::string before = original.str();
  Element copy(original);
  EXPECT_EQ(copy.str(), before);
  copy.child("query")->child("item")->set_attr("name", "Changed");
  copy.child("query")->add_child("item", "jabber:iq:roster");
  copy.set_attr("id", "other");
  EXPECT_EQ(original.str(), before);
  EXPECT_NE(copy.child("query"), original.child("query"));
  EXPECT_NE(copy.str(), before);
}

TEST(ElementTest, CopyAssignment_IsDeepAndSelfSafe) {
  Element original = disco_info_iq();
  const std::string before = original.str();
  Element target("old", "urn:old");
  target.add_child("junk", "");
  target = original;
  EXPECT_EQ(target.str(), before);
  target.child("query")->clear_children();
  EXPECT_EQ(original.str(), before);
  EXPECT_EQ(original.child("query")->child_count(), 5u);

  Element& alias = original;
  original = alias;
  EXPECT_EQ(original.str(), before);
}

TEST(ElementTest, Move_TransfersChildren) {
  Element original = roster_push();
  const std::string before = original.str();
  Element moved(std::move(original));
  EXPECT_EQ(moved.str(), before);
}

// --- accessors ---

TEST(ElementTest, Attr_AbsentIsEmptyAndSetReplacesInPlace) {
  Element e("x", "");
  EXPECT_EQ(e.attr("a"), "");
  EXPECT_FALSE(e.has_attr("a"));
  e.set_attr("a", "1").set_attr("b", "2").set_attr("empty", "");
  EXPECT_TRUE(e.has_attr("empty"));
  EXPECT_EQ(e.attr("empty"), "");
  e.set_attr("a", "3");
  ASSERT_EQ(e.attrs().size(), 3u);
  EXPECT_EQ(e.attrs()[0].name, "a");
  EXPECT_EQ(e.attrs()[0].value, "3");
  EXPECT_EQ(e.str(), "<x a='3' b='2' empty=''/>");
}

TEST(ElementTest, RemoveAttr_RemovesOnlyThatAttribute) {
  Element e("x", "");
  e.set_attr("a", "1").set_attr("b", "2").set_attr("c", "3");
  e.remove_attr("b");
  e.remove_attr("missing");
  EXPECT_FALSE(e.has_attr("b"));
  EXPECT_EQ(e.str(), "<x a='1' c='3'/>");
}

TEST(ElementTest, Child_MatchesNameAndOptionalNamespace) {
  Element e("x", "urn:x");
  e.add_text("leading");
  e.add_child("a", "urn:one").add_text("first");
  e.add_child("a", "urn:two").add_text("second");
  e.add_child("b", "urn:one");
  EXPECT_EQ(e.child("a")->text(), "first");
  EXPECT_EQ(e.child("a", "urn:two")->text(), "second");
  EXPECT_EQ(e.child("a", "urn:three"), nullptr);
  EXPECT_EQ(e.child("c"), nullptr);
  EXPECT_EQ(e.child_text("a", "urn:two"), "second");
  EXPECT_EQ(e.child_text("missing"), "");
  EXPECT_EQ(e.first_child()->name(), "a");
  EXPECT_EQ(e.child_count(), 3u);
  EXPECT_EQ(e.text(), "leading");

  const Element& ce = e;
  EXPECT_EQ(ce.child("b", "urn:one"), e.child("b", "urn:one"));
  e.child("a", "urn:two")->set_attr("k", "v");
  EXPECT_EQ(ce.child("a", "urn:two")->attr("k"), "v");
}

TEST(ElementTest, Children_FiltersByNameAndNamespace) {
  Element e("x", "");
  e.add_child("a", "urn:one");
  e.add_text("t");
  e.add_child("a", "urn:two");
  e.add_child("b", "urn:one");
  e.add_child("a", "urn:one").set_attr("n", "3");
  EXPECT_EQ(e.children().size(), 4u);
  EXPECT_EQ(e.children("a", "").size(), 3u);
  auto ones = e.children("a", "urn:one");
  ASSERT_EQ(ones.size(), 2u);
  EXPECT_EQ(ones[1]->attr("n"), "3");
  EXPECT_TRUE(e.children("z", "").empty());
}

TEST(ElementTest, RemoveChildren_RemovesMatchingElementsOnly) {
  Element e("x", "");
  e.add_child("a", "urn:one");
  e.add_text("t");
  e.add_child("a", "urn:two");
  e.add_child("b", "urn:one");
  e.remove_children("a", "urn:one");
  EXPECT_EQ(e.str(), "<x>t<a xmlns='urn:two'/><b xmlns='urn:one'/></x>");
  e.remove_children("a", "");
  EXPECT_EQ(e.str(), "<x>t<b xmlns='urn:one'/></x>");
  e.clear_children();
  EXPECT_EQ(e.str(), "<x/>");
}

TEST(ElementTest, Is_ComparesNameAndNamespace) {
  Element e("iq", std::string(kClient));
  EXPECT_TRUE(e.is("iq", kClient));
  EXPECT_FALSE(e.is("iq", kServer));
  EXPECT_FALSE(e.is("message", kClient));
  e.set_ns(std::string(kServer));
  EXPECT_TRUE(e.is("iq", kServer));
}

TEST(ElementTest, AddChild_ReturnsReferenceThatStaysValid) {
  Element e("x", "");
  Element& first = e.add_child("first", "");
  for (int i = 0; i < 100; ++i) e.add_child("n" + std::to_string(i), "");
  first.set_attr("still", "valid");
  EXPECT_EQ(e.child("first")->attr("still"), "valid");
}

// A stanza serialised once for many recipients: each recipient's head and the shared tail
// read back as the stanza addressed to that recipient, whatever its 'to' holds.
TEST(ElementTest, SharedStanza_HeadAndTailReadBackAsTheStanzaForEachRecipient) {
  Element m("message", "jabber:client");
  m.set_attr("from", "room@muc.example/n'ck")
      .set_attr("to", "ignored@example")
      .set_attr("type", "groupchat");
  m.add_child("body", "jabber:client").add_text("a < b & \"c\"");
  m.add_child("x", "urn:example:x").set_attr("k", "v");
  const SharedStanza shared = share_stanza(m, "jabber:client");
  EXPECT_EQ(shared.tail->find("ignored@example"), std::string::npos);
  for (const char* to : {"juliet@example.com/balcony", "o'brien@example.com/<&>"}) {
    auto back = parse_element(shared.head(to) + *shared.tail, "jabber:client");
    ASSERT_TRUE(back) << shared.head(to) + *shared.tail;
    Element want = m;
    want.set_attr("to", to);
    EXPECT_EQ(back->attr("to"), to);
    EXPECT_EQ(back->attr("from"), "room@muc.example/n'ck");
    EXPECT_EQ(back->child_text("body", "jabber:client"), "a < b & \"c\"");
    ASSERT_NE(back->child("x", "urn:example:x"), nullptr);
    EXPECT_EQ(serialize_stanza(*back, "jabber:client").size(),
              serialize_stanza(want, "jabber:client").size());
  }
}

}  // namespace
}  // namespace waddle::xml
