// Entity capabilities (XEP-0115): the verification string, checked against the XEP's own
// examples (§5.2 simple, §5.3 with an extended form) and the cases §5.4 refuses.
#include "im/logic/caps.h"

#include <gtest/gtest.h>

#include "parsed_element.h"

namespace waddle::im {
namespace {

xml::Element query(const std::string& children) {
  return testing::parsed_element(
      "jabber:client",
      "<query xmlns='http://jabber.org/protocol/disco#info'>" + children + "</query>");
}

TEST(CapsTest, SimpleExampleOfTheXep) {
  EXPECT_EQ(caps_ver(query("<identity category='client' name='Exodus 0.9.1' type='pc'/>"
                           "<feature var='http://jabber.org/protocol/caps'/>"
                           "<feature var='http://jabber.org/protocol/disco#info'/>"
                           "<feature var='http://jabber.org/protocol/disco#items'/>"
                           "<feature var='http://jabber.org/protocol/muc'/>")),
            "QgayPKawpkPSDYmwT/WM94uAlu0=");
}

TEST(CapsTest, ComplexExampleOfTheXep) {
  EXPECT_EQ(
      caps_ver(query(
          "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"
          "<identity xml:lang='el' category='client' name='\xce\xa8 0.11' type='pc'/>"
          "<feature var='http://jabber.org/protocol/caps'/>"
          "<feature var='http://jabber.org/protocol/disco#info'/>"
          "<feature var='http://jabber.org/protocol/disco#items'/>"
          "<feature var='http://jabber.org/protocol/muc'/>"
          "<x xmlns='jabber:x:data' type='result'>"
          "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value>"
          "</field>"
          "<field var='ip_version'><value>ipv4</value><value>ipv6</value></field>"
          "<field var='os'><value>Mac</value></field>"
          "<field var='os_version'><value>10.5.1</value></field>"
          "<field var='software'><value>Psi</value></field>"
          "<field var='software_version'><value>0.11</value></field></x>")),
      "q07IKJEyjvHSyhy//CH0CxmKi8w=");
}

TEST(CapsTest, OrderDoesNotMatter) {
  EXPECT_EQ(caps_ver(query("<feature var='b'/><identity category='client' type='pc'/>"
                           "<feature var='a'/>")),
            caps_ver(query("<feature var='a'/><feature var='b'/>"
                           "<identity category='client' type='pc'/>")));
  EXPECT_NE(caps_ver(query("<feature var='a'/>")), caps_ver(query("<feature var='b'/>")));
}

TEST(CapsTest, WhatSection54RefusesHasNoVer) {
  EXPECT_EQ(caps_ver(query("<feature var='a'/><feature var='a'/>")), "");
  EXPECT_EQ(caps_ver(query("<identity category='client' type='pc'/>"
                           "<identity category='client' type='pc'/>")),
            "");
  const std::string form =
      "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>urn:x</value>"
      "</field></x>";
  EXPECT_EQ(caps_ver(query(form + form)), "");
}

}  // namespace
}  // namespace waddle::im
