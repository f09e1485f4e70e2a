// Strict base64 (RFC 4648 §4, §10 test vectors) as used for SASL payloads.
#include <gtest/gtest.h>

#include <string>

#include "core/base64.h"

namespace waddle::core {
namespace {

TEST(Base64Test, Rfc4648Vectors_EncodeAndDecode) {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), plain) << encoded;
  }
}

TEST(Base64Test, AllByteValues_RoundTrip) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t len = 0; len <= all.size(); len += 1) {
    const std::string data = all.substr(all.size() - len);
    const auto decoded = base64_decode(base64_encode(data));
    ASSERT_TRUE(decoded) << len;
    EXPECT_EQ(*decoded, data);
  }
}

TEST(Base64Test, LoneEquals_IsEmptyResponse) {
  EXPECT_EQ(base64_decode("="), "");
}

TEST(Base64Test, InvalidCharacters_Rejected) {
  EXPECT_FALSE(base64_decode("Zm9v!A=="));
  EXPECT_FALSE(base64_decode("Zm-v"));
  EXPECT_FALSE(base64_decode("Zm_v"));
  EXPECT_FALSE(base64_decode("Zm9v YmFy"));
  EXPECT_FALSE(base64_decode("Zm9v\nYmFy"));
  EXPECT_FALSE(base64_decode("Zm9vYmFy\n"));
  EXPECT_FALSE(base64_decode(std::string("Zm9\0", 4)));
  EXPECT_FALSE(base64_decode("Zm9\xc3"));
}

TEST(Base64Test, BadPadding_Rejected) {
  EXPECT_FALSE(base64_decode("Zg"));     // missing padding
  EXPECT_FALSE(base64_decode("Zg="));    // short padding
  EXPECT_FALSE(base64_decode("Zg==="));  // too much
  EXPECT_FALSE(base64_decode("Z==="));   // three pad characters
  EXPECT_FALSE(base64_decode("===="));
  EXPECT_FALSE(base64_decode("=="));
  EXPECT_FALSE(base64_decode("Zg==Zm9v"));  // padding in the middle
  EXPECT_FALSE(base64_decode("Z=g="));
  EXPECT_FALSE(base64_decode("Zm9vY"));  // length not a multiple of 4
}

TEST(Base64Test, NonZeroPadBits_Rejected) {
  EXPECT_FALSE(base64_decode("Zh=="));  // "Zg==" with a pad bit set
  EXPECT_FALSE(base64_decode("Zm9="));  // "Zm8=" with a pad bit set
  EXPECT_EQ(base64_decode("Zm8="), "fo");
}

}  // namespace
}  // namespace waddle::core
