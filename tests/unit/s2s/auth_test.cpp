// S2S authentication pieces: XEP-0185 dialback keys (the XEP's own example) and RFC 6125 /
// RFC 6120 §13.7.1.2 certificate identity, with certificates built here via the OpenSSL API.
#include "s2s/auth.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace waddle::s2s {
namespace {

// --- Dialback keys (XEP-0185) ---

// XEP-0185 §3 "Example": Receiving Server xmpp.example.com, Originating Server example.org,
// Secret s3cr3tf0rd14lb4ck, Stream ID D60000229F.
TEST(DialbackKeyTest, MatchesXep0185Example_ExampleValues) {
  EXPECT_EQ(dialback_key("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F"),
            "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643");
}

// A second vector, computed independently with the openssl CLI:
//   K=$(echo -n s3cr3tf0rd14lb4ck | openssl dgst -sha256 -r | cut -d' ' -f1)
//   echo -n "montague.example capulet.example D60000229F" | openssl dgst -sha256 -hmac "$K"
TEST(DialbackKeyTest, MatchesOpensslCli_OtherDomains) {
  EXPECT_EQ(dialback_key("s3cr3tf0rd14lb4ck", "montague.example", "capulet.example", "D60000229F"),
            "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3");
}

TEST(DialbackKeyTest, IsLowercaseHex_Always64Digits) {
  const std::string key = dialback_key("secret", "a.example", "b.example", "id");
  ASSERT_EQ(key.size(), 64u);
  for (char c : key) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << key;
}

TEST(DialbackKeyTest, Changes_WhenAnyInputChanges) {
  const std::string base = dialback_key("secret", "recv.example", "orig.example", "abc");
  EXPECT_EQ(base, dialback_key("secret", "recv.example", "orig.example", "abc"));
  EXPECT_NE(base, dialback_key("secret2", "recv.example", "orig.example", "abc"));
  EXPECT_NE(base, dialback_key("secret", "recv2.example", "orig.example", "abc"));
  EXPECT_NE(base, dialback_key("secret", "recv.example", "orig2.example", "abc"));
  EXPECT_NE(base, dialback_key("secret", "recv.example", "orig.example", "abd"));
  // Receiving and originating have distinct roles.
  EXPECT_NE(base, dialback_key("secret", "orig.example", "recv.example", "abc"));
}

// XEP-0185 §2 note 5: the space separator keeps "example.info" + "rm.example.org" apart from
// "example.in" + "form.example.org".
TEST(DialbackKeyTest, Differs_WhenConcatenationWouldBeAmbiguous) {
  EXPECT_NE(dialback_key("s", "example.info", "rm.example.org", "id"),
            dialback_key("s", "example.in", "form.example.org", "id"));
}

TEST(DialbackKeyEqualTest, True_ForIdenticalKeys) {
  const std::string key = dialback_key("s", "a.example", "b.example", "id");
  EXPECT_TRUE(dialback_key_equal(key, std::string(key)));
}

TEST(DialbackKeyEqualTest, False_ForDifferentKeys) {
  std::string a = dialback_key("s", "a.example", "b.example", "id");
  std::string b = a;
  b.back() = b.back() == '0' ? '1' : '0';
  EXPECT_FALSE(dialback_key_equal(a, b));
  b = a;
  b.front() = b.front() == '0' ? '1' : '0';
  EXPECT_FALSE(dialback_key_equal(a, b));
}

TEST(DialbackKeyEqualTest, False_ForPrefixOrEmpty) {
  const std::string key = dialback_key("s", "a.example", "b.example", "id");
  EXPECT_FALSE(dialback_key_equal(key, key.substr(0, 63)));
  EXPECT_FALSE(dialback_key_equal(key, ""));
  EXPECT_FALSE(dialback_key_equal("", ""));
}

// --- Certificate identity (RFC 6125, RFC 6120 §13.7.1.2) ---

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

enum class SanKind { kDns, kXmppAddr, kSrv, kUri, kXmppAddrAsIa5 };
struct San {
  SanKind kind;
  std::string value;
};

GENERAL_NAME* other_name(int nid, int string_type, const std::string& value) {
  ASN1_STRING* str = ASN1_STRING_type_new(string_type);
  ASN1_STRING_set(str, value.data(), static_cast<int>(value.size()));
  ASN1_TYPE* type = ASN1_TYPE_new();
  ASN1_TYPE_set(type, string_type, str);
  GENERAL_NAME* name = GENERAL_NAME_new();
  GENERAL_NAME_set0_othername(name, OBJ_dup(OBJ_nid2obj(nid)), type);
  return name;
}

GENERAL_NAME* ia5_name(int gen_type, const std::string& value) {
  ASN1_IA5STRING* str = ASN1_IA5STRING_new();
  ASN1_STRING_set(str, value.data(), static_cast<int>(value.size()));
  GENERAL_NAME* name = GENERAL_NAME_new();
  GENERAL_NAME_set0_value(name, gen_type, str);
  return name;
}

// A self-signed certificate with an optional subject CN and, when `sans` is set, a
// subjectAltName extension holding exactly those names (possibly none).
X509Ptr make_cert(std::optional<std::string> cn, std::optional<std::vector<San>> sans) {
  std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_EC_gen("P-256"));
  EXPECT_TRUE(key);
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("Waddle tests"), -1, -1, 0);
  if (cn) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn->data()),
                               static_cast<int>(cn->size()), -1, 0);
  }
  X509_set_issuer_name(cert.get(), name);
  if (sans) {
    GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
    for (const San& san : *sans) {
      GENERAL_NAME* gn = nullptr;
      switch (san.kind) {
        case SanKind::kDns:
          gn = ia5_name(GEN_DNS, san.value);
          break;
        case SanKind::kUri:
          gn = ia5_name(GEN_URI, san.value);
          break;
        case SanKind::kXmppAddr:
          gn = other_name(NID_XmppAddr, V_ASN1_UTF8STRING, san.value);
          break;
        case SanKind::kXmppAddrAsIa5:
          gn = other_name(NID_XmppAddr, V_ASN1_IA5STRING, san.value);
          break;
        case SanKind::kSrv:
          gn = other_name(NID_SRVName, V_ASN1_IA5STRING, san.value);
          break;
      }
      sk_GENERAL_NAME_push(names, gn);
    }
    EXPECT_EQ(X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT), 1);
    GENERAL_NAMES_free(names);
  }
  X509_set_pubkey(cert.get(), key.get());
  EXPECT_GT(X509_sign(cert.get(), key.get(), EVP_sha256()), 0);
  // Round-trip through DER so the test sees what a peer would present.
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert.get(), &der);
  EXPECT_GT(len, 0);
  const unsigned char* p = der;
  X509Ptr parsed(d2i_X509(nullptr, &p, len));
  OPENSSL_free(der);
  EXPECT_TRUE(parsed);
  return parsed;
}

X509Ptr san_cert(std::vector<San> sans) {
  return make_cert(std::nullopt, std::move(sans));
}
X509Ptr dns_cert(std::string dns) {
  return san_cert({{SanKind::kDns, std::move(dns)}});
}

TEST(CertificateMatchTest, DnsId_MatchesExactDomain) {
  auto cert = dns_cert("example.org");
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "example.org"));
}

TEST(CertificateMatchTest, DnsId_MatchesCaseInsensitively) {
  auto cert = dns_cert("Example.ORG");
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "example.org"));
  auto lower = dns_cert("example.org");
  EXPECT_TRUE(certificate_matches_domain(lower.get(), "EXAMPLE.Org"));
}

TEST(CertificateMatchTest, DnsId_RejectsAnotherDomain) {
  auto cert = dns_cert("example.org");
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "example.net"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "badexample.org"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "rooms.example.org"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "org"));
}

TEST(CertificateMatchTest, DnsId_MatchesAnyOfSeveralNames) {
  auto cert = san_cert({{SanKind::kDns, "other.example"}, {SanKind::kDns, "example.org"}});
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "example.org"));
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "other.example"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "third.example"));
}

TEST(CertificateMatchTest, Wildcard_MatchesOneLeftMostLabel) {
  auto cert = dns_cert("*.example.org");
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "a.example.org"));
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "Rooms.Example.org"));
}

TEST(CertificateMatchTest, Wildcard_DoesNotMatchBareDomain) {
  auto cert = dns_cert("*.example.org");
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "example.org"));
}

TEST(CertificateMatchTest, Wildcard_DoesNotMatchTwoLabels) {
  auto cert = dns_cert("*.example.org");
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "a.b.example.org"));
}

TEST(CertificateMatchTest, Wildcard_DoesNotMatchOtherParent) {
  auto cert = dns_cert("*.example.org");
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "a.badexample.org"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "a.example.net"));
}

TEST(CertificateMatchTest, PartialWildcard_IsNotAccepted) {
  auto partial = dns_cert("a*.example.org");
  EXPECT_FALSE(certificate_matches_domain(partial.get(), "ab.example.org"));
  auto inner = dns_cert("a.*.example.org");
  EXPECT_FALSE(certificate_matches_domain(inner.get(), "a.b.example.org"));
}

TEST(CertificateMatchTest, ReferenceWithWildcardOrLeadingDot_NeverMatches) {
  auto wildcard = dns_cert("*.example.org");
  EXPECT_FALSE(certificate_matches_domain(wildcard.get(), "*.example.org"));
  // X509_check_host reads a leading dot as "any subdomain"; a domain never has one.
  auto sub = dns_cert("a.example.org");
  EXPECT_FALSE(certificate_matches_domain(sub.get(), ".example.org"));
  EXPECT_FALSE(certificate_matches_domain(sub.get(), ""));
}

TEST(CertificateMatchTest, DnsIdWithEmbeddedNul_DoesNotMatch) {
  auto cert = dns_cert(std::string("example.org\0.evil.example", 25));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "example.org"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "evil.example"));
}

TEST(CertificateMatchTest, XmppAddr_MatchesDomain) {
  auto cert = san_cert({{SanKind::kXmppAddr, "example.org"}});
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "example.org"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "example.net"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "a.example.org"));
}

TEST(CertificateMatchTest, XmppAddr_WithLocalpartOrWildcard_DoesNotMatch) {
  auto user = san_cert({{SanKind::kXmppAddr, "user@example.org"}});
  EXPECT_FALSE(certificate_matches_domain(user.get(), "example.org"));
  auto wildcard = san_cert({{SanKind::kXmppAddr, "*.example.org"}});
  EXPECT_FALSE(certificate_matches_domain(wildcard.get(), "a.example.org"));
}

TEST(CertificateMatchTest, XmppAddr_NotUtf8String_IsIgnored) {
  auto cert = san_cert({{SanKind::kXmppAddrAsIa5, "example.org"}});
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "example.org"));
}

TEST(CertificateMatchTest, XmppAddr_ULabelMatchesALabelDomain) {
  auto cert = san_cert({{SanKind::kXmppAddr, "m\xC3\xBCnchen.example"}});  // münchen.example
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "xn--mnchen-3ya.example"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "munchen.example"));
}

TEST(CertificateMatchTest, SrvId_MatchesXmppServerService) {
  auto cert = san_cert({{SanKind::kSrv, "_xmpp-server.example.org"}});
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "example.org"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "example.net"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "a.example.org"));
}

TEST(CertificateMatchTest, SrvId_ServiceNameIsCaseInsensitive) {
  auto cert = san_cert({{SanKind::kSrv, "_XMPP-Server.Example.org"}});
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "example.org"));
}

TEST(CertificateMatchTest, SrvId_ForOtherServiceOrMalformed_DoesNotMatch) {
  auto client = san_cert({{SanKind::kSrv, "_xmpp-client.example.org"}});
  EXPECT_FALSE(certificate_matches_domain(client.get(), "example.org"));
  auto bare = san_cert({{SanKind::kSrv, "example.org"}});
  EXPECT_FALSE(certificate_matches_domain(bare.get(), "example.org"));
  auto prefix_only = san_cert({{SanKind::kSrv, "_xmpp-server."}});
  EXPECT_FALSE(certificate_matches_domain(prefix_only.get(), "example.org"));
  auto wildcard = san_cert({{SanKind::kSrv, "_xmpp-server.*.example.org"}});
  EXPECT_FALSE(certificate_matches_domain(wildcard.get(), "a.example.org"));
}

TEST(CertificateMatchTest, CommonName_UsedWhenNoSubjectAltName) {
  auto cert = make_cert("example.org", std::nullopt);
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "example.org"));
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "Example.Org"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "example.net"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "a.example.org"));
}

TEST(CertificateMatchTest, CommonName_IgnoredWhenSubjectAltNamePresent) {
  auto other_dns = make_cert("example.org", std::vector<San>{{SanKind::kDns, "other.example"}});
  EXPECT_FALSE(certificate_matches_domain(other_dns.get(), "example.org"));
  auto uri_only =
      make_cert("example.org", std::vector<San>{{SanKind::kUri, "https://example.org/"}});
  EXPECT_FALSE(certificate_matches_domain(uri_only.get(), "example.org"));
  auto empty_san = make_cert("example.org", std::vector<San>{});
  EXPECT_FALSE(certificate_matches_domain(empty_san.get(), "example.org"));
}

TEST(CertificateMatchTest, CommonName_WildcardNotHonoured) {
  auto cert = make_cert("*.example.org", std::nullopt);
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "a.example.org"));
}

TEST(CertificateMatchTest, NoIdentity_DoesNotMatch) {
  auto cert = make_cert(std::nullopt, std::nullopt);
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "example.org"));
  EXPECT_FALSE(certificate_matches_domain(nullptr, "example.org"));
}

TEST(CertificateMatchTest, IdnDnsId_MatchesALabelAndULabelReference) {
  auto cert = dns_cert("xn--mnchen-3ya.example");
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "xn--mnchen-3ya.example"));
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "m\xC3\xBCnchen.example"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "munchen.example"));
}

TEST(CertificateMatchTest, IdnWildcard_MatchesALabelSubdomain) {
  auto cert = dns_cert("*.xn--mnchen-3ya.example");
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "chat.xn--mnchen-3ya.example"));
  EXPECT_TRUE(certificate_matches_domain(cert.get(), "xn--bcher-kva.xn--mnchen-3ya.example"));
  EXPECT_FALSE(certificate_matches_domain(cert.get(), "xn--mnchen-3ya.example"));
}

}  // namespace
}  // namespace waddle::s2s
