// Tests for JID parsing and preparation (RFC 7622 §3, RFC 6122 nodeprep/resourceprep).
#include "core/jid.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace waddle::core {
namespace {

TEST(JidTest, Parse_FullJid) {
  auto jid = Jid::parse("juliet@example.com/balcony");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->local(), "juliet");
  EXPECT_EQ(jid->domain(), "example.com");
  EXPECT_EQ(jid->resource(), "balcony");
  EXPECT_FALSE(jid->is_bare());
  EXPECT_FALSE(jid->is_domain());
  EXPECT_FALSE(jid->empty());
  EXPECT_EQ(jid->str(), "juliet@example.com/balcony");
  EXPECT_EQ(jid->bare_str(), "juliet@example.com");
}

TEST(JidTest, Parse_BareJid) {
  auto jid = Jid::parse("juliet@example.com");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->local(), "juliet");
  EXPECT_EQ(jid->resource(), "");
  EXPECT_TRUE(jid->is_bare());
  EXPECT_FALSE(jid->is_domain());
  EXPECT_EQ(jid->str(), "juliet@example.com");
}

TEST(JidTest, Parse_DomainOnly) {
  auto jid = Jid::parse("example.com");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->local(), "");
  EXPECT_TRUE(jid->is_domain());
  EXPECT_TRUE(jid->is_bare());
  EXPECT_EQ(jid->str(), "example.com");
}

TEST(JidTest, Parse_DomainWithResource) {
  auto jid = Jid::parse("example.com/foo");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->local(), "");
  EXPECT_EQ(jid->resource(), "foo");
  EXPECT_FALSE(jid->is_domain());
  EXPECT_EQ(jid->str(), "example.com/foo");
}

TEST(JidTest, Parse_ResourceSplitsAtFirstSlash) {
  // RFC 7622 §3.1: the resource is everything after the first "/", including "@" and "/".
  auto jid = Jid::parse("juliet@example.com/foo/bar@baz");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->local(), "juliet");
  EXPECT_EQ(jid->domain(), "example.com");
  EXPECT_EQ(jid->resource(), "foo/bar@baz");
}

TEST(JidTest, Parse_AtInResourceOnlyIsNotLocalpart) {
  auto jid = Jid::parse("example.com/a@b");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->local(), "");
  EXPECT_EQ(jid->domain(), "example.com");
  EXPECT_EQ(jid->resource(), "a@b");
}

TEST(JidTest, Parse_RejectsMalformed) {
  for (const char* s : {"", "@example.com", "example.com/", "a@/r", "a@", "@", "/", "/r", "a@b@c",
                        "juliet@", "juliet@/", "@/r", "a@example.com/", "."}) {
    EXPECT_FALSE(Jid::parse(s)) << s;
  }
}

TEST(JidTest, Parse_RejectsForbiddenLocalpartCharacters) {
  for (const char* local : {"a b", "a\"b", "a&b", "a'b", "a:b", "a<b", "a>b"}) {
    EXPECT_FALSE(Jid::parse(std::string(local) + "@example.com")) << local;
    EXPECT_FALSE(Jid::from_parts(local, "example.com")) << local;
  }
  // "/" and "@" cannot reach the localpart through parse, only through from_parts.
  EXPECT_FALSE(Jid::from_parts("a/b", "example.com"));
  EXPECT_FALSE(Jid::from_parts("a@b", "example.com"));
}

TEST(JidTest, Parse_LowercasesLocalpartAndDomain) {
  auto jid = Jid::parse("JuLiEt@EXAMPLE.Com/Balcony");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->local(), "juliet");
  EXPECT_EQ(jid->domain(), "example.com");
  EXPECT_EQ(jid->resource(), "Balcony");
  EXPECT_EQ(*jid, *Jid::parse("juliet@example.com/Balcony"));
  EXPECT_NE(*jid, *Jid::parse("juliet@example.com/balcony"));
}

TEST(JidTest, Nodeprep_CaseFoldsNonAscii) {
  // Nodeprep maps with table B.2: "Straße" folds to "strasse", "ÉCOLE" to "école".
  auto jid = Jid::parse(
      "Stra\xC3\x9F"
      "e@example.com");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->local(), "strasse");
  EXPECT_EQ(nodeprep("\xC3\x89"
                     "COLE"),
            "\xC3\xA9"
            "cole");
}

TEST(JidTest, Resourceprep_KeepsCaseAndSpaces) {
  auto jid = Jid::parse("juliet@example.com/My Phone \xC3\x89");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->resource(), "My Phone \xC3\x89");
}

TEST(JidTest, Resourceprep_NormalizesToNfkc) {
  // U+FB01 LATIN SMALL LIGATURE FI becomes "fi"; U+00AD SOFT HYPHEN is mapped to nothing.
  EXPECT_EQ(resourceprep("\xEF\xAC\x81le"), "file");
  EXPECT_EQ(resourceprep("a\xC2\xAD"
                         "b"),
            "ab");
}

TEST(JidTest, Preparation_AllowsUnassignedCodePoints) {
  // U+1F600 is unassigned in Unicode 3.2 but common in resources.
  EXPECT_EQ(resourceprep("phone \xF0\x9F\x98\x80"), "phone \xF0\x9F\x98\x80");
}

TEST(JidTest, Preparation_RejectsInvalidUtf8AndNul) {
  EXPECT_FALSE(
      nodeprep("a\xFF"
               "b"));
  EXPECT_FALSE(resourceprep("a\xC3"));
  EXPECT_FALSE(
      nameprep_domain("ex\xFF"
                      "ample.com"));
  EXPECT_FALSE(nodeprep(std::string("a\0b", 3)));
  EXPECT_FALSE(resourceprep(std::string("a\0b", 3)));
  EXPECT_FALSE(nameprep_domain(std::string("a\0b.com", 7)));
  EXPECT_FALSE(Jid::parse(std::string("juliet@example.com/a\0b", 22)));
}

TEST(JidTest, Preparation_RejectsPartThatMapsToNothing) {
  EXPECT_FALSE(nodeprep("\xC2\xAD"));
  EXPECT_FALSE(resourceprep("\xC2\xAD"));
  EXPECT_FALSE(Jid::parse("\xC2\xAD@example.com"));
  EXPECT_FALSE(Jid::parse("example.com/\xC2\xAD"));
}

TEST(JidTest, Domain_IdnBecomesLowercaseALabel) {
  EXPECT_EQ(nameprep_domain("m\xC3\xBCnchen.de"), "xn--mnchen-3ya.de");
  EXPECT_EQ(nameprep_domain("M\xC3\x9CNCHEN.DE"), "xn--mnchen-3ya.de");
  EXPECT_EQ(nameprep_domain("XN--MNCHEN-3YA.de"), "xn--mnchen-3ya.de");
  auto u = Jid::parse("anna@m\xC3\xBCnchen.de");
  auto a = Jid::parse("anna@xn--mnchen-3ya.de");
  ASSERT_TRUE(u);
  ASSERT_TRUE(a);
  EXPECT_EQ(*u, *a);
  EXPECT_EQ(u->str(), "anna@xn--mnchen-3ya.de");
}

TEST(JidTest, Domain_NonTransitionalKeepsSharpS) {
  // IDNA2008 (UTS #46 non-transitional): "ß" is kept, not mapped to "ss".
  EXPECT_EQ(nameprep_domain("stra\xC3\x9F"
                            "e.de"),
            "xn--strae-oqa.de");
}

TEST(JidTest, Domain_IdeographicFullStopSeparatesLabels) {
  // RFC 7622 §3.2: U+3002, U+FF0E and U+FF61 are label separators.
  EXPECT_EQ(nameprep_domain("example\xE3\x80\x82"
                            "com"),
            "example.com");
  EXPECT_EQ(nameprep_domain("example\xEF\xBC\x8E"
                            "com"),
            "example.com");
  EXPECT_EQ(nameprep_domain("example\xEF\xBD\xA1"
                            "com\xE3\x80\x82"),
            "example.com");
}

TEST(JidTest, Domain_StripsOneTrailingDot) {
  EXPECT_EQ(nameprep_domain("example.com."), "example.com");
  EXPECT_FALSE(nameprep_domain("example.com.."));
  EXPECT_FALSE(nameprep_domain("."));
  auto jid = Jid::parse("juliet@example.com./r");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->domain(), "example.com");
  EXPECT_EQ(*jid, *Jid::parse("juliet@example.com/r"));
}

TEST(JidTest, Domain_RejectsEmptyLabelsAndBadCharacters) {
  for (const char* d : {"", ".example.com", "example..com", "a b.com", "a_b.com", "a:b",
                        "exa<mple.com", "-example.com", "example-.com",
                        "a\xEF\xBC\xA0"
                        "b.com",
                        "\xE2\x98\x83.com", "xn--abc.com", "::1", "[::1", "[example.com]"}) {
    EXPECT_FALSE(nameprep_domain(d)) << d;
  }
}

TEST(JidTest, Domain_AcceptsIpLiteralsUnchanged) {
  EXPECT_EQ(nameprep_domain("192.0.2.1"), "192.0.2.1");
  EXPECT_EQ(nameprep_domain("[2001:DB8::1]"), "[2001:DB8::1]");
  EXPECT_EQ(nameprep_domain("[::1]"), "[::1]");
  auto jid = Jid::parse("juliet@[::1]/r");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->domain(), "[::1]");
  EXPECT_EQ(jid->resource(), "r");
}

TEST(JidTest, Domain_LabelLimitIs63Bytes) {
  const std::string label63(63, 'a');
  EXPECT_EQ(nameprep_domain(label63 + ".com"), label63 + ".com");
  EXPECT_FALSE(nameprep_domain(label63 + "a.com"));
}

TEST(JidTest, Domain_TotalLimitIs1023Bytes) {
  // 16 labels of 63 bytes plus separators: 16 * 64 - 1 = 1023 bytes.
  std::string domain;
  for (int i = 0; i < 16; ++i) {
    if (i) domain += '.';
    domain += std::string(63, 'a');
  }
  ASSERT_EQ(domain.size(), 1023u);
  EXPECT_EQ(nameprep_domain(domain), domain);
  EXPECT_FALSE(nameprep_domain(domain + "a"));
  EXPECT_FALSE(nameprep_domain("b." + domain));
}

TEST(JidTest, Localpart_LimitIs1023Bytes) {
  const std::string local(1023, 'a');
  auto jid = Jid::parse(local + "@example.com");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->local(), local);
  EXPECT_FALSE(Jid::parse(local + "a@example.com"));
  EXPECT_FALSE(nodeprep(local + "a"));
}

TEST(JidTest, Resource_LimitIs1023Bytes) {
  const std::string resource(1023, 'r');
  auto jid = Jid::parse("example.com/" + resource);
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->resource(), resource);
  EXPECT_FALSE(Jid::parse("example.com/" + resource + "r"));
}

TEST(JidTest, Localpart_LimitAppliesAfterPreparation) {
  // U+0130 (2 bytes) case-folds to "i" + U+0307 (3 bytes): 1023 bytes of input grow beyond
  // the limit, and the limit is on the prepared form (RFC 7622 §3.3).
  std::string local;
  for (int i = 0; i < 511; ++i) local += "\xC4\xB0";  // 1022 bytes
  local += "a";
  ASSERT_EQ(local.size(), 1023u);
  EXPECT_FALSE(nodeprep(local));
}

TEST(JidTest, FromParts_EmptyLocalAndResourceMeanAbsent) {
  auto jid = Jid::from_parts("", "Example.COM", "");
  ASSERT_TRUE(jid);
  EXPECT_TRUE(jid->is_domain());
  EXPECT_EQ(jid->str(), "example.com");
  auto full = Jid::from_parts("Romeo", "example.net", "Orchard");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->str(), "romeo@example.net/Orchard");
}

TEST(JidTest, FromParts_RejectsInvalidDomain) {
  EXPECT_FALSE(Jid::from_parts("romeo", ""));
  EXPECT_FALSE(Jid::from_parts("romeo", "exa mple.net"));
  EXPECT_FALSE(Jid::from_parts("romeo", "example.net/r"));
  EXPECT_FALSE(Jid::from_parts("romeo", "a@example.net"));
}

TEST(JidTest, Bare_DropsResourceOnly) {
  auto jid = Jid::parse("juliet@example.com/balcony");
  ASSERT_TRUE(jid);
  const Jid bare = jid->bare();
  EXPECT_EQ(bare.str(), "juliet@example.com");
  EXPECT_TRUE(bare.is_bare());
  EXPECT_EQ(bare.local(), "juliet");
  EXPECT_EQ(jid->resource(), "balcony");
}

TEST(JidTest, WithResource_PreparesResource) {
  auto jid = Jid::parse("juliet@example.com/balcony");
  ASSERT_TRUE(jid);
  auto other = jid->with_resource(
      "\xEF\xAC\x81"
      "eld");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->str(), "juliet@example.com/field");
  EXPECT_EQ(jid->resource(), "balcony");
}

TEST(JidTest, WithResource_RejectsEmptyOrInvalid) {
  auto jid = Jid::parse("juliet@example.com");
  ASSERT_TRUE(jid);
  EXPECT_FALSE(jid->with_resource(""));
  EXPECT_FALSE(jid->with_resource("\xC2\xAD"));
  EXPECT_FALSE(jid->with_resource(std::string(1024, 'r')));
  EXPECT_FALSE(Jid().with_resource("r"));
}

TEST(JidTest, DefaultJid_IsEmpty) {
  const Jid jid;
  EXPECT_TRUE(jid.empty());
  EXPECT_EQ(jid.str(), "");
}

TEST(JidTest, Ordering_IsConsistentWithEquality) {
  auto a = *Jid::parse("a@example.com");
  auto b = *Jid::parse("b@example.com");
  EXPECT_LT(a, b);
  EXPECT_EQ(a, *Jid::parse("A@EXAMPLE.COM"));
}

TEST(JidTest, Saslprep_MapsAndRejects) {
  // RFC 4013 §3 examples.
  EXPECT_EQ(saslprep("I\xC2\xAD"
                     "X"),
            "IX");
  EXPECT_EQ(saslprep("user"), "user");
  EXPECT_EQ(saslprep("USER"), "USER");
  EXPECT_EQ(saslprep("\xC2\xAA"), "a");
  EXPECT_EQ(saslprep("\xE2\x85\xA8"), "IX");
  EXPECT_FALSE(saslprep("\x07"));
  EXPECT_FALSE(
      saslprep("\xD8\xA7"
               "1"));
  // Non-ASCII space (U+00A0) maps to SPACE.
  EXPECT_EQ(saslprep("a\xC2\xA0"
                     "b"),
            "a b");
}

// The all-ASCII fast paths must give exactly what libidn/libidn2 give: every ASCII character
// (controls, space, the prohibited ones, letters of both cases) alone and between letters,
// and host names with the label shapes the fast path accepts or leaves to the library.
TEST(JidTest, AsciiFastPaths_AgreeWithTheLibraries) {
  std::vector<std::string> samples;
  for (int c = 1; c < 0x80; ++c) {
    const std::string ch(1, static_cast<char>(c));
    samples.push_back(ch);
    samples.push_back("a" + ch + "B");
    samples.push_back(ch + "xY");
  }
  for (const auto& s : samples) {
    EXPECT_EQ(nodeprep(s), nodeprep_library(s))
        << "nodeprep of 0x" << std::hex << int(static_cast<unsigned char>(s[0]));
    EXPECT_EQ(resourceprep(s), resourceprep_library(s)) << "resourceprep of " << s;
  }
  const std::vector<std::string> domains = {"example.org",
                                            "Example.ORG",
                                            "example.org.",
                                            "a.b.c.d",
                                            "x",
                                            "X1-2y.test",
                                            "conference.Example.org",
                                            "a-b.c-d",
                                            "ab--cd.test",
                                            "-ab.test",
                                            "ab-.test",
                                            "xn--bcher-kva.example",
                                            "XN--BCHER-KVA.example",
                                            "xn--zzz.example",
                                            "1.2.3.4",
                                            "1.2.3.4a",
                                            "123.test",
                                            "a..b",
                                            ".a",
                                            "a.",
                                            "a..",
                                            "under_score.test",
                                            "sp ace.test",
                                            "a.b-.c",
                                            std::string(63, 'a') + ".test",
                                            std::string(64, 'a') + ".test",
                                            "127.0.0.1",
                                            "[::1]",
                                            "w-two-a.test",
                                            "A"};
  for (const auto& d : domains) EXPECT_EQ(nameprep_domain(d), nameprep_domain_library(d)) << d;
  for (int c = 1; c < 0x80; ++c) {
    const std::string d = "a" + std::string(1, static_cast<char>(c)) + "b.test";
    EXPECT_EQ(nameprep_domain(d), nameprep_domain_library(d)) << "domain with 0x" << std::hex << c;
  }
  // Whole names around the 1023-byte limit (63-byte labels), with and without a final dot.
  for (std::size_t total : {1022u, 1023u, 1024u}) {
    std::string d;
    while (d.size() < total) {
      if (!d.empty()) d.push_back('.');
      d += std::string(std::min<std::size_t>(63, total - d.size()), 'q');
    }
    if (d.back() == '.') d.back() = 'r';
    EXPECT_EQ(nameprep_domain(d), nameprep_domain_library(d)) << d.size();
    EXPECT_EQ(nameprep_domain(d + "."), nameprep_domain_library(d + ".")) << d.size();
  }
  // Long parts: the limit is on the prepared length, which for printable ASCII is the raw one.
  for (std::size_t n : {1022u, 1023u, 1024u}) {
    const std::string s(n, 'Q');
    EXPECT_EQ(nodeprep(s), nodeprep_library(s)) << n;
    EXPECT_EQ(resourceprep(s), resourceprep_library(s)) << n;
  }
}

}  // namespace
}  // namespace waddle::core
