// libFuzzer target for federated identity credentials (urn:waddle:identity): the compact
// JWS/EdDSA tokens a remote server presents for its users, the public keys it publishes and
// the ATProto DIDs a token carries.
//
// Input: one mode byte. Mode 0: a token (and key, DID) as a peer sends it, verified against
// a fixed key. Mode 1: a valid token with bytes overwritten at a chosen position: it must not
// verify unless unchanged. Mode 2: claims ('\n'-separated iss, sub, aud, did, jti, iat, exp)
// issued and verified: what is issued verifies with the same claims.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "identity/credential.h"

namespace {

using waddle::identity::Claims;
using waddle::identity::SigningKey;
using waddle::identity::Verdict;

constexpr std::int64_t kNow = 1767225600;  // 2026-01-01

void check(bool ok) {
  if (!ok) __builtin_trap();
}

const SigningKey& key() {
  static const SigningKey k = SigningKey::from_raw_private(std::string(32, '\x2a'));
  return k;
}

const std::string& valid_token() {
  static const std::string token = [] {
    Claims c;
    c.issuer = "a.example";
    c.subject = "user@a.example";
    c.audience = "rooms.b.example";
    c.did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
    c.id = "0123456789abcdef";
    c.issued_at = kNow;
    c.expires_at = kNow + 300;
    return waddle::identity::issue(key(), c);
  }();
  return token;
}

waddle::identity::VerifyResult verify(std::string_view token) {
  return waddle::identity::verify(token, key().public_key(), "a.example", "user@a.example",
                                  "rooms.b.example", kNow);
}

void presented(std::string_view payload) {
  const auto claims = waddle::identity::peek(payload);
  const auto result = verify(payload);
  check(claims.has_value() == (result.verdict != Verdict::kMalformed));
  if (claims) check(!claims->issuer.empty() && !claims->subject.empty() && !claims->id.empty());
  // Only tokens signed with the key verify, and the fuzzer does not have it.
  if (result.verdict != Verdict::kMalformed && result.verdict != Verdict::kBadSignature)
    check(payload == valid_token());
  (void)waddle::identity::describe(result.verdict);
  if (const auto k = waddle::identity::decode_public_key_b64(payload)) check(k->size() == 32);
  (void)waddle::identity::valid_did(payload);
}

void tampered(std::string_view payload) {
  if (payload.size() < 2) return;
  std::string token = valid_token();
  const std::size_t at =
      (static_cast<unsigned char>(payload[0]) | static_cast<unsigned char>(payload[1]) << 8) %
      token.size();
  token.replace(at, std::min(payload.size() - 2, token.size() - at), payload.substr(2));
  const auto result = verify(token);
  if (token != valid_token())
    check(result.verdict == Verdict::kMalformed || result.verdict == Verdict::kBadSignature);
}

std::int64_t number(std::string_view s) {
  std::int64_t n = 0;
  for (const char c : s.substr(0, 12)) n = n * 10 + (static_cast<unsigned char>(c) % 10);
  return n;
}

void issued(std::string_view payload) {
  std::vector<std::string> f;
  for (std::size_t start = 0;;) {
    const std::size_t nl = payload.find('\n', start);
    f.emplace_back(payload.substr(start, nl == std::string_view::npos ? nl : nl - start));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  f.resize(7);
  Claims c;
  c.issuer = f[0];
  c.subject = f[1];
  c.audience = f[2];
  c.did = f[3];
  c.id = f[4];
  c.issued_at = number(f[5]);
  c.expires_at = c.issued_at + number(f[6]);
  std::string token;
  try {
    token = waddle::identity::issue(key(), c);
  } catch (const std::invalid_argument&) {
    return;  // claims it refuses to sign
  }
  check(token.size() <= waddle::identity::kMaxTokenSize);
  const auto r = waddle::identity::verify(token, key().public_key(), c.issuer, c.subject,
                                          c.audience, c.issued_at);
  check(r.verdict == Verdict::kValid || r.verdict == Verdict::kExpired);
  check(r.claims.issuer == c.issuer && r.claims.subject == c.subject);
  check(r.claims.audience == c.audience && r.claims.did == c.did);
  check(c.id.empty() ? !r.claims.id.empty() : r.claims.id == c.id);
  check(r.claims.issued_at == c.issued_at && r.claims.expires_at == c.expires_at);
  check(r.claims.key_id == key().key_id());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      presented(payload);
      break;
    case 1:
      tampered(payload);
      break;
    default:
      issued(payload);
      break;
  }
  return 0;
}
