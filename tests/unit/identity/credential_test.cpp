// Federated identity credentials: Ed25519 against RFC 8032 §7.1, the compact JWS EdDSA format
// (RFC 7515 / 7519 / 8037) with its claim checks, strict rejection of malformed tokens (built
// here with valid signatures, so that only the structure is at fault), and the key file.
#include "identity/credential.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace waddle::identity {
namespace {

constexpr std::int64_t kNow = 1'700'000'000;

std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string to_hex(std::string_view data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : data) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0x0f]);
  }
  return out;
}

// Independent base64url (RFC 4648 §5, unpadded) for building and taking apart tokens.
constexpr std::string_view kUrlAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64url(std::string_view data) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : data) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kUrlAlphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kUrlAlphabet[(acc << (6 - bits)) & 0x3f]);
  return out;
}

std::string unb64url(std::string_view in) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    acc = (acc << 6) | static_cast<std::uint32_t>(kUrlAlphabet.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::vector<std::string> split(const std::string& token) {
  std::vector<std::string> parts;
  std::stringstream in(token);
  std::string part;
  while (std::getline(in, part, '.')) parts.push_back(part);
  return parts;
}

// A token from literal header and payload JSON, correctly signed by `key`.
std::string make_token(const SigningKey& key, std::string_view header, std::string_view payload) {
  std::string input = b64url(header) + "." + b64url(payload);
  return input + "." + b64url(key.sign(input));
}

std::string header_for(const SigningKey& key) {
  return R"({"alg":"EdDSA","typ":"JWT","kid":")" + key.key_id() + R"("})";
}

constexpr std::string_view kGoodPayload =
    R"({"iss":"waddle.social","sub":"abc123@waddle.social","aud":"remote.example",)"
    R"("iat":1700000000,"exp":1700000300,"jti":"0123456789abcdef"})";

Claims sample_claims() {
  Claims c;
  c.issuer = "waddle.social";
  c.subject = "abc123@waddle.social";
  c.audience = "remote.example";
  c.did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
  c.issued_at = kNow;
  c.expires_at = kNow + 300;
  return c;
}

VerifyResult verify_sample(const std::string& token, const SigningKey& key,
                           std::int64_t now = kNow) {
  return verify(token, key.public_key(), "waddle.social", "abc123@waddle.social", "remote.example",
                now);
}

// --- Ed25519 (RFC 8032 §7.1) ---

TEST(Ed25519Test, MatchesRfc8032_Test1EmptyMessage) {
  const SigningKey key = SigningKey::from_raw_private(
      from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
  EXPECT_EQ(to_hex(key.public_key()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  const std::string sig = key.sign("");
  EXPECT_EQ(to_hex(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39"
            "701cf9b46bd25bf5f0595bbe24655141438e7a100b");
  EXPECT_TRUE(verify_signature(key.public_key(), "", sig));
  // Computed with: python3 hashlib.sha256(pk).hexdigest()[:16], base64.b64encode(pk).
  EXPECT_EQ(key.key_id(), "21fe31dfa154a261");
  EXPECT_EQ(key.public_key_b64(), "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
}

TEST(Ed25519Test, MatchesRfc8032_Test2OneByteMessage) {
  const SigningKey key = SigningKey::from_raw_private(
      from_hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"));
  EXPECT_EQ(to_hex(key.public_key()),
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
  const std::string sig = key.sign("\x72");
  EXPECT_EQ(to_hex(sig),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f36"
            "13d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
  EXPECT_TRUE(verify_signature(key.public_key(), "\x72", sig));
}

TEST(Ed25519Test, RejectsBadInputs_WrongLengthsAndAlteredData) {
  const SigningKey key = SigningKey::generate();
  const std::string sig = key.sign("hello");
  ASSERT_EQ(sig.size(), 64u);
  EXPECT_TRUE(verify_signature(key.public_key(), "hello", sig));
  EXPECT_FALSE(verify_signature(key.public_key(), "hellO", sig));
  EXPECT_FALSE(verify_signature(key.public_key().substr(0, 31), "hello", sig));
  EXPECT_FALSE(verify_signature(key.public_key() + "x", "hello", sig));
  EXPECT_FALSE(verify_signature(key.public_key(), "hello", sig.substr(0, 63)));
  EXPECT_FALSE(verify_signature(key.public_key(), "hello", ""));
  std::string flipped = sig;
  flipped[10] = static_cast<char>(flipped[10] ^ 0x01);
  EXPECT_FALSE(verify_signature(key.public_key(), "hello", flipped));
  EXPECT_FALSE(verify_signature(SigningKey::generate().public_key(), "hello", sig));
}

TEST(Ed25519Test, FromRawPrivate_RejectsWrongLength) {
  EXPECT_THROW(SigningKey::from_raw_private(std::string(31, 'a')), std::invalid_argument);
  EXPECT_THROW(SigningKey::from_raw_private(""), std::invalid_argument);
}

TEST(SigningKeyTest, Generate_FreshKeysWithConsistentIds) {
  const SigningKey a = SigningKey::generate();
  const SigningKey b = SigningKey::generate();
  EXPECT_EQ(a.public_key().size(), 32u);
  EXPECT_NE(a.public_key(), b.public_key());
  EXPECT_EQ(a.key_id().size(), 16u);
  EXPECT_NE(a.key_id(), b.key_id());
  EXPECT_EQ(a.key_id().find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(a.public_key_b64().size(), 44u);
  EXPECT_EQ(decode_public_key_b64(a.public_key_b64()), a.public_key());
}

TEST(SigningKeyTest, CopiesShareTheKey_MovedFromCannotSign) {
  SigningKey a = SigningKey::generate();
  const SigningKey copy = a;  // NOLINT(performance-unnecessary-copy-initialization)
  EXPECT_EQ(copy.key_id(), a.key_id());
  EXPECT_TRUE(verify_signature(a.public_key(), "x", copy.sign("x")));
  const SigningKey moved = std::move(a);
  EXPECT_TRUE(verify_signature(moved.public_key(), "x", moved.sign("x")));
  EXPECT_THROW(a.sign("x"), std::runtime_error);  // NOLINT(bugprone-use-after-move)
}

TEST(PublicKeyB64Test, DecodesStandardBase64_StrictlyOtherwise) {
  const std::string pk =
      from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  EXPECT_EQ(decode_public_key_b64("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="), pk);
  EXPECT_EQ(decode_public_key_b64("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo"), pk);
  // base64url alphabet, non-canonical last character, whitespace, wrong lengths, bad padding.
  EXPECT_FALSE(decode_public_key_b64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="));
  EXPECT_FALSE(decode_public_key_b64("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURp="));
  EXPECT_FALSE(decode_public_key_b64(" 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="));
  EXPECT_FALSE(decode_public_key_b64("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUR=="));
  EXPECT_FALSE(decode_public_key_b64("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=="));
  EXPECT_FALSE(decode_public_key_b64("AAAA"));
  EXPECT_FALSE(decode_public_key_b64(""));
}

// --- issue / peek / verify ---

TEST(CredentialTest, RoundTrip_AllClaims) {
  const SigningKey key = SigningKey::generate();
  const std::string token = issue(key, sample_claims());
  const VerifyResult r = verify_sample(token, key);
  ASSERT_EQ(r.verdict, Verdict::kValid) << describe(r.verdict);
  EXPECT_EQ(r.claims.issuer, "waddle.social");
  EXPECT_EQ(r.claims.subject, "abc123@waddle.social");
  EXPECT_EQ(r.claims.audience, "remote.example");
  EXPECT_EQ(r.claims.did, "did:plc:ewvi7nxzyoun6zhxrhs64oiz");
  EXPECT_EQ(r.claims.issued_at, kNow);
  EXPECT_EQ(r.claims.expires_at, kNow + 300);
  EXPECT_EQ(r.claims.key_id, key.key_id());
  EXPECT_EQ(r.claims.id.size(), 16u);
  EXPECT_EQ(r.claims.id.find_first_not_of("0123456789abcdef"), std::string::npos);

  const std::optional<Claims> peeked = peek(token);
  ASSERT_TRUE(peeked);
  EXPECT_EQ(peeked->issuer, "waddle.social");
  EXPECT_EQ(peeked->key_id, key.key_id());
  EXPECT_EQ(peeked->id, r.claims.id);
}

TEST(CredentialTest, Format_CompactJwsWithExpectedHeaderAndPayload) {
  const SigningKey key = SigningKey::generate();
  Claims c = sample_claims();
  c.audience.clear();
  c.did.clear();
  c.id = "feedfacecafebeef";
  const std::string token = issue(key, c);
  EXPECT_EQ(token.find('='), std::string::npos);
  const std::vector<std::string> parts = split(token);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(unb64url(parts[0]), header_for(key));
  // Empty aud and did are omitted; the given jti is kept.
  EXPECT_EQ(unb64url(parts[1]),
            R"({"iss":"waddle.social","sub":"abc123@waddle.social","iat":1700000000,)"
            R"("exp":1700000300,"jti":"feedfacecafebeef"})");
  EXPECT_EQ(unb64url(parts[2]).size(), 64u);
  EXPECT_TRUE(verify_signature(key.public_key(), parts[0] + "." + parts[1], unb64url(parts[2])));
}

TEST(CredentialTest, RandomJti_DiffersBetweenTokens) {
  const SigningKey key = SigningKey::generate();
  EXPECT_NE(peek(issue(key, sample_claims()))->id, peek(issue(key, sample_claims()))->id);
}

TEST(CredentialTest, Issue_RejectsClaimsThatWouldNotVerify) {
  const SigningKey key = SigningKey::generate();
  Claims c = sample_claims();
  c.issuer.clear();
  EXPECT_THROW(issue(key, c), std::invalid_argument);
  c = sample_claims();
  c.subject.clear();
  EXPECT_THROW(issue(key, c), std::invalid_argument);
  c = sample_claims();
  c.expires_at = -1;
  EXPECT_THROW(issue(key, c), std::invalid_argument);
  c = sample_claims();
  c.did = std::string(kMaxTokenSize, 'd');
  EXPECT_THROW(issue(key, c), std::invalid_argument);
}

// Found by tests/fuzz/credential_fuzz: bytes that are not UTF-8 went into the JSON as they were,
// and the token issued was refused as malformed by verify().
TEST(CredentialTest, Issue_RejectsClaimsThatAreNotUtf8) {
  const SigningKey key = SigningKey::generate();
  for (std::string Claims::*field :
       {&Claims::issuer, &Claims::subject, &Claims::audience, &Claims::did, &Claims::id}) {
    Claims c = sample_claims();
    c.*field +=
        "\xf0"
        "e";
    EXPECT_THROW(issue(key, c), std::invalid_argument);
    c.*field += "\xe2\x98\x83";  // U+2603 after a broken sequence: still refused
    EXPECT_THROW(issue(key, c), std::invalid_argument);
  }
  Claims c = sample_claims();
  c.subject = "\xe2\x98\x83@waddle.social";  // valid UTF-8 is kept
  const VerifyResult r =
      verify(issue(key, c), key.public_key(), c.issuer, c.subject, c.audience, kNow);
  EXPECT_EQ(r.verdict, Verdict::kValid);
  EXPECT_EQ(r.claims.subject, c.subject);
}

TEST(CredentialTest, TamperedPayload_BadSignature) {
  const SigningKey key = SigningKey::generate();
  const std::string token = issue(key, sample_claims());
  std::vector<std::string> parts = split(token);
  std::string payload = unb64url(parts[1]);
  payload.replace(payload.find("abc123"), 6, "evil00");
  const std::string forged = parts[0] + "." + b64url(payload) + "." + parts[2];
  ASSERT_TRUE(peek(forged));
  EXPECT_EQ(peek(forged)->subject, "evil00@waddle.social");
  const VerifyResult r = verify(forged, key.public_key(), "waddle.social", "evil00@waddle.social",
                                "remote.example", kNow);
  EXPECT_EQ(r.verdict, Verdict::kBadSignature);
  EXPECT_TRUE(r.claims.subject.empty());  // unauthenticated claims are not handed out
}

TEST(CredentialTest, TamperedSignature_BadSignature) {
  const SigningKey key = SigningKey::generate();
  std::string token = issue(key, sample_claims());
  const std::size_t sig_start = token.rfind('.') + 1;
  token[sig_start] = token[sig_start] == 'A' ? 'B' : 'A';
  EXPECT_EQ(verify_sample(token, key).verdict, Verdict::kBadSignature);
}

TEST(CredentialTest, SignedByAnotherKey_BadSignature) {
  const SigningKey key = SigningKey::generate();
  const SigningKey other = SigningKey::generate();
  EXPECT_EQ(verify_sample(issue(other, sample_claims()), key).verdict, Verdict::kBadSignature);
  // A public key of the wrong size never verifies anything.
  const std::string token = issue(key, sample_claims());
  EXPECT_EQ(verify(token, key.public_key().substr(1), "waddle.social", "abc123@waddle.social",
                   "remote.example", kNow)
                .verdict,
            Verdict::kBadSignature);
}

TEST(CredentialTest, Expiry_WithSixtySecondsLeeway) {
  const SigningKey key = SigningKey::generate();
  const std::string token = issue(key, sample_claims());  // exp = kNow + 300
  EXPECT_EQ(verify_sample(token, key, kNow + 300 + 59).verdict, Verdict::kValid);
  EXPECT_EQ(verify_sample(token, key, kNow + 300 + 60).verdict, Verdict::kExpired);
  const VerifyResult r = verify_sample(token, key, kNow + 10'000);
  EXPECT_EQ(r.verdict, Verdict::kExpired);
  EXPECT_EQ(r.claims.subject, "abc123@waddle.social");
}

TEST(CredentialTest, NotYetValid_WithSixtySecondsLeeway) {
  const SigningKey key = SigningKey::generate();
  const std::string token = issue(key, sample_claims());  // iat = kNow
  EXPECT_EQ(verify_sample(token, key, kNow - 60).verdict, Verdict::kValid);
  EXPECT_EQ(verify_sample(token, key, kNow - 61).verdict, Verdict::kNotYetValid);
}

TEST(CredentialTest, ExtremeClock_NoOverflow) {
  const SigningKey key = SigningKey::generate();
  const std::string token = issue(key, sample_claims());
  EXPECT_EQ(verify_sample(token, key, INT64_MAX).verdict, Verdict::kExpired);
  EXPECT_EQ(verify_sample(token, key, INT64_MIN).verdict, Verdict::kNotYetValid);
}

TEST(CredentialTest, WrongIssuerSubjectAudience_Reported) {
  const SigningKey key = SigningKey::generate();
  const std::string token = issue(key, sample_claims());
  const std::string pk = key.public_key();
  EXPECT_EQ(
      verify(token, pk, "other.example", "abc123@waddle.social", "remote.example", kNow).verdict,
      Verdict::kWrongIssuer);
  EXPECT_EQ(verify(token, pk, "waddle.social", "xyz@waddle.social", "remote.example", kNow).verdict,
            Verdict::kWrongSubject);
  // Bare JIDs are compared as strings, exactly.
  EXPECT_EQ(
      verify(token, pk, "waddle.social", "ABC123@waddle.social", "remote.example", kNow).verdict,
      Verdict::kWrongSubject);
  EXPECT_EQ(verify(token, pk, "waddle.social", "abc123@waddle.social/res", "remote.example", kNow)
                .verdict,
            Verdict::kWrongSubject);
  EXPECT_EQ(
      verify(token, pk, "waddle.social", "abc123@waddle.social", "elsewhere.example", kNow).verdict,
      Verdict::kWrongAudience);
}

TEST(CredentialTest, Audience_OptionalOnBothSides) {
  const SigningKey key = SigningKey::generate();
  const std::string pk = key.public_key();
  Claims no_aud = sample_claims();
  no_aud.audience.clear();
  const std::string without = issue(key, no_aud);
  const std::string with = issue(key, sample_claims());
  EXPECT_EQ(verify(without, pk, "waddle.social", "abc123@waddle.social", "", kNow).verdict,
            Verdict::kValid);
  EXPECT_EQ(verify(with, pk, "waddle.social", "abc123@waddle.social", "", kNow).verdict,
            Verdict::kValid);
  EXPECT_EQ(
      verify(without, pk, "waddle.social", "abc123@waddle.social", "remote.example", kNow).verdict,
      Verdict::kWrongAudience);
}

TEST(CredentialTest, UnknownHeaderParamsAndClaims_Ignored) {
  const SigningKey key = SigningKey::generate();
  const std::string token =
      make_token(key, R"({"alg":"EdDSA","typ":"jwt","kid":"k1","x5u":"https://ignored"})",
                 R"({"iss":"waddle.social","sub":"abc123@waddle.social","aud":"remote.example",)"
                 R"("iat":1700000000,"exp":1700000300,"jti":"j","nonce":[1,{"a":null}]})");
  const VerifyResult r = verify_sample(token, key);
  EXPECT_EQ(r.verdict, Verdict::kValid);
  EXPECT_EQ(r.claims.key_id, "k1");
}

TEST(CredentialTest, WellFormedHandBuiltToken_Valid) {
  // Guards the malformed cases below: with the same key and this payload, the token is valid.
  const SigningKey key = SigningKey::generate();
  EXPECT_EQ(verify_sample(make_token(key, header_for(key), kGoodPayload), key).verdict,
            Verdict::kValid);
}

void expect_malformed(const SigningKey& key, const std::string& token) {
  EXPECT_FALSE(peek(token)) << token;
  const VerifyResult r = verify_sample(token, key);
  EXPECT_EQ(r.verdict, Verdict::kMalformed) << token;
  EXPECT_TRUE(r.claims.issuer.empty());
}

TEST(CredentialTest, Malformed_Structure) {
  const SigningKey key = SigningKey::generate();
  const std::string token = issue(key, sample_claims());
  const std::vector<std::string> parts = split(token);
  expect_malformed(key, "");
  expect_malformed(key, "..");
  expect_malformed(key, parts[0] + "." + parts[1]);                             // 2 parts
  expect_malformed(key, token + "." + parts[2]);                                // 4 parts
  expect_malformed(key, token + ".");                                           // empty 4th part
  expect_malformed(key, "." + parts[1] + "." + parts[2]);                       // empty header
  expect_malformed(key, parts[0] + "." + parts[1] + ".");                       // empty signature
  expect_malformed(key, parts[0] + "." + parts[1] + "." + parts[2].substr(1));  // 63.x bytes
  expect_malformed(key, parts[0] + "." + parts[1] + "." + b64url(std::string(63, 'x')));
  expect_malformed(key, parts[0] + "." + parts[1] + "." + b64url(std::string(65, 'x')));
}

TEST(CredentialTest, Malformed_BadBase64url) {
  const SigningKey key = SigningKey::generate();
  const std::string token = issue(key, sample_claims());
  const std::vector<std::string> parts = split(token);
  expect_malformed(key, parts[0] + "*." + parts[1] + "." + parts[2]);
  expect_malformed(key, parts[0] + "." + parts[1] + " ." + parts[2]);
  expect_malformed(key, parts[0] + "." + parts[1] + "." + parts[2] + "==");  // padding
  std::string std_alphabet = token;                                          // '+' and '/'
  for (char& c : std_alphabet) c = c == '-' ? '+' : c == '_' ? '/' : c;
  if (std_alphabet != token) expect_malformed(key, std_alphabet);
  expect_malformed(key, parts[0] + "." + parts[1] + "A." + parts[2]);  // length 4n+1
  // The 64-byte signature ends in one character carrying 4 unused bits: they must be zero.
  std::string sig = parts[2];
  ASSERT_EQ(sig.size(), 86u);
  const std::size_t last = kUrlAlphabet.find(sig.back());
  sig.back() = kUrlAlphabet[last | 0x01];
  if (sig != parts[2]) expect_malformed(key, parts[0] + "." + parts[1] + "." + sig);
}

TEST(CredentialTest, Malformed_NotJsonObjects) {
  const SigningKey key = SigningKey::generate();
  const std::string header = header_for(key);
  expect_malformed(key, make_token(key, header, "not json"));
  expect_malformed(key, make_token(key, header, R"([{"iss":"waddle.social"}])"));
  expect_malformed(key, make_token(key, header, R"("a string")"));
  expect_malformed(key, make_token(key, header, std::string(kGoodPayload) + " trailing"));
  expect_malformed(key, make_token(key, header, std::string(kGoodPayload) + ","));
  expect_malformed(key, make_token(key, "[]", kGoodPayload));
  expect_malformed(key, make_token(key, "{", kGoodPayload));
  // Invalid UTF-8 inside a string.
  expect_malformed(key, make_token(key, header,
                                   R"({"iss":"waddle.social","sub":"a)"
                                   "\xff"
                                   R"(@waddle.social","iat":1,"exp":2,"jti":"j"})"));
}

TEST(CredentialTest, Malformed_Header) {
  const SigningKey key = SigningKey::generate();
  const std::string kid = key.key_id();
  for (const std::string& header : std::vector<std::string>{
           R"({"alg":"none","typ":"JWT","kid":")" + kid + R"("})",
           R"({"alg":"HS256","typ":"JWT","kid":")" + kid + R"("})",
           R"({"alg":"eddsa","typ":"JWT","kid":")" + kid + R"("})",
           R"({"alg":"Ed25519","typ":"JWT","kid":")" + kid + R"("})",
           R"({"alg":["EdDSA"],"typ":"JWT","kid":")" + kid + R"("})",
           R"({"typ":"JWT","kid":")" + kid + R"("})",
           R"({"alg":"EdDSA","typ":"JWT"})",
           R"({"alg":"EdDSA","typ":"JWT","kid":7})",
           R"({"alg":"EdDSA","typ":"at+jwt","kid":")" + kid + R"("})",
           R"({"alg":"EdDSA","typ":1,"kid":")" + kid + R"("})",
           R"({"alg":"EdDSA","typ":"JWT","kid":")" + kid + R"(","crit":["exp"],"exp":1})",
       }) {
    expect_malformed(key, make_token(key, header, kGoodPayload));
  }
}

TEST(CredentialTest, Malformed_Claims) {
  const SigningKey key = SigningKey::generate();
  const std::string header = header_for(key);
  for (const std::string_view payload : {
           // missing or empty iss / sub / jti
           R"({"sub":"abc123@waddle.social","iat":1700000000,"exp":1700000300,"jti":"j"})",
           R"({"iss":"","sub":"abc123@waddle.social","iat":1700000000,"exp":1700000300,"jti":"j"})",
           R"({"iss":"waddle.social","iat":1700000000,"exp":1700000300,"jti":"j"})",
           R"({"iss":"waddle.social","sub":"","iat":1700000000,"exp":1700000300,"jti":"j"})",
           R"({"iss":"waddle.social","sub":"abc123@waddle.social","iat":1700000000,)"
           R"("exp":1700000300})",
           // wrong types
           R"({"iss":1,"sub":"abc123@waddle.social","iat":1700000000,"exp":1700000300,"jti":"j"})",
           R"({"iss":"waddle.social","sub":null,"iat":1700000000,"exp":1700000300,"jti":"j"})",
           R"({"iss":"waddle.social","sub":"abc123@waddle.social","aud":["remote.example"],)"
           R"("iat":1700000000,"exp":1700000300,"jti":"j"})",
           R"({"iss":"waddle.social","sub":"abc123@waddle.social","did":42,)"
           R"("iat":1700000000,"exp":1700000300,"jti":"j"})",
           R"({"iss":"waddle.social","sub":"abc123@waddle.social","iat":"1700000000",)"
           R"("exp":1700000300,"jti":"j"})",
           R"({"iss":"waddle.social","sub":"abc123@waddle.social","iat":1700000000,)"
           R"("exp":1700000300.5,"jti":"j"})",
           R"({"iss":"waddle.social","sub":"abc123@waddle.social","iat":1700000000,)"
           R"("exp":1.7e9,"jti":"j"})",
           R"({"iss":"waddle.social","sub":"abc123@waddle.social","iat":-1,)"
           R"("exp":1700000300,"jti":"j"})",
           R"({"iss":"waddle.social","sub":"abc123@waddle.social","iat":1700000000,)"
           R"("exp":18446744073709551615,"jti":"j"})",
           R"({"iss":"waddle.social","sub":"abc123@waddle.social","iat":1700000000,)"
           R"("exp":true,"jti":"j"})",
           // missing times
           R"({"iss":"waddle.social","sub":"abc123@waddle.social","exp":1700000300,"jti":"j"})",
           R"({"iss":"waddle.social","sub":"abc123@waddle.social","iat":1700000000,"jti":"j"})",
       }) {
    expect_malformed(key, make_token(key, header, payload));
  }
}

TEST(CredentialTest, Malformed_HugeToken) {
  const SigningKey key = SigningKey::generate();
  // Correctly signed and otherwise valid, but over the 4096-byte limit.
  const std::string payload =
      R"({"iss":"waddle.social","sub":"abc123@waddle.social","aud":"remote.example","did":")" +
      std::string(3000, 'd') + R"(","iat":1700000000,"exp":1700000300,"jti":"j"})";
  const std::string token = make_token(key, header_for(key), payload);
  ASSERT_GT(token.size(), kMaxTokenSize);
  expect_malformed(key, token);
  expect_malformed(key, std::string(1 << 20, 'A'));
}

TEST(CredentialTest, Describe_DistinctTexts) {
  EXPECT_EQ(describe(Verdict::kExpired), "credential expired");
  const std::vector<Verdict> all = {Verdict::kValid,        Verdict::kMalformed,
                                    Verdict::kBadSignature, Verdict::kExpired,
                                    Verdict::kNotYetValid,  Verdict::kWrongIssuer,
                                    Verdict::kWrongSubject, Verdict::kWrongAudience};
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_FALSE(describe(all[i]).empty());
    for (std::size_t j = i + 1; j < all.size(); ++j) EXPECT_NE(describe(all[i]), describe(all[j]));
  }
}

// --- key file ---

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "waddle-identity-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write_file(const std::string& p, const std::string& content) const {
    std::ofstream(p, std::ios::binary) << content;
  }
  // Asserts that load_or_create(p) throws a runtime_error naming the path.
  static void expect_load_error(const std::string& p) {
    try {
      SigningKey::load_or_create(p);
      ADD_FAILURE() << "no exception for " << p;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
  static std::string pem_of(EVP_PKEY* pkey, const EVP_CIPHER* cipher = nullptr) {
    BIO* bio = BIO_new(BIO_s_mem());
    char pass[] = "passphrase";
    EXPECT_EQ(PEM_write_bio_PKCS8PrivateKey(bio, pkey, cipher, cipher ? pass : nullptr,
                                            cipher ? 10 : 0, nullptr, nullptr),
              1);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<std::size_t>(len));
    BIO_free(bio);
    return pem;
  }

  std::filesystem::path dir_;
};

TEST_F(KeyFileTest, CreatesMode0600_ReloadGivesSameKey) {
  const std::string p = path("identity.pem");
  const SigningKey created = SigningKey::load_or_create(p);
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  std::ifstream in(p);
  std::string first_line;
  std::getline(in, first_line);
  EXPECT_EQ(first_line, "-----BEGIN PRIVATE KEY-----");

  const SigningKey loaded = SigningKey::load_or_create(p);
  EXPECT_EQ(loaded.key_id(), created.key_id());
  EXPECT_EQ(loaded.public_key(), created.public_key());
  EXPECT_TRUE(verify_signature(created.public_key(), "data", loaded.sign("data")));
  EXPECT_EQ(verify_sample(issue(loaded, sample_claims()), created).verdict, Verdict::kValid);
}

TEST_F(KeyFileTest, LoadsPemWrittenByOpenssl) {
  EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  ASSERT_NE(pkey, nullptr);
  const std::string p = path("external.pem");
  write_file(p, pem_of(pkey));
  std::string raw(32, '\0');
  std::size_t len = raw.size();
  ASSERT_EQ(EVP_PKEY_get_raw_public_key(pkey, reinterpret_cast<unsigned char*>(raw.data()), &len),
            1);
  EVP_PKEY_free(pkey);
  EXPECT_EQ(SigningKey::load_or_create(p).public_key(), raw);
}

TEST_F(KeyFileTest, InvalidFiles_ThrowAndAreLeftAlone) {
  const std::string garbage = path("garbage.pem");
  write_file(garbage, "this is not a key\n");
  expect_load_error(garbage);
  std::ifstream in(garbage);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "this is not a key");  // never replaced by a fresh key

  const std::string empty = path("empty.pem");
  write_file(empty, "");
  expect_load_error(empty);

  const std::string huge = path("huge.pem");
  write_file(huge, std::string(100 * 1024, 'A'));
  expect_load_error(huge);

  EVP_PKEY* ed = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  EVP_PKEY* x = EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519");
  ASSERT_NE(ed, nullptr);
  ASSERT_NE(x, nullptr);
  const std::string good_pem = pem_of(ed);
  const std::string x25519_pem = pem_of(x);
  const std::string encrypted_pem = pem_of(ed, EVP_aes_256_cbc());
  EVP_PKEY_free(ed);
  EVP_PKEY_free(x);

  const std::string truncated = path("truncated.pem");
  write_file(truncated, good_pem.substr(0, good_pem.size() / 2));
  expect_load_error(truncated);

  const std::string wrong_type = path("x25519.pem");  // a key, but not for signing
  write_file(wrong_type, x25519_pem);
  expect_load_error(wrong_type);

  const std::string encrypted = path("encrypted.pem");  // refused, never prompts
  write_file(encrypted, encrypted_pem);
  expect_load_error(encrypted);

  expect_load_error(path("dir-does-not-exist/key.pem"));
  expect_load_error(dir_.string());  // a directory
}

}  // namespace
TEST(ValidDid, AcceptsAtprotoAndW3cForms_RefusesTheRest) {
  for (const char* ok : {"did:plc:ewvi7nxzyoun6zhxrhs64oiz", "did:web:example.org",
                         "did:web:example.org%3A8080", "did:example:123:456", "did:key:z6Mk-._x"}) {
    EXPECT_TRUE(valid_did(ok)) << ok;
  }
  for (const char* bad :
       {"", "did:", "did:plc", "did:plc:", "did::abc", "did:PLC:abc", "did:plc:abc:", "did:plc:a b",
        "did:plc:a%2", "did:plc:a%zz", "dad:plc:abc", "did:plc:abc/def", "did:plc:abc?x"}) {
    EXPECT_FALSE(valid_did(bad)) << bad;
  }
  EXPECT_FALSE(valid_did("did:plc:" + std::string(2041, 'a')));
  EXPECT_TRUE(valid_did("did:plc:" + std::string(2040, 'a')));
}

}  // namespace waddle::identity
