// The negotiation elements only server streams use: exact bytes (as peers have always received
// them), hostile values escaped so that they cannot add attributes or elements (checked by
// parsing the output back), and the readers of the peer's answers.
#include "s2s/wire.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "xml/parser.h"

namespace waddle::s2s::wire {
namespace {

// A value that would break out of an attribute or element if it were not escaped.
const std::string kHostile = "x' evil='1\"><inject/>&amp;\t\n\r";

// The events of `bytes` sent on a jabber:server stream that declares db: (the stream header
// comes first among them).
std::vector<xml::StreamEvent> parse_on_stream(const std::string& bytes) {
  const std::string header =
      "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
      "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
      "from='a.example' to='b.example' version='1.0'>";
  xml::StreamParser parser;
  std::vector<xml::StreamEvent> events;
  EXPECT_FALSE(parser.feed(header + bytes, events));
  return events;
}

TEST(WireTest, DialbackResult_ExactBytes) {
  EXPECT_EQ(db_result("a.example", "b.example", "0123abcd"),
            "<db:result from='a.example' to='b.example'>0123abcd</db:result>");
  EXPECT_EQ(db_result_answer("b.example", "a.example", true),
            "<db:result from='b.example' to='a.example' type='valid'/>");
  EXPECT_EQ(db_result_answer("b.example", "a.example", false),
            "<db:result from='b.example' to='a.example' type='invalid'/>");
}

TEST(WireTest, DialbackResultError_ExactBytes) {
  EXPECT_EQ(db_result_error("b.example", "a.example", "item-not-found"),
            "<db:result from='b.example' to='a.example' type='error'><error type='cancel'>"
            "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>");
  EXPECT_EQ(db_result_error("b.example", "a.example", "forbidden", "Not allowed by policy"),
            "<db:result from='b.example' to='a.example' type='error'><error type='cancel'>"
            "<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Not allowed by policy</text>"
            "</error></db:result>");
}

TEST(WireTest, DialbackVerify_ExactBytes) {
  EXPECT_EQ(db_verify("b.example", "a.example", "s1", "feed"),
            "<db:verify from='b.example' to='a.example' id='s1'>feed</db:verify>");
  EXPECT_EQ(db_verify_answer("a.example", "b.example", "s1", true),
            "<db:verify from='a.example' to='b.example' id='s1' type='valid'/>");
  EXPECT_EQ(db_verify_answer("a.example", "b.example", "s1", false),
            "<db:verify from='a.example' to='b.example' id='s1' type='invalid'/>");
}

// The receiving server echoes the peer's raw 'from' in its error answer: a hostile one must
// stay one attribute value, and the text one text node.
TEST(WireTest, DialbackElements_EscapeHostileValues) {
  const std::string bytes = db_result_error("b.example", kHostile, "bad-request", kHostile) +
                            db_verify(kHostile, "a.example", kHostile, kHostile) +
                            db_result("a.example", kHostile, kHostile);
  EXPECT_EQ(bytes.find("<inject"), std::string::npos) << bytes;
  auto events = parse_on_stream(bytes);
  ASSERT_EQ(events.size(), 4u);
  const xml::Element& error = events[1].element;
  EXPECT_TRUE(error.is("result", "jabber:server:dialback"));
  EXPECT_EQ(error.attr("to"), kHostile);
  EXPECT_FALSE(error.has_attr("evil"));
  EXPECT_EQ(error.child("error")->child_text("text"), kHostile);
  const xml::Element& verify = events[2].element;
  EXPECT_TRUE(verify.is("verify", "jabber:server:dialback"));
  EXPECT_EQ(verify.attr("from"), kHostile);
  EXPECT_EQ(verify.attr("id"), kHostile);
  EXPECT_EQ(verify.text(), kHostile);
  EXPECT_EQ(events[3].element.text(), kHostile);
  EXPECT_EQ(events[3].element.child_count(), 0u);
}

TEST(WireTest, TlsAndSasl_ExactBytes) {
  EXPECT_EQ(starttls(), "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  EXPECT_EQ(sasl_external_auth("a.example"),
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>"
            "YS5leGFtcGxl</auth>");
  EXPECT_EQ(sasl_success(), "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  EXPECT_EQ(sasl_failure("not-authorized"),
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>");
}

TEST(WireTest, DialbackFeature_ExactBytes) {
  EXPECT_EQ(dialback_with_errors().str("jabber:server"),
            "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>");
}

TEST(WireTest, Ping_ExactBytes) {
  EXPECT_EQ(ping("waddle-s2s-ping-1", "a.example", "b.example"),
            "<iq type='get' id='waddle-s2s-ping-1' from='a.example' to='b.example'>"
            "<ping xmlns='urn:xmpp:ping'/></iq>");
}

TEST(WireTest, OffersReaders_FindWhatFeaturesOffer) {
  auto events = parse_on_stream(
      "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
      "<mechanism>PLAIN</mechanism><mechanism>EXTERNAL</mechanism></mechanisms>"
      "<dialback xmlns='urn:xmpp:features:dialback'/></stream:features>"
      "<stream:features>" +
      dialback_with_errors().str("jabber:server") + "</stream:features><stream:features/>");
  ASSERT_EQ(events.size(), 4u);
  const xml::Element& both = events[1].element;
  EXPECT_TRUE(offers_mechanism(both, "EXTERNAL"));
  EXPECT_TRUE(offers_mechanism(both, "PLAIN"));
  EXPECT_FALSE(offers_mechanism(both, "SCRAM-SHA-1"));
  EXPECT_TRUE(offers_dialback(both));
  EXPECT_FALSE(offers_dialback_errors(both));
  EXPECT_TRUE(offers_dialback_errors(events[2].element));
  EXPECT_FALSE(offers_mechanism(events[3].element, "EXTERNAL"));
  EXPECT_FALSE(offers_dialback(events[3].element));
}

TEST(WireTest, DescribeStreamError_ConditionAndText) {
  auto e = xml::parse_element(
      "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
      "<host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
      "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>not here</text></stream:error>");
  ASSERT_TRUE(e);
  EXPECT_EQ(describe_stream_error(*e), "host-unknown: not here");
  auto bare = xml::parse_element("<stream:error xmlns:stream='http://etherx.jabber.org/streams'/>");
  ASSERT_TRUE(bare);
  EXPECT_EQ(describe_stream_error(*bare), "undefined-condition");
}

TEST(WireTest, DialbackRefusal_KeepsReasonAndDefinitiveness) {
  auto events = parse_on_stream(
      db_result_error("b.example", "a.example", "not-authorized", "no certificate") +
      db_result_error("b.example", "a.example", "remote-server-timeout") +
      db_result_answer("b.example", "a.example", false));
  ASSERT_EQ(events.size(), 4u);
  auto refused = dialback_refusal(events[1].element);
  EXPECT_EQ(refused.why, " (not-authorized: no certificate)");
  EXPECT_TRUE(refused.definitive);
  auto timeout = dialback_refusal(events[2].element);
  EXPECT_EQ(timeout.why, " (remote-server-timeout)");
  EXPECT_FALSE(timeout.definitive);
  auto invalid = dialback_refusal(events[3].element);
  EXPECT_EQ(invalid.why, "");
  EXPECT_FALSE(invalid.definitive);
  EXPECT_EQ(dialback_answer(events[2].element), "error: remote-server-timeout");
  EXPECT_EQ(dialback_answer(events[3].element), "invalid");
}

}  // namespace
}  // namespace waddle::s2s::wire
