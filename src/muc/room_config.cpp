// XEP-0045 owner side: the configuration form (§10.1-10.2), room destruction (§10.9), the
// room's disco#info (§6.4), and the persistent state saved for persistent rooms.
#include "muc/room.h"

#include "muc/room_detail.h"
#include "xml/stanza.h"

namespace waddle::muc {

using core::Jid;
using core::StanzaError;
using detail::kClientNs;
using detail::kUserNs;
using xml::Element;

namespace {

const std::string kDataNs(ns::kData);

bool truthy(std::string_view v) {
  return v == "1" || v == "true";
}

Element& data_field(Element& form, std::string_view var, std::string_view type,
                    std::string_view label, std::string_view value) {
  Element& f = form.add_child("field", kDataNs);
  f.set_attr("var", var);
  if (!type.empty()) f.set_attr("type", type);
  if (!label.empty()) f.set_attr("label", label);
  f.add_child("value", kDataNs).add_text(value);
  return f;
}

std::map<std::string, std::string> form_values(const Element& form) {
  std::map<std::string, std::string> out;
  for (const auto* f : form.children("field", ns::kData)) {
    out[std::string(f->attr("var"))] = f->child_text("value", ns::kData);
  }
  return out;
}

}  // namespace

Element Room::disco_info(const Element& iq) const {
  Element r = xml::make_iq_result(iq);
  const std::string info_ns(xml::ns::kDiscoInfo);
  Element& q = r.add_child("query", info_ns);
  q.add_child("identity", info_ns)
      .set_attr("category", "conference")
      .set_attr("type", "text")
      .set_attr("name", config_.name.empty() ? jid_.local() : config_.name);
  std::vector<std::string_view> features{
      ns::kMuc,
      ns::kMucSelfPing,
      ns::kOccupantId,
      xml::ns::kDiscoInfo,
      config_.public_room ? "muc_public" : "muc_hidden",
      config_.persistent ? "muc_persistent" : "muc_temporary",
      config_.members_only ? "muc_membersonly" : "muc_open",
      config_.non_anonymous ? "muc_nonanonymous" : "muc_semianonymous",
      config_.moderated ? "muc_moderated" : "muc_unmoderated",
      config_.password.empty() ? "muc_unsecured" : "muc_passwordprotected"};
  if (archives()) {
    features.push_back(ns::kMam);
    features.push_back(ns::kMamExtended);
    features.push_back(ns::kSid);
  }
  // XEP-0425: moderators retract messages (both versions clients use).
  features.insert(features.end(),
                  {"urn:xmpp:message-moderate:0", "urn:xmpp:message-moderate:1", detail::kHats});
  for (auto f : features) q.add_child("feature", info_ns).set_attr("var", f);
  Element& form = q.add_child("x", kDataNs);
  form.set_attr("type", "result");
  data_field(form, "FORM_TYPE", "hidden", "", ns::kMucRoomInfo);
  data_field(form, "muc#roominfo_description", "", "Description", config_.description);
  data_field(form, "muc#roominfo_subject", "", "Subject", subject_);
  data_field(form, "muc#roominfo_occupants", "", "Number of occupants",
             std::to_string(occupants_.size()));
  data_field(form, "muc#roomconfig_roomname", "", "Name", config_.name);
  return r;
}

Element Room::config_form() const {
  Element form("x", kDataNs);
  form.set_attr("type", "form");
  form.add_child("title", kDataNs).add_text("Configuration of " + jid_.bare_str());
  data_field(form, "FORM_TYPE", "hidden", "", ns::kMucRoomConfig);
  data_field(form, "muc#roomconfig_roomname", "text-single", "Name", config_.name);
  data_field(form, "muc#roomconfig_roomdesc", "text-single", "Description", config_.description);
  data_field(form, "muc#roomconfig_persistentroom", "boolean", "Persistent",
             config_.persistent ? "1" : "0");
  data_field(form, "muc#roomconfig_publicroom", "boolean", "Listed in the room directory",
             config_.public_room ? "1" : "0");
  data_field(form, "muc#roomconfig_membersonly", "boolean", "Members only",
             config_.members_only ? "1" : "0");
  data_field(form, "muc#roomconfig_moderatedroom", "boolean", "Moderated",
             config_.moderated ? "1" : "0");
  data_field(form, "muc#roomconfig_changesubject", "boolean", "Participants may change the subject",
             config_.change_subject ? "1" : "0");
  data_field(form, "muc#roomconfig_allowinvites", "boolean", "Participants may invite",
             config_.allow_invites ? "1" : "0");
  data_field(form, "muc#roomconfig_passwordprotectedroom", "boolean", "Password protected",
             config_.password.empty() ? "0" : "1");
  data_field(form, "muc#roomconfig_roomsecret", "text-private", "Password", config_.password);
  Element& whois = data_field(form, "muc#roomconfig_whois", "list-single", "Who may see real JIDs",
                              config_.non_anonymous ? "anyone" : "moderators");
  for (const char* v : {"moderators", "anyone"})
    whois.add_child("option", kDataNs).add_child("value", kDataNs).add_text(v);
  data_field(form, "muc#roomconfig_maxusers", "text-single", "Maximum occupants",
             std::to_string(config_.max_users));
  if (ctx_->archive && ctx_->archive_query)
    data_field(form, "muc#roomconfig_enablearchiving", "boolean", "Archive messages (XEP-0313)",
               config_.archiving ? "1" : "0");
  // XEP-0317: the hat (a title) each affiliation's occupants wear; empty for none.
  for (auto a : detail::kHatAffiliations) {
    auto it = config_.hats.find(a);
    data_field(form, "waddle#hat_" + std::string(a), "text-single",
               "Hat of the room's " + std::string(a) + "s",
               it == config_.hats.end() ? "" : it->second);
  }
  return form;
}

std::optional<std::string> Room::apply_config(const Element& form, const Jid& /*from*/) {
  auto v = form_values(form);
  if (auto it = v.find("FORM_TYPE"); it != v.end() && it->second != ns::kMucRoomConfig)
    return "unknown FORM_TYPE";
  RoomConfig c = config_;
  auto flag = [&](const char* var, bool& out) {
    if (auto it = v.find(var); it != v.end()) out = truthy(it->second);
  };
  if (auto it = v.find("muc#roomconfig_roomname"); it != v.end()) c.name = it->second;
  if (auto it = v.find("muc#roomconfig_roomdesc"); it != v.end()) c.description = it->second;
  flag("muc#roomconfig_persistentroom", c.persistent);
  flag("muc#roomconfig_publicroom", c.public_room);
  flag("muc#roomconfig_membersonly", c.members_only);
  flag("muc#roomconfig_moderatedroom", c.moderated);
  flag("muc#roomconfig_changesubject", c.change_subject);
  flag("muc#roomconfig_allowinvites", c.allow_invites);
  flag("muc#roomconfig_enablearchiving", c.archiving);
  bool protect = !c.password.empty();
  flag("muc#roomconfig_passwordprotectedroom", protect);
  if (auto it = v.find("muc#roomconfig_roomsecret"); it != v.end()) c.password = it->second;
  if (!protect) c.password.clear();
  if (protect && c.password.empty()) return "a password-protected room needs a password";
  if (auto it = v.find("muc#roomconfig_whois"); it != v.end()) {
    if (it->second != "anyone" && it->second != "moderators")
      return "whois must be anyone or moderators";
    c.non_anonymous = it->second == "anyone";
  }
  if (auto it = v.find("muc#roomconfig_maxusers"); it != v.end() && !it->second.empty()) {
    try {
      unsigned long n = std::stoul(it->second);
      if (n < 1 || n > ctx_->max_users)
        return "maxusers must be between 1 and " + std::to_string(ctx_->max_users);
      c.max_users = static_cast<std::uint32_t>(n);
    } catch (...) {
      return "maxusers is not a number";
    }
  }
  for (auto a : detail::kHatAffiliations) {
    auto it = v.find("waddle#hat_" + std::string(a));
    if (it == v.end()) continue;
    if (it->second.size() > 64) return "a hat's title is 64 characters at most";
    if (it->second.empty())
      c.hats.erase(std::string(a));
    else
      c.hats[std::string(a)] = it->second;
  }
  const bool hats_changed = c.hats != config_.hats;
  const bool anonymity_changed = c.non_anonymous != config_.non_anonymous;
  const bool now_members_only = c.members_only && !config_.members_only;
  config_ = std::move(c);
  dirty = true;
  // §10.2.1: tell occupants that the configuration changed.
  Element m("message", kClientNs);
  m.set_attr("from", jid_.bare_str());
  m.set_attr("type", "groupchat");
  Element& x = m.add_child("x", kUserNs);
  x.add_child("status", kUserNs).set_attr("code", "104");
  if (anonymity_changed)
    x.add_child("status", kUserNs).set_attr("code", config_.non_anonymous ? "172" : "173");
  broadcast_message(std::move(m));
  if (now_members_only) {
    // §9.3 / 322: non-members leave a room that became members-only.
    std::vector<std::string> out;
    for (const auto& [n, occ] : occupants_)
      if (occ.affiliation == Affiliation::kNone) out.push_back(n);
    for (const auto& n : out) remove_occupant(n, {322}, "");
  }
  for (auto& [n, occ] : occupants_) refresh_role(occ);
  // Occupants whose hat changed are seen with the new one.
  if (hats_changed)
    for (const auto& [n, occ] : occupants_)
      if (!occ.sessions.empty() &&
          (occ.affiliation == Affiliation::kOwner || occ.affiliation == Affiliation::kAdmin ||
           occ.affiliation == Affiliation::kMember))
        announce_occupant(occ);
  return std::nullopt;
}

void Room::destroy(const Element* destroy_el) {
  Element extra("destroy", kUserNs);
  if (destroy_el) {
    if (destroy_el->has_attr("jid")) extra.set_attr("jid", destroy_el->attr("jid"));
    if (auto r = destroy_el->child_text("reason", ns::kMucOwner); !r.empty())
      extra.add_child("reason", kUserNs).add_text(r);
  }
  std::vector<std::string> nicks;
  for (const auto& [n, occ] : occupants_) nicks.push_back(n);
  for (auto& [n, occ] : occupants_) occ.affiliation = Affiliation::kNone;
  for (const auto& n : nicks) remove_occupant(n, {}, "", &extra);
  destroyed_ = true;
  dirty = true;
}

void Room::owner_iq(const Element& iq, const Jid& from) {
  if (affiliation_of(from) != Affiliation::kOwner)
    return reply_error(iq, StanzaError::kForbidden, "Only owners may configure the room");
  const Element* q = iq.first_child();
  if (iq.attr("type") == "get") {
    Element r = xml::make_iq_result(iq);
    r.add_child("query", std::string(ns::kMucOwner)).add_child(config_form());
    return ctx_->send(std::move(r));
  }
  if (const Element* d = q->child("destroy", ns::kMucOwner)) {
    ctx_->send(xml::make_iq_result(iq));
    return destroy(d);
  }
  const Element* form = q->child("x", ns::kData);
  if (!form) return reply_error(iq, StanzaError::kBadRequest, "Expected a data form");
  auto form_type = form->attr("type");
  if (form_type == "cancel") return ctx_->send(xml::make_iq_result(iq));
  if (form_type != "submit")
    return reply_error(iq, StanzaError::kBadRequest, "Expected a submitted form");
  if (auto problem = apply_config(*form, from))
    return reply_error(iq, StanzaError::kNotAcceptable, *problem);
  ctx_->send(xml::make_iq_result(iq));
}

// ------------------------------------------------------------------------- persistence

Element Room::save() const {
  const std::string store_ns(ns::kMucStore);
  Element r("room", store_ns);
  r.set_attr("name", config_.name);
  r.set_attr("description", config_.description);
  r.set_attr("persistent", config_.persistent ? "1" : "0");
  r.set_attr("public", config_.public_room ? "1" : "0");
  r.set_attr("members-only", config_.members_only ? "1" : "0");
  r.set_attr("moderated", config_.moderated ? "1" : "0");
  r.set_attr("password", config_.password);
  r.set_attr("non-anonymous", config_.non_anonymous ? "1" : "0");
  r.set_attr("change-subject", config_.change_subject ? "1" : "0");
  r.set_attr("allow-invites", config_.allow_invites ? "1" : "0");
  r.set_attr("max-users", std::to_string(config_.max_users));
  r.set_attr("archiving", config_.archiving ? "1" : "0");
  r.set_attr("secret", secret_);
  for (const auto& [aff, title] : config_.hats)
    r.add_child("hat", store_ns).set_attr("affiliation", aff).set_attr("title", title);
  Element& s = r.add_child("subject", store_ns);
  s.set_attr("nick", subject_nick_);
  s.add_text(subject_);
  for (const auto& [jid, aff] : affiliations_)
    r.add_child("affiliation", store_ns).set_attr("jid", jid).set_attr("value", to_string(aff));
  return r;
}

std::optional<Room> Room::load(const Jid& jid, const Element& saved, Context& ctx) {
  if (saved.name() != "room") return std::nullopt;
  RoomConfig c;
  c.name = std::string(saved.attr("name"));
  c.description = std::string(saved.attr("description"));
  c.persistent = truthy(saved.attr("persistent"));
  c.public_room = truthy(saved.attr("public"));
  c.members_only = truthy(saved.attr("members-only"));
  c.moderated = truthy(saved.attr("moderated"));
  c.password = std::string(saved.attr("password"));
  c.non_anonymous = truthy(saved.attr("non-anonymous"));
  c.change_subject = truthy(saved.attr("change-subject"));
  c.allow_invites = truthy(saved.attr("allow-invites"));
  c.archiving =
      saved.has_attr("archiving") ? truthy(saved.attr("archiving")) : ctx.archive_by_default;
  try {
    c.max_users = static_cast<std::uint32_t>(std::stoul(std::string(saved.attr("max-users"))));
  } catch (...) {
    return std::nullopt;
  }
  Room room(jid, std::move(c), ctx);
  room.may_have_archive_ = true;
  if (auto secret = saved.attr("secret"); !secret.empty())
    room.secret_ = std::string(secret);
  else
    room.dirty = true;  // save the new secret so that occupant ids stay stable
  if (const Element* s = saved.child("subject")) {
    room.subject_ = s->text();
    room.subject_nick_ = std::string(s->attr("nick"));
  }
  for (const auto* h : saved.children())
    if (h->name() == "hat" && !h->attr("title").empty())
      room.config_.hats[std::string(h->attr("affiliation"))] = std::string(h->attr("title"));
  for (const auto* a : saved.children()) {
    if (a->name() != "affiliation") continue;
    auto aff = affiliation_from(a->attr("value"));
    if (aff && *aff != Affiliation::kNone) room.affiliations_[std::string(a->attr("jid"))] = *aff;
  }
  return room;
}

}  // namespace waddle::muc
