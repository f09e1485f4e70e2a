// XEP-0357 commands, notifications and the notifications in flight (see push.h).
#include "im/logic/push.h"

#include "core/jid.h"
#include "core/namespaces.h"
#include "xml/parser.h"

namespace waddle::im::logic {
using core::StanzaError;
using xml::Element;

namespace {

std::string field_value(const Element& field) {
  return field.child_text("value", ns::kData);
}

// The publish-options form without the opt-in field, and the opt-in. The form must be a
// submitted XEP-0004 form of type publish-options (XEP-0060 §7.1.5).
std::variant<std::pair<std::string, bool>, PushCommandError> read_options(const Element& x) {
  if (x.attr("type") != "submit")
    return PushCommandError{StanzaError::kBadRequest, "The publish-options form is not submitted"};
  Element kept("x", std::string(ns::kData));
  kept.set_attr("type", "submit");
  bool form_type = false, include_body = false;
  std::size_t fields = 0;
  for (const Element* f : x.children("field", ns::kData)) {
    const auto var = f->attr("var");
    if (var == "FORM_TYPE") {
      if (field_value(*f) != ns::kPubsubPublishOptions)
        return PushCommandError{StanzaError::kBadRequest, "The form is not publish-options"};
      form_type = true;
    } else if (var == ns::kPushIncludeBody) {
      const auto v = field_value(*f);
      include_body = v == "true" || v == "1";
      continue;
    } else {
      ++fields;
    }
    kept.add_child(*f);
  }
  if (!form_type) return PushCommandError{StanzaError::kBadRequest, "The form has no FORM_TYPE"};
  std::string text = fields > 0 ? kept.str() : std::string();
  if (text.size() > kMaxPushOptions)
    return PushCommandError{StanzaError::kNotAcceptable, "The publish-options are too large"};
  return std::pair{std::move(text), include_body};
}

}  // namespace

bool is_push_command(const Element& iq) {
  const Element* c = iq.first_child();
  return c && c->ns() == ns::kPush && (c->name() == "enable" || c->name() == "disable");
}

PushCommand parse_push_command(const Element& iq) {
  const Element* c = iq.first_child();
  if (!c || iq.attr("type") != "set" || !is_push_command(iq))
    return PushCommandError{StanzaError::kBadRequest, "Expected <enable/> or <disable/> in a set"};
  auto jid = core::Jid::parse(c->attr("jid"));
  if (!jid) return PushCommandError{StanzaError::kBadRequest, "Missing or invalid 'jid'"};
  std::string node(c->attr("node"));
  if (node.size() > kMaxPushNode)
    return PushCommandError{StanzaError::kNotAcceptable, "The node is too long"};
  if (c->name() == "disable") return PushDisable{jid->str(), std::move(node)};
  if (node.empty()) return PushCommandError{StanzaError::kBadRequest, "Missing 'node'"};
  PushEnable e{{jid->str(), std::move(node), {}, false}};
  if (const Element* x = c->child("x", ns::kData)) {
    auto read = read_options(*x);
    if (auto* err = std::get_if<PushCommandError>(&read)) return *err;
    auto& [options, body] = std::get<std::pair<std::string, bool>>(read);
    e.reg.options = std::move(options);
    e.reg.include_body = body;
  }
  return e;
}

Element push_notification(const storage::PushRegistration& reg, const std::string& from,
                          const std::string& id, const PushSummary& summary, bool with_body) {
  Element iq("iq", std::string(ns::kClient));
  iq.set_attr("type", "set").set_attr("from", from).set_attr("to", reg.jid).set_attr("id", id);
  auto& pubsub = iq.add_child("pubsub", std::string(ns::kPubsub));
  auto& publish = pubsub.add_child("publish", std::string(ns::kPubsub));
  publish.set_attr("node", reg.node);
  auto& x = publish.add_child("item", std::string(ns::kPubsub))
                .add_child("notification", std::string(ns::kPush))
                .add_child("x", std::string(ns::kData));
  x.set_attr("type", "submit");
  const auto field = [&x](std::string_view var, std::string_view value) {
    x.add_child("field", std::string(ns::kData))
        .set_attr("var", var)
        .add_child("value", std::string(ns::kData))
        .add_text(value);
  };
  field("FORM_TYPE", ns::kPushSummary);
  field("message-count", std::to_string(summary.count));
  if (!summary.sender.empty()) field("last-message-sender", summary.sender);
  if (with_body && !summary.body.empty()) field("last-message-body", summary.body);
  if (!reg.options.empty()) {
    if (auto options = xml::parse_element(reg.options))
      pubsub.add_child("publish-options", std::string(ns::kPubsub)).add_child(std::move(*options));
  }
  return iq;
}

std::string push_key(std::string_view account, std::string_view jid, std::string_view node) {
  // NUL cannot occur in XML, hence in none of the parts.
  std::string key(account);
  key += '\0';
  key += jid;
  key += '\0';
  key += node;
  return key;
}

bool PushFlights::due(const std::string& key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return true;
  it->second.again = true;
  return false;
}

void PushFlights::started(const std::string& key, const std::string& id) {
  by_key_[key] = Flight{id, false};
  by_id_[id] = key;
}

std::optional<PushFlights::Finished> PushFlights::finish(const std::string& id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  Finished f{it->second, false};
  by_id_.erase(it);
  if (auto k = by_key_.find(f.key); k != by_key_.end() && k->second.id == id) {
    f.again = k->second.again;
    by_key_.erase(k);
  }
  return f;
}

const std::string* PushFlights::key_of(const std::string& id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

}  // namespace waddle::im::logic
