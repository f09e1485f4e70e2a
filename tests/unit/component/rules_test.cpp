// External components (XEP-0114): the handshake digest, what a component may send, and its
// stanzas in the server's namespace.
#include "component/rules.h"

#include <gtest/gtest.h>

#include "parsed_element.h"

namespace waddle::component {
namespace {

namespace ns = waddle::ns;

// The component's stanza as the stream parser hands it over.
xml::Element parsed(const std::string& stanza) {
  return testing::parsed_element("jabber:component:accept", stanza);
}

// XEP-0114 §3: lowercase hex SHA-1 of the stream id followed by the secret (the expected
// value computed apart, with Python's hashlib.sha1(b"3BF96D32sometext")).
TEST(ComponentRulesTest, HandshakeDigestIsHexSha1OfIdAndSecret) {
  EXPECT_EQ(handshake_digest("3BF96D32", "sometext"), "99d2642e709180aa6d63d12dd69fd2f539fe01f9");
  EXPECT_TRUE(
      handshake_matches("99d2642e709180aa6d63d12dd69fd2f539fe01f9", "3BF96D32", "sometext"));
  EXPECT_TRUE(
      handshake_matches("99D2642E709180AA6D63D12DD69FD2F539FE01F9", "3BF96D32", "sometext"));
  EXPECT_FALSE(
      handshake_matches("99d2642e709180aa6d63d12dd69fd2f539fe01f8", "3BF96D32", "sometext"));
  EXPECT_FALSE(handshake_matches("99d2642e", "3BF96D32", "sometext"));
  EXPECT_FALSE(handshake_matches("", "3BF96D32", "sometext"));
  EXPECT_FALSE(handshake_matches(handshake_digest("3BF96D32", "other"), "3BF96D32", "sometext"));
}

TEST(ComponentRulesTest, StanzasFromTheComponentsDomainAreRouted) {
  for (const char* s : {"<message from='gw.example.org' to='juliet@example.org'/>",
                        "<presence from='romeo@gw.example.org/x' to='juliet@example.org'/>",
                        "<iq type='get' id='1' from='gw.example.org' to='example.org'/>"}) {
    EXPECT_EQ(check(parsed(s), "gw.example.org").kind, Verdict::Kind::kRoute) << s;
  }
}

TEST(ComponentRulesTest, AnotherDomainClosesTheStreamWithInvalidFrom) {
  for (const char* s : {"<message from='juliet@example.org' to='romeo@example.net'/>",
                        "<message from='sub.gw.example.org' to='romeo@example.net'/>",
                        "<message from='@@' to='romeo@example.net'/>"}) {
    const Verdict v = check(parsed(s), "gw.example.org");
    EXPECT_EQ(v.kind, Verdict::Kind::kClose) << s;
    EXPECT_EQ(v.stream_error, core::StreamError::kInvalidFrom) << s;
  }
}

TEST(ComponentRulesTest, MissingAddressesAreAnsweredWithBadRequest) {
  for (const char* s : {"<message to='juliet@example.org'/>", "<message from='gw.example.org'/>"}) {
    const Verdict v = check(parsed(s), "gw.example.org");
    EXPECT_EQ(v.kind, Verdict::Kind::kAnswer) << s;
    EXPECT_EQ(v.error, core::StanzaError::kBadRequest) << s;
  }
}

TEST(ComponentRulesTest, OtherElementsCloseTheStreamWithUnsupportedStanzaType) {
  for (const char* s :
       {"<handshake>abc</handshake>", "<foo xmlns='urn:example' from='gw.example.org'/>",
        "<message xmlns='jabber:client' from='gw.example.org' to='a@b'/>"}) {
    const Verdict v = check(parsed(s), "gw.example.org");
    EXPECT_EQ(v.kind, Verdict::Kind::kClose) << s;
    EXPECT_EQ(v.stream_error, core::StreamError::kUnsupportedStanzaType) << s;
  }
}

// The stanza and what inherited the component namespace move to jabber:client; payloads in
// their own namespaces keep them.
TEST(ComponentRulesTest, StanzasMoveToTheServersNamespace) {
  const xml::Element in = parsed(
      "<message from='gw.example.org' to='juliet@example.org'><body>hi &amp; bye</body>"
      "<x xmlns='urn:example'><y/></x></message>");
  const xml::Element out = to_server_namespace(in);
  EXPECT_EQ(out.ns(), ns::kClient);
  ASSERT_NE(out.child("body", ns::kClient), nullptr);
  EXPECT_EQ(out.child_text("body", ns::kClient), "hi & bye");
  ASSERT_NE(out.child("x", "urn:example"), nullptr);
  EXPECT_NE(out.child("x", "urn:example")->child("y", "urn:example"), nullptr);
  EXPECT_EQ(out.attr("to"), "juliet@example.org");
  // Written back to a component: no namespace on the stanza or its body.
  EXPECT_EQ(xml::serialize_stanza(out, ns::kComponentAccept),
            "<message from='gw.example.org' to='juliet@example.org'><body>hi &amp; bye</body>"
            "<x xmlns='urn:example'><y/></x></message>");
}

}  // namespace
}  // namespace waddle::component
