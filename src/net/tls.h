// TLS contexts for listeners: one SSL_CTX per served domain (chosen by SNI), certificates
// from [tls] or a self-signed certificate generated on first start.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"

namespace waddle::net {

class TlsContexts {
 public:
  // Throws std::runtime_error with a readable message when a certificate cannot be loaded.
  explicit TlsContexts(const core::Config& config);

  // The context a c2s listener starts handshakes with; SNI switches to the domain's context.
  boost::asio::ssl::context& c2s() { return *c2s_default_; }

  // S2S server context: picks the domain's certificate by SNI, asks the peer for a client
  // certificate (for SASL EXTERNAL) without requiring one, and accepts one for TLS server or
  // TLS client authentication (a server's certificate may allow only the former). S2S client
  // context per local domain, presenting that domain's certificate; the peer's must allow TLS
  // server authentication. Both verify the peer against [tls] ca_file (or the system store)
  // but let the handshake finish: the S2S policy decides afterwards from peer_chain_valid()
  // and the RFC 6125 name check.
  boost::asio::ssl::context& s2s_server() { return *s2s_default_; }
  boost::asio::ssl::context& s2s_client(const std::string& local_domain);
  // The domain's server context (its certificate), or null when the domain is not served.
  SSL_CTX* c2s_for(const std::string& domain) const;
  SSL_CTX* s2s_server_for(const std::string& domain) const;

  // Where the certificate for `domain` came from (for logs and `check`).
  std::string describe(const std::string& domain) const;

  // SIGHUP: reads every certificate and key again from the files they came from (a renewed
  // certificate replaces the old one for new connections; open ones keep theirs). All pairs
  // are checked before any is used: on a problem nothing changes and std::runtime_error
  // says what. Returns how many contexts were reloaded.
  std::size_t reload_certificates();

 private:
  std::unique_ptr<boost::asio::ssl::context> make_server_context(const core::CertKey& ck,
                                                                 const std::string& min_version);
  std::map<std::string, std::unique_ptr<boost::asio::ssl::context>> by_domain_;
  std::map<std::string, core::CertKey> files_;
  std::map<std::string, SSL_CTX*> sni_;  // SNI host -> context, read by the callback
  std::unique_ptr<boost::asio::ssl::context> c2s_default_;
  std::map<std::string, std::unique_ptr<boost::asio::ssl::context>> s2s_by_domain_;
  std::map<std::string, SSL_CTX*> s2s_sni_;
  std::unique_ptr<boost::asio::ssl::context> s2s_default_;
  std::map<std::string, std::unique_ptr<boost::asio::ssl::context>> s2s_clients_;
  // Every context holding a certificate, with the files it was loaded from.
  std::vector<std::pair<SSL_CTX*, core::CertKey>> loaded_;
};

// Writes a self-signed certificate (P-256, SAN = the domains) to cert/key paths unless both
// exist. Throws std::runtime_error on failure.
void ensure_self_signed(const std::string& cert_path, const std::string& key_path,
                        const std::vector<std::string>& domains);

}  // namespace waddle::net
