// Tests for the push notification logic (XEP-0357): the enable and disable commands with their
// errors, the opt-in to bodies taken out of the publish-options, the notification's shape
// (compared as canonical XML), and the coalescing of notifications in flight.
#include "im/logic/push.h"

#include <gtest/gtest.h>

#include <string>

#include "core/namespaces.h"
#include "xml/parser.h"

namespace waddle::im::logic {
namespace {

using core::StanzaError;

xml::Element parse(const std::string& xml) {
  auto e = xml::parse_element(xml, ns::kClient);
  EXPECT_TRUE(e.has_value()) << xml;
  return e ? *e : xml::Element();
}

PushCommand command(const std::string& payload, const std::string& type = "set") {
  return parse_push_command(parse("<iq type='" + type + "' id='1'>" + payload + "</iq>"));
}

const std::string kOptions =
    "<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value>"
    "</field>";

std::string enable(const std::string& attrs, const std::string& form = {}) {
  return "<enable xmlns='urn:xmpp:push:0' " + attrs + ">" + form + "</enable>";
}

std::string form(const std::string& fields, const std::string& type = "submit") {
  return "<x xmlns='jabber:x:data' type='" + type + "'>" + fields + "</x>";
}

StanzaError error_of(const PushCommand& c) {
  const auto* e = std::get_if<PushCommandError>(&c);
  EXPECT_NE(e, nullptr);
  return e ? e->condition : StanzaError::kUndefinedCondition;
}

TEST(PushLogicTest, IsPushCommand_EnableAndDisableOnly) {
  EXPECT_TRUE(is_push_command(parse("<iq>" + enable("jid='p.example' node='n'") + "</iq>")));
  EXPECT_TRUE(is_push_command(parse("<iq><disable xmlns='urn:xmpp:push:0' jid='p'/></iq>")));
  EXPECT_FALSE(is_push_command(parse("<iq><enable xmlns='urn:xmpp:sm:3'/></iq>")));
  EXPECT_FALSE(is_push_command(parse("<iq><query xmlns='urn:xmpp:push:0'/></iq>")));
}

TEST(PushLogicTest, Enable_WithoutForm) {
  auto c = command(enable("jid='push.example' node='yxs32uqsflafdk3iuqo'"));
  const auto* e = std::get_if<PushEnable>(&c);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->reg, (storage::PushRegistration{"push.example", "yxs32uqsflafdk3iuqo", "", false}));
}

TEST(PushLogicTest, Enable_OptionsKeptOptInTakenOut) {
  auto c = command(enable(
      "jid='push.example' node='n'",
      form(kOptions + "<field var='secret'><value>eruio234vzxc2kla-91</value></field>"
                      "<field var='urn:waddle:push:0#include-body'><value>true</value></field>")));
  const auto* e = std::get_if<PushEnable>(&c);
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->reg.include_body);
  EXPECT_NE(e->reg.options.find("secret"), std::string::npos);
  EXPECT_NE(e->reg.options.find("publish-options"), std::string::npos);
  EXPECT_EQ(e->reg.options.find("include-body"), std::string::npos);
}

TEST(PushLogicTest, Enable_OnlyTheOptInLeft_NoOptionsForwarded) {
  auto c = command(enable(
      "jid='push.example' node='n'",
      form(kOptions + "<field var='urn:waddle:push:0#include-body'><value>1</value></field>")));
  const auto* e = std::get_if<PushEnable>(&c);
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->reg.include_body);
  EXPECT_EQ(e->reg.options, "");
  auto off = command(enable(
      "jid='push.example' node='n'",
      form(kOptions + "<field var='urn:waddle:push:0#include-body'><value>0</value></field>")));
  EXPECT_FALSE(std::get<PushEnable>(off).reg.include_body);
}

TEST(PushLogicTest, Enable_BadInput_XepErrors) {
  EXPECT_EQ(error_of(command(enable("jid='push.example'"))), StanzaError::kBadRequest);
  EXPECT_EQ(error_of(command(enable("node='n'"))), StanzaError::kBadRequest);
  EXPECT_EQ(error_of(command(enable("jid='a@@b' node='n'"))), StanzaError::kBadRequest);
  EXPECT_EQ(error_of(command(enable("jid='p.example' node='n'"), "get")), StanzaError::kBadRequest);
  EXPECT_EQ(error_of(command(enable("jid='p.example' node='n'", form(kOptions, "form")))),
            StanzaError::kBadRequest);
  EXPECT_EQ(error_of(command(enable("jid='p.example' node='n'",
                                    form("<field var='FORM_TYPE'><value>x</value></field>")))),
            StanzaError::kBadRequest);
  EXPECT_EQ(error_of(command(enable("jid='p.example' node='n'", form("")))),
            StanzaError::kBadRequest);
  EXPECT_EQ(error_of(command(enable("jid='p.example' node='" + std::string(2000, 'n') + "'"))),
            StanzaError::kNotAcceptable);
  std::string big;
  for (int i = 0; i < 200; ++i)
    big += "<field var='f" + std::to_string(i) + "'><value>0123456789</value></field>";
  EXPECT_EQ(error_of(command(enable("jid='p.example' node='n'", form(kOptions + big)))),
            StanzaError::kNotAcceptable);
}

TEST(PushLogicTest, Disable_WithOrWithoutNode) {
  auto all = command("<disable xmlns='urn:xmpp:push:0' jid='push.example'/>");
  ASSERT_NE(std::get_if<PushDisable>(&all), nullptr);
  EXPECT_EQ(std::get<PushDisable>(all).jid, "push.example");
  EXPECT_EQ(std::get<PushDisable>(all).node, "");
  auto one = command("<disable xmlns='urn:xmpp:push:0' jid='push.example' node='n'/>");
  EXPECT_EQ(std::get<PushDisable>(one).node, "n");
  EXPECT_EQ(error_of(command("<disable xmlns='urn:xmpp:push:0'/>")), StanzaError::kBadRequest);
}

TEST(PushLogicTest, Notification_SummaryAndOptions_BodyOnlyWhenAsked) {
  storage::PushRegistration reg{"app@push.example/x", "node1",
                                form(kOptions + "<field var='secret'><value>s</value></field>"),
                                true};
  PushSummary s{2, "bob@b.example", "hello"};
  auto iq = push_notification(reg, "alice@a.example", "push-1", s, false);
  const std::string fields =
      "<field var='FORM_TYPE'><value>urn:xmpp:push:summary</value></field>"
      "<field var='message-count'><value>2</value></field>"
      "<field var='last-message-sender'><value>bob@b.example</value></field>";
  const std::string head =
      "<iq type='set' from='alice@a.example' to='app@push.example/x' id='push-1'>"
      "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='node1'><item>"
      "<notification xmlns='urn:xmpp:push:0'><x xmlns='jabber:x:data' type='submit'>";
  const std::string tail = "</x></notification></item></publish><publish-options>" + reg.options +
                           "</publish-options></pubsub></iq>";
  EXPECT_EQ(iq.str(ns::kClient), parse(head + fields + tail).str(ns::kClient));
  auto with_body = push_notification(reg, "alice@a.example", "push-1", s, true);
  EXPECT_EQ(
      with_body.str(ns::kClient),
      parse(head + fields + "<field var='last-message-body'><value>hello</value></field>" + tail)
          .str(ns::kClient));
  reg.options.clear();
  auto bare = push_notification(reg, "alice@a.example", "push-1", s, false);
  EXPECT_EQ(bare.child("pubsub", ns::kPubsub)->child("publish-options", ns::kPubsub), nullptr);
}

TEST(PushLogicTest, Flights_OnePerRegistrationLaterOnesCoalesce) {
  PushFlights f;
  const auto a = push_key("alice@a", "p", "n1"), b = push_key("alice@a", "p", "n2");
  ASSERT_TRUE(f.due(a));
  f.started(a, "id1");
  EXPECT_FALSE(f.due(a));  // in flight: waits
  EXPECT_FALSE(f.due(a));  // and coalesces
  EXPECT_TRUE(f.due(b));   // another registration is independent
  f.started(b, "id2");
  EXPECT_EQ(f.size(), 2u);
  ASSERT_NE(f.key_of("id1"), nullptr);
  EXPECT_EQ(*f.key_of("id1"), a);
  auto done = f.finish("id1");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->key, a);
  EXPECT_TRUE(done->again);
  EXPECT_FALSE(f.finish("id1"));  // answered once only
  auto other = f.finish("id2");
  ASSERT_TRUE(other);
  EXPECT_FALSE(other->again);
  EXPECT_EQ(f.size(), 0u);
  EXPECT_TRUE(f.due(a));
}

}  // namespace
}  // namespace waddle::im::logic
