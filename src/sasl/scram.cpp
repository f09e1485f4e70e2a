// SCRAM server (RFC 5802 §3, §5, §7; RFC 7677 for SHA-256) without channel binding, and the
// credential derivation shared with PLAIN. Unknown users get a stable fake salt so that an
// exchange does not reveal whether the account exists (RFC 5802 §9).
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base64.h"
#include "core/jid.h"
#include "sasl/scram.h"

namespace waddle::sasl {
namespace {

constexpr std::size_t kSaltSize = 16;
constexpr std::size_t kServerNonceBytes = 18;  // 24 base64 characters
constexpr std::string_view kMalformed = "malformed-request";
constexpr std::string_view kNotAuthorized = "not-authorized";

const EVP_MD* digest_of(ScramHash hash) {
  return hash == ScramHash::kSha1 ? EVP_sha1() : EVP_sha256();
}

std::string hmac(ScramHash hash, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (key.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return {};
  if (HMAC(digest_of(hash), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
           &len) == nullptr) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string digest(ScramHash hash, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, digest_of(hash), nullptr) != 1) return {};
  return std::string(reinterpret_cast<const char*>(out), len);
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Key for the fake salts of unknown users: fixed for the life of the process, so that asking
// twice for the same unknown user gives the same salt, as for a real account.
const std::string& fake_salt_key() {
  static const std::string key = random_bytes(32);
  return key;
}

std::vector<std::string_view> split_commas(std::string_view s) {
  std::vector<std::string_view> parts;
  for (;;) {
    const auto comma = s.find(',');
    parts.push_back(s.substr(0, comma));
    if (comma == std::string_view::npos) return parts;
    s.remove_prefix(comma + 1);
  }
}

// RFC 5802 §5.1 saslname: "=2C" and "=3D" stand for ',' and '='; any other '=' is invalid.
std::optional<std::string> decode_saslname(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '=') {
      out += s[i];
      continue;
    }
    const std::string_view escape = s.substr(i, 3);
    if (escape == "=2C") {
      out += ',';
    } else if (escape == "=3D") {
      out += '=';
    } else {
      return std::nullopt;
    }
    i += 2;
  }
  return out;
}

// RFC 5802 §7: printable = %x21-2B / %x2D-7E.
bool valid_nonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

// An attribute "x=value" with the given name; nullopt otherwise.
std::optional<std::string_view> attribute(std::string_view part, char name) {
  if (part.size() < 2 || part[0] != name || part[1] != '=') return std::nullopt;
  return part.substr(2);
}

// Optional extensions (RFC 5802 §7 "extensions"): attr-val with a letter as the name.
bool valid_extension(std::string_view part) {
  if (part.size() < 2 || part[1] != '=') return false;
  const char c = part[0];
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

}  // namespace

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (n == 0) return out;
  if (n > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    // Salts and nonces without entropy would silently weaken every account; the CSPRNG
    // failing is not something the server can work around.
    std::fputs("waddle: RAND_bytes failed, aborting\n", stderr);
    std::abort();
  }
  return out;
}

ScramCredentials derive_credentials(ScramHash hash, std::string_view password,
                                    std::string_view salt, std::uint32_t iterations) {
  // RFC 5802 §3: SaltedPassword = Hi(password, salt, i); ClientKey = HMAC(SaltedPassword,
  // "Client Key"); StoredKey = H(ClientKey); ServerKey = HMAC(SaltedPassword, "Server Key").
  constexpr auto kMaxInt = static_cast<std::size_t>(std::numeric_limits<int>::max());
  if (iterations == 0 || iterations > kMaxInt || password.size() > kMaxInt ||
      salt.size() > kMaxInt) {
    return {};
  }
  const EVP_MD* md = digest_of(hash);
  const int size = EVP_MD_get_size(md);
  std::string salted(static_cast<std::size_t>(size), '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), static_cast<int>(iterations), md, size,
                        reinterpret_cast<unsigned char*>(salted.data())) != 1) {
    return {};
  }
  const std::string client_key = hmac(hash, salted, "Client Key");
  ScramCredentials creds;
  creds.salt = std::string(salt);
  creds.iterations = iterations;
  creds.stored_key = digest(hash, client_key);
  creds.server_key = hmac(hash, salted, "Server Key");
  OPENSSL_cleanse(salted.data(), salted.size());
  if (client_key.empty() || creds.stored_key.empty() || creds.server_key.empty()) return {};
  return creds;
}

ScramCredentials make_credentials(ScramHash hash, std::string_view password) {
  return derive_credentials(hash, password, random_bytes(kSaltSize), kDefaultIterations);
}

bool verify_password(ScramHash hash, const ScramCredentials& creds, std::string_view password) {
  if (creds.empty()) return false;
  const ScramCredentials derived = derive_credentials(hash, password, creds.salt, creds.iterations);
  return equal_constant_time(derived.stored_key, creds.stored_key);
}

bool verify_password_unknown_account(ScramHash hash, std::string_view password) {
  // A salt of the usual size and the usual iteration count: the derivation costs what a
  // stored account's would (the stored count is kDefaultIterations unless imported).
  static const std::string salt = random_bytes(kSaltSize);
  derive_credentials(hash, password, salt, kDefaultIterations);
  return false;
}

ScramServer::ScramServer(ScramHash hash) : hash_(hash) {}

std::optional<std::string> ScramServer::client_first(std::string_view message) {
  auto fail = [this]() -> std::optional<std::string> {
    error_ = kMalformed;
    state_ = State::kFinished;
    return std::nullopt;
  };
  if (state_ != State::kInitial) return fail();

  // gs2-header (RFC 5802 §7): cbind flag "n" or "y" (we offer no -PLUS mechanism, so a
  // client that supports binding says "y"); "p=" asks for binding we cannot do.
  if (!message.starts_with("n,") && !message.starts_with("y,")) return fail();
  std::size_t pos = 2;
  if (message.substr(pos).starts_with("a=")) {
    const auto comma = message.find(',', pos);
    if (comma == std::string_view::npos) return fail();
    auto authzid = decode_saslname(message.substr(pos + 2, comma - pos - 2));
    if (!authzid || authzid->empty()) return fail();
    authzid_ = std::move(*authzid);
    pos = comma + 1;
  } else {
    if (pos >= message.size() || message[pos] != ',') return fail();
    ++pos;
  }
  gs2_header_ = std::string(message.substr(0, pos));
  const std::string_view bare = message.substr(pos);

  // client-first-message-bare: [reserved-mext ","] username "," nonce ["," extensions].
  // A mandatory extension ("m=") is one we do not understand, so the exchange must fail.
  const auto parts = split_commas(bare);
  if (parts.size() < 2) return fail();
  const auto name = attribute(parts[0], 'n');
  const auto cnonce = attribute(parts[1], 'r');
  if (!name || !cnonce || !valid_nonce(*cnonce)) return fail();
  for (std::size_t i = 2; i < parts.size(); ++i) {
    if (!valid_extension(parts[i])) return fail();
  }
  auto decoded = decode_saslname(*name);
  if (!decoded) return fail();
  auto username = core::saslprep(*decoded);
  if (!username || username->empty()) return fail();

  username_ = std::move(*username);
  client_first_bare_ = std::string(bare);
  nonce_ = std::string(*cnonce);
  state_ = State::kClientFirst;
  return username_;
}

std::string ScramServer::server_first(const std::optional<ScramCredentials>& creds) {
  if (state_ != State::kClientFirst) {
    error_ = kMalformed;
    state_ = State::kFinished;
    return {};
  }
  known_user_ = creds.has_value() && !creds->empty();
  if (known_user_) {
    creds_ = *creds;
  } else {
    // Stable per (hash, username) for this process; the random keys never match any proof.
    const std::string tag = (hash_ == ScramHash::kSha1 ? "sha1:" : "sha256:") + username_;
    creds_.salt = hmac(ScramHash::kSha256, fake_salt_key(), tag).substr(0, kSaltSize);
    creds_.iterations = kDefaultIterations;
    const auto size = static_cast<std::size_t>(EVP_MD_get_size(digest_of(hash_)));
    creds_.stored_key = random_bytes(size);
    creds_.server_key = random_bytes(size);
  }
  nonce_ +=
      server_nonce_.empty() ? core::base64_encode(random_bytes(kServerNonceBytes)) : server_nonce_;
  server_first_ = "r=" + nonce_ + ",s=" + core::base64_encode(creds_.salt) +
                  ",i=" + std::to_string(creds_.iterations);
  state_ = State::kServerFirst;
  return server_first_;
}

std::optional<ScramServer::Final> ScramServer::client_final(std::string_view message) {
  const bool expected = state_ == State::kServerFirst;
  state_ = State::kFinished;
  auto fail = [this](std::string_view error) -> std::optional<Final> {
    error_ = error;
    return std::nullopt;
  };
  if (!expected) return fail(kMalformed);

  // client-final-message (RFC 5802 §7): channel-binding "," nonce ["," extensions] "," proof.
  const auto parts = split_commas(message);
  if (parts.size() < 3) return fail(kMalformed);
  const auto binding = attribute(parts.front(), 'c');
  const auto nonce = attribute(parts[1], 'r');
  const auto proof_b64 = attribute(parts.back(), 'p');
  if (!binding || !nonce || !proof_b64) return fail(kMalformed);
  for (std::size_t i = 2; i + 1 < parts.size(); ++i) {
    if (!valid_extension(parts[i])) return fail(kMalformed);
  }
  const auto binding_data = core::base64_decode(*binding);
  const auto proof = core::base64_decode(*proof_b64);
  if (!binding_data || !proof) return fail(kMalformed);

  // Without channel binding, c= carries exactly the gs2 header of client-first (§6).
  if (*binding_data != gs2_header_) return fail(kNotAuthorized);
  if (*nonce != nonce_) return fail(kNotAuthorized);

  const std::string_view without_proof =
      message.substr(0, message.size() - parts.back().size() - 1);
  std::string auth_message = client_first_bare_;
  auth_message += ',';
  auth_message += server_first_;
  auth_message += ',';
  auth_message += without_proof;

  // ClientKey = ClientProof XOR ClientSignature; the proof holds when H(ClientKey) is the
  // StoredKey. Computed for unknown users too, so both paths cost the same.
  const std::string client_signature = hmac(hash_, creds_.stored_key, auth_message);
  bool ok = proof->size() == client_signature.size() && !client_signature.empty();
  std::string client_key(client_signature.size(), '\0');
  if (ok) {
    for (std::size_t i = 0; i < client_key.size(); ++i) {
      client_key[i] = static_cast<char>((*proof)[i] ^ client_signature[i]);
    }
  }
  ok = equal_constant_time(digest(hash_, client_key), creds_.stored_key) && ok && known_user_;
  if (!ok) return fail(kNotAuthorized);

  const std::string server_signature = hmac(hash_, creds_.server_key, auth_message);
  if (server_signature.empty()) return fail(kNotAuthorized);
  error_.clear();
  return Final{"v=" + core::base64_encode(server_signature)};
}

}  // namespace waddle::sasl
