// Stanza helpers: error replies per RFC 6120 §8.3 and stream errors per §4.9.
#include "xml/stanza.h"

namespace waddle::xml {

StanzaKind stanza_kind(const Element& e) {
  if (e.ns() != ns::kClient && e.ns() != ns::kServer) return StanzaKind::kOther;
  if (e.name() == "message") return StanzaKind::kMessage;
  if (e.name() == "presence") return StanzaKind::kPresence;
  if (e.name() == "iq") return StanzaKind::kIq;
  return StanzaKind::kOther;
}

bool may_bounce(const Element& stanza) {
  auto type = stanza.attr("type");
  if (type == "error") return false;
  if (stanza.name() == "iq" && type == "result") return false;
  return true;
}

Element make_error_reply(const Element& stanza, core::StanzaError condition,
                         std::string_view text) {
  Element reply(stanza.name(), stanza.ns());
  if (stanza.has_attr("from")) reply.set_attr("to", stanza.attr("from"));
  if (stanza.has_attr("to")) reply.set_attr("from", stanza.attr("to"));
  if (stanza.has_attr("id")) reply.set_attr("id", stanza.attr("id"));
  reply.set_attr("type", "error");
  if (stanza.name() == "iq") {
    if (const Element* payload = stanza.first_child()) reply.add_child(*payload);
  } else {
    for (const auto* c : stanza.children()) {
      if (c->name() == "error") continue;
      reply.add_child(*c);
    }
  }
  Element& err = reply.add_child("error", stanza.ns());
  err.set_attr("type", core::to_string(core::default_type(condition)));
  err.add_child(std::string(core::to_string(condition)), std::string(ns::kStanzas));
  if (!text.empty()) {
    err.add_child("text", std::string(ns::kStanzas)).set_attr("xml:lang", "en").add_text(text);
  }
  return reply;
}

Element make_iq_result(const Element& iq) {
  Element reply("iq", iq.ns());
  if (iq.has_attr("from")) reply.set_attr("to", iq.attr("from"));
  if (iq.has_attr("to")) reply.set_attr("from", iq.attr("to"));
  reply.set_attr("id", iq.attr("id"));
  reply.set_attr("type", "result");
  return reply;
}

std::optional<core::StanzaError> stanza_error_condition(const Element& stanza) {
  const Element* err = stanza.child("error");
  if (!err) return std::nullopt;
  for (const auto* c : err->children())
    if (c->ns() == ns::kStanzas && c->name() != "text")
      return core::stanza_error_from_string(c->name());
  return std::nullopt;
}

std::string stream_error_xml(core::StreamError condition, std::string_view text) {
  std::string out = "<stream:error><";
  out += core::to_string(condition);
  out += " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>";
  if (!text.empty()) {
    out += "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>";
    escape(out, text);
    out += "</text>";
  }
  out += "</stream:error>";
  return out;
}

}  // namespace waddle::xml
