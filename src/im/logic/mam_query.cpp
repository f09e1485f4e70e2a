#include "im/logic/mam_query.h"

#include <charconv>

#include "core/jid.h"
#include "core/namespaces.h"
#include "core/timestamp.h"

namespace waddle::im {
using core::StanzaError;
using xml::Element;

namespace {

MamQueryError bad(std::string text) {
  return {StanzaError::kBadRequest, std::move(text)};
}

std::optional<std::size_t> parse_count(std::string_view s) {
  std::size_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return n;
}

std::optional<MamQueryError> read_field(const Element& field, storage::ArchiveFilter& f,
                                        std::size_t max_page) {
  const auto var = field.attr("var");
  const std::string value = field.child_text("value", ns::kData);
  if (var == "FORM_TYPE") {
    if (value != ns::kMam) return bad("FORM_TYPE is not " + std::string(ns::kMam));
  } else if (var == "with") {
    if (value.empty()) return std::nullopt;
    auto jid = core::Jid::parse(value);
    if (!jid) return MamQueryError{StanzaError::kJidMalformed, "'with' is not a JID"};
    f.with = jid->str();
  } else if (var == "start" || var == "end") {
    if (value.empty()) return std::nullopt;
    auto t = core::parse_timestamp(value);
    if (!t) return bad("'" + std::string(var) + "' is not an XEP-0082 date and time");
    (var == "start" ? f.start_us : f.end_us) = *t * 1'000'000 + (var == "end" ? 999'999 : 0);
  } else if (var == "after-id") {
    f.after_id = value;
  } else if (var == "before-id") {
    f.before_id = value;
  } else if (var == "ids") {
    for (const Element* v : field.children("value", ns::kData)) f.ids.push_back(v->text());
    if (f.ids.size() > max_page) return bad("Too many ids");
  } else {
    return MamQueryError{StanzaError::kFeatureNotImplemented,
                         "Unsupported field '" + std::string(var) + "'"};
  }
  return std::nullopt;
}

std::optional<MamQueryError> read_set(const Element& set, storage::ArchiveFilter& f,
                                      std::size_t max_page) {
  if (const Element* max = set.child("max", ns::kRsm)) {
    auto n = parse_count(max->text());
    if (!n) return bad("<max/> is not a number");
    f.max = std::min(*n, max_page);
  }
  if (set.child("index", ns::kRsm))
    return MamQueryError{StanzaError::kFeatureNotImplemented, "Paging by index"};
  if (const Element* after = set.child("after", ns::kRsm)) {
    if (after->text().empty()) return bad("<after/> without an id");
    f.after_id = after->text();
  }
  if (const Element* before = set.child("before", ns::kRsm)) {
    f.backwards = true;
    if (!before->text().empty()) f.before_id = before->text();
  }
  return std::nullopt;
}

}  // namespace

std::variant<MamQuery, MamQueryError> parse_mam_query(const Element& query, std::size_t max_page) {
  MamQuery q;
  q.queryid = std::string(query.attr("queryid"));
  q.filter.max = std::min<std::size_t>(50, max_page);
  if (!query.attr("node").empty())
    return MamQueryError{StanzaError::kItemNotFound, "This archive has no nodes"};
  if (const Element* form = query.child("x", ns::kData)) {
    if (form->attr("type") != "submit" && !form->attr("type").empty())
      return bad("The form must be submitted");
    for (const Element* field : form->children("field", ns::kData))
      if (auto err = read_field(*field, q.filter, max_page)) return *err;
  }
  if (const Element* set = query.child("set", ns::kRsm))
    if (auto err = read_set(*set, q.filter, max_page)) return *err;
  q.flip_page = query.child("flip-page", ns::kMam) != nullptr;
  return q;
}

std::optional<MamQueryError> room_with_error(const std::string& with, const std::string& room) {
  if (with.empty()) return std::nullopt;
  auto jid = core::Jid::parse(with);
  if (jid && jid->bare_str() == room) return std::nullopt;
  return MamQueryError{StanzaError::kFeatureNotImplemented,
                       "In a room archive 'with' is an occupant JID (" + room + "/nick)"};
}

Element mam_query_form() {
  Element x("x", std::string(ns::kData));
  x.set_attr("type", "form");
  auto field = [&](std::string_view var, std::string_view type) -> Element& {
    return x.add_child("field", std::string(ns::kData)).set_attr("var", var).set_attr("type", type);
  };
  field("FORM_TYPE", "hidden").add_child("value", std::string(ns::kData)).add_text(ns::kMam);
  field("with", "jid-single");
  field("start", "text-single");
  field("end", "text-single");
  field("before-id", "text-single");
  field("after-id", "text-single");
  field("ids", "text-multi");
  return x;
}

bool worth_keeping(const Element& message) {
  const auto type = message.attr("type");
  if (type == "groupchat" || type == "error" || type == "headline") return false;
  bool keep = false;
  for (const auto& node : message.nodes()) {
    if (!node.is_element()) continue;
    const Element& c = *node.element;
    if (c.ns() == ns::kHints) {
      if (c.name() == "no-store" || c.name() == "no-permanent-store") return false;
      if (c.name() == "store") keep = true;
    } else if (c.name() == "body" || c.name() == "encrypted" || c.ns() == ns::kPgpEncrypted ||
               c.ns() == ns::kOpenPgp || c.ns() == ns::kConferenceInvite) {
      keep = true;
    } else if (c.name() == "x" && c.ns() == ns::kMucUser && c.child("invite", ns::kMucUser)) {
      keep = true;
    }
  }
  return keep;
}

}  // namespace waddle::im
