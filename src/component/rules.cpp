#include "component/rules.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cctype>

#include "core/jid.h"
#include "xml/renamespace.h"
#include "xml/stanza.h"

namespace waddle::component {

namespace ns = waddle::ns;

std::string handshake_digest(std::string_view stream_id, std::string_view secret) {
  const std::string input = std::string(stream_id) + std::string(secret);
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), md.data(), &len, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

bool handshake_matches(std::string_view answer, std::string_view stream_id,
                       std::string_view secret) {
  const std::string expected = handshake_digest(stream_id, secret);
  std::string given(answer);
  for (auto& c : given) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return given.size() == expected.size() &&
         CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
}

Verdict check(const xml::Element& e, std::string_view domain) {
  Verdict v;
  const bool stanza = e.name() == "message" || e.name() == "presence" || e.name() == "iq";
  if (!stanza || e.ns() != ns::kComponentAccept) {
    v.kind = Verdict::Kind::kClose;
    v.stream_error = core::StreamError::kUnsupportedStanzaType;
    return v;
  }
  if (!e.has_attr("from")) {
    v.kind = Verdict::Kind::kAnswer;
    v.text = "A component's stanzas need a 'from' address";
    return v;
  }
  const auto from = core::Jid::parse(e.attr("from"));
  if (!from || from->domain() != domain) {
    v.kind = Verdict::Kind::kClose;
    v.stream_error = core::StreamError::kInvalidFrom;
    v.text = "A component sends from its own domain only";
    return v;
  }
  if (!e.has_attr("to")) {
    v.kind = Verdict::Kind::kAnswer;
    v.text = "A component's stanzas need a 'to' address";
    return v;
  }
  return v;
}

xml::Element to_server_namespace(const xml::Element& e) {
  return xml::renamespaced(e, ns::kComponentAccept, ns::kClient);
}

}  // namespace waddle::component
