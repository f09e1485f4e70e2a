// SCRAM (RFC 5802, RFC 7677) server side for SCRAM-SHA-1 and SCRAM-SHA-256, without channel
// binding; credentials are stored as salted keys, never as passwords.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace waddle::sasl {

enum class ScramHash { kSha1, kSha256 };

// What the server stores per hash: salt (raw bytes), iteration count, StoredKey, ServerKey.
struct ScramCredentials {
  std::string salt;
  std::uint32_t iterations = 0;
  std::string stored_key;  // raw bytes
  std::string server_key;  // raw bytes
  bool empty() const { return stored_key.empty(); }
  friend bool operator==(const ScramCredentials&, const ScramCredentials&) = default;
};

inline constexpr std::uint32_t kDefaultIterations = 4096;

// Derives credentials from an already SASLprepped password.
ScramCredentials derive_credentials(ScramHash hash, std::string_view password,
                                    std::string_view salt, std::uint32_t iterations);
// Random 16-byte salt, kDefaultIterations.
ScramCredentials make_credentials(ScramHash hash, std::string_view password);
// True when `password` matches the stored credentials (used by PLAIN).
bool verify_password(ScramHash hash, const ScramCredentials& creds, std::string_view password);
// The same work as verify_password() against an account that does not exist (or has no
// credentials for `hash`), and false: how long a PLAIN login takes must not tell whether the
// account exists.
bool verify_password_unknown_account(ScramHash hash, std::string_view password);

// One server-side SCRAM exchange:
//   auto user = s.client_first(msg);      // nullopt: malformed -> <malformed-request/>
//   std::string server_first = s.server_first(creds_or_nullopt);  // unknown user: fake creds
//   auto r = s.client_final(msg);         // nullopt: not authorized / malformed
//   -> r->server_final is sent in <success/>
class ScramServer {
 public:
  explicit ScramServer(ScramHash hash);

  // Parses client-first-message. Returns the SASLprepped username (authcid), or nullopt
  // when malformed or when channel binding is required ('p=') (error_ is set then). An
  // authzid ("a=") is kept in authzid(); the caller decides whether it is allowed.
  std::optional<std::string> client_first(std::string_view message);
  // Builds server-first-message. With nullopt (unknown user) the exchange continues with
  // random credentials so that it fails at client_final without revealing the account.
  // Returns "" (error_ malformed-request) unless client_first succeeded just before.
  std::string server_first(const std::optional<ScramCredentials>& creds);

  struct Final {
    std::string server_final;  // "v=..."
  };
  // Verifies client-final-message; nullopt when the proof is wrong or the message malformed.
  std::optional<Final> client_final(std::string_view message);

  // "malformed-request" or "not-authorized" after a failure.
  const std::string& error() const { return error_; }
  const std::string& authzid() const { return authzid_; }

  // For tests only: replaces the random server nonce part so that the RFC 5802 / RFC 7677
  // example exchanges can be reproduced. Must be printable ASCII without ','.
  void set_server_nonce_for_testing(std::string nonce) { server_nonce_ = std::move(nonce); }

 private:
  // Each step is accepted once and in order; anything else fails with malformed-request.
  enum class State { kInitial, kClientFirst, kServerFirst, kFinished };

  ScramHash hash_;
  std::string username_;
  std::string authzid_;
  std::string client_first_bare_;
  std::string gs2_header_;
  std::string nonce_;  // combined client+server nonce
  std::string server_first_;
  ScramCredentials creds_;
  bool known_user_ = false;
  std::string error_;
  std::string server_nonce_;  // empty: random
  State state_ = State::kInitial;
};

// PLAIN (RFC 4616): "authzid\0authcid\0passwd". nullopt when malformed.
struct PlainMessage {
  std::string authzid;
  std::string authcid;
  std::string password;
};
std::optional<PlainMessage> parse_plain(std::string_view message);

// Cryptographically random bytes (OpenSSL RAND_bytes).
std::string random_bytes(std::size_t n);

}  // namespace waddle::sasl
