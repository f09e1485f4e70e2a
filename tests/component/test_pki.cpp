// Test certificate authority (see test_pki.h).
#include "test_pki.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <utility>
#include <vector>

namespace waddle::testing {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* x) const { X509_free(x); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

void check(bool ok, const char* what) {
  if (ok) return;
  char buf[256] = "unknown error";
  if (unsigned long e = ERR_get_error()) ERR_error_string_n(e, buf, sizeof buf);
  throw std::runtime_error(std::string("test PKI: ") + what + ": " + buf);
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, "extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

using Extensions = std::vector<std::pair<int, std::string>>;

// A certificate for `key` named `cn`, issued by `issuer` (itself when null), valid for a day.
Cert make_certificate(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key,
                      const Extensions& extensions) {
  static long serial = static_cast<long>(std::time(nullptr));
  Cert x(X509_new());
  check(x != nullptr, "X509_new");
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 24 * 3600);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509* signer = issuer ? issuer : x.get();
  add_extension(x.get(), signer, NID_subject_key_identifier, "hash");
  add_extension(x.get(), signer, NID_authority_key_identifier, "keyid:always");
  for (const auto& [nid, value] : extensions) add_extension(x.get(), signer, nid, value);
  check(X509_sign(x.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0, "sign");
  return x;
}

void write_pem(const std::filesystem::path& path, EVP_PKEY* key, X509* cert) {
  FILE* f = std::fopen(path.c_str(), "w");
  check(f != nullptr, "open output file");
  bool ok = key ? PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1
                : PEM_write_X509(f, cert) == 1;
  std::fclose(f);
  check(ok, "write PEM");
}

}  // namespace

struct TestPki::Impl {
  Key key;
  Cert cert;
};

TestPki::TestPki(std::filesystem::path dir)
    : impl_(std::make_unique<Impl>()), dir_(std::move(dir)) {
  impl_->key.reset(EVP_EC_gen("P-256"));
  check(impl_->key != nullptr, "CA key");
  impl_->cert = make_certificate(impl_->key.get(), "Waddle Test CA", nullptr, nullptr,
                                 {{NID_basic_constraints, "critical,CA:TRUE"},
                                  {NID_key_usage, "critical,keyCertSign,cRLSign"}});
  ca_file_ = (dir_ / "ca.crt").string();
  write_pem(ca_file_, nullptr, impl_->cert.get());
}

TestPki::~TestPki() = default;

core::CertKey TestPki::issue(const std::string& name, const std::vector<std::string>& dns_names,
                             bool self_signed, const std::string& extended_key_usage) {
  Key key(EVP_EC_gen("P-256"));
  check(key != nullptr, "leaf key");
  X509* issuer = self_signed ? nullptr : impl_->cert.get();
  EVP_PKEY* issuer_key = self_signed ? nullptr : impl_->key.get();
  std::string san;
  for (const auto& d : dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + d;
  Extensions extensions{{NID_basic_constraints, "CA:FALSE"}, {NID_subject_alt_name, san}};
  if (!extended_key_usage.empty()) extensions.emplace_back(NID_ext_key_usage, extended_key_usage);
  Cert cert = make_certificate(key.get(), dns_names.front(), issuer, issuer_key, extensions);
  core::CertKey out{(dir_ / (name + ".crt")).string(), (dir_ / (name + ".key")).string()};
  write_pem(out.cert, nullptr, cert.get());
  write_pem(out.key, key.get(), nullptr);
  return out;
}

}  // namespace waddle::testing
