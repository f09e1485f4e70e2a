// XEP-0215 services and coturn credentials, XEP-0157 contact form.
#include "im/logic/extdisco.h"

#include <gtest/gtest.h>

namespace waddle::im::logic {
namespace {

TEST(ExtdiscoTest, TurnPasswordIsCoturnsHmacSha1) {
  // RFC 2104 test vector of HMAC-SHA1, in base64.
  EXPECT_EQ(turn_password("key", "The quick brown fox jumps over the lazy dog"),
            "3nybhbi3iqa8ino29wqQcBydtNk=");
}

TEST(ExtdiscoTest, ServicesWithCredentials_FilteredByType) {
  core::TurnConfig turn;
  turn.host = "turn.a.test";
  turn.secret = "s";
  turn.ttl = std::chrono::hours(1);
  const auto all = external_services(turn, "", "alice@a.test", 1000);
  ASSERT_EQ(all.children().size(), 2u);
  const auto* stun = all.children()[0];
  EXPECT_EQ(stun->attr("type"), "stun");
  EXPECT_FALSE(stun->has_attr("username"));
  const auto* t = all.children()[1];
  EXPECT_EQ(t->attr("type"), "turn");
  EXPECT_EQ(t->attr("username"), "4600:alice@a.test");
  EXPECT_EQ(t->attr("password"), turn_password("s", "4600:alice@a.test"));
  EXPECT_EQ(t->attr("expires"), "1970-01-01T01:16:40Z");
  EXPECT_EQ(external_services(turn, "stun", "alice@a.test", 1000).children().size(), 1u);
  EXPECT_TRUE(external_credentials(turn, "turn.a.test", "turn", "alice@a.test", 1000));
  EXPECT_FALSE(external_credentials(turn, "turn.a.test", "stun", "alice@a.test", 1000));
  EXPECT_FALSE(external_credentials(turn, "other", "turn", "alice@a.test", 1000));
  turn.secret.clear();  // STUN only
  EXPECT_EQ(external_services(turn, "", "alice@a.test", 1000).children().size(), 1u);
  turn.host.clear();  // nothing
  EXPECT_TRUE(external_services(turn, "", "alice@a.test", 1000).children().empty());
}

TEST(ExtdiscoTest, ContactFormOnlyWithAddresses) {
  core::ContactConfig c;
  EXPECT_FALSE(contact_form(c));
  c.security = {"mailto:sec@a.test"};
  const auto form = contact_form(c);
  ASSERT_TRUE(form);
  EXPECT_EQ(form->str(),
            "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
            "<value>http://jabber.org/network/serverinfo</value></field>"
            "<field var='security-addresses'><value>mailto:sec@a.test</value></field></x>");
}

}  // namespace
}  // namespace waddle::im::logic
