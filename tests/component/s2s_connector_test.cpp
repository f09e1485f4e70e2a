// Scripted remote servers that the S2S service connects to when it has a stanza for them
// (found through DNS SRV): STARTTLS offered or not, the peer's certificate, SASL EXTERNAL
// (XEP-0178) succeeding or failing, Server Dialback (XEP-0220) with each answer, piggybacking a
// second local domain (§2.6), bounces that say what failed, and every transport failure of the
// successful scripts. ctest label: component.
#include "core/base64.h"
#include "s2s_script.h"

namespace waddle::testing {
namespace {

const Role out("out");    // kRemote, as the service finds it
const Role out2("out2");  // a second stream the service opens to kRemote
const Role back("back");  // kRemote connecting back to check our dialback key

std::string our_message(const std::string& local, const std::string& id) {
  return "<message from='user@" + local + "/r' to='user@remote.test' id='" + id + "'/>";
}

// The service authenticates `local` with SASL EXTERNAL on `role`, whose certificate is `cred`;
// the features of the stream after authentication are `features` (its id is "s3").
Script authenticate_with_external(const Role& role, const std::string& local = kLocal,
                                  const std::string& features = kDialbackOnly,
                                  Cred cred = Cred::kValid) {
  return accept_with_tls(role, local, cred) +
         Script{role.send(kExternalAndDialback),
                role.expect_exact(sasl_auth("EXTERNAL", core::base64_encode(local))),
                role.send(kSuccess),
                role.restart(),
                role.expect_header(local, kRemote),
                role.send(header(kRemote, local, "s3")),
                role.send(features)};
}

// After SASL EXTERNAL failed, the service's dialback key for stream "s2".
Script external_fails_then_dialback() {
  return accept_with_tls(out) +
         Script{
             out.send(kExternalAndDialback),
             out.expect_exact(sasl_auth("EXTERNAL", core::base64_encode(kLocal))),
             out.send(sasl_failure("not-authorized")),
             out.expect_exact(db("result", kLocal, kRemote, "", "", key(kRemote, kLocal, "s2")))};
}

// The remote server checks the key with us (our authoritative role) before accepting it.
Script dialback_checked_with_us() {
  return accept_with_tls(out) +
         Script{out.send(kDialbackOnly), out.expect_exact(db("result", kLocal, kRemote, "", "",
                                                             key(kRemote, kLocal, "s2")))} +
         open_with_tls(back, Cred::kValid) +
         Script{back.expect_exact(kExternalAndDialback),
                back.send(db("verify", kRemote, kLocal, "", "s2", key(kRemote, kLocal, "s2"))),
                back.expect_exact(db("verify", kLocal, kRemote, "valid", "s2", "")),
                back.send("</stream:stream>"),
                back.expect_closed(),
                out.send(db("result", kRemote, kLocal, "valid", "", "")),
                out.expect(our_message(kLocal, "m1"))};
}

class S2sConnectorTest : public FederationTest {
 protected:
  void run_script(const Script& script) {
    Scene scene(*this);
    ASSERT_TRUE(scene.start());
    ASSERT_TRUE(scene.run(script));
    EXPECT_TRUE(scene.settle());
    EXPECT_TRUE(scene.nothing_lost());
  }
};

TEST_F(S2sConnectorTest, SaslExternal_StanzasWrittenOnlyAfterAuthentication) {
  run_script(Script{service_send(kLocal, kRemote, "m1")} + authenticate_with_external(out) +
             Script{out.expect(our_message(kLocal, "m1")), service_send(kLocal, kRemote, "m2"),
                    out.expect(our_message(kLocal, "m2")), expect_live_streams(1),
                    out.send("</stream:stream>"), out.expect_closed(), expect_live_streams(0)});
}

Script external_and_two_stanzas() {
  return Script{service_send(kLocal, kRemote, "m1")} + authenticate_with_external(out) +
         Script{out.expect(our_message(kLocal, "m1")), service_send(kLocal, kRemote, "m2"),
                out.expect(our_message(kLocal, "m2")), out.send("</stream:stream>"),
                out.expect_closed()};
}

TEST_F(S2sConnectorTest, SaslExternal_EveryTransportFailure) {
  every_failure(external_and_two_stanzas());
}

TEST_F(S2sConnectorTest, SaslExternal_EveryTransportReset) {
  every_failure(external_and_two_stanzas(), true, Fault::kReset);
}

// Stopping the service at any point bounces what waits and leaves nothing behind.
TEST_F(S2sConnectorTest, SaslExternal_ShutdownAtEveryStep) {
  every_failure(external_and_two_stanzas(), false, Fault::kStop);
}

TEST_F(S2sConnectorTest, SaslExternalFails_DialbackValid) {
  run_script(Script{service_send(kLocal, kRemote, "m1")} + external_fails_then_dialback() +
             Script{out.send(db("result", kRemote, kLocal, "valid", "", "")),
                    out.expect(our_message(kLocal, "m1"))});
}

TEST_F(S2sConnectorTest, SaslExternalFails_Dialback_EveryTransportFailure) {
  every_failure(Script{service_send(kLocal, kRemote, "m1")} + external_fails_then_dialback() +
                Script{out.send(db("result", kRemote, kLocal, "valid", "", "")),
                       out.expect(our_message(kLocal, "m1"))});
}

TEST_F(S2sConnectorTest, Dialback_TheRemoteServerChecksTheKeyWithUs) {
  run_script(Script{service_send(kLocal, kRemote, "m1")} + dialback_checked_with_us());
}

TEST_F(S2sConnectorTest, Dialback_CheckedWithUs_EveryTransportFailure) {
  every_failure(Script{service_send(kLocal, kRemote, "m1")} + dialback_checked_with_us());
}

Script dialback_refused_with_an_error() {
  return Script{service_send(kLocal, kRemote, "m1")} + external_fails_then_dialback() +
         Script{out.send("<db:result from='remote.test' to='local.test' type='error'>"
                         "<error type='cancel'><not-authorized "
                         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
                         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>We do not federate "
                         "with you</text></error></db:result>"),
                expect_bounced("m1", "remote-server-not-found",
                               "remote.test refused our dialback key (not-authorized: We do "
                               "not federate with you)"),
                out.expect_disconnect()};
}

TEST_F(S2sConnectorTest, DialbackRefusedWithAnError_TheBounceCarriesThePeersReason) {
  run_script(dialback_refused_with_an_error());
}

TEST_F(S2sConnectorTest, DialbackRefused_EveryTransportFailure) {
  every_failure(dialback_refused_with_an_error());
}

TEST_F(S2sConnectorTest, DialbackInvalid_Bounced) {
  run_script(Script{service_send(kLocal, kRemote, "m1")} + external_fails_then_dialback() +
             Script{out.send(db("result", kRemote, kLocal, "invalid", "", "")),
                    expect_bounced("m1", "remote-server-not-found",
                                   "remote.test refused our dialback key"),
                    out.expect_disconnect()});
}

// RFC 6120 §4.4: a peer that closes its stream waits for ours; the attempt ends there, not at
// the connect timeout (it used to be ignored during dialback, so the stanza waited
// connect_timeout and was then bounced as remote-server-timeout).
TEST_F(S2sConnectorTest, PeerClosesTheStreamDuringDialback_Bounced) {
  run_script(
      Script{service_send(kLocal, kRemote, "m1")} + external_fails_then_dialback() +
      Script{out.send("</stream:stream>"),
             expect_bounced("m1", "remote-server-not-found", "closed the stream during dialback"),
             out.expect_disconnect()});
}

TEST_F(S2sConnectorTest, PeerStreamErrorDuringDialback_BouncedWithItsText) {
  run_script(
      Script{service_send(kLocal, kRemote, "m1")} + external_fails_then_dialback() +
      Script{out.send("<stream:error><policy-violation "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-streams'>not today</text>"
                      "</stream:error></stream:stream>"),
             expect_bounced("m1", "remote-server-not-found",
                            "closed the stream during dialback: policy-violation: not today"),
             out.expect_disconnect()});
}

TEST_F(S2sConnectorTest, StartTlsNotOffered_BouncedBecauseTlsIsRequired) {
  run_script(
      {service_send(kLocal, kRemote, "m1"), out.accept(), out.expect_header(kLocal, kRemote),
       out.send(header(kRemote, kLocal, "s1")), out.send(kDialbackOnly),
       expect_bounced("m1", "remote-server-not-found", "does not offer STARTTLS (TLS is required)"),
       out.expect_disconnect()});
}

TEST_F(S2sConnectorTest, StartTlsRefused_Bounced) {
  run_script({service_send(kLocal, kRemote, "m1"), out.accept(), out.expect_header(kLocal, kRemote),
              out.send(header(kRemote, kLocal, "s1")), out.send(kStartTlsOffered),
              out.expect_exact(kStartTls),
              out.send("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
              expect_bounced("m1", "remote-server-not-found", "refused STARTTLS"),
              out.expect_disconnect()});
}

TEST_F(S2sConnectorTest, CertificateNotValidForThePeer_Bounced) {
  // Outbound, the peer is the TLS server: a certificate for TLS client authentication only, or
  // for e-mail, does not authenticate it.
  for (auto [cred, why] :
       {std::pair{Cred::kSelfSigned, "(untrusted chain"},
        std::pair{Cred::kWrongName, "(name mismatch)"},
        std::pair{Cred::kClientAuth, "(untrusted chain: unsuitable certificate purpose)"},
        std::pair{Cred::kEmailOnly, "(untrusted chain: unsuitable certificate purpose)"}}) {
    SCOPED_TRACE(why);
    run_script(Script{service_send(kLocal, kRemote, "m1")} + accept_with_tls(out, kLocal, cred) +
               Script{out.send(kExternalAndDialback),
                      expect_bounced("m1", "remote-server-not-found",
                                     std::string("is not valid for remote.test ") + why),
                      out.expect_disconnect()});
  }
}

TEST_F(S2sConnectorTest, CertificateForServerAuthenticationOnly_SaslExternal) {
  run_script(Script{service_send(kLocal, kRemote, "m1")} +
             authenticate_with_external(out, kLocal, kDialbackOnly, Cred::kServerAuth) +
             Script{out.expect(our_message(kLocal, "m1"))});
}

TEST_F(S2sConnectorTest, CertificateNotValidButDialbackAllowedWithout_Dialback) {
  config_.s2s.unverified_dialback_domains = {kRemote};
  run_script(
      Script{service_send(kLocal, kRemote, "m1")} +
      accept_with_tls(out, kLocal, Cred::kSelfSigned) +
      Script{out.send(kDialbackOnly),
             out.expect_exact(db("result", kLocal, kRemote, "", "", key(kRemote, kLocal, "s2"))),
             out.send(db("result", kRemote, kLocal, "valid", "", "")),
             out.expect(our_message(kLocal, "m1"))});
}

TEST_F(S2sConnectorTest, NeitherExternalNorDialback_Bounced) {
  run_script(Script{service_send(kLocal, kRemote, "m1")} + accept_with_tls(out) +
             Script{out.send("<stream:features/>"),
                    expect_bounced("m1", "remote-server-not-found",
                                   "offers neither SASL EXTERNAL for us nor dialback"),
                    out.expect_disconnect()});
}

// XEP-0368: an _xmpps-server record means TLS from the first byte, no STARTTLS.
TEST_F(S2sConnectorTest, DirectTls_SaslExternal) {
  run_script({service_send(kLocal, kDirect, "m1"), out.accept(), out.start_tls(Cred::kValid),
              out.expect_header(kLocal, kDirect), out.send(header(kDirect, kLocal, "s1")),
              out.send(kExternalAndDialback),
              out.expect_exact(sasl_auth("EXTERNAL", core::base64_encode(kLocal))),
              out.send(kSuccess), out.restart(), out.expect_header(kLocal, kDirect),
              out.send(header(kDirect, kLocal, "s2")), out.send("<stream:features/>"),
              out.expect("<message id='m1' to='user@direct.test'/>")});
}

TEST_F(S2sConnectorTest, DomainWithoutAddress_Bounced) {
  run_script({service_send(kLocal, kNowhere, "m1"),
              expect_bounced("m1", "remote-server-not-found", kNowhere)});
}

// XEP-0220 §2.6: a second local domain authenticates on the stream the first one opened.
Script piggyback() {
  return Script{service_send(kLocal, kRemote, "m1")} + authenticate_with_external(out) +
         Script{
             out.expect(our_message(kLocal, "m1")),
             service_send(kLocal2, kRemote, "m2"),
             out.expect_exact(db("result", kLocal2, kRemote, "", "", key(kRemote, kLocal2, "s3"))),
             out.send(db("result", kRemote, kLocal2, "valid", "", "")),
             out.expect(our_message(kLocal2, "m2")),
             service_send(kLocal, kRemote, "m3"),
             service_send(kLocal2, kRemote, "m4"),
             out.expect(our_message(kLocal, "m3")),
             out.expect(our_message(kLocal2, "m4"))};
}

TEST_F(S2sConnectorTest, Piggyback_SecondLocalDomainOnTheSameStream) {
  run_script(piggyback());
}

TEST_F(S2sConnectorTest, Piggyback_EveryTransportFailure) {
  // A failed piggyback is not tried again for a while: no second run on the same service.
  every_failure(piggyback(), false);
}

TEST_F(S2sConnectorTest, Piggyback_ShutdownAtEveryStep) {
  every_failure(piggyback(), false, Fault::kStop);
}

Script piggyback_refused() {
  return Script{service_send(kLocal, kRemote, "m1")} + authenticate_with_external(out) +
         Script{out.expect(our_message(kLocal, "m1")), service_send(kLocal2, kRemote, "m2"),
                out.expect(db("result", kLocal2, kRemote, "", "", "")),
                out.send("<db:result from='remote.test' to='other.test' type='error'>"
                         "<error type='cancel'><policy-violation "
                         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>")} +
         authenticate_with_external(out2, kLocal2) +
         Script{out2.expect(our_message(kLocal2, "m2"))};
}

TEST_F(S2sConnectorTest, PiggybackRefused_SecondDomainOpensItsOwnStream) {
  run_script(piggyback_refused());
}

TEST_F(S2sConnectorTest, PiggybackRefused_EveryTransportFailure) {
  every_failure(piggyback_refused(), false);
}

// Without dialback errors (XEP-0220 §2.4) a refused pair may cost the whole stream: the second
// local domain does not ask, it opens its own stream.
TEST_F(S2sConnectorTest, PeerWithoutDialbackErrors_SecondDomainOpensItsOwnStream) {
  const std::string no_errors =
      "<stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>";
  run_script(Script{service_send(kLocal, kRemote, "m1")} +
             authenticate_with_external(out, kLocal, no_errors) +
             Script{out.expect(our_message(kLocal, "m1")), service_send(kLocal2, kRemote, "m2")} +
             authenticate_with_external(out2, kLocal2) +
             Script{out2.expect(our_message(kLocal2, "m2")), service_send(kLocal, kRemote, "m3"),
                    out.expect(our_message(kLocal, "m3"))});
}

}  // namespace
}  // namespace waddle::testing
