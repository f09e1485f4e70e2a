#include "im/logic/pep_request.h"

#include <charconv>

#include "xml/stanza.h"

namespace waddle::im::logic {

namespace {

constexpr std::string_view kPubsub = "http://jabber.org/protocol/pubsub";
constexpr std::string_view kOwner = "http://jabber.org/protocol/pubsub#owner";
constexpr std::string_view kErrors = "http://jabber.org/protocol/pubsub#errors";
constexpr std::string_view kData = "jabber:x:data";

PepRequestError error(core::StanzaError condition, std::string pubsub = {},
                      std::string feature = {}) {
  return {condition, std::move(pubsub), std::move(feature)};
}

// The only child element of `e` (text around it aside), or null when it has none or more.
const xml::Element* only_child(const xml::Element& e) {
  const xml::Element* found = nullptr;
  for (const auto& n : e.nodes()) {
    if (!n.is_element()) continue;
    if (found) return nullptr;
    found = n.element.get();
  }
  return found;
}

// The data form in `parent` (publish-options, configure), if any.
std::optional<xml::Element> form_in(const xml::Element* parent) {
  if (!parent) return std::nullopt;
  if (const auto* x = parent->child("x", kData)) return *x;
  return std::nullopt;
}

PepRequest publish(const xml::Element& pubsub, const xml::Element& p, std::size_t max_bytes) {
  PepPublish out;
  out.node = std::string(p.attr("node"));
  if (out.node.empty()) return error(core::StanzaError::kBadRequest, "nodeid-required");
  const auto items = p.children("item", kPubsub);
  if (items.empty()) return error(core::StanzaError::kBadRequest, "item-required");
  if (items.size() > 1) return error(core::StanzaError::kBadRequest, "invalid-payload");
  const xml::Element* payload = only_child(*items.front());
  if (!payload) return error(core::StanzaError::kBadRequest, "invalid-payload");
  if (payload->str().size() > max_bytes)
    return error(core::StanzaError::kNotAcceptable, "payload-too-big");
  out.item_id = std::string(items.front()->attr("id"));
  out.payload = *payload;
  if (const auto* options = pubsub.child("publish-options", kPubsub)) {
    out.options = form_in(options);
    if (!out.options && only_child(*options))
      return error(core::StanzaError::kBadRequest, "invalid-options");
  }
  return out;
}

PepRequest items(const xml::Element& i) {
  PepItems out;
  out.node = std::string(i.attr("node"));
  if (out.node.empty()) return error(core::StanzaError::kBadRequest, "nodeid-required");
  if (const auto max = i.attr("max_items"); !max.empty()) {
    std::uint32_t n = 0;
    const auto r = std::from_chars(max.data(), max.data() + max.size(), n);
    if (r.ec != std::errc() || r.ptr != max.data() + max.size())
      return error(core::StanzaError::kBadRequest);
    out.max = n;
  }
  for (const auto* item : i.children("item", kPubsub)) {
    if (item->attr("id").empty()) return error(core::StanzaError::kBadRequest, "item-required");
    out.ids.emplace_back(item->attr("id"));
  }
  return out;
}

PepRequest retract(const xml::Element& r) {
  PepRetract out;
  out.node = std::string(r.attr("node"));
  if (out.node.empty()) return error(core::StanzaError::kBadRequest, "nodeid-required");
  const auto items = r.children("item", kPubsub);
  if (items.size() != 1 || items.front()->attr("id").empty())
    return error(core::StanzaError::kBadRequest, "item-required");
  out.item_id = std::string(items.front()->attr("id"));
  out.notify = r.attr("notify") == "1" || r.attr("notify") == "true";
  return out;
}

}  // namespace

bool is_pep_request(const xml::Element& iq) {
  return iq.child("pubsub", kPubsub) != nullptr || iq.child("pubsub", kOwner) != nullptr;
}

PepRequest parse_pep_request(const xml::Element& iq, std::size_t max_item_bytes) {
  const bool set = iq.attr("type") == "set";
  if (!set && iq.attr("type") != "get") return error(core::StanzaError::kBadRequest);
  if (const auto* owner = iq.child("pubsub", kOwner)) {
    const xml::Element* op = only_child(*owner);
    if (!op) return error(core::StanzaError::kBadRequest);
    const std::string node(op->attr("node"));
    if (op->is("configure", kOwner)) {
      if (node.empty()) return error(core::StanzaError::kBadRequest, "nodeid-required");
      PepConfigure out{node, set ? form_in(op) : std::nullopt};
      if (set && !out.form) return error(core::StanzaError::kBadRequest);
      return out;
    }
    if (set && op->is("delete", kOwner)) {
      if (node.empty()) return error(core::StanzaError::kBadRequest, "nodeid-required");
      return PepDelete{node};
    }
    if (set && op->is("purge", kOwner)) {
      if (node.empty()) return error(core::StanzaError::kBadRequest, "nodeid-required");
      return PepPurge{node};
    }
    return error(core::StanzaError::kFeatureNotImplemented, "unsupported",
                 op->ns() == kOwner ? op->name() : std::string());
  }
  const auto* pubsub = iq.child("pubsub", kPubsub);
  if (!pubsub) return error(core::StanzaError::kBadRequest);
  // The operation: the first child that is not publish-options or configure.
  const xml::Element* op = nullptr;
  for (const auto& n : pubsub->nodes()) {
    if (!n.is_element() || n.element->is("publish-options", kPubsub) ||
        n.element->is("configure", kPubsub))
      continue;
    op = n.element.get();
    break;
  }
  if (!op || op->ns() != kPubsub) return error(core::StanzaError::kBadRequest);
  if (set && op->name() == "publish") return publish(*pubsub, *op, max_item_bytes);
  if (set && op->name() == "retract") return retract(*op);
  if (!set && op->name() == "items") return items(*op);
  if (set && op->name() == "create") {
    PepCreate out{std::string(op->attr("node")), form_in(pubsub->child("configure", kPubsub))};
    if (out.node.empty()) return error(core::StanzaError::kNotAcceptable, "nodeid-required");
    return out;
  }
  static constexpr std::pair<std::string_view, std::string_view> kFeatures[] = {
      {"subscribe", "subscribe"},
      {"unsubscribe", "subscribe"},
      {"subscriptions", "retrieve-subscriptions"},
      {"affiliations", "retrieve-affiliations"},
      {"options", "subscription-options"}};
  for (const auto& [name, feature] : kFeatures)
    if (op->name() == name)
      return error(core::StanzaError::kFeatureNotImplemented, "unsupported", std::string(feature));
  return error(core::StanzaError::kBadRequest);
}

xml::Element pep_error_reply(const xml::Element& iq, const PepRequestError& e) {
  xml::Element reply = xml::make_error_reply(iq, e.condition);
  if (!e.pubsub_condition.empty()) {
    if (auto* err = reply.child("error")) {
      auto& c = err->add_child(e.pubsub_condition, std::string(kErrors));
      if (!e.feature.empty()) c.set_attr("feature", e.feature);
    }
  }
  return reply;
}

}  // namespace waddle::im::logic
