// The elements of server-to-server negotiation that only servers use, built as xml::Element
// (so every value is escaped) and serialized exactly as peers have always received them:
// STARTTLS as the initiating side (RFC 6120 §5.4.2), SASL EXTERNAL (§6.4, XEP-0178), Server
// Dialback (XEP-0220 §2.1, §2.4, §2.6) and its feature, and the XEP-0199 ping; and the
// readers of the peer's answers. The dialback elements use the db: prefix that the stream
// header declares. What client and server streams share (the header, the features block,
// the STARTTLS offer and <proceed/>, the stream-error closing) is in stream/negotiation.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "xml/element.h"

namespace waddle::s2s::wire {

// XEP-0220: the originating server's key (db:result with the key as text), the receiving
// server's answer (type valid/invalid), its error form (§2.4: a stanza error condition and
// an optional text), and the verification request and answer (db:verify).
std::string db_result(std::string_view from, std::string_view to, std::string_view key);
std::string db_result_answer(std::string_view from, std::string_view to, bool valid);
std::string db_result_error(std::string_view from, std::string_view to, std::string_view condition,
                            std::string_view text = {});
std::string db_verify(std::string_view from, std::string_view to, std::string_view id,
                      std::string_view key);
std::string db_verify_answer(std::string_view from, std::string_view to, std::string_view id,
                             bool valid);

// RFC 6120 §5.4.2 and §6.4.
std::string starttls();
// <auth mechanism='EXTERNAL'> with the authorization identity in base64 (XEP-0178 §3).
std::string sasl_external_auth(std::string_view authzid);
std::string sasl_success();
std::string sasl_failure(std::string_view condition);

// The dialback offer in stream features, with errors supported (XEP-0220 §2.4).
xml::Element dialback_with_errors();

// XEP-0198 on a server link (no resumption): the feature, <enable/> and its answers, the
// acknowledgement request <r/> and answer <a h=…/>, and the error for an 'h' that
// acknowledges more than was sent (§5).
xml::Element sm_feature();
std::string sm_enable();
std::string sm_enabled();
std::string sm_failed(std::string_view condition);
std::string sm_request();
std::string sm_answer(std::uint32_t h);
// The stream error (undefined-condition with <handled-count-too-high/>), without the closing tag.
std::string sm_handled_count_too_high(std::uint32_t h, std::uint32_t sent);

// XEP-0199 ping over a server stream.
xml::Element ping_element(std::string_view id, std::string_view from, std::string_view to);
std::string ping(std::string_view id, std::string_view from, std::string_view to);

// --- reading ---

// "condition: text" of a received <stream:error/>.
std::string describe_stream_error(const xml::Element& error);
// Whether the features offer the SASL mechanism.
bool offers_mechanism(const xml::Element& features, std::string_view mechanism);
bool offers_dialback(const xml::Element& features);
// Dialback offered with errors (XEP-0220 §2.4): a peer without them may answer a refused
// additional pair by closing the whole stream, so only then may other pairs multiplex on it.
bool offers_dialback_errors(const xml::Element& features);

// Stream management offered (XEP-0198 §3).
bool offers_sm(const xml::Element& features);
// The 'h' of an <a/>; nullopt when missing or not a 32-bit unsigned number.
std::optional<std::uint32_t> sm_h(const xml::Element& a);

// A refused db:result (type invalid or error): " (condition: text)" when the peer said why,
// and whether the refusal is definitive (not-authorized, forbidden: retrying cannot help).
struct Refusal {
  std::string why;
  bool definitive = false;
};
Refusal dialback_refusal(const xml::Element& result);
// The answer to a multiplexing request, for the log: "valid", "error: item-not-found".
std::string dialback_answer(const xml::Element& result);

}  // namespace waddle::s2s::wire
