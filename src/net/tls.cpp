// TLS server contexts (RFC 7590: TLS 1.2+ for clients, 1.3 preferred) with SNI selection, and
// self-signed certificate generation for the embedded default.
#include "net/tls.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <filesystem>
#include <stdexcept>

namespace waddle::net {
namespace fs = std::filesystem;
namespace ssl = boost::asio::ssl;

namespace {

using SniMap = std::map<std::string, SSL_CTX*>;

int on_sni(SSL* ssl, int*, void* arg) {
  auto* by_domain = static_cast<SniMap*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;
  std::string host(name);
  for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = by_domain->find(host);
  if (it != by_domain->end()) SSL_set_SSL_CTX(ssl, it->second);
  return SSL_TLSEXT_ERR_OK;
}

// Accept the peer's chain during the handshake; SSL_get_verify_result() still reports the
// outcome, and the S2S authentication policy acts on it.
int accept_and_record(int, X509_STORE_CTX*) {
  return 1;
}

void trust(SSL_CTX* ctx, const std::string& ca_file) {
  if (ca_file.empty()) {
    SSL_CTX_set_default_verify_paths(ctx);
  } else if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    throw std::runtime_error("cannot load CA bundle " + ca_file);
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_and_record);
}

// Whether every certificate of `chain` (the leaf first) may serve `purpose`, as OpenSSL's own
// purpose check judges it: extended key usage, key usage, and the CA role above the leaf.
bool chain_suits(STACK_OF(X509) * chain, int purpose) {
  for (int i = 0; i < sk_X509_num(chain); ++i)
    if (X509_check_purpose(sk_X509_value(chain, i), purpose, i > 0 ? 1 : 0) == 0) return false;
  return true;
}

// On the server side of a handshake OpenSSL verifies the peer for TLS client authentication,
// but a server presents its domain's certificate whichever TLS role it has, and public CAs now
// issue server certificates for TLS server authentication only. So a server link verifies the
// chain for no particular purpose, then requires it to suit TLS server or TLS client
// authentication; a certificate for anything else (e-mail protection, code signing) is recorded
// as an unsuitable purpose, which peer_chain_valid() reports as not valid.
int verify_server_link_peer(X509_STORE_CTX* ctx, void*) {
  X509_VERIFY_PARAM_set_purpose(X509_STORE_CTX_get0_param(ctx), X509_PURPOSE_ANY);
  if (X509_verify_cert(ctx) <= 0) return 0;  // an internal failure ends the handshake
  if (X509_STORE_CTX_get_error(ctx) != X509_V_OK) return 1;
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx);
  if (chain_suits(chain, X509_PURPOSE_SSL_SERVER) || chain_suits(chain, X509_PURPOSE_SSL_CLIENT))
    return 1;
  X509_STORE_CTX_set_current_cert(ctx, sk_X509_value(chain, 0));
  X509_STORE_CTX_set_error_depth(ctx, 0);
  X509_STORE_CTX_set_error(ctx, X509_V_ERR_INVALID_PURPOSE);
  return 1;
}

// The S2S server contexts: each one, since SNI may switch a handshake to the domain's context.
void trust_server_link_peers(SSL_CTX* ctx, const std::string& ca_file) {
  trust(ctx, ca_file);
  SSL_CTX_set_cert_verify_callback(ctx, verify_server_link_peer, nullptr);
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

}  // namespace

namespace {
// Loads a certificate chain and its key into `ctx`; std::runtime_error says which file failed
// or that they do not belong together.
void load_pair(SSL_CTX* ctx, const core::CertKey& ck) {
  if (SSL_CTX_use_certificate_chain_file(ctx, ck.cert.c_str()) != 1)
    throw std::runtime_error("cannot load certificate " + ck.cert + ": " + openssl_error());
  if (SSL_CTX_use_PrivateKey_file(ctx, ck.key.c_str(), SSL_FILETYPE_PEM) != 1)
    throw std::runtime_error("cannot load key " + ck.key + ": " + openssl_error());
  if (SSL_CTX_check_private_key(ctx) != 1)
    throw std::runtime_error("key " + ck.key + " does not match certificate " + ck.cert);
}
}  // namespace

std::unique_ptr<ssl::context> TlsContexts::make_server_context(const core::CertKey& ck,
                                                               const std::string& min_version) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* raw = ctx->native_handle();
  SSL_CTX_set_min_proto_version(raw, min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(
      raw, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);
  load_pair(raw, ck);
  return ctx;
}

TlsContexts::TlsContexts(const core::Config& config) {
  const auto domains = config.hosted_domains();
  core::CertKey fallback = config.tls.default_cert;
  if (fallback.cert.empty()) {
    auto dir = fs::path(config.server.data_dir) / "certs";
    fallback.cert = (dir / "self-signed.crt").string();
    fallback.key = (dir / "self-signed.key").string();
    bool uncovered = false;
    for (const auto& d : domains) uncovered |= !config.tls.domains.contains(d);
    if (uncovered) ensure_self_signed(fallback.cert, fallback.key, domains);
  }
  for (const auto& d : domains) {
    auto it = config.tls.domains.find(d);
    files_[d] = it != config.tls.domains.end() ? it->second : fallback;
    by_domain_[d] = make_server_context(files_[d], config.tls.c2s_min_version);
  }
  for (auto& [d, ctx] : by_domain_) sni_[d] = ctx->native_handle();
  // The default context serves clients that send no SNI: the first domain's certificate.
  c2s_default_ = make_server_context(files_[domains.front()], config.tls.c2s_min_version);
  SSL_CTX_set_tlsext_servername_callback(c2s_default_->native_handle(), on_sni);
  SSL_CTX_set_tlsext_servername_arg(c2s_default_->native_handle(), &sni_);

  // S2S contexts: minimum version from [s2s] (TLS 1.3 by default, as the specification says).
  const auto& s2s = config.s2s;
  auto s2s_files = [&](const std::string& d) {
    if (!s2s.cert_path.empty()) return core::CertKey{s2s.cert_path, s2s.key_path};
    return files_[d];
  };
  for (const auto& d : domains) {
    auto server = make_server_context(s2s_files(d), s2s.tls_min_version);
    trust_server_link_peers(server->native_handle(), config.tls.ca_file);
    SSL_CTX_set_session_id_context(server->native_handle(),
                                   reinterpret_cast<const unsigned char*>("waddle-s2s"), 10);
    s2s_sni_[d] = server->native_handle();
    s2s_by_domain_[d] = std::move(server);

    auto client = std::make_unique<ssl::context>(ssl::context::tls_client);
    SSL_CTX* raw = client->native_handle();
    SSL_CTX_set_min_proto_version(raw,
                                  s2s.tls_min_version == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);
    const auto ck = s2s_files(d);
    if (SSL_CTX_use_certificate_chain_file(raw, ck.cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(raw, ck.key.c_str(), SSL_FILETYPE_PEM) != 1)
      throw std::runtime_error("cannot load S2S client certificate " + ck.cert + ": " +
                               openssl_error());
    trust(raw, config.tls.ca_file);  // the peer is the TLS server: OpenSSL requires that purpose
    s2s_clients_[d] = std::move(client);
  }
  s2s_default_ = make_server_context(s2s_files(domains.front()), s2s.tls_min_version);
  trust_server_link_peers(s2s_default_->native_handle(), config.tls.ca_file);
  SSL_CTX_set_session_id_context(s2s_default_->native_handle(),
                                 reinterpret_cast<const unsigned char*>("waddle-s2s"), 10);
  SSL_CTX_set_tlsext_servername_callback(s2s_default_->native_handle(), on_sni);
  SSL_CTX_set_tlsext_servername_arg(s2s_default_->native_handle(), &s2s_sni_);

  for (const auto& d : domains) {
    loaded_.emplace_back(by_domain_[d]->native_handle(), files_[d]);
    loaded_.emplace_back(s2s_by_domain_[d]->native_handle(), s2s_files(d));
    loaded_.emplace_back(s2s_clients_[d]->native_handle(), s2s_files(d));
  }
  loaded_.emplace_back(c2s_default_->native_handle(), files_[domains.front()]);
  loaded_.emplace_back(s2s_default_->native_handle(), s2s_files(domains.front()));
}

std::size_t TlsContexts::reload_certificates() {
  // First every pair, in a scratch context: a renewal half done (a new certificate with the
  // old key) must not leave the server with a certificate it cannot use.
  std::map<std::string, bool> checked;
  for (const auto& [ctx, ck] : loaded_) {
    if (checked.count(ck.cert + "\n" + ck.key)) continue;
    ssl::context scratch(ssl::context::tls_server);
    load_pair(scratch.native_handle(), ck);
    checked[ck.cert + "\n" + ck.key] = true;
  }
  for (const auto& [ctx, ck] : loaded_) load_pair(ctx, ck);
  return loaded_.size();
}

SSL_CTX* TlsContexts::c2s_for(const std::string& domain) const {
  auto it = sni_.find(domain);
  return it == sni_.end() ? nullptr : it->second;
}

SSL_CTX* TlsContexts::s2s_server_for(const std::string& domain) const {
  auto it = s2s_sni_.find(domain);
  return it == s2s_sni_.end() ? nullptr : it->second;
}

ssl::context& TlsContexts::s2s_client(const std::string& local_domain) {
  auto it = s2s_clients_.find(local_domain);
  return it != s2s_clients_.end() ? *it->second : *s2s_clients_.begin()->second;
}

std::string TlsContexts::describe(const std::string& domain) const {
  auto it = files_.find(domain);
  return it == files_.end() ? std::string("none") : it->second.cert;
}

void ensure_self_signed(const std::string& cert_path, const std::string& key_path,
                        const std::vector<std::string>& domains) {
  if (fs::exists(cert_path) && fs::exists(key_path)) return;
  fs::create_directories(fs::path(cert_path).parent_path());
  EVP_PKEY* pkey = EVP_EC_gen("P-256");
  if (!pkey) throw std::runtime_error("cannot generate key: " + openssl_error());
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), static_cast<long>(time(nullptr)));
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 24 * 3600);
  X509_set_pubkey(x, pkey);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(domains.front().c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(x, name);
  std::string san;
  for (const auto& d : domains) san += (san.empty() ? "DNS:" : ",DNS:") + d;
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  if (X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str())) {
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, pkey, EVP_sha256());
  FILE* kf = fopen(key_path.c_str(), "w");
  FILE* cf = kf ? fopen(cert_path.c_str(), "w") : nullptr;
  bool ok = kf && cf;
  if (ok) {
    chmod(key_path.c_str(), 0600);
    ok = PEM_write_PrivateKey(kf, pkey, nullptr, nullptr, 0, nullptr, nullptr) == 1 &&
         PEM_write_X509(cf, x) == 1;
  }
  if (kf) fclose(kf);
  if (cf) fclose(cf);
  X509_free(x);
  EVP_PKEY_free(pkey);
  if (!ok) throw std::runtime_error("cannot write self-signed certificate to " + cert_path);
  spdlog::info("generated a self-signed certificate for {} in {}", san, cert_path);
}

}  // namespace waddle::net
