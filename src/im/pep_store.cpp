// PEP's storage jobs (see pep_store.h).
#include "im/pep_store.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "core/ids.h"
#include "im/logic/personal.h"
#include "xml/parser.h"

namespace waddle::im::pep_store {

using logic::PepConfig;
using logic::PepItem;
using xml::Element;

namespace {

constexpr std::string_view kEvent = "http://jabber.org/protocol/pubsub#event";
constexpr const char* kVcardKey = "vcard";  // not of the "{namespace}name" form

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// XEP-0402 §3: the bookmarks node keeps every room, for the owner only, sends no last item.
PepConfig bookmarks_config(const Owner& owner) {
  PepConfig c;
  c.access = logic::AccessModel::kWhitelist;
  c.max_items = owner.limits.max_items;
  c.send_last = logic::SendLast::kNever;
  return c;
}

// XEP-0398 §3.2: avatars converted from the vCard, readable as the vCard is.
PepConfig avatar_config() {
  PepConfig c;
  c.access = logic::AccessModel::kOpen;
  return c;
}

std::optional<Element> parse(const std::optional<std::string>& text) {
  if (!text) return std::nullopt;
  return xml::parse_element(*text);
}

}  // namespace

PepConfig config_of(const storage::PepNode& node) {
  return logic::decode(node.config).value_or(PepConfig{});
}

Stored put(storage::Storage& st, const Owner& o, const std::string& node, const PepConfig& if_new,
           const PepItem& item, std::vector<Change>& changes) {
  Stored out;
  if (auto n = st.pep_node(o.domain, o.user, node)) {
    out.config = config_of(*n);
  } else {
    out.config = if_new;
    if (st.pep_create(o.domain, o.user, {node, logic::encode(if_new)}, o.max_nodes) ==
        storage::PepCreated::kTooMany) {
      out.error = logic::PepRequestError{core::StanzaError::kNotAllowed, "max-nodes-exceeded", {}};
      return out;
    }
  }
  const std::int64_t now = now_us();
  out.id = item.id.empty() ? core::ordered_id(now) : item.id;
  st.pep_publish(o.domain, o.user, node, {out.id, o.publisher, now, item.payload.str()},
                 out.config.max_items);
  changes.push_back(
      {node, out.config, logic::pep_publish_event(o.jid, node, {out.id, item.payload})});
  return out;
}

bool retract(storage::Storage& st, const Owner& o, const std::string& node, const std::string& id,
             bool notify, std::vector<Change>& changes) {
  auto n = st.pep_node(o.domain, o.user, node);
  if (!n || !st.pep_retract(o.domain, o.user, node, id)) return false;
  PepConfig config = config_of(*n);
  if (notify || config.notify_retract)
    changes.push_back({node, config, logic::pep_retract_event(o.jid, node, id)});
  return true;
}

std::vector<PepItem> items(storage::Storage& st, const Owner& o, const std::string& node,
                           const std::vector<std::string>& ids, std::size_t max) {
  std::vector<PepItem> out;
  for (const auto& s : st.pep_items(o.domain, o.user, node, ids, max))
    if (auto payload = xml::parse_element(s.payload)) out.push_back({s.id, std::move(*payload)});
  return out;
}

void after_publish(storage::Storage& st, const Owner& o, const std::string& node,
                   const PepItem& item) {
  if (node != logic::kAvatarMetadata) return;
  std::optional<logic::Photo> photo;
  if (const auto info = logic::avatar_info(item.payload)) {
    const auto data = items(st, o, std::string(logic::kAvatarData), {info->id}, 1);
    if (data.empty()) return;  // data not (yet) there: nothing to convert
    auto bytes = logic::avatar_bytes(data.front().payload);
    if (!bytes) return;
    photo = logic::Photo{info->type.empty() ? "image/png" : info->type, std::move(*bytes)};
  }
  const auto vcard = parse(st.private_get(o.domain, o.user, kVcardKey));
  if (!photo && !vcard) return;
  const Element updated = logic::vcard_with_photo(vcard ? &*vcard : nullptr, photo);
  st.private_put(o.domain, o.user, kVcardKey, updated.str(), static_cast<std::size_t>(-1));
}

std::string private_key(const Element& element) {
  return "{" + element.ns() + "}" + element.name();
}

Element private_get(storage::Storage& st, const Owner& o, const Element& query) {
  auto stored = parse(st.private_get(o.domain, o.user, private_key(query)));
  if (query.is("storage", logic::kBookmarksLegacy)) {
    const auto rooms = items(st, o, std::string(logic::kBookmarks2), {}, o.limits.max_items);
    return logic::storage_from_bookmarks(rooms, stored ? &*stored : nullptr);
  }
  if (stored) return std::move(*stored);
  return Element(query.name(), query.ns());
}

bool private_put(storage::Storage& st, const Owner& o, const Element& element,
                 std::vector<Change>& changes) {
  if (!st.private_put(o.domain, o.user, private_key(element), element.str(), o.max_nodes))
    return false;
  if (!element.is("storage", logic::kBookmarksLegacy)) return true;
  // XEP-0402 §5.3: the rooms become the XEP-0402 node's items; the others go.
  const std::string node(logic::kBookmarks2);
  std::map<std::string, std::string> current;
  for (auto& item : items(st, o, node, {}, o.limits.max_items))
    current.emplace(item.id, item.payload.str());
  const auto wanted = logic::bookmarks_from_storage(element);
  for (const auto& item : wanted) {
    auto it = current.find(item.id);
    if (it == current.end() || it->second != item.payload.str())
      put(st, o, node, bookmarks_config(o), item, changes);
    if (it != current.end()) current.erase(it);
  }
  for (const auto& [id, payload] : current) retract(st, o, node, id, true, changes);
  return true;
}

std::optional<Element> vcard_get(storage::Storage& st, const Owner& o) {
  return parse(st.private_get(o.domain, o.user, kVcardKey));
}

void vcard_put(storage::Storage& st, const Owner& o, const Element& vcard,
               std::vector<Change>& changes) {
  st.private_put(o.domain, o.user, kVcardKey, vcard.str(), static_cast<std::size_t>(-1));
  const auto photo = logic::vcard_photo(vcard);
  // The avatar now published, to leave alone when it is the vCard's already.
  std::optional<logic::AvatarInfo> current;
  for (const auto& m : items(st, o, std::string(logic::kAvatarMetadata), {}, 1))
    current = logic::avatar_info(m.payload);
  if (photo) {
    if (current && current->id == logic::avatar_id(photo->bytes)) return;
    put(st, o, std::string(logic::kAvatarData), avatar_config(), logic::avatar_data_item(*photo),
        changes);
    put(st, o, std::string(logic::kAvatarMetadata), avatar_config(),
        logic::avatar_metadata_item(photo), changes);
  } else if (current) {
    put(st, o, std::string(logic::kAvatarMetadata), avatar_config(),
        logic::avatar_metadata_item(std::nullopt), changes);
  }
}

}  // namespace waddle::im::pep_store
