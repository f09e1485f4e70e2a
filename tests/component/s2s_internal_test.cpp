// Outbound connections inside the operator's network, with [s2s] allow_internal_addresses off
// (the default): the scripted remote servers resolve to 127.0.0.1, so a stanza for them bounces
// without a connection attempt, an IP-literal domain is refused before anything is tried, and a
// dialback key is not checked through them; with the switch on, the same domain is reached.
// ctest label: component.
#include "s2s_script.h"

namespace waddle::testing {
namespace {

const Role in("in");
const Role out("out");

constexpr const char* kOnlyInternal =
    "remote.test resolves only to internal addresses (127.0.0.1); set [s2s] "
    "allow_internal_addresses = true to federate inside a private network";

class S2sInternalTest : public FederationTest {
 protected:
  void SetUp() override {
    FederationTest::SetUp();
    config_.s2s.allow_internal_addresses = false;
    // Retrying cannot help until the domain's DNS changes: the bounce must not wait for these.
    config_.s2s.retry.max_retries = 3;
    config_.s2s.retry.initial_delay = std::chrono::seconds(5);
  }
};

TEST_F(S2sInternalTest, DomainResolvingToLoopback_BouncedAtOnceWithoutConnecting) {
  Scene scene(*this);
  ASSERT_TRUE(scene.start());
  ASSERT_TRUE(scene.run({service_send(kLocal, kRemote, "m1"),
                         expect_bounced("m1", "remote-server-not-found", kOnlyInternal),
                         expect_no_connection(),
                         // Found through _xmpps-server (XEP-0368): the same.
                         service_send(kLocal, kDirect, "m2"),
                         expect_bounced("m2", "remote-server-not-found",
                                        "direct.test resolves only to internal addresses"),
                         expect_no_connection()}));
  EXPECT_EQ(scene.metrics.errors.get({kRemote, "dns"}).value(), 1u);
  EXPECT_EQ(scene.metrics.errors.get({kDirect, "dns"}).value(), 1u);
  EXPECT_TRUE(scene.settle());
  EXPECT_TRUE(scene.nothing_lost());
}

TEST_F(S2sInternalTest, IpLiteralDomain_RefusedWithPolicyViolation) {
  Scene scene(*this);
  ASSERT_TRUE(scene.start());
  ASSERT_TRUE(scene.run(
      {service_send(kLocal, "127.0.0.1", "m1"),
       expect_bounced("m1", "policy-violation",
                      "127.0.0.1 is an IP address, and this server only connects to domain names; "
                      "set [s2s] allow_internal_addresses = true"),
       service_send(kLocal, "[::1]", "m2"),
       expect_bounced("m2", "policy-violation", "[::1] is an IP address"),
       service_send(kLocal, "192.0.2.7", "m3"),
       expect_bounced("m3", "policy-violation", "192.0.2.7 is an IP address"),
       expect_no_connection(), expect_live_streams(0)}));
  EXPECT_EQ(scene.metrics.bounces.get({"127.0.0.1", "policy-violation"}).value(), 1u);
  EXPECT_EQ(scene.metrics.bounces.get({"[::1]", "policy-violation"}).value(), 1u);
  EXPECT_TRUE(scene.settle());
}

// XEP-0220 §2.2: the receiving server would connect to the authoritative server of the
// claimed domain; that domain resolves to a loopback address, so the key is not checked.
TEST_F(S2sInternalTest, DialbackKey_NotCheckedThroughAnInternalAddress) {
  config_.s2s.allow_unverified_dialback = true;
  Scene scene(*this);
  ASSERT_TRUE(scene.start());
  ASSERT_TRUE(scene.run(
      open_with_tls(in, Cred::kNone) +
      Script{in.expect_exact(kDialbackAndSm), in.send(db("result", kRemote, kLocal, "", "", "k1")),
             in.expect_exact(db("result", kLocal, kRemote, "invalid", "", "")),
             expect_no_connection(), in.send(message("a@remote.test", "b@local.test", "m1")),
             in.expect_stream_error("invalid-from"), expect_nothing_delivered()}));
  // The domain was only claimed by an unauthenticated peer: counted without its name.
  EXPECT_EQ(scene.metrics.errors.get({metrics::kUnauthenticated, "dns"}).value(), 1u);
  EXPECT_EQ(scene.metrics.errors.get({kRemote, "dns"}).value(), 0u);
  EXPECT_TRUE(scene.settle());
}

TEST_F(S2sInternalTest, WithTheSwitch_TheSameDomainIsReached) {
  config_.s2s.allow_internal_addresses = true;
  config_.s2s.retry.max_retries = 0;
  Scene scene(*this);
  ASSERT_TRUE(scene.start());
  ASSERT_TRUE(scene.run(
      {service_send(kLocal, kRemote, "m1"), out.accept(), out.expect_header(kLocal, kRemote)}));
  // The peer goes away: m1 bounces with what failed (nothing is lost either way).
  EXPECT_TRUE(scene.settle());
  EXPECT_TRUE(scene.nothing_lost());
}

}  // namespace
}  // namespace waddle::testing
