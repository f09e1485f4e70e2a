// Stanza helpers: error replies (RFC 6120 §8.3), bounce rules (§8.3.1), stream errors (§4.9)
// and the names of every condition (§4.9.3, §8.3.3).
#include "xml/stanza.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "xml/parser.h"

namespace waddle::xml {
namespace {

using core::StanzaError;
using core::StreamError;

// Canonical form for golden comparisons: attributes sorted by name, namespaces written in
// full on every element, text escaped.
std::string canonical(const Element& e) {
  std::string out = "<{" + e.ns() + "}" + e.name();
  std::vector<Attribute> attrs = e.attrs();
  std::sort(attrs.begin(), attrs.end(),
            [](const Attribute& a, const Attribute& b) { return a.name < b.name; });
  for (const auto& a : attrs) {
    out += " " + a.name + "='";
    escape(out, a.value);
    out += "'";
  }
  out += ">";
  for (const auto& n : e.nodes()) {
    if (n.element)
      out += canonical(*n.element);
    else
      escape(out, n.text);
  }
  return out + "</" + e.name() + ">";
}

std::string canonical(std::string_view xml) {
  auto e = parse_element(xml);
  EXPECT_TRUE(e) << xml;
  return e ? canonical(*e) : std::string("<unparsable>");
}

Element parse(std::string_view xml) {
  auto e = parse_element(xml);
  EXPECT_TRUE(e) << xml;
  return e ? std::move(*e) : Element();
}

// RFC 6120 §8.3.3, written out independently of core/errors.cpp.
struct ConditionRow {
  StanzaError condition;
  const char* name;
  const char* type;
};

const std::vector<ConditionRow>& stanza_conditions() {
  static const std::vector<ConditionRow> rows = {
      {StanzaError::kBadRequest, "bad-request", "modify"},
      {StanzaError::kConflict, "conflict", "cancel"},
      {StanzaError::kFeatureNotImplemented, "feature-not-implemented", "cancel"},
      {StanzaError::kForbidden, "forbidden", "auth"},
      {StanzaError::kGone, "gone", "cancel"},
      {StanzaError::kInternalServerError, "internal-server-error", "cancel"},
      {StanzaError::kItemNotFound, "item-not-found", "cancel"},
      {StanzaError::kJidMalformed, "jid-malformed", "modify"},
      {StanzaError::kNotAcceptable, "not-acceptable", "modify"},
      {StanzaError::kNotAllowed, "not-allowed", "cancel"},
      {StanzaError::kNotAuthorized, "not-authorized", "auth"},
      {StanzaError::kPolicyViolation, "policy-violation", "modify"},
      {StanzaError::kRecipientUnavailable, "recipient-unavailable", "wait"},
      {StanzaError::kRedirect, "redirect", "modify"},
      {StanzaError::kRegistrationRequired, "registration-required", "auth"},
      {StanzaError::kRemoteServerNotFound, "remote-server-not-found", "cancel"},
      {StanzaError::kRemoteServerTimeout, "remote-server-timeout", "wait"},
      {StanzaError::kResourceConstraint, "resource-constraint", "wait"},
      {StanzaError::kServiceUnavailable, "service-unavailable", "cancel"},
      {StanzaError::kSubscriptionRequired, "subscription-required", "auth"},
      {StanzaError::kUndefinedCondition, "undefined-condition", "cancel"},
      {StanzaError::kUnexpectedRequest, "unexpected-request", "wait"},
  };
  return rows;
}

const std::vector<std::pair<StreamError, const char*>>& stream_conditions() {
  static const std::vector<std::pair<StreamError, const char*>> rows = {
      {StreamError::kBadFormat, "bad-format"},
      {StreamError::kBadNamespacePrefix, "bad-namespace-prefix"},
      {StreamError::kConflict, "conflict"},
      {StreamError::kConnectionTimeout, "connection-timeout"},
      {StreamError::kHostGone, "host-gone"},
      {StreamError::kHostUnknown, "host-unknown"},
      {StreamError::kImproperAddressing, "improper-addressing"},
      {StreamError::kInternalServerError, "internal-server-error"},
      {StreamError::kInvalidFrom, "invalid-from"},
      {StreamError::kInvalidNamespace, "invalid-namespace"},
      {StreamError::kInvalidXml, "invalid-xml"},
      {StreamError::kNotAuthorized, "not-authorized"},
      {StreamError::kNotWellFormed, "not-well-formed"},
      {StreamError::kPolicyViolation, "policy-violation"},
      {StreamError::kRemoteConnectionFailed, "remote-connection-failed"},
      {StreamError::kReset, "reset"},
      {StreamError::kResourceConstraint, "resource-constraint"},
      {StreamError::kRestrictedXml, "restricted-xml"},
      {StreamError::kSeeOtherHost, "see-other-host"},
      {StreamError::kSystemShutdown, "system-shutdown"},
      {StreamError::kUndefinedCondition, "undefined-condition"},
      {StreamError::kUnsupportedEncoding, "unsupported-encoding"},
      {StreamError::kUnsupportedFeature, "unsupported-feature"},
      {StreamError::kUnsupportedStanzaType, "unsupported-stanza-type"},
      {StreamError::kUnsupportedVersion, "unsupported-version"},
  };
  return rows;
}

// --- make_error_reply ---

TEST(MakeErrorReplyTest, Message_SwapsAddressesAndKeepsPayload) {
  Element m = parse(
      "<message xmlns='jabber:client' from='romeo@example.net/orchard' "
      "to='juliet@example.com' id='m1' type='chat'><body>hi</body>"
      "<thread>t1</thread></message>");
  Element reply = make_error_reply(m, StanzaError::kServiceUnavailable);
  EXPECT_EQ(canonical(reply),
            canonical("<message xmlns='jabber:client' to='romeo@example.net/orchard' "
                      "from='juliet@example.com' id='m1' type='error'><body>hi</body>"
                      "<thread>t1</thread><error type='cancel'><service-unavailable "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"));
}

TEST(MakeErrorReplyTest, Presence_RemoteServerTimeoutIsWait) {
  Element p =
      parse("<presence xmlns='jabber:server' from='a@x.test' to='b@y.test' type='subscribe'/>");
  Element reply = make_error_reply(p, StanzaError::kRemoteServerTimeout);
  EXPECT_EQ(canonical(reply),
            canonical("<presence xmlns='jabber:server' to='a@x.test' from='b@y.test' "
                      "type='error'><error type='wait'><remote-server-timeout "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"));
}

TEST(MakeErrorReplyTest, Iq_KeepsOnlyFirstPayloadAndAddsText) {
  Element iq = parse(
      "<iq xmlns='jabber:client' from='a@x.test/r' to='x.test' id='q1' type='get'>"
      "<query xmlns='jabber:iq:version'/><extra xmlns='urn:extra'/></iq>");
  Element reply = make_error_reply(iq, StanzaError::kFeatureNotImplemented, "no <version> here");
  EXPECT_EQ(canonical(reply),
            canonical("<iq xmlns='jabber:client' to='a@x.test/r' from='x.test' id='q1' "
                      "type='error'><query xmlns='jabber:iq:version'/><error type='cancel'>"
                      "<feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                      "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>"
                      "no &lt;version&gt; here</text></error></iq>"));
}

TEST(MakeErrorReplyTest, WithoutText_HasNoTextElement) {
  Element iq = parse("<iq xmlns='jabber:client' id='q1' type='set'/>");
  Element reply = make_error_reply(iq, StanzaError::kBadRequest);
  const Element* err = reply.child("error");
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->child("text"), nullptr);
  EXPECT_EQ(err->child_count(), 1u);
  // No addresses on the original: none invented on the reply.
  EXPECT_FALSE(reply.has_attr("to"));
  EXPECT_FALSE(reply.has_attr("from"));
  EXPECT_EQ(reply.attr("id"), "q1");
}

TEST(MakeErrorReplyTest, ErrorElement_InStanzaNamespaceWithConditionInStanzasNamespace) {
  Element m = parse("<message xmlns='jabber:client' from='a@b' to='c@d'/>");
  Element reply = make_error_reply(m, StanzaError::kItemNotFound, "gone away");
  const Element* err = reply.child("error", "jabber:client");
  ASSERT_NE(err, nullptr);
  EXPECT_NE(err->child("item-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas"), nullptr);
  EXPECT_EQ(err->child_text("text", "urn:ietf:params:xml:ns:xmpp-stanzas"), "gone away");
  EXPECT_EQ(err->child("text")->attr("xml:lang"), "en");
  // Serializes without a stray xmlns on <error> inside the stanza.
  EXPECT_NE(serialize_stanza(reply, "jabber:client").find("<error type='cancel'>"),
            std::string::npos);
}

TEST(MakeErrorReplyTest, MessageWithErrorChild_DoesNotDuplicateError) {
  Element m = parse(
      "<message xmlns='jabber:client' from='a@b' to='c@d'><body>x</body>"
      "<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
      "</error></message>");
  Element reply = make_error_reply(m, StanzaError::kNotAllowed);
  EXPECT_EQ(reply.children("error", "").size(), 1u);
  EXPECT_EQ(stanza_error_condition(reply), StanzaError::kNotAllowed);
  EXPECT_EQ(reply.child_text("body"), "x");
}

TEST(MakeErrorReplyTest, ReplyRoundTripsThroughParser) {
  Element m = parse(
      "<message xmlns='jabber:client' from='a@b/r' to='c@d' id='x'><body>&amp;</body></message>");
  Element reply = make_error_reply(m, StanzaError::kRecipientUnavailable, "later");
  auto back = parse_element(reply.str());
  ASSERT_TRUE(back);
  EXPECT_EQ(canonical(*back), canonical(reply));
}

class ErrorTypeTest : public ::testing::TestWithParam<ConditionRow> {};

TEST_P(ErrorTypeTest, ErrorReply_HasRfcErrorTypeAndCondition) {
  const ConditionRow& row = GetParam();
  Element iq = parse("<iq xmlns='jabber:client' from='a@b/c' to='d' id='1' type='get'/>");
  Element reply = make_error_reply(iq, row.condition);
  const Element* err = reply.child("error");
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->attr("type"), row.type);
  ASSERT_NE(err->first_child(), nullptr);
  EXPECT_TRUE(err->first_child()->is(row.name, ns::kStanzas));
  EXPECT_EQ(core::to_string(core::default_type(row.condition)), row.type);
  EXPECT_EQ(stanza_error_condition(reply), row.condition);
}

TEST_P(ErrorTypeTest, ConditionName_RoundTrips) {
  const ConditionRow& row = GetParam();
  EXPECT_EQ(core::to_string(row.condition), row.name);
  EXPECT_EQ(core::stanza_error_from_string(row.name), row.condition);
}

INSTANTIATE_TEST_SUITE_P(AllStanzaConditions, ErrorTypeTest,
                         ::testing::ValuesIn(stanza_conditions()), [](const auto& info) {
                           std::string n = info.param.name;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(ConditionTableTest, Table_CoversEveryStanzaCondition) {
  EXPECT_EQ(stanza_conditions().size(),
            static_cast<std::size_t>(StanzaError::kUnexpectedRequest) + 1);
}

// --- may_bounce ---

TEST(MayBounceTest, ErrorStanzas_NeverBounce) {
  EXPECT_FALSE(may_bounce(parse("<message xmlns='jabber:client' type='error'/>")));
  EXPECT_FALSE(may_bounce(parse("<presence xmlns='jabber:client' type='error'/>")));
  EXPECT_FALSE(may_bounce(parse("<iq xmlns='jabber:server' type='error' id='1'/>")));
}

TEST(MayBounceTest, IqResult_NeverBounces) {
  EXPECT_FALSE(may_bounce(parse("<iq xmlns='jabber:client' type='result' id='1'/>")));
}

TEST(MayBounceTest, OtherStanzas_MayBounce) {
  EXPECT_TRUE(may_bounce(parse("<iq xmlns='jabber:client' type='get' id='1'/>")));
  EXPECT_TRUE(may_bounce(parse("<iq xmlns='jabber:client' type='set' id='1'/>")));
  EXPECT_TRUE(may_bounce(parse("<message xmlns='jabber:client' type='chat'/>")));
  EXPECT_TRUE(may_bounce(parse("<message xmlns='jabber:client'/>")));
  EXPECT_TRUE(may_bounce(parse("<presence xmlns='jabber:client' type='subscribe'/>")));
  EXPECT_TRUE(may_bounce(parse("<presence xmlns='jabber:client'/>")));
}

TEST(MayBounceTest, ErrorReply_NeverBouncesAgain) {
  Element m = parse("<message xmlns='jabber:client' from='a@b' to='c@d'/>");
  EXPECT_TRUE(may_bounce(m));
  EXPECT_FALSE(may_bounce(make_error_reply(m, StanzaError::kServiceUnavailable)));
}

// --- stanza_error_condition ---

TEST(StanzaErrorConditionTest, ReadsConditionSkippingText) {
  Element m = parse(
      "<message xmlns='jabber:client' type='error'><error type='cancel'>"
      "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>first</text>"
      "<gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>xmpp:new@example.net</gone>"
      "<app-specific xmlns='urn:app'/></error></message>");
  EXPECT_EQ(stanza_error_condition(m), StanzaError::kGone);
}

TEST(StanzaErrorConditionTest, NoErrorOrUnknownCondition_IsNullopt) {
  EXPECT_EQ(stanza_error_condition(parse("<message xmlns='jabber:client'/>")), std::nullopt);
  EXPECT_EQ(stanza_error_condition(parse("<message xmlns='jabber:client' type='error'>"
                                         "<error type='cancel'/></message>")),
            std::nullopt);
  EXPECT_EQ(stanza_error_condition(
                parse("<message xmlns='jabber:client' type='error'><error type='cancel'>"
                      "<made-up xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")),
            std::nullopt);
  // A condition name outside the stanzas namespace is not a condition.
  EXPECT_EQ(stanza_error_condition(parse("<message xmlns='jabber:client' type='error'>"
                                         "<error type='cancel'><gone xmlns='urn:other'/>"
                                         "</error></message>")),
            std::nullopt);
}

// --- stanza kinds and IQ results ---

TEST(StanzaKindTest, ClassifiesByNameAndContentNamespace) {
  EXPECT_EQ(stanza_kind(Element("message", "jabber:client")), StanzaKind::kMessage);
  EXPECT_EQ(stanza_kind(Element("presence", "jabber:server")), StanzaKind::kPresence);
  EXPECT_EQ(stanza_kind(Element("iq", "jabber:client")), StanzaKind::kIq);
  EXPECT_EQ(stanza_kind(Element("iq", "urn:other")), StanzaKind::kOther);
  EXPECT_EQ(stanza_kind(Element("features", "jabber:client")), StanzaKind::kOther);
  EXPECT_FALSE(is_stanza(Element("starttls", "urn:ietf:params:xml:ns:xmpp-tls")));
  EXPECT_TRUE(is_stanza(Element("message", "jabber:server")));
}

TEST(MakeIqResultTest, SwapsAddressesKeepsIdAndHasNoPayload) {
  Element iq = parse(
      "<iq xmlns='jabber:server' from='a@x/r' to='y' id='p1' type='get'>"
      "<ping xmlns='urn:xmpp:ping'/></iq>");
  EXPECT_EQ(canonical(make_iq_result(iq)),
            canonical("<iq xmlns='jabber:server' to='a@x/r' from='y' id='p1' type='result'/>"));
}

// --- stream errors ---

TEST(StreamErrorXmlTest, WithoutText_ExactBytes) {
  EXPECT_EQ(stream_error_xml(StreamError::kPolicyViolation),
            "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            "</stream:error>");
}

TEST(StreamErrorXmlTest, WithText_ExactBytesAndEscaped) {
  EXPECT_EQ(stream_error_xml(StreamError::kHostUnknown, "no <such> host & 'that'"),
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>"
            "no &lt;such&gt; host &amp; &apos;that&apos;</text></stream:error>");
}

TEST(StreamErrorXmlTest, ParsesInsideAStream) {
  StreamParser p;
  std::vector<StreamEvent> events;
  ASSERT_FALSE(
      p.feed("<stream:stream xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams'>",
             events));
  ASSERT_FALSE(p.feed(stream_error_xml(StreamError::kRestrictedXml, "no comments"), events));
  ASSERT_EQ(events.size(), 2u);
  const Element& e = events[1].element;
  EXPECT_TRUE(e.is("error", "http://etherx.jabber.org/streams"));
  EXPECT_NE(e.child("restricted-xml", ns::kStreams), nullptr);
  EXPECT_EQ(e.child_text("text", ns::kStreams), "no comments");
}

class StreamConditionTest : public ::testing::TestWithParam<std::pair<StreamError, const char*>> {};

TEST_P(StreamConditionTest, Name_RoundTrips) {
  const auto& [condition, name] = GetParam();
  EXPECT_EQ(core::to_string(condition), name);
  EXPECT_EQ(core::stream_error_from_string(name), condition);
  EXPECT_EQ(stream_error_xml(condition),
            "<stream:error><" + std::string(name) +
                " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
}

INSTANTIATE_TEST_SUITE_P(AllStreamConditions, StreamConditionTest,
                         ::testing::ValuesIn(stream_conditions()), [](const auto& info) {
                           std::string n = info.param.second;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(ConditionTableTest, Table_CoversEveryStreamCondition) {
  EXPECT_EQ(stream_conditions().size(),
            static_cast<std::size_t>(StreamError::kUnsupportedVersion) + 1);
}

TEST(ConditionNamesTest, UnknownNames_AreNullopt) {
  EXPECT_EQ(core::stream_error_from_string(""), std::nullopt);
  EXPECT_EQ(core::stream_error_from_string("Not-Well-Formed"), std::nullopt);
  EXPECT_EQ(core::stream_error_from_string("xml-not-well-formed"), std::nullopt);
  EXPECT_EQ(core::stanza_error_from_string(""), std::nullopt);
  EXPECT_EQ(core::stanza_error_from_string("service-unavailable "), std::nullopt);
  EXPECT_EQ(core::stanza_error_from_string("payment-required"), std::nullopt);  // RFC 3920 only
}

TEST(ConditionNamesTest, ErrorTypeNames) {
  EXPECT_EQ(core::to_string(core::StanzaErrorType::kAuth), "auth");
  EXPECT_EQ(core::to_string(core::StanzaErrorType::kCancel), "cancel");
  EXPECT_EQ(core::to_string(core::StanzaErrorType::kContinue), "continue");
  EXPECT_EQ(core::to_string(core::StanzaErrorType::kModify), "modify");
  EXPECT_EQ(core::to_string(core::StanzaErrorType::kWait), "wait");
}

}  // namespace
}  // namespace waddle::xml
