// SCRAM server tests: the RFC 5802 §5 (SHA-1) and RFC 7677 §3 (SHA-256) example exchanges,
// proof/nonce/binding failures, malformed messages and unknown users.
#include "sasl/scram.h"
#include "core/base64.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <optional>
#include <string>
#include <string_view>

namespace waddle::sasl {
namespace {

struct Example {
  ScramHash hash;
  std::string client_first;
  std::string server_nonce;
  std::string salt_b64;
  std::string server_first;
  std::string client_final;
  std::string server_final;
};

// RFC 5802 §5.
Example rfc5802() {
  return {ScramHash::kSha1,
          "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
          "3rfcNHYJY1ZVvWVs7j",
          "QSXCR+Q6sek8bf92",
          "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
          "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
          "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="};
}

// RFC 7677 §3.
Example rfc7677() {
  return {ScramHash::kSha256,
          "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
          "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
          "W22ZaJ0SNY7soEsUEjb6gQ==",
          "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
          "i=4096",
          "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
          "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
          "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="};
}

class ScramTest : public ::testing::TestWithParam<Example> {
 protected:
  ScramCredentials credentials() const {
    const Example& e = GetParam();
    return derive_credentials(e.hash, "pencil", *core::base64_decode(e.salt_b64), 4096);
  }

  // Runs client-first and server-first of the example; returns the server.
  ScramServer start() const {
    const Example& e = GetParam();
    ScramServer server(e.hash);
    server.set_server_nonce_for_testing(e.server_nonce);
    EXPECT_EQ(server.client_first(e.client_first), "user");
    EXPECT_EQ(server.server_first(credentials()), e.server_first);
    return server;
  }

  // The example's client-final with one attribute replaced.
  std::string final_with(char name, const std::string& value) const {
    std::string out;
    const std::string& msg = GetParam().client_final;
    std::size_t start = 0;
    while (start <= msg.size()) {
      auto end = msg.find(',', start);
      if (end == std::string::npos) end = msg.size();
      std::string part = msg.substr(start, end - start);
      if (part[0] == name) part = std::string(1, name) + "=" + value;
      if (!out.empty()) out += ',';
      out += part;
      start = end + 1;
    }
    return out;
  }
};

TEST_P(ScramTest, RfcExample_Succeeds) {
  const Example& e = GetParam();
  ScramServer server = start();
  const auto final = server.client_final(e.client_final);
  ASSERT_TRUE(final.has_value()) << server.error();
  EXPECT_EQ(final->server_final, e.server_final);
  EXPECT_EQ(server.error(), "");
  EXPECT_EQ(server.authzid(), "");
}

TEST_P(ScramTest, WrongProof_NotAuthorized) {
  ScramServer server = start();
  const std::string& msg = GetParam().client_final;
  std::string proof = *core::base64_decode(msg.substr(msg.rfind(",p=") + 3));
  proof[0] = static_cast<char>(proof[0] ^ 1);
  EXPECT_FALSE(server.client_final(final_with('p', core::base64_encode(proof))));
  EXPECT_EQ(server.error(), "not-authorized");
}

TEST_P(ScramTest, WrongPassword_NotAuthorized) {
  const Example& e = GetParam();
  ScramServer server(e.hash);
  server.set_server_nonce_for_testing(e.server_nonce);
  ASSERT_TRUE(server.client_first(e.client_first));
  server.server_first(
      derive_credentials(e.hash, "pencil2", *core::base64_decode(e.salt_b64), 4096));
  EXPECT_FALSE(server.client_final(e.client_final));
  EXPECT_EQ(server.error(), "not-authorized");
}

TEST_P(ScramTest, ShortProof_NotAuthorized) {
  ScramServer server = start();
  EXPECT_FALSE(server.client_final(final_with('p', core::base64_encode("short"))));
  EXPECT_EQ(server.error(), "not-authorized");
}

TEST_P(ScramTest, WrongNonce_NotAuthorized) {
  ScramServer server = start();
  const Example& e = GetParam();
  const std::string client_nonce = e.client_first.substr(e.client_first.find(",r=") + 3);
  EXPECT_FALSE(server.client_final(final_with('r', client_nonce + "other")));
  EXPECT_EQ(server.error(), "not-authorized");
}

TEST_P(ScramTest, ClientNonceOnly_NotAuthorized) {
  ScramServer server = start();
  const Example& e = GetParam();
  const std::string client_nonce = e.client_first.substr(e.client_first.find(",r=") + 3);
  EXPECT_FALSE(server.client_final(final_with('r', client_nonce)));
  EXPECT_EQ(server.error(), "not-authorized");
}

TEST_P(ScramTest, BindingDataDiffersFromHeader_NotAuthorized) {
  ScramServer server = start();
  // "y,," while client-first said "n,,".
  EXPECT_FALSE(server.client_final(final_with('c', core::base64_encode("y,,"))));
  EXPECT_EQ(server.error(), "not-authorized");
}

TEST_P(ScramTest, BadBase64Binding_MalformedRequest) {
  ScramServer server = start();
  EXPECT_FALSE(server.client_final(final_with('c', "bi!s")));
  EXPECT_EQ(server.error(), "malformed-request");
}

TEST_P(ScramTest, BadBase64Proof_MalformedRequest) {
  ScramServer server = start();
  EXPECT_FALSE(server.client_final(final_with('p', "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts")));
  EXPECT_EQ(server.error(), "malformed-request");
}

TEST_P(ScramTest, MissingProof_MalformedRequest) {
  ScramServer server = start();
  const std::string& msg = GetParam().client_final;
  EXPECT_FALSE(server.client_final(msg.substr(0, msg.rfind(",p="))));
  EXPECT_EQ(server.error(), "malformed-request");
}

TEST_P(ScramTest, MissingBinding_MalformedRequest) {
  ScramServer server = start();
  const std::string& msg = GetParam().client_final;
  EXPECT_FALSE(server.client_final(msg.substr(msg.find(',') + 1)));
  EXPECT_EQ(server.error(), "malformed-request");
}

TEST_P(ScramTest, ProofNotLast_MalformedRequest) {
  ScramServer server = start();
  EXPECT_FALSE(server.client_final(GetParam().client_final + ",x=1"));
  EXPECT_EQ(server.error(), "malformed-request");
}

TEST_P(ScramTest, ClientFinalTwice_Fails) {
  const Example& e = GetParam();
  ScramServer server = start();
  ASSERT_TRUE(server.client_final(e.client_final));
  EXPECT_FALSE(server.client_final(e.client_final));
  EXPECT_EQ(server.error(), "malformed-request");
}

TEST_P(ScramTest, UnknownUser_FailsWithStableSalt) {
  const Example& e = GetParam();
  ScramServer first(e.hash);
  ASSERT_TRUE(first.client_first(e.client_first));
  const std::string server_first = first.server_first(std::nullopt);
  EXPECT_FALSE(first.client_final(e.client_final));
  EXPECT_EQ(first.error(), "not-authorized");

  ScramServer second(e.hash);
  ASSERT_TRUE(second.client_first(e.client_first));
  const std::string again = second.server_first(std::nullopt);
  auto salt_of = [](const std::string& s) {
    const auto start = s.find(",s=") + 3;
    return s.substr(start, s.find(',', start) - start);
  };
  EXPECT_EQ(salt_of(server_first), salt_of(again));
  EXPECT_EQ(core::base64_decode(salt_of(again))->size(), 16u);
  EXPECT_NE(server_first, again);  // fresh server nonces
  EXPECT_TRUE(again.ends_with(",i=4096"));

  ScramServer other(e.hash);
  ASSERT_TRUE(other.client_first("n,,n=someone-else,r=abc"));
  EXPECT_NE(salt_of(other.server_first(std::nullopt)), salt_of(again));
}

TEST_P(ScramTest, EmptyCredentials_TreatedAsUnknown) {
  const Example& e = GetParam();
  ScramServer server(e.hash);
  ASSERT_TRUE(server.client_first(e.client_first));
  server.server_first(ScramCredentials{});
  EXPECT_FALSE(server.client_final(e.client_final));
  EXPECT_EQ(server.error(), "not-authorized");
}

TEST_P(ScramTest, RandomServerNonce_ExtendsClientNonce) {
  const Example& e = GetParam();
  ScramServer server(e.hash);
  ASSERT_TRUE(server.client_first(e.client_first));
  const std::string server_first = server.server_first(credentials());
  const std::string client_nonce = e.client_first.substr(e.client_first.find(",r=") + 3);
  ASSERT_TRUE(server_first.starts_with("r=" + client_nonce));
  const std::string nonce = server_first.substr(2, server_first.find(',') - 2);
  EXPECT_GE(nonce.size(), client_nonce.size() + 16);
}

INSTANTIATE_TEST_SUITE_P(Rfc, ScramTest, ::testing::Values(rfc5802(), rfc7677()),
                         [](const auto& info) {
                           return info.param.hash == ScramHash::kSha1 ? std::string("Sha1")
                                                                      : std::string("Sha256");
                         });

// --- client-first parsing ---

std::optional<std::string> first(std::string_view msg, ScramServer* out = nullptr) {
  ScramServer local(ScramHash::kSha256);
  ScramServer& s = out != nullptr ? *out : local;
  auto user = s.client_first(msg);
  if (!user) {
    EXPECT_EQ(s.error(), "malformed-request") << msg;
  }
  return user;
}

TEST(ScramClientFirstTest, ClientSupportsBinding_Accepted) {
  EXPECT_EQ(first("y,,n=user,r=abc"), "user");
}

TEST(ScramClientFirstTest, BindingRequired_MalformedRequest) {
  EXPECT_FALSE(first("p=tls-unique,,n=user,r=abc"));
  EXPECT_FALSE(first("p=tls-exporter,a=admin@example.org,n=user,r=abc"));
}

TEST(ScramClientFirstTest, Authzid_Stored) {
  ScramServer s(ScramHash::kSha1);
  EXPECT_EQ(first("n,a=juliet@example.com,n=juliet,r=abc", &s), "juliet");
  EXPECT_EQ(s.authzid(), "juliet@example.com");
}

TEST(ScramClientFirstTest, AuthzidEscapes_Decoded) {
  ScramServer s(ScramHash::kSha1);
  EXPECT_TRUE(first("n,a=a=2Cb=3Dc,n=user,r=abc", &s));
  EXPECT_EQ(s.authzid(), "a,b=c");
}

TEST(ScramClientFirstTest, UsernameEscapes_Decoded) {
  EXPECT_EQ(first("n,,n=us=2Cer=3D,r=abc"), "us,er=");
}

TEST(ScramClientFirstTest, BadEscape_MalformedRequest) {
  EXPECT_FALSE(first("n,,n=us=2Der,r=abc"));
  EXPECT_FALSE(first("n,,n=user=,r=abc"));
  EXPECT_FALSE(first("n,,n=user=2,r=abc"));
  EXPECT_FALSE(first("n,a=x=,n=user,r=abc"));
}

TEST(ScramClientFirstTest, UsernameSaslprepped) {
  // RFC 4013 §3: SOFT HYPHEN maps to nothing, NO-BREAK SPACE to SPACE.
  EXPECT_EQ(first("n,,n=I\xC2\xADX,r=abc"), "IX");
  EXPECT_EQ(first("n,,n=a\xC2\xA0"
                  "b,r=abc"),
            "a b");
}

TEST(ScramClientFirstTest, ProhibitedUsername_MalformedRequest) {
  EXPECT_FALSE(
      first("n,,n=a\x07"
            "b,r=abc"));                       // control character
  EXPECT_FALSE(first("n,,n=\xC2\xAD,r=abc"));  // maps to the empty string
  EXPECT_FALSE(first("n,,n=\xff\xfe,r=abc"));  // not UTF-8
  EXPECT_FALSE(first("n,,n=,r=abc"));
}

TEST(ScramClientFirstTest, MandatoryExtension_MalformedRequest) {
  EXPECT_FALSE(first("n,,m=ext,n=user,r=abc"));
}

TEST(ScramClientFirstTest, OptionalExtension_Accepted) {
  EXPECT_EQ(first("n,,n=user,r=abc,x=ext"), "user");
}

TEST(ScramClientFirstTest, MissingParts_MalformedRequest) {
  EXPECT_FALSE(first(""));
  EXPECT_FALSE(first("n"));
  EXPECT_FALSE(first("n,"));
  EXPECT_FALSE(first("n,,"));
  EXPECT_FALSE(first("n=user,r=abc"));
  EXPECT_FALSE(first(",,n=user,r=abc"));
  EXPECT_FALSE(first("x,,n=user,r=abc"));
  EXPECT_FALSE(first("n,,n=user"));
  EXPECT_FALSE(first("n,,r=abc"));
  EXPECT_FALSE(first("n,,r=abc,n=user"));
  EXPECT_FALSE(first("n,,n=user,r="));
  EXPECT_FALSE(first("n,x=y,n=user,r=abc"));
  EXPECT_FALSE(first("n,a=,n=user,r=abc"));
  EXPECT_FALSE(first("n,a=user"));
  EXPECT_FALSE(first("n,,n=user,r=abc,"));
  EXPECT_FALSE(first("n,,n=user,r=abc,1=x"));
}

TEST(ScramClientFirstTest, UnprintableNonce_MalformedRequest) {
  EXPECT_FALSE(first("n,,n=user,r=ab c"));
  EXPECT_FALSE(first("n,,n=user,r=ab\x7f"));
  EXPECT_FALSE(first(std::string_view("n,,n=user,r=a\0b", 15)));
}

TEST(ScramClientFirstTest, CalledTwice_MalformedRequest) {
  ScramServer s(ScramHash::kSha1);
  ASSERT_TRUE(s.client_first("n,,n=user,r=abc"));
  EXPECT_FALSE(s.client_first("n,,n=user,r=abc"));
  EXPECT_EQ(s.error(), "malformed-request");
}

TEST(ScramOrderTest, FinalBeforeServerFirst_MalformedRequest) {
  ScramServer s(ScramHash::kSha1);
  ASSERT_TRUE(s.client_first("n,,n=user,r=abc"));
  EXPECT_FALSE(s.client_final("c=biws,r=abc,p=AAAA"));
  EXPECT_EQ(s.error(), "malformed-request");
}

TEST(ScramOrderTest, ServerFirstAfterFailedClientFirst_Empty) {
  ScramServer s(ScramHash::kSha1);
  EXPECT_FALSE(s.client_first("garbage"));
  EXPECT_EQ(s.server_first(std::nullopt), "");
  EXPECT_EQ(s.error(), "malformed-request");
}

// A SCRAM client from the RFC 5802 §3 formulas, to run exchanges with random salts and nonces.
std::string client_final_for(ScramHash hash, std::string_view password, std::string_view gs2_header,
                             std::string_view client_first_bare, std::string_view server_first) {
  const EVP_MD* md = hash == ScramHash::kSha1 ? EVP_sha1() : EVP_sha256();
  const auto attr = [&](char name) {
    const std::string key = std::string(1, name) + "=";
    auto start = server_first.find(key) + 2;
    return std::string(server_first.substr(start, server_first.find(',', start) - start));
  };
  const std::string nonce = attr('r');
  const std::string salt = *core::base64_decode(attr('s'));
  const int iterations = std::stoi(attr('i'));
  const auto hmac = [&](std::string_view key, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(md, key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
  };
  std::string salted(static_cast<std::size_t>(EVP_MD_get_size(md)), '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), iterations, md, static_cast<int>(salted.size()),
                    reinterpret_cast<unsigned char*>(salted.data()));
  const std::string client_key = hmac(salted, "Client Key");
  unsigned char stored[EVP_MAX_MD_SIZE];
  unsigned int stored_len = 0;
  EVP_Digest(client_key.data(), client_key.size(), stored, &stored_len, md, nullptr);
  const std::string without_proof = "c=" + core::base64_encode(gs2_header) + ",r=" + nonce;
  const std::string auth_message =
      std::string(client_first_bare) + "," + std::string(server_first) + "," + without_proof;
  const std::string signature =
      hmac(std::string_view(reinterpret_cast<char*>(stored), stored_len), auth_message);
  std::string proof = client_key;
  for (std::size_t i = 0; i < proof.size(); ++i) proof[i] ^= signature[i];
  return without_proof + ",p=" + core::base64_encode(proof);
}

TEST(ScramExchangeTest, RandomSaltAndNonce_Succeeds) {
  for (ScramHash hash : {ScramHash::kSha1, ScramHash::kSha256}) {
    const auto creds = make_credentials(hash, "pencil");
    ScramServer s(hash);
    ASSERT_EQ(s.client_first("n,,n=user,r=clientnonce"), "user");
    const std::string server_first = s.server_first(creds);
    ASSERT_TRUE(server_first.starts_with("r=clientnonce"));
    const auto final = s.client_final(
        client_final_for(hash, "pencil", "n,,", "n=user,r=clientnonce", server_first));
    ASSERT_TRUE(final.has_value()) << s.error();
    EXPECT_TRUE(final->server_final.starts_with("v="));
  }
}

TEST(ScramExchangeTest, WrongPassword_NotAuthorized) {
  const ScramHash hash = ScramHash::kSha256;
  ScramServer s(hash);
  ASSERT_TRUE(s.client_first("n,,n=user,r=clientnonce"));
  const std::string server_first = s.server_first(make_credentials(hash, "pencil"));
  EXPECT_FALSE(s.client_final(
      client_final_for(hash, "pencil!", "n,,", "n=user,r=clientnonce", server_first)));
  EXPECT_EQ(s.error(), "not-authorized");
}

TEST(ScramExchangeTest, AuthzidAndYFlag_BindingCoversHeader) {
  const ScramHash hash = ScramHash::kSha256;
  const auto creds = make_credentials(hash, "pencil");
  const std::string header = "y,a=user@example.org,";
  {
    ScramServer s(hash);
    ASSERT_TRUE(s.client_first(header + "n=user,r=cli"));
    EXPECT_EQ(s.authzid(), "user@example.org");
    const std::string server_first = s.server_first(creds);
    EXPECT_TRUE(
        s.client_final(client_final_for(hash, "pencil", header, "n=user,r=cli", server_first)))
        << s.error();
  }
  {
    // c= must repeat the whole header, authzid included.
    ScramServer s(hash);
    ASSERT_TRUE(s.client_first(header + "n=user,r=cli"));
    const std::string server_first = s.server_first(creds);
    EXPECT_FALSE(
        s.client_final(client_final_for(hash, "pencil", "y,,", "n=user,r=cli", server_first)));
    EXPECT_EQ(s.error(), "not-authorized");
  }
}

TEST(ScramExchangeTest, UnknownUserWithRightPassword_NotAuthorized) {
  // Even a client that guesses the fake salt's password cannot get in.
  const ScramHash hash = ScramHash::kSha1;
  ScramServer s(hash);
  ASSERT_TRUE(s.client_first("n,,n=ghost,r=cli"));
  const std::string server_first = s.server_first(std::nullopt);
  EXPECT_FALSE(
      s.client_final(client_final_for(hash, "pencil", "n,,", "n=ghost,r=cli", server_first)));
  EXPECT_EQ(s.error(), "not-authorized");
}

// --- credentials ---

TEST(ScramCredentialsTest, RfcExamples_StoredAndServerKeys) {
  // Keys for the RFC 5802 and RFC 7677 examples, computed independently (Python hashlib).
  const auto sha1 = derive_credentials(ScramHash::kSha1, "pencil",
                                       *core::base64_decode("QSXCR+Q6sek8bf92"), 4096);
  EXPECT_EQ(sha1.iterations, 4096u);
  EXPECT_EQ(core::base64_encode(sha1.salt), "QSXCR+Q6sek8bf92");
  EXPECT_EQ(core::base64_encode(sha1.stored_key), "6dlGYMOdZcOPutkcNY8U2g7vK9Y=");
  EXPECT_EQ(core::base64_encode(sha1.server_key), "D+CSWLOshSulAsxiupA+qs2/fTE=");
  const auto sha256 = derive_credentials(ScramHash::kSha256, "pencil",
                                         *core::base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
  EXPECT_EQ(core::base64_encode(sha256.stored_key), "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=");
  EXPECT_EQ(core::base64_encode(sha256.server_key), "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
}

TEST(ScramCredentialsTest, MakeCredentials_RandomSaltDefaultIterations) {
  const auto a = make_credentials(ScramHash::kSha256, "secret");
  const auto b = make_credentials(ScramHash::kSha256, "secret");
  EXPECT_EQ(a.salt.size(), 16u);
  EXPECT_EQ(a.iterations, kDefaultIterations);
  EXPECT_EQ(a.stored_key.size(), 32u);
  EXPECT_NE(a.salt, b.salt);
  EXPECT_NE(a.stored_key, b.stored_key);
}

TEST(ScramCredentialsTest, VerifyPassword_MatchesOnlyTheRightOne) {
  for (ScramHash hash : {ScramHash::kSha1, ScramHash::kSha256}) {
    const auto creds = make_credentials(hash, "correct horse");
    EXPECT_TRUE(verify_password(hash, creds, "correct horse"));
    EXPECT_FALSE(verify_password(hash, creds, "correct horsE"));
    EXPECT_FALSE(verify_password(hash, creds, ""));
    EXPECT_FALSE(verify_password(hash == ScramHash::kSha1 ? ScramHash::kSha256 : ScramHash::kSha1,
                                 creds, "correct horse"));
  }
}

TEST(ScramCredentialsTest, VerifyPassword_EmptyCredentialsNeverMatch) {
  EXPECT_FALSE(verify_password(ScramHash::kSha256, ScramCredentials{}, ""));
  EXPECT_FALSE(verify_password(ScramHash::kSha256, ScramCredentials{}, "x"));
}

TEST(ScramCredentialsTest, ZeroIterations_Empty) {
  EXPECT_TRUE(derive_credentials(ScramHash::kSha256, "pencil", "salt", 0).empty());
}

TEST(RandomBytesTest, LengthAndVariety) {
  EXPECT_EQ(random_bytes(0), "");
  EXPECT_EQ(random_bytes(24).size(), 24u);
  EXPECT_NE(random_bytes(16), random_bytes(16));
}

}  // namespace
}  // namespace waddle::sasl
