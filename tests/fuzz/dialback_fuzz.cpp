// libFuzzer target for what a peer server sends during Server Dialback (XEP-0220) and
// certificate authentication: the db:result / db:verify elements (and the other negotiation
// elements a server reads: features, stream errors, refusals, <a h=…/>) after a real server
// stream header, the XEP-0185 key checks made on them, and the RFC 6125 name checks of the
// certificate a peer presents (DER).
//
// Input: one mode byte; mode 0: stream bytes after the header; mode 1: a domain length byte,
// the domain, then a DER certificate.
#include <openssl/x509.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/jid.h"
#include "core/namespaces.h"
#include "s2s/auth.h"
#include "s2s/wire.h"
#include "xml/parser.h"

namespace {

namespace ns = waddle::ns;
namespace wire = waddle::s2s::wire;
using waddle::xml::Element;

constexpr std::string_view kSecret = "a secret of this server";
constexpr std::string_view kHeader =
    "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
    "xmlns:stream='http://etherx.jabber.org/streams' from='a.example' to='b.example' "
    "version='1.0'>";

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// Parses one element we write, as the peer would read it back.
Element reparse(const std::string& wire_text) {
  waddle::xml::StreamParser parser;
  std::vector<waddle::xml::StreamEvent> events;
  check(!parser.feed(kHeader, events));
  check(!parser.feed(wire_text, events));
  check(events.size() == 2 && events[1].kind == waddle::xml::StreamEvent::Kind::kElement);
  return std::move(events[1].element);
}

// The receiving and authoritative roles' checks (s2s/dialback.cpp), without the network.
void dialback_element(const Element& e) {
  const std::string from(e.attr("from")), to(e.attr("to")), id(e.attr("id")), key = e.text();
  (void)waddle::core::nameprep_domain(from);
  (void)waddle::core::nameprep_domain(to);
  const std::string ours = waddle::s2s::dialback_key(kSecret, from, to, id);
  check(ours.size() == 64);
  check(waddle::s2s::dialback_key_equal(ours, ours));
  check(waddle::s2s::dialback_key_equal(ours, key) == (ours == key));
  check(!waddle::s2s::dialback_key_equal("", ""));

  // Our answers carry the peer's values escaped: they read back unchanged.
  const Element answer = reparse(wire::db_verify_answer(to, from, id, ours == key));
  check(answer.is("verify", ns::kDialback));
  check(answer.attr("from") == to && answer.attr("to") == from && answer.attr("id") == id);
  const Element result = reparse(wire::db_result(to, from, key));
  check(result.is("result", ns::kDialback) && result.text() == key);
  const Element error = reparse(wire::db_result_error(to, from, "bad-request", key));
  check(error.attr("type") == "error");
  check(wire::dialback_refusal(error).why == " (bad-request: " + key + ")" || key.empty());

  (void)wire::dialback_refusal(e);
  (void)wire::dialback_answer(e);
}

void elements(std::string_view bytes) {
  waddle::xml::ParserLimits limits;
  limits.max_stanza_size = 8192;
  waddle::xml::StreamParser parser(limits);
  std::vector<waddle::xml::StreamEvent> events;
  check(!parser.feed(kHeader, events));
  (void)parser.feed(bytes, events);
  for (const auto& ev : events) {
    if (ev.kind != waddle::xml::StreamEvent::Kind::kElement) continue;
    const Element& e = ev.element;
    if (e.is("result", ns::kDialback) || e.is("verify", ns::kDialback)) dialback_element(e);
    (void)wire::describe_stream_error(e);
    (void)wire::offers_mechanism(e, "EXTERNAL");
    (void)wire::offers_dialback(e);
    (void)wire::offers_dialback_errors(e);
    (void)wire::offers_sm(e);
    if (const auto h = wire::sm_h(e))
      check(e.attr("h").find_first_not_of("0123456789") == std::string_view::npos);
  }
}

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};

void certificate(std::string_view bytes) {
  if (bytes.empty()) return;
  const std::size_t n =
      std::min<std::size_t>(static_cast<unsigned char>(bytes[0]), bytes.size() - 1);
  const std::string_view domain = bytes.substr(1, n);
  const std::string_view der = bytes.substr(1 + n);
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<X509, X509Free> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) return;
  const bool matches = waddle::s2s::certificate_matches_domain(cert.get(), domain);
  // A certificate only ever names prepared domains: the domain as the peer wrote it and as
  // we prepare it get the same answer.
  if (const auto d = waddle::core::nameprep_domain(domain); d && matches)
    check(waddle::s2s::certificate_matches_domain(cert.get(), *d));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0)
    elements(payload);
  else
    certificate(payload);
  return 0;
}
