// SASL PLAIN parsing (RFC 4616 §2): NUL separators, empty fields, SASLprep of authcid and password.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "sasl/scram.h"

namespace waddle::sasl {
namespace {

std::string msg(std::string_view a, std::string_view b, std::string_view c) {
  std::string out(a);
  out += '\0';
  out += b;
  out += '\0';
  out += c;
  return out;
}

TEST(PlainTest, WithoutAuthzid_Parsed) {
  const auto m = parse_plain(msg("", "juliet", "r0m30"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->authzid, "");
  EXPECT_EQ(m->authcid, "juliet");
  EXPECT_EQ(m->password, "r0m30");
}

TEST(PlainTest, WithAuthzid_KeptAsSent) {
  const auto m = parse_plain(msg("Juliet@Example.COM", "juliet", "r0m30"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->authzid, "Juliet@Example.COM");
}

TEST(PlainTest, PasswordWithSpacesAndPunctuation_Kept) {
  const auto m = parse_plain(msg("", "user", " pass word=,; "));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->password, " pass word=,; ");
}

TEST(PlainTest, Saslprep_AppliedToAuthcidAndPassword) {
  // RFC 4013 §3 examples: SOFT HYPHEN maps to nothing, NO-BREAK SPACE to SPACE.
  const auto m = parse_plain(msg("", "I\xC2\xADX",
                                 "a\xC2\xA0"
                                 "b"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->authcid, "IX");
  EXPECT_EQ(m->password, "a b");
  // NFKC: U+2168 ROMAN NUMERAL NINE becomes "IX".
  const auto n = parse_plain(msg("", "\xE2\x85\xA8", "pw"));
  ASSERT_TRUE(n);
  EXPECT_EQ(n->authcid, "IX");
}

TEST(PlainTest, Unicode_Preserved) {
  const auto m = parse_plain(msg("", "j\xC3\xBCliet", "\xE2\x9C\x93pass"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->authcid, "j\xC3\xBCliet");
  EXPECT_EQ(m->password, "\xE2\x9C\x93pass");
}

TEST(PlainTest, WrongNumberOfNuls_Rejected) {
  EXPECT_FALSE(parse_plain(""));
  EXPECT_FALSE(parse_plain("juliet"));
  EXPECT_FALSE(parse_plain(std::string("juliet\0r0m30", 12)));
  EXPECT_FALSE(parse_plain(std::string("\0juliet\0r0m30\0", 14)));
  EXPECT_FALSE(parse_plain(std::string("a\0b\0c\0d", 7)));
}

TEST(PlainTest, EmptyAuthcidOrPassword_Rejected) {
  EXPECT_FALSE(parse_plain(msg("", "", "r0m30")));
  EXPECT_FALSE(parse_plain(msg("", "juliet", "")));
  EXPECT_FALSE(parse_plain(msg("", "", "")));
  EXPECT_FALSE(parse_plain(std::string(2, '\0')));
}

TEST(PlainTest, PrepToEmpty_Rejected) {
  EXPECT_FALSE(parse_plain(msg("", "\xC2\xAD", "pw")));
  EXPECT_FALSE(parse_plain(msg("", "user", "\xC2\xAD")));
}

TEST(PlainTest, ProhibitedCharacters_Rejected) {
  EXPECT_FALSE(parse_plain(msg("",
                               "a\x07"
                               "b",
                               "pw")));                  // control character
  EXPECT_FALSE(parse_plain(msg("", "user", "p\x7fw")));  // DEL
  EXPECT_FALSE(parse_plain(msg("", "\xff\xfe", "pw")));  // not UTF-8
  EXPECT_FALSE(parse_plain(msg("", "user", "\xc3")));    // truncated UTF-8
}

}  // namespace
}  // namespace waddle::sasl
