#include "im/logic/pep_config.h"

#include <algorithm>
#include <charconv>

namespace waddle::im::logic {

namespace {

constexpr std::string_view kData = "jabber:x:data";
constexpr std::string_view kNodeConfig = "http://jabber.org/protocol/pubsub#node_config";
constexpr std::string_view kPublishOptions = "http://jabber.org/protocol/pubsub#publish-options";

std::optional<bool> boolean(std::string_view v) {
  if (v == "1" || v == "true") return true;
  if (v == "0" || v == "false") return false;
  return std::nullopt;
}

std::optional<SendLast> send_last_from(std::string_view s) {
  if (s == "never") return SendLast::kNever;
  if (s == "on_sub") return SendLast::kOnSub;
  if (s == "on_sub_and_presence") return SendLast::kOnSubAndPresence;
  return std::nullopt;
}

std::vector<std::string> values(const xml::Element& field) {
  std::vector<std::string> out;
  for (const auto* v : field.children("value", kData)) out.push_back(v->text());
  return out;
}

PepFormError refused(std::string_view var, std::string_view why) {
  return {core::StanzaError::kNotAcceptable, std::string(var) + ": " + std::string(why)};
}

// Fields whose only value here is the one a client may state (XEP-0060 §16.4): accepted when
// they say that, refused when they ask for something else.
std::optional<std::string_view> fixed_value(std::string_view var) {
  if (var == "pubsub#deliver_notifications" || var == "pubsub#deliver_payloads" ||
      var == "pubsub#presence_based_delivery")
    return var == "pubsub#presence_based_delivery" ? "false" : "true";
  if (var == "pubsub#publish_model") return "publishers";
  if (var == "pubsub#notification_type") return "headline";
  if (var == "pubsub#purge_offline") return "false";
  return std::nullopt;
}

}  // namespace

std::string_view to_string(AccessModel a) {
  switch (a) {
    case AccessModel::kOpen:
      return "open";
    case AccessModel::kPresence:
      return "presence";
    case AccessModel::kRoster:
      return "roster";
    case AccessModel::kWhitelist:
      return "whitelist";
  }
  return "presence";
}

std::optional<AccessModel> access_model_from(std::string_view s) {
  for (auto a :
       {AccessModel::kOpen, AccessModel::kPresence, AccessModel::kRoster, AccessModel::kWhitelist})
    if (to_string(a) == s) return a;
  return std::nullopt;
}

std::string_view to_string(SendLast s) {
  switch (s) {
    case SendLast::kNever:
      return "never";
    case SendLast::kOnSub:
      return "on_sub";
    case SendLast::kOnSubAndPresence:
      return "on_sub_and_presence";
  }
  return "never";
}

std::optional<PepFormError> apply_form(PepConfig& config, const xml::Element& x,
                                       const PepLimits& limits) {
  PepConfig out = config;
  for (const auto* f : x.children("field", kData)) {
    const std::string_view var = f->attr("var");
    const auto vs = values(*f);
    const std::string v = vs.empty() ? std::string() : vs.front();
    if (var == "FORM_TYPE") {
      if (v != kNodeConfig && v != kPublishOptions)
        return PepFormError{core::StanzaError::kBadRequest, "not a node configuration form"};
    } else if (var == "pubsub#access_model") {
      const auto a = access_model_from(v);
      if (!a) return refused(var, "open, presence, roster or whitelist");
      out.access = *a;
    } else if (var == "pubsub#max_items") {
      if (v == "max") {
        out.max_items = limits.max_items;
        continue;
      }
      std::uint32_t n = 0;
      const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
      if (r.ec != std::errc() || r.ptr != v.data() + v.size() || n == 0 || n > limits.max_items)
        return refused(var, "from 1 to " + std::to_string(limits.max_items) + ", or max");
      out.max_items = n;
    } else if (var == "pubsub#persist_items" || var == "pubsub#notify_retract") {
      const auto b = boolean(v);
      if (!b) return refused(var, "a boolean");
      (var == "pubsub#persist_items" ? out.persist_items : out.notify_retract) = *b;
    } else if (var == "pubsub#send_last_published_item") {
      const auto s = send_last_from(v);
      if (!s) return refused(var, "never, on_sub or on_sub_and_presence");
      out.send_last = *s;
    } else if (var == "pubsub#roster_groups_allowed") {
      for (const auto& g : vs)
        if (g.find('\n') != std::string::npos) return refused(var, "a group with a line break");
      out.roster_groups = vs;
    } else if (var == "pubsub#title") {
      if (v.find('\n') != std::string::npos) return refused(var, "a line break");
      out.title = v;
    } else if (var == "pubsub#type" || var == "pubsub#notify_delete" ||
               var == "pubsub#notify_config" || var == "pubsub#notify_sub") {
      continue;  // said for the client's own sake; nothing here depends on them
    } else if (const auto fixed = fixed_value(var)) {
      const auto b = boolean(v);
      const bool same = v == *fixed || (b && boolean(*fixed) && *b == *boolean(*fixed));
      if (!same) return refused(var, "only " + std::string(*fixed));
    } else {
      return refused(var, "not a setting of this server's nodes");
    }
  }
  config = std::move(out);
  return std::nullopt;
}

bool preconditions_met(const PepConfig& node, const xml::Element& options,
                       const PepLimits& limits) {
  PepConfig stated = node;
  if (apply_form(stated, options, limits)) return false;
  return stated == node;
}

bool may_read(const PepConfig& config, const Reader& reader) {
  if (reader.owner) return true;
  switch (config.access) {
    case AccessModel::kOpen:
      return true;
    case AccessModel::kPresence:
      return reader.subscribed;
    case AccessModel::kRoster:
      return reader.in_roster &&
             std::any_of(reader.groups.begin(), reader.groups.end(), [&](const std::string& g) {
               return std::find(config.roster_groups.begin(), config.roster_groups.end(), g) !=
                      config.roster_groups.end();
             });
    case AccessModel::kWhitelist:
      return false;
  }
  return false;
}

xml::Element config_form(const PepConfig& c) {
  xml::Element x("x", std::string(kData));
  x.set_attr("type", "form");
  auto field = [&x](std::string_view var, std::string_view type,
                    const std::vector<std::string>& vals) -> xml::Element& {
    auto& f = x.add_child("field", std::string(kData));
    f.set_attr("var", var).set_attr("type", type);
    for (const auto& v : vals) f.add_child("value", std::string(kData)).add_text(v);
    return f;
  };
  field("FORM_TYPE", "hidden", {std::string(kNodeConfig)});
  auto& access = field("pubsub#access_model", "list-single", {std::string(to_string(c.access))});
  for (auto a :
       {AccessModel::kOpen, AccessModel::kPresence, AccessModel::kRoster, AccessModel::kWhitelist})
    access.add_child("option", std::string(kData))
        .add_child("value", std::string(kData))
        .add_text(to_string(a));
  field("pubsub#max_items", "text-single", {std::to_string(c.max_items)});
  field("pubsub#persist_items", "boolean", {c.persist_items ? "1" : "0"});
  auto& last = field("pubsub#send_last_published_item", "list-single",
                     {std::string(to_string(c.send_last))});
  for (auto s : {SendLast::kNever, SendLast::kOnSub, SendLast::kOnSubAndPresence})
    last.add_child("option", std::string(kData))
        .add_child("value", std::string(kData))
        .add_text(to_string(s));
  field("pubsub#notify_retract", "boolean", {c.notify_retract ? "1" : "0"});
  field("pubsub#roster_groups_allowed", "list-multi", c.roster_groups);
  field("pubsub#title", "text-single", {c.title});
  return x;
}

std::string encode(const PepConfig& c) {
  std::string out;
  out += "access=" + std::string(to_string(c.access)) + '\n';
  out += "max_items=" + std::to_string(c.max_items) + '\n';
  out += std::string("persist_items=") + (c.persist_items ? "1" : "0") + '\n';
  out += "send_last=" + std::string(to_string(c.send_last)) + '\n';
  out += std::string("notify_retract=") + (c.notify_retract ? "1" : "0") + '\n';
  for (const auto& g : c.roster_groups) out += "group=" + g + '\n';
  if (!c.title.empty()) out += "title=" + c.title + '\n';
  return out;
}

std::optional<PepConfig> decode(std::string_view text) {
  PepConfig c;
  while (!text.empty()) {
    const auto end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view k = line.substr(0, eq), v = line.substr(eq + 1);
    if (k == "access") {
      const auto a = access_model_from(v);
      if (!a) return std::nullopt;
      c.access = *a;
    } else if (k == "max_items") {
      std::uint32_t n = 0;
      const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
      if (r.ec != std::errc() || n == 0) return std::nullopt;
      c.max_items = n;
    } else if (k == "persist_items" || k == "notify_retract") {
      const auto b = boolean(v);
      if (!b) return std::nullopt;
      (k == "persist_items" ? c.persist_items : c.notify_retract) = *b;
    } else if (k == "send_last") {
      const auto s = send_last_from(v);
      if (!s) return std::nullopt;
      c.send_last = *s;
    } else if (k == "group") {
      c.roster_groups.emplace_back(v);
    } else if (k == "title") {
      c.title = v;
    } else {
      return std::nullopt;
    }
  }
  return c;
}

}  // namespace waddle::im::logic
