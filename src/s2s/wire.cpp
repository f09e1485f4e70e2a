// Negotiation elements built with xml::Element; see wire.h.
#include "s2s/wire.h"

#include <cstdint>
#include <string>

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

Element sm_feature() {
  return Element("sm", std::string(ns::kSm));
}

std::string sm_enable() {
  return Element("enable", std::string(ns::kSm)).str();
}

std::string sm_enabled() {
  return Element("enabled", std::string(ns::kSm)).str();
}

std::string sm_failed(std::string_view condition) {
  Element failed("failed", std::string(ns::kSm));
  failed.add_child(std::string(condition), std::string(ns::kStanzas));
  return failed.str();
}

std::string sm_request() {
  return Element("r", std::string(ns::kSm)).str();
}

std::string sm_answer(std::uint32_t h) {
  Element a("a", std::string(ns::kSm));
  a.set_attr("h", std::to_string(h));
  return a.str();
}

std::string sm_handled_count_too_high(std::uint32_t h, std::uint32_t sent) {
  // The stream: prefix is declared on the stream header.
  Element error("stream:error", "");
  error.add_child("undefined-condition", std::string(ns::kStreams));
  Element& why = error.add_child("handled-count-too-high", std::string(ns::kSm));
  why.set_attr("h", std::to_string(h));
  why.set_attr("send-count", std::to_string(sent));
  return error.str();
}

Element ping_element(std::string_view id, std::string_view from, std::string_view to) {
  Element iq = with_attrs("iq", std::string(ns::kServer),
                          {{"type", "get"}, {"id", id}, {"from", from}, {"to", to}});
  iq.add_child("ping", std::string(ns::kPing));
  return iq;
}

std::string ping(std::string_view id, std::string_view from, std::string_view to) {
  return ping_element(id, from, to).str(ns::kServer);
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

bool offers_sm(const Element& features) {
  return features.child("sm", ns::kSm) != nullptr;
}

std::optional<std::uint32_t> sm_h(const Element& a) {
  const std::string_view h = a.attr("h");
  if (h.empty() || h.size() > 10) return std::nullopt;
  std::uint64_t value = 0;
  for (const char c : h) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (value > UINT32_MAX) return std::nullopt;
  return static_cast<std::uint32_t>(value);
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
