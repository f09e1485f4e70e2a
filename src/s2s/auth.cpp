// XEP-0185 §2 dialback keys, and the RFC 6125 / RFC 6120 §13.7.1.2 / XEP-0178 §3 check that
// a peer certificate names an XMPP server domain (SRV-ID, XmppAddr, DNS-ID, CN-ID fallback).
#include "s2s/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/jid.h"

namespace waddle::s2s {
namespace {

constexpr std::string_view kSrvServicePrefix = "_xmpp-server.";

std::string to_hex(const unsigned char* data, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0x0f]);
  }
  return out;
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view view(const ASN1_STRING* s) {
  if (s == nullptr) return {};
  return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
          static_cast<std::size_t>(ASN1_STRING_length(s))};
}

// A presented domain in the form we compare: lowercase A-labels (U-labels in an XmppAddr are
// converted). Anything that is not a plain domain - a wildcard, a JID with a localpart, an
// embedded NUL - yields nullopt and so never matches.
std::optional<std::string> presented_domain(std::string_view s) {
  if (s.empty() || s.find('*') != std::string_view::npos) return std::nullopt;
  return core::nameprep_domain(s);
}

struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* names) const { GENERAL_NAMES_free(names); }
};

// RFC 6120 §13.7.1.4 (XmppAddr, UTF8String) and RFC 4985 / RFC 6125 §6.5.1 (SRV-ID,
// IA5String, service "_xmpp-server" for server-to-server).
bool other_name_matches(const OTHERNAME* other, const std::string& domain) {
  if (other == nullptr || other->type_id == nullptr || other->value == nullptr) return false;
  const int nid = OBJ_obj2nid(other->type_id);
  const ASN1_TYPE* value = other->value;
  if (nid == NID_XmppAddr) {
    if (value->type != V_ASN1_UTF8STRING) return false;
    auto presented = presented_domain(view(value->value.utf8string));
    return presented && *presented == domain;
  }
  if (nid == NID_SRVName) {
    if (value->type != V_ASN1_IA5STRING) return false;
    const std::string_view srv = view(value->value.ia5string);
    if (srv.size() <= kSrvServicePrefix.size() ||
        !iequals_ascii(srv.substr(0, kSrvServicePrefix.size()), kSrvServicePrefix)) {
      return false;
    }
    auto presented = presented_domain(srv.substr(kSrvServicePrefix.size()));
    return presented && *presented == domain;
  }
  return false;
}

// RFC 6125 §6.4.4: the CN-ID only counts for a certificate without any subjectAltName; it is
// matched exactly (no wildcard).
bool common_name_matches(X509* cert, const std::string& domain) {
  const X509_NAME* subject = X509_get_subject_name(cert);
  if (subject == nullptr) return false;
  for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len < 0) continue;
    const std::string cn(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
    OPENSSL_free(utf8);
    auto presented = presented_domain(cn);
    if (presented && *presented == domain) return true;
  }
  return false;
}

}  // namespace

std::string dialback_key(std::string_view secret, std::string_view receiving,
                         std::string_view originating, std::string_view stream_id) {
  // XEP-0185 §2: the HMAC key is the *hex* form of SHA256(secret), not the raw digest.
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_len = 0;
  if (EVP_Digest(secret.data(), secret.size(), digest.data(), &digest_len, EVP_sha256(), nullptr) !=
      1) {
    return {};
  }
  const std::string hmac_key = to_hex(digest.data(), digest_len);

  std::string text;
  text.reserve(receiving.size() + originating.size() + stream_id.size() + 2);
  text.append(receiving).append(" ").append(originating).append(" ").append(stream_id);

  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), hmac_key.data(), static_cast<int>(hmac_key.size()),
           reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac.data(),
           &mac_len) == nullptr) {
    return {};
  }
  return to_hex(mac.data(), mac_len);
}

bool dialback_key_equal(std::string_view a, std::string_view b) {
  // The length of a key is public (always 64 hex digits); only the contents are compared in
  // constant time. An empty key (a failed computation) never matches.
  if (a.size() != b.size() || a.empty()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool certificate_matches_domain(X509* cert, std::string_view domain) {
  if (cert == nullptr) return false;
  // Reference identifier as lowercase A-labels; rejects "", ".example.org" (which
  // X509_check_host would read as "any subdomain") and wildcards.
  auto reference = presented_domain(domain);
  if (!reference) return false;

  if (X509_get_ext_by_NID(cert, NID_subject_alt_name, -1) < 0) {
    return common_name_matches(cert, *reference);
  }

  std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
      if (name->type == GEN_OTHERNAME && other_name_matches(name->d.otherName, *reference)) {
        return true;
      }
    }
  }

  // DNS-IDs: a wildcard only as the whole left-most label, covering exactly one label. The
  // subject CN was handled above, so OpenSSL must not fall back to it.
  const unsigned int flags =
      X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT;
  return X509_check_host(cert, reference->data(), reference->size(), flags, nullptr) == 1;
}

}  // namespace waddle::s2s
