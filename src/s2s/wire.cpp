// Negotiation elements built with xml::Element; see wire.h.
#include "s2s/wire.h"

#include "core/base64.h"

namespace waddle::s2s::wire {
namespace {

using xml::Element;

// The element with its attributes in order, leaving out empty values.
Element with_attrs(std::string name, std::string ns,
                   std::initializer_list<std::pair<std::string_view, std::string_view>> attrs) {
  Element e(std::move(name), std::move(ns));
  for (const auto& [n, v] : attrs)
    if (!v.empty()) e.set_attr(n, v);
  return e;
}

// db:result / db:verify: the prefix is declared on the stream header, so no namespace here.
Element db(std::string_view name, std::string_view from, std::string_view to, std::string_view id,
           std::string_view type, std::string_view key) {
  Element e = with_attrs("db:" + std::string(name), "",
                         {{"from", from}, {"to", to}, {"id", id}, {"type", type}});
  if (!key.empty()) e.add_text(key);
  return e;
}

}  // namespace

std::string db_result(std::string_view from, std::string_view to, std::string_view key) {
  return db("result", from, to, {}, {}, key).str();
}

std::string db_result_answer(std::string_view from, std::string_view to, bool valid) {
  return db("result", from, to, {}, valid ? "valid" : "invalid", {}).str();
}

std::string db_result_error(std::string_view from, std::string_view to, std::string_view condition,
                            std::string_view text) {
  Element e = db("result", from, to, {}, "error", {});
  Element& error = e.add_child("error", "");
  error.set_attr("type", "cancel");
  error.add_child(std::string(condition), std::string(ns::kStanzas));
  if (!text.empty()) error.add_child("text", std::string(ns::kStanzas)).add_text(text);
  return e.str();
}

std::string db_verify(std::string_view from, std::string_view to, std::string_view id,
                      std::string_view key) {
  return db("verify", from, to, id, {}, key).str();
}

std::string db_verify_answer(std::string_view from, std::string_view to, std::string_view id,
                             bool valid) {
  return db("verify", from, to, id, valid ? "valid" : "invalid", {}).str();
}

std::string starttls() {
  return Element("starttls", std::string(ns::kTls)).str();
}

std::string sasl_external_auth(std::string_view authzid) {
  Element auth("auth", std::string(ns::kSasl));
  auth.set_attr("mechanism", "EXTERNAL");
  auth.add_text(core::base64_encode(authzid));
  return auth.str();
}

std::string sasl_success() {
  return Element("success", std::string(ns::kSasl)).str();
}

std::string sasl_failure(std::string_view condition) {
  Element failure("failure", std::string(ns::kSasl));
  failure.add_child(std::string(condition), std::string(ns::kSasl));
  return failure.str();
}

Element dialback_with_errors() {
  Element dialback("dialback", std::string(ns::kDialbackFeature));
  dialback.add_child("errors", std::string(ns::kDialbackFeature));
  return dialback;
}

std::string ping(std::string_view id, std::string_view from, std::string_view to) {
  Element iq = with_attrs("iq", std::string(ns::kServer),
                          {{"type", "get"}, {"id", id}, {"from", from}, {"to", to}});
  iq.add_child("ping", std::string(ns::kPing));
  return iq.str(ns::kServer);
}

std::string describe_stream_error(const Element& error) {
  std::string cond = "undefined-condition", text;
  for (const auto* c : error.children()) {
    if (c->name() == "text")
      text = c->text();
    else if (c->ns() == ns::kStreams)
      cond = c->name();
  }
  return text.empty() ? cond : cond + ": " + text;
}

bool offers_mechanism(const Element& features, std::string_view mechanism) {
  const Element* mechs = features.child("mechanisms", ns::kSasl);
  if (!mechs) return false;
  for (const auto* m : mechs->children("mechanism", ns::kSasl))
    if (m->text() == mechanism) return true;
  return false;
}

bool offers_dialback(const Element& features) {
  return features.child("dialback", ns::kDialbackFeature) != nullptr;
}

bool offers_dialback_errors(const Element& features) {
  const Element* db = features.child("dialback", ns::kDialbackFeature);
  return db && db->child("errors", ns::kDialbackFeature);
}

Refusal dialback_refusal(const Element& result) {
  Refusal r;
  const Element* err = result.child("error");
  if (!err) return r;
  const Element* cond = err->first_child();
  r.why = " (" + (cond ? cond->name() : std::string("error"));
  const std::string text = err->child_text("text");
  if (!text.empty()) r.why += ": " + text;
  r.why += ")";
  r.definitive = cond && (cond->name() == "not-authorized" || cond->name() == "forbidden");
  return r;
}

std::string dialback_answer(const Element& result) {
  std::string why(result.attr("type"));
  if (const Element* err = result.child("error"))
    if (const Element* cond = err->first_child()) why += ": " + cond->name();
  return why;
}

}  // namespace waddle::s2s::wire
