// Which addresses federation connects to: the internal ranges (IPv4 and IPv6, with IPv4 embedded
// in IPv6), the endpoints kept after DNS, and the admission rules for IP-literal domains and
// for domains that resolve only to internal addresses, with and without
// allow_internal_addresses.
#include "s2s/internal_address.h"

#include <gtest/gtest.h>

#include "s2s/admission.h"

namespace waddle::s2s {
namespace {

using core::StanzaError;

struct Case {
  const char* address;
  const char* kind;  // nullptr: globally reachable
};

void expect_ranges(std::initializer_list<Case> cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.address);
    const auto kind = internal_range(c.address);
    if (c.kind)
      EXPECT_EQ(kind.value_or("(global)"), c.kind);
    else
      EXPECT_EQ(kind, std::nullopt) << "classified as " << *kind;
  }
}

TEST(InternalRangeTest, Ipv4_InternalRangesAndTheirEdges) {
  expect_ranges({
      {"127.0.0.1", "loopback"},
      {"127.0.0.5", "loopback"},
      {"127.255.255.255", "loopback"},
      {"128.0.0.1", nullptr},
      {"126.255.255.255", nullptr},
      {"10.0.0.1", "private"},
      {"10.255.255.255", "private"},
      {"11.0.0.0", nullptr},
      {"9.255.255.255", nullptr},
      {"172.16.0.1", "private"},
      {"172.31.255.255", "private"},
      {"172.15.255.255", nullptr},
      {"172.32.0.0", nullptr},
      {"192.168.1.1", "private"},
      {"192.169.0.1", nullptr},
      {"169.254.169.254", "link-local"},  // cloud metadata services
      {"169.255.0.1", nullptr},
      {"0.0.0.0", "unspecified"},
      {"0.1.2.3", "\"this network\""},
      {"100.64.0.1", "shared address space"},
      {"100.127.255.255", "shared address space"},
      {"100.128.0.0", nullptr},
      {"192.0.0.8", "IETF protocol assignments"},
      {"192.0.2.1", "documentation"},
      {"198.51.100.7", "documentation"},
      {"203.0.113.9", "documentation"},
      {"198.18.0.1", "benchmarking"},
      {"198.19.255.255", "benchmarking"},
      {"198.20.0.0", nullptr},
      {"224.0.0.1", "multicast"},
      {"239.255.255.250", "multicast"},
      {"240.0.0.1", "reserved"},
      {"255.255.255.255", "broadcast"},
      {"192.88.99.1", "6to4 relay anycast"},
      {"8.8.8.8", nullptr},
      {"1.1.1.1", nullptr},
      {"93.184.216.34", nullptr},
  });
}

TEST(InternalRangeTest, Ipv6_InternalRanges) {
  expect_ranges({
      {"::1", "loopback"},
      {"::", "unspecified"},
      {"fc00::1", "private"},
      {"fd12:3456:789a::1", "private"},
      {"fe80::1", "link-local"},
      {"febf:ffff::1", "link-local"},
      {"fec0::1", "site-local"},
      {"ff02::1", "multicast"},
      {"ff0e::101", "multicast"},
      {"2001:db8::1", "documentation"},
      {"3fff::1", "documentation"},
      {"2001:0:4136:e378::1", "Teredo"},
      {"2001:2::1", "IETF protocol assignments"},
      {"64:ff9b:1::1", "NAT64 local use"},
      {"100::1", "reserved"},
      {"::2", "reserved"},
      {"4000::1", "reserved"},
      {"2a00:1450:4001::200e", nullptr},
      {"2600::1", nullptr},
      {"2001:4860::8888", nullptr},
      {"3ffe::1", nullptr},
  });
}

// An IPv6 address that reaches an IPv4 one is judged by that address.
TEST(InternalRangeTest, Ipv6_EmbeddedIpv4_JudgedByIt) {
  expect_ranges({
      {"::ffff:127.0.0.1", "loopback"},
      {"::ffff:7f00:5", "loopback"},
      {"::ffff:10.1.2.3", "private"},
      {"::ffff:169.254.169.254", "link-local"},
      {"::ffff:8.8.8.8", nullptr},
      {"64:ff9b::127.0.0.1", "loopback"},
      {"64:ff9b::192.168.0.1", "private"},
      {"64:ff9b::8.8.8.8", nullptr},
      {"2002:7f00:1::1", "loopback"},
      {"2002:c0a8:101::1", "private"},
      {"2002:808:808::1", nullptr},
  });
}

TEST(InternalRangeTest, NotAnAddress_NeverConnectedTo) {
  expect_ranges({
      {"", "not an IP address"},
      {"localhost", "not an IP address"},
      {"[::1]", "not an IP address"},
      {"127.1", "not an IP address"},
      {"fe80::1%lo", "not an IP address"},
  });
}

Endpoint at(const std::string& host, const std::string& address, std::uint16_t port = 5269) {
  return Endpoint{host, address, port, false, true};
}

TEST(DropInternalTest, KeepsGlobalAddressesInOrder_ListsEachDroppedOnce) {
  std::vector<Endpoint> e{at("a", "10.0.0.1"), at("a", "8.8.8.8"), at("b", "10.0.0.1", 5270),
                          at("b", "::1"),      at("c", "2600::1"), at("c", "::ffff:127.0.0.1")};
  auto dropped = drop_internal(e);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].address, "8.8.8.8");
  EXPECT_EQ(e[1].address, "2600::1");
  ASSERT_EQ(dropped.size(), 3u);
  EXPECT_EQ(dropped[0].address, "10.0.0.1");
  EXPECT_EQ(dropped[0].kind, "private");
  EXPECT_EQ(dropped[1].address, "::1");
  EXPECT_EQ(dropped[2].address, "::ffff:127.0.0.1");
  EXPECT_EQ(dropped[2].kind, "loopback");
}

TEST(DropInternalTest, TextNamesTheDomainTheAddressesAndTheSwitch) {
  EXPECT_EQ(only_internal_text("b.example", {{"127.0.0.5", "loopback"}}),
            "b.example resolves only to internal addresses (127.0.0.5); set [s2s] "
            "allow_internal_addresses = true to federate inside a private network");
  std::vector<Dropped> many;
  for (int i = 1; i <= 6; ++i) many.push_back({"10.0.0." + std::to_string(i), "private"});
  EXPECT_NE(only_internal_text("b.example", many)
                .find("(10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4 and 2 more)"),
            std::string::npos);
}

class InternalAdmissionTest : public ::testing::Test {
 protected:
  core::S2sConfig config_;
};

TEST_F(InternalAdmissionTest, IpLiteralDomain_RefusedWithPolicyViolation) {
  Admission a(config_);
  for (const char* domain : {"127.0.0.1", "10.0.0.5", "8.8.8.8", "[::1]", "[2600::1]"}) {
    SCOPED_TRACE(domain);
    auto no = a.outbound(domain, false);
    ASSERT_TRUE(no);
    EXPECT_EQ(no->condition, StanzaError::kPolicyViolation);
    EXPECT_EQ(no->text, std::string(domain) +
                            " is an IP address, and this server only connects to domain names; "
                            "set [s2s] allow_internal_addresses = true to federate inside a "
                            "private network");
    auto connect = a.connect_to(domain);
    ASSERT_TRUE(connect);
    EXPECT_EQ(connect->failure, Failure::kPolicy);
    EXPECT_TRUE(connect->definitive);
  }
  // Names made of digits are names: DNS decides, and its answers are checked.
  EXPECT_FALSE(a.outbound("127.0.0.1.example", false));
  EXPECT_FALSE(a.connect_to("1234"));
}

TEST_F(InternalAdmissionTest, IpLiteralDomain_AllowedWithTheSwitch) {
  config_.allow_internal_addresses = true;
  Admission a(config_);
  EXPECT_FALSE(a.outbound("127.0.0.1", false));
  EXPECT_FALSE(a.outbound("[::1]", false));
  EXPECT_FALSE(a.connect_to("127.0.0.1"));
}

TEST_F(InternalAdmissionTest, OnlyInternalAddresses_DnsFailureThatRetryingCannotFix) {
  Admission a(config_);
  std::vector<Endpoint> e{at("xmpp.b.example", "127.0.0.5"), at("xmpp.b.example", "::1")};
  std::vector<std::string> skipped;
  auto failed = a.reachable("b.example", e, &skipped);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->failure, Failure::kDns);
  EXPECT_TRUE(failed->definitive);
  EXPECT_EQ(failed->text,
            "b.example resolves only to internal addresses (127.0.0.5, ::1); set [s2s] "
            "allow_internal_addresses = true to federate inside a private network");
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(skipped, (std::vector<std::string>{"127.0.0.5 (loopback)", "::1 (loopback)"}));
}

TEST_F(InternalAdmissionTest, SomeInternalAddresses_TheOthersAreTried) {
  Admission a(config_);
  std::vector<Endpoint> e{at("in.b.example", "192.168.0.1"), at("out.b.example", "8.8.4.4")};
  EXPECT_FALSE(a.reachable("b.example", e));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].host, "out.b.example");
}

TEST_F(InternalAdmissionTest, InternalAddresses_KeptWithTheSwitch) {
  config_.allow_internal_addresses = true;
  Admission a(config_);
  std::vector<Endpoint> e{at("xmpp.b.example", "127.0.0.5"), at("xmpp.b.example", "10.0.0.1")};
  std::vector<std::string> skipped;
  EXPECT_FALSE(a.reachable("b.example", e, &skipped));
  EXPECT_EQ(e.size(), 2u);
  EXPECT_TRUE(skipped.empty());
}

}  // namespace
}  // namespace waddle::s2s
