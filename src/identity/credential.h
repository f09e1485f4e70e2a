// Federated identity credentials for the `urn:waddle:identity` exchange: a home server signs a
// short-lived statement "this bare JID is one of my users" with its Ed25519 key, and a remote
// server checks it against the issuer's published public key. The format is a compact JWS/JWT
// (RFC 7515/7519) with alg "EdDSA" (RFC 8037, Ed25519): b64url(header).b64url(payload).b64url(sig)
// without padding. Pure: OpenSSL 3 EVP and Boost.JSON, no Asio.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace waddle::identity {

// Largest token accepted by peek()/verify() and produced by issue(), in bytes.
inline constexpr std::size_t kMaxTokenSize = 4096;
// Clock skew tolerated by verify() on both `iat` and `exp`, in seconds.
inline constexpr std::int64_t kLeewaySeconds = 60;

// An Ed25519 private key. Immutable once built; copies share the same OpenSSL key, and a key may
// sign from several threads at once. A moved-from key is empty: sign() throws on it.
class SigningKey {
 public:
  // A fresh random key. Throws std::runtime_error if OpenSSL fails.
  static SigningKey generate();
  // Reads a PEM (PKCS#8) private key from `path`; if the file does not exist, generates one and
  // writes it with mode 0600 (the parent directory must exist). Throws std::runtime_error with
  // the path and the reason on an unreadable or invalid file (not PEM, encrypted, not Ed25519).
  static SigningKey load_or_create(const std::string& path);
  // The key whose RFC 8032 32-byte secret is `raw32` (test vectors, key import). Throws
  // std::invalid_argument on a wrong length.
  static SigningKey from_raw_private(std::string_view raw32);

  // Raw 32-byte public key.
  std::string public_key() const { return public_key_; }
  // Standard (padded) base64 of public_key(), 44 characters.
  std::string public_key_b64() const;
  // First 16 lowercase hex digits of SHA-256(public_key()); the JWS "kid".
  std::string key_id() const { return key_id_; }
  // Raw 64-byte Ed25519 signature of `data`. Throws std::runtime_error on an empty key or an
  // OpenSSL failure.
  std::string sign(std::string_view data) const;

 private:
  explicit SigningKey(EVP_PKEY* pkey);  // takes ownership; throws if it is not Ed25519

  std::shared_ptr<EVP_PKEY> pkey_;
  std::string public_key_;
  std::string key_id_;
};

// True when `signature` (raw 64 bytes) is a valid Ed25519 signature of `data` by the raw 32-byte
// `public_key_raw`; false on any error (bad key length or encoding, bad signature length).
bool verify_signature(std::string_view public_key_raw, std::string_view data,
                      std::string_view signature);
// Decodes a standard base64 public key (padded, 44 characters, or unpadded, 43) into its raw 32
// bytes; nullopt on anything else (wrong length, bad characters, non-canonical trailing bits).
std::optional<std::string> decode_public_key_b64(std::string_view b64);

// W3C DID syntax (did:METHOD:ID, e.g. did:plc:ewvi7nxzyoun6zhxrhs64oiz or did:web:example.org),
// at most 2048 characters as ATProto allows.
bool valid_did(std::string_view did);

struct Claims {
  std::string issuer;           // iss: issuer domain
  std::string subject;          // sub: bare JID
  std::string audience;         // aud: audience domain; empty = omitted
  std::string did;              // did: ATProto DID; empty = omitted
  std::string id;               // jti
  std::string key_id;           // kid, from the JWS header
  std::int64_t issued_at = 0;   // iat, seconds since the epoch
  std::int64_t expires_at = 0;  // exp, seconds since the epoch
};

// Signs `claims` into a compact JWS. The kid is taken from `key` (claims.key_id is ignored); an
// empty claims.id gets a random 16-hex-digit jti. Throws std::invalid_argument when the result
// would not pass peek(): empty issuer or subject, negative times, token over kMaxTokenSize.
std::string issue(const SigningKey& key, const Claims& claims);

// Decodes the header and payload without checking the signature (to learn iss and kid, so as to
// fetch the right key); nullopt if the token is malformed. Nothing returned here is
// authenticated.
std::optional<Claims> peek(std::string_view token);

enum class Verdict {
  kValid,
  kMalformed,
  kBadSignature,
  kExpired,
  kNotYetValid,
  kWrongIssuer,
  kWrongSubject,
  kWrongAudience,
};
// Short human-readable text, e.g. "credential expired".
std::string_view describe(Verdict v);

struct VerifyResult {
  Verdict verdict = Verdict::kMalformed;
  // Filled once the signature has been checked (every verdict but kMalformed and kBadSignature);
  // trustworthy as a whole only with kValid.
  Claims claims;
};

// Checks, in this order: the token is well-formed (size, three base64url parts, JSON objects,
// alg EdDSA, no "crit", claim types); the signature is by `public_key_raw`; iss ==
// expected_issuer; sub == expected_subject (bare JID, exact string compare); aud ==
// expected_audience unless expected_audience is empty; iat <= now + leeway; exp > now - leeway
// (leeway = kLeewaySeconds). `now` is in seconds since the epoch.
VerifyResult verify(std::string_view token, std::string_view public_key_raw,
                    std::string_view expected_issuer, std::string_view expected_subject,
                    std::string_view expected_audience, std::int64_t now);

}  // namespace waddle::identity
