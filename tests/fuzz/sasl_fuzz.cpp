// libFuzzer target for the SASL messages a client or a peer server sends before it is
// authenticated: SCRAM (RFC 5802) client-first and client-final against a server with one
// known user, PLAIN (RFC 4616), the SASL EXTERNAL authorization identity (XEP-0178) and the
// strict base64 (RFC 4648) they all arrive in.
//
// Input: one mode byte, then the payload. For SCRAM the payload is client-first '\n'
// client-final; in client-final "@C" stands for base64 of the gs2 header, "@N" for the nonce
// the server sent and a final "p=@P" for the proof a client knowing the password would send,
// so that the fuzzer reaches past the nonce and proof checks.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/base64.h"
#include "core/jid.h"
#include "sasl/scram.h"

namespace {

using waddle::sasl::ScramCredentials;
using waddle::sasl::ScramHash;

constexpr std::string_view kUser = "user";
constexpr std::string_view kPassword = "pencil";
constexpr std::string_view kSalt = "QSXCR+Q6sek8bf92";
constexpr std::uint32_t kIterations = 16;  // few, to keep the fuzzer fast

void check(bool ok) {
  if (!ok) __builtin_trap();
}

const EVP_MD* md(ScramHash h) {
  return h == ScramHash::kSha1 ? EVP_sha1() : EVP_sha256();
}

std::string hmac(ScramHash h, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md(h), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string salted_password(ScramHash h) {
  std::string out(static_cast<std::size_t>(EVP_MD_get_size(md(h))), '\0');
  PKCS5_PBKDF2_HMAC(kPassword.data(), static_cast<int>(kPassword.size()),
                    reinterpret_cast<const unsigned char*>(kSalt.data()),
                    static_cast<int>(kSalt.size()), static_cast<int>(kIterations), md(h),
                    static_cast<int>(out.size()), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (std::size_t pos = s.find(from); pos != std::string::npos;
       pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
}

void scram(ScramHash h, std::string_view payload) {
  const std::size_t nl = payload.find('\n');
  const std::string_view first = payload.substr(0, nl);
  std::string final_msg(nl == std::string_view::npos ? std::string_view{} : payload.substr(nl + 1));

  waddle::sasl::ScramServer server(h);
  server.set_server_nonce_for_testing("3rfcNHYJY1ZVvWVs7j");
  const auto user = server.client_first(first);
  if (!user) {
    check(server.error() == "malformed-request");
    check(server.server_first(std::nullopt).empty());
    return;
  }
  check(!user->empty());
  std::optional<ScramCredentials> creds;
  if (*user == kUser) creds = waddle::sasl::derive_credentials(h, kPassword, kSalt, kIterations);
  const std::string server_first = server.server_first(creds);
  check(server_first.starts_with("r="));
  const std::string nonce = server_first.substr(2, server_first.find(",s=") - 2);

  // The gs2 header ends at the second comma (RFC 5802 §7).
  const std::string gs2(first.substr(0, first.find(',', 2) + 1));
  const std::string_view bare = first.substr(gs2.size());
  replace_all(final_msg, "@C", waddle::core::base64_encode(gs2));
  replace_all(final_msg, "@N", nonce);
  const std::string auth_base = std::string(bare) + "," + server_first + ",";
  const std::string salted = salted_password(h);
  if (final_msg.ends_with(",p=@P")) {
    const std::string without_proof = final_msg.substr(0, final_msg.size() - 5);
    const std::string client_key = hmac(h, salted, "Client Key");
    unsigned char stored[EVP_MAX_MD_SIZE];
    unsigned int stored_len = 0;
    EVP_Digest(client_key.data(), client_key.size(), stored, &stored_len, md(h), nullptr);
    std::string proof = hmac(h, std::string_view(reinterpret_cast<char*>(stored), stored_len),
                             auth_base + without_proof);
    for (std::size_t i = 0; i < proof.size(); ++i) proof[i] ^= client_key[i];
    final_msg = without_proof + ",p=" + waddle::core::base64_encode(proof);
  }

  const auto result = server.client_final(final_msg);
  if (!result) {
    check(server.error() == "malformed-request" || server.error() == "not-authorized");
    return;
  }
  // Only the known user with the right password gets in, and the server proves it knows the
  // password too (RFC 5802 §3: ServerSignature over the same AuthMessage).
  check(*user == kUser);
  const std::string without_proof = final_msg.substr(0, final_msg.rfind(','));
  const std::string server_key = hmac(h, salted, "Server Key");
  check(result->server_final ==
        "v=" + waddle::core::base64_encode(hmac(h, server_key, auth_base + without_proof)));
  // The exchange is over: nothing more is accepted.
  check(!server.client_final(final_msg).has_value());
}

void plain(std::string_view payload) {
  const auto m = waddle::sasl::parse_plain(payload);
  if (!m) return;
  check(!m->authcid.empty() && !m->password.empty());
  check(m->authcid.find('\0') == std::string::npos);
  check(m->password.find('\0') == std::string::npos);
  // As the server checks it: the authzid is a JID, the password against salted keys.
  if (!m->authzid.empty()) (void)waddle::core::Jid::parse(m->authzid);
  (void)waddle::core::nodeprep(m->authcid);
  const auto creds = waddle::sasl::derive_credentials(ScramHash::kSha256, kPassword, kSalt, 1);
  check(waddle::sasl::verify_password(ScramHash::kSha256, creds, m->password) ==
        (m->password == kPassword));
}

void base64(std::string_view payload) {
  // Strict: what decodes is the one canonical encoding of what it decodes to.
  if (const auto d = waddle::core::base64_decode(payload)) {
    check(payload == "=" ? d->empty() : waddle::core::base64_encode(*d) == payload);
  }
  const std::string e = waddle::core::base64_encode(payload);
  check(e.size() % 4 == 0);
  check(waddle::core::base64_decode(e) == std::string(payload));
}

// SASL EXTERNAL on a server stream: the authorization identity is a base64 domain, compared
// with the stream's 'from' once prepared.
void external(std::string_view payload) {
  const auto authzid = waddle::core::base64_decode(payload);
  if (!authzid || authzid->empty()) return;
  if (const auto d = waddle::core::nameprep_domain(*authzid)) check(!d->empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      scram(ScramHash::kSha256, payload);
      break;
    case 1:
      scram(ScramHash::kSha1, payload);
      break;
    case 2:
      plain(payload);
      break;
    case 3:
      base64(payload);
      break;
    default:
      external(payload);
      break;
  }
  return 0;
}
