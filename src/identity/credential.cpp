// Federated identity credentials: Ed25519 keys (OpenSSL 3 EVP), strict base64/base64url, and
// the compact JWS (RFC 7515) / JWT (RFC 7519) with alg EdDSA (RFC 8037) that carries them.
#include "identity/credential.h"
#include "core/base64.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/algorithm/string/predicate.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace waddle::identity {
namespace {

constexpr std::size_t kPublicKeySize = 32;
constexpr std::size_t kPrivateKeySize = 32;
constexpr std::size_t kSignatureSize = 64;
constexpr std::size_t kKeyIdHexDigits = 16;
constexpr std::size_t kJtiBytes = 8;
// A PEM Ed25519 key is ~120 bytes; anything far larger is not one.
constexpr std::size_t kMaxKeyFileSize = 64 * 1024;
constexpr std::string_view kAlg = "EdDSA";
constexpr std::string_view kTyp = "JWT";

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

const unsigned char* bytes(std::string_view s) {
  // Ed25519 signs the empty message too; never hand OpenSSL a null pointer for it.
  static constexpr unsigned char kEmpty = 0;
  return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

// The most recent OpenSSL error as text (or `fallback`), leaving the thread's error queue empty
// so that a later, unrelated TLS call does not see it.
std::string take_openssl_error(std::string_view fallback) {
  const unsigned long code = ERR_peek_last_error();
  const char* reason = code != 0 ? ERR_reason_error_string(code) : nullptr;
  ERR_clear_error();
  return reason != nullptr ? std::string(reason) : std::string(fallback);
}

std::string to_hex(std::string_view data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (unsigned char c : data) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0x0f]);
  }
  return out;
}

// --- base64url (RFC 4648 §5, unpadded), on the project's strict base64 codec ---

std::string base64url_encode(std::string_view data) {
  std::string s = core::base64_encode(data);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return s;
}

// Only the URL alphabet and no padding; the standard decoder then rejects bad lengths and
// non-canonical trailing bits, so every byte string has exactly one accepted encoding.
std::optional<std::string> base64url_decode(std::string_view in) {
  if (in.find_first_of("+/=") != std::string_view::npos) return std::nullopt;
  std::string s(in);
  for (char& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
  s.append((4 - s.size() % 4) % 4, '=');
  return core::base64_decode(s);
}

// --- keys ---

std::string raw_public_key(EVP_PKEY* pkey) {
  std::string raw(kPublicKeySize, '\0');
  std::size_t len = raw.size();
  if (EVP_PKEY_get_raw_public_key(pkey, reinterpret_cast<unsigned char*>(raw.data()), &len) != 1 ||
      len != kPublicKeySize) {
    throw std::runtime_error("Ed25519 public key: " + take_openssl_error("cannot extract"));
  }
  return raw;
}

std::string sha256(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  if (EVP_Digest(bytes(data), data.size(), digest.data(), &len, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256: " + take_openssl_error("failed"));
  }
  return std::string(reinterpret_cast<const char*>(digest.data()), len);
}

std::string pem_of(EVP_PKEY* pkey) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    throw std::runtime_error("Ed25519 private key: " + take_openssl_error("cannot encode PEM"));
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  std::string pem(data, static_cast<std::size_t>(len));
  OPENSSL_cleanse(data, static_cast<std::size_t>(len));
  return pem;
}

// Refuses to prompt on the terminal for the passphrase of an encrypted PEM key.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

std::string errno_text(int err) {
  return std::strerror(err);
}

[[noreturn]] void throw_file_error(const std::string& path, std::string_view reason) {
  throw std::runtime_error("identity key file " + path + ": " + std::string(reason));
}

// Writes all of `data` to `fd`; false with errno set on failure.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now, reporting the error (a failed close can mean lost written data).
  bool close() {
    const int fd = std::exchange(fd_, -1);
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

// Reads the whole file behind `fd` (at most kMaxKeyFileSize bytes).
std::string read_key_file(int fd, const std::string& path) {
  std::string content;
  std::array<char, 4096> buf{};
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      OPENSSL_cleanse(content.data(), content.size());
      throw_file_error(path, "cannot read: " + errno_text(err));
    }
    if (n == 0) break;
    content.append(buf.data(), static_cast<std::size_t>(n));
    if (content.size() > kMaxKeyFileSize) {
      OPENSSL_cleanse(content.data(), content.size());
      throw_file_error(path, "too large for a PEM private key");
    }
  }
  OPENSSL_cleanse(buf.data(), buf.size());
  return content;
}

EVP_PKEY* parse_private_key_pem(std::string& pem, const std::string& path) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* pkey =
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr) : nullptr;
  OPENSSL_cleanse(pem.data(), pem.size());
  if (pkey == nullptr) {
    throw_file_error(path, "not a valid unencrypted PEM private key (" +
                               take_openssl_error("no key found") + ")");
  }
  if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(pkey);
    throw_file_error(path, "not an Ed25519 private key");
  }
  return pkey;
}

// --- JSON claims ---

std::optional<boost::json::object> parse_object(std::string_view text) {
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(text, ec);
  if (ec || !value.is_object()) return std::nullopt;
  return std::move(value.as_object());
}

// A string member: nullopt when absent or not a string (`present` tells the two apart).
std::optional<std::string> string_member(const boost::json::object& obj, std::string_view key,
                                         bool& present) {
  const boost::json::value* v = obj.if_contains(key);
  present = v != nullptr;
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string(v->get_string());
}

// A required non-negative integer NumericDate (RFC 7519 §2; fractions are refused here).
std::optional<std::int64_t> time_member(const boost::json::object& obj, std::string_view key) {
  const boost::json::value* v = obj.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) {
    const std::int64_t t = v->get_int64();
    if (t < 0) return std::nullopt;
    return t;
  }
  return std::nullopt;  // fractions, exponents, values beyond int64, non-numbers
}

struct Parsed {
  Claims claims;
  std::string_view signing_input;  // "header.payload", what the signature covers
  std::string signature;           // raw 64 bytes
};

std::optional<Parsed> parse(std::string_view token) {
  if (token.empty() || token.size() > kMaxTokenSize) return std::nullopt;
  const std::size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return std::nullopt;
  const std::size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  auto header_json = base64url_decode(token.substr(0, dot1));
  auto payload_json = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!header_json || !payload_json || !signature || signature->size() != kSignatureSize) {
    return std::nullopt;
  }

  // Header (RFC 7515 §4.1, RFC 8037 §3.1): alg must be EdDSA - never "none", never chosen by the
  // sender from a list; any "crit" names extensions we do not implement, so it is refused.
  auto header = parse_object(*header_json);
  if (!header) return std::nullopt;
  bool present = false;
  auto alg = string_member(*header, "alg", present);
  if (!alg || *alg != kAlg) return std::nullopt;
  if (header->contains("crit")) return std::nullopt;
  auto typ = string_member(*header, "typ", present);
  if (present && (!typ || !boost::algorithm::iequals(*typ, kTyp))) return std::nullopt;
  auto kid = string_member(*header, "kid", present);
  if (!kid) return std::nullopt;

  // Claims (RFC 7519 §4.1). Unknown claims are ignored; known ones must have our types.
  auto payload = parse_object(*payload_json);
  if (!payload) return std::nullopt;
  Parsed parsed;
  Claims& claims = parsed.claims;
  claims.key_id = std::move(*kid);
  auto iss = string_member(*payload, "iss", present);
  auto sub = string_member(*payload, "sub", present);
  auto jti = string_member(*payload, "jti", present);
  if (!iss || iss->empty() || !sub || sub->empty() || !jti || jti->empty()) return std::nullopt;
  claims.issuer = std::move(*iss);
  claims.subject = std::move(*sub);
  claims.id = std::move(*jti);
  auto aud = string_member(*payload, "aud", present);
  if (present && !aud) return std::nullopt;  // we only issue a single audience, as a string
  if (aud) claims.audience = std::move(*aud);
  auto did = string_member(*payload, "did", present);
  if (present && !did) return std::nullopt;
  if (did) claims.did = std::move(*did);
  auto iat = time_member(*payload, "iat");
  auto exp = time_member(*payload, "exp");
  if (!iat || !exp) return std::nullopt;
  claims.issued_at = *iat;
  claims.expires_at = *exp;

  parsed.signing_input = token.substr(0, dot2);
  parsed.signature = std::move(*signature);
  return parsed;
}

std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (!__builtin_add_overflow(a, b, &r)) return r;
  return b > 0 ? std::numeric_limits<std::int64_t>::max()
               : std::numeric_limits<std::int64_t>::min();
}

}  // namespace

// --- SigningKey ---

SigningKey::SigningKey(EVP_PKEY* pkey) : pkey_(pkey, PkeyFree()) {
  if (pkey == nullptr || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
    throw std::runtime_error("SigningKey: not an Ed25519 key");
  }
  public_key_ = raw_public_key(pkey);
  key_id_ = to_hex(sha256(public_key_)).substr(0, kKeyIdHexDigits);
}

SigningKey SigningKey::generate() {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &pkey) != 1) {
    throw std::runtime_error("Ed25519 key generation: " + take_openssl_error("failed"));
  }
  return SigningKey(pkey);
}

SigningKey SigningKey::from_raw_private(std::string_view raw32) {
  if (raw32.size() != kPrivateKeySize) {
    throw std::invalid_argument("Ed25519 private key must be 32 bytes");
  }
  EVP_PKEY* pkey =
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, bytes(raw32), raw32.size());
  if (pkey == nullptr) {
    throw std::runtime_error("Ed25519 private key: " + take_openssl_error("invalid"));
  }
  return SigningKey(pkey);
}

SigningKey SigningKey::load_or_create(const std::string& path) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    Fd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (in.get() >= 0) {
      std::string pem = read_key_file(in.get(), path);
      return SigningKey(parse_private_key_pem(pem, path));
    }
    const int open_err = errno;
    if (open_err != ENOENT) throw_file_error(path, "cannot open: " + errno_text(open_err));

    // Missing: create it. O_EXCL so that two processes starting together never overwrite each
    // other's key; the loser of that race reads the winner's file on the second attempt.
    SigningKey key = generate();
    Fd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600));
    if (out.get() < 0) {
      const int create_err = errno;
      if (create_err == EEXIST) continue;
      throw_file_error(path, "cannot create: " + errno_text(create_err));
    }
    std::string pem = pem_of(key.pkey_.get());
    const bool written = write_all(out.get(), pem) && ::fsync(out.get()) == 0 && out.close();
    const int err = errno;
    OPENSSL_cleanse(pem.data(), pem.size());
    if (!written) {
      // Leave no truncated key behind: the next start would refuse it.
      ::unlink(path.c_str());
      throw_file_error(path, "cannot write: " + errno_text(err));
    }
    return key;
  }
  throw_file_error(path, "created and removed concurrently");
}

std::string SigningKey::public_key_b64() const {
  return core::base64_encode(public_key_);
}

std::string SigningKey::sign(std::string_view data) const {
  if (!pkey_) throw std::runtime_error("SigningKey: empty (moved-from) key");
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::string signature(kSignatureSize, '\0');
  std::size_t len = signature.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len,
                     bytes(data), data.size()) != 1 ||
      len != kSignatureSize) {
    throw std::runtime_error("Ed25519 signing: " + take_openssl_error("failed"));
  }
  return signature;
}

// --- free functions ---

bool verify_signature(std::string_view public_key_raw, std::string_view data,
                      std::string_view signature) {
  if (public_key_raw.size() != kPublicKeySize || signature.size() != kSignatureSize) return false;
  PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes(public_key_raw),
                                           public_key_raw.size()));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const bool ok =
      pkey && ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), bytes(signature), signature.size(), bytes(data), data.size()) ==
          1;
  if (!ok) ERR_clear_error();
  return ok;
}

std::optional<std::string> decode_public_key_b64(std::string_view b64) {
  // Padding is optional here: an unpadded key is padded before strict decoding.
  std::string padded(b64);
  if (padded.find('=') == std::string::npos) padded.append((4 - padded.size() % 4) % 4, '=');
  auto raw = core::base64_decode(padded);
  if (!raw || raw->size() != kPublicKeySize) return std::nullopt;
  return raw;
}

std::string issue(const SigningKey& key, const Claims& claims) {
  if (claims.issuer.empty() || claims.subject.empty()) {
    throw std::invalid_argument("credential needs an issuer and a subject");
  }
  if (claims.issued_at < 0 || claims.expires_at < 0) {
    throw std::invalid_argument("credential times must not be negative");
  }
  std::string jti = claims.id;
  if (jti.empty()) {
    std::array<unsigned char, kJtiBytes> random{};
    if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
      throw std::runtime_error("credential id: " + take_openssl_error("RAND_bytes failed"));
    }
    jti = to_hex({reinterpret_cast<const char*>(random.data()), random.size()});
  }

  boost::json::object header;
  header["alg"] = kAlg;
  header["typ"] = kTyp;
  header["kid"] = key.key_id();
  boost::json::object payload;
  payload["iss"] = claims.issuer;
  payload["sub"] = claims.subject;
  if (!claims.audience.empty()) payload["aud"] = claims.audience;
  if (!claims.did.empty()) payload["did"] = claims.did;
  payload["iat"] = claims.issued_at;
  payload["exp"] = claims.expires_at;
  payload["jti"] = jti;

  std::string token = base64url_encode(boost::json::serialize(header));
  token.push_back('.');
  token.append(base64url_encode(boost::json::serialize(payload)));
  const std::string signature = key.sign(token);
  token.push_back('.');
  token.append(base64url_encode(signature));
  if (token.size() > kMaxTokenSize) {
    throw std::invalid_argument("credential larger than " + std::to_string(kMaxTokenSize) +
                                " bytes");
  }
  // JSON text is UTF-8 (RFC 8259 §8.1): a claim with other bytes is serialized as given and the
  // token would then be refused as malformed by every verifier, this one included.
  if (!parse(token)) throw std::invalid_argument("credential claims are not valid UTF-8 text");
  return token;
}

std::optional<Claims> peek(std::string_view token) {
  auto parsed = parse(token);
  if (!parsed) return std::nullopt;
  return std::move(parsed->claims);
}

std::string_view describe(Verdict v) {
  // In the order of the enumerators.
  static constexpr std::array<std::string_view, 8> kNames{"credential valid",
                                                          "malformed credential",
                                                          "bad credential signature",
                                                          "credential expired",
                                                          "credential not yet valid",
                                                          "credential issuer mismatch",
                                                          "credential subject mismatch",
                                                          "credential audience mismatch"};
  const auto i = static_cast<std::size_t>(v);
  return i < kNames.size() ? kNames[i] : "unknown credential verdict";
}

VerifyResult verify(std::string_view token, std::string_view public_key_raw,
                    std::string_view expected_issuer, std::string_view expected_subject,
                    std::string_view expected_audience, std::int64_t now) {
  VerifyResult result;
  auto parsed = parse(token);
  if (!parsed) return result;  // kMalformed
  if (!verify_signature(public_key_raw, parsed->signing_input, parsed->signature)) {
    result.verdict = Verdict::kBadSignature;
    return result;
  }
  result.claims = std::move(parsed->claims);
  const Claims& c = result.claims;
  if (c.issuer != expected_issuer) {
    result.verdict = Verdict::kWrongIssuer;
  } else if (c.subject != expected_subject) {
    result.verdict = Verdict::kWrongSubject;
  } else if (!expected_audience.empty() && c.audience != expected_audience) {
    result.verdict = Verdict::kWrongAudience;
  } else if (c.issued_at > saturating_add(now, kLeewaySeconds)) {
    result.verdict = Verdict::kNotYetValid;
  } else if (c.expires_at <= saturating_add(now, -kLeewaySeconds)) {
    result.verdict = Verdict::kExpired;
  } else {
    result.verdict = Verdict::kValid;
  }
  return result;
}

bool valid_did(std::string_view did) {
  if (did.size() > 2048 || did.substr(0, 4) != "did:") return false;
  const std::string_view rest = did.substr(4);
  const auto colon = rest.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  for (char c : rest.substr(0, colon))
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  const std::string_view id = rest.substr(colon + 1);
  if (id.empty() || id.back() == ':') return false;
  for (std::size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '-' || c == '_' || c == ':';
    if (plain) continue;
    if (c != '%') return false;
    auto hex = [](char h) {
      return (h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F');
    };
    if (i + 2 >= id.size() || !hex(id[i + 1]) || !hex(id[i + 2])) return false;
    i += 2;
  }
  return true;
}

}  // namespace waddle::identity
