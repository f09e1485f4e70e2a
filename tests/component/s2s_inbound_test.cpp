// Scripted remote servers connecting to the S2S listener (RFC 6120 §4-§6 server streams): the
// STARTTLS requirement, the features offered after TLS, SASL EXTERNAL (XEP-0178), Server
// Dialback in the receiving and authoritative roles with each error (XEP-0220 §2.2-§2.4),
// piggybacking (§2.6), anti-spoofing and stream errors; every transport failure of the
// successful scripts. ctest label: component.
#include "core/base64.h"
#include "s2s/dialback.h"
#include "s2s_script.h"

namespace waddle::testing {
namespace {

const Role in("in");
const Role auth("auth");  // the authoritative server of kRemote, found through DNS

// A stream from `from` to `to` up to the header after STARTTLS, presenting `cred`.
Script open_in(Cred cred, const std::string& from = kRemote, const std::string& to = kLocal) {
  return open_with_tls(in, cred, from, to);
}

// ... authenticated with SASL EXTERNAL, up to the features of the new stream.
Script open_with_external() {
  return open_in(Cred::kValid) +
         Script{in.expect_exact(kExternalAndDialback),
                in.send(sasl_auth("EXTERNAL", core::base64_encode(kRemote))),
                in.expect_exact(kSuccess),
                in.restart(),
                in.send(header(kRemote, kLocal)),
                in.expect_header(kLocal, kRemote),
                in.expect_exact(kDialbackAndSm)};
}

// The service asks the authoritative server of kRemote about the key `key` of the "in"
// stream: up to its <db:verify/>.
Script authoritative_asked(const std::string& key) {
  return {auth.accept(),
          auth.expect_header(kLocal, kRemote),
          auth.send(header(kRemote, kLocal, "auth-1")),
          auth.send(kStartTlsOffered),
          auth.expect_exact(kStartTls),
          auth.send(kProceed),
          auth.start_tls(Cred::kValid),
          auth.expect_header(kLocal, kRemote),
          auth.send(header(kRemote, kLocal, "auth-2")),
          auth.send(kDialbackOnly),
          auth.expect_exact(Text([key](Scene& s) {
            return db("verify", kLocal, kRemote, "", s.stream_id("in"), key);
          }))};
}

// ... and its answer `type`, after which the service closes the verification stream.
Script authoritative_answers(const std::string& key, const std::string& type) {
  return authoritative_asked(key) +
         Script{auth.send(Text([type](Scene& s) {
                  return db("verify", kRemote, kLocal, type, s.stream_id("in"), "");
                })),
                auth.expect_closed()};
}

// Dialback for (kRemote, kLocal) without a certificate, checked with the authoritative server.
Script dialback_through_authoritative(const std::string& type) {
  return open_in(Cred::kNone) +
         Script{in.expect_exact(kDialbackAndSm),
                in.send(db("result", kRemote, kLocal, "", "", "k1"))} +
         authoritative_answers("k1", type) +
         Script{in.expect_exact(db("result", kLocal, kRemote, type, "", ""))};
}

class S2sInboundTest : public FederationTest {
 protected:
  void run_script(const Script& script) {
    Scene scene(*this);
    ASSERT_TRUE(scene.start());
    ASSERT_TRUE(scene.run(script));
    EXPECT_TRUE(scene.settle());
  }
};

TEST_F(S2sInboundTest, StanzaBeforeTls_PolicyViolation) {
  run_script({in.connect(), in.send(header(kRemote, kLocal)), in.expect_header(kLocal, kRemote),
              in.expect_exact(kStartTlsRequired),
              in.send(message("a@remote.test", "b@local.test", "early")),
              in.expect_stream_error("policy-violation"), expect_nothing_delivered()});
}

TEST_F(S2sInboundTest, HeaderForANameNotServedHere_HostUnknown) {
  run_script({in.connect(), in.send(header(kRemote, "elsewhere.test")),
              in.expect_header("", kRemote), in.expect_stream_error("host-unknown")});
}

TEST_F(S2sInboundTest, HeaderFromABlockedDomain_PolicyViolation) {
  config_.s2s.policy = "blocklist";
  config_.s2s.blocked_domains = {kRemote};
  run_script({in.connect(), in.send(header(kRemote, kLocal)), in.expect_header(kLocal, kRemote),
              in.expect_stream_error("policy-violation")});
}

// A peer that never authenticates is told why its stream ends (RFC 6120 §4.9.3.4), as on the
// client side (the error is written before the socket closes, not queued and dropped).
TEST_F(S2sInboundTest, UnauthenticatedPeerAfterTheHandshakeTimeout_ConnectionTimeout) {
  config_.s2s.handshake_timeout = std::chrono::milliseconds(300);
  run_script({in.connect(), in.send(header(kRemote, kLocal)), in.expect_header(kLocal, kRemote),
              in.expect_exact(kStartTlsRequired), in.expect_stream_error("connection-timeout")});
}

// A peer that sends nothing still learns why (RFC 6120 §4.9.1.1: a header first, then the error).
TEST_F(S2sInboundTest, SilentPeer_ClosedAfterTheHandshakeTimeout) {
  config_.s2s.handshake_timeout = std::chrono::milliseconds(300);
  run_script({in.connect(), in.expect_header("", ""), in.expect_stream_error("connection-timeout"),
              in.expect_disconnect()});
}

// docs/security.md "Memory": before a domain has authenticated, an element may be at most
// [c2s.limits] max_unauthenticated_stanza_size; an unfinished one that grows past it ends the
// stream as the full limit would.
TEST_F(S2sInboundTest, ElementOverTheUnauthenticatedLimit_PolicyViolation) {
  config_.c2s.limits.max_unauthenticated_stanza_size = 2048;
  run_script(
      open_in(Cred::kNone) +
      Script{in.expect_exact(kDialbackAndSm),
             in.send("<db:result from='remote.test' to='local.test'>" + std::string(4096, 'k')),
             in.expect_stream_error("policy-violation")});
}

// ... and once authenticated, the full [s2s] max_stanza_size applies.
TEST_F(S2sInboundTest, AfterAuthentication_TheFullStanzaSize) {
  config_.c2s.limits.max_unauthenticated_stanza_size = 2048;
  const std::string body(8000, 'b');
  run_script(open_with_external() +
             Script{in.send(message("a@remote.test/x", "b@local.test", body)),
                    expect_delivered("<message id='" + body + "'/>"), in.send("</stream:stream>"),
                    in.expect_closed()});
}

// docs/security.md "Correctness": an authenticated stream that goes silent is closed after
// idle_timeout with connection-timeout.
TEST_F(S2sInboundTest, SilentAfterAuthentication_ClosedAfterTheIdleTimeout) {
  config_.s2s.idle_timeout = std::chrono::milliseconds(300);
  run_script(open_with_external() + Script{in.expect_stream_error("connection-timeout")});
}

TEST_F(S2sInboundTest, DialbackBeforeTls_PolicyViolation) {
  run_script({in.connect(), in.send(header(kRemote, kLocal)), in.expect_header(kLocal, kRemote),
              in.expect_exact(kStartTlsRequired),
              in.send(db("result", kRemote, kLocal, "", "", "k1")),
              in.expect_stream_error("policy-violation")});
}

// XEP-0368: TLS from the first byte on the direct TLS port, then the same features.
TEST_F(S2sInboundTest, DirectTls_SaslExternal) {
  config_.s2s.direct_tls_port = free_port();
  run_script({in.connect(true), in.start_tls(Cred::kValid), in.send(header(kRemote, kLocal)),
              in.expect_header(kLocal, kRemote), in.expect_exact(kExternalAndDialback),
              in.send(sasl_auth("EXTERNAL", core::base64_encode(kRemote))),
              in.expect_exact(kSuccess), in.restart(), in.send(header(kRemote, kLocal)),
              in.expect_header(kLocal, kRemote), in.expect_exact(kDialbackAndSm),
              in.send(message("a@remote.test", "b@local.test", "m1")),
              expect_delivered("<message id='m1'/>")});
}

TEST_F(S2sInboundTest, ClientNamespaceHeader_InvalidNamespace) {
  const std::string client_header =
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
      "from='remote.test' to='local.test' version='1.0'>";
  run_script({in.connect(), in.send(client_header), in.expect_header("", ""),
              in.expect_stream_error("invalid-namespace")});
}

TEST_F(S2sInboundTest, StartTlsTwice_PolicyViolation) {
  run_script(open_in(Cred::kValid) + Script{in.expect_exact(kExternalAndDialback),
                                            in.send(kStartTls),
                                            in.expect_stream_error("policy-violation")});
}

// SASL EXTERNAL is offered only to a peer whose certificate is valid for its 'from'; dialback,
// with error reporting, always.
TEST_F(S2sInboundTest, FeaturesAfterTls_ExternalOnlyWithACertificateValidForTheSender) {
  for (Cred cred : {Cred::kValid, Cred::kNone, Cred::kSelfSigned, Cred::kWrongName}) {
    SCOPED_TRACE(static_cast<int>(cred));
    run_script(open_in(cred) + Script{in.expect_exact(cred == Cred::kValid ? kExternalAndDialback
                                                                           : kDialbackAndSm)});
  }
}

TEST_F(S2sInboundTest, SaslExternal_StanzasReachTheRouter) {
  run_script(open_with_external() +
             Script{in.send(message("a@remote.test/x", "b@local.test", "m1")),
                    expect_delivered("<message from='a@remote.test/x' to='b@local.test' id='m1'/>"),
                    in.send("</stream:stream>"), in.expect_closed()});
}

Script external_then_a_stanza() {
  return open_with_external() + Script{in.send(message("a@remote.test/x", "b@local.test", "m1")),
                                       expect_delivered("<message id='m1'/>"),
                                       in.send("</stream:stream>"), in.expect_closed()};
}

TEST_F(S2sInboundTest, SaslExternal_EveryTransportFailure) {
  every_failure(external_then_a_stanza());
}

TEST_F(S2sInboundTest, SaslExternal_EveryTransportReset) {
  every_failure(external_then_a_stanza(), true, Fault::kReset);
}

TEST_F(S2sInboundTest, SaslExternal_ShutdownAtEveryStep) {
  every_failure(external_then_a_stanza(), false, Fault::kStop);
}

TEST_F(S2sInboundTest, SaslExternal_EmptyAuthzidMeansTheStreamsFrom) {
  run_script(open_in(Cred::kValid) + Script{in.expect_exact(kExternalAndDialback),
                                            in.send(sasl_auth("EXTERNAL", "=")),
                                            in.expect_exact(kSuccess)});
}

TEST_F(S2sInboundTest, SaslExternal_OtherAuthzid_NotAuthorized) {
  run_script(open_in(Cred::kValid) +
             Script{in.expect_exact(kExternalAndDialback),
                    in.send(sasl_auth("EXTERNAL", core::base64_encode(kRemote2))),
                    in.expect_exact(sasl_failure("not-authorized")),
                    in.send(message("a@remote.test", "b@local.test", "m1")),
                    in.expect_stream_error("invalid-from"), expect_nothing_delivered()});
}

TEST_F(S2sInboundTest, SaslExternal_WithoutAValidCertificate_NotAuthorized) {
  for (Cred cred : {Cred::kNone, Cred::kSelfSigned, Cred::kWrongName}) {
    SCOPED_TRACE(static_cast<int>(cred));
    run_script(open_in(cred) + Script{in.expect_exact(kDialbackAndSm),
                                      in.send(sasl_auth("EXTERNAL", core::base64_encode(kRemote))),
                                      in.expect_exact(sasl_failure("not-authorized"))});
  }
}

// Public CAs issue server certificates for TLS server authentication only, and a server presents
// its certificate on the streams it opens as well: on a server link a certificate for either TLS
// role (or for no stated purpose) authenticates the peer.
TEST_F(S2sInboundTest, SaslExternal_CertificateForEitherTlsRole) {
  for (Cred cred : {Cred::kServerAuth, Cred::kClientAuth}) {
    SCOPED_TRACE(static_cast<int>(cred));
    run_script(open_in(cred) +
               Script{in.expect_exact(kExternalAndDialback),
                      in.send(sasl_auth("EXTERNAL", core::base64_encode(kRemote))),
                      in.expect_exact(kSuccess), in.restart(), in.send(header(kRemote, kLocal)),
                      in.expect_header(kLocal, kRemote), in.expect_exact(kDialbackAndSm),
                      in.send(message("a@remote.test", "b@local.test", "m1")),
                      expect_delivered("<message id='m1'/>")});
  }
}

// A certificate of the trusted CA, naming the peer, but for a purpose other than TLS (e-mail
// protection only) proves nothing on a server link: neither SASL EXTERNAL nor dialback without
// the authoritative server accepts it.
TEST_F(S2sInboundTest, CertificateForAnotherPurpose_NotAuthorized) {
  run_script(open_in(Cred::kEmailOnly) +
             Script{in.expect_exact(kDialbackAndSm),
                    in.send(sasl_auth("EXTERNAL", core::base64_encode(kRemote))),
                    in.expect_exact(sasl_failure("not-authorized")),
                    in.send(db("result", kRemote, kLocal, "", "", "k1")),
                    in.expect("<db:result from='local.test' to='remote.test' type='error'>"
                              "<error type='cancel'><not-authorized "
                              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>"),
                    in.send(message("a@remote.test", "b@local.test", "m1")),
                    in.expect_stream_error("invalid-from"), expect_nothing_delivered()});
}

TEST_F(S2sInboundTest, SaslOtherMechanismOrBadBase64_Refused) {
  run_script(open_in(Cred::kValid) + Script{in.expect_exact(kExternalAndDialback),
                                            in.send(sasl_auth("PLAIN", "AGEAYg==")),
                                            in.expect_exact(sasl_failure("invalid-mechanism")),
                                            in.send(sasl_auth("EXTERNAL", "not base64!")),
                                            in.expect_exact(sasl_failure("incorrect-encoding"))});
}

// XEP-0344: a certificate valid for the sender already proves the domain.
TEST_F(S2sInboundTest, Dialback_ValidCertificate_NoAuthoritativeServerAsked) {
  run_script(open_in(Cred::kValid) +
             Script{in.expect_exact(kExternalAndDialback),
                    in.send(db("result", kRemote, kLocal, "", "", "k1")),
                    in.expect_exact(db("result", kLocal, kRemote, "valid", "", "")),
                    expect_live_streams(1), in.send(message("a@remote.test", "b@local.test", "m1")),
                    expect_delivered("<message id='m1'/>")});
}

TEST_F(S2sInboundTest, Dialback_AuthoritativeServerSaysValid) {
  config_.s2s.allow_unverified_dialback = true;
  run_script(dialback_through_authoritative("valid") +
             Script{in.send(message("a@remote.test", "b@local.test", "m1")),
                    expect_delivered("<message from='a@remote.test' id='m1'/>")});
}

TEST_F(S2sInboundTest, Dialback_AuthoritativeServerSaysInvalid) {
  config_.s2s.allow_unverified_dialback = true;
  run_script(dialback_through_authoritative("invalid") +
             Script{in.send(message("a@remote.test", "b@local.test", "m1")),
                    in.expect_stream_error("invalid-from"), expect_nothing_delivered()});
}

TEST_F(S2sInboundTest, Dialback_AuthoritativeServer_EveryTransportFailure) {
  config_.s2s.allow_unverified_dialback = true;
  every_failure(dialback_through_authoritative("valid") +
                Script{in.send(message("a@remote.test", "b@local.test", "m1")),
                       expect_delivered("<message id='m1'/>")});
}

// Stopping at the step after the authoritative server's answer is the case of
// Dialback_StreamGoneBeforeTheAuthoritativeAnswer (the stream is gone by then).
TEST_F(S2sInboundTest, Dialback_AuthoritativeServer_ShutdownAtEveryStep) {
  config_.s2s.allow_unverified_dialback = true;
  every_failure(dialback_through_authoritative("valid"), false, Fault::kStop);
}

// The stream that asked goes away while its key is being checked; the answer comes later and
// must not count a stream that no longer exists (a late "valid" used to count the stream as
// opened after it was closed, leaving waddle_s2s_connections_active{direction="in"} at 1).
TEST_F(S2sInboundTest, Dialback_StreamGoneBeforeTheAuthoritativeAnswer) {
  config_.s2s.allow_unverified_dialback = true;
  run_script(open_in(Cred::kNone) +
             Script{in.expect_exact(kDialbackAndSm),
                    in.send(db("result", kRemote, kLocal, "", "", "k1"))} +
             authoritative_asked("k1") +
             Script{in.cut(), auth.send(Text([](Scene& s) {
                      return db("verify", kRemote, kLocal, "valid", s.stream_id("in"), "");
                    })),
                    auth.expect_closed(), expect_live_streams(0)});
}

// An authoritative server that accepts the verification stream and never answers: the key is
// not valid once connect_timeout has passed, and the verification stream is cut.
TEST_F(S2sInboundTest, Dialback_AuthoritativeServerSilent_InvalidAtTheDeadline) {
  config_.s2s.allow_unverified_dialback = true;
  run_script(open_in(Cred::kNone) +
             Script{in.expect_exact(kDialbackAndSm),
                    in.send(db("result", kRemote, kLocal, "", "", "k1"))} +
             authoritative_asked("k1") +
             Script{in.expect_exact(db("result", kLocal, kRemote, "invalid", "", "")),
                    auth.expect_disconnect(), expect_live_streams(1)});
}

// The same key sent twice while it is being checked: one verification stream, one answer.
TEST_F(S2sInboundTest, Dialback_TheSameKeyTwice_CheckedOnce) {
  config_.s2s.allow_unverified_dialback = true;
  run_script(open_in(Cred::kNone) +
             Script{in.expect_exact(kDialbackAndSm),
                    in.send(db("result", kRemote, kLocal, "", "", "k1")),
                    in.send(db("result", kRemote, kLocal, "", "", "k1"))} +
             authoritative_answers("k1", "valid") +
             Script{in.expect_exact(db("result", kLocal, kRemote, "valid", "", "")),
                    expect_no_connection(), expect_live_streams(1)});
}

// One stream cannot make the server open more than Dialback::kMaxPerStream verification
// streams at once: the next key is refused at once, without a connection.
TEST_F(S2sInboundTest, Dialback_TooManyVerificationsFromOneStream_ResourceConstraint) {
  config_.s2s.allow_unverified_dialback = true;
  Script script = open_in(Cred::kNone) + Script{in.expect_exact(kDialbackAndSm)};
  for (std::size_t i = 0; i <= s2s::Dialback::kMaxPerStream; ++i)
    script.push_back(in.send(db("result", kRemote, kLocal, "", "", "k" + std::to_string(i))));
  script.push_back(in.expect(db_error("resource-constraint")));
  run_script(script);
}

Script dialback_errors() {
  return open_in(Cred::kValid) +
         Script{in.expect_exact(kExternalAndDialback),
                in.send(db("result", "", kLocal, "", "", "k1")),
                in.expect(db_error("bad-request")),
                in.send(db("result", kRemote, kLocal, "", "", "")),
                in.expect(db_error("bad-request")),
                in.send(db("result", kRemote, "elsewhere.test", "", "", "k1")),
                in.expect(db_error("item-not-found")),
                in.send(db("result", "blocked.test", kLocal, "", "", "k1")),
                in.expect(db_error("forbidden")),
                in.send(message("a@remote.test", "b@local.test", "m1")),
                in.expect_stream_error("invalid-from"),
                expect_nothing_delivered()};
}

TEST_F(S2sInboundTest, Dialback_Errors) {
  config_.s2s.policy = "blocklist";
  config_.s2s.blocked_domains = {"blocked.test"};
  run_script(dialback_errors());
}

TEST_F(S2sInboundTest, Dialback_Errors_EveryTransportFailure) {
  config_.s2s.policy = "blocklist";
  config_.s2s.blocked_domains = {"blocked.test"};
  every_failure(dialback_errors());
}

TEST_F(S2sInboundTest, Dialback_WithoutAValidCertificate_NotAuthorized) {
  run_script(open_in(Cred::kSelfSigned) +
             Script{in.expect_exact(kDialbackAndSm),
                    in.send(db("result", kRemote, kLocal, "", "", "k1")),
                    in.expect("<db:result from='local.test' to='remote.test' type='error'>"
                              "<error type='cancel'><not-authorized "
                              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>"),
                    expect_live_streams(1)});
}

// Authoritative role (XEP-0220 §2.4): valid only for the key this server would have sent.
TEST_F(S2sInboundTest, Authoritative_AnswersWithTheKeyItWouldCompute) {
  auto verify = [](const std::string& to, const std::string& id, const std::string& k,
                   const std::string& type) {
    return Script{in.send(db("verify", kRemote, to, "", id, k)),
                  in.expect_exact(db("verify", to, kRemote, type, id, ""))};
  };
  run_script(open_in(Cred::kNone) + Script{in.expect_exact(kDialbackAndSm)} +
             verify(kLocal, "s-1", key(kRemote, kLocal, "s-1"), "valid") +
             verify(kLocal2, "s-2", key(kRemote, kLocal2, "s-2"), "valid") +
             verify(kLocal, "s-3", key(kRemote, kLocal, "s-other"), "invalid") +
             verify(kLocal, "s-4", key(kRemote2, kLocal, "s-4"), "invalid") +
             verify("elsewhere.test", "s-5", key(kRemote, "elsewhere.test", "s-5"), "invalid") +
             Script{in.send("</stream:stream>"), in.expect_closed()});
}

TEST_F(S2sInboundTest, Authoritative_EveryTransportFailure) {
  every_failure(
      open_in(Cred::kNone) +
      Script{in.expect_exact(kDialbackAndSm),
             in.send(db("verify", kRemote, kLocal, "", "s-1", key(kRemote, kLocal, "s-1"))),
             in.expect_exact(db("verify", kLocal, kRemote, "valid", "s-1", "")),
             in.send("</stream:stream>"), in.expect_closed()});
}

// XEP-0220 §2.6: further (receiving, originating) pairs on an authenticated stream; a stanza
// of a pair not authenticated yet is refused.
Script piggyback() {
  return open_with_external() +
         Script{in.send(message("a@remote.test", "b@local.test", "m1")),
                expect_delivered("<message id='m1'/>"),
                in.send(db("result", kRemote, kLocal2, "", "", "k2")),
                in.expect_exact(db("result", kLocal2, kRemote, "valid", "", "")),
                in.send(db("result", kRemote2, kLocal, "", "", "k3")),
                in.expect_exact(db("result", kLocal, kRemote2, "valid", "", "")),
                in.send(message("a@remote.test", "b@other.test", "m2")),
                in.send(message("c@remote2.test", "b@local.test", "m3")),
                expect_delivered("<message from='a@remote.test' to='b@other.test' id='m2'/>"),
                expect_delivered("<message from='c@remote2.test' to='b@local.test' id='m3'/>")};
}

TEST_F(S2sInboundTest, Piggyback_FurtherPairsOnOneStream) {
  run_script(piggyback() + Script{in.send(message("c@remote2.test", "b@other.test", "m4")),
                                  in.expect_stream_error("invalid-from")});
}

TEST_F(S2sInboundTest, Piggyback_EveryTransportFailure) {
  every_failure(piggyback());
}

TEST_F(S2sInboundTest, SpoofedFrom_InvalidFrom) {
  run_script(open_with_external() + Script{in.send(message("a@evil.test", "b@local.test", "m1")),
                                           in.expect_stream_error("invalid-from"),
                                           expect_nothing_delivered()});
}

TEST_F(S2sInboundTest, AuthenticatedForAnotherLocalDomain_InvalidFrom) {
  run_script(open_with_external() + Script{in.send(message("a@remote.test", "b@other.test", "m1")),
                                           in.expect_stream_error("invalid-from")});
}

TEST_F(S2sInboundTest, StanzaForANameNotServedHere_HostUnknown) {
  run_script(open_with_external() +
             Script{in.send(message("a@remote.test", "b@elsewhere.test", "m1")),
                    in.expect_stream_error("host-unknown")});
}

TEST_F(S2sInboundTest, StanzaWithoutAddresses_ImproperAddressing) {
  run_script(open_with_external() + Script{in.send("<message id='m1'><body>?</body></message>"),
                                           in.expect_stream_error("improper-addressing")});
}

TEST_F(S2sInboundTest, UnsupportedStanza_UnsupportedStanzaType) {
  for (const char* stanza :
       {"<note from='a@remote.test' to='b@local.test'/>",
        "<message xmlns='urn:example' from='a@remote.test' to='b@local.test'/>"}) {
    SCOPED_TRACE(stanza);
    run_script(open_with_external() + Script{in.send(stanza),
                                             in.expect_stream_error("unsupported-stanza-type"),
                                             expect_nothing_delivered()});
  }
}

TEST_F(S2sInboundTest, StreamErrorFromThePeer_AnsweredWithTheClosingTag) {
  run_script(open_with_external() +
             Script{in.send("<stream:error><undefined-condition "
                            "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"),
                    in.expect_closed()});
}

}  // namespace
}  // namespace waddle::testing

namespace waddle::testing {
namespace {

// Stream management (XEP-0198) as the receiving server.
constexpr const char* kEnable = "<enable xmlns='urn:xmpp:sm:3'/>";
constexpr const char* kEnabled = "<enabled xmlns='urn:xmpp:sm:3'/>";
constexpr const char* kR = "<r xmlns='urn:xmpp:sm:3'/>";
std::string a(int h) {
  return "<a xmlns='urn:xmpp:sm:3' h='" + std::to_string(h) + "'/>";
}
Step set_hold(bool on) {
  return {"service: handlers " + std::string(on ? "hold" : "finish at once"), {}, [on](Scene& s) {
            s.recorder.hold = on;
            return std::string();
          }};
}
Step release_holds() {
  return {"service: held handling finishes", {}, [](Scene& s) {
            s.recorder.holds.clear();
            return std::string();
          }};
}

class S2sInboundSmTest : public S2sInboundTest {};

TEST_F(S2sInboundSmTest, AfterSaslExternal_AcknowledgesWhatWasHandled) {
  run_script(open_with_external() + Script{in.send(kEnable), in.expect_exact(kEnabled),
                                           in.send(message("a@remote.test", "b@local.test", "m1")),
                                           in.send(message("a@remote.test", "b@local.test", "m2")),
                                           in.send(kR), in.expect_exact(a(2)),
                                           expect_delivered("<message id='m2'/>")});
}

// The offer is left out where SASL is about to restart the stream.
TEST_F(S2sInboundSmTest, NotOfferedBeforeSasl) {
  run_script(open_in(Cred::kValid) + Script{in.expect_exact(kExternalAndDialback)});
}

// A peer may enable it as soon as it reads the offer, before its dialback key is checked.
TEST_F(S2sInboundSmTest, EnabledBeforeDialbackCompletes) {
  config_.s2s.allow_unverified_dialback = true;
  run_script(open_in(Cred::kNone) +
             Script{in.expect_exact(kDialbackAndSm), in.send(kEnable), in.expect_exact(kEnabled),
                    in.send(db("result", kRemote, kLocal, "", "", "k1"))} +
             authoritative_answers("k1", "valid") +
             Script{in.expect_exact(db("result", kLocal, kRemote, "valid", "", "")),
                    in.send(message("a@remote.test", "b@local.test", "m1")), in.send(kR),
                    in.expect_exact(a(1))});
}

// A stanza whose handling is still running (an offline store, say) is not acknowledged: the
// answer to <r/> waits for it, and then covers everything handled by then. (Answering at
// once would have sent h='2' first.)
TEST_F(S2sInboundSmTest, AcknowledgesOnlyWhatIsSafelyHandled) {
  run_script(open_with_external() +
             Script{in.send(kEnable), in.expect_exact(kEnabled), set_hold(true),
                    in.send(message("a@remote.test", "b@local.test", "m1")),
                    in.send(message("a@remote.test", "b@local.test", "m2")), in.send(kR),
                    expect_delivered("<message id='m2'/>"), set_hold(false),
                    in.send(message("a@remote.test", "b@local.test", "m3")),
                    in.send(message("a@remote.test", "b@local.test", "m4")),
                    expect_delivered("<message id='m4'/>"), release_holds(), in.expect_exact(a(4)),
                    in.send(kR), in.expect_exact(a(4))});
}

TEST_F(S2sInboundSmTest, EnablingTwice_Failed) {
  run_script(open_with_external() +
             Script{in.send(kEnable), in.expect_exact(kEnabled), in.send(kEnable),
                    in.expect_exact("<failed xmlns='urn:xmpp:sm:3'><unexpected-request "
                                    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"),
                    in.send(message("a@remote.test", "b@local.test", "m1")), in.send(kR),
                    in.expect_exact(a(1))});
}

// The peer closes: what was handled is acknowledged before the closing tag.
TEST_F(S2sInboundSmTest, PeerCloses_FinalAcknowledgementFirst) {
  run_script(open_with_external() + Script{in.send(kEnable), in.expect_exact(kEnabled),
                                           in.send(message("a@remote.test", "b@local.test", "m1")),
                                           in.send("</stream:stream>"), in.expect_exact(a(1)),
                                           in.expect_closed()});
}

}  // namespace
}  // namespace waddle::testing
