// The negotiation elements of server streams: exact bytes (as peers have always received
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

// The events of `bytes` sent on a jabber:server stream that declares db: (our own header).
std::vector<xml::StreamEvent> parse_on_stream(const std::string& bytes) {
  xml::StreamParser parser;
  std::vector<xml::StreamEvent> events;
  EXPECT_FALSE(parser.feed(stream_header("a.example", "b.example", "id1") + bytes, events));
  return events;
}

TEST(WireTest, StreamHeader_ExactBytes) {
  EXPECT_EQ(stream_header("a.example", "b.example", "abc123"),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
            "from='a.example' to='b.example' id='abc123' version='1.0'>");
}

TEST(WireTest, StreamHeader_LeavesOutEmptyValues) {
  EXPECT_EQ(stream_header("a.example", "", ""),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
            "from='a.example' version='1.0'>");
}

TEST(WireTest, StreamHeader_EscapesHostileValues) {
  const std::string h = stream_header(kHostile, "b.example", kHostile);
  EXPECT_EQ(h.find("<inject"), std::string::npos) << h;
  xml::StreamParser parser;
  std::vector<xml::StreamEvent> events;
  ASSERT_FALSE(parser.feed(h, events));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, xml::StreamEvent::Kind::kStreamOpen);
  EXPECT_EQ(events[0].element.attr("from"), kHostile);
  EXPECT_EQ(events[0].element.attr("id"), kHostile);
  EXPECT_FALSE(events[0].element.has_attr("evil"));
  EXPECT_EQ(events[0].default_ns, "jabber:server");
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
  EXPECT_EQ(proceed(), "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  EXPECT_EQ(sasl_external_auth("a.example"),
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>"
            "YS5leGFtcGxl</auth>");
  EXPECT_EQ(sasl_success(), "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  EXPECT_EQ(sasl_failure("not-authorized"),
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>");
}

TEST(WireTest, Features_ExactBytes) {
  xml::Element before_tls = features();
  before_tls.add_child(starttls_required());
  EXPECT_EQ(before_tls.str(""),
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
            "</starttls></stream:features>");
  xml::Element after_tls = features();
  after_tls.add_child(sasl_mechanism("EXTERNAL"));
  after_tls.add_child(dialback_with_errors());
  EXPECT_EQ(after_tls.str(""),
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            "<mechanism>EXTERNAL</mechanism></mechanisms>"
            "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
            "</stream:features>");
}

TEST(WireTest, Ping_ExactBytes) {
  EXPECT_EQ(ping("waddle-s2s-ping-1", "a.example", "b.example"),
            "<iq type='get' id='waddle-s2s-ping-1' from='a.example' to='b.example'>"
            "<ping xmlns='urn:xmpp:ping'/></iq>");
}

TEST(WireTest, OffersReaders_FindWhatFeaturesOffer) {
  xml::Element f = features();
  EXPECT_FALSE(offers_mechanism(f, "EXTERNAL"));
  EXPECT_FALSE(offers_dialback(f));
  f.add_child(sasl_mechanism("EXTERNAL"));
  EXPECT_TRUE(offers_mechanism(f, "EXTERNAL"));
  EXPECT_FALSE(offers_mechanism(f, "PLAIN"));
  xml::Element no_errors("dialback", "urn:xmpp:features:dialback");
  f.add_child(no_errors);
  EXPECT_TRUE(offers_dialback(f));
  EXPECT_FALSE(offers_dialback_errors(f));
  xml::Element g = features();
  g.add_child(dialback_with_errors());
  EXPECT_TRUE(offers_dialback_errors(g));
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
