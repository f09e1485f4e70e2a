// PEP requests (XEP-0060 as XEP-0163 uses it): what each IQ asks, and the XEP's error for
// what is malformed or not offered.
#include "im/logic/pep_request.h"

#include <gtest/gtest.h>

#include "parsed_element.h"

namespace waddle::im::logic {
namespace {

constexpr const char* kPubsub = "http://jabber.org/protocol/pubsub";
constexpr const char* kOwner = "http://jabber.org/protocol/pubsub#owner";

xml::Element iq(const std::string& type, const std::string& ns, const std::string& body) {
  return testing::parsed_element("jabber:client", "<iq type='" + type +
                                                      "' id='1' from='juliet@example.org/balcony'>"
                                                      "<pubsub xmlns='" +
                                                      ns + "'>" + body + "</pubsub></iq>");
}

PepRequestError error_of(const PepRequest& r) {
  EXPECT_TRUE(std::holds_alternative<PepRequestError>(r));
  return std::holds_alternative<PepRequestError>(r) ? std::get<PepRequestError>(r)
                                                    : PepRequestError{};
}

TEST(PepRequestTest, PublishWithOptions) {
  const auto r =
      parse_pep_request(iq("set", kPubsub,
                           "<publish node='urn:xmpp:avatar:metadata'><item id='abc'><metadata "
                           "xmlns='urn:xmpp:avatar:metadata'/></item></publish><publish-options><x "
                           "xmlns='jabber:x:data' type='submit'/></publish-options>"),
                        1000);
  ASSERT_TRUE(std::holds_alternative<PepPublish>(r));
  const auto& p = std::get<PepPublish>(r);
  EXPECT_EQ(p.node, "urn:xmpp:avatar:metadata");
  EXPECT_EQ(p.item_id, "abc");
  EXPECT_TRUE(p.payload.is("metadata", "urn:xmpp:avatar:metadata"));
  EXPECT_TRUE(p.options.has_value());
  EXPECT_TRUE(iq("get", kPubsub, "").child("pubsub", kPubsub) != nullptr);
  EXPECT_TRUE(is_pep_request(iq("set", kOwner, "<delete node='n'/>")));
}

TEST(PepRequestTest, BadPublishesGetTheirConditions) {
  struct Case {
    std::string body;
    core::StanzaError condition;
    std::string pubsub;
  };
  for (const auto& c : std::vector<Case>{
           {"<publish><item><x xmlns='urn:x'/></item></publish>", core::StanzaError::kBadRequest,
            "nodeid-required"},
           {"<publish node='n'/>", core::StanzaError::kBadRequest, "item-required"},
           {"<publish node='n'><item/></publish>", core::StanzaError::kBadRequest,
            "invalid-payload"},
           {"<publish node='n'><item><a xmlns='urn:x'/><b xmlns='urn:x'/></item></publish>",
            core::StanzaError::kBadRequest, "invalid-payload"},
           {"<publish node='n'><item><a xmlns='urn:x'>" + std::string(200, 'x') +
                "</a></item></publish>",
            core::StanzaError::kNotAcceptable, "payload-too-big"},
       }) {
    const auto e = error_of(parse_pep_request(iq("set", kPubsub, c.body), 100));
    EXPECT_EQ(e.condition, c.condition) << c.body;
    EXPECT_EQ(e.pubsub_condition, c.pubsub) << c.body;
  }
}

TEST(PepRequestTest, ItemsRetractAndOwnerOperations) {
  auto r = parse_pep_request(
      iq("get", kPubsub, "<items node='n' max_items='2'><item id='a'/><item id='b'/></items>"),
      100);
  ASSERT_TRUE(std::holds_alternative<PepItems>(r));
  EXPECT_EQ(std::get<PepItems>(r).ids, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(std::get<PepItems>(r).max, 2u);
  EXPECT_EQ(error_of(parse_pep_request(iq("get", kPubsub, "<items node='n' max_items='x'/>"), 1))
                .condition,
            core::StanzaError::kBadRequest);
  r = parse_pep_request(iq("set", kPubsub, "<retract node='n' notify='1'><item id='a'/></retract>"),
                        100);
  ASSERT_TRUE(std::holds_alternative<PepRetract>(r));
  EXPECT_TRUE(std::get<PepRetract>(r).notify);
  EXPECT_EQ(
      error_of(parse_pep_request(iq("set", kPubsub, "<retract node='n'/>"), 1)).pubsub_condition,
      "item-required");
  EXPECT_TRUE(std::holds_alternative<PepDelete>(
      parse_pep_request(iq("set", kOwner, "<delete node='n'/>"), 1)));
  EXPECT_TRUE(std::holds_alternative<PepPurge>(
      parse_pep_request(iq("set", kOwner, "<purge node='n'/>"), 1)));
  r = parse_pep_request(iq("get", kOwner, "<configure node='n'/>"), 1);
  ASSERT_TRUE(std::holds_alternative<PepConfigure>(r));
  EXPECT_FALSE(std::get<PepConfigure>(r).form.has_value());
  r = parse_pep_request(
      iq("set", kOwner, "<configure node='n'><x xmlns='jabber:x:data' type='submit'/></configure>"),
      1);
  ASSERT_TRUE(std::holds_alternative<PepConfigure>(r));
  EXPECT_TRUE(std::get<PepConfigure>(r).form.has_value());
  r = parse_pep_request(iq("set", kPubsub, "<create node='n'/><configure/>"), 1);
  ASSERT_TRUE(std::holds_alternative<PepCreate>(r));
}

// What PEP does not offer is feature-not-implemented with the pubsub feature named.
TEST(PepRequestTest, UnsupportedOperationsNameTheirFeature) {
  const auto e = error_of(
      parse_pep_request(iq("set", kPubsub, "<subscribe node='n' jid='romeo@example.net'/>"), 1));
  EXPECT_EQ(e.condition, core::StanzaError::kFeatureNotImplemented);
  EXPECT_EQ(e.pubsub_condition, "unsupported");
  EXPECT_EQ(e.feature, "subscribe");
  const xml::Element request = iq("set", kPubsub, "<subscribe node='n' jid='romeo@example.net'/>");
  const xml::Element reply = pep_error_reply(request, e);
  EXPECT_EQ(reply.attr("type"), "error");
  const auto* err = reply.child("error");
  ASSERT_NE(err, nullptr);
  const auto* u = err->child("unsupported", "http://jabber.org/protocol/pubsub#errors");
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->attr("feature"), "subscribe");
  EXPECT_NE(err->child("feature-not-implemented"), nullptr);
}

}  // namespace
}  // namespace waddle::im::logic
